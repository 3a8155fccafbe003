//! A small, incremental parser for server-sent events, shared by the HTTP adapters.
//!
//! It follows the event-stream grammar of the HTML standard as far as LLM APIs use it: lines end in
//! `\n`, `\r\n` or `\r` (even when a chunk boundary splits `\r\n`), lines starting with `:` are comments,
//! `field: value` loses one space after the colon, `data` lines of one event are joined with `\n`, a
//! blank line dispatches the event, and an event without data is dropped. `id` and `retry` are ignored:
//! the adapters never reconnect. An incomplete event at the end of the input is never dispatched.
//!
//! Memory is bounded: a line or an event's data longer than the configured maximum is an error, so a
//! server that never sends a newline cannot make the parser grow without limit.

use std::collections::VecDeque;
use std::fmt;

/// One dispatched event.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, when the server named the event.
    pub(crate) event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub(crate) data: String,
}

impl fmt::Debug for SseEvent {
    // Event data carries answer text: show its size only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseEvent")
            .field("event", &self.event)
            .field("data", &format_args!("{} bytes", self.data.len()))
            .finish()
    }
}

/// Why the input is not a valid event stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SseError {
    /// A line, or the data of one event, exceeds the maximum.
    TooLarge(usize),
    /// A line is not UTF-8.
    InvalidUtf8,
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(max) => write!(f, "a server-sent event exceeds {max} bytes"),
            Self::InvalidUtf8 => f.write_str("a server-sent event is not valid UTF-8"),
        }
    }
}

impl std::error::Error for SseError {}

/// The parser's state between chunks.
pub(crate) struct SseParser {
    max: usize,
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting the next one belongs to that line end.
    skip_lf: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    failed: Option<SseError>,
}

impl SseParser {
    /// A parser that accepts lines and events of at most `max_event_bytes` bytes.
    pub(crate) fn new(max_event_bytes: usize) -> Self {
        Self {
            max: max_event_bytes.max(1),
            line: Vec::new(),
            skip_lf: false,
            event: None,
            data: String::new(),
            has_data: false,
            failed: None,
        }
    }

    /// Feeds a chunk of bytes and appends every event it completes to `out`.
    ///
    /// # Errors
    /// [`SseError`] when a line or an event is too large or not UTF-8; the parser then rejects all
    /// further input.
    pub(crate) fn push(&mut self, mut chunk: &[u8], out: &mut VecDeque<SseEvent>) -> Result<(), SseError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = chunk.split_at(pos);
            self.extend_line(head)?;
            let is_cr = tail.first() == Some(&b'\r');
            chunk = &tail[1..];
            if is_cr {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    None => self.skip_lf = true,
                    Some(_) => {}
                }
            }
            let line = std::mem::take(&mut self.line);
            self.process_line(line, out)?;
        }
        self.extend_line(chunk)
    }

    fn fail(&mut self, e: SseError) -> SseError {
        self.failed = Some(e);
        e
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + bytes.len() > self.max {
            return Err(self.fail(SseError::TooLarge(self.max)));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, line: Vec<u8>, out: &mut VecDeque<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            let data = std::mem::take(&mut self.data);
            let event = self.event.take();
            if std::mem::take(&mut self.has_data) {
                out.push_back(SseEvent { event, data });
            }
            return Ok(());
        }
        let line = String::from_utf8(line).map_err(|_| self.fail(SseError::InvalidUtf8))?;
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                let extra = value.len() + usize::from(self.has_data);
                if self.data.len() + extra > self.max {
                    return Err(self.fail(SseError::TooLarge(self.max)));
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(chunks: &[&[u8]], max: usize) -> Result<Vec<SseEvent>, SseError> {
        let mut p = SseParser::new(max);
        let mut out = VecDeque::new();
        for c in chunks {
            p.push(c, &mut out)?;
        }
        Ok(out.into_iter().collect())
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent { event: event.map(str::to_owned), data: data.to_owned() }
    }

    #[test]
    fn fields_comments_and_line_ends() {
        let input = b": keep-alive\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\ndata:x\ndata: y\n\nevent: ping\n\ndata\r\r";
        let got = parse(&[input], 1024).unwrap();
        assert_eq!(got, vec![ev(Some("message_start"), "{\"a\":1}"), ev(None, "x\ny"), ev(None, "")]);
    }

    #[test]
    fn split_anywhere_gives_the_same_events() {
        let input: &[u8] = b"event: a\r\ndata: one\r\n\r\ndata: two\r\rdata: [DONE]\n\n";
        let whole = parse(&[input], 64).unwrap();
        assert_eq!(whole.len(), 3);
        for i in 0..=input.len() {
            for j in i..=input.len() {
                assert_eq!(parse(&[&input[..i], &input[i..j], &input[j..]], 64).unwrap(), whole, "{i} {j}");
            }
        }
    }

    #[test]
    fn incomplete_event_is_not_dispatched() {
        assert_eq!(parse(&[b"data: half"], 64).unwrap(), vec![]);
        assert_eq!(parse(&[b"data: whole\n"], 64).unwrap(), vec![]);
    }

    #[test]
    fn limits_and_utf8() {
        assert_eq!(parse(&[&[b'a'; 65]], 64), Err(SseError::TooLarge(64)));
        assert_eq!(parse(&[b"data: 0123456789\n", b"data: 0123456789\n"], 20), Err(SseError::TooLarge(20)));
        assert_eq!(parse(&[b"data: \xff\n\n"], 64), Err(SseError::InvalidUtf8));
        let mut p = SseParser::new(4);
        let mut out = VecDeque::new();
        assert!(p.push(b"aaaaa", &mut out).is_err());
        assert!(p.push(b"\n\n", &mut out).is_err(), "a failed parser stays failed");
        // A `\r` at the end of one chunk and a blank line in the next.
        assert_eq!(parse(&[b"data: a\r", b"\n", b"\n"], 64).unwrap(), vec![ev(None, "a")]);
        assert_eq!(parse(&[b"data: a\r", b"", b"\n", b"\r"], 64).unwrap(), vec![ev(None, "a")]);
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_bounded(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16), max in 1usize..128) {
            let mut p = SseParser::new(max);
            let mut out = VecDeque::new();
            for c in &chunks {
                if p.push(c, &mut out).is_err() {
                    break;
                }
                prop_assert!(p.line.len() <= max && p.data.len() <= max);
            }
            for e in &out {
                prop_assert!(e.data.len() <= max);
            }
        }

        #[test]
        fn data_round_trips(lines in proptest::collection::vec("[^\r\n]{0,20}", 1..5), split in 0usize..200) {
            let mut input = String::new();
            for l in &lines {
                input.push_str("data: ");
                input.push_str(l);
                input.push('\n');
            }
            input.push('\n');
            let at = split.min(input.len());
            let bytes = input.as_bytes();
            let got = parse(&[&bytes[..at], &bytes[at..]], 4096).unwrap();
            prop_assert_eq!(got, vec![ev(None, &lines.join("\n"))]);
        }
    }
}
