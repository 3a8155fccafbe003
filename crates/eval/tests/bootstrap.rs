//! Bootstrap intervals (`eval::bootstrap`) of a fitted router's sweep on a synthetic data set, through
//! the public API only.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

use switchyard::Utility;
use switchyard_eval::bootstrap::{BootstrapOptions, CurveIntervals, Interval, bootstrap, bootstrap_point};
use switchyard_eval::catalog::{FittedCatalog, Prices};
use switchyard_eval::data::{Dataset, Row, SplitKind};
use switchyard_eval::replay::{Report, Run, log_grid, replay, sweep};

const PROMPTS: [&str; 6] = [
    "hi there, how are you?",
    "Write a Python function that parses a CSV file and returns a list of dicts.",
    "Solve 3x^2 + 2x - 5 = 0 and compute the sum of the roots, step by step.",
    "Prove that there are infinitely many primes. Explain why each step holds.",
    "Summarize the following article in three bullet points: the council met on Tuesday.",
    "Compare the tradeoffs of the two strategies and justify which is optimal, exactly.",
];

/// Three models, dearer ones right more often, hard prompts (proofs, equations) harder for the
/// cheap model; costs vary by row.
fn synthetic(rows: usize) -> Dataset {
    let mut b = Dataset::builder(["cheap", "mid", "dear"]).name("synthetic");
    for r in 0..rows {
        let p = r % PROMPTS.len();
        let hard = p == 2 || p == 3 || p == 5;
        let prompt = format!("{} (case {r})", PROMPTS[p]);
        let split = if r % 4 == 0 { "test" } else { "train" };
        let scores = [f64::from(!hard && r % 3 != 0), f64::from(r % 5 != 0), f64::from(r % 11 != 0)];
        let k = 1.0 + (r % 7) as f64;
        let costs = [0.001 * k, 0.01 * k, 0.1 * k];
        b.push(Row::new(prompt).with_split(SplitKind::Own, split), &scores, Some(&costs)).unwrap();
    }
    b.build().unwrap()
}

fn prices() -> Prices {
    Prices::new([("cheap", 0.1), ("mid", 1.0), ("dear", 10.0)])
}

/// Every interval of a curve bootstrap.
fn all(ci: &CurveIntervals) -> Vec<Interval> {
    [ci.router, ci.zero_router, ci.difference]
        .iter()
        .flat_map(|f| [f.aiq.unwrap(), f.cost_at_quality.unwrap()])
        .collect()
}

#[test]
fn a_sweeps_intervals_match_the_report_and_shrink_with_more_rows() {
    let data = synthetic(800);
    let train = data.in_split(SplitKind::Own, "train");
    let test = data.in_split(SplitKind::Own, "test");
    let fitted = FittedCatalog::fit(&train, &prices()).unwrap();
    let build = |v: f64| fitted.builder().policy(Utility::new().answer_value(v)).build();
    let runs = sweep(&test, &log_grid(1e-7, 1e3, 31), build).unwrap();
    let report = Report::new(&test, &runs).unwrap();

    let options = BootstrapOptions::new().resamples(500).seed(11);
    let ci = bootstrap(&test, &runs, &options).unwrap();
    assert_eq!((ci.rows, ci.resamples, ci.seed, ci.level), (test.len(), 500, 11, 0.95));
    assert_eq!(ci.router.aiq.map(|i| i.estimate), report.router.aiq);
    assert_eq!(ci.router.cost_at_quality.map(|i| i.estimate), report.router.cost_at(0.95));
    assert_eq!(ci.zero_router.aiq.map(|i| i.estimate), report.zero_router.aiq);
    assert_eq!(ci.zero_router.cost_at_quality.map(|i| i.estimate), report.zero_router.cost_at(0.95));
    for i in all(&ci) {
        assert!(i.contains(i.estimate) && i.width() > 0.0, "{i:?}");
    }
    assert_eq!(ci, bootstrap(&test, &runs, &options).unwrap());
    let json = serde_json::to_value(&ci).unwrap();
    assert!(json["difference"]["aiq"]["lower"].as_f64().is_some());

    // The same rows four times over, with the same choices: intervals about half as wide (1/√4).
    let rows: Vec<usize> = (0..4 * test.len()).map(|i| i % test.len()).collect();
    let big = test.subset(&rows).unwrap();
    let big_runs: Vec<Run> = runs
        .iter()
        .map(|r| Run::from_choices(&big, r.knob, rows.iter().map(|&i| r.choices[i]).collect()).unwrap())
        .collect();
    let big_ci = bootstrap(&big, &big_runs, &options).unwrap();
    for (small, big) in [(ci.router.aiq, big_ci.router.aiq), (ci.zero_router.aiq, big_ci.zero_router.aiq)] {
        let (small, big) = (small.unwrap(), big.unwrap());
        assert!((small.estimate - big.estimate).abs() < 1e-9);
        let ratio = big.width() / small.width();
        assert!((0.35..0.7).contains(&ratio), "width {} on 4× the rows, {} on the rows", big.width(), small.width());
    }
}

#[test]
fn a_calibrated_points_intervals_are_its_fractions_of_the_best_model() {
    let data = synthetic(400);
    let train = data.in_split(SplitKind::Own, "train");
    let test = data.in_split(SplitKind::Own, "test");
    let fitted = FittedCatalog::fit(&train, &prices()).unwrap();
    let router = fitted.builder().policy(Utility::new().answer_value(0.05)).build().unwrap();
    let run = replay(&router, &test).unwrap();
    let report = Report::new(&test, std::slice::from_ref(&run)).unwrap();
    let best = report.best_single.point;
    let ci = bootstrap_point(&test, &run, &BootstrapOptions::new().resamples(300)).unwrap();
    let (q, c) = (ci.quality_fraction.unwrap(), ci.cost_fraction.unwrap());
    assert_eq!(q.estimate, run.point.quality / best.quality);
    assert_eq!(c.estimate, run.point.cost / best.cost);
    assert!(q.contains(q.estimate) && c.contains(c.estimate), "{q:?} {c:?}");
    assert!(bootstrap_point(&test, &run, &BootstrapOptions::new().resamples(0)).is_err());
}
