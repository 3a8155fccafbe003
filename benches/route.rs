//! Criterion benchmarks of the hot path.
//!
//! - `route/<size>/<models>`: [`Router::route`] on real English text of 100 B, 1 KB and 16 KB over
//!   synthetic catalogs of 4, 16 and 64 models (difficulty classifier, weight 1.0; intent classifier,
//!   weight 0.5; the [`Utility`] policy; heuristic token counts).
//! - `route_routerbench/*/11`: the headline case, 1 KB prompts over the 11 RouterBench models:
//!   `1KB` routes distinct prompts in turn, `1KB_same_prompt` one prompt over and over, and
//!   `1KB_text_stats_only` is the scan `route` starts with, alone, over the same distinct prompts;
//!   `1KB_experiment` routes the same prompts, keyed, through an [`Experiment`] of two arms, and
//!   `1KB_bandit` through a [`Bandit`] that has learned from 10,000 outcomes.
//! - `tokens/*`: counting the tokens of `sample-english-4k.txt` with [`TextStats::of_text`] alone (the
//!   scan every route starts with), [`HeuristicCounter`], the Hugging Face Qwen3 tokenizer (feature
//!   `tokenizers`) and tiktoken's `o200k_base` (feature `tiktoken`).
//!
//! Each `route` benchmark cycles through a pool of distinct prompts of its size (windows of the
//! repository's data sets' MT-Bench, GSM8K and MMLU prompts and the English sample): routing one prompt
//! again and again lets the CPU's branch predictor learn the text, and then measures a scan about a
//! third faster than a new prompt gets (compare `1KB` with `1KB_same_prompt`).
//!
//! Text is read at run time from the repository's `data/` (gzip-compressed); a missing file stops
//! the benchmark with a message naming it.
//!
//! ```text
//! cargo bench --bench route --all-features -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use switchyard::catalog::{Ability, LatencyProfile};
use switchyard::classify::{DifficultyClassifier, HeuristicCounter, Intent, IntentClassifier, TextStats, TokenCounter};

use switchyard::{
    Bandit, Catalog, CheapestCapable, Experiment, Feedback, ModelProfile, Policy, Pricing, Router, Utility,
};

#[cfg(feature = "tokenizers")]
use common::{corpus, read, requests, routerbench_catalog};

/// `n` synthetic models: input prices from $0.10 to $15 per 1M tokens (geometric), output at 4×,
/// abilities from −0.5 to 3.5, windows from 8k to 200k, every third model stronger at code.
fn synthetic_catalog(n: usize) -> Catalog {
    let windows = [8_192u32, 32_768, 128_000, 200_000];
    let models = (0..n).map(|i| {
        let t = if n > 1 { i as f64 / (n - 1) as f64 } else { 0.0 };
        let input = 0.10 * (150.0f64).powf(t);
        let window = windows[i % windows.len()];
        let mut ability = Ability::new(-0.5 + 4.0 * t);
        if i % 3 == 0 {
            ability = ability.with_intent(Intent::Code, -0.5 + 4.0 * t + 0.5);
        }
        ModelProfile::new(format!("model-{i:02}"), "sim")
            .with_pricing(Pricing::per_mtok(input, 4.0 * input))
            .with_context(window, 4_096)
            .with_ability(ability)
            .with_latency(LatencyProfile::new(200.0 + 600.0 * t, 150.0 - 100.0 * t))
    });
    Catalog::new(models).expect("the synthetic catalog is valid")
}

fn router(catalog: Catalog) -> Router {
    Router::builder()
        .catalog(catalog)
        .classifier(DifficultyClassifier::default(), 1.0)
        .classifier(IntentClassifier::default(), 0.5)
        .policy(Utility::new().answer_value(0.02))
        .build()
        .expect("the router is valid")
}

fn bench_route(c: &mut Criterion) {
    let corpus = corpus();
    let sizes = [("100B", 100usize, 64usize), ("1KB", 1024, 64), ("16KB", 16 * 1024, 16)];
    let mut group = c.benchmark_group("route");
    for (label, bytes, count) in sizes {
        let pool = requests(&corpus, bytes, count);
        for n in [4usize, 16, 64] {
            let router = router(synthetic_catalog(n));
            for request in &pool {
                router.route(request).expect("the benchmark requests route");
            }
            group.bench_with_input(BenchmarkId::new(label, n), &pool, |b, pool| {
                let mut next = pool.iter().cycle();
                b.iter(|| router.route(black_box(next.next().unwrap_or(&pool[0]))));
            });
        }
    }
    group.finish();

    let router = router(routerbench_catalog());
    let pool = requests(&corpus, 1024, 64);
    for request in &pool {
        router.route(request).expect("the benchmark requests route");
    }
    let mut group = c.benchmark_group("route_routerbench");
    group.bench_with_input(BenchmarkId::new("1KB", 11), &pool, |b, pool| {
        let mut next = pool.iter().cycle();
        b.iter(|| router.route(black_box(next.next().unwrap_or(&pool[0]))));
    });
    group.bench_with_input(BenchmarkId::new("1KB_same_prompt", 11), &pool[0], |b, request| {
        b.iter(|| router.route(black_box(request)));
    });
    group.bench_with_input(BenchmarkId::new("1KB_text_stats_only", 11), &pool, |b, pool| {
        let mut next = pool.iter().cycle();
        b.iter(|| TextStats::of_request(black_box(next.next().unwrap_or(&pool[0]))));
    });

    // The same prompts, keyed by user, through an experiment (utility against cheapest-capable) and
    // through a bandit that has learned from 10,000 outcomes.
    let keyed: Vec<_> = pool.iter().enumerate().map(|(i, r)| r.clone().with_key(format!("user-{i}"))).collect();
    let experiment = Experiment::builder("bench")
        .arm("utility", 1.0, Utility::new())
        .arm("cheapest", 1.0, CheapestCapable::new(0.7))
        .build()
        .expect("the experiment is valid");
    let with_policy = |policy: Arc<dyn Policy>| {
        Router::builder()
            .catalog(routerbench_catalog())
            .classifier(DifficultyClassifier::default(), 1.0)
            .classifier(IntentClassifier::default(), 0.5)
            .policy_arc(policy)
            .build()
            .expect("the router is valid")
    };
    let experiment_router = with_policy(Arc::new(experiment));
    let bandit_router = with_policy(Arc::new(Bandit::new()));
    for i in 0..10_000 {
        let d = bandit_router.route(&keyed[i % keyed.len()]).expect("the benchmark requests route");
        let quality = if i % 3 == 0 { 0.0 } else { 1.0 };
        bandit_router.feedback(d.id(), Feedback::success().with_quality(quality)).expect("a recent decision");
    }
    group.bench_with_input(BenchmarkId::new("1KB_experiment", 11), &keyed, |b, pool| {
        let mut next = pool.iter().cycle();
        b.iter(|| experiment_router.route(black_box(next.next().unwrap_or(&pool[0]))));
    });
    group.bench_with_input(BenchmarkId::new("1KB_bandit", 11), &keyed, |b, pool| {
        let mut next = pool.iter().cycle();
        b.iter(|| bandit_router.route(black_box(next.next().unwrap_or(&pool[0]))));
    });
    group.finish();
}

fn bench_tokens(c: &mut Criterion) {
    let text = read("tokenizers/sample-english-4k.txt");
    let mut group = c.benchmark_group("tokens");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("text_stats", |b| b.iter(|| TextStats::of_text(black_box(&text))));
    let heuristic = HeuristicCounter::default();
    group.bench_function("heuristic", |b| b.iter(|| heuristic.count(black_box(&text))));

    #[cfg(feature = "tokenizers")]
    {
        let json = common::read_bytes("tokenizers/qwen3-tokenizer.json");
        let qwen = switchyard::classify::HfTokenizer::from_bytes("qwen3", &json)
            .unwrap_or_else(|e| panic!("`data/tokenizers/qwen3-tokenizer.json.gz` does not load: {e}"));
        group.bench_function("qwen3", |b| b.iter(|| qwen.count(black_box(&text))));
    }
    #[cfg(not(feature = "tokenizers"))]
    eprintln!("skipping tokens/qwen3: build with `--features tokenizers`");

    #[cfg(feature = "tiktoken")]
    match switchyard::classify::Tiktoken::o200k_base() {
        Ok(o200k) => {
            group.bench_function("o200k_base", |b| b.iter(|| o200k.count(black_box(&text))));
        }
        Err(e) => eprintln!("skipping tokens/o200k_base: {e}"),
    }
    #[cfg(not(feature = "tiktoken"))]
    eprintln!("skipping tokens/o200k_base: build with `--features tiktoken`");

    group.finish();
}

criterion_group!(benches, bench_route, bench_tokens);
criterion_main!(benches);
