//! Criterion benchmarks of offline evaluation on the RouterBench subset's RouterDC test split (947
//! rows, 11 models), read from the repository's `data/` at run time (a missing file stops the
//! benchmark, naming it).
//!
//! - `evaluate/sweep_report/50`: a 50-point sweep of [`Utility`]'s answer value over the test split
//!   (every row routed by the difficulty and intent classifiers at every value) and [`Report::new`];
//! - `evaluate/fit_sweep_report/50`: the same, with the catalog fitted on the training split first
//!   (what `examples/evaluate.rs --router heuristic` does after loading the file);
//! - `evaluate/learned_sweep_report/50`: the learned router (a model trained on the training split
//!   before measuring) classifying each test row once and re-ranking at every value
//!   ([`cv::sweep_policy`]), and [`Report::new`]: what `examples/evaluate.rs` does after training.
//!
//! ```text
//! cargo bench --bench evaluate -- --warm-up-time 1 --measurement-time 10
//! ```

#[path = "../../../benches/common/mod.rs"]
mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use switchyard::classify::LearnedClassifier;
use switchyard::{RouterBuilder, Utility};
use switchyard_eval::catalog::{FittedCatalog, Prices};
use switchyard_eval::cv;
use switchyard_eval::data::{Dataset, Format, SplitKind};
use switchyard_eval::replay::{Report, log_grid, sweep};
use switchyard_eval::{TrainConfig, Trainer};

const POINTS: usize = 50;

fn evaluate(fitted: &FittedCatalog, test: &Dataset, grid: &[f64]) -> Report {
    let runs = sweep(test, grid, |v| fitted.builder().policy(Utility::new().answer_value(v)).build())
        .unwrap_or_else(|e| panic!("sweep: {e}"));
    Report::new(test, &runs).unwrap_or_else(|e| panic!("report: {e}"))
}

fn bench_evaluate(c: &mut Criterion) {
    let file = common::data("routerbench_arc_mbpp_winogrande.jsonl.gz");
    let models = common::data("models.json.gz");
    let all = Dataset::load(&file, Format::RouterBench).unwrap_or_else(|e| panic!("{e}"));
    let prices = Prices::load(&models, "routerbench").unwrap_or_else(|e| panic!("{e}"));
    let train = all.in_split(SplitKind::RouterDc, "train");
    let test = all.in_split(SplitKind::RouterDc, "test");
    let fitted = FittedCatalog::fit(&train, &prices).unwrap_or_else(|e| panic!("{e}"));
    let grid = log_grid(1e-7, 1e3, POINTS);

    let mut g = c.benchmark_group("evaluate");
    g.sample_size(10);
    g.bench_with_input(BenchmarkId::new("sweep_report", POINTS), &grid, |b, grid| {
        b.iter(|| evaluate(black_box(&fitted), black_box(&test), grid));
    });
    g.bench_with_input(BenchmarkId::new("fit_sweep_report", POINTS), &grid, |b, grid| {
        b.iter(|| {
            let fitted = FittedCatalog::fit(black_box(&train), &prices).unwrap_or_else(|e| panic!("{e}"));
            evaluate(&fitted, black_box(&test), grid)
        });
    });
    let model = Trainer::new(TrainConfig::default()).fit(&train, "train").unwrap_or_else(|e| panic!("{e}"));
    let router = RouterBuilder::new()
        .catalog(fitted.catalog().clone())
        .classifier(LearnedClassifier::new(model), 1.0)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    g.bench_with_input(BenchmarkId::new("learned_sweep_report", POINTS), &grid, |b, grid| {
        b.iter(|| {
            let runs = cv::sweep_policy(black_box(&test), &router, grid, |v| Utility::new().answer_value(v))
                .unwrap_or_else(|e| panic!("sweep: {e}"));
            Report::new(&test, &runs).unwrap_or_else(|e| panic!("report: {e}"))
        });
    });
    g.finish();
}

criterion_group!(benches, bench_evaluate);
criterion_main!(benches);
