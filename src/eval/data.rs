//! Labelled routing data: a [`Dataset`] of [`Row`]s with every model's score and cost on every row.
//!
//! Scores and costs are stored densely, row-major, one `f64` per (row, model), in the order of
//! [`Dataset::models`]: no map per row, so a sweep over 15k rows touches two flat slices. The
//! metrics in [`metrics`](super::metrics) read them through [`Dataset::outcomes`].
//!
//! See the [module docs](super) for the file formats.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::metrics::Outcomes;
use crate::catalog::ModelId;
use crate::error::{Error, Result};

/// RouteLLM's prices, in USD per 1M tokens: GPT-4 (strong) and Mixtral (weak).
///
/// RouteLLM assumes the same number of tokens for every call, so a run's cost is proportional to
/// `Σ price(model called)`. [`Format::RouteLlm`] and [`Format::MtBench`] charge each call these
/// numbers ([`CostKind::PerCall`]): totals are in "USD per 1M tokens × calls", and only ratios between
/// them (a router's cost as a fraction of GPT-4's) mean anything.
pub const ROUTELLM_USD_PER_MTOK: [(&str, f64); 2] =
    [("gpt-4-1106-preview", 24.7), ("mistralai/Mixtral-8x7B-Instruct-v0.1", 0.24)];

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
/// use switchyard::eval::data::{Dataset, Format, SplitKind};
/// use switchyard::eval::metrics;
///
/// # fn run() -> switchyard::Result<()> {
/// let all = Dataset::load("../shared/data/routerbench_arc_mbpp_winogrande.jsonl", Format::RouterBench)?;
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
    /// Reads a data set file, line by line.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) if the file cannot be read, has no rows, or a
    /// line is not valid: the message names the file, the line and the field
    /// (`` `data.jsonl` line 17: `scores.gpt-4`: expected a number in [0, 1], got 3 ``).
    pub fn load(path: impl AsRef<Path>, format: Format) -> Result<Self> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| Error::config(format!("cannot read `{name}`: {e}")).with_source(e))?;
        Self::read(BufReader::with_capacity(1 << 16, file), format, &name)
    }

    /// Reads a data set from any buffered reader; `name` stands for the file in error messages.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn read(reader: impl BufRead, format: Format, name: &str) -> Result<Self> {
        let mut loader = Loader::new(name, format);
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
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) if the data set has no costs (give prices with
    /// [`with_cost_per_call`](Self::with_cost_per_call)).
    pub fn outcomes(&self) -> Result<Outcomes<'_>> {
        let Some((_, costs)) = &self.costs else {
            return Err(Error::config(format!(
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
    /// [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) if an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.rows.len()) {
            return Err(Error::invalid_request(format!(
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
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) if a model of the data set has no price, a
    /// price names a model the data set does not have, or a price is negative or not finite.
    pub fn with_cost_per_call<S: AsRef<str>>(mut self, prices: impl IntoIterator<Item = (S, f64)>) -> Result<Self> {
        let m = self.models.len();
        let mut per_model = vec![None; m];
        for (model, price) in prices {
            let model = model.as_ref();
            let Some(i) = self.model_index(model) else {
                return Err(Error::config(format!("price for model `{model}`, which data set `{}` lacks", self.name)));
            };
            if !(price.is_finite() && price >= 0.0) {
                return Err(Error::config(format!("price of `{model}` must be finite and >= 0, got {price}")));
            }
            per_model[i] = Some(price);
        }
        let mut row = Vec::with_capacity(m);
        for (i, p) in per_model.iter().enumerate() {
            match p {
                Some(p) => row.push(*p),
                None => return Err(Error::config(format!("no price for model `{}`", self.models[i]))),
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
            error = Some(Error::config("a data set needs at least one model"));
        }
        for (i, m) in models.iter().enumerate() {
            if models[..i].contains(m) {
                error = Some(Error::config(format!("model `{m}` appears twice")));
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
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the row and the model if a slice has the
    /// wrong length or a value is out of range; the row is not added.
    pub fn push(&mut self, row: Row, scores: &[f64], costs: Option<&[f64]>) -> Result<&mut Self> {
        let n = self.rows.len();
        let m = self.models.len();
        if scores.len() != m {
            return Err(Error::config(format!("row {n}: {} scores for {m} models", scores.len())));
        }
        for (s, model) in scores.iter().zip(self.models.iter()) {
            check_score(*s).map_err(|e| Error::config(format!("row {n}: score of `{model}`: {e}")))?;
        }
        match (costs, self.has_costs) {
            (Some(_), Some(false)) | (None, Some(true)) => {
                return Err(Error::config(format!("row {n}: either every row has costs or none has")));
            }
            _ => {}
        }
        if let Some(costs) = costs {
            if costs.len() != m {
                return Err(Error::config(format!("row {n}: {} costs for {m} models", costs.len())));
            }
            for (c, model) in costs.iter().zip(self.models.iter()) {
                check_cost(*c).map_err(|e| Error::config(format!("row {n}: cost of `{model}`: {e}")))?;
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
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) if the models were empty or not unique.
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

// ---------------------------------------------------------------------------------------------------
// Reading JSON Lines

/// A string that borrows from the line when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_str(V).map(Str)
    }
}

/// A JSON object {model: number}, kept in file order, without a map per row.
struct ModelValues<'a>(Vec<(Cow<'a, str>, f64)>);

impl<'de: 'a, 'a> Deserialize<'de> for ModelValues<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ModelValues<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object mapping model names to numbers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(Str(k)) = map.next_key::<Str<'de>>()? {
                    let v: f64 = map.next_value()?;
                    out.push((k, v));
                }
                Ok(ModelValues(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct RouterBenchLine<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    eval_name: Str<'a>,
    #[serde(borrow, default)]
    split_routerbench: Option<Str<'a>>,
    #[serde(borrow, default)]
    split_routerdc: Option<Str<'a>>,
    prompt: String,
    #[serde(borrow)]
    scores: ModelValues<'a>,
    #[serde(borrow)]
    costs_usd: ModelValues<'a>,
    #[serde(borrow, default)]
    imputed_scores: Vec<Str<'a>>,
}

#[derive(Deserialize)]
struct RouteLlmLine<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    benchmark: Str<'a>,
    #[serde(borrow, default)]
    subject: Option<Str<'a>>,
    prompt: String,
    #[serde(default)]
    contaminated: bool,
    #[serde(borrow)]
    scores: ModelValues<'a>,
}

#[derive(Deserialize)]
struct MtBenchLine<'a> {
    question_id: u64,
    #[serde(borrow)]
    category: Str<'a>,
    turns: Vec<String>,
    #[serde(default)]
    contaminated: bool,
    #[serde(borrow)]
    scores: ModelValues<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnLine<'a> {
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    turns: Option<Vec<String>>,
    #[serde(borrow)]
    scores: ModelValues<'a>,
    #[serde(borrow, default)]
    costs_usd: Option<ModelValues<'a>>,
    #[serde(borrow, default)]
    task: Option<Str<'a>>,
    #[serde(borrow, default)]
    subject: Option<Str<'a>>,
    #[serde(borrow, default)]
    split: Option<Str<'a>>,
    #[serde(default)]
    contaminated: bool,
    #[serde(borrow, default)]
    imputed: Vec<Str<'a>>,
    #[serde(default)]
    #[allow(dead_code, reason = "accepted and ignored: free-form metadata")]
    meta: Option<IgnoredAny>,
}

/// One line, parsed and normalised, before it is checked against the data set's models.
struct Parsed<'a> {
    id: Cow<'a, str>,
    prompt: String,
    follow_ups: Vec<String>,
    task: Cow<'a, str>,
    subject: Option<Cow<'a, str>>,
    splits: [Option<Cow<'a, str>>; 3],
    contaminated: bool,
    scores: ModelValues<'a>,
    /// Scores are divided by this (10 for MT-Bench).
    scale: f64,
    costs: Option<ModelValues<'a>>,
    imputed: Vec<Cow<'a, str>>,
}

/// A problem with one line: the field (empty for the whole line) and what is wrong.
struct LineError {
    field: String,
    message: String,
}

impl LineError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

struct Loader<'n> {
    name: &'n str,
    format: Format,
    line: usize,
    models: Option<Arc<[ModelId]>>,
    rows: Vec<Row>,
    scores: Vec<f64>,
    costs: Vec<f64>,
    has_costs: Option<bool>,
    labels: HashSet<Arc<str>>,
    slot: Vec<f64>,
    cost_slot: Vec<f64>,
}

impl<'n> Loader<'n> {
    fn new(name: &'n str, format: Format) -> Self {
        Self {
            name,
            format,
            line: 0,
            models: None,
            rows: Vec::new(),
            scores: Vec::new(),
            costs: Vec::new(),
            has_costs: None,
            labels: HashSet::new(),
            slot: Vec::new(),
            cost_slot: Vec::new(),
        }
    }

    fn error(&self, e: LineError) -> Error {
        if e.field.is_empty() {
            Error::config(format!("`{}` line {}: {}", self.name, self.line, e.message))
        } else {
            Error::config(format!("`{}` line {}: `{}`: {}", self.name, self.line, e.field, e.message))
        }
    }

    fn run(&mut self, mut reader: impl BufRead) -> Result<()> {
        let mut buf = Vec::with_capacity(4096);
        loop {
            buf.clear();
            self.line += 1;
            let n = reader.read_until(b'\n', &mut buf).map_err(|e| {
                Error::config(format!("`{}` line {}: cannot read: {e}", self.name, self.line)).with_source(e)
            })?;
            if n == 0 {
                return Ok(());
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.line_bytes(&buf).map_err(|e| self.error(e))?;
        }
    }

    fn line_bytes(&mut self, line: &[u8]) -> std::result::Result<(), LineError> {
        let parsed = match self.format {
            Format::RouterBench => {
                let l: RouterBenchLine<'_> = parse(line)?;
                Parsed {
                    id: l.id.0,
                    prompt: l.prompt,
                    follow_ups: Vec::new(),
                    task: l.eval_name.0,
                    subject: None,
                    splits: [l.split_routerdc.map(|s| s.0), l.split_routerbench.map(|s| s.0), None],
                    contaminated: false,
                    scores: l.scores,
                    scale: 1.0,
                    costs: Some(l.costs_usd),
                    imputed: l.imputed_scores.into_iter().map(|s| s.0).collect(),
                }
            }
            Format::RouteLlm => {
                let l: RouteLlmLine<'_> = parse(line)?;
                Parsed {
                    id: l.id.0,
                    prompt: l.prompt,
                    follow_ups: Vec::new(),
                    task: l.benchmark.0,
                    subject: l.subject.map(|s| s.0),
                    splits: [None, None, None],
                    contaminated: l.contaminated,
                    scores: l.scores,
                    scale: 1.0,
                    costs: None,
                    imputed: Vec::new(),
                }
            }
            Format::MtBench => {
                let l: MtBenchLine<'_> = parse(line)?;
                let mut turns = l.turns.into_iter();
                let Some(prompt) = turns.next() else {
                    return Err(LineError::new("turns", "expected at least one turn"));
                };
                Parsed {
                    id: Cow::Owned(l.question_id.to_string()),
                    prompt,
                    follow_ups: turns.collect(),
                    task: Cow::Borrowed("mt-bench"),
                    subject: Some(l.category.0),
                    splits: [None, None, None],
                    contaminated: l.contaminated,
                    scores: l.scores,
                    scale: 10.0,
                    costs: None,
                    imputed: Vec::new(),
                }
            }
            Format::Jsonl => {
                let l: OwnLine<'_> = parse(line)?;
                let (prompt, follow_ups) = match (l.prompt, l.turns) {
                    (Some(p), None) => (p, Vec::new()),
                    (None, Some(turns)) => {
                        let mut turns = turns.into_iter();
                        let Some(first) = turns.next() else {
                            return Err(LineError::new("turns", "expected at least one turn"));
                        };
                        (first, turns.collect())
                    }
                    (Some(_), Some(_)) => return Err(LineError::new("", "give `prompt` or `turns`, not both")),
                    (None, None) => return Err(LineError::new("", "missing field `prompt` (or `turns`)")),
                };
                Parsed {
                    id: l.id.map_or_else(|| Cow::Owned(self.line.to_string()), |s| s.0),
                    prompt,
                    follow_ups,
                    task: l.task.map_or(Cow::Borrowed(""), |s| s.0),
                    subject: l.subject.map(|s| s.0),
                    splits: [None, None, l.split.map(|s| s.0)],
                    contaminated: l.contaminated,
                    scores: l.scores,
                    scale: 1.0,
                    costs: l.costs_usd,
                    imputed: l.imputed.into_iter().map(|s| s.0).collect(),
                }
            }
        };
        self.push(parsed)
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.labels.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.labels.insert(a.clone());
        a
    }

    fn push(&mut self, p: Parsed<'_>) -> std::result::Result<(), LineError> {
        let models = match &self.models {
            Some(m) => m.clone(),
            None => {
                // The first row defines the models, sorted by name.
                let mut names: Vec<&str> = p.scores.0.iter().map(|(k, _)| k.as_ref()).collect();
                names.sort_unstable();
                if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
                    return Err(LineError::new(format!("scores.{}", w[0]), "model appears twice"));
                }
                if names.is_empty() {
                    return Err(LineError::new("scores", "expected at least one model"));
                }
                let models: Arc<[ModelId]> = names.into_iter().map(ModelId::new).collect();
                self.models = Some(models.clone());
                models
            }
        };
        let scale = p.scale;
        fill(&models, &p.scores, "scores", &mut self.slot, |v| {
            let s = v / scale;
            if scale == 1.0 {
                check_score(s).map(|()| s)
            } else if v.is_finite() && (1.0..=scale).contains(&v) {
                Ok(s)
            } else {
                Err(format!("expected a judge score in [1, {scale}], got {v}"))
            }
        })?;
        match (&p.costs, self.has_costs) {
            (Some(_), Some(false)) => {
                return Err(LineError::new("costs_usd", "earlier rows have no costs: give them on every row or none"));
            }
            (None, Some(true)) => {
                return Err(LineError::new(
                    "costs_usd",
                    "missing, but earlier rows have costs: give them on every row",
                ));
            }
            _ => {}
        }
        if let Some(costs) = &p.costs {
            fill(&models, costs, "costs_usd", &mut self.cost_slot, |v| check_cost(v).map(|()| v))?;
            self.costs.extend_from_slice(&self.cost_slot);
        }
        self.has_costs = Some(p.costs.is_some());
        let mut imputed = Vec::with_capacity(p.imputed.len());
        for (i, name) in p.imputed.iter().enumerate() {
            match models.binary_search_by(|m| m.as_str().cmp(name)) {
                Ok(j) => imputed.push(j),
                Err(_) => {
                    let field = if self.format == Format::Jsonl { "imputed" } else { "imputed_scores" };
                    return Err(LineError::new(format!("{field}[{i}]"), format!("unknown model `{name}`")));
                }
            }
        }
        self.scores.extend_from_slice(&self.slot);
        let task = self.intern(&p.task);
        let subject = p.subject.as_deref().map(|s| self.intern(s));
        let [a, b, c] = &p.splits;
        let splits = [
            a.as_deref().map(|s| self.intern(s)),
            b.as_deref().map(|s| self.intern(s)),
            c.as_deref().map(|s| self.intern(s)),
        ];
        self.rows.push(Row {
            id: Arc::from(p.id.as_ref()),
            prompt: Arc::from(p.prompt),
            follow_ups: p.follow_ups.into_iter().map(String::into_boxed_str).collect(),
            task,
            subject,
            splits,
            contaminated: p.contaminated,
            imputed: imputed.into_boxed_slice(),
        });
        Ok(())
    }

    fn finish(self) -> Result<Dataset> {
        let Some(models) = self.models else {
            return Err(Error::config(format!("`{}`: no rows", self.name)));
        };
        let costs = if self.has_costs == Some(true) {
            Some((CostKind::Actual, self.costs))
        } else if matches!(self.format, Format::RouteLlm | Format::MtBench) {
            per_call_prices(&models).map(|prices| {
                let mut costs = Vec::with_capacity(self.rows.len() * models.len());
                for _ in 0..self.rows.len() {
                    costs.extend_from_slice(&prices);
                }
                (CostKind::PerCall, costs)
            })
        } else {
            None
        };
        Ok(Dataset { name: Arc::from(self.name), models, rows: self.rows, scores: self.scores, costs })
    }
}

/// RouteLLM's price of every model, if it has one for each.
fn per_call_prices(models: &[ModelId]) -> Option<Vec<f64>> {
    models.iter().map(|m| ROUTELLM_USD_PER_MTOK.iter().find(|(n, _)| *n == m.as_str()).map(|(_, p)| *p)).collect()
}

/// Writes `values` into `slot` in the order of `models` (sorted by name), checking each value and
/// that every model appears exactly once.
fn fill(
    models: &[ModelId],
    values: &ModelValues<'_>,
    field: &str,
    slot: &mut Vec<f64>,
    check: impl Fn(f64) -> std::result::Result<f64, String>,
) -> std::result::Result<(), LineError> {
    slot.clear();
    slot.resize(models.len(), f64::NAN);
    for (name, v) in &values.0 {
        let Ok(i) = models.binary_search_by(|m| m.as_str().cmp(name)) else {
            return Err(LineError::new(
                format!("{field}.{name}"),
                "unknown model: every row must score the models of the first row",
            ));
        };
        if !slot[i].is_nan() {
            return Err(LineError::new(format!("{field}.{name}"), "model appears twice"));
        }
        slot[i] = check(*v).map_err(|e| LineError::new(format!("{field}.{name}"), e))?;
    }
    if let Some(i) = slot.iter().position(|v| v.is_nan()) {
        return Err(LineError::new(field, format!("missing model `{}` (every row must have every model)", models[i])));
    }
    Ok(())
}

/// Parses one line; errors name the field and, for syntax errors, the column.
fn parse<'a, T: Deserialize<'a>>(line: &'a [u8]) -> std::result::Result<T, LineError> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // A key that was not read yet (the line ends after a comma) shows as `?`: name its parent.
        let path = e.path().to_string();
        let path = path.trim_end_matches('?').trim_end_matches('.');
        let field = if path.is_empty() { String::new() } else { path.to_owned() };
        LineError::new(field, json_message(e.inner()))
    })?;
    de.end().map_err(|e| LineError::new("", json_message(&e)))?;
    Ok(value)
}

/// serde_json's message without its " at line 1 column N" (the line is ours), with the column.
fn json_message(e: &serde_json::Error) -> String {
    let mut message = e.to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    if e.is_eof() {
        format!("{message} (column {}): the line is truncated", e.column())
    } else if e.is_syntax() {
        format!("{message} (column {})", e.column())
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

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
