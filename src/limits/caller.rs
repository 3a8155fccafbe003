//! [`CallerRateLimit`]: requests and tokens per minute for a caller (everyone, each tenant, each
//! caller key), whatever model serves it.

use serde::{Deserialize, Serialize};

use super::{OnStoreFailure, Scope};
use crate::error::{Error, Result};

/// Requests and tokens per minute for a caller, over a sliding minute, whichever model serves it.
///
/// A caller over its limit is refused before any model is called, with
/// [`ErrorKind::RateLimited`](crate::ErrorKind::RateLimited) and
/// [`Error::retry_after`](crate::Error::retry_after) set to when the sliding minute frees enough
/// room (a gateway answers 429 with `Retry-After`). Unlike a model's [`RateLimit`](super::RateLimit),
/// there is no other candidate to move to.
///
/// - A request counts once however many attempts it takes (retries, fallbacks, escalations): it
///   counts once it is admitted, whether it then succeeds, fails or is cancelled, and is given back
///   only when no model was called at all (every candidate's circuit open, say).
/// - Its tokens (input plus output) count its estimate while it runs, the estimate of each model
///   it is admitted to, then what each model reported. With
///   [`Reserve::Maximum`](super::Reserve::Maximum), the estimate's output is the request's
///   `max_tokens` or the model's maximum output, so set `max_tokens` when the limit is tight.
/// - Requests without a tenant are not counted by a `tenant` scope, nor requests without a key by a
///   `key` scope.
/// - A limit naming a `tenant` **replaces**, for that tenant, the limits of the same scope that name
///   none (unlike budgets, which add up): "60 requests per minute per tenant, 600 for `acme`" is
///   two limits.
///
/// ```toml
/// [[limits.caller_rate_limits]]
/// scope = "tenant"              # global, tenant or key
/// requests_per_minute = 60
/// tokens_per_minute = 100000
///
/// [[limits.caller_rate_limits]]
/// scope = "tenant"
/// tenant = "acme"               # acme's own limit, instead of the one above
/// requests_per_minute = 600
/// on_store_failure = "local"
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerRateLimit {
    /// Whose requests it limits: every request, each tenant's, or each caller key's.
    pub scope: Scope,
    /// With [`Scope::Tenant`], only this tenant; with [`Scope::Key`], each key of this tenant. For
    /// that tenant it replaces the limits of the same scope that name no tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Requests per sliding minute (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Input plus output tokens per sliding minute (at least 1); a request counts its estimate
    /// until its usage is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// What happens while the store cannot be reached.
    #[serde(default)]
    pub on_store_failure: OnStoreFailure,
}

impl CallerRateLimit {
    /// No limit yet for `scope`; add one with the `per_minute` methods.
    pub fn new(scope: Scope) -> Self {
        Self {
            scope,
            tenant: None,
            requests_per_minute: None,
            tokens_per_minute: None,
            on_store_failure: OnStoreFailure::default(),
        }
    }

    /// No limit yet for one tenant (all its requests together).
    pub fn tenant(tenant: impl Into<String>) -> Self {
        Self { tenant: Some(tenant.into()), ..Self::new(Scope::Tenant) }
    }

    /// Only for this tenant's requests ([`Scope::Tenant`] or [`Scope::Key`]); see
    /// [`tenant`](Self::tenant) (the field).
    pub fn for_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// At most `n` requests per minute.
    pub fn requests_per_minute(mut self, n: u32) -> Self {
        self.requests_per_minute = Some(n);
        self
    }

    /// At most `n` tokens per minute.
    pub fn tokens_per_minute(mut self, n: u64) -> Self {
        self.tokens_per_minute = Some(n);
        self
    }

    /// Sets what happens while the store cannot be reached.
    pub fn on_store_failure(mut self, mode: OnStoreFailure) -> Self {
        self.on_store_failure = mode;
        self
    }

    /// A name for messages: the scope, the tenant if one is named, and the limit hit. Never a
    /// caller key.
    pub(crate) fn label(&self, what: &str, n: f64) -> String {
        let whose = match (&self.scope, &self.tenant) {
            (Scope::Global, _) => "global".to_owned(),
            (Scope::Tenant, Some(t)) => format!("tenant `{t}`"),
            (Scope::Tenant, None) => "per-tenant".to_owned(),
            (Scope::Key, Some(t)) => format!("per-key (tenant `{t}`)"),
            (Scope::Key, None) => "per-key".to_owned(),
        };
        format!("{whose} limit of {n} {what} per minute")
    }

    /// Checks the limit at `at` (its place in the config, for messages).
    pub(crate) fn validate(&self, at: &str) -> Result<()> {
        if self.tenant.is_some() && self.scope == Scope::Global {
            return Err(Error::config(format!("{at}.tenant is set but scope is `global` (use scope = \"tenant\")")));
        }
        if self.tenant.as_deref().is_some_and(str::is_empty) {
            return Err(Error::config(format!("{at}.tenant must not be empty")));
        }
        match (self.requests_per_minute, self.tokens_per_minute) {
            (None, None) => Err(Error::config(format!("{at}: set requests_per_minute, tokens_per_minute or both"))),
            (Some(0), _) => {
                Err(Error::config(format!("{at}.requests_per_minute must be ≥ 1 (leave it out for no limit)")))
            }
            (_, Some(0)) => {
                Err(Error::config(format!("{at}.tokens_per_minute must be ≥ 1 (leave it out for no limit)")))
            }
            _ => Ok(()),
        }
    }

    /// Whom this limit (the one at `index` of `all`) counts a request of `tenant` and `key` under
    /// (`""` for a global limit), if it applies to it: a tenant-less limit does not apply to a
    /// tenant that has a limit of its own in the same scope.
    pub(crate) fn scope_id<'a>(
        all: &[CallerRateLimit],
        index: usize,
        tenant: Option<&'a str>,
        key: Option<&'a str>,
    ) -> Option<&'a str> {
        let limit = &all[index];
        let id = match limit.scope {
            Scope::Global => return Some(""),
            Scope::Tenant => tenant?,
            Scope::Key => key?,
        };
        match (&limit.tenant, tenant) {
            (Some(only), Some(t)) if only == t => Some(id),
            (Some(_), _) => None,
            (None, Some(t)) => {
                let replaced = all.iter().any(|o| o.scope == limit.scope && o.tenant.as_deref() == Some(t));
                (!replaced).then_some(id)
            }
            (None, None) => Some(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_tenant_replaces_the_tenantless_limit_of_its_scope() {
        let all = [
            CallerRateLimit::new(Scope::Tenant).requests_per_minute(60),
            CallerRateLimit::tenant("acme").requests_per_minute(600),
            CallerRateLimit::new(Scope::Key).requests_per_minute(10),
            CallerRateLimit::new(Scope::Global).tokens_per_minute(1_000_000),
        ];
        let ids = |tenant, key| -> Vec<Option<&str>> {
            (0..all.len()).map(|i| CallerRateLimit::scope_id(&all, i, tenant, key)).collect()
        };
        assert_eq!(ids(Some("globex"), Some("k")), [Some("globex"), None, Some("k"), Some("")]);
        assert_eq!(ids(Some("acme"), Some("k")), [None, Some("acme"), Some("k"), Some("")]);
        assert_eq!(ids(None, None), [None, None, None, Some("")]);
        // Keys of one tenant: replaces the key limit for that tenant only.
        let keyed = [
            CallerRateLimit::new(Scope::Key).requests_per_minute(10),
            CallerRateLimit::new(Scope::Key).for_tenant("acme").requests_per_minute(100),
        ];
        let id = |i, tenant| CallerRateLimit::scope_id(&keyed, i, tenant, Some("k"));
        assert_eq!((id(0, Some("acme")), id(1, Some("acme"))), (None, Some("k")));
        assert_eq!((id(0, Some("b")), id(1, Some("b"))), (Some("k"), None));
        assert_eq!((id(0, None), id(1, None)), (Some("k"), None));
    }

    #[test]
    fn labels_never_hold_a_key() {
        let l = CallerRateLimit::new(Scope::Key).for_tenant("acme").requests_per_minute(5);
        assert_eq!(l.label("requests", 5.0), "per-key (tenant `acme`) limit of 5 requests per minute");
        let l = CallerRateLimit::tenant("acme").tokens_per_minute(5);
        assert_eq!(l.label("tokens", 5.0), "tenant `acme` limit of 5 tokens per minute");
    }
}
