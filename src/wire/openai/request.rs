//! [`ChatCompletionRequest`] → [`Request`].

use super::{ChatCompletionRequest, ChatContent, ChatMessage, ChatResponseFormat, Stop};
use crate::error::{Error, Result};
use crate::request::{ContentPart, ImageDetail, Message, Request, ResponseFormat, Role, Tool, ToolCall, ToolChoice};

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid_request(message)
}

/// What a chat-completions body asks for, in the router's terms.
///
/// Routing hints (key, tenant, budgets) are the server's to add. `model`, `stream` and
/// `stream_options` are not part of the result. Fields this module does not name are in
/// [`Request::extra`] and reach the provider as they are.
///
/// # Errors
///
/// [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest), naming the field, for: no
/// messages; an unknown role; a content part other than `text` and `image_url`; a tool whose type
/// is not `function`; an unknown `response_format` or `tool_choice`; a `logit_bias` key that is not a
/// token id; `n` above 1 (one answer per request).
impl TryFrom<ChatCompletionRequest> for Request {
    type Error = Error;

    fn try_from(wire: ChatCompletionRequest) -> Result<Self> {
        if wire.messages.is_empty() {
            return Err(invalid("`messages` is empty"));
        }
        if let Some(n) = wire.n
            && n != 1
        {
            return Err(invalid(format!("`n` is {n}: the router returns one answer per request")));
        }
        let messages = wire.messages.into_iter().enumerate().map(|(i, m)| message(i, m)).collect::<Result<Vec<_>>>()?;
        let mut request = Request::from_messages(messages);
        for (i, tool) in wire.tools.into_iter().enumerate() {
            if tool.kind != "function" {
                return Err(invalid(format!("`tools[{i}].type` must be `function`")));
            }
            let f = tool.function;
            let parameters = f.parameters.map_or_else(String::new, |p| p.to_string());
            request.tools.push(Tool::new(f.name, f.description.unwrap_or_default(), parameters));
        }
        request.tool_choice = wire.tool_choice.as_ref().map(tool_choice).transpose()?;
        request.response_format = wire.response_format.map(response_format).transpose()?.unwrap_or_default();
        request.max_tokens = wire.max_completion_tokens.or(wire.max_tokens);
        request.temperature = wire.temperature;
        request.top_p = wire.top_p;
        request.seed = wire.seed;
        request.stop = match wire.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        };
        request.parallel_tool_calls = wire.parallel_tool_calls;
        request.user = wire.user;
        for (token, bias) in wire.logit_bias {
            let id = token
                .parse::<u32>()
                .map_err(|_| invalid("`logit_bias` keys must be token ids (non-negative integers)"))?;
            request.logit_bias.insert(id, bias);
        }
        request.extra = wire.extra;
        Ok(request)
    }
}

fn message(i: usize, m: ChatMessage) -> Result<Message> {
    let role = match m.role.as_str() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        _ => {
            return Err(invalid(format!("`messages[{i}].role` must be system, developer, user, assistant or tool")));
        }
    };
    let mut content = Vec::new();
    match m.content {
        None => {}
        Some(ChatContent::Text(text)) => content.push(ContentPart::text(text)),
        Some(ChatContent::Parts(parts)) => {
            for (j, part) in parts.into_iter().enumerate() {
                let at = || format!("`messages[{i}].content[{j}]`");
                match (part.kind.as_str(), part.text, part.image_url) {
                    ("text", Some(text), _) => content.push(ContentPart::text(text)),
                    ("image_url", _, Some(image)) => {
                        let detail = match image.detail.as_deref() {
                            None | Some("auto") => ImageDetail::Auto,
                            Some("low") => ImageDetail::Low,
                            Some("high") => ImageDetail::High,
                            Some(_) => return Err(invalid(format!("{}'s detail must be auto, low or high", at()))),
                        };
                        content.push(ContentPart::image(image.url, detail));
                    }
                    ("text", None, _) => return Err(invalid(format!("{} has no `text`", at()))),
                    ("image_url", _, None) => return Err(invalid(format!("{} has no `image_url`", at()))),
                    // The type is the client's text, but a short label: bounded, and safe to echo.
                    (other, ..) => {
                        let kind: String = other.chars().take(32).collect();
                        return Err(invalid(format!(
                            "{} is of type `{kind}`: only `text` and `image_url` parts are served",
                            at()
                        )));
                    }
                }
            }
        }
    }
    let mut message = Message { role, content, tool_calls: Vec::new(), tool_call_id: m.tool_call_id };
    for (j, call) in m.tool_calls.into_iter().enumerate() {
        if call.kind != "function" {
            return Err(invalid(format!("`messages[{i}].tool_calls[{j}].type` must be `function`")));
        }
        message.tool_calls.push(ToolCall::new(call.id, call.function.name, call.function.arguments));
    }
    if role == Role::Tool && message.tool_call_id.is_none() {
        return Err(invalid(format!("`messages[{i}]` is a tool message without `tool_call_id`")));
    }
    Ok(message)
}

fn tool_choice(value: &serde_json::Value) -> Result<ToolChoice> {
    let bad =
        || invalid("`tool_choice` must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\"}}");
    match value {
        serde_json::Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            _ => Err(bad()),
        },
        serde_json::Value::Object(o) if o.get("type").and_then(|t| t.as_str()) == Some("function") => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(|n| n.as_str())
            .map(|name| ToolChoice::Function(name.to_owned()))
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}

fn response_format(format: ChatResponseFormat) -> Result<ResponseFormat> {
    match format.kind.as_str() {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::Json),
        "json_schema" => {
            let spec = format.json_schema.unwrap_or_default();
            let name = spec.get("name").and_then(|n| n.as_str()).unwrap_or("response").to_owned();
            let schema = spec
                .get("schema")
                .map(ToString::to_string)
                .ok_or_else(|| invalid("`response_format.json_schema.schema` is missing"))?;
            Ok(ResponseFormat::JsonSchema { name, schema })
        }
        _ => Err(invalid("`response_format.type` must be text, json_object or json_schema")),
    }
}
