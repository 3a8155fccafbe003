//! The Gemini wire format: the `GenerateContentRequest` built from a [`Request`], and the
//! `GenerateContentResponse` read into a [`Completion`] (whole, or one stream chunk at a time).

use std::borrow::Cow;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::completion::{Completion, FinishReason, Usage};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::http::{self, ProviderError, null_default};
use crate::request::{ContentPart, Message, Request, ResponseFormat, Role, ToolCall, ToolChoice};

/// What separates a tool call's id from the thought signature the adapter keeps in it.
pub(super) const SIGNATURE_MARK: &str = "~sig~";

// ---- Request -------------------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateRequest<'a> {
    contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDeclarations<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<GenerationConfig<'a>>,
    /// `Request::extra` without its `generationConfig`, at the top level.
    #[serde(flatten)]
    extra: TopLevelExtra<'a>,
}

#[derive(Serialize)]
struct Content<'a> {
    role: &'static str,
    parts: Vec<Part<'a>>,
}

#[derive(Serialize)]
struct SystemInstruction<'a> {
    parts: Vec<Part<'a>>,
}

/// One part: exactly one of the data fields, plus a thought signature on replayed function calls.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inline_data: Option<InlineData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_data: Option<FileData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<FunctionCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_response: Option<FunctionResponseOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InlineData<'a> {
    mime_type: &'a str,
    data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileData<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    mime_type: Option<&'static str>,
    file_uri: &'a str,
}

#[derive(Serialize)]
struct FunctionCallOut<'a> {
    name: &'a str,
    args: &'a RawValue,
}

#[derive(Serialize)]
struct FunctionResponseOut<'a> {
    name: &'a str,
    response: ToolOutput<'a>,
}

/// A tool result as Gemini's `response` object: a JSON object as it is, anything else as
/// `{"output": text}` (the key Google's reference names for a function's output).
#[derive(Serialize)]
#[serde(untagged)]
enum ToolOutput<'a> {
    Object(&'a RawValue),
    Text { output: Cow<'a, str> },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolDeclarations<'a> {
    function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeclaration<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters_json_schema: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    function_calling_config: FunctionCallingConfig<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig<'a> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_function_names: Option<[&'a str; 1]>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_schema: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<&'a RawValue>,
    /// The keys of `extra["generationConfig"]`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    extra: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// The `extra` map minus its `generationConfig` entry, serialized as map entries.
struct TopLevelExtra<'a> {
    map: &'a serde_json::Map<String, serde_json::Value>,
}

impl Serialize for TopLevelExtra<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (k, v) in self.map.iter().filter(|(k, _)| normalized(k) != "generationconfig") {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A field name as Google's JSON parser matches it: lower case, without underscores
/// (`generation_config` and `generationConfig` are one field).
fn normalized(key: &str) -> String {
    key.chars().filter(|c| *c != '_').map(|c| c.to_ascii_lowercase()).collect()
}

/// Top-level fields the adapter writes itself; `extra` may not hold them.
const RESERVED_TOP: &[&str] = &["contents", "systeminstruction", "tools", "toolconfig"];
/// `generationConfig` fields written from the request's typed fields (or, for `candidateCount`, that
/// would ask for several answers); `extra["generationConfig"]` may not hold them.
const RESERVED_GENERATION: &[(&str, &str)] = &[
    ("maxoutputtokens", "max_tokens"),
    ("temperature", "temperature"),
    ("topp", "top_p"),
    ("stopsequences", "stop"),
    ("seed", "seed"),
    ("candidatecount", "n"),
];
/// `generationConfig` fields written from `response_format` when it asks for JSON.
const RESERVED_JSON: &[&str] = &["responsemimetype", "responseschema", "responsejsonschema"];

fn bad_request(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::BadRequest, message)
}

/// The request's parameters Gemini has no equivalent for: refused, so that a request is never sent
/// without what it asked for (the router then tries its next candidate).
fn unsupported(request: &Request) -> Option<&'static str> {
    if !request.logit_bias.is_empty() {
        Some("logit_bias")
    } else if request.parallel_tool_calls == Some(false) && !request.tools.is_empty() {
        Some("parallel_tool_calls")
    } else {
        None
    }
}

/// Splits `extra` into the top level and the keys of its `generationConfig`, refusing keys the
/// adapter writes itself.
fn split_extra(request: &Request) -> Result<Option<&serde_json::Map<String, serde_json::Value>>> {
    let mut generation = None;
    for (key, value) in &request.extra {
        let n = normalized(key);
        if RESERVED_TOP.contains(&n.as_str()) {
            return Err(bad_request(format!(
                "`extra` key `{key}` is a field the Gemini adapter writes itself; the request was not sent"
            )));
        }
        if n == "generationconfig" {
            let serde_json::Value::Object(map) = value else {
                return Err(bad_request(format!("`extra` key `{key}` must be a JSON object")));
            };
            for inner in map.keys() {
                let n = normalized(inner);
                if let Some((_, field)) = RESERVED_GENERATION.iter().find(|(r, _)| *r == n) {
                    return Err(bad_request(format!(
                        "`extra` key `{key}.{inner}` is written from the request's `{field}`; the request was not sent"
                    )));
                }
                if request.response_format.is_json() && RESERVED_JSON.contains(&n.as_str()) {
                    return Err(bad_request(format!(
                        "`extra` key `{key}.{inner}` is written from the request's `response_format`; the request was not sent"
                    )));
                }
            }
            generation = Some(map);
        }
    }
    Ok(generation)
}

/// The function's name for a tool result: from the nearest earlier assistant turn that made the call.
fn tool_name<'a>(earlier: &'a [Message], id: &str) -> Option<&'a str> {
    earlier
        .iter()
        .rev()
        .filter(|m| m.role == Role::Assistant)
        .flat_map(|m| m.tool_calls.iter())
        .find(|c| c.id == id)
        .map(|c| c.name.as_str())
}

/// A `data:` URI as inline data; any other URL as file data with a MIME type guessed from its
/// extension (left out when unknown).
fn image_part(url: &str) -> Result<Part<'_>> {
    if let Some(rest) = url.strip_prefix("data:") {
        let Some((mime_type, data)) = rest.split_once(";base64,") else {
            return Err(bad_request("an image `data:` URI is not base64; the request was not sent"));
        };
        return Ok(Part { inline_data: Some(InlineData { mime_type, data }), ..Part::default() });
    }
    let path = url.split(['?', '#']).next().unwrap_or_default().to_ascii_lowercase();
    let mime_type = [
        (".png", "image/png"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".webp", "image/webp"),
        (".gif", "image/gif"),
        (".heic", "image/heic"),
        (".heif", "image/heif"),
        (".pdf", "application/pdf"),
    ]
    .iter()
    .find(|(ext, _)| path.ends_with(ext))
    .map(|(_, mime)| *mime);
    Ok(Part { file_data: Some(FileData { mime_type, file_uri: url }), ..Part::default() })
}

/// `tool_choice` as `toolConfig.functionCallingConfig`; nothing without tools.
fn tool_config(request: &Request) -> Option<ToolConfig<'_>> {
    if request.tools.is_empty() {
        return None;
    }
    let (mode, allowed) = match request.tool_choice.as_ref()? {
        ToolChoice::Auto => ("AUTO", None),
        ToolChoice::None => ("NONE", None),
        ToolChoice::Required => ("ANY", None),
        ToolChoice::Function(name) => ("ANY", Some([name.as_str()])),
    };
    Some(ToolConfig { function_calling_config: FunctionCallingConfig { mode, allowed_function_names: allowed } })
}

pub(super) fn encode(request: &Request, openapi_schemas: bool) -> Result<GenerateRequest<'_>> {
    if let Some(field) = unsupported(request) {
        return Err(bad_request(format!("the Gemini API has no `{field}`; the request was not sent")));
    }
    let seed = request
        .seed
        .map(|s| {
            i32::try_from(s).map_err(|_| bad_request("Gemini's `seed` is a 32-bit integer; the request was not sent"))
        })
        .transpose()?;
    let generation_extra = split_extra(request)?;
    let mut system: Vec<Part<'_>> = Vec::new();
    let mut contents: Vec<Content<'_>> = Vec::with_capacity(request.messages.len());
    for (i, m) in request.messages.iter().enumerate() {
        let role = match m.role {
            Role::System => {
                system.extend(
                    m.texts().filter(|t| !t.is_empty()).map(|text| Part { text: Some(text), ..Part::default() }),
                );
                continue;
            }
            Role::User | Role::Tool => "user",
            Role::Assistant => "model",
        };
        let mut parts = Vec::with_capacity(m.content.len() + m.tool_calls.len());
        if m.role == Role::Tool {
            let id = m.tool_call_id.as_deref().unwrap_or_default();
            let Some(name) = tool_name(&request.messages[..i], id) else {
                return Err(bad_request(format!(
                    "tool result `{id}` answers no tool call of an earlier assistant turn, and Gemini needs the function's name"
                )));
            };
            let texts: Vec<&str> = m.texts().collect();
            let text = if texts.len() == 1 { Cow::Borrowed(texts[0]) } else { Cow::Owned(texts.join("\n")) };
            let response = match serde_json::from_str::<&RawValue>(texts.first().copied().unwrap_or_default()) {
                Ok(raw) if texts.len() == 1 && raw.get().starts_with('{') => ToolOutput::Object(raw),
                _ => ToolOutput::Text { output: text },
            };
            parts.push(Part { function_response: Some(FunctionResponseOut { name, response }), ..Part::default() });
        } else {
            for part in &m.content {
                match part {
                    ContentPart::Text { text } if text.is_empty() => {}
                    ContentPart::Text { text } => parts.push(Part { text: Some(text), ..Part::default() }),
                    ContentPart::Image { url, .. } => parts.push(image_part(url)?),
                }
            }
        }
        for call in &m.tool_calls {
            let args = http::raw_json(&call.arguments, "{}", || format!("the arguments of tool call `{}`", call.id))?;
            let signature = call.id.split_once(SIGNATURE_MARK).map(|(_, s)| s).filter(|s| !s.is_empty());
            parts.push(Part {
                function_call: Some(FunctionCallOut { name: &call.name, args }),
                thought_signature: signature,
                ..Part::default()
            });
        }
        if parts.is_empty() {
            continue;
        }
        // Consecutive turns of one role (several tool results, then the user's next words) become one.
        match contents.last_mut() {
            Some(last) if last.role == role => last.parts.extend(parts),
            _ => contents.push(Content { role, parts }),
        }
    }
    let declarations = request
        .tools
        .iter()
        .map(|t| {
            let schema = if t.parameters.trim().is_empty() {
                None
            } else {
                Some(http::raw_json(&t.parameters, "{}", || format!("the schema of tool `{}`", t.name))?)
            };
            let (parameters, parameters_json_schema) = if openapi_schemas { (schema, None) } else { (None, schema) };
            Ok(FunctionDeclaration { name: &t.name, description: &t.description, parameters, parameters_json_schema })
        })
        .collect::<Result<Vec<_>>>()?;
    let tools = if declarations.is_empty() {
        Vec::new()
    } else {
        vec![ToolDeclarations { function_declarations: declarations }]
    };
    let mut generation = GenerationConfig {
        max_output_tokens: request.max_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        stop_sequences: &request.stop,
        seed,
        extra: generation_extra.filter(|m| !m.is_empty()),
        ..GenerationConfig::default()
    };
    match &request.response_format {
        ResponseFormat::Text => {}
        ResponseFormat::Json => generation.response_mime_type = Some("application/json"),
        ResponseFormat::JsonSchema { name, schema } => {
            generation.response_mime_type = Some("application/json");
            let schema = http::raw_json(schema, "{}", || format!("the response schema `{name}`"))?;
            if openapi_schemas {
                generation.response_schema = Some(schema);
            } else {
                generation.response_json_schema = Some(schema);
            }
        }
    }
    let generation_is_empty = generation.max_output_tokens.is_none()
        && generation.temperature.is_none()
        && generation.top_p.is_none()
        && generation.stop_sequences.is_empty()
        && generation.seed.is_none()
        && generation.response_mime_type.is_none()
        && generation.extra.is_none();
    Ok(GenerateRequest {
        contents,
        system_instruction: (!system.is_empty()).then_some(SystemInstruction { parts: system }),
        tools,
        tool_config: tool_config(request),
        generation_config: (!generation_is_empty).then_some(generation),
        extra: TopLevelExtra { map: &request.extra },
    })
}

// ---- Response ------------------------------------------------------------------------------------

/// A `GenerateContentResponse`: a whole answer, or one stream chunk.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResponseIn {
    #[serde(default, deserialize_with = "null_default")]
    pub(super) candidates: Vec<CandidateIn>,
    #[serde(default)]
    pub(super) prompt_feedback: Option<PromptFeedbackIn>,
    #[serde(default)]
    pub(super) usage_metadata: Option<UsageIn>,
    /// An error object in place of an answer (inside a stream).
    #[serde(default)]
    pub(super) error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CandidateIn {
    #[serde(default)]
    pub(super) content: Option<ContentIn>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ContentIn {
    #[serde(default, deserialize_with = "null_default")]
    pub(super) parts: Vec<PartIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PartIn {
    #[serde(default)]
    pub(super) text: Option<String>,
    /// A thought summary (with `includeThoughts`), not answer text.
    #[serde(default)]
    pub(super) thought: Option<bool>,
    #[serde(default)]
    pub(super) function_call: Option<FunctionCallIn>,
    #[serde(default)]
    pub(super) thought_signature: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct FunctionCallIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    args: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptFeedbackIn {
    #[serde(default)]
    pub(super) block_reason: Option<String>,
}

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageIn {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    tool_use_prompt_token_count: Option<u64>,
}

impl UsageIn {
    /// Gemini's prompt count includes cached tokens (as ours does); its candidates count excludes the
    /// thinking tokens (ours includes them). See the module docs.
    pub(super) fn to_usage(self) -> Usage {
        let input =
            http::tokens(self.prompt_token_count).saturating_add(http::tokens(self.tool_use_prompt_token_count));
        let reasoning = http::tokens(self.thoughts_token_count);
        let output = http::tokens(self.candidates_token_count).saturating_add(reasoning);
        Usage::new(input, output)
            .with_cached_input(http::tokens(self.cached_content_token_count))
            .with_reasoning(reasoning)
    }
}

impl PartIn {
    /// The answer text of this part: none for thoughts.
    pub(super) fn answer_text(&self) -> Option<&str> {
        if self.thought == Some(true) {
            return None;
        }
        self.text.as_deref().filter(|t| !t.is_empty())
    }

    /// The function call of this part as a tool call, `index` numbering calls without an id.
    pub(super) fn tool_call(&mut self, index: usize) -> Option<ToolCall> {
        let call = self.function_call.take()?;
        let mut id = call.id.filter(|id| !id.is_empty()).unwrap_or_else(|| format!("call_{index}"));
        if let Some(signature) = self.thought_signature.take().filter(|s| !s.is_empty()) {
            id.push_str(SIGNATURE_MARK);
            id.push_str(&signature);
        }
        let args = match call.args {
            None | Some(serde_json::Value::Null) => "{}".to_owned(),
            Some(v) => v.to_string(),
        };
        Some(ToolCall::new(id, call.name.unwrap_or_default(), args))
    }
}

/// Gemini's `finishReason`; `STOP` with function calls is [`FinishReason::ToolCalls`].
pub(super) fn finish_reason(reason: Option<&str>, called_tools: bool) -> FinishReason {
    match reason {
        Some("STOP") | None if called_tools => FinishReason::ToolCalls,
        Some("STOP") => FinishReason::Stop,
        Some("MAX_TOKENS") => FinishReason::Length,
        Some(
            "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION",
        ) => FinishReason::ContentFilter,
        // MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS, LANGUAGE, OTHER, ...
        _ => FinishReason::Other,
    }
}

/// The error object of a response, mapped by its status.
pub(super) fn reported(name: &str, error: &serde_json::Value) -> Error {
    http::reported_error(name, &ProviderError::from_value(error))
}

pub(crate) fn decode_response(name: &str, body: &[u8], request: &Request) -> Result<Completion> {
    let wire: ResponseIn = serde_json::from_slice(body).map_err(|e| http::json_error(name, "an answer", &e))?;
    if let Some(error) = wire.error.as_ref().filter(|e| !e.is_null()) {
        return Err(reported(name, error));
    }
    let blocked = wire.prompt_feedback.and_then(|f| f.block_reason).is_some();
    let (content, calls, finish) = match wire.candidates.into_iter().next() {
        Some(candidate) => {
            let mut content = String::new();
            let mut calls = Vec::new();
            for mut part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                if let Some(text) = part.answer_text() {
                    content.push_str(text);
                }
                if let Some(call) = part.tool_call(calls.len()) {
                    calls.push(call);
                }
            }
            let finish = finish_reason(candidate.finish_reason.as_deref(), !calls.is_empty());
            (content, calls, finish)
        }
        // No candidate: the prompt itself was blocked (`promptFeedback.blockReason`).
        None if blocked => (String::new(), Vec::new(), FinishReason::ContentFilter),
        None => return Err(Error::decode(format!("provider `{name}` answered with no candidates"))),
    };
    let usage = match wire.usage_metadata {
        Some(u) => u.to_usage(),
        None => http::estimated_usage(request, &content),
    };
    let mut response = Completion::new(content, finish, usage);
    for call in calls {
        response = response.with_tool_call(call);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::request::{ImageDetail, Tool};

    fn json_of(request: &Request, openapi: bool) -> serde_json::Value {
        serde_json::to_value(encode(request, openapi).unwrap()).unwrap()
    }

    #[test]
    fn encodes_roles_images_tools_and_config() {
        let request = Request::from_messages(vec![
            Message::system("be brief"),
            Message::user("what is this?")
                .with_part(ContentPart::image("data:image/png;base64,AAAA", ImageDetail::Low))
                .with_part(ContentPart::image("gs://bucket/cat.JPG?x=1", ImageDetail::Auto))
                .with_part(ContentPart::image("https://example.com/blob", ImageDetail::Auto)),
            Message::assistant("").with_tool_call(ToolCall::new("call_0~sig~c2ln", "lookup", "{\"q\":1}")),
            Message::tool_result("call_0~sig~c2ln", "{\"answer\": 42}"),
            Message::user("thanks"),
        ])
        .with_tool(Tool::new("lookup", "looks up", r#"{"type":"object"}"#))
        .with_tool(Tool::new("ping", "", ""))
        .with_tool_choice(ToolChoice::Function("lookup".into()))
        .with_response_format(ResponseFormat::JsonSchema { name: "a".into(), schema: r#"{"type":"object"}"#.into() })
        .with_max_tokens(100)
        .with_temperature(0.5)
        .with_top_p(0.9)
        .with_seed(7)
        .with_stop("END");
        let v = json_of(&request, false);
        assert_eq!(v["systemInstruction"], json!({"parts": [{"text": "be brief"}]}));
        assert_eq!(
            v["contents"],
            json!([
                {"role": "user", "parts": [
                    {"text": "what is this?"},
                    {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/cat.JPG?x=1"}},
                    {"fileData": {"fileUri": "https://example.com/blob"}}
                ]},
                {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"q": 1}}, "thoughtSignature": "c2ln"}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "lookup", "response": {"answer": 42}}},
                    {"text": "thanks"}
                ]}
            ])
        );
        assert_eq!(
            v["tools"],
            json!([{"functionDeclarations": [
                {"name": "lookup", "description": "looks up", "parametersJsonSchema": {"type": "object"}},
                {"name": "ping"}
            ]}])
        );
        assert_eq!(
            v["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}})
        );
        assert_eq!(
            v["generationConfig"],
            json!({"maxOutputTokens": 100, "temperature": 0.5, "topP": 0.8999999761581421, "stopSequences": ["END"],
                   "seed": 7, "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}})
        );
        let v = json_of(&request, true);
        assert_eq!(v["tools"][0]["functionDeclarations"][0]["parameters"], json!({"type": "object"}));
        assert_eq!(v["generationConfig"]["responseSchema"], json!({"type": "object"}));
        assert!(v["generationConfig"].get("responseJsonSchema").is_none());

        let v = json_of(&Request::new("hi"), false);
        assert_eq!(v, json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}));
    }

    #[test]
    fn tool_results_need_their_call_and_text_results_are_wrapped() {
        let orphan = Request::from_messages(vec![Message::user("x"), Message::tool_result("nope", "1")]);
        let e = encode(&orphan, false).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.to_string().contains("`nope`"), "{e}");
        let request = Request::from_messages(vec![
            Message::assistant("").with_tool_call(ToolCall::new("call_0", "a", "")),
            Message::tool_result("call_0", "plain text"),
            Message::assistant("").with_tool_call(ToolCall::new("call_0", "b", "{}")),
            Message::tool_result("call_0", "[1, 2]"),
        ]);
        let v = json_of(&request, false);
        assert_eq!(v["contents"][0]["parts"][0], json!({"functionCall": {"name": "a", "args": {}}}));
        assert_eq!(
            v["contents"][1]["parts"][0],
            json!({"functionResponse": {"name": "a", "response": {"output": "plain text"}}})
        );
        // The nearest earlier call with that id names the function.
        assert_eq!(
            v["contents"][3]["parts"][0],
            json!({"functionResponse": {"name": "b", "response": {"output": "[1, 2]"}}})
        );
    }

    #[test]
    fn pass_through_parameters_map_or_are_refused() {
        let tools = Request::new("hi").with_tool(Tool::new("f", "", "{}"));
        for (choice, config) in [
            (ToolChoice::Auto, json!({"mode": "AUTO"})),
            (ToolChoice::None, json!({"mode": "NONE"})),
            (ToolChoice::Required, json!({"mode": "ANY"})),
        ] {
            let v = json_of(&tools.clone().with_tool_choice(choice), false);
            assert_eq!(v["toolConfig"]["functionCallingConfig"], config);
        }
        assert!(json_of(&Request::new("hi").with_tool_choice(ToolChoice::Required), false).get("toolConfig").is_none());
        assert!(json_of(&tools.clone().with_parallel_tool_calls(true), false).get("toolConfig").is_none());
        // `user` has no Gemini field and does not change the answer: not sent.
        assert_eq!(json_of(&Request::new("hi").with_user("u-1"), false).as_object().unwrap().len(), 1);
        let v = json_of(
            &Request::new("hi")
                .with_extra(
                    "safetySettings",
                    json!([{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]),
                )
                .with_extra("generationConfig", json!({"topK": 40, "thinkingConfig": {"thinkingBudget": 0}})),
            false,
        );
        assert_eq!(v["safetySettings"][0]["threshold"], "BLOCK_NONE");
        assert_eq!(v["generationConfig"], json!({"topK": 40, "thinkingConfig": {"thinkingBudget": 0}}));
        // `responseMimeType` may come from `extra` when the format does not write it.
        let v = json_of(
            &Request::new("hi").with_extra("generation_config", json!({"responseMimeType": "text/x.enum"})),
            false,
        );
        assert_eq!(v["generationConfig"], json!({"responseMimeType": "text/x.enum"}));
        for (request, field) in [
            (Request::new("hi").with_logit_bias(1, 1.0), "`logit_bias`"),
            (tools.clone().with_parallel_tool_calls(false), "`parallel_tool_calls`"),
            (Request::new("hi").with_seed(i64::from(i32::MAX) + 1), "`seed`"),
            (Request::new("hi").with_extra("contents", json!([])), "`contents`"),
            (Request::new("hi").with_extra("system_instruction", json!({})), "`system_instruction`"),
            (Request::new("hi").with_extra("generationConfig", json!({"maxOutputTokens": 5})), "`max_tokens`"),
            (Request::new("hi").with_extra("generationConfig", json!({"candidate_count": 2})), "`n`"),
            (Request::new("hi").with_extra("generationConfig", json!(5)), "`generationConfig`"),
            (
                Request::new("hi")
                    .with_response_format(ResponseFormat::Json)
                    .with_extra("generationConfig", json!({"responseSchema": {}})),
                "`response_format`",
            ),
            (
                Request::new("hi").with_message(
                    Message::user("x").with_part(ContentPart::image("data:image/png,rawbytes", ImageDetail::Auto)),
                ),
                "base64",
            ),
        ] {
            let e = encode(&request, false).err().expect("refused");
            assert_eq!(e.kind(), ErrorKind::BadRequest);
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn decodes_text_tools_usage_and_blocks() {
        let body = br#"{"candidates": [{"content": {"parts": [
                {"text": "thinking...", "thought": true},
                {"text": "Let me check."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
                {"functionCall": {"id": "fc-1", "name": "get_time"}}
            ], "role": "model"}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 20, "totalTokenCount": 170,
                              "cachedContentTokenCount": 60, "thoughtsTokenCount": 50},
            "modelVersion": "gemini-2.5-flash", "responseId": "abc"}"#;
        let r = decode_response("gemini", body, &Request::new("x")).unwrap();
        assert_eq!(r.content(), "Let me check.");
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.usage, Usage::new(100, 70).with_cached_input(60).with_reasoning(50));
        assert_eq!(
            r.tool_calls,
            vec![
                ToolCall::new("call_0~sig~c2ln", "get_weather", r#"{"city":"Paris"}"#),
                ToolCall::new("fc-1", "get_time", "{}")
            ]
        );
        let blocked = br#"{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}, "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}}"#;
        let r = decode_response("gemini", blocked, &Request::new("x")).unwrap();
        assert_eq!((r.content(), r.finish_reason, r.usage), ("", FinishReason::ContentFilter, Usage::new(8, 0)));
        let no_usage = br#"{"candidates": [{"content": {"parts": [{"text": "Hello there, friend"}]}, "finishReason": "MAX_TOKENS"}]}"#;
        let r = decode_response("gemini", no_usage, &Request::new("hello")).unwrap();
        assert_eq!(r.finish_reason, FinishReason::Length);
        assert!(r.usage.input_tokens > 0 && r.usage.output_tokens > 0);
        for (reason, finish) in [
            ("RECITATION", FinishReason::ContentFilter),
            ("PROHIBITED_CONTENT", FinishReason::ContentFilter),
            ("MALFORMED_FUNCTION_CALL", FinishReason::Other),
            ("OTHER", FinishReason::Other),
        ] {
            assert_eq!(finish_reason(Some(reason), false), finish);
        }
        for bad in [&b"{}"[..], b"[]", b"nope", br#"{"candidates": [{"content": {"parts": [{"text": 1}]}}]}"#] {
            assert_eq!(decode_response("gemini", bad, &Request::new("x")).unwrap_err().kind(), ErrorKind::Decode);
        }
        let error = br#"{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}"#;
        assert_eq!(decode_response("gemini", error, &Request::new("x")).unwrap_err().kind(), ErrorKind::Server);
    }
}
