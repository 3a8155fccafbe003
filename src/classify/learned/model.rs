//! [`LearnedModel`]: a trained model, what its file says about it ([`ModelInfo`]), the [`Parts`]
//! it is assembled from, and saving and loading it.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::features::{DENSE, FAMILIARITY_BITS, FeatureConfig, Standardize};
use super::file;
use super::training::TrainConfig;
use super::trust::{FAMILIARITY_PERCENTILES, fallback_rates};
use crate::error::{Error, Result};

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
    /// The training rows' mean difficulty score (the built-in
    /// [`DifficultyClassifier`](crate::classify::DifficultyClassifier)'s), which
    /// [`Fallback::Difficulty`](super::Fallback::Difficulty) measures prompts against (0 in files
    /// written before it).
    #[serde(default)]
    pub difficulty_mean: f64,
    /// The mean and standard deviation over the training rows of the need for a dearer model that
    /// [`Fallback::Need`](super::Fallback::Need) reads (0 in files written before it, and for
    /// models without per-prompt regressions or costs; set whatever the fallback).
    #[serde(default, skip_serializing_if = "is_zero_pair")]
    pub need: (f64, f64),
    /// Per dense structural feature, in the order of its name in the file, the shift and the scale
    /// with which the model reads it, `clamp((v − shift) · scale, ±5)`
    /// ([`Standardize::On`](super::Standardize::On): the training rows' mean and inverse standard
    /// deviation, 0 for a feature constant on them; or `(0, 1)` with no clip, for a feature that
    /// enters as computed). Empty when every one enters as computed (and in files written before
    /// it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dense_scale: Vec<(f32, f32)>,
}

fn is_zero_pair(v: &(f64, f64)) -> bool {
    *v == (0.0, 0.0)
}

/// Checks [`ModelInfo::need`]: a finite mean and a finite, non-negative deviation.
fn check_need((mean, sd): (f64, f64)) -> Result<()> {
    if mean.is_finite() && sd.is_finite() && sd >= 0.0 {
        Ok(())
    } else {
        Err(Error::config("learned model `need`: the mean and deviation must be finite, the deviation not negative"))
    }
}

/// Checks [`ModelInfo::dense_scale`]: none, or one finite pair per dense feature with a
/// non-negative scale.
fn check_dense_scale(scale: &[(f32, f32)]) -> Result<()> {
    if !scale.is_empty() && scale.len() != DENSE.len() {
        return Err(Error::config(format!(
            "learned model `dense_scale`: expected {} pairs (one per dense feature) or none, found {}",
            DENSE.len(),
            scale.len()
        )));
    }
    match scale.iter().position(|&(shift, scale)| !(shift.is_finite() && scale.is_finite() && scale >= 0.0)) {
        Some(i) => Err(Error::config(format!(
            "learned model `dense_scale`: pair {i} must be a finite shift and a finite, non-negative scale"
        ))),
        None => Ok(()),
    }
}

/// A trained learned-router model: a task head and per-model residual regressions.
///
/// Cheap to share: wrap it in an [`Arc`](std::sync::Arc) (as [`LearnedClassifier`](super::LearnedClassifier)
/// does).
#[derive(Clone, PartialEq)]
pub struct LearnedModel {
    pub(super) info: ModelInfo,
    /// Per feature, one row of `stride` weights: the residual weights of the models in lanes
    /// `0..m`, the feature's task embedding in lanes `m4..m4 + r`; lanes are padded to multiples of
    /// four so that adding a row vectorises.
    pub(super) table: Vec<f32>,
    pub(super) m4: usize,
    pub(super) stride: usize,
    pub(super) bias: Vec<f32>,
    /// The task head's output weights, `[rank][task]`.
    pub(super) task_u: Vec<f32>,
    pub(super) task_bias: Vec<f32>,
    /// Smoothed success rates, `[task][model]` (one row when there is no task head).
    pub(super) rates: Vec<f32>,
    /// Each model's overall success rate on the training rows.
    pub(super) overall: Vec<f32>,
    /// Each model's mean cost per training row (zeros when the rows had no costs).
    pub(super) costs: Vec<f32>,
    /// The same per task label, `[task][model]` (one row when there is no task head).
    pub(super) task_costs: Vec<f32>,
    /// The rates an unfamiliar prompt falls back to ([`Fallback`](super::Fallback)), from `overall` and
    /// `costs`.
    pub(super) fallback: Vec<f32>,
    /// Per model, its weight in the need for a dearer model (the slope of the per-prompt term on
    /// log cost), and the bound on the standardised need; from `costs` and `fallback`.
    pub(super) need_weights: Vec<f64>,
    pub(super) need_bound: f64,
    /// Percentiles 0 to [`FAMILIARITY_PERCENTILES`] of the familiarity of held-out training rows.
    pub(super) familiarity: Vec<f32>,
    /// The word pairs of the training rows, as a `2^FAMILIARITY_BITS` bitset.
    pub(super) seen: Vec<u64>,
    /// Percentiles 0 to [`FAMILIARITY_PERCENTILES`] of the opening familiarity of held-out
    /// training rows (all zeros for a version-2 file: no opening is unfamiliar).
    pub(super) opening: Vec<f32>,
    /// The opening word pairs of the training rows
    /// ([`familiarity_key`](super::features::familiarity_key)s), sorted, without repeats.
    pub(super) openings: Vec<u32>,
    /// The IDF of each hashed bucket with [`FeatureConfig::tf_idf`], empty without.
    pub(super) idf: Vec<f32>,
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
    /// The IDF of each hashed bucket, computed on the training rows (with
    /// [`FeatureConfig::tf_idf`]; empty without).
    pub idf: Vec<f32>,
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

impl LearnedModel {
    /// Assembles a model from its parts, checking every length and value.
    #[doc(hidden)]
    pub fn from_parts(mut info: ModelInfo, parts: Parts) -> Result<Self> {
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
            idf,
        } = parts;
        info.features.validate()?;
        // The training configuration is read back too (the trust floor, the fallback's form).
        info.training.validate()?;
        let (m, t, r, dim) = (info.models.len(), info.tasks.len(), info.task_rank, info.features.dim());
        if m == 0 {
            return Err(Error::config("a learned model needs at least one model"));
        }
        if t == 1 {
            return Err(Error::config("a learned model's task head needs at least two tasks (or none)"));
        }
        check_need(info.need)?;
        check_dense_scale(&info.dense_scale)?;
        // The form the model reads its dense features in is what its scales say: a header that
        // does not name it (a file written before the field) or names the choice reads as decided.
        info.features.standardize = match (info.features.standardize, info.dense_scale.is_empty()) {
            (Standardize::Off | Standardize::Auto, true) => Standardize::Off,
            (Standardize::On | Standardize::Auto, false) => Standardize::On,
            (form, _) => {
                return Err(Error::config(format!(
                    "learned model: features `standardize` is {form:?}, but the file has {} dense scales",
                    info.dense_scale.len()
                )));
            }
        };
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
        check("idf", &idf, if info.features.tf_idf { info.features.buckets() } else { 0 })?;
        if let Some(i) = idf.iter().position(|&x| x <= 0.0) {
            return Err(Error::config(format!("learned model `idf`: value {i} is not positive")));
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
        let cells = dense_cells(dim, stride, "the weight table")?;
        let mut table = vec![0.0f32; cells];
        for f in 0..dim {
            let row = &mut table[f * stride..(f + 1) * stride];
            row[..mw].copy_from_slice(&weights[f * mw..(f + 1) * mw]);
            row[m4..m4 + r].copy_from_slice(&task_weights[f * r..(f + 1) * r]);
        }
        let fallback = fallback_rates(&overall, &costs, info.training.fallback);
        let (need_weights, need_bound) = super::trust::need_parts(&costs, &fallback);
        Ok(Self {
            need_weights,
            need_bound,
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
            idf,
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

    /// The model with [`ModelInfo::need`] set (for the trainer, which measures it on the training
    /// rows once the model can predict).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) unless both are finite and the deviation is
    /// not negative.
    #[doc(hidden)]
    pub fn __with_need(mut self, need: (f64, f64)) -> Result<Self> {
        check_need(need)?;
        self.info.need = need;
        Ok(self)
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
        let bytes = crate::fs::read_regular_file(path, MAX_FILE_BYTES, "learned model")?;
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

/// The most `f32` cells a model's dense weight table may have: 2^28 (1 GiB), eight times a model of
/// 2^24 buckets and 16 models. A header that asks for more is refused before anything is allocated.
pub(crate) const MAX_TABLE_CELLS: usize = 1 << 28;

/// `rows × stride`, when it is at most [`MAX_TABLE_CELLS`].
///
/// # Errors
/// [`ErrorKind::Config`](crate::ErrorKind::Config) when it is more, or overflows.
pub(crate) fn dense_cells(rows: usize, stride: usize, what: &str) -> Result<usize> {
    rows.checked_mul(stride).filter(|&n| n <= MAX_TABLE_CELLS).ok_or_else(|| {
        Error::config(format!(
            "{what}: {rows} rows of {stride} values is more than the {MAX_TABLE_CELLS} a model may have"
        ))
    })
}

/// The largest learned model file [`LearnedModel::load`] reads: 2 GiB.
pub(crate) const MAX_FILE_BYTES: u64 = 2 << 30;

/// A model trained on `planted` prompts ("sum" prompts only the large model answers, "greet"
/// prompts both do; "carry" defeats the large model too) by switchyard-eval's trainer with its
/// default configuration; `crates/eval/tests/core_fixtures.rs` checks that it still writes it.
#[cfg(test)]
pub(super) fn planted() -> LearnedModel {
    LearnedModel::from_bytes(include_bytes!("testdata/planted.swlm")).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_models_reload_to_identical_predictions() {
        let m = planted();
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

    fn err(bytes: &[u8]) -> String {
        LearnedModel::from_bytes(bytes).unwrap_err().to_string()
    }

    #[test]
    fn a_dense_scale_is_read_as_the_features_standardised_and_clipped() {
        // The planted model, reading its dense features as computed.
        let mut m = planted();
        assert!(!m.info.dense_scale.is_empty(), "the planted file was trained with `Standardize::Auto` and kept `On`");
        m.info.dense_scale.clear();
        let (buckets, stride) = (m.info.features.buckets(), m.stride);
        let texts = ["greet the user", "add 1 and 2 with carry", "add the numbers 4 and 17"];
        let with = |pair: (f32, f32)| {
            let mut s = m.clone();
            s.info.dense_scale = vec![pair; DENSE.len()];
            s
        };
        // Every dense feature doubled through the scale predicts as the doubled weights do.
        let mut doubled = m.clone();
        doubled.table[buckets * stride..(buckets + DENSE.len()) * stride].iter_mut().for_each(|w| *w *= 2.0);
        let mut moved = 0;
        for text in texts {
            // `(0, 1)` reads a feature as computed.
            assert_eq!(with((0.0, 1.0)).predict(text), m.predict(text));
            let (a, b) = (with((0.0, 2.0)).predict(text), doubled.predict(text));
            assert!(a.logits.iter().zip(&b.logits).all(|(x, y)| (x - y).abs() < 1e-4), "{text}: {a:?} {b:?}");
            moved += usize::from(a.logits != m.predict(text).logits);
            // Far-out values stop at 5 deviations.
            assert_eq!(with((-1.0, 1e6)).predict(text), with((-1.0, 1e9)).predict(text));
        }
        assert!(moved > 0, "the dense features move some prediction");
        // The file keeps the scale; a wrong number of pairs or a negative scale is refused.
        let scaled = with((0.25, 2.0));
        assert!(LearnedModel::from_bytes(&scaled.to_bytes()).unwrap() == scaled);
        let mut short = m.clone();
        short.info.dense_scale = vec![(0.0, 1.0); 3];
        assert!(err(&short.to_bytes()).contains("`dense_scale`: expected 16 pairs"), "{}", err(&short.to_bytes()));
        assert!(err(&with((0.0, -1.0)).to_bytes()).contains("non-negative scale"));
        // The header's form follows the scales: a choice, or no field, reads as decided; a form
        // that contradicts them is refused.
        let mut auto = planted();
        auto.info.features.standardize = Standardize::Auto;
        assert_eq!(LearnedModel::from_bytes(&auto.to_bytes()).unwrap().info.features.standardize, Standardize::On);
        auto.info.dense_scale.clear();
        assert_eq!(LearnedModel::from_bytes(&auto.to_bytes()).unwrap().info.features.standardize, Standardize::Off);
        let mut off = planted();
        off.info.features.standardize = Standardize::Off;
        assert!(err(&off.to_bytes()).contains("`standardize` is Off, but the file has 16 dense scales"));
    }

    #[test]
    fn corrupt_and_truncated_files_are_clear_errors() {
        let bytes = planted().to_bytes();
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
        let m = planted();
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
            idf: vec![],
        };
        let e = LearnedModel::from_parts(info, parts).unwrap_err().to_string();
        assert!(e.contains("`weights`"), "{e}");
    }

    #[test]
    fn a_model_without_residuals_saves_and_predicts() {
        let m = planted();
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
            idf: m.idf.clone(),
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
        let mut bytes = planted().to_bytes();
        bytes[8] = 1;
        let e = err(&bytes);
        assert!(e.contains("version 1 is not supported") && e.contains("retrain"), "{e}");
    }
}
