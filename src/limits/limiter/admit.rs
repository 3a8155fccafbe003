//! Admission: the first candidate every limit allows, from the store, or from local counters while
//! the store fails; and why none was when none was.

use std::sync::Arc;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use super::build::{Built, Origin};
use super::ticket::{Admission, Held, Ticket};
use super::{Limiter, lock};
use crate::catalog::{Catalog, ModelIndex};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{CallerLimits, LimitRoom, Window};
use crate::policy::{Candidate, RejectReason, Rejection};
use crate::request::Request;
use crate::state::{Admitted, Counter};

/// A random lease id in `[2^52, 2^53)`: clear of the ids a store numbers from 1, exact as a double.
fn lease_id() -> u64 {
    use crate::state::NAMED_LEASES;
    NAMED_LEASES | (super::random_bits() & (NAMED_LEASES - 1))
}

/// The most counters whose last store value is kept to seed local counters in an outage.
const LAST_SEEN_CAP: usize = 65_536;

impl Limiter {
    /// Reserves `first`, the preferred candidate, alone through an in-process store when it fits:
    /// most requests take their first choice, and this takes it without building an [`Admit`](crate::state::Admit) or
    /// listing the other candidates. `None`: the store is not in process, something waits to be
    /// sent to it, a sticky entry may choose another model, or `first` does not fit or is flagged;
    /// the caller then goes through [`admit_now`](Self::admit_now) or [`admit`](Self::admit), which
    /// also say why.
    ///
    /// With `count`, the admission counts the request against caller rate limits: the caller
    /// passes it until a model of the request has been called, so that a request counts once
    /// however many attempts it takes.
    #[allow(clippy::too_many_arguments, reason = "the candidate with its request, its clock and its deadline")]
    pub(crate) fn admit_first(
        self: &Arc<Self>,
        request: &Request,
        catalog: &Catalog,
        first: &Candidate,
        first_pick: bool,
        count: bool,
        circuits: bool,
        now: Instant,
        deadline: Instant,
    ) -> Option<Admission> {
        let store = self.store.memory()?;
        if self.store_is_down()
            || !self.quiet()
            || (first_pick && self.config.sticky.is_some() && request.hints.key.is_some())
        {
            return None;
        }
        // `now`, the caller's clock reading, serves the windows and the store.
        let circuits = circuits && self.config.share_circuits;
        let wall = self.wall_ms(now);
        let (one, roles, callers) = self.one(request, catalog, first, circuits, count, wall);
        let limits: SmallVec<[f64; 4]> = one.bounds.iter().take(callers.len()).map(|b| b.limit).collect();
        let until = deadline.max(now).checked_add(self.config.lease_grace).unwrap_or(deadline);
        let (id, readings) = store.reserve(one, now, until)?;
        let caller = (!callers.is_empty()).then(|| {
            let minute = Window::Sliding(Duration::from_secs(60)).slot(wall);
            let mut status = CallerLimits::default();
            for ((&tokens, &limit), &(previous, current)) in callers.iter().zip(&limits).zip(&readings) {
                status.add(tokens, room(previous, current, limit, &minute));
            }
            status
        });
        let ticket = Ticket {
            limiter: self.clone(),
            held: Some(Held::Reserved(id)),
            roles,
            local: false,
            usd: 0.0,
            tokens: 0,
            requests: 0,
        };
        Some(Admission { position: 0, ticket, sticky: false, blocked: SmallVec::new(), caller })
    }

    /// Admits without waiting when the store is in process ([`MemoryStore`](crate::state::MemoryStore))
    /// and nothing is queued for it; `None` otherwise, and the caller goes through
    /// [`admit`](Self::admit). The full admission, at once: the first choice alone was offered
    /// through [`admit_first`](Self::admit_first).
    ///
    /// # Errors
    /// As [`admit`](Self::admit).
    #[allow(clippy::too_many_arguments, reason = "as `admit`")]
    pub(crate) fn admit_now(
        self: &Arc<Self>,
        request: &Request,
        catalog: &Catalog,
        models: &[&Candidate],
        first_pick: bool,
        count: bool,
        circuits: bool,
        deadline: Duration,
    ) -> Option<Result<Admission>> {
        let store = self.store.memory()?;
        if self.store_is_down() || !self.quiet() {
            return None;
        }
        let lease_ttl = deadline.saturating_add(self.config.lease_grace);
        let sticky = self.sticky(request, first_pick);
        let circuits = circuits && self.config.share_circuits;
        let built = self.admission(request, catalog, models, false, circuits, count, lease_ttl, &sticky);
        Some(store.admit_now(&built.admit).and_then(|a| self.outcome(&built, a, false, catalog, models)))
    }

    /// Reserves the first of `models` (in order of preference) that every limit allows, and says
    /// which it was. With `circuits`, models whose circuit another replica opened are passed over.
    /// Callers try [`admit_now`](Self::admit_now) first; this asks the store and waits for it, and
    /// serves from local counters when it fails.
    ///
    /// # Errors
    /// [`ErrorKind::BudgetExceeded`], [`ErrorKind::RateLimited`], [`ErrorKind::Store`] or
    /// [`ErrorKind::NoCandidate`] (every circuit open) when none is allowed, with a rejection per
    /// model. With `count`, as [`admit_first`](Self::admit_first).
    #[allow(clippy::too_many_arguments, reason = "one admission's every input, private")]
    pub(crate) async fn admit(
        self: &Arc<Self>,
        request: &Request,
        catalog: &Catalog,
        models: &[&Candidate],
        first_pick: bool,
        count: bool,
        circuits: bool,
        deadline: Duration,
    ) -> Result<Admission> {
        let lease_ttl = deadline.saturating_add(self.config.lease_grace);
        let sticky = self.sticky(request, first_pick);
        let circuits = circuits && self.config.share_circuits;
        let admission = |models: &[&Candidate], fallback: bool, circuits: bool| {
            self.admission(request, catalog, models, fallback, circuits, count, lease_ttl, &sticky)
        };
        if !self.store_is_down() {
            let mut built = admission(models, false, circuits);
            // Named here, so that a reservation whose reply is lost can be given back.
            built.admit.lease_id = self.store.memory().is_none().then(lease_id);
            let sending = self.take_queued(std::mem::take(&mut built.admit));
            let answer = tokio::time::timeout(self.config.store_timeout, self.store.admit(&sending.admit)).await;
            match answer {
                Ok(Ok(admitted)) => {
                    built.admit = sending.done();
                    self.remember(&built.admit.counters, &admitted.values);
                    return self.outcome(&built, admitted, false, catalog, models);
                }
                failed => {
                    // What was to be sent goes with the next call (a settlement applied twice counts
                    // once; a flag set twice is the same flag), and the store may have run the
                    // admission: its reservation, if any, is given back by id (this request is
                    // served and counted locally, and its spending replayed with the backlog).
                    drop(sending);
                    self.queued_for_store();
                    let why = match failed {
                        // An in-process store is not down when it refuses (it is full): the refusal,
                        // which changed nothing, is the answer.
                        Ok(Err(e)) if self.store.memory().is_some() => return Err(e),
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {} ms", self.config.store_timeout.as_millis()),
                    };
                    tracing::warn!(store = self.store.name(), error = %why, "state store failed; serving from local counters");
                    self.mark_down();
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

    /// When choice `k` of `built` may fit again, as far as its failing checks tell: the longest of
    /// their waits (a budget's until its window turns over, a rate limit's until the sliding minute
    /// frees enough room); `None` when one can never hold (a request with more tokens than a limit).
    fn wait(&self, built: &Built, k: usize, values: &[f64]) -> Option<Duration> {
        let choice = &built.admit.choices[k];
        let mut longest = Duration::ZERO;
        let failing = choice
            .checks
            .iter()
            .zip(&built.meta[k].origins)
            .filter(|(check, _)| !check.soft && !crate::state::holds(check, &choice.charges, values));
        for (check, origin) in failing {
            let wait = match *origin {
                Origin::Budget(b) => built.slots[b].map(|s| s.resets_in)?,
                Origin::Requests | Origin::Tokens | Origin::Caller { .. } => {
                    let value = |i: u32| values.get(i as usize).copied().unwrap_or(0.0);
                    let charge = |i: u32| choice.charges.iter().filter(|(j, _)| *j == i).map(|(_, a)| a).sum::<f64>();
                    let (previous, current) = match check.terms[..] {
                        [(p, _), (c, _)] => (value(p) + charge(p), c),
                        [(c, _)] => (0.0, c),
                        _ => return None,
                    };
                    minute_wait(previous, value(current), charge(current), check.limit, &built.minute)?
                }
            };
            longest = longest.max(wait);
        }
        Some(longest)
    }

    fn remember(&self, counters: &[Counter], values: &[f64]) {
        let mut seen = lock(&self.last_seen);
        // Bounded: past the cap, counters start from 0 again in an outage (about 100 bytes each).
        if seen.len() > LAST_SEEN_CAP {
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
            let caller = caller_status(built, i, values);
            return Ok(Admission { position: i, ticket, sticky: sticky_hit, blocked, caller });
        }
        // Nothing fits: say why for each model.
        let mut rejections = Vec::with_capacity(models.len());
        let (mut budget, mut closed, mut circuit, mut retry_in) = (false, false, false, None::<Duration>);
        let mut budget_retry: Option<Duration> = None;
        let mut caller = false;
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
            if let Some(wait) = self.wait(built, k, values) {
                retry_in = Some(retry_in.map_or(wait, |d| d.min(wait)));
            }
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
                Origin::Caller { limit, tokens } => {
                    caller = true;
                    let what = if tokens { "tokens" } else { "requests" };
                    RejectReason::CallerRateLimit {
                        limit: self.config.caller_rate_limits[limit].label(what, check.limit),
                    }
                }
                Origin::Requests | Origin::Tokens => {
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
        } else if caller && rejections.iter().all(|r| matches!(r.reason(), RejectReason::CallerRateLimit { .. })) {
            (ErrorKind::RateLimited, "the caller is at a rate limit")
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
            // A caller refused: where it stands, from the same reading (nothing of this request in it).
            ErrorKind::RateLimited if caller => {
                error.with_retry_after(retry_in).with_caller_limits(caller_status(built, 0, values))
            }
            ErrorKind::RateLimited => error.with_retry_after(retry_in),
            ErrorKind::BudgetExceeded => error.with_retry_after(budget_retry),
            _ => error,
        })
    }
}

/// The caller limits' room at choice `i` of `built`, from the store's `values`: after its admission
/// (charges included), or, for a refused one, as the store read them; `None` when no caller limit
/// applies.
fn caller_status(built: &Built, i: usize, values: &[f64]) -> Option<CallerLimits> {
    let mut status = CallerLimits::default();
    let choice = &built.admit.choices[i];
    for (check, origin) in choice.checks.iter().zip(&built.meta[i].origins) {
        let Origin::Caller { tokens, .. } = *origin else { continue };
        let value = |i: u32| values.get(i as usize).copied().unwrap_or(0.0);
        let (previous, current) = match check.terms[..] {
            [(p, _), (c, _)] => (value(p), value(c)),
            [(c, _)] => (0.0, value(c)),
            _ => continue,
        };
        status.add(tokens, room(previous, current, check.limit, &built.minute));
    }
    (!status.is_empty()).then_some(status)
}

/// One caller limit's room over the sliding minute `minute`, with `previous` (unweighted) and
/// `current` counted.
fn room(previous: f64, current: f64, limit: f64, minute: &crate::state::Slot) -> LimitRoom {
    let used = minute.previous.unwrap_or(0.0) * previous + current;
    LimitRoom {
        limit: limit.max(0.0) as u64,
        remaining: (limit - used).max(0.0).floor() as u64,
        // Until the minute holds nothing: the wait for room under a limit of 0.
        resets_in: minute_wait(previous, current, 0.0, 0.0, minute).unwrap_or(Duration::ZERO),
    }
}

/// How long until `w·previous + current + charge ≤ limit` holds over the sliding minute of
/// `minute`, if no more is charged meanwhile: while the current bucket lasts, the previous bucket's
/// weight `w` falls linearly to 0; then the current bucket becomes the previous one, with weight 1
/// falling again, and the charge goes to a new, empty bucket. `None` when the charge alone exceeds
/// the limit. Rounded up to the millisecond.
fn minute_wait(previous: f64, current: f64, charge: f64, limit: f64, minute: &crate::state::Slot) -> Option<Duration> {
    const LEN: f64 = 60_000.0;
    let left = minute.resets_in.as_secs_f64() * 1000.0;
    let into = LEN - left;
    let room = limit - current - charge;
    let ms = if room >= 0.0 {
        // The previous bucket's share must fall to `room`.
        if previous <= room { 0.0 } else { (LEN * (1.0 - room / previous) - into).clamp(0.0, left) }
    } else {
        let room = limit - charge;
        if room < 0.0 {
            return None;
        }
        // After the turn, the current bucket's share (from weight 1) must fall to `room`.
        let after = if current <= room { 0.0 } else { LEN * (1.0 - room / current) };
        left + after
    };
    // Less a hair, so that float error does not add a millisecond to an exact answer.
    ms.is_finite().then(|| Duration::from_millis((ms - 1e-6).max(0.0).ceil() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ModelProfile, Pricing};
    use crate::cost::CostEstimate;
    use crate::hash::Rng;
    use crate::limits::{Budget, CallerRateLimit, LimitsConfig, RateLimit, Scope, Window};
    use crate::state::MemoryStore;

    #[test]
    fn a_sliding_minute_frees_room_as_its_previous_bucket_fades() {
        let at = |left_ms: u64| Window::Sliding(Duration::from_secs(60)).slot(60_000 * 1000 + 60_000 - left_ms);
        // 15 s into the bucket: the previous bucket (60) weighs 0.75 → 45, plus 10 now, plus 1 > 50.
        let minute = at(45_000);
        assert_eq!(minute.previous, Some(0.75));
        // Room for 1 more once 60·w + 10 + 1 ≤ 50: w ≤ 0.65, 21 s into the bucket, 6 s from now.
        assert_eq!(minute_wait(60.0, 10.0, 1.0, 50.0, &minute), Some(Duration::from_secs(6)));
        // Already fits: no wait.
        assert_eq!(minute_wait(10.0, 10.0, 1.0, 50.0, &minute), Some(Duration::ZERO));
        // The current bucket alone is over: after the turn (in 45 s) it weighs 1, falling, and must
        // fall to 29 (the limit less the charge): to 29/40 after 16.5 s, or 19/20 after 3 s.
        assert_eq!(minute_wait(0.0, 40.0, 1.0, 30.0, &minute), Some(Duration::from_millis(45_000 + 16_500)));
        assert_eq!(minute_wait(0.0, 20.0, 10.0, 29.0, &minute), Some(Duration::from_secs(48)));
        // A charge over the limit never fits.
        assert_eq!(minute_wait(0.0, 0.0, 31.0, 30.0, &minute), None);
    }

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
            .caller_rate_limit(CallerRateLimit::new(Scope::Tenant).requests_per_minute(40))
            .caller_rate_limit(CallerRateLimit::tenant("b").requests_per_minute(30).tokens_per_minute(200_000))
            .caller_rate_limit(CallerRateLimit::new(Scope::Key).tokens_per_minute(150_000))
            .caller_rate_limit(CallerRateLimit::new(Scope::Global).requests_per_minute(500))
    }

    /// A caller's room: the previous bucket weighed as the admission weighs it, and when the
    /// minute is empty again.
    #[test]
    fn a_callers_room_weighs_the_previous_bucket_as_the_admission_does() {
        let minute = Window::Sliding(Duration::from_secs(60)).slot(15_000);
        // A quarter into the minute: the previous bucket counts three quarters.
        assert_eq!(minute.previous, Some(0.75));
        let r = room(4.0, 2.0, 10.0, &minute);
        assert_eq!((r.limit, r.remaining), (10, 5), "10 − (0.75·4 + 2)");
        // Something in this bucket: empty once it has turned over (45 s) and faded (60 s).
        assert_eq!(r.resets_in, Duration::from_secs(105));
        // Only the previous bucket: empty when its weight reaches 0, at this bucket's end.
        assert_eq!(room(4.0, 0.0, 10.0, &minute).resets_in, Duration::from_secs(45));
        assert_eq!(room(0.0, 0.0, 10.0, &minute), LimitRoom { limit: 10, remaining: 10, resets_in: Duration::ZERO });
        // Over the limit (another replica's counts): no room, never a negative one.
        assert_eq!(room(40.0, 2.0, 10.0, &minute).remaining, 0);
    }

    /// The first choice reserved alone (`admit_first`) decides as the full admission does, step
    /// for step, over budgets that share counters, sliding and calendar windows, keys, rate limits
    /// with and without `prefer_below`, caller rate limits counting the request or not, settlements
    /// and releases, and reads the caller's room alike.
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
            let count = rng.below(4) > 0;
            let a = match quick.admit_first(
                &request,
                &catalog,
                listed[0],
                true,
                count,
                true,
                Instant::now(),
                Instant::now() + deadline,
            ) {
                Some(admission) => Ok(admission),
                None => quick.admit_now(&request, &catalog, &listed, true, count, true, deadline).unwrap(),
            };
            let b = full.admit_now(&request, &catalog, &listed, true, count, true, deadline).unwrap();
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.position, b.position, "step {step}");
                    // The caller's room reads the same from either path (the two stores' minutes
                    // may weigh their previous bucket a millisecond apart).
                    let rooms = |c: Option<CallerLimits>| {
                        c.map(|c| [c.requests, c.tokens].map(|r| r.map(|r| (r.limit, r.remaining))))
                    };
                    match (rooms(a.caller), rooms(b.caller)) {
                        (Some(x), Some(y)) => {
                            for (x, y) in x.into_iter().zip(y) {
                                let close = match (x, y) {
                                    (Some((lx, rx)), Some((ly, ry))) => lx == ly && rx.abs_diff(ry) <= 1,
                                    (None, None) => true,
                                    _ => false,
                                };
                                assert!(close, "step {step}: {:?} against {:?}", a.caller, b.caller);
                            }
                        }
                        (x, y) => assert_eq!(x.is_some(), y.is_some(), "step {step}"),
                    }
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
        let open = |l: &Limiter| l.store.memory().map(MemoryStore::open_leases);
        assert_eq!((open(&quick), open(&full)), (Some(0), Some(0)));
    }
}
