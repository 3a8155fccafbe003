//! A streamed answer after its commit point: the first content that commits a stream to its model,
//! and [`RoutedStream`], which delivers the rest and records the outcome when it ends.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use super::engine::{Engine, attach_model};
use crate::catalog::{ModelIndex, ModelProfile};
use crate::completion::{EventStream, StreamEvent, Usage};
use crate::error::{Error, ErrorKind, Result};
use crate::execute::health::Observation;
use crate::execute::{Attempt, AttemptOutcome};
use crate::limits::{CallerLimits, Ticket};
use crate::policy::Decision;
use crate::provider::Provider;
use crate::request::Request;

use super::attempt::{ProbeGuard, Target};
use super::engine::{Run, now_std, timeout_error};

/// The events up to a stream's first content, and the rest of the stream (none when it ended first).
pub(super) type FirstContent = (VecDeque<StreamEvent>, Option<EventStream>);

/// Opens a stream and reads it up to its first piece of content (or its end).
pub(super) async fn first_content(
    provider: &dyn Provider,
    model: &ModelProfile,
    request: &Request,
) -> Result<FirstContent> {
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
/// stall: no event for [`ExecutionConfig::first_token_timeout`](crate::execute::ExecutionConfig::first_token_timeout)
/// (the source is then a [`ErrorKind::Timeout`]). The stream ends after it.
///
/// A stream dropped before its end is cancelled: the provider's stream is dropped, any probe slot
/// is given back, and neither the health statistics nor observers' `on_finish` hear of it.
pub struct RoutedStream {
    engine: Arc<Engine>,
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
    /// The provider's finish reason, once it went by.
    finish_reason: Option<crate::completion::FinishReason>,
    /// The streaming attempt's span: its usage and finish reason are recorded when the stream ends.
    span: tracing::Span,
    /// Where the caller stood against its rate limits at admission.
    caller: Option<CallerLimits>,
}

/// When to give up waiting for the next event: after `idle`, or at the deadline if that is sooner.
fn next_wake(idle: Duration, deadline: Instant) -> Instant {
    Instant::now().checked_add(idle).map_or(deadline, |t| t.min(deadline))
}

/// What a stream takes over from the run at its commit point.
pub(super) struct Handover {
    model: ModelIndex,
    /// Whether the stream holds the model's probe slot (recorded or given back when it ends).
    probe: bool,
    attempts: Vec<Attempt>,
    ticket: Option<Ticket>,
    spent: f64,
    deadline: Instant,
    span: tracing::Span,
    caller: Option<CallerLimits>,
}

impl Run<'_> {
    /// The commit point: records the streaming attempt, which delivered its first content, and ends
    /// the run, handing the model's probe slot, the reservation and the attempts over to the stream.
    pub(super) fn commit(
        mut self,
        target: &Target<'_>,
        guard: ProbeGuard<'_>,
        ttft: Duration,
        span: tracing::Span,
    ) -> Handover {
        // Its latency is the time to the first content until the stream ends and records the whole.
        let attempt = Attempt {
            model: target.profile.id.clone(),
            reason: target.reason,
            outcome: AttemptOutcome::Answered,
            latency: ttft,
            ttft: Some(ttft),
            cost_usd: 0.0,
        };
        self.push_attempt(attempt);
        // The stream records the outcome when it ends, and holds the probe slot until then.
        let probe = guard.hand_over();
        let attempts = std::mem::take(&mut self.attempts);
        let ticket = self.ticket.take();
        Handover {
            model: target.model,
            probe,
            attempts,
            ticket,
            spent: self.spent,
            deadline: self.deadline,
            span,
            caller: self.caller.map(|(c, at)| c.aged(at.elapsed())),
        }
    }
}

impl RoutedStream {
    /// The stream committed at `handover`, which starts with `first` (the attempt started at
    /// `started` and delivered its first content after `ttft`).
    pub(super) fn new(
        engine: Arc<Engine>,
        decision: Decision,
        handover: Handover,
        first: FirstContent,
        started: Instant,
        ttft: Duration,
    ) -> Self {
        let Handover { model, probe, attempts, ticket, spent, deadline, span, caller } = handover;
        let (buffered, events) = first;
        engine.log.set_model(decision.id(), model);
        let idle = engine.exec.first_token_timeout;
        Self {
            engine,
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
            finish_reason: None,
            ticket,
            span,
            caller,
        }
    }
}

impl RoutedStream {
    /// Why this model was chosen.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// The model streaming the answer.
    pub fn model(&self) -> &crate::types::ModelId {
        &self.engine.catalog.model(self.model).id
    }

    /// Where the caller stood against its [`CallerRateLimit`](crate::limits::CallerRateLimit)s once
    /// this request was admitted (it included); `None` when none applies.
    pub fn caller_limits(&self) -> Option<CallerLimits> {
        self.caller
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
        let profile = self.engine.catalog.model(self.model);
        let answer = self.usage.map_or(0.0, |u| self.engine.cost_model.actual(&u, profile));
        self.spent + if answer.is_finite() { answer } else { 0.0 }
    }

    /// Records the outcome once: `error` is the provider's (for the health statistics), `reported`
    /// what the caller receives (for observers).
    fn finish(&mut self, error: Option<&Error>, reported: Option<&Error>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.events = None;
        let inner = &*self.engine;
        let latency = self.started.elapsed();
        if error.is_none() {
            // The streaming attempt took until now (a failure recorded its time already).
            if let Some(last) = self.attempts.last_mut() {
                last.latency = latency;
            }
        }
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
        match error {
            None => super::telemetry::record_answer(&self.span, self.usage.as_ref(), self.finish_reason),
            Some(e) => super::telemetry::record_error(&self.span, e.kind()),
        }
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
            StreamEvent::Finish(reason) => {
                self.saw_finish = true;
                self.finish_reason = Some(*reason);
            }
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
            self.engine.health.release_probe(self.model);
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
        let engine = Arc::clone(&this.engine);
        let profile = engine.catalog.model(this.model);
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
            // The whole attempt, not just its time to first content.
            last.latency = this.started.elapsed();
            for o in &engine.observers {
                o.on_attempt(&this.decision, last);
            }
        }
        let wrapped = wrapped.with_attempts(this.attempts.clone());
        this.finish(Some(&error), Some(&wrapped));
        Poll::Ready(Some(Err(wrapped.with_source(error))))
    }
}
