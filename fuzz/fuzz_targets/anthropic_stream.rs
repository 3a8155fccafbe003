//! An Anthropic Messages event stream through the SSE parser and the adapter's event decoder, whole
//! and cut in two.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::__fuzz::anthropic_stream;

fuzz_target!(|data: &[u8]| {
    let _ = anthropic_stream(&[data]);
    let (a, b) = data.split_at(data.len() / 2);
    let _ = anthropic_stream(&[a, b]);
});
