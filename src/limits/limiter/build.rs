//! Building an admission: the checks and charges of each candidate, and what each stands for.

use std::sync::Arc;
use std::time::Duration;

use smallvec::{SmallVec, smallvec};

use super::keys::{SlotKeys, escape_key, scope_id};
use super::ticket::Role;
use super::{Limiter, lock, now_ms};
use crate::catalog::Catalog;
use crate::cost::price;
use crate::limits::CallerRateLimit;
use crate::limits::{OnStoreFailure, Reserve, Window};
use crate::policy::Candidate;
use crate::request::Request;
use crate::state::Slot;
use crate::state::{Admit, Bound, Check, Choice, Counter, One, Sticky};

/// Where a check comes from, to explain a refusal.
#[derive(Clone, Copy, Debug)]
pub(super) enum Origin {
    /// The budget at this index of the config.
    Budget(usize),
    /// The model's requests per minute.
    Requests,
    /// The model's tokens per minute.
    Tokens,
    /// The caller rate limit at this index of the config: its requests, or with `tokens` its
    /// tokens, per minute.
    Caller { limit: usize, tokens: bool },
}

/// A caller rate limit that applies to a request: the counter each of its limits charges, and its
/// check (none while it fails open).
struct CallerCheck {
    limit: usize,
    requests: Option<(u32, Option<Check>)>,
    tokens: Option<(u32, Option<Check>)>,
}

/// An admission as built for one request, with what each check and charge stands for.
pub(super) struct Built {
    pub(super) admit: Admit,
    /// Per choice, what its checks and charges stand for.
    pub(super) meta: SmallVec<[Meta; 1]>,
    /// Per budget: its slot, if it applies to the request (for when a refusal may end).
    pub(super) slots: SmallVec<[Option<Slot>; 4]>,
    /// The sliding minute of rate limits (for when a refusal may end).
    pub(super) minute: Slot,
}

/// What a choice's checks and charges stand for.
pub(super) struct Meta {
    /// The origin of each check, in order.
    pub(super) origins: SmallVec<[Origin; 4]>,
    /// The role of each charge, in order.
    pub(super) roles: SmallVec<[Role; 4]>,
    /// The amount reserved against budgets.
    pub(super) usd: f64,
    /// Whether a closed limit applies and the store is down.
    pub(super) closed: bool,
}

impl Limiter {
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
    /// not apply while the store is down are left out and closed ones mark their choices. With
    /// `count`, the admission counts the request against caller rate limits (its first admission
    /// that leads to a call); without, only its tokens.
    fn build(
        &self,
        request: &Request,
        catalog: &Catalog,
        models: &[&Candidate],
        fallback: bool,
        circuits: bool,
        count: bool,
    ) -> Built {
        let now = now_ms();
        let hints = &request.hints;
        let mut counters = Vec::with_capacity(4);
        // Per budget that applies: its index, its charge, and its check (none for a budget that fails
        // open while the store is down: charged locally, to be replayed, but not enforced).
        let mut budget_checks: SmallVec<[(usize, u32, Option<Check>); 4]> = SmallVec::new();
        let mut slots: SmallVec<[Option<Slot>; 4]> = smallvec![None; self.config.budgets.len()];
        let minute = Window::Sliding(Duration::from_secs(60)).slot(now);
        // Caller rate limits: checked first (nothing else matters to a caller over its limit).
        let (callers, caller_closed) = self.caller_checks(request, &mut counters, &minute, fallback, count);
        let mut budget_closed = caller_closed;
        for (i, b) in self.config.budgets.iter().enumerate() {
            let Some(id) = scope_id(b, hints.tenant.as_deref(), hints.key.as_deref()) else { continue };
            let slot = b.window.slot(now);
            slots[i] = Some(slot);
            let enforced = match (fallback, b.on_store_failure) {
                (true, OnStoreFailure::Closed) => {
                    budget_closed = true;
                    continue;
                }
                (true, OnStoreFailure::Open) => false,
                _ => true,
            };
            let (charge, check) = self.budget_keys(i, id, &slot, |k| k.check(&mut counters, &slot, b.limit_usd));
            budget_checks.push((i, charge, enforced.then_some(check)));
        }
        let mut built = Built {
            admit: Admit { choices: Vec::with_capacity(models.len()), ..Admit::default() },
            meta: SmallVec::with_capacity(models.len()),
            slots,
            minute,
        };
        for c in models {
            let model = catalog.model(c.model);
            let (usd, tokens) = self.reservation(request, catalog, c);
            let label = self.labels.get(c.model).cloned().unwrap_or_else(|| Arc::from(model.id.as_str()));
            let flag = if circuits { self.circuit_flags.get(c.model).cloned() } else { None };
            let mut choice = Choice { label, charges: SmallVec::new(), checks: SmallVec::new(), flag };
            let mut origins = SmallVec::new();
            let mut roles = SmallVec::new();
            for cc in &callers {
                let parts = [(&cc.requests, 1.0, Role::Call, false), (&cc.tokens, tokens, Role::Tokens, true)];
                for (part, amount, role, is_tokens) in parts {
                    let Some((charge, check)) = part else { continue };
                    // Limits of one scope share counters: charge each counter once.
                    if !choice.charges.iter().any(|(i, _)| i == charge) {
                        choice.charges.push((*charge, amount));
                        roles.push(role);
                    }
                    if let Some(check) = check {
                        choice.checks.push(check.clone());
                        origins.push(Origin::Caller { limit: cc.limit, tokens: is_tokens });
                    }
                }
            }
            for (b, charge, check) in &budget_checks {
                // Budgets share counters: charge each counter once.
                if !choice.charges.iter().any(|(i, _)| i == charge) {
                    choice.charges.push((*charge, usd));
                    roles.push(Role::Usd);
                }
                if let Some(check) = check {
                    choice.checks.push(check.clone());
                    origins.push(Origin::Budget(*b));
                }
            }
            let mut closed = budget_closed;
            if let Some(r) = self.rates.get(c.model).copied().flatten() {
                let limit = &self.config.rate_limits[r];
                // Open while the store is down: counted locally (and replayed), not enforced.
                let open = fallback && limit.on_store_failure == OnStoreFailure::Open;
                closed |= fallback && limit.on_store_failure == OnStoreFailure::Closed;
                if !closed {
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
                        if !open {
                            if let Some(s) = soft(&check) {
                                choice.checks.push(s);
                                origins.push(Origin::Requests);
                            }
                            choice.checks.push(check);
                            origins.push(Origin::Requests);
                        }
                    }
                    if let Some(n) = limit.tokens_per_minute {
                        let keys = SlotKeys { bucket: minute.bucket, current: tok, previous: tok_prev };
                        let (charge, check) = keys.check(&mut counters, &minute, n as f64);
                        choice.charges.push((charge, tokens));
                        roles.push(Role::Tokens);
                        if !open {
                            if let Some(s) = soft(&check) {
                                choice.checks.push(s);
                                origins.push(Origin::Tokens);
                            }
                            choice.checks.push(check);
                            origins.push(Origin::Tokens);
                        }
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

    /// The caller rate limits that apply to `request`, their counters added to `counters`; and
    /// whether one fails closed while the store is down (`fallback`).
    fn caller_checks(
        &self,
        request: &Request,
        counters: &mut Vec<Counter>,
        minute: &Slot,
        fallback: bool,
        count: bool,
    ) -> (SmallVec<[CallerCheck; 2]>, bool) {
        let all = &self.config.caller_rate_limits;
        let mut checks = SmallVec::new();
        let mut closed = false;
        if all.is_empty() {
            return (checks, closed);
        }
        let (tenant, key) = (request.hints.tenant.as_deref(), request.hints.key.as_deref());
        let mut keys = lock(&self.keys);
        for (i, l) in all.iter().enumerate() {
            let Some(id) = CallerRateLimit::scope_id(all, i, tenant, key) else { continue };
            let requests = l.requests_per_minute.filter(|_| count);
            if requests.is_none() && l.tokens_per_minute.is_none() {
                // Already counted, and only requests are limited: nothing to do here.
                continue;
            }
            let enforced = match (fallback, l.on_store_failure) {
                (true, OnStoreFailure::Closed) => {
                    closed = true;
                    continue;
                }
                (true, OnStoreFailure::Open) => false,
                _ => true,
            };
            let [req, req_prev, tok, tok_prev] = Self::caller_keys_in(&mut keys, &l.scope, id, minute);
            let mut part = |current: Counter, previous: Counter, n: f64| {
                let keys = SlotKeys { bucket: minute.bucket, current, previous };
                let (charge, check) = keys.check(counters, minute, n);
                (charge, enforced.then_some(check))
            };
            let requests = requests.map(|n| part(req, req_prev, f64::from(n)));
            let tokens = l.tokens_per_minute.map(|n| part(tok, tok_prev, n as f64));
            checks.push(CallerCheck { limit: i, requests, tokens });
        }
        (checks, closed)
    }

    /// [`build`](Self::build) with the lease's life and the sticky entry.
    #[allow(clippy::too_many_arguments, reason = "one admission's every input, private")]
    pub(super) fn admission(
        &self,
        request: &Request,
        catalog: &Catalog,
        models: &[&Candidate],
        fallback: bool,
        circuits: bool,
        count: bool,
        lease_ttl: Duration,
        sticky: &Option<Sticky>,
    ) -> Built {
        let mut built = self.build(request, catalog, models, fallback, circuits, count);
        built.admit.lease_ttl = lease_ttl;
        built.admit.sticky = sticky.clone();
        built
    }

    /// The sticky entry of a request, when sticky sessions are on and this is its first pick.
    pub(super) fn sticky(&self, request: &Request, first_pick: bool) -> Option<Sticky> {
        match (&self.config.sticky, &request.hints.key, first_pick) {
            (Some(s), Some(key), true) => {
                Some(Sticky { key: Arc::from(format!("sticky:{}", escape_key(key))), ttl: s.ttl })
            }
            _ => None,
        }
    }

    /// The first of `models` alone, for an in-process store: its charges, its bounds (soft checks
    /// as strict ones: alone, it is taken only if the full admission would take it), its flag, and
    /// what each charge stands for. Counter names come from the key cache; nothing else is built.
    /// With `count`, the request counts against caller rate limits (as in [`build`](Self::build)).
    pub(super) fn one(
        &self,
        request: &Request,
        catalog: &Catalog,
        c: &Candidate,
        circuits: bool,
        count: bool,
        now: u64,
    ) -> (One, SmallVec<[Role; 4]>, SmallVec<[bool; 4]>) {
        let hints = &request.hints;
        // Per leading bound: whether it is a caller's tokens (else its requests).
        let mut callers: SmallVec<[bool; 4]> = SmallVec::new();
        let (usd, tokens) = self.reservation(request, catalog, c);
        let mut one = One::default();
        let mut roles = SmallVec::new();
        let mut keys = lock(&self.keys);
        let minute = Window::Sliding(Duration::from_secs(60)).slot(now);
        let all = &self.config.caller_rate_limits;
        for (i, l) in all.iter().enumerate() {
            let Some(id) = CallerRateLimit::scope_id(all, i, hints.tenant.as_deref(), hints.key.as_deref()) else {
                continue;
            };
            let requests = l.requests_per_minute.filter(|_| count);
            if requests.is_none() && l.tokens_per_minute.is_none() {
                continue;
            }
            let [req, req_prev, tok, tok_prev] = Self::caller_keys_in(&mut keys, &l.scope, id, &minute);
            let w = minute.previous.unwrap_or(0.0);
            let mut part = |current: Counter, previous: Counter, charge: f64, limit: f64, role: Role| {
                // Limits of one scope share counters: charge each counter once.
                let at = one.charges.iter().position(|(k, _)| *k == current).unwrap_or_else(|| {
                    one.charges.push((current, charge));
                    roles.push(role);
                    one.charges.len() - 1
                });
                one.bounds.push(Bound { current: at, previous: Some((previous, w)), limit });
                callers.push(role == Role::Tokens);
            };
            if let Some(n) = requests {
                part(req, req_prev, 1.0, f64::from(n), Role::Call);
            }
            if let Some(n) = l.tokens_per_minute {
                part(tok, tok_prev, tokens, n as f64, Role::Tokens);
            }
        }
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
        one.report = callers.len();
        (one, roles, callers)
    }
}
