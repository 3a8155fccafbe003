//! Shared state for budgets, rate limits and sticky sessions: the [`StateStore`] trait, the
//! in-memory [`MemoryStore`] and (feature `redis`) the Redis store.
//!
//! A store keeps **counters**: named floating-point values that live for a while (a window's
//! bucket). The router never reads and then writes a counter in two steps: it asks the store to
//! **admit** a request, which in one atomic operation
//!
//! 1. applies the [`Settlement`]s queued since the last call (actual costs of finished requests,
//!    released reservations),
//! 2. walks the [`Choice`]s (candidate models, in the order the router prefers them) and takes the
//!    first whose [`Check`]s all hold once its charges are added (or, when none does, the first
//!    whose checks hold leaving out the soft ones),
//! 3. adds that choice's charges to the counters under a [`Lease`] that expires by itself, so a
//!    replica that dies mid-request does not hold its reservation for ever,
//! 4. optionally reads and writes a sticky-session entry,
//! 5. sets [`Flag`]s, marks that every replica's admissions see: a choice whose flag is set is
//!    passed over (a model whose circuit opened on one replica is avoided by all of them).
//!
//! One admission is one round trip to a remote store. See `docs/scaling.md` for running many
//! replicas on one store.
//!
//! A store of your own must keep the settlements' contract: a lease's settlement applied once
//! whatever the number of times it is sent; a [`Settlement::unreserved_once`] batch applied once
//! (by its id, for a day); a [`Settlement::release_id`] (an id with no charges) giving back the held
//! lease's whole reservation; and a lease taking [`Admit::lease_id`] as its id when one is named.

mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod window;

#[cfg(feature = "bedrock")]
pub(crate) use self::window::civil_from_days;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use smallvec::SmallVec;

use crate::error::Result;

pub use self::memory::MemoryStore;
pub(crate) use self::memory::{Bound, One};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{Documents, RedisConfig, RedisStore};
pub(crate) use self::window::Slot;
pub use self::window::Window;

/// A counter: a key (with its window's bucket in it) and how long it lives: from its creation (a
/// window's bucket, [`Counter::new`]), or from its last change ([`Counter::idle`]).
///
/// Keys are built by the router from static parts and the tenant or caller key, never from prompt
/// text. Counters are equal when their keys are; the key's hash is computed once, when the counter
/// is made, and a clone is one pointer (counters are cloned into every reservation).
#[derive(Clone)]
pub struct Counter(Arc<CounterKey>);

struct CounterKey {
    hash: u64,
    ttl: Duration,
    /// The time to live starts again at every change.
    idle: bool,
    key: Box<str>,
}

impl PartialEq for Counter {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || (self.0.hash == other.0.hash && self.0.key == other.0.key)
    }
}

impl Eq for Counter {}

impl std::hash::Hash for Counter {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

impl Counter {
    /// A counter named `key` that expires `ttl` after its creation (`Duration::ZERO`: never).
    pub fn new(key: impl Into<Box<str>>, ttl: Duration) -> Self {
        Self::make(key.into(), ttl, false)
    }

    /// A counter named `key` that expires once it has gone `ttl` without being changed or listed
    /// in an [`Admit`] (`Duration::ZERO`: never): state that lives as long as it is in use, such as
    /// an experiment's statistics, which every sync lists together.
    pub fn idle(key: impl Into<Box<str>>, ttl: Duration) -> Self {
        Self::make(key.into(), ttl, true)
    }

    fn make(key: Box<str>, ttl: Duration, idle: bool) -> Self {
        let mut h = Fnv(FNV_OFFSET);
        std::hash::Hasher::write(&mut h, key.as_bytes());
        Self(Arc::new(CounterKey { hash: h.0, ttl, idle, key }))
    }

    /// The key, without the store's namespace.
    pub fn key(&self) -> &str {
        &self.0.key
    }

    /// How long the counter lives after it is created, or after its last change when
    /// [`expires_idle`](Self::expires_idle); zero for ever.
    pub fn ttl(&self) -> Duration {
        self.0.ttl
    }

    /// Whether the time to live starts again at every change ([`Counter::idle`]).
    pub fn expires_idle(&self) -> bool {
        self.0.idle
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The caller key in a key-scoped budget's or rate limit's name is left out (it is escaped,
        // not hidden), so that `Debug` of a lease or an admission never shows one.
        let key = self.key();
        for prefix in ["budget:key:", "caller:key:"] {
            if let Some(rest) = key.strip_prefix(prefix) {
                let tail = rest.find(':').map_or("", |i| &rest[i..]);
                return write!(f, "{prefix}…{tail}");
            }
        }
        f.write_str(key)
    }
}

/// A limit on a weighted sum of counters: `Σ weight·(value + charge) ≤ limit`, where `charge` is
/// what the choice being checked would add to that counter.
///
/// A calendar window has one term with weight 1; a sliding window two (the previous bucket,
/// weighted by the share of it still inside the window, and the current one).
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// `(index into Admit::counters, weight)`.
    pub terms: SmallVec<[(u32, f64); 2]>,
    /// The largest allowed sum (`-inf`: the choice can never be taken).
    pub limit: f64,
    /// A soft check holds a choice back only while another choice passes all of its checks: the
    /// store first looks for a choice that passes every check, then for one that passes every check
    /// that is not soft (a model near its rate limit is used only when nothing else can serve).
    pub soft: bool,
}

/// One option of an admission: a candidate model with what it would add to which counters and
/// the limits it must stay within.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// A label the store returns and keeps for sticky sessions (the model id).
    pub label: Arc<str>,
    /// `(index into Admit::counters, amount)`, added when this choice is taken.
    pub charges: SmallVec<[(u32, f64); 4]>,
    /// Every check must hold, charges included, for the choice to be taken.
    pub checks: SmallVec<[Check; 4]>,
    /// While the [`Flag`] of this name is set, the choice is passed over (its model's circuit is
    /// open on some replica).
    pub flag: Option<Arc<str>>,
}

/// A named mark that lives for a while: set by one replica, seen by all (a model's circuit opened).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flag {
    /// Its name.
    pub name: Arc<str>,
    /// How long it stays set; setting a flag never shortens a longer remaining life.
    pub ttl: Duration,
}

/// Keeps a conversation on the model that served it.
#[derive(Clone, PartialEq)]
pub struct Sticky {
    /// The entry's key (built from the request's [`RouteHints::key`](crate::RouteHints::key)).
    pub key: Arc<str>,
    /// How long the entry lives after its last use.
    pub ttl: Duration,
}

impl fmt::Debug for Sticky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key carries a caller's identifier: show only that there is one.
        f.debug_struct("Sticky").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

/// An atomic admission; see the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Admit {
    /// Every counter the choices refer to, without duplicates.
    pub counters: Vec<Counter>,
    /// The options, most preferred first.
    pub choices: Vec<Choice>,
    /// How long the reservation holds if it is never settled.
    pub lease_ttl: Duration,
    /// With `Some`, a choice whose label the sticky entry names is tried before the others (if it
    /// is among them), and the entry is set to the label taken.
    pub sticky: Option<Sticky>,
    /// Settlements applied before anything else.
    pub settle: Vec<Settlement>,
    /// Flags set before the choices are examined.
    pub flags: Vec<Flag>,
    /// The id the lease gets when a choice is taken; `None`: the store numbers it. A caller that
    /// names it can give the reservation back ([`Settlement::release_id`]) when the admission's
    /// reply is lost, although it never learned which choice was taken. Below 2^53 (exact in the
    /// Redis script), at least 2^52 (clear of the ids a store numbers), and unique: the limiter
    /// draws it at random.
    pub lease_id: Option<u64>,
}

/// What an admission did.
#[derive(Clone, Debug, PartialEq)]
pub struct Admitted {
    /// The index of the choice taken, if any fit.
    pub choice: Option<usize>,
    /// The reservation, when a choice was taken.
    pub lease: Option<Lease>,
    /// Every counter's value after the admission (in `Admit::counters` order), the weights of
    /// checks not applied.
    pub values: Vec<f64>,
    /// Whether the choice taken was the sticky entry's.
    pub sticky_hit: bool,
    /// Choices examined and passed over because their flag is set, with the flag's remaining life.
    pub blocked: Vec<(usize, Duration)>,
}

/// The bit of a [`Lease::id`] that marks a batch of unreserved charges applied at most once
/// ([`Settlement::unreserved_once`]); the ids of leases a store hands out never have it.
pub const ONCE: u64 = 1 << 63;

/// A reservation: the charges an admission added, to be reconciled with what was actually used.
#[derive(Clone, PartialEq)]
pub struct Lease {
    /// Unique per store, from 1; 0 for charges that were never reserved (see
    /// [`Settlement::unreserved`]); with the [`ONCE`] bit set, the id of a batch of charges that were
    /// never reserved and that the store applies at most once ([`Settlement::unreserved_once`]).
    pub id: u64,
    /// `(counter, amount reserved)`.
    pub charges: SmallVec<[(Counter, f64); 4]>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("id", &self.id).field("charges", &self.charges).finish()
    }
}

/// Reconciles a [`Lease`]: each of its counters gets `actual − reserved` while the lease is live,
/// or `actual` if it has already expired (its reservation was then taken back by the store).
/// Settling a lease again changes nothing, so a settlement whose reply was lost may be sent again.
#[derive(Clone, Debug, PartialEq)]
pub struct Settlement {
    /// The lease settled.
    pub lease: Lease,
    /// What was actually used, per charge of the lease (same order).
    pub actual: SmallVec<[f64; 4]>,
}

impl Settlement {
    /// Gives the whole reservation back: nothing was used (the request failed or was cancelled).
    pub fn release(lease: Lease) -> Self {
        let actual = lease.charges.iter().map(|_| 0.0).collect();
        Self { lease, actual }
    }

    /// Amounts to add that were never reserved here (spending recorded elsewhere while the store
    /// was unreachable).
    pub fn unreserved(charges: impl IntoIterator<Item = (Counter, f64)>) -> Self {
        let (charges, actual): (SmallVec<_>, SmallVec<_>) = charges.into_iter().map(|(c, a)| ((c, 0.0), a)).unzip();
        Self { lease: Lease { id: 0, charges }, actual }
    }

    /// [`unreserved`](Self::unreserved) amounts as batch `batch` (its low 63 bits; unique, random
    /// ids keep replicas apart), which the store applies at most once within a day: a batch sent
    /// again after a call whose reply was lost (it may have been applied) is not counted twice.
    pub fn unreserved_once(batch: u64, charges: impl IntoIterator<Item = (Counter, f64)>) -> Self {
        let mut s = Self::unreserved(charges);
        s.lease.id = batch | ONCE;
        s
    }

    /// Gives back, whole, the reservation of the lease with this id if it is held (an admission
    /// that named its [`Admit::lease_id`] and whose reply was lost: which choice it took, and so
    /// what it reserved, only the store knows); nothing otherwise.
    pub fn release_id(id: u64) -> Self {
        Self { lease: Lease { id, charges: SmallVec::new() }, actual: SmallVec::new() }
    }

    /// Whether this settles a lease the store handed out (not unreserved amounts).
    pub fn is_reserved(&self) -> bool {
        self.lease.id != 0 && self.lease.id & ONCE == 0
    }
}

/// Shared counters, leases and sticky entries: in process ([`MemoryStore`]) or in a server that
/// many replicas share (`RedisStore`, feature `redis`).
///
/// Every method is atomic with respect to the others on the same store. Implementations must not
/// block the thread; the router bounds every call with a timeout and falls back to local state when
/// one fails (see `docs/scaling.md`).
///
/// A store is its async methods (and a name): the router uses any store through them alone, except
/// a [`MemoryStore`], which the router recognises when it is built and admits and settles in
/// directly. The trait's one supertrait besides `Send + Sync + 'static` is implemented for every such
/// type, so it asks nothing of an implementation; it lets the router tell a `MemoryStore` behind an
/// `Arc<dyn StateStore>`.
#[async_trait]
pub trait StateStore: sealed::Concrete + Send + Sync + 'static {
    /// A short name for logs and errors (`"memory"`, `"redis"`).
    fn name(&self) -> &str;

    /// Applies `admit.settle`, then takes the first choice that fits; see the [module docs](self).
    async fn admit(&self, admit: &Admit) -> Result<Admitted>;

    /// Applies settlements now.
    async fn settle(&self, settlements: &[Settlement]) -> Result<()>;

    /// The counters' current values (0 for a counter that does not exist).
    async fn read(&self, counters: &[Counter]) -> Result<Vec<f64>>;
}

#[async_trait]
impl<S: StateStore + ?Sized> StateStore for Arc<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn admit(&self, admit: &Admit) -> Result<Admitted> {
        (**self).admit(admit).await
    }
    async fn settle(&self, settlements: &[Settlement]) -> Result<()> {
        (**self).settle(settlements).await
    }
    async fn read(&self, counters: &[Counter]) -> Result<Vec<f64>> {
        (**self).read(counters).await
    }
}

mod sealed {
    use std::any::Any;
    use std::sync::Arc;

    /// A [`StateStore`](super::StateStore)'s concrete type, seen through a trait object.
    ///
    /// Every `Send + Sync + 'static` type implements it, so it asks nothing of a store; nothing else
    /// can. It lets the router recognise its own [`MemoryStore`](super::MemoryStore) behind an
    /// `Arc<dyn StateStore>` ([`memory_store`](super::memory_store)).
    pub trait Concrete: Any + Send + Sync {
        /// The same value, as `Any`.
        fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    }

    impl<T: Any + Send + Sync> Concrete for T {
        fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
            self
        }
    }
}

/// The [`MemoryStore`] that `store` is, if it is one: the store itself, an `Arc` of it, or (at any
/// depth) an `Arc<dyn StateStore>` of either. The router keeps such a store as what it is and
/// admits and settles in it without going through the trait.
pub(crate) fn memory_store(store: &Arc<dyn StateStore>) -> Option<Arc<MemoryStore>> {
    let any = sealed::Concrete::into_any(store.clone());
    let any = match any.downcast::<MemoryStore>() {
        Ok(memory) => return Some(memory),
        Err(any) => any,
    };
    let any = match any.downcast::<Arc<MemoryStore>>() {
        Ok(memory) => return Some(Arc::clone(&memory)),
        Err(any) => any,
    };
    let inner = any.downcast::<Arc<dyn StateStore>>().ok()?;
    memory_store(&inner)
}

use crate::hash::FNV_OFFSET;
pub(crate) use crate::hash::{FastHash, Fnv};

/// Tolerance of checks: sums of floating-point charges may be a few ulps above an exactly
/// reachable limit.
pub(crate) const SLACK: f64 = 1e-9;

/// Whether `choice` fits given the counters' `values`; with `strict`, soft checks count too.
pub(crate) fn fits(choice: &Choice, values: &[f64], strict: bool) -> bool {
    choice.checks.iter().filter(|check| strict || !check.soft).all(|check| holds(check, &choice.charges, values))
}

/// Whether `check` holds once `charges` are added to the counters' `values`.
pub(crate) fn holds(check: &Check, charges: &[(u32, f64)], values: &[f64]) -> bool {
    let sum: f64 = check
        .terms
        .iter()
        .map(|&(i, w)| {
            let v = values.get(i as usize).copied().unwrap_or(0.0);
            let c: f64 = charges.iter().filter(|(j, _)| *j == i).map(|(_, a)| a).sum();
            w * (v + c)
        })
        .sum();
    sum <= check.limit * (1.0 + SLACK) + SLACK
}

/// The order in which an admission tries its choices: the sticky one first (when `sticky` names one
/// of them), then the rest in order.
pub(crate) fn order(choices: &[Choice], sticky: Option<&str>) -> SmallVec<[usize; 16]> {
    let first = sticky.and_then(|label| choices.iter().position(|c| &*c.label == label));
    first.into_iter().chain((0..choices.len()).filter(|&i| Some(i) != first)).collect()
}

/// Checks an admission's indices, so a store never indexes out of bounds.
pub(crate) fn validate(admit: &Admit) -> Result<()> {
    let n = admit.counters.len();
    let bad = admit.choices.iter().any(|c| {
        c.charges.iter().any(|&(i, a)| i as usize >= n || !a.is_finite())
            || c.checks.iter().any(|k| k.limit.is_nan())
            || c.checks.iter().flat_map(|k| &k.terms).any(|&(i, w)| i as usize >= n || !w.is_finite())
    });
    if bad {
        return Err(crate::error::Error::new(
            crate::error::ErrorKind::Routing,
            "state store admission refers to a counter it does not list, or has a non-finite amount",
        ));
    }
    if admit.lease_id.is_some_and(|id| !(NAMED_LEASES..2 * NAMED_LEASES).contains(&id)) {
        return Err(crate::error::Error::new(
            crate::error::ErrorKind::Routing,
            "state store admission names a lease id outside [2^52, 2^53)",
        ));
    }
    Ok(())
}

/// The smallest lease id a caller may name ([`Admit::lease_id`]); named ids are below twice this.
pub(crate) const NAMED_LEASES: u64 = 1 << 52;

#[cfg(test)]
mod tests {
    use super::*;

    /// A store of a user's own around a `MemoryStore`: not the router's in-process store.
    struct Wrapper(MemoryStore);

    #[async_trait]
    impl StateStore for Wrapper {
        fn name(&self) -> &str {
            "wrapper"
        }
        async fn admit(&self, admit: &Admit) -> Result<Admitted> {
            self.0.admit(admit).await
        }
        async fn settle(&self, settlements: &[Settlement]) -> Result<()> {
            self.0.settle(settlements).await
        }
        async fn read(&self, counters: &[Counter]) -> Result<Vec<f64>> {
            self.0.read(counters).await
        }
    }

    #[test]
    fn debug_leaves_caller_keys_out_of_counter_names() {
        let ttl = Duration::from_secs(60);
        let shown = |name: &str| format!("{:?}", Counter::new(name, ttl));
        assert_eq!(shown("caller:key:sk-secret%3A1:tokens:7"), "caller:key:…:tokens:7");
        assert_eq!(shown("budget:key:sk-secret:day:20000"), "budget:key:…:day:20000");
        assert_eq!(shown("caller:tenant:acme:requests:7"), "caller:tenant:acme:requests:7");
        let lease =
            Lease { id: 1, charges: smallvec::smallvec![(Counter::new("caller:key:sk-secret:requests:7", ttl), 1.0)] };
        assert!(!format!("{lease:?}").contains("sk-secret"));
    }

    #[test]
    fn a_memory_store_is_recognised_however_it_is_handed_over() {
        let memory = Arc::new(MemoryStore::new());
        let same = |store: Arc<dyn StateStore>| memory_store(&store).is_some_and(|m| Arc::ptr_eq(&m, &memory));
        assert!(same(memory.clone()));
        assert!(same(Arc::new(memory.clone())));
        let erased: Arc<dyn StateStore> = memory.clone();
        let twice: Arc<dyn StateStore> = Arc::new(erased.clone());
        assert!(same(Arc::new(erased)));
        assert!(same(Arc::new(twice)));
        assert!(memory_store(&(Arc::new(MemoryStore::new()) as Arc<dyn StateStore>)).is_some());
        let wrapped: Arc<dyn StateStore> = Arc::new(Wrapper(MemoryStore::new()));
        assert!(memory_store(&wrapped).is_none());
        assert!(memory_store(&(Arc::new(wrapped) as Arc<dyn StateStore>)).is_none());
    }
}
