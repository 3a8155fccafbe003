//! [`OpenAi`]: an adapter for OpenAI-compatible chat-completions APIs (feature `openai`).
//!
//! The same adapter serves OpenAI and every server that speaks its `POST /chat/completions` wire
//! format: Azure-style deployments, vLLM, Ollama, llama.cpp's server, OpenRouter, Together, Groq. Point
//! [`base_url`](OpenAiBuilder::base_url) at the API root (the part before `/chat/completions`).
//!
//! ```no_run
//! use switchyard::provider::openai::OpenAi;
//! use switchyard::{Catalog, ModelProfile, Pricing, Request, Router};
//!
//! # async fn run() -> switchyard::Result<()> {
//! // A local Ollama server: no key needed.
//! let ollama = OpenAi::builder("ollama").base_url("http://127.0.0.1:11434/v1").build()?;
//! let catalog = Catalog::new([ModelProfile::new("llama3.2", "ollama").with_pricing(Pricing::per_mtok(0.0, 0.0))])?;
//! let router = Router::builder().catalog(catalog).provider(ollama).build()?;
//! let answer = router.complete(Request::new("Say hello in French.")).await?;
//! println!("{}", answer.content());
//! # Ok(()) }
//! # let _ = run;
//! ```
//!
//! See `docs/providers.md` for the fields sent and read, the error mapping and what is not covered.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::catalog::ModelProfile;
use crate::completion::{Completion, EventStream, FinishReason, StreamEvent, Usage};
use crate::error::{Error, Result};
use crate::provider::Provider;
use crate::provider::http::{
    self, CallContext, CommonBuilder, KeyHeader, ProviderError, Secret, SseDecoder, Transport, null_default,
};
use crate::provider::sse::SseEvent;
use crate::request::{ContentPart, ImageDetail, Message, Request, ResponseFormat, Role, ToolChoice};

pub mod codec;

/// OpenAI's API root.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// A provider for OpenAI-compatible chat-completions APIs.
///
/// Cheap to clone: clones share one HTTP client (and its connection pool). Built with
/// [`OpenAi::builder`] or [`OpenAi::from_env`]. `Debug` shows the endpoint and settings, never the key.
#[derive(Clone)]
pub struct OpenAi {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    max_completion_tokens: bool,
    stream_usage: bool,
}

impl fmt::Debug for OpenAi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAi")
            .field("name", &self.inner.transport.name())
            .field("transport", &self.inner.transport)
            .field("max_completion_tokens", &self.inner.max_completion_tokens)
            .field("stream_usage", &self.inner.stream_usage)
            .finish()
    }
}

impl OpenAi {
    /// A builder for an adapter registered under `name` (the name catalog models give as their
    /// provider), pointed at OpenAI until [`base_url`](OpenAiBuilder::base_url) says otherwise.
    pub fn builder(name: impl Into<String>) -> OpenAiBuilder {
        OpenAiBuilder {
            common: CommonBuilder::new(name.into(), DEFAULT_BASE_URL, KeyHeader::Bearer),
            max_completion_tokens: false,
            stream_usage: true,
        }
    }

    /// An adapter named `openai` configured from the environment: the key from `OPENAI_API_KEY` and,
    /// when set, the API root from `OPENAI_BASE_URL`. This is the only place the adapter reads the
    /// environment.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) when neither variable is set (a server at a
    /// custom base URL may need no key), or when a value is invalid.
    #[allow(clippy::disallowed_methods, reason = "the one constructor documented to read the environment")]
    pub fn from_env() -> Result<Self> {
        let key = std::env::var("OPENAI_API_KEY").ok().filter(|k| !k.is_empty());
        let base = std::env::var("OPENAI_BASE_URL").ok().filter(|u| !u.is_empty());
        if key.is_none() && base.is_none() {
            return Err(Error::config(
                "`OPENAI_API_KEY` is not set (nor `OPENAI_BASE_URL` for a server that needs no key)",
            ));
        }
        let mut builder = Self::builder("openai");
        if let Some(base) = base {
            builder = builder.base_url(base);
        }
        if let Some(key) = key {
            builder = builder.api_key(key);
        }
        builder.build()
    }

    fn context<'a>(&self, model: &'a ModelProfile, request: &'a Request) -> CallContext<'a> {
        CallContext { model, request }
    }

    fn body(&self, model: &ModelProfile, request: &Request, stream: bool) -> Result<Vec<u8>> {
        let wire = encode(model, request, stream, self.inner.max_completion_tokens, self.inner.stream_usage)?;
        serde_json::to_vec(&wire)
            .map_err(|_| Error::new(crate::error::ErrorKind::BadRequest, "the request cannot be encoded"))
    }
}

/// Builds an [`OpenAi`] adapter. Setters record errors, which [`build`](Self::build) returns.
#[must_use]
pub struct OpenAiBuilder {
    common: CommonBuilder,
    max_completion_tokens: bool,
    stream_usage: bool,
}

impl fmt::Debug for OpenAiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiBuilder").field("common", &self.common).finish_non_exhaustive()
    }
}

impl OpenAiBuilder {
    /// The API root, before `/chat/completions`: `https://api.openai.com/v1` (the default),
    /// `http://127.0.0.1:11434/v1` (Ollama), `http://127.0.0.1:8000/v1` (vLLM),
    /// `https://openrouter.ai/api/v1`, or an Azure deployment
    /// (`https://NAME.openai.azure.com/openai/deployments/DEPLOYMENT`, with [`query`](Self::query)
    /// `api-version` and [`api_key_header`](Self::api_key_header) `api-key`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.common.base_url = url.into();
        self
    }

    /// The API key, sent as `Authorization: Bearer <key>` unless [`api_key_header`](Self::api_key_header)
    /// names another header. Without a key no credentials are sent (local servers need none).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.common.api_key = Some(Secret::new(key.into()));
        self
    }

    /// Sends the key as-is in header `name` instead of `Authorization: Bearer` (Azure: `api-key`).
    pub fn api_key_header(mut self, name: &str) -> Self {
        self.common.key_header(name);
        self
    }

    /// Adds a header to every request (`OpenAI-Organization`, `HTTP-Referer`). Values are treated as
    /// secrets: `Debug` shows header names only.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.common.header(name, value);
        self
    }

    /// Adds a query parameter to the endpoint (Azure: `api-version`).
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.common.query.push((name.into(), value.into()));
        self
    }

    super::http::transport_setters!();

    /// Sends the output limit as `max_completion_tokens` (required by OpenAI's reasoning models)
    /// instead of `max_tokens` (the default, understood by every compatible server).
    pub fn max_completion_tokens(mut self, yes: bool) -> Self {
        self.max_completion_tokens = yes;
        self
    }

    /// Asks for usage at the end of streams with `stream_options: {"include_usage": true}` (the
    /// default). Turn it off for servers that reject the field.
    pub fn stream_usage(mut self, yes: bool) -> Self {
        self.stream_usage = yes;
        self
    }

    /// Checks the settings and builds the adapter and its HTTP client.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config): an empty name, a base URL that is not
    /// http(s), an invalid header, a zero timeout or limit, a key that cannot be sent in a header.
    pub fn build(self) -> Result<OpenAi> {
        let transport = self.common.build("/chat/completions")?;
        Ok(OpenAi {
            inner: Arc::new(Inner {
                transport,
                max_completion_tokens: self.max_completion_tokens,
                stream_usage: self.stream_usage,
            }),
        })
    }
}

#[async_trait]
impl Provider for OpenAi {
    fn name(&self) -> &str {
        self.inner.transport.name()
    }

    async fn complete(&self, model: &ModelProfile, request: &Request) -> Result<Completion> {
        let cx = self.context(model, request);
        let body = self.body(model, request, false)?;
        let (mut response, deadlines) = self.inner.transport.post(body, false, &cx).await?;
        let bytes = self.inner.transport.read_json_body(&mut response, &deadlines).await?;
        decode_response(self.name(), &bytes, request)
    }

    async fn stream(&self, model: &ModelProfile, request: &Request) -> Result<EventStream> {
        let cx = self.context(model, request);
        let body = self.body(model, request, true)?;
        let (response, deadlines) = self.inner.transport.post(body, true, &cx).await?;
        let decoder = ChunkDecoder::new(self.inner.transport.name.clone());
        self.inner.transport.event_stream(response, deadlines, model.id.clone(), decoder).await
    }
}

// ---- Request -------------------------------------------------------------------------------------

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    logit_bias: &'a BTreeMap<u32, f32>,
    /// Provider-specific fields, at the top level (the router refused reserved keys before routing).
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireToolChoice<'a> {
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: WireChosen<'a>,
    },
}

#[derive(Serialize)]
struct WireChosen<'a> {
    name: &'a str,
}

fn tool_choice(choice: &ToolChoice) -> WireToolChoice<'_> {
    match choice {
        ToolChoice::Auto => WireToolChoice::Mode("auto"),
        ToolChoice::None => WireToolChoice::Mode("none"),
        ToolChoice::Required => WireToolChoice::Mode("required"),
        ToolChoice::Function(name) => WireToolChoice::Function { kind: "function", function: WireChosen { name } },
    }
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<WireContent<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireContent<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<WirePart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: WireImage<'a> },
}

#[derive(Serialize)]
struct WireImage<'a> {
    url: &'a str,
    detail: &'static str,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireCalled<'a>,
}

#[derive(Serialize)]
struct WireCalled<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    parameters: &'a RawValue,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireFormat<'a> {
    JsonObject,
    JsonSchema { json_schema: WireSchema<'a> },
}

#[derive(Serialize)]
struct WireSchema<'a> {
    name: &'a str,
    schema: &'a RawValue,
}

const EMPTY_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

fn encode<'a>(
    model: &'a ModelProfile,
    request: &'a Request,
    stream: bool,
    max_completion_tokens: bool,
    stream_usage: bool,
) -> Result<ChatRequest<'a>> {
    let messages = request.messages.iter().map(encode_message).collect();
    let tools = request
        .tools
        .iter()
        .map(|t| {
            let parameters =
                http::raw_json(&t.parameters, EMPTY_SCHEMA, || format!("the schema of tool `{}`", t.name))?;
            Ok(WireTool {
                kind: "function",
                function: WireFunction { name: &t.name, description: &t.description, parameters },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let response_format = match &request.response_format {
        ResponseFormat::Text => None,
        ResponseFormat::Json => Some(WireFormat::JsonObject),
        ResponseFormat::JsonSchema { name, schema } => {
            let schema = http::raw_json(schema, EMPTY_SCHEMA, || format!("the response schema `{name}`"))?;
            Some(WireFormat::JsonSchema { json_schema: WireSchema { name, schema } })
        }
    };
    let (max_tokens, max_completion) =
        if max_completion_tokens { (None, request.max_tokens) } else { (request.max_tokens, None) };
    Ok(ChatRequest {
        model: model.api_name(),
        messages,
        tools,
        response_format,
        max_tokens,
        max_completion_tokens: max_completion,
        temperature: request.temperature,
        stop: &request.stop,
        stream,
        stream_options: (stream && stream_usage).then_some(StreamOptions { include_usage: true }),
        top_p: request.top_p,
        seed: request.seed,
        tool_choice: request.tool_choice.as_ref().map(tool_choice),
        // OpenAI refuses `parallel_tool_calls` without tools.
        parallel_tool_calls: request.parallel_tool_calls.filter(|_| !request.tools.is_empty()),
        user: request.user.as_deref(),
        logit_bias: &request.logit_bias,
        extra: &request.extra,
    })
}

fn encode_message(m: &Message) -> WireMessage<'_> {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let has_image = m.content.iter().any(|p| matches!(p, ContentPart::Image { .. }));
    let content = if has_image {
        Some(WireContent::Parts(
            m.content
                .iter()
                .map(|p| match p {
                    ContentPart::Text { text } => WirePart::Text { text },
                    ContentPart::Image { url, detail } => WirePart::ImageUrl {
                        image_url: WireImage {
                            url,
                            detail: match detail {
                                ImageDetail::Auto => "auto",
                                ImageDetail::Low => "low",
                                ImageDetail::High => "high",
                            },
                        },
                    },
                })
                .collect(),
        ))
    } else {
        let mut texts = m.texts();
        let text = match (texts.next(), texts.next()) {
            (None, _) => Cow::Borrowed(""),
            (Some(one), None) => Cow::Borrowed(one),
            (Some(_), Some(_)) => Cow::Owned(m.texts().collect::<Vec<_>>().join("\n")),
        };
        // An assistant turn that only calls tools has no content.
        (!text.is_empty() || m.tool_calls.is_empty()).then_some(WireContent::Text(text))
    };
    WireMessage {
        role,
        content,
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| WireToolCall {
                id: &c.id,
                kind: "function",
                function: WireCalled {
                    name: &c.name,
                    arguments: if c.arguments.is_empty() { "{}" } else { &c.arguments },
                },
            })
            .collect(),
        tool_call_id: m.tool_call_id.as_deref(),
    }
}

// ---- Completion ------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default, deserialize_with = "null_default")]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    /// Some compatible servers and gateways report failures in a 200 body.
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<WireText>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    tool_calls: Vec<ToolCallIn>,
}

/// Content as a string, or as text parts (some compatible servers).
#[derive(Deserialize)]
#[serde(untagged)]
enum WireText {
    Text(String),
    Parts(Vec<TextPartIn>),
}

#[derive(Deserialize)]
struct TextPartIn {
    #[serde(default)]
    text: Option<String>,
}

impl WireText {
    fn into_string(self) -> String {
        match self {
            Self::Text(s) => s,
            Self::Parts(parts) => parts.into_iter().filter_map(|p| p.text).collect(),
        }
    }
}

#[derive(Deserialize)]
struct ToolCallIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionIn>,
}

#[derive(Deserialize)]
struct FunctionIn {
    #[serde(default)]
    name: Option<String>,
    /// A JSON string per the spec; some servers send the object itself.
    #[serde(default)]
    arguments: Option<serde_json::Value>,
}

fn arguments_text(v: Option<serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "{}".to_owned(),
        Some(serde_json::Value::String(s)) => s,
        Some(other) => other.to_string(),
    }
}

#[derive(Deserialize, Clone, Copy, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize, Clone, Copy, Default)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize, Clone, Copy, Default)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    /// OpenAI's counts already include cached prompt tokens and reasoning tokens, as [`Usage`] does.
    fn to_usage(self) -> Usage {
        let input = http::tokens(self.prompt_tokens);
        let output = http::tokens(self.completion_tokens);
        let cached = http::tokens(self.prompt_tokens_details.and_then(|d| d.cached_tokens)).min(input);
        let reasoning = http::tokens(self.completion_tokens_details.and_then(|d| d.reasoning_tokens)).min(output);
        Usage::new(input, output).with_cached_input(cached).with_reasoning(reasoning)
    }
}

fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// Decodes a complete (non-streamed) answer. A body with no usage gets heuristic token counts, so the
/// router can still price the call.
pub(super) fn decode_response(name: &str, body: &[u8], request: &Request) -> Result<Completion> {
    let wire: ChatResponse = serde_json::from_slice(body).map_err(|e| http::json_error(name, "an answer", &e))?;
    if let Some(error) = wire.error.filter(|e| !e.is_null()) {
        return Err(http::reported_error(name, &ProviderError::from_value(&error)));
    }
    let Some(choice) = wire.choices.into_iter().next() else {
        return Err(Error::decode(format!("provider `{name}` answered with no choices")));
    };
    let message = choice.message.unwrap_or_default();
    let mut content = message.content.map(WireText::into_string).unwrap_or_default();
    if content.is_empty()
        && let Some(refusal) = message.refusal
    {
        content = refusal;
    }
    let usage = match wire.usage {
        Some(u) => u.to_usage(),
        None => http::estimated_usage(request, &content),
    };
    let mut response = Completion::new(content, finish_reason(choice.finish_reason.as_deref()), usage);
    for (i, call) in message.tool_calls.into_iter().enumerate() {
        let function = call.function.unwrap_or(FunctionIn { name: None, arguments: None });
        let id = call.id.unwrap_or_else(|| format!("call_{i}"));
        response = response.with_tool_call(crate::request::ToolCall::new(
            id,
            function.name.unwrap_or_default(),
            arguments_text(function.arguments),
        ));
    }
    Ok(response)
}

// ---- Stream --------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Chunk {
    #[serde(default, deserialize_with = "null_default")]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    tool_calls: Vec<ToolCallDelta>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// The most tool calls one streamed answer may assemble.
const MAX_STREAMED_TOOL_CALLS: usize = 128;

#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Assembles chat-completion chunks into stream events: text deltas as they come, each tool call
/// whole once its arguments are complete (at the finish reason), then usage and the finish reason at
/// `[DONE]`.
pub(super) struct ChunkDecoder {
    name: Arc<str>,
    calls: Vec<PartialCall>,
    calls_flushed: bool,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
}

impl ChunkDecoder {
    pub(super) fn new(name: Arc<str>) -> Self {
        Self { name, calls: Vec::new(), calls_flushed: false, finish: None, usage: None }
    }

    /// The calls, whole, at the finish reason (or `[DONE]`). An index no delta filled (the calls
    /// numbered from 1, say) is skipped; a call without a name is a decode error, since no one could
    /// run it.
    fn flush_calls(&mut self, out: &mut VecDeque<Result<StreamEvent>>) -> Result<()> {
        if self.calls_flushed {
            return Ok(());
        }
        self.calls_flushed = true;
        let unfilled = |c: &PartialCall| c.id.is_empty() && c.name.is_empty() && c.arguments.is_empty();
        // Every call is checked before any goes out, so that an error does not follow half of them.
        if let Some(i) = self.calls.iter().position(|c| !unfilled(c) && c.name.is_empty()) {
            return Err(Error::decode(format!("provider `{}` streamed tool call {i} without a name", self.name)));
        }
        for (i, call) in self.calls.drain(..).enumerate() {
            if unfilled(&call) {
                continue;
            }
            let id = if call.id.is_empty() { format!("call_{i}") } else { call.id };
            let arguments = if call.arguments.is_empty() { "{}".to_owned() } else { call.arguments };
            out.push_back(Ok(StreamEvent::ToolCall(crate::request::ToolCall::new(id, call.name, arguments))));
        }
        Ok(())
    }

    fn tool_delta(&mut self, d: ToolCallDelta) -> Result<()> {
        let adds_nothing = d.id.as_deref().is_none_or(str::is_empty)
            && d.function.as_ref().is_none_or(|f| {
                f.name.as_deref().is_none_or(str::is_empty) && f.arguments.as_deref().is_none_or(str::is_empty)
            });
        if self.calls_flushed && !adds_nothing {
            // The calls went out whole at the finish reason: a late fragment would be lost.
            return Err(Error::decode(format!(
                "provider `{}` streamed a tool call after its finish reason",
                self.name
            )));
        }
        let index = d.index.unwrap_or_else(|| {
            if d.id.is_some() || self.calls.is_empty() { self.calls.len() } else { self.calls.len() - 1 }
        });
        if index >= MAX_STREAMED_TOOL_CALLS {
            return Err(Error::decode(format!(
                "provider `{}` streamed a tool call with index {index}, over the limit of {MAX_STREAMED_TOOL_CALLS}",
                self.name
            )));
        }
        if self.calls.len() <= index {
            self.calls.resize_with(index + 1, PartialCall::default);
        }
        let call = &mut self.calls[index];
        if let Some(id) = d.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(f) = d.function {
            if let Some(name) = f.name.filter(|n| !n.is_empty()) {
                call.name = name;
            }
            if let Some(args) = f.arguments {
                call.arguments.push_str(&args);
            }
        }
        Ok(())
    }
}

impl SseDecoder for ChunkDecoder {
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<Result<StreamEvent>>) -> Result<bool> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.flush_calls(out)?;
            if let Some(usage) = self.usage.take() {
                out.push_back(Ok(StreamEvent::Usage(usage)));
            }
            out.push_back(Ok(StreamEvent::Finish(self.finish.unwrap_or(FinishReason::Other))));
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let chunk: Chunk =
            serde_json::from_str(data).map_err(|e| http::json_error(&self.name, "a stream chunk", &e))?;
        if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
            return Err(http::reported_error(&self.name, &ProviderError::from_value(&error)));
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index.unwrap_or(0) == 0) {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    out.push_back(Ok(StreamEvent::Delta(text)));
                }
                if let Some(text) = delta.refusal.filter(|t| !t.is_empty()) {
                    out.push_back(Ok(StreamEvent::Delta(text)));
                }
                for d in delta.tool_calls {
                    self.tool_delta(d)?;
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(finish_reason(Some(&reason)));
                self.flush_calls(out)?;
            }
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.to_usage());
        }
        Ok(false)
    }

    fn terminator(&self) -> &'static str {
        "[DONE]"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Tool, ToolCall};
    use proptest::prelude::*;

    fn json(model: &ModelProfile, request: &Request, stream: bool, mct: bool) -> serde_json::Value {
        serde_json::to_value(encode(model, request, stream, mct, true).unwrap()).unwrap()
    }

    #[test]
    fn encodes_messages_tools_and_formats() {
        let model = ModelProfile::new("gpt", "openai").with_api_name("gpt-4o-mini");
        let request = Request::from_messages(vec![
            Message::system("be brief"),
            Message::user("what is this?")
                .with_part(ContentPart::image("data:image/png;base64,AAAA", ImageDetail::Low)),
            Message::assistant("").with_tool_call(ToolCall::new("c1", "lookup", "{\"q\":1}")),
            Message::tool_result("c1", "42"),
        ])
        .with_tool(Tool::new("lookup", "looks up", r#"{"type":"object","properties":{"q":{"type":"integer"}}}"#))
        .with_response_format(ResponseFormat::JsonSchema {
            name: "answer".into(),
            schema: r#"{"type":"object"}"#.into(),
        })
        .with_max_tokens(50)
        .with_temperature(0.5)
        .with_stop("END");
        let v = json(&model, &request, false, false);
        assert_eq!(v["model"], "gpt-4o-mini");
        assert_eq!(v["messages"][0], serde_json::json!({"role": "system", "content": "be brief"}));
        assert_eq!(v["messages"][1]["content"][1]["image_url"]["detail"], "low");
        assert_eq!(v["messages"][1]["content"][0], serde_json::json!({"type": "text", "text": "what is this?"}));
        assert!(v["messages"][2].get("content").is_none());
        assert_eq!(v["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"q\":1}");
        assert_eq!(v["messages"][3], serde_json::json!({"role": "tool", "content": "42", "tool_call_id": "c1"}));
        assert_eq!(v["tools"][0]["function"]["parameters"]["properties"]["q"]["type"], "integer");
        assert_eq!(v["response_format"]["json_schema"]["schema"], serde_json::json!({"type": "object"}));
        assert_eq!(v["max_tokens"], 50);
        assert!(v.get("max_completion_tokens").is_none() && v.get("stream").is_none());
        assert_eq!(v["temperature"], 0.5);
        assert_eq!(v["stop"], serde_json::json!(["END"]));
        let v = json(&model, &request, true, true);
        assert_eq!(v["max_completion_tokens"], 50);
        assert_eq!(v["stream_options"], serde_json::json!({"include_usage": true}));
        let bad = Request::new("x").with_tool(Tool::new("t", "", "{not json"));
        let e = encode(&model, &bad, false, false, true).err().unwrap();
        assert_eq!(e.kind(), crate::error::ErrorKind::BadRequest);
    }

    #[test]
    fn forwards_pass_through_parameters() {
        let model = ModelProfile::new("gpt", "openai").with_api_name("gpt-4o-mini");
        let plain = json(&model, &Request::new("hi"), false, false);
        for key in ["top_p", "seed", "tool_choice", "parallel_tool_calls", "user", "logit_bias"] {
            assert!(plain.get(key).is_none(), "`{key}` is not sent unless set");
        }
        let request = Request::new("hi")
            .with_tool(Tool::new("lookup", "", "{}"))
            .with_tool_choice(crate::request::ToolChoice::Function("lookup".into()))
            .with_parallel_tool_calls(false)
            .with_top_p(0.25)
            .with_seed(-3)
            .with_user("end-user-7")
            .with_logit_bias(50256, -100.0)
            .with_extra("presence_penalty", serde_json::json!(0.5))
            .with_extra("reasoning_effort", serde_json::json!("low"));
        let v = json(&model, &request, false, false);
        assert_eq!(v["tool_choice"], serde_json::json!({"type": "function", "function": {"name": "lookup"}}));
        assert_eq!(v["parallel_tool_calls"], false);
        assert_eq!(v["top_p"], 0.25);
        assert_eq!(v["seed"], -3);
        assert_eq!(v["user"], "end-user-7");
        assert_eq!(v["logit_bias"], serde_json::json!({"50256": -100.0}));
        assert_eq!(v["presence_penalty"], 0.5);
        assert_eq!(v["reasoning_effort"], "low");
        let modes = [
            (crate::request::ToolChoice::Auto, "auto"),
            (crate::request::ToolChoice::None, "none"),
            (crate::request::ToolChoice::Required, "required"),
        ];
        for (choice, wire) in modes {
            assert_eq!(json(&model, &Request::new("hi").with_tool_choice(choice), false, false)["tool_choice"], wire);
        }
        let no_tools = json(&model, &Request::new("hi").with_parallel_tool_calls(true), false, false);
        assert!(no_tools.get("parallel_tool_calls").is_none(), "OpenAI refuses it without tools");
    }

    #[test]
    fn decodes_usage_tool_calls_and_gaps() {
        let body = br#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":100,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":64},"completion_tokens_details":{"reasoning_tokens":8}},"extra":{"new":true}}"#;
        let r = decode_response("openai", body, &Request::new("hi")).unwrap();
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.tool_calls, vec![ToolCall::new("call_1", "f", "{\"a\":1}")]);
        assert_eq!(r.usage, Usage::new(100, 20).with_cached_input(64).with_reasoning(8));
        let no_usage = br#"{"choices":[{"message":{"content":"hello there"},"finish_reason":"stop"}]}"#;
        let r = decode_response("openai", no_usage, &Request::new("hi")).unwrap();
        assert!(r.usage.input_tokens > 0 && r.usage.output_tokens > 0);
        for bad in [
            &br#"{"choices":[]}"#[..],
            br#"{"choices":null}"#,
            b"{}",
            b"not json",
            b"",
            br#"{"choices":[{"message":{"content":5}}]}"#,
        ] {
            assert_eq!(
                decode_response("openai", bad, &Request::new("hi")).unwrap_err().kind(),
                crate::error::ErrorKind::Decode
            );
        }
    }

    fn run_stream(events: &[&str]) -> (Vec<Result<StreamEvent>>, bool) {
        let mut d = ChunkDecoder::new(Arc::from("openai"));
        let mut out = VecDeque::new();
        let mut done = false;
        for e in events {
            match d.event(SseEvent { event: None, data: (*e).to_owned() }, &mut out) {
                Ok(true) => {
                    done = true;
                    break;
                }
                Ok(false) => {}
                Err(e) => {
                    out.push_back(Err(e));
                    break;
                }
            }
        }
        (out.into_iter().collect(), done)
    }

    #[test]
    fn stream_assembles_tool_calls_by_index() {
        let (events, done) = run_stream(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":"{\"x\""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":":2}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}"#,
            "[DONE]",
        ]);
        assert!(done);
        let events: Vec<StreamEvent> = events.into_iter().map(|e| e.unwrap()).collect();
        assert_eq!(
            events,
            vec![
                StreamEvent::ToolCall(ToolCall::new("a", "f", "{}")),
                StreamEvent::ToolCall(ToolCall::new("b", "g", "{\"x\":2}")),
                StreamEvent::Usage(Usage::new(5, 7)),
                StreamEvent::Finish(FinishReason::ToolCalls),
            ]
        );
        let (events, _) = run_stream(&[r#"{"choices":[{"delta":{"tool_calls":[{"index":100000}]}}]}"#]);
        assert_eq!(events[0].as_ref().unwrap_err().kind(), crate::error::ErrorKind::Decode);
        let (events, _) = run_stream(&[r#"{"error":{"type":"server_error","message":"boom"}}"#]);
        assert_eq!(events[0].as_ref().unwrap_err().kind(), crate::error::ErrorKind::Server);
        // Calls numbered from 1: no empty call for the index nobody filled.
        let (events, _) = run_stream(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ]);
        let events: Vec<StreamEvent> = events.into_iter().map(|e| e.unwrap()).collect();
        assert_eq!(events[0], StreamEvent::ToolCall(ToolCall::new("b", "g", "{}")));
        assert_eq!(events.len(), 2, "{events:?}");
        // A fragment after the finish reason, and a call without a name, are errors, not losses.
        let (events, _) = run_stream(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{"}}]},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"}"}}]}}]}"#,
        ]);
        let e = events.last().unwrap().as_ref().unwrap_err();
        assert!(e.to_string().contains("after its finish reason"), "{e}");
        // An empty fragment after the finish reason loses nothing and passes.
        let (events, done) = run_stream(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":""}}]}}]}"#,
            "[DONE]",
        ]);
        assert!(done && events.iter().all(Result::is_ok), "{events:?}");
        let (events, _) = run_stream(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{}"}},{"index":1,"id":"b","function":{"arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
        ]);
        assert_eq!(events.len(), 1, "no call goes out before the error: {events:?}");
        let e = events[0].as_ref().unwrap_err();
        assert!(e.to_string().contains("tool call 1 without a name"), "{e}");
    }

    proptest! {
        #[test]
        fn decoders_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_response("openai", &body, &Request::new("x"));
            let text = String::from_utf8_lossy(&body).into_owned();
            let _ = run_stream(&[&text, "[DONE]"]);
        }

        #[test]
        fn decoders_never_panic_on_json_shapes(
            choices in prop_oneof![Just("null".to_owned()), Just("[]".to_owned()), "\\[\\{\"(message|delta)\":\\{\"content\":(null|\"a\"|1|\\[\\])\\}\\}\\]"],
            usage in prop_oneof![Just("null".to_owned()), "\\{\"prompt_tokens\":(-1|0|4294967296|null|\"x\")\\}"],
            index in prop_oneof![Just("null".to_owned()), "(0|1|127|128|-1|99999999999)"],
        ) {
            let body = format!(r#"{{"choices":{choices},"usage":{usage}}}"#);
            let _ = decode_response("openai", body.as_bytes(), &Request::new("x"));
            let tool = format!(r#"{{"choices":[{{"delta":{{"tool_calls":[{{"index":{index},"function":{{"arguments":"x"}}}}]}}}}]}}"#);
            let _ = run_stream(&[&body, &tool, "[DONE]"]);
        }
    }
}
