//! `complete` and `stream`: attempts along the decision's ranking, with retries, fallbacks, escalation
//! and a commit point for streams. See [`crate::execution`] for the rules.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use smallvec::SmallVec;
use tokio::time::Instant;
use tracing::Instrument;

use crate::catalog::{Capabilities, ModelIndex, ModelProfile};
use crate::error::{Error, ErrorKind, Result};
use crate::execution::{Attempt, AttemptOutcome, AttemptReason};
use crate::health::CircuitState;
use crate::health::{Admission, HealthTracker, Observation};
use crate::limits::{Admission as LimitsAdmission, Ticket};
use crate::policy::{Candidate, Decision, RejectReason, Rejection, sigmoid};
use crate::provider::Provider;
use crate::quality::{Inadequacy, Verdict};
use crate::request::Request;
use crate::response::{EventStream, Response, StreamEvent, Usage};
use crate::retry::{Backoff, Jitter, NonRetryable};
use crate::router::{Router, attach_model};

/// The order in which a decision's candidates are tried.
struct Plan<'a> {
    decision: &'a Decision,
    tried: Vec<bool>,
    /// After an escalation, only candidates predicted to answer better than this may answer.
    floor: f64,
    /// After a context overflow, only candidates with a larger context window than this may answer.
    min_window: u32,
}

impl<'a> Plan<'a> {
    fn new(decision: &'a Decision) -> Self {
        Self { decision, tried: vec![false; decision.catalog().len()], floor: f64::NEG_INFINITY, min_window: 0 }
    }

    /// The predicted quality of `model`'s answer: `σ(logit)`, without the live success rate (which
    /// says whether a call goes through, not how good its answer is).
    fn p(&self, model: ModelIndex) -> f64 {
        self.decision.candidates().iter().find(|c| c.model == model).map_or(0.0, |c| sigmoid(c.logit))
    }

    fn window(&self, model: ModelIndex) -> u32 {
        self.decision.catalog().model(model).context_window
    }

    fn mark(&mut self, model: ModelIndex) {
        if let Some(t) = self.tried.get_mut(model) {
            *t = true;
        }
    }

    /// The untried models in ranking order that satisfy `ok` (and the escalation and window floors).
    fn eligible(&self, ok: impl Fn(&Self, ModelIndex) -> bool) -> SmallVec<[ModelIndex; 16]> {
        self.decision
            .ranking()
            .iter()
            .map(|s| s.model)
            .filter(|&m| {
                !self.tried.get(m).copied().unwrap_or(true)
                    && self.window(m) > self.min_window
                    && (self.floor == f64::NEG_INFINITY || self.p(m) > self.floor)
                    && ok(self, m)
            })
            .collect()
    }

    /// The models that may be tried next, in order, for `pick`, and the reason for an attempt.
    fn options(&mut self, pick: Pick) -> (SmallVec<[ModelIndex; 16]>, AttemptReason) {
        match pick {
            Pick::First => (self.eligible(|_, _| true), first_reason(self.decision)),
            Pick::Next => (self.eligible(|_, _| true), AttemptReason::Fallback),
            // Only candidates with a larger window from then on (a smaller one would overflow too).
            Pick::LargerWindow(model) => {
                self.min_window = self.min_window.max(self.window(model));
                (self.eligible(|_, _| true), AttemptReason::LargerContext)
            }
            // Only candidates predicted to answer better than `model` from then on.
            Pick::Stronger(model) => {
                let floor = self.p(model).max(self.floor);
                let list = self.eligible(|plan, m| plan.p(m) > floor);
                if !list.is_empty() {
                    self.floor = floor;
                }
                (list, AttemptReason::Escalation)
            }
        }
    }
}

/// Which candidate to try next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pick {
    /// The decision's first choice.
    First,
    /// The next candidate in ranking order.
    Next,
    /// The next candidate with a larger context window than this model's.
    LargerWindow(ModelIndex),
    /// The next candidate predicted to answer better than this model.
    Stronger(ModelIndex),
}

/// Gives a half-open circuit's probe slot back if the attempt ends without an outcome (cancelled),
/// and a recovery slot back when the attempt ends.
struct ProbeGuard<'a> {
    health: &'a HealthTracker,
    model: ModelIndex,
    armed: bool,
    recovery: Option<&'a AtomicU32>,
}

impl<'a> ProbeGuard<'a> {
    fn new(health: &'a HealthTracker, model: ModelIndex, admission: Admission) -> Self {
        Self { health, model, armed: admission == Admission::Probe, recovery: None }
    }

    fn record(mut self, observation: &Observation) {
        if self.armed {
            self.health.record_probe(self.model, observation, now_std());
        } else {
            self.health.record(self.model, observation, now_std());
        }
        self.armed = false;
    }

    /// Hands the probe slot (if any) over to the caller, who must record or release it. A recovery
    /// slot is given back: the attempt got its answer started.
    fn hand_over(mut self) -> bool {
        std::mem::replace(&mut self.armed, false)
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.health.release_probe(self.model);
        }
        if let Some(slot) = self.recovery {
            slot.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// What follows a failed attempt.
enum AfterFailure {
    /// The same model again (the backoff has been waited out).
    Retry,
    /// Pick another candidate this way, or none: the request fails.
    Next(Option<Pick>),
}

/// Whether an attempt may go ahead.
enum Gate<'a> {
    /// Yes, within this time; the guard holds the model's probe or recovery slot, if any.
    Go(ProbeGuard<'a>, Duration),
    /// The model's circuit turned it away: try the next candidate.
    Skip,
    /// No attempt can be made (budget, deadline, recovery slots): stop with `Run::last`.
    Stop,
}

pub(crate) fn now_std() -> std::time::Instant {
    Instant::now().into_std()
}

fn timeout_error(what: &str, limit: Duration) -> Error {
    Error::timeout(format!("{what} within {} ms", limit.as_millis()))
}

/// Mutable state of one request's execution.
struct Run<'a> {
    router: &'a Router,
    decision: &'a Decision,
    plan: Plan<'a>,
    attempts: Vec<Attempt>,
    spent: f64,
    started: Instant,
    deadline: Instant,
    jitter: Jitter,
    escalations: u32,
    /// The error that ends the request if nothing answers.
    last: Option<Error>,
    /// The reservation for the model being tried, when limits are set.
    ticket: Option<Ticket>,
    /// Candidates that limits refused along the way.
    refused: Vec<Rejection>,
}

impl<'a> Run<'a> {
    fn new(router: &'a Router, request: &Request, decision: &'a Decision) -> Self {
        let inner = &*router.inner;
        let timeout = request.hints.timeout.unwrap_or(inner.exec.timeout);
        let now = Instant::now();
        Self {
            router,
            decision,
            plan: Plan::new(decision),
            attempts: Vec::new(),
            spent: 0.0,
            started: now,
            deadline: now.checked_add(timeout).unwrap_or(now + Duration::from_secs(86_400 * 365)),
            jitter: Jitter::new(inner.jitter_seed ^ decision.id().get().wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            escalations: 0,
            last: None,
            ticket: None,
            refused: Vec::new(),
        }
    }

    /// Checks the attempt budget, the deadline and `model`'s circuit before an attempt.
    fn gate(&mut self, model: ModelIndex, reason: AttemptReason, request: &Request) -> Gate<'a> {
        let inner = &*self.router.inner;
        if !self.attempts_left() {
            return Gate::Stop;
        }
        let Some(remaining) = self.remaining() else {
            self.last = Some(deadline_error(request, inner.exec.timeout, &self.attempts));
            return Gate::Stop;
        };
        match inner.health.admit(model, now_std()) {
            // Every circuit was open when the decision was made: the one closest to recovery is tried
            // anyway, by at most as many requests at a time as a half-open circuit lets through.
            Admission::Rejected { retry_in } if reason == AttemptReason::Recovery => {
                let Some(slot) = inner.recovering.get(model) else { return Gate::Stop };
                let limit = inner.exec.health.half_open_probes.max(1);
                if slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).is_err() {
                    self.last = Some(
                        Error::new(
                            ErrorKind::NoCandidate,
                            format!(
                                "every capable model's circuit is open; the one closest to recovery is already \
                                 being tried by {limit} requests (retry in {} ms)",
                                retry_in.as_millis()
                            ),
                        )
                        .with_model(inner.catalog.model(model).id.clone()),
                    );
                    return Gate::Stop;
                }
                let mut guard = ProbeGuard::new(&inner.health, model, Admission::Allowed);
                guard.recovery = Some(slot);
                Gate::Go(guard, remaining)
            }
            Admission::Rejected { .. } => Gate::Skip,
            admitted => Gate::Go(ProbeGuard::new(&inner.health, model, admitted), remaining),
        }
    }

    /// Records an attempt the request's deadline cut short: listed, but not held against the model
    /// (whose probe slot, if any, goes back).
    fn cut(
        &mut self,
        model: ModelIndex,
        reason: AttemptReason,
        latency: Duration,
        guard: ProbeGuard<'_>,
        request: &Request,
    ) {
        drop(guard);
        let profile = self.router.inner.catalog.model(model);
        self.push(profile, reason, AttemptOutcome::Failed { kind: ErrorKind::Timeout, status: None }, latency, 0.0);
        self.last = Some(
            deadline_error(request, self.router.inner.exec.timeout, &self.attempts).with_model(profile.id.clone()),
        );
    }

    /// Records a failed attempt, then either waits out the backoff before a retry of the same model
    /// or says what to try instead.
    async fn failed(
        &mut self,
        model: ModelIndex,
        reason: AttemptReason,
        retries: u32,
        error: Error,
        latency: Duration,
        guard: ProbeGuard<'_>,
    ) -> AfterFailure {
        let profile = self.router.inner.catalog.model(model);
        let error = attach_model(error, profile);
        guard.record(&Observation::from_error(&error, latency));
        if let Some(limiter) = &self.router.inner.limiter {
            if let Some(CircuitState::Open { retry_in }) = self.router.inner.health.state(model, now_std()) {
                limiter.publish_open(model, retry_in);
            }
        }
        let outcome = AttemptOutcome::Failed { kind: error.kind(), status: error.status() };
        self.push(profile, reason, outcome, latency, 0.0);
        let wait = self.retry_wait(&error, retries);
        let next = if wait.is_none() { self.after_failure(model, &error) } else { None };
        self.last = Some(error);
        match wait {
            Some(wait) => {
                tracing::debug!(model = %profile.id, wait_ms = wait.as_millis() as u64, "retry");
                tokio::time::sleep(wait).await;
                AfterFailure::Retry
            }
            None => AfterFailure::Next(next),
        }
    }

    fn provider(&self, model: ModelIndex) -> Result<&'a Arc<dyn Provider>> {
        let inner = &*self.router.inner;
        inner.providers.get(model).and_then(Option::as_ref).ok_or_else(|| {
            let profile = inner.catalog.model(model);
            Error::new(
                ErrorKind::ProviderMissing,
                format!("no provider `{}` is registered for this router", profile.provider),
            )
            .with_model(profile.id.clone())
        })
    }

    fn remaining(&self) -> Option<Duration> {
        self.deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    fn push(
        &mut self,
        model: &ModelProfile,
        reason: AttemptReason,
        outcome: AttemptOutcome,
        latency: Duration,
        cost: f64,
    ) {
        if let Some(ticket) = self.ticket.as_mut() {
            ticket.requests += 1;
            ticket.usd += cost;
        }
        let attempt = Attempt { model: model.id.clone(), reason, outcome, latency, cost_usd: cost };
        tracing::debug!(
            model = %attempt.model,
            reason = attempt.reason.as_str(),
            outcome = %attempt.outcome,
            latency_ms = latency.as_millis() as u64,
            cost_usd = cost,
            "attempt"
        );
        for o in &self.router.inner.observers {
            o.on_attempt(self.decision, &attempt);
        }
        self.attempts.push(attempt);
    }

    /// What to try after `model` failed with `error` and retrying it is not (or no longer) an option.
    fn after_failure(&mut self, model: ModelIndex, error: &Error) -> Option<Pick> {
        let kind = error.kind();
        if kind == ErrorKind::ContextOverflow {
            return Some(Pick::LargerWindow(model));
        }
        if !kind.is_retryable() && self.router.inner.exec.retry.on_non_retryable == NonRetryable::Stop {
            return None;
        }
        Some(Pick::Next)
    }

    /// Settles the reservation of the model tried last, then picks the next model to try; with
    /// limits, the first of the eligible candidates that they allow.
    async fn pick(&mut self, pick: Option<Pick>, request: &Request) -> Option<(ModelIndex, AttemptReason)> {
        if let Some(ticket) = self.ticket.take() {
            ticket.settle();
        }
        let (list, reason) = self.plan.options(pick?);
        let first = *list.first()?;
        let inner = &*self.router.inner;
        let Some(limiter) = &inner.limiter else {
            self.plan.mark(first);
            return Some((first, reason));
        };
        // When every circuit was open, the one closest to recovery is tried whatever other replicas say.
        let circuits = !self.decision.is_recovery();
        let first_pick = pick == Some(Pick::First);
        let candidates = self.decision.candidates();
        let deadline_at = self.deadline.into_std();
        // The first pick follows the request's start closely enough to admit it at that time, which
        // spares a clock reading; later ones follow a provider call.
        let now = if first_pick { self.started.into_std() } else { now_std() };
        let quick = candidates
            .iter()
            .find(|c| c.model == first)
            .and_then(|c| limiter.admit_first(request, &inner.catalog, c, first_pick, circuits, now, deadline_at));
        // With the model admitted.
        let admitted = match quick {
            Some(admission) => Ok((admission, first)),
            None => {
                // Each model's candidate, looked up once per model rather than searched for per model.
                let mut by_model: SmallVec<[Option<&Candidate>; 32]> = smallvec::smallvec![None; inner.catalog.len()];
                for c in candidates {
                    if let Some(slot) = by_model.get_mut(c.model) {
                        *slot = Some(c);
                    }
                }
                let listed: SmallVec<[&Candidate; 16]> =
                    list.iter().filter_map(|&m| by_model.get(m).copied().flatten()).collect();
                let deadline = self.remaining().unwrap_or_default();
                let admitted = match limiter.admit_now(request, &inner.catalog, &listed, first_pick, circuits, deadline)
                {
                    Some(admitted) => admitted,
                    None => limiter.admit(request, &inner.catalog, &listed, first_pick, circuits, deadline).await,
                };
                admitted.map(|a| {
                    let model = listed[a.position].model;
                    (a, model)
                })
            }
        };
        match admitted {
            Ok((LimitsAdmission { position: pos, ticket, sticky, blocked }, model)) => {
                // Circuits another replica opened: open here too, for what is left of them.
                let blocked_count = blocked.len();
                for (model, left) in blocked {
                    inner.health.open_for(model, left, now_std());
                }
                self.plan.mark(model);
                self.ticket = Some(ticket);
                let reason = match reason {
                    AttemptReason::Primary if sticky && pos > 0 => AttemptReason::Sticky,
                    // Only open circuits stood in the way: as if those models had failed here.
                    AttemptReason::Primary if pos > 0 && blocked_count == pos => AttemptReason::Fallback,
                    AttemptReason::Primary if pos > 0 => AttemptReason::Downgrade,
                    other => other,
                };
                if pos > 0 && !sticky {
                    tracing::debug!(model = %inner.catalog.model(model).id, passed_over = pos, "limits passed over better-ranked candidates");
                }
                Some((model, reason))
            }
            Err(refused) => {
                let now = now_std();
                for r in refused.rejections() {
                    if let (RejectReason::CircuitOpen { retry_in }, Some(model)) =
                        (r.reason(), inner.catalog.index_of(r.model()))
                    {
                        inner.health.open_for(model, *retry_in, now);
                    }
                }
                tracing::debug!(
                    kind = refused.kind().as_str(),
                    store = limiter.store_name(),
                    "limits refused every candidate"
                );
                self.refused.extend(refused.rejections().iter().cloned());
                if self.attempts.is_empty() || self.last.is_none() {
                    self.last = Some(refused);
                }
                None
            }
        }
    }

    /// The wait before retrying `model`, if a retry is allowed.
    fn retry_wait(&mut self, error: &Error, retries: u32) -> Option<Duration> {
        let retry = &self.router.inner.exec.retry;
        let attempts = u32::try_from(self.attempts.len()).unwrap_or(u32::MAX);
        if !error.is_retryable() || !retry.allows_retry(retries, attempts) {
            return None;
        }
        // `None` here means the deadline has passed (not that there is none): no wait fits.
        let remaining = self.remaining()?;
        match retry.backoff(retries, error.retry_after(), &mut self.jitter) {
            Backoff::Wait(wait) if retry.deadline_allows(wait, Some(remaining)) => Some(wait),
            _ => None,
        }
    }

    fn attempts_left(&self) -> bool {
        let attempts = u32::try_from(self.attempts.len()).unwrap_or(u32::MAX);
        self.router.inner.exec.retry.allows_attempt(attempts)
    }

    /// The final error: the last provider error (or why nothing could be tried), with every attempt.
    fn fail(mut self) -> Error {
        if let Some(ticket) = self.ticket.take() {
            ticket.settle();
        }
        let error = self.last.take().unwrap_or_else(|| {
            Error::new(
                ErrorKind::NoCandidate,
                "every candidate was unavailable (circuit open or its probe slots taken)",
            )
        });
        tracing::debug!(kind = error.kind().as_str(), attempts = self.attempts.len(), "failed");
        let error = if error.rejections().is_empty() && !self.refused.is_empty() {
            error.with_rejections(std::mem::take(&mut self.refused))
        } else {
            error
        };
        let error = error.with_attempts(std::mem::take(&mut self.attempts));
        for o in &self.router.inner.observers {
            o.on_finish(self.decision, Err(&error));
        }
        error
    }

    fn answer(mut self, mut response: Response, model: ModelIndex, inadequacy: Option<Inadequacy>) -> Response {
        if let Some(ticket) = self.ticket.take() {
            ticket.settle();
        }
        let inner = &*self.router.inner;
        let profile = inner.catalog.model(model);
        response.model = Some(profile.id.clone());
        response.cost_usd = self.spent;
        response.estimated_cost_usd =
            self.decision.candidates().iter().find(|c| c.model == model).map_or(0.0, |c| c.cost.usd);
        response.inadequacy = inadequacy;
        response.latency = self.started.elapsed();
        response.attempts = std::mem::take(&mut self.attempts);
        inner.log.set_model(self.decision.id(), model);
        tracing::debug!(model = %profile.id, cost_usd = response.cost_usd, attempts = response.attempts.len(), "answered");
        for o in &inner.observers {
            o.on_finish(self.decision, Ok((&profile.id, response.cost_usd)));
        }
        response
    }
}

impl Router {
    /// Routes `request` and executes the decision: the chosen model first, then retries, fallbacks
    /// and escalations as [`crate::execution`] describes, within the request's deadline.
    ///
    /// The response says which model answered ([`Response::model`]), lists every attempt
    /// ([`Response::attempts`]), and carries the actual cost of all of them ([`Response::cost_usd`])
    /// next to the estimate for the model that answered, and the decision.
    ///
    /// # Errors
    /// Everything [`route`](Self::route) returns; [`ErrorKind::ProviderMissing`] for a route-only router;
    /// otherwise the last provider error (or a [`ErrorKind::Timeout`] when the deadline passed), with
    /// every attempt in [`Error::attempts`].
    ///
    /// # Cancel safety
    /// Dropping the future cancels the attempt in flight (the provider's future is dropped) and gives
    /// back any probe slot it held; nothing else is left behind.
    pub async fn complete(&self, request: Request) -> Result<Response> {
        self.sync_learning_if_due();
        let decision = self.decide(&request, Capabilities::NONE, true)?;
        let span = tracing::debug_span!("switchyard.complete", decision = decision.id().get());
        let mut response = self.run_complete(&request, &decision).instrument(span).await?;
        response.decision = Some(decision);
        Ok(response)
    }

    async fn run_complete(&self, request: &Request, decision: &Decision) -> Result<Response> {
        let inner = &*self.inner;
        let mut run = Run::new(self, request, decision);
        let mut next = run.pick(Some(Pick::First), request).await;
        // The last inadequate answer, kept in case no stronger model answers.
        let mut held: Option<(Response, ModelIndex, Inadequacy)> = None;
        'models: while let Some((model, mut reason)) = next.take() {
            let profile = inner.catalog.model(model);
            let provider = match run.provider(model) {
                Ok(provider) => provider,
                Err(missing) => {
                    run.last = Some(missing);
                    return Err(run.fail());
                }
            };
            let mut retries = 0;
            loop {
                let (guard, remaining) = match run.gate(model, reason, request) {
                    Gate::Go(guard, remaining) => (guard, remaining),
                    Gate::Skip => {
                        next = run.pick(Some(Pick::Next), request).await;
                        continue 'models;
                    }
                    Gate::Stop => break 'models,
                };
                let limit = remaining.min(inner.exec.attempt_timeout);
                let started = Instant::now();
                let result = match tokio::time::timeout(limit, provider.complete(profile, request)).await {
                    Ok(result) => result,
                    // The request's own deadline, not the model, ended the attempt.
                    Err(_) if limit < inner.exec.attempt_timeout => {
                        run.cut(model, reason, started.elapsed(), guard, request);
                        break 'models;
                    }
                    Err(_) => Err(timeout_error("no answer", limit)),
                };
                let latency = started.elapsed();
                let response = match result {
                    Ok(response) => response,
                    Err(error) => match run.failed(model, reason, retries, error, latency, guard).await {
                        AfterFailure::Retry => {
                            retries += 1;
                            reason = AttemptReason::Retry;
                            continue;
                        }
                        AfterFailure::Next(then) => {
                            next = run.pick(then, request).await;
                            continue 'models;
                        }
                    },
                };
                let cost = inner.cost_model.actual(&response.usage, profile);
                run.spent += if cost.is_finite() { cost } else { 0.0 };
                if let Some(ticket) = run.ticket.as_mut() {
                    ticket.tokens += u64::from(response.usage.input_tokens) + u64::from(response.usage.output_tokens);
                }
                guard.record(&Observation::success(latency).with_output_tokens(response.usage.output_tokens));
                let verdict = inner.quality.as_ref().map(|q| q.check(request, &response));
                let inadequacy = verdict.as_ref().and_then(Verdict::inadequacy).cloned();
                let outcome = match &inadequacy {
                    Some(why) => AttemptOutcome::Inadequate(why.clone()),
                    None => AttemptOutcome::Answered,
                };
                run.push(profile, reason, outcome, latency, cost);
                let Some(why) = inadequacy else {
                    return Ok(run.answer(response, model, None));
                };
                if run.escalations < inner.exec.max_escalations {
                    if let Some((stronger, _)) = run.pick(Some(Pick::Stronger(model)), request).await {
                        tracing::debug!(from = %profile.id, reason = why.reason(), "escalate");
                        run.escalations += 1;
                        held = Some((response, model, why));
                        next = Some((stronger, AttemptReason::Escalation));
                        continue 'models;
                    }
                }
                return Ok(run.answer(response, model, Some(why)));
            }
        }
        if let Some((response, model, why)) = held {
            // A stronger model was tried and failed: the answer already paid for beats an error.
            return Ok(run.answer(response, model, Some(why)));
        }
        Err(run.fail())
    }

    /// Routes `request` to models that can stream and streams the answer, with fallbacks until the
    /// first content arrives.
    ///
    /// Each attempt opens a stream and waits for its first piece of content (text or a tool call)
    /// within [`ExecutionConfig::first_token_timeout`](crate::execution::ExecutionConfig::first_token_timeout);
    /// an error before that moves on exactly as in [`complete`](Self::complete). Once content arrived,
    /// the returned [`RoutedStream`] is committed to that model: a later failure is an
    /// [`ErrorKind::MidStream`] error carrying the text delivered so far
    /// ([`Error::partial_content`]). Quality checks and escalation do not apply to streams.
    ///
    /// # Errors
    /// As [`complete`](Self::complete), for everything before the commit point.
    ///
    /// # Cancel safety
    /// Dropping the future or the stream cancels the provider call and gives back any probe slot.
    pub async fn stream(&self, request: Request) -> Result<RoutedStream> {
        self.sync_learning_if_due();
        let decision = self.decide(&request, Capabilities::STREAMING, true)?;
        let span = tracing::debug_span!("switchyard.stream", decision = decision.id().get());
        self.run_stream(request, decision).instrument(span).await
    }

    async fn run_stream(&self, request: Request, decision: Decision) -> Result<RoutedStream> {
        let inner = &*self.inner;
        let mut run = Run::new(self, &request, &decision);
        let mut next = run.pick(Some(Pick::First), &request).await;
        'models: while let Some((model, mut reason)) = next.take() {
            let profile = inner.catalog.model(model);
            let provider = match run.provider(model) {
                Ok(provider) => provider,
                Err(missing) => {
                    run.last = Some(missing);
                    return Err(run.fail());
                }
            };
            let mut retries = 0;
            loop {
                let (guard, remaining) = match run.gate(model, reason, &request) {
                    Gate::Go(guard, remaining) => (guard, remaining),
                    Gate::Skip => {
                        next = run.pick(Some(Pick::Next), &request).await;
                        continue 'models;
                    }
                    Gate::Stop => break 'models,
                };
                let limit = remaining.min(inner.exec.first_token_timeout);
                let started = Instant::now();
                let opened =
                    match tokio::time::timeout(limit, first_content(provider.as_ref(), profile, &request)).await {
                        Ok(opened) => opened,
                        Err(_) if limit < inner.exec.first_token_timeout => {
                            run.cut(model, reason, started.elapsed(), guard, &request);
                            break 'models;
                        }
                        Err(_) => Err(timeout_error("no content", limit)),
                    };
                let ttft = started.elapsed();
                let (buffered, events) = match opened {
                    Ok(opened) => opened,
                    Err(error) => match run.failed(model, reason, retries, error, ttft, guard).await {
                        AfterFailure::Retry => {
                            retries += 1;
                            reason = AttemptReason::Retry;
                            continue;
                        }
                        AfterFailure::Next(then) => {
                            next = run.pick(then, &request).await;
                            continue 'models;
                        }
                    },
                };
                run.push(profile, reason, AttemptOutcome::Answered, ttft, 0.0);
                // The stream records the outcome when it ends, and holds the probe slot until then.
                let probe = guard.hand_over();
                let attempts = std::mem::take(&mut run.attempts);
                let ticket = run.ticket.take();
                let (spent, deadline) = (run.spent, run.deadline);
                drop(run);
                inner.log.set_model(decision.id(), model);
                let idle = inner.exec.first_token_timeout;
                return Ok(RoutedStream {
                    router: self.clone(),
                    decision,
                    model,
                    buffered,
                    events,
                    finished: false,
                    attempts,
                    spent,
                    started,
                    ttft,
                    delivered: String::new(),
                    usage: None,
                    probe,
                    idle,
                    idle_timer: Box::pin(tokio::time::sleep_until(next_wake(idle, deadline))),
                    deadline,
                    saw_finish: false,
                    ticket,
                });
            }
        }
        Err(run.fail())
    }
}

fn first_reason(decision: &Decision) -> AttemptReason {
    if decision.is_recovery() { AttemptReason::Recovery } else { AttemptReason::Primary }
}

fn deadline_error(request: &Request, default: Duration, attempts: &[Attempt]) -> Error {
    let limit = request.hints.timeout.unwrap_or(default);
    Error::timeout(format!(
        "the request's deadline of {} ms passed after {} attempts",
        limit.as_millis(),
        attempts.len()
    ))
}

/// Opens a stream and reads it up to its first piece of content (or its end).
async fn first_content(
    provider: &dyn Provider,
    model: &ModelProfile,
    request: &Request,
) -> Result<(VecDeque<StreamEvent>, Option<EventStream>)> {
    let mut events = provider.stream(model, request).await?;
    let mut buffered = VecDeque::new();
    loop {
        match std::future::poll_fn(|cx| events.as_mut().poll_next(cx)).await {
            Some(Ok(event)) => {
                let content = match &event {
                    StreamEvent::Delta(text) => !text.is_empty(),
                    StreamEvent::ToolCall(_) => true,
                    _ => false,
                };
                buffered.push_back(event);
                if content {
                    return Ok((buffered, Some(events)));
                }
            }
            Some(Err(e)) => return Err(e),
            // An answer with no content: nothing to wait for (and the stream must not be polled again).
            None => return Ok((buffered, None)),
        }
    }
}

/// A streamed answer, committed to one model, with the decision and the attempts that led to it.
///
/// Yields the provider's events. After the end of the stream, [`cost_usd`](Self::cost_usd) is the actual
/// cost of the answer (once the provider reported usage). A failure after the first content is an
/// [`ErrorKind::MidStream`] error carrying the delivered text ([`Error::partial_content`]), and so is a
/// stall: no event for [`ExecutionConfig::first_token_timeout`](crate::execution::ExecutionConfig::first_token_timeout)
/// (the source is then a [`ErrorKind::Timeout`]). The stream ends after it.
///
/// A stream dropped before its end is cancelled: the provider's stream is dropped, any probe slot
/// is given back, and neither the health statistics nor observers' `on_finish` hear of it.
pub struct RoutedStream {
    router: Router,
    decision: Decision,
    model: ModelIndex,
    buffered: VecDeque<StreamEvent>,
    /// The provider's stream, until it ends.
    events: Option<EventStream>,
    /// Whether the outcome was recorded (the stream ended or failed).
    finished: bool,
    attempts: Vec<Attempt>,
    spent: f64,
    started: Instant,
    ttft: Duration,
    delivered: String,
    usage: Option<Usage>,
    probe: bool,
    /// The longest wait for the next event, and its timer (which also fires at the deadline).
    idle: Duration,
    idle_timer: Pin<Box<tokio::time::Sleep>>,
    /// The request's deadline: the whole answer must have arrived by then.
    deadline: Instant,
    /// Whether the provider's `Finish` event went by (a caller may stop reading there).
    saw_finish: bool,
    /// The reservation for this model, settled when the stream ends (given back if it is dropped
    /// before).
    ticket: Option<Ticket>,
}

/// When to give up waiting for the next event: after `idle`, or at the deadline if that is sooner.
fn next_wake(idle: Duration, deadline: Instant) -> Instant {
    Instant::now().checked_add(idle).map_or(deadline, |t| t.min(deadline))
}

impl RoutedStream {
    /// Why this model was chosen.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// The model streaming the answer.
    pub fn model(&self) -> &crate::ModelId {
        &self.router.inner.catalog.model(self.model).id
    }

    /// Every attempt made for this request, the streaming one last.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// Time from the streaming attempt's start to its first content.
    pub fn time_to_first_token(&self) -> Duration {
        self.ttft
    }

    /// The actual cost so far in USD: failed attempts cost nothing, and the streaming answer counts
    /// once the provider has reported its usage (usually with the last event).
    pub fn cost_usd(&self) -> f64 {
        let profile = self.router.inner.catalog.model(self.model);
        let answer = self.usage.map_or(0.0, |u| self.router.inner.cost_model.actual(&u, profile));
        self.spent + if answer.is_finite() { answer } else { 0.0 }
    }

    /// Records the outcome once: `error` is the provider's (for the health statistics), `reported`
    /// what the caller receives (for observers).
    fn finish(&mut self, error: Option<&Error>, reported: Option<&Error>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.events = None;
        let inner = &*self.router.inner;
        let latency = self.started.elapsed();
        let observation = match error {
            None => {
                let tokens = self.usage.map_or(0, |u| u.output_tokens);
                Observation::success(latency).with_ttft(self.ttft).with_output_tokens(tokens)
            }
            Some(e) => Observation::from_error(e, latency),
        };
        if self.probe {
            inner.health.record_probe(self.model, &observation, now_std());
        } else {
            inner.health.record(self.model, &observation, now_std());
        }
        self.probe = false;
        let profile = inner.catalog.model(self.model);
        if let Some(mut ticket) = self.ticket.take() {
            let answer = self.usage.map_or(0.0, |u| inner.cost_model.actual(&u, profile));
            ticket.usd += if answer.is_finite() { answer } else { 0.0 };
            ticket.tokens += self.usage.map_or(0, |u| u64::from(u.input_tokens) + u64::from(u.output_tokens));
            ticket.settle();
        }
        match reported.or(error) {
            None => {
                for o in &inner.observers {
                    o.on_finish(&self.decision, Ok((&profile.id, self.cost_usd())));
                }
            }
            Some(e) => {
                for o in &inner.observers {
                    o.on_finish(&self.decision, Err(e));
                }
            }
        }
    }

    fn observe(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::Delta(text) => self.delivered.push_str(text),
            StreamEvent::Usage(usage) => self.usage = Some(*usage),
            StreamEvent::Finish(_) => self.saw_finish = true,
            _ => {}
        }
    }
}

impl Drop for RoutedStream {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if self.saw_finish {
            // The answer was complete; the caller stopped reading at its end.
            self.finish(None, None);
        } else if self.probe {
            self.router.inner.health.release_probe(self.model);
        }
    }
}

impl fmt::Debug for RoutedStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutedStream")
            .field("model", self.model())
            .field("attempts", &self.attempts)
            .field("delivered", &format_args!("{} bytes", self.delivered.len()))
            .finish_non_exhaustive()
    }
}

impl futures_core::Stream for RoutedStream {
    type Item = Result<StreamEvent>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(event) = this.buffered.pop_front() {
            this.observe(&event);
            return Poll::Ready(Some(Ok(event)));
        }
        let Some(events) = this.events.as_mut() else {
            this.finish(None, None);
            return Poll::Ready(None);
        };
        let error = match events.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(event))) => {
                this.observe(&event);
                this.idle_timer.as_mut().reset(next_wake(this.idle, this.deadline));
                return Poll::Ready(Some(Ok(event)));
            }
            Poll::Ready(None) => {
                this.finish(None, None);
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(error))) => error,
            Poll::Pending => match this.idle_timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if Instant::now() >= this.deadline => {
                    Error::timeout("the request's deadline passed before the stream ended")
                }
                Poll::Ready(()) => timeout_error("no event", this.idle),
            },
        };
        let router = this.router.clone();
        let profile = router.inner.catalog.model(this.model);
        let error = attach_model(error, profile);
        let delivered = std::mem::take(&mut this.delivered);
        let wrapped = Error::new(
            ErrorKind::MidStream,
            format!("the stream failed after {} bytes of content: {error}", delivered.len()),
        )
        .with_model(profile.id.clone())
        .with_partial(delivered);
        // The streaming attempt delivered content and then failed.
        if let Some(last) = this.attempts.last_mut() {
            last.outcome = AttemptOutcome::Failed { kind: error.kind(), status: error.status() };
            for o in &router.inner.observers {
                o.on_attempt(&this.decision, last);
            }
        }
        let wrapped = wrapped.with_attempts(this.attempts.clone());
        this.finish(Some(&error), Some(&wrapped));
        Poll::Ready(Some(Err(wrapped.with_source(error))))
    }
}
