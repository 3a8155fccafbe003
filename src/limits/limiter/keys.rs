//! Counter names: which counters a budget or a rate limit counts under, cached per scope and
//! bucket.

use std::collections::HashMap;

use smallvec::{SmallVec, smallvec};

use super::{Limiter, lock};
use crate::catalog::ModelId;
use crate::limits::{Budget, Scope};
use crate::state::Slot;
use crate::state::{Check, Counter};

/// Counter names, built once per scope and bucket rather than per request; behind one lock, taken
/// once per admission.
pub(super) struct KeyCache {
    /// Per budget: scope id (tenant, caller key, or "" for global) → the slot's counters.
    /// Keyed by what callers send, so hashed with a per-process random key (`RandomState`), not
    /// FNV: a caller cannot craft keys that all land in one bucket.
    pub(super) budgets: Vec<HashMap<Box<str>, SlotKeys>>,
    /// Per model: the requests and tokens counters of the current minute.
    pub(super) rates: Vec<Option<RateKeys>>,
    /// Per scope (global, tenant, key): scope id → the requests and tokens counters of the current
    /// minute. Keyed by what callers send, so hashed with `RandomState`, as `budgets`.
    pub(super) callers: [HashMap<Box<str>, RateKeys>; 3],
}

/// A minute's bucket with its requests and tokens counters (current and previous of each).
type RateKeys = (i64, [Counter; 4]);

/// A bucket's counter and the previous bucket's (sliding windows).
#[derive(Clone)]
pub(super) struct SlotKeys {
    pub(super) bucket: i64,
    pub(super) current: Counter,
    pub(super) previous: Counter,
}

/// Entries a key cache keeps per budget before it starts over.
const KEY_CACHE: usize = 4096;

/// A caller key or tenant as one component of a counter or sticky entry name: the key itself, with
/// `%`, `:`, `{`, `}`, whitespace, control characters and every non-ASCII byte written as `%XX`.
///
/// Names used to hold an unkeyed FNV-64 of the caller key, so that callers able to choose keys
/// could craft two that shared one budget. The escaped key is injective (distinct keys, distinct
/// names) and cannot end its component early: the name's other parts have no `:` of their own to
/// confuse. The router refuses keys and tenants over 1 KiB, so names are bounded
/// too.
pub(super) fn escape_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key.as_bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'%' | b':' | b'{' | b'}') {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

/// Whom budget `b` counts a request of `tenant` and `key` under (`""` for a global budget), if the
/// budget applies to it.
pub(super) fn scope_id<'a>(b: &Budget, tenant: Option<&'a str>, key: Option<&'a str>) -> Option<&'a str> {
    match b.scope {
        Scope::Global => Some(""),
        Scope::Tenant => match (tenant, &b.tenant) {
            (Some(t), None) => Some(t),
            (Some(t), Some(only)) if t == only => Some(t),
            _ => None,
        },
        Scope::Key => key,
    }
}

/// The counter name of budget `b` for scope `id` (before the bucket). Tenants and caller keys are
/// escaped ([`escape_key`]).
pub(super) fn budget_base(b: &Budget, id: &str) -> String {
    match b.scope {
        Scope::Global => format!("budget:global:{}", b.window.tag()),
        Scope::Tenant => format!("budget:tenant:{}:{}", escape_key(id), b.window.tag()),
        Scope::Key => format!("budget:key:{}:{}", escape_key(id), b.window.tag()),
    }
}

/// The counter name of a caller rate limit of `scope` for scope `id` (before `requests` or
/// `tokens` and the bucket): every limit of one scope counts the same requests, so they share it.
/// Tenants and caller keys are escaped ([`escape_key`]).
pub(super) fn caller_base(scope: &Scope, id: &str) -> String {
    match scope {
        Scope::Global => "caller:global".to_owned(),
        Scope::Tenant => format!("caller:tenant:{}", escape_key(id)),
        Scope::Key => format!("caller:key:{}", escape_key(id)),
    }
}

/// The index of `counter` in `counters`, added if missing.
fn intern(counters: &mut Vec<Counter>, counter: &Counter) -> u32 {
    let i = counters.iter().position(|c| c == counter).unwrap_or_else(|| {
        counters.push(counter.clone());
        counters.len() - 1
    });
    i as u32
}

impl SlotKeys {
    fn new(base: &str, slot: &Slot) -> Self {
        Self {
            bucket: slot.bucket,
            current: Counter::new(format!("{base}:{}", slot.bucket), slot.ttl),
            previous: Counter::new(format!("{base}:{}", slot.bucket - 1), slot.ttl),
        }
    }

    /// The check of `slot` against `limit`, with the counter charges go to; counters are added to
    /// `counters` unless already there.
    pub(super) fn check(&self, counters: &mut Vec<Counter>, slot: &Slot, limit: f64) -> (u32, Check) {
        let current = intern(counters, &self.current);
        let mut terms: SmallVec<[(u32, f64); 2]> = smallvec![(current, 1.0)];
        if let Some(w) = slot.previous {
            terms.insert(0, (intern(counters, &self.previous), w));
        }
        (current, Check { terms, limit, soft: false })
    }
}

impl Limiter {
    /// `f` of the counters of budget `b` for scope `id` in `slot`, from the key cache.
    pub(super) fn budget_keys<R>(&self, b: usize, id: &str, slot: &Slot, f: impl FnOnce(&SlotKeys) -> R) -> R {
        self.budget_keys_in(&mut lock(&self.keys), b, id, slot, f)
    }

    /// [`budget_keys`](Self::budget_keys) with the key cache already locked.
    pub(super) fn budget_keys_in<R>(
        &self,
        keys: &mut KeyCache,
        b: usize,
        id: &str,
        slot: &Slot,
        f: impl FnOnce(&SlotKeys) -> R,
    ) -> R {
        let Some(cache) = keys.budgets.get_mut(b) else {
            return f(&SlotKeys::new(&budget_base(&self.config.budgets[b], id), slot));
        };
        if let Some(keys) = cache.get(id).filter(|k| k.bucket == slot.bucket) {
            return f(keys);
        }
        let keys = SlotKeys::new(&budget_base(&self.config.budgets[b], id), slot);
        if cache.len() >= KEY_CACHE {
            cache.clear();
        }
        let answer = f(&keys);
        cache.insert(Box::from(id), keys);
        answer
    }

    /// The requests and tokens counters of a caller rate limit of `scope` for scope `id` in the
    /// minute `slot`: current and previous of each.
    pub(super) fn caller_keys_in(keys: &mut KeyCache, scope: &Scope, id: &str, slot: &Slot) -> [Counter; 4] {
        let cache = &mut keys.callers[match scope {
            Scope::Global => 0,
            Scope::Tenant => 1,
            Scope::Key => 2,
        }];
        if let Some((_, keys)) = cache.get(id).filter(|(b, _)| *b == slot.bucket) {
            return keys.clone();
        }
        let base = caller_base(scope, id);
        let req = SlotKeys::new(&format!("{base}:requests"), slot);
        let tok = SlotKeys::new(&format!("{base}:tokens"), slot);
        let counters = [req.current, req.previous, tok.current, tok.previous];
        if cache.len() >= KEY_CACHE {
            cache.clear();
        }
        cache.insert(Box::from(id), (slot.bucket, counters.clone()));
        counters
    }

    /// The requests and tokens counters of `model` for the minute `slot`: current and previous of
    /// each.
    pub(super) fn rate_keys(&self, model: usize, id: &ModelId, slot: &Slot) -> [Counter; 4] {
        Self::rate_keys_in(&mut lock(&self.keys), model, id, slot)
    }

    /// [`rate_keys`](Self::rate_keys) with the key cache already locked.
    pub(super) fn rate_keys_in(keys: &mut KeyCache, model: usize, id: &ModelId, slot: &Slot) -> [Counter; 4] {
        let cache = &mut keys.rates;
        if let Some((_, keys)) = cache.get(model).and_then(Option::as_ref).filter(|(b, _)| *b == slot.bucket) {
            return keys.clone();
        }
        let req = SlotKeys::new(&format!("rate:{id}:requests"), slot);
        let tok = SlotKeys::new(&format!("rate:{id}:tokens"), slot);
        let keys = [req.current, req.previous, tok.current, tok.previous];
        if let Some(entry) = cache.get_mut(model) {
            *entry = Some((slot.bucket, keys.clone()));
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Window;

    #[test]
    fn escaped_keys_are_distinct_and_colon_free() {
        assert_eq!(escape_key("user-42"), "user-42");
        assert_eq!(escape_key("a:b%c{d} é\n"), "a%3Ab%25c%7Bd%7D%20%C3%A9%0A");
        let b = Budget::new(Scope::Key, 1.0, Window::Day);
        let keys = ["a", "a:day", "a%3Aday", "A", "a ", "a\u{0}"];
        let names: std::collections::HashSet<String> = keys.iter().map(|k| budget_base(&b, k)).collect();
        assert_eq!(names.len(), keys.len());
        assert!(names.iter().all(|n| n.matches(':').count() == 3), "{names:?}");
        let callers: std::collections::HashSet<String> = keys.iter().map(|k| caller_base(&Scope::Key, k)).collect();
        assert_eq!(callers.len(), keys.len());
        assert!(callers.iter().all(|n| n.matches(':').count() == 2), "{callers:?}");
        assert_ne!(caller_base(&Scope::Tenant, "global"), caller_base(&Scope::Global, ""));
    }
}
