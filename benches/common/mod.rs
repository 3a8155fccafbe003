//! What the benchmarks share: the prompts they route, read from the repository's `data/`
//! (gzip-compressed) at run time, and the RouterBench portfolio. The core's benches and
//! `switchyard-eval`'s (`#[path]`) both use this file.

#![allow(dead_code, reason = "each benchmark uses a part")]

use std::io::Read;
use std::path::PathBuf;

use switchyard::catalog::Ability;
use switchyard::classify::Intent;
use switchyard::{Catalog, ModelProfile, Pricing, Request};

/// `rel` under the repository's `data/` (in the workspace root: the nearest ancestor of the bench's
/// package that holds `Cargo.lock`).
///
/// # Panics
/// If the file is missing, naming it: a benchmark never measures less than it says.
#[track_caller]
pub(crate) fn data(rel: &str) -> PathBuf {
    let package = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = package.ancestors().find(|d| d.join("Cargo.lock").is_file()).unwrap_or(&package);
    let path = root.join("data").join(rel);
    assert!(path.is_file(), "missing `{}`: the repository's data/ should hold it (see data/README.md)", path.display());
    path
}

/// The decompressed bytes of `rel.gz` under `data/`.
///
/// # Panics
/// If the file is missing or not valid gzip, naming it.
#[track_caller]
pub(crate) fn read_bytes(rel: &str) -> Vec<u8> {
    let path = data(&format!("{rel}.gz"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("cannot open `{}`: {e}", path.display()));
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("cannot decompress `{}`: {e}", path.display()));
    bytes
}

/// The decompressed text of `rel.gz` under `data/`.
///
/// # Panics
/// If the file is missing, not valid gzip or not UTF-8, naming it.
#[track_caller]
pub(crate) fn read(rel: &str) -> String {
    String::from_utf8(read_bytes(rel)).unwrap_or_else(|e| panic!("`data/{rel}.gz` is not UTF-8: {e}"))
}

/// About 1.5 MB of real prompts, joined by blank lines: every MT-Bench turn, the GSM8K and MMLU
/// prompts, and the English sample.
///
/// # Panics
/// If a file is missing, naming it.
pub(crate) fn corpus() -> String {
    const LIMIT: usize = 1_500_000;
    let mut corpus = String::with_capacity(LIMIT + 8192);
    let mut push = |text: &str| {
        if corpus.len() < LIMIT {
            corpus.push_str(text.trim());
            corpus.push_str("\n\n");
        }
    };
    let json = |line: &str| serde_json::from_str::<serde_json::Value>(line).ok();
    for line in read("routellm_mt_bench.jsonl").lines() {
        for turn in json(line).as_ref().and_then(|v| v["turns"].as_array()).into_iter().flatten() {
            push(turn.as_str().unwrap_or_default());
        }
    }
    let routellm = read("routellm_mmlu_gsm8k.jsonl");
    // GSM8K rows come after the MMLU rows in the file; take them first.
    for line in routellm.lines().rev() {
        push(json(line).as_ref().and_then(|v| v["prompt"].as_str()).unwrap_or_default());
    }
    push(&read("tokenizers/sample-english-4k.txt"));
    corpus
}

/// `count` requests of about `bytes` bytes each: consecutive, non-overlapping windows of `corpus`,
/// cut at whitespace.
pub(crate) fn requests(corpus: &str, bytes: usize, count: usize) -> Vec<Request> {
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

/// The 11 RouterBench models. Input prices are those of `data/models.json.gz` (inferred from
/// the data, USD per 1M tokens); output prices are the providers' public list prices of the time
/// (OpenAI and Anthropic bill output at 2 to 3× input; the open models hosted by Together bill input
/// and output alike). Abilities are the logits of each model's accuracy over ARC, MBPP and Winogrande
/// (`baselines.json`, `all3/all`), with the MBPP accuracy as its code ability.
pub(crate) fn routerbench_catalog() -> Catalog {
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
