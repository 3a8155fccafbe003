//! Training a [`LearnedModel`] from a labelled [`Dataset`].
//!
//! 1. Every prompt's features are extracted once into a sparse matrix (once per form of the dense
//!    features with `Standardize::Auto`, which trains both forms side by side on two threads).
//! 2. **Task head** (when the rows carry at least two task labels): multinomial logistic regression
//!    with L2, by AdaGrad over shuffled rows. Its predictions on the training rows, used as offsets in
//!    step 4, come from `folds`-fold cross-fitting: each row is predicted by a head that did not see
//!    it, so the residual regressions learn how far to trust the head on unseen prompts.
//! 3. **Rates**: each task's success rate per model, shrunk towards the model's overall rate by
//!    `prior_strength` pseudo-rows.
//! 4. **Residual regressions**: one logistic regression per model, all trained in one pass over the
//!    rows (the rows' features are shared), with `logit π(m)` as a fixed offset and L2.
//!
//! Training is deterministic: the same rows, configuration and seed give the same model, bit for bit.

use switchyard::Result;
use switchyard::classify::TextStats;
use switchyard::classify::learned::__training::{
    CHAR_FLAG, Collect, DENSE, Extractor, FAMILIARITY_BITS, FAMILIARITY_PERCENTILES, OPENING_FLAG, Parts, Rng,
    difficulty, fallback_rates, feature_dim, logit, model_info, prompt_trust, sigmoid, softmax,
};
use switchyard::classify::learned::{
    Fallback, LearnedModel, Residuals, Selection, Solver, Standardize, TaskLabels, TrainConfig,
};

use self::matrix::{Matrix, document_frequencies, standardize_dense};
use crate::data::Dataset;

mod lbfgs;
mod matrix;
mod patch;
mod select;
mod shared;

pub use patch::patched_config;

/// A training stage, for progress reports.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Extracting features.
    Features,
    /// Cross-fitting the task head: fold `0` to `folds − 1`.
    TaskFold(u32),
    /// Training the final task head.
    TaskHead,
    /// Choosing `l2`: training the residual regressions with candidate `k` on the rows not held out.
    Validation(u32),
    /// Training the residual regressions.
    Residual,
}

/// One progress report: a stage, how far it is, and the mean training loss of the last epoch.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// What is running.
    pub stage: Stage,
    /// Work done in this stage (rows for features, epochs for regressions).
    pub done: usize,
    /// Work in this stage.
    pub total: usize,
    /// The mean loss of the last epoch (`NaN` for feature extraction).
    pub loss: f64,
}

/// Trains [`LearnedModel`]s.
///
/// ```
/// use switchyard_eval::{TrainConfig, Trainer};
/// use switchyard_eval::data::{Dataset, Row};
/// # fn run() -> switchyard::Result<()> {
/// let mut b = Dataset::builder(["small", "large"]);
/// for i in 0..40 {
///     let (prompt, small) = if i % 2 == 0 { (format!("say hi {i}"), 1.0) } else { (format!("prove theorem {i}"), 0.0) };
///     b.push(Row::new(prompt), &[small, 1.0], None)?;
/// }
/// let model = Trainer::new(TrainConfig::default()).fit(&b.build()?, "toy")?;
/// let p = model.predict("prove theorem 99");
/// assert!(p.probability(0).unwrap() < p.probability(1).unwrap());
/// # Ok(()) }
/// # run().unwrap();
/// ```
pub struct Trainer<'p> {
    config: TrainConfig,
    progress: Option<ProgressFn<'p>>,
}

type ProgressFn<'p> = Box<dyn FnMut(&Progress) + 'p>;

impl std::fmt::Debug for Trainer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Shuffles `v` (Fisher–Yates) with the crate's fixed SplitMix64 generator: training must not depend
/// on the standard library's hashing or on a crate's choice of generator.
fn shuffle(rng: &mut Rng, v: &mut [usize]) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// AdaGrad state of one dense `[feature][output]` block plus biases.
struct Head {
    outputs: usize,
    w: Vec<f32>,
    g: Vec<f32>,
    b: Vec<f32>,
    gb: Vec<f32>,
}

impl Head {
    fn new(dim: usize, outputs: usize) -> Self {
        Self {
            outputs,
            w: vec![0.0; dim * outputs],
            g: vec![0.0; dim * outputs],
            b: vec![0.0; outputs],
            gb: vec![0.0; outputs],
        }
    }

    /// `z[k] = b[k] + Σ x·w[k]` over the features `keep` admits.
    fn scores(&self, row: &[(u32, f32)], keep: impl Fn(u32) -> bool, z: &mut [f64]) {
        let o = self.outputs;
        for (z, b) in z.iter_mut().zip(&self.b) {
            *z = f64::from(*b);
        }
        for &(idx, v) in row {
            if !keep(idx) {
                continue;
            }
            let f = (idx & !CHAR_FLAG) as usize;
            for (z, w) in z.iter_mut().zip(&self.w[f * o..(f + 1) * o]) {
                *z += f64::from(v * w);
            }
        }
    }

    /// One AdaGrad step with output gradients `grad` (loss derivative per output); `decay[f]` is
    /// feature `f`'s share of the L2 penalty per row that has it. A feature absent from the rows so far
    /// has no AdaGrad history: its first step is a full `lr`.
    fn step(&mut self, row: &[(u32, f32)], keep: impl Fn(u32) -> bool, grad: &[f32], lr: f32, decay: &[f32]) {
        let o = self.outputs;
        for &(idx, v) in row {
            if !keep(idx) {
                continue;
            }
            let f = (idx & !CHAR_FLAG) as usize;
            let decay = decay[f];
            let w = &mut self.w[f * o..(f + 1) * o];
            let g = &mut self.g[f * o..(f + 1) * o];
            for k in 0..o {
                // The loss's gradient by AdaGrad, then the penalty as a proximal (implicit) step,
                // which stays stable however strong the penalty is.
                let d = grad[k] * v;
                g[k] += d * d;
                let eta = lr / (g[k].sqrt() + 1e-6);
                w[k] = (w[k] - eta * d) / (1.0 + eta * decay);
            }
        }
        for ((b, gb), &d) in self.b.iter_mut().zip(&mut self.gb).zip(grad) {
            *gb += d * d;
            *b -= lr * d / (gb.sqrt() + 1e-6);
        }
    }
}

/// The task head: a rank-`r` factorisation of the `[feature][task]` weights. Each feature has an
/// `r`-number embedding `V[f]`; a prompt's embedding is `h = Σ x_f · V[f]` over its word n-grams and
/// dense features, and its task scores are `z = b + Uᵀ h`. Trained by AdaGrad on both factors, with
/// the L2 penalty on `V` as a proximal step; `U` starts small and random (seeded) so that both
/// factors move.
struct LowRank {
    r: usize,
    t: usize,
    v: Vec<f32>,
    gv: Vec<f32>,
    u: Vec<f32>,
    gu: Vec<f32>,
    b: Vec<f32>,
    gb: Vec<f32>,
}

impl LowRank {
    fn new(dim: usize, r: usize, t: usize, rng: &mut Rng) -> Self {
        let u = (0..r * t).map(|_| (rng.unit() - 0.5) as f32).collect();
        Self {
            r,
            t,
            v: vec![0.0; dim * r],
            gv: vec![0.0; dim * r],
            u,
            gu: vec![0.0; r * t],
            b: vec![0.0; t],
            gb: vec![0.0; t],
        }
    }

    /// The prompt's embedding into `h` and its task scores into `z`.
    fn scores(&self, row: &[(u32, f32)], h: &mut [f64], z: &mut [f64]) {
        let (r, t) = (self.r, self.t);
        h.iter_mut().for_each(|x| *x = 0.0);
        for &(idx, x) in row {
            if !words_only(idx) {
                continue;
            }
            let f = idx as usize;
            for (h, v) in h.iter_mut().zip(&self.v[f * r..(f + 1) * r]) {
                *h += f64::from(x * v);
            }
        }
        for (j, z) in z.iter_mut().enumerate() {
            *z = f64::from(self.b[j]) + (0..r).map(|k| h[k] * f64::from(self.u[k * t + j])).sum::<f64>();
        }
    }

    fn step(&mut self, row: &[(u32, f32)], h: &[f64], dz: &[f32], lr: f32, decay: &[f32]) {
        let (r, t) = (self.r, self.t);
        // The gradient reaching the embedding, before `U` moves.
        let dh: Vec<f32> = (0..r).map(|k| (0..t).map(|j| self.u[k * t + j] * dz[j]).sum()).collect();
        for (k, &hk) in h.iter().enumerate().take(r) {
            let (u, gu) = (&mut self.u[k * t..(k + 1) * t], &mut self.gu[k * t..(k + 1) * t]);
            for ((u, g), &dzj) in u.iter_mut().zip(gu).zip(dz) {
                let d = hk as f32 * dzj;
                *g += d * d;
                *u -= lr * d / (g.sqrt() + 1e-6);
            }
        }
        for &(idx, x) in row {
            if !words_only(idx) {
                continue;
            }
            let f = idx as usize;
            let decay = decay[f];
            let v = &mut self.v[f * r..(f + 1) * r];
            let g = &mut self.gv[f * r..(f + 1) * r];
            for k in 0..r {
                let d = dh[k] * x;
                g[k] += d * d;
                let eta = lr / (g[k].sqrt() + 1e-6);
                v[k] = (v[k] - eta * d) / (1.0 + eta * decay);
            }
        }
        for ((b, gb), &d) in self.b.iter_mut().zip(&mut self.gb).zip(dz) {
            *gb += d * d;
            *b -= lr * d / (gb.sqrt() + 1e-6);
        }
    }
}

/// Spreads the penalty `½·l2·‖w‖²` over the rows: a feature present in `c` of the rows is decayed
/// by `l2 / c` at each of them, so that every weight gets its whole penalty once per epoch however
/// rare its feature is.
fn penalty_shares(matrix: &Matrix, rows: &[usize], dim: usize, l2: f64, keep: impl Fn(u32) -> bool) -> Vec<f32> {
    let mut count = vec![0u32; dim];
    for &i in rows {
        for &(idx, _) in matrix.row(i) {
            if keep(idx) {
                count[(idx & !CHAR_FLAG) as usize] += 1;
            }
        }
    }
    count.into_iter().map(|c| if c == 0 { 0.0 } else { (l2 / f64::from(c)) as f32 }).collect()
}

/// Each row's share of keys that rows of other folds contain (1 for a row without keys), and
/// percentiles 0 to [`FAMILIARITY_PERCENTILES`] of that share.
fn cross_fitted_coverage<'k>(
    row_keys: impl Fn(usize) -> &'k [u32],
    fold_of: &[usize],
    folds: usize,
) -> (Vec<f64>, Vec<f32>) {
    let n = fold_of.len();
    let mut coverage = vec![1.0f64; n];
    for f in 0..folds {
        let mut seen = Familiar::new();
        (0..n).filter(|&i| fold_of[i] != f).for_each(|i| seen.insert(row_keys(i)));
        for i in (0..n).filter(|&i| fold_of[i] == f) {
            coverage[i] = seen.coverage(row_keys(i)).unwrap_or(1.0);
        }
    }
    let mut sorted = coverage.clone();
    sorted.sort_by(f64::total_cmp);
    let percentiles = (0..=FAMILIARITY_PERCENTILES)
        .map(|q| sorted[((q as f64 / 100.0) * (n - 1) as f64).round() as usize] as f32)
        .collect();
    (coverage, percentiles)
}

/// A set of word pairs (their familiarity keys), as a bitset.
struct Familiar(Vec<u64>);

impl Familiar {
    fn new() -> Self {
        Self(vec![0; 1 << (FAMILIARITY_BITS - 6)])
    }

    fn insert(&mut self, keys: &[u32]) {
        for &k in keys {
            self.0[(k >> 6) as usize] |= 1 << (k & 63);
        }
    }

    fn coverage(&self, keys: &[u32]) -> Option<f64> {
        if keys.is_empty() {
            return None;
        }
        let hits = keys.iter().filter(|&&k| self.0[(k >> 6) as usize] >> (k & 63) & 1 == 1).count();
        Some(hits as f64 / keys.len() as f64)
    }
}

/// What the residual regressions learn from.
struct Residual<'a> {
    matrix: &'a Matrix,
    offsets: &'a [f64],
    scores: &'a [f64],
    m: usize,
    dim: usize,
}

impl Residual<'_> {
    /// Each row's mean log loss over the models, with `head` (or the offsets alone).
    fn losses(&self, head: Option<&Head>, rows: &[usize]) -> Vec<f64> {
        let m = self.m;
        let mut z = vec![0.0f64; m];
        rows.iter()
            .map(|&i| {
                match head {
                    Some(head) => head.scores(self.matrix.row(i), every, &mut z),
                    None => z.iter_mut().for_each(|z| *z = 0.0),
                }
                let (offsets, scores) = (&self.offsets[i * m..(i + 1) * m], &self.scores[i * m..(i + 1) * m]);
                let loss: f64 = z.iter().zip(offsets).zip(scores).map(|((z, o), y)| log_loss(sigmoid(z + o), *y)).sum();
                loss / m.max(1) as f64
            })
            .collect()
    }

    /// Each of `rows`' success probabilities per model with `head` (or the offsets alone), into
    /// `out` (`[row][model]` over every row).
    fn probabilities(&self, head: Option<&Head>, rows: &[usize], out: &mut [f64]) {
        let m = self.m;
        let mut z = vec![0.0f64; m];
        for &i in rows {
            match head {
                Some(head) => head.scores(self.matrix.row(i), every, &mut z),
                None => z.iter_mut().for_each(|z| *z = 0.0),
            }
            for (j, z) in z.iter().enumerate() {
                out[i * m + j] = sigmoid(z + self.offsets[i * m + j]);
            }
        }
    }
}

/// The inner cross-validation's splits of `n` rows, as `(held out, fitted)` pairs: `l2_folds`
/// folds of shuffled rows, or one held-out `validation` share when `l2_folds` is 0.
fn inner_splits(cfg: &TrainConfig, n: usize, rng: &mut Rng) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(rng, &mut order);
    if cfg.l2_folds >= 2 {
        let k = cfg.l2_folds as usize;
        (0..k)
            .map(|f| {
                let pick = |held: bool| -> Vec<usize> {
                    order.iter().enumerate().filter(|(pos, _)| (pos % k == f) == held).map(|x| *x.1).collect()
                };
                (pick(true), pick(false))
            })
            .collect()
    } else {
        let held = ((n as f64 * cfg.validation).round() as usize).clamp(1, n.saturating_sub(1).max(1));
        let (valid, fit) = order.split_at(held);
        vec![(valid.to_vec(), fit.to_vec())]
    }
}

/// The `l2` candidates with their indices, in the order they are fitted: L-BFGS walks them from the
/// strongest penalty down, each starting from the last one's weights; AdaGrad fits each from zero,
/// in the configured order.
fn candidates(cfg: &TrainConfig) -> Vec<(usize, f64)> {
    let mut c: Vec<(usize, f64)> = cfg.l2.iter().copied().enumerate().collect();
    if cfg.solver != Solver::AdaGrad {
        c.sort_by(|a, b| b.1.total_cmp(&a.1));
    }
    c
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn log_loss(p: f64, y: f64) -> f64 {
    -(y * p.max(1e-12).ln() + (1.0 - y) * (1.0 - p).max(1e-12).ln())
}

fn words_only(idx: u32) -> bool {
    idx & CHAR_FLAG == 0
}

fn every(_: u32) -> bool {
    true
}

impl<'p> Trainer<'p> {
    /// A trainer with `config`.
    pub fn new(config: TrainConfig) -> Self {
        Self { config, progress: None }
    }

    /// Calls `f` as training progresses (for a progress bar).
    pub fn on_progress(mut self, f: impl FnMut(&Progress) + 'p) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    fn report(&mut self, stage: Stage, done: usize, total: usize, loss: f64) {
        if let Some(f) = &mut self.progress {
            f(&Progress { stage, done, total, loss });
        }
    }

    /// Trains on every row of `data`; `trained_on` describes the rows for the model file. With
    /// [`Standardize::Auto`] (the default) it trains once per form of the dense features, the two
    /// side by side on two threads, and keeps the one with the lower held-out log loss;
    /// [`on_progress`](Self::on_progress) then sees the computed form's stages (this thread's). A
    /// configuration that holds nothing out to choose by (a single `l2`) trains the computed form
    /// alone.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](switchyard::ErrorKind::Config) for an invalid configuration, an empty data
    /// set or scores outside `[0, 1]`.
    pub fn fit(mut self, data: &Dataset, trained_on: &str) -> Result<LearnedModel> {
        self.config.validate()?;
        let given = self.config.clone();
        if given.features.standardize != Standardize::Auto {
            return self.fit_resolved(data, trained_on, &given);
        }
        self.config.features.standardize = Standardize::Off;
        if given.l2.len() == 1 {
            // Nothing held out: nothing to choose by.
            return self.fit_resolved(data, trained_on, &given);
        }
        // Both forms of the dense features, each deterministic on its own; the lower held-out log
        // loss wins, the computed form on a tie.
        let mut on_config = given.clone();
        on_config.features.standardize = Standardize::On;
        let (off, on) = std::thread::scope(|scope| {
            let given = &given;
            let on = scope.spawn(move || Trainer::new(on_config).fit_resolved(data, trained_on, given));
            let off = self.fit_resolved(data, trained_on, given);
            (off, on.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        });
        let (off, on) = (off?, on?);
        Ok(match (off.info().validation_loss, on.info().validation_loss) {
            (Some(b), Some(a)) if a < b => on,
            _ => off,
        })
    }

    /// Trains with `self.config`, whose dense features' form is decided; the model file records
    /// `recorded` as its training configuration.
    fn fit_resolved(&mut self, data: &Dataset, trained_on: &str, recorded: &TrainConfig) -> Result<LearnedModel> {
        let n = data.len();
        if n == 0 {
            return Err(crate::config_error("cannot train a learned model on an empty data set"));
        }
        let models: Vec<String> = data.models().iter().map(|m| m.as_str().to_owned()).collect();
        let m = models.len();
        let scores = data.scores();
        if let Some(i) = scores.iter().position(|s| !(0.0..=1.0).contains(s)) {
            return Err(crate::config_error(format!(
                "training scores must be within [0, 1]: row {}, model `{}` has {}",
                i / m,
                models[i % m],
                scores[i]
            )));
        }
        let cfg = self.config.clone();

        // 1. Features, with the IDF of each bucket over the rows first when weighting by TF-IDF.
        let extractor = Extractor::new(&cfg.features);
        let idf = if cfg.features.tf_idf { document_frequencies(&extractor, data, &cfg) } else { Vec::new() };
        let mut matrix = Matrix { entries: Vec::new(), offsets: vec![0] };
        let (mut keys, mut key_offsets) = (Vec::new(), vec![0usize]);
        let (mut opening_keys, mut opening_offsets) = (Vec::new(), vec![0usize]);
        for (i, row) in data.rows().iter().enumerate() {
            let text = row.prompt();
            let start = keys.len();
            let mut sink = Collect::new(&mut matrix.entries, &mut keys, &cfg.features, &idf, extractor.max_terms(text));
            extractor.extract(text, &TextStats::of_text(text), &mut sink);
            sink.finish();
            matrix.offsets.push(matrix.entries.len());
            // The opening pairs, apart from the others.
            let mut kept = start;
            for k in start..keys.len() {
                if keys[k] & OPENING_FLAG != 0 {
                    opening_keys.push(keys[k] & !OPENING_FLAG);
                } else {
                    keys[kept] = keys[k];
                    kept += 1;
                }
            }
            keys.truncate(kept);
            key_offsets.push(keys.len());
            opening_offsets.push(opening_keys.len());
            if i % 512 == 511 || i + 1 == n {
                self.report(Stage::Features, i + 1, n, f64::NAN);
            }
        }
        let dim = feature_dim(&cfg.features);
        let dense_scale = if cfg.features.standardize == Standardize::On {
            standardize_dense(&mut matrix, dim - DENSE.len())
        } else {
            Vec::new()
        };

        // 2. Task labels and the task head.
        let labels: Vec<&str> = data
            .rows()
            .iter()
            .map(|r| match cfg.task_labels {
                TaskLabels::Task | TaskLabels::Off => r.task(),
                TaskLabels::Subject => r.subject().unwrap_or(r.task()),
                TaskLabels::Auto => {
                    if data.rows().iter().all(|r| r.subject().is_some()) {
                        r.subject().unwrap_or(r.task())
                    } else {
                        r.task()
                    }
                }
                // A label kind newer than this trainer: the task, as `Task` does.
                _ => r.task(),
            })
            .collect();
        let mut tasks: Vec<String> = Vec::new();
        let mut label = Vec::with_capacity(n);
        for l in &labels {
            let k = match tasks.iter().position(|t| t == l) {
                Some(k) => k,
                None => {
                    tasks.push((*l).to_owned());
                    tasks.len() - 1
                }
            };
            label.push(k);
        }
        if cfg.task_labels == TaskLabels::Off || tasks.len() < 2 {
            tasks.clear();
            label.iter_mut().for_each(|k| *k = 0);
        }
        let t = tasks.len();

        // Cross-fitted task probabilities of every training row, and the final head.
        let mut task_probs = vec![0.0f64; n * t.max(1)];
        let mut rng = Rng::new(cfg.seed);
        let rank = t.min(cfg.task_rank);
        let mut task_head = LowRank::new(dim, rank, t, &mut rng);
        let folds = cfg.folds as usize;
        let mut order: Vec<usize> = (0..n).collect();
        shuffle(&mut rng, &mut order);
        let mut fold_of = vec![0usize; n];
        for (pos, &i) in order.iter().enumerate() {
            fold_of[i] = pos % folds;
        }

        // Familiarity: the share of a row's word pairs (and of its opening pairs) that rows of
        // other folds contain, the distribution of that share over held-out rows, and the set of
        // every row's pairs.
        let row_keys = |i: usize| &keys[key_offsets[i]..key_offsets[i + 1]];
        let row_openings = |i: usize| &opening_keys[opening_offsets[i]..opening_offsets[i + 1]];
        let (coverage, familiarity) = cross_fitted_coverage(row_keys, &fold_of, folds);
        let (opening_coverage, opening) = cross_fitted_coverage(row_openings, &fold_of, folds);
        let mut seen = Familiar::new();
        (0..n).for_each(|i| seen.insert(row_keys(i)));
        let mut openings = opening_keys;
        openings.sort_unstable();
        openings.dedup();

        if t > 0 {
            for f in 0..folds {
                let rows: Vec<usize> = (0..n).filter(|&i| fold_of[i] != f).collect();
                let head = self.train_task_head(&matrix, &label, &rows, rank, t, &mut rng, Stage::TaskFold(f as u32));
                let (mut z, mut h) = (vec![0.0; t], vec![0.0; rank]);
                for i in (0..n).filter(|&i| fold_of[i] == f) {
                    head.scores(matrix.row(i), &mut h, &mut z);
                    softmax(&mut z);
                    task_probs[i * t..(i + 1) * t].copy_from_slice(&z);
                }
            }
            let all: Vec<usize> = (0..n).collect();
            task_head = self.train_task_head(&matrix, &label, &all, rank, t, &mut rng, Stage::TaskHead);
        } else {
            task_probs.iter_mut().for_each(|p| *p = 1.0);
        }
        let familiarity_f64: Vec<f64> = familiarity.iter().map(|&q| f64::from(q)).collect();
        let typical_opening = opening.last().map_or(0.0, |&q| f64::from(q));

        // 3. Rates, shrunk towards each model's overall rate.
        let mut overall = vec![0.0f64; m];
        for i in 0..n {
            for j in 0..m {
                overall[j] += scores[i * m + j];
            }
        }
        overall.iter_mut().for_each(|s| *s /= n as f64);
        let rows_t = t.max(1);
        let mut sums = vec![0.0f64; rows_t * m];
        let mut counts = vec![0.0f64; rows_t];
        for i in 0..n {
            counts[label[i]] += 1.0;
            for j in 0..m {
                sums[label[i] * m + j] += scores[i * m + j];
            }
        }
        // Each model's mean cost per training row, overall and per task (zeros without costs).
        let mut costs = vec![0.0f64; m];
        let mut task_costs = vec![0.0f64; rows_t * m];
        if let Some(c) = data.costs() {
            for (i, row) in c.chunks_exact(m).enumerate() {
                for (j, c) in row.iter().enumerate() {
                    costs[j] += c / n as f64;
                    task_costs[label[i] * m + j] += c / counts[label[i]];
                }
            }
        }
        if costs.iter().chain(&task_costs).any(|c| !(c.is_finite() && *c >= 0.0)) {
            costs = vec![0.0; m];
            task_costs = vec![0.0; rows_t * m];
        }
        let overall_f32: Vec<f32> = overall.iter().map(|&r| r as f32).collect();
        let costs_f32: Vec<f32> = costs.iter().map(|&c| c as f32).collect();
        let fallback: Vec<f64> =
            fallback_rates(&overall_f32, &costs_f32, cfg.fallback).into_iter().map(f64::from).collect();
        let a = cfg.prior_strength;
        let rates: Vec<f64> = (0..rows_t * m)
            .map(|k| {
                let (task, j) = (k / m, k % m);
                if counts[task] + a > 0.0 { (sums[k] + a * overall[j]) / (counts[task] + a) } else { overall[j] }
            })
            .collect();

        // Each row's difficulty, for the difficulty fallback, and their mean.
        let difficulties: Vec<f64> = data.rows().iter().map(|r| difficulty(&TextStats::of_text(r.prompt()))).collect();
        let difficulty_mean = mean(&difficulties);

        // 4. Residual regressions with the prior as offset (the fallback, as prediction blends it).
        let mut offsets = vec![0.0f64; n * m];
        for i in 0..n {
            let a =
                prompt_trust(coverage[i], &familiarity_f64, opening_coverage[i], typical_opening).max(cfg.min_trust);
            let moved = a < 1.0 && cfg.fallback == Fallback::Difficulty;
            let shift = if moved { difficulties[i] - difficulty_mean } else { 0.0 };
            for j in 0..m {
                let prior: f64 = (0..rows_t).map(|k| task_probs[i * rows_t + k] * rates[k * m + j]).sum();
                let f = if shift == 0.0 { fallback[j] } else { sigmoid(logit(fallback[j]) - shift) };
                offsets[i * m + j] = logit(a * prior + (1.0 - a) * f);
            }
        }
        let residual = Residual { matrix: &matrix, offsets: &offsets, scores, m, dim };
        let (head, l2, validation_loss, keep_residual) = match cfg.residuals {
            Residuals::SharedDifficulty => {
                let shared = self.fit_shared(&residual, &mut rng);
                (shared.head, shared.l2, shared.loss, shared.keep)
            }
            Residuals::SharedDifficultyAndPerModel => {
                // The per-model regressions learn what the shared difficulty leaves, with its
                // cross-fitted term added to their offsets; the stored term is the sum of both.
                let shared = self.fit_shared(&residual, &mut rng);
                let moved: Vec<f64> = offsets.iter().zip(&shared.term).map(|(o, t)| o + t).collect();
                let on_top = Residual { offsets: &moved, ..residual };
                let (mut head, l2, loss, keep) = self.fit_per_model(&on_top, &mut rng);
                if !keep {
                    (shared.head, shared.l2, shared.loss, shared.keep)
                } else {
                    if shared.keep {
                        head.w.iter_mut().zip(&shared.head.w).for_each(|(w, s)| *w += s);
                        head.b.iter_mut().zip(&shared.head.b).for_each(|(b, s)| *b += s);
                    }
                    (head, l2, loss, true)
                }
            }
            _ => self.fit_per_model(&residual, &mut rng),
        };

        let mut info = model_info(models, recorded.clone());
        info.features = cfg.features.clone();
        info.tasks = tasks;
        info.task_rank = rank;
        info.trained_on = trained_on.to_owned();
        info.rows = n;
        info.l2 = l2;
        info.dense_scale = dense_scale;
        info.validation_loss = validation_loss;
        info.residual = keep_residual;
        info.difficulty_mean = difficulty_mean;
        let model = LearnedModel::from_parts(
            info,
            Parts {
                weights: head.w,
                bias: head.b,
                task_weights: task_head.v,
                task_u: task_head.u,
                task_bias: task_head.b,
                rates: rates.iter().map(|&r| r as f32).collect(),
                overall: overall_f32,
                costs: costs_f32,
                task_costs: task_costs.iter().map(|&c| c as f32).collect(),
                familiarity,
                seen: seen.0,
                opening,
                openings,
                idf,
            },
        )?;
        // The need for a dearer model over the training rows, which `Fallback::Need` standardises by.
        if !model.info().residual {
            return Ok(model);
        }
        let needs: Vec<f64> = data.rows().iter().map(|r| model.predict(r.prompt()).need).collect();
        let mu = mean(&needs);
        let sd = mean(&needs.iter().map(|x| (x - mu).powi(2)).collect::<Vec<_>>()).sqrt();
        model.__with_need((mu, sd))
    }

    /// The per-prompt term as one regression per model ([`Residuals::PerModel`]): the
    /// `[feature][model]` head, the chosen `l2`, the held-out loss and whether the term is kept.
    fn fit_per_model(&mut self, r: &Residual<'_>, rng: &mut Rng) -> (Head, f64, Option<f64>, bool) {
        let cfg = self.config.clone();
        let (n, m) = (r.offsets.len() / r.m.max(1), r.m);
        let all: Vec<usize> = (0..n).collect();
        if cfg.l2.len() == 1 {
            let head = self.fit_residual(r, &all, cfg.l2[0], None, rng, Stage::Residual).0;
            (head, cfg.l2[0], None, true)
        } else {
            // Fit each candidate on all folds but one and score it on that one, over the folds
            // (or on one held-out share); keep the best, and keep the residuals at all only if the
            // best beats the prior alone on the held-out rows.
            //
            // Two choices here were made after seeing reported rows (docs/learned-routing.md,
            // "Results"): the `l2` grid was widened down to 0.3 after an MMLU 5-fold run with
            // candidates from 3 up saved 54.5%, and this plain rule (lowest held-out loss) replaced
            // one that asked the residuals to win by a standard error after GSM8K's 5-fold saving
            // fell to 33.6% with it. `l2` itself is chosen on training rows only.
            let splits = inner_splits(&cfg, n, rng);
            let mut losses = vec![0.0f64; cfg.l2.len()];
            let (mut without, mut held) = (0.0, 0usize);
            // With a routing criterion, every candidate's held-out probabilities (the last: the
            // prior alone), scored once all folds are in.
            let routing =
                cfg.selection != Selection::LogLoss && (m >= 2 || cfg.selection == Selection::PerModelLogLoss);
            let mut probs = if routing { vec![vec![0.0f64; n * m]; cfg.l2.len() + 1] } else { Vec::new() };
            for (valid, fit) in &splits {
                let mut start: Option<Vec<f64>> = None;
                for &(k, l2) in &candidates(&cfg) {
                    let stage = Stage::Validation(k as u32);
                    let (head, x) = self.fit_residual(r, fit, l2, start.as_deref(), rng, stage);
                    losses[k] += r.losses(Some(&head), valid).iter().sum::<f64>();
                    if routing {
                        r.probabilities(Some(&head), valid, &mut probs[k]);
                    }
                    start = x;
                }
                without += r.losses(None, valid).iter().sum::<f64>();
                if routing {
                    r.probabilities(None, valid, &mut probs[cfg.l2.len()]);
                }
                held += valid.len();
            }
            let held = held.max(1) as f64;
            let (log_losses, log_without) = (losses.clone(), without);
            if cfg.selection == Selection::PerModelLogLoss {
                let rows: Vec<usize> = splits.iter().flat_map(|(valid, _)| valid.iter().copied()).collect();
                let per = |p: &[f64]| select::model_losses(&select::Held { p, y: r.scores, m, rows: &rows });
                let losses: Vec<Vec<f64>> = probs[..cfg.l2.len()].iter().map(|p| per(p)).collect();
                let without: Vec<f64> = per(&probs[cfg.l2.len()]);
                let chosen = select::choose_per_model(&losses, &without);
                let total: f64 = chosen.iter().enumerate().map(|(j, c)| c.map_or(without[j], |k| losses[k][j])).sum();
                return self.fit_chosen(r, &chosen, total / (held * m as f64), rng);
            }
            if routing {
                let rows: Vec<usize> = splits.iter().flat_map(|(valid, _)| valid.iter().copied()).collect();
                let strong = select::strongest(r.scores, m, &rows);
                let score = |p: &[f64]| {
                    let h = select::Held { p, y: r.scores, m, rows: &rows };
                    select::loss(cfg.selection, &h, strong).unwrap_or(f64::INFINITY)
                };
                // Each candidate's criterion in place of its pooled log loss (held-out rows
                // scaled back to a sum), so that the rule below applies unchanged.
                for (k, p) in probs.iter().enumerate().take(cfg.l2.len()) {
                    losses[k] = score(p) * held;
                }
                without = score(&probs[cfg.l2.len()]) * held;
            }
            let best = (0..cfg.l2.len()).fold(0, |b, k| if losses[k] < losses[b] { k } else { b });
            let (best_loss, without) = (losses[best] / held, without / held);
            let (l2, keep) = (cfg.l2[best], best_loss < without);
            let head = if keep {
                self.fit_residual(r, &all, l2, None, rng, Stage::Residual).0
            } else {
                self.report(Stage::Residual, 1, 1, mean(&r.losses(None, &all)));
                Head::new(0, m)
            };
            // The model records the held-out log loss of what was chosen, whichever criterion chose it.
            (head, l2, Some(if keep { log_losses[best] } else { log_without } / held), keep)
        }
    }

    /// The per-model regressions on every row, each with its own chosen `l2` (`chosen[j]`, an
    /// index into the candidates), and none for a model without one ([`Selection::PerModelLogLoss`]).
    fn fit_chosen(
        &mut self,
        r: &Residual<'_>,
        chosen: &[Option<usize>],
        loss: f64,
        rng: &mut Rng,
    ) -> (Head, f64, Option<f64>, bool) {
        let (n, m, dim) = (r.offsets.len() / r.m.max(1), r.m, r.dim);
        let all: Vec<usize> = (0..n).collect();
        let l2s = self.config.l2.clone();
        let largest = chosen.iter().flatten().map(|&k| l2s[k]).fold(f64::NAN, f64::max);
        if chosen.iter().all(Option::is_none) {
            self.report(Stage::Residual, 1, 1, mean(&r.losses(None, &all)));
            return (Head::new(0, m), l2s.iter().copied().fold(f64::NAN, f64::max), Some(loss), false);
        }
        let mut head = Head::new(dim, m);
        // One fit per distinct chosen `l2`; each model takes its own column.
        let mut distinct: Vec<usize> = chosen.iter().flatten().copied().collect();
        distinct.sort_unstable();
        distinct.dedup();
        for k in distinct {
            let fitted = self.fit_residual(r, &all, l2s[k], None, rng, Stage::Residual).0;
            for j in (0..m).filter(|&j| chosen[j] == Some(k)) {
                head.b[j] = fitted.b[j];
                (0..dim).for_each(|f| head.w[f * m + j] = fitted.w[f * m + j]);
            }
        }
        (head, largest, Some(loss), true)
    }

    /// Fits the residual regressions on `rows` with the configured solver; with L-BFGS, starting
    /// from `start` (the weights it returned for another `l2`) and returning its weights.
    fn fit_residual(
        &mut self,
        r: &Residual<'_>,
        rows: &[usize],
        l2: f64,
        start: Option<&[f64]>,
        rng: &mut Rng,
        stage: Stage,
    ) -> (Head, Option<Vec<f64>>) {
        if self.config.solver == Solver::AdaGrad {
            return (self.train_residual(r, rows, l2, rng, stage), None);
        }
        let x = self.solve_residual(r, rows, l2, start, stage);
        let (m, dim) = (r.m, r.dim);
        let mut head = Head::new(dim, m);
        head.w.iter_mut().zip(&x).for_each(|(w, x)| *w = *x as f32);
        head.b.iter_mut().zip(&x[dim * m..]).for_each(|(b, x)| *b = *x as f32);
        (head, Some(x))
    }

    /// The residual regressions' weights (`[feature][model]`, then the biases) minimising the log
    /// loss over `rows` plus `½·l2·‖w‖²` (biases unpenalised), by L-BFGS.
    fn solve_residual(
        &mut self,
        r: &Residual<'_>,
        rows: &[usize],
        l2: f64,
        start: Option<&[f64]>,
        stage: Stage,
    ) -> Vec<f64> {
        let (m, dim) = (r.m, r.dim);
        let mut x = match start {
            Some(s) => s.to_vec(),
            None => vec![0.0f64; dim * m + m],
        };
        let mut z = vec![0.0f64; m];
        let objective = |x: &[f64], g: &mut [f64]| -> f64 {
            let (w, b) = x.split_at(dim * m);
            g.fill(0.0);
            let (gw, gb) = g.split_at_mut(dim * m);
            let mut value = 0.0;
            for &i in rows {
                let row = r.matrix.row(i);
                for (j, z) in z.iter_mut().enumerate() {
                    *z = b[j] + r.offsets[i * m + j];
                }
                for &(idx, v) in row {
                    let f = (idx & !CHAR_FLAG) as usize;
                    for (z, w) in z.iter_mut().zip(&w[f * m..(f + 1) * m]) {
                        *z += f64::from(v) * w;
                    }
                }
                for (j, z) in z.iter_mut().enumerate() {
                    let (p, y) = (sigmoid(*z), r.scores[i * m + j]);
                    value += log_loss(p, y);
                    *z = p - y;
                    gb[j] += *z;
                }
                for &(idx, v) in row {
                    let f = (idx & !CHAR_FLAG) as usize;
                    for (g, z) in gw[f * m..(f + 1) * m].iter_mut().zip(&z) {
                        *g += f64::from(v) * z;
                    }
                }
            }
            for (g, w) in gw.iter_mut().zip(w) {
                value += 0.5 * l2 * w * w;
                *g += l2 * w;
            }
            value
        };
        let options = lbfgs::Options { tolerance: 1e-4 * rows.len().max(1) as f64, max_iterations: 500, memory: 10 };
        let per_row = (rows.len() * m).max(1) as f64;
        lbfgs::minimize(&mut x, objective, options, |it, v| {
            self.report(stage, it, options.max_iterations, v / per_row)
        });
        x
    }

    fn train_residual(&mut self, r: &Residual<'_>, rows: &[usize], l2: f64, rng: &mut Rng, stage: Stage) -> Head {
        let m = r.m;
        let lr = self.config.learning_rate as f32;
        let decay = penalty_shares(r.matrix, rows, r.dim, l2, every);
        let mut head = Head::new(r.dim, m);
        let mut order = rows.to_vec();
        let mut z = vec![0.0f64; m];
        let mut grad = vec![0.0f32; m];
        let epochs = self.config.epochs as usize;
        for epoch in 0..epochs {
            shuffle(rng, &mut order);
            let mut loss = 0.0;
            for &i in &order {
                let row = r.matrix.row(i);
                head.scores(row, every, &mut z);
                for j in 0..m {
                    let p = sigmoid(z[j] + r.offsets[i * m + j]);
                    let y = r.scores[i * m + j];
                    loss += log_loss(p, y);
                    grad[j] = (p - y) as f32;
                }
                head.step(row, every, &grad, lr, &decay);
            }
            self.report(stage, epoch + 1, epochs, loss / (order.len() * m).max(1) as f64);
        }
        head
    }

    #[allow(clippy::too_many_arguments)]
    fn train_task_head(
        &mut self,
        matrix: &Matrix,
        label: &[usize],
        rows: &[usize],
        rank: usize,
        t: usize,
        rng: &mut Rng,
        stage: Stage,
    ) -> LowRank {
        let cfg = &self.config;
        let lr = cfg.learning_rate as f32;
        let dim = feature_dim(&cfg.features);
        let decay = penalty_shares(matrix, rows, dim, cfg.task_l2, words_only);
        let epochs = cfg.epochs as usize;
        let mut head = LowRank::new(dim, rank, t, rng);
        let mut order = rows.to_vec();
        let (mut z, mut h) = (vec![0.0f64; t], vec![0.0f64; rank]);
        let mut grad = vec![0.0f32; t];
        for epoch in 0..epochs {
            shuffle(rng, &mut order);
            let mut loss = 0.0;
            for &i in &order {
                let row = matrix.row(i);
                head.scores(row, &mut h, &mut z);
                softmax(&mut z);
                loss -= z[label[i]].max(1e-12).ln();
                for (k, (g, p)) in grad.iter_mut().zip(&z).enumerate() {
                    *g = (p - if k == label[i] { 1.0 } else { 0.0 }) as f32;
                }
                head.step(row, &h, &grad, lr, &decay);
            }
            self.report(stage, epoch + 1, epochs, loss / rows.len().max(1) as f64);
        }
        head
    }
}
