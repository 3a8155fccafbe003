//! [`Observer`]: hooks that see every decision, attempt, result and feedback.

#[cfg(feature = "metrics")]
mod metrics;

#[cfg(feature = "metrics")]
pub use self::metrics::MetricsObserver;

use crate::error::Error;
use crate::policy::Decision;
use crate::types::{Attempt, DecisionId, Feedback, ModelId};

/// Hooks for exporting metrics: the router calls them as it works. Every method has an empty default.
///
/// Called inline, so keep them quick (increment a counter, send on a channel). They receive no prompt
/// or answer text.
pub trait Observer: Send + Sync {
    /// A decision was made (by `route`, `complete` or `stream`).
    fn on_decision(&self, decision: &Decision) {
        let _ = decision;
    }

    /// An attempt ended.
    fn on_attempt(&self, decision: &Decision, attempt: &Attempt) {
        let _ = (decision, attempt);
    }

    /// A request finished: `Ok` with the answering model and total cost, or the final error.
    fn on_finish(&self, decision: &Decision, result: std::result::Result<(&ModelId, f64), &Error>) {
        let _ = (decision, result);
    }

    /// Feedback was recorded for a decision that chose `model`.
    fn on_feedback(&self, id: DecisionId, model: &ModelId, feedback: &Feedback) {
        let _ = (id, model, feedback);
    }
}
