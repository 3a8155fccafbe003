//! The router's side of budgets and rate limits: builds admissions, falls back to local counters when
//! the store fails, and settles reservations.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smallvec::{SmallVec, smallvec};

use super::window::Slot;
use super::{Budget, BudgetStatus, LimitsConfig, OnStoreFailure, Reserve, Scope};
use crate::catalog::Catalog;
use crate::cost::price;
use crate::error::{Error, ErrorKind, Result};
use crate::policy::{Candidate, RejectReason, Rejection};
use crate::request::Request;
use crate::state::{Admit, Check, Choice, Counter, Lease, MemoryStore, Settlement, StateStore, Sticky};

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
    Budget(usize),
    Requests(usize),
    Tokens(usize),
}

/// A reservation held for one model while the request uses it; settled once, or given back when
/// dropped.
pub(crate) struct Ticket {
    limiter: Arc<Limiter>,
    lease: Option<Lease>,
    roles: SmallVec<[Role; 4]>,
    /// Reserved in the local fallback store rather than the shared one.
    local: bool,
    /// Actual use so far (attempts on this model).
    pub(crate) usd: f64,
    pub(crate) tokens: u64,
    pub(crate) requests: u32,
}

impl Ticket {
    /// Reconciles the reservation with what the attempts on this model used.
    pub(crate) fn settle(mut self) {
        let Some(lease) = self.lease.take() else { return };
        let actual = self
            .roles
            .iter()
            .map(|r| match r {
                Role::Usd => self.usd,
                Role::Requests => f64::from(self.requests),
                Role::Tokens => self.tokens as f64,
            })
            .collect();
        self.limiter.settle(Settlement { lease, actual }, self.local);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Not settled: the request was cancelled or ended without a word. Give it all back.
        if let Some(lease) = self.lease.take() {
            self.limiter.settle(Settlement::release(lease), self.local);
        }
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket").field("lease", &self.lease).field("local", &self.local).finish_non_exhaustive()
    }
}

/// An admission as built for one request, with what each check and charge stands for.
struct Built {
    admit: Admit,
    /// Per choice: the origin of each check, in order.
    origins: Vec<SmallVec<[Origin; 4]>>,
    /// Per choice: the role of each charge, in order.
    roles: Vec<SmallVec<[Role; 4]>>,
    /// Per choice: the amount reserved against budgets.
    usd: Vec<f64>,
    /// Per budget: its slot, if it applies to the request (for when a refusal may end).
    slots: Vec<Option<Slot>>,
    /// Per choice: whether a closed limit applies and the store is down.
    closed: Vec<bool>,
}

pub(crate) struct Limiter {
    config: LimitsConfig,
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

/// The counter name of budget `b` for a request of `tenant` and `key` (before the bucket), if the
/// budget applies to it.
fn budget_base(b: &Budget, tenant: Option<&str>, key: Option<&str>) -> Option<String> {
    let id = match b.scope {
        Scope::Global => "global".to_owned(),
        Scope::Tenant => match (tenant, &b.tenant) {
            (Some(t), None) => format!("tenant:{t}"),
            (Some(t), Some(only)) if t == only => format!("tenant:{t}"),
            _ => return None,
        },
        Scope::Key => format!("key:{:016x}", hash_key(key?)),
    };
    Some(format!("budget:{id}:{}", b.window.tag()))
}

/// The index of `counter` in `counters`, added if missing.
fn intern(counters: &mut Vec<Counter>, key: String, ttl: Duration) -> u32 {
    let i = counters.iter().position(|c| c.key() == key).unwrap_or_else(|| {
        counters.push(Counter::new(key, ttl));
        counters.len() - 1
    });
    i as u32
}

/// The check of a window's slot over `base` (which is suffixed with the bucket), with the counter
/// charges go to.
fn window_check(counters: &mut Vec<Counter>, base: &str, slot: &Slot, limit: f64) -> (u32, Check) {
    let current = intern(counters, format!("{base}:{}", slot.bucket), slot.ttl);
    let mut terms: SmallVec<[(u32, f64); 2]> = smallvec![(current, 1.0)];
    if let Some(w) = slot.previous {
        terms.insert(0, (intern(counters, format!("{base}:{}", slot.bucket - 1), slot.ttl), w));
    }
    (current, Check { terms, limit })
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
        Ok(Self {
            config,
            store,
            local: MemoryStore::new(),
            rates,
            pending: Mutex::new(Vec::new()),
            backlog: Mutex::new(Vec::new()),
            last_seen: Mutex::new(HashMap::new()),
            down_until: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    pub(crate) fn store_name(&self) -> &str {
        self.store.name()
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn store_is_down(&self) -> bool {
        self.elapsed_ms() < self.down_until.load(Ordering::Acquire)
    }

    fn mark_down(&self) {
        let retry = u64::try_from(self.config.store_retry.as_millis()).unwrap_or(u64::MAX);
        self.down_until.store(self.elapsed_ms().saturating_add(retry), Ordering::Release);
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
    fn build(&self, request: &Request, catalog: &Catalog, models: &[&Candidate], fallback: bool) -> Built {
        let now = now_ms();
        let hints = &request.hints;
        let mut counters = Vec::new();
        let mut budget_checks: SmallVec<[(usize, u32, Check); 4]> = SmallVec::new();
        let mut slots = vec![None; self.config.budgets.len()];
        let mut budget_closed = false;
        for (i, b) in self.config.budgets.iter().enumerate() {
            let Some(base) = budget_base(b, hints.tenant.as_deref(), hints.key.as_deref()) else { continue };
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
            let (charge, check) = window_check(&mut counters, &base, &slot, b.limit_usd);
            budget_checks.push((i, charge, check));
        }
        let minute = super::Window::Sliding(Duration::from_secs(60)).slot(now);
        let mut built = Built {
            admit: Admit::default(),
            origins: Vec::with_capacity(models.len()),
            roles: Vec::with_capacity(models.len()),
            usd: Vec::with_capacity(models.len()),
            slots,
            closed: Vec::with_capacity(models.len()),
        };
        for c in models {
            let model = catalog.model(c.model);
            let (usd, tokens) = self.reservation(request, catalog, c);
            let mut choice =
                Choice { label: Arc::from(model.id.as_str()), charges: SmallVec::new(), checks: SmallVec::new() };
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
                    if let Some(n) = limit.requests_per_minute {
                        let base = format!("rate:{}:requests", model.id);
                        let (charge, check) = window_check(&mut counters, &base, &minute, f64::from(n));
                        choice.charges.push((charge, 1.0));
                        roles.push(Role::Requests);
                        choice.checks.push(check);
                        origins.push(Origin::Requests(r));
                    }
                    if let Some(n) = limit.tokens_per_minute {
                        let base = format!("rate:{}:tokens", model.id);
                        let (charge, check) = window_check(&mut counters, &base, &minute, n as f64);
                        choice.charges.push((charge, tokens));
                        roles.push(Role::Tokens);
                        choice.checks.push(check);
                        origins.push(Origin::Tokens(r));
                    }
                }
            }
            built.admit.choices.push(choice);
            built.origins.push(origins);
            built.roles.push(roles);
            built.usd.push(usd);
            built.closed.push(closed);
        }
        built.admit.counters = counters;
        built
    }

    /// Reserves the first of `models` (in order of preference) that every limit allows, and says
    /// which it was.
    ///
    /// # Errors
    /// [`ErrorKind::BudgetExceeded`], [`ErrorKind::RateLimited`] or [`ErrorKind::Store`] when none
    /// is allowed, with a rejection per model.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        request: &Request,
        catalog: &Catalog,
        models: &[&Candidate],
        sticky: bool,
        deadline: Duration,
    ) -> Result<(usize, Ticket, bool)> {
        let lease_ttl = deadline.saturating_add(self.config.lease_grace);
        let sticky = match (&self.config.sticky, &request.hints.key, sticky) {
            (Some(s), Some(key), true) => {
                Some(Sticky { key: Arc::from(format!("sticky:{:016x}", hash_key(key))), ttl: s.ttl })
            }
            _ => None,
        };
        if !self.store_is_down() {
            let mut built = self.build(request, catalog, models, false);
            built.admit.lease_ttl = lease_ttl;
            built.admit.sticky = sticky.clone();
            built.admit.settle = std::mem::take(&mut *lock(&self.pending));
            let backlog = std::mem::take(&mut *lock(&self.backlog));
            if !backlog.is_empty() {
                built.admit.settle.push(Settlement::unreserved(backlog.iter().cloned()));
            }
            let answer = tokio::time::timeout(self.config.store_timeout, self.store.admit(&built.admit)).await;
            match answer {
                Ok(Ok(admitted)) => {
                    self.remember(&built.admit.counters, &admitted.values);
                    return self
                        .outcome(built, admitted.choice, admitted.lease, &admitted.values, false, catalog, models)
                        .map(|(i, t)| (i, t, admitted.sticky_hit));
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {} ms", self.config.store_timeout.as_millis()),
                    };
                    tracing::warn!(store = self.store.name(), error = %why, "state store failed; serving from local counters");
                    self.mark_down();
                    // Nothing was applied: keep the settlements for the next call.
                    let mut pending = lock(&self.pending);
                    pending.extend(built.admit.settle.into_iter().filter(|s| !s.lease.id.is_empty()));
                    drop(pending);
                    lock(&self.backlog).extend(backlog);
                }
            }
        }
        let mut built = self.build(request, catalog, models, true);
        built.admit.lease_ttl = lease_ttl;
        built.admit.sticky = sticky;
        {
            let seen = lock(&self.last_seen);
            for c in &built.admit.counters {
                if let Some(&v) = seen.get(c.key()) {
                    self.local.seed(c, v);
                }
            }
        }
        // Choices a closed limit applies to cannot be checked: none of them may be taken.
        for (choice, closed) in built.admit.choices.iter_mut().zip(&built.closed) {
            if *closed {
                choice.checks.push(Check { terms: SmallVec::new(), limit: f64::NEG_INFINITY });
            }
        }
        let admitted = self.local.admit_now(&built.admit)?;
        self.outcome(built, admitted.choice, admitted.lease, &admitted.values, true, catalog, models)
            .map(|(i, t)| (i, t, admitted.sticky_hit))
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

    #[allow(clippy::too_many_arguments)]
    fn outcome(
        self: &Arc<Self>,
        built: Built,
        choice: Option<usize>,
        lease: Option<Lease>,
        values: &[f64],
        local: bool,
        catalog: &Catalog,
        models: &[&Candidate],
    ) -> Result<(usize, Ticket)> {
        if let (Some(i), Some(lease)) = (choice, lease) {
            let roles = built.roles[i].clone();
            return Ok((
                i,
                Ticket { limiter: self.clone(), lease: Some(lease), roles, local, usd: 0.0, tokens: 0, requests: 0 },
            ));
        }
        // Nothing fits: say why for each model.
        let mut rejections = Vec::with_capacity(models.len());
        let (mut budget, mut closed, mut retry_in) = (false, false, None::<Duration>);
        let mut budget_retry: Option<Duration> = None;
        for (k, c) in models.iter().enumerate() {
            let id = catalog.model(c.model).id.clone();
            if built.closed[k] {
                closed = true;
                rejections.push(Rejection::new(id, RejectReason::StoreUnavailable));
                continue;
            }
            let choice = &built.admit.choices[k];
            let failed = choice.checks.iter().zip(&built.origins[k]).find(|(check, _)| {
                !crate::state::fits(
                    &Choice {
                        label: choice.label.clone(),
                        charges: choice.charges.clone(),
                        checks: smallvec![(*check).clone()],
                    },
                    values,
                )
            });
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
                        needed: built.usd[k],
                        remaining: (check.limit - used).max(0.0),
                    }
                }
                Origin::Requests(r) | Origin::Tokens(r) => {
                    let minute = super::Window::Sliding(Duration::from_secs(60)).slot(now_ms());
                    retry_in = Some(retry_in.map_or(minute.resets_in, |d| d.min(minute.resets_in)));
                    let what = if matches!(origin, Origin::Requests(_)) { "requests" } else { "tokens" };
                    let _ = r;
                    RejectReason::RateLimit { limit: format!("{} {what} per minute", check.limit) }
                }
            };
            rejections.push(Rejection::new(id, reason));
        }
        let (kind, what) = if budget {
            (ErrorKind::BudgetExceeded, "no candidate fits within its budgets")
        } else if closed && rejections.iter().all(|r| matches!(r.reason(), RejectReason::StoreUnavailable)) {
            (ErrorKind::Store, "the state store is unreachable and every candidate has a limit that fails closed")
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

    /// Settles a reservation: at once for the local store or a store that can, otherwise with the
    /// next admission.
    fn settle(&self, settlement: Settlement, local: bool) {
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
        } else if !self.store.settle_now(std::slice::from_ref(&settlement)) {
            lock(&self.pending).push(settlement);
        }
    }

    /// What each budget that applies to `tenant` and `key` has spent and reserved.
    pub(crate) async fn status(&self, tenant: Option<&str>, key: Option<&str>) -> Result<Vec<BudgetStatus>> {
        let now = now_ms();
        let mut counters = Vec::new();
        let mut checks = Vec::new();
        for b in &self.config.budgets {
            let Some(base) = budget_base(b, tenant, key) else { continue };
            let slot = b.window.slot(now);
            let (_, check) = window_check(&mut counters, &base, &slot, b.limit_usd);
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

    /// Sends queued settlements and local spending to the store now.
    pub(crate) async fn flush(&self) -> Result<()> {
        let mut batch = std::mem::take(&mut *lock(&self.pending));
        let backlog = std::mem::take(&mut *lock(&self.backlog));
        if !backlog.is_empty() {
            batch.push(Settlement::unreserved(backlog.iter().cloned()));
        }
        if batch.is_empty() {
            return Ok(());
        }
        let result = match tokio::time::timeout(self.config.store_timeout, self.store.settle(&batch)).await {
            Ok(result) => result,
            Err(_) => Err(self.timeout_error()),
        };
        if result.is_err() {
            lock(&self.pending).extend(batch.into_iter().filter(|s| !s.lease.id.is_empty()));
            lock(&self.backlog).extend(backlog);
        }
        result
    }
}
