//! `Prices::from_models_json` on both sections of a `models.json`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_eval::Prices;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for section in ["routerbench", "routellm"] {
        if let Ok(prices) = Prices::from_models_json(text, section) {
            let _ = prices.get("gpt-4-1106-preview");
        }
    }
});
