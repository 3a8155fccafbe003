//! The Hugging Face tokenizer adapter on real `tokenizer.json` files: Qwen3's byte-level BPE and
//! all-MiniLM-L6-v2's WordPiece, from the repository's `data/tokenizers/` (gzip-compressed,
//! decompressed here and loaded from bytes). A missing file fails the test, naming it.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

mod support;

use switchyard::classify::{HeuristicCounter, HfTokenizer, TokenCounter};

fn sample() -> String {
    String::from_utf8(support::data::read_gz("tokenizers/sample-english-4k.txt.gz")).unwrap()
}

#[test]
fn qwen3_counts_the_english_sample_exactly() {
    let json = support::data::read_gz("tokenizers/qwen3-tokenizer.json.gz");
    let qwen = HfTokenizer::from_bytes("qwen3", &json).unwrap();
    let text = sample();
    assert_eq!(text.len(), 4096);
    // The count `data/README.md` and the benchmarks quote for this text.
    assert_eq!(qwen.count(&text).unwrap(), 843);
    // The heuristic estimate lands within 5% of it (823 when measured).
    let estimate = HeuristicCounter::default().count(&text).unwrap() as f64;
    assert!((estimate / 843.0 - 1.0).abs() < 0.05, "heuristic estimate {estimate} against 843 exact");
}

#[test]
fn minilm_counts_without_truncation_or_padding() {
    let json = support::data::read_gz("tokenizers/all-minilm-l6-v2-tokenizer.json.gz");
    let minilm = HfTokenizer::from_bytes("all-minilm-l6-v2", &json).unwrap();
    // The file truncates and pads to 128 tokens; the adapter turns both off, and counts no special
    // tokens.
    assert_eq!(minilm.count(&sample()).unwrap(), 842);
    assert_eq!(minilm.count("hello world").unwrap(), 2);
}
