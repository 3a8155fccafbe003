//! [`Response`] and [`StreamEvent`]s → [`ChatCompletion`] and [`ChatCompletionChunk`]s; [`Error`] →
//! [`ErrorBody`].

use super::{
    ChatCalled, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatContent, ChatMessage, ChatToolCall, ChatUsage,
    ChunkCalled, ChunkChoice, ChunkDelta, ChunkToolCall, ChunkUsage, CompletionTokensDetails, ErrorBody, ErrorObject,
    PromptTokensDetails,
};
use crate::completion::{FinishReason, StreamEvent, Usage};
use crate::error::{Error, ErrorKind};
use crate::execute::Response;
use crate::request::ToolCall;

/// OpenAI's name for a finish reason (`Other` is reported as `stop`, OpenAI having no such value).
pub(super) fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Stop | FinishReason::Other => "stop",
    }
}

impl From<Usage> for ChatUsage {
    fn from(u: Usage) -> Self {
        Self {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.input_tokens.saturating_add(u.output_tokens),
            prompt_tokens_details: PromptTokensDetails { cached_tokens: u.cached_input_tokens },
            completion_tokens_details: CompletionTokensDetails { reasoning_tokens: u.reasoning_tokens },
        }
    }
}

fn tool_call(call: &ToolCall) -> ChatToolCall {
    ChatToolCall {
        id: call.id.clone(),
        kind: "function".to_owned(),
        function: ChatCalled { name: call.name.clone(), arguments: call.arguments.clone() },
    }
}

impl ChatCompletion {
    /// The router's answer as OpenAI's `chat.completion`: `id` and `created` (Unix seconds) are the
    /// server's; `model` is the catalog id of the model that answered.
    ///
    /// An answer that only calls tools has `content: null`, as OpenAI's do.
    pub fn from_response(response: &Response, id: impl Into<String>, created: u64) -> Self {
        let content = (!response.content.is_empty() || response.tool_calls.is_empty())
            .then(|| ChatContent::Text(response.content.clone()));
        Self {
            id: id.into(),
            object: "chat.completion".to_owned(),
            created,
            model: response.model.to_string(),
            choices: vec![ChatChoice {
                index: 0,
                message: ChatMessage {
                    role: "assistant".to_owned(),
                    content,
                    tool_calls: response.tool_calls.iter().map(tool_call).collect(),
                    ..ChatMessage::default()
                },
                finish_reason: Some(finish_reason(response.finish_reason).to_owned()),
                logprobs: None,
            }],
            usage: response.usage.into(),
        }
    }
}

/// Turns a stream's [`StreamEvent`]s into OpenAI's `chat.completion.chunk`s, in OpenAI's order: a
/// first chunk with `role: "assistant"`, one chunk per text delta, one per tool call (whole, with its
/// `index`), a chunk with the finish reason, and, when `include_usage` was asked for, a last chunk
/// with the usage and no choices (every earlier chunk then has `usage: null`).
///
/// ```
/// use switchyard::wire::openai::ChunkEncoder;
/// use switchyard::{FinishReason, StreamEvent, Usage};
///
/// let mut encoder = ChunkEncoder::new("chatcmpl-1", 1_700_000_000, "mini", true);
/// let mut chunks = encoder.event(&StreamEvent::Delta("Hel".into()));
/// chunks.extend(encoder.event(&StreamEvent::Delta("lo".into())));
/// chunks.extend(encoder.event(&StreamEvent::Usage(Usage::new(9, 2))));
/// chunks.extend(encoder.event(&StreamEvent::Finish(FinishReason::Stop)));
/// chunks.extend(encoder.finish());
/// assert_eq!(chunks.len(), 4); // "Hel" (with the role), "lo", the finish reason, the usage
/// assert_eq!(chunks[3].choices.len(), 0);
/// ```
#[derive(Debug)]
pub struct ChunkEncoder {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    started: bool,
    tool_calls: u32,
    usage: Option<Usage>,
    finished: bool,
}

impl ChunkEncoder {
    /// An encoder for one stream: every chunk carries `id`, `created` (Unix seconds) and `model`.
    pub fn new(id: impl Into<String>, created: u64, model: impl Into<String>, include_usage: bool) -> Self {
        Self {
            id: id.into(),
            created,
            model: model.into(),
            include_usage,
            started: false,
            tool_calls: 0,
            usage: None,
            finished: false,
        }
    }

    fn chunk(&mut self, mut delta: ChunkDelta, finish: Option<FinishReason>) -> ChatCompletionChunk {
        if !self.started {
            self.started = true;
            delta.role = Some("assistant".to_owned());
        }
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish.map(|r| finish_reason(r).to_owned()),
                logprobs: None,
            }],
            usage: if self.include_usage { ChunkUsage::Null } else { ChunkUsage::Absent },
        }
    }

    /// The chunks for one event (none for usage, which is kept for [`finish`](Self::finish), and
    /// for events after the finish reason).
    pub fn event(&mut self, event: &StreamEvent) -> Vec<ChatCompletionChunk> {
        if self.finished {
            return Vec::new();
        }
        match event {
            StreamEvent::Delta(text) => {
                vec![self.chunk(ChunkDelta { content: Some(text.clone()), ..ChunkDelta::default() }, None)]
            }
            StreamEvent::ToolCall(call) => {
                let index = self.tool_calls;
                self.tool_calls += 1;
                let call = ChunkToolCall {
                    index,
                    id: Some(call.id.clone()),
                    kind: Some("function".to_owned()),
                    function: ChunkCalled { name: Some(call.name.clone()), arguments: call.arguments.clone() },
                };
                vec![self.chunk(ChunkDelta { tool_calls: vec![call], ..ChunkDelta::default() }, None)]
            }
            StreamEvent::Usage(usage) => {
                self.usage = Some(*usage);
                Vec::new()
            }
            StreamEvent::Finish(reason) => {
                self.finished = true;
                vec![self.chunk(ChunkDelta::default(), Some(*reason))]
            }
        }
    }

    /// The chunks that end the stream: a finish reason if no event gave one (`stop`), then the usage
    /// chunk if it was asked for (zeros if the provider reported none). Call it once, after the last
    /// event; [`sse::DONE`](crate::wire::sse::DONE) follows.
    pub fn finish(&mut self) -> Vec<ChatCompletionChunk> {
        let mut out = Vec::with_capacity(2);
        if !self.finished {
            out.extend(self.event(&StreamEvent::Finish(FinishReason::Stop)));
        }
        if self.include_usage {
            out.push(ChatCompletionChunk {
                id: self.id.clone(),
                object: "chat.completion.chunk".to_owned(),
                created: self.created,
                model: self.model.clone(),
                choices: Vec::new(),
                usage: ChunkUsage::Counts(self.usage.unwrap_or_default().into()),
            });
            self.include_usage = false;
        }
        out
    }
}

impl ErrorBody {
    /// An error as OpenAI's error body. The message is the error's `Display` (which never holds a
    /// key or prompt text); `code` is the [`ErrorKind`]'s label; `type` is OpenAI's family for the
    /// status [`ErrorKind::http_status`] gives.
    pub fn from_error(error: &Error) -> Self {
        Self::new(error.kind(), error.to_string())
    }

    /// An error body of `kind` with a message of the server's own (an unknown model, a bad key).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let family = match kind {
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::BudgetExceeded => "insufficient_quota",
            _ => match kind.http_status() {
                400 | 404 | 422 => "invalid_request_error",
                401 | 403 => "authentication_error",
                _ => "server_error",
            },
        };
        Self {
            error: ErrorObject {
                message: message.into(),
                kind: family.to_owned(),
                param: None,
                code: Some(kind.as_str().to_owned()),
            },
        }
    }

    /// Sets `param`, the request field at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.error.param = Some(param.into());
        self
    }

    /// Sets `code` (OpenAI's `model_not_found`, say) in place of the kind's label.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.error.code = Some(code.into());
        self
    }
}
