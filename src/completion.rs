//! What a provider returns: a [`Completion`] with its [`Usage`], or the events of a streamed answer.

use std::fmt;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::request::ToolCall;

/// Tokens a provider reports for one call.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens, cached ones included.
    pub input_tokens: u32,
    /// Output tokens, reasoning tokens included.
    pub output_tokens: u32,
    /// Input tokens read from the prompt cache (a subset of `input_tokens`).
    pub cached_input_tokens: u32,
    /// Output tokens spent on hidden reasoning (a subset of `output_tokens`).
    pub reasoning_tokens: u32,
}

impl Usage {
    /// Usage with input and output token counts.
    pub fn new(input_tokens: u32, output_tokens: u32) -> Self {
        Self { input_tokens, output_tokens, cached_input_tokens: 0, reasoning_tokens: 0 }
    }

    /// Sets the cached input tokens.
    pub fn with_cached_input(mut self, tokens: u32) -> Self {
        self.cached_input_tokens = tokens;
        self
    }

    /// Sets the reasoning tokens.
    pub fn with_reasoning(mut self, tokens: u32) -> Self {
        self.reasoning_tokens = tokens;
        self
    }
}

/// Why the model stopped.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    #[default]
    Stop,
    /// The output token limit cut the answer off.
    Length,
    /// The model asked for tool calls.
    ToolCalls,
    /// The provider's content filter stopped it.
    ContentFilter,
    /// Anything else the provider said.
    Other,
}

/// An answer as a [`Provider`](crate::Provider) returns it: the text, tool calls, finish reason and
/// usage the provider reported, and nothing else.
///
/// The router wraps it into a [`Response`](crate::Response) with what it decided and measured: the
/// model that answered, the decision, every attempt, the latency and the actual cost.
#[non_exhaustive]
#[derive(Clone, PartialEq)]
pub struct Completion {
    /// The answer text.
    pub content: String,
    /// Tool calls the model asked for.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// Tokens billed.
    pub usage: Usage,
}

impl Completion {
    /// A completion with text, a finish reason and usage.
    pub fn new(content: impl Into<String>, finish_reason: FinishReason, usage: Usage) -> Self {
        Self { content: content.into(), tool_calls: Vec::new(), finish_reason, usage }
    }

    /// Adds a tool call.
    pub fn with_tool_call(mut self, call: ToolCall) -> Self {
        self.tool_calls.push(call);
        self
    }

    /// The answer text.
    pub fn content(&self) -> &str {
        &self.content
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("content", &format_args!("{} bytes", self.content.len()))
            .field("tool_calls", &self.tool_calls)
            .field("finish_reason", &self.finish_reason)
            .field("usage", &self.usage)
            .finish()
    }
}

/// One event of a streamed response.
#[non_exhaustive]
#[derive(Clone, PartialEq)]
pub enum StreamEvent {
    /// A piece of answer text.
    Delta(String),
    /// A complete tool call.
    ToolCall(ToolCall),
    /// Token usage, usually at the end.
    Usage(Usage),
    /// The end of the answer, with the reason.
    Finish(FinishReason),
}

impl fmt::Debug for StreamEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Delta(s) => write!(f, "Delta({} bytes)", s.len()),
            Self::ToolCall(c) => f.debug_tuple("ToolCall").field(c).finish(),
            Self::Usage(u) => f.debug_tuple("Usage").field(u).finish(),
            Self::Finish(r) => f.debug_tuple("Finish").field(r).finish(),
        }
    }
}

/// A stream of response events, as [`Provider::stream`](crate::Provider::stream) returns it.
pub type EventStream = Pin<Box<dyn futures_core::Stream<Item = Result<StreamEvent>> + Send + 'static>>;
