//! How a [`LearnedModel`](super::LearnedModel) was trained: the configuration the trainer
//! (`switchyard-eval`) reads and every model file records in its [`ModelInfo`](super::ModelInfo).

use serde::{Deserialize, Serialize};

use super::features::FeatureConfig;
use crate::error::{Error, Result};

/// Which row label the task head learns.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskLabels {
    /// The subject where every row has one (MMLU's 57 subjects), the task otherwise.
    #[default]
    Auto,
    /// A training row's task: the benchmark.
    Task,
    /// A training row's subject, or the task for rows without one.
    Subject,
    /// No task head: the prior is each model's overall rate.
    Off,
}

/// What a prompt the model does not trust (an unfamiliar one, [`Prediction::trust`](super::Prediction::trust)
/// below 1) falls back to.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Quality follows price: each model's success rate is placed between the worst and the best
    /// overall rate by where its mean cost per training row sits between the cheapest and the
    /// dearest model's, on a log scale. A router that knows nothing about a prompt then ranks the
    /// models as the zero router does (its cost–quality knob picks one model for every such
    /// prompt), rather than by the trained tasks' ranking, which a new kind of task can reverse.
    /// Without costs in the training rows this is [`Overall`](Self::Overall). The default before
    /// [`Need`](Self::Need).
    PriceOrder,
    /// Each model's overall success rate on the training rows: unfamiliar prompts are routed as
    /// the average training prompt.
    Overall,
    /// [`PriceOrder`](Self::PriceOrder)'s rates moved per prompt by the built-in difficulty score
    /// `d` ([`DifficultyClassifier`](crate::classify::DifficultyClassifier), on the logit scale), as
    /// in a one-parameter item-response model: `logit f(m, x) = logit f(m) − (d(x) − d̄)`, with `d̄`
    /// the training rows' mean difficulty ([`ModelInfo::difficulty_mean`](super::ModelInfo::difficulty_mean)).
    /// A prompt harder than the training rows' average lowers every model's rate, the cheaper
    /// models' most where they are further from certain, so that a router unsure of the prompt
    /// still spends more on the harder ones.
    Difficulty,
    /// [`PriceOrder`](Self::PriceOrder)'s rates with the gaps to the dearest model stretched or
    /// shrunk per prompt by the model's own *need* for a dearer model: the slope, across the
    /// models, of the per-prompt term (`b_m + w_m · x`) against the log of each model's mean cost,
    /// standardised on the training rows. A prompt `z` standard deviations above the training
    /// rows' need is routed as if the answer value were `e^z` times larger. `z` is bounded so that
    /// every model of the price order is still chosen alone at some answer value (a quarter of the
    /// log of the narrowest ratio between successive thresholds; at most 4 between two models):
    /// the per-prompt term may decide between neighbours in price, never reorder the models.
    /// Without per-prompt regressions, costs, or the training rows' statistics of the need (files
    /// written before it), this is [`PriceOrder`](Self::PriceOrder).
    #[default]
    Need,
}

/// How the per-model residual regressions are fitted.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    /// Full-batch L-BFGS on the penalised log loss, run to convergence (the gradient's largest
    /// entry below `1e-4` per training row, or no further decrease; at most 500 iterations): the
    /// fitted weights are the minimum, whatever the step size or the order of the rows.
    #[default]
    Lbfgs,
    /// [`epochs`](TrainConfig::epochs) passes of AdaGrad over shuffled rows (the solver before
    /// L-BFGS): cheaper, and short of the minimum when the penalty is weak.
    AdaGrad,
}

/// The form of the per-prompt term `b_m + w_m · x` that the per-model regressions add to the prior.
/// Both forms are stored and predicted alike: this choice is the trainer's alone.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Residuals {
    /// One logistic regression per model, each with its own weights.
    #[default]
    PerModel,
    /// One difficulty shared by every model, as in an item-response model: a logistic regression
    /// `s(x) = c + v · x` predicts each row's mean correctness over the models (with the mean of
    /// the models' priors as offset), then each model gets an intercept and a slope on it,
    /// `b_m + β_m · s(x)`, fitted on cross-fitted scores `s` (each row's from a regression that did
    /// not see it). The stored weights are `w_m = β_m · v`. One weight vector instead of one per
    /// model: less variance, and a per-prompt signal (what makes a prompt hard) that is not
    /// specific to the training rows' ranking of the models.
    SharedDifficulty,
    /// [`SharedDifficulty`](Self::SharedDifficulty), then one regression per model on top of it:
    /// each model's regression learns, with the shared term (cross-fitted) added to its offset,
    /// what the shared difficulty does not say about that model, with its own `l2` chosen the same
    /// way and kept only if it beats the shared term alone. The stored weights are the sum.
    SharedDifficultyAndPerModel,
}

/// How the inner cross-validation ([`TrainConfig::l2_folds`]) scores each `l2` candidate, and the
/// prior alone, to choose the per-model regressions' strength and whether to keep them (with
/// [`Residuals::PerModel`], or on top of a shared difficulty; the shared term itself is always
/// chosen by log loss). Every
/// criterion is computed on held-out rows only; lower held-out log loss or higher ranking power
/// wins, and the regressions are kept only when the best candidate beats the prior alone. With a
/// single model, [`RoutingAuc`](Self::RoutingAuc) and [`PairLogLoss`](Self::PairLogLoss) have no
/// pair to score and choose by log loss; with a single `l2` candidate nothing is chosen.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// The log loss of every model's success, pooled over the models: each model's calibration.
    #[default]
    LogLoss,
    /// How well the held-out `p(s) − p(m)` ranks the rows where the strongest model `s` (the
    /// highest mean score on the training rows) succeeds and `m` fails: the ROC-AUC of that score
    /// against that label (a score in `[0, 1]` weighs a row by `max(0, y_s − y_m)` as a positive and
    /// the rest as a negative), averaged over the other models, weighed by their positives. Routing
    /// between a strong and a weaker model depends on the *difference* of their probabilities, which
    /// the pooled log loss does not look at.
    RoutingAuc,
    /// The log loss of the same label, `s` succeeds and `m` fails, predicted as
    /// `p(s) · (1 − p(m))`, averaged over the other models: calibrated like
    /// [`LogLoss`](Self::LogLoss), but of the pair a router decides between.
    PairLogLoss,
    /// Each model's own held-out log loss chooses that model's `l2`, and whether its regression
    /// is kept at all (a model whose regression does not beat its prior alone gets none). A model
    /// near its ceiling, whose few failures a regression can only fit as noise, then stops moving
    /// the difference a router decides by. The model file records the largest chosen `l2`.
    PerModelLogLoss,
}

/// How a [`LearnedModel`](super::LearnedModel) is trained. The defaults were chosen on the shared
/// routing data sets; four of them after seeing rows that are reported, as
/// `docs/learned-routing.md` ("What was tuned where") records: the lower end of the `l2` grid, the
/// rule that keeps residuals, the trust floor's return to 0 (gating) and the need's return to
/// reading the structural features ([`need_reads_structure`](Self::need_reads_structure)).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// How text becomes features.
    pub features: FeatureConfig,
    /// Which labels the task head learns.
    pub task_labels: TaskLabels,
    /// L2 strength of the residual regressions, as `1/C` in the usual `½‖w‖² + C·Σ loss` form:
    /// larger is stronger. With several values, the one with the lowest log loss (or another
    /// [`selection`](Self::selection) criterion) on a held-out
    /// [`validation`](Self::validation) share of the training rows is chosen, and the regressions
    /// are then retrained on every row with it. Per-prompt signal in routing data is often weak: a
    /// too-small value fits noise and routes worse than the task prior alone.
    pub l2: Vec<f64>,
    /// The share of training rows held out to choose `l2` (when it has several values and
    /// [`l2_folds`](Self::l2_folds) is 0).
    pub validation: f64,
    /// Folds of the inner cross-validation that chooses `l2` (when it has several values): each
    /// candidate is fitted on all folds but one and scored by log loss on that one, over every
    /// fold. 0 holds out one [`validation`](Self::validation) share instead.
    pub l2_folds: u32,
    /// How the residual regressions are fitted.
    pub solver: Solver,
    /// L2 strength of the task head, in the same units.
    pub task_l2: f64,
    /// Rank of the task head: each feature carries an embedding of this many numbers (fewer when
    /// there are fewer tasks), so that a prediction's cost does not grow with the number of tasks.
    pub task_rank: usize,
    /// Passes over the rows, for each regression.
    pub epochs: u32,
    /// AdaGrad's step size.
    pub learning_rate: f64,
    /// Folds of the task head's cross-fitting (2 to 10).
    pub folds: u32,
    /// Pseudo-rows at the model's overall rate added to every task's rate.
    pub prior_strength: f64,
    /// Seed of the row shuffles and fold assignment.
    pub seed: u64,
    /// The success rates an unfamiliar prompt falls back to.
    pub fallback: Fallback,
    /// The least trust any prompt gets, in `[0, 1]`: a prompt's trust
    /// ([`Prediction::trust`](super::Prediction::trust)) is the larger of this and what its
    /// familiarity allows. 0 (the default) gates by familiarity alone; 1 never gates, so that every
    /// prompt is routed on the task head and the per-model regressions, however unlike the training
    /// rows it is. Training computes the regressions' offsets with the same floor. A serialized
    /// configuration without the field (a model file written before it existed, or with a floor of
    /// 0) reads as 0, so such files predict as they did.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_trust: f64,
    /// The form of the per-prompt term. [`Residuals::PerModel`], the default, was kept after the
    /// shared forms lost on the development protocols (`docs/learned-routing.md`). A serialized
    /// configuration without the field (a model file written before it existed, or with the
    /// default) reads as [`Residuals::PerModel`].
    #[serde(default, skip_serializing_if = "is_per_model")]
    pub residuals: Residuals,
    /// How the inner cross-validation chooses `l2` and whether the residual regressions are kept.
    /// A serialized configuration without the field (a model file written before it existed, or
    /// with the default) reads as [`Selection::LogLoss`]; the choice is the trainer's alone, and
    /// files predict alike whichever was used.
    #[serde(default, skip_serializing_if = "is_log_loss")]
    pub selection: Selection,
    /// Whether the need for a dearer model ([`Prediction::need`](super::Prediction::need), which
    /// [`Fallback::Need`] reads) includes the part of the per-prompt terms that comes from the 16
    /// dense structural features (length, blocks, digits, cue counts). `true` by default. With
    /// `false` the need reads the n-grams' part only: the structural features describe a prompt's
    /// form, which differs from task to task, and their weights can place a mix of new tasks against
    /// each other as the training tasks were placed; on the development protocols that helped a
    /// mix of unseen tasks, while the reported GSM8K → MMLU protocol lost 6.6 points with it, which
    /// is why the default reads the structure: a choice made after seeing reported rows
    /// (`docs/learned-routing.md`, "A need without the structural features"). Training and the trusted part of a prediction read
    /// every feature either way. A serialized configuration without the field reads as `true`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub need_reads_structure: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            features: FeatureConfig::default(),
            task_labels: TaskLabels::Auto,
            l2: vec![0.3, 1.0, 3.0, 10.0, 30.0, 300.0, 3000.0, 30000.0],
            validation: 0.2,
            l2_folds: 3,
            solver: Solver::Lbfgs,
            task_l2: 0.1,
            task_rank: 8,
            epochs: 10,
            learning_rate: 0.2,
            folds: 3,
            prior_strength: 5.0,
            seed: 0x5eed,
            fallback: Fallback::Need,
            min_trust: 0.0,
            residuals: Residuals::PerModel,
            selection: Selection::LogLoss,
            need_reads_structure: true,
        }
    }
}

fn yes() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref, reason = "serde's `skip_serializing_if` passes a reference")]
fn is_true(v: &bool) -> bool {
    *v
}

#[allow(clippy::trivially_copy_pass_by_ref, reason = "serde's `skip_serializing_if` passes a reference")]
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

#[allow(clippy::trivially_copy_pass_by_ref, reason = "serde's `skip_serializing_if` passes a reference")]
fn is_per_model(r: &Residuals) -> bool {
    *r == Residuals::PerModel
}

#[allow(clippy::trivially_copy_pass_by_ref, reason = "serde's `skip_serializing_if` passes a reference")]
fn is_log_loss(s: &Selection) -> bool {
    *s == Selection::LogLoss
}

impl TrainConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the field.
    pub fn validate(&self) -> Result<()> {
        self.features.validate()?;
        if self.l2.is_empty() {
            return Err(Error::config("training `l2` needs at least one value"));
        }
        if !(self.validation > 0.0 && self.validation < 1.0) {
            return Err(Error::config(format!("training `validation` must be within (0, 1), got {}", self.validation)));
        }
        for (name, v) in self.l2.iter().map(|&v| ("l2", v)).chain([
            ("task_l2", self.task_l2),
            ("learning_rate", self.learning_rate),
            ("prior_strength", self.prior_strength),
        ]) {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::config(format!("training `{name}` must be finite and >= 0, got {v}")));
            }
        }
        if !(0.0..=1.0).contains(&self.min_trust) {
            return Err(Error::config(format!("training `min_trust` must be within [0, 1], got {}", self.min_trust)));
        }
        if !(1..=64).contains(&self.task_rank) {
            return Err(Error::config(format!("training `task_rank` must be within 1..=64, got {}", self.task_rank)));
        }
        if self.learning_rate == 0.0 {
            return Err(Error::config("training `learning_rate` must be > 0"));
        }
        if !(1..=1000).contains(&self.epochs) {
            return Err(Error::config(format!("training `epochs` must be within 1..=1000, got {}", self.epochs)));
        }
        if self.l2_folds == 1 || self.l2_folds > 10 {
            return Err(Error::config(format!(
                "training `l2_folds` must be 0 or within 2..=10, got {}",
                self.l2_folds
            )));
        }
        if !(2..=10).contains(&self.folds) {
            return Err(Error::config(format!("training `folds` must be within 2..=10, got {}", self.folds)));
        }
        Ok(())
    }
}
