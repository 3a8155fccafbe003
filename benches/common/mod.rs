//! What the benchmarks share: the prompts they route, read from `../shared/` (next to the
//! workspace) at run time, and the RouterBench portfolio. The core's benches and `switchyard-eval`'s
//! (`#[path]`) both use this file.

#![allow(dead_code, reason = "each benchmark uses a part")]

use std::path::PathBuf;

use switchyard::catalog::Ability;
use switchyard::classify::Intent;
use switchyard::{Catalog, ModelProfile, Pricing, Request};

/// `rel` under `shared/`, the sibling of the workspace root (the nearest ancestor of the bench's
/// package that holds `Cargo.lock`).
pub(crate) fn shared(rel: &str) -> PathBuf {
    let package = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = package.ancestors().find(|d| d.join("Cargo.lock").is_file()).unwrap_or(&package);
    root.join("../shared").join(rel)
}

pub(crate) fn read(rel: &str) -> Option<String> {
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
pub(crate) fn corpus() -> Option<String> {
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

/// The 11 RouterBench models. Input prices are those of `../shared/data/models.json` (inferred from
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
