//! Policies: from scored candidates to a ranked [`Decision`].
//!
//! The router filters models by hard constraints, scores the survivors (`p`, cost, latency) and hands
//! them to a [`Policy`], which ranks them. The first model of the ranking serves the request; the rest
//! are its fallbacks, in order.
//!
//! Built in: [`Utility`] (`V·p − cost − μ·latency`, in USD), [`CheapestCapable`] (the cheapest model above a
//! quality floor), [`Rules`] (first matching rule pins a model or a sub-portfolio), [`Experiment`]
//! (splits traffic between policies by a stable hash of the request key) and [`Bandit`] (Thompson
//! sampling per context bucket, learning from feedback). Closures of type
//! `Fn(&PolicyInput<'_>) -> Result<Ranking>` are policies too.
//!
//! Stateful policies learn through [`Policy::observe`]: the router passes each decision's outcome
//! from [`Router::feedback`](crate::Router::feedback), with the [`Memo`] the policy attached to
//! its ranking.

mod cheapest;
mod decision;
pub mod experiment;
mod observer;
mod rules;
mod utility;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;

pub use self::cheapest::CheapestCapable;
pub use self::decision::{Candidate, Decision, LearnedRead, OnLowConfidence, RejectReason, Rejection};
pub use self::experiment::{ArmTag, Bandit, Experiment};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use self::observer::MetricsObserver;
pub use self::observer::Observer;
pub use self::rules::{Action, Condition, Rule, Rules};
pub use self::utility::{DEFAULT_ANSWER_VALUE_USD, Utility};
pub(crate) use crate::classify::sigmoid;

use crate::catalog::{Catalog, ModelIndex, ModelProfile};
use crate::classify::Signals;
use crate::error::{Error, Result};
use crate::policy::experiment::{ExperimentHandle, Learning};
use crate::request::Request;
use crate::types::{DecisionId, Feedback};

/// What a policy decides from.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct PolicyInput<'a> {
    /// The request.
    pub request: &'a Request,
    /// What the classifiers found.
    pub signals: &'a Signals,
    /// The portfolio.
    pub catalog: &'a Catalog,
    /// The models that passed every hard constraint, in catalog order, never empty.
    pub candidates: &'a [Candidate],
    /// A number in `[0, 1)` hashed from the request's key and the router's seed: the only randomness a
    /// policy may use, so that decisions are reproducible and sticky per key.
    pub uniform: f64,
}

impl<'a> PolicyInput<'a> {
    /// An input over `candidates`; the router builds these, tests and composite policies may too.
    pub fn new(
        request: &'a Request,
        signals: &'a Signals,
        catalog: &'a Catalog,
        candidates: &'a [Candidate],
        uniform: f64,
    ) -> Self {
        Self { request, signals, catalog, candidates, uniform }
    }

    /// The same input over a subset of the candidates.
    pub(crate) fn with_candidates(&self, candidates: &'a [Candidate]) -> Self {
        Self { candidates, ..*self }
    }

    /// The profile of a candidate.
    pub fn profile(&self, candidate: &Candidate) -> &'a ModelProfile {
        self.catalog.model(candidate.model)
    }
}

impl fmt::Debug for PolicyInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyInput")
            .field("candidates", &self.candidates)
            .field("uniform", &self.uniform)
            .finish_non_exhaustive()
    }
}

/// One ranked model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    /// The model's index in the catalog.
    pub model: ModelIndex,
    /// The policy's score (higher ranks first for score-based policies; informative otherwise).
    pub score: f64,
}

/// 64 bits a policy attaches to its [`Ranking`] and gets back, with the outcome, in
/// [`Policy::observe`]: which context bucket a bandit used, which arm an experiment chose.
///
/// The router keeps it in its lock-free log of recent decisions, so it costs nothing to carry and
/// needs no allocation. Composite policies ([`Rules`], [`Experiment`])
/// wrap their child's memo in a 16-bit frame of their own with [`nest`](Self::nest) and take it off
/// again with [`unnest`](Self::unnest): a leaf memo of 32 bits (a [`Bandit`]'s) leaves room for
/// two composites around it, one of 16 bits for three. Frames that do not fit are lost (the memo
/// becomes [`Memo::NONE`] and the outcome is ignored).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Memo(u64);

impl Memo {
    /// No memo.
    pub const NONE: Memo = Memo(0);

    /// A memo holding `bits`.
    pub fn new(bits: u64) -> Self {
        Self(bits)
    }

    /// The bits.
    pub fn get(self) -> u64 {
        self.0
    }

    /// This memo inside a frame holding `index`: `(self << 16) | (index + 1)`, or [`Memo::NONE`] when
    /// the memo has no room left (its top 16 bits are used) or `index` is `u16::MAX`.
    pub fn nest(self, index: u16) -> Self {
        if self.0 >> 48 != 0 || index == u16::MAX {
            return Self::NONE;
        }
        Self((self.0 << 16) | (u64::from(index) + 1))
    }

    /// The outermost frame's index (`None` when the memo is empty) and the memo inside it.
    pub fn unnest(self) -> (Option<u16>, Self) {
        let frame = (self.0 & 0xffff) as u16;
        (frame.checked_sub(1), Self(self.0 >> 16))
    }
}

/// A policy's answer: candidates in order of preference, an optional note for the explanation, the
/// experiment arm that decided (if any) and a [`Memo`] for [`Policy::observe`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ranking {
    order: SmallVec<[Scored; 16]>,
    note: Option<Cow<'static, str>>,
    exclusive: bool,
    arm: Option<ArmTag>,
    memo: Memo,
}

/// What a ranking hands over to the decision.
pub(crate) struct RankingParts {
    pub(crate) order: SmallVec<[Scored; 16]>,
    pub(crate) note: Option<Cow<'static, str>>,
    pub(crate) arm: Option<ArmTag>,
    pub(crate) memo: Memo,
}

impl Ranking {
    /// An empty ranking.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a model.
    pub fn push(&mut self, model: ModelIndex, score: f64) {
        self.order.push(Scored { model, score });
    }

    /// Sets the note shown in the explanation (`"rule `code` pinned the portfolio"`).
    pub fn with_note(mut self, note: impl Into<Cow<'static, str>>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Marks the ranking as deliberately restricted (a rule's sub-portfolio, a residency constraint):
    /// the router then appends no [`fallback_model`](crate::RouterBuilder::fallback_model) outside it.
    pub fn exclusive(mut self) -> Self {
        self.exclusive = true;
        self
    }

    /// Whether the ranking is restricted on purpose; see [`exclusive`](Self::exclusive).
    pub(crate) fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// Ranks every candidate by `score`, highest first; ties go to the cheaper model, then to the
    /// earlier one in the catalog. Non-finite scores rank last.
    pub fn by_score(input: &PolicyInput<'_>, mut score: impl FnMut(&Candidate) -> f64) -> Self {
        // Sort keys: the score's bits flipped so that ascending unsigned order ranks it highest
        // first, then the cost's, then the model (integer comparisons only).
        let mut keyed: SmallVec<[(u64, u64, ModelIndex, f64); 16]> = input
            .candidates
            .iter()
            .map(|c| {
                let s = score(c);
                let s = if s.is_finite() { s } else { f64::NEG_INFINITY };
                (!total_order_key(s), total_order_key(c.cost.usd), c.model, s)
            })
            .collect();
        // Models are distinct, so the order is total and an unstable sort gives the same result.
        keyed.sort_unstable_by_key(|&(score, cost, model, _)| (score, cost, model));
        Self { order: keyed.iter().map(|&(_, _, model, score)| Scored { model, score }).collect(), ..Self::default() }
    }

    /// The ranked models, best first.
    pub fn order(&self) -> &[Scored] {
        &self.order
    }

    /// Records which experiment arm decided; [`Decision::arm`] reports it. Replaces a tag that a
    /// nested experiment set, so the outermost experiment is the one reported.
    pub(crate) fn with_arm(mut self, arm: ArmTag) -> Self {
        self.arm = Some(arm);
        self
    }

    /// The experiment arm that decided, if any.
    pub fn arm(&self) -> Option<&ArmTag> {
        self.arm.as_ref()
    }

    /// Attaches a memo that [`Policy::observe`] receives with the decision's outcome.
    pub fn with_memo(mut self, memo: Memo) -> Self {
        self.memo = memo;
        self
    }

    /// The memo.
    pub fn memo(&self) -> Memo {
        self.memo
    }

    pub(crate) fn into_parts(self) -> RankingParts {
        RankingParts { order: self.order, note: self.note, arm: self.arm, memo: self.memo }
    }

    /// Moves `model` to the front, keeping the others in order; appends it if absent.
    pub(crate) fn promote(&mut self, model: ModelIndex, score: f64) {
        self.order.retain(|s| s.model != model);
        self.order.insert(0, Scored { model, score });
    }
}

/// Ranks the candidates for a request.
///
/// # Invariants
/// - Pure, CPU-only and deterministic given its input: the same input gives the same ranking. The only
///   randomness allowed is [`PolicyInput::uniform`]. A policy that learns ([`Bandit`]) is
///   deterministic given its input and its state, which changes only through
///   [`observe`](Self::observe) and its own decision counter.
/// - The ranking names only models from `input.candidates`, each at most once, and at least one. The
///   router checks this and fails with [`ErrorKind::Routing`](crate::ErrorKind::Routing) otherwise.
/// - Candidates left out of the ranking are not used as fallbacks.
pub trait Policy: Send + Sync {
    /// Ranks the candidates, best first.
    ///
    /// # Errors
    /// When the policy cannot decide; routing fails with that error.
    fn rank(&self, input: &PolicyInput<'_>) -> Result<Ranking>;

    /// A short name for explanations (`"utility"`).
    fn name(&self) -> &str {
        "custom"
    }

    /// Checks the policy against the catalog when the router is built: every model it names exists,
    /// every parameter is valid.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config), naming what is wrong.
    fn validate(&self, catalog: &Catalog) -> Result<()> {
        let _ = catalog;
        Ok(())
    }

    /// Learns from the outcome of a decision this policy ranked: the router calls it from
    /// [`Router::feedback`](crate::Router::feedback), with the [`Memo`] the ranking carried. The
    /// default does nothing.
    ///
    /// Called on the caller's thread; keep it short (a few atomic updates or a short critical
    /// section). It must not panic, whatever the outcome holds.
    fn observe(&self, outcome: &Outcome<'_>) {
        let _ = outcome;
    }

    /// Adds a handle for every [`Experiment`] in this policy (itself,
    /// or nested in it) to `out`, so that [`Router::experiments`](crate::Router::experiments) can
    /// find them. The default adds none; composite policies forward to their children.
    fn experiments(&self, out: &mut Vec<ExperimentHandle>) {
        let _ = out;
    }

    /// Adds the learned state of this policy (and of the policies nested in it) that replicas can
    /// share, [`Experiment`]s' statistics and [`Bandit`]s' evidence, to `out`; the router syncs it
    /// through its state store with
    /// [`LimitsConfig::share_learning`](crate::limits::LimitsConfig::share_learning). The default
    /// adds none; composite policies forward to their children.
    fn learning(&self, out: &mut Vec<Learning>) {
        let _ = out;
    }
}

/// The outcome of a decision, as [`Policy::observe`] receives it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug)]
pub struct Outcome<'a> {
    /// The decision.
    pub id: DecisionId,
    /// The model that answered (for executed decisions, the last one to answer after fallbacks).
    pub model: ModelIndex,
    /// The memo of the decision's ranking.
    pub memo: Memo,
    /// What the service reported.
    pub feedback: &'a Feedback,
    /// The portfolio.
    pub catalog: &'a Catalog,
}

impl<'a> Outcome<'a> {
    /// An outcome; the router builds these, tests and composite policies may too.
    pub fn new(id: DecisionId, model: ModelIndex, memo: Memo, feedback: &'a Feedback, catalog: &'a Catalog) -> Self {
        Self { id, model, memo, feedback, catalog }
    }

    /// The same outcome with another memo (a composite policy passes its child's memo on).
    pub(crate) fn with_memo(&self, memo: Memo) -> Self {
        Self { memo, ..*self }
    }

    /// The quality the outcome reports: the feedback's quality score when it has one, else 1 for a
    /// success and 0 for a failure; always 0 for a failure.
    pub(crate) fn quality(&self) -> f64 {
        match (self.feedback.success, self.feedback.quality) {
            (false, _) => 0.0,
            (true, Some(q)) => q,
            (true, None) => 1.0,
        }
    }
}

impl<F> Policy for F
where
    F: Fn(&PolicyInput<'_>) -> Result<Ranking> + Send + Sync,
{
    fn rank(&self, input: &PolicyInput<'_>) -> Result<Ranking> {
        self(input)
    }
}

// `Box<T>` and `&T` cannot forward: they implement `Fn` when `T` does, which overlaps the closure impl.
impl<T: Policy + ?Sized> Policy for Arc<T> {
    fn rank(&self, input: &PolicyInput<'_>) -> Result<Ranking> {
        (**self).rank(input)
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn validate(&self, catalog: &Catalog) -> Result<()> {
        (**self).validate(catalog)
    }
    fn observe(&self, outcome: &Outcome<'_>) {
        (**self).observe(outcome);
    }
    fn experiments(&self, out: &mut Vec<ExperimentHandle>) {
        (**self).experiments(out);
    }
    fn learning(&self, out: &mut Vec<Learning>) {
        (**self).learning(out);
    }
}

pub(crate) fn check_unit(what: &str, value: f64) -> Result<()> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(Error::config(format!("{what} must be within [0, 1], got {value}")))
    }
}

pub(crate) fn check_weight(what: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::config(format!("{what} must be finite and >= 0, got {value}")))
    }
}

/// `x`'s bits mapped so that unsigned integer order is [`f64::total_cmp`] order.
#[inline]
fn total_order_key(x: f64) -> u64 {
    let bits = x.to_bits();
    // Negative numbers: every bit flipped (larger magnitudes sort lower). Others: the sign bit set.
    bits ^ ((((bits as i64) >> 63) as u64) | (1 << 63))
}

#[cfg(test)]
mod tests {
    use super::total_order_key;

    #[test]
    fn total_order_key_orders_as_total_cmp() {
        let values = [
            f64::NEG_INFINITY,
            f64::MIN,
            -1.5,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            1e-300,
            0.5,
            1.0,
            1.0 + f64::EPSILON,
            f64::MAX,
            f64::INFINITY,
            f64::NAN,
            -f64::NAN,
            f64::from_bits(1),
            -f64::from_bits(1),
            f64::from_bits(0x000f_ffff_ffff_ffff),
        ];
        for a in values {
            for b in values {
                assert_eq!(total_order_key(a).cmp(&total_order_key(b)), a.total_cmp(&b), "{a} vs {b}");
            }
        }
    }

    proptest::proptest! {
        /// The sort keys of `Ranking::by_score` order candidates as its comparator always did: score
        /// descending (non-finite scores as −∞), then cost ascending, then model ascending.
        #[test]
        fn sort_keys_order_as_the_comparator(
            a in (proptest::num::f64::ANY, proptest::num::f64::ANY, 0usize..8),
            b in (proptest::num::f64::ANY, proptest::num::f64::ANY, 0usize..8),
        ) {
            let clean = |s: f64| if s.is_finite() { s } else { f64::NEG_INFINITY };
            let key = |(s, c, m): (f64, f64, usize)| (!total_order_key(clean(s)), total_order_key(c), m);
            let compare = |(sa, ca, ma): (f64, f64, usize), (sb, cb, mb): (f64, f64, usize)| {
                clean(sb).total_cmp(&clean(sa)).then(ca.total_cmp(&cb)).then(ma.cmp(&mb))
            };
            proptest::prop_assert_eq!(key(a).cmp(&key(b)), compare(a, b));
        }
    }
}
