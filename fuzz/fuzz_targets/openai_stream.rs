//! An OpenAI chat-completions event stream through the SSE parser and the adapter's chunk decoder,
//! whole and cut in two.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::__fuzz::openai_stream;

fuzz_target!(|data: &[u8]| {
    let _ = openai_stream(&[data]);
    let (a, b) = data.split_at(data.len() / 2);
    let _ = openai_stream(&[a, b]);
});
