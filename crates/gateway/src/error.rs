//! Errors as HTTP responses: OpenAI's error body, the status of the error's kind, and `Retry-After`
//! when the wait is known.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use switchyard::ErrorKind;
use switchyard::wire::openai::ErrorBody;

/// An error on its way to the client.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    /// Headers beyond the body, when there are any (boxed: most errors have none).
    headers: Option<Box<Headers>>,
}

/// `Retry-After` when the wait is known, and, for a caller refused at its rate limit, where it
/// stands (`x-ratelimit-*`).
#[derive(Debug, Default)]
struct Headers {
    retry_after: Option<Duration>,
    caller_limits: Option<switchyard::limits::CallerLimits>,
}

impl ApiError {
    /// An error of the gateway's own (authentication, size, an unknown model), with its status.
    pub(crate) fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { status, body: ErrorBody::new(kind, message), headers: None }
    }

    pub(crate) fn with_code(mut self, code: &str) -> Self {
        self.body = self.body.with_code(code);
        self
    }

    pub(crate) fn with_param(mut self, param: &str) -> Self {
        self.body = self.body.with_param(param);
        self
    }

    pub(crate) fn with_retry_after(mut self, wait: Duration) -> Self {
        self.headers.get_or_insert_default().retry_after = Some(wait);
        self
    }

    pub(crate) fn unauthorized() -> Self {
        // OpenAI's shape for a bad key: 401, invalid_request_error, code invalid_api_key.
        let mut e = Self::new(StatusCode::UNAUTHORIZED, ErrorKind::Auth, "missing or invalid API key");
        e.body.error.kind = "invalid_request_error".to_owned();
        e.with_code("invalid_api_key")
    }

    pub(crate) fn model_not_found(model: &str) -> Self {
        // The name is the client's text: bounded before it is echoed.
        let shown: String = model.chars().take(128).collect();
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorKind::InvalidRequest,
            format!("The model `{shown}` does not exist: use `auto` or a name from /v1/models"),
        )
        .with_code("model_not_found")
        .with_param("model")
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn body(&self) -> &ErrorBody {
        &self.body
    }
}

impl From<switchyard::Error> for ApiError {
    fn from(e: switchyard::Error) -> Self {
        let status = StatusCode::from_u16(e.kind().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (retry_after, caller_limits) = (e.retry_after(), e.caller_limits());
        let headers = (retry_after.is_some() || caller_limits.is_some())
            .then(|| Box::new(Headers { retry_after, caller_limits }));
        Self { status, body: ErrorBody::from_error(&e), headers }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        let Headers { retry_after, caller_limits } = self.headers.map(|h| *h).unwrap_or_default();
        if let Some(wait) = retry_after {
            // Whole seconds, rounded up: a client that waits that long has waited long enough.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        crate::handlers::rate_limit_headers(response.headers_mut(), caller_limits);
        response
    }
}
