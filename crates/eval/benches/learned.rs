//! Criterion benchmarks of the learned classifier on 1 KB prompts (real text from the repository's
//! `data/`, read at run time; a missing file stops the benchmark, naming it), against baselines
//! measured in the same run:
//!
//! - `learned/text_stats/1KB`: the router's one scan of the text ([`TextStats::of_request`]), which
//!   every route pays anyway: the baseline.
//! - `learned/predict/{routerbench,mmlu}/1KB`: [`LearnedModel::predict_with`] for 11 models and 3
//!   task labels (RouterBench) and for 2 models and 57 task labels (MMLU), the statistics given.
//!   Both are trained with the default configuration, which keeps the per-prompt residual
//!   regressions only when they beat the task prior on held-out training rows (the bench prints
//!   which models kept them: with today's defaults both do).
//! - `learned/predict/routerbench-residuals/1KB`: the RouterBench model with its residual
//!   regressions forced in (one `l2`), the most work a prediction does for 11 models.
//! - `learned/route/{heuristic,learned}/1KB`: [`Router::route`] over the 11 RouterBench models with
//!   the built-in difficulty and intent classifiers, and with the learned classifier instead.
//!
//! The models are trained before measuring, on the RouterBench training split and on MMLU rows
//! `i % 5 != 0`, with two epochs (training speed is not measured here; the weights' values do not
//! change the work a prediction does, whether the residuals are in does).
//!
//! ```text
//! cargo bench --bench learned -- --warm-up-time 1 --measurement-time 5
//! ```

#[path = "../../../benches/common/mod.rs"]
mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use switchyard::classify::{DifficultyClassifier, IntentClassifier, LearnedClassifier, LearnedModel, TextStats};
use switchyard::{Request, Router, Utility};
use switchyard_eval::data::{Dataset, Format, SplitKind};
use switchyard_eval::{TrainConfig, Trainer};

fn train(data: &Dataset, l2: Option<f64>) -> LearnedModel {
    let mut config = TrainConfig::default();
    config.epochs = 2;
    if let Some(l2) = l2 {
        config.l2 = vec![l2];
    }
    Trainer::new(config).fit(data, "bench").unwrap_or_else(|e| panic!("{e}"))
}

fn text(r: &Request) -> &str {
    r.texts().next().unwrap_or_default()
}

fn bench_learned(c: &mut Criterion) {
    let corpus = common::corpus();
    let rb = Dataset::load(common::data("routerbench_arc_mbpp_winogrande.jsonl.gz"), Format::RouterBench)
        .unwrap_or_else(|e| panic!("{e}"));
    let rb_train = rb.in_split(SplitKind::RouterDc, "train");
    let rb = train(&rb_train, None);
    let rb_residuals = train(&rb_train, Some(300.0));
    let mmlu = Dataset::load(common::data("routellm_mmlu_gsm8k.jsonl.gz"), Format::RouteLlm)
        .unwrap_or_else(|e| panic!("{e}"))
        .of_task("mmlu")
        .without_contaminated();
    let keep: Vec<usize> = (0..mmlu.len()).filter(|i| i % 5 != 0).collect();
    let mmlu = train(&mmlu.subset(&keep).unwrap_or_else(|e| panic!("{e}")), None);
    eprintln!("residual regressions: routerbench {}, mmlu {}", rb.info().residual, mmlu.info().residual);

    let requests = common::requests(&corpus, 1024, 256);
    let stats: Vec<TextStats> = requests.iter().map(TextStats::of_request).collect();
    let mut g = c.benchmark_group("learned");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    let mut next = || {
        i = (i + 1) % requests.len();
        i
    };
    g.bench_function(BenchmarkId::new("text_stats", "1KB"), |b| {
        b.iter(|| TextStats::of_request(black_box(&requests[next()])))
    });
    for (name, model) in [("routerbench", &rb), ("routerbench-residuals", &rb_residuals), ("mmlu", &mmlu)] {
        g.bench_function(BenchmarkId::new(format!("predict/{name}"), "1KB"), |b| {
            b.iter(|| {
                let k = next();
                model.predict_with(black_box(text(&requests[k])), &stats[k])
            })
        });
    }
    let catalog = common::routerbench_catalog();
    let heuristic = Router::builder()
        .catalog(catalog.clone())
        .classifier(DifficultyClassifier::default(), 1.0)
        .classifier(IntentClassifier::default(), 0.5)
        .policy(Utility::new())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let learned = Router::builder()
        .catalog(catalog)
        .classifier(LearnedClassifier::new(rb.clone()), 1.0)
        .policy(Utility::new())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    for (name, router) in [("heuristic", &heuristic), ("learned", &learned)] {
        g.bench_function(BenchmarkId::new(format!("route/{name}"), "1KB"), |b| {
            b.iter(|| router.route(black_box(&requests[next()])).unwrap_or_else(|e| panic!("{e}")))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_learned);
criterion_main!(benches);
