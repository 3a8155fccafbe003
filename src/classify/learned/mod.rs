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
//!     .policy(switchyard::Utility::new().cost_weight(0.5))
//!     .build()?;
//! # let _ = router; Ok(()) }
//! # let _ = run;
//! ```

mod features;
mod file;
mod training;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

pub use self::features::FeatureConfig;
use self::features::{Extractor, FAMILIARITY_BITS, NAMESPACES, Namespace, Sink, familiarity_key};

/// Not public API: what `switchyard-eval`'s trainer shares with prediction, so that training and
/// prediction extract the same features and build the same model. It may change in any release;
/// `switchyard-eval` pins this crate's exact version.
#[doc(hidden)]
pub mod __training {
    pub use super::features::{CHAR_FLAG, Collect, Extractor, FAMILIARITY_BITS, OPENING_FLAG, Sink};
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
        }
    }

    /// The number of feature rows a model with `config` has (hashed buckets and dense features).
    pub fn feature_dim(config: &FeatureConfig) -> usize {
        config.dim()
    }

    /// The logistic function prediction uses, `1 / (1 + e^-x)`.
    #[inline]
    pub fn sigmoid(x: f64) -> f64 {
        crate::classify::sigmoid(x)
    }
}
pub use self::training::{Fallback, TaskLabels, TrainConfig};

use crate::catalog::{Catalog, ModelIndex, ModelProfile};
use crate::classify::{Classifier, ClassifyInput, TextStats};
use crate::classify::{SignalKey, Signals};
use crate::error::{Error, Result};
use crate::request::{ContentPart, Role};

/// The signal key under which [`LearnedClassifier`] stores its per-model logits
/// ([`Signals::per_model`]).
pub const LEARNED: SignalKey = SignalKey("switchyard.learned");

/// The signal key under which [`LearnedClassifier`] stores each model's expected cost
/// ([`Prediction::costs`]), in catalog order, when its model was trained on rows with costs;
/// [`LearnedCostModel`](crate::cost::LearnedCostModel) reads it.
pub const LEARNED_COST: SignalKey = SignalKey("switchyard.learned.cost");

/// Probabilities are kept within `[P_MIN, 1 − P_MIN]` before taking logits.
const P_MIN: f64 = 1e-3;

/// What a model file says about how and on what it was trained.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// Model ids, in the order of [`LearnedModel::predict`]'s output.
    pub models: Vec<String>,
    /// Task labels of the task head (empty when the training rows had fewer than two).
    pub tasks: Vec<String>,
    /// The task head's rank: the length of each feature's task embedding (0 without a task head).
    pub task_rank: usize,
    /// How text becomes features.
    pub features: FeatureConfig,
    /// How the model was trained.
    pub training: TrainConfig,
    /// A free-form description of the training rows (`"routerbench, split_routerdc == train"`).
    pub trained_on: String,
    /// The number of training rows.
    pub rows: usize,
    /// The residual regressions' L2 strength (chosen on held-out rows when training offered several).
    pub l2: f64,
    /// The held-out log loss that chose `l2`, if it was chosen.
    pub validation_loss: Option<f64>,
    /// Whether the model has per-prompt residual regressions. Training leaves them out when, on
    /// the held-out rows that choose `l2`, the best of them does not beat the prior alone (no
    /// residuals is one more candidate): the task prior then carries all the signal there is, and
    /// predictions skip the residual weights and the character n-grams (which only they read).
    pub residual: bool,
}

/// A trained learned-router model: a task head and per-model residual regressions.
///
/// Cheap to share: wrap it in an [`Arc`] (as [`LearnedClassifier`] does).
#[derive(Clone, PartialEq)]
pub struct LearnedModel {
    info: ModelInfo,
    /// Per feature, one row of `stride` weights: the residual weights of the models in lanes
    /// `0..m`, the feature's task embedding in lanes `m4..m4 + r`; lanes are padded to multiples of
    /// four so that adding a row vectorises.
    table: Vec<f32>,
    m4: usize,
    stride: usize,
    bias: Vec<f32>,
    /// The task head's output weights, `[rank][task]`.
    task_u: Vec<f32>,
    task_bias: Vec<f32>,
    /// Smoothed success rates, `[task][model]` (one row when there is no task head).
    rates: Vec<f32>,
    /// Each model's overall success rate on the training rows.
    overall: Vec<f32>,
    /// Each model's mean cost per training row (zeros when the rows had no costs).
    costs: Vec<f32>,
    /// The same per task label, `[task][model]` (one row when there is no task head).
    task_costs: Vec<f32>,
    /// The rates an unfamiliar prompt falls back to ([`Fallback`]), from `overall` and `costs`.
    fallback: Vec<f32>,
    /// Percentiles 0 to [`FAMILIARITY_PERCENTILES`] of the familiarity of held-out training rows.
    familiarity: Vec<f32>,
    /// The word pairs of the training rows, as a `2^FAMILIARITY_BITS` bitset.
    seen: Vec<u64>,
    /// Percentiles 0 to [`FAMILIARITY_PERCENTILES`] of the opening familiarity of held-out
    /// training rows (all zeros for a version-2 file: no opening is unfamiliar).
    opening: Vec<f32>,
    /// The opening word pairs of the training rows ([`familiarity_key`]s), sorted, without repeats.
    openings: Vec<u32>,
}

/// The parts of a [`LearnedModel`], as training and the file format produce them.
pub struct Parts {
    /// Residual weights, `[feature][model]`.
    pub weights: Vec<f32>,
    /// Residual biases, one per model.
    pub bias: Vec<f32>,
    /// Task embeddings, `[feature][rank]`.
    pub task_weights: Vec<f32>,
    /// The task head's output weights, `[rank][task]`.
    pub task_u: Vec<f32>,
    /// The task head's biases, one per task.
    pub task_bias: Vec<f32>,
    /// Smoothed success rates, `[task][model]`.
    pub rates: Vec<f32>,
    /// Each model's overall success rate.
    pub overall: Vec<f32>,
    /// Each model's mean cost per training row.
    pub costs: Vec<f32>,
    /// Mean costs per task, `[task][model]`.
    pub task_costs: Vec<f32>,
    /// Familiarity percentiles of held-out training rows.
    pub familiarity: Vec<f32>,
    /// The training rows' word pairs, as a bitset.
    pub seen: Vec<u64>,
    /// Opening familiarity percentiles of held-out training rows.
    pub opening: Vec<f32>,
    /// The training rows' opening word pairs, sorted.
    pub openings: Vec<u32>,
}

/// Prompts at least as familiar as this percentile of held-out training prompts get the model's full
/// trust; less familiar ones less (see [`Prediction::trust`]).
pub const FAMILIARITY_PERCENTILES: usize = 5;

/// The success rates an unfamiliar prompt falls back to (see [`Fallback`]).
pub fn fallback_rates(overall: &[f32], costs: &[f32], kind: Fallback) -> Vec<f32> {
    let positive = costs.iter().copied().filter(|&c| c > 0.0);
    let (lo, hi) = positive.fold((f32::INFINITY, 0.0f32), |(lo, hi), c| (lo.min(c), hi.max(c)));
    if kind == Fallback::Overall || costs.len() != overall.len() || hi <= lo {
        return overall.to_vec();
    }
    let (r_lo, r_hi) = overall.iter().fold((1.0f32, 0.0f32), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    // A model that cost nothing sits with the cheapest that cost something.
    let span = (f64::from(hi) / f64::from(lo)).ln();
    costs
        .iter()
        .map(|&c| {
            let x = (f64::from(c.max(lo)) / f64::from(lo)).ln() / span;
            (f64::from(r_lo) + f64::from(r_hi - r_lo) * x) as f32
        })
        .collect()
}

/// How far an opening of familiarity `c` lets the model be trusted: fully at or above `typical` (the
/// 5th percentile of the held-out training rows' opening familiarity), in proportion below it (a
/// prompt that opens with three known pairs of four, where training rows open with four known ones,
/// keeps three quarters), and always fully when `typical` is 0 (training prompts without a shared
/// opening, such as MMLU's questions).
pub(crate) fn opening_trust(c: f64, typical: f64) -> f64 {
    if typical > 0.0 { (c / typical).clamp(0.0, 1.0) } else { 1.0 }
}

/// A prompt's trust: the lower of its word-pair `trust` against the percentiles `q` and its
/// `opening_trust` against `typical` (see [`Prediction::trust`]). Training and prediction both
/// read it from here.
pub fn prompt_trust(familiarity: f64, q: &[f64], opening: f64, typical: f64) -> f64 {
    trust(familiarity, q).min(opening_trust(opening, typical))
}

/// `part / whole`, or 1 when there is nothing to count.
pub(crate) fn share(part: u32, whole: u32) -> f64 {
    if whole == 0 { 1.0 } else { f64::from(part) / f64::from(whole) }
}

/// How far to trust the task head and the residuals for a prompt of familiarity `c`: the percentile
/// of `c` among held-out training prompts, over [`FAMILIARITY_PERCENTILES`], capped at 1.
pub(crate) fn trust(c: f64, q: &[f64]) -> f64 {
    let Some(&top) = q.last() else { return 1.0 };
    if c >= top {
        return 1.0;
    }
    if q.first().is_none_or(|&lo| c < lo) {
        return 0.0;
    }
    // `q[k] <= c < q[k + 1]`: interpolate the percentile.
    let k = q.windows(2).position(|w| c < w[1]).unwrap_or(q.len() - 1);
    let (lo, hi) = (q[k], q[k + 1]);
    let frac = if hi > lo { (c - lo) / (hi - lo) } else { 0.0 };
    ((k as f64 + frac) / FAMILIARITY_PERCENTILES as f64).clamp(0.0, 1.0)
}

impl fmt::Debug for LearnedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LearnedModel")
            .field("models", &self.info.models)
            .field("tasks", &self.info.tasks.len())
            .field("features", &self.info.features)
            .field("trained_on", &self.info.trained_on)
            .field("rows", &self.info.rows)
            .finish_non_exhaustive()
    }
}

/// One prompt's predictions.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// `logit p(m)` per model, in the order of [`ModelInfo::models`].
    pub logits: SmallVec<[f64; 12]>,
    /// The most likely task and its probability, when the model has a task head.
    pub task: Option<(usize, f64)>,
    /// The share of the prompt's word pairs that some training prompt contained (1 for a prompt
    /// without any).
    pub familiarity: f64,
    /// The share of the prompt's first four word pairs that also opened some training prompt (1 for
    /// a prompt without any, and for a model that has no record of openings). Benchmarks and
    /// applications open their prompts with templates of their own, so a new kind of prompt shows
    /// here even when its words are familiar English.
    pub opening_familiarity: f64,
    /// Each model's expected cost of the prompt, in the order of [`ModelInfo::models`]: the mean
    /// cost per training row of the likely tasks, `Σₜ P(t | x) · c(t, m)`, blended with the model's
    /// mean over every training row as [`trust`](Self::trust) says. Empty when the training rows
    /// had no costs.
    pub costs: SmallVec<[f64; 12]>,
    /// How far the prediction trusts the task head and the per-prompt regressions, in `[0, 1]`: 1
    /// for a prompt at least as familiar as 95% of held-out training prompts, falling to 0 for one
    /// less familiar than all of them, on [`familiarity`](Self::familiarity); and no more than
    /// [`opening_familiarity`](Self::opening_familiarity) over that of 95% of held-out training
    /// prompts (the lower of the two). The rest of the weight goes to the fallback rates
    /// ([`Fallback`]): a prompt unlike the training data is routed as the average prompt.
    pub trust: f64,
}

impl Prediction {
    /// `p(m)` for the model at `index` of [`ModelInfo::models`].
    pub fn probability(&self, index: usize) -> Option<f64> {
        self.logits.get(index).map(|&z| crate::classify::sigmoid(z))
    }
}

impl LearnedModel {
    /// Assembles a model from its parts, checking every length and value.
    #[doc(hidden)]
    pub fn from_parts(info: ModelInfo, parts: Parts) -> Result<Self> {
        let Parts {
            weights,
            bias,
            task_weights,
            task_u,
            task_bias,
            rates,
            overall,
            costs,
            task_costs,
            familiarity,
            seen,
            opening,
            openings,
        } = parts;
        info.features.validate()?;
        let (m, t, r, dim) = (info.models.len(), info.tasks.len(), info.task_rank, info.features.dim());
        if m == 0 {
            return Err(Error::config("a learned model needs at least one model"));
        }
        if t == 1 {
            return Err(Error::config("a learned model's task head needs at least two tasks (or none)"));
        }
        let check = |what: &str, v: &[f32], len: usize| -> Result<()> {
            if v.len() != len {
                return Err(Error::config(format!("learned model `{what}`: expected {len} values, found {}", v.len())));
            }
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::config(format!("learned model `{what}`: value {i} is not finite")));
            }
            Ok(())
        };
        let mw = if info.residual { m } else { 0 };
        check("weights", &weights, dim * mw)?;
        check("bias", &bias, m)?;
        if (t == 0) != (r == 0) || r > t || r > 64 {
            return Err(Error::config(format!(
                "a learned model's task rank must be within 1..=min(tasks, 64) with a task head, 0 without; got {r} for {t} tasks"
            )));
        }
        check("task_weights", &task_weights, dim * r)?;
        check("task_u", &task_u, r * t)?;
        check("task_bias", &task_bias, t)?;
        check("rates", &rates, t.max(1) * m)?;
        check("overall", &overall, m)?;
        check("costs", &costs, m)?;
        check("task_costs", &task_costs, t.max(1) * m)?;
        for (what, v) in [("costs", &costs), ("task_costs", &task_costs)] {
            if let Some(i) = v.iter().position(|&c| c < 0.0) {
                return Err(Error::config(format!("learned model `{what}`: value {i} is negative")));
            }
        }
        check("familiarity", &familiarity, FAMILIARITY_PERCENTILES + 1)?;
        check("opening", &opening, FAMILIARITY_PERCENTILES + 1)?;
        for (what, v) in
            [("rates", &rates), ("overall", &overall), ("familiarity", &familiarity), ("opening", &opening)]
        {
            if let Some(i) = v.iter().position(|r| !(0.0..=1.0).contains(r)) {
                return Err(Error::config(format!("learned model `{what}`: value {i} is outside [0, 1]")));
            }
        }
        for (what, v) in [("familiarity", &familiarity), ("opening", &opening)] {
            if v.windows(2).any(|w| w[0] > w[1]) {
                return Err(Error::config(format!("learned model `{what}`: percentiles must not decrease")));
            }
        }
        if openings.windows(2).any(|w| w[0] >= w[1]) || openings.last().is_some_and(|&k| k >> FAMILIARITY_BITS != 0) {
            return Err(Error::config(format!(
                "learned model `openings`: keys must increase and lie below 2^{FAMILIARITY_BITS}"
            )));
        }
        if seen.len() != 1 << (FAMILIARITY_BITS - 6) {
            return Err(Error::config(format!(
                "learned model `seen`: expected {} words, found {}",
                1 << (FAMILIARITY_BITS - 6),
                seen.len()
            )));
        }
        let (m4, r4) = (mw.next_multiple_of(4), r.next_multiple_of(4));
        let stride = m4 + r4;
        let mut table = vec![0.0f32; dim * stride];
        for f in 0..dim {
            let row = &mut table[f * stride..(f + 1) * stride];
            row[..mw].copy_from_slice(&weights[f * mw..(f + 1) * mw]);
            row[m4..m4 + r].copy_from_slice(&task_weights[f * r..(f + 1) * r]);
        }
        let fallback = fallback_rates(&overall, &costs, info.training.fallback);
        Ok(Self {
            info,
            table,
            m4,
            stride,
            bias,
            task_u,
            task_bias,
            rates,
            overall,
            costs,
            task_costs,
            fallback,
            familiarity,
            seen,
            opening,
            openings,
        })
    }

    /// The residual weights of feature `f`.
    pub(crate) fn residual_row(&self, f: usize) -> &[f32] {
        let m = if self.info.residual { self.info.models.len() } else { 0 };
        &self.table[f * self.stride..f * self.stride + m]
    }

    /// The task embedding of feature `f`.
    pub(crate) fn task_row(&self, f: usize) -> &[f32] {
        let start = f * self.stride + self.m4;
        &self.table[start..start + self.info.task_rank]
    }

    /// The task head's output weights and biases.
    pub(crate) fn task_output(&self) -> (&[f32], &[f32]) {
        (&self.task_u, &self.task_bias)
    }

    /// How the model was trained and what it predicts.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Each model's mean cost per training row, in the order of [`ModelInfo::models`] (zeros when
    /// the training rows had no costs).
    pub fn mean_costs(&self) -> &[f32] {
        &self.costs
    }

    /// The success rates an unfamiliar prompt falls back to ([`TrainConfig::fallback`]), in the
    /// order of [`ModelInfo::models`].
    pub fn fallback_rates(&self) -> &[f32] {
        &self.fallback
    }

    /// How far to trust a prompt with these familiarities ([`prompt_trust`] with this model's
    /// percentiles).
    pub(crate) fn trust(&self, familiarity: f64, opening: f64) -> f64 {
        let q: SmallVec<[f64; 8]> = self.familiarity.iter().map(|&x| f64::from(x)).collect();
        let typical = self.opening.last().map_or(0.0, |&x| f64::from(x));
        prompt_trust(familiarity, &q, opening, typical)
    }

    /// Predicts every model's `logit p(m)` for one prompt.
    pub fn predict(&self, prompt: &str) -> Prediction {
        self.predict_with(prompt, &TextStats::of_text(prompt))
    }

    /// Like [`predict`](Self::predict), with the prompt's statistics already computed.
    pub fn predict_with(&self, prompt: &str, stats: &TextStats) -> Prediction {
        let (m, t, m4, stride) = (self.info.models.len(), self.info.tasks.len(), self.m4, self.stride);
        // The sums live on the stack unless the task head is very wide.
        let mut stack = [0.0f32; 256];
        let mut heap = Vec::new();
        let len = (NAMESPACES + 1) * stride;
        let acc: &mut [f32] = if len <= stack.len() {
            &mut stack[..len]
        } else {
            heap.resize(len, 0.0);
            &mut heap
        };
        let mut dot = Dot {
            stride,
            m4,
            buckets: self.info.features.buckets(),
            table: &self.table,
            seen: &self.seen,
            openings: &self.openings,
            words: 0,
            known: 0,
            opening: 0,
            opening_known: 0,
            counts: [0; NAMESPACES],
            acc,
        };
        if self.info.residual {
            Extractor::new(&self.info.features).extract(prompt, stats, &mut dot);
        } else {
            // Character n-grams feed the residual regressions only.
            let features = FeatureConfig { char_ngram: 0, ..self.info.features.clone() };
            Extractor::new(&features).extract(prompt, stats, &mut dot);
        }
        let familiarity = share(dot.known, dot.words);
        // A model without a record of openings (a version-2 file) finds every opening familiar.
        let opening = if self.openings.is_empty() { 1.0 } else { share(dot.opening_known, dot.opening) };
        let a = self.trust(familiarity, opening);
        let scale = dot.counts.map(|c| if c > 0 { 1.0 / (c as f32).sqrt() } else { 0.0 });
        // Lane `k` of the combined row: each namespace's sum scaled to unit length, plus the dense part.
        let lane = |k: usize| -> f32 {
            let mut s = dot.acc[NAMESPACES * stride + k];
            for (ns, sc) in scale.iter().enumerate() {
                s += sc * dot.acc[ns * stride + k];
            }
            s
        };

        // The task prior, and the expected costs.
        let mut prior: SmallVec<[f64; 12]> = SmallVec::from_elem(0.0, m);
        let has_costs = self.costs.iter().any(|&c| c > 0.0);
        let mut costs: SmallVec<[f64; 12]> = SmallVec::new();
        if has_costs {
            costs.extend(self.costs.iter().map(|&c| (1.0 - a) * f64::from(c)));
        }
        let mut task = None;
        if t == 0 {
            for (p, &r) in prior.iter_mut().zip(&self.rates) {
                *p = f64::from(r);
            }
            for (c, &tc) in costs.iter_mut().zip(&self.task_costs) {
                *c += a * f64::from(tc);
            }
        } else {
            let r = self.info.task_rank;
            let h: SmallVec<[f64; 16]> = (0..r).map(|k| f64::from(lane(m4 + k))).collect();
            let mut z: SmallVec<[f64; 64]> = (0..t)
                .map(|j| {
                    let u = h.iter().enumerate().map(|(k, h)| h * f64::from(self.task_u[k * t + j])).sum::<f64>();
                    f64::from(self.task_bias[j]) + u
                })
                .collect();
            softmax(&mut z);
            let (best, p) = z.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or((0, 0.0));
            task = Some((best, p));
            for (k, &pk) in z.iter().enumerate() {
                let row = &self.rates[k * m..(k + 1) * m];
                for (p, &r) in prior.iter_mut().zip(row) {
                    *p += pk * f64::from(r);
                }
                for (c, &tc) in costs.iter_mut().zip(&self.task_costs[k * m..(k + 1) * m]) {
                    *c += a * pk * f64::from(tc);
                }
            }
        }

        let logits = (0..m)
            .map(|j| {
                let prior = a * prior[j] + (1.0 - a) * f64::from(self.fallback[j]);
                let residual = if self.info.residual { self.bias[j] + lane(j) } else { 0.0 };
                logit(prior) + a * f64::from(residual)
            })
            .collect();
        Prediction { logits, task, familiarity, opening_familiarity: opening, costs, trust: a }
    }

    /// Saves the model to `path` in the binary format [`load`](Self::load) reads.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) when the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes())
            .map_err(|e| Error::config(format!("cannot write learned model `{}`: {e}", path.display())).with_source(e))
    }

    /// Loads a model file.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the file and what is wrong: missing,
    /// not a model file, a version this build cannot read, truncated, corrupt (checksum), or
    /// inconsistent.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| {
            Error::config(format!("cannot read learned model `{}`: {e}", path.display())).with_source(e)
        })?;
        Self::from_bytes(&bytes).map_err(|e| Error::config(format!("learned model `{}`: {e}", path.display())))
    }

    /// The model in its file format.
    pub fn to_bytes(&self) -> Vec<u8> {
        file::encode(self)
    }

    /// Reads a model from its file format.
    ///
    /// # Errors
    /// As [`load`](Self::load), without the file name.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        file::decode(bytes)
    }
}

/// Accumulates dot products per namespace while features stream in.
struct Dot<'w> {
    stride: usize,
    m4: usize,
    buckets: usize,
    table: &'w [f32],
    seen: &'w [u64],
    openings: &'w [u32],
    /// Word pairs, and those the training rows contained.
    words: u32,
    known: u32,
    /// Opening word pairs, and those that opened some training row.
    opening: u32,
    opening_known: u32,
    counts: [u32; NAMESPACES],
    /// One row of sums per namespace, then one for the dense features.
    acc: &'w mut [f32],
}

/// `acc += row`, four lanes at a time (both lengths are multiples of four).
#[inline]
fn add_row(acc: &mut [f32], row: &[f32]) {
    for (a, r) in acc.chunks_exact_mut(4).zip(row.chunks_exact(4)) {
        let s = [a[0] + r[0], a[1] + r[1], a[2] + r[2], a[3] + r[3]];
        a.copy_from_slice(&s);
    }
}

impl Sink for Dot<'_> {
    #[inline]
    fn hashed(&mut self, ns: Namespace, index: u32, pair: Option<u64>) {
        let n = ns as usize;
        self.counts[n] += 1;
        if let Some(key) = pair {
            let k = familiarity_key(key);
            self.words += 1;
            self.known += self.seen.get((k >> 6) as usize).map_or(0, |w| (w >> (k & 63) & 1) as u32);
        }
        let stride = self.stride;
        // Character n-grams feed the residual regressions only.
        let lanes = if ns == Namespace::LastChars { self.m4 } else { stride };
        let start = index as usize * stride;
        if let (Some(row), Some(acc)) =
            (self.table.get(start..start + lanes), self.acc.get_mut(n * stride..n * stride + lanes))
        {
            add_row(acc, row);
        }
    }

    fn opening(&mut self, key: u64) {
        self.opening += 1;
        self.opening_known += u32::from(self.openings.binary_search(&familiarity_key(key)).is_ok());
    }

    fn dense(&mut self, i: usize, value: f32) {
        let stride = self.stride;
        let start = (self.buckets + i) * stride;
        if let Some(row) = self.table.get(start..start + stride) {
            for (a, w) in self.acc[NAMESPACES * stride..].iter_mut().zip(row) {
                *a += value * w;
            }
        }
    }
}

/// Turns scores into probabilities in place (the maximum is subtracted first).
pub fn softmax(z: &mut [f64]) {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in z.iter_mut() {
        *v /= sum;
    }
}

/// `ln(p / (1 − p))`, with `p` clamped away from 0 and 1.
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(P_MIN, 1.0 - P_MIN);
    (p / (1.0 - p)).ln()
}

/// A [`Classifier`] that contributes a [`LearnedModel`]'s `logit p(m)` to each model's decision.
///
/// It reads the text of the request's user messages (the last one's last block for the
/// last-block features), predicts once per request in [`classify`](Classifier::classify), and stores
/// the predictions under [`LEARNED`] in catalog order. Catalog models the learned model was not
/// trained on get no contribution.
#[derive(Clone)]
pub struct LearnedClassifier {
    model: Arc<LearnedModel>,
    index: HashMap<String, usize>,
}

impl fmt::Debug for LearnedClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LearnedClassifier").field("model", &self.model).finish()
    }
}

impl LearnedClassifier {
    /// A classifier over a trained model.
    pub fn new(model: impl Into<Arc<LearnedModel>>) -> Self {
        let model = model.into();
        let index = model.info.models.iter().enumerate().map(|(i, m)| (m.clone(), i)).collect();
        Self { model, index }
    }

    /// Loads a model file ([`LearnedModel::load`]).
    ///
    /// # Errors
    /// As [`LearnedModel::load`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        LearnedModel::load(path).map(Self::new)
    }

    /// The model.
    pub fn model(&self) -> &LearnedModel {
        &self.model
    }

    /// Checks that the learned model knows every model of `catalog`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the catalog models it was not trained on.
    pub fn check_catalog(&self, catalog: &Catalog) -> Result<()> {
        let unknown: Vec<&str> =
            catalog.models().iter().map(|m| m.id.as_str()).filter(|id| !self.index.contains_key(*id)).collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(Error::config(format!(
                "the learned model was not trained on {} of the catalog's models: {}",
                unknown.len(),
                unknown.join(", ")
            )))
        }
    }

    fn position(&self, catalog: &Catalog, i: usize, model: &ModelProfile) -> Option<usize> {
        let models = &self.model.info.models;
        if models.len() == catalog.len() && models[i] == model.id.as_str() {
            Some(i)
        } else {
            self.index.get(model.id.as_str()).copied()
        }
    }
}

impl Classifier for LearnedClassifier {
    fn classify(&self, input: &ClassifyInput<'_>, signals: &mut Signals) -> Result<()> {
        let request = input.request;
        let last_user = request.messages.iter().rev().find(|m| m.role == Role::User);
        let prediction = match last_user.map(|m| m.content.as_slice()) {
            Some([ContentPart::Text { text }]) if request.messages.len() == 1 => {
                self.model.predict_with(text, signals.text())
            }
            _ => {
                // Several messages or parts: the user text, in order, one part per paragraph.
                let mut text = String::new();
                for m in request.messages.iter().filter(|m| m.role == Role::User) {
                    for t in m.texts() {
                        if !text.is_empty() {
                            text.push_str("\n\n");
                        }
                        text.push_str(t);
                    }
                }
                self.model.predict_with(&text, signals.text())
            }
        };
        let catalog = input.catalog;
        signals.set_per_model(
            LEARNED,
            catalog
                .models()
                .iter()
                .enumerate()
                .map(|(i, m)| self.position(catalog, i, m).map_or(f64::NAN, |k| prediction.logits[k])),
        );
        if !prediction.costs.is_empty() {
            signals.set_per_model(
                LEARNED_COST,
                catalog
                    .models()
                    .iter()
                    .enumerate()
                    .map(|(i, m)| self.position(catalog, i, m).map_or(f64::NAN, |k| prediction.costs[k])),
            );
        }
        Ok(())
    }

    fn model_logit(&self, signals: &Signals, _: &ModelProfile, index: ModelIndex) -> f64 {
        // NaN (an unknown model) counts as no evidence.
        signals.per_model(LEARNED, index).unwrap_or(0.0)
    }

    fn name(&self) -> &str {
        "learned"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model trained on `planted` prompts ("sum" prompts only the large model answers, "greet"
    /// prompts both do; "carry" defeats the large model too) by switchyard-eval's trainer with its
    /// default configuration; `crates/eval/tests/core_fixtures.rs` checks that it still writes it.
    fn model() -> LearnedModel {
        LearnedModel::from_bytes(include_bytes!("testdata/planted.swlm")).unwrap()
    }

    #[test]
    fn recovers_a_planted_signal() {
        let m = model();
        assert_eq!(m.info().models, ["small", "large"]);
        assert_eq!(m.info().tasks.len(), 2);
        let p = |text: &str, j| m.predict(text).probability(j).unwrap();
        // The task prior: the small model answers greetings, not sums.
        assert!(p("greet the user number 3 warmly", 0) > 0.9, "{}", p("greet the user number 3 warmly", 0));
        assert!(p("add the numbers 4 and 17", 0) < 0.1);
        // The per-prompt signal inside the task: "carry" defeats the large model.
        assert!(p("add the numbers 4 and 17", 1) > 0.8, "{}", p("add the numbers 4 and 17", 1));
        assert!(p("add the numbers 4 and 17 with carry", 1) < 0.35, "{}", p("add the numbers 4 and 17 with carry", 1));
        let task = m.predict("add the numbers 1 and 2").task.unwrap();
        assert_eq!(m.info().tasks[task.0], "math");
    }

    #[test]
    fn saved_models_reload_to_identical_predictions() {
        let m = model();
        let bytes = m.to_bytes();
        let back = LearnedModel::from_bytes(&bytes).unwrap();
        assert!(back == m);
        for text in ["greet the user", "add 1 and 2 with carry", "", "ünïcödé ✓ 12"] {
            assert_eq!(back.predict(text), m.predict(text));
        }
        let dir = std::env::temp_dir().join(format!("switchyard-learned-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.swlm");
        m.save(&path).unwrap();
        assert!(LearnedModel::load(&path).unwrap() == m);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unfamiliar_opening_withdraws_trust() {
        let m = model();
        let p = m.predict("greet the user number 3 warmly");
        assert_eq!((p.opening_familiarity, p.trust), (1.0, 1.0));
        // The same words after an opening no training prompt had: routed on the fallback rates.
        let p = m.predict("translate this sentence please: greet the user number 3 warmly");
        assert_eq!(p.opening_familiarity, 0.0);
        assert!(p.familiarity > 0.5, "{}", p.familiarity);
        assert_eq!(p.trust, 0.0);
        for (j, &z) in p.logits.iter().enumerate() {
            assert!((z - logit(f64::from(m.fallback_rates()[j]))).abs() < 1e-9, "{z}");
        }
        // Three known pairs of four, where every training row opened with four: three quarters of
        // the trust at most.
        let p = m.predict("now greet the user number 3 warmly");
        assert_eq!(p.opening_familiarity, 0.75);
        assert!(p.trust <= 0.75, "{}", p.trust);
        assert_eq!(opening_trust(0.75, 1.0), 0.75);
        assert_eq!(opening_trust(0.0, 0.5), 0.0);
        assert_eq!(opening_trust(0.75, 0.5), 1.0);
        // Training prompts without a shared opening: the opening never lowers trust.
        assert_eq!(opening_trust(0.0, 0.0), 1.0);
    }

    fn err(bytes: &[u8]) -> String {
        LearnedModel::from_bytes(bytes).unwrap_err().to_string()
    }

    #[test]
    fn corrupt_and_truncated_files_are_clear_errors() {
        let bytes = model().to_bytes();
        assert!(err(b"").contains("bad magic"), "{}", err(b""));
        assert!(err(b"{\"json\": true}").contains("bad magic"));
        assert!(err(&bytes[..10]).contains("truncated"), "{}", err(&bytes[..10]));
        for cut in [20, bytes.len() / 2, bytes.len() - 1] {
            let e = err(&bytes[..cut]);
            assert!(e.contains("truncated") || e.contains("checksum"), "{cut}: {e}");
        }
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x40;
        assert!(err(&flipped).contains("checksum"), "{}", err(&flipped));
        let mut version = bytes.clone();
        version[8] = 9;
        assert!(err(&version).contains("version 9"), "{}", err(&version));
        // Every prefix fails cleanly, never panics.
        for cut in 0..bytes.len().min(400) {
            assert!(LearnedModel::from_bytes(&bytes[..cut]).is_err());
        }
        let missing = LearnedModel::load("/nonexistent/model.swlm").unwrap_err().to_string();
        assert!(missing.contains("/nonexistent/model.swlm"), "{missing}");
    }

    #[test]
    fn a_consistent_header_with_wrong_lengths_is_rejected() {
        let m = model();
        let info = m.info().clone();
        let parts = Parts {
            weights: vec![0.0; 3],
            bias: vec![0.0; 2],
            task_weights: vec![],
            task_u: vec![],
            task_bias: vec![],
            rates: vec![0.5; 2],
            overall: vec![0.5; 2],
            costs: vec![0.0; 2],
            task_costs: vec![0.0; 2],
            familiarity: vec![0.5; FAMILIARITY_PERCENTILES + 1],
            seen: vec![0; 1 << (FAMILIARITY_BITS - 6)],
            opening: vec![0.0; FAMILIARITY_PERCENTILES + 1],
            openings: vec![],
        };
        let e = LearnedModel::from_parts(info, parts).unwrap_err().to_string();
        assert!(e.contains("`weights`"), "{e}");
    }

    #[test]
    fn the_fallback_follows_price_between_the_worst_and_best_overall_rates() {
        let overall = [0.9, 0.5, 0.7];
        let costs = [10.0, 0.1, 1.0];
        let f = fallback_rates(&overall, &costs, Fallback::PriceOrder);
        assert!((f[0] - 0.9).abs() < 1e-6 && (f[1] - 0.5).abs() < 1e-6, "{f:?}");
        // Halfway in log cost, halfway between the worst and the best rate.
        assert!((f[2] - 0.7).abs() < 1e-6, "{f:?}");
        // The cheapest model is never ranked above a dearer one, whatever the rates say.
        let g = fallback_rates(&[0.2, 0.9, 0.5], &costs, Fallback::PriceOrder);
        assert!(g[1] < g[2] && g[2] < g[0], "{g:?}");
        assert_eq!(fallback_rates(&overall, &costs, Fallback::Overall), overall);
        assert_eq!(fallback_rates(&overall, &[0.0; 3], Fallback::PriceOrder), overall);
        assert_eq!(fallback_rates(&overall, &[2.0; 3], Fallback::PriceOrder), overall);
    }

    #[test]
    fn a_model_without_residuals_saves_and_predicts() {
        let m = model();
        let mut info = m.info().clone();
        info.residual = false;
        let (models, dim) = (info.models.len(), info.features.dim());
        let r = info.task_rank;
        let task_weights = (0..dim).flat_map(|f| m.task_row(f).to_vec()).collect();
        let (task_u, task_bias) = m.task_output();
        let parts = Parts {
            weights: vec![],
            bias: vec![0.0; models],
            task_weights,
            task_u: task_u.to_vec(),
            task_bias: task_bias.to_vec(),
            rates: m.rates.clone(),
            overall: m.overall.clone(),
            costs: m.costs.clone(),
            task_costs: m.task_costs.clone(),
            familiarity: m.familiarity.clone(),
            seen: m.seen.clone(),
            opening: m.opening.clone(),
            openings: m.openings.clone(),
        };
        let lean = LearnedModel::from_parts(info, parts).unwrap();
        assert_eq!(lean.stride, r.next_multiple_of(4));
        let back = LearnedModel::from_bytes(&lean.to_bytes()).unwrap();
        assert!(back == lean);
        assert!(lean.to_bytes().len() < m.to_bytes().len());
        // The task prior alone: greetings to the small model, sums to the large one.
        let p = lean.predict("greet the user number 3 warmly");
        assert!(p.probability(0).unwrap() > 0.9);
        assert_eq!(back.predict("add the numbers 4 and 17"), lean.predict("add the numbers 4 and 17"));
    }

    #[test]
    fn files_of_the_first_format_ask_to_be_retrained() {
        let mut bytes = model().to_bytes();
        bytes[8] = 1;
        let e = err(&bytes);
        assert!(e.contains("version 1 is not supported") && e.contains("retrain"), "{e}");
    }

    #[test]
    fn learned_costs_follow_the_likely_task() {
        use crate::catalog::ModelProfile;
        use crate::cost::LearnedCostModel;
        use crate::{Catalog, Pricing, Request, Router, Utility};
        // Trained on greetings that cost the large model little and sums that cost it a lot (long
        // answers); `crates/eval/tests/core_fixtures.rs` checks that the trainer still writes it.
        let model = LearnedModel::from_bytes(include_bytes!("testdata/costs.swlm")).unwrap();
        assert!((model.mean_costs()[1] - 0.255).abs() < 1e-4, "{:?}", model.mean_costs());
        let greet = model.predict("greet the user number 3 warmly");
        let sum = model.predict("add the numbers 4 and 2");
        assert!(greet.costs[1] < 0.1 && sum.costs[1] > 0.4, "{:?} {:?}", greet.costs, sum.costs);
        let catalog = Catalog::new([
            ModelProfile::new("large", "p").with_pricing(Pricing::per_mtok(10.0, 10.0)),
            ModelProfile::new("small", "p").with_pricing(Pricing::per_mtok(0.1, 0.1)),
        ])
        .unwrap();
        let router = Router::builder()
            .cost_model(LearnedCostModel::new(&catalog))
            .catalog(catalog)
            .classifier(LearnedClassifier::new(model), 1.0)
            .policy(Utility::new())
            .build()
            .unwrap();
        let d = router.route(&Request::new("add the numbers 4 and 2")).unwrap();
        let large = d.candidates().iter().find(|c| c.model == 0).unwrap();
        assert!((large.cost.usd - sum.costs[1]).abs() < 1e-9, "{} vs {}", large.cost.usd, sum.costs[1]);
    }

    #[test]
    fn the_classifier_maps_models_by_id_and_ignores_unknown_ones() {
        use crate::catalog::ModelProfile;
        use crate::{Catalog, Pricing, Request, Router, Utility};
        let learned = LearnedClassifier::new(model());
        // Catalog order differs from the model's, and one model is unknown to it.
        let catalog = Catalog::new([
            ModelProfile::new("large", "p").with_pricing(Pricing::per_mtok(10.0, 10.0)),
            ModelProfile::new("other", "p").with_pricing(Pricing::per_mtok(1.0, 1.0)),
            ModelProfile::new("small", "p").with_pricing(Pricing::per_mtok(0.1, 0.1)),
        ])
        .unwrap();
        assert!(learned.check_catalog(&catalog).unwrap_err().to_string().contains("other"));
        let router = Router::builder()
            .catalog(catalog)
            .classifier(learned.clone(), 1.0)
            .policy(Utility::new().cost_weight(0.2))
            .build()
            .unwrap();
        let greet = router.route(&Request::new("greet the user number 2 warmly")).unwrap();
        assert_eq!(greet.model().as_str(), "small");
        let sum = router.route(&Request::new("add the numbers 3 and 5")).unwrap();
        assert_eq!(sum.model().as_str(), "large");
        let p = |d: &crate::Decision, idx: usize| d.candidates().iter().find(|c| c.model == idx).unwrap().p;
        // No evidence for the unknown model (index 1): p = σ(0).
        assert!((p(&sum, 1) - 0.5).abs() < 1e-9);
        let direct = learned.model().predict("add the numbers 3 and 5");
        assert!((p(&sum, 0) - direct.probability(1).unwrap()).abs() < 1e-9);
    }
}
