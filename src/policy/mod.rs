//! Policies: from scored candidates to a ranked [`Decision`].
//!
//! The router filters models by hard constraints, scores the survivors (`p`, cost, latency) and hands
//! them to a [`Policy`], which ranks them. The first model of the ranking serves the request; the rest
//! are its fallbacks, in order.
//!
//! Built in: [`Utility`] (`p − λ·cost − μ·latency`), [`CheapestCapable`] (the cheapest model above a
//! quality floor) and [`Rules`] (first matching rule pins a model or a sub-portfolio). Closures of type
//! `Fn(&PolicyInput<'_>) -> Result<Ranking>` are policies too.

mod cheapest;
mod decision;
mod rules;
mod utility;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use smallvec::SmallVec;

pub use self::cheapest::CheapestCapable;
pub(crate) use self::decision::sigmoid;
pub use self::decision::{Candidate, Decision, RejectReason, Rejection};
pub use self::rules::{Action, Condition, Rule, Rules};
pub use self::utility::{CostRef, Utility};

use crate::catalog::{Catalog, ModelIndex, ModelProfile};
use crate::error::{Error, Result};
use crate::request::Request;
use crate::signal::Signals;

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
    pub fn with_candidates(&self, candidates: &'a [Candidate]) -> Self {
        Self { candidates, ..*self }
    }

    /// The profile of a candidate.
    pub fn profile(&self, candidate: &Candidate) -> &'a ModelProfile {
        self.catalog.model(candidate.model)
    }

    /// The highest expected cost among the candidates.
    pub fn max_cost(&self) -> f64 {
        self.candidates.iter().map(|c| c.cost.usd).fold(0.0, f64::max)
    }

    /// The longest expected latency among the candidates, in seconds.
    pub fn max_latency(&self) -> f64 {
        self.candidates.iter().map(|c| c.latency_secs).fold(0.0, f64::max)
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

/// A policy's answer: candidates in order of preference, and an optional note for the explanation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ranking {
    order: SmallVec<[Scored; 8]>,
    note: Option<Cow<'static, str>>,
    exclusive: bool,
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
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// Ranks every candidate by `score`, highest first; ties go to the cheaper model, then to the
    /// earlier one in the catalog. Non-finite scores rank last.
    pub fn by_score(input: &PolicyInput<'_>, mut score: impl FnMut(&Candidate) -> f64) -> Self {
        let mut order: SmallVec<[(Scored, f64); 8]> = input
            .candidates
            .iter()
            .map(|c| {
                let s = score(c);
                (Scored { model: c.model, score: if s.is_finite() { s } else { f64::NEG_INFINITY } }, c.cost.usd)
            })
            .collect();
        order
            .sort_by(|(a, ca), (b, cb)| b.score.total_cmp(&a.score).then(ca.total_cmp(cb)).then(a.model.cmp(&b.model)));
        Self { order: order.into_iter().map(|(s, _)| s).collect(), note: None, exclusive: false }
    }

    /// The ranked models, best first.
    pub fn order(&self) -> &[Scored] {
        &self.order
    }

    /// The note, if any.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    pub(crate) fn into_parts(self) -> (SmallVec<[Scored; 8]>, Option<Cow<'static, str>>) {
        (self.order, self.note)
    }

    /// Moves `model` to the front, keeping the others in order; appends it if absent.
    pub fn promote(&mut self, model: ModelIndex, score: f64) {
        self.order.retain(|s| s.model != model);
        self.order.insert(0, Scored { model, score });
    }
}

/// Ranks the candidates for a request.
///
/// # Invariants
/// - Pure, CPU-only and deterministic given its input: the same input gives the same ranking. The only
///   randomness allowed is [`PolicyInput::uniform`].
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
