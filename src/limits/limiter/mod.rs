//! The router's side of budgets and rate limits: builds admissions, falls back to local counters when
//! the store fails, and settles reservations.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smallvec::{SmallVec, smallvec};

use super::window::Slot;
use super::{Budget, BudgetStatus, LimitsConfig, OnStoreFailure, Reserve, Scope};
use crate::catalog::{Catalog, ModelId, ModelIndex};
use crate::cost::price;
use crate::error::{Error, ErrorKind, Result};
use crate::experiment::Learning;
use crate::experiment::shared::Taken;
use crate::policy::{Candidate, RejectReason, Rejection};
use crate::request::Request;
use crate::state::{
    Admit, Admitted, Bound, Check, Choice, Counter, FastHash, Flag, Lease, MemoryStore, One, Settlement, StateStore,
    Sticky,
};

/// A candidate admitted: which (its position among those offered), its reservation, whether the
/// sticky entry chose it, and the models passed over because their circuit is open elsewhere.
pub(crate) struct Admission {
    pub(crate) position: usize,
    pub(crate) ticket: Ticket,
    pub(crate) sticky: bool,
    pub(crate) blocked: SmallVec<[(ModelIndex, Duration); 2]>,
}

/// What a charge of a lease measures, to settle it with the right actual amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Usd,
    Requests,
    Tokens,
}

/// Where a check comes from, to explain a refusal.
#[derive(Clone, Copy, Debug)]
enum Origin {
    /// The budget at this index of the config.
    Budget(usize),
    /// The model's requests per minute.
    Requests,
    /// The model's tokens per minute.
    Tokens,
}

/// A reservation held for one model while the request uses it; settled once, or given back when
/// dropped.
pub(crate) struct Ticket {
    limiter: Arc<Limiter>,
    held: Option<Held>,
    roles: SmallVec<[Role; 4]>,
    /// Reserved in the local fallback store rather than the shared one.
    local: bool,
    /// Actual use so far (attempts on this model).
    pub(crate) usd: f64,
    pub(crate) tokens: u64,
    pub(crate) requests: u32,
}

/// What a ticket holds: a lease from an admission, or the id of a reservation that an in-process
/// store keeps the charges of ([`MemoryStore::reserve`]).
#[derive(Debug)]
enum Held {
    Lease(Lease),
    Reserved(u64),
}

impl Ticket {
    /// Reconciles the reservation with what the attempts on this model used.
    pub(crate) fn settle(mut self) {
        let Some(held) = self.held.take() else { return };
        let actual: SmallVec<[f64; 4]> = self
            .roles
            .iter()
            .map(|r| match r {
                Role::Usd => self.usd,
                Role::Requests => f64::from(self.requests),
                Role::Tokens => self.tokens as f64,
            })
            .collect();
        match held {
            Held::Lease(lease) => self.limiter.settle(Settlement { lease, actual }, self.local),
            Held::Reserved(id) => self.limiter.settle_reserved(id, &actual),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Not settled: the request was cancelled or ended without a word. Give it all back.
        match self.held.take() {
            Some(Held::Lease(lease)) => self.limiter.settle(Settlement::release(lease), self.local),
            Some(Held::Reserved(id)) => {
                let nothing: SmallVec<[f64; 4]> = self.roles.iter().map(|_| 0.0).collect();
                self.limiter.settle_reserved(id, &nothing);
            }
            None => {}
        }
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket").field("held", &self.held).field("local", &self.local).finish_non_exhaustive()
    }
}

/// An admission as built for one request, with what each check and charge stands for.
struct Built {
    admit: Admit,
    /// Per choice, what its checks and charges stand for.
    meta: SmallVec<[Meta; 1]>,
    /// Per budget: its slot, if it applies to the request (for when a refusal may end).
    slots: SmallVec<[Option<Slot>; 4]>,
}

/// What a choice's checks and charges stand for.
struct Meta {
    /// The origin of each check, in order.
    origins: SmallVec<[Origin; 4]>,
    /// The role of each charge, in order.
    roles: SmallVec<[Role; 4]>,
    /// The amount reserved against budgets.
    usd: f64,
    /// Whether a closed limit applies and the store is down.
    closed: bool,
}

/// Counter names, built once per scope and bucket rather than per request; behind one lock, taken
/// once per admission.
struct KeyCache {
    /// Per budget: scope id (tenant, caller key, or "" for global) → the slot's counters.
    budgets: Vec<HashMap<Box<str>, SlotKeys, FastHash>>,
    /// Per model: the requests and tokens counters of the current minute.
    rates: Vec<Option<RateKeys>>,
}

/// A minute's bucket with its requests and tokens counters (current and previous of each).
type RateKeys = (i64, [Counter; 4]);

/// A bucket's counter and the previous bucket's (sliding windows).
#[derive(Clone)]
struct SlotKeys {
    bucket: i64,
    current: Counter,
    previous: Counter,
}

/// Entries a key cache keeps per budget before it starts over.
const KEY_CACHE: usize = 4096;

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
    store: Arc<dyn StateStore>,
    /// Counters of this process, used while the store is failing.
    local: MemoryStore,
    /// Per catalog model: its rate limit, if any.
    rates: Vec<Option<usize>>,
    /// Settlements for the store, sent with the next admission.
    pending: Mutex<Vec<Settlement>>,
    /// Amounts spent under local counters while the store was failing, for the store.
    backlog: Mutex<Vec<(Counter, f64)>>,
    /// The store's last reported value of each counter, to seed local counters after a failure.
    last_seen: Mutex<HashMap<Arc<str>, f64>>,
    /// Milliseconds since `epoch` until which the store is not asked.
    down_until: AtomicU64,
    epoch: Instant,
    /// The wall clock in ms at `epoch`, as last read, and when (ms since `epoch`; `MAX`: never).
    wall_offset: AtomicU64,
    wall_checked: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// FNV-1a of a caller key: keys are stored hashed.
fn hash_key(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Whom budget `b` counts a request of `tenant` and `key` under (`""` for a global budget), if the
/// budget applies to it.
fn scope_id<'a>(b: &Budget, tenant: Option<&'a str>, key: Option<&'a str>) -> Option<&'a str> {
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
    fn check(&self, counters: &mut Vec<Counter>, slot: &Slot, limit: f64) -> (u32, Check) {
        let current = intern(counters, &self.current);
        let mut terms: SmallVec<[(u32, f64); 2]> = smallvec![(current, 1.0)];
        if let Some(w) = slot.previous {
            terms.insert(0, (intern(counters, &self.previous), w));
        }
        (current, Check { terms, limit, soft: false })
    }
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
            store,
            local: MemoryStore::new(),
            rates,
            pending: Mutex::new(Vec::new()),
            backlog: Mutex::new(Vec::new()),
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

    /// `f` of the counters of budget `b` for scope `id` in `slot`, from the key cache.
    fn budget_keys<R>(&self, b: usize, id: &str, slot: &Slot, f: impl FnOnce(&SlotKeys) -> R) -> R {
        self.budget_keys_in(&mut lock(&self.keys), b, id, slot, f)
    }

    /// [`budget_keys`](Self::budget_keys) with the key cache already locked.
    fn budget_keys_in<R>(
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
    fn rate_keys(&self, model: usize, id: &ModelId, slot: &Slot) -> [Counter; 4] {
        Self::rate_keys_in(&mut lock(&self.keys), model, id, slot)
    }

    /// [`rate_keys`](Self::rate_keys) with the key cache already locked.
    fn rate_keys_in(keys: &mut KeyCache, model: usize, id: &ModelId, slot: &Slot) -> [Counter; 4] {
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

    /// The amount a choice reserves against budgets, and its token charge.
    fn reservation(&self, request: &Request, catalog: &Catalog, c: &Candidate) -> (f64, f64) {
        let model = catalog.model(c.model);
        let output = match self.config.reserve {
            Reserve::Maximum => request.max_tokens.unwrap_or(model.max_output_tokens),
            Reserve::Expected => c.cost.output_tokens,
        };
        let usd = match self.config.reserve {
            Reserve::Maximum => {
                price(&model.pricing, c.cost.input_tokens, c.cost.cached_input_tokens, output).max(c.cost.usd)
            }
            Reserve::Expected => c.cost.usd,
        };
        let usd = if usd.is_finite() && usd >= 0.0 { usd } else { 0.0 };
        (usd, f64::from(c.cost.input_tokens) + f64::from(output))
    }

    /// Builds the admission of `models` (in order of preference). With `fallback`, limits that do
    /// not apply while the store is down are left out and closed ones mark their choices.
    fn build(
        &self,
        request: &Request,
        catalog: &Catalog,
        models: &[&Candidate],
        fallback: bool,
        circuits: bool,
    ) -> Built {
        let now = now_ms();
        let hints = &request.hints;
        let mut counters = Vec::with_capacity(4);
        let mut budget_checks: SmallVec<[(usize, u32, Check); 4]> = SmallVec::new();
        let mut slots: SmallVec<[Option<Slot>; 4]> = smallvec![None; self.config.budgets.len()];
        let mut budget_closed = false;
        for (i, b) in self.config.budgets.iter().enumerate() {
            let Some(id) = scope_id(b, hints.tenant.as_deref(), hints.key.as_deref()) else { continue };
            let slot = b.window.slot(now);
            slots[i] = Some(slot);
            if fallback {
                match b.on_store_failure {
                    OnStoreFailure::Open => continue,
                    OnStoreFailure::Closed => {
                        budget_closed = true;
                        continue;
                    }
                    OnStoreFailure::Local => {}
                }
            }
            let (charge, check) = self.budget_keys(i, id, &slot, |k| k.check(&mut counters, &slot, b.limit_usd));
            budget_checks.push((i, charge, check));
        }
        let minute = super::Window::Sliding(Duration::from_secs(60)).slot(now);
        let mut built = Built {
            admit: Admit { choices: Vec::with_capacity(models.len()), ..Admit::default() },
            meta: SmallVec::with_capacity(models.len()),
            slots,
        };
        for c in models {
            let model = catalog.model(c.model);
            let (usd, tokens) = self.reservation(request, catalog, c);
            let label = self.labels.get(c.model).cloned().unwrap_or_else(|| Arc::from(model.id.as_str()));
            let flag = if circuits { self.circuit_flags.get(c.model).cloned() } else { None };
            let mut choice = Choice { label, charges: SmallVec::new(), checks: SmallVec::new(), flag };
            let mut origins = SmallVec::new();
            let mut roles = SmallVec::new();
            for (b, charge, check) in &budget_checks {
                // Budgets share counters: charge each counter once.
                if !choice.charges.iter().any(|(i, _)| i == charge) {
                    choice.charges.push((*charge, usd));
                    roles.push(Role::Usd);
                }
                choice.checks.push(check.clone());
                origins.push(Origin::Budget(*b));
            }
            let mut closed = budget_closed;
            if let Some(r) = self.rates.get(c.model).copied().flatten() {
                let limit = &self.config.rate_limits[r];
                let skip = fallback && limit.on_store_failure == OnStoreFailure::Open;
                closed |= fallback && limit.on_store_failure == OnStoreFailure::Closed;
                if !skip && !closed {
                    let [req, req_prev, tok, tok_prev] = self.rate_keys(c.model, &model.id, &minute);
                    // Near the limit (above `prefer_below` of it) a soft check holds the model back
                    // while another candidate can serve.
                    let soft = |check: &Check| {
                        (limit.prefer_below < 1.0).then(|| Check {
                            limit: check.limit * limit.prefer_below,
                            soft: true,
                            ..check.clone()
                        })
                    };
                    if let Some(n) = limit.requests_per_minute {
                        let keys = SlotKeys { bucket: minute.bucket, current: req, previous: req_prev };
                        let (charge, check) = keys.check(&mut counters, &minute, f64::from(n));
                        choice.charges.push((charge, 1.0));
                        roles.push(Role::Requests);
                        if let Some(s) = soft(&check) {
                            choice.checks.push(s);
                            origins.push(Origin::Requests);
                        }
                        choice.checks.push(check);
                        origins.push(Origin::Requests);
                    }
                    if let Some(n) = limit.tokens_per_minute {
                        let keys = SlotKeys { bucket: minute.bucket, current: tok, previous: tok_prev };
                        let (charge, check) = keys.check(&mut counters, &minute, n as f64);
                        choice.charges.push((charge, tokens));
                        roles.push(Role::Tokens);
                        if let Some(s) = soft(&check) {
                            choice.checks.push(s);
                            origins.push(Origin::Tokens);
                        }
                        choice.checks.push(check);
                        origins.push(Origin::Tokens);
                    }
                }
            }
            if closed {
                // A closed limit applies and cannot be checked: the choice may not be taken.
                choice.checks.push(Check { terms: SmallVec::new(), limit: f64::NEG_INFINITY, soft: false });
            }
            built.admit.choices.push(choice);
            built.meta.push(Meta { origins, roles, usd, closed });
        }
        built.admit.counters = counters;
        built
    }

    /// [`build`](Self::build) with the lease's life and the sticky entry.
    #[allow(clippy::too_many_arguments, reason = "one admission's every input, private")]
    fn admission(
        &self,
        request: &Request,
        catalog: &Catalog,
        models: &[&Candidate],
        fallback: bool,
        circuits: bool,
        lease_ttl: Duration,
        sticky: &Option<Sticky>,
    ) -> Built {
        let mut built = self.build(request, catalog, models, fallback, circuits);
        built.admit.lease_ttl = lease_ttl;
        built.admit.sticky = sticky.clone();
        built
    }

    /// The sticky entry of a request, when sticky sessions are on and this is its first pick.
    fn sticky(&self, request: &Request, first_pick: bool) -> Option<Sticky> {
        match (&self.config.sticky, &request.hints.key, first_pick) {
            (Some(s), Some(key), true) => {
                Some(Sticky { key: Arc::from(format!("sticky:{:016x}", hash_key(key))), ttl: s.ttl })
            }
            _ => None,
        }
    }

    /// Whether nothing waits to be sent to the store (settlements, local spending, flags).
    fn quiet(&self) -> bool {
        !self.queued.load(Ordering::Acquire) || {
            // Cleared before looking, and set again by whoever queues after: never lost.
            self.queued.store(false, Ordering::Release);
            let empty =
                lock(&self.pending).is_empty() && lock(&self.backlog).is_empty() && lock(&self.flags).is_empty();
            if !empty {
                self.queued.store(true, Ordering::Release);
            }
            empty
        }
    }

    /// The first of `models` alone, for an in-process store: its charges, its bounds (soft checks
    /// as strict ones: alone, it is taken only if the full admission would take it), its flag, and
    /// what each charge stands for. Counter names come from the key cache; nothing else is built.
    fn one(
        &self,
        request: &Request,
        catalog: &Catalog,
        c: &Candidate,
        circuits: bool,
        now: u64,
    ) -> (One, SmallVec<[Role; 4]>) {
        let hints = &request.hints;
        let (usd, tokens) = self.reservation(request, catalog, c);
        let mut one = One::default();
        let mut roles = SmallVec::new();
        let mut keys = lock(&self.keys);
        for (i, b) in self.config.budgets.iter().enumerate() {
            let Some(id) = scope_id(b, hints.tenant.as_deref(), hints.key.as_deref()) else { continue };
            let slot = b.window.slot(now);
            let (at, previous) = self.budget_keys_in(&mut keys, i, id, &slot, |keys| {
                // Budgets share counters: charge each counter once.
                let at = one.charges.iter().position(|(k, _)| *k == keys.current).unwrap_or_else(|| {
                    one.charges.push((keys.current.clone(), usd));
                    roles.push(Role::Usd);
                    one.charges.len() - 1
                });
                (at, slot.previous.map(|w| (keys.previous.clone(), w)))
            });
            one.bounds.push(Bound { current: at, previous, limit: b.limit_usd });
        }
        if let Some(limit) = self.rates.get(c.model).copied().flatten().map(|r| &self.config.rate_limits[r]) {
            let minute = super::Window::Sliding(Duration::from_secs(60)).slot(now);
            let [req, req_prev, tok, tok_prev] =
                Self::rate_keys_in(&mut keys, c.model, &catalog.model(c.model).id, &minute);
            let share = limit.prefer_below.min(1.0);
            let w = minute.previous.unwrap_or(0.0);
            let mut rate = |current: Counter, previous: Counter, charge: f64, limit: f64, role: Role| {
                one.charges.push((current, charge));
                roles.push(role);
                one.bounds.push(Bound { current: one.charges.len() - 1, previous: Some((previous, w)), limit });
            };
            if let Some(n) = limit.requests_per_minute {
                rate(req, req_prev, 1.0, f64::from(n) * share, Role::Requests);
            }
            if let Some(n) = limit.tokens_per_minute {
                rate(tok, tok_prev, tokens, n as f64 * share, Role::Tokens);
            }
        }
        one.flag = if circuits { self.circuit_flags.get(c.model).cloned() } else { None };
        (one, roles)
    }

    /// Reserves `first`, the preferred candidate, alone through an in-process store when it fits:
    /// most requests take their first choice, and this takes it without building an [`Admit`] or
    /// listing the other candidates. `None`: the store is not in process, something waits to be
    /// sent to it, a sticky entry may choose another model, or `first` does not fit or is flagged;
    /// the caller then goes through [`admit_now`](Self::admit_now) or [`admit`](Self::admit), which
    /// also say why.
    #[allow(clippy::too_many_arguments, reason = "the candidate with its request, its clock and its deadline")]
    pub(crate) fn admit_first(
        self: &Arc<Self>,
        request: &Request,
        catalog: &Catalog,
        first: &Candidate,
        first_pick: bool,
        circuits: bool,
        now: Instant,
        deadline: Instant,
    ) -> Option<Admission> {
        let store = self.store.in_process()?;
        if self.store_is_down()
            || !self.quiet()
            || (first_pick && self.config.sticky.is_some() && request.hints.key.is_some())
        {
            return None;
        }
        // `now`, the caller's clock reading, serves the windows and the store.
        let (one, roles) = self.one(request, catalog, first, circuits && self.config.share_circuits, self.wall_ms(now));
        let until = deadline.max(now).checked_add(self.config.lease_grace).unwrap_or(deadline);
        let id = store.reserve(one, now, until)?;
        let ticket = Ticket {
            limiter: self.clone(),
            held: Some(Held::Reserved(id)),
            roles,
            local: false,
            usd: 0.0,
            tokens: 0,
            requests: 0,
        };
        Some(Admission { position: 0, ticket, sticky: false, blocked: SmallVec::new() })
    }

    /// Admits without waiting when the store answers without I/O and nothing is queued for it;
    /// `None` otherwise, and the caller goes through [`admit`](Self::admit).
    ///
    /// A store that is not in process gets the first choice alone first (most requests take it),
    /// then the full admission if it does not fit: an atomic admission of its own, so the rule "the
    /// first that fits" holds. An in-process store gets the full admission at once (its first
    /// choice was offered through [`admit_first`](Self::admit_first)).
    ///
    /// # Errors
    /// As [`admit`](Self::admit).
    pub(crate) fn admit_now(
        self: &Arc<Self>,
        request: &Request,
        catalog: &Catalog,
        models: &[&Candidate],
        first_pick: bool,
        circuits: bool,
        deadline: Duration,
    ) -> Option<Result<Admission>> {
        if self.store_is_down() || !self.quiet() {
            return None;
        }
        let lease_ttl = deadline.saturating_add(self.config.lease_grace);
        let sticky = self.sticky(request, first_pick);
        let circuits = circuits && self.config.share_circuits;
        let admission =
            |models: &[&Candidate]| self.admission(request, catalog, models, false, circuits, lease_ttl, &sticky);
        // Other stores that answer without I/O: the first choice alone, then all of them.
        let first = sticky.is_none() && models.len() > 1 && self.store.in_process().is_none();
        let mut built = admission(if first { &models[..1] } else { models });
        if first {
            for check in built.admit.choices.iter_mut().flat_map(|c| c.checks.iter_mut()) {
                check.soft = false;
            }
        }
        let admitted = match self.store.admit_sync(&built.admit)? {
            Ok(admitted) => admitted,
            Err(e) => return Some(Err(e)),
        };
        if admitted.choice.is_some() || !first {
            return Some(self.outcome(&built, admitted, false, catalog, models));
        }
        let built = admission(models);
        let admitted = self.store.admit_sync(&built.admit)?;
        Some(admitted.and_then(|a| self.outcome(&built, a, false, catalog, models)))
    }

    /// Reserves the first of `models` (in order of preference) that every limit allows, and says
    /// which it was. With `circuits`, models whose circuit another replica opened are passed over.
    /// Callers try [`admit_now`](Self::admit_now) first; this asks the store and waits for it, and
    /// serves from local counters when it fails.
    ///
    /// # Errors
    /// [`ErrorKind::BudgetExceeded`], [`ErrorKind::RateLimited`], [`ErrorKind::Store`] or
    /// [`ErrorKind::NoCandidate`] (every circuit open) when none is allowed, with a rejection per
    /// model.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        request: &Request,
        catalog: &Catalog,
        models: &[&Candidate],
        first_pick: bool,
        circuits: bool,
        deadline: Duration,
    ) -> Result<Admission> {
        let lease_ttl = deadline.saturating_add(self.config.lease_grace);
        let sticky = self.sticky(request, first_pick);
        let circuits = circuits && self.config.share_circuits;
        let admission = |models: &[&Candidate], fallback: bool, circuits: bool| {
            self.admission(request, catalog, models, fallback, circuits, lease_ttl, &sticky)
        };
        if !self.store_is_down() {
            let mut built = admission(models, false, circuits);
            let backlog = self.take_queued(&mut built.admit);
            let answer = tokio::time::timeout(self.config.store_timeout, self.store.admit(&built.admit)).await;
            match answer {
                Ok(Ok(admitted)) => {
                    self.remember(&built.admit.counters, &admitted.values);
                    return self.outcome(&built, admitted, false, catalog, models);
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {} ms", self.config.store_timeout.as_millis()),
                    };
                    tracing::warn!(store = self.store.name(), error = %why, "state store failed; serving from local counters");
                    self.mark_down();
                    // Keep what was to be sent for the next call (a settlement applied twice counts
                    // once; a flag set twice is the same flag).
                    let mut pending = lock(&self.pending);
                    pending.extend(built.admit.settle.into_iter().filter(|s| s.lease.id != 0));
                    drop(pending);
                    lock(&self.flags).extend(built.admit.flags);
                    lock(&self.backlog).extend(backlog);
                    self.queued_for_store();
                }
            }
        }
        // Local counters only; circuits are this replica's own meanwhile.
        let built = admission(models, true, false);
        {
            let seen = lock(&self.last_seen);
            for c in &built.admit.counters {
                if let Some(&v) = seen.get(c.key()) {
                    self.local.seed(c, v);
                }
            }
        }
        let admitted = self.local.admit_now(&built.admit)?;
        self.outcome(&built, admitted, true, catalog, models)
    }

    /// Tells the other replicas that `model`'s circuit opened here, for `open_for`; sent with the
    /// next admission, or by itself after [`LimitsConfig::flush_after`].
    pub(crate) fn publish_open(self: &Arc<Self>, model: ModelIndex, open_for: Duration) {
        if !self.config.share_circuits || open_for.is_zero() {
            return;
        }
        let Some(name) = self.circuit_flags.get(model) else { return };
        // Once per opening: a failure recorded while the circuit is open publishes nothing new.
        let until = self.elapsed_ms().saturating_add(u64::try_from(open_for.as_millis()).unwrap_or(u64::MAX));
        if let Some(published) = self.published.get(model) {
            let before = published.load(Ordering::Acquire);
            if before.saturating_add(1000) >= until
                || published.compare_exchange(before, until, Ordering::AcqRel, Ordering::Acquire).is_err()
            {
                return;
            }
        }
        let mut flags = lock(&self.flags);
        match flags.iter_mut().find(|f| f.name == *name) {
            Some(f) => f.ttl = f.ttl.max(open_for),
            None => flags.push(Flag { name: name.clone(), ttl: open_for }),
        }
        drop(flags);
        self.queued_for_store();
    }

    fn remember(&self, counters: &[Counter], values: &[f64]) {
        let mut seen = lock(&self.last_seen);
        if seen.len() > 4096 {
            seen.clear();
        }
        for (c, &v) in counters.iter().zip(values) {
            seen.insert(Arc::from(c.key()), v);
        }
    }

    fn outcome(
        self: &Arc<Self>,
        built: &Built,
        admitted: Admitted,
        local: bool,
        catalog: &Catalog,
        models: &[&Candidate],
    ) -> Result<Admission> {
        let Admitted { choice, lease, values, sticky_hit, blocked } = admitted;
        let values = &values[..];
        let blocked: SmallVec<[(ModelIndex, Duration); 2]> =
            blocked.iter().filter_map(|&(i, d)| Some((models.get(i)?.model, d))).collect();
        if let (Some(i), Some(lease)) = (choice, lease) {
            let roles = built.meta[i].roles.clone();
            let held = Some(Held::Lease(lease));
            let ticket = Ticket { limiter: self.clone(), held, roles, local, usd: 0.0, tokens: 0, requests: 0 };
            return Ok(Admission { position: i, ticket, sticky: sticky_hit, blocked });
        }
        // Nothing fits: say why for each model.
        let mut rejections = Vec::with_capacity(models.len());
        let (mut budget, mut closed, mut circuit, mut retry_in) = (false, false, false, None::<Duration>);
        let mut budget_retry: Option<Duration> = None;
        for (k, c) in models.iter().enumerate() {
            let id = catalog.model(c.model).id.clone();
            if let Some(&(_, retry_in)) = blocked.iter().find(|(m, _)| *m == c.model) {
                circuit = true;
                rejections.push(Rejection::new(id, RejectReason::CircuitOpen { retry_in }));
                continue;
            }
            if built.meta[k].closed {
                closed = true;
                rejections.push(Rejection::new(id, RejectReason::StoreUnavailable));
                continue;
            }
            let choice = &built.admit.choices[k];
            let failed = choice
                .checks
                .iter()
                .zip(&built.meta[k].origins)
                .find(|(check, _)| !check.soft && !crate::state::holds(check, &choice.charges, values));
            let Some((check, origin)) = failed else { continue };
            let used: f64 = check.terms.iter().map(|&(i, w)| w * values.get(i as usize).copied().unwrap_or(0.0)).sum();
            let reason = match *origin {
                Origin::Budget(b) => {
                    budget = true;
                    if let Some(slot) = built.slots[b] {
                        budget_retry = Some(budget_retry.map_or(slot.resets_in, |d| d.max(slot.resets_in)));
                    }
                    RejectReason::Budget {
                        budget: self.config.budgets[b].label(),
                        needed: built.meta[k].usd,
                        remaining: (check.limit - used).max(0.0),
                    }
                }
                Origin::Requests | Origin::Tokens => {
                    let minute = super::Window::Sliding(Duration::from_secs(60)).slot(now_ms());
                    retry_in = Some(retry_in.map_or(minute.resets_in, |d| d.min(minute.resets_in)));
                    let what = if matches!(origin, Origin::Requests) { "requests" } else { "tokens" };
                    RejectReason::RateLimit { limit: format!("{} {what} per minute", check.limit) }
                }
            };
            rejections.push(Rejection::new(id, reason));
        }
        let (kind, what) = if budget {
            (ErrorKind::BudgetExceeded, "no candidate fits within its budgets")
        } else if closed && rejections.iter().all(|r| matches!(r.reason(), RejectReason::StoreUnavailable)) {
            (ErrorKind::Store, "the state store is unreachable and every candidate has a limit that fails closed")
        } else if circuit && rejections.iter().all(|r| matches!(r.reason(), RejectReason::CircuitOpen { .. })) {
            (ErrorKind::NoCandidate, "every candidate's circuit is open on another replica")
        } else {
            (ErrorKind::RateLimited, "every candidate is at its rate limit")
        };
        let mut message = format!("{what} ({} refused:", rejections.len());
        for (i, r) in rejections.iter().enumerate() {
            use std::fmt::Write;
            let _ = write!(message, "{}`{}` {}", if i == 0 { " " } else { "; " }, r.model(), r.reason());
        }
        message.push(')');
        let error = Error::new(kind, message).with_rejections(rejections);
        Err(match kind {
            ErrorKind::RateLimited => error.with_retry_after(retry_in),
            ErrorKind::BudgetExceeded => error.with_retry_after(budget_retry),
            _ => error,
        })
    }

    /// Settles a reservation made through [`admit_first`](Self::admit_first), which only an
    /// in-process store makes.
    fn settle_reserved(&self, id: u64, actual: &[f64]) {
        if let Some(store) = self.store.in_process() {
            store.settle_reserved(id, actual);
        }
    }

    /// Settles a reservation: at once for the local store or a store that can, otherwise with the
    /// next admission.
    fn settle(self: &Arc<Self>, settlement: Settlement, local: bool) {
        if local {
            // Spending under local counters goes to the store once it answers again.
            let spent: Vec<(Counter, f64)> = settlement
                .lease
                .charges
                .iter()
                .zip(&settlement.actual)
                .filter(|(_, a)| **a != 0.0)
                .map(|((c, _), a)| (c.clone(), *a))
                .collect();
            self.local.settle_sync(std::slice::from_ref(&settlement));
            lock(&self.backlog).extend(spent);
            self.queued_for_store();
        } else if let Some(store) = self.store.in_process() {
            store.settle_recent(&settlement);
        } else if !self.store.settle_now(std::slice::from_ref(&settlement)) {
            lock(&self.pending).push(settlement);
            self.queued_for_store();
        }
    }

    /// What each budget that applies to `tenant` and `key` has spent and reserved.
    pub(crate) async fn status(&self, tenant: Option<&str>, key: Option<&str>) -> Result<Vec<BudgetStatus>> {
        let now = now_ms();
        let mut counters = Vec::new();
        let mut checks = Vec::new();
        for (i, b) in self.config.budgets.iter().enumerate() {
            let Some(id) = scope_id(b, tenant, key) else { continue };
            let slot = b.window.slot(now);
            let (_, check) = self.budget_keys(i, id, &slot, |k| k.check(&mut counters, &slot, b.limit_usd));
            checks.push((b, slot, check));
        }
        let values = if self.store_is_down() {
            self.local.read_now(&counters)
        } else {
            match tokio::time::timeout(self.config.store_timeout, self.store.read(&counters)).await {
                Ok(Ok(values)) => values,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(self.timeout_error()),
            }
        };
        Ok(checks
            .into_iter()
            .map(|(b, slot, check)| {
                let spent = check.terms.iter().map(|&(i, w)| w * values.get(i as usize).copied().unwrap_or(0.0)).sum();
                BudgetStatus { label: b.label(), limit_usd: b.limit_usd, spent_usd: spent, resets_in: slot.resets_in }
            })
            .collect())
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

    /// Adds what `learning` observed here since the last sync to the store's counters and installs
    /// the fleet's totals, in one round trip (an admission without choices). When the store fails,
    /// the sums are kept for the next sync.
    ///
    /// # Errors
    /// [`ErrorKind::Store`] when the store fails or does not answer in time.
    pub(crate) async fn sync_learning(&self, learning: &[Learning]) -> Result<()> {
        if learning.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let taken: Vec<Taken> = learning.iter().map(Learning::take).collect();
        let mut adds = Vec::new();
        let mut counters = Vec::new();
        let mut spans = Vec::with_capacity(learning.len());
        for (l, t) in learning.iter().zip(&taken) {
            l.charges(t, now, &mut adds);
            let start = counters.len();
            l.counters(now, &mut counters);
            spans.push(start..counters.len());
        }
        let settle = if adds.is_empty() { Vec::new() } else { vec![Settlement::unreserved(adds)] };
        let admit = Admit { counters, settle, ..Admit::default() };
        let answer = match tokio::time::timeout(self.config.store_timeout, self.store.admit(&admit)).await {
            Ok(Ok(admitted)) if admitted.values.len() == admit.counters.len() => Ok(admitted.values),
            Ok(Ok(admitted)) => Err(Error::new(
                ErrorKind::Store,
                format!(
                    "state store `{}` returned {} values for {} counters",
                    self.store.name(),
                    admitted.values.len(),
                    admit.counters.len()
                ),
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.timeout_error()),
        };
        match answer {
            Ok(values) => {
                for (l, span) in learning.iter().zip(spans) {
                    l.install(&values[span], now);
                }
                Ok(())
            }
            Err(e) => {
                for (l, t) in learning.iter().zip(taken) {
                    l.restore(t);
                }
                tracing::warn!(store = self.store.name(), error = %e, "sharing learned state failed; kept for the next sync");
                Err(e)
            }
        }
    }

    /// Sends queued settlements, local spending and flags to the store now.
    pub(crate) async fn flush(&self) -> Result<()> {
        let mut admit = Admit::default();
        let backlog = self.take_queued(&mut admit);
        if admit.settle.is_empty() && admit.flags.is_empty() {
            return Ok(());
        }
        let result = match tokio::time::timeout(self.config.store_timeout, self.store.admit(&admit)).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(self.timeout_error()),
        };
        if result.is_err() {
            lock(&self.pending).extend(admit.settle.into_iter().filter(|s| s.lease.id != 0));
            lock(&self.flags).extend(admit.flags);
            lock(&self.backlog).extend(backlog);
            self.queued.store(true, Ordering::Release);
        }
        result
    }

    /// Moves what waits for the store into `admit`: queued settlements, flags, and local spending
    /// (returned as well, to be queued again if the store fails).
    fn take_queued(&self, admit: &mut Admit) -> Vec<(Counter, f64)> {
        self.drained.fetch_add(1, Ordering::AcqRel);
        admit.settle = std::mem::take(&mut *lock(&self.pending));
        admit.flags = std::mem::take(&mut *lock(&self.flags));
        let backlog = std::mem::take(&mut *lock(&self.backlog));
        if !backlog.is_empty() {
            admit.settle.push(Settlement::unreserved(backlog.iter().cloned()));
        }
        backlog
    }

    /// Notes that something waits for the store, and schedules a flush for when it has waited
    /// [`LimitsConfig::flush_after`] without an admission to carry it.
    fn queued_for_store(self: &Arc<Self>) {
        self.queued.store(true, Ordering::Release);
        let after = self.config.flush_after;
        if after.is_zero() || self.store.in_process().is_some() || self.flush_armed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Without a runtime (a ticket dropped outside one), the next admission carries it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.flush_armed.store(false, Ordering::Release);
            return;
        };
        let limiter = Arc::downgrade(self);
        let mut seen = self.drained.load(Ordering::Acquire);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(after).await;
                // A router dropped meanwhile has nothing left to send.
                let Some(l) = limiter.upgrade() else { return };
                // Taken since: an admission carried what waited then, and anything queued later
                // gets its own wait.
                if l.drained.load(Ordering::Acquire) == seen && !l.store_is_down() {
                    if let Err(e) = l.flush().await {
                        tracing::warn!(store = l.store.name(), error = %e, "state store failed; settlements kept for the next call");
                        l.mark_down();
                    }
                }
                l.flush_armed.store(false, Ordering::Release);
                // Re-armed here unless nothing waits or another call armed it after the line above.
                if l.quiet() || l.flush_armed.swap(true, Ordering::AcqRel) {
                    return;
                }
                seen = l.drained.load(Ordering::Acquire);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ModelProfile, Pricing};
    use crate::cost::CostEstimate;
    use crate::experiment::rng::Rng;
    use crate::limits::{RateLimit, Window};

    fn catalog() -> Catalog {
        Catalog::new((0..3).map(|i| {
            ModelProfile::new(format!("m{i}"), "sim")
                .with_pricing(Pricing::per_mtok(4.0 / f64::from(i + 1), 8.0 / f64::from(i + 1)))
                .with_context(32_000, 2_000)
        }))
        .unwrap()
    }

    fn config() -> LimitsConfig {
        LimitsConfig::new()
            .budget(Budget::new(Scope::Global, 0.4, Window::Day))
            .budget(Budget::new(Scope::Global, 0.3, Window::Day))
            .budget(Budget::new(Scope::Tenant, 0.15, Window::Sliding(Duration::from_secs(3600))))
            .budget(Budget::new(Scope::Key, 0.1, Window::Hour))
            .rate_limit(RateLimit::new("m0").requests_per_minute(12).tokens_per_minute(30_000))
            .rate_limit(RateLimit::new("m1").requests_per_minute(20).prefer_below(1.0))
    }

    /// The first choice reserved alone (`admit_first`) decides as the full admission does, step
    /// for step, over budgets that share counters, sliding and calendar windows, keys, rate limits
    /// with and without `prefer_below`, settlements and releases.
    #[test]
    fn the_first_choice_alone_decides_as_the_full_admission() {
        let catalog = catalog();
        let quick = Arc::new(Limiter::new(config(), Arc::new(MemoryStore::new()), &catalog).unwrap());
        let full = Arc::new(Limiter::new(config(), Arc::new(MemoryStore::new()), &catalog).unwrap());
        let mut rng = Rng::new(7);
        let (mut firsts, mut others, mut refused) = (0, 0, 0);
        for step in 0..600 {
            let mut request = Request::new("q").with_max_tokens(50 + rng.below(1500) as u32);
            if rng.below(4) > 0 {
                request = request.with_tenant(["a", "b"][rng.below(2)]);
            }
            if rng.below(3) > 0 {
                request = request.with_key(["k1", "k2"][rng.below(2)]);
            }
            let input = 100 + rng.below(4000) as u32;
            let candidates: Vec<Candidate> = (0..3)
                .map(|m| {
                    let cost =
                        CostEstimate { usd: 0.0, input_tokens: input, cached_input_tokens: 0, output_tokens: 200 };
                    Candidate::new(m, 0.0, cost, 1.0)
                })
                .collect();
            let start = rng.below(3);
            let listed: Vec<&Candidate> = (0..3).map(|k| &candidates[(start + k) % 3]).collect();
            let deadline = Duration::from_secs(30);
            let a = match quick.admit_first(
                &request,
                &catalog,
                listed[0],
                true,
                true,
                Instant::now(),
                Instant::now() + deadline,
            ) {
                Some(admission) => Ok(admission),
                None => quick.admit_now(&request, &catalog, &listed, true, true, deadline).unwrap(),
            };
            let b = full.admit_now(&request, &catalog, &listed, true, true, deadline).unwrap();
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.position, b.position, "step {step}");
                    if a.position == 0 {
                        firsts += 1
                    } else {
                        others += 1
                    }
                    // Most answers cost less than reserved; some fail and give it all back.
                    let used = rng.unit();
                    for mut ticket in [a.ticket, b.ticket] {
                        if used < 0.9 {
                            ticket.usd = used * 0.002;
                            ticket.requests = 1;
                            ticket.tokens = u64::from(input) + 100;
                            ticket.settle();
                        }
                    }
                }
                (Err(a), Err(b)) => {
                    assert_eq!(a.kind(), b.kind(), "step {step}");
                    refused += 1;
                }
                (a, b) => panic!("step {step}: {:?} vs {:?}", a.map(|a| a.position), b.map(|b| b.position)),
            }
        }
        // The run goes through all three outcomes.
        assert!(firsts > 50 && others > 20 && refused > 20, "{firsts} / {others} / {refused}");
        let open = |l: &Limiter| l.store.in_process().map(MemoryStore::open_leases);
        assert_eq!((open(&quick), open(&full)), (Some(0), Some(0)));
    }
}
