//! The repository's data sets (`data/` at the workspace root, gzip-compressed; see
//! `data/README.md`), for the tests that measure on real data. A missing file fails the test and
//! names the file: no test passes without its data.

#![allow(dead_code, reason = "each test binary uses a part")]

use std::io::Read;
use std::path::{Path, PathBuf};

/// The RouterBench subset (ARC, MBPP, Winogrande; 11 models).
pub(crate) const ROUTERBENCH: &str = "routerbench_arc_mbpp_winogrande.jsonl.gz";
/// RouteLLM's MMLU and GSM8K rows (GPT-4 vs Mixtral).
pub(crate) const ROUTELLM: &str = "routellm_mmlu_gsm8k.jsonl.gz";
/// RouteLLM's MT-Bench judgements.
pub(crate) const MT_BENCH: &str = "routellm_mt_bench.jsonl.gz";
/// Prices per model.
pub(crate) const MODELS: &str = "models.json.gz";
/// The reference numbers computed on the data sets.
pub(crate) const BASELINES: &str = "baselines.json.gz";

/// The repository's `data/` directory.
pub(crate) fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// The path of `name` in `data/`.
///
/// # Panics
/// If the file is missing, naming it.
#[track_caller]
pub(crate) fn file(name: &str) -> PathBuf {
    let path = dir().join(name);
    assert!(
        path.is_file(),
        "missing `{}`: the repository's data/ directory should hold it (see data/README.md)",
        path.display()
    );
    path
}

/// The decompressed text of `name` in `data/`.
///
/// # Panics
/// If the file is missing or not valid gzip and UTF-8, naming it.
#[track_caller]
pub(crate) fn read_to_string(name: &str) -> String {
    let path = file(name);
    let gz = std::fs::File::open(&path).unwrap_or_else(|e| panic!("cannot open `{}`: {e}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("cannot decompress `{}`: {e}", path.display()));
    text
}
