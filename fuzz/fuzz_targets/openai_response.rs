//! Decoding an OpenAI chat-completions answer body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = switchyard::__fuzz::openai_response(data);
});
