//! Budgets, rate limits and sticky sessions: limits that hold across requests, and across replicas
//! when they share a [`StateStore`](crate::state::StateStore).
//!
//! # How a request is admitted
//!
//! When [`Router::complete`](crate::Router::complete) or [`Router::stream`](crate::Router::stream) is
//! about to call a model, it asks the store, in one atomic step, for the first candidate in the
//! decision's ranking that every applicable limit still allows:
//!
//! - **budgets** ([`Budget`]): USD per tenant, per caller key or overall, over a calendar window
//!   (UTC minute, hour, day or month) or a sliding one. The candidate's cost is **reserved** first:
//!   by default its worst case (the input plus the request's `max_tokens`, or the model's maximum
//!   output, at list prices; [`Reserve`]). When the answer arrives the reservation is reconciled
//!   with the actual cost; a failed or cancelled request gives it back.
//! - **rate limits** ([`RateLimit`]): requests and tokens per minute per model, over a sliding
//!   minute. A model near its limit (90% by default) is passed over while another candidate can
//!   serve, and at its limit in any case, before it would answer with a 429.
//! - **caller rate limits** ([`CallerRateLimit`]): requests and tokens per minute overall, per tenant
//!   or per caller key, whichever model serves them. A caller over one is refused before any model
//!   is called, with [`ErrorKind::RateLimited`](crate::ErrorKind::RateLimited) and a
//!   [`retry_after`](crate::Error::retry_after) of when the sliding minute frees enough room. An
//!   admitted request reads where its caller stands ([`CallerLimits`]) on its
//!   [`Response`](crate::Response::caller_limits) or [`RoutedStream`](crate::RoutedStream::caller_limits),
//!   from the same atomic step.
//!
//! A candidate that does not fit is skipped and the next one in the ranking is taken: the router
//! **downgrades** to a cheaper model rather than reject. Fallbacks, larger-context retries and
//! escalations go through the same step, so no attempt is made that a budget does not cover.
//! When no candidate fits, the request fails with
//! [`ErrorKind::BudgetExceeded`](crate::ErrorKind::BudgetExceeded) (or
//! [`ErrorKind::RateLimited`](crate::ErrorKind::RateLimited) when only rate limits stand in the way),
//! whose [`rejections`](crate::Error::rejections) name the limit that stopped each model.
//!
//! Routers that share a store also share open circuits: a model whose circuit opened on one of them
//! is passed over by all of them for the rest of its cool-down ([`LimitsConfig::share_circuits`]).
//!
//! # When the store fails
//!
//! Every store call has a timeout ([`LimitsConfig::store_timeout`]). After a failure the router stops
//! asking the store for [`LimitsConfig::store_retry`] and serves from its own process-local counters,
//! each limit as its [`OnStoreFailure`] says: `local` (the default) keeps enforcing it on this
//! replica's counters, which start from the last values the store reported; `open` stops enforcing
//! it; `closed` refuses requests it applies to ([`ErrorKind::Store`](crate::ErrorKind::Store)). What
//! was spent meanwhile is added to the store once it answers again.

mod caller;
mod limiter;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::caller::CallerRateLimit;
pub(crate) use self::limiter::{Admission, Limiter, Ticket};
pub use crate::state::Window;
pub use crate::types::{CallerLimits, LimitRoom};

use crate::catalog::{Catalog, ModelId};
use crate::error::{Error, Result};
use crate::types::millis;

/// A budget's state for one tenant or key: [`Router::budget_status`](crate::Router::budget_status).
///
/// In serialized form: `{"label", "limit_usd", "spent_usd", "remaining_usd", "resets_in_ms"}`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetStatus {
    /// The budget's name for messages: its scope, the tenant if one is named, the cap and the
    /// window. Never a caller key.
    pub label: String,
    /// The cap.
    pub limit_usd: f64,
    /// Spent in the current window, plus what requests in flight have reserved.
    pub spent_usd: f64,
    /// Time until the window's bucket ends (for a sliding window: until the current bucket ends).
    pub resets_in: Duration,
}

impl Serialize for BudgetStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            label: &'a str,
            limit_usd: f64,
            spent_usd: f64,
            remaining_usd: f64,
            resets_in_ms: u64,
        }
        Wire {
            label: &self.label,
            limit_usd: self.limit_usd,
            spent_usd: self.spent_usd,
            remaining_usd: self.remaining_usd(),
            resets_in_ms: u64::try_from(self.resets_in.as_millis()).unwrap_or(u64::MAX),
        }
        .serialize(serializer)
    }
}

impl BudgetStatus {
    /// What is left: the cap minus what is spent and reserved, at least 0.
    pub fn remaining_usd(&self) -> f64 {
        (self.limit_usd - self.spent_usd).max(0.0)
    }
}

/// Whose spending a [`Budget`] caps, or whose requests a [`CallerRateLimit`] limits.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every request.
    Global,
    /// Each tenant ([`RouteHints::tenant`](crate::RouteHints::tenant)) on its own; requests without a
    /// tenant are not counted.
    Tenant,
    /// Each caller key ([`RouteHints::key`](crate::RouteHints::key)) on its own; requests without a
    /// key are not counted. Keys are stored hashed.
    Key,
}

impl Scope {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Tenant => "tenant",
            Self::Key => "key",
        }
    }
}

/// What a limit does while the shared store cannot be reached.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreFailure {
    /// Keep enforcing it on this replica's own counters, seeded with the last values the store
    /// reported. Replicas do not see each other's spending meanwhile, so `n` replicas may together
    /// spend up to `n` times what was left.
    #[default]
    Local,
    /// Stop enforcing it until the store answers again. What this replica spends meanwhile is still
    /// counted locally and added to the store once it answers, as with [`Local`](Self::Local).
    Open,
    /// Refuse every request it applies to, with [`ErrorKind::Store`](crate::ErrorKind::Store).
    Closed,
}

/// A cap on USD spent over a window.
///
/// ```toml
/// [[limits.budgets]]
/// scope = "tenant"          # global, tenant or key
/// tenant = "acme"           # optional: only this tenant
/// limit_usd = 25.0
/// window = "day"            # minute, hour, day, month (UTC), or { sliding_ms = 3600000 }
/// on_store_failure = "local"
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Whose spending it caps.
    pub scope: Scope,
    /// With [`Scope::Tenant`], only this tenant (other tenants are not capped by this budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The cap in USD.
    pub limit_usd: f64,
    /// The window spending is counted over.
    pub window: Window,
    /// What happens while the store cannot be reached.
    #[serde(default)]
    pub on_store_failure: OnStoreFailure,
}

impl Budget {
    /// A cap of `limit_usd` per `window` for `scope`.
    pub fn new(scope: Scope, limit_usd: f64, window: Window) -> Self {
        Self { scope, tenant: None, limit_usd, window, on_store_failure: OnStoreFailure::default() }
    }

    /// A cap on one tenant's spending.
    pub fn tenant(tenant: impl Into<String>, limit_usd: f64, window: Window) -> Self {
        Self { tenant: Some(tenant.into()), ..Self::new(Scope::Tenant, limit_usd, window) }
    }

    /// Sets what happens while the store cannot be reached.
    pub fn on_store_failure(mut self, mode: OnStoreFailure) -> Self {
        self.on_store_failure = mode;
        self
    }

    /// A name for messages: the scope, the tenant if one is named, the cap and the window. Never a
    /// caller key.
    pub(crate) fn label(&self) -> String {
        match &self.tenant {
            Some(t) => format!("{} `{t}` budget of ${} per {}", self.scope.as_str(), self.limit_usd, self.window),
            None => format!("{} budget of ${} per {}", self.scope.as_str(), self.limit_usd, self.window),
        }
    }
}

/// Requests and tokens per minute for one model, over a sliding minute.
///
/// The router passes over a model whose next request would exceed it, instead of waiting for the
/// provider's 429; above `prefer_below` of it (90% by default) the model is used only when no other
/// candidate is below its own.
///
/// ```toml
/// [[limits.rate_limits]]
/// model = "gpt-4o"
/// requests_per_minute = 500
/// tokens_per_minute = 30000
/// prefer_below = 0.9
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// The model (a catalog id).
    pub model: ModelId,
    /// Requests started per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Input plus output tokens per minute; a request counts its estimate until its usage is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// The share of each limit above which the model is passed over while another candidate is
    /// below its own (default 0.9); at the limit itself it is passed over in any case. 1 turns this
    /// off.
    #[serde(default = "default_prefer_below")]
    pub prefer_below: f64,
    /// What happens while the store cannot be reached.
    #[serde(default)]
    pub on_store_failure: OnStoreFailure,
}

fn default_prefer_below() -> f64 {
    0.9
}

impl RateLimit {
    /// No limit yet on `model`; add one with the `per_minute` methods.
    pub fn new(model: impl Into<ModelId>) -> Self {
        Self {
            model: model.into(),
            requests_per_minute: None,
            tokens_per_minute: None,
            prefer_below: default_prefer_below(),
            on_store_failure: OnStoreFailure::default(),
        }
    }

    /// Sets the share of the limit above which the model is passed over while another candidate is
    /// below its own.
    pub fn prefer_below(mut self, share: f64) -> Self {
        self.prefer_below = share;
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
}

/// How much of a request's cost a budget holds while the request runs.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reserve {
    /// The worst case: the input plus the request's `max_tokens` (or the model's maximum output) at
    /// list prices. Concurrent requests cannot overshoot a budget by more than the error of the
    /// input-token estimate.
    #[default]
    Maximum,
    /// The expected cost. Admits more concurrent requests near a cap, at the risk of overshooting it
    /// by what they spend beyond their estimates.
    Expected,
}

/// Keeps a conversation on the model that served it (prompt-cache affinity).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StickyConfig {
    /// How long a conversation stays on its model after its last request (default 10 minutes).
    #[serde(rename = "ttl_ms", with = "millis")]
    pub ttl: Duration,
}

impl Default for StickyConfig {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(600) }
    }
}

/// Budgets, rate limits and sticky sessions of a router; see the [module docs](self).
///
/// ```toml
/// [limits]
/// store_timeout_ms = 50
/// store_retry_ms = 1000
/// flush_after_ms = 250
/// reserve = "maximum"
/// sticky = { ttl_ms = 600000 }
///
/// [[limits.budgets]]
/// scope = "global"
/// limit_usd = 500.0
/// window = "month"
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// USD budgets; every budget that applies to a request must cover it.
    pub budgets: Vec<Budget>,
    /// Per-model rate limits.
    pub rate_limits: Vec<RateLimit>,
    /// Per-caller rate limits (overall, per tenant, per caller key); every one that applies to a
    /// request must allow it.
    pub caller_rate_limits: Vec<CallerRateLimit>,
    /// How much a budget holds while a request runs.
    pub reserve: Reserve,
    /// With `Some`, requests with a [`RouteHints::key`](crate::RouteHints::key) stay on the model that
    /// last served that key while it is a candidate (healthy, capable) and within every limit.
    pub sticky: Option<StickyConfig>,
    /// The longest wait for the store (default 50 ms).
    #[serde(rename = "store_timeout_ms", with = "millis")]
    pub store_timeout: Duration,
    /// After a store failure, how long to serve from local counters before asking the store again
    /// (default 1 s).
    #[serde(rename = "store_retry_ms", with = "millis")]
    pub store_retry: Duration,
    /// How long a reservation outlives the request's deadline if it is never settled (a replica died,
    /// say) before the store gives it back (default 60 s).
    #[serde(rename = "lease_grace_ms", with = "millis")]
    pub lease_grace: Duration,
    /// Whether a circuit that opens on one replica is open on every replica that shares the store,
    /// for the rest of its cool-down (default true).
    pub share_circuits: bool,
    /// How often experiments' statistics and bandits' evidence are added up with the other
    /// replicas that share the store (zero, the default: never). See
    /// [`share_learning`](Self::share_learning).
    #[serde(rename = "share_learning_ms", with = "millis")]
    pub share_learning: Duration,
    /// How long what a replica has to tell a store other than a `MemoryStore` (finished requests'
    /// actual costs, circuits opened here) may wait for the next admission to carry it before the
    /// router sends it by itself (default 250 ms; zero: only with the next admission or
    /// [`Router::flush_state`](crate::Router::flush_state)). See [`flush_after`](Self::flush_after).
    #[serde(rename = "flush_after_ms", with = "millis")]
    pub flush_after: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            budgets: Vec::new(),
            rate_limits: Vec::new(),
            caller_rate_limits: Vec::new(),
            reserve: Reserve::default(),
            sticky: None,
            store_timeout: Duration::from_millis(50),
            store_retry: Duration::from_secs(1),
            lease_grace: Duration::from_secs(60),
            share_circuits: true,
            share_learning: Duration::ZERO,
            flush_after: Duration::from_millis(250),
        }
    }
}

impl LimitsConfig {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a budget.
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budgets.push(budget);
        self
    }

    /// Adds a rate limit.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limits.push(limit);
        self
    }

    /// Adds a per-caller rate limit.
    pub fn caller_rate_limit(mut self, limit: CallerRateLimit) -> Self {
        self.caller_rate_limits.push(limit);
        self
    }

    /// Sets how much a budget holds while a request runs.
    pub fn reserve(mut self, reserve: Reserve) -> Self {
        self.reserve = reserve;
        self
    }

    /// Keeps conversations on their model for `ttl` after their last request.
    pub fn sticky(mut self, ttl: Duration) -> Self {
        self.sticky = Some(StickyConfig { ttl });
        self
    }

    /// Sets the store timeout.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// Sets how long to serve from local counters after a store failure.
    pub fn store_retry(mut self, retry: Duration) -> Self {
        self.store_retry = retry;
        self
    }

    /// Sets whether circuits are shared through the store.
    pub fn share_circuits(mut self, share: bool) -> Self {
        self.share_circuits = share;
        self
    }

    /// Shares what the policy learns with the other replicas that use the same store, synced every
    /// `every` (zero turns it off): each [`Experiment`](crate::Experiment)'s statistics, so that its
    /// report and sequential tests cover every replica's traffic, and each [`Bandit`](crate::Bandit)'s
    /// evidence over its [`shared_window`](crate::Bandit::shared_window). A sync is one store round
    /// trip that adds what this replica observed since its last sync and reads back the totals; it
    /// runs in the background of requests and feedback once `every` has passed, and on
    /// [`Router::sync_learning`](crate::Router::sync_learning). A sync that fails keeps its sums
    /// for the next one.
    ///
    /// # Background task
    /// A due sync is spawned with `tokio::runtime::Handle::try_current()` on the runtime of the call
    /// that finds it due; with no runtime current, nothing is spawned and the sync waits for the
    /// next call made on one. See [`Router`'s background tasks](crate::Router#background-tasks).
    pub fn share_learning(mut self, every: Duration) -> Self {
        self.share_learning = every;
        self
    }

    /// Sets how long settlements and flags may wait for the next admission to carry them to a
    /// shared store. Under steady traffic each admission carries the previous requests'
    /// settlements, and a request costs one round trip; a replica that has been idle for
    /// `after` sends what it holds in one more, in the background (on the Tokio runtime of the
    /// request that queued it), so that its finished requests' reservations do not hold the other
    /// replicas' budgets until its next request. Zero leaves them to the next admission or
    /// [`Router::flush_state`](crate::Router::flush_state). A
    /// [`MemoryStore`](crate::state::MemoryStore) is settled at once and never needs this.
    ///
    /// # Background task
    /// The flush is a task spawned with `tokio::runtime::Handle::try_current()` on the runtime of
    /// the call that queued the first waiting item; it needs the runtime's time driver, holds only a
    /// weak reference to the router and ends when nothing waits. With no runtime current (a request
    /// dropped outside one), nothing is spawned and what waits goes with the next admission. See
    /// [`Router`'s background tasks](crate::Router#background-tasks).
    pub fn flush_after(mut self, after: Duration) -> Self {
        self.flush_after = after;
        self
    }

    /// Whether there is anything to enforce or remember.
    pub(crate) fn is_empty(&self) -> bool {
        self.budgets.is_empty()
            && self.rate_limits.is_empty()
            && self.caller_rate_limits.is_empty()
            && self.sticky.is_none()
            && self.share_learning.is_zero()
    }

    /// Checks every value, and that rate limits name models of `catalog`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the field: a negative or non-finite
    /// cap, a zero-length window, a tenant on a budget whose scope is not `tenant`, an unknown or
    /// duplicate model, a caller rate limit with no limit or a zero one, a zero timeout.
    pub(crate) fn validate(&self, catalog: &Catalog) -> Result<()> {
        for (i, b) in self.budgets.iter().enumerate() {
            let at = format!("limits.budgets[{i}]");
            if !b.limit_usd.is_finite() || b.limit_usd < 0.0 {
                return Err(Error::config(format!("{at}.limit_usd must be a finite number ≥ 0, got {}", b.limit_usd)));
            }
            b.window.validate(&format!("{at}.window"))?;
            if b.tenant.is_some() && b.scope != Scope::Tenant {
                return Err(Error::config(format!("{at}.tenant is set but scope is `{}`", b.scope.as_str())));
            }
        }
        for (i, r) in self.rate_limits.iter().enumerate() {
            let at = format!("limits.rate_limits[{i}]");
            if catalog.index_of(&r.model).is_none() {
                return Err(Error::config(format!("{at}.model: unknown model `{}`", r.model)));
            }
            if self.rate_limits[..i].iter().any(|o| o.model == r.model) {
                return Err(Error::config(format!("{at}.model: `{}` has two rate limits", r.model)));
            }
            if !(r.prefer_below > 0.0 && r.prefer_below <= 1.0) {
                return Err(Error::config(format!("{at}.prefer_below must be in (0, 1], got {}", r.prefer_below)));
            }
            if r.requests_per_minute.is_none() && r.tokens_per_minute.is_none() {
                return Err(Error::config(format!("{at}: set requests_per_minute, tokens_per_minute or both")));
            }
        }
        for (i, c) in self.caller_rate_limits.iter().enumerate() {
            c.validate(&format!("limits.caller_rate_limits[{i}]"))?;
        }
        if let Some(s) = &self.sticky
            && s.ttl.is_zero()
        {
            return Err(Error::config("limits.sticky.ttl_ms must be > 0"));
        }
        if self.store_timeout.is_zero() {
            return Err(Error::config("limits.store_timeout_ms must be > 0"));
        }
        Ok(())
    }
}
