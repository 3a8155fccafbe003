//! Criterion benchmarks of the hot path.
//!
//! - `route/<size>/<models>`: [`Router::route`] on real English text of 100 B, 1 KB and 16 KB over
//!   synthetic catalogs of 4, 16 and 64 models (difficulty classifier, weight 1.0; intent classifier,
//!   weight 0.5; the [`Utility`] policy; heuristic token counts).
//! - `route_routerbench/*/11`: the headline case, 1 KB prompts over the 11 RouterBench models:
//!   `1KB` routes distinct prompts in turn, `1KB_same_prompt` one prompt over and over, and
//!   `1KB_text_stats_only` is the scan `route` starts with, alone, over the same distinct prompts.
//! - `tokens/*`: counting the tokens of `sample-english-4k.txt` with [`TextStats::of_text`] alone (the
//!   scan every route starts with), [`HeuristicCounter`], the Hugging Face Qwen3 tokenizer (feature
//!   `tokenizers`) and tiktoken's `o200k_base` (feature `tiktoken`).
//!
//! Each `route` benchmark cycles through a pool of distinct prompts of its size (windows of the
//! shared data sets' MT-Bench, GSM8K and MMLU prompts and the English sample): routing one prompt
//! again and again lets the CPU's branch predictor learn the text, and then measures a scan about a
//! third faster than a new prompt gets (compare `1KB` with `1KB_same_prompt`).
//!
//! Text is read at run time from `../shared/` next to the crate; a missing file skips the benchmarks
//! that need it, with a message.
//!
//! ```text
//! cargo bench --bench route --all-features -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use switchyard::catalog::{Ability, LatencyProfile};
use switchyard::classify::{DifficultyClassifier, HeuristicCounter, Intent, IntentClassifier, TextStats, TokenCounter};
use switchyard::{Catalog, ModelProfile, Pricing, Request, Router, Utility};

fn shared(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared").join(rel)
}

fn read(rel: &str) -> Option<String> {
    let path = shared(rel);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) => {
            eprintln!("skipping: cannot read `{}`: {e}", path.display());
            None
        }
    }
}

/// About 1.5 MB of real prompts, joined by blank lines: every MT-Bench turn, the GSM8K and MMLU
/// prompts, and the English sample. `None` (with a message) when a file is missing.
fn corpus() -> Option<String> {
    const LIMIT: usize = 1_500_000;
    let mut corpus = String::with_capacity(LIMIT + 8192);
    let mut push = |text: &str| {
        if corpus.len() < LIMIT {
            corpus.push_str(text.trim());
            corpus.push_str("\n\n");
        }
    };
    let json = |line: &str| serde_json::from_str::<serde_json::Value>(line).ok();
    for line in read("data/routellm_mt_bench.jsonl")?.lines() {
        for turn in json(line).as_ref().and_then(|v| v["turns"].as_array()).into_iter().flatten() {
            push(turn.as_str().unwrap_or_default());
        }
    }
    let routellm = read("data/routellm_mmlu_gsm8k.jsonl")?;
    // GSM8K rows come after the MMLU rows in the file; take them first.
    for line in routellm.lines().rev() {
        push(json(line).as_ref().and_then(|v| v["prompt"].as_str()).unwrap_or_default());
    }
    push(&read("tokenizers/sample-english-4k.txt")?);
    Some(corpus)
}

/// `count` requests of about `bytes` bytes each: consecutive, non-overlapping windows of `corpus`,
/// cut at whitespace.
fn requests(corpus: &str, bytes: usize, count: usize) -> Vec<Request> {
    let mut out = Vec::with_capacity(count);
    let mut rest = corpus;
    while out.len() < count && rest.len() > bytes {
        let mut end = bytes;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let cut = rest[..end].rfind(char::is_whitespace).filter(|&i| i > 0).unwrap_or(end);
        out.push(Request::new(rest[..cut].trim()));
        rest = rest[cut..].trim_start();
    }
    assert_eq!(out.len(), count, "the corpus is too small for {count} prompts of {bytes} bytes");
    out
}

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

/// The 11 RouterBench models. Input prices are those of `../shared/data/models.json` (inferred from
/// the data, USD per 1M tokens); output prices are the providers' public list prices of the time
/// (OpenAI and Anthropic bill output at 2 to 3× input; the open models hosted by Together bill input
/// and output alike). Abilities are the logits of each model's accuracy over ARC, MBPP and Winogrande
/// (`baselines.json`, `all3/all`), with the MBPP accuracy as its code ability.
fn routerbench_catalog() -> Catalog {
    // (id, input $/1M, output $/1M, logit accuracy all3, logit accuracy mbpp)
    const MODELS: [(&str, f64, f64, f64, f64); 11] = [
        ("gpt-4-1106-preview", 10.0, 30.0, 1.99, 0.78),
        ("gpt-3.5-turbo-1106", 0.998, 2.0, 1.01, 0.63),
        ("claude-v2", 8.016, 24.0, 0.20, 0.58),
        ("claude-v1", 8.0, 24.0, 0.98, 0.39),
        ("claude-instant-v1", 0.802, 2.4, 0.72, 0.42),
        ("meta/llama-2-70b-chat", 0.898, 0.898, 0.49, -0.71),
        ("meta/code-llama-instruct-34b-chat", 0.774, 0.774, 0.45, 0.07),
        ("mistralai/mixtral-8x7b-chat", 0.599, 0.599, 1.06, 0.16),
        ("mistralai/mistral-7b-chat", 0.2, 0.2, 0.34, -0.64),
        ("zero-one-ai/Yi-34B-Chat", 0.797, 0.797, 1.23, -0.46),
        ("WizardLM/WizardLM-13B-V1.2", 0.299, 0.299, 0.27, -0.53),
    ];
    let models = MODELS.iter().map(|&(id, input, output, overall, code)| {
        ModelProfile::new(id, "sim")
            .with_pricing(Pricing::per_mtok(input, output))
            .with_context(32_768, 4_096)
            .with_ability(Ability::new(overall).with_intent(Intent::Code, code))
    });
    Catalog::new(models).expect("the RouterBench catalog is valid")
}

fn router(catalog: Catalog) -> Router {
    Router::builder()
        .catalog(catalog)
        .classifier(DifficultyClassifier::default(), 1.0)
        .classifier(IntentClassifier::default(), 0.5)
        .policy(Utility::new().cost_weight(1.0))
        .build()
        .expect("the router is valid")
}

fn bench_route(c: &mut Criterion) {
    let Some(corpus) = corpus() else { return };
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
    group.finish();
}

fn bench_tokens(c: &mut Criterion) {
    let Some(text) = read("tokenizers/sample-english-4k.txt") else { return };
    let mut group = c.benchmark_group("tokens");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("text_stats", |b| b.iter(|| TextStats::of_text(black_box(&text))));
    let heuristic = HeuristicCounter::default();
    group.bench_function("heuristic", |b| b.iter(|| heuristic.count(black_box(&text))));

    #[cfg(feature = "tokenizers")]
    {
        let path = shared("tokenizers/qwen3-tokenizer.json");
        match switchyard::classify::HfTokenizer::from_file("qwen3", &path) {
            Ok(qwen) => {
                group.bench_function("qwen3", |b| b.iter(|| qwen.count(black_box(&text))));
            }
            Err(e) => eprintln!("skipping tokens/qwen3: {e} (`{}`)", path.display()),
        }
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
