//! The adapter's encoder and decoders, for a [`Provider`](crate::Provider) of your own that speaks
//! OpenAI's chat-completions format over a transport this crate does not (a client of your own, a
//! signed or queued endpoint, a test double): the request body, the answer, the stream, and the error
//! for a failed status, exactly as [`OpenAi`](super::OpenAi) makes and reads them.
//!
//! ```
//! use switchyard::provider::openai::codec::{self, BodyOptions, StreamDecoder};
//! use switchyard::{FinishReason, ModelProfile, Request, StreamEvent};
//!
//! let model = ModelProfile::new("mini", "mine").with_api_name("gpt-4o-mini");
//! let request = Request::new("Hi").with_top_p(0.5);
//! let body = codec::request_body(&model, &request, true, BodyOptions::default())?;
//! let json: serde_json::Value = serde_json::from_slice(&body)?;
//! assert_eq!((json["model"].as_str(), json["stream"].as_bool()), (Some("gpt-4o-mini"), Some(true)));
//!
//! // Bytes as they arrive, cut anywhere.
//! let mut decoder = StreamDecoder::new("mine");
//! let mut events = decoder.push(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel")?;
//! events.extend(decoder.push(b"lo\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")?);
//! assert_eq!(events, [StreamEvent::Delta("Hello".into()), StreamEvent::Finish(FinishReason::Stop)]);
//! decoder.finish()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::VecDeque;
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

use super::{ChunkDecoder, decode_response, encode};
use crate::catalog::ModelProfile;
use crate::completion::{Completion, StreamEvent};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::http::{CallContext, Secret, SseDecoder, status_error};
use crate::provider::sse::{SseEvent, SseParser};
use crate::request::Request;

/// How the body is written: the choices [`OpenAiBuilder`](super::OpenAiBuilder) offers.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyOptions {
    /// Send the output limit as `max_completion_tokens` (OpenAI's reasoning models) rather than
    /// `max_tokens` (default false).
    pub max_completion_tokens: bool,
    /// Ask a stream for its usage (`stream_options.include_usage`, default true).
    pub stream_usage: bool,
}

impl Default for BodyOptions {
    fn default() -> Self {
        Self { max_completion_tokens: false, stream_usage: true }
    }
}

/// The JSON body of `POST /chat/completions` for `request` to `model` (its `api_name`), as the adapter
/// sends it: messages, tools, formats and every pass-through parameter.
///
/// # Errors
/// [`ErrorKind::BadRequest`] when a tool schema or a tool call's arguments are not valid JSON.
pub fn request_body(model: &ModelProfile, request: &Request, stream: bool, options: BodyOptions) -> Result<Vec<u8>> {
    let wire = encode(model, request, stream, options.max_completion_tokens, options.stream_usage)?;
    serde_json::to_vec(&wire).map_err(|_| Error::new(ErrorKind::BadRequest, "the request cannot be encoded"))
}

/// The answer in a 200 body. `provider` names the provider in errors; `request` gives heuristic
/// token counts when the body has no usage.
///
/// # Errors
/// [`ErrorKind::Decode`] for a body that does not decode, or the kind of an error the body reports.
pub fn decode_completion(provider: &str, body: &[u8], request: &Request) -> Result<Completion> {
    decode_response(provider, body, request)
}

/// The error for a response with a failed `status`: its kind (context overflow, auth, unknown model,
/// rate limit, overloaded, ...), the `Retry-After` header's wait, and a message from the body with
/// `api_key` and the request's text taken out.
pub fn status_error_for(
    provider: &str,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    model: &ModelProfile,
    request: &Request,
    api_key: Option<&str>,
) -> Error {
    let mut headers = HeaderMap::new();
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(RETRY_AFTER, value);
    }
    let cx = CallContext { model, request };
    let key = api_key.map(|k| Secret::new(k.to_owned()));
    status_error(provider, status, &headers, body, &cx, key.as_ref(), false)
}

/// A streamed answer's bytes to [`StreamEvent`]s: server-sent events, chunks, tool calls assembled from
/// their deltas, usage, and the end at `data: [DONE]`, as the adapter reads them. Events and lines are
/// bounded (1 MiB by default).
pub struct StreamDecoder {
    parser: SseParser,
    decoder: ChunkDecoder,
    pending: VecDeque<SseEvent>,
    out: VecDeque<Result<StreamEvent>>,
    done: bool,
}

impl std::fmt::Debug for StreamDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecoder").field("done", &self.done).finish_non_exhaustive()
    }
}

impl StreamDecoder {
    /// A decoder for one stream; `provider` names the provider in errors.
    pub fn new(provider: &str) -> Self {
        Self::with_max_event_bytes(provider, 1 << 20)
    }

    /// A decoder whose events (and lines) may be at most `max_event_bytes`.
    pub fn with_max_event_bytes(provider: &str, max_event_bytes: usize) -> Self {
        Self {
            parser: SseParser::new(max_event_bytes),
            decoder: ChunkDecoder::new(Arc::from(provider)),
            pending: VecDeque::new(),
            out: VecDeque::new(),
            done: false,
        }
    }

    /// Feeds the next bytes, cut anywhere, and returns the events they complete. Bytes after
    /// `[DONE]` are ignored.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] for an event over the limit, a line that is not UTF-8 or a malformed
    /// chunk, or the kind of an error the stream reports. The stream is over after an error.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>> {
        if self.done {
            return Ok(Vec::new());
        }
        if let Err(e) = self.parser.push(bytes, &mut self.pending) {
            self.done = true;
            return Err(Error::decode(format!("the stream: {e}")));
        }
        while let Some(event) = self.pending.pop_front() {
            match self.decoder.event(event, &mut self.out) {
                Ok(false) => {}
                Ok(true) => {
                    self.done = true;
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
        self.out.drain(..).collect()
    }

    /// Whether `[DONE]` (or an error) ended the stream.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Checks that the stream ended properly, once the body has no more bytes.
    ///
    /// # Errors
    /// [`ErrorKind::Decode`] when the body ended before `[DONE]`.
    pub fn finish(&self) -> Result<()> {
        if self.done {
            Ok(())
        } else {
            Err(Error::decode(format!("the stream ended before `{}`", self.decoder.terminator())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_adapter_decodes_and_maps_errors() {
        let mut d = StreamDecoder::new("mine");
        let tool = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\",",
            "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        );
        let events = d.push(tool.as_bytes()).expect("decodes");
        assert!(
            events.contains(&StreamEvent::ToolCall(crate::request::ToolCall::new("c1", "f", "{\"a\":1}"))),
            "{events:?}"
        );
        assert_eq!(d.finish().expect_err("no [DONE] yet").kind(), ErrorKind::Decode);
        d.push(b"data: [DONE]\n\n").expect("the end");
        assert!(d.is_done() && d.finish().is_ok());
        let mut bad = StreamDecoder::with_max_event_bytes("mine", 16);
        assert_eq!(bad.push(&[b'x'; 64]).expect_err("too long").kind(), ErrorKind::Decode);
        assert!(bad.push(b"data: [DONE]\n\n").expect("over").is_empty());

        let model = ModelProfile::new("m", "mine");
        let request = Request::new("secret prompt words");
        let e =
            status_error_for("mine", 429, Some("3"), br#"{"error":{"message":"slow down"}}"#, &model, &request, None);
        assert_eq!((e.kind(), e.retry_after()), (ErrorKind::RateLimited, Some(std::time::Duration::from_secs(3))));
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-abc123"}}"#;
        let e = status_error_for("mine", 401, None, body, &model, &request, Some("sk-abc123"));
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(!e.to_string().contains("sk-abc123"), "{e}");
        let c = decode_completion(
            "mine",
            br#"{"choices":[{"message":{"content":"Hi"},"finish_reason":"stop"}]}"#,
            &request,
        )
        .expect("an answer");
        assert_eq!(c.content(), "Hi");
    }
}
