//! The attempt loop of `complete` and `stream`, as a small state machine: each [`Step`] picks a
//! candidate or attempts one, and what happened decides the next step (a retry, a fallback, an
//! escalation) or ends the request.

use std::sync::Arc;
use std::time::Duration;

use crate::catalog::ModelIndex;
use crate::completion::Completion;
use crate::error::{Error, ErrorKind, Result};
use crate::execute::AttemptReason;
use crate::execute::Served;
use crate::execute::quality::Inadequacy;
use crate::execute::retry::{Backoff, NonRetryable};
use crate::policy::Decision;
use crate::request::Request;

use super::attempt::{Answered, Attempted, Target};
use super::engine::{Engine, Run};
use super::plan::Pick;
use super::stream::{RoutedStream, first_content};

/// The attempt loop's next step.
enum Step<'a> {
    /// Pick another candidate this way, or none: the request ends.
    Pick(Option<Pick>),
    /// Escalate to this model, predicted to answer better than one whose answer was inadequate.
    Escalate(ModelIndex),
    /// The same model again (the backoff has been waited out).
    Retry(Target<'a>),
}

impl<'a> Run<'a> {
    /// Follows `step` to the next attempt, picking a candidate and looking up its provider on the
    /// way; `None` when no candidate is left. A picked model without a provider is an error that
    /// ends the request.
    async fn next_attempt(&mut self, step: Step<'a>, request: &Request) -> Result<Option<Target<'a>>> {
        let (model, reason) = match step {
            Step::Retry(target) => return Ok(Some(target)),
            Step::Escalate(model) => (model, AttemptReason::Escalation),
            Step::Pick(pick) => match self.pick(pick, request).await {
                Some(picked) => picked,
                None => return Ok(None),
            },
        };
        self.target(model, reason).map(Some)
    }

    /// After a failed attempt at `target` (recorded already): either waits out the backoff before a
    /// retry of the same model or says what to try instead.
    async fn failed(&mut self, target: Target<'a>, error: Error) -> Step<'a> {
        let Some(wait) = self.retry_wait(&error, target.retries) else {
            let next = self.after_failure(target.model, &error);
            self.last = Some(error);
            return Step::Pick(next);
        };
        self.last = Some(error);
        tracing::debug!(model = %target.profile.id, wait_ms = wait.as_millis() as u64, "retry");
        tokio::time::sleep(wait).await;
        Step::Retry(target.retry())
    }

    /// The wait before retrying `model`, if a retry is allowed.
    fn retry_wait(&mut self, error: &Error, retries: u32) -> Option<Duration> {
        let retry = &self.engine.exec.retry;
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

    /// What to try after `model` failed with `error` and retrying it is not (or no longer) an option.
    fn after_failure(&mut self, model: ModelIndex, error: &Error) -> Option<Pick> {
        let kind = error.kind();
        if kind == ErrorKind::ContextOverflow {
            return Some(Pick::LargerWindow(model));
        }
        if !kind.is_retryable() && self.engine.exec.retry.on_non_retryable == NonRetryable::Stop {
            return None;
        }
        Some(Pick::Next)
    }

    /// After `target` gave an inadequate answer (`why`): the candidate predicted to answer better to
    /// escalate to, while escalations are left.
    async fn escalate(&mut self, target: &Target<'_>, why: &Inadequacy, request: &Request) -> Option<ModelIndex> {
        if self.escalations >= self.engine.exec.max_escalations {
            return None;
        }
        let (stronger, _) = self.pick(Some(Pick::Stronger(target.model)), request).await?;
        tracing::debug!(from = %target.profile.id, reason = why.reason(), "escalate");
        self.escalations += 1;
        Some(stronger)
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
        for o in &self.engine.observers {
            o.on_finish(self.decision, Err(&error));
        }
        error
    }

    fn answer(
        mut self,
        completion: Completion,
        model: ModelIndex,
        inadequacy: Option<Inadequacy>,
    ) -> (Completion, Served) {
        if let Some(ticket) = self.ticket.take() {
            ticket.settle();
        }
        let inner = self.engine;
        let profile = inner.catalog.model(model);
        let served = Served {
            model: profile.id.clone(),
            latency: self.started.elapsed(),
            cost_usd: self.spent,
            estimated_cost_usd: self
                .decision
                .candidates()
                .iter()
                .find(|c| c.model == model)
                .map_or(0.0, |c| c.cost.usd),
            attempts: std::mem::take(&mut self.attempts),
            inadequacy,
            caller_limits: self.caller.map(|(c, at)| c.aged(at.elapsed())),
        };
        inner.log.set_model(self.decision.id(), model);
        tracing::debug!(model = %profile.id, cost_usd = served.cost_usd, attempts = served.attempts.len(), "answered");
        for o in &inner.observers {
            o.on_finish(self.decision, Ok((&profile.id, served.cost_usd)));
        }
        (completion, served)
    }
}

impl Engine {
    /// Executes `decision` for `request` (see [`Router::complete`](crate::Router::complete)): the
    /// answer and what the attempts measured.
    pub(crate) async fn complete(&self, request: &Request, decision: &Decision) -> Result<(Completion, Served)> {
        let inner = self;
        let mut run = Run::new(self, request, decision);
        // The last inadequate answer, kept in case no stronger model answers.
        let mut held: Option<(Completion, ModelIndex, Inadequacy)> = None;
        let mut step = Step::Pick(Some(Pick::First));
        loop {
            let target = match run.next_attempt(step, request).await {
                Ok(Some(target)) => target,
                Ok(None) => break,
                Err(missing) => {
                    run.last = Some(missing);
                    return Err(run.fail());
                }
            };
            let call = || target.provider.complete(target.profile, request);
            let cap = inner.exec.attempt_timeout;
            let Answered { value: response, guard, latency, span, .. } =
                match run.attempt(&target, cap, "no answer", request, call).await {
                    Attempted::Answered(answered) => answered,
                    Attempted::Failed(error) => {
                        step = run.failed(target, error).await;
                        continue;
                    }
                    // The model's circuit is open: the next candidate.
                    Attempted::Skipped => {
                        step = Step::Pick(Some(Pick::Next));
                        continue;
                    }
                    Attempted::Stopped => break,
                };
            super::telemetry::record_answer(&span, Some(&response.usage), Some(response.finish_reason));
            let Some(why) = run.record_answer(&target, &response, guard, latency, request) else {
                return Ok(run.answer(response, target.model, None));
            };
            let Some(stronger) = run.escalate(&target, &why, request).await else {
                return Ok(run.answer(response, target.model, Some(why)));
            };
            held = Some((response, target.model, why));
            step = Step::Escalate(stronger);
        }
        if let Some((response, model, why)) = held {
            // A stronger model was tried and failed: the answer already paid for beats an error.
            return Ok(run.answer(response, model, Some(why)));
        }
        Err(run.fail())
    }

    /// Executes `decision` for `request` as a stream (see [`Router::stream`](crate::Router::stream)),
    /// up to the commit point.
    pub(crate) async fn stream(self: &Arc<Self>, request: Request, decision: Decision) -> Result<RoutedStream> {
        let inner = &**self;
        let mut run = Run::new(self, &request, &decision);
        let mut step = Step::Pick(Some(Pick::First));
        loop {
            let target = match run.next_attempt(step, &request).await {
                Ok(Some(target)) => target,
                Ok(None) => break,
                Err(missing) => {
                    run.last = Some(missing);
                    return Err(run.fail());
                }
            };
            let call = || first_content(target.provider.as_ref(), target.profile, &request);
            let cap = inner.exec.first_token_timeout;
            let Answered { value: first, guard, started, latency: ttft, span } =
                match run.attempt(&target, cap, "no content", &request, call).await {
                    Attempted::Answered(answered) => answered,
                    Attempted::Failed(error) => {
                        step = run.failed(target, error).await;
                        continue;
                    }
                    // The model's circuit is open: the next candidate.
                    Attempted::Skipped => {
                        step = Step::Pick(Some(Pick::Next));
                        continue;
                    }
                    Attempted::Stopped => break,
                };
            // The commit point: from here on, the answer comes from this model or not at all.
            let handover = run.commit(&target, guard, ttft, span);
            return Ok(RoutedStream::new(Arc::clone(self), decision, handover, first, started, ttft));
        }
        Err(run.fail())
    }
}
