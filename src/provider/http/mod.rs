//! The HTTP plumbing shared by the adapters: the key, the builder settings, one `reqwest::Client` per
//! adapter, deadlines, bounded body reads, the mapping of statuses and provider error bodies to
//! [`ErrorKind`]s, and the stream that turns server-sent events into
//! [`StreamEvent`](crate::execute::StreamEvent)s.

#[cfg(any(feature = "anthropic", feature = "bedrock"))]
mod blocks;
mod builder;
mod errors;
mod retry_after;
mod sanitize;
mod stream;
mod transport;

use serde::Deserialize as _;

#[cfg(any(feature = "anthropic", feature = "bedrock"))]
pub(crate) use self::blocks::{ToolBlocks, block_index};
pub use self::builder::redact_url;
pub(crate) use self::builder::{CommonBuilder, KeyHeader, Secret, transport_setters};
#[cfg(any(feature = "openai", feature = "anthropic", feature = "gemini"))]
pub(crate) use self::errors::reported_error;
#[cfg(any(feature = "openai", feature = "bedrock"))]
pub(crate) use self::errors::status_error;
pub(crate) use self::errors::{ProviderError, json_error};
#[cfg(feature = "bedrock")]
pub(crate) use self::retry_after::retry_after;
#[cfg(feature = "bedrock")]
pub(crate) use self::sanitize::quotes_key;
#[cfg(feature = "bedrock")]
pub(crate) use self::stream::Framing;
pub(crate) use self::stream::SseDecoder;
#[cfg(feature = "azure")]
pub(crate) use self::transport::Deadlines;
pub(crate) use self::transport::{CallContext, Transport};

use crate::error::{Error, ErrorKind, Result};

/// Deserializes `null` as the default value (`choices: null` from some OpenAI-compatible servers).
pub(crate) fn null_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A token count from the wire, saturated into `u32`.
pub(crate) fn tokens(n: Option<u64>) -> u32 {
    n.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// The usage of an answer whose provider reported none, estimated with the heuristic counter, so
/// that the call is priced from estimates rather than not at all.
#[cfg(any(feature = "openai", feature = "gemini"))]
pub(crate) fn estimated_usage(request: &crate::request::Request, output: &str) -> crate::completion::Usage {
    use crate::classify::{HeuristicCounter, TokenCounter};
    let counter = HeuristicCounter::default();
    let input = counter.count_request(request).unwrap_or(0);
    let output = counter.count(output).unwrap_or(0);
    crate::completion::Usage::new(u32::try_from(input).unwrap_or(u32::MAX), u32::try_from(output).unwrap_or(u32::MAX))
}

/// The usage of a provider whose input count leaves out the tokens read from and written to the
/// prompt cache (Anthropic, Bedrock's Converse); [`Usage::input_tokens`](crate::completion::Usage::input_tokens)
/// counts every input token.
#[cfg(any(feature = "anthropic", feature = "bedrock"))]
pub(crate) fn usage_with_cache(
    input: Option<u64>,
    output: Option<u64>,
    read: Option<u64>,
    written: Option<u64>,
) -> crate::completion::Usage {
    let (read, written) = (tokens(read), tokens(written));
    let input = tokens(input).saturating_add(read).saturating_add(written);
    crate::completion::Usage::new(input, tokens(output)).with_cached_input(read)
}

/// A tool call's arguments as JSON text (`{}` for none).
#[cfg(any(feature = "anthropic", feature = "bedrock"))]
pub(crate) fn tool_input_text(input: Option<serde_json::Value>) -> String {
    match input {
        None | Some(serde_json::Value::Null) => "{}".to_owned(),
        Some(v) => v.to_string(),
    }
}

/// Parses JSON text given by the caller (a tool schema, tool-call arguments) without copying it.
/// Blank text stands for `default`.
pub(crate) fn raw_json<'a>(
    text: &'a str,
    default: &'static str,
    what: impl FnOnce() -> String,
) -> Result<&'a serde_json::value::RawValue> {
    let text = if text.trim().is_empty() { default } else { text };
    serde_json::from_str::<&serde_json::value::RawValue>(text)
        .map_err(|_| Error::new(ErrorKind::BadRequest, format!("{} is not valid JSON", what())))
}
