//! OpenAI's Responses API (`POST /v1/responses`): a body becomes a router [`Request`], and
//! the router's answer becomes a `response` object or its stream of semantic events.
//!
//! The conversation comes in `input` (messages, the model's earlier `function_call`s and their
//! `function_call_output`s), after the one kept under `previous_response_id` when the gateway keeps
//! responses (`[server] stored_responses`, [`crate::stored`]); `background` is refused. `reasoning` items a client sends back are the model's own encrypted
//! state, which no other model can read: they are left out. Only `function` tools are served.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use switchyard::{
    ContentPart, Error, ErrorKind, FinishReason, ImageDetail, Message, Request, ResponseFormat, Role, StreamEvent,
    Tool, ToolCall, ToolChoice, Usage,
};

use crate::stored::{Responses, Stored, Writes};
use crate::stream::Encode;

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidRequest, message)
}

/// A client's label (a type, a field name, an id) cut to a length that is safe to echo in an error.
pub(crate) fn label(text: &str) -> String {
    text.chars().take(40).collect()
}

/// The fields of a `POST /v1/responses` body that the gateway reads.
#[derive(Deserialize)]
pub(crate) struct ResponsesRequest {
    pub(crate) model: String,
    input: Value,
    #[serde(default)]
    instructions: Option<String>,
    #[serde(default)]
    tools: Vec<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    max_output_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    pub(crate) stream: bool,
    #[serde(default)]
    text: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    reasoning: Option<Value>,
    #[serde(default)]
    pub(crate) previous_response_id: Option<String>,
    #[serde(default)]
    background: Option<bool>,
    /// Whether to keep the response (OpenAI's default: yes; here only when the gateway keeps
    /// responses at all).
    #[serde(default)]
    pub(crate) store: Option<bool>,
    /// Everything else: checked against what may pass through.
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// Fields accepted and not acted on: the gateway manages no server-side context
/// (`context_management`), has no extra outputs to include (`include`, `top_logprobs`), never drops
/// input (`truncation`), makes one model call per request (`max_tool_calls`), and keeps no client
/// state (`client_metadata`).
const IGNORED: &[&str] = &[
    "include",
    "truncation",
    "stream_options",
    "top_logprobs",
    "max_tool_calls",
    "context_management",
    "client_metadata",
];
/// Fields passed to the provider as they are (chat completions takes them too).
const PASSED: &[&str] = &["prompt_cache_key", "prompt_cache_retention", "safety_identifier", "service_tier", "seed"];

/// What the response object echoes of the request.
#[derive(Clone, Default)]
pub(crate) struct Echo {
    instructions: Option<String>,
    max_output_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    parallel_tool_calls: Option<bool>,
    tool_choice: Option<Value>,
    tools: Vec<Value>,
    text: Option<Value>,
    metadata: Map<String, Value>,
    pub(crate) previous_response_id: Option<String>,
    /// Whether the response is kept.
    pub(crate) store: bool,
}

impl Echo {
    /// How many of the request's first messages are its `instructions` (which a follow-up does not
    /// inherit).
    pub(crate) fn instruction_messages(&self) -> usize {
        usize::from(self.instructions.is_some())
    }
}

impl ResponsesRequest {
    /// The router's request, and what the response echoes: `instructions`, then `history` (the
    /// conversation kept under `previous_response_id`), then `input`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidRequest`](switchyard::ErrorKind::InvalidRequest), naming the field.
    pub(crate) fn into_request(self, history: Vec<Message>) -> Result<(Request, Echo), Error> {
        if self.background == Some(true) {
            return Err(invalid("`background`: this gateway answers in the request; leave it out or false"));
        }
        let mut extra = Map::new();
        for (key, value) in self.rest {
            if IGNORED.contains(&key.as_str()) {
                continue;
            }
            if PASSED.contains(&key.as_str()) {
                extra.insert(key, value);
                continue;
            }
            return Err(invalid(format!("`{}` is not a field this gateway serves", label(&key))));
        }
        if let Some(reasoning) = &self.reasoning {
            match reasoning.get("effort") {
                Some(Value::String(effort)) => {
                    extra.insert("reasoning_effort".to_owned(), Value::String(effort.clone()));
                }
                Some(Value::Null) | None => {}
                Some(_) => return Err(invalid("`reasoning.effort` must be a string")),
            }
        }
        let mut messages = Vec::with_capacity(history.len() + 2);
        if let Some(text) = &self.instructions {
            messages.push(Message::new(Role::System, text.clone()));
        }
        messages.extend(history);
        match &self.input {
            Value::String(text) => messages.push(Message::user(text.clone())),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    input_item(i, item, &mut messages)?;
                }
            }
            _ => return Err(invalid("`input` must be a string or an array of items")),
        }
        if !messages.iter().any(|m| m.role != Role::System) {
            return Err(invalid("`input` is empty"));
        }
        let mut request = Request::from_messages(messages);
        for (i, tool) in self.tools.iter().enumerate() {
            request.tools.push(function_tool(i, tool)?);
        }
        request.tool_choice = self.tool_choice.as_ref().map(tool_choice).transpose()?;
        if let Some(text) = &self.text {
            request.response_format = text_format(text)?;
        }
        request.max_tokens = self.max_output_tokens;
        request.temperature = self.temperature;
        request.top_p = self.top_p;
        request.parallel_tool_calls = self.parallel_tool_calls;
        request.user = self.user;
        match extra.remove("seed") {
            None | Some(Value::Null) => {}
            Some(Value::Number(seed)) if seed.as_i64().is_some() => request.seed = seed.as_i64(),
            Some(_) => return Err(invalid("`seed` must be an integer within the 64-bit signed range")),
        }
        request.extra = extra;
        let echo = Echo {
            instructions: self.instructions,
            max_output_tokens: self.max_output_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            parallel_tool_calls: self.parallel_tool_calls,
            tool_choice: self.tool_choice,
            tools: self.tools,
            text: self.text,
            metadata: self.metadata.unwrap_or_default(),
            previous_response_id: self.previous_response_id,
            store: false,
        };
        Ok((request, echo))
    }
}

fn str_field<'v>(item: &'v Value, field: &str, at: &dyn Fn() -> String) -> Result<&'v str, Error> {
    item.get(field).and_then(Value::as_str).ok_or_else(|| invalid(format!("{} has no string `{field}`", at())))
}

/// One item of `input`, appended to `messages`.
fn input_item(i: usize, item: &Value, messages: &mut Vec<Message>) -> Result<(), Error> {
    let at = || format!("`input[{i}]`");
    let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
    match kind {
        "message" => messages.push(input_message(i, item)?),
        "function_call" => {
            let call = ToolCall::new(
                str_field(item, "call_id", &at)?,
                str_field(item, "name", &at)?,
                str_field(item, "arguments", &at)?,
            );
            // Calls that follow an assistant message (or each other) belong to it.
            match messages.last_mut() {
                Some(last) if last.role == Role::Assistant => last.tool_calls.push(call),
                _ => {
                    let mut m = Message::assistant("");
                    m.content.clear();
                    messages.push(m.with_tool_call(call));
                }
            }
        }
        "function_call_output" => {
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                // A list of content parts: its text; a tool result is text here.
                Some(Value::Array(parts)) => {
                    let mut text = String::new();
                    for (j, part) in parts.iter().enumerate() {
                        let at = || format!("`input[{i}].output[{j}]`");
                        match part.get("type").and_then(Value::as_str) {
                            Some("input_text" | "output_text") => text.push_str(str_field(part, "text", &at)?),
                            _ => {
                                return Err(invalid(format!(
                                    "{}: a function call's output is served as text parts only",
                                    at()
                                )));
                            }
                        }
                    }
                    text
                }
                _ => return Err(invalid(format!("{} has no `output`", at()))),
            };
            messages.push(Message::tool_result(str_field(item, "call_id", &at)?, output));
        }
        // The model's encrypted reasoning: no other model can read it.
        "reasoning" => {}
        other => {
            return Err(invalid(format!(
                "{} is of type `{}`: only message, function_call and function_call_output items are served",
                at(),
                label(other)
            )));
        }
    }
    Ok(())
}

fn input_message(i: usize, item: &Value) -> Result<Message, Error> {
    let at = || format!("`input[{i}]`");
    let role = match item.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        _ => return Err(invalid(format!("{}'s `role` must be system, developer, user or assistant", at()))),
    };
    let mut message = Message::new(role, "");
    message.content.clear();
    match item.get("content") {
        Some(Value::String(text)) => message.content.push(ContentPart::text(text.clone())),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let at = || format!("`input[{i}].content[{j}]`");
                match part.get("type").and_then(Value::as_str) {
                    Some("input_text" | "output_text") => {
                        message.content.push(ContentPart::text(str_field(part, "text", &at)?));
                    }
                    Some("refusal") => message.content.push(ContentPart::text(str_field(part, "refusal", &at)?)),
                    Some("input_image") => {
                        let url = part.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                            invalid(format!("{} has no `image_url` (images by `file_id` are not served)", at()))
                        })?;
                        let detail = match part.get("detail").and_then(Value::as_str) {
                            None | Some("auto") => ImageDetail::Auto,
                            Some("low") => ImageDetail::Low,
                            Some("high") => ImageDetail::High,
                            Some(_) => return Err(invalid(format!("{}'s `detail` must be auto, low or high", at()))),
                        };
                        message.content.push(ContentPart::image(url, detail));
                    }
                    Some(other) => {
                        return Err(invalid(format!(
                            "{} is of type `{}`: only input_text, output_text, refusal and input_image parts are served",
                            at(),
                            label(other)
                        )));
                    }
                    None => return Err(invalid(format!("{} has no `type`", at()))),
                }
            }
        }
        _ => return Err(invalid(format!("{} has no `content`", at()))),
    }
    Ok(message)
}

fn function_tool(i: usize, tool: &Value) -> Result<Tool, Error> {
    let at = || format!("`tools[{i}]`");
    match tool.get("type").and_then(Value::as_str) {
        Some("function") => {}
        Some(other) => {
            return Err(invalid(format!("{} is of type `{}`: only function tools are served", at(), label(other))));
        }
        None => return Err(invalid(format!("{} has no `type`", at()))),
    }
    let name = str_field(tool, "name", &at)?;
    let description = tool.get("description").and_then(Value::as_str).unwrap_or_default();
    let parameters = tool.get("parameters").filter(|p| !p.is_null()).map_or_else(String::new, Value::to_string);
    Ok(Tool::new(name, description, parameters))
}

fn tool_choice(value: &Value) -> Result<ToolChoice, Error> {
    let bad = || invalid("`tool_choice` must be auto, none, required or {\"type\": \"function\", \"name\": ...}");
    match value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            _ => Err(bad()),
        },
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            o.get("name").and_then(Value::as_str).map(|n| ToolChoice::Function(n.to_owned())).ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

fn text_format(text: &Value) -> Result<ResponseFormat, Error> {
    let Some(format) = text.get("format").filter(|f| !f.is_null()) else { return Ok(ResponseFormat::Text) };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::Json),
        Some("json_schema") => {
            let name = format.get("name").and_then(Value::as_str).unwrap_or("response").to_owned();
            let schema = format
                .get("schema")
                .map(ToString::to_string)
                .ok_or_else(|| invalid("`text.format.schema` is missing"))?;
            Ok(ResponseFormat::JsonSchema { name, schema })
        }
        _ => Err(invalid("`text.format.type` must be text, json_object or json_schema")),
    }
}

/// The response object's `usage`.
fn usage(u: Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_input_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.input_tokens.saturating_add(u.output_tokens),
    })
}

/// What to keep once an answer is complete: the conversation that led to it (without the request's
/// `instructions`), for the caller that asked.
pub(crate) struct Keep {
    pub(crate) store: Arc<Responses>,
    /// Where the write is counted while it runs, for the shutdown to wait on.
    pub(crate) writes: Arc<Writes>,
    pub(crate) owner: Option<String>,
    pub(crate) conversation: Vec<Message>,
}

impl Keep {
    /// Keeps the response `object` under its id, its output (text and tool calls) added to the
    /// conversation as one assistant turn.
    pub(crate) async fn keep(self, object: Value) {
        let (mut text, mut answer) = (String::new(), Message::assistant(""));
        answer.content.clear();
        for item in object["output"].as_array().into_iter().flatten() {
            let field = |name: &str| item[name].as_str().unwrap_or_default();
            match field("type") {
                "message" => {
                    text.extend(item["content"].as_array().into_iter().flatten().filter_map(|p| p["text"].as_str()));
                }
                "function_call" => {
                    answer.tool_calls.push(ToolCall::new(field("call_id"), field("name"), field("arguments")));
                }
                _ => {}
            }
        }
        if !text.is_empty() {
            answer.content.push(ContentPart::text(text));
        }
        let Some(id) = object["id"].as_str().map(str::to_owned) else { return };
        let mut conversation = self.conversation;
        conversation.push(answer);
        self.store.put(id, Stored { owner: self.owner, conversation, object }).await;
    }

    /// [`keep`](Self::keep) on a task of its own, so that a client that goes away while the
    /// response is written does not cut the write short; the future returned waits for it. The
    /// write is counted in [`Writes`] from this call until it ends, so that a shutdown waits for it.
    pub(crate) fn keep_detached(self, object: Value) -> impl Future<Output = ()> + Send + 'static {
        let writing = self.writes.start();
        #[allow(
            clippy::disallowed_methods,
            reason = "a server owns its runtime: an answer given is kept even when its client has gone"
        )]
        let task = tokio::spawn(async move {
            self.keep(object).await;
            drop(writing);
        });
        async move {
            if task.await.is_err() {
                tracing::warn!(target: "switchyard_gateway", "keeping a response failed");
            }
        }
    }
}

/// The ids of one response and of its output items.
#[derive(Clone)]
pub(crate) struct Ids {
    pub(crate) response: String,
    pub(crate) created_at: u64,
    pub(crate) model: String,
}

impl Ids {
    /// The id of the message item at `index` of the output (an answer may hold text, calls, then
    /// text again: each message item has an id of its own).
    fn message(&self, index: usize) -> String {
        format!("msg_{}_{index}", &self.response["resp_".len()..])
    }

    fn call(&self, index: usize) -> String {
        format!("fc_{}_{index}", &self.response["resp_".len()..])
    }
}

/// A message item at `index` of the output; `status` `in_progress` has no content yet.
fn message_item(ids: &Ids, index: usize, text: &str, status: &str) -> Value {
    let content = if status == "in_progress" {
        json!([])
    } else {
        json!([{"type": "output_text", "text": text, "annotations": []}])
    };
    json!({"type": "message", "id": ids.message(index), "status": status, "role": "assistant", "content": content})
}

fn call_item(ids: &Ids, index: usize, call: &ToolCall, status: &str) -> Value {
    let arguments = if status == "completed" { call.arguments.as_str() } else { "" };
    json!({"type": "function_call", "id": ids.call(index), "call_id": call.id, "name": call.name,
           "arguments": arguments, "status": status})
}

/// `status` and `incomplete_details` for a finish reason.
fn status(reason: Option<FinishReason>) -> (&'static str, Value) {
    match reason {
        Some(FinishReason::Length) => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some(FinishReason::ContentFilter) => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// A failed response's `error`: OpenAI's codes for what clients act on (a rate limit, with the
/// wait in its message as OpenAI words it; a context overflow; a spent quota), `server_error`
/// otherwise.
fn failure(error: &Error) -> Value {
    let code = match error.kind() {
        ErrorKind::RateLimited => "rate_limit_exceeded",
        ErrorKind::ContextOverflow => "context_length_exceeded",
        ErrorKind::BudgetExceeded => "insufficient_quota",
        _ => "server_error",
    };
    let mut message = error.to_string();
    if let Some(wait) = error.retry_after() {
        message.push_str(&format!(" Please try again in {:.3}s.", wait.as_secs_f64()));
    }
    json!({"code": code, "message": message})
}

/// The `response` object.
fn response_object(ids: &Ids, echo: &Echo, status: &str, output: Vec<Value>, extra: Map<String, Value>) -> Value {
    let mut object = json!({
        "id": ids.response,
        "object": "response",
        "created_at": ids.created_at,
        "status": status,
        "error": null,
        "incomplete_details": null,
        "instructions": echo.instructions,
        "max_output_tokens": echo.max_output_tokens,
        "model": ids.model,
        "output": output,
        "parallel_tool_calls": echo.parallel_tool_calls.unwrap_or(true),
        "previous_response_id": echo.previous_response_id,
        "store": echo.store,
        "temperature": echo.temperature,
        "top_p": echo.top_p,
        "tool_choice": echo.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        "tools": echo.tools,
        "text": echo.text.clone().unwrap_or_else(|| json!({"format": {"type": "text"}})),
        "usage": null,
        "metadata": echo.metadata,
    });
    if let Some(o) = object.as_object_mut() {
        o.extend(extra);
    }
    object
}

/// The router's whole answer as a `response` object.
pub(crate) fn response(answer: &switchyard::Response, ids: &Ids, echo: &Echo) -> Value {
    let (status, incomplete) = status(Some(answer.finish_reason));
    let mut output = Vec::new();
    if !answer.content.is_empty() || answer.tool_calls.is_empty() {
        output.push(message_item(ids, 0, &answer.content, status));
    }
    for (k, call) in answer.tool_calls.iter().enumerate() {
        output.push(call_item(ids, k, call, "completed"));
    }
    let mut extra = Map::new();
    extra.insert("incomplete_details".to_owned(), incomplete);
    extra.insert("usage".to_owned(), usage(answer.usage));
    response_object(ids, echo, status, output, extra)
}

/// One server-sent event in the Responses API's form: `event: TYPE` and its JSON data, which carries
/// the same `type` and the stream's `sequence_number`.
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    sequence_number: u64,
    #[serde(flatten)]
    fields: Value,
}

/// The Responses API's semantic events: `response.created` and `response.in_progress`, the output
/// items' events as the answer comes, then `response.completed` (or `response.incomplete` when the
/// answer was cut short). A failure after the first event (the status is sent by then) is a
/// `response.failed` event with the error, and the stream ends there. There is no `[DONE]` line:
/// the last event says how it ended.
pub(crate) struct Events {
    ids: Ids,
    echo: Echo,
    sequence: u64,
    pending: VecDeque<Bytes>,
    /// The text so far, while the message item is open.
    text: Option<String>,
    /// Every output item completed, in order.
    output: Vec<Value>,
    calls: usize,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    /// What to keep when the answer is complete.
    keep: Option<Keep>,
    /// Keeping the complete answer, which the driver finishes before sending its last event.
    keeping: Option<crate::stream::Keeping>,
}

impl Events {
    pub(crate) fn new(ids: Ids, echo: Echo, keep: Option<Keep>) -> Self {
        let mut events = Self {
            ids,
            echo,
            sequence: 0,
            pending: VecDeque::new(),
            text: None,
            output: Vec::new(),
            calls: 0,
            usage: None,
            finish: None,
            keep,
            keeping: None,
        };
        let created = events.snapshot("in_progress", Map::new());
        events.push("response.created", json!({"response": created.clone()}));
        events.push("response.in_progress", json!({"response": created}));
        events
    }

    fn push(&mut self, kind: &str, fields: Value) {
        let event = Event { kind, sequence_number: self.sequence, fields };
        self.sequence += 1;
        match serde_json::to_string(&event) {
            Ok(json) => self.pending.push_back(Bytes::from(format!("event: {kind}\ndata: {json}\n\n"))),
            Err(e) => tracing::error!(target: "switchyard_gateway", error = %e, "an event did not serialize"),
        }
    }

    fn snapshot(&self, status: &str, extra: Map<String, Value>) -> Value {
        response_object(&self.ids, &self.echo, status, self.output.clone(), extra)
    }

    /// Opens a message item, unless one is open.
    fn open_text(&mut self) {
        if self.text.is_some() {
            return;
        }
        let index = self.output.len();
        let item = message_item(&self.ids, index, "", "in_progress");
        self.push("response.output_item.added", json!({"output_index": index, "item": item}));
        let part = json!({"type": "output_text", "text": "", "annotations": []});
        self.push(
            "response.content_part.added",
            json!({"item_id": self.ids.message(index), "output_index": index, "content_index": 0, "part": part}),
        );
        self.text = Some(String::new());
    }

    fn delta(&mut self, delta: String) {
        self.open_text();
        let index = self.output.len();
        self.push(
            "response.output_text.delta",
            json!({"item_id": self.ids.message(index), "output_index": index,
                  "content_index": 0, "delta": delta, "logprobs": []}),
        );
        if let Some(text) = &mut self.text {
            text.push_str(&delta);
        }
    }

    /// Closes the message item, if one is open, with `status` (`completed`, or `incomplete` when the
    /// answer was cut short).
    fn close_text(&mut self, status: &str) {
        let Some(text) = self.text.take() else { return };
        let index = self.output.len();
        let id = self.ids.message(index);
        self.push(
            "response.output_text.done",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                  "text": text, "logprobs": []}),
        );
        self.push(
            "response.content_part.done",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                  "part": {"type": "output_text", "text": text, "annotations": []}}),
        );
        let item = message_item(&self.ids, index, &text, status);
        self.push("response.output_item.done", json!({"output_index": index, "item": item}));
        self.output.push(item);
    }

    fn call(&mut self, call: &ToolCall) {
        self.close_text("completed");
        let (index, k) = (self.output.len(), self.calls);
        self.calls += 1;
        let id = self.ids.call(k);
        self.push(
            "response.output_item.added",
            json!({"output_index": index,
                  "item": call_item(&self.ids, k, call, "in_progress")}),
        );
        self.push(
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": index,
                  "delta": call.arguments}),
        );
        self.push(
            "response.function_call_arguments.done",
            json!({"item_id": id, "output_index": index,
                  "arguments": call.arguments}),
        );
        let item = call_item(&self.ids, k, call, "completed");
        self.push("response.output_item.done", json!({"output_index": index, "item": item}));
        self.output.push(item);
    }

    fn finish(&mut self) {
        let (status, incomplete) = status(self.finish);
        if self.output.is_empty() {
            // An answer with nothing in it is still one (empty) message, as the JSON form has.
            self.open_text();
        }
        self.close_text(status);
        let mut extra = Map::new();
        extra.insert("incomplete_details".to_owned(), incomplete);
        extra.insert("usage".to_owned(), self.usage.map_or(Value::Null, usage));
        let object = self.snapshot(status, extra);
        if let Some(keep) = self.keep.take() {
            self.keeping = Some(Box::pin(keep.keep_detached(object.clone())));
        }
        let kind = if status == "completed" { "response.completed" } else { "response.incomplete" };
        self.push(kind, json!({"response": object}));
    }

    fn fail(&mut self, error: &Error) {
        let mut extra = Map::new();
        extra.insert("error".to_owned(), failure(error));
        let object = self.snapshot("failed", extra);
        self.push("response.failed", json!({"response": object}));
    }
}

impl Encode for Events {
    fn next_bytes(&mut self) -> Option<Bytes> {
        self.pending.pop_front()
    }

    fn event(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::Delta(text) => self.delta(text),
            StreamEvent::ToolCall(call) => self.call(&call),
            StreamEvent::Usage(u) => self.usage = Some(u),
            StreamEvent::Finish(reason) => self.finish = Some(reason),
            _ => {}
        }
    }

    fn fail(&mut self, error: &Error) {
        Events::fail(self, error);
    }

    fn end(&mut self) {
        self.finish();
    }

    fn keeping(&mut self) -> Option<crate::stream::Keeping> {
        self.keeping.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<(Request, Echo), Error> {
        serde_json::from_value::<ResponsesRequest>(body).map_err(|e| invalid(e.to_string()))?.into_request(Vec::new())
    }

    #[test]
    fn a_conversation_with_tools_becomes_the_routers_request() {
        let (r, echo) = parse(json!({
            "model": "auto",
            "instructions": "Be brief.",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"},
                                             {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"}]},
                {"type": "reasoning", "id": "rs_1", "encrypted_content": "opaque"},
                {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call", "call_id": "call_2", "name": "time", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It is 18C."}]},
                {"role": "developer", "content": "Answer in French."}
            ],
            "tools": [{"type": "function", "name": "weather", "description": "Weather", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "weather"},
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}},
            "max_output_tokens": 300,
            "reasoning": {"effort": "low"},
            "store": false,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "k1",
            "metadata": {"team": "search"}
        }))
        .unwrap();
        let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::Tool, Role::Assistant, Role::System]);
        assert_eq!(r.messages[1].content.len(), 2);
        assert!(r.messages[2].content.is_empty());
        let calls: Vec<&str> = r.messages[2].tool_calls.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(calls, ["call_1", "call_2"]);
        assert_eq!(r.messages[3].tool_call_id.as_deref(), Some("call_1"));
        assert_eq!(r.tools.len(), 1);
        assert_eq!(r.tool_choice, Some(ToolChoice::Function("weather".to_owned())));
        assert!(matches!(r.response_format, ResponseFormat::JsonSchema { ref name, .. } if name == "w"));
        assert_eq!(r.max_tokens, Some(300));
        assert_eq!(r.extra.get("reasoning_effort"), Some(&json!("low")));
        assert_eq!(r.extra.get("prompt_cache_key"), Some(&json!("k1")));
        assert!(!r.extra.contains_key("store") && !r.extra.contains_key("include"));
        assert_eq!(echo.metadata.get("team"), Some(&json!("search")));
    }

    #[test]
    fn what_the_gateway_cannot_serve_is_a_typed_error_naming_the_field() {
        let cases = [
            (json!({"model": "auto", "input": "hi", "background": true}), "background"),
            (json!({"model": "auto", "input": "hi", "conversation": "c1"}), "`conversation`"),
            (json!({"model": "auto", "input": "hi", "tools": [{"type": "web_search"}]}), "`tools[0]`"),
            (json!({"model": "auto", "input": [{"type": "item_reference", "id": "x"}]}), "`input[0]`"),
            (json!({"model": "auto", "input": [{"role": "user", "content": [{"type": "input_file"}]}]}), "content[0]"),
            (json!({"model": "auto", "input": [{"role": "narrator", "content": "x"}]}), "`role`"),
            (json!({"model": "auto", "input": []}), "empty"),
            (json!({"model": "auto", "input": 3}), "`input`"),
            (json!({"model": "auto", "input": "hi", "text": {"format": {"type": "yaml"}}}), "text.format"),
            (json!({"model": "auto", "input": "hi", "tool_choice": "sometimes"}), "tool_choice"),
        ];
        for (body, says) in cases {
            let e = parse(body.clone()).err().unwrap_or_else(|| panic!("accepted {body}"));
            assert_eq!(e.kind(), ErrorKind::InvalidRequest);
            assert!(e.to_string().contains(says), "{e} should name {says}");
        }
        // Prompt text never reaches an error.
        let e = parse(json!({"model": "auto", "input": [{"role": "narrator", "content": "secret words"}]})).err();
        assert!(!e.unwrap().to_string().contains("secret"));
    }

    #[tokio::test]
    async fn a_kept_response_adds_its_output_as_one_assistant_turn() {
        let store = Arc::new(Responses::Local(crate::stored::ResponseStore::new(
            4,
            1 << 20,
            std::time::Duration::from_secs(60),
        )));
        let keep = Keep {
            store: Arc::clone(&store),
            writes: Arc::default(),
            owner: Some("a".into()),
            conversation: vec![Message::user("q")],
        };
        let ids = Ids { response: "resp_01".to_owned(), created_at: 7, model: "mini".to_owned() };
        let call = ToolCall::new("call_1", "weather", "{}");
        let output = vec![message_item(&ids, 0, "Par", "completed"), call_item(&ids, 0, &call, "completed")];
        keep.keep(response_object(&ids, &Echo::default(), "completed", output, Map::new())).await;
        let kept = store.get("resp_01", Some("a")).await.unwrap().unwrap();
        assert_eq!(kept.conversation.len(), 2);
        let answer = &kept.conversation[1];
        assert_eq!((answer.role, answer.texts().collect::<String>()), (Role::Assistant, "Par".to_owned()));
        assert_eq!(answer.tool_calls, [call]);
    }

    #[test]
    fn the_answer_becomes_a_response_object() {
        let ids = Ids { response: "resp_00ab".to_owned(), created_at: 7, model: "mini".to_owned() };
        let echo = Echo { max_output_tokens: Some(5), ..Echo::default() };
        let object =
            response_object(&ids, &echo, "completed", vec![message_item(&ids, 0, "hi", "completed")], Map::new());
        assert_eq!(object["id"], "resp_00ab");
        assert_eq!(object["object"], "response");
        assert_eq!(object["output"][0]["id"], "msg_00ab_0");
        // Text after a tool call is a message item of its own, with an id of its own.
        assert_ne!(ids.message(0), ids.message(2));
        assert_eq!(object["output"][0]["content"][0], json!({"type": "output_text", "text": "hi", "annotations": []}));
        assert_eq!(object["max_output_tokens"], 5);
        assert_eq!(object["tool_choice"], "auto");
        assert_eq!(status(Some(FinishReason::Length)), ("incomplete", json!({"reason": "max_output_tokens"})));
        let limited = Error::new(ErrorKind::RateLimited, "the caller is at a rate limit")
            .with_retry_after(Some(std::time::Duration::from_millis(1500)));
        let f = failure(&limited);
        assert_eq!(f["code"], "rate_limit_exceeded");
        assert!(f["message"].as_str().unwrap().ends_with("Please try again in 1.500s."), "{f}");
        assert_eq!(failure(&Error::new(ErrorKind::ContextOverflow, "too long"))["code"], "context_length_exceeded");
        assert_eq!(failure(&Error::new(ErrorKind::MidStream, "cut"))["code"], "server_error");
        let u = usage(Usage::new(10, 4));
        assert_eq!((u["input_tokens"].clone(), u["total_tokens"].clone()), (json!(10), json!(14)));
    }
}
