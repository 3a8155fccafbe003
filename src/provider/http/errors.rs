//! Errors: what a provider said about an error, and the [`ErrorKind`] a status, a provider error or
//! an undecodable body maps to.

use reqwest::header::HeaderMap;

use std::time::Duration;

use super::builder::Secret;
use super::retry_after::{google_duration, retry_after};
use super::sanitize::{quotes_key, sanitize};
use super::transport::CallContext;
use crate::error::{Error, ErrorKind};

/// What a provider said about an error: its type, its code and a sanitized message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProviderError {
    pub(crate) kind: Option<String>,
    pub(crate) code: Option<String>,
    /// The provider's message, raw: used to recognise context overflows, and shown only sanitized.
    pub(crate) message: Option<String>,
    /// Google's `google.rpc.ErrorInfo` reason from the error's `details` (`API_KEY_INVALID`), or
    /// Azure's `innererror.code` (`ResponsibleAIPolicyViolation`).
    pub(crate) reason: Option<String>,
    /// The categories Azure's content filter flagged (`innererror.content_filter_result` entries with
    /// `filtered: true`: `hate`, `jailbreak`, ...), names only.
    pub(crate) filtered: Vec<String>,
    /// Google's `google.rpc.RetryInfo` delay from the error's `details` (`"37s"`).
    pub(crate) retry_delay: Option<Duration>,
}

impl ProviderError {
    /// Reads `{"error": {"type", "code", "message"}}` (OpenAI, Anthropic), `{"error": {"code",
    /// "message", "status", "details"}}` (Google), `{"error": "text"}` (some OpenAI-compatible servers)
    /// or `{"type", "message"}`. Anything else gives an empty value.
    pub(crate) fn from_body(body: &[u8]) -> Self {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return Self::default() };
        match value.get("error") {
            Some(error @ (serde_json::Value::String(_) | serde_json::Value::Object(_))) => Self::from_value(error),
            _ => Self::from_object(&value),
        }
    }

    /// Reads an `error` value: a bare message, or an error object ([`from_object`](Self::from_object)).
    pub(crate) fn from_value(error: &serde_json::Value) -> Self {
        match error {
            serde_json::Value::String(message) => Self { message: Some(message.clone()), ..Self::default() },
            other => Self::from_object(other),
        }
    }

    /// Reads the fields of one error object. Google's errors have no `type` but a `status`
    /// (`RESOURCE_EXHAUSTED`), which stands in for it, and `details` with an `ErrorInfo` reason and a
    /// `RetryInfo` delay. Azure's carry an `innererror` with a code and, for its content filter, the
    /// result per category.
    pub(crate) fn from_object(obj: &serde_json::Value) -> Self {
        let text = |key: &str| match obj.get(key) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let (mut reason, mut retry_delay) = (None, None);
        if let Some(serde_json::Value::Array(details)) = obj.get("details") {
            for detail in details.iter().take(16) {
                let field = |key: &str| detail.get(key).and_then(serde_json::Value::as_str);
                let kind = field("@type").unwrap_or_default();
                if kind.ends_with("google.rpc.ErrorInfo") && reason.is_none() {
                    reason = field("reason").filter(|r| !r.is_empty()).map(str::to_owned);
                } else if kind.ends_with("google.rpc.RetryInfo") && retry_delay.is_none() {
                    retry_delay = field("retryDelay").and_then(google_duration);
                }
            }
        }
        let mut filtered = Vec::new();
        if let Some(inner) = obj.get("innererror") {
            if reason.is_none() {
                reason =
                    inner.get("code").and_then(serde_json::Value::as_str).filter(|c| !c.is_empty()).map(str::to_owned);
            }
            if let Some(serde_json::Value::Object(results)) = inner.get("content_filter_result") {
                let flagged =
                    |v: &serde_json::Value| v.get("filtered").and_then(serde_json::Value::as_bool) == Some(true);
                filtered = results
                    .iter()
                    .filter(|(name, v)| flagged(v) && is_plain_name(name))
                    .map(|(name, _)| name.clone())
                    .take(16)
                    .collect();
            }
        }
        // Google's `status` is a name; Azure's is the HTTP status again, which says nothing more.
        let status = obj.get("status").and_then(serde_json::Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        Self {
            kind: text("type").or(status),
            code: text("code"),
            message: text("message"),
            reason,
            retry_delay,
            filtered,
        }
    }

    fn has(&self, name: &str) -> bool {
        self.kind.as_deref() == Some(name) || self.code.as_deref() == Some(name)
    }

    /// Whether the provider says its content filter refused the prompt (Azure: code `content_filter`,
    /// inner code `ResponsibleAIPolicyViolation`).
    pub(crate) fn is_content_filter(&self) -> bool {
        self.has("content_filter") || self.reason.as_deref() == Some("ResponsibleAIPolicyViolation")
    }

    /// Whether the provider says the prompt does not fit the model's context window.
    pub(crate) fn is_context_overflow(&self) -> bool {
        if self.has("context_length_exceeded") || self.has("string_above_max_length") {
            return true;
        }
        let Some(message) = &self.message else { return false };
        let m = message.to_ascii_lowercase();
        [
            "context length",
            "context_length",
            "context window",
            "context limit",
            "maximum context",
            "prompt is too long",
            "too many tokens",
            "exceeds the model's",
            // Google: "The input token count (1200293) exceeds the maximum number of tokens allowed
            // (1048576)."; Vertex AI: "... the input token count is 1500000 but model only supports up
            // to 1048576".
            "exceeds the maximum number of tokens",
            "model only supports up to",
        ]
        .iter()
        .any(|needle| m.contains(needle))
    }

    /// The kind a provider error type or code stands for, for errors without a telling status
    /// (errors sent inside a stream).
    #[cfg_attr(
        not(any(feature = "openai", feature = "anthropic", feature = "gemini")),
        allow(dead_code, reason = "Bedrock maps its exception types itself")
    )]
    pub(crate) fn kind_by_type(&self) -> ErrorKind {
        if self.is_context_overflow() {
            return ErrorKind::ContextOverflow;
        }
        for name in [self.kind.as_deref(), self.code.as_deref()].into_iter().flatten() {
            let kind = match name {
                "overloaded_error"
                | "api_error"
                | "server_error"
                | "internal_error"
                | "internal_server_error"
                | "service_unavailable" => ErrorKind::Server,
                "rate_limit_error" | "rate_limit_exceeded" | "tokens" | "requests" => ErrorKind::RateLimited,
                "authentication_error"
                | "permission_error"
                | "invalid_api_key"
                | "billing_error"
                | "insufficient_quota" => ErrorKind::Auth,
                "not_found_error" | "model_not_found" => ErrorKind::ModelNotFound,
                "invalid_request_error" | "request_too_large" => ErrorKind::BadRequest,
                "timeout_error" => ErrorKind::Timeout,
                // Google's canonical codes (`error.status`).
                "RESOURCE_EXHAUSTED" => ErrorKind::RateLimited,
                "UNAVAILABLE" | "INTERNAL" | "UNKNOWN" | "ABORTED" => ErrorKind::Server,
                "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
                "UNAUTHENTICATED" | "PERMISSION_DENIED" => ErrorKind::Auth,
                "NOT_FOUND" => ErrorKind::ModelNotFound,
                "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => ErrorKind::BadRequest,
                // A numeric code (OpenRouter and other gateways) is an HTTP status.
                numeric => match numeric.parse::<u16>() {
                    Ok(401..=403) => ErrorKind::Auth,
                    Ok(404) => ErrorKind::ModelNotFound,
                    Ok(408) => ErrorKind::Timeout,
                    Ok(429) => ErrorKind::RateLimited,
                    Ok(400..=499) => ErrorKind::BadRequest,
                    Ok(500..=599) => ErrorKind::Server,
                    _ => continue,
                },
            };
            return kind;
        }
        ErrorKind::Server
    }

    /// `` , flagging `hate`, `jailbreak` ``: the categories the content filter flagged, if any.
    fn flagged(&self, key: Option<&Secret>) -> String {
        let names: Vec<String> =
            self.filtered.iter().filter(|n| !quotes_key(n, key)).map(|n| format!("`{n}`")).collect();
        if names.is_empty() { String::new() } else { format!(", flagging {}", names.join(", ")) }
    }

    /// `` `type`, `code` `` and, when allowed, the sanitized message, as a parenthesised suffix.
    pub(crate) fn detail(&self, cx: Option<&CallContext<'_>>, key: Option<&Secret>, with_message: bool) -> String {
        let mut names: Vec<&str> = Vec::with_capacity(2);
        for n in [self.kind.as_deref(), self.code.as_deref(), self.reason.as_deref()].into_iter().flatten() {
            // A type or code that holds the key (a server echoing it back) is left out like a message.
            let clean = is_plain_name(n) && !quotes_key(n, key);
            if clean && !names.contains(&n) {
                names.push(n);
            }
        }
        let mut out = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        if with_message && let Some(m) = self.message.as_deref().and_then(|m| sanitize(m, cx, key)) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&m);
        }
        if out.is_empty() { out } else { format!(" ({out})") }
    }
}

/// A type, code or category name that may be shown: short, and letters, digits, `_`, `-` and `.` only.
fn is_plain_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// Maps a non-success status and the provider's error body to an error. With `content_filter`
/// (Azure), a 4xx whose body says the content filter refused the prompt is
/// [`ErrorKind::ContentFilter`].
pub(crate) fn status_error(
    name: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    cx: &CallContext<'_>,
    key: Option<&Secret>,
    content_filter: bool,
) -> Error {
    let pe = ProviderError::from_body(body);
    let model = cx.model.api_name();
    let detail = |with_message| pe.detail(Some(cx), key, with_message);
    // Headers first; Google sends the wait in the body (`RetryInfo`) instead.
    let wait = retry_after(headers).or(pe.retry_delay);
    let error = match status {
        401 | 403 => {
            Error::new(ErrorKind::Auth, format!("provider `{name}` rejected the credentials{}", detail(false)))
        }
        // Google answers an invalid API key with 400 `INVALID_ARGUMENT`, reason `API_KEY_INVALID`.
        400 if pe.reason.as_deref() == Some("API_KEY_INVALID") => {
            Error::new(ErrorKind::Auth, format!("provider `{name}` rejected the credentials{}", detail(false)))
        }
        404 => Error::new(
            ErrorKind::ModelNotFound,
            format!("provider `{name}` does not know model `{model}`{}", detail(true)),
        ),
        408 => Error::timeout(format!("provider `{name}` timed out{}", detail(true))),
        // Out of credit is not a rate limit: waiting does not help.
        429 if pe.has("insufficient_quota") => {
            Error::new(ErrorKind::Auth, format!("provider `{name}` says the account is out of quota{}", detail(true)))
        }
        429 => Error::rate_limited(format!("provider `{name}` is rate limiting this caller{}", detail(true)), wait),
        529 => Error::server(format!("provider `{name}` is overloaded{}", detail(true))),
        500..=599 => Error::server(format!("provider `{name}` failed with a server error{}", detail(true))),
        400..=499 if content_filter && pe.is_content_filter() => Error::new(
            ErrorKind::ContentFilter,
            format!("the content filter of provider `{name}` refused the request{}{}", pe.flagged(key), detail(true)),
        ),
        400..=499 if pe.is_context_overflow() => Error::context_overflow(format!(
            "the prompt does not fit the context window of model `{model}` at provider `{name}`{}",
            detail(true)
        )),
        400..=499 => {
            Error::new(ErrorKind::BadRequest, format!("provider `{name}` rejected the request{}", detail(true)))
        }
        _ => Error::decode(format!("provider `{name}` answered with unexpected status {status}")),
    };
    let error = if error.retry_after().is_none() && status >= 500 { error.with_retry_after(wait) } else { error };
    error.with_status(status)
}

/// An error the provider reported in a successful response (an `error` event in a stream, an `error`
/// object in a 200 body), mapped by its type or code.
#[cfg_attr(
    not(any(feature = "openai", feature = "anthropic", feature = "gemini")),
    allow(dead_code, reason = "Bedrock maps its exception types itself")
)]
pub(crate) fn reported_error(name: &str, pe: &ProviderError) -> Error {
    // Shown by type and code only: there is no request at hand to check the message against.
    let detail = pe.detail(None, None, false);
    match pe.kind_by_type() {
        ErrorKind::Server if pe.has("overloaded_error") => {
            Error::server(format!("provider `{name}` is overloaded{detail}"))
        }
        ErrorKind::RateLimited => {
            Error::rate_limited(format!("provider `{name}` is rate limiting this caller{detail}"), pe.retry_delay)
        }
        ErrorKind::ContextOverflow => Error::context_overflow(format!(
            "the prompt does not fit the model's context window at provider `{name}`{detail}"
        )),
        ErrorKind::Timeout => Error::timeout(format!("provider `{name}` timed out{detail}")),
        kind @ (ErrorKind::Auth | ErrorKind::ModelNotFound | ErrorKind::BadRequest) => {
            Error::new(kind, format!("provider `{name}` reported an error{detail}"))
        }
        _ => Error::server(format!("provider `{name}` reported an error{detail}")),
    }
}

/// A body that is not the JSON expected. The serde message can quote the offending value, so only its
/// category and position are kept.
pub(crate) fn json_error(name: &str, what: &str, e: &serde_json::Error) -> Error {
    let category = match e.classify() {
        serde_json::error::Category::Io => "an I/O error",
        serde_json::error::Category::Syntax => "a syntax error",
        serde_json::error::Category::Data => "an unexpected shape",
        serde_json::error::Category::Eof => "an early end",
    };
    Error::decode(format!(
        "provider `{name}` sent {what} that does not decode ({category} at line {}, column {})",
        e.line(),
        e.column()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_error_shapes() {
        let openai = br#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        let pe = ProviderError::from_body(openai);
        assert_eq!(pe.code.as_deref(), Some("context_length_exceeded"));
        assert!(pe.is_context_overflow());
        let anthropic = br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#;
        assert!(ProviderError::from_body(anthropic).is_context_overflow());
        let plain = br#"{"error":"model 'x' not found"}"#;
        assert_eq!(ProviderError::from_body(plain).message.as_deref(), Some("model 'x' not found"));
        assert_eq!(ProviderError::from_body(b"<html>502</html>"), ProviderError::default());
        let numeric = br#"{"error":{"code":429,"message":"busy"}}"#;
        assert_eq!(ProviderError::from_body(numeric).code.as_deref(), Some("429"));
        let overloaded = ProviderError { kind: Some("overloaded_error".into()), ..Default::default() };
        assert_eq!(overloaded.kind_by_type(), ErrorKind::Server);
        assert_eq!(ProviderError::default().kind_by_type(), ErrorKind::Server);
        // Numeric codes are HTTP statuses; out of quota is not retryable.
        for (code, kind) in [
            ("402", ErrorKind::Auth),
            ("401", ErrorKind::Auth),
            ("404", ErrorKind::ModelNotFound),
            ("400", ErrorKind::BadRequest),
            ("429", ErrorKind::RateLimited),
            ("502", ErrorKind::Server),
        ] {
            let pe = ProviderError { code: Some(code.into()), ..Default::default() };
            assert_eq!(pe.kind_by_type(), kind, "{code}");
        }
        let quota = ProviderError { code: Some("insufficient_quota".into()), ..Default::default() };
        assert_eq!(quota.kind_by_type(), ErrorKind::Auth);
    }

    #[test]
    fn google_error_shapes() {
        let limited = br#"{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}}"#;
        let pe = ProviderError::from_body(limited);
        assert_eq!((pe.kind.as_deref(), pe.code.as_deref()), (Some("RESOURCE_EXHAUSTED"), Some("429")));
        assert_eq!(pe.retry_delay, Some(Duration::from_secs(37)));
        assert_eq!(pe.kind_by_type(), ErrorKind::RateLimited);
        let key = br#"{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}"#;
        assert_eq!(ProviderError::from_body(key).reason.as_deref(), Some("API_KEY_INVALID"));
        let overflow = br#"{"error": {"code": 400, "message": "The input token count (1200293) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}"#;
        assert!(ProviderError::from_body(overflow).is_context_overflow());
        for (status, kind) in [
            ("UNAVAILABLE", ErrorKind::Server),
            ("INTERNAL", ErrorKind::Server),
            ("PERMISSION_DENIED", ErrorKind::Auth),
            ("NOT_FOUND", ErrorKind::ModelNotFound),
            ("INVALID_ARGUMENT", ErrorKind::BadRequest),
            ("DEADLINE_EXCEEDED", ErrorKind::Timeout),
        ] {
            let pe = ProviderError { kind: Some(status.into()), ..Default::default() };
            assert_eq!(pe.kind_by_type(), kind, "{status}");
        }
    }

    #[test]
    fn azure_content_filter_is_its_own_kind_only_when_asked() {
        let body = br#"{"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.", "type": null, "param": "prompt", "code": "content_filter", "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {"hate": {"filtered": false, "severity": "safe"},
            "jailbreak": {"filtered": true, "detected": true}, "bad name!": {"filtered": true}}}}}"#;
        let pe = ProviderError::from_body(body);
        assert!(pe.is_content_filter());
        assert_eq!(pe.reason.as_deref(), Some("ResponsibleAIPolicyViolation"));
        assert_eq!(pe.filtered, ["jailbreak"]);
        let model = crate::catalog::ModelProfile::new("m", "azure");
        let request = crate::request::Request::new("hello there");
        let cx = CallContext { model: &model, request: &request };
        let e = status_error("azure", 400, &HeaderMap::new(), body, &cx, None, true);
        assert_eq!((e.kind(), e.status(), e.is_retryable()), (ErrorKind::ContentFilter, Some(400), false));
        assert_eq!(
            e.to_string(),
            "the content filter of provider `azure` refused the request, flagging `jailbreak` (`content_filter`, \
             `ResponsibleAIPolicyViolation`: The response was filtered due to the prompt triggering Azure \
             OpenAI's content management policy) (status 400)"
        );
        let e = status_error("openai", 400, &HeaderMap::new(), body, &cx, None, false);
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        // Azure's overflow and other errors keep their kinds.
        let overflow = br#"{"error": {"code": "context_length_exceeded", "message": "This model's maximum context length is 8192 tokens"}}"#;
        assert_eq!(
            status_error("azure", 400, &HeaderMap::new(), overflow, &cx, None, true).kind(),
            ErrorKind::ContextOverflow
        );
    }

    /// Regression (found by `tests/fuzz_inputs.rs`): a type or code that holds the key was shown.
    #[test]
    fn names_holding_the_key_are_left_out() {
        let pe = ProviderError::from_body(br#"{"error": {"type": "invalid_request_error", "code": "sk-SECRET-123"}}"#);
        let key = Secret::new("sk-SECRET-123".to_owned());
        assert_eq!(pe.detail(None, Some(&key), true), " (`invalid_request_error`)");
        assert_eq!(pe.detail(None, None, true), " (`invalid_request_error`, `sk-SECRET-123`)");
    }
}
