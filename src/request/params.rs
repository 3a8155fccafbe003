//! The parameters a [`Request`] carries to the provider without interpreting them: sampling
//! (`top_p`, `seed`, `logit_bias`), tool use (`tool_choice`, `parallel_tool_calls`), the end user's
//! id, and an `extra` JSON map sent as it is.

use serde::{Deserialize, Serialize};

use super::Request;
use crate::error::{Error, Result};

/// Which tool the model may or must call: OpenAI's `tool_choice`, Anthropic's `tool_choice`.
///
/// In serialized form: `"auto"`, `"none"`, `"required"`, or `{"function": "name"}`.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides (the providers' default when tools are given).
    Auto,
    /// The model must not call a tool.
    None,
    /// The model must call at least one tool.
    Required,
    /// The model must call this function.
    Function(String),
}

/// Keys an `extra` map may not hold: the fields the adapters write from the
/// request's typed fields (OpenAI's and Anthropic's names), and `n`, since the router returns one
/// answer per request.
pub(crate) const RESERVED_EXTRA_KEYS: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "response_format",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "stop_sequences",
    "stream",
    "stream_options",
    "seed",
    "n",
    "parallel_tool_calls",
    "user",
    "logit_bias",
    "system",
    "metadata",
];

/// The largest bias OpenAI accepts for a token, either sign.
const MAX_LOGIT_BIAS: f32 = 100.0;

/// The checks the router runs on the pass-through parameters before routing: values in their
/// ranges, and an `extra` map that neither names a reserved key nor is larger than `max_bytes`.
pub(crate) fn check(request: &Request, max_bytes: usize) -> Result<()> {
    if let Some(t) = request.temperature
        && !(t.is_finite() && t >= 0.0)
    {
        return Err(Error::invalid_request(format!("`temperature` must be finite and >= 0, got {t}")));
    }
    if let Some(p) = request.top_p
        && !(p.is_finite() && (0.0..=1.0).contains(&p))
    {
        return Err(Error::invalid_request(format!("`top_p` must be within [0, 1], got {p}")));
    }
    if let Some((token, bias)) = request.logit_bias.iter().find(|(_, b)| !(b.is_finite() && b.abs() <= MAX_LOGIT_BIAS))
    {
        return Err(Error::invalid_request(format!(
            "`logit_bias` for token {token} must be within [-100, 100], got {bias}"
        )));
    }
    if let Some(ToolChoice::Function(name)) = &request.tool_choice
        && !request.tools.iter().any(|t| &t.name == name)
    {
        return Err(Error::invalid_request(format!(
            "`tool_choice` names function `{name}`, which is not among the tools"
        )));
    }
    if let Some(user) = &request.user
        && user.len() > super::MAX_KEY_BYTES
    {
        return Err(Error::invalid_request(format!(
            "`user` is {} bytes, above the limit of {}",
            user.len(),
            super::MAX_KEY_BYTES
        )));
    }
    if request.extra.is_empty() {
        return Ok(());
    }
    if let Some(key) = request.extra.keys().find(|k| RESERVED_EXTRA_KEYS.contains(&k.as_str())) {
        let what = if key == "n" {
            "the router returns one answer per request".to_owned()
        } else {
            "set the request's own field instead".to_owned()
        };
        return Err(Error::invalid_request(format!("`extra` may not hold `{key}`: {what}")));
    }
    let len = serde_json::to_vec(&request.extra).map_or(usize::MAX, |v| v.len());
    if len > max_bytes {
        return Err(Error::invalid_request(format!(
            "`extra` is {len} bytes of JSON, above the router's limit of {max_bytes}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::request::Tool;

    fn rejected(request: &Request) -> String {
        let e = check(request, 1 << 20).expect_err("the request should be refused");
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        e.to_string()
    }

    #[test]
    fn values_outside_their_ranges_are_refused_by_name() {
        assert!(rejected(&Request::new("x").with_top_p(1.5)).contains("`top_p`"));
        assert!(rejected(&Request::new("x").with_top_p(f32::NAN)).contains("`top_p`"));
        assert!(rejected(&Request::new("x").with_temperature(-0.1)).contains("`temperature`"));
        assert!(rejected(&Request::new("x").with_logit_bias(50256, 101.0)).contains("token 50256"));
        assert!(rejected(&Request::new("x").with_user("u".repeat(2000))).contains("`user`"));
        let choice = Request::new("x").with_tool_choice(ToolChoice::Function("lookup".into()));
        assert!(rejected(&choice).contains("`lookup`"));
        let ok =
            choice.with_tool(Tool::new("lookup", "", "{}")).with_top_p(0.9).with_seed(7).with_logit_bias(1, -100.0);
        check(&ok, 1 << 20).expect("in range");
    }

    #[test]
    fn extra_may_not_shadow_a_typed_field_or_ask_for_several_answers() {
        for key in ["model", "messages", "stream", "top_p", "metadata"] {
            let message = rejected(&Request::new("x").with_extra(key, serde_json::json!(1)));
            assert!(message.contains(&format!("`{key}`")), "{message}");
        }
        assert!(rejected(&Request::new("x").with_extra("n", serde_json::json!(2))).contains("one answer"));
        let big = Request::new("x").with_extra("presence_penalty", serde_json::json!("y".repeat(100)));
        assert!(check(&big, 50).expect_err("too big").to_string().contains("limit of 50"));
        check(&big, 1 << 20).expect("an unreserved key within the limit passes");
    }

    #[test]
    fn tool_choice_serializes_as_documented() {
        let json = |c: &ToolChoice| serde_json::to_string(c).expect("serializes");
        assert_eq!(json(&ToolChoice::Auto), r#""auto""#);
        assert_eq!(json(&ToolChoice::Required), r#""required""#);
        assert_eq!(json(&ToolChoice::Function("f".into())), r#"{"function":"f"}"#);
    }
}
