//! Decoding an Anthropic Messages answer body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = switchyard::__fuzz::anthropic_response(data);
});
