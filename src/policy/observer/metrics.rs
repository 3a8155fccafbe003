//! [`MetricsObserver`]: the router's decisions, attempts, results and feedback as metrics of the
//! [`metrics`](https://docs.rs/metrics) crate (feature `metrics`), for whichever recorder the
//! application installs (Prometheus, StatsD, OpenTelemetry).

use metrics::{counter, histogram};

use super::Observer;
use crate::error::Error;
use crate::policy::Decision;
use crate::types::{Attempt, AttemptOutcome, DecisionId, Feedback, ModelId};

/// Records every hook of [`Observer`] as a metric. Names and labels (every label value is
/// low-cardinality: model ids, policy names, reason and error-kind labels; never a key, tenant or
/// prompt):
///
/// | metric | kind | labels | what |
/// |---|---|---|---|
/// | `switchyard_decisions_total` | counter | `model`, `policy` | decisions, by chosen model |
/// | `switchyard_low_confidence_total` | counter | `model` | decisions below the confidence floor |
/// | `switchyard_attempts_total` | counter | `model`, `reason`, `outcome` | provider calls; `outcome` is `answered`, `inadequate` or the error kind |
/// | `switchyard_attempt_duration_seconds` | histogram | `model`, `outcome` | each call's wall time |
/// | `switchyard_requests_total` | counter | `model`, `result` | finished requests; `result` is `ok` or the error kind, `model` the one that answered (or was chosen, on error) |
/// | `switchyard_request_cost_usd` | histogram | `model` | each finished request's actual cost (its sum is the spend) |
/// | `switchyard_feedback_total` | counter | `model`, `success` | feedback received |
/// | `switchyard_feedback_quality` | histogram | `model` | feedback quality scores |
///
/// ```
/// # #[cfg(feature = "metrics")] {
/// use switchyard::policy::MetricsObserver;
/// let builder = switchyard::Router::builder().observer(MetricsObserver::new());
/// # let _ = builder; }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct MetricsObserver {
    _private: (),
}

impl MetricsObserver {
    /// An observer that records to the global `metrics` recorder.
    pub fn new() -> Self {
        Self::default()
    }
}

fn outcome_label(outcome: &AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Answered => "answered",
        AttemptOutcome::Inadequate(_) => "inadequate",
        AttemptOutcome::Failed { kind, .. } => kind.as_str(),
    }
}

impl Observer for MetricsObserver {
    fn on_decision(&self, decision: &Decision) {
        let model = decision.model().to_string();
        counter!("switchyard_decisions_total", "model" => model.clone(), "policy" => decision.policy().to_owned())
            .increment(1);
        if decision.is_low_confidence() {
            counter!("switchyard_low_confidence_total", "model" => model).increment(1);
        }
    }

    fn on_attempt(&self, _decision: &Decision, attempt: &Attempt) {
        let model = attempt.model.to_string();
        let outcome = outcome_label(&attempt.outcome);
        counter!(
            "switchyard_attempts_total",
            "model" => model.clone(),
            "reason" => attempt.reason.to_string(),
            "outcome" => outcome
        )
        .increment(1);
        histogram!("switchyard_attempt_duration_seconds", "model" => model, "outcome" => outcome)
            .record(attempt.latency.as_secs_f64());
    }

    fn on_finish(&self, decision: &Decision, result: std::result::Result<(&ModelId, f64), &Error>) {
        match result {
            Ok((model, cost)) => {
                let model = model.to_string();
                counter!("switchyard_requests_total", "model" => model.clone(), "result" => "ok").increment(1);
                histogram!("switchyard_request_cost_usd", "model" => model).record(cost);
            }
            Err(e) => {
                counter!("switchyard_requests_total", "model" => decision.model().to_string(), "result" => e.kind().as_str())
                    .increment(1);
            }
        }
    }

    fn on_feedback(&self, _id: DecisionId, model: &ModelId, feedback: &Feedback) {
        let model = model.to_string();
        counter!(
            "switchyard_feedback_total",
            "model" => model.clone(),
            "success" => if feedback.success { "true" } else { "false" }
        )
        .increment(1);
        if let Some(q) = feedback.quality {
            histogram!("switchyard_feedback_quality", "model" => model).record(q);
        }
    }
}
