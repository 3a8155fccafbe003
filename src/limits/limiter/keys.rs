//! Counter names: which counters a budget or a rate limit counts under, cached per scope and
//! bucket.

use std::collections::HashMap;

use smallvec::{SmallVec, smallvec};

use super::{Limiter, lock};
use crate::catalog::ModelId;
use crate::limits::{Budget, Scope};
use crate::state::Slot;
use crate::state::{Check, Counter, FastHash};

/// Counter names, built once per scope and bucket rather than per request; behind one lock, taken
/// once per admission.
pub(super) struct KeyCache {
    /// Per budget: scope id (tenant, caller key, or "" for global) → the slot's counters.
    pub(super) budgets: Vec<HashMap<Box<str>, SlotKeys, FastHash>>,
    /// Per model: the requests and tokens counters of the current minute.
    pub(super) rates: Vec<Option<RateKeys>>,
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

/// FNV-1a of a caller key: keys are stored hashed.
pub(super) fn hash_key(key: &str) -> u64 {
    crate::hash::fnv1a(key.as_bytes())
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

/// The counter name of budget `b` for scope `id` (before the bucket). Caller keys are hashed.
fn budget_base(b: &Budget, id: &str) -> String {
    match b.scope {
        Scope::Global => format!("budget:global:{}", b.window.tag()),
        Scope::Tenant => format!("budget:tenant:{id}:{}", b.window.tag()),
        Scope::Key => format!("budget:key:{:016x}:{}", hash_key(id), b.window.tag()),
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
