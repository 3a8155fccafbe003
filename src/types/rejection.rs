//! [`Rejection`]: a model a hard constraint removed from a decision, and why.

use std::fmt;
use std::time::Duration;

use super::{Capabilities, ModelId};

/// Why a hard constraint removed a model.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RejectReason {
    /// The request's allowed list does not name it.
    #[error("not in the request's allowed models")]
    NotAllowed,
    /// The request excludes it.
    #[error("excluded by the request")]
    Excluded,
    /// The input plus the reserved output does not fit its window.
    #[error("context window {window} < {needed} tokens needed ({input} input + {reserved} output)")]
    ContextWindow {
        /// Input plus reserved output tokens.
        needed: u64,
        /// Input tokens.
        input: u32,
        /// Reserved output tokens.
        reserved: u32,
        /// The model's window.
        window: u32,
    },
    /// The request asks for more output than it can produce.
    #[error("max output {max} < {requested} requested")]
    MaxOutput {
        /// The request's `max_tokens`.
        requested: u32,
        /// The model's limit.
        max: u32,
    },
    /// It lacks capabilities the request needs.
    #[error("lacks {missing}")]
    MissingCapabilities {
        /// What is missing.
        missing: Capabilities,
    },
    /// It is expected to be slower than the request's latency budget.
    #[error("expected latency {:.2}s > budget {:.2}s", expected.as_secs_f64(), budget.as_secs_f64())]
    LatencyBudget {
        /// Expected latency.
        expected: Duration,
        /// The request's budget.
        budget: Duration,
    },
    /// It is expected to cost more than the request allows.
    #[error("expected cost ${expected:.6} > cap ${cap:.6}")]
    CostCap {
        /// Expected USD.
        expected: f64,
        /// The request's cap.
        cap: f64,
    },
    /// Its circuit breaker is open after recent failures.
    #[error("circuit open (retry in {:.1}s)", retry_in.as_secs_f64())]
    CircuitOpen {
        /// Time until the circuit lets probe requests through.
        retry_in: Duration,
    },
    /// What it would cost does not fit within a budget.
    #[error("{budget}: needs ${needed:.6}, ${remaining:.6} left")]
    Budget {
        /// The budget (its scope, tenant, cap and window; never a caller key).
        budget: String,
        /// What the model's call reserves.
        needed: f64,
        /// What the budget has left.
        remaining: f64,
    },
    /// It is at one of its rate limits.
    #[error("at its rate limit of {limit}")]
    RateLimit {
        /// The limit, e.g. `500 requests per minute`.
        limit: String,
    },
    /// The caller (everyone, its tenant or its key) is at one of its
    /// [caller rate limits](crate::limits::CallerRateLimit); every model is refused alike.
    #[error("the caller is at its {limit}")]
    CallerRateLimit {
        /// The limit, e.g. `tenant `acme` limit of 600 requests per minute` (never a caller key).
        limit: String,
    },
    /// A limit that fails closed applies to it and the state store cannot be reached.
    #[error("a limit that fails closed applies and the state store is unreachable")]
    StoreUnavailable,
    /// The cost model returned a non-finite or negative estimate.
    #[error("cost model returned an invalid estimate ({usd})")]
    InvalidCost {
        /// The estimate.
        usd: f64,
    },
}

/// A model a hard constraint removed, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    model: ModelId,
    reason: RejectReason,
}

impl Rejection {
    /// A rejection of `model` for `reason`.
    pub(crate) fn new(model: ModelId, reason: RejectReason) -> Self {
        Self { model, reason }
    }

    /// The model.
    pub fn model(&self) -> &ModelId {
        &self.model
    }

    /// Why it was removed.
    pub fn reason(&self) -> &RejectReason {
        &self.reason
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.model, self.reason)
    }
}
