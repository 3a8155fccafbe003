//! The [`Engine`]: what executing a decision needs (providers, health, limits, quality checks,
//! observers), and the attempt loop of `complete` and `stream`: attempts along the decision's
//! ranking, with retries, fallbacks, escalation and a commit point for streams. See
//! [`crate::execute`] for the rules.
//!
//! The attempt loop ([`run`](super::run)):
//!
//! 1. **Pick** a candidate ([`plan`](super::plan)): the decision's first choice, then the next one in ranking order
//!    that is untried, has a larger context window than one that overflowed, and, after an
//!    escalation, is predicted to answer better. With limits, the first of those they admit, whose
//!    reservation is held until the next pick. No candidate left: go to 6.
//! 2. **Gate** the attempt ([`attempt`](super::attempt)): with no attempts or time left the request ends (6); an open
//!    circuit skips the model (1); a half-open one lets the attempt through on a probe slot, which a
//!    guard gives back unless an outcome is recorded.
//! 3. **Call** the provider within the time left and the limit of one attempt (for a stream, until its
//!    first content). If the request's deadline cuts the call short, the request ends (6).
//! 4. On a **failure**, record it against the model's health and in the attempts, then retry the same
//!    model after a backoff (3) when the error is retryable and the retry policy and the deadline
//!    allow; otherwise fall back (1) to a larger context window after an overflow, to the next
//!    candidate after anything else, or to nothing when a non-retryable error stops the request.
//! 5. On an **answer**, `complete` records its cost and the quality check's verdict: an adequate answer
//!    is returned; an inadequate one is held and escalated to a stronger candidate (1) while
//!    escalations are left, else returned. `stream` commits to the model at its first content
//!    ([`stream`](super::stream)): the [`RoutedStream`] delivers the rest, and a later failure is a mid-stream error.
//! 6. At the **end** without an answer, a held inadequate answer is returned; otherwise the last
//!    error, with every attempt.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use tokio::time::Instant;

use super::health::HealthTracker;
use super::log::DecisionLog;
use super::plan::Plan;
use super::quality::QualityCheck;
use super::retry::Jitter;
use super::{Attempt, ExecutionConfig};
use crate::catalog::{Catalog, ModelProfile};
use crate::cost::CostModel;
use crate::error::Error;
use crate::limits::{CallerLimits, Limiter, Ticket};
use crate::policy::{Decision, Observer, Rejection};
use crate::provider::Provider;
use crate::request::Request;

/// What executing a decision needs. The router owns one behind an `Arc` (a stream keeps it alive
/// until it ends) and shares its catalog and cost model with it.
pub(crate) struct Engine {
    pub(crate) catalog: Catalog,
    pub(crate) cost_model: Arc<dyn CostModel>,
    /// Provider of each catalog model, by index (`None` for a route-only router).
    pub(crate) providers: Vec<Option<Arc<dyn Provider>>>,
    pub(crate) exec: ExecutionConfig,
    pub(crate) health: HealthTracker,
    pub(crate) quality: Option<Arc<dyn QualityCheck>>,
    pub(crate) observers: Vec<Arc<dyn Observer>>,
    pub(crate) log: DecisionLog,
    /// Recovery attempts in flight per model (when every circuit is open).
    pub(crate) recovering: Box<[AtomicU32]>,
    /// Budgets, rate limits and sticky sessions, when any are set.
    pub(crate) limiter: Option<Arc<Limiter>>,
    /// Seeds the backoff jitter of each request (with its decision id).
    pub(crate) jitter_seed: u64,
}

/// `e` with the model it concerns, unless it names one already.
pub(crate) fn attach_model(e: Error, model: &ModelProfile) -> Error {
    if e.model().is_some() { e } else { e.with_model(model.id.clone()) }
}

pub(crate) fn now_std() -> std::time::Instant {
    Instant::now().into_std()
}

pub(super) fn timeout_error(what: &str, limit: Duration) -> Error {
    Error::timeout(format!("{what} within {} ms", limit.as_millis()))
}

/// Mutable state of one request's execution.
pub(super) struct Run<'a> {
    pub(super) engine: &'a Engine,
    pub(super) decision: &'a Decision,
    pub(super) plan: Plan<'a>,
    pub(super) attempts: Vec<Attempt>,
    pub(super) spent: f64,
    pub(super) started: Instant,
    pub(super) deadline: Instant,
    pub(super) jitter: Jitter,
    pub(super) escalations: u32,
    /// The error that ends the request if nothing answers.
    pub(super) last: Option<Error>,
    /// The reservation for the model being tried, when limits are set.
    pub(super) ticket: Option<Ticket>,
    /// Candidates that limits refused along the way.
    pub(super) refused: Vec<Rejection>,
    /// Where the caller stood against its rate limits when the request was admitted (its tokens:
    /// at the latest admission), and when that was read.
    pub(super) caller: Option<(CallerLimits, Instant)>,
}

impl<'a> Run<'a> {
    pub(super) fn new(engine: &'a Engine, request: &Request, decision: &'a Decision) -> Self {
        let inner = engine;
        let timeout = request.hints.timeout.unwrap_or(inner.exec.timeout);
        let now = Instant::now();
        Self {
            engine,
            decision,
            plan: Plan::new(decision),
            attempts: Vec::new(),
            spent: 0.0,
            started: now,
            deadline: now.checked_add(timeout).unwrap_or(now + Duration::from_secs(86_400 * 365)),
            jitter: Jitter::new(inner.jitter_seed ^ decision.id().get().wrapping_mul(crate::hash::GOLDEN)),
            escalations: 0,
            last: None,
            ticket: None,
            refused: Vec::new(),
            caller: None,
        }
    }
}
