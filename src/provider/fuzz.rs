//! Entry points into the adapters' private parsers, for the fuzz targets in `fuzz/` and the stable
//! harness in `tests/fuzz_inputs.rs`. Compiled only with the hidden `__fuzz` feature and re-exported as
//! `switchyard::__fuzz`; not API, and free to change in any release.
//!
//! Each function takes the bytes a server could send and returns what the adapter would make of them:
//! a value or a typed [`Error`]. None of them may panic, whatever the input.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::catalog::ModelProfile;
use crate::completion::{Completion, StreamEvent};
use crate::error::{Error, Result};
use crate::provider::http::SseDecoder;
use crate::provider::sse::{SseEvent, SseParser};
use crate::provider::{anthropic, gemini, openai};
use crate::request::Request;

/// The largest server-sent event the stream decoders accept here.
const MAX_EVENT_BYTES: usize = 1 << 16;

/// Parses `chunks` as one server-sent event stream, fed a chunk at a time, with lines and events of at
/// most `max_event_bytes`. Returns each dispatched event as `(event name, data)`.
///
/// # Errors
/// [`ErrorKind::Decode`](crate::ErrorKind::Decode) when a line or an event is too large or not UTF-8.
pub fn sse(chunks: &[&[u8]], max_event_bytes: usize) -> Result<Vec<(Option<String>, String)>> {
    let mut parser = SseParser::new(max_event_bytes);
    let mut out = VecDeque::new();
    for chunk in chunks {
        parser.push(chunk, &mut out).map_err(|e| Error::decode(format!("the stream: {e}")))?;
    }
    Ok(out.into_iter().map(|e| (e.event, e.data)).collect())
}

/// Decodes a complete OpenAI chat-completions answer (the body of a 200), for a one-word request.
///
/// # Errors
/// As the adapter's `complete`: [`ErrorKind::Decode`](crate::ErrorKind::Decode) for a body that does
/// not decode, or the kind of an error the body reports.
pub fn openai_response(body: &[u8]) -> Result<Completion> {
    openai::decode_response("openai", body, &Request::new("fuzz"))
}

/// Runs an OpenAI chat-completions event stream, fed a chunk at a time, through the server-sent event
/// parser and the adapter's decoder, and returns the events up to `[DONE]`.
///
/// # Errors
/// As the adapter's stream: a malformed event or chunk, a reported error, or a stream that ends before
/// `[DONE]`.
pub fn openai_stream(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>> {
    run_stream(openai::ChunkDecoder::new(Arc::from("openai")), chunks)
}

/// Decodes a complete Anthropic Messages answer (the body of a 200).
///
/// # Errors
/// As the adapter's `complete`.
pub fn anthropic_response(body: &[u8]) -> Result<Completion> {
    anthropic::decode_response("anthropic", body)
}

/// Runs an Anthropic Messages event stream through the parser and the adapter's decoder, and returns
/// the events up to `message_stop`.
///
/// # Errors
/// As the adapter's stream.
pub fn anthropic_stream(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>> {
    run_stream(anthropic::EventDecoder::new(Arc::from("anthropic")), chunks)
}

/// Decodes a complete Gemini `generateContent` answer (the body of a 200), for a one-word request.
///
/// # Errors
/// As the adapter's `complete`.
pub fn gemini_response(body: &[u8]) -> Result<Completion> {
    gemini::decode_response("gemini", body, &Request::new("fuzz"))
}

/// Runs a Gemini `streamGenerateContent?alt=sse` stream through the parser and the adapter's decoder,
/// and returns its events; the stream ends with the input, as Gemini's end with the connection.
///
/// # Errors
/// As the adapter's stream: a malformed chunk, a reported error, or an end before a `finishReason`.
pub fn gemini_stream(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>> {
    run_stream(gemini::ChunkDecoder::new(Arc::from("gemini")), chunks)
}

/// The error an adapter returns for a non-success `status` with this `body` and `Retry-After` header,
/// when it called model `fuzz-model` with `prompt` and `api_key`.
pub fn status_error_for(status: u16, body: &[u8], retry_after: Option<&str>, api_key: &str, prompt: &str) -> Error {
    let model = ModelProfile::new("fuzz-model", "fuzz");
    openai::codec::status_error_for("fuzz", status, retry_after, body, &model, &Request::new(prompt), Some(api_key))
}

/// What the adapters' stream does with a body, without the network: parse, decode, stop at the
/// terminator (or at the end of the input, for decoders whose streams end with the connection), fail
/// at the first error or at an early end.
fn run_stream<D: SseDecoder>(mut decoder: D, chunks: &[&[u8]]) -> Result<Vec<StreamEvent>> {
    let mut parser = SseParser::new(MAX_EVENT_BYTES);
    let mut pending: VecDeque<SseEvent> = VecDeque::new();
    let mut out = VecDeque::new();
    for chunk in chunks {
        parser.push(chunk, &mut pending).map_err(|e| Error::decode(format!("the stream: {e}")))?;
        while let Some(event) = pending.pop_front() {
            if decoder.event(event, &mut out)? {
                return out.into_iter().collect();
            }
        }
    }
    if decoder.end(&mut out) {
        return out.into_iter().collect();
    }
    Err(Error::decode(format!("the stream ended before `{}`", decoder.terminator())))
}
