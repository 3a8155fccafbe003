//! `Dataset::read` in the `Format::Jsonl` format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_eval::data::{Dataset, Format};

fuzz_target!(|data: &[u8]| {
    let _ = Dataset::read(data, Format::Jsonl, "fuzz.jsonl");
});
