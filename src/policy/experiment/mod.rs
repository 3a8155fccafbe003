//! A/B experiments and online learning: [`Experiment`] splits traffic between policies and measures
//! them with an always-valid sequential test, [`Bandit`] learns which model serves each kind of
//! request best, and [`SpendController`] holds a cost or tier target by turning the cost–quality
//! knob as traffic shifts.
//!
//! # An A/B test in four steps
//!
//! 1. Build an [`Experiment`] with a name, two or more arms (a policy each, with a weight, added with [`ExperimentBuilder::arm`]), and
//!    optionally a holdout and a [`SequentialTest`]. The first arm is the control.
//! 2. Route with it: each request with a [`key`](crate::RouteHints::key) goes to the arm its key
//!    hashes to, always the same one (sticky per user, the same in every process and release), and
//!    its [`Decision::arm`](crate::Decision::arm) says so.
//! 3. Report outcomes with [`Router::feedback`](crate::Router::feedback): the experiment aggregates
//!    them per arm.
//! 4. Read [`ExperimentHandle::report`]: per-arm counts, rates and means with confidence intervals,
//!    and, for each arm against the control, a verdict that may be read at any time without
//!    inflating the error rate. [`ExperimentHandle::kill`] sends everything to the control at once.
//!
//! ```
//! use switchyard::policy::experiment::{Experiment, SequentialTest};
//! use switchyard::{Catalog, CheapestCapable, Feedback, ModelProfile, Pricing, Request, Router, Utility};
//! # fn main() -> switchyard::Result<()> {
//! let catalog = Catalog::new([
//!     ModelProfile::new("mini", "sim").with_pricing(Pricing::per_mtok(0.15, 0.6)),
//!     ModelProfile::new("frontier", "sim").with_pricing(Pricing::per_mtok(2.5, 10.0)),
//! ])?;
//! let experiment = Experiment::builder("cheaper-default")
//!     .arm("control", 1.0, Utility::new().answer_value(0.02))
//!     .arm("cheapest", 1.0, CheapestCapable::new(0.6))
//!     .sequential_test(SequentialTest::new().alpha(0.05))
//!     .build()?;
//! let handle = experiment.handle();
//! let router = Router::builder().catalog(catalog).policy(experiment).build()?;
//!
//! let decision = router.route(&Request::new("hello").with_key("user-42"))?;
//! let arm = decision.arm().expect("the experiment decided");
//! assert_eq!(arm.experiment(), "cheaper-default");
//! router.feedback(decision.id(), Feedback::success().with_quality(0.9))?;
//! println!("{}", handle.report());
//! # Ok(()) }
//! ```

mod bandit;
mod controller;
mod report;
pub(crate) mod shared;
mod stats;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

pub use self::bandit::{Bandit, BanditSnapshot, BucketSnapshot, ModelEvidence};
pub use self::controller::{ControllerTarget, Knob, SpendController, SpendControllerBuilder};
pub use self::report::{ArmReport, Comparison, Conclusion, ExperimentReport};
pub use self::shared::Learning;
pub use self::stats::Estimate;
pub use crate::hash::{assignment_hash, assignment_unit};

use self::stats::{Welford, msprt_half_width, msprt_lambda};
use crate::catalog::Catalog;
use crate::error::{Error, ErrorKind, Result};
use crate::policy::{Outcome, Policy, PolicyInput, Ranking, check_weight};

/// How a request came to its arm.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// Its key hashed to the arm: randomised, and counted in the comparison.
    Assigned,
    /// Its key fell in the holdout: served by the control's policy, reported apart.
    Holdout,
    /// It has no key: served by the control, not counted in the comparison.
    Unkeyed,
    /// The kill switch is on: served by the control, not counted in the comparison.
    Killed,
}

impl Assignment {
    fn code(self) -> u16 {
        match self {
            Self::Assigned => 0,
            Self::Holdout => 1,
            Self::Unkeyed => 2,
            Self::Killed => 3,
        }
    }

    fn from_code(code: u16) -> Self {
        match code & 3 {
            0 => Self::Assigned,
            1 => Self::Holdout,
            2 => Self::Unkeyed,
            _ => Self::Killed,
        }
    }

    /// A short lower-case name (`assigned`, `holdout`, `unkeyed`, `killed`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Assigned => "assigned",
            Self::Holdout => "holdout",
            Self::Unkeyed => "unkeyed",
            Self::Killed => "killed",
        }
    }
}

/// Which experiment arm decided, and how the request came to it: [`Decision::arm`](crate::Decision::arm).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ArmTag {
    experiment: Arc<str>,
    arm: Arc<str>,
    assignment: Assignment,
}

impl ArmTag {
    /// A tag; experiments build these.
    pub(crate) fn new(experiment: impl Into<Arc<str>>, arm: impl Into<Arc<str>>, assignment: Assignment) -> Self {
        Self { experiment: experiment.into(), arm: arm.into(), assignment }
    }

    /// The experiment's name.
    pub fn experiment(&self) -> &str {
        &self.experiment
    }

    /// The arm's name (`"holdout"` for the holdout).
    pub fn arm(&self) -> &str {
        &self.arm
    }

    /// How the request came to the arm.
    pub fn assignment(&self) -> Assignment {
        self.assignment
    }
}

impl fmt::Display for ArmTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "experiment `{}` arm `{}`", self.experiment, self.arm)?;
        if self.assignment != Assignment::Assigned {
            write!(f, " ({})", self.assignment.as_str())?;
        }
        Ok(())
    }
}

/// One arm of an [`Experiment`]: a name, a weight and the policy that routes its traffic.
#[derive(Clone)]
pub(crate) struct Arm {
    name: Arc<str>,
    weight: f64,
    policy: Arc<dyn Policy>,
}

impl Arm {
    /// An arm; `weight` is relative to the other arms' (finite, ≥ 0; checked by
    /// [`ExperimentBuilder::build`]).
    pub(crate) fn new(name: impl Into<Arc<str>>, weight: f64, policy: impl Policy + 'static) -> Self {
        Self::from_arc(name, weight, Arc::new(policy))
    }

    /// An arm with a shared policy.
    pub(crate) fn from_arc(name: impl Into<Arc<str>>, weight: f64, policy: Arc<dyn Policy>) -> Self {
        Self { name: name.into(), weight, policy }
    }
}

impl fmt::Debug for Arm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arm")
            .field("name", &self.name)
            .field("weight", &self.weight)
            .field("policy", &self.policy.name())
            .finish()
    }
}

/// What an experiment does with requests that carry no [`key`](crate::RouteHints::key).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unkeyed {
    /// Serve them with the control arm, tagged [`Assignment::Unkeyed`] and left out of the
    /// comparison (the default). Hashing the router's `uniform` instead would not split them at all:
    /// every unkeyed request has the same one.
    #[default]
    Control,
    /// Fail routing with [`ErrorKind::InvalidRequest`]: every request must say who it is for.
    Reject,
}

/// Which outcome the sequential test compares.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The quality score of the feedback (a success without a score counts 1, a failure 0). Higher
    /// is better. The default.
    #[default]
    Quality,
    /// Success as 1 and failure as 0. Higher is better.
    Success,
    /// The actual cost in USD (feedback without a cost is left out). Lower is better.
    Cost,
    /// The latency in seconds (feedback without a latency is left out). Lower is better.
    Latency,
    /// The router's own objective in units of an answer's value, `quality − cost / V`: the net
    /// value `V · quality − cost` divided by `V`, so that it has the scale of a quality score
    /// (feedback without a cost is left out). Higher is better. With the answer value `V` of a
    /// [`Utility`](crate::Utility) or [`Bandit`], this tests the reward they maximise.
    Reward {
        /// `V`, the value of an acceptable answer in USD, finite and > 0.
        answer_value_usd: f64,
    },
}

impl Metric {
    fn value(self, outcome: &Outcome<'_>) -> Option<f64> {
        let f = outcome.feedback;
        match self {
            Self::Quality => Some(outcome.quality()),
            Self::Success => Some(if f.success { 1.0 } else { 0.0 }),
            Self::Cost => f.cost_usd,
            Self::Latency => f.latency.map(|l| l.as_secs_f64()),
            Self::Reward { answer_value_usd } => f.cost_usd.map(|c| outcome.quality() - c / answer_value_usd),
        }
    }

    /// Whether a larger value is better.
    pub(crate) fn higher_is_better(self) -> bool {
        matches!(self, Self::Quality | Self::Success | Self::Reward { .. })
    }

    /// A short lower-case name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Quality => "quality",
            Self::Success => "success",
            Self::Cost => "cost",
            Self::Latency => "latency",
            Self::Reward { .. } => "reward",
        }
    }
}

/// Settings of the mixture sequential probability ratio test that compares each arm with the
/// control; see `docs/experiments.md` for the math.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SequentialTest {
    /// The false-positive rate of the whole experiment (default 0.05). With `k` arms besides the
    /// control, each comparison runs at `alpha / k` (Bonferroni).
    pub alpha: f64,
    /// What is compared (default [`Metric::Quality`]).
    pub metric: Metric,
    /// The standard deviation `τ` of the normal mixture over the difference, in the metric's units
    /// (default 0.1): the size of effect the test is most sensitive to.
    pub mixture_sd: f64,
    /// Observations each arm needs before the test may decide (default 100): the variances are
    /// estimated, and estimates from a handful of outcomes are unreliable.
    pub min_samples: u64,
    /// The confidence level of the per-arm intervals in the report (default 0.95).
    pub confidence: f64,
}

impl Default for SequentialTest {
    fn default() -> Self {
        Self { alpha: 0.05, metric: Metric::Quality, mixture_sd: 0.1, min_samples: 100, confidence: 0.95 }
    }
}

impl SequentialTest {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the false-positive rate.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Sets the compared metric.
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metric = metric;
        self
    }

    /// Sets the mixture's standard deviation `τ`.
    pub fn mixture_sd(mut self, tau: f64) -> Self {
        self.mixture_sd = tau;
        self
    }

    /// Sets the observations each arm needs before the test may decide.
    pub fn min_samples(mut self, n: u64) -> Self {
        self.min_samples = n;
        self
    }

    /// Sets the confidence level of the report's intervals.
    pub fn confidence(mut self, level: f64) -> Self {
        self.confidence = level;
        self
    }

    fn validate(&self, at: &str) -> Result<()> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(Error::config(format!("{at}: `alpha` must be within (0, 1), got {}", self.alpha)));
        }
        if !(self.mixture_sd.is_finite() && self.mixture_sd > 0.0) {
            return Err(Error::config(format!("{at}: `mixture_sd` must be finite and > 0, got {}", self.mixture_sd)));
        }
        if let Metric::Reward { answer_value_usd } = self.metric
            && !(answer_value_usd.is_finite() && answer_value_usd > 0.0)
        {
            return Err(Error::config(format!(
                "{at}: the reward metric needs a finite `answer_value_usd` > 0, got {answer_value_usd}"
            )));
        }
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(Error::config(format!("{at}: `confidence` must be within (0, 1), got {}", self.confidence)));
        }
        Ok(())
    }
}

/// Builds an [`Experiment`]; [`build`](Self::build) checks everything.
#[must_use]
#[derive(Debug)]
pub struct ExperimentBuilder {
    name: String,
    salt: Option<String>,
    arms: Vec<Arm>,
    holdout: Option<(f64, Option<String>)>,
    unkeyed: Unkeyed,
    test: SequentialTest,
}

impl ExperimentBuilder {
    /// Adds an arm. The first arm is the control.
    pub fn arm(mut self, name: impl Into<Arc<str>>, weight: f64, policy: impl Policy + 'static) -> Self {
        self.arms.push(Arm::new(name, weight, policy));
        self
    }

    /// Adds an arm with a shared policy.
    pub(crate) fn arm_arc(mut self, name: impl Into<Arc<str>>, weight: f64, policy: Arc<dyn Policy>) -> Self {
        self.arms.push(Arm::from_arc(name, weight, policy));
        self
    }

    /// Hashes keys with `salt` instead of the experiment's name. Two experiments with different
    /// salts split users independently; re-running an experiment under a new salt reshuffles them.
    pub fn salt(mut self, salt: impl Into<String>) -> Self {
        self.salt = Some(salt.into());
        self
    }

    /// Holds out `fraction` of the keys (in `[0, 1)`): they are served by the control's policy, tagged
    /// [`Assignment::Holdout`] and reported apart, and the arms split the other keys by weight. The
    /// holdout is hashed with its own salt (by default `"<experiment salt>/holdout"`), independently
    /// of the arm split.
    pub fn holdout(mut self, fraction: f64) -> Self {
        let salt = self.holdout.take().and_then(|(_, s)| s);
        self.holdout = Some((fraction, salt));
        self
    }

    /// Hashes the holdout with `salt`: give several experiments the same holdout salt and fraction
    /// and they hold out the same users.
    pub fn holdout_salt(mut self, salt: impl Into<String>) -> Self {
        let fraction = self.holdout.as_ref().map_or(0.0, |h| h.0);
        self.holdout = Some((fraction, Some(salt.into())));
        self
    }

    /// What to do with requests without a key (default [`Unkeyed::Control`]).
    pub fn unkeyed(mut self, unkeyed: Unkeyed) -> Self {
        self.unkeyed = unkeyed;
        self
    }

    /// The sequential test's settings (default [`SequentialTest::default`]).
    pub fn sequential_test(mut self, test: SequentialTest) -> Self {
        self.test = test;
        self
    }

    /// Checks the experiment and builds it. The arms' policies are checked against the catalog when
    /// the router is built ([`Policy::validate`]).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an empty name, fewer than two arms, an empty or duplicate arm name
    /// (or one named `holdout` when there is a holdout), a weight that is not finite and ≥ 0, weights
    /// that are all 0, more than 4,096 arms, a holdout fraction outside `[0, 1)`, or invalid test
    /// settings.
    pub fn build(self) -> Result<Experiment> {
        let at = format!("experiment `{}`", self.name);
        if self.name.is_empty() {
            return Err(Error::config("an experiment needs a non-empty name"));
        }
        if self.arms.len() < 2 {
            return Err(Error::config(format!("{at} needs at least two arms, got {}", self.arms.len())));
        }
        if self.arms.len() > MAX_ARMS {
            return Err(Error::config(format!("{at} has {} arms; at most {MAX_ARMS} are supported", self.arms.len())));
        }
        for (i, arm) in self.arms.iter().enumerate() {
            if arm.name.is_empty() {
                return Err(Error::config(format!("{at}: arm #{i} has an empty name")));
            }
            if self.arms[..i].iter().any(|a| a.name == arm.name) {
                return Err(Error::config(format!("{at}: arm `{}` is named twice", arm.name)));
            }
            if self.holdout.is_some() && &*arm.name == HOLDOUT {
                return Err(Error::config(format!("{at}: the arm name `{HOLDOUT}` is reserved for the holdout")));
            }
            check_weight(&format!("{at} arm `{}` weight", arm.name), arm.weight)?;
        }
        let total: f64 = self.arms.iter().map(|a| a.weight).sum();
        if !(total > 0.0 && total.is_finite()) {
            return Err(Error::config(format!("{at}: every arm has weight 0; give at least one a positive weight")));
        }
        let salt: Arc<str> = Arc::from(self.salt.unwrap_or_else(|| self.name.clone()));
        let holdout = match self.holdout {
            Some((fraction, s)) => {
                if !(0.0..1.0).contains(&fraction) {
                    return Err(Error::config(format!(
                        "{at}: the holdout fraction must be within [0, 1), got {fraction}"
                    )));
                }
                Some(Holdout { fraction, salt: s.map_or_else(|| Arc::from(format!("{salt}/holdout")), Arc::from) })
            }
            None => None,
        };
        self.test.validate(&at)?;
        let mut acc = 0.0;
        let cumulative = self
            .arms
            .iter()
            .map(|a| {
                acc += a.weight;
                acc / total
            })
            .collect();
        let name: Arc<str> = Arc::from(self.name);
        let groups = self.arms.len() + 1;
        let tags = self
            .arms
            .iter()
            .map(|a| a.name.clone())
            .chain(std::iter::once(Arc::from(HOLDOUT)))
            .map(|arm| {
                [Assignment::Assigned, Assignment::Holdout, Assignment::Unkeyed, Assignment::Killed]
                    .map(|how| ArmTag::new(name.clone(), arm.clone(), how))
            })
            .collect();
        let comparisons = self.arms.len() - 1;
        Ok(Experiment {
            shared: Arc::new(Shared {
                name,
                salt,
                arms: self.arms,
                cumulative,
                total,
                holdout,
                unkeyed: self.unkeyed,
                test: self.test,
                killed: AtomicBool::new(false),
                routed: (0..groups).map(|_| AtomicU64::new(0)).collect(),
                tags,
                stats: Mutex::new(StatsState {
                    groups: vec![Group::default(); groups],
                    unkeyed: 0,
                    killed: 0,
                    tests: vec![TestState::default(); comparisons],
                    pending: vec![0.0; groups * shared::GROUP_FIELDS + 2],
                    routed_taken: vec![0; groups],
                    fleet: None,
                }),
            }),
        })
    }
}

const HOLDOUT: &str = "holdout";
const MAX_ARMS: usize = 4096;

struct Holdout {
    fraction: f64,
    salt: Arc<str>,
}

/// Per-arm aggregates of feedback.
#[derive(Clone, Debug, Default)]
pub(crate) struct Group {
    pub(crate) feedback: u64,
    pub(crate) successes: u64,
    pub(crate) quality: Welford,
    pub(crate) cost: Welford,
    pub(crate) latency: Welford,
    pub(crate) metric: Welford,
}

/// The running state of one arm's comparison with the control.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TestState {
    /// The largest `Λ` seen so far: the always-valid p-value is `min(1, 1/max Λ)`.
    pub(crate) max_lambda: f64,
    /// The verdict at the first crossing, with the total observations of both arms then.
    pub(crate) decided: Option<(Conclusion, u64)>,
}

pub(crate) struct StatsState {
    /// One per arm, then the holdout.
    pub(crate) groups: Vec<Group>,
    pub(crate) unkeyed: u64,
    pub(crate) killed: u64,
    /// One per arm besides the control.
    pub(crate) tests: Vec<TestState>,
    /// What was observed here since the last sync with the other replicas, as sums (see
    /// [`shared::GROUP_FIELDS`]), then the unkeyed and killed counts.
    pub(crate) pending: Vec<f64>,
    /// Per group, the decisions routed when the last sync took them.
    pub(crate) routed_taken: Vec<u64>,
    /// The fleet's statistics at the last sync, when learned state is shared.
    pub(crate) fleet: Option<Fleet>,
}

/// Every replica's sums as read at the last sync, and the comparisons run on them.
#[derive(Clone, Debug)]
pub(crate) struct Fleet {
    pub(crate) totals: Vec<f64>,
    pub(crate) tests: Vec<TestState>,
}

struct Shared {
    name: Arc<str>,
    salt: Arc<str>,
    arms: Vec<Arm>,
    /// The arms' cumulative shares of `[0, 1)`, the last one 1.
    cumulative: Vec<f64>,
    total: f64,
    holdout: Option<Holdout>,
    unkeyed: Unkeyed,
    test: SequentialTest,
    killed: AtomicBool,
    /// Decisions per arm, then the holdout.
    routed: Box<[AtomicU64]>,
    /// The tag of every (arm or holdout, assignment), built once.
    tags: Vec<[ArmTag; 4]>,
    /// Feedback aggregates: one short critical section per feedback, never taken by `rank`.
    stats: Mutex<StatsState>,
}

/// Splits traffic between policies by a stable hash of the request key, and measures them.
///
/// # How a request is assigned
/// 1. Kill switch on ([`ExperimentHandle::kill`]): the control (the first arm) serves it, tagged
///    [`Assignment::Killed`].
/// 2. No key: as [`Unkeyed`] says (by default the control serves it, tagged
///    [`Assignment::Unkeyed`]).
/// 3. With a holdout, `u_h = assignment_unit(holdout salt, key)`; `u_h < fraction` puts the key in
///    the holdout, served by the control's policy and tagged [`Assignment::Holdout`].
/// 4. Otherwise `u = assignment_unit(salt, key)` and the key goes to the first arm whose cumulative
///    share of the weights exceeds `u` ([`assignment_unit`] documents the hash).
///
/// The chosen arm's policy ranks the candidates; the ranking is tagged with the arm
/// ([`Decision::arm`](crate::Decision::arm)) and its [`Memo`](crate::policy::Memo) carries the arm,
/// so that [`Router::feedback`](crate::Router::feedback) reaches the right aggregates and, through
/// [`Policy::observe`], the arm's own policy (a [`Bandit`] arm learns from its outcomes).
///
/// `rank` takes no lock: the kill switch is an atomic flag and the per-arm decision counts are
/// atomic counters. Feedback takes one short mutex, never held while routing.
#[derive(Clone)]
pub struct Experiment {
    shared: Arc<Shared>,
}

impl Experiment {
    /// A builder for an experiment named `name` (also the default hash salt).
    pub fn builder(name: impl Into<String>) -> ExperimentBuilder {
        ExperimentBuilder {
            name: name.into(),
            salt: None,
            arms: Vec::new(),
            holdout: None,
            unkeyed: Unkeyed::Control,
            test: SequentialTest::default(),
        }
    }

    /// A handle for reports and the kill switch; cheap to clone, shareable across threads.
    pub fn handle(&self) -> ExperimentHandle {
        ExperimentHandle { shared: self.shared.clone() }
    }

    /// The arm (index into the arms, or the holdout's index `arms.len()`) and assignment of a key.
    fn assign(&self, key: Option<&str>) -> Result<(usize, Assignment)> {
        let sh = &*self.shared;
        if sh.killed.load(Ordering::Acquire) {
            return Ok((0, Assignment::Killed));
        }
        let Some(key) = key else {
            return match sh.unkeyed {
                Unkeyed::Control => Ok((0, Assignment::Unkeyed)),
                Unkeyed::Reject => Err(Error::new(
                    ErrorKind::InvalidRequest,
                    format!("experiment `{}` needs a request key (`RouteHints::key`) to assign an arm", sh.name),
                )),
            };
        };
        if let Some(h) = &sh.holdout
            && assignment_unit(&h.salt, key) < h.fraction
        {
            return Ok((sh.arms.len(), Assignment::Holdout));
        }
        Ok((pick(&sh.cumulative, assignment_unit(&sh.salt, key)), Assignment::Assigned))
    }
}

/// The arm whose share of `[0, 1)` contains `u`: the first with `u < cumulative[i]`; rounding at the
/// top end goes to the last arm with a positive weight.
fn pick(cumulative: &[f64], u: f64) -> usize {
    if let Some(i) = cumulative.iter().position(|&c| u < c) {
        return i;
    }
    let last = cumulative.last().copied().unwrap_or(1.0);
    cumulative.iter().position(|&c| c >= last).unwrap_or(0)
}

impl fmt::Debug for Experiment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sh = &*self.shared;
        f.debug_struct("Experiment")
            .field("name", &sh.name)
            .field("arms", &sh.arms)
            .field("holdout", &sh.holdout.as_ref().map(|h| h.fraction))
            .field("killed", &sh.killed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Policy for Experiment {
    fn rank(&self, input: &PolicyInput<'_>) -> Result<Ranking> {
        let sh = &*self.shared;
        let (group, how) = self.assign(input.request.hints.key.as_deref())?;
        let arm = sh.arms.get(group).unwrap_or(&sh.arms[0]);
        let ranking = arm.policy.rank(input).map_err(|e| {
            Error::new(ErrorKind::Routing, format!("experiment `{}` arm `{}`: {e}", sh.name, arm.name)).with_source(e)
        })?;
        if let Some(n) = sh.routed.get(group) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        // MAX_ARMS fits 12 bits; the assignment takes the 2 low bits of the frame.
        let frame = ((group as u16) << 2) | how.code();
        let memo = ranking.memo().nest(frame);
        let tag = sh.tags[group][usize::from(how.code())].clone();
        Ok(ranking.with_memo(memo).with_arm(tag))
    }

    fn name(&self) -> &str {
        "experiment"
    }

    fn validate(&self, catalog: &Catalog) -> Result<()> {
        let sh = &*self.shared;
        for arm in &sh.arms {
            arm.policy
                .validate(catalog)
                .map_err(|e| Error::config(format!("experiment `{}` arm `{}`: {e}", sh.name, arm.name)))?;
        }
        Ok(())
    }

    fn observe(&self, outcome: &Outcome<'_>) {
        let sh = &*self.shared;
        let (Some(frame), inner) = outcome.memo.unnest() else { return };
        let group = usize::from(frame >> 2);
        let how = Assignment::from_code(frame);
        // Only frames this experiment can have written: a memo forged or from another policy is
        // ignored.
        let consistent = match how {
            Assignment::Assigned => group < sh.arms.len(),
            Assignment::Holdout => group == sh.arms.len() && sh.holdout.is_some(),
            Assignment::Unkeyed | Assignment::Killed => group == 0,
        };
        if !consistent {
            return;
        }
        let policy = &sh.arms.get(group).unwrap_or(&sh.arms[0]).policy;
        policy.observe(&outcome.with_memo(inner));
        let mut st = sh.stats.lock().unwrap_or_else(PoisonError::into_inner);
        shared::record(&mut st.pending, how, group, outcome, &sh.test);
        match how {
            Assignment::Unkeyed => st.unkeyed += 1,
            Assignment::Killed => st.killed += 1,
            Assignment::Assigned | Assignment::Holdout => {
                let g = &mut st.groups[group];
                let f = outcome.feedback;
                g.feedback += 1;
                g.successes += u64::from(f.success);
                g.quality.push(outcome.quality());
                if let Some(c) = f.cost_usd {
                    g.cost.push(c);
                }
                if let Some(l) = f.latency {
                    g.latency.push(l.as_secs_f64() * 1000.0);
                }
                if let Some(x) = sh.test.metric.value(outcome) {
                    g.metric.push(x);
                }
                if how == Assignment::Assigned {
                    update_tests(&mut st, group, &sh.test);
                }
            }
        }
    }

    fn experiments(&self, out: &mut Vec<ExperimentHandle>) {
        out.push(self.handle());
        for arm in &self.shared.arms {
            arm.policy.experiments(out);
        }
    }

    fn learning(&self, out: &mut Vec<Learning>) {
        out.push(Learning::experiment(self.handle()));
        for arm in &self.shared.arms {
            arm.policy.learning(out);
        }
    }
}

/// After an outcome for `group`: updates the comparisons it takes part in (its own with the
/// control, or all of them when it is the control).
fn update_tests(st: &mut StatsState, group: usize, test: &SequentialTest) {
    update_comparisons(&st.groups, &mut st.tests, group, test);
}

/// Updates the comparisons `group` takes part in from the groups' statistics.
pub(crate) fn update_comparisons(groups: &[Group], tests: &mut [TestState], group: usize, test: &SequentialTest) {
    let k = tests.len();
    let alpha = test.alpha / k as f64;
    let tau2 = test.mixture_sd * test.mixture_sd;
    let range = if group == 0 { 1..=k } else { group..=group };
    for arm in range {
        let (control, treat) = (groups[0].metric, groups[arm].metric);
        let state = &mut tests[arm - 1];
        if control.n < test.min_samples.max(2) || treat.n < test.min_samples.max(2) {
            continue;
        }
        let (d, v) = difference(&control, &treat);
        let lambda = msprt_lambda(d, v, tau2);
        if lambda > state.max_lambda {
            state.max_lambda = lambda;
        }
        if state.decided.is_none() && lambda >= 1.0 / alpha {
            let better = (d > 0.0) == test.metric.higher_is_better();
            state.decided = Some((if better { Conclusion::Better } else { Conclusion::Worse }, control.n + treat.n));
        }
    }
}

/// The difference of the means (treatment − control) and its variance.
pub(crate) fn difference(control: &Welford, treat: &Welford) -> (f64, f64) {
    let d = treat.mean - control.mean;
    let v = control.variance() / control.n.max(1) as f64 + treat.variance() / treat.n.max(1) as f64;
    (d, v)
}

/// A handle on an [`Experiment`]: its report and its kill switch. Cheap to clone; every clone (and
/// the experiment itself, wherever it routes) shares the same state.
#[derive(Clone)]
pub struct ExperimentHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for ExperimentHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExperimentHandle")
            .field("name", &self.shared.name)
            .field("killed", &self.is_killed())
            .finish_non_exhaustive()
    }
}

impl ExperimentHandle {
    /// The experiment's name.
    pub(crate) fn name(&self) -> &str {
        &self.shared.name
    }

    /// The arms' names, the control first.
    pub fn arms(&self) -> impl Iterator<Item = &str> + '_ {
        self.shared.arms.iter().map(|a| &*a.name)
    }

    /// Turns the kill switch on: from now on the control serves every request (tagged
    /// [`Assignment::Killed`]). Takes effect for the next decision of every thread.
    pub fn kill(&self) {
        self.shared.killed.store(true, Ordering::Release);
        tracing::info!(experiment = %self.shared.name, "experiment killed");
    }

    /// Turns the kill switch off: keys go back to their arms (the same arms as before).
    pub fn revive(&self) {
        self.shared.killed.store(false, Ordering::Release);
        tracing::info!(experiment = %self.shared.name, "experiment revived");
    }

    /// Whether the kill switch is on.
    pub fn is_killed(&self) -> bool {
        self.shared.killed.load(Ordering::Acquire)
    }

    /// The arm a request with this key would get now (`None` when the experiment rejects unkeyed
    /// requests and `key` is `None`): the arm's name and how it was assigned.
    pub fn arm_for(&self, key: Option<&str>) -> Option<ArmTag> {
        let e = Experiment { shared: self.shared.clone() };
        let (group, how) = e.assign(key).ok()?;
        Some(self.shared.tags[group][usize::from(how.code())].clone())
    }

    /// Everything measured so far: per-arm aggregates with intervals and each arm's comparison with
    /// the control. Takes the statistics lock briefly.
    pub fn report(&self) -> ExperimentReport {
        let sh = &*self.shared;
        let local = sh.stats.lock().unwrap_or_else(PoisonError::into_inner);
        // With shared learning, the fleet's statistics at the last sync and what was observed here
        // since.
        let fleet = local.fleet.as_ref().map(|f| shared::fleet_state(&f.totals, &local.pending, f.tests.clone()));
        let st = fleet.as_ref().unwrap_or(&*local);
        let routed = |i: usize| {
            let here = sh.routed.get(i).map_or(0, |n| n.load(Ordering::Relaxed));
            match &local.fleet {
                Some(f) => shared::fleet_routed(&f.totals, i, here, local.routed_taken.get(i).copied().unwrap_or(0)),
                None => here,
            }
        };
        let not_held = 1.0 - sh.holdout.as_ref().map_or(0.0, |h| h.fraction);
        let arms = sh
            .arms
            .iter()
            .enumerate()
            .map(|(i, a)| {
                report::arm_report(&a.name, not_held * a.weight / sh.total, routed(i), &st.groups[i], &sh.test)
            })
            .collect();
        let holdout = sh.holdout.as_ref().map(|h| {
            let i = sh.arms.len();
            report::arm_report(HOLDOUT, h.fraction, routed(i), &st.groups[i], &sh.test)
        });
        let k = st.tests.len();
        let alpha = sh.test.alpha / k as f64;
        let tau2 = sh.test.mixture_sd * sh.test.mixture_sd;
        let comparisons = (1..=k)
            .map(|i| {
                let (control, treat) = (&st.groups[0].metric, &st.groups[i].metric);
                let (d, v) = difference(control, treat);
                let ready = control.n >= 2 && treat.n >= 2;
                let half = if ready { msprt_half_width(v, tau2, alpha) } else { f64::INFINITY };
                let state = st.tests[i - 1];
                Comparison {
                    arm: sh.arms[i].name.to_string(),
                    control: sh.arms[0].name.to_string(),
                    metric: sh.test.metric,
                    n_control: control.n,
                    n_arm: treat.n,
                    difference: if ready { d } else { f64::NAN },
                    low: d - half,
                    high: d + half,
                    p_value: if state.max_lambda > 0.0 { (1.0 / state.max_lambda).min(1.0) } else { 1.0 },
                    alpha,
                    verdict: state.decided.map_or(Conclusion::Undecided, |(v, _)| v),
                    decided_after: state.decided.map(|(_, n)| n),
                }
            })
            .collect();
        ExperimentReport {
            experiment: sh.name.to_string(),
            killed: self.is_killed(),
            metric: sh.test.metric,
            alpha: sh.test.alpha,
            confidence: sh.test.confidence,
            arms,
            holdout,
            unkeyed_feedback: st.unkeyed,
            killed_feedback: st.killed,
            comparisons,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_follows_the_cumulative_shares() {
        let c = [0.25, 0.25, 1.0];
        assert_eq!(pick(&c, 0.0), 0);
        assert_eq!(pick(&c, 0.249), 0);
        assert_eq!(pick(&c, 0.25), 2);
        assert_eq!(pick(&c, 0.999_999), 2);
        // Rounding: cumulative shares that end just below 1 still give the last weighted arm.
        assert_eq!(pick(&[0.5, 0.999_999_999, 0.999_999_999], 0.999_999_999_5), 1);
    }

    #[test]
    fn foreign_memos_are_ignored() {
        use crate::policy::Memo;
        use crate::types::{DecisionId, Feedback};
        use crate::{Catalog, ModelProfile, Utility};
        let catalog = Catalog::new([ModelProfile::new("m", "p")]).unwrap();
        let e = Experiment::builder("x").arm("a", 1.0, Utility::new()).arm("b", 1.0, Utility::new()).build().unwrap();
        let f = Feedback::success();
        for frame in 0..u16::MAX {
            let memo = Memo::NONE.nest(frame);
            e.observe(&Outcome::new(DecisionId::from_u64(1), 0, memo, &f, &catalog));
        }
        let report = e.handle().report();
        // Frames 0 (arm a, assigned) and 4 (arm b, assigned), 2 and 3 (unkeyed, killed) are valid.
        assert_eq!(report.arms[0].feedback, 1);
        assert_eq!(report.arms[1].feedback, 1);
        assert_eq!((report.unkeyed_feedback, report.killed_feedback), (1, 1));
    }

    #[test]
    fn metrics_read_their_value_and_reward_is_validated() {
        use crate::policy::Memo;
        use crate::types::{DecisionId, Feedback};
        use crate::{Catalog, ModelProfile};
        let catalog = Catalog::new([ModelProfile::new("m", "p")]).unwrap();
        let f =
            Feedback::success().with_quality(0.8).with_cost(0.002).with_latency(std::time::Duration::from_millis(250));
        let o = Outcome::new(DecisionId::from_u64(1), 0, Memo::NONE, &f, &catalog);
        let reward = Metric::Reward { answer_value_usd: 0.02 };
        assert_eq!(Metric::Quality.value(&o), Some(0.8));
        assert_eq!(Metric::Success.value(&o), Some(1.0));
        assert_eq!(Metric::Cost.value(&o), Some(0.002));
        assert_eq!(Metric::Latency.value(&o), Some(0.25));
        assert!((reward.value(&o).unwrap() - (0.8 - 0.002 / 0.02)).abs() < 1e-12);
        let no_cost = Feedback::failure();
        let o = Outcome::new(DecisionId::from_u64(1), 0, Memo::NONE, &no_cost, &catalog);
        assert_eq!(reward.value(&o), None);
        assert_eq!(Metric::Quality.value(&o), Some(0.0));
        assert!(reward.higher_is_better() && !Metric::Cost.higher_is_better());
        for bad in [f64::NAN, -1.0, 0.0, f64::INFINITY] {
            let m = Metric::Reward { answer_value_usd: bad };
            assert!(SequentialTest::new().metric(m).validate("x").is_err(), "{bad:?}");
        }
        assert!(SequentialTest::new().metric(reward).validate("x").is_ok());
    }

    #[test]
    fn assignment_codes_round_trip() {
        for how in [Assignment::Assigned, Assignment::Holdout, Assignment::Unkeyed, Assignment::Killed] {
            assert_eq!(Assignment::from_code(how.code()), how);
            assert_eq!(Assignment::from_code((7 << 2) | how.code()), how);
        }
    }
}
