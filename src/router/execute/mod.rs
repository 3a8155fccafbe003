//! `complete` and `stream`: attempts along the decision's ranking, with retries, fallbacks, escalation
//! and a commit point for streams. See [`crate::execute`] for the rules.
//!
//! The attempt loop ([`run`]):
//!
//! 1. **Pick** a candidate ([`plan`]): the decision's first choice, then the next one in ranking order
//!    that is untried, has a larger context window than one that overflowed, and, after an
//!    escalation, is predicted to answer better. With limits, the first of those they admit, whose
//!    reservation is held until the next pick. No candidate left: go to 6.
//! 2. **Gate** the attempt ([`attempt`]): with no attempts or time left the request ends (6); an open
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
//!    ([`stream`]): the [`RoutedStream`] delivers the rest, and a later failure is a mid-stream error.
//! 6. At the **end** without an answer, a held inadequate answer is returned; otherwise the last
//!    error, with every attempt.

mod attempt;
mod plan;
mod run;
mod stream;

use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;
use crate::execute::Attempt;
use crate::execute::retry::Jitter;
use crate::limits::Ticket;
use crate::policy::{Decision, Rejection};
use crate::request::Request;
use crate::router::Router;

use self::plan::Plan;

pub use self::stream::RoutedStream;

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
            jitter: Jitter::new(inner.jitter_seed ^ decision.id().get().wrapping_mul(crate::hash::GOLDEN)),
            escalations: 0,
            last: None,
            ticket: None,
            refused: Vec::new(),
        }
    }
}
