//! [`Feedback`]: what happened after a decision, as the service saw it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happened after a decision, as the service saw it: [`Router::feedback`](crate::Router::feedback).
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// Whether the request succeeded from the service's point of view.
    pub success: bool,
    /// A quality score in `[0, 1]` (a grader, a user rating), if any.
    pub quality: Option<f64>,
    /// End-to-end latency, if the service measured it.
    pub latency: Option<Duration>,
    /// Actual cost in USD, if the service knows it.
    pub cost_usd: Option<f64>,
    /// Who sends it: the [`RouteHints::key`](crate::RouteHints::key) of the caller. Feedback that
    /// names a key is accepted only for a decision made for a request with the same key (otherwise
    /// the id is unknown, as if it had never been issued), so that one caller cannot grade another's
    /// answers. Feedback without a key is the service's own and is accepted for any decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Feedback {
    /// A success.
    pub fn success() -> Self {
        Self { success: true, ..Self::default() }
    }

    /// A failure.
    pub fn failure() -> Self {
        Self { success: false, ..Self::default() }
    }

    /// Sets the quality score.
    pub fn with_quality(mut self, quality: f64) -> Self {
        self.quality = Some(quality);
        self
    }

    /// Sets the latency.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    /// Sets the cost.
    pub fn with_cost(mut self, usd: f64) -> Self {
        self.cost_usd = Some(usd);
        self
    }

    /// Names the caller sending it ([`key`](Self::key)).
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// What is wrong with this feedback, if anything (the router turns it into an
    /// [`ErrorKind::InvalidRequest`](super::ErrorKind::InvalidRequest) error).
    pub(crate) fn invalid(&self) -> Option<String> {
        if let Some(q) = self.quality
            && !(0.0..=1.0).contains(&q)
        {
            return Some(format!("feedback quality must be within [0, 1], got {q}"));
        }
        if let Some(c) = self.cost_usd
            && !(c.is_finite() && c >= 0.0)
        {
            return Some(format!("feedback cost must be finite and >= 0, got {c}"));
        }
        None
    }
}
