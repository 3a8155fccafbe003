//! [`LearnedClassifier`]: each model's success probability, learned from labelled prompts.
//!
//! A [`LearnedModel`] predicts, for every model it was trained on, the probability that the model
//! answers a prompt well, in two stages:
//!
//! 1. **Which kind of task is this?** A multinomial logistic regression over the prompt's word
//!    n-grams and structural features gives `P(t | x)` over the task labels seen in training (the
//!    benchmark, or the subject where rows have one). Each task has each model's smoothed success
//!    rate `r(t, m)`; the prior is their mixture, `π(m) = Σₜ P(t | x) · r(t, m)`. On most routing
//!    data the task carries most of the signal, and a prompt unlike any task falls back to a spread
//!    mixture: close to each model's overall rate.
//! 2. **What about this prompt in particular?** A regularised logistic regression per model over
//!    hashed word and character n-grams and structural features, trained with `logit π(m)` as a fixed
//!    offset, adds what the prompt says beyond its task: `logit p(m) = logit π(m) + b_m + w_m · x`.
//!
//! Features are described in [`FeatureConfig`]; training in [`TrainConfig`] and `switchyard_eval::Trainer`. A model
//! saves to and loads from a compact, versioned, checksummed binary file ([`LearnedModel::save`],
//! [`LearnedModel::load`]).
//!
//! [`LearnedClassifier`] puts a model in a router: it contributes `logit p(m)` to each model's
//! decision logit (the router multiplies it by the classifier's weight). Models of the catalog the
//! learned model does not know get no contribution; [`LearnedClassifier::check_catalog`] finds them.
//!
//! ```no_run
//! use switchyard::classify::LearnedClassifier;
//! # fn run(catalog: switchyard::Catalog) -> switchyard::Result<()> {
//! let learned = LearnedClassifier::load("routerbench.swlm")?;
//! learned.check_catalog(&catalog)?;
//! let router = switchyard::Router::builder()
//!     .catalog(catalog)
//!     .classifier(learned, 1.0)
//!     .policy(switchyard::Utility::new().answer_value(0.04))
//!     .build()?;
//! # let _ = router; Ok(()) }
//! # let _ = run;
//! ```

mod classifier;
mod features;
mod file;
mod model;
mod predict;
mod training;
mod trust;

pub use self::classifier::LearnedClassifier;
pub use self::features::{FeatureConfig, Standardize};
pub use self::model::{LearnedModel, ModelInfo, Parts};
pub use self::predict::{Prediction, logit, softmax};
pub use self::training::{Fallback, Residuals, Selection, Solver, TaskLabels, TrainConfig};
pub use self::trust::{FAMILIARITY_PERCENTILES, fallback_rates, prompt_trust};
use crate::classify::SignalKey;

/// Not public API: what `switchyard-eval`'s trainer shares with prediction, so that training and
/// prediction extract the same features and build the same model. It may change in any release;
/// `switchyard-eval` pins this crate's exact version.
#[doc(hidden)]
pub mod __training {
    pub use super::features::{
        CHAR_FLAG, Collect, DENSE, Extractor, FAMILIARITY_BITS, Namespace, OPENING_FLAG, Sink, TermCounts, idf,
        scale_dense, tf_step,
    };
    pub use super::{FAMILIARITY_PERCENTILES, Parts, fallback_rates, logit, prompt_trust, softmax};
    use super::{FeatureConfig, ModelInfo, TrainConfig};
    pub use crate::hash::Rng;

    /// A model description for `models`, with every other field at its default, for the trainer
    /// to fill in.
    pub fn model_info(models: Vec<String>, training: TrainConfig) -> ModelInfo {
        ModelInfo {
            models,
            tasks: Vec::new(),
            task_rank: 0,
            features: training.features.clone(),
            training,
            trained_on: String::new(),
            rows: 0,
            l2: 0.0,
            validation_loss: None,
            residual: false,
            difficulty_mean: 0.0,
            need: (0.0, 0.0),
            dense_scale: Vec::new(),
        }
    }

    /// The number of feature rows a model with `config` has (hashed buckets and dense features).
    pub fn feature_dim(config: &FeatureConfig) -> usize {
        config.dim()
    }

    /// The difficulty score [`Fallback::Difficulty`](super::Fallback::Difficulty) reads.
    pub fn difficulty(stats: &crate::classify::TextStats) -> f64 {
        super::trust::difficulty(stats)
    }

    pub use crate::classify::difficulty::{
        FEATURE_NAMES as DIFFICULTY_FEATURE_NAMES, FEATURES as DIFFICULTY_FEATURES, FITTED as DIFFICULTY_FITTED,
        FITTED_CENTRE as DIFFICULTY_FITTED_CENTRE,
    };

    /// The hand-set part of the default [`DifficultyClassifier`](crate::classify::DifficultyClassifier)'s
    /// difficulty for these statistics, and the features its fitted part weighs
    /// ([`DIFFICULTY_FITTED`]), for the program that fits those weights.
    pub fn difficulty_parts(s: &crate::classify::TextStats) -> (f64, [f64; DIFFICULTY_FEATURES]) {
        let tokens = crate::classify::HeuristicCounter::default().estimate_text(s);
        crate::classify::difficulty::parts(s, tokens)
    }

    /// The logistic function prediction uses, `1 / (1 + e^-x)`.
    #[inline]
    pub fn sigmoid(x: f64) -> f64 {
        crate::classify::sigmoid(x)
    }
}

/// The signal key under which [`LearnedClassifier`] stores its per-model logits
/// ([`Signals::per_model`](crate::classify::Signals::per_model)).
pub const LEARNED: SignalKey = SignalKey("switchyard.learned");

/// The signal key under which [`LearnedClassifier`] stores each model's expected cost
/// ([`Prediction::costs`]), in catalog order, when its model was trained on rows with costs;
/// [`LearnedCostModel`](crate::cost::LearnedCostModel) reads it.
pub const LEARNED_COST: SignalKey = SignalKey("switchyard.learned.cost");

/// The signal key under which [`LearnedClassifier`] stores the prompt's trust
/// ([`Prediction::trust`]): below 1, the prediction leans on its fallback. [`Decision`](crate::Decision)
/// reports it.
pub const LEARNED_TRUST: SignalKey = SignalKey("switchyard.learned.trust");

/// The signal key under which [`LearnedClassifier`] stores the prompt's need for a dearer model in
/// standard deviations from the training rows' mean ([`LearnedModel::standardised_need`]), when
/// the model has the statistics. [`Decision`](crate::Decision) reports it.
pub const LEARNED_NEED: SignalKey = SignalKey("switchyard.learned.need");
