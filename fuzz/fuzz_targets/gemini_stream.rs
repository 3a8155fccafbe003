//! A Gemini `streamGenerateContent?alt=sse` stream through the SSE parser and the adapter's chunk
//! decoder, whole and cut in two.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::__fuzz::gemini_stream;

fuzz_target!(|data: &[u8]| {
    let _ = gemini_stream(&[data]);
    let (a, b) = data.split_at(data.len() / 2);
    let _ = gemini_stream(&[a, b]);
});
