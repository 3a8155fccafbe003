//! How well the core's built-in heuristic signals rank prompts inside one task.
//!
//! A signal is worth its weight in a router if, among prompts of the same kind, it scores higher the
//! prompts that need the strong model. [`signal_aucs`] measures that for each built-in signal: the
//! ROC AUC of the signal's value against the label "the weak model scored lower than the strong one"
//! (for 0/1 scores: the weak model failed where the strong one succeeded), computed separately for
//! each task of a data set ([`Row::task`](crate::data::Row::task)). An AUC of 0.5 is no ranking power;
//! below 0.5 the signal ranks the wrong way.
//!
//! The signals, each computed from the prompt alone as the router does ([`TextStats::of_text`]):
//!
//! | [`Signal`] | value |
//! |---|---|
//! | `Difficulty` | [`DifficultyClassifier`]'s difficulty `d` |
//! | `ReasoningDepth` | [`DifficultyClassifier`]'s reasoning depth |
//! | `IntentConfidence` | [`IntentClassifier`]'s confidence in its intent |
//! | `Tokens` | [`HeuristicCounter`]'s estimate of the prompt's tokens |
//!
//! `cargo run --release -p switchyard-eval --example signals` prints the table for the shared data
//! sets (`docs/evaluation.md`, section "Signals").

use switchyard::classify::{DifficultyClassifier, HeuristicCounter, IntentClassifier, TextStats, TokenCounter};

use std::path::{Path, PathBuf};

use super::data::{Dataset, Format, SplitKind};
use switchyard::Result;

/// A built-in signal [`signal_aucs`] measures.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// [`DifficultyClassifier`]'s difficulty.
    Difficulty,
    /// [`DifficultyClassifier`]'s reasoning depth.
    ReasoningDepth,
    /// [`IntentClassifier`]'s confidence in the intent it assigns.
    IntentConfidence,
    /// [`HeuristicCounter`]'s token estimate of the prompt.
    Tokens,
}

impl Signal {
    /// Every signal, in table order.
    pub const ALL: [Signal; 4] = [Signal::Difficulty, Signal::ReasoningDepth, Signal::IntentConfidence, Signal::Tokens];

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Difficulty => "difficulty",
            Self::ReasoningDepth => "reasoning depth",
            Self::IntentConfidence => "intent confidence",
            Self::Tokens => "tokens",
        }
    }

    /// The signal's value for a prompt, with the default classifiers.
    pub fn value(self, prompt: &str) -> f64 {
        let stats = TextStats::of_text(prompt);
        match self {
            Self::Difficulty => DifficultyClassifier::default().infer(&stats).0,
            Self::ReasoningDepth => DifficultyClassifier::default().infer(&stats).1,
            Self::IntentConfidence => IntentClassifier::default().infer(&stats).confidence,
            Self::Tokens => HeuristicCounter::default().count(prompt).map_or(0.0, |t| t as f64),
        }
    }
}

/// The ROC AUC of `scores` against `labels`: the probability that a random positive scores above a
/// random negative, ties counting one half (the Mann–Whitney statistic). `None` when either class is
/// empty or the lengths differ.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Ranks from 1, ties sharing their mean rank.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += mean_rank * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    Some((rank_sum_pos - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// The standard error of an AUC with `pos` positives and `neg` negatives (Hanley and McNeil 1982).
pub fn auc_standard_error(auc: f64, pos: usize, neg: usize) -> f64 {
    let (p, n) = (pos as f64, neg as f64);
    let q1 = auc / (2.0 - auc);
    let q2 = 2.0 * auc * auc / (1.0 + auc);
    let var = (auc * (1.0 - auc) + (p - 1.0) * (q1 - auc * auc) + (n - 1.0) * (q2 - auc * auc)) / (p * n);
    var.max(0.0).sqrt()
}

/// For each row of `data`, whether the `weak` model scored lower than the `strong` one.
///
/// # Errors
/// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if the data set lacks either model.
pub fn needs_strong(data: &Dataset, weak: &str, strong: &str) -> Result<Vec<bool>> {
    let index = |m: &str| {
        data.model_index(m).ok_or_else(|| crate::config_error(format!("data set `{}` has no model `{m}`", data.name())))
    };
    let (w, s) = (index(weak)?, index(strong)?);
    let m = data.models().len();
    Ok(data.scores().chunks_exact(m).map(|row| row[w] < row[s]).collect())
}

/// One task's AUCs, one per signal of [`Signal::ALL`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct TaskAucs {
    /// The task.
    pub task: String,
    /// Rows of the task.
    pub rows: usize,
    /// Rows where the strong model was needed.
    pub positives: usize,
    /// The AUC of each signal of [`Signal::ALL`], in that order (`None` when every row or none is
    /// positive).
    pub aucs: Vec<Option<f64>>,
}

/// The AUC of each signal of `signals` within each task of `data` against [`needs_strong`].
///
/// # Errors
/// As [`needs_strong`].
pub fn signal_aucs(data: &Dataset, weak: &str, strong: &str, signals: &[Signal]) -> Result<Vec<TaskAucs>> {
    let labels = needs_strong(data, weak, strong)?;
    let values: Vec<Vec<f64>> =
        signals.iter().map(|s| data.rows().iter().map(|r| s.value(r.prompt())).collect()).collect();
    let mut out = Vec::new();
    for task in data.tasks() {
        let idx: Vec<usize> = (0..data.len()).filter(|&i| data.rows()[i].task() == task).collect();
        let y: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
        let aucs = values
            .iter()
            .map(|v| {
                let x: Vec<f64> = idx.iter().map(|&i| v[i]).collect();
                auc(&x, &y)
            })
            .collect();
        out.push(TaskAucs {
            task: task.to_owned(),
            rows: idx.len(),
            positives: y.iter().filter(|&&b| b).count(),
            aucs,
        });
    }
    Ok(out)
}

/// Which rows of the shared data sets [`benchmarks`] returns.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// The rows signals may be fitted and tuned on.
    Train,
    /// The rows reported, never fitted or tuned on.
    Test,
}

/// One data set of the shared routing data with its split applied and the two models compared.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Benchmark {
    /// `routerbench`, `mmlu`, `gsm8k` or `mt-bench`.
    pub name: &'static str,
    /// The rows.
    pub data: Dataset,
    /// Which rows these are.
    pub rows: &'static str,
    /// The weak (cheap) model.
    pub weak: &'static str,
    /// The strong model.
    pub strong: &'static str,
}

/// RouterBench's strong model, and RouteLLM's.
pub const GPT4: &str = "gpt-4-1106-preview";
/// RouterBench's cheapest model ($0.20 per 1M input tokens).
pub const ROUTERBENCH_WEAK: &str = "mistralai/mistral-7b-chat";
/// RouteLLM's weak model.
pub const ROUTELLM_WEAK: &str = "mistralai/Mixtral-8x7B-Instruct-v0.1";

/// The public data sets in `dir` (the repository's `data/`), split as `examples/evaluate.rs` splits
/// them. Each file is read compressed (`routerbench_arc_mbpp_winogrande.jsonl.gz`, as in the
/// repository) if that file exists, and plain (`routerbench_arc_mbpp_winogrande.jsonl`) otherwise:
///
/// - `routerbench`: `split_routerdc == train` or `test`; weak [`ROUTERBENCH_WEAK`], strong [`GPT4`];
/// - `mmlu`, `gsm8k`: each without contaminated rows, rows `i % 5 != 0` (train) or `i % 5 == 0`
///   (test); weak [`ROUTELLM_WEAK`], strong [`GPT4`];
/// - `mt-bench` (test only, all 80 questions: nothing is fitted on it), as RouteLLM's.
///
/// # Errors
/// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if a file is missing or invalid.
pub fn benchmarks(dir: &Path, part: Part) -> Result<Vec<Benchmark>> {
    let rb = Dataset::load(data_file(dir, "routerbench_arc_mbpp_winogrande.jsonl"), Format::RouterBench)?;
    let label = if part == Part::Train { "train" } else { "test" };
    let mut out = vec![Benchmark {
        name: "routerbench",
        data: rb.in_split(SplitKind::RouterDc, label),
        rows: if part == Part::Train { "split_routerdc == train" } else { "split_routerdc == test" },
        weak: ROUTERBENCH_WEAK,
        strong: GPT4,
    }];
    let rl = Dataset::load(data_file(dir, "routellm_mmlu_gsm8k.jsonl"), Format::RouteLlm)?;
    for name in ["mmlu", "gsm8k"] {
        let rows = rl.of_task(name).without_contaminated();
        let keep: Vec<usize> = (0..rows.len()).filter(|i| (i % 5 == 0) == (part == Part::Test)).collect();
        out.push(Benchmark {
            name,
            data: rows.subset(&keep)?,
            rows: if part == Part::Train {
                "without contaminated rows, rows i % 5 != 0"
            } else {
                "without contaminated rows, rows i % 5 == 0"
            },
            weak: ROUTELLM_WEAK,
            strong: GPT4,
        });
    }
    if part == Part::Test {
        out.push(Benchmark {
            name: "mt-bench",
            data: Dataset::load(data_file(dir, "routellm_mt_bench.jsonl"), Format::MtBench)?,
            rows: "all 80 questions, first turn (never fitted on)",
            weak: ROUTELLM_WEAK,
            strong: GPT4,
        });
    }
    Ok(out)
}

/// `dir/name.gz` if it exists, `dir/name` otherwise.
fn data_file(dir: &Path, name: &str) -> PathBuf {
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() { gz } else { dir.join(name) }
}

/// The fitted part of [`DifficultyClassifier`]'s difficulty, as [`fit_difficulty`] finds it.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct DifficultyFit {
    /// The feature names, in order.
    pub names: Vec<&'static str>,
    /// The weight of each feature (logit units): the constant `FITTED` the core ships.
    pub weights: Vec<f64>,
    /// `Σ weight · mean`, the feature means taken over the training rows with the fit's weights:
    /// the constant `FITTED_CENTRE` the core subtracts so that the fitted part averages zero there.
    pub centre: f64,
    /// The coefficient of the hand-set part of the difficulty in the regression.
    pub base_coefficient: f64,
    /// The rows fitted on.
    pub rows: usize,
}

/// The L2 penalty of [`fit_difficulty`] (on the mean log-loss, every coefficient but the task
/// intercepts).
pub const DIFFICULTY_L2: f64 = 1e-3;

/// Fits the weights of the difficulty's fitted part on `train` (training rows only).
///
/// A logistic regression of [`needs_strong`] on the features of
/// `switchyard::classify::learned::__training::difficulty_parts` with, as further terms, the
/// hand-set part of the difficulty and one intercept per task (each task weighed equally, so that
/// the large MMLU does not decide alone, and the weights rank prompts inside a task rather than
/// tell tasks apart), solved by Newton's method with an L2 penalty of [`DIFFICULTY_L2`]. The
/// features' coefficients are the weights, on the logit scale the difficulty is on (`θ_m − d`).
///
/// # Errors
/// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if a data set lacks its models or the
/// system is singular.
#[allow(clippy::needless_range_loop, reason = "the Hessian's indices read more plainly")]
pub fn fit_difficulty(train: &[Benchmark]) -> Result<DifficultyFit> {
    use switchyard::classify::learned::__training::{DIFFICULTY_FEATURE_NAMES, DIFFICULTY_FEATURES, difficulty_parts};
    // Rows: (group, base, features, label, weight).
    let mut groups = 0;
    let mut rows: Vec<(usize, f64, [f64; DIFFICULTY_FEATURES], f64, f64)> = Vec::new();
    for b in train {
        let labels = needs_strong(&b.data, b.weak, b.strong)?;
        for task in b.data.tasks() {
            let idx: Vec<usize> = (0..b.data.len()).filter(|&i| b.data.rows()[i].task() == task).collect();
            let weight = 1.0 / idx.len() as f64;
            for i in idx {
                let (base, x) = difficulty_parts(&TextStats::of_text(b.data.rows()[i].prompt()));
                rows.push((groups, base, x, if labels[i] { 1.0 } else { 0.0 }, weight));
            }
            groups += 1;
        }
    }
    // Parameters: one intercept per group, the base coefficient, the feature weights.
    let k = DIFFICULTY_FEATURES;
    let dim = groups + 1 + k;
    let total: f64 = rows.iter().map(|r| r.4).sum();
    let features = |g: usize, base: f64, x: &[f64; DIFFICULTY_FEATURES], v: &mut [f64]| {
        v.iter_mut().for_each(|e| *e = 0.0);
        v[g] = 1.0;
        v[groups] = base;
        v[groups + 1..].copy_from_slice(x);
    };
    // The penalised mean log-loss.
    let loss = |theta: &[f64]| {
        let mut v = vec![0.0; dim];
        let mut l = 0.0;
        for (g, base, x, y, w) in &rows {
            features(*g, *base, x, &mut v);
            let z: f64 = v.iter().zip(theta).map(|(a, b)| a * b).sum();
            // log(1 + e^z) − y z, computed stably.
            l += w / total * (z.max(0.0) + (-z.abs()).exp().ln_1p() - y * z);
        }
        l + 0.5 * DIFFICULTY_L2 * theta[groups..].iter().map(|t| t * t).sum::<f64>()
    };
    let mut theta = vec![0.0; dim];
    let mut v = vec![0.0; dim];
    let mut current = loss(&theta);
    for _ in 0..50 {
        let mut grad = vec![0.0; dim];
        let mut hess = vec![vec![0.0; dim]; dim];
        for (g, base, x, y, w) in &rows {
            features(*g, *base, x, &mut v);
            let z: f64 = v.iter().zip(&theta).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            let w = w / total;
            for a in 0..dim {
                grad[a] += w * (p - y) * v[a];
                for b in 0..=a {
                    hess[a][b] += w * p * (1.0 - p) * v[a] * v[b];
                }
            }
        }
        for a in 0..dim {
            for b in 0..a {
                hess[b][a] = hess[a][b];
            }
            if a >= groups {
                grad[a] += DIFFICULTY_L2 * theta[a];
                hess[a][a] += DIFFICULTY_L2;
            }
        }
        let step = solve(hess, grad).ok_or_else(|| crate::config_error("the difficulty fit is singular"))?;
        // Newton's step, halved until the loss does not rise.
        let mut scale = 1.0;
        let mut next: Vec<f64> = theta.iter().zip(&step).map(|(t, s)| t - s).collect();
        let mut next_loss = loss(&next);
        while next_loss > current && scale > 1e-6 {
            scale *= 0.5;
            next = theta.iter().zip(&step).map(|(t, s)| t - scale * s).collect();
            next_loss = loss(&next);
        }
        let largest = step.iter().fold(0.0f64, |m, s| m.max((scale * s).abs()));
        theta = next;
        current = next_loss;
        if largest < 1e-9 {
            break;
        }
    }
    let weights = theta[groups + 1..].to_vec();
    let centre = rows.iter().map(|r| r.4 / total * r.2.iter().zip(&weights).map(|(x, w)| x * w).sum::<f64>()).sum();
    Ok(DifficultyFit {
        names: DIFFICULTY_FEATURE_NAMES.to_vec(),
        weights,
        centre,
        base_coefficient: theta[groups],
        rows: rows.len(),
    })
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting; `None` if `a` is singular.
#[allow(clippy::needless_range_loop, reason = "the matrix's indices read more plainly")]
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[p][c].abs() < 1e-14 {
            return None;
        }
        a.swap(c, p);
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r][c] / a[c][c];
            for k in c..n {
                a[r][k] -= f * a[c][k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_as_half() {
        assert_eq!(auc(&[1.0, 2.0, 3.0, 4.0], &[false, false, true, true]), Some(1.0));
        assert_eq!(auc(&[1.0, 2.0, 3.0, 4.0], &[true, true, false, false]), Some(0.0));
        assert_eq!(auc(&[1.0, 1.0, 1.0, 1.0], &[true, false, true, false]), Some(0.5));
        assert_eq!(auc(&[1.0, 2.0, 2.0], &[false, true, false]), Some(0.75));
        assert_eq!(auc(&[1.0, 2.0], &[true, true]), None);
        assert_eq!(auc(&[1.0], &[true, false]), None);
    }

    #[test]
    fn solves_linear_systems() {
        let x = solve(vec![vec![2.0, 1.0], vec![1.0, 3.0]], vec![3.0, 5.0]).unwrap();
        assert!((x[0] - 0.8).abs() < 1e-12 && (x[1] - 1.4).abs() < 1e-12, "{x:?}");
        assert!(solve(vec![vec![1.0, 2.0], vec![2.0, 4.0]], vec![1.0, 2.0]).is_none());
    }

    #[test]
    fn standard_error_shrinks_with_rows() {
        let small = auc_standard_error(0.6, 10, 10);
        let large = auc_standard_error(0.6, 1000, 1000);
        assert!(small > large && large > 0.0, "{small} {large}");
    }
}
