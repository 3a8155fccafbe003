//! The router's side of budgets and rate limits: builds admissions, falls back to local counters when
//! the store fails, and settles reservations.

mod admit;
mod backlog;
mod build;
mod keys;
mod settle;
mod store;
mod sync;
mod ticket;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub(crate) use self::ticket::{Admission, Ticket};

use super::LimitsConfig;
use crate::catalog::Catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::state::{Flag, MemoryStore, Settlement, StateStore};

use self::backlog::Backlog;
use self::keys::KeyCache;
use self::store::Store;

pub(crate) struct Limiter {
    config: LimitsConfig,
    keys: Mutex<KeyCache>,
    /// Per catalog model: its id, the label of its choices.
    labels: Vec<Arc<str>>,
    /// Per catalog model: the name of the flag that says its circuit is open.
    circuit_flags: Vec<Arc<str>>,
    /// Per catalog model: until when (ms since `epoch`) this replica last published its circuit open.
    published: Vec<AtomicU64>,
    /// Flags for the store, sent with the next admission.
    flags: Mutex<Vec<Flag>>,
    /// Whether anything may be waiting in `pending`, `backlog` or `flags` (set after queueing).
    queued: AtomicBool,
    /// Whether a background flush is scheduled ([`LimitsConfig::flush_after`]).
    flush_armed: AtomicBool,
    /// How many times `pending`, `backlog` and `flags` were taken to be sent: a scheduled flush
    /// sends only what has waited since it was scheduled.
    drained: AtomicU64,
    /// The store, told apart when the router is built (see [`store`]).
    store: Store,
    /// Counters of this process, used while the store is failing.
    local: MemoryStore,
    /// Per catalog model: its rate limit, if any.
    rates: Vec<Option<usize>>,
    /// Settlements for the store, sent with the next admission.
    pending: Mutex<Vec<Settlement>>,
    /// Amounts spent under local counters while the store was failing, for the store.
    backlog: Mutex<Backlog>,
    /// The store's last reported value of each counter, to seed local counters after a failure.
    last_seen: Mutex<HashMap<Arc<str>, f64>>,
    /// Milliseconds since `epoch` until which the store is not asked.
    down_until: AtomicU64,
    epoch: Instant,
    /// The wall clock in ms at `epoch`, as last read, and when (ms since `epoch`; `MAX`: never).
    wall_offset: AtomicU64,
    wall_checked: AtomicU64,
}

/// 64 bits no other call, process or replica is likely to draw: std's randomly keyed hasher (keys
/// from the operating system, per thread) over a process-wide sequence number and the clock.
fn random_bits() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Limiter {
    pub(crate) fn new(config: LimitsConfig, store: Arc<dyn StateStore>, catalog: &Catalog) -> Result<Self> {
        config.validate(catalog)?;
        let mut rates = vec![None; catalog.len()];
        for (i, r) in config.rate_limits.iter().enumerate() {
            if let Some(m) = catalog.index_of(&r.model) {
                rates[m] = Some(i);
            }
        }
        let keys = Mutex::new(KeyCache {
            budgets: config.budgets.iter().map(|_| HashMap::default()).collect(),
            rates: vec![None; catalog.len()],
            callers: Default::default(),
        });
        let labels = catalog.models().iter().map(|m| Arc::from(m.id.as_str())).collect();
        let circuit_flags = catalog.models().iter().map(|m| Arc::from(format!("circuit:{}", m.id))).collect();
        Ok(Self {
            config,
            keys,
            labels,
            circuit_flags,
            published: catalog.models().iter().map(|_| AtomicU64::new(0)).collect(),
            flags: Mutex::new(Vec::new()),
            queued: AtomicBool::new(false),
            flush_armed: AtomicBool::new(false),
            drained: AtomicU64::new(0),
            store: Store::new(store),
            local: MemoryStore::new(),
            rates,
            pending: Mutex::new(Vec::new()),
            backlog: Mutex::new(Backlog::default()),
            last_seen: Mutex::new(HashMap::new()),
            down_until: AtomicU64::new(0),
            epoch: Instant::now(),
            wall_offset: AtomicU64::new(0),
            wall_checked: AtomicU64::new(u64::MAX),
        })
    }

    pub(crate) fn store_name(&self) -> &str {
        self.store.name()
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Milliseconds since the Unix epoch at `now`, from the monotonic clock and a wall-clock
    /// reading taken at most a minute before (a clock reading costs tens of nanoseconds here; the
    /// windows need milliseconds). A wall clock stepped since is caught up within a minute.
    fn wall_ms(&self, now: Instant) -> u64 {
        let since = u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX);
        let checked = self.wall_checked.load(Ordering::Relaxed);
        if since.saturating_sub(checked) >= 60_000 || checked == u64::MAX {
            self.wall_offset.store(now_ms().saturating_sub(since), Ordering::Relaxed);
            self.wall_checked.store(since, Ordering::Relaxed);
        }
        self.wall_offset.load(Ordering::Relaxed).saturating_add(since)
    }

    fn store_is_down(&self) -> bool {
        let until = self.down_until.load(Ordering::Acquire);
        until != 0 && self.elapsed_ms() < until
    }

    fn mark_down(&self) {
        let retry = u64::try_from(self.config.store_retry.as_millis()).unwrap_or(u64::MAX);
        self.down_until.store(self.elapsed_ms().saturating_add(retry), Ordering::Release);
    }

    fn timeout_error(&self) -> Error {
        Error::new(
            ErrorKind::Store,
            format!(
                "state store `{}`: no answer within {} ms",
                self.store.name(),
                self.config.store_timeout.as_millis()
            ),
        )
    }
}
