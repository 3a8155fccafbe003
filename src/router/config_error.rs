//! Config errors that say where and what, and never quote the user's values: a config file can hold
//! a key or a URL with credentials, and an error message ends up in logs.

use crate::error::{Error, without_values};

pub(super) fn parse_error(format: &str, message: &str) -> Error {
    Error::config(format!("invalid {format}: {}", without_values(message.trim_end())))
}

pub(super) fn field_error(path: &serde_path_to_error::Path, inner: &dyn std::fmt::Display) -> Error {
    let path = path.to_string();
    let inner = without_values(&inner.to_string());
    let inner = inner.trim_end();
    if path == "." || path.is_empty() {
        Error::config(inner.to_owned())
    } else {
        Error::config(format!("`{path}`: {inner}"))
    }
}

/// A TOML error as its message and position. The `toml` crate's own Display quotes the offending
/// line, and a config file's line can hold a key or a URL with credentials.
pub(super) fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    let Some(at) = e.span().map(|s| s.start.min(text.len())) else { return message.to_owned() };
    let before = &text.as_bytes()[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    format!("{message} at line {line}, column {column}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_left_out() {
        assert_eq!(
            without_values(r#"invalid type: string "sk-\"x\"-1", expected u64 at line 1 column 9"#),
            "invalid type: string, expected u64 at line 1 column 9"
        );
        assert_eq!(without_values(r#"invalid value: string "ab"#), "invalid value: string");
        assert_eq!(without_values("unknown field `x`"), "unknown field `x`");
        let e = toml::from_str::<toml::Value>("a = 1\nkey = sk-SECRET-123\n").unwrap_err();
        let m = toml_message("a = 1\nkey = sk-SECRET-123\n", &e);
        assert!(m.ends_with("at line 2, column 7") && !m.contains("SECRET"), "{m}");
    }
}
