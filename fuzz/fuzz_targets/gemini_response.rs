//! Decoding a Gemini `generateContent` answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::__fuzz::gemini_response;

fuzz_target!(|data: &[u8]| {
    let _ = gemini_response(data);
});
