//! Replays and sweeps (`eval::replay`) and fitted catalogs (`eval::catalog`): on synthetic data sets
//! where the answer is known, and on the RouterBench test split from the repository's `data/` (a
//! missing file fails the test, naming the file).

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]
#![allow(clippy::print_stdout, reason = "tests report how long they took")]

mod repo_data;
mod support;

use std::time::Instant;

use support::{PROMPTS, prices};
use switchyard::config::{PolicyConfig, RouterConfig};
use switchyard::policy::{Candidate, PolicyInput};
use switchyard::{Catalog, ErrorKind, ModelProfile, Pricing, Ranking, Router, Utility};
use switchyard_eval::calibrate::{Target, calibrate};
use switchyard_eval::catalog::{FittedCatalog, Prices};
use switchyard_eval::data::{Dataset, Format, Row, SplitKind};
use switchyard_eval::metrics;
use switchyard_eval::replay::{Report, log_grid, replay, sweep, value_grid, value_range};

/// Three models; costs per row in the same order as the prices (cheap < mid < dear on every row),
/// varying by row; scores planted so that dearer models are right more often.
fn synthetic(rows: usize) -> Dataset {
    let mut b = Dataset::builder(["cheap", "mid", "dear"]).name("synthetic");
    for r in 0..rows {
        let prompt = format!("{} (case {r})", PROMPTS[r % PROMPTS.len()]);
        let split = if r % 4 == 0 { "test" } else { "train" };
        let scores = [f64::from(r % 3 == 0), f64::from(r % 5 != 0), f64::from(r % 11 != 0)];
        let k = 1.0 + (r % 7) as f64;
        let costs = [0.001 * k, 0.01 * k, 0.1 * k];
        b.push(Row::new(prompt).with_split(SplitKind::Own, split), &scores, Some(&costs)).unwrap();
    }
    b.build().unwrap()
}

#[test]
fn a_policy_that_always_picks_one_model_gives_its_single_point() {
    let data = synthetic(60);
    let singles = metrics::single_model_points(data.outcomes().unwrap());
    // The catalog lists the models in another order than the data set: choices are mapped by id.
    let catalog = Catalog::new(
        ["dear", "cheap", "mid"].map(|id| ModelProfile::new(id, "p").with_pricing(Pricing::per_mtok(1.0, 1.0))),
    )
    .unwrap();
    for (k, model) in data.models().iter().enumerate() {
        let target = model.as_str().to_owned();
        let policy = move |input: &PolicyInput<'_>| {
            // Rankings are in the order pushed: the target first, then the rest.
            let mut r = Ranking::new();
            let (first, rest): (Vec<&Candidate>, Vec<&Candidate>) =
                input.candidates.iter().partition(|c| input.profile(c).id.as_str() == target);
            for c in first.into_iter().chain(rest) {
                r.push(c.model, 0.0);
            }
            Ok(r)
        };
        let router = Router::builder().catalog(catalog.clone()).policy(policy).build().unwrap();
        let run = replay(&router, &data).unwrap();
        assert_eq!(run.point, singles[k], "model {model}");
        assert_eq!(run.choices, vec![k; data.len()]);
        let mut one_hot = vec![0.0; 3];
        one_hot[k] = 1.0;
        assert_eq!(run.shares, one_hot);
    }
}

#[test]
fn an_answer_value_sweep_is_monotone_in_cost_and_the_report_is_consistent() {
    let data = synthetic(200);
    let train = data.in_split(SplitKind::Own, "train");
    let test = data.in_split(SplitKind::Own, "test");
    let fitted = FittedCatalog::fit(&train, &prices()).unwrap();
    let grid = log_grid(1e-7, 1e3, 25);
    assert_eq!(grid.len(), 25);
    assert!((grid[0] - 1e-7).abs() < 1e-19 && (grid[24] - 1e3).abs() < 1e-9);
    let runs = sweep(&test, &grid, |v| fitted.builder().policy(Utility::new().answer_value(v)).build()).unwrap();
    let outcomes = test.outcomes().unwrap();
    let singles = metrics::single_model_points(outcomes);
    for w in runs.windows(2) {
        assert!(w[1].point.cost >= w[0].point.cost - 1e-12, "cost fell from V {} to V {}", w[0].knob, w[1].knob);
    }
    // At the ends: always the cheapest, always the most able model (dear).
    assert_eq!(runs[0].point, singles[0]);
    assert_eq!(runs[24].point, singles[2]);
    for run in &runs {
        assert!((run.shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(metrics::operating_point(outcomes, &run.choices).unwrap(), run.point);
    }

    let report = Report::new(&test, &runs).unwrap();
    assert_eq!(report.rows, test.len());
    assert_eq!(report.models, ["cheap", "mid", "dear"]);
    assert_eq!(report.best_single.model, "dear");
    let x_max = metrics::max_cost(&singles).unwrap();
    assert_eq!(report.x_max, x_max);
    assert_eq!(report.zero_router.aiq, metrics::aiq(&metrics::zero_router(outcomes), x_max));
    assert_eq!(report.oracle, metrics::oracle_point(outcomes));
    let aiq = report.router.aiq.unwrap();
    assert!((0.0..=1.0).contains(&aiq));
    // The sweep reaches both ends, so its hull is at least the segment between them.
    let ends = metrics::cost_at_quality(&[singles[0], singles[2]], 0.99, singles[2]).unwrap();
    assert!(report.router.cost_at(0.99).unwrap() <= ends + 1e-12);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["points"].as_array().unwrap().len(), 25);
    assert!(json["points"][0].get("choices").is_none());
}

#[test]
fn a_calibrated_config_written_as_toml_reproduces_the_router() {
    let data = synthetic(200);
    let train = data.in_split(SplitKind::Own, "train");
    let test = data.in_split(SplitKind::Own, "test");
    let fitted = FittedCatalog::fit(&train, &prices()).unwrap();
    let build = |v: f64| fitted.builder().policy(Utility::new().answer_value(v)).build();
    let c = calibrate(&train, Target::Quality(0.9), build).unwrap();
    assert!(c.quality_fraction >= 0.9 - 1e-12, "{c:?}");
    // Nothing cheaper on the training rows' sweep meets the target.
    let runs = sweep(&train, &log_grid(1e-7, 1e3, 40), build).unwrap();
    let best_q = metrics::single_model_points(train.outcomes().unwrap())[2].quality;
    for r in runs.iter().filter(|r| r.point.quality >= 0.9 * best_q) {
        assert!(r.point.cost >= c.point.cost - 1e-12, "V {} costs {} < {}", r.knob, r.point.cost, c.point.cost);
    }

    let mut config = fitted.config(PolicyConfig::default());
    c.apply(&mut config).unwrap();
    let text = config.to_toml_string().unwrap();
    let loaded = RouterConfig::from_toml_str(&text).unwrap();
    assert_eq!(loaded, config);
    let from_file = replay(&loaded.builder().unwrap().build().unwrap(), &test).unwrap();
    let direct = replay(&build(c.knob).unwrap(), &test).unwrap();
    assert_eq!(from_file.choices, direct.choices);
    assert_eq!(replay(&loaded.builder().unwrap().build().unwrap(), &train).unwrap().point, c.point);
}

#[test]
fn fitted_abilities_are_training_accuracies() {
    let data = synthetic(200);
    let train = data.in_split(SplitKind::Own, "train");
    let fitted = FittedCatalog::fit(&train, &prices()).unwrap();
    let outcomes = train.outcomes().unwrap();
    for (m, single) in metrics::single_model_points(outcomes).iter().enumerate() {
        let id = train.models()[m].as_str();
        let p = (single.quality * train.len() as f64 + 0.5) / (train.len() as f64 + 1.0);
        let profile = fitted.catalog().get(id).unwrap();
        assert!((profile.ability.overall - (p / (1.0 - p)).ln()).abs() < 1e-12, "{id}");
        assert_eq!(profile.pricing, Pricing::per_mtok(prices().get(id).unwrap(), prices().get(id).unwrap()));
    }
    assert_eq!(fitted.intent_rows().values().sum::<usize>(), train.len());
    let missing = Prices::new([("cheap", 0.1)]);
    assert_eq!(FittedCatalog::fit(&train, &missing).unwrap_err().kind(), ErrorKind::Config);
}

#[test]
fn prices_read_models_json_sections() {
    let json = r#"{"a": {"note": "x", "prices": {"m1": 1.5, "m2": 0.2}}, "b": {"source": "y", "p": {"m1": 24.7}}}"#;
    let a = Prices::from_models_json(json, "a").unwrap();
    assert_eq!((a.get("m1"), a.get("m2")), (Some(1.5), Some(0.2)));
    assert_eq!(Prices::from_models_json(json, "b").unwrap().get("m1"), Some(24.7));
    for bad in [(json, "c"), ("{", "a"), (r#"{"a": {"p": {"m": -1}}}"#, "a"), (r#"{"a": {"note": "x"}}"#, "a")] {
        assert_eq!(Prices::from_models_json(bad.0, bad.1).unwrap_err().kind(), ErrorKind::Config, "{bad:?}");
    }
}

#[test]
fn replay_errors() {
    let data = synthetic(10);
    let catalog = Catalog::new([ModelProfile::new("other", "p")]).unwrap();
    let router = Router::builder().catalog(catalog).build().unwrap();
    let e = replay(&router, &data).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("`other`"), "{e}");
    let fitted = FittedCatalog::fit(&data, &prices()).unwrap();
    assert_eq!(sweep(&data, &[], |_| fitted.builder().build()).unwrap_err().kind(), ErrorKind::InvalidRequest);
    assert_eq!(Report::new(&data, &[]).unwrap_err().kind(), ErrorKind::InvalidRequest);
    assert!(log_grid(0.0, 1.0, 5).is_empty());
    assert_eq!(log_grid(2.0, 8.0, 1), vec![2.0]);
}

#[test]
fn the_value_grid_scales_with_the_data_sets_costs() {
    let rows = |costs: [f64; 2]| {
        let mut b = Dataset::builder(["cheap", "dear"]);
        b.push(Row::new("a"), &[1.0, 1.0], Some(&costs)).unwrap();
        b.push(Row::new("b"), &[0.0, 1.0], Some(&[costs[0], 3.0 * costs[1]])).unwrap();
        b.build().unwrap()
    };
    // The dearest model's mean cost per row is 0.02 USD: V from 4e-7 to 4e3.
    let (lo, hi) = value_range(&rows([0.001, 0.01])).unwrap();
    assert!((lo - 4e-7).abs() < 1e-18 && (hi - 4e3).abs() < 1e-9, "{lo} {hi}");
    // A price per call of 24.7 (RouteLLM's GPT-4) reaches far beyond 1e3.
    let grid = value_grid(&rows([0.24, 24.7]), 301).unwrap();
    assert_eq!(grid.len(), 301);
    assert!((grid[300] / (2e5 * 2.0 * 24.7) - 1.0).abs() < 1e-12 && grid[0] < 1e-3, "{:?}", (grid[0], grid[300]));
    let e = value_range(&rows([0.0, 0.0])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("positive mean cost"), "{e}");
    let mut b = Dataset::builder(["m"]);
    b.push(Row::new("a"), &[1.0], None).unwrap();
    assert!(value_range(&b.build().unwrap()).unwrap_err().to_string().contains("no costs"));
}

#[test]
fn routerbench_test_split_report_is_well_formed() {
    let all = Dataset::load(repo_data::file(repo_data::ROUTERBENCH), Format::RouterBench).unwrap();
    let train = all.in_split(SplitKind::RouterDc, "train");
    let test = all.in_split(SplitKind::RouterDc, "test");
    assert_eq!((train.len(), test.len()), (2217, 947));
    let prices = Prices::load(repo_data::file(repo_data::MODELS), "routerbench").unwrap();
    let fitted = FittedCatalog::fit(&train, &prices).unwrap();
    let t = Instant::now();
    let grid = log_grid(1e-7, 1e3, 10);
    let runs = sweep(&test, &grid, |v| fitted.builder().policy(Utility::new().answer_value(v)).build()).unwrap();
    println!("RouterBench test: 10-point sweep over 947 rows in {:.3} s (this build)", t.elapsed().as_secs_f64());
    let report = Report::new(&test, &runs).unwrap();
    assert_eq!(report.rows, 947);
    assert_eq!(report.best_single.model, "gpt-4-1106-preview");
    let aiq = report.router.aiq.unwrap();
    assert!((0.0..=1.0).contains(&aiq), "{aiq}");
    let zero = report.zero_router.aiq.unwrap();
    assert!((zero - 0.810).abs() < 5e-4, "zero router AIQ {zero}");
    assert!((report.zero_router.cost_at(0.95).unwrap() - 0.590).abs() < 5e-4);
    assert!((report.oracle.quality - 0.976).abs() < 5e-4);
    for run in &report.points {
        assert!((run.shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!((0.0..=1.0).contains(&run.point.quality));
    }
    // APGR and CPT: GPT-4 against the cheapest other model; the zero router's curve runs from the
    // hull vertex before GPT-4 (share 0) to GPT-4 (share 1).
    let g = report.gap_models.as_ref().unwrap();
    let cheapest = report
        .singles
        .iter()
        .filter(|s| s.model != g.strong.model)
        .min_by(|a, b| a.point.cost.total_cmp(&b.point.cost));
    assert_eq!(g.weak.model, cheapest.unwrap().model);
    let singles: Vec<_> = report.singles.iter().map(|s| s.point).collect();
    let h = metrics::hull(&singles);
    assert_eq!(h.last(), Some(&g.strong.point));
    let before = h[h.len() - 2].quality;
    let (w, s) = (g.weak.point.quality, g.strong.point.quality);
    let zero_apgr = ((before + s) / 2.0 - w) / (s - w);
    assert!((report.zero_router.apgr.unwrap() - zero_apgr).abs() < 1e-12);
    let router_apgr = report.router.apgr.unwrap();
    let cpt80 = report.router.cpt_at(0.8).unwrap();
    assert!((0.0..=1.0).contains(&cpt80), "{cpt80}");
    let oracle = report.oracle_curve.as_ref().unwrap();
    assert!(oracle.apgr.unwrap() > router_apgr, "the two-model oracle beats the sweep");
    println!(
        "RouterBench test: router AIQ {aiq:.3} APGR {router_apgr:.3}, zero router AIQ {zero:.3} APGR {zero_apgr:.3}"
    );
}

/// The default, untrained router (the built-in difficulty and intent classifiers with abilities
/// fitted on the training rows, `Utility` swept over its answer value) is at least as good as the
/// zero router, which mixes single models at random, on every shared data set's reported rows:
/// RouterBench's RouterDC test split, and fold 0 of 5 of MMLU and of GSM8K (as
/// `examples/evaluate.rs --router heuristic` reports them).
#[test]
fn the_default_router_with_fitted_abilities_beats_the_zero_router_on_every_shared_set() {
    let (rb, rl, models) = (
        repo_data::file(repo_data::ROUTERBENCH),
        repo_data::file(repo_data::ROUTELLM),
        repo_data::file(repo_data::MODELS),
    );
    let all = Dataset::load(&rb, Format::RouterBench).unwrap();
    let mut sets = vec![(
        "routerbench".to_owned(),
        all.in_split(SplitKind::RouterDc, "train"),
        all.in_split(SplitKind::RouterDc, "test"),
        Prices::load(&models, "routerbench").unwrap(),
    )];
    let routellm = Dataset::load(&rl, Format::RouteLlm).unwrap();
    for task in ["mmlu", "gsm8k"] {
        let rows = routellm.of_task(task).without_contaminated();
        let (held, rest): (Vec<usize>, Vec<usize>) = (0..rows.len()).partition(|i| i % 5 == 0);
        let prices = Prices::load(&models, "routellm").unwrap();
        sets.push((task.to_owned(), rows.subset(&rest).unwrap(), rows.subset(&held).unwrap(), prices));
    }
    for (name, train, test, prices) in sets {
        let fitted = FittedCatalog::fit(&train, &prices).unwrap();
        let grid = value_grid(&train, 301).unwrap();
        let runs = sweep(&test, &grid, |v| fitted.builder().policy(Utility::new().answer_value(v)).build()).unwrap();
        let report = Report::new(&test, &runs).unwrap();
        let (router, zero) = (report.router.aiq.unwrap(), report.zero_router.aiq.unwrap());
        println!("{name}: default router AIQ {router:.4}, zero router {zero:.4}");
        assert!(router >= zero, "{name}: the default router's AIQ {router:.4} is below the zero router's {zero:.4}");
    }
}
