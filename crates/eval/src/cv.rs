//! Cross-validation and generalisation splits, and a fast sweep for learned routers.
//!
//! - [`k_fold`]: row `i` goes to fold `i % k`: deterministic, reproducible from the file alone.
//! - [`leave_one_task_out`]: train on every task but one, test on that one (does the router fall
//!   back to its prior on a kind of prompt it never saw?).
//! - [`cross_validate`]: fits a router on each fold's training rows, sweeps its knob over the fold's
//!   held-out rows, and pools the held-out choices into one [`Run`] per knob over every row, so that
//!   each row is routed by a router that never saw it.
//! - [`sweep_policy`]: classifies each row once and re-ranks its candidates at every knob value:
//!   the same choices as [`sweep`](super::replay::sweep) for policies that rank from the candidates'
//!   numbers alone (`p`, cost, latency: [`Utility`](switchyard::Utility),
//!   [`CheapestCapable`](switchyard::CheapestCapable)), at a fraction of the cost when classification is
//!   the expensive part (a [`LearnedClassifier`](switchyard::classify::LearnedClassifier)).

use super::data::Dataset;
use super::replay::Run;
use switchyard::Signals;
use switchyard::policy::{Policy, PolicyInput};
use switchyard::{ContentPart, Message, Request};
use switchyard::{Error, Result};
use switchyard::{Router, uniform};

/// One split: training rows, held-out rows, and the held-out rows' indices in the original data set.
#[derive(Debug)]
#[non_exhaustive]
pub struct Split {
    /// What the split is (`"fold 2 of 5"`, `"held out: mbpp"`).
    pub name: String,
    /// Rows to train on.
    pub train: Dataset,
    /// Rows to report on.
    pub test: Dataset,
    /// `test`'s rows, as indices into the data set the split was made from.
    pub test_rows: Vec<usize>,
}

impl Split {
    /// A split of your own; `test_rows` index `test`'s rows in the data set being cross-validated.
    pub fn new(name: impl Into<String>, train: Dataset, test: Dataset, test_rows: Vec<usize>) -> Self {
        Self { name: name.into(), train, test, test_rows }
    }
}

/// `k` folds: fold `f` holds out rows `i` with `i % k == f`.
///
/// # Errors
/// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if `k < 2` or the data set has fewer than `k` rows.
pub fn k_fold(data: &Dataset, k: usize) -> Result<Vec<Split>> {
    if k < 2 || data.len() < k {
        return Err(crate::config_error(format!(
            "{k}-fold cross-validation needs k >= 2 and at least k rows; `{}` has {}",
            data.name(),
            data.len()
        )));
    }
    (0..k)
        .map(|f| {
            let (test_rows, train_rows): (Vec<usize>, Vec<usize>) = (0..data.len()).partition(|i| i % k == f);
            Ok(Split {
                name: format!("fold {} of {k}", f + 1),
                train: data.subset(&train_rows)?,
                test: data.subset(&test_rows)?,
                test_rows,
            })
        })
        .collect()
}

/// One split per task: train on the other tasks, test on it.
///
/// # Errors
/// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if the data set has fewer than two tasks.
pub fn leave_one_task_out(data: &Dataset) -> Result<Vec<Split>> {
    let tasks: Vec<String> = data.tasks().into_iter().map(str::to_owned).collect();
    if tasks.len() < 2 {
        return Err(crate::config_error(format!(
            "leaving one task out needs at least two tasks; `{}` has {}",
            data.name(),
            tasks.len()
        )));
    }
    tasks
        .iter()
        .map(|t| {
            let (test_rows, train_rows): (Vec<usize>, Vec<usize>) =
                (0..data.len()).partition(|&i| data.rows()[i].task() == t);
            Ok(Split {
                name: format!("held out: {t}"),
                train: data.subset(&train_rows)?,
                test: data.subset(&test_rows)?,
                test_rows,
            })
        })
        .collect()
}

/// For each split, `fit(&split.train)` returns a sweep over the split's test rows (the runs' choices
/// index the test rows); the choices are pooled into one run per knob over every row of `data`.
///
/// Every split must hold out disjoint rows that together cover `data` ([`k_fold`] and
/// [`leave_one_task_out`] do), and every sweep must have the same knobs, in order.
///
/// # Errors
/// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if the splits do not cover `data` exactly once or
/// the sweeps disagree on their knobs; `fit`'s errors.
pub fn cross_validate<F>(data: &Dataset, splits: &[Split], mut fit: F) -> Result<Vec<Run>>
where
    F: FnMut(&Split) -> Result<Vec<Run>>,
{
    let mut choices: Vec<Vec<Option<usize>>> = Vec::new();
    let mut knobs: Vec<f64> = Vec::new();
    for split in splits {
        let runs = fit(split)?;
        if choices.is_empty() {
            knobs = runs.iter().map(|r| r.knob).collect();
            choices = vec![vec![None; data.len()]; runs.len()];
        }
        if runs.len() != knobs.len() || runs.iter().zip(&knobs).any(|(r, k)| r.knob.to_bits() != k.to_bits()) {
            return Err(crate::config_error(format!("`{}`: every split must sweep the same knobs", split.name)));
        }
        for (run, pooled) in runs.iter().zip(&mut choices) {
            if run.choices.len() != split.test_rows.len() {
                return Err(crate::config_error(format!(
                    "`{}`: the sweep routed {} rows, the split holds out {}",
                    split.name,
                    run.choices.len(),
                    split.test_rows.len()
                )));
            }
            for (&row, &model) in split.test_rows.iter().zip(&run.choices) {
                let slot = pooled
                    .get_mut(row)
                    .ok_or_else(|| crate::config_error(format!("row {row} is not in the data set")))?;
                if slot.replace(model).is_some() {
                    return Err(crate::config_error(format!("row {row} is held out by more than one split")));
                }
            }
        }
    }
    knobs
        .iter()
        .zip(choices)
        .map(|(&knob, pooled)| {
            let choices: Vec<usize> = pooled
                .into_iter()
                .enumerate()
                .map(|(i, c)| c.ok_or_else(|| crate::config_error(format!("row {i} is held out by no split"))))
                .collect::<Result<_>>()?;
            Run::from_choices(data, knob, choices)
        })
        .collect()
}

/// Routes each row of `data` once with `router`, then ranks its candidates with `policy(knob)` at
/// every knob: one run per knob, with the choices [`sweep`](super::replay::sweep) would make for a
/// policy that ranks from the candidates' `p`, cost and latency alone.
///
/// The policies see the candidates, the catalog, the request and `uniform` as the router would give
/// them, but empty [`Signals`]: a policy that reads signals ([`Rules`](switchyard::Rules) on intent)
/// needs [`sweep`](super::replay::sweep).
///
/// # Errors
/// As [`sweep`](super::replay::sweep); a policy's error.
pub fn sweep_policy<P, F>(data: &Dataset, router: &Router, knobs: &[f64], policy: F) -> Result<Vec<Run>>
where
    P: Policy,
    F: Fn(f64) -> P,
{
    if knobs.is_empty() {
        return Err(crate::invalid_input("a sweep needs at least one knob value"));
    }
    let catalog = router.catalog();
    let map: Vec<usize> = catalog
        .models()
        .iter()
        .map(|m| {
            data.model_index(m.id.as_str()).ok_or_else(|| {
                crate::config_error(format!("catalog model `{}` is not in data set `{}`", m.id, data.name()))
            })
        })
        .collect::<Result<_>>()?;
    let policies: Vec<P> = knobs.iter().map(|&k| policy(k)).collect();
    for p in &policies {
        p.validate(catalog)?;
    }
    let mut choices = vec![Vec::with_capacity(data.len()); knobs.len()];
    let mut request = Request::from_messages(vec![Message::user(String::new())]);
    let signals = Signals::default();
    let u = uniform(None, 0);
    for (r, row) in data.rows().iter().enumerate() {
        if let Some(ContentPart::Text { text }) = request.messages.first_mut().and_then(|m| m.content.first_mut()) {
            text.clear();
            text.push_str(row.prompt());
        }
        let decision = router
            .route(&request)
            .map_err(|e| Error::new(e.kind(), format!("row {r} (`{}`) of `{}`: {e}", row.id(), data.name())))?;
        let input = PolicyInput::new(&request, &signals, catalog, decision.candidates(), u);
        for (p, out) in policies.iter().zip(&mut choices) {
            let ranking = p.rank(&input)?;
            let first = ranking.order().first().ok_or_else(|| {
                Error::new(switchyard::ErrorKind::Routing, format!("policy `{}` ranked nothing", p.name()))
            })?;
            out.push(map[first.model]);
        }
    }
    knobs.iter().zip(choices).map(|(&knob, choices)| Run::from_choices(data, knob, choices)).collect()
}
