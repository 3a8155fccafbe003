//! AWS's binary event-stream framing (`application/vnd.amazon.eventstream`), decoded from bytes cut
//! anywhere, bounded and CRC-checked.
//!
//! A message is a prelude (total length, headers length, both big-endian `u32`, then the CRC32 of
//! those 8 bytes), the headers, the payload, and the CRC32 of everything before it. A header is a
//! name (`u8` length, UTF-8), a type byte and a value whose size the type gives. The CRC is the
//! IEEE (gzip) CRC32, computed here with a 256-entry table built at compile time.

use std::collections::VecDeque;

use crate::provider::http::Framing;

/// The prelude: two lengths and their CRC.
const PRELUDE_BYTES: usize = 12;
/// The smallest message: a prelude and the message CRC.
const MIN_MESSAGE_BYTES: usize = PRELUDE_BYTES + 4;

/// The CRC32 (IEEE 802.3, reflected, polynomial `0xEDB88320`) table.
const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// The CRC32 of `data`.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// One decoded message: its string headers (others are skipped) and its payload.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) payload: Vec<u8>,
}

impl std::fmt::Debug for Message {
    // The payload carries answer text: show its size only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message").field("headers", &self.headers).field("payload_bytes", &self.payload.len()).finish()
    }
}

impl Message {
    /// The value of a string header.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Cuts a body into [`Message`]s. After an error it rejects everything.
pub(crate) struct Decoder {
    max_message_bytes: usize,
    buf: Vec<u8>,
    failed: Option<String>,
}

impl Decoder {
    /// A decoder that refuses messages over `max_message_bytes` (at least the 16 bytes of an empty one).
    pub(crate) fn new(max_message_bytes: usize) -> Self {
        Self { max_message_bytes: max_message_bytes.max(MIN_MESSAGE_BYTES), buf: Vec::new(), failed: None }
    }

    /// Whether bytes of an unfinished message are waiting.
    #[cfg(test)]
    pub(crate) fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    fn fail(&mut self, e: String) -> Result<(), String> {
        self.buf = Vec::new();
        self.failed = Some(e.clone());
        Err(e)
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Framing for Decoder {
    type Frame = Message;

    fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Message>) -> Result<(), String> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        let result = loop {
            let rest = &self.buf[start..];
            if rest.len() < PRELUDE_BYTES {
                break Ok(());
            }
            if crc32(&rest[..8]) != be32(&rest[8..12]) {
                break Err("an event-stream prelude fails its CRC".to_owned());
            }
            let total = be32(&rest[..4]) as usize;
            let headers_len = be32(&rest[4..8]) as usize;
            if total > self.max_message_bytes {
                break Err(format!("an event-stream message of {total} bytes exceeds {}", self.max_message_bytes));
            }
            if total < MIN_MESSAGE_BYTES || headers_len > total - MIN_MESSAGE_BYTES {
                break Err("an event-stream prelude has impossible lengths".to_owned());
            }
            if rest.len() < total {
                break Ok(());
            }
            let message = &rest[..total];
            if crc32(&message[..total - 4]) != be32(&message[total - 4..]) {
                break Err("an event-stream message fails its CRC".to_owned());
            }
            let headers = match parse_headers(&message[PRELUDE_BYTES..PRELUDE_BYTES + headers_len]) {
                Ok(h) => h,
                Err(e) => break Err(e),
            };
            let payload = message[PRELUDE_BYTES + headers_len..total - 4].to_vec();
            out.push_back(Message { headers, payload });
            start += total;
        };
        if let Err(e) = result {
            return self.fail(e);
        }
        self.buf.drain(..start);
        Ok(())
    }
}

/// The headers block: string values kept, the others checked for size and skipped.
fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, String)>, String> {
    let bad = || "an event-stream message has malformed headers".to_owned();
    let mut headers = Vec::new();
    while !b.is_empty() {
        let name_len = usize::from(b[0]);
        let name = b.get(1..1 + name_len).ok_or_else(bad)?;
        let name = std::str::from_utf8(name).map_err(|_| bad())?.to_owned();
        let kind = *b.get(1 + name_len).ok_or_else(bad)?;
        b = &b[2 + name_len..];
        let fixed = match kind {
            0 | 1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            6 | 7 => None,
            _ => return Err(bad()),
        };
        match fixed {
            Some(n) => b = b.get(n..).ok_or_else(bad)?,
            None => {
                let len = usize::from(u16::from_be_bytes([*b.first().ok_or_else(bad)?, *b.get(1).ok_or_else(bad)?]));
                let value = b.get(2..2 + len).ok_or_else(bad)?;
                if kind == 7 {
                    headers.push((name, std::str::from_utf8(value).map_err(|_| bad())?.to_owned()));
                }
                b = &b[2 + len..];
            }
        }
    }
    Ok(headers)
}

/// Encodes a message with string headers (for the tests).
#[cfg(test)]
pub(crate) fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = (MIN_MESSAGE_BYTES + h.len() + payload.len()) as u32;
    let mut m = Vec::with_capacity(total as usize);
    m.extend_from_slice(&total.to_be_bytes());
    m.extend_from_slice(&(h.len() as u32).to_be_bytes());
    m.extend_from_slice(&crc32(&m[..8]).to_be_bytes());
    m.extend_from_slice(&h);
    m.extend_from_slice(payload);
    m.extend_from_slice(&crc32(&m).to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Published frames: the empty message and the `content-type` one of AWS's event-stream test
    /// data (aws-c-event-stream, botocore).
    #[test]
    fn published_frames() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let empty = unhex("000000100000000005c248eb7d98c8ff");
        assert_eq!(encode(&[], b""), empty);
        let json = unhex(
            "0000003d0000002007fd83960c636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e7b27666f6f273a27626172277d8d9c08b1",
        );
        assert_eq!(encode(&[("content-type", "application/json")], b"{'foo':'bar'}"), json);
        let mut d = Decoder::new(1 << 20);
        let mut out = VecDeque::new();
        d.push(&[empty, json].concat(), &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].header("content-type"), Some("application/json"));
        assert_eq!(out[1].payload, b"{'foo':'bar'}");
    }

    #[test]
    fn every_header_type_is_skipped_or_read() {
        let mut h = Vec::new();
        for (kind, value) in [
            (0u8, vec![]),
            (1, vec![]),
            (2, vec![1]),
            (3, vec![0, 1]),
            (4, vec![0; 4]),
            (5, vec![0; 8]),
            (6, vec![0, 2, 9, 9]),
            (8, vec![0; 8]),
            (9, vec![0; 16]),
        ] {
            h.extend_from_slice(&[1, b'x', kind]);
            h.extend_from_slice(&value);
        }
        h.extend_from_slice(&[2, b'e', b't', 7, 0, 2, b'o', b'k']);
        assert_eq!(parse_headers(&h).unwrap(), vec![("et".to_owned(), "ok".to_owned())]);
        assert!(parse_headers(&[1, b'x', 10]).is_err());
        assert!(parse_headers(&[1, b'x', 7, 0, 5, b'a']).is_err());
        assert!(parse_headers(&[5, b'x']).is_err());
    }

    #[test]
    fn corruption_size_and_lengths_are_errors() {
        let good = encode(&[(":event-type", "messageStart")], b"{}");
        for i in [0, 5, 9, 14, good.len() - 3, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            let mut d = Decoder::new(1 << 20);
            assert!(d.push(&bad, &mut VecDeque::new()).is_err(), "flipped byte {i}");
            // Failed for good.
            assert!(d.push(&good, &mut VecDeque::new()).is_err());
        }
        let mut d = Decoder::new(good.len() - 1);
        let e = d.push(&good[..12], &mut VecDeque::new()).unwrap_err();
        assert!(e.contains("exceeds"), "{e}");
        // A prelude whose headers would not fit.
        let mut m = Vec::new();
        m.extend_from_slice(&16u32.to_be_bytes());
        m.extend_from_slice(&1u32.to_be_bytes());
        m.extend_from_slice(&crc32(&m).to_be_bytes());
        assert!(Decoder::new(64).push(&m, &mut VecDeque::new()).is_err());
    }

    proptest! {
        #[test]
        fn cut_anywhere_gives_the_same_messages(cuts in proptest::collection::vec(0usize..200, 0..8)) {
            let stream = [
                encode(&[(":event-type", "a"), (":message-type", "event")], b"{\"x\":1}"),
                encode(&[], b""),
                encode(&[(":event-type", "b")], &[7; 100]),
            ]
            .concat();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.sort_unstable();
            let mut d = Decoder::new(1 << 10);
            let mut out = VecDeque::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([stream.len()]) {
                d.push(&stream[at..c], &mut out).unwrap();
                at = c;
            }
            prop_assert_eq!(out.len(), 3);
            prop_assert!(!d.has_partial());
            prop_assert_eq!(out[2].payload.len(), 100);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Decoder::new(256).push(&bytes, &mut VecDeque::new());
            let _ = parse_headers(&bytes);
        }
    }
}
