//! ConverseStream: event-stream messages (`:event-type` `messageStart`, `contentBlockStart`,
//! `contentBlockDelta`, `contentBlockStop`, `messageStop`, `metadata`) turned into stream events.
//! Text deltas are yielded as they come, each tool call whole at its `contentBlockStop`, and usage
//! and the finish reason at `metadata`, the last event; exceptions end the stream with their error.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Deserialize;

use super::errors::stream_error;
use super::eventstream::Message;
use super::wire::{ToolUseIn, UsageIn, finish_reason};
use crate::completion::{StreamEvent, Usage};
use crate::error::Result;
use crate::provider::http::{self, SseDecoder};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventIn {
    #[serde(default)]
    content_block_index: Option<usize>,
    #[serde(default)]
    start: Option<StartIn>,
    #[serde(default)]
    delta: Option<DeltaIn>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartIn {
    #[serde(default)]
    tool_use: Option<ToolUseIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeltaIn {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<ToolDeltaIn>,
}

#[derive(Deserialize)]
struct ToolDeltaIn {
    #[serde(default)]
    input: Option<String>,
}

/// Turns ConverseStream messages into stream events.
pub(crate) struct EventDecoder {
    name: Arc<str>,
    tools: http::ToolBlocks,
    stop_reason: Option<Option<String>>,
    usage: Option<Usage>,
}

impl EventDecoder {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Self { name, tools: http::ToolBlocks::default(), stop_reason: None, usage: None }
    }

    fn index(&self, index: Option<usize>) -> Result<usize> {
        index.map_or(Ok(0), |i| http::block_index(&self.name, i))
    }

    fn finish(&mut self, out: &mut VecDeque<Result<StreamEvent>>) {
        if let Some(usage) = self.usage.take() {
            out.push_back(Ok(StreamEvent::Usage(usage)));
        }
        let reason = self.stop_reason.take().flatten();
        out.push_back(Ok(StreamEvent::Finish(finish_reason(reason.as_deref()))));
    }
}

impl SseDecoder<Message> for EventDecoder {
    fn event(&mut self, message: Message, out: &mut VecDeque<Result<StreamEvent>>) -> Result<bool> {
        match message.header(":message-type") {
            Some("exception") => {
                let kind = message.header(":exception-type").unwrap_or("exception");
                return Err(stream_error(&self.name, kind, &message.payload));
            }
            Some("error") => {
                let code = message.header(":error-code").unwrap_or("error");
                return Err(stream_error(&self.name, code, b"{}"));
            }
            _ => {}
        }
        let Some(kind) = message.header(":event-type") else { return Ok(false) };
        let known =
            matches!(kind, "contentBlockStart" | "contentBlockDelta" | "contentBlockStop" | "messageStop" | "metadata");
        if !known {
            // `messageStart` (the role) and event types added later.
            return Ok(false);
        }
        let ev: EventIn =
            serde_json::from_slice(&message.payload).map_err(|e| http::json_error(&self.name, "a stream event", &e))?;
        match kind {
            "contentBlockStart" => {
                let index = self.index(ev.content_block_index)?;
                if let Some(tool) = ev.start.and_then(|s| s.tool_use) {
                    let id = tool.tool_use_id.unwrap_or_else(|| format!("tooluse_{index}"));
                    self.tools.start(index, id, tool.name.unwrap_or_default(), String::new());
                }
            }
            "contentBlockDelta" => {
                let index = self.index(ev.content_block_index)?;
                let Some(delta) = ev.delta else { return Ok(false) };
                if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                    out.push_back(Ok(StreamEvent::Delta(text)));
                } else if let Some(fragment) = delta.tool_use.and_then(|t| t.input) {
                    self.tools.append(index, &fragment);
                }
                // Reasoning and citation deltas are not answer text.
            }
            "contentBlockStop" => {
                let index = self.index(ev.content_block_index)?;
                if let Some(call) = self.tools.stop(index) {
                    out.push_back(Ok(StreamEvent::ToolCall(call)));
                }
            }
            "messageStop" => {
                self.tools.check_all_stopped(&self.name)?;
                self.stop_reason = Some(ev.stop_reason);
                if self.usage.is_some() {
                    self.finish(out);
                    return Ok(true);
                }
            }
            // "metadata": the last event, after `messageStop`.
            _ => {
                self.usage = ev.usage.map(UsageIn::to_usage);
                if self.stop_reason.is_some() {
                    self.finish(out);
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn terminator(&self) -> &'static str {
        "messageStop"
    }

    /// A stream that ends after `messageStop` without `metadata` is complete, without usage.
    fn end(&mut self, out: &mut VecDeque<Result<StreamEvent>>) -> bool {
        if self.stop_reason.is_none() {
            return false;
        }
        self.finish(out);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::eventstream::{Decoder, encode};
    use super::*;
    use crate::completion::FinishReason;
    use crate::error::{Error, ErrorKind};
    use crate::provider::http::Framing;
    use crate::request::ToolCall;

    fn event(kind: &str, payload: &str) -> Vec<u8> {
        encode(
            &[(":event-type", kind), (":content-type", "application/json"), (":message-type", "event")],
            payload.as_bytes(),
        )
    }

    fn run(bytes: &[u8]) -> Vec<Result<StreamEvent>> {
        let mut framing = Decoder::new(1 << 16);
        let mut messages = VecDeque::new();
        framing.push(bytes, &mut messages).unwrap();
        let mut d = EventDecoder::new(Arc::from("bedrock"));
        let mut out = VecDeque::new();
        let mut done = false;
        for m in messages {
            match d.event(m, &mut out) {
                Ok(true) => {
                    done = true;
                    break;
                }
                Ok(false) => {}
                Err(e) => {
                    out.push_back(Err(e));
                    done = true;
                    break;
                }
            }
        }
        if !done && !d.end(&mut out) {
            out.push_back(Err(Error::decode("cut")));
        }
        out.into_iter().collect()
    }

    #[test]
    fn events_in_order() {
        let stream = [
            event("messageStart", r#"{"p":"abcd","role":"assistant"}"#),
            event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"abcdefgh"}"#),
            event("contentBlockStop", r#"{"contentBlockIndex":0}"#),
            event("contentBlockStart", r#"{"contentBlockIndex":1,"start":{"toolUse":{"name":"top_song","toolUseId":"tooluse_1"}}}"#),
            event("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"sign\":"}}}"#),
            event("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"WZPZ\"}"}}}"#),
            event("contentBlockStop", r#"{"contentBlockIndex":1}"#),
            event("messageStop", r#"{"stopReason":"tool_use"}"#),
            event("metadata", r#"{"metrics":{"latencyMs":700},"usage":{"inputTokens":20,"outputTokens":9,"totalTokens":29,"cacheReadInputTokens":4}}"#),
        ]
        .concat();
        let events: Vec<StreamEvent> = run(&stream).into_iter().map(|e| e.unwrap()).collect();
        assert_eq!(
            events,
            vec![
                StreamEvent::Delta("Hello".into()),
                StreamEvent::ToolCall(ToolCall::new("tooluse_1", "top_song", "{\"sign\":\"WZPZ\"}")),
                StreamEvent::Usage(Usage::new(24, 9).with_cached_input(4)),
                StreamEvent::Finish(FinishReason::ToolCalls),
            ]
        );
        // Without metadata the end of the body completes the stream; without messageStop it is cut.
        let no_metadata = [
            event("contentBlockDelta", r#"{"delta":{"text":"Hi"}}"#),
            event("messageStop", r#"{"stopReason":"max_tokens"}"#),
        ]
        .concat();
        let events: Vec<StreamEvent> = run(&no_metadata).into_iter().map(|e| e.unwrap()).collect();
        assert_eq!(events.last(), Some(&StreamEvent::Finish(FinishReason::Length)));
        let cut = event("contentBlockDelta", r#"{"delta":{"text":"Hi"}}"#);
        assert!(run(&cut).last().unwrap().is_err());
    }

    #[test]
    fn exceptions_and_bad_events() {
        let throttled = encode(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"Too many requests"}"#,
        );
        let events = run(&[event("messageStart", "{}"), throttled].concat());
        assert_eq!(events[0].as_ref().unwrap_err().kind(), ErrorKind::RateLimited);
        let error = encode(&[(":message-type", "error"), (":error-code", "InternalFailure")], b"");
        assert_eq!(run(&error)[0].as_ref().unwrap_err().kind(), ErrorKind::Server);
        let bad = event("contentBlockDelta", "{not json");
        assert_eq!(run(&bad)[0].as_ref().unwrap_err().kind(), ErrorKind::Decode);
        let far = event("contentBlockStart", r#"{"contentBlockIndex":5000,"start":{}}"#);
        assert_eq!(run(&far)[0].as_ref().unwrap_err().kind(), ErrorKind::Decode);
        // A tool call whose block never stopped is an error at messageStop, not a lost call.
        let open = [
            event("contentBlockStart", r#"{"contentBlockIndex":0,"start":{"toolUse":{"name":"f","toolUseId":"t"}}}"#),
            event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"toolUse":{"input":"{\"a\":"}}}"#),
            event("messageStop", r#"{"stopReason":"tool_use"}"#),
        ]
        .concat();
        let e = run(&open).into_iter().last().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(e.to_string().contains("content block 0 unfinished"), "{e}");
    }
}
