//! [`SpendController`]: holds a target (a share of calls to a tier, a mean cost per request) by
//! turning the value of an answer, a cost–quality [`Knob`], as traffic shifts.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::catalog::ModelId;
use crate::error::{Error, Result};
use crate::policy::Decision;
use crate::policy::Observer;

/// A number shared between threads without locks (an `f64` in an atomic): a knob that a
/// [`SpendController`] turns while policies read it on every decision, such as [`Utility`](crate::Utility)'s
/// answer value `V` ([`Utility::answer_value_knob`](crate::Utility::answer_value_knob)) or a
/// [`Bandit`](crate::policy::experiment::Bandit)'s.
///
/// Clones share the value. Two knobs are equal when they are the same knob.
#[derive(Clone)]
pub struct Knob(Arc<AtomicU64>);

impl Knob {
    /// A knob set to `value` (checked like any cost weight when the router is built: finite, ≥ 0).
    pub fn new(value: f64) -> Self {
        Self(Arc::new(AtomicU64::new(value.to_bits())))
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// Sets the value.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) when `value` is not finite and ≥ 0; the knob
    /// keeps its value.
    pub fn set(&self, value: f64) -> Result<()> {
        crate::policy::check_weight("a knob", value)?;
        self.0.store(value.to_bits(), Ordering::Relaxed);
        Ok(())
    }
}

impl PartialEq for Knob {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Knob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Knob").field(&self.get()).finish()
    }
}

/// What a [`SpendController`] holds.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum ControllerTarget {
    /// At most `share` (in `(0, 1)`) of decisions choose one of `models` (the strongest tier, say).
    ShareAtMost {
        /// The tier.
        models: Vec<ModelId>,
        /// The largest share of decisions it may take.
        share: f64,
    },
    /// The chosen models' expected cost averages at most `usd` per request. A spend budget per day
    /// divided by the expected requests per day is such a target; it holds whatever the volume.
    MeanCostAtMost {
        /// USD per request.
        usd: f64,
    },
}

/// Builds a [`SpendController`].
#[must_use]
#[derive(Debug)]
pub struct SpendControllerBuilder {
    knob: Knob,
    target: ControllerTarget,
    window: u64,
    kp: f64,
    ki: f64,
    min: f64,
    max: f64,
}

impl SpendControllerBuilder {
    /// Decisions per control step (default 500): the share or mean cost is measured over each window
    /// and the knob moves once per window.
    pub fn window(mut self, decisions: u64) -> Self {
        self.window = decisions;
        self
    }

    /// The proportional and integral gains on `log V` (default 0.05 and 0.15).
    pub fn gains(mut self, kp: f64, ki: f64) -> Self {
        self.kp = kp;
        self.ki = ki;
        self
    }

    /// The range `V` is kept in, in USD (default `[1e-6, 100]`).
    pub fn bounds(mut self, min: f64, max: f64) -> Self {
        self.min = min;
        self.max = max;
        self
    }

    /// Checks the settings and builds the controller; the knob is clamped into the bounds.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a target share outside `(0, 1)`, an empty
    /// tier, a target cost that is not finite and > 0, a zero window, negative or non-finite gains,
    /// or bounds that are not `0 < min ≤ max < ∞`.
    pub fn build(self) -> Result<SpendController> {
        match &self.target {
            ControllerTarget::ShareAtMost { models, share } => {
                if models.is_empty() {
                    return Err(Error::config("controller: the target tier names no model"));
                }
                if !(*share > 0.0 && *share < 1.0) {
                    return Err(Error::config(format!(
                        "controller: the target share must be within (0, 1), got {share}"
                    )));
                }
            }
            ControllerTarget::MeanCostAtMost { usd } => {
                if !(usd.is_finite() && *usd > 0.0) {
                    return Err(Error::config(format!(
                        "controller: the target cost must be finite and > 0, got {usd}"
                    )));
                }
            }
        }
        if self.window == 0 {
            return Err(Error::config("controller: the window must be at least one decision"));
        }
        for (name, g) in [("kp", self.kp), ("ki", self.ki)] {
            if !(g.is_finite() && g >= 0.0) {
                return Err(Error::config(format!("controller: gain `{name}` must be finite and >= 0, got {g}")));
            }
        }
        if !(self.min > 0.0 && self.min <= self.max && self.max.is_finite()) {
            return Err(Error::config(format!(
                "controller: bounds must satisfy 0 < min <= max < inf, got [{}, {}]",
                self.min, self.max
            )));
        }
        let start = self.knob.get();
        let start = if start.is_finite() { start.clamp(self.min, self.max) } else { self.min };
        self.knob.set(start)?;
        Ok(SpendController {
            inner: Arc::new(Inner {
                knob: self.knob,
                target: self.target,
                window: self.window,
                kp: self.kp,
                ki: self.ki,
                log_min: self.min.ln(),
                log_max: self.max.ln(),
                decisions: AtomicU64::new(0),
                hits: AtomicU64::new(0),
                cost_micros: AtomicU64::new(0),
                step: Mutex::new(Step::default()),
            }),
        })
    }
}

struct Inner {
    knob: Knob,
    target: ControllerTarget,
    window: u64,
    kp: f64,
    ki: f64,
    log_min: f64,
    log_max: f64,
    decisions: AtomicU64,
    /// Decisions of the current window that chose the tier.
    hits: AtomicU64,
    /// Expected cost of the current window's decisions, in millionths of a micro-dollar (1e-12 USD).
    cost_micros: AtomicU64,
    step: Mutex<Step>,
}

#[derive(Clone, Copy, Debug)]
struct Step {
    previous_error: f64,
    scale: f64,
    steps: u64,
    last_measured: Option<f64>,
}

impl Default for Step {
    fn default() -> Self {
        Self { previous_error: 0.0, scale: 1.0, steps: 0, last_measured: None }
    }
}

/// The smallest step scale: steps never shrink below 1/64 of the full gain.
const MIN_SCALE: f64 = 1.0 / 64.0;

/// Adjusts a cost–quality [`Knob`] so that routing holds a [`ControllerTarget`] as traffic shifts.
///
/// Register it as an [`Observer`] ([`RouterBuilder::observer`](crate::RouterBuilder::observer)); it
/// counts every decision and, once per window of `n` decisions:
///
/// 1. measures `m`, the tier's share of the window or its mean expected cost per request;
/// 2. computes the relative error `e = clamp((m − target) / target, −1, 1)`;
/// 3. adapts the step scale `s` (starting at 1): halved, down to 1/64, when `e` changed sign since
///    the last window (the last step overshot), doubled, up to 1, when it kept its sign;
/// 4. moves the knob by a proportional–integral step in log space (velocity form):
///    `log V ← clamp(log V − s·(kp·(e − e_prev) + ki·e), log min, log max)`.
///
/// Lowering `V`, the value of an acceptable answer, makes every value-weighted choice cheaper, so a
/// positive error (too much of the tier, or too much spend) lowers it and a negative one raises it
/// until the target holds with equality or `V` reaches its upper bound (the target is then slack).
/// Working in log space makes the step relative, so one pair of gains suits knobs of any magnitude;
/// the clamp on `e` and on `V` bounds every step and rules out integral wind-up (the velocity form
/// keeps no separate integral). The adaptive scale keeps a steep plant (a tier whose share
/// collapses over a small change of `V`)
/// from a limit cycle: near the target the steps shrink geometrically, as in stochastic
/// approximation, and after a traffic shift they grow back within a few windows.
///
/// Counting is two relaxed atomic additions per decision; the control step runs on the thread whose
/// decision closes the window, under a `try_lock` that never blocks routing.
#[derive(Clone)]
pub struct SpendController {
    inner: Arc<Inner>,
}

impl fmt::Debug for SpendController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpendController")
            .field("knob", &self.inner.knob)
            .field("target", &self.inner.target)
            .field("window", &self.inner.window)
            .finish_non_exhaustive()
    }
}

/// One USD in the fixed-point unit of the cost accumulator.
const COST_UNIT: f64 = 1e12;

impl SpendController {
    /// A builder for a controller that turns `knob` to hold `target`.
    pub fn builder(knob: Knob, target: ControllerTarget) -> SpendControllerBuilder {
        SpendControllerBuilder { knob, target, window: 500, kp: 0.05, ki: 0.15, min: 1e-6, max: 100.0 }
    }

    /// How many control steps ran.
    pub fn steps(&self) -> u64 {
        self.inner.step.lock().unwrap_or_else(PoisonError::into_inner).steps
    }

    /// The last window's measurement (share or mean USD per request), once a window has closed.
    #[cfg(test)]
    pub(crate) fn last_measured(&self) -> Option<f64> {
        self.inner.step.lock().unwrap_or_else(PoisonError::into_inner).last_measured
    }

    /// Counts one decision that chose `model` at an expected cost of `cost_usd`; runs a control
    /// step when it closes a window. [`Observer::on_decision`] calls this; call it directly when
    /// decisions are made elsewhere (a replay).
    pub fn record(&self, model: &ModelId, cost_usd: f64) {
        let i = &*self.inner;
        match &i.target {
            ControllerTarget::ShareAtMost { models, .. } => {
                if models.contains(model) {
                    i.hits.fetch_add(1, Ordering::Relaxed);
                }
            }
            ControllerTarget::MeanCostAtMost { .. } => {
                let units = if cost_usd.is_finite() && cost_usd > 0.0 { (cost_usd * COST_UNIT) as u64 } else { 0 };
                i.cost_micros.fetch_add(units, Ordering::Relaxed);
            }
        }
        let n = i.decisions.fetch_add(1, Ordering::AcqRel) + 1;
        if n.is_multiple_of(i.window) {
            self.step();
        }
    }

    fn step(&self) {
        let i = &*self.inner;
        let Ok(mut step) = i.step.try_lock() else { return };
        let window = i.window as f64;
        let (measured, target) = match &i.target {
            ControllerTarget::ShareAtMost { share, .. } => (i.hits.swap(0, Ordering::AcqRel) as f64 / window, *share),
            ControllerTarget::MeanCostAtMost { usd } => {
                (i.cost_micros.swap(0, Ordering::AcqRel) as f64 / COST_UNIT / window, *usd)
            }
        };
        let e = ((measured - target) / target).clamp(-1.0, 1.0);
        // The step scale halves when the error changes sign (the last step overshot) and doubles
        // back, up to 1, while it keeps its sign (a shift to catch up with).
        if step.steps > 0 {
            step.scale = if e * step.previous_error < 0.0 {
                (step.scale / 2.0).max(MIN_SCALE)
            } else {
                (step.scale * 2.0).min(1.0)
            };
        }
        let log = i.knob.get().max(f64::MIN_POSITIVE).ln();
        let delta = step.scale * (i.kp * (e - step.previous_error) + i.ki * e);
        let next = (log - delta).clamp(i.log_min, i.log_max);
        // The bounds are finite and positive, so this cannot fail.
        let _ = i.knob.set(next.exp());
        step.previous_error = e;
        step.steps += 1;
        step.last_measured = Some(measured);
        tracing::debug!(measured, target, answer_value = next.exp(), "controller step");
    }
}

impl Observer for SpendController {
    fn on_decision(&self, decision: &Decision) {
        self.record(decision.model(), decision.estimated_cost());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knob_is_shared_and_rejects_bad_values() {
        let k = Knob::new(1.0);
        let k2 = k.clone();
        k.set(2.5).unwrap();
        assert_eq!(k2.get(), 2.5);
        assert!(k.set(f64::NAN).is_err() && k.set(-1.0).is_err());
        assert_eq!(k.get(), 2.5);
        assert_eq!(k, k2);
        assert_ne!(k, Knob::new(2.5));
    }

    #[test]
    fn steps_lower_the_value_when_over_target_and_raise_it_when_under() {
        let knob = Knob::new(1.0);
        let target = ControllerTarget::ShareAtMost { models: vec![ModelId::new("big")], share: 0.2 };
        let c = SpendController::builder(knob.clone(), target).window(10).build().unwrap();
        let (big, small) = (ModelId::new("big"), ModelId::new("small"));
        for i in 0..10 {
            c.record(if i < 5 { &big } else { &small }, 0.0);
        }
        assert_eq!(c.steps(), 1);
        assert_eq!(c.last_measured(), Some(0.5));
        let lowered = knob.get();
        // e = (0.5 − 0.2)/0.2 clamped to 1: log V moves by −(kp·1 + ki·1) = −0.2.
        assert!((lowered - (-0.2f64).exp()).abs() < 1e-12, "{lowered}");
        for _ in 0..10 {
            c.record(&small, 0.0);
        }
        assert!(knob.get() > lowered);
        let e = SpendController::builder(Knob::new(1.0), ControllerTarget::MeanCostAtMost { usd: 0.0 }).build();
        assert!(e.is_err());
    }
}
