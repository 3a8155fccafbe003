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

use std::path::Path;

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

/// The shared data sets in `dir` (`../shared/data`), split as `examples/evaluate.rs` splits them:
///
/// - `routerbench`: `split_routerdc == train` or `test`; weak [`ROUTERBENCH_WEAK`], strong [`GPT4`];
/// - `mmlu`, `gsm8k`: each without contaminated rows, rows `i % 5 != 0` (train) or `i % 5 == 0`
///   (test); weak [`ROUTELLM_WEAK`], strong [`GPT4`];
/// - `mt-bench` (test only, all 80 questions: nothing is fitted on it), as RouteLLM's.
///
/// # Errors
/// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if a file is missing or invalid.
pub fn benchmarks(dir: &Path, part: Part) -> Result<Vec<Benchmark>> {
    let rb = Dataset::load(dir.join("routerbench_arc_mbpp_winogrande.jsonl"), Format::RouterBench)?;
    let label = if part == Part::Train { "train" } else { "test" };
    let mut out = vec![Benchmark {
        name: "routerbench",
        data: rb.in_split(SplitKind::RouterDc, label),
        rows: if part == Part::Train { "split_routerdc == train" } else { "split_routerdc == test" },
        weak: ROUTERBENCH_WEAK,
        strong: GPT4,
    }];
    let rl = Dataset::load(dir.join("routellm_mmlu_gsm8k.jsonl"), Format::RouteLlm)?;
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
            data: Dataset::load(dir.join("routellm_mt_bench.jsonl"), Format::MtBench)?,
            rows: "all 80 questions, first turn (never fitted on)",
            weak: ROUTELLM_WEAK,
            strong: GPT4,
        });
    }
    Ok(out)
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
    fn standard_error_shrinks_with_rows() {
        let small = auc_standard_error(0.6, 10, 10);
        let large = auc_standard_error(0.6, 1000, 1000);
        assert!(small > large && large > 0.0, "{small} {large}");
    }
}
