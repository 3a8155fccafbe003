//! A label audit: where a data set says the strongest model is clearly weaker than another on one
//! task.
//!
//! A learned router believes its labels. When a grader fails one model on one kind of prompt (an
//! answer format it cannot parse, a refusal counted as wrong), the router learns that the model
//! cannot do that kind of work, and carries the belief to every prompt that resembles it. Such a
//! failure shows as a *reversal*: the model that scores highest over all rows scores clearly lower
//! than another on the rows of one task.
//!
//! Only the strongest model is compared: among models of similar overall strength, each being
//! better at some tasks is normal, and is what routing is for (on RouterBench's training split, no
//! model clearly beats GPT-4 on any task, while the other ten trade places task by task). A task
//! that the strongest model clearly loses is rarer and deserves a look, but it is not always an
//! error either (a frontier model may refuse a kind of request), so [`audit`] reports and never
//! drops. [`Audit::flags`] lets the caller leave the reversed tasks' rows out of
//! training (`data.filter(|r| !audit.flags(r))`) once they have looked.
//!
//! ```
//! use switchyard_eval::audit::{audit, DEFAULT_MIN_Z};
//! use switchyard_eval::data::{Dataset, Format};
//!
//! # fn run() -> switchyard::Result<()> {
//! let mut logs = String::new();
//! for i in 0..40 {
//!     // "frontier" is right on every chat prompt and on no math prompt; "mini" on half of each.
//!     let (f, m) = (1 - i % 2, i % 2);
//!     logs += &format!(r#"{{"prompt": "chat {i}", "task": "chat", "scores": {{"mini": {m}, "frontier": 1}}}}"#);
//!     logs += "\n";
//!     logs += &format!(r#"{{"prompt": "math {i}", "task": "math", "scores": {{"mini": {f}, "frontier": 0}}}}"#);
//!     logs += "\n";
//!     logs += &format!(r#"{{"prompt": "code {i}", "task": "code", "scores": {{"mini": {m}, "frontier": 1}}}}"#);
//!     logs += "\n";
//! }
//! let data = Dataset::read(logs.as_bytes(), Format::Jsonl, "logs.jsonl")?;
//! let report = audit(&data, DEFAULT_MIN_Z)?;
//! assert_eq!(report.reversals.len(), 1);
//! let r = &report.reversals[0];
//! assert_eq!((r.label.as_str(), r.stronger.as_str(), r.weaker.as_str()), ("math", "frontier", "mini"));
//! let kept = data.filter(|row| !report.flags(row));
//! assert_eq!(kept.len(), 80);
//! # Ok(()) }
//! # run().unwrap();
//! ```

use std::fmt;

use switchyard::{Error, ErrorKind, Result};

use crate::data::{Dataset, Row};

/// The least `z` that [`audit`] reports by default: a reversal this strong arises by chance in
/// about one of 30,000 comparisons of models that are equally good on the task.
pub const DEFAULT_MIN_Z: f64 = 4.0;

/// One task on which the strongest model overall scores clearly lower than another.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct Reversal {
    /// The task (or subject, see [`Audit::by_subject`]).
    pub label: String,
    /// The task's rows.
    pub rows: usize,
    /// The model with the highest mean score over all rows.
    pub stronger: String,
    /// The model that beats it on this task.
    pub weaker: String,
    /// The stronger model's mean score on the task's rows.
    pub stronger_rate: f64,
    /// The weaker model's mean score on the task's rows.
    pub weaker_rate: f64,
    /// The stronger model's mean score over all rows.
    pub stronger_overall: f64,
    /// The weaker model's mean score over all rows.
    pub weaker_overall: f64,
    /// The paired test's statistic: `Σ dᵢ / √(Σ dᵢ²)` over the task's rows, with `dᵢ` the weaker
    /// model's score minus the stronger one's (McNemar's for 0/1 scores).
    pub z: f64,
}

impl fmt::Display for Reversal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} rows): {} {:.1}% against {} {:.1}% (over all rows {:.1}% against {:.1}%), z = {:.1}",
            self.label,
            self.rows,
            self.stronger,
            100.0 * self.stronger_rate,
            self.weaker,
            100.0 * self.weaker_rate,
            100.0 * self.stronger_overall,
            100.0 * self.weaker_overall,
            self.z,
        )
    }
}

/// What [`audit`] found.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct Audit {
    /// Whether rows were grouped by subject (every row has one, as the trainer's
    /// [`TaskLabels::Auto`](crate::TaskLabels::Auto) does) rather than by task.
    pub by_subject: bool,
    /// How many tasks (or subjects) the rows fell into.
    pub labels: usize,
    /// How many (task, other model) comparisons were made.
    pub comparisons: usize,
    /// The reversals at or above the threshold, strongest first.
    pub reversals: Vec<Reversal>,
}

impl Audit {
    /// The tasks with a reversal, each once, strongest reversal first.
    pub fn flagged(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.reversals {
            if !out.contains(&r.label.as_str()) {
                out.push(&r.label);
            }
        }
        out
    }

    /// Whether `row` belongs to a task with a reversal.
    pub fn flags(&self, row: &Row) -> bool {
        let label = label_of(row, self.by_subject);
        self.reversals.iter().any(|r| r.label == label)
    }
}

fn label_of(row: &Row, by_subject: bool) -> &str {
    if by_subject { row.subject().unwrap_or(row.task()) } else { row.task() }
}

/// Compares, on every task of `data`, the model with the highest mean score over all rows with each
/// model that scores lower over all rows, and reports the tasks where the strongest one scores lower
/// with a paired statistic of at least `min_z`.
///
/// Rows are grouped by subject when every row has one, by task otherwise. A data set with a single
/// task has nothing to reverse.
///
/// # Errors
/// [`ErrorKind::Config`] if `min_z` is not a finite number `>= 0`.
pub fn audit(data: &Dataset, min_z: f64) -> Result<Audit> {
    if !(min_z.is_finite() && min_z >= 0.0) {
        return Err(Error::new(ErrorKind::Config, format!("the audit's `min_z` must be finite and >= 0, got {min_z}")));
    }
    let (rows, scores, m) = (data.rows(), data.scores(), data.models().len());
    let by_subject = !rows.is_empty() && rows.iter().all(|r| r.subject().is_some());
    let mut labels: Vec<&str> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let l = label_of(r, by_subject);
        match labels.iter().position(|&x| x == l) {
            Some(k) => members[k].push(i),
            None => {
                labels.push(l);
                members.push(vec![i]);
            }
        }
    }
    let mean = |at: &[usize], j: usize| at.iter().map(|&i| scores[i * m + j]).sum::<f64>() / at.len().max(1) as f64;
    let all: Vec<usize> = (0..rows.len()).collect();
    let overall: Vec<f64> = (0..m).map(|j| mean(&all, j)).collect();
    let mut out = Audit { by_subject, labels: labels.len(), comparisons: 0, reversals: Vec::new() };
    if labels.len() < 2 {
        return Ok(out);
    }
    // The strongest model overall (the first of equals).
    let s = (0..m).fold(0, |best, j| if overall[j] > overall[best] { j } else { best });
    for (label, at) in labels.iter().zip(&members) {
        for w in 0..m {
            if overall[s] <= overall[w] {
                continue;
            }
            out.comparisons += 1;
            let (mut sum, mut sq) = (0.0, 0.0);
            for &i in at {
                let d = scores[i * m + w] - scores[i * m + s];
                sum += d;
                sq += d * d;
            }
            let z = if sq > 0.0 { sum / sq.sqrt() } else { 0.0 };
            if z >= min_z {
                out.reversals.push(Reversal {
                    label: (*label).to_owned(),
                    rows: at.len(),
                    stronger: data.models()[s].to_string(),
                    weaker: data.models()[w].to_string(),
                    stronger_rate: mean(at, s),
                    weaker_rate: mean(at, w),
                    stronger_overall: overall[s],
                    weaker_overall: overall[w],
                    z,
                });
            }
        }
    }
    out.reversals.sort_by(|a, b| b.z.total_cmp(&a.z));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data<const N: usize>(rows: &[(&str, Option<&str>, [f64; N])]) -> Dataset {
        let models = ["frontier", "mini", "coder"];
        let mut b = Dataset::builder(models[..N].iter().copied());
        for (i, (task, subject, s)) in rows.iter().enumerate() {
            let mut row = Row::new(format!("prompt {i}")).with_task(*task);
            if let Some(subject) = subject {
                row = row.with_subject(*subject);
            }
            b.push(row, s, None).unwrap();
        }
        b.build().unwrap()
    }

    #[test]
    fn a_clear_reversal_is_reported_and_a_noisy_one_is_not() {
        let mut rows = Vec::new();
        for i in 0..30 {
            rows.push(("chat", None, [1.0, 0.0]));
            // On math the weaker model wins 20 rows to 2: z = 18 / √22 = 3.8.
            let math = if i < 20 {
                [0.0, 1.0]
            } else if i < 22 {
                [1.0, 0.0]
            } else {
                [1.0, 1.0]
            };
            rows.push(("math", None, math));
        }
        let d = data(&rows);
        assert!(audit(&d, DEFAULT_MIN_Z).unwrap().reversals.is_empty());
        let a = audit(&d, 3.5).unwrap();
        assert_eq!((a.labels, a.comparisons, a.reversals.len()), (2, 2, 1));
        let r = &a.reversals[0];
        assert_eq!(
            (r.label.as_str(), r.rows, r.stronger.as_str(), r.weaker.as_str()),
            ("math", 30, "frontier", "mini")
        );
        assert!((r.z - 18.0 / 22f64.sqrt()).abs() < 1e-12, "{}", r.z);
        assert!((r.stronger_rate - 10.0 / 30.0).abs() < 1e-12);
        assert!((r.weaker_rate - 28.0 / 30.0).abs() < 1e-12);
        assert!(a.flags(&d.rows()[1]) && !a.flags(&d.rows()[0]));
        assert_eq!(a.flagged(), ["math"]);
        assert!(r.to_string().starts_with("math (30 rows): frontier 33.3% against mini 93.3%"), "{r}");
    }

    #[test]
    fn subjects_group_rows_when_every_row_has_one() {
        let mut rows = Vec::new();
        for _ in 0..30 {
            rows.push(("mmlu", Some("history"), [1.0, 0.0]));
            rows.push(("mmlu", Some("algebra"), [0.0, 1.0]));
            rows.push(("mmlu", Some("law"), [1.0, 0.0]));
        }
        let a = audit(&data(&rows), DEFAULT_MIN_Z).unwrap();
        assert!(a.by_subject);
        assert_eq!(a.reversals.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(), ["algebra"]);
        // One task and no subjects: nothing to compare against.
        let one: Vec<_> = rows.iter().map(|&(t, _, s)| (t, None, s)).collect();
        let a = audit(&data(&one), DEFAULT_MIN_Z).unwrap();
        assert!(!a.by_subject && a.reversals.is_empty() && a.comparisons == 0);
    }

    #[test]
    fn only_the_strongest_model_is_compared() {
        // "coder" beats "mini" on code, and "frontier" leads everywhere: specialisation, no reversal.
        let mut rows = Vec::new();
        for _ in 0..30 {
            rows.push(("chat", None, [1.0, 1.0, 0.0]));
            rows.push(("code", None, [1.0, 0.0, 1.0]));
        }
        let a = audit(&data(&rows), DEFAULT_MIN_Z).unwrap();
        assert_eq!((a.comparisons, a.reversals.len()), (4, 0));
    }

    #[test]
    fn a_bad_threshold_is_a_typed_error() {
        let d = data(&[("chat", None, [1.0, 0.0])]);
        for z in [f64::NAN, -1.0, f64::INFINITY] {
            assert_eq!(audit(&d, z).unwrap_err().kind(), ErrorKind::Config);
        }
    }
}
