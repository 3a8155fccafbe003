//! Labelled routing data: a [`Dataset`] of [`Row`]s with every model's score and cost on every row.
//!
//! Scores and costs are stored densely, row-major, one `f64` per (row, model), in the order of
//! [`Dataset::models`]: no map per row, so a sweep over 15k rows touches two flat slices. The
//! metrics in [`metrics`](super::metrics) read them through [`Dataset::outcomes`].
//!
//! See the [module docs](super) for the file formats.

mod read;

use std::fmt;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use super::metrics::Outcomes;
use switchyard::catalog::ModelId;
use switchyard::{Error, Result};

/// RouteLLM's prices, in USD per 1M tokens: GPT-4 (strong) and Mixtral (weak).
///
/// RouteLLM assumes the same number of tokens for every call, so a run's cost is proportional to
/// `Σ price(model called)`. [`Format::RouteLlm`] and [`Format::MtBench`] charge each call these
/// numbers ([`CostKind::PerCall`]): totals are in "USD per 1M tokens × calls", and only ratios between
/// them (a router's cost as a fraction of GPT-4's) mean anything.
pub const ROUTELLM_USD_PER_MTOK: [(&str, f64); 2] =
    [("gpt-4-1106-preview", 24.7), ("mistralai/Mixtral-8x7B-Instruct-v0.1", 0.24)];

/// The longest line [`Dataset::load`] and [`Dataset::read`] accept, in bytes (64 MiB): a file with no
/// line breaks is refused rather than read whole into memory.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// The formats [`Dataset::load`] reads. Every one is JSON Lines: one object per line, blank lines
/// skipped.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// The RouterBench subset (`routerbench_arc_mbpp_winogrande.jsonl`): `id`, `eval_name` (the
    /// task), `split_routerbench`, `split_routerdc`, `prompt`, `scores` {model: 0 or 1}, `costs_usd`
    /// {model: USD actually spent}, `imputed_scores` (a list of models). Costs are [`CostKind::Actual`].
    RouterBench,
    /// RouteLLM's MMLU and GSM8K responses (`routellm_mmlu_gsm8k.jsonl`): `id`, `benchmark` (the
    /// task), `subject`, `prompt`, `contaminated`, `scores` {model: 0 or 1}. No per-prompt costs:
    /// each call is charged [`ROUTELLM_USD_PER_MTOK`] ([`CostKind::PerCall`]); a data set with other
    /// models has no costs until [`Dataset::with_cost_per_call`].
    RouteLlm,
    /// RouteLLM's MT-Bench judgements (`routellm_mt_bench.jsonl`): `question_id`, `category` (the
    /// subject; the task is `mt-bench`), `turns`, `contaminated`, `scores` {model: GPT-4 judge score
    /// from 1 to 10, mean of both turns}. Scores are **divided by 10** into `[0.1, 1]`: a division
    /// (not `(s − 1)/9`) keeps ratios such as "95% of GPT-4's quality" equal to RouteLLM's on the raw
    /// scale, and the performance gap recovered is unchanged by any scaling. Costs as for
    /// [`RouteLlm`](Self::RouteLlm).
    MtBench,
    /// switchyard's own format for a user's logs; see the [module docs](super#our-own-format-for-logs).
    Jsonl,
}

/// How a data set's costs were obtained.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CostKind {
    /// What each call actually cost, per prompt (RouterBench, logs with `costs_usd`).
    Actual,
    /// A fixed price per call for each model, the same on every row (RouteLLM's convention, or
    /// [`Dataset::with_cost_per_call`]).
    PerCall,
}

/// Which published split a row's label belongs to; see [`Row::split`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SplitKind {
    /// RouterDC's `split_routerdc`: `train` or `test` (RouterBench subset).
    RouterDc,
    /// RouterBench's own `split_routerbench`: `dev`, `val` or `test` (RouterBench subset).
    RouterBench,
    /// The `split` field of our own log format.
    Own,
}

impl SplitKind {
    fn index(self) -> usize {
        match self {
            Self::RouterDc => 0,
            Self::RouterBench => 1,
            Self::Own => 2,
        }
    }
}

/// One prompt of a data set, without its scores and costs (those live in the [`Dataset`]'s dense
/// arrays, at the same index).
///
/// `Debug` shows the prompt's length, never its text.
#[derive(Clone)]
pub struct Row {
    id: Arc<str>,
    prompt: Arc<str>,
    follow_ups: Box<[Box<str>]>,
    task: Arc<str>,
    subject: Option<Arc<str>>,
    splits: [Option<Arc<str>>; 3],
    contaminated: bool,
    imputed: Box<[usize]>,
}

impl Row {
    /// A row with this prompt, an empty id and task, no split labels and no flags.
    pub fn new(prompt: impl Into<Arc<str>>) -> Self {
        let empty: Arc<str> = Arc::from("");
        Self {
            id: empty.clone(),
            prompt: prompt.into(),
            follow_ups: Box::default(),
            task: empty,
            subject: None,
            splits: [None, None, None],
            contaminated: false,
            imputed: Box::default(),
        }
    }

    /// Sets the row's id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets the task (benchmark, eval name, or a user's own category).
    #[must_use]
    pub fn with_task(mut self, task: impl Into<Arc<str>>) -> Self {
        self.task = task.into();
        self
    }

    /// Sets the subject (an MMLU subject, an MT-Bench category).
    #[must_use]
    pub fn with_subject(mut self, subject: impl Into<Arc<str>>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets the label of one split.
    #[must_use]
    pub fn with_split(mut self, kind: SplitKind, label: impl Into<Arc<str>>) -> Self {
        self.splits[kind.index()] = Some(label.into());
        self
    }

    /// Sets the turns after the first (multi-turn conversations).
    #[must_use]
    pub fn with_follow_ups<S: Into<Box<str>>>(mut self, turns: impl IntoIterator<Item = S>) -> Self {
        self.follow_ups = turns.into_iter().map(Into::into).collect();
        self
    }

    /// Marks the row as contaminated (its prompt leaked into a router's training data).
    #[must_use]
    pub fn with_contaminated(mut self, contaminated: bool) -> Self {
        self.contaminated = contaminated;
        self
    }

    /// The row's id (`arc-challenge.test.0`, `mmlu.17`, `81`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The prompt a router sees: the text, or the first turn of a conversation (RouteLLM routes
    /// MT-Bench on the first turn only).
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// The turns after the first; empty for single-turn rows.
    pub fn follow_ups(&self) -> &[Box<str>] {
        &self.follow_ups
    }

    /// The task: `arc-challenge`, `mbpp`, `winogrande`, `mmlu`, `gsm8k`, `mt-bench`, or a log's `task`.
    pub fn task(&self) -> &str {
        &self.task
    }

    /// The subject inside the task: the MMLU subject, the MT-Bench category.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The row's label in a split (`"train"`, `"test"`), if it has one.
    pub fn split(&self, kind: SplitKind) -> Option<&str> {
        self.splits[kind.index()].as_deref()
    }

    /// Whether the prompt is contaminated: RouteLLM found it in its routers' training data and
    /// excludes it from its evaluations.
    pub fn is_contaminated(&self) -> bool {
        self.contaminated
    }

    /// Indices (into [`Dataset::models`]) of the models whose score on this row was imputed rather
    /// than measured (14 RouterBench rows: GPT-3.5 graded by matching GPT-4's correct letter).
    pub fn imputed(&self) -> &[usize] {
        &self.imputed
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Row")
            .field("id", &self.id)
            .field("prompt_bytes", &self.prompt.len())
            .field("follow_ups", &self.follow_ups.len())
            .field("task", &self.task)
            .field("subject", &self.subject)
            .field("split_routerdc", &self.splits[0])
            .field("split_routerbench", &self.splits[1])
            .field("split", &self.splits[2])
            .field("contaminated", &self.contaminated)
            .field("imputed", &self.imputed)
            .finish()
    }
}

/// A labelled data set: rows, the models, and every model's score (in `[0, 1]`) and cost on every row.
///
/// Cheap to filter: rows share their strings, so [`filter`](Self::filter) and friends copy pointers
/// and the two dense arrays.
///
/// ```no_run
/// use switchyard_eval::data::{Dataset, Format, SplitKind};
/// use switchyard_eval::metrics;
///
/// # fn run() -> switchyard::Result<()> {
/// let all = Dataset::load("data/routerbench_arc_mbpp_winogrande.jsonl.gz", Format::RouterBench)?;
/// let test = all.in_split(SplitKind::RouterDc, "test");
/// let outcomes = test.outcomes()?;
/// let singles = metrics::single_model_points(outcomes);
/// let zero = metrics::hull(&singles);
/// let x_max = metrics::max_cost(&singles).unwrap_or(0.0);
/// println!("zero router AIQ {:.3}", metrics::aiq(&zero, x_max).unwrap_or(0.0));
/// # Ok(()) }
/// # let _ = run();
/// ```
#[derive(Clone)]
pub struct Dataset {
    name: Arc<str>,
    models: Arc<[ModelId]>,
    rows: Vec<Row>,
    scores: Vec<f64>,
    costs: Option<(CostKind, Vec<f64>)>,
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("name", &self.name)
            .field("models", &self.models)
            .field("rows", &self.rows.len())
            .field("costs", &self.costs.as_ref().map(|(k, _)| k))
            .finish()
    }
}

impl Dataset {
    /// Reads a data set file, line by line. A gzip-compressed file (`data.jsonl.gz`; told by its
    /// first bytes, not its name) is decompressed as it is read.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if the file cannot be read, is corrupt
    /// gzip, has no rows, has a line longer than [`MAX_LINE_BYTES`], or a line is not valid: the
    /// message names the file, the line and the field
    /// (`` `data.jsonl` line 17: `scores.gpt-4`: expected a number in [0, 1], got 3 ``).
    pub fn load(path: impl AsRef<Path>, format: Format) -> Result<Self> {
        let path = path.as_ref();
        Self::read(crate::file::open(path)?, format, &path.display().to_string())
    }

    /// Reads a data set from any buffered reader (uncompressed); `name` stands for the file in error
    /// messages.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn read(reader: impl BufRead, format: Format, name: &str) -> Result<Self> {
        let mut loader = read::Loader::new(name, format);
        loader.run(reader)?;
        loader.finish()
    }

    /// A builder for a data set made in code (synthetic data, tests), over these models in this order.
    pub fn builder<M: Into<ModelId>>(models: impl IntoIterator<Item = M>) -> DatasetBuilder {
        DatasetBuilder::new(models.into_iter().map(Into::into).collect())
    }

    /// Where the data came from (the file path given to [`load`](Self::load)).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The models, in the order of every row's scores and costs. Loaders sort them by name.
    pub fn models(&self) -> &[ModelId] {
        &self.models
    }

    /// The index of a model in [`models`](Self::models).
    pub fn model_index(&self, model: &str) -> Option<usize> {
        self.models.iter().position(|m| m.as_str() == model)
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows (a filter can leave none).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Every score, row-major: row `r`'s score for model `m` is at `r * models().len() + m`.
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// Every cost in USD, laid out as [`scores`](Self::scores); `None` if the data has no costs.
    pub fn costs(&self) -> Option<&[f64]> {
        self.costs.as_ref().map(|(_, c)| c.as_slice())
    }

    /// How the costs were obtained; `None` if there are none.
    pub fn cost_kind(&self) -> Option<CostKind> {
        self.costs.as_ref().map(|(k, _)| *k)
    }

    /// The scores and costs as the metrics take them.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if the data set has no costs (give prices with
    /// [`with_cost_per_call`](Self::with_cost_per_call)).
    pub fn outcomes(&self) -> Result<Outcomes<'_>> {
        let Some((_, costs)) = &self.costs else {
            return Err(crate::config_error(format!(
                "data set `{}` has no costs: give each model a price with `with_cost_per_call`",
                self.name
            )));
        };
        Outcomes::new(self.models.len(), &self.scores, costs)
    }

    /// The distinct tasks, in order of first appearance.
    pub fn tasks(&self) -> Vec<&str> {
        let mut seen = Vec::<&str>::new();
        for r in &self.rows {
            if !seen.contains(&r.task()) {
                seen.push(r.task());
            }
        }
        seen
    }

    /// The rows for which `keep` returns true, with their scores and costs.
    pub fn filter(&self, mut keep: impl FnMut(&Row) -> bool) -> Self {
        let indices: Vec<usize> = self.rows.iter().enumerate().filter(|(_, r)| keep(r)).map(|(i, _)| i).collect();
        self.select(&indices)
    }

    /// The rows labelled `label` in split `kind`.
    pub fn in_split(&self, kind: SplitKind, label: &str) -> Self {
        self.filter(|r| r.split(kind) == Some(label))
    }

    /// The rows of one task.
    pub fn of_task(&self, task: &str) -> Self {
        self.filter(|r| r.task() == task)
    }

    /// The rows not marked contaminated (what RouteLLM evaluates on).
    pub fn without_contaminated(&self) -> Self {
        self.filter(|r| !r.is_contaminated())
    }

    /// The rows at these indices, in this order (repeats allowed: bootstrap samples, folds).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidRequest`](switchyard::ErrorKind::InvalidRequest) if an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.rows.len()) {
            return Err(crate::invalid_input(format!(
                "row {bad} is out of range: data set `{}` has {} rows",
                self.name,
                self.rows.len()
            )));
        }
        Ok(self.select(indices))
    }

    fn select(&self, indices: &[usize]) -> Self {
        let m = self.models.len();
        let mut rows = Vec::with_capacity(indices.len());
        let mut scores = Vec::with_capacity(indices.len() * m);
        let mut costs = self.costs.as_ref().map(|(k, _)| (*k, Vec::with_capacity(indices.len() * m)));
        for &i in indices {
            rows.push(self.rows[i].clone());
            scores.extend_from_slice(&self.scores[i * m..(i + 1) * m]);
            if let (Some((_, dst)), Some((_, src))) = (&mut costs, &self.costs) {
                dst.extend_from_slice(&src[i * m..(i + 1) * m]);
            }
        }
        Self { name: self.name.clone(), models: self.models.clone(), rows, scores, costs }
    }

    /// Replaces the costs with a fixed price per call for each model ([`CostKind::PerCall`]): the
    /// convention when the data has no per-prompt costs and calls are assumed to use the same number
    /// of tokens (RouteLLM). Use the model's price per 1M tokens, or per call of your typical size.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if a model of the data set has no price, a
    /// price names a model the data set does not have, or a price is negative or not finite.
    pub fn with_cost_per_call<S: AsRef<str>>(mut self, prices: impl IntoIterator<Item = (S, f64)>) -> Result<Self> {
        let m = self.models.len();
        let mut per_model = vec![None; m];
        for (model, price) in prices {
            let model = model.as_ref();
            let Some(i) = self.model_index(model) else {
                return Err(crate::config_error(format!(
                    "price for model `{model}`, which data set `{}` lacks",
                    self.name
                )));
            };
            if !(price.is_finite() && price >= 0.0) {
                return Err(crate::config_error(format!("price of `{model}` must be finite and >= 0, got {price}")));
            }
            per_model[i] = Some(price);
        }
        let mut row = Vec::with_capacity(m);
        for (i, p) in per_model.iter().enumerate() {
            match p {
                Some(p) => row.push(*p),
                None => return Err(crate::config_error(format!("no price for model `{}`", self.models[i]))),
            }
        }
        let mut costs = Vec::with_capacity(self.rows.len() * m);
        for _ in 0..self.rows.len() {
            costs.extend_from_slice(&row);
        }
        self.costs = Some((CostKind::PerCall, costs));
        Ok(self)
    }
}

/// Builds a [`Dataset`] in code; see [`Dataset::builder`].
#[derive(Debug)]
pub struct DatasetBuilder {
    name: Arc<str>,
    models: Arc<[ModelId]>,
    rows: Vec<Row>,
    scores: Vec<f64>,
    costs: Vec<f64>,
    has_costs: Option<bool>,
    error: Option<Error>,
}

impl DatasetBuilder {
    fn new(models: Vec<ModelId>) -> Self {
        let mut error = None;
        if models.is_empty() {
            error = Some(crate::config_error("a data set needs at least one model"));
        }
        for (i, m) in models.iter().enumerate() {
            if models[..i].contains(m) {
                error = Some(crate::config_error(format!("model `{m}` appears twice")));
                break;
            }
        }
        Self {
            name: Arc::from("in-memory"),
            models: models.into(),
            rows: Vec::new(),
            scores: Vec::new(),
            costs: Vec::new(),
            has_costs: None,
            error,
        }
    }

    /// Names the data set in error messages and [`Dataset::name`].
    #[must_use]
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds a row with one score in `[0, 1]` per model and, if the data has them, one cost per model
    /// (USD, finite, `>= 0`). Either every row has costs or none has.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](switchyard::ErrorKind::Config) naming the row and the model if a slice has the
    /// wrong length or a value is out of range; the row is not added.
    pub fn push(&mut self, row: Row, scores: &[f64], costs: Option<&[f64]>) -> Result<&mut Self> {
        let n = self.rows.len();
        let m = self.models.len();
        if scores.len() != m {
            return Err(crate::config_error(format!("row {n}: {} scores for {m} models", scores.len())));
        }
        for (s, model) in scores.iter().zip(self.models.iter()) {
            check_score(*s).map_err(|e| crate::config_error(format!("row {n}: score of `{model}`: {e}")))?;
        }
        match (costs, self.has_costs) {
            (Some(_), Some(false)) | (None, Some(true)) => {
                return Err(crate::config_error(format!("row {n}: either every row has costs or none has")));
            }
            _ => {}
        }
        if let Some(costs) = costs {
            if costs.len() != m {
                return Err(crate::config_error(format!("row {n}: {} costs for {m} models", costs.len())));
            }
            for (c, model) in costs.iter().zip(self.models.iter()) {
                check_cost(*c).map_err(|e| crate::config_error(format!("row {n}: cost of `{model}`: {e}")))?;
            }
            self.costs.extend_from_slice(costs);
        }
        self.has_costs = Some(costs.is_some());
        self.scores.extend_from_slice(scores);
        self.rows.push(row);
        Ok(self)
    }

    /// The data set (which may have no rows).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if the models were empty or not unique.
    pub fn build(self) -> Result<Dataset> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let costs = (self.has_costs == Some(true)).then_some((CostKind::Actual, self.costs));
        Ok(Dataset { name: self.name, models: self.models, rows: self.rows, scores: self.scores, costs })
    }
}

fn check_score(s: f64) -> std::result::Result<(), String> {
    if s.is_finite() && (0.0..=1.0).contains(&s) {
        Ok(())
    } else {
        Err(format!("expected a number in [0, 1], got {s}"))
    }
}

fn check_cost(c: f64) -> std::result::Result<(), String> {
    if c.is_finite() && c >= 0.0 { Ok(()) } else { Err(format!("expected a finite number >= 0, got {c}")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::ErrorKind;

    fn read(format: Format, text: &str) -> Result<Dataset> {
        Dataset::read(text.as_bytes(), format, "t.jsonl")
    }

    const RB: &str = r#"{"id": "a.0", "eval_name": "arc", "split_routerbench": "dev", "split_routerdc": "train", "prompt": "p0", "scores": {"m2": 1.0, "m1": 0.0}, "costs_usd": {"m1": 0.1, "m2": 0.3}, "oracle_model": "m2", "imputed_scores": []}
{"id": "a.1", "eval_name": "mbpp", "split_routerbench": "test", "split_routerdc": "test", "prompt": "p1", "scores": {"m1": 1.0, "m2": 1.0}, "costs_usd": {"m1": 0.2, "m2": 0.4}, "imputed_scores": ["m1"]}
"#;

    #[test]
    fn routerbench_rows_are_dense_and_sorted_by_model() {
        let d = read(Format::RouterBench, RB).unwrap();
        assert_eq!(d.models(), &[ModelId::new("m1"), ModelId::new("m2")]);
        assert_eq!(d.scores(), &[0.0, 1.0, 1.0, 1.0]);
        assert_eq!(d.costs().unwrap(), &[0.1, 0.3, 0.2, 0.4]);
        assert_eq!(d.cost_kind(), Some(CostKind::Actual));
        assert_eq!(d.rows()[1].imputed(), &[0]);
        assert_eq!(d.rows()[0].split(SplitKind::RouterDc), Some("train"));
        assert_eq!(d.rows()[1].split(SplitKind::RouterBench), Some("test"));
        assert_eq!(d.tasks(), vec!["arc", "mbpp"]);
        let test = d.in_split(SplitKind::RouterDc, "test");
        assert_eq!(test.len(), 1);
        assert_eq!(test.costs().unwrap(), &[0.2, 0.4]);
        assert_eq!(d.of_task("arc").rows()[0].id(), "a.0");
        // Labels are shared, not copied per row.
        let both = read(Format::RouterBench, &RB.replace("mbpp", "arc")).unwrap();
        assert!(Arc::ptr_eq(&both.rows()[0].task, &both.rows()[1].task));
    }

    #[test]
    fn routellm_gets_per_call_prices_and_mt_bench_is_scaled() {
        let line = r#"{"id": "mmlu.0", "benchmark": "mmlu", "subject": "algebra", "prompt": "q", "contaminated": true, "scores": {"gpt-4-1106-preview": 1.0, "mistralai/Mixtral-8x7B-Instruct-v0.1": 0.0}}"#;
        let d = read(Format::RouteLlm, line).unwrap();
        assert_eq!(d.cost_kind(), Some(CostKind::PerCall));
        assert_eq!(d.costs().unwrap(), &[24.7, 0.24]);
        assert!(d.rows()[0].is_contaminated());
        assert!(d.without_contaminated().is_empty());
        assert_eq!(d.rows()[0].subject(), Some("algebra"));

        let mt = r#"{"question_id": 81, "category": "writing", "turns": ["t1", "t2"], "contaminated": false, "scores_per_turn": {}, "scores": {"gpt-4-1106-preview": 10.0, "mistralai/Mixtral-8x7B-Instruct-v0.1": 9.5}}"#;
        let d = read(Format::MtBench, mt).unwrap();
        assert_eq!(d.scores(), &[1.0, 0.95]);
        assert_eq!(d.rows()[0].prompt(), "t1");
        assert_eq!(d.rows()[0].follow_ups().len(), 1);
        assert_eq!(d.rows()[0].id(), "81");
        assert_eq!(d.rows()[0].task(), "mt-bench");
        let e = read(Format::MtBench, &mt.replace("9.5", "11")).unwrap_err();
        assert!(e.to_string().contains("`scores.mistralai/Mixtral-8x7B-Instruct-v0.1`"), "{e}");
    }

    #[test]
    fn own_format_with_and_without_costs() {
        let text = r#"{"prompt": "hi", "scores": {"a": 1, "b": 0.5}, "costs_usd": {"a": 0.01, "b": 0.002}, "task": "chat", "split": "test", "meta": {"ts": 1}}
{"id": "x", "turns": ["one", "two"], "scores": {"b": 0, "a": 1}, "costs_usd": {"a": 0.02, "b": 0.001}}
"#;
        let d = read(Format::Jsonl, text).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.rows()[0].id(), "1");
        assert_eq!(d.rows()[0].split(SplitKind::Own), Some("test"));
        assert_eq!(d.scores(), &[1.0, 0.5, 1.0, 0.0]);
        let no_costs = read(Format::Jsonl, r#"{"prompt": "hi", "scores": {"a": 1, "b": 0.5}}"#).unwrap();
        assert!(no_costs.costs().is_none());
        assert_eq!(no_costs.outcomes().unwrap_err().kind(), ErrorKind::Config);
        let priced = no_costs.with_cost_per_call([("a", 2.0), ("b", 1.0)]).unwrap();
        assert_eq!(priced.costs().unwrap(), &[2.0, 1.0]);
        assert_eq!(priced.cost_kind(), Some(CostKind::PerCall));
    }

    fn err(format: Format, text: &str) -> String {
        let e = read(format, text).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        e.to_string()
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let line1 = RB.lines().next().unwrap();
        let bad_score = format!("{line1}\n{}", line1.replace(r#""m1": 0.0"#, r#""m1": 3"#));
        assert_eq!(
            err(Format::RouterBench, &bad_score),
            "`t.jsonl` line 2: `scores.m1`: expected a number in [0, 1], got 3"
        );
        let truncated = format!("{line1}\n{}", &line1[..60]);
        let e = err(Format::RouterBench, &truncated);
        assert_eq!(e, "`t.jsonl` line 2: EOF while parsing an object (column 60): the line is truncated");
        let cut = line1.find(r#""m2": 0.3"#).unwrap() + 7;
        let e = err(Format::RouterBench, &format!("{line1}\n{}", &line1[..cut]));
        assert!(e.starts_with("`t.jsonl` line 2: `costs_usd`: EOF while parsing"), "{e}");
        assert!(e.ends_with("the line is truncated"), "{e}");
        let wrong_type = line1.replace(r#""m1": 0.1"#, r#""m1": "cheap""#);
        let e = err(Format::RouterBench, &wrong_type);
        assert!(e.starts_with("`t.jsonl` line 1: `costs_usd.m1`: invalid type"), "{e}");
        let missing = format!("\n{line1}\n{}", line1.replace(r#", "m1": 0.0"#, ""));
        assert_eq!(
            err(Format::RouterBench, &missing),
            "`t.jsonl` line 3: `scores`: missing model `m1` (every row must have every model)"
        );
        let unknown = format!("{line1}\n{}", line1.replace(r#""m1": 0.0"#, r#""m3": 0.0"#));
        assert!(err(Format::RouterBench, &unknown).starts_with("`t.jsonl` line 2: `scores.m3`: unknown model"));
        let no_field = line1.replace(r#""eval_name""#, r#""task_name""#);
        assert_eq!(err(Format::RouterBench, &no_field), "`t.jsonl` line 1: missing field `eval_name`");
        let garbage = format!("{line1}\n{{\"id\": }}");
        assert!(err(Format::RouterBench, &garbage).starts_with("`t.jsonl` line 2: `id`: expected value"));
        let trailing = format!("{line1} x");
        assert!(err(Format::RouterBench, &trailing).starts_with("`t.jsonl` line 1: trailing characters"));
        assert_eq!(err(Format::RouterBench, "\n\n"), "`t.jsonl`: no rows");
        let imputed = line1.replace(r#""imputed_scores": []"#, r#""imputed_scores": ["zz"]"#);
        assert_eq!(err(Format::RouterBench, &imputed), "`t.jsonl` line 1: `imputed_scores[0]`: unknown model `zz`");
        let negative = line1.replace(r#""m2": 0.3"#, r#""m2": -1"#);
        assert!(err(Format::RouterBench, &negative).contains("`costs_usd.m2`: expected a finite number >= 0"));
    }

    #[test]
    fn own_format_is_strict() {
        let e = err(Format::Jsonl, r#"{"prompt": "a", "scores": {"a": 1}, "cost_usd": {"a": 1}}"#);
        assert!(e.starts_with("`t.jsonl` line 1: `cost_usd`: unknown field `cost_usd`"), "{e}");
        let e = err(Format::Jsonl, r#"{"scores": {"a": 1}}"#);
        assert_eq!(e, "`t.jsonl` line 1: missing field `prompt` (or `turns`)");
        let e = err(
            Format::Jsonl,
            "{\"prompt\": \"a\", \"scores\": {\"a\": 1}, \"costs_usd\": {\"a\": 1}}\n{\"prompt\": \"b\", \"scores\": {\"a\": 1}}",
        );
        assert!(e.starts_with("`t.jsonl` line 2: `costs_usd`: missing"), "{e}");
        let e = err(Format::Jsonl, r#"{"prompt": "a", "scores": {"a": 1, "a": 0}}"#);
        assert_eq!(e, "`t.jsonl` line 1: `scores.a`: model appears twice");
    }

    #[test]
    fn invalid_utf8_and_io_errors_do_not_panic() {
        let mut bytes = br#"{"prompt": "a"#.to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(br#"", "scores": {"a": 1}}"#);
        let e = Dataset::read(bytes.as_slice(), Format::Jsonl, "t.jsonl").unwrap_err();
        assert!(e.to_string().starts_with("`t.jsonl` line 1: `prompt`:"), "{e}");
        let e = Dataset::load("/nonexistent/data.jsonl", Format::Jsonl).unwrap_err();
        assert!(e.to_string().starts_with("cannot read `/nonexistent/data.jsonl`"), "{e}");
    }

    #[test]
    fn load_reads_gzip_and_refuses_corrupt_gzip_and_endless_lines() {
        use std::io::{Read, Write};
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(RB.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let dir = std::env::temp_dir();
        let path = dir.join(format!("switchyard-eval-data-{}.jsonl.gz", std::process::id()));
        std::fs::write(&path, &gz).unwrap();
        let d = Dataset::load(&path, Format::RouterBench).unwrap();
        assert_eq!(d.scores(), read(Format::RouterBench, RB).unwrap().scores());
        assert_eq!(d.name(), path.display().to_string());
        std::fs::write(&path, &gz[..gz.len() - 12]).unwrap();
        let e = Dataset::load(&path, Format::RouterBench).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("cannot read: corrupt gzip data"), "{e}");
        std::fs::remove_file(&path).unwrap();

        let endless = std::io::BufReader::new(std::io::repeat(b'x').take(MAX_LINE_BYTES as u64 + 10));
        let e = Dataset::read(endless, Format::Jsonl, "t.jsonl").unwrap_err();
        assert_eq!(e.to_string(), format!("`t.jsonl` line 1: longer than {MAX_LINE_BYTES} bytes"));
    }

    #[test]
    fn errors_and_debug_never_show_prompt_text() {
        let d = read(Format::Jsonl, r#"{"prompt": "my password is hunter2", "scores": {"a": 1}}"#).unwrap();
        assert!(!format!("{:?}", d.rows()[0]).contains("hunter2"));
        let e = err(Format::Jsonl, r#"{"prompt": "my password is hunter2", "scores": {"a": 2}}"#);
        assert!(!e.contains("hunter2"));
    }

    #[test]
    fn builder_validates() {
        let mut b = Dataset::builder(["a", "b"]);
        b.push(Row::new("p").with_task("t"), &[1.0, 0.0], Some(&[0.1, 0.2])).unwrap();
        assert!(b.push(Row::new("q"), &[1.0], Some(&[0.1, 0.2])).is_err());
        assert!(b.push(Row::new("q"), &[1.0, f64::NAN], Some(&[0.1, 0.2])).is_err());
        assert!(b.push(Row::new("q"), &[1.0, 0.0], None).is_err());
        let d = b.build().unwrap();
        assert_eq!(d.len(), 1);
        assert!(Dataset::builder(["a", "a"]).build().is_err());
        assert!(Dataset::builder(Vec::<ModelId>::new()).build().is_err());
        assert!(d.subset(&[0, 0]).unwrap().len() == 2);
        assert_eq!(d.subset(&[1]).unwrap_err().kind(), ErrorKind::InvalidRequest);
    }
}
