//! The error an adapter makes of a failed status and its body: the first two bytes are the status
//! (big-endian), the rest the body. The error never shows the key.
#![no_main]

use libfuzzer_sys::fuzz_target;

const KEY: &str = "sk-SECRET-123";

fuzz_target!(|data: &[u8]| {
    let [hi, lo, body @ ..] = data else { return };
    let status = u16::from_be_bytes([*hi, *lo]);
    let retry_after = std::str::from_utf8(body).ok().and_then(|t| t.lines().next());
    let e = switchyard::__fuzz::status_error_for(status, body, retry_after, KEY, "What is the capital of France?");
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(KEY), "the key is in the error: {shown}");
});
