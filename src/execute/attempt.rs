//! One attempt at a model: the gate before it (attempt budget, deadline, circuit), the guard of its
//! probe or recovery slot, the provider call within its time limit, and the record of what happened.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::engine::attach_model;
use crate::catalog::{ModelIndex, ModelProfile};
use crate::completion::Completion;
use crate::error::{Error, ErrorKind, Result};
use crate::execute::health::CircuitState;
use crate::execute::health::{Admission, HealthTracker, Observation};
use crate::execute::quality::{Inadequacy, Verdict};
use crate::execute::{Attempt, AttemptOutcome, AttemptReason};
use crate::provider::Provider;
use crate::request::Request;

use super::engine::{Run, now_std, timeout_error};

/// Gives a half-open circuit's probe slot back if the attempt ends without an outcome (cancelled),
/// and a recovery slot back when the attempt ends.
pub(super) struct ProbeGuard<'a> {
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
    pub(super) fn hand_over(mut self) -> bool {
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

/// Whether an attempt may go ahead.
enum Gate<'a> {
    /// Yes, within this time; the guard holds the model's probe or recovery slot, if any.
    Go(ProbeGuard<'a>, Duration),
    /// The model's circuit turned it away: try the next candidate.
    Skip,
    /// No attempt can be made (budget, deadline, recovery slots): stop with `Run::last`.
    Stop,
}

/// The model being attempted: picked for `reason`, and retried `retries` times so far.
#[derive(Clone, Copy)]
pub(super) struct Target<'a> {
    pub(super) model: ModelIndex,
    pub(super) profile: &'a ModelProfile,
    pub(super) provider: &'a Arc<dyn Provider>,
    pub(super) reason: AttemptReason,
    pub(super) retries: u32,
}

impl Target<'_> {
    /// The same model again, after one more failed attempt.
    pub(super) fn retry(self) -> Self {
        Self { reason: AttemptReason::Retry, retries: self.retries + 1, ..self }
    }
}

/// How an attempt ended.
pub(super) enum Attempted<'a, T> {
    /// The provider answered.
    Answered(Answered<'a, T>),
    /// The provider failed with this error (recorded, and naming the model).
    Failed(Error),
    /// The model's circuit turned it away before a call.
    Skipped,
    /// No attempt could be made, or the request's deadline cut it short: the request ends (with
    /// `Run::last`).
    Stopped,
}

/// An attempt the provider answered, its outcome not yet recorded.
pub(super) struct Answered<'a, T> {
    /// What the provider returned.
    pub(super) value: T,
    /// The model's probe or recovery slot, until the outcome is recorded or handed over.
    pub(super) guard: ProbeGuard<'a>,
    /// When the call started.
    pub(super) started: Instant,
    /// How long it took.
    pub(super) latency: Duration,
    /// The call's span, for what is learnt after it returned (usage, the finish reason).
    pub(super) span: tracing::Span,
}

impl<'a> Run<'a> {
    /// The target for attempts at `model`, picked for `reason`: its profile and its provider (an
    /// error when none is registered for it).
    pub(super) fn target(&self, model: ModelIndex, reason: AttemptReason) -> Result<Target<'a>> {
        let inner = self.engine;
        let profile = inner.catalog.model(model);
        let provider = inner.providers.get(model).and_then(Option::as_ref).ok_or_else(|| {
            Error::new(
                ErrorKind::ProviderMissing,
                format!("no provider `{}` is registered for this router", profile.provider),
            )
            .with_model(profile.id.clone())
        })?;
        Ok(Target { model, profile, provider, reason, retries: 0 })
    }

    /// One attempt at `target`: the gate, then `call` within the time left and `cap` (the limit of
    /// one attempt). `what` says what a call that runs out of its own time failed to produce.
    pub(super) async fn attempt<T, F>(
        &mut self,
        target: &Target<'a>,
        cap: Duration,
        what: &str,
        request: &Request,
        call: impl FnOnce() -> F,
    ) -> Attempted<'a, T>
    where
        F: Future<Output = Result<T>>,
    {
        let (guard, remaining) = match self.gate(target.model, target.reason, request) {
            Gate::Go(guard, remaining) => (guard, remaining),
            Gate::Skip => return Attempted::Skipped,
            Gate::Stop => return Attempted::Stopped,
        };
        let limit = remaining.min(cap);
        let started = Instant::now();
        let span = super::telemetry::attempt_span(self.decision, target.profile, target.reason, request);
        let result = match tokio::time::timeout(limit, tracing::Instrument::instrument(call(), span.clone())).await {
            Ok(result) => result,
            // The request's own deadline, not the model, ended the attempt.
            Err(_) if limit < cap => {
                super::telemetry::record_error(&span, ErrorKind::Timeout);
                self.cut(target, started.elapsed(), guard, request);
                return Attempted::Stopped;
            }
            Err(_) => Err(timeout_error(what, limit)),
        };
        let latency = started.elapsed();
        match result {
            Ok(value) => Attempted::Answered(Answered { value, guard, started, latency, span }),
            Err(error) => {
                super::telemetry::record_error(&span, error.kind());
                Attempted::Failed(self.record_failure(target, error, latency, guard))
            }
        }
    }

    /// Checks the attempt budget, the deadline and `model`'s circuit before an attempt.
    fn gate(&mut self, model: ModelIndex, reason: AttemptReason, request: &Request) -> Gate<'a> {
        let inner = self.engine;
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
    fn cut(&mut self, target: &Target<'_>, latency: Duration, guard: ProbeGuard<'_>, request: &Request) {
        drop(guard);
        let profile = target.profile;
        let outcome = AttemptOutcome::Failed { kind: ErrorKind::Timeout, status: None };
        self.push(profile, target.reason, outcome, latency, 0.0);
        self.last =
            Some(deadline_error(request, self.engine.exec.timeout, &self.attempts).with_model(profile.id.clone()));
    }

    /// Records a failed attempt against the model's health (publishing a circuit it opened to the
    /// limits) and in the list of attempts; returns the error, naming the model.
    fn record_failure(&mut self, target: &Target<'_>, error: Error, latency: Duration, guard: ProbeGuard<'_>) -> Error {
        let (model, profile) = (target.model, target.profile);
        let error = attach_model(error, profile);
        guard.record(&Observation::from_error(&error, latency));
        if let Some(limiter) = &self.engine.limiter
            && let Some(CircuitState::Open { retry_in }) = self.engine.health.state(model, now_std())
        {
            limiter.publish_open(model, retry_in);
        }
        let outcome = AttemptOutcome::Failed { kind: error.kind(), status: error.status() };
        self.push(profile, target.reason, outcome, latency, 0.0);
        error
    }

    /// Records an answer: its cost, its tokens against the reservation, the model's health, the
    /// quality check's verdict and the attempt. Returns why the answer is inadequate, if it is.
    pub(super) fn record_answer(
        &mut self,
        target: &Target<'_>,
        response: &Completion,
        guard: ProbeGuard<'_>,
        latency: Duration,
        request: &Request,
    ) -> Option<Inadequacy> {
        let inner = self.engine;
        let cost = inner.cost_model.actual(&response.usage, target.profile);
        self.spent += if cost.is_finite() { cost } else { 0.0 };
        if let Some(ticket) = self.ticket.as_mut() {
            ticket.tokens += u64::from(response.usage.input_tokens) + u64::from(response.usage.output_tokens);
        }
        guard.record(&Observation::success(latency).with_output_tokens(response.usage.output_tokens));
        let verdict = inner.quality.as_ref().map(|q| q.check(request, response));
        let inadequacy = verdict.as_ref().and_then(Verdict::inadequacy).cloned();
        let outcome = match &inadequacy {
            Some(why) => AttemptOutcome::Inadequate(why.clone()),
            None => AttemptOutcome::Answered,
        };
        self.push(target.profile, target.reason, outcome, latency, cost);
        inadequacy
    }

    pub(super) fn remaining(&self) -> Option<Duration> {
        self.deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    pub(super) fn push(
        &mut self,
        model: &ModelProfile,
        reason: AttemptReason,
        outcome: AttemptOutcome,
        latency: Duration,
        cost: f64,
    ) {
        self.push_attempt(Attempt { model: model.id.clone(), reason, outcome, latency, ttft: None, cost_usd: cost });
    }

    /// Records an attempt: counts it on the reservation, logs it and tells the observers.
    pub(super) fn push_attempt(&mut self, attempt: Attempt) {
        if let Some(ticket) = self.ticket.as_mut() {
            ticket.requests += 1;
            ticket.usd += attempt.cost_usd;
        }
        tracing::debug!(
            model = %attempt.model,
            reason = attempt.reason.as_str(),
            outcome = %attempt.outcome,
            latency_ms = attempt.latency.as_millis() as u64,
            ttft_ms = attempt.ttft.map(|t| t.as_millis() as u64),
            cost_usd = attempt.cost_usd,
            "attempt"
        );
        for o in &self.engine.observers {
            o.on_attempt(self.decision, &attempt);
        }
        self.attempts.push(attempt);
    }

    fn attempts_left(&self) -> bool {
        let attempts = u32::try_from(self.attempts.len()).unwrap_or(u32::MAX);
        self.engine.exec.retry.allows_attempt(attempts)
    }
}

fn deadline_error(request: &Request, default: Duration, attempts: &[Attempt]) -> Error {
    let limit = request.hints.timeout.unwrap_or(default);
    Error::timeout(format!(
        "the request's deadline of {} ms passed after {} attempts",
        limit.as_millis(),
        attempts.len()
    ))
}
