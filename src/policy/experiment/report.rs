//! [`ExperimentReport`]: what an experiment measured, as a struct, JSON and a terminal table.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::policy::experiment::stats::{Estimate, wilson};
use crate::policy::experiment::{Group, Metric, SequentialTest};

/// The sequential test's conclusion about one arm against the control.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// Not enough evidence yet: keep the experiment running.
    Undecided,
    /// The arm is better than the control on the metric, at the stated error rate.
    Better,
    /// The arm is worse than the control on the metric, at the stated error rate.
    Worse,
}

impl Conclusion {
    /// A short lower-case name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Undecided => "undecided",
            Self::Better => "better",
            Self::Worse => "worse",
        }
    }
}

/// One arm's (or the holdout's) aggregates.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    /// The arm's name (`"holdout"` for the holdout).
    pub arm: String,
    /// The share of keyed traffic the arm is meant to get.
    pub share: f64,
    /// Decisions routed through the arm (every assignment, kill switch and unkeyed included).
    pub routed: u64,
    /// Feedback counted for the arm (assigned requests only).
    pub feedback: u64,
    /// The success rate with a Wilson interval.
    pub success_rate: Option<Estimate>,
    /// The mean quality (a success without a score counts 1, a failure 0) with a t interval.
    pub quality: Option<Estimate>,
    /// The mean actual cost in USD, over feedback that reported one, with a t interval.
    pub cost_usd: Option<Estimate>,
    /// The mean latency in milliseconds, over feedback that reported one, with a t interval.
    pub latency_ms: Option<Estimate>,
}

pub(crate) fn arm_report(name: &str, share: f64, routed: u64, g: &Group, test: &SequentialTest) -> ArmReport {
    let c = test.confidence;
    ArmReport {
        arm: name.to_owned(),
        share,
        routed,
        feedback: g.feedback,
        success_rate: wilson(g.successes, g.feedback, c),
        quality: g.quality.estimate(c),
        cost_usd: g.cost.estimate(c),
        latency_ms: g.latency.estimate(c),
    }
}

/// One arm compared with the control by the mixture sequential probability ratio test.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The arm.
    pub arm: String,
    /// The control arm.
    pub control: String,
    /// What is compared.
    pub metric: Metric,
    /// Observations of the metric in the control.
    pub n_control: u64,
    /// Observations of the metric in the arm.
    pub n_arm: u64,
    /// The arm's mean minus the control's (NaN until both have two observations).
    pub difference: f64,
    /// The lower end of the always-valid confidence sequence for the difference, at level `1 − alpha`.
    pub low: f64,
    /// The upper end.
    pub high: f64,
    /// The always-valid p-value: `min(1, 1 / max Λ)` over every update so far.
    pub p_value: f64,
    /// The error rate of this comparison (the experiment's `alpha` divided by the number of
    /// comparisons).
    pub alpha: f64,
    /// The conclusion, fixed at the first update where `Λ ≥ 1/alpha`.
    pub verdict: Conclusion,
    /// Total observations of both arms when the verdict was reached.
    pub decided_after: Option<u64>,
}

/// What an [`Experiment`](crate::policy::experiment::Experiment) measured: [`ExperimentHandle::report`](crate::policy::experiment::ExperimentHandle::report).
///
/// `Serialize` for dashboards ([`to_json`](Self::to_json)); `Display` prints a terminal table.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentReport {
    /// The experiment's name.
    pub experiment: String,
    /// Whether the kill switch is on.
    pub killed: bool,
    /// What the sequential test compares.
    pub metric: Metric,
    /// The experiment-wide false-positive rate.
    pub alpha: f64,
    /// The confidence level of the per-arm intervals.
    pub confidence: f64,
    /// Every arm, the control first.
    pub arms: Vec<ArmReport>,
    /// The holdout, if the experiment has one.
    pub holdout: Option<ArmReport>,
    /// Feedback for requests without a key (served by the control, not compared).
    pub unkeyed_feedback: u64,
    /// Feedback for requests served while the kill switch was on (not compared).
    pub killed_feedback: u64,
    /// Each arm besides the control, compared with it.
    pub comparisons: Vec<Comparison>,
}

impl ExperimentReport {
    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // A report holds only strings, numbers and enums: serialising cannot fail, but non-finite
        // numbers become `null`.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn est(e: Option<&Estimate>, scale: f64, digits: usize) -> String {
    match e {
        None => "-".to_owned(),
        Some(e) if e.low.is_finite() && e.high.is_finite() => {
            format!("{:.d$} [{:.d$}, {:.d$}]", e.mean * scale, e.low * scale, e.high * scale, d = digits)
        }
        Some(e) => format!("{:.d$}", e.mean * scale, d = digits),
    }
}

impl fmt::Display for ExperimentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "experiment `{}`{}: metric {}, alpha {}, {:.0}% intervals",
            self.experiment,
            if self.killed { " (killed: everything goes to the control)" } else { "" },
            self.metric.as_str(),
            self.alpha,
            self.confidence * 100.0
        )?;
        writeln!(
            f,
            "{:<16} {:>6} {:>8} {:>8}  {:<24} {:<24} {:<30} {:<22}",
            "arm", "share", "routed", "feedback", "success %", "quality", "cost $ (x1e6)", "latency ms"
        )?;
        for a in self.arms.iter().chain(&self.holdout) {
            writeln!(
                f,
                "{:<16} {:>6.3} {:>8} {:>8}  {:<24} {:<24} {:<30} {:<22}",
                a.arm,
                a.share,
                a.routed,
                a.feedback,
                est(a.success_rate.as_ref(), 100.0, 1),
                est(a.quality.as_ref(), 1.0, 3),
                est(a.cost_usd.as_ref(), 1e6, 1),
                est(a.latency_ms.as_ref(), 1.0, 0)
            )?;
        }
        if self.unkeyed_feedback > 0 || self.killed_feedback > 0 {
            writeln!(f, "not compared: {} unkeyed, {} while killed", self.unkeyed_feedback, self.killed_feedback)?;
        }
        for c in &self.comparisons {
            let decided = c.decided_after.map_or(String::new(), |n| format!(" after {n} observations"));
            writeln!(
                f,
                "{} vs {}: difference {:+.4} [{:+.4}, {:+.4}], p {:.4} (alpha {:.4}): {}{}",
                c.arm,
                c.control,
                c.difference,
                c.low,
                c.high,
                c.p_value,
                c.alpha,
                c.verdict.as_str(),
                decided
            )?;
        }
        Ok(())
    }
}
