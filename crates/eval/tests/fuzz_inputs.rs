//! Bounded fuzzing on stable, run by `cargo test`: the data set readers (`Dataset::read`, every
//! `Format`) and `Prices::from_models_json` get arbitrary bytes and mutations of the fuzz targets' seed
//! corpora (`fuzz/seeds/<target>/` at the workspace root) and must return a value or a typed error,
//! never panic. Errors never quote prompt text: a key planted in a prompt never shows in one.
//!
//! The libFuzzer targets in `fuzz/` cover the same functions without a bound (see `fuzz/README.md`).

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

#[path = "../../../tests/support/mutation.rs"]
mod mutation;

use std::path::Path;

use mutation::{Mutation, apply, mutation};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use switchyard::ErrorKind;
use switchyard_eval::Prices;
use switchyard_eval::data::{Dataset, Format};

/// Planted in prompts; no error may show it.
const SECRET: &str = "sk-SECRET-123";

/// Cases per property.
const CASES: u32 = 512;

const FORMATS: [(&str, Format); 4] = [
    ("dataset_routerbench", Format::RouterBench),
    ("dataset_routellm", Format::RouteLlm),
    ("dataset_mtbench", Format::MtBench),
    ("dataset_jsonl", Format::Jsonl),
];

fn config() -> ProptestConfig {
    ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() }
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    mutation::seeds_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."), target)
}

/// A format and one of its seeds.
fn format_seed() -> impl Strategy<Value = (Format, Vec<u8>)> {
    let all: Vec<(Format, Vec<u8>)> =
        FORMATS.iter().flat_map(|&(target, format)| seeds(target).into_iter().map(move |s| (format, s))).collect();
    select(all)
}

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"\n",
    b"\r\n",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"-1",
    b"-0",
    b"0",
    b"1e309",
    b"-1e309",
    b"NaN",
    b"18446744073709551616",
    b"0.5",
    b"10.5",
    b"\"\"",
    b"[]",
    b"{}",
    b"\xff",
    b"\xc3\xa9",
    b"\"scores\": ",
    b"\"costs_usd\": ",
    b"\"prompt\": ",
    b"\"turns\": ",
    b"\"imputed\": [\"x\"], ",
    b"\"imputed_scores\": [\"x\"], ",
    b"\"split\": ",
    b"\"contaminated\": ",
    b"\"m\": 1, ",
    b"\"routellm\": ",
    b"\"routerbench\": ",
];

fn mutate(mut bytes: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        apply(&mut bytes, m);
    }
    bytes
}

/// Reads `bytes` and checks the outcome: a data set, or a config error that does not show the key.
fn check_read(bytes: &[u8], format: Format) -> Result<(), TestCaseError> {
    match Dataset::read(bytes, format, "fuzz.jsonl") {
        Ok(data) => {
            let _ = data.outcomes();
        }
        Err(e) => {
            prop_assert_eq!(e.kind(), ErrorKind::Config);
            let shown = format!("{e} {e:?}");
            prop_assert!(!shown.contains(SECRET), "prompt text is in the error: {shown}");
        }
    }
    Ok(())
}

/// The seed's prompts and turns with the key in them (`"prompt": "` and `"turns": ["` are followed by it).
fn plant_in_prompts(seed: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(seed)
        .replace("\"prompt\": \"", &format!("\"prompt\": \"{SECRET} "))
        .replace("\"turns\": [\"", &format!("\"turns\": [\"{SECRET} "))
        .into_bytes()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn datasets_any_bytes(bytes in vec(any::<u8>(), 0..512), format in select(FORMATS.map(|(_, f)| f).to_vec())) {
        check_read(&bytes, format)?;
    }

    #[test]
    fn datasets_mutated((format, seed) in format_seed(), ms in vec(mutation(TOKENS), 1..8)) {
        check_read(&mutate(seed, &ms), format)?;
    }

    /// Mutations around a planted prompt: whatever breaks, the error names the line and the field,
    /// not the prompt.
    #[test]
    fn dataset_errors_do_not_quote_prompts((format, seed) in format_seed(), ms in vec(mutation(TOKENS), 1..4)) {
        let planted = plant_in_prompts(&seed);
        // Mutations that cut into the key itself are fine: then it is not planted whole.
        check_read(&mutate(planted, &ms), format)?;
    }

    #[test]
    fn prices_mutated(seed in select(seeds("prices")), ms in vec(mutation(TOKENS), 1..8), any_bytes in vec(any::<u8>(), 0..256)) {
        for bytes in [mutate(seed, &ms), any_bytes] {
            let text = String::from_utf8_lossy(&bytes);
            for section in ["routerbench", "routellm"] {
                match Prices::from_models_json(&text, section) {
                    Ok(p) => prop_assert!(p.get("gpt-4-1106-preview").is_none_or(|v| v.is_finite() && v >= 0.0)),
                    Err(e) => prop_assert_eq!(e.kind(), ErrorKind::Config),
                }
            }
        }
    }
}

#[test]
fn seeds_are_valid_inputs() {
    for (target, format) in FORMATS {
        for seed in seeds(target) {
            let data = Dataset::read(&seed[..], format, target).unwrap_or_else(|e| panic!("{target}: {e}"));
            assert!(data.len() >= 2, "{target}");
            Dataset::read(&plant_in_prompts(&seed)[..], format, target).unwrap();
        }
    }
    for seed in seeds("prices") {
        for section in ["routerbench", "routellm"] {
            Prices::from_models_json(std::str::from_utf8(&seed).unwrap(), section).unwrap();
        }
    }
}
