//! [`Anthropic`]: an adapter for Anthropic's Messages API (feature `anthropic`).
//!
//! ```no_run
//! use switchyard::provider::anthropic::Anthropic;
//! use switchyard::{Catalog, ModelProfile, Pricing, Request, Router};
//!
//! # async fn run() -> switchyard::Result<()> {
//! let anthropic = Anthropic::builder("anthropic").api_key("sk-ant-...").build()?;
//! let catalog = Catalog::new([ModelProfile::new("haiku", "anthropic")
//!     .with_api_name("claude-3-5-haiku-latest")
//!     .with_pricing(Pricing::per_mtok(0.80, 4.00).with_cached_input(0.08))])?;
//! let router = Router::builder().catalog(catalog).provider(anthropic).build()?;
//! let answer = router.complete(Request::new("Say hello in French.")).await?;
//! println!("{}", answer.content());
//! # Ok(()) }
//! # let _ = run;
//! ```
//!
//! # Usage and prompt caching
//!
//! Anthropic reports `input_tokens` *without* the tokens read from or written to the prompt cache;
//! [`Usage::input_tokens`] includes them. The adapter reports
//! `input_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens` and
//! `cached_input_tokens = cache_read_input_tokens`. Cache writes are therefore priced as ordinary
//! input: Anthropic bills them at a premium (1.25× for the 5-minute cache) that the catalog's prices
//! cannot express, so the router's actual cost is a slight underestimate on calls that write the cache.
//!
//! See `docs/providers.md` for the fields sent and read, the error mapping and what is not covered.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::HeaderName;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::catalog::ModelProfile;
use crate::completion::{Completion, EventStream, FinishReason, StreamEvent, Usage};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::Provider;
use crate::provider::http::{
    self, CallContext, CommonBuilder, KeyHeader, ProviderError, Secret, SseDecoder, Transport, null_default,
};
use crate::provider::sse::SseEvent;
use crate::request::{ContentPart, Request, ResponseFormat, Role, ToolCall, ToolChoice};

/// Anthropic's API root (the part before `/v1/messages`).
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The `anthropic-version` header sent unless [`AnthropicBuilder::version`] says otherwise.
pub const API_VERSION: &str = "2023-06-01";

/// A provider for Anthropic's Messages API.
///
/// Cheap to clone: clones share one HTTP client. Built with [`Anthropic::builder`] or
/// [`Anthropic::from_env`]. `Debug` shows the endpoint and settings, never the key.
#[derive(Clone)]
pub struct Anthropic {
    inner: Arc<Transport>,
}

impl fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anthropic").field("name", &self.inner.name()).field("transport", &self.inner).finish()
    }
}

impl Anthropic {
    /// A builder for an adapter registered under `name` (the name catalog models give as their
    /// provider), pointed at `https://api.anthropic.com`.
    pub fn builder(name: impl Into<String>) -> AnthropicBuilder {
        let key_header = KeyHeader::Raw(HeaderName::from_static("x-api-key"));
        AnthropicBuilder { common: CommonBuilder::new(name.into(), DEFAULT_BASE_URL, key_header), version: None }
    }

    /// An adapter named `anthropic` configured from the environment: the key from `ANTHROPIC_API_KEY`
    /// and, when set, the API root from `ANTHROPIC_BASE_URL`. This is the only place the adapter
    /// reads the environment.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when neither variable is set, or when a value is invalid.
    #[allow(clippy::disallowed_methods, reason = "the one constructor documented to read the environment")]
    pub fn from_env() -> Result<Self> {
        let key = std::env::var("ANTHROPIC_API_KEY").ok().filter(|k| !k.is_empty());
        let base = std::env::var("ANTHROPIC_BASE_URL").ok().filter(|u| !u.is_empty());
        if key.is_none() && base.is_none() {
            return Err(Error::config("`ANTHROPIC_API_KEY` is not set"));
        }
        let mut builder = Self::builder("anthropic");
        if let Some(base) = base {
            builder = builder.base_url(base);
        }
        if let Some(key) = key {
            builder = builder.api_key(key);
        }
        builder.build()
    }

    fn body(&self, model: &ModelProfile, request: &Request, stream: bool) -> Result<Vec<u8>> {
        let wire = encode(model, request, stream)?;
        serde_json::to_vec(&wire).map_err(|_| Error::new(ErrorKind::BadRequest, "the request cannot be encoded"))
    }
}

/// Builds an [`Anthropic`] adapter. Setters record errors, which [`build`](Self::build) returns.
#[must_use]
pub struct AnthropicBuilder {
    common: CommonBuilder,
    version: Option<String>,
}

impl fmt::Debug for AnthropicBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicBuilder").field("common", &self.common).field("version", &self.version).finish()
    }
}

impl AnthropicBuilder {
    /// The API root, before `/v1/messages`. Default `https://api.anthropic.com`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.common.base_url = url.into();
        self
    }

    /// The API key, sent as `x-api-key`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.common.api_key = Some(Secret::new(key.into()));
        self
    }

    /// The `anthropic-version` header. Default [`API_VERSION`].
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Adds a header to every request (`anthropic-beta`). Values are treated as secrets: `Debug` shows
    /// header names only.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.common.header(name, value);
        self
    }

    super::http::transport_setters!();

    /// Checks the settings and builds the adapter and its HTTP client.
    ///
    /// # Errors
    /// [`ErrorKind::Config`]: an empty name, a base URL that is not http(s), an invalid header, a zero
    /// timeout or limit, a key that cannot be sent in a header.
    pub fn build(mut self) -> Result<Anthropic> {
        // `version` wins over a header of the same name; without either, the default applies.
        if self.version.is_some() || !self.common.headers.contains_key("anthropic-version") {
            let version = self.version.take().unwrap_or_else(|| API_VERSION.to_owned());
            self.common.headers.remove("anthropic-version");
            self.common.header("anthropic-version", &version);
        }
        Ok(Anthropic { inner: Arc::new(self.common.build("/v1/messages")?) })
    }
}

#[async_trait]
impl Provider for Anthropic {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn complete(&self, model: &ModelProfile, request: &Request) -> Result<Completion> {
        let cx = CallContext { model, request };
        let body = self.body(model, request, false)?;
        let (mut response, deadlines) = self.inner.post(body, false, &cx).await?;
        let bytes = self.inner.read_json_body(&mut response, &deadlines).await?;
        decode_response(self.name(), &bytes)
    }

    async fn stream(&self, model: &ModelProfile, request: &Request) -> Result<EventStream> {
        let cx = CallContext { model, request };
        let body = self.body(model, request, true)?;
        let (response, deadlines) = self.inner.post(body, true, &cx).await?;
        let decoder = EventDecoder::new(self.inner.name.clone());
        self.inner.event_stream(response, deadlines, model.id.clone(), decoder).await
    }
}

// ---- Request -------------------------------------------------------------------------------------

#[derive(Serialize)]
struct MessagesRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    /// Provider-specific fields, at the top level (the router refused reserved keys before routing).
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct WireToolChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disable_parallel_tool_use: bool,
}

#[derive(Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
}

/// OpenAI's `tool_choice` and `parallel_tool_calls` in the Messages API's terms (`required` is
/// `any`; no parallel calls is `disable_parallel_tool_use`). Nothing without tools: the API refuses
/// a tool choice then.
fn tool_choice(request: &Request) -> Option<WireToolChoice<'_>> {
    if request.tools.is_empty() {
        return None;
    }
    let disable_parallel = request.parallel_tool_calls == Some(false);
    let (kind, name) = match &request.tool_choice {
        None if !disable_parallel => return None,
        None | Some(ToolChoice::Auto) => ("auto", None),
        Some(ToolChoice::None) => {
            return Some(WireToolChoice { kind: "none", name: None, disable_parallel_tool_use: false });
        }
        Some(ToolChoice::Required) => ("any", None),
        Some(ToolChoice::Function(name)) => ("tool", Some(name.as_str())),
    };
    Some(WireToolChoice { kind, name, disable_parallel_tool_use: disable_parallel })
}

/// The request's parameters the Messages API has no equivalent for: refused, so that a request is
/// never sent without what it asked for (the router then tries its next candidate).
fn unsupported(request: &Request) -> Option<&'static str> {
    if request.seed.is_some() {
        Some("seed")
    } else if !request.logit_bias.is_empty() {
        Some("logit_bias")
    } else {
        None
    }
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text { text: &'a str },
    Image { source: ImageSource<'a> },
    ToolUse { id: &'a str, name: &'a str, input: &'a RawValue },
    ToolResult { tool_use_id: &'a str, content: Cow<'a, str> },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageSource<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    input_schema: &'a RawValue,
}

const EMPTY_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

/// A `data:` URI as a base64 image source; any other URL as a URL source.
fn image_source(url: &str) -> ImageSource<'_> {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((media_type, data)) = rest.split_once(";base64,")
    {
        return ImageSource::Base64 { media_type, data };
    }
    ImageSource::Url { url }
}

fn encode<'a>(model: &'a ModelProfile, request: &'a Request, stream: bool) -> Result<MessagesRequest<'a>> {
    if let Some(field) = unsupported(request) {
        return Err(Error::new(
            ErrorKind::BadRequest,
            format!("the Anthropic Messages API has no `{field}`; the request was not sent"),
        ));
    }
    let mut system: Vec<&str> = Vec::new();
    let mut messages: Vec<WireMessage<'a>> = Vec::with_capacity(request.messages.len());
    for m in &request.messages {
        let role = match m.role {
            Role::System => {
                system.extend(m.texts().filter(|t| !t.is_empty()));
                continue;
            }
            Role::User | Role::Tool => "user",
            Role::Assistant => "assistant",
        };
        let mut blocks = Vec::with_capacity(m.content.len() + m.tool_calls.len());
        if m.role == Role::Tool {
            let texts: Vec<&str> = m.texts().collect();
            let content = if texts.len() == 1 { Cow::Borrowed(texts[0]) } else { Cow::Owned(texts.join("\n")) };
            blocks.push(Block::ToolResult { tool_use_id: m.tool_call_id.as_deref().unwrap_or_default(), content });
        } else {
            for part in &m.content {
                match part {
                    // Anthropic rejects empty text blocks.
                    ContentPart::Text { text } if text.is_empty() => {}
                    ContentPart::Text { text } => blocks.push(Block::Text { text }),
                    ContentPart::Image { url, .. } => blocks.push(Block::Image { source: image_source(url) }),
                }
            }
        }
        for call in &m.tool_calls {
            let input = http::raw_json(&call.arguments, "{}", || format!("the arguments of tool call `{}`", call.id))?;
            blocks.push(Block::ToolUse { id: &call.id, name: &call.name, input });
        }
        if blocks.is_empty() {
            continue;
        }
        // Consecutive turns of one role (tool results, then the user's next words) become one turn.
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(WireMessage { role, content: blocks }),
        }
    }
    let tools = request
        .tools
        .iter()
        .map(|t| {
            let input_schema =
                http::raw_json(&t.parameters, EMPTY_SCHEMA, || format!("the schema of tool `{}`", t.name))?;
            Ok(WireTool { name: &t.name, description: &t.description, input_schema })
        })
        .collect::<Result<Vec<_>>>()?;
    // The Messages API has no JSON mode: ask for JSON in the system prompt.
    let json_instruction = match &request.response_format {
        ResponseFormat::Text => None,
        ResponseFormat::Json => Some("Answer with a single JSON object and nothing else.".to_owned()),
        ResponseFormat::JsonSchema { schema, .. } => {
            Some(format!("Answer with a single JSON object matching this JSON Schema, and nothing else: {schema}"))
        }
    };
    let mut system_text = system.join("\n\n");
    if let Some(instruction) = json_instruction {
        if !system_text.is_empty() {
            system_text.push_str("\n\n");
        }
        system_text.push_str(&instruction);
    }
    Ok(MessagesRequest {
        model: model.api_name(),
        max_tokens: request.max_tokens.unwrap_or(model.max_output_tokens).max(1),
        system: (!system_text.is_empty()).then_some(system_text),
        messages,
        tools,
        temperature: request.temperature,
        stop_sequences: &request.stop,
        stream,
        top_p: request.top_p,
        tool_choice: tool_choice(request),
        metadata: request.user.as_deref().map(|user_id| Metadata { user_id }),
        extra: &request.extra,
    })
}

// ---- Completion ------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct MessagesResponse {
    #[serde(default, deserialize_with = "null_default")]
    content: Vec<BlockIn>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct BlockIn {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<serde_json::Value>,
}

#[derive(Deserialize, Clone, Copy, Default)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Fields present in `newer` replace those in `self` (`message_delta` after `message_start`).
    fn merge(self, newer: WireUsage) -> WireUsage {
        WireUsage {
            input_tokens: newer.input_tokens.or(self.input_tokens),
            output_tokens: newer.output_tokens.or(self.output_tokens),
            cache_read_input_tokens: newer.cache_read_input_tokens.or(self.cache_read_input_tokens),
            cache_creation_input_tokens: newer.cache_creation_input_tokens.or(self.cache_creation_input_tokens),
        }
    }

    /// Anthropic's `input_tokens` excludes cache reads and writes; ours includes both (see the module
    /// docs).
    fn to_usage(self) -> Usage {
        http::usage_with_cache(
            self.input_tokens,
            self.output_tokens,
            self.cache_read_input_tokens,
            self.cache_creation_input_tokens,
        )
    }
}

fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

pub(super) fn decode_response(name: &str, body: &[u8]) -> Result<Completion> {
    let wire: MessagesResponse = serde_json::from_slice(body).map_err(|e| http::json_error(name, "an answer", &e))?;
    let Some(usage) = wire.usage else {
        return Err(Error::decode(format!("provider `{name}` answered without usage")));
    };
    let mut content = String::new();
    let mut calls = Vec::new();
    for (i, block) in wire.content.into_iter().enumerate() {
        match block.kind.as_str() {
            "text" => content.push_str(block.text.as_deref().unwrap_or_default()),
            "tool_use" => calls.push(ToolCall::new(
                block.id.unwrap_or_else(|| format!("toolu_{i}")),
                block.name.unwrap_or_default(),
                http::tool_input_text(block.input),
            )),
            // Thinking, redacted thinking and server-tool blocks are not part of the answer text.
            _ => {}
        }
    }
    let mut response = Completion::new(content, finish_reason(wire.stop_reason.as_deref()), usage.to_usage());
    for call in calls {
        response = response.with_tool_call(call);
    }
    Ok(response)
}

// ---- Stream --------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct EventIn {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<StartMessage>,
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    content_block: Option<BlockIn>,
    #[serde(default)]
    delta: Option<DeltaIn>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct DeltaIn {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Turns Messages API events into stream events: text deltas as they come, each tool call whole at
/// its `content_block_stop`, then usage and the stop reason at `message_stop`.
pub(super) struct EventDecoder {
    name: Arc<str>,
    tools: http::ToolBlocks,
    usage: Option<WireUsage>,
    stop_reason: Option<String>,
}

impl EventDecoder {
    pub(super) fn new(name: Arc<str>) -> Self {
        Self { name, tools: http::ToolBlocks::default(), usage: None, stop_reason: None }
    }

    fn index(&self, index: Option<usize>) -> Result<usize> {
        match index {
            Some(i) => http::block_index(&self.name, i),
            None => Err(Error::decode(format!("provider `{}` streamed a content block without an index", self.name))),
        }
    }
}

impl SseDecoder for EventDecoder {
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<Result<StreamEvent>>) -> Result<bool> {
        let ev: EventIn =
            serde_json::from_str(&event.data).map_err(|e| http::json_error(&self.name, "a stream event", &e))?;
        match ev.kind.as_str() {
            "message_start" => {
                if let Some(u) = ev.message.and_then(|m| m.usage) {
                    self.usage = Some(self.usage.unwrap_or_default().merge(u));
                }
            }
            "content_block_start" => {
                let index = self.index(ev.index)?;
                let Some(block) = ev.content_block else { return Ok(false) };
                match block.kind.as_str() {
                    "text" => {
                        if let Some(text) = block.text.filter(|t| !t.is_empty()) {
                            out.push_back(Ok(StreamEvent::Delta(text)));
                        }
                    }
                    "tool_use" => {
                        // The start carries `input: {}`; the real input arrives as JSON fragments.
                        let json = match block.input {
                            Some(serde_json::Value::Object(o)) if !o.is_empty() => {
                                serde_json::Value::Object(o).to_string()
                            }
                            _ => String::new(),
                        };
                        let id = block.id.unwrap_or_else(|| format!("toolu_{index}"));
                        self.tools.start(index, id, block.name.unwrap_or_default(), json);
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = self.index(ev.index)?;
                let Some(delta) = ev.delta else { return Ok(false) };
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                            out.push_back(Ok(StreamEvent::Delta(text)));
                        }
                    }
                    Some("input_json_delta") => {
                        self.tools.append(index, delta.partial_json.as_deref().unwrap_or_default());
                    }
                    // Thinking, signatures and citations are not answer text.
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = self.index(ev.index)?;
                if let Some(call) = self.tools.stop(index) {
                    out.push_back(Ok(StreamEvent::ToolCall(call)));
                }
            }
            "message_delta" => {
                if let Some(reason) = ev.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(reason);
                }
                if let Some(u) = ev.usage {
                    self.usage = Some(self.usage.unwrap_or_default().merge(u));
                }
            }
            "message_stop" => {
                self.tools.check_all_stopped(&self.name)?;
                if let Some(u) = self.usage {
                    out.push_back(Ok(StreamEvent::Usage(u.to_usage())));
                }
                out.push_back(Ok(StreamEvent::Finish(finish_reason(self.stop_reason.as_deref()))));
                return Ok(true);
            }
            "error" => {
                let pe = ev.error.as_ref().map(ProviderError::from_object).unwrap_or_default();
                return Err(http::reported_error(&self.name, &pe));
            }
            // `ping` and event types added later.
            _ => {}
        }
        Ok(false)
    }

    fn terminator(&self) -> &'static str {
        "message_stop"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{ImageDetail, Message, Tool};
    use proptest::prelude::*;

    #[test]
    fn encodes_system_blocks_tools_and_limits() {
        let model = ModelProfile::new("haiku", "anthropic").with_api_name("claude-x").with_context(200_000, 8_192);
        let request = Request::from_messages(vec![
            Message::system("be brief"),
            Message::user("what is this?")
                .with_part(ContentPart::image("data:image/png;base64,AAAA", ImageDetail::Low)),
            Message::assistant("let me look").with_tool_call(ToolCall::new("t1", "lookup", "{\"q\":1}")),
            Message::tool_result("t1", "42"),
            Message::user("thanks").with_part(ContentPart::image("https://x/y.png", ImageDetail::Auto)),
        ])
        .with_tool(Tool::new("lookup", "looks up", r#"{"type":"object"}"#))
        .with_response_format(ResponseFormat::Json)
        .with_stop("END");
        let v = serde_json::to_value(encode(&model, &request, true).unwrap()).unwrap();
        assert_eq!(v["model"], "claude-x");
        assert_eq!(v["max_tokens"], 8192, "defaults to the profile's output limit");
        assert!(v["system"].as_str().unwrap().starts_with("be brief\n\nAnswer with a single JSON object"));
        assert_eq!(v["messages"].as_array().unwrap().len(), 3, "tool result and next user turn merge");
        assert_eq!(
            v["messages"][0]["content"][1]["source"],
            serde_json::json!({"type": "base64", "media_type": "image/png", "data": "AAAA"})
        );
        assert_eq!(
            v["messages"][1]["content"][1],
            serde_json::json!({"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": 1}})
        );
        assert_eq!(
            v["messages"][2]["content"][0],
            serde_json::json!({"type": "tool_result", "tool_use_id": "t1", "content": "42"})
        );
        assert_eq!(
            v["messages"][2]["content"][2]["source"],
            serde_json::json!({"type": "url", "url": "https://x/y.png"})
        );
        assert_eq!(v["tools"][0]["input_schema"], serde_json::json!({"type": "object"}));
        assert_eq!(v["stop_sequences"], serde_json::json!(["END"]));
        assert_eq!(v["stream"], true);
        let v = serde_json::to_value(encode(&model, &Request::new("hi").with_max_tokens(10), false).unwrap()).unwrap();
        assert_eq!(v["max_tokens"], 10);
        assert!(v.get("system").is_none() && v.get("stream").is_none() && v.get("tools").is_none());
        let bad = Request::from_messages(vec![Message::assistant("").with_tool_call(ToolCall::new("t", "f", "{oops"))]);
        assert_eq!(encode(&model, &bad, false).err().unwrap().kind(), ErrorKind::BadRequest);
    }

    #[test]
    fn maps_pass_through_parameters_and_refuses_what_it_cannot_send() {
        let model = ModelProfile::new("haiku", "anthropic").with_api_name("claude-x").with_context(200_000, 8_192);
        let json = |r: &Request| serde_json::to_value(encode(&model, r, false).unwrap()).unwrap();
        let plain = json(&Request::new("hi"));
        assert!(plain.get("top_p").is_none() && plain.get("tool_choice").is_none() && plain.get("metadata").is_none());
        let tools = Request::new("hi").with_tool(Tool::new("lookup", "", "{}"));
        let v = json(
            &tools
                .clone()
                .with_tool_choice(ToolChoice::Function("lookup".into()))
                .with_parallel_tool_calls(false)
                .with_top_p(0.5)
                .with_user("end-user-7")
                .with_extra("top_k", serde_json::json!(5)),
        );
        assert_eq!(
            v["tool_choice"],
            serde_json::json!({"type": "tool", "name": "lookup", "disable_parallel_tool_use": true})
        );
        assert_eq!(v["top_p"], 0.5);
        assert_eq!(v["metadata"], serde_json::json!({"user_id": "end-user-7"}));
        assert_eq!(v["top_k"], 5);
        assert_eq!(
            json(&tools.clone().with_tool_choice(ToolChoice::Required))["tool_choice"],
            serde_json::json!({"type": "any"})
        );
        assert_eq!(
            json(&tools.clone().with_tool_choice(ToolChoice::None))["tool_choice"],
            serde_json::json!({"type": "none"})
        );
        assert_eq!(
            json(&tools.clone().with_parallel_tool_calls(false))["tool_choice"],
            serde_json::json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        assert!(json(&tools.with_parallel_tool_calls(true)).get("tool_choice").is_none());
        assert!(json(&Request::new("hi").with_tool_choice(ToolChoice::Required)).get("tool_choice").is_none());
        for (request, field) in
            [(Request::new("hi").with_seed(1), "`seed`"), (Request::new("hi").with_logit_bias(1, 1.0), "`logit_bias`")]
        {
            let e = encode(&model, &request, false).err().expect("refused");
            assert_eq!(e.kind(), ErrorKind::BadRequest);
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn usage_counts_cache_reads_and_writes_as_input() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"thinking","thinking":"hmm"},{"type":"text","text":"Hi"},{"type":"tool_use","id":"toolu_1","name":"f","input":{"a":1}}],"stop_reason":"tool_use","usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":50,"service_tier":"standard"}}"#;
        let r = decode_response("anthropic", body).unwrap();
        assert_eq!(r.content(), "Hi");
        assert_eq!(r.usage, Usage::new(160, 5).with_cached_input(100));
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.tool_calls, vec![ToolCall::new("toolu_1", "f", "{\"a\":1}")]);
        for bad in [&b"{}"[..], b"[]", b"nope", br#"{"content":[{"text":"no type"}],"usage":{}}"#] {
            assert_eq!(decode_response("anthropic", bad).unwrap_err().kind(), ErrorKind::Decode);
        }
    }

    fn run(events: &[&str]) -> Vec<Result<StreamEvent>> {
        let mut d = EventDecoder::new(Arc::from("anthropic"));
        let mut out = VecDeque::new();
        for e in events {
            match d.event(SseEvent { event: None, data: (*e).to_owned() }, &mut out) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    out.push_back(Err(e));
                    break;
                }
            }
        }
        out.into_iter().collect()
    }

    #[test]
    fn stream_events_in_order() {
        let events = run(&[
            r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":25,"output_tokens":1,"cache_read_input_tokens":5}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_9","name":"get","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":15}}"#,
            r#"{"type":"message_stop"}"#,
        ]);
        let events: Vec<StreamEvent> = events.into_iter().map(|e| e.unwrap()).collect();
        assert_eq!(
            events,
            vec![
                StreamEvent::Delta("Hello".into()),
                StreamEvent::ToolCall(ToolCall::new("toolu_9", "get", "{\"city\": \"Paris\"}")),
                StreamEvent::Usage(Usage::new(30, 15).with_cached_input(5)),
                StreamEvent::Finish(FinishReason::ToolCalls),
            ]
        );
        let events = run(&[r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#]);
        assert_eq!(events[0].as_ref().unwrap_err().kind(), ErrorKind::Server);
        let events = run(&[r#"{"type":"content_block_start","index":5000,"content_block":{"type":"text"}}"#]);
        assert_eq!(events[0].as_ref().unwrap_err().kind(), ErrorKind::Decode);
        // A tool call whose block never stopped is an error at the message's end, not a lost call.
        let events = run(&[
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"get","input":{}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"city\""}}"#,
            r#"{"type":"message_stop"}"#,
        ]);
        let e = events.last().unwrap().as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(e.to_string().contains("content block 0 unfinished"), "{e}");
    }

    proptest! {
        #[test]
        fn decoders_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_response("anthropic", &body);
            let text = String::from_utf8_lossy(&body).into_owned();
            let _ = run(&[&text, r#"{"type":"message_stop"}"#]);
        }

        #[test]
        fn decoders_never_panic_on_json_shapes(
            kind in "(message_start|content_block_start|content_block_delta|content_block_stop|message_delta|message_stop|error|ping|other)",
            index in prop_oneof![Just("null".to_owned()), "(0|1|1023|1024|-1|99999999999)"],
            block in prop_oneof![Just("null".to_owned()), Just(r#"{"type":"tool_use","input":[]}"#.to_owned()), Just(r#"{"type":"text","text":7}"#.to_owned())],
            delta in prop_oneof![Just("null".to_owned()), Just(r#"{"type":"input_json_delta","partial_json":null}"#.to_owned()), Just(r#"{"stop_reason":5}"#.to_owned())],
        ) {
            let ev = format!(r#"{{"type":"{kind}","index":{index},"content_block":{block},"delta":{delta},"usage":{{"output_tokens":-1}}}}"#);
            let _ = run(&[&ev, &ev, r#"{"type":"message_stop"}"#]);
        }
    }
}
