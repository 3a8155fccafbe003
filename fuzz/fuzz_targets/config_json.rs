//! `RouterConfig::from_json_str`, then `validate`; a valid config written as TOML reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::RouterConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = RouterConfig::from_json_str(text) else { return };
    if config.validate().is_err() {
        return;
    }
    if let Ok(written) = config.to_toml_string() {
        RouterConfig::from_toml_str(&written).expect("a written config reads back");
    }
});
