//! `streamGenerateContent?alt=sse`: each server-sent event is a whole `GenerateContentResponse`
//! chunk. Text parts are yielded as they come and function calls (sent whole) at once; the chunk
//! with a `finishReason` is the last to carry content, and the stream ends with the connection.
//! Usage is cumulative: the last chunk's counts are reported.

use std::collections::VecDeque;
use std::sync::Arc;

use super::wire::{ResponseIn, UsageIn, finish_reason, reported};
use crate::completion::{FinishReason, StreamEvent};
use crate::error::Result;
use crate::provider::http::{self, SseDecoder};
use crate::provider::sse::SseEvent;

/// Turns Gemini stream chunks into stream events.
pub(crate) struct ChunkDecoder {
    name: Arc<str>,
    usage: Option<UsageIn>,
    /// The raw finish reason, once a chunk carried one (or the prompt was blocked).
    finish: Option<Finish>,
    calls: usize,
}

enum Finish {
    Reason(String),
    Blocked,
}

impl ChunkDecoder {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Self { name, usage: None, finish: None, calls: 0 }
    }
}

impl SseDecoder for ChunkDecoder {
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<Result<StreamEvent>>) -> Result<bool> {
        if event.data.trim().is_empty() {
            return Ok(false);
        }
        let chunk: ResponseIn =
            serde_json::from_str(&event.data).map_err(|e| http::json_error(&self.name, "a stream chunk", &e))?;
        if let Some(error) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            return Err(reported(&self.name, error));
        }
        if let Some(usage) = chunk.usage_metadata {
            self.usage = Some(usage);
        }
        match chunk.candidates.into_iter().next() {
            Some(candidate) => {
                for mut part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                    if let Some(text) = part.answer_text() {
                        out.push_back(Ok(StreamEvent::Delta(text.to_owned())));
                    }
                    if let Some(call) = part.tool_call(self.calls) {
                        self.calls += 1;
                        out.push_back(Ok(StreamEvent::ToolCall(call)));
                    }
                }
                if let Some(reason) = candidate.finish_reason {
                    self.finish = Some(Finish::Reason(reason));
                }
            }
            None => {
                if chunk.prompt_feedback.and_then(|f| f.block_reason).is_some() {
                    self.finish = Some(Finish::Blocked);
                }
            }
        }
        Ok(false)
    }

    fn terminator(&self) -> &'static str {
        "finishReason"
    }

    fn end(&mut self, out: &mut VecDeque<Result<StreamEvent>>) -> bool {
        let reason = match self.finish.take() {
            None => return false,
            Some(Finish::Blocked) => FinishReason::ContentFilter,
            Some(Finish::Reason(reason)) => finish_reason(Some(&reason), self.calls > 0),
        };
        if let Some(usage) = self.usage.take() {
            out.push_back(Ok(StreamEvent::Usage(usage.to_usage())));
        }
        out.push_back(Ok(StreamEvent::Finish(reason)));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::completion::Usage;
    use crate::error::ErrorKind;
    use crate::request::ToolCall;
    use proptest::prelude::*;

    fn run(events: &[&str], ended: bool) -> Vec<Result<StreamEvent>> {
        let mut d = ChunkDecoder::new(Arc::from("gemini"));
        let mut out = VecDeque::new();
        for e in events {
            if let Err(e) = d.event(SseEvent { event: None, data: (*e).to_owned() }, &mut out) {
                out.push_back(Err(e));
                return out.into_iter().collect();
            }
        }
        if ended && !d.end(&mut out) {
            out.push_back(Err(crate::Error::decode("cut")));
        }
        out.into_iter().collect()
    }

    #[test]
    fn chunks_in_order_with_the_last_usage() {
        let events = run(
            &[
                r#"{"candidates": [{"content": {"parts": [{"text": "The"}], "role": "model"}, "index": 0}], "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}}"#,
                r#"{"candidates": [{"content": {"parts": [{"text": " answer"}, {"functionCall": {"name": "f", "args": {"a": 1}}}], "role": "model"}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 7, "thoughtsTokenCount": 3, "totalTokenCount": 18}}"#,
            ],
            true,
        );
        let events: Vec<StreamEvent> = events.into_iter().map(|e| e.unwrap()).collect();
        assert_eq!(
            events,
            vec![
                StreamEvent::Delta("The".into()),
                StreamEvent::Delta(" answer".into()),
                StreamEvent::ToolCall(ToolCall::new("call_0", "f", r#"{"a":1}"#)),
                StreamEvent::Usage(Usage::new(8, 10).with_reasoning(3)),
                StreamEvent::Finish(FinishReason::ToolCalls),
            ]
        );
        // No finish reason before the end: a cut stream.
        let events = run(&[r#"{"candidates": [{"content": {"parts": [{"text": "The"}]}}]}"#], true);
        assert_eq!(events.last().unwrap().as_ref().unwrap_err().to_string(), "cut");
        let blocked = run(&[r#"{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}"#], true);
        assert_eq!(blocked.last().unwrap().as_ref().unwrap(), &StreamEvent::Finish(FinishReason::ContentFilter));
        let error = run(&[r#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota"}}"#], true);
        assert_eq!(error[0].as_ref().unwrap_err().kind(), ErrorKind::RateLimited);
    }

    proptest! {
        #[test]
        fn decoder_never_panics(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let text = String::from_utf8_lossy(&body).into_owned();
            let _ = run(&[&text, r#"{"candidates": [{"finishReason": "STOP"}]}"#], true);
            let _ = super::super::decode_response("gemini", &body, &crate::Request::new("x"));
        }

        #[test]
        fn decoder_never_panics_on_json_shapes(
            parts in prop_oneof![Just("null"), Just("[]"), Just(r#"[{"functionCall": null}]"#), Just(r#"[{"functionCall": {"args": [1]}, "thoughtSignature": ""}]"#), Just(r#"[{"text": null, "thought": true}]"#)],
            reason in prop_oneof![Just("null"), Just("\"STOP\""), Just("\"SAFETY\""), Just("7")],
            usage in prop_oneof![Just("null"), Just(r#"{"promptTokenCount": 99999999999, "thoughtsTokenCount": 4294967295, "candidatesTokenCount": 4294967295}"#), Just(r#"{"promptTokenCount": -1}"#)],
        ) {
            let chunk = format!(r#"{{"candidates": [{{"content": {{"parts": {parts}}}, "finishReason": {reason}}}], "usageMetadata": {usage}}}"#);
            let _ = run(&[&chunk, &chunk], true);
            let _ = super::super::decode_response("gemini", chunk.as_bytes(), &crate::Request::new("x"));
        }
    }
}
