//! [`Utility`]: maximise `p − λ·cost − μ·latency`.

use crate::catalog::Catalog;
use crate::error::Result;
use crate::policy::experiment::Knob;
use crate::policy::{Policy, PolicyInput, Ranking, check_weight};

/// What a cost is compared to before it is weighed against `p`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CostRef {
    /// The most expensive candidate for this request (the default): `λ = 1` means the whole
    /// difference between the cheapest and the dearest candidate is worth one unit of `p`.
    MaxCandidate,
    /// A fixed amount in USD: `λ = 1` means this many dollars are worth one unit of `p`, whatever the
    /// request. Use it to trade quality for money in absolute terms.
    Usd(f64),
}

/// Ranks candidates by `p(m) − λ · c(m)/c_ref − μ · l(m)/l_ref`.
///
/// 1. `p(m)` is the predicted probability of an acceptable answer, `c(m)` the expected cost and `l(m)`
///    the expected latency.
/// 2. `c_ref` is set by [`cost_ref`](Self::cost_ref) (the dearest candidate by default) and `l_ref` is
///    the slowest candidate, so `λ` and `μ` are unitless.
/// 3. Highest utility first; ties go to the cheaper model, then to the earlier one in the catalog.
///
/// `λ` is the cost–quality knob: 0 picks the model most likely to succeed, large values the cheapest.
/// For a fixed request, raising `λ` never raises the expected cost of the choice.
#[derive(Clone, Debug, PartialEq)]
pub struct Utility {
    cost_weight: f64,
    knob: Option<Knob>,
    latency_weight: f64,
    cost_ref: CostRef,
}

impl Default for Utility {
    fn default() -> Self {
        Self { cost_weight: 1.0, knob: None, latency_weight: 0.0, cost_ref: CostRef::MaxCandidate }
    }
}

impl Utility {
    /// `λ = 1`, `μ = 0`, costs relative to the dearest candidate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `λ`, the weight of cost. Must be finite and ≥ 0 (checked when the router is built).
    pub fn cost_weight(mut self, lambda: f64) -> Self {
        self.cost_weight = lambda;
        self.knob = None;
        self
    }

    /// Reads `λ` from a shared [`Knob`] on every decision instead of a fixed value, so that a
    /// [`LambdaController`](crate::policy::experiment::LambdaController) (or an operator) can turn it while
    /// the router runs. Reading it is one relaxed atomic load.
    pub fn cost_weight_knob(mut self, knob: Knob) -> Self {
        self.knob = Some(knob);
        self
    }

    /// Sets `μ`, the weight of latency. Must be finite and ≥ 0 (checked when the router is built).
    pub fn latency_weight(mut self, mu: f64) -> Self {
        self.latency_weight = mu;
        self
    }

    /// Sets what costs are compared to.
    pub fn cost_ref(mut self, cost_ref: CostRef) -> Self {
        self.cost_ref = cost_ref;
        self
    }

    /// `λ` (the knob's current value when it reads one).
    pub(crate) fn lambda(&self) -> f64 {
        self.knob.as_ref().map_or(self.cost_weight, Knob::get)
    }
}

impl Policy for Utility {
    fn rank(&self, input: &PolicyInput<'_>) -> Result<Ranking> {
        let c_ref = match self.cost_ref {
            CostRef::MaxCandidate => input.max_cost(),
            CostRef::Usd(usd) => usd,
        };
        let l_ref = input.max_latency();
        let cost_weight = self.lambda();
        // A knob set to a bad value outside `Knob::set` cannot happen, but a NaN must not reorder.
        let cost_weight = if cost_weight.is_finite() && cost_weight >= 0.0 { cost_weight } else { 0.0 };
        let lambda = if c_ref > 0.0 { cost_weight / c_ref } else { 0.0 };
        let mu = if l_ref > 0.0 { self.latency_weight / l_ref } else { 0.0 };
        Ok(Ranking::by_score(input, |c| c.p - lambda * c.cost.usd - mu * c.latency_secs))
    }

    fn name(&self) -> &str {
        "utility"
    }

    fn validate(&self, _: &Catalog) -> Result<()> {
        check_weight("utility `cost_weight`", self.lambda())?;
        check_weight("utility `latency_weight`", self.latency_weight)?;
        if let CostRef::Usd(usd) = self.cost_ref {
            if !(usd.is_finite() && usd > 0.0) {
                return Err(crate::error::Error::config(format!(
                    "utility `cost_ref` must be finite and > 0, got {usd}"
                )));
            }
        }
        Ok(())
    }
}
