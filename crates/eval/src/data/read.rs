//! Reading the JSON Lines formats, line by line, into a [`Dataset`]'s dense arrays.
//!
//! Each line is parsed into a format-specific struct that borrows what it can from the line buffer,
//! normalised into one [`Parsed`] record, then checked against the models of the first row and
//! appended. Errors carry the field path; [`Loader`] adds the file and the line.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, Read};
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{CostKind, Dataset, Format, MAX_LINE_BYTES, ROUTELLM_USD_PER_MTOK, Row, check_cost, check_score};
use switchyard::catalog::ModelId;
use switchyard::{Error, Result};

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
    /// `Some(max)` for judge scores from 1 to `max`, divided by `max` (MT-Bench: 10); `None` for
    /// scores already in `[0, 1]`.
    judge_max: Option<f64>,
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

pub(super) struct Loader<'n> {
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
    pub(super) fn new(name: &'n str, format: Format) -> Self {
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

    /// The error at this line. It never quotes the row's text: no string value, and no name that
    /// is not a field, a model or shaped like a model id (shown as `?`), since a prompt, or a key
    /// pasted in the wrong place, must not reach logs through an error.
    fn error(&self, e: LineError) -> Error {
        // A name is shown when it is a field of the format, a model of the data set, or shaped like
        // a model id (a short run without spaces: the first row names the models); anything else,
        // such as prompt text in a key's place, is not.
        let known = |name: &str| {
            FIELDS.contains(&name)
                || self.models.as_ref().is_some_and(|m| m.iter().any(|id| id.as_str() == name))
                || (name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_/:[]@".contains(&b)))
        };
        let message = only_known_names(&switchyard::__without_values(&e.message), known);
        let field = e.field.split('.').map(|f| if known(f) { f } else { "?" }).collect::<Vec<_>>().join(".");
        if field.is_empty() {
            crate::config_error(format!("`{}` line {}: {message}", self.name, self.line))
        } else {
            crate::config_error(format!("`{}` line {}: `{field}`: {message}", self.name, self.line))
        }
    }

    pub(super) fn run(&mut self, mut reader: impl BufRead) -> Result<()> {
        let mut buf = Vec::with_capacity(4096);
        loop {
            buf.clear();
            self.line += 1;
            let n = (&mut reader).take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf).map_err(|e| {
                crate::config_error(format!("`{}` line {}: cannot read: {e}", self.name, self.line)).with_source(e)
            })?;
            if n == 0 {
                return Ok(());
            }
            if buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
                return Err(crate::config_error(format!(
                    "`{}` line {}: longer than {MAX_LINE_BYTES} bytes",
                    self.name, self.line
                )));
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
                    judge_max: None,
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
                    judge_max: None,
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
                    judge_max: Some(10.0),
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
                    judge_max: None,
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
        let judge_max = p.judge_max;
        fill(&models, &p.scores, "scores", &mut self.slot, |v| match judge_max {
            None => check_score(v).map(|()| v),
            Some(max) if v.is_finite() && (1.0..=max).contains(&v) => Ok(v / max),
            Some(max) => Err(format!("expected a judge score in [1, {max}], got {v}")),
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
        }
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
        // Every check passed: append the row.
        self.scores.extend_from_slice(&self.slot);
        if p.costs.is_some() {
            self.costs.extend_from_slice(&self.cost_slot);
        }
        self.has_costs = Some(p.costs.is_some());
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

    pub(super) fn finish(self) -> Result<Dataset> {
        let Some(models) = self.models else {
            return Err(crate::config_error(format!("`{}`: no rows", self.name)));
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

/// Every field name of the formats read here: what an error may name.
const FIELDS: [&str; 18] = [
    "id",
    "eval_name",
    "split_routerbench",
    "split_routerdc",
    "prompt",
    "scores",
    "costs_usd",
    "imputed_scores",
    "benchmark",
    "subject",
    "contaminated",
    "question_id",
    "category",
    "turns",
    "task",
    "split",
    "imputed",
    "meta",
];

/// `message` with every back-quoted name that `known` does not know replaced by `?`.
fn only_known_names(message: &str, known: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('`');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    // Odd pieces are inside back quotes (a piece without its closing quote is left out).
    let rest: Vec<&str> = parts.collect();
    for (i, piece) in rest.iter().enumerate() {
        if i % 2 == 0 {
            if i + 1 < rest.len() {
                out.push('`');
                out.push_str(if known(piece) { piece } else { "?" });
                out.push('`');
            }
        } else {
            out.push_str(piece);
        }
    }
    out
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
