//! [`Utility`]: maximise `V·p − cost − μ·latency`, in USD.

use crate::catalog::Catalog;
use crate::error::Result;
use crate::policy::experiment::Knob;
use crate::policy::{Policy, PolicyInput, Ranking, check_weight};

/// The default value of an acceptable answer, in USD: [`Utility::new`] and the default
/// [`Bandit`](crate::policy::experiment::Bandit) weigh a one-point gain in `p` (0.01) against
/// $0.0001, a tenth of what a frontier model charges for a short answer. Calibrate it for your
/// traffic (`switchyard_eval::calibrate`) or set what an answer is worth to you.
pub const DEFAULT_ANSWER_VALUE_USD: f64 = 0.01;

/// Ranks candidates by expected net value, `V·p(m) − c(m) − μ·l(m)`, in USD.
///
/// 1. `p(m)` is the predicted probability of an acceptable answer, `c(m)` the expected cost in USD
///    and `l(m)` the expected latency in seconds.
/// 2. `V` ([`answer_value`](Self::answer_value)) is what an acceptable answer is worth, in USD, and
///    `μ` ([`latency_cost`](Self::latency_cost)) what a second of waiting costs, in USD.
/// 3. Highest value first; ties go to the cheaper model, then to the earlier one in the catalog.
///
/// Each candidate's score depends only on that candidate, so the choice between two models never
/// depends on a third one: adding a model that is not chosen, or removing one, leaves the choice
/// where it was.
///
/// `V` is the cost–quality knob: 0 picks the cheapest model, large values the model most likely to
/// succeed. For a fixed request, raising `V` never lowers the expected cost of the choice: a model
/// is worth its price difference over a cheaper one when its gain in `p` times `V` exceeds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Utility {
    answer_value: f64,
    knob: Option<Knob>,
    latency_cost: f64,
}

impl Default for Utility {
    fn default() -> Self {
        Self { answer_value: DEFAULT_ANSWER_VALUE_USD, knob: None, latency_cost: 0.0 }
    }
}

impl Utility {
    /// `V` = [`DEFAULT_ANSWER_VALUE_USD`], `μ = 0`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `V`, the value of an acceptable answer in USD. Must be finite and ≥ 0 (checked when the
    /// router is built).
    pub fn answer_value(mut self, usd: f64) -> Self {
        self.answer_value = usd;
        self.knob = None;
        self
    }

    /// Reads `V` from a shared [`Knob`] on every decision instead of a fixed value, so that a
    /// [`SpendController`](crate::policy::experiment::SpendController) (or an operator) can turn it
    /// while the router runs. Reading it is one relaxed atomic load.
    pub fn answer_value_knob(mut self, knob: Knob) -> Self {
        self.knob = Some(knob);
        self
    }

    /// Sets `μ`, the cost of one second of expected latency in USD. Must be finite and ≥ 0 (checked
    /// when the router is built).
    pub fn latency_cost(mut self, usd_per_sec: f64) -> Self {
        self.latency_cost = usd_per_sec;
        self
    }

    /// `V` (the knob's current value when it reads one).
    pub(crate) fn value(&self) -> f64 {
        self.knob.as_ref().map_or(self.answer_value, Knob::get)
    }
}

impl Policy for Utility {
    fn rank(&self, input: &PolicyInput<'_>) -> Result<Ranking> {
        let value = self.value();
        // A knob set to a bad value outside `Knob::set` cannot happen, but a NaN must not reorder.
        let value = if value.is_finite() && value >= 0.0 { value } else { 0.0 };
        let mu = self.latency_cost;
        Ok(Ranking::by_score(input, |c| value * c.p - c.cost.usd - mu * c.latency_secs))
    }

    fn name(&self) -> &str {
        "utility"
    }

    fn validate(&self, _: &Catalog) -> Result<()> {
        check_weight("utility `answer_value_usd`", self.value())?;
        check_weight("utility `latency_usd_per_sec`", self.latency_cost)
    }
}
