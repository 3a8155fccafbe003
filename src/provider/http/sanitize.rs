//! Provider messages fit for an error: cleaned, cut, and withheld when they quote the key or the
//! request's text.

use super::builder::Secret;
use super::transport::CallContext;
use crate::request::ContentPart;

/// The longest provider error message kept in an error.
const MAX_PROVIDER_MESSAGE_CHARS: usize = 200;

/// A provider message fit for an error: control characters removed, whitespace collapsed, cut to
/// [`MAX_PROVIDER_MESSAGE_CHARS`]; `None` when it quotes the request's text or the key.
///
/// The request's text is its messages' text, image URLs (pre-signed URLs carry their signature) and
/// tool-call arguments, and its tools' descriptions and schemas. A quote is found in the message as
/// sent and with the escapes of JSON and of Python's `repr` read back (`\"`, `\n`, `\u00e9`,
/// `\xe9`), since providers often quote a request escaped.
pub(crate) fn sanitize(message: &str, cx: Option<&CallContext<'_>>, key: Option<&Secret>) -> Option<String> {
    let clean = cleaned(message, Some(MAX_PROVIDER_MESSAGE_CHARS));
    let clean = clean.trim_end_matches(['.', ' ']).to_owned();
    if clean.is_empty() {
        return None;
    }
    // The message with its escapes read back, for the key and the request's text alike.
    let plain = unescaped(message);
    if quotes_key(message, key) || quotes_key(&plain, key) {
        return None;
    }
    // Prompt text: a short text quoted whole, or any run of 24 characters of the message found in a
    // text. Texts are compared as the message was cleaned: control characters dropped, whitespace
    // collapsed.
    if let Some(cx) = cx {
        let request = cx.request;
        let texts: Vec<String> = request
            .messages
            .iter()
            .flat_map(|m| {
                let urls = m.content.iter().filter_map(|p| match p {
                    ContentPart::Image { url, .. } => Some(url.as_str()),
                    ContentPart::Text { .. } => None,
                });
                m.texts().chain(urls).chain(m.tool_calls.iter().map(|c| c.arguments.as_str()))
            })
            .chain(request.tools.iter().flat_map(|t| [t.description.as_str(), t.parameters.as_str()]))
            .map(|t| cleaned(t, None))
            .collect();
        // The message as sent and with its escapes read back, each cleaned in full.
        let shown = [cleaned(message, None), cleaned(&plain, None)];
        let short = |t: &String| (4..PROMPT_RUN).contains(&t.chars().count());
        if texts.iter().any(|t| short(t) && shown.iter().any(|m| m.contains(t.as_str()))) {
            return None;
        }
        // Every run of `PROMPT_RUN` characters of the message, as rolling hashes; then one pass over each
        // text. A hash collision only withholds a message, which is the safe side.
        let mut runs: Vec<u64> = shown.iter().flat_map(|m| RollingRuns::new(m.chars())).collect();
        runs.sort_unstable();
        if !runs.is_empty() && texts.iter().any(|t| RollingRuns::new(t.chars()).any(|h| runs.binary_search(&h).is_ok()))
        {
            return None;
        }
    }
    Some(clean)
}

/// `text` with control characters dropped and whitespace collapsed to single spaces, cut to
/// `limit` characters (with `…` when cut).
fn cleaned(text: &str, limit: Option<usize>) -> String {
    let limit = limit.unwrap_or(usize::MAX);
    let mut clean = String::with_capacity(text.len().min(limit.saturating_mul(4)));
    let mut chars = 0usize;
    for word in text.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()) {
        if chars >= limit {
            clean.push('…');
            break;
        }
        if !clean.is_empty() {
            clean.push(' ');
            chars += 1;
        }
        for c in word.chars().filter(|c| !c.is_control()) {
            if chars >= limit {
                break;
            }
            clean.push(c);
            chars += 1;
        }
    }
    clean
}

/// `text` with the backslash escapes of JSON strings and Python's `repr` read back: `\n`, `\t`,
/// `\r`, `\"`, `\'`, `\\`, `\/`, `\uXXXX` (surrogate pairs included), `\UXXXXXXXX` and `\xXX` (an
/// escape that does not decode is kept as written).
fn unescaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let code = |from: usize, digits: usize| {
            after
                .get(from..from + digits)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
        };
        let (decoded, used) = match after.chars().next() {
            Some('n') => (Some('\n'), 1),
            Some('t') => (Some('\t'), 1),
            Some('r') => (Some('\r'), 1),
            Some(c @ ('"' | '\'' | '\\' | '/')) => (Some(c), 1),
            Some('u') => match code(1, 4) {
                // A surrogate pair, as JSON writes a character outside the basic plane.
                Some(high @ 0xD800..=0xDBFF) => match (after.get(5..7), code(7, 4)) {
                    (Some("\\u"), Some(low @ 0xDC00..=0xDFFF)) => {
                        (char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)), 11)
                    }
                    _ => (None, 0),
                },
                c => (c.and_then(char::from_u32), 5),
            },
            Some('U') => (code(1, 8).and_then(char::from_u32), 9),
            Some('x') => (code(1, 2).and_then(char::from_u32), 3),
            _ => (None, 0),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[used..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `text` holds the key, or any 8 characters of it.
pub(crate) fn quotes_key(text: &str, key: Option<&Secret>) -> bool {
    let Some(key) = key.map(Secret::expose).filter(|k| !k.is_empty()) else { return false };
    let bytes = key.as_bytes();
    if bytes.len() < 8 {
        text.contains(key)
    } else {
        bytes.windows(8).any(|w| std::str::from_utf8(w).is_ok_and(|w| text.contains(w)))
    }
}

/// The shortest run of prompt characters that withholds a provider message containing it.
const PROMPT_RUN: usize = 24;

/// Polynomial hashes of every window of `PROMPT_RUN` characters of a character sequence, rolling: one
/// step per character.
struct RollingRuns<I> {
    chars: I,
    window: [u32; PROMPT_RUN],
    filled: usize,
    hash: u64,
}

/// The hash base, and its `PROMPT_RUN`-th power (the weight of the character leaving the window).
const BASE: u64 = 0x100_0000_01B3;
const BASE_POW: u64 = {
    let mut p = 1u64;
    let mut i = 0;
    while i < PROMPT_RUN {
        p = p.wrapping_mul(BASE);
        i += 1;
    }
    p
};

impl<I: Iterator<Item = char>> RollingRuns<I> {
    fn new(chars: I) -> Self {
        Self { chars, window: [0; PROMPT_RUN], filled: 0, hash: 0 }
    }
}

impl<I: Iterator<Item = char>> Iterator for RollingRuns<I> {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        loop {
            let c = u32::from(self.chars.next()?);
            let slot = self.filled % PROMPT_RUN;
            let leaving = u64::from(self.window[slot]);
            self.window[slot] = c;
            self.hash = self.hash.wrapping_mul(BASE).wrapping_add(u64::from(c) + 1);
            if self.filled >= PROMPT_RUN {
                self.hash = self.hash.wrapping_sub(BASE_POW.wrapping_mul(leaving + 1));
            }
            self.filled += 1;
            if self.filled >= PROMPT_RUN {
                return Some(self.hash);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ModelProfile;
    use crate::request::{ImageDetail, Message, Request, Tool};

    #[test]
    fn sanitize_cuts_and_withholds() {
        let long = "word ".repeat(100);
        let s = sanitize(&long, None, None).unwrap();
        assert!(s.chars().count() <= MAX_PROVIDER_MESSAGE_CHARS + 1 && s.ends_with('…'), "{s}");
        assert_eq!(sanitize("bad\n\tthing\u{7}.", None, None).as_deref(), Some("bad thing"));
        assert_eq!(sanitize(" \n ", None, None), None);
        let key = Secret::new("sk-test-0123456789abcdef".into());
        assert_eq!(sanitize("Incorrect API key provided: sk-test-****cdef", None, Some(&key)), None);
        assert!(sanitize("Incorrect API key provided", None, Some(&key)).is_some());
        let model = ModelProfile::new("m", "p");
        let request = Request::new("my secret question about the merger with Initech corporation next week");
        let cx = CallContext { model: &model, request: &request };
        assert_eq!(sanitize("cannot answer: 'the merger with Initech corporation next'", Some(&cx), None), None);
        // Runs at any offset, and short non-ASCII prompts measured in characters.
        let odd = Request::new("a secret: my pin is 4921 and zip 02");
        let cx = CallContext { model: &model, request: &odd };
        assert_eq!(sanitize("bad 'my pin is 4921 and zip 02'", Some(&cx), None), None);
        let cyrillic = Request::new("Пароль 12345 секрет");
        let cx = CallContext { model: &model, request: &cyrillic };
        assert_eq!(sanitize("invalid: «Пароль 12345 секрет»", Some(&cx), None), None);
        assert!(sanitize("invalid request: unknown field `foo`", Some(&cx), None).is_some());
        assert!(sanitize("invalid temperature", Some(&cx), None).is_some());
        let short = Request::new("hunter2");
        let cx = CallContext { model: &model, request: &short };
        assert_eq!(sanitize("bad input 'hunter2'", Some(&cx), None), None);
        // Quoted escaped, as JSON or Python's repr writes a string.
        let code = Request::new("{\"name\": \"Ada\",\n \"salary\": 120000,\n \"notes\": \"café\"}");
        let cx = CallContext { model: &model, request: &code };
        let json = r#"invalid request: could not parse "{\"name\": \"Ada\",\n \"salary\": 120000,\n \"notes\": \"caf\u00e9\"}""#;
        assert_eq!(sanitize(json, Some(&cx), None), None);
        let repr = r#"bad value '{"name": "Ada",\n "salary": 120000,\n "notes": "caf\xe9"}'"#;
        assert_eq!(sanitize(repr, Some(&cx), None), None);
        // An image's pre-signed URL, and a tool's description.
        let image = Request::from_messages(vec![Message::user("what is this?").with_part(ContentPart::image(
            "https://bucket.example.com/a.png?X-Amz-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            ImageDetail::Auto,
        ))]);
        let cx = CallContext { model: &model, request: &image };
        assert_eq!(
            sanitize(
                "Error while downloading https://bucket.example.com/a.png?X-Amz-Signature=0f1e2d3c4b5a6978",
                Some(&cx),
                None
            ),
            None
        );
        let tool = Request::new("hi").with_tool(Tool::new(
            "lookup",
            "Looks up the salary of an employee by their badge id",
            "{}",
        ));
        let cx = CallContext { model: &model, request: &tool };
        assert_eq!(sanitize("tools[0]: 'Looks up the salary of an employee' is too long", Some(&cx), None), None);
        // Escapes that do not decode are kept, and unrelated messages still pass.
        assert_eq!(unescaped(r#"a\qb \u12 c\"d"#), "a\\qb \\u12 c\"d");
        assert_eq!(unescaped(r"\ud83d\ude00 \U0001f600 \ud83d \u+123 \xé"), "😀 😀 \\ud83d \\u+123 \\xé");
        assert!(sanitize(r#"invalid value for \"temperature\": must be <= 2"#, Some(&cx), None).is_some());
    }
}
