//! OpenAI's chat-completions wire format: [`ChatCompletionRequest`] in, [`ChatCompletion`] or
//! [`ChatCompletionChunk`]s out, [`ErrorBody`] on failure.
//!
//! The types deserialize what OpenAI's clients send and serialize what they expect, field for field
//! (`null`s included where OpenAI sends them). Conversions:
//!
//! - [`Request::try_from`](crate::Request) a [`ChatCompletionRequest`]: messages, tools, formats and
//!   every pass-through parameter; fields this module does not name go to [`Request::extra`](crate::Request::extra).
//!   The request's `model`, `stream` and `stream_options` are the server's to read: they say how to
//!   route and how to answer, not what to send.
//! - [`ChatCompletion::from_response`] and [`ChunkEncoder`] (for [`StreamEvent`](crate::StreamEvent)s).
//! - [`ErrorBody::from_error`], with [`ErrorKind::http_status`](crate::ErrorKind::http_status) for the
//!   status.

mod request;
mod response;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use self::response::ChunkEncoder;

/// `POST /v1/chat/completions`'s body.
#[non_exhaustive]
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// The model asked for: `"auto"` or a name a server maps to models.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Functions the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ChatTool>,
    /// `"auto"`, `"none"`, `"required"` or `{"type": "function", "function": {"name"}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<serde_json::Value>,
    /// `{"type": "text" | "json_object" | "json_schema", "json_schema": {"name", "schema"}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ChatResponseFormat>,
    /// The older name of `max_completion_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The most output tokens, reasoning included (wins over `max_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Answers asked for; only 1 is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// One stop sequence or several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Whether to answer with server-sent events.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// `{"include_usage": true}` asks for a last chunk with the usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Whether several tool calls may come in one turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// The end user's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Token id (as a string) to bias.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub logit_bias: BTreeMap<String, f32>,
    /// Every other field, passed through to the provider.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for ChatCompletionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatCompletionRequest")
            .field("model", &self.model)
            .field("messages", &self.messages.len())
            .field("tools", &self.tools.len())
            .field("stream", &self.stream)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// `stop`: one string or a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `stream_options`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Whether the stream ends with a chunk that carries the usage (and no choices).
    #[serde(default)]
    pub include_usage: bool,
}

/// One message of the conversation, or the answer's message.
#[non_exhaustive]
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, or text and image parts; `null` for an assistant turn that only calls tools.
    #[serde(default)]
    pub content: Option<ChatContent>,
    /// A participant's name (accepted, not forwarded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The assistant's tool calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ChatToolCall>,
    /// For a `tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// An answer's refusal text, when the model refused (`null` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

impl std::fmt::Debug for ChatMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let content = match &self.content {
            None => "none".to_owned(),
            Some(ChatContent::Text(t)) => format!("{} bytes", t.len()),
            Some(ChatContent::Parts(p)) => format!("{} parts", p.len()),
        };
        f.debug_struct("ChatMessage")
            .field("role", &self.role)
            .field("content", &format_args!("{content}"))
            .field("tool_calls", &self.tool_calls.len())
            .finish_non_exhaustive()
    }
}

/// A message's content: a string, or an array of parts.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatContent {
    /// Plain text.
    Text(String),
    /// Parts: `{"type": "text", "text"}`, `{"type": "image_url", "image_url": {"url", "detail"}}`.
    Parts(Vec<ChatContentPart>),
}

/// One content part. Kept loose (the type is a string) so that a part of a type this module does not
/// serve (audio, files) is refused by name rather than as a shape error.
#[non_exhaustive]
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatContentPart {
    /// `text` or `image_url` (others are refused when converting).
    #[serde(rename = "type")]
    pub kind: String,
    /// For `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// For `image_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ChatImageUrl>,
}

/// `image_url`: a URL or a `data:` URI, and the detail level.
#[non_exhaustive]
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatImageUrl {
    /// The image.
    pub url: String,
    /// `auto`, `low` or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A tool definition: `{"type": "function", "function": {"name", "description", "parameters"}}`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatTool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: ChatFunction,
}

/// A function the model may call.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatFunction {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
    /// OpenAI's strict schema mode (accepted, not forwarded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// A tool call in a message: `{"id", "type": "function", "function": {"name", "arguments"}}`.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatToolCall {
    /// The call's id.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function and its arguments as JSON text.
    pub function: ChatCalled,
}

impl std::fmt::Debug for ChatToolCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatToolCall")
            .field("id", &self.id)
            .field("name", &self.function.name)
            .field("arguments", &format_args!("{} bytes", self.function.arguments.len()))
            .finish()
    }
}

/// The function a tool call calls.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatCalled {
    /// Its name.
    pub name: String,
    /// The arguments, as JSON text.
    #[serde(default)]
    pub arguments: String,
}

/// `response_format`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatResponseFormat {
    /// `text`, `json_object` or `json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `json_schema`: `{"name", "schema", "strict"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<serde_json::Value>,
}

/// A whole answer: `chat.completion`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    /// The completion's id.
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    /// Unix time in seconds.
    pub created: u64,
    /// The model that answered.
    pub model: String,
    /// One choice.
    pub choices: Vec<ChatChoice>,
    /// Tokens billed.
    pub usage: ChatUsage,
}

/// One choice of a [`ChatCompletion`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    /// Always 0.
    pub index: u32,
    /// The answer.
    pub message: ChatMessage,
    /// `stop`, `length`, `tool_calls` or `content_filter`.
    pub finish_reason: Option<String>,
    /// Always `null`.
    pub logprobs: Option<serde_json::Value>,
}

/// `usage`, with OpenAI's details.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUsage {
    /// Input tokens, cached ones included.
    pub prompt_tokens: u32,
    /// Output tokens, reasoning included.
    pub completion_tokens: u32,
    /// Their sum.
    pub total_tokens: u32,
    /// `{"cached_tokens"}`.
    #[serde(default)]
    pub prompt_tokens_details: PromptTokensDetails,
    /// `{"reasoning_tokens"}`.
    #[serde(default)]
    pub completion_tokens_details: CompletionTokensDetails,
}

/// `usage.prompt_tokens_details`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cached_tokens: u32,
}

/// `usage.completion_tokens_details`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    /// Output tokens spent on hidden reasoning.
    #[serde(default)]
    pub reasoning_tokens: u32,
}

/// One event of a streamed answer: `chat.completion.chunk`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    /// The completion's id (the same in every chunk).
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    /// Unix time in seconds (the same in every chunk).
    pub created: u64,
    /// The model that answers.
    pub model: String,
    /// One choice, or none in the usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// With `stream_options.include_usage`: `null` in every chunk but the last, which has it.
    /// Left out otherwise.
    #[serde(default, skip_serializing_if = "ChunkUsage::is_absent")]
    pub usage: ChunkUsage,
}

/// A chunk's `usage`: absent (the field is left out), `null`, or the counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Option<ChatUsage>", into = "Option<ChatUsage>")]
pub enum ChunkUsage {
    /// Not asked for: the field is left out.
    #[default]
    Absent,
    /// Asked for, not yet known: `null`.
    Null,
    /// The counts, in the last chunk.
    Counts(ChatUsage),
}

impl ChunkUsage {
    fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

impl From<Option<ChatUsage>> for ChunkUsage {
    fn from(usage: Option<ChatUsage>) -> Self {
        usage.map_or(Self::Null, Self::Counts)
    }
}

impl From<ChunkUsage> for Option<ChatUsage> {
    fn from(usage: ChunkUsage) -> Self {
        match usage {
            ChunkUsage::Counts(u) => Some(u),
            ChunkUsage::Absent | ChunkUsage::Null => None,
        }
    }
}

/// One choice of a chunk.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Always 0.
    pub index: u32,
    /// What this chunk adds.
    pub delta: ChunkDelta,
    /// Set in the chunk that ends the answer.
    pub finish_reason: Option<String>,
    /// Always `null`.
    pub logprobs: Option<serde_json::Value>,
}

/// What a chunk adds to the answer.
#[non_exhaustive]
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkDelta {
    /// `assistant`, in the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A piece of the answer text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool calls (this crate sends each whole, in one chunk, with its `index`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ChunkToolCall>,
}

impl std::fmt::Debug for ChunkDelta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkDelta")
            .field("role", &self.role)
            .field("content", &self.content.as_ref().map(|c| format!("{} bytes", c.len())))
            .field("tool_calls", &self.tool_calls.len())
            .finish()
    }
}

/// A tool call in a chunk.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkToolCall {
    /// Which call of the answer (0, 1, ...).
    pub index: u32,
    /// The call's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The function's name and (a piece of) its arguments.
    pub function: ChunkCalled,
}

/// The function of a chunk's tool call.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkCalled {
    /// Its name, in the call's first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Arguments text.
    #[serde(default)]
    pub arguments: String,
}

impl std::fmt::Debug for ChunkCalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCalled")
            .field("name", &self.name)
            .field("arguments", &format_args!("{} bytes", self.arguments.len()))
            .finish()
    }
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// The `error` object of an [`ErrorBody`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// What went wrong, for people (never a key or prompt text).
    pub message: String,
    /// `invalid_request_error`, `rate_limit_error`, `server_error`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, when known.
    pub param: Option<String>,
    /// A machine-readable code: the [`ErrorKind`](crate::ErrorKind)'s label (`budget_exceeded`,
    /// `no_candidate`, ...) or OpenAI's (`model_not_found`).
    pub code: Option<String>,
}
