//! [`Request`]: the chat request a caller routes, and its routing [`RouteHints`].
//!
//! `Debug` output of requests and messages shows structure (roles, part kinds, lengths), never the text.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::types::{Capabilities, ModelId};

mod params;

pub use self::params::ToolChoice;
pub(crate) use self::params::check as check_params;

/// Who wrote a message.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the application.
    System,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call.
    Tool,
}

/// How much detail an image input asks for; providers bill more tokens for `High`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageDetail {
    /// Let the provider decide.
    #[default]
    Auto,
    /// A low-resolution pass (a fixed, small number of tokens).
    Low,
    /// Full resolution (tiles, many tokens).
    High,
}

/// One part of a message's content.
#[non_exhaustive]
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, by URL or `data:` URI.
    Image {
        /// `https://...` or `data:image/png;base64,...`.
        url: String,
        /// Requested detail.
        #[serde(default)]
        detail: ImageDetail,
    },
}

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }

    /// An image part.
    pub fn image(url: impl Into<String>, detail: ImageDetail) -> Self {
        Self::Image { url: url.into(), detail }
    }
}

impl fmt::Debug for ContentPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text { text } => write!(f, "Text({} bytes)", text.len()),
            Self::Image { detail, .. } => write!(f, "Image({detail:?})"),
        }
    }
}

/// A tool call the model asked for, or one replayed in the conversation history.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call, echoed by the tool result.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, as JSON text.
    pub arguments: String,
}

impl ToolCall {
    /// A tool call.
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self { id: id.into(), name: name.into(), arguments: arguments.into() }
    }
}

impl fmt::Debug for ToolCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolCall")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("arguments", &format_args!("{} bytes", self.arguments.len()))
            .finish()
    }
}

/// One chat message.
#[non_exhaustive]
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its content, in order.
    pub content: Vec<ContentPart>,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message with one text part.
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        Self { role, content: vec![ContentPart::text(text)], tool_calls: Vec::new(), tool_call_id: None }
    }

    /// A system message.
    pub(crate) fn system(text: impl Into<String>) -> Self {
        Self::new(Role::System, text)
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::new(Role::User, text)
    }

    /// An assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::new(Role::Assistant, text)
    }

    /// The result of the tool call `call_id`.
    pub fn tool_result(call_id: impl Into<String>, text: impl Into<String>) -> Self {
        Self { tool_call_id: Some(call_id.into()), ..Self::new(Role::Tool, text) }
    }

    /// Adds a content part.
    pub fn with_part(mut self, part: ContentPart) -> Self {
        self.content.push(part);
        self
    }

    /// Adds a tool call (assistant messages).
    pub fn with_tool_call(mut self, call: ToolCall) -> Self {
        self.tool_calls.push(call);
        self
    }

    /// The text parts, in order.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.content.iter().filter_map(|p| match p {
            ContentPart::Text { text } => Some(text.as_str()),
            ContentPart::Image { .. } => None,
        })
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        d.field("role", &self.role).field("content", &self.content);
        if !self.tool_calls.is_empty() {
            d.field("tool_calls", &self.tool_calls);
        }
        if let Some(id) = &self.tool_call_id {
            d.field("tool_call_id", id);
        }
        d.finish()
    }
}

/// A tool (function) the model may call.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// The function name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// The JSON Schema of its parameters, as JSON text.
    pub parameters: String,
}

impl Tool {
    /// A tool with a JSON Schema for its parameters.
    pub fn new(name: impl Into<String>, description: impl Into<String>, parameters_schema: impl Into<String>) -> Self {
        Self { name: name.into(), description: description.into(), parameters: parameters_schema.into() }
    }
}

/// The shape the answer must take.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    #[default]
    Text,
    /// Any valid JSON object.
    Json,
    /// JSON matching a schema.
    JsonSchema {
        /// A name for the schema.
        name: String,
        /// The JSON Schema, as JSON text.
        schema: String,
    },
}

impl ResponseFormat {
    /// Whether the answer must be JSON.
    pub(crate) fn is_json(&self) -> bool {
        !matches!(self, Self::Text)
    }
}

/// The longest [`RouteHints::key`] and [`RouteHints::tenant`] the router accepts, in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// Routing hints: what the caller knows that the text does not say.
///
/// Its `Debug` output says whether `key` and `tenant` are set, not what they are.
#[non_exhaustive]
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteHints {
    /// A stable key for the caller (user, conversation): it seeds every random choice, so the same key
    /// gets the same routing, and keeps sticky sessions sticky. At most 1024 bytes (longer keys are
    /// refused with `ErrorKind::InvalidRequest`): per-key budgets and sticky entries are stored under it.
    pub key: Option<String>,
    /// The tenant the request is billed to. At most 1024 bytes, as `key`.
    pub tenant: Option<String>,
    /// The longest acceptable expected latency; slower models are filtered out.
    pub latency_budget: Option<Duration>,
    /// The lowest acceptable predicted success probability, in `[0, 1]`, for policies that use one.
    pub quality_floor: Option<f64>,
    /// The highest acceptable expected cost in USD; costlier models are filtered out.
    pub max_cost_usd: Option<f64>,
    /// Capabilities the chosen model must have, on top of those the request implies.
    pub required: Capabilities,
    /// Free-form labels rules can match on.
    pub tags: SmallVec<[String; 2]>,
    /// Pins the request to a model id, a group or an alias of the router
    /// ([`Router::resolve`](crate::Router::resolve) says what a name stands for): the decision ranks
    /// the models that name stands for, in its group's balance order, and the policy is not consulted.
    /// A name the router does not know fails routing with `ErrorKind::InvalidRequest`. At most 256
    /// bytes. `None` (the default) routes over the whole catalog.
    pub model: Option<String>,
    /// When set, only these models may serve the request.
    pub allowed: Option<Vec<ModelId>>,
    /// Models that must not serve the request.
    pub excluded: Vec<ModelId>,
    /// Input tokens expected to be read from the provider's prompt cache (a repeated system prompt).
    pub cached_input_tokens: Option<u32>,
    /// The deadline of this request across every attempt, instead of the router's
    /// [`ExecutionConfig::timeout`](crate::execute::ExecutionConfig::timeout).
    pub timeout: Option<Duration>,
}

impl fmt::Debug for RouteHints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteHints")
            .field("key", &self.key.as_ref().map(|_| "set"))
            .field("tenant", &self.tenant.as_ref().map(|_| "set"))
            .field("latency_budget", &self.latency_budget)
            .field("quality_floor", &self.quality_floor)
            .field("max_cost_usd", &self.max_cost_usd)
            .field("required", &self.required)
            .field("tags", &self.tags)
            .field("model", &self.model)
            .field("allowed", &self.allowed)
            .field("excluded", &self.excluded)
            .field("cached_input_tokens", &self.cached_input_tokens)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A chat request, provider-neutral, with routing hints.
///
/// ```
/// use switchyard::Request;
/// let req = Request::new("Summarise this contract in three bullet points.")
///     .with_system("You are a careful paralegal.")
///     .with_max_tokens(300)
///     .with_key("user-42");
/// assert_eq!(req.messages.len(), 2);
/// ```
#[non_exhaustive]
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default)]
    pub tools: Vec<Tool>,
    /// The required answer format.
    #[serde(default)]
    pub response_format: ResponseFormat,
    /// The most output tokens to generate.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Stop sequences.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Nucleus sampling: the probability mass of the tokens sampled from, in `[0, 1]`.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// A seed for providers that sample deterministically with one (OpenAI).
    #[serde(default)]
    pub seed: Option<i64>,
    /// Which tool the model may or must call; `None` leaves it to the provider (auto when tools are
    /// given).
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools in one turn; `None` leaves it to the provider.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// The end user's id, for the provider's abuse monitoring (OpenAI's `user`, Anthropic's
    /// `metadata.user_id`). At most 1024 bytes. Not a routing key: see [`RouteHints::key`].
    #[serde(default)]
    pub user: Option<String>,
    /// A bias added to the logits of these token ids, each within `[-100, 100]` (OpenAI only).
    #[serde(default)]
    pub logit_bias: BTreeMap<u32, f32>,
    /// Provider-specific fields sent as they are at the top level of the provider's request body
    /// (`presence_penalty`, `top_k`, `reasoning_effort`, ...). A key the adapters write themselves is
    /// refused with `ErrorKind::InvalidRequest` (`model`, `messages`, `tools`, `tool_choice`,
    /// `response_format`, `max_tokens`, `max_completion_tokens`, `temperature`, `top_p`, `stop`,
    /// `stop_sequences`, `stream`, `stream_options`, `seed`, `parallel_tool_calls`, `user`,
    /// `logit_bias`, `system`, `metadata`; and `n`, since the router returns one answer per request),
    /// and so is a map larger than the router's request limit.
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Routing hints.
    #[serde(default)]
    pub hints: RouteHints,
}

impl Request {
    /// A request with one user message.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self::from_messages(vec![Message::user(prompt)])
    }

    /// A request with the given conversation.
    pub fn from_messages(messages: Vec<Message>) -> Self {
        Self { messages, ..Self::default() }
    }

    /// Puts a system message first.
    pub fn with_system(mut self, text: impl Into<String>) -> Self {
        self.messages.insert(0, Message::system(text));
        self
    }

    /// Appends a message.
    pub fn with_message(mut self, message: Message) -> Self {
        self.messages.push(message);
        self
    }

    /// Adds a tool.
    pub fn with_tool(mut self, tool: Tool) -> Self {
        self.tools.push(tool);
        self
    }

    /// Sets the answer format.
    pub fn with_response_format(mut self, format: ResponseFormat) -> Self {
        self.response_format = format;
        self
    }

    /// Sets the output token limit.
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sets the temperature.
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Adds a stop sequence.
    pub fn with_stop(mut self, stop: impl Into<String>) -> Self {
        self.stop.push(stop.into());
        self
    }

    /// Sets `top_p`.
    pub fn with_top_p(mut self, top_p: f32) -> Self {
        self.top_p = Some(top_p);
        self
    }

    /// Sets the sampling seed.
    pub fn with_seed(mut self, seed: i64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets which tool the model may or must call.
    pub fn with_tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Allows or forbids several tool calls in one turn.
    pub fn with_parallel_tool_calls(mut self, parallel: bool) -> Self {
        self.parallel_tool_calls = Some(parallel);
        self
    }

    /// Sets the end user's id sent to the provider.
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Biases one token id's logit.
    pub fn with_logit_bias(mut self, token: u32, bias: f32) -> Self {
        self.logit_bias.insert(token, bias);
        self
    }

    /// Adds a provider-specific field, sent as it is.
    pub fn with_extra(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    /// Sets the sticky key (user, conversation).
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.hints.key = Some(key.into());
        self
    }

    /// Sets the tenant.
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.hints.tenant = Some(tenant.into());
        self
    }

    /// Sets the latency budget.
    pub fn with_latency_budget(mut self, budget: Duration) -> Self {
        self.hints.latency_budget = Some(budget);
        self
    }

    /// Sets the quality floor, in `[0, 1]` (checked when routing).
    pub fn with_quality_floor(mut self, floor: f64) -> Self {
        self.hints.quality_floor = Some(floor);
        self
    }

    /// Sets the largest acceptable expected cost, in USD.
    pub fn with_max_cost(mut self, usd: f64) -> Self {
        self.hints.max_cost_usd = Some(usd);
        self
    }

    /// Requires capabilities of the chosen model.
    pub fn with_required(mut self, capabilities: Capabilities) -> Self {
        self.hints.required |= capabilities;
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.hints.tags.push(tag.into());
        self
    }

    /// Pins the request to a model id, a group or an alias ([`RouteHints::model`]): it is served by
    /// the models that name stands for, in its group's balance order, and the policy is not
    /// consulted.
    ///
    /// ```
    /// use switchyard::Request;
    /// let req = Request::new("Hi").with_model("gpt-4o");
    /// assert_eq!(req.hints.model.as_deref(), Some("gpt-4o"));
    /// ```
    pub fn with_model(mut self, name: impl Into<String>) -> Self {
        self.hints.model = Some(name.into());
        self
    }

    /// Only these models may serve the request; every other model is filtered out, fallbacks
    /// included. To serve the request with one model but keep its group's fallbacks, pin it with
    /// [`with_model`](Self::with_model).
    pub fn with_allowed(mut self, models: impl IntoIterator<Item = impl Into<ModelId>>) -> Self {
        self.hints.allowed = Some(models.into_iter().map(Into::into).collect());
        self
    }

    /// Excludes a model.
    pub fn with_excluded(mut self, model: impl Into<ModelId>) -> Self {
        self.hints.excluded.push(model.into());
        self
    }

    /// Sets the deadline of this request across every attempt.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.hints.timeout = Some(timeout);
        self
    }

    /// Sets how many input tokens are expected to come from the prompt cache.
    pub fn with_cached_input_tokens(mut self, tokens: u32) -> Self {
        self.hints.cached_input_tokens = Some(tokens);
        self
    }

    /// Every text part of every message, in order.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.messages.iter().flat_map(Message::texts)
    }

    /// The text of the last user message (the part most classifiers care about).
    pub fn last_user_text(&self) -> Option<&str> {
        self.messages.iter().rev().find(|m| m.role == Role::User).and_then(|m| m.texts().next())
    }

    /// Total bytes of text in the request.
    pub fn text_len(&self) -> usize {
        self.texts().map(str::len).sum::<usize>()
            + self.tools.iter().map(|t| t.name.len() + t.description.len() + t.parameters.len()).sum::<usize>()
    }

    /// The number of image parts.
    pub fn image_count(&self) -> usize {
        self.messages.iter().flat_map(|m| &m.content).filter(|p| matches!(p, ContentPart::Image { .. })).count()
    }

    /// The capabilities the request itself implies (tools, images, a JSON format), plus the hinted ones.
    pub fn implied_capabilities(&self) -> Capabilities {
        let mut caps = self.hints.required;
        if !self.tools.is_empty() || self.messages.iter().any(|m| !m.tool_calls.is_empty() || m.role == Role::Tool) {
            caps |= Capabilities::TOOLS;
        }
        if self.image_count() > 0 {
            caps |= Capabilities::VISION;
        }
        if self.response_format.is_json() {
            caps |= Capabilities::JSON;
        }
        caps
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("messages", &self.messages)
            .field("tools", &self.tools.iter().map(|t| &t.name).collect::<Vec<_>>())
            .field("response_format", &self.response_format)
            .field("max_tokens", &self.max_tokens)
            .field("temperature", &self.temperature)
            .field("stop", &self.stop.len())
            .field("top_p", &self.top_p)
            .field("seed", &self.seed)
            .field("tool_choice", &self.tool_choice)
            .field("parallel_tool_calls", &self.parallel_tool_calls)
            .field("user", &self.user.as_ref().map(|_| "set"))
            .field("logit_bias", &self.logit_bias.len())
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .field("hints", &self.hints)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_prompt_text() {
        let secret = "my password is hunter2";
        let req = Request::new(secret).with_system("system secret words").with_message(
            Message::assistant("reply text").with_tool_call(ToolCall::new("c1", "lookup", "{\"q\":\"hunter2\"}")),
        );
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("secret"), "{dbg}");
        assert!(dbg.contains("User"));
        // Nor the caller's key or tenant, only that they are set.
        let req = Request::new("hi").with_key("user-4242").with_tenant("acme-corp").with_tag("beta");
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("user-4242") && !dbg.contains("acme-corp"), "{dbg}");
        assert!(dbg.contains("key: Some(\"set\")") && dbg.contains("beta"), "{dbg}");
    }

    #[test]
    fn implied_capabilities() {
        let req = Request::new("hi").with_tool(Tool::new("f", "d", "{}")).with_response_format(ResponseFormat::Json);
        let caps = req.implied_capabilities();
        assert!(caps.contains(Capabilities::TOOLS | Capabilities::JSON));
        assert!(!caps.contains(Capabilities::VISION));
        let img = Request::from_messages(vec![
            Message::user("what is this").with_part(ContentPart::image("https://x/y.png", ImageDetail::Low)),
        ]);
        assert!(img.implied_capabilities().contains(Capabilities::VISION));
    }

    #[test]
    fn serde_round_trip() {
        let req = Request::new("hello").with_key("k").with_max_tokens(10).with_tag("beta");
        let json = serde_json::to_string(&req).unwrap();
        let back: Request = serde_json::from_str(&json).unwrap();
        assert_eq!(req, back);
    }
}
