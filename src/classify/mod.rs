//! Classifiers: what a request is, before any model sees it.
//!
//! A [`Classifier`] reads a request (and the [`TextStats`] the router computed once for it) and writes
//! [`Signals`]: request-level findings such as difficulty or intent, and, through
//! [`Classifier::model_logit`], a contribution to each model's predicted success on the logit scale.
//! The router sums those contributions with the classifier weights given to
//! [`RouterBuilder::classifier`](crate::RouterBuilder::classifier):
//! `logit p(m) = Σᵢ wᵢ · sᵢ(m)`.
//!
//! Built in:
//! - [`ContextLength`]: input tokens, estimated by [`HeuristicCounter`] and counted exactly only when
//!   the estimate is close enough to some model's window to change the decision. The router always
//!   runs it first; it feeds the context-window constraint, not `p(m)`.
//! - [`DifficultyClassifier`]: difficulty `d` and reasoning depth from cheap text features; contributes
//!   `θ_m − d`, a one-parameter item-response model with the catalog's ability `θ_m`.
//! - [`IntentClassifier`]: code, math, reasoning, creative, extraction, translation or chat, with a
//!   confidence; contributes `confidence · (θ_m,intent − θ_m)`, the model's edge or handicap on that
//!   kind of task.
//! - [`LearnedClassifier`]: each model's success probability from a [`LearnedModel`] trained on
//!   labelled prompts (`switchyard_eval::Trainer`); contributes `logit p(m)`. See [`learned`].

mod context;
mod difficulty;
mod intent;
pub mod learned;
mod signal;
mod text;
mod tokens;

use std::fmt;
use std::sync::Arc;

pub use self::context::ContextLength;
pub use self::difficulty::DifficultyClassifier;
pub use self::intent::{Intent, IntentClassifier};
pub use self::learned::{LearnedClassifier, LearnedModel, TrainConfig};
pub(crate) use self::signal::sigmoid;
pub use self::signal::{IntentScore, SignalKey, Signals, TokenEstimate};
pub use self::text::TextStats;
#[cfg(feature = "tokenizers")]
pub use self::tokens::HfTokenizer;
#[cfg(feature = "tiktoken")]
pub use self::tokens::Tiktoken;
pub use self::tokens::{HeuristicCounter, TokenCounter};

use crate::catalog::{Catalog, ModelIndex, ModelProfile};
use crate::error::Result;
use crate::request::Request;

/// What a classifier may read.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct ClassifyInput<'a> {
    /// The request being routed.
    pub request: &'a Request,
    /// The portfolio it is routed over.
    pub catalog: &'a Catalog,
}

impl fmt::Debug for ClassifyInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassifyInput").field("request", self.request).finish_non_exhaustive()
    }
}

/// Reads a request and writes signals about it.
///
/// # Invariants
/// - Pure and CPU-only: no I/O, no locks held across calls, no randomness. Work that needs I/O (an
///   embedding service) happens before routing and is attached to the request.
/// - Fast: classifiers run on every request, inside [`Router::route`](crate::Router::route), whose
///   whole budget is a few microseconds. Prefer reading [`Signals::text`] over scanning the text again.
/// - [`model_logit`](Self::model_logit) returns a finite number; the router treats a non-finite one as
///   zero.
pub trait Classifier: Send + Sync {
    /// Writes request-level signals.
    ///
    /// # Errors
    /// When the classifier cannot run (an exact tokenizer failed); routing then fails with
    /// [`ErrorKind::Routing`](crate::ErrorKind::Routing).
    fn classify(&self, input: &ClassifyInput<'_>, signals: &mut Signals) -> Result<()>;

    /// This classifier's contribution to `logit p(model)`, read after every classifier has run.
    /// `index` is the model's position in the catalog (what [`Signals::per_model`] is keyed by).
    /// The default contributes nothing.
    fn model_logit(&self, signals: &Signals, model: &ModelProfile, index: ModelIndex) -> f64 {
        let _ = (signals, model, index);
        0.0
    }

    /// A short name for explanations.
    fn name(&self) -> &str {
        "custom"
    }
}

macro_rules! forward_classifier {
    ($($ptr:ty),*) => {$(
        impl<T: Classifier + ?Sized> Classifier for $ptr {
            fn classify(&self, input: &ClassifyInput<'_>, signals: &mut Signals) -> Result<()> {
                (**self).classify(input, signals)
            }
            fn model_logit(&self, signals: &Signals, model: &ModelProfile, index: ModelIndex) -> f64 {
                (**self).model_logit(signals, model, index)
            }
            fn name(&self) -> &str {
                (**self).name()
            }
        }
    )*};
}
forward_classifier!(&T, Box<T>, Arc<T>);

/// A classifier from a closure that writes request-level signals.
///
/// ```
/// use switchyard::classify::{self, ClassifyInput};
/// use switchyard::{SignalKey, Signals};
/// const VIP: SignalKey = SignalKey("acme.vip");
/// let vip = classify::from_fn("vip", |input: &ClassifyInput<'_>, signals: &mut Signals| {
///     let is_vip = input.request.hints.tags.iter().any(|t| t == "vip");
///     signals.set(VIP, if is_vip { 1.0 } else { 0.0 });
///     Ok(())
/// });
/// # let _ = vip;
/// ```
pub fn from_fn<F>(name: &'static str, f: F) -> FnClassifier<F>
where
    F: Fn(&ClassifyInput<'_>, &mut Signals) -> Result<()> + Send + Sync,
{
    FnClassifier { name, f }
}

/// A classifier whose per-model contribution is a closure over the signals and the model.
///
/// ```
/// use switchyard::classify;
/// // Favour models tagged "eu" a little.
/// let eu = classify::logit_fn("eu", |_signals, model| if model.has_tag("eu") { 0.5 } else { 0.0 });
/// # let _ = eu;
/// ```
pub fn logit_fn<F>(name: &'static str, f: F) -> LogitFn<F>
where
    F: Fn(&Signals, &ModelProfile) -> f64 + Send + Sync,
{
    LogitFn { name, f }
}

/// See [`from_fn`].
#[derive(Clone)]
pub struct FnClassifier<F> {
    name: &'static str,
    f: F,
}

impl<F> fmt::Debug for FnClassifier<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnClassifier").field("name", &self.name).finish()
    }
}

impl<F> Classifier for FnClassifier<F>
where
    F: Fn(&ClassifyInput<'_>, &mut Signals) -> Result<()> + Send + Sync,
{
    fn classify(&self, input: &ClassifyInput<'_>, signals: &mut Signals) -> Result<()> {
        (self.f)(input, signals)
    }

    fn name(&self) -> &str {
        self.name
    }
}

/// See [`logit_fn`].
#[derive(Clone)]
pub struct LogitFn<F> {
    name: &'static str,
    f: F,
}

impl<F> fmt::Debug for LogitFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogitFn").field("name", &self.name).finish()
    }
}

impl<F> Classifier for LogitFn<F>
where
    F: Fn(&Signals, &ModelProfile) -> f64 + Send + Sync,
{
    fn classify(&self, _: &ClassifyInput<'_>, _: &mut Signals) -> Result<()> {
        Ok(())
    }

    fn model_logit(&self, signals: &Signals, model: &ModelProfile, _: ModelIndex) -> f64 {
        (self.f)(signals, model)
    }

    fn name(&self) -> &str {
        self.name
    }
}
