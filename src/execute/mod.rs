//! How [`Router::complete`](crate::Router::complete) and [`Router::stream`](crate::Router::stream)
//! execute a decision: attempts, retries, fallbacks, escalation, and what they report.
//!
//! # The attempt loop
//!
//! 1. The decision ranks the candidates (open circuits were filtered out before the policy ran). The
//!    first is tried.
//! 2. A retryable error (timeout, connection, rate limit, server) retries the same model after
//!    a backoff ([`RetryPolicy`]: exponential, full jitter, at least the
//!    provider's Retry-After), up to the policy's per-model retries; then the next candidate is tried.
//! 3. A context overflow moves to the next candidate with a larger context window than the one that
//!    overflowed (smaller ones are skipped).
//! 4. An error retrying cannot fix (auth, bad request, unknown model) moves to the next candidate or
//!    stops, as [`NonRetryable`](crate::execute::retry::NonRetryable) says.
//! 5. An answer that a [`QualityCheck`](crate::execute::quality::QualityCheck) finds inadequate escalates to the
//!    next candidate in the ranking whose predicted quality `p` is higher, at most
//!    [`ExecutionConfig::max_escalations`] times. When no stronger candidate is left, the last answer is
//!    returned with its [`Response::inadequacy`](crate::Response::inadequacy) set.
//! 6. Every step stays within the request's deadline ([`ExecutionConfig::timeout`], or the request's
//!    own [`RouteHints::timeout`](crate::RouteHints::timeout)) and the policy's total attempt budget.
//!
//! Every attempt, failed or not, is listed in order ([`Attempt`]) on the response or on the final error
//! ([`Error::attempts`](crate::Error::attempts)), and its actual cost is counted in
//! [`Response::cost_usd`](crate::Response::cost_usd).
//!
//! # Streams
//!
//! Until the first piece of content (text or a tool call) reaches the caller, a stream is an attempt
//! like any other: an error, or no content within [`ExecutionConfig::first_token_timeout`], moves on
//! to the next attempt. After it, the stream is committed to its model: a failure arrives as an
//! [`ErrorKind::MidStream`] error that carries the content already delivered. A stream that ends
//! without any content is an answer, returned as it is (like an empty answer from `complete` without
//! a quality check; quality checks do not apply to streams).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::execute::health::HealthConfig;
use crate::execute::retry::RetryPolicy;
use crate::types::millis;
mod attempt;
mod engine;
pub mod health;
mod log;
mod plan;
pub mod quality;
mod response;
pub mod retry;
mod run;
mod stream;
mod telemetry;

pub(crate) use self::engine::{Engine, now_std};
pub(crate) use self::log::DecisionLog;
pub use self::stream::RoutedStream;

pub use self::response::Response;
pub(crate) use self::response::Served;
pub use crate::types::{Attempt, AttemptOutcome, AttemptReason, DecisionId, Feedback};

/// Execution settings of a router: retries, circuit breaking, deadlines and escalation.
///
/// In TOML or JSON every field is optional, unknown fields are rejected, and durations are whole
/// milliseconds in fields suffixed `_ms`:
///
/// ```toml
/// [execution]
/// timeout_ms = 30000
/// first_token_timeout_ms = 5000
/// max_escalations = 1
///
/// [execution.retry]
/// max_retries_per_model = 1
///
/// [execution.health]
/// failure_rate = 0.5
/// open_for_ms = 30000
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutionConfig {
    /// Retries, backoff and the attempt budget.
    pub retry: RetryPolicy,
    /// Live statistics and circuit breakers.
    pub health: HealthConfig,
    /// The deadline of one request, across every attempt and wait (default 120 s).
    #[serde(rename = "timeout_ms", with = "millis")]
    pub timeout: Duration,
    /// The longest one attempt may take (default 60 s); the remaining deadline applies when shorter.
    #[serde(rename = "attempt_timeout_ms", with = "millis")]
    pub attempt_timeout: Duration,
    /// Streams: the longest wait for the first piece of content of an attempt (default 30 s).
    #[serde(rename = "first_token_timeout_ms", with = "millis")]
    pub first_token_timeout: Duration,
    /// How many times an inadequate answer may be escalated to a stronger model (default 1). Needs a
    /// quality check ([`RouterBuilder::quality_check`](crate::RouterBuilder::quality_check)).
    pub max_escalations: u32,
    /// Whether measured latency and success rates replace the catalog's static profile in decisions
    /// once a model has enough samples, as long as they are current (default true; see
    /// [`HealthConfig::stale_after`]).
    pub live_routing: bool,
    /// How many recent decisions [`Router::feedback`](crate::Router::feedback) can still find (default
    /// 65,536; older ones expire).
    pub feedback_capacity: u32,
    /// How long a decision accepts feedback (default 1 h).
    #[serde(rename = "feedback_ttl_ms", with = "millis")]
    pub feedback_ttl: Duration,
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            health: HealthConfig::default(),
            timeout: Duration::from_secs(120),
            attempt_timeout: Duration::from_secs(60),
            first_token_timeout: Duration::from_secs(30),
            max_escalations: 1,
            live_routing: true,
            feedback_capacity: 1 << 16,
            feedback_ttl: Duration::from_secs(3600),
        }
    }
}

impl ExecutionConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the health and circuit-breaker settings.
    pub fn with_health(mut self, health: HealthConfig) -> Self {
        self.health = health;
        self
    }

    /// Sets the deadline of one request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the longest one attempt may take.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Sets the longest wait for a stream's first content.
    pub fn with_first_token_timeout(mut self, timeout: Duration) -> Self {
        self.first_token_timeout = timeout;
        self
    }

    /// Sets how many times an inadequate answer may be escalated.
    pub fn with_max_escalations(mut self, escalations: u32) -> Self {
        self.max_escalations = escalations;
        self
    }

    /// Turns routing on live statistics on or off.
    pub fn with_live_routing(mut self, on: bool) -> Self {
        self.live_routing = on;
        self
    }

    /// Sets how many recent decisions accept feedback.
    pub fn with_feedback_capacity(mut self, decisions: u32) -> Self {
        self.feedback_capacity = decisions;
        self
    }

    /// Sets how long a decision accepts feedback.
    pub fn with_feedback_ttl(mut self, ttl: Duration) -> Self {
        self.feedback_ttl = ttl;
        self
    }

    /// Checks every value, naming the first bad field.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a zero timeout or feedback capacity, or an invalid retry policy or
    /// health setting.
    pub(crate) fn validate(&self) -> Result<()> {
        self.retry.validate()?;
        self.health.validate()?;
        for (name, value) in [
            ("timeout_ms", self.timeout),
            ("attempt_timeout_ms", self.attempt_timeout),
            ("first_token_timeout_ms", self.first_token_timeout),
            ("feedback_ttl_ms", self.feedback_ttl),
        ] {
            if value.is_zero() {
                return Err(Error::new(ErrorKind::Config, format!("execution `{name}` must be positive")));
            }
        }
        if self.feedback_capacity == 0 || self.feedback_capacity > 1 << 24 {
            return Err(Error::new(
                ErrorKind::Config,
                format!("execution `feedback_capacity` must be within 1..=16777216, got {}", self.feedback_capacity),
            ));
        }
        Ok(())
    }
}
