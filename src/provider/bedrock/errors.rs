//! Bedrock's errors: the exception type from the `x-amzn-ErrorType` header, the body's `__type`, or
//! an event stream's `:exception-type`, mapped to an [`ErrorKind`].

use std::time::Duration;

use reqwest::header::HeaderMap;

use super::credentials::Credentials;
use crate::error::{Error, ErrorKind};
use crate::provider::http::{CallContext, ProviderError, Secret, quotes_key, retry_after, status_error};

/// The exception name without the namespace (`com.amazon.coral.service#ExpiredTokenException`) or
/// the URL Bedrock appends in its header (`ValidationException:http://internal.amazon.com/...`).
fn short_type(raw: &str) -> &str {
    let raw = raw.trim();
    let raw = raw.split(':').next().unwrap_or(raw);
    raw.rsplit('#').next().unwrap_or(raw)
}

/// The exception type and message of an error response.
fn read(headers: &HeaderMap, body: &[u8]) -> (Option<String>, Option<String>) {
    let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |key: &str| value.as_ref().and_then(|v| v.get(key)).and_then(serde_json::Value::as_str);
    let header = headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok());
    let kind = header.or_else(|| field("__type")).or_else(|| field("code")).map(short_type).filter(|t| !t.is_empty());
    let message = field("message").or_else(|| field("Message"));
    (kind.map(str::to_owned), message.map(str::to_owned))
}

/// What the prompt is too long sounds like in Bedrock's `ValidationException`s ("Input is too long
/// for requested model", "too many input tokens", Anthropic's "prompt is too long" passed on), on
/// top of the shared phrases.
fn is_overflow(pe: &ProviderError) -> bool {
    if pe.is_context_overflow() {
        return true;
    }
    let Some(m) = pe.message.as_deref().map(str::to_ascii_lowercase) else { return false };
    ["input is too long", "too many input tokens", "input too long", "exceeds the context", "max input tokens"]
        .iter()
        .any(|needle| m.contains(needle))
}

/// The kind an exception type stands for, or `None` for a type this adapter does not know.
fn kind_of(kind: &str, pe: &ProviderError) -> Option<ErrorKind> {
    let lower = kind.to_ascii_lowercase();
    let lower = lower.strip_suffix("exception").unwrap_or(&lower);
    Some(match lower {
        "validation" if is_overflow(pe) => ErrorKind::ContextOverflow,
        "validation" | "serialization" | "badrequest" => ErrorKind::BadRequest,
        "accessdenied"
        | "unrecognizedclient"
        | "expiredtoken"
        | "expired"
        | "invalidsignature"
        | "incompletesignature"
        | "missingauthenticationtoken"
        | "invalidclienttokenid"
        | "signaturedoesnotmatch"
        | "notauthorized" => ErrorKind::Auth,
        "resourcenotfound" => ErrorKind::ModelNotFound,
        "throttling" | "servicequotaexceeded" | "toomanyrequests" => ErrorKind::RateLimited,
        "modeltimeout" | "requesttimeout" => ErrorKind::Timeout,
        "modelnotready" | "serviceunavailable" | "internalserver" | "internalfailure" | "modelerror"
        | "modelstreamerror" | "servicefailure" => ErrorKind::Server,
        _ => return None,
    })
}

/// Whether `text` holds any 8 characters of one of `secrets` (or a short one whole).
fn quotes_secret(text: &str, secrets: &[&Secret]) -> bool {
    secrets.iter().any(|&s| quotes_key(text, Some(s)))
}

/// An error of `kind` for the exception `type_name`, with `detail` appended; `model` is the model's
/// `api_name` when there is a request at hand.
fn build(
    name: &str,
    kind: ErrorKind,
    type_name: &str,
    detail: &str,
    wait: Option<Duration>,
    model: Option<&str>,
) -> Error {
    match kind {
        ErrorKind::Auth => Error::new(kind, format!("provider `{name}` rejected the credentials{detail}")),
        ErrorKind::ModelNotFound => match model {
            Some(model) => Error::new(kind, format!("provider `{name}` does not know model `{model}`{detail}")),
            None => Error::new(kind, format!("provider `{name}` does not know the model{detail}")),
        },
        ErrorKind::RateLimited => {
            Error::rate_limited(format!("provider `{name}` is rate limiting this caller{detail}"), wait)
        }
        ErrorKind::Timeout => Error::timeout(format!("provider `{name}` timed out{detail}")),
        ErrorKind::ContextOverflow => Error::context_overflow(format!(
            "the prompt does not fit the model's context window at provider `{name}`{detail}"
        )),
        ErrorKind::Server if type_name.to_ascii_lowercase().starts_with("modelnotready") => {
            Error::server(format!("provider `{name}` says the model is not ready{detail}")).with_retry_after(wait)
        }
        ErrorKind::Server => Error::server(format!("provider `{name}` failed{detail}")).with_retry_after(wait),
        _ => Error::new(kind, format!("provider `{name}` rejected the request{detail}")),
    }
}

/// Maps an error response by its exception type; `None` (an unknown type, or none) leaves it to the
/// shared mapping by status, unless the body quotes a credential: the shared mapping checks
/// messages against an API key only, so such a body is mapped by its status alone, unread.
pub(super) fn http_error(
    name: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    cx: &CallContext<'_>,
    credentials: &Credentials,
) -> Option<Error> {
    let (kind, message) = read(headers, body);
    let secrets: Vec<&Secret> = credentials.secrets().collect();
    // The shared mapping by status, for a body it may read only when no credential is in it.
    let by_status = || {
        let quoted = quotes_secret(&String::from_utf8_lossy(body), &secrets);
        quoted.then(|| status_error(name, status, headers, &[], cx, None, false))
    };
    let Some(type_name) = kind else { return by_status() };
    // A message that quotes a credential is dropped before anything reads it.
    let message = message.filter(|m| !quotes_secret(m, &secrets));
    let pe = ProviderError { kind: Some(type_name.clone()), message, ..ProviderError::default() };
    let Some(kind) = kind_of(&type_name, &pe) else { return by_status() };
    // Auth messages can quote the canonical request (and a session token in it): never shown.
    let detail = pe.detail(Some(cx), Some(&credentials.secret_access_key), kind != ErrorKind::Auth);
    Some(build(name, kind, &type_name, &detail, retry_after(headers), Some(cx.model.api_name())))
}

/// An exception inside an event stream (`:message-type: exception`, `:exception-type`), or an
/// `error` message (`:error-code`). The message is not shown: there is no request at hand to check
/// it against.
pub(super) fn stream_error(name: &str, type_name: &str, payload: &[u8]) -> Error {
    let type_name = short_type(type_name);
    let message = serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v.get("message").or_else(|| v.get("Message")).and_then(|m| m.as_str().map(str::to_owned)));
    let pe = ProviderError { kind: Some(type_name.to_owned()), message, ..ProviderError::default() };
    let kind = kind_of(type_name, &pe).unwrap_or(ErrorKind::Server);
    build(name, kind, type_name, &pe.detail(None, None, false), None, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ModelProfile;
    use crate::request::Request;
    use reqwest::header::HeaderValue;

    fn map(header: Option<&str>, body: &str) -> Option<Error> {
        let mut headers = HeaderMap::new();
        if let Some(h) = header {
            headers.insert("x-amzn-ErrorType", HeaderValue::from_str(h).unwrap());
        }
        let model = ModelProfile::new("m", "bedrock").with_api_name("anthropic.claude-3-haiku-20240307-v1:0");
        let request = Request::new("hello there");
        let cx = CallContext { model: &model, request: &request };
        let credentials =
            Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", Some("TOKEN-abcdefgh"));
        http_error("bedrock", 400, &headers, body.as_bytes(), &cx, &credentials)
    }

    #[test]
    fn a_body_of_unknown_type_that_quotes_a_credential_is_mapped_by_status_unread() {
        // A known-looking body without a type, and one of a type this adapter does not know.
        for (header, body) in [
            (None, r#"{"message": "bad request signed with AKIDEXAMPLE"}"#),
            (Some("SomeNewException"), r#"{"message": "token TOKEN-abcdefgh expired"}"#),
            (Some("SomeNewException"), r#"{"detail": "key wJalrXUtnFEMI/K7MDENG"}"#),
        ] {
            let e = map(header, body).expect("mapped here, not left to the shared mapping");
            let text = format!("{e} {e:?}");
            for secret in ["AKIDEXAMPLE", "TOKEN-abcdefgh", "wJalrXUt"] {
                assert!(!text.contains(secret), "{text}");
            }
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{text}");
        }
        // Without a credential in it, an unknown type is still left to the shared mapping.
        assert!(map(Some("SomeNewException"), r#"{"message": "something odd"}"#).is_none());
        assert!(map(None, r#"{"message": "something odd"}"#).is_none());
    }

    #[test]
    fn exception_types_map_to_kinds() {
        for (header, body, kind) in [
            (
                Some("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
                r#"{"message":"Malformed input request"}"#,
                ErrorKind::BadRequest,
            ),
            (
                Some("ValidationException"),
                r#"{"message":"Input is too long for requested model."}"#,
                ErrorKind::ContextOverflow,
            ),
            (
                None,
                r#"{"__type":"ValidationException","message":"Too many input tokens. Max input tokens: 8192, request input token count: 9000"}"#,
                ErrorKind::ContextOverflow,
            ),
            (
                None,
                r#"{"__type":"com.amazon.coral.service#ExpiredTokenException","message":"The security token included in the request is expired"}"#,
                ErrorKind::Auth,
            ),
            (
                Some("AccessDeniedException"),
                r#"{"message":"You don't have access to the model with the specified model ID."}"#,
                ErrorKind::Auth,
            ),
            (
                Some("UnrecognizedClientException"),
                r#"{"message":"The security token included in the request is invalid."}"#,
                ErrorKind::Auth,
            ),
            (
                Some("ResourceNotFoundException"),
                r#"{"message":"Could not resolve the foundation model"}"#,
                ErrorKind::ModelNotFound,
            ),
            (
                Some("ThrottlingException"),
                r#"{"message":"Too many requests, please wait before trying again."}"#,
                ErrorKind::RateLimited,
            ),
            (Some("ServiceQuotaExceededException"), r#"{"message":"quota"}"#, ErrorKind::RateLimited),
            (Some("ModelNotReadyException"), r#"{"message":"not ready"}"#, ErrorKind::Server),
            (Some("ServiceUnavailableException"), r#"{"message":"unavailable"}"#, ErrorKind::Server),
            (Some("InternalServerException"), r#"{}"#, ErrorKind::Server),
            (Some("ModelErrorException"), r#"{}"#, ErrorKind::Server),
            (Some("ModelTimeoutException"), r#"{}"#, ErrorKind::Timeout),
        ] {
            let e = map(header, body).unwrap_or_else(|| panic!("{header:?} {body}"));
            assert_eq!(e.kind(), kind, "{header:?} {body}: {e}");
        }
        assert!(map(Some("SomethingNew"), "{}").is_none());
        assert!(map(None, "<html>").is_none());
    }

    #[test]
    fn messages_are_shown_unless_they_quote_secrets_or_concern_auth() {
        let e = map(Some("ValidationException"), r#"{"message":"Malformed input request"}"#).unwrap();
        assert!(e.to_string().contains("`ValidationException`: Malformed input request"), "{e}");
        let e = map(Some("ValidationException"), r#"{"message":"bad key wJalrXUtnFEMI/K7"}"#).unwrap();
        assert!(!e.to_string().contains("wJalr"), "{e}");
        let e = map(Some("ValidationException"), r#"{"message":"token TOKEN-abcdefgh is odd"}"#).unwrap();
        assert!(!e.to_string().contains("TOKEN"), "{e}");
        let e = map(Some("InvalidSignatureException"), r#"{"message":"The Canonical String for this request should have been 'POST /model x-amz-security-token:TOKEN'"}"#).unwrap();
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(!e.to_string().contains("Canonical"), "{e}");
        let e = map(Some("ResourceNotFoundException"), "{}").unwrap();
        assert!(e.to_string().contains("anthropic.claude-3-haiku-20240307-v1:0"), "{e}");
    }

    #[test]
    fn stream_exceptions() {
        for (t, kind) in [
            ("throttlingException", ErrorKind::RateLimited),
            ("validationException", ErrorKind::BadRequest),
            ("modelStreamErrorException", ErrorKind::Server),
            ("internalServerException", ErrorKind::Server),
            ("serviceUnavailableException", ErrorKind::Server),
            ("unknownThing", ErrorKind::Server),
        ] {
            assert_eq!(stream_error("bedrock", t, br#"{"message":"x"}"#).kind(), kind, "{t}");
        }
        let e =
            stream_error("bedrock", "validationException", br#"{"message":"Input is too long for requested model."}"#);
        assert_eq!(e.kind(), ErrorKind::ContextOverflow);
    }
}
