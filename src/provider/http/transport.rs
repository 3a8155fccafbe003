//! One adapter's HTTP side: the client, the endpoint and the limits; sending a request before its
//! deadlines and reading a bounded body.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use tokio::time::Instant;

use super::builder::{Secret, redact_url};
use super::errors::status_error;
use crate::catalog::ModelProfile;
use crate::error::{Error, ErrorKind, Result};
use crate::request::Request;

/// How much of an error body is read to find the provider's error type and message.
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// One adapter's HTTP side: the client, the endpoint, the headers and the limits.
pub(crate) struct Transport {
    pub(crate) name: Arc<str>,
    pub(super) client: reqwest::Client,
    pub(super) endpoint: reqwest::Url,
    pub(super) headers: HeaderMap,
    pub(super) connect_timeout: Duration,
    pub(super) first_byte_timeout: Duration,
    pub(super) total_timeout: Duration,
    pub(super) max_response_bytes: usize,
    pub(super) max_event_bytes: usize,
    pub(super) api_key: Option<Secret>,
    /// Whether a 4xx `content_filter` body is [`ErrorKind::ContentFilter`] (Azure).
    pub(super) content_filter_errors: bool,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The endpoint without credentials or query, and header names only: values may be credentials.
        f.debug_struct("Transport")
            .field("endpoint", &redact_url(self.endpoint.as_str()))
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("connect_timeout", &self.connect_timeout)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_event_bytes", &self.max_event_bytes)
            .field("content_filter_errors", &self.content_filter_errors)
            .finish()
    }
}

/// An adapter's own reading of an error response: the status, the headers and the start of the body
/// to an error, or `None` for the shared mapping.
pub(crate) type MapError<'a> = dyn Fn(u16, &HeaderMap, &[u8]) -> Option<Error> + Sync + 'a;

/// When a call must have its first byte and its end.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadlines {
    start: Instant,
    pub(super) first_byte: Instant,
    pub(super) total: Instant,
}

impl Deadlines {
    pub(super) fn first(&self) -> Instant {
        self.first_byte.min(self.total)
    }
}

/// What a call is about, for error messages.
#[derive(Clone)]
pub(crate) struct CallContext<'a> {
    pub(crate) model: &'a ModelProfile,
    pub(crate) request: &'a Request,
}

impl Transport {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    fn deadlines(&self) -> Deadlines {
        let start = Instant::now();
        // `Duration::MAX` means no limit: a far future instead of an overflow.
        let after =
            |d: Duration| start.checked_add(d).unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 86_400));
        Deadlines { start, first_byte: after(self.first_byte_timeout), total: after(self.total_timeout) }
    }

    /// The endpoint built from the base URL (adapters whose URL names the model extend it per call).
    #[cfg_attr(
        not(any(feature = "azure", feature = "bedrock")),
        allow(dead_code, reason = "only the Azure and Bedrock adapters read the endpoint whole")
    )]
    pub(crate) fn endpoint(&self) -> &reqwest::Url {
        &self.endpoint
    }

    /// The largest stream event this adapter accepts, in bytes.
    #[cfg(feature = "bedrock")]
    pub(crate) fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// The endpoint with `segments` appended to its path (each percent-encoded as a segment).
    #[cfg(any(feature = "gemini", feature = "azure"))]
    pub(crate) fn endpoint_with(&self, segments: &[&str]) -> Result<reqwest::Url> {
        let mut url = self.endpoint.clone();
        // The builder accepts http(s) URLs with a host only, which always have a path to extend.
        url.path_segments_mut()
            .map_err(|()| Error::config(format!("provider `{}` has no URL path to extend", self.name)))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// POSTs a JSON body and returns the successful response, or the error its status maps to.
    #[cfg_attr(
        not(any(feature = "openai", feature = "anthropic")),
        allow(dead_code, reason = "the Gemini and Bedrock adapters post to a URL per model")
    )]
    pub(crate) async fn post(
        &self,
        body: Vec<u8>,
        stream: bool,
        cx: &CallContext<'_>,
    ) -> Result<(reqwest::Response, Deadlines)> {
        self.post_to(self.endpoint.clone(), body, stream, cx).await
    }

    /// [`post`](Self::post) to another URL than the endpoint (one that names the model).
    pub(crate) async fn post_to(
        &self,
        url: reqwest::Url,
        body: Vec<u8>,
        stream: bool,
        cx: &CallContext<'_>,
    ) -> Result<(reqwest::Response, Deadlines)> {
        self.post_with(url, body, stream, HeaderMap::new(), cx, &|_, _, _| None).await
    }

    /// [`post_to`](Self::post_to) with headers of this call (a request signature; they replace the
    /// adapter's own and `accept`), and the adapter's own reading of error responses: `map_error` gets
    /// the status, the headers and the start of the body, and returns `None` to fall back to the
    /// shared mapping.
    pub(crate) async fn post_with(
        &self,
        url: reqwest::Url,
        body: Vec<u8>,
        stream: bool,
        call_headers: HeaderMap,
        cx: &CallContext<'_>,
        map_error: &MapError<'_>,
    ) -> Result<(reqwest::Response, Deadlines)> {
        let deadlines = self.deadlines();
        let accept = if stream { "text/event-stream" } else { "application/json" };
        let request = self
            .client
            .post(url)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
            .headers(call_headers)
            .body(body)
            .send();
        tracing::debug!(provider = %self.name, model = cx.model.api_name(), stream, "sending request");
        let mut response = match tokio::time::timeout_at(deadlines.first(), request).await {
            Err(_) => return Err(self.timeout_error(&deadlines, true)),
            Ok(Err(e)) => return Err(self.transport_error(e, "sending the request")),
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        tracing::debug!(
            provider = %self.name,
            model = cx.model.api_name(),
            status,
            elapsed_ms = deadlines.start.elapsed().as_millis() as u64,
            "response headers"
        );
        if response.status().is_success() {
            return Ok((response, deadlines));
        }
        let limit = self.max_response_bytes.min(MAX_ERROR_BODY_BYTES);
        let body = self.read_body(&mut response, limit, deadlines.total, true).await.unwrap_or_default();
        if let Some(e) = map_error(status, response.headers(), &body) {
            return Err(e.with_status(status));
        }
        Err(status_error(
            &self.name,
            status,
            response.headers(),
            &body,
            cx,
            self.api_key.as_ref(),
            self.content_filter_errors,
        ))
    }

    /// Reads a whole body, up to the adapter's limit, before the total deadline.
    pub(crate) async fn read_json_body(
        &self,
        response: &mut reqwest::Response,
        deadlines: &Deadlines,
    ) -> Result<Vec<u8>> {
        self.read_body(response, self.max_response_bytes, deadlines.total, false).await
    }

    /// Reads a body in chunks. Past `limit`, `truncate` keeps what was read; otherwise the body is
    /// rejected with a decode error.
    async fn read_body(
        &self,
        response: &mut reqwest::Response,
        limit: usize,
        deadline: Instant,
        truncate: bool,
    ) -> Result<Vec<u8>> {
        let too_large = || Error::decode(format!("the response of provider `{}` exceeds {limit} bytes", self.name));
        let declared =
            response.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if !truncate && declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        // Grown as bytes arrive: a declared length reserves at most 64 KiB up front.
        let mut body = Vec::with_capacity(declared.map_or(8 << 10, |n| n.min(limit as u64).min(64 << 10) as usize));
        loop {
            match tokio::time::timeout_at(deadline, response.chunk()).await {
                Err(_) => {
                    return Err(Error::timeout(format!(
                        "provider `{}` did not finish its answer within {} ms",
                        self.name,
                        self.total_timeout.as_millis()
                    )));
                }
                Ok(Err(e)) => return Err(self.transport_error(e, "reading the response")),
                Ok(Ok(None)) => return Ok(body),
                Ok(Ok(Some(chunk))) => {
                    if body.len() + chunk.len() > limit {
                        if truncate {
                            body.extend_from_slice(&chunk[..limit - body.len()]);
                            return Ok(body);
                        }
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
    }

    fn timeout_error(&self, deadlines: &Deadlines, first: bool) -> Error {
        if first && deadlines.first_byte <= deadlines.total {
            Error::timeout(format!(
                "provider `{}` sent no first byte within {} ms",
                self.name,
                self.first_byte_timeout.as_millis()
            ))
        } else {
            Error::timeout(format!(
                "provider `{}` did not finish its answer within {} ms",
                self.name,
                self.total_timeout.as_millis()
            ))
        }
    }

    fn transport_error(&self, e: reqwest::Error, doing: &str) -> Error {
        let name = &self.name;
        let error = if e.is_connect() && e.is_timeout() {
            Error::timeout(format!(
                "cannot connect to provider `{name}` within {} ms",
                self.connect_timeout.as_millis()
            ))
        } else if e.is_timeout() {
            Error::timeout(format!("provider `{name}` timed out while {doing}"))
        } else if e.is_connect() {
            Error::new(ErrorKind::Connection, format!("cannot connect to provider `{name}`"))
        } else if e.is_body() || e.is_decode() {
            Error::decode(format!("the response of provider `{name}` was cut while {doing}"))
        } else {
            Error::new(ErrorKind::Connection, format!("the connection to provider `{name}` failed while {doing}"))
        };
        error.with_source(e.without_url())
    }
}
