//! [`MemoryStore`]: the state of one process.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use smallvec::SmallVec;

use super::{Admit, Admitted, Counter, FastHash, Lease, ONCE, SLACK, Settlement, StateStore, fits, order, validate};
use crate::error::Result;

/// How long the ids of leases that expired unsettled are remembered.
const SWEPT_FOR: Duration = Duration::from_secs(86_400);

/// How often expired leases and flags are swept, and the shortest time between two sweeps of the
/// counters and sticky entries.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The longest time expired counters and sticky entries wait for a sweep while there are writes:
/// otherwise a sweep waits until the writes since the last one number an eighth of the entries.
const SWEEP_AT_LEAST: Duration = Duration::from_secs(60);

/// Maps below this capacity are not shrunk.
const MIN_SHRINK_CAPACITY: usize = 1024;

/// Counters, leases and sticky entries in this process: the default store, exact and without I/O.
/// Replicas that must share budgets and limits use a shared store instead (`RedisStore`, feature
/// `redis`).
///
/// Each call takes one mutex for the length of the call, never across an `await`.
///
/// # Memory
///
/// Every distinct tenant, caller key and minute bucket has counters, and every conversation with
/// sticky sessions an entry; they expire with their windows. Expired entries are purged on the
/// write path (admissions and settlements), amortised: a sweep of the counters and sticky entries
/// runs at most once a second and only once the writes since the last one number an eighth of the
/// entries (or a minute has passed), so each write pays for a constant number of entries. A map
/// whose live entries fall below a quarter of its capacity is shrunk to twice their number.
///
/// The store holds at most [`DEFAULT_MAX_ENTRIES`](Self::DEFAULT_MAX_ENTRIES) counters and as many sticky entries
/// ([`with_max_entries`](Self::with_max_entries) sets another cap). When an admission needs a new
/// counter and the store is full of live ones, expired ones are purged first (at most once a
/// second); if it is still full, the admission fails with [`ErrorKind::Store`](crate::ErrorKind::Store)
/// rather than forget another caller's spending: evicting a live counter would reset a budget, and
/// anyone able to send many keys could reset everyone's. A full store takes no new sticky entries
/// (a conversation then is not pinned: sticky sessions are a preference, not a limit), and
/// settlements for counters that expired and cannot be re-created are dropped.
///
/// The router recognises a `MemoryStore` however it is handed to the builder (by value, in an
/// `Arc`, or as an `Arc<dyn StateStore>`) and admits, reserves and settles in it directly rather than
/// through the trait: the fast path of in-process budgets and rate limits. A store of your own that
/// wraps one is used through the [`StateStore`] methods, as any other store.
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Counter and sticky names embed tenants and caller keys, which callers choose: these maps hash
    /// with a per-process random key (`RandomState`), so crafted names cannot pile into one bucket.
    counters: HashMap<Counter, Entry>,
    leases: HashMap<u64, (Lease, Instant), FastHash>,
    /// Leases that expired unsettled, by when, kept for a day: their late settlement adds the whole
    /// actual amount, once.
    swept: HashMap<u64, (Instant, Charges), FastHash>,
    /// Batches of unreserved charges applied ([`Settlement::unreserved_once`]), by when, kept for a
    /// day: a batch sent again is not applied again.
    once: HashMap<u64, Instant, FastHash>,
    sticky: HashMap<Arc<str>, (Arc<str>, Instant)>,
    /// Flags, until when they are set.
    flags: HashMap<Arc<str>, Instant, FastHash>,
    /// The cap on counters, and on sticky entries.
    max_entries: usize,
    next_lease: u64,
    next_sweep: Option<Instant>,
    /// When counters and sticky entries were last swept, and the writes since.
    last_full_sweep: Option<Instant>,
    writes: usize,
    /// The latest clock reading of an admission.
    recent: Option<Instant>,
}

/// A lease's reserved charges.
type Charges = SmallVec<[(Counter, f64); 4]>;

/// One choice for [`MemoryStore::reserve`].
#[derive(Default)]
pub(crate) struct One {
    /// What the choice adds to which counters, each counter once.
    pub(crate) charges: SmallVec<[(Counter, f64); 4]>,
    /// Every bound must hold once the charges are added.
    pub(crate) bounds: SmallVec<[Bound; 4]>,
    /// Passed over while this flag is set.
    pub(crate) flag: Option<Arc<str>>,
    /// How many of the first bounds to read back once the charges are added.
    pub(crate) report: usize,
}

/// The first [`One::report`] bounds' counters once a reservation is made: `(previous, current)`,
/// the previous bucket's value unweighted (0 for a calendar window).
pub(crate) type Readings = SmallVec<[(f64, f64); 4]>;

/// `weight·previous + current ≤ limit`, charges included: a calendar window's bucket (no previous)
/// or a sliding window's two.
pub(crate) struct Bound {
    /// The index in [`One::charges`] of the current bucket's counter.
    pub(crate) current: usize,
    /// The previous bucket's counter and its weight.
    pub(crate) previous: Option<(Counter, f64)>,
    pub(crate) limit: f64,
}

struct Entry {
    value: f64,
    /// `None`: lives for ever.
    expires: Option<Instant>,
}

impl MemoryStore {
    /// The default cap on counters, and separately on sticky entries: 131,072.
    pub const DEFAULT_MAX_ENTRIES: usize = 1 << 17;

    /// An empty store, holding at most [`DEFAULT_MAX_ENTRIES`](Self::DEFAULT_MAX_ENTRIES) counters and as many sticky entries.
    pub fn new() -> Self {
        Self::with_max_entries(Self::DEFAULT_MAX_ENTRIES)
    }

    /// An empty store holding at most `max` counters and `max` sticky entries (at least 1); see
    /// [Memory](Self#memory) for what happens when it is full.
    pub fn with_max_entries(max: usize) -> Self {
        Self { state: Mutex::new(State { max_entries: max.max(1), ..State::default() }) }
    }

    /// The error of an admission that needs a counter the full store cannot hold.
    fn full(max: usize) -> crate::error::Error {
        crate::error::Error::new(
            crate::error::ErrorKind::Store,
            format!("memory store is full: {max} live counters, its cap (`MemoryStore::with_max_entries`)"),
        )
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a counter half-written (each update is one
        // assignment), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits synchronously; [`StateStore::admit`] calls this, and the router directly.
    pub(crate) fn admit_now(&self, admit: &Admit) -> Result<Admitted> {
        self.admit_at(admit, Instant::now())
    }

    /// [`admit_now`](Self::admit_now) at `now`.
    fn admit_at(&self, admit: &Admit, now: Instant) -> Result<Admitted> {
        validate(admit)?;
        let mut state = self.lock();
        state.recent = state.recent.max(Some(now));
        state.writes += 1;
        state.sweep(now);
        // Before anything changes: a refused admission leaves the store as it was, and the router
        // may send its settlements again. Every listed counter must fit, whichever choice is taken.
        if !state.room_for(admit.counters.iter(), now) {
            return Err(Self::full(state.max_entries));
        }
        for s in &admit.settle {
            state.apply(s, now);
        }
        for f in &admit.flags {
            let until = now + f.ttl;
            let entry = state.flags.entry(f.name.clone()).or_insert(until);
            *entry = (*entry).max(until);
        }
        let mut values: Vec<f64> = admit.counters.iter().map(|c| state.value(c, now)).collect();
        state.touch(&admit.counters, now);
        let sticky = admit.sticky.as_ref().and_then(|s| state.sticky.get(&s.key)).filter(|(_, exp)| *exp > now);
        let sticky_label = sticky.map(|(label, _)| label.clone());
        let mut blocked = Vec::new();
        let flags = &state.flags;
        // Strictly first (soft checks too); then, only if nothing passes, leaving soft checks out.
        let mut usable = |i: usize, c: &super::Choice, strict: bool| {
            let flagged =
                c.flag.as_ref().filter(|_| !flags.is_empty()).and_then(|f| flags.get(f)).filter(|t| **t > now);
            if let Some(until) = flagged {
                if strict {
                    blocked.push((i, until.saturating_duration_since(now)));
                }
                return false;
            }
            fits(c, &values, strict)
        };
        let soft = admit.choices.iter().any(|c| c.checks.iter().any(|k| k.soft));
        let order = order(&admit.choices, sticky_label.as_deref());
        let taken =
            order.iter().copied().find(|&i| usable(i, &admit.choices[i], true)).or_else(|| {
                soft.then(|| order.iter().copied().find(|&i| usable(i, &admit.choices[i], false))).flatten()
            });
        let Some(i) = taken else {
            return Ok(Admitted { choice: None, lease: None, values, sticky_hit: false, blocked });
        };
        let choice = &admit.choices[i];
        let mut charges = smallvec::SmallVec::new();
        for &(c, amount) in &choice.charges {
            let counter = &admit.counters[c as usize];
            state.add(counter, amount, now);
            values[c as usize] += amount;
            charges.push((counter.clone(), amount));
        }
        let id = admit.lease_id.unwrap_or_else(|| {
            state.next_lease += 1;
            state.next_lease
        });
        let lease = Lease { id, charges };
        state.leases.insert(lease.id, (lease.clone(), now + admit.lease_ttl));
        let sticky_hit = sticky_label.as_deref() == Some(&*choice.label);
        if let Some(s) = &admit.sticky {
            // A full store pins no new conversation (existing entries are updated).
            if state.sticky.len() < state.max_entries || state.sticky.contains_key(&s.key) {
                state.sticky.insert(s.key.clone(), (choice.label.clone(), now + s.ttl));
            }
        }
        Ok(Admitted { choice: Some(i), lease: Some(lease), values, sticky_hit, blocked })
    }

    /// Takes a single choice if every one of its bounds holds with its charges added, and reserves
    /// them under a lease: what [`admit_now`](Self::admit_now) does for one choice with strict
    /// checks and no sticky entry, without an [`Admit`] to build or values to return. `None`: the
    /// choice does not fit, or its `flag` is set (the router then makes a full admission, which
    /// says why).
    ///
    /// `now` is the caller's clock reading and `lease_until` when the lease expires.
    pub(crate) fn reserve(&self, one: One, now: Instant, lease_until: Instant) -> Option<(u64, Readings)> {
        let mut state = self.lock();
        state.recent = state.recent.max(Some(now));
        state.writes += 1;
        state.sweep(now);
        if let Some(flag) = one.flag.as_deref().filter(|_| !state.flags.is_empty())
            && state.flags.get(flag).is_some_and(|until| *until > now)
        {
            return None;
        }
        let charged = |counter: &Counter| one.charges.iter().find(|(c, _)| c == counter).map_or(0.0, |(_, a)| *a);
        let fits = one.bounds.iter().all(|b| {
            let (current, amount) = &one.charges[b.current];
            let mut sum = state.value(current, now) + amount;
            if let Some((previous, weight)) = &b.previous {
                sum += weight * (state.value(previous, now) + charged(previous));
            }
            sum <= b.limit * (1.0 + SLACK) + SLACK
        });
        // A full store: the full admission that follows says so.
        if !fits || !state.room_for(one.charges.iter().map(|(c, _)| c), now) {
            return None;
        }
        for (counter, amount) in &one.charges {
            state.add(counter, *amount, now);
        }
        let readings = one.bounds[..one.report.min(one.bounds.len())]
            .iter()
            .map(|b| {
                let previous = b.previous.as_ref().map_or(0.0, |(p, _)| state.value(p, now));
                (previous, state.value(&one.charges[b.current].0, now))
            })
            .collect();
        state.next_lease += 1;
        let id = state.next_lease;
        // The store keeps the charges; the caller settles by id.
        state.leases.insert(id, (Lease { id, charges: one.charges }, lease_until));
        Some((id, readings))
    }

    /// Settles a lease that [`reserve`](Self::reserve) made, by its id, with what was used per
    /// charge (in the order of the reserved choice's charges), at the time of the store's latest
    /// admission as [`settle_recent`](Self::settle_recent) does.
    pub(crate) fn settle_reserved(&self, id: u64, actual: &[f64]) {
        let mut state = self.lock();
        let now = state.recent.unwrap_or_else(Instant::now);
        let state = &mut *state;
        let (charges, live) = match state.leases.remove(&id) {
            Some((lease, _)) => (lease.charges, true),
            None => match state.swept.remove(&id) {
                Some((_, charges)) => (charges, false),
                None => return,
            },
        };
        state.reconcile(&charges, actual, live, now);
    }

    /// Applies a settlement at the time of the store's latest admission rather than reading the
    /// clock: a counter's expiry is checked to within the time since then (a settlement that lands
    /// on a counter expired since then adds to the expired value, which reads as 0 either way).
    pub(crate) fn settle_recent(&self, settlement: &Settlement) {
        let mut state = self.lock();
        let now = state.recent.unwrap_or_else(Instant::now);
        state.apply(settlement, now);
    }

    /// Applies settlements synchronously; [`StateStore::settle`] calls this.
    pub(crate) fn settle_sync(&self, settlements: &[Settlement]) {
        self.settle_at(settlements, Instant::now());
    }

    /// [`settle_sync`](Self::settle_sync) at `now`.
    fn settle_at(&self, settlements: &[Settlement], now: Instant) {
        let mut state = self.lock();
        state.writes += 1;
        state.sweep(now);
        for s in settlements {
            state.apply(s, now);
        }
    }

    /// Reads counters synchronously.
    pub(crate) fn read_now(&self, counters: &[Counter]) -> Vec<f64> {
        let now = Instant::now();
        let state = self.lock();
        counters.iter().map(|c| state.value(c, now)).collect()
    }

    /// Raises `counter` to `value` when it is lower (local counters start from the shared store's
    /// last values; a counter that already counts more, this replica's spending during an earlier
    /// outage, keeps its count).
    pub(crate) fn seed(&self, counter: &Counter, value: f64) {
        let now = Instant::now();
        let mut state = self.lock();
        let current = state.value(counter, now);
        if value.is_finite() && value > current {
            state.add(counter, value - current, now);
        }
    }

    /// The number of leases not yet settled or expired.
    pub fn open_leases(&self) -> usize {
        let now = Instant::now();
        self.lock().leases.values().filter(|(_, exp)| *exp > now).count()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryStore")
            .field("counters", &state.counters.len())
            .field("leases", &state.leases.len())
            .field("sticky", &state.sticky.len())
            .finish()
    }
}

impl State {
    fn value(&self, counter: &Counter, now: Instant) -> f64 {
        match self.counters.get(counter) {
            Some(e) if e.expires.is_none_or(|t| t > now) => e.value,
            _ => 0.0,
        }
    }

    /// Starts the time to live of the idle-expiring `counters` again: an admission lists them.
    fn touch(&mut self, counters: &[Counter], now: Instant) {
        for c in counters.iter().filter(|c| c.expires_idle() && !c.ttl().is_zero()) {
            if let Some(e) = self.counters.get_mut(c).filter(|e| e.expires.is_some_and(|t| t > now)) {
                e.expires = Some(now + c.ttl());
            }
        }
    }

    fn add(&mut self, counter: &Counter, amount: f64, now: Instant) {
        let expires = || (!counter.ttl().is_zero()).then(|| now + counter.ttl());
        let full = self.counters.len() >= self.max_entries;
        match self.counters.get_mut(counter) {
            Some(entry) if entry.expires.is_some_and(|t| t <= now) => {
                *entry = Entry { value: amount, expires: expires() };
            }
            Some(entry) => {
                entry.value += amount;
                if counter.expires_idle() {
                    entry.expires = expires();
                }
            }
            // A full store drops a settlement for a counter that expired and was purged; admissions
            // made room first ([`room_for`](Self::room_for)).
            None if full => {}
            None => {
                self.counters.insert(counter.clone(), Entry { value: amount, expires: expires() });
            }
        }
    }

    /// Adds `actual − reserved` while the lease is held, `actual` once it was swept (its
    /// reservation was given back then).
    fn apply(&mut self, s: &Settlement, now: Instant) {
        // A lease still held (even one past its expiry that was not swept yet) still counts its
        // reservation.
        let (live, apply) = match s.lease.id {
            0 => (false, true),
            // A batch applied at most once: remembered while there is room (past the cap, applied
            // without being remembered).
            id if id & ONCE != 0 => {
                let seen = self.once.contains_key(&id);
                if !seen && self.once.len() < self.max_entries {
                    self.once.insert(id, now);
                }
                (false, !seen)
            }
            id => match self.leases.remove(&id) {
                // Released by id alone (no charges to settle, as the Redis script reads it): its
                // reservation, as held, given back to the counters that still exist (as when a
                // lease expires).
                Some((held, _)) if s.lease.charges.is_empty() || s.actual.is_empty() => {
                    self.give_back(&held.charges);
                    return;
                }
                Some(_) => (true, true),
                // Swept: the reservation was given back. Neither: settled before, nothing to do.
                None => (false, self.swept.remove(&id).is_some()),
            },
        };
        if apply {
            self.reconcile(&s.lease.charges, &s.actual, live, now);
        }
    }

    /// Adds to each charged counter `actual − reserved` while its lease is `live`, else `actual`
    /// (the reservation was given back when the lease was swept, or never made).
    fn reconcile(&mut self, charges: &[(Counter, f64)], actual: &[f64], live: bool, now: Instant) {
        for ((counter, reserved), actual) in charges.iter().zip(actual) {
            let delta = if live { actual - reserved } else { *actual };
            if delta != 0.0 && delta.is_finite() {
                self.add(counter, delta, now);
            }
        }
    }

    /// Whether the `charged` counters fit: those not in the map would be new, and the map holds at
    /// most `max_entries`. When they do not, expired counters are purged first (at most once per
    /// [`SWEEP_EVERY`]).
    fn room_for<'a>(&mut self, charged: impl Iterator<Item = &'a Counter> + Clone, now: Instant) -> bool {
        let missing =
            |counters: &HashMap<Counter, Entry>| charged.clone().filter(|c| !counters.contains_key(*c)).count();
        let needed = missing(&self.counters);
        if self.counters.len() + needed <= self.max_entries {
            return true;
        }
        if self.last_full_sweep.is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY) {
            return false;
        }
        self.sweep_entries(now);
        self.counters.len() + missing(&self.counters) <= self.max_entries
    }

    /// Purges what expired: leases (giving their reservations back) and flags at most once per
    /// [`SWEEP_EVERY`]; counters and sticky entries, amortised, once the writes since their last
    /// sweep number an eighth of them (or [`SWEEP_AT_LEAST`] passed).
    fn sweep(&mut self, now: Instant) {
        if self.next_sweep.is_none_or(|t| t <= now) {
            self.sweep_leases(now);
        }
        let since = self.last_full_sweep.map(|t| now.saturating_duration_since(t));
        let entries = self.counters.len() + self.sticky.len();
        let due = since.is_none_or(|d| d >= SWEEP_AT_LEAST)
            || (since.is_some_and(|d| d >= SWEEP_EVERY) && self.writes >= entries / 8);
        if due {
            self.sweep_entries(now);
        }
    }

    /// Takes a lease's reservation off the counters that still exist (one that expired is reset
    /// at its next change, whatever it reads; one that was purged is not made again).
    fn give_back(&mut self, charges: &[(Counter, f64)]) {
        for (counter, reserved) in charges {
            if let Some(e) = self.counters.get_mut(counter) {
                e.value -= reserved;
            }
        }
    }

    /// Purges expired leases, giving their reservations back, and flags.
    fn sweep_leases(&mut self, now: Instant) {
        self.next_sweep = Some(now + SWEEP_EVERY);
        let expired: Vec<u64> = self.leases.iter().filter(|(_, (_, exp))| *exp <= now).map(|(id, _)| *id).collect();
        self.swept.retain(|_, (at, _)| now.saturating_duration_since(*at) < SWEPT_FOR);
        self.once.retain(|_, at| now.saturating_duration_since(*at) < SWEPT_FOR);
        for id in expired {
            if let Some((lease, _)) = self.leases.remove(&id) {
                self.give_back(&lease.charges);
                // Kept for a late settlement by id alone ([`MemoryStore::settle_reserved`]), while
                // there is room: a late settlement of a lease forgotten past the cap is dropped.
                if self.swept.len() < self.max_entries {
                    self.swept.insert(id, (now, lease.charges));
                }
            }
        }
        self.flags.retain(|_, until| *until > now);
        shrink(&mut self.leases);
        shrink(&mut self.swept);
        shrink(&mut self.once);
    }

    /// Purges expired counters and sticky entries, and shrinks their maps.
    fn sweep_entries(&mut self, now: Instant) {
        self.last_full_sweep = Some(now);
        self.writes = 0;
        self.counters.retain(|_, e| e.expires.is_none_or(|t| t > now));
        self.sticky.retain(|_, (_, exp)| *exp > now);
        shrink(&mut self.counters);
        shrink(&mut self.sticky);
    }
}

/// Shrinks `map` to twice its length when that is below a quarter of its capacity: after a peak,
/// memory follows the live entries back down.
fn shrink<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > MIN_SHRINK_CAPACITY && map.len() < map.capacity() / 4 {
        map.shrink_to((map.len() * 2).max(MIN_SHRINK_CAPACITY));
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    fn name(&self) -> &str {
        "memory"
    }

    async fn admit(&self, admit: &Admit) -> Result<Admitted> {
        self.admit_now(admit)
    }

    async fn settle(&self, settlements: &[Settlement]) -> Result<()> {
        self.settle_sync(settlements);
        Ok(())
    }

    async fn read(&self, counters: &[Counter]) -> Result<Vec<f64>> {
        Ok(self.read_now(counters))
    }
}

#[cfg(test)]
mod tests {
    use smallvec::smallvec;

    use super::*;
    use crate::state::{Check, Choice, Flag, Sticky};

    fn admit(limit: f64, costs: &[f64]) -> Admit {
        Admit {
            counters: vec![Counter::new("budget:global:day:1", Duration::from_secs(3600))],
            choices: costs
                .iter()
                .enumerate()
                .map(|(i, &c)| Choice {
                    label: Arc::from(format!("m{i}")),
                    charges: smallvec![(0, c)],
                    checks: smallvec![Check { terms: smallvec![(0, 1.0)], limit, soft: false }],
                    flag: None,
                })
                .collect(),
            lease_ttl: Duration::from_secs(60),
            sticky: None,
            settle: Vec::new(),
            flags: Vec::new(),
            lease_id: None,
        }
    }

    #[test]
    fn takes_the_first_choice_that_fits_and_downgrades_near_the_limit() {
        let store = MemoryStore::new();
        let a = admit(1.0, &[0.6, 0.1]);
        let first = store.admit_now(&a).unwrap();
        assert_eq!(first.choice, Some(0));
        assert_eq!(first.values, vec![0.6]);
        let second = store.admit_now(&a).unwrap();
        assert_eq!(second.choice, Some(1), "0.6 more would exceed 1.0; the cheaper choice fits");
        assert!((second.values[0] - 0.7).abs() < 1e-12);
        let full = store.admit_now(&admit(0.75, &[0.6, 0.1])).unwrap();
        assert_eq!(full.choice, None);
        assert!(full.lease.is_none());
    }

    #[test]
    fn settlement_reconciles_and_release_gives_everything_back() {
        let store = MemoryStore::new();
        let a = admit(1.0, &[0.5]);
        let lease = store.admit_now(&a).unwrap().lease.unwrap();
        let settled = Settlement { lease, actual: smallvec![0.2] };
        store.settle_sync(std::slice::from_ref(&settled));
        assert!((store.read_now(&a.counters)[0] - 0.2).abs() < 1e-12);
        // A settlement sent again (its first reply was lost) changes nothing.
        store.settle_sync(&[settled]);
        assert!((store.read_now(&a.counters)[0] - 0.2).abs() < 1e-12);
        let lease = store.admit_now(&a).unwrap().lease.unwrap();
        assert!((store.read_now(&a.counters)[0] - 0.7).abs() < 1e-12);
        store.settle_sync(&[Settlement::release(lease.clone())]);
        assert!((store.read_now(&a.counters)[0] - 0.2).abs() < 1e-12);
        assert_eq!(store.open_leases(), 0);
    }

    #[test]
    fn an_expired_lease_gives_its_reservation_back_and_a_late_settlement_adds_the_actual() {
        let store = MemoryStore::new();
        let mut a = admit(1.0, &[0.5]);
        a.lease_ttl = Duration::from_millis(1);
        let lease = store.admit_now(&a).unwrap().lease.unwrap();
        std::thread::sleep(Duration::from_millis(5));
        store.lock().next_sweep = None;
        // The next admission sweeps the expired lease before it checks.
        let again = store.admit_now(&admit(0.5, &[0.5])).unwrap();
        assert_eq!(again.choice, Some(0), "the expired reservation no longer counts");
        store.settle_sync(&[Settlement { lease, actual: smallvec![0.25] }]);
        assert!((store.read_now(&a.counters)[0] - 0.75).abs() < 1e-12);
    }

    #[test]
    fn a_flagged_choice_is_passed_over_until_its_flag_expires() {
        let store = MemoryStore::new();
        let mut a = admit(10.0, &[0.1, 0.1]);
        a.choices[0].flag = Some(Arc::from("circuit:m0"));
        a.flags = vec![Flag { name: Arc::from("circuit:m0"), ttl: Duration::from_millis(30) }];
        let first = store.admit_now(&a).unwrap();
        assert_eq!(first.choice, Some(1));
        assert_eq!(first.blocked.len(), 1);
        assert_eq!(first.blocked[0].0, 0);
        assert!(first.blocked[0].1 <= Duration::from_millis(30));
        // A shorter flag does not shorten it; once it expires the choice is taken again.
        a.flags = vec![Flag { name: Arc::from("circuit:m0"), ttl: Duration::ZERO }];
        assert_eq!(store.admit_now(&a).unwrap().choice, Some(1));
        std::thread::sleep(Duration::from_millis(40));
        a.flags.clear();
        let later = store.admit_now(&a).unwrap();
        assert_eq!((later.choice, later.blocked.len()), (Some(0), 0));
    }

    #[test]
    fn a_soft_check_holds_a_choice_back_only_while_another_passes_everything() {
        let store = MemoryStore::new();
        let mut a = admit(10.0, &[1.0, 1.0]);
        // Choice 0 is soft-limited at 2: after two admissions choice 1 is preferred.
        a.choices[0].checks.push(Check { terms: smallvec![(0, 1.0)], limit: 2.0, soft: true });
        assert_eq!(store.admit_now(&a).unwrap().choice, Some(0));
        assert_eq!(store.admit_now(&a).unwrap().choice, Some(0));
        assert_eq!(store.admit_now(&a).unwrap().choice, Some(1));
        // When choice 1 cannot be taken either, choice 0 still can (its hard limit is 10).
        a.choices[1].checks[0].limit = 0.0;
        assert_eq!(store.admit_now(&a).unwrap().choice, Some(0));
    }

    #[test]
    fn sticky_choice_goes_first_while_it_fits() {
        let store = MemoryStore::new();
        let mut a = admit(1.0, &[0.1, 0.1]);
        a.sticky = Some(Sticky { key: Arc::from("sticky:conv"), ttl: Duration::from_secs(60) });
        // The first admission takes choice 0 and remembers it.
        let first = store.admit_now(&a).unwrap();
        assert_eq!((first.choice, first.sticky_hit), (Some(0), false));
        // Reversed preference: the sticky entry still wins.
        a.choices.reverse();
        let second = store.admit_now(&a).unwrap();
        assert_eq!(a.choices[second.choice.unwrap()].label.as_ref(), "m0");
        assert!(second.sticky_hit);
    }

    #[test]
    fn sliding_window_weights_the_previous_bucket() {
        let store = MemoryStore::new();
        let counters = vec![Counter::new("rpm:m:0", Duration::ZERO), Counter::new("rpm:m:1", Duration::ZERO)];
        let lease = store
            .admit_now(&Admit {
                counters: counters.clone(),
                choices: vec![Choice {
                    label: Arc::from("m"),
                    charges: smallvec![(0, 10.0)],
                    checks: smallvec![],
                    flag: None,
                }],
                ..Admit::default()
            })
            .unwrap();
        assert!(lease.lease.is_some());
        // Half of the previous bucket still counts: 5 + 1 + charge 1 = 7 > 6.5.
        let check = Check { terms: smallvec![(0, 0.5), (1, 1.0)], limit: 6.5, soft: false };
        let choice =
            Choice { label: Arc::from("m"), charges: smallvec![(1, 1.0)], checks: smallvec![check], flag: None };
        let a = Admit { counters, choices: vec![choice], ..Admit::default() };
        assert_eq!(store.admit_now(&a).unwrap().choice, Some(0), "5 + 1 ≤ 6.5");
        assert_eq!(store.admit_now(&a).unwrap().choice, None, "5 + 2 > 6.5");
    }

    #[test]
    fn bad_indices_are_an_error_not_a_panic() {
        let store = MemoryStore::new();
        let mut a = admit(1.0, &[0.5]);
        a.choices[0].charges[0].0 = 7;
        assert!(store.admit_now(&a).is_err());
        let mut a = admit(1.0, &[f64::NAN]);
        a.choices[0].charges[0].1 = f64::NAN;
        assert!(store.admit_now(&a).is_err());
    }

    #[test]
    fn idle_counters_live_while_admissions_list_them() {
        let ttl = Duration::from_millis(120);
        let store = MemoryStore::new();
        let (idle, fixed) = (Counter::idle("exp:a", ttl), Counter::new("exp:b", ttl));
        let add = Settlement::unreserved([(idle.clone(), 1.0), (fixed.clone(), 1.0)]);
        store.settle_sync(&[add]);
        // Listed (read) by admissions more often than `ttl`: the idle counter outlives its ttl.
        let listing = Admit { counters: vec![idle.clone(), fixed.clone()], ..Admit::default() };
        let started = Instant::now();
        while started.elapsed() < ttl * 2 {
            store.admit_now(&listing).unwrap();
            std::thread::sleep(ttl / 6);
        }
        assert_eq!(store.read_now(&[idle.clone(), fixed.clone()]), vec![1.0, 0.0]);
        // A change starts its time again too; then, left alone, it expires.
        store.settle_sync(&[Settlement::unreserved([(idle.clone(), 1.0)])]);
        assert_eq!(store.read_now(std::slice::from_ref(&idle)), vec![2.0]);
        std::thread::sleep(ttl + ttl / 2);
        assert_eq!(store.read_now(&[idle]), vec![0.0]);
    }

    #[test]
    fn a_local_counter_is_seeded_up_to_the_stores_last_value_never_down() {
        let store = MemoryStore::new();
        let counter = Counter::new("budget:global:day:1", Duration::ZERO);
        store.seed(&counter, 2.0);
        assert_eq!(store.read_now(std::slice::from_ref(&counter)), vec![2.0]);
        // A second outage, after other replicas spent more: raised to what the store said last.
        store.seed(&counter, 5.0);
        assert_eq!(store.read_now(std::slice::from_ref(&counter)), vec![5.0]);
        // An older, lower value does not lower it; nor does a value that is not a number.
        store.seed(&counter, 3.0);
        store.seed(&counter, f64::NAN);
        assert_eq!(store.read_now(&[counter]), vec![5.0]);
    }

    #[test]
    fn a_batch_of_unreserved_charges_is_applied_once() {
        let store = MemoryStore::new();
        let counter = Counter::new("budget:global:day:1", Duration::ZERO);
        let batch = Settlement::unreserved_once(7, [(counter.clone(), 1.5)]);
        store.settle_sync(&[batch.clone(), batch.clone()]);
        store.settle_sync(std::slice::from_ref(&batch));
        assert_eq!(store.read_now(std::slice::from_ref(&counter)), vec![1.5]);
        store.settle_sync(&[Settlement::unreserved_once(8, [(counter.clone(), 1.0)])]);
        assert_eq!(store.read_now(&[counter]), vec![2.5]);
        assert!(!batch.is_reserved());
    }

    #[test]
    fn a_reservation_settled_by_id_reconciles_once_even_after_its_lease_was_swept() {
        let store = MemoryStore::new();
        let counter = Counter::new("budget:global:day:1", Duration::ZERO);
        let one = |amount: f64| One {
            charges: smallvec![(counter.clone(), amount)],
            bounds: smallvec![Bound { current: 0, previous: None, limit: 10.0 }],
            flag: None,
            report: 1,
        };
        let t0 = Instant::now();
        let read = || store.read_now(std::slice::from_ref(&counter))[0];
        // Settled while held: actual − reserved.
        let (id, readings) = store.reserve(one(1.0), t0, t0 + Duration::from_secs(60)).unwrap();
        // The bound's counter read back with the charge in it (a calendar window: no previous bucket).
        assert_eq!(readings.as_slice(), [(0.0, 1.0)]);
        store.settle_reserved(id, &[0.25]);
        assert_eq!(read(), 0.25);
        store.settle_reserved(id, &[0.25]);
        assert_eq!(read(), 0.25, "settled once");
        // Swept first (its lease expired): the reservation goes back, then the actual is added once.
        let (late, _) = store.reserve(one(2.0), t0, t0 + Duration::from_millis(1)).unwrap();
        assert_eq!(read(), 2.25);
        let later = t0 + Duration::from_secs(2);
        let (other, _) = store.reserve(one(0.5), later, later + Duration::from_secs(60)).unwrap();
        assert_eq!(read(), 0.75, "the expired reservation was given back");
        store.settle_reserved(late, &[0.125]);
        store.settle_reserved(late, &[0.125]);
        assert_eq!(read(), 0.875);
        // A release gives everything back.
        store.settle_reserved(other, &[0.0]);
        assert_eq!(read(), 0.375);
        assert_eq!(store.open_leases(), 0);
    }

    /// An admission charging `cost` to the day counter of caller `key` (living `ttl`), with a
    /// sticky entry for it.
    fn keyed(key: usize, ttl: Duration) -> Admit {
        Admit {
            counters: vec![Counter::new(format!("budget:key:user-{key}:day:1"), ttl)],
            choices: vec![Choice {
                label: Arc::from("m"),
                charges: smallvec![(0, 0.01)],
                checks: smallvec![Check { terms: smallvec![(0, 1.0)], limit: 1.0, soft: false }],
                flag: None,
            }],
            lease_ttl: Duration::from_millis(10),
            sticky: Some(Sticky { key: Arc::from(format!("sticky:user-{key}")), ttl }),
            ..Admit::default()
        }
    }

    #[test]
    fn memory_falls_back_after_many_keys_expire() {
        const KEYS: usize = 50_000;
        let store = MemoryStore::new();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(2);
        for k in 0..KEYS {
            let lease = store.admit_at(&keyed(k, ttl), t0).unwrap().lease.unwrap();
            store.settle_at(&[Settlement { lease, actual: smallvec![0.01] }], t0);
        }
        let sizes = |s: &MemoryStore| {
            let st = s.lock();
            (st.counters.len(), st.counters.capacity(), st.sticky.len(), st.sticky.capacity())
        };
        let (counters, counters_cap, sticky, sticky_cap) = sizes(&store);
        assert_eq!((counters, sticky), (KEYS, KEYS));
        assert!(counters_cap >= KEYS && sticky_cap >= KEYS);
        // Every window is over. Writes from a few live callers purge the expired entries (within
        // `SWEEP_AT_LEAST`, sooner once the writes number an eighth of the entries) and shrink the
        // maps.
        let later = t0 + SWEEP_AT_LEAST + Duration::from_secs(1);
        for k in 0..10 {
            let lease = store.admit_at(&keyed(KEYS + k, ttl), later).unwrap().lease.unwrap();
            store.settle_at(&[Settlement { lease, actual: smallvec![0.01] }], later);
        }
        let (counters, counters_cap, sticky, sticky_cap) = sizes(&store);
        assert_eq!((counters, sticky), (10, 10));
        assert!(counters_cap <= 2 * MIN_SHRINK_CAPACITY, "{counters_cap}");
        assert!(sticky_cap <= 2 * MIN_SHRINK_CAPACITY, "{sticky_cap}");
        let st = store.lock();
        assert!(st.leases.is_empty() && st.swept.capacity() <= 2 * MIN_SHRINK_CAPACITY);
    }

    #[test]
    fn sweeps_are_amortised_over_writes() {
        let store = MemoryStore::new();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(3);
        for k in 0..8_000 {
            store.admit_at(&keyed(k, ttl), t0).unwrap();
        }
        // These writes paid for a sweep, which finds nothing expired yet.
        store.admit_at(&keyed(0, ttl), t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(store.lock().writes, 0);
        // Expired, but a handful of writes a few seconds later do not pay for a sweep of 16,000
        // entries; a few thousand more (an eighth of them, as they grow) do.
        let t1 = t0 + Duration::from_secs(5);
        for k in 0..5 {
            store.admit_at(&keyed(8_000 + k, ttl), t1 + Duration::from_secs(k as u64)).unwrap();
        }
        assert!(store.lock().counters.len() > 8_000);
        for k in 0..3_000 {
            store.admit_at(&keyed(9_000 + k, ttl), t1 + Duration::from_secs(10)).unwrap();
        }
        assert!(store.lock().counters.len() <= 3_000, "{}", store.lock().counters.len());
    }

    #[test]
    fn a_full_store_refuses_new_counters_until_old_ones_expire() {
        let store = MemoryStore::with_max_entries(100);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        for k in 0..100 {
            store.admit_at(&keyed(k, ttl), t0).unwrap();
        }
        // Full of live counters: a new key is refused, typed; known keys still admit.
        let e = store.admit_at(&keyed(100, ttl), t0).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Store);
        assert!(e.to_string().contains("memory store is full"), "{e}");
        assert!(store.admit_at(&keyed(7, ttl), t0).is_ok());
        let one = |key: usize| One {
            charges: smallvec![(keyed(key, ttl).counters[0].clone(), 0.01)],
            bounds: smallvec![Bound { current: 0, previous: None, limit: 1.0 }],
            flag: None,
            report: 0,
        };
        assert!(store.reserve(one(100), t0, t0 + ttl).is_none());
        assert!(store.reserve(one(7), t0, t0 + ttl).is_some());
        assert_eq!(store.lock().sticky.len(), 100, "no sticky entry beyond the cap");
        // Once they expired, the next new key purges them and is admitted.
        let later = t0 + ttl + Duration::from_secs(1);
        assert!(store.admit_at(&keyed(100, ttl), later).is_ok());
        assert_eq!(store.lock().counters.len(), 1);
    }
}
