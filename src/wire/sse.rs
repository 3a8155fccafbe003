//! Server-sent events framing, as OpenAI-compatible streams use it: one `data:` line per event, a
//! blank line after each, and `data: [DONE]` at the end.

use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};

/// The event that ends an OpenAI-compatible stream.
pub const DONE: &str = "data: [DONE]\n\n";

/// One event whose data is `value` as compact JSON: `data: {...}\n\n`.
///
/// JSON text never holds a raw line break (they are escaped inside strings), so the event is always
/// one `data:` line.
///
/// # Errors
///
/// [`ErrorKind::Decode`] if `value` does not serialize (a map with non-string keys, say).
pub fn event<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let json = serde_json::to_string(value)
        .map_err(|e| Error::new(ErrorKind::Decode, format!("an event does not serialize: {e}")))?;
    let mut out = String::with_capacity(json.len() + 8);
    out.push_str("data: ");
    out.push_str(&json);
    out.push_str("\n\n");
    Ok(out)
}

/// A comment line (`: text\n\n`), which clients ignore: a keep-alive for idle streams. Line breaks in
/// `text` become spaces, so it stays one comment.
pub fn comment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    out.push_str(": ");
    out.extend(text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }));
    out.push_str("\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_data_line_each() {
        let e = event(&serde_json::json!({"text": "two\nlines"})).expect("serializes");
        assert_eq!(e, "data: {\"text\":\"two\\nlines\"}\n\n");
        assert_eq!(e.matches('\n').count(), 2);
        assert_eq!(comment("keep\nalive"), ": keep alive\n\n");
        let mut bad = std::collections::HashMap::new();
        bad.insert(vec![1u8], 1);
        assert_eq!(event(&bad).expect_err("non-string keys").kind(), ErrorKind::Decode);
    }
}
