//! The learned classifier end to end: trained on real routing data from the repository's `data/` (a
//! subset, to keep the suite fast; a missing file fails the test, naming it), in a router, in a
//! config file; and the cross-validation helpers of `eval::cv`.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

use std::path::{Path, PathBuf};

use switchyard::classify::{LearnedClassifier, LearnedModel};
use switchyard::config::RouterConfig;
use switchyard::cost::LearnedCostModel;
use switchyard::{ErrorKind, Request, Router, RouterBuilder, Utility};
use switchyard_eval::catalog::{FittedCatalog, Prices};
use switchyard_eval::cv::{self, Split, cross_validate, k_fold, leave_one_task_out};
use switchyard_eval::data::{Dataset, Format, Row, SplitKind};
use switchyard_eval::replay::{Report, Run, log_grid, value_grid};
use switchyard_eval::{Fallback, TrainConfig, Trainer};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

fn routerbench() -> Option<Dataset> {
    let path = data_dir().join("routerbench_arc_mbpp_winogrande.jsonl.gz");
    assert!(path.is_file(), "missing `{}`: the repository's data/ should hold it", path.display());
    Some(Dataset::load(path, Format::RouterBench).unwrap())
}

/// A fast configuration for tests: fewer epochs, one `l2`.
fn quick() -> TrainConfig {
    let mut c = TrainConfig::default();
    c.epochs = 4;
    c.l2 = vec![3000.0];
    c
}

fn every_nth(data: &Dataset, n: usize) -> Dataset {
    let keep: Vec<usize> = (0..data.len()).step_by(n).collect();
    data.subset(&keep).unwrap()
}

#[test]
fn on_routerbench_the_learned_router_beats_the_zero_router_on_the_test_split() {
    let Some(all) = routerbench() else { return };
    let train = every_nth(&all.in_split(SplitKind::RouterDc, "train"), 3);
    let test = all.in_split(SplitKind::RouterDc, "test");
    let model = Trainer::new(quick()).fit(&train, "every 3rd training row").unwrap();
    assert_eq!(model.info().tasks.len(), 3);
    let prices = Prices::load(data_dir().join("models.json.gz"), "routerbench").unwrap();
    let fitted = FittedCatalog::fit(&train, &prices).unwrap();
    let learned = LearnedClassifier::new(model);
    learned.check_catalog(fitted.catalog()).unwrap();
    let router = RouterBuilder::new().catalog(fitted.catalog().clone()).classifier(learned, 1.0).build().unwrap();
    let runs = cv::sweep_policy(&test, &router, &log_grid(1e-7, 1e3, 30), |v| Utility::new().answer_value(v)).unwrap();
    let report = Report::new(&test, &runs).unwrap();
    let (aiq, zero) = (report.router.aiq.unwrap(), report.zero_router.aiq.unwrap());
    // Full training reaches 0.842 against 0.810; a third of the rows and four epochs still learn
    // which task each prompt is.
    assert!(aiq > zero + 0.015, "AIQ {aiq:.4}, zero router {zero:.4}");
    let (cost, zero_cost) = (report.router.cost_at(0.95).unwrap(), report.zero_router.cost_at(0.95).unwrap());
    assert!(cost < 0.5 * zero_cost, "cost@95 {cost:.3}, zero router {zero_cost:.3}");
}

#[test]
fn a_held_out_task_falls_back_to_quality_following_price() {
    let Some(full) = routerbench() else { return };
    let all = every_nth(&full, 2);
    // ARC prompts no model below trains on: the rows `every_nth` leaves out.
    let unseen_arc: Vec<&Row> =
        full.rows().iter().skip(1).step_by(2).filter(|r| r.task() == "arc-challenge").take(50).collect();
    let splits = leave_one_task_out(&all).unwrap();
    assert_eq!(splits.len(), 3);
    let prices = Prices::load(data_dir().join("models.json.gz"), "routerbench").unwrap();
    // MBPP's coding prompts share little wording with the science and pronoun questions; Winogrande's
    // sentences are plain English that ARC's questions share many word pairs with, and only their
    // opening ("Please answer with the letter of the correct answer.") marks them as new.
    for held in ["mbpp", "winogrande"] {
        let split = splits.iter().find(|s| s.name.contains(held)).unwrap();
        // Trust gated by familiarity, as `TrainConfig::min_trust` 0 (the default) asks.
        let mut config = quick();
        config.min_trust = 0.0;
        let model = Trainer::new(config).fit(&split.train, "two tasks").unwrap();
        let trust =
            |rows: &[&Row]| rows.iter().map(|r| model.predict(r.prompt()).trust).sum::<f64>() / rows.len() as f64;
        let test: Vec<&Row> = split.test.rows().iter().collect();
        assert!(trust(&test) < 0.05, "mean trust on held-out {held}: {:.3}", trust(&test));
        // New prompts of a trained task keep the model's trust.
        assert!(trust(&unseen_arc) > 0.9, "mean trust on new prompts of a trained task: {:.3}", trust(&unseen_arc));
        // Unsure, the router falls back to quality following price: on the held-out task it does
        // as well as the zero router, which knows that task's accuracies.
        let fitted = FittedCatalog::fit(&split.train, &prices).unwrap();
        // The grid `evaluate --hold-out` sweeps: 301 answer values scaled to the training rows'
        // costs. The hull matches the zero router's at that density; on 50 points of the scaled
        // grid Winogrande fell 0.024 below it (the grid missed where single models are chosen alone).
        let report = sweep_report(model, &fitted, &split.train, &split.test, 301);
        let (aiq, zero) = (report.router.aiq.unwrap(), report.zero_router.aiq.unwrap());
        assert!(aiq > zero - 0.01, "held-out {held}: AIQ {aiq:.4}, zero router {zero:.4}");
    }
}

#[test]
fn a_learned_classifier_loads_from_a_router_config() {
    let Some(all) = routerbench() else { return };
    let train = every_nth(&all.in_split(SplitKind::RouterDc, "train"), 8);
    let model = Trainer::new(quick()).fit(&train, "every 8th training row").unwrap();
    let dir = std::env::temp_dir().join(format!("switchyard-learned-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rb.swlm");
    model.save(&file).unwrap();
    assert!(LearnedModel::load(&file).unwrap() == model);

    let models: String = train
        .models()
        .iter()
        .map(|m| {
            format!(
                "[[models]]\nid = \"{m}\"\nprovider = \"sim\"\ncontext_window = 32768\nmax_output_tokens = 4096\n\
                 pricing = {{ input_per_mtok = 1.0, output_per_mtok = 1.0 }}\n\n"
            )
        })
        .collect();
    let config = |path: &Path| {
        format!(
            "[[classifiers]]\nkind = \"learned\"\nweight = 1.0\nmodel = \"{}\"\n\n[policy]\nkind = \"utility\"\nanswer_value_usd = 1e9\n\n{models}",
            path.display()
        )
    };
    let router = RouterConfig::from_toml_str(&config(&file)).unwrap().builder().unwrap().build().unwrap();
    let direct = RouterBuilder::new()
        .catalog(router.catalog().clone())
        .classifier(LearnedClassifier::new(model), 1.0)
        .policy(Utility::new().answer_value(1e9))
        .build()
        .unwrap();
    for row in all.in_split(SplitKind::RouterDc, "test").rows().iter().take(40) {
        let request = Request::new(row.prompt());
        assert_eq!(router.route(&request).unwrap().model(), direct.route(&request).unwrap().model());
    }

    let missing = RouterConfig::from_toml_str(&config(&dir.join("nope.swlm"))).unwrap().builder().unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Config);
    assert!(missing.to_string().contains("classifiers[0].model"), "{missing}");
    std::fs::write(dir.join("bad.swlm"), b"SWLM\r\n\x1a\n\x01\0\0\0garbage").unwrap();
    let corrupt = RouterConfig::from_toml_str(&config(&dir.join("bad.swlm"))).unwrap().builder().unwrap_err();
    assert!(corrupt.to_string().contains("bad.swlm"), "{corrupt}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two models; the first answers rows of task "a" only.
fn two_tasks(rows: usize) -> Dataset {
    let mut b = Dataset::builder(["small", "large"]).name("two-tasks");
    for i in 0..rows {
        let (task, prompt, small) =
            if i % 2 == 0 { ("a", format!("greet person {i}"), 1.0) } else { ("b", format!("prove lemma {i}"), 0.0) };
        b.push(Row::new(prompt).with_task(task), &[small, 1.0], Some(&[0.001, 0.01])).unwrap();
    }
    b.build().unwrap()
}

#[test]
fn folds_partition_the_rows_and_cross_validation_pools_them() {
    let data = two_tasks(23);
    let folds = k_fold(&data, 5).unwrap();
    assert_eq!(folds.len(), 5);
    let mut held: Vec<usize> = folds.iter().flat_map(|f| f.test_rows.iter().copied()).collect();
    held.sort_unstable();
    assert_eq!(held, (0..23).collect::<Vec<_>>());
    for f in &folds {
        assert_eq!(f.train.len() + f.test.len(), 23);
        assert!(f.test_rows.iter().all(|i| folds.iter().filter(|g| g.test_rows.contains(i)).count() == 1));
    }
    assert!(k_fold(&data, 1).is_err());
    assert!(k_fold(&two_tasks(3), 5).is_err());

    // A router that knows the answer: the small model for task "a", the large one otherwise.
    let runs = cross_validate(&data, &folds, |split| {
        let choices: Vec<usize> = split.test.rows().iter().map(|r| usize::from(r.task() != "a")).collect();
        Ok(vec![Run::from_choices(&split.test, 1.0, choices)?])
    })
    .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].point.quality, 1.0);
    assert_eq!(runs[0].choices.len(), 23);

    // Overlapping or missing rows are errors.
    let again = |f: &Split| {
        Split::new("again", f.train.subset(&[0]).unwrap(), f.test.subset(&[0]).unwrap(), vec![f.test_rows[0]])
    };
    let twice = [again(&folds[0]), again(&folds[0])];
    let e = cross_validate(&data, &twice, |s| Ok(vec![Run::from_choices(&s.test, 1.0, vec![0; s.test.len()])?]));
    assert_eq!(e.unwrap_err().kind(), ErrorKind::Config);
    let e = cross_validate(&data, &folds[..1], |s| Ok(vec![Run::from_choices(&s.test, 1.0, vec![0; s.test.len()])?]));
    assert!(e.unwrap_err().to_string().contains("held out by no split"));
}

#[test]
fn the_fast_sweep_matches_the_full_sweep() {
    let data = two_tasks(40);
    let model = Trainer::new(quick()).fit(&data, "two tasks").unwrap();
    let catalog = switchyard::Catalog::new([
        switchyard::ModelProfile::new("small", "p").with_pricing(switchyard::Pricing::per_mtok(0.1, 0.1)),
        switchyard::ModelProfile::new("large", "p").with_pricing(switchyard::Pricing::per_mtok(10.0, 10.0)),
    ])
    .unwrap();
    let learned = LearnedClassifier::new(model);
    let grid = log_grid(1e-7, 1e3, 15);
    let build = |l: f64| -> switchyard::Result<Router> {
        RouterBuilder::new()
            .catalog(catalog.clone())
            .classifier(learned.clone(), 1.0)
            .policy(Utility::new().answer_value(l))
            .build()
    };
    let full = switchyard_eval::replay::sweep(&data, &grid, build).unwrap();
    let fast = cv::sweep_policy(&data, &build(1.0).unwrap(), &grid, |v| Utility::new().answer_value(v)).unwrap();
    for (a, b) in full.iter().zip(&fast) {
        assert_eq!(a.choices, b.choices, "V = {}", a.knob);
    }
    // Somewhere on the grid the learned router sends greetings to the small model and proofs to
    // the large one: full quality at a fraction of the cost.
    assert!(
        fast.iter().any(|r| r.point.quality == 1.0 && r.shares[0] > 0.4),
        "{:?}",
        fast.iter().map(|r| (r.point, &r.shares)).collect::<Vec<_>>()
    );
}

#[test]
fn a_custom_split_names_its_rows() {
    let data = two_tasks(10);
    let s = Split::new("mine", data.subset(&[0, 1, 2]).unwrap(), data.subset(&[3]).unwrap(), vec![3]);
    assert_eq!(s.test_rows, [3]);
}

/// A router on `model` with the fitted catalog and learned costs, swept over `points` answer values
/// (scaled to the training rows' costs, as `evaluate` does) on `test`.
fn sweep_report(model: LearnedModel, fitted: &FittedCatalog, train: &Dataset, test: &Dataset, points: usize) -> Report {
    let router = RouterBuilder::new()
        .cost_model(LearnedCostModel::new(fitted.catalog()))
        .catalog(fitted.catalog().clone())
        .classifier(LearnedClassifier::new(model), 1.0)
        .build()
        .unwrap();
    let grid = value_grid(train, points).unwrap();
    let runs = cv::sweep_policy(test, &router, &grid, |v| Utility::new().answer_value(v)).unwrap();
    Report::new(test, &runs).unwrap()
}

fn routellm() -> Option<Dataset> {
    let path = data_dir().join("routellm_mmlu_gsm8k.jsonl.gz");
    assert!(path.is_file(), "missing `{}`: the repository's data/ directory should hold it", path.display());
    Some(Dataset::load(path, Format::RouteLlm).unwrap().without_contaminated())
}

#[test]
fn trained_on_gsm8k_the_router_saves_on_mmlu() {
    let Some(all) = routellm() else { return };
    // Every GSM8K row; every 4th MMLU row, to keep the suite fast. `l2` is fixed at the value the
    // inner cross-validation chooses on all GSM8K rows (`evaluate --data gsm8k-to-mmlu`); with one
    // `l2` nothing is held out, so the dense features keep their computed form (`evaluate`'s model
    // standardises them; both save 42.5% on every MMLU row).
    let train = all.of_task("gsm8k");
    let test = every_nth(&all.of_task("mmlu"), 4);
    let prices = Prices::load(data_dir().join("models.json.gz"), "routellm").unwrap();
    let fitted = FittedCatalog::fit(&train, &prices).unwrap();
    let saving = |config: TrainConfig| {
        let model = Trainer::new(config).fit(&train, "gsm8k").unwrap();
        let report = sweep_report(model, &fitted, &train, &test, 301);
        let saving = 1.0 - report.router.cost_at(0.95).unwrap();
        let zero = 1.0 - report.zero_router.cost_at(0.95).unwrap();
        println!("saving at 95% of GPT-4: {saving:.4}, zero router {zero:.4}, APGR {:?}", report.router.apgr);
        (saving, zero)
    };
    let with = |f: &dyn Fn(&mut TrainConfig)| {
        let mut c = TrainConfig::default();
        c.l2 = vec![1.0];
        f(&mut c);
        c
    };
    // No gating (`min_trust` 1): every MMLU prompt is routed on what the GSM8K model learned.
    // Measured: 46.5% against the zero router's 34.7% on these rows (41.8% on every MMLU row, on
    // the earlier fixed grid).
    let (ungated, zero) = saving(with(&|c| c.min_trust = 1.0));
    assert!(ungated > 0.43 && ungated > zero + 0.09, "saving {ungated:.4}, zero router {zero:.4}");
    // The defaults: gated by familiarity, and the untrusted MMLU prompts routed by the model's
    // need for a dearer model within the price order. Measured: 49.2% on these rows (42.5% on
    // every MMLU row); the price order alone, the fallback before it, 41.0% (37.9% on the earlier
    // fixed grid).
    let (need, _) = saving(with(&|_| {}));
    let (price_order, _) = saving(with(&|c| c.fallback = Fallback::PriceOrder));
    assert!(
        need > zero + 0.05 && need > price_order + 0.02,
        "need {need:.4}, price order {price_order:.4}, zero {zero:.4}"
    );
}
