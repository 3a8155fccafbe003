//! [`CallOutcome`] and [`Observation`]: how one attempt on one model ended, and whether it counts.

use std::time::Duration;

use crate::error::{Error, ErrorKind};

#[cfg(doc)]
use super::HealthTracker;

/// How one attempt ended.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallOutcome {
    /// The model answered.
    Success,
    /// The attempt failed this way.
    Failure(ErrorKind),
}

/// The outcome of one attempt on one model, as reported to [`HealthTracker::record`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Observation {
    /// Success or the kind of failure.
    pub(crate) outcome: CallOutcome,
    /// Wall time of the attempt, from sending the request to the last byte (or the failure).
    pub(crate) latency: Duration,
    /// Time to the first output token, when known.
    pub(crate) ttft: Option<Duration>,
    /// Output tokens produced; with [`ttft`](Self::ttft) gives the decoding speed
    /// `output_tokens / (latency − ttft)`.
    pub(crate) output_tokens: u32,
}

impl Observation {
    /// A successful attempt that took `latency`.
    pub(crate) fn success(latency: Duration) -> Self {
        Self { outcome: CallOutcome::Success, latency, ttft: None, output_tokens: 0 }
    }

    /// An attempt that failed with `kind` after `latency`.
    pub(crate) fn failure(kind: ErrorKind, latency: Duration) -> Self {
        Self { outcome: CallOutcome::Failure(kind), latency, ttft: None, output_tokens: 0 }
    }

    /// An attempt that failed with `error` after `latency`.
    pub(crate) fn from_error(error: &Error, latency: Duration) -> Self {
        Self::failure(error.kind(), latency)
    }

    /// Sets the time to the first output token.
    pub(crate) fn with_ttft(mut self, ttft: Duration) -> Self {
        self.ttft = Some(ttft);
        self
    }

    /// Sets the number of output tokens produced.
    pub(crate) fn with_output_tokens(mut self, tokens: u32) -> Self {
        self.output_tokens = tokens;
        self
    }

    /// Whether the observation says anything about the model's health.
    ///
    /// Every success counts, and so does every failure on the model's side: timeouts, connection
    /// failures, rate limiting, server errors, rejected credentials, unknown model, undecodable
    /// responses and broken streams. Failures that are the caller's fault ([`ErrorKind::InvalidRequest`],
    /// [`ErrorKind::BadRequest`], [`ErrorKind::ContextOverflow`], [`ErrorKind::ContentFilter`]) or that happen before the model is
    /// reached ([`ErrorKind::Config`], [`ErrorKind::NoCandidate`], [`ErrorKind::Routing`],
    /// [`ErrorKind::ProviderMissing`]) do not count: [`HealthTracker::record`] ignores them, and
    /// [`HealthTracker::record_probe`] only gives the probe slot back.
    pub(crate) fn counts_toward_health(&self) -> bool {
        match self.outcome {
            CallOutcome::Success => true,
            CallOutcome::Failure(kind) => match kind {
                ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::RateLimited
                | ErrorKind::Server
                | ErrorKind::Auth
                | ErrorKind::ModelNotFound
                | ErrorKind::Decode
                | ErrorKind::MidStream => true,
                ErrorKind::InvalidRequest
                | ErrorKind::BadRequest
                | ErrorKind::ContextOverflow
                | ErrorKind::ContentFilter
                | ErrorKind::Config
                | ErrorKind::NoCandidate
                | ErrorKind::Routing
                | ErrorKind::ProviderMissing
                | ErrorKind::BudgetExceeded
                | ErrorKind::Store
                | ErrorKind::LowConfidence => false,
            },
        }
    }

    pub(super) fn is_failure(&self) -> bool {
        matches!(self.outcome, CallOutcome::Failure(_))
    }

    /// Output tokens per second while decoding, when the time to first token is known and shorter
    /// than the latency and at least one token was produced.
    pub(super) fn tokens_per_sec(&self) -> Option<f64> {
        let ttft = self.ttft?;
        let decoding = self.latency.checked_sub(ttft).filter(|d| !d.is_zero())?;
        (self.output_tokens > 0).then(|| f64::from(self.output_tokens) / decoding.as_secs_f64())
    }
}
