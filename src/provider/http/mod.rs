//! The HTTP plumbing shared by the adapters: the key, the builder settings, one `reqwest::Client` per
//! adapter, deadlines, bounded body reads, the mapping of statuses and provider error bodies to
//! [`ErrorKind`]s, and the stream that turns server-sent events into [`StreamEvent`]s.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize as _;
use tokio::time::Instant;

use crate::catalog::{ModelId, ModelProfile};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::sse::{SseEvent, SseParser};
use crate::request::Request;
use crate::response::{EventStream, StreamEvent};

/// An API key. Its `Debug` never shows it, and the header that carries it is marked sensitive.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(key: String) -> Self {
        Self(key)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// The key as a sensitive header value, `prefix` first (`"Bearer "`).
    fn header_value(&self, prefix: &str) -> Result<HeaderValue> {
        let mut v = HeaderValue::try_from(format!("{prefix}{}", self.0))
            .map_err(|_| Error::config("the API key contains characters an HTTP header cannot carry"))?;
        v.set_sensitive(true);
        Ok(v)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How the key is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyHeader {
    /// `Authorization: Bearer <key>`.
    #[cfg_attr(not(feature = "openai"), allow(dead_code, reason = "only the OpenAI adapter sends bearer keys"))]
    Bearer,
    /// The key as-is in this header (`x-api-key`, Azure's `api-key`).
    Raw(HeaderName),
}

/// Default connect timeout.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default wait for the response headers (and, for streams, the first event).
pub(crate) const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default limit on a whole call, streamed or not.
pub(crate) const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(600);
/// Default limit on a response body.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 << 20;
/// Default limit on one server-sent event.
pub(crate) const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;
/// How much of an error body is read to find the provider's error type and message.
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;
/// The longest provider error message kept in an error.
const MAX_PROVIDER_MESSAGE_CHARS: usize = 200;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The settings every adapter builder shares. Errors from setters wait in `error` until `build`.
pub(crate) struct CommonBuilder {
    pub(crate) name: String,
    pub(crate) base_url: String,
    pub(crate) api_key: Option<Secret>,
    pub(crate) key_header: KeyHeader,
    pub(crate) headers: HeaderMap,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) connect_timeout: Duration,
    pub(crate) first_byte_timeout: Duration,
    pub(crate) total_timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) client: Option<reqwest::Client>,
    pub(crate) error: Option<Error>,
}

impl fmt::Debug for CommonBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("connect_timeout", &self.connect_timeout)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("total_timeout", &self.total_timeout)
            .finish_non_exhaustive()
    }
}

impl CommonBuilder {
    pub(crate) fn new(name: String, base_url: &str, key_header: KeyHeader) -> Self {
        Self {
            name,
            base_url: base_url.to_owned(),
            api_key: None,
            key_header,
            headers: HeaderMap::new(),
            query: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            total_timeout: DEFAULT_TOTAL_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            client: None,
            error: None,
        }
    }

    fn fail(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    pub(crate) fn header(&mut self, name: &str, value: &str) {
        let name = match HeaderName::try_from(name) {
            Ok(n) => n,
            Err(_) => return self.fail(Error::config(format!("`{name}` is not a valid HTTP header name"))),
        };
        match HeaderValue::try_from(value) {
            Ok(mut v) => {
                // Extra headers often carry credentials (an organisation id, a gateway token).
                v.set_sensitive(true);
                self.headers.append(name, v);
            }
            Err(_) => {
                self.fail(Error::config(format!("the value of header `{name}` is not a valid HTTP header value")))
            }
        }
    }

    #[cfg_attr(not(feature = "openai"), allow(dead_code, reason = "only the OpenAI adapter lets callers choose"))]
    pub(crate) fn key_header(&mut self, name: &str) {
        match HeaderName::try_from(name) {
            Ok(n) => self.key_header = KeyHeader::Raw(n),
            Err(_) => self.fail(Error::config(format!("`{name}` is not a valid HTTP header name"))),
        }
    }

    /// Checks the settings and builds the client and the endpoint `base_url` + `path`.
    pub(crate) fn build(self, path: &str) -> Result<Transport> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.name.is_empty() {
            return Err(Error::config("a provider name must not be empty"));
        }
        for (what, d) in [
            ("connect_timeout", self.connect_timeout),
            ("first_byte_timeout", self.first_byte_timeout),
            ("timeout", self.total_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::config(format!("provider `{}`: `{what}` must be greater than zero", self.name)));
            }
        }
        if self.max_response_bytes == 0 || self.max_event_bytes == 0 {
            return Err(Error::config(format!("provider `{}`: size limits must be greater than zero", self.name)));
        }
        let base = self.base_url.trim_end_matches('/');
        // Messages show the URL without credentials a user may have put in it.
        let shown = redact_url(base);
        let mut endpoint = reqwest::Url::parse(&format!("{base}{path}"))
            .map_err(|e| Error::config(format!("provider `{}`: base URL `{shown}` is invalid: {e}", self.name)))?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(Error::config(format!("provider `{}`: base URL `{shown}` must be http or https", self.name)));
        }
        if !self.query.is_empty() {
            let mut pairs = endpoint.query_pairs_mut();
            for (k, v) in &self.query {
                pairs.append_pair(k, v);
            }
        }
        let mut headers = self.headers;
        if let Some(key) = &self.api_key {
            match &self.key_header {
                KeyHeader::Bearer => headers.insert(reqwest::header::AUTHORIZATION, key.header_value("Bearer ")?),
                KeyHeader::Raw(name) => headers.insert(name.clone(), key.header_value("")?),
            };
        }
        let client = match self.client {
            Some(c) => c,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                // Configuration is explicit: no proxy from the environment. Pass a client of your own
                // (`http_client`) to use one.
                .no_proxy()
                // A redirect would carry the key headers (and, for 307/308, the prompt) to wherever
                // it points; providers do not redirect API calls, so a 3xx is an error instead.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| Error::config("cannot build the HTTP client").with_source(e))?,
        };
        Ok(Transport {
            name: Arc::from(self.name),
            client,
            endpoint,
            headers,
            connect_timeout: self.connect_timeout,
            first_byte_timeout: self.first_byte_timeout,
            total_timeout: self.total_timeout,
            max_response_bytes: self.max_response_bytes,
            max_event_bytes: self.max_event_bytes,
            api_key: self.api_key,
        })
    }
}

/// One adapter's HTTP side: the client, the endpoint, the headers and the limits.
pub(crate) struct Transport {
    pub(crate) name: Arc<str>,
    client: reqwest::Client,
    endpoint: reqwest::Url,
    headers: HeaderMap,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    total_timeout: Duration,
    max_response_bytes: usize,
    max_event_bytes: usize,
    api_key: Option<Secret>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The endpoint without its query, and header names only: values may be credentials.
        let mut endpoint = self.endpoint.clone();
        endpoint.set_query(None);
        let _ = endpoint.set_username("");
        let _ = endpoint.set_password(None);
        f.debug_struct("Transport")
            .field("endpoint", &endpoint.as_str())
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("connect_timeout", &self.connect_timeout)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_event_bytes", &self.max_event_bytes)
            .finish()
    }
}

/// When a call must have its first byte and its end.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadlines {
    start: Instant,
    first_byte: Instant,
    total: Instant,
}

impl Deadlines {
    fn first(&self) -> Instant {
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

    /// POSTs a JSON body and returns the successful response, or the error its status maps to.
    pub(crate) async fn post(
        &self,
        body: Vec<u8>,
        stream: bool,
        cx: &CallContext<'_>,
    ) -> Result<(reqwest::Response, Deadlines)> {
        let deadlines = self.deadlines();
        let accept = if stream { "text/event-stream" } else { "application/json" };
        let request = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, accept)
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
        Err(status_error(&self.name, status, response.headers(), &body, cx, self.api_key.as_ref()))
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

    /// Opens a server-sent event stream over a successful response. The first event is awaited here,
    /// so an error the provider sends before any content (an overload, a rate limit) is returned as the
    /// `Err` of this call rather than as a stream item.
    pub(crate) async fn event_stream<D: SseDecoder>(
        &self,
        response: reqwest::Response,
        deadlines: Deadlines,
        model: ModelId,
        decoder: D,
    ) -> Result<EventStream> {
        let mut pump = Box::new(Pump {
            name: self.name.clone(),
            model,
            response,
            parser: SseParser::new(self.max_event_bytes),
            decoder,
            sse: VecDeque::new(),
            out: VecDeque::new(),
            deadlines,
            first_byte_timeout: self.first_byte_timeout,
            total_timeout: self.total_timeout,
            got_first: false,
            bytes: 0,
            max_bytes: self.max_response_bytes,
            done: false,
        });
        match pump.next().await {
            Some(Err(e)) => Err(e),
            Some(Ok(first)) => {
                pump.out.push_front(Ok(first));
                Ok(Box::pin(SseStream { pump: Some(pump), pending: None }))
            }
            None => Ok(Box::pin(SseStream::<D> { pump: None, pending: None })),
        }
    }
}

/// Turns a provider's server-sent events into stream events.
pub(crate) trait SseDecoder: Send + 'static {
    /// Handles one event, appending what it yields to `out`. Returns `Ok(true)` once the provider has
    /// said the stream is complete; an `Err` ends the stream with that error.
    fn event(&mut self, event: SseEvent, out: &mut VecDeque<Result<StreamEvent>>) -> Result<bool>;

    /// What marks the end of a complete stream (`[DONE]`, `message_stop`), for the cut-stream error.
    fn terminator(&self) -> &'static str;
}

/// The state of an open stream: the body, the parser, the decoder and what is ready to yield.
struct Pump<D> {
    name: Arc<str>,
    model: ModelId,
    response: reqwest::Response,
    parser: SseParser,
    decoder: D,
    sse: VecDeque<SseEvent>,
    out: VecDeque<Result<StreamEvent>>,
    deadlines: Deadlines,
    first_byte_timeout: Duration,
    total_timeout: Duration,
    got_first: bool,
    bytes: usize,
    max_bytes: usize,
    done: bool,
}

enum Step {
    Ready(Option<Result<StreamEvent>>),
    NeedBytes,
}

impl<D: SseDecoder> Pump<D> {
    /// Yields what can be yielded without I/O.
    fn step(&mut self) -> Step {
        loop {
            if let Some(item) = self.out.pop_front() {
                match &item {
                    Ok(_) => self.got_first = true,
                    Err(_) => {
                        self.done = true;
                        self.out.clear();
                    }
                }
                return Step::Ready(Some(item.map_err(|e| self.attach(e))));
            }
            if self.done {
                return Step::Ready(None);
            }
            let Some(event) = self.sse.pop_front() else { return Step::NeedBytes };
            match self.decoder.event(event, &mut self.out) {
                Ok(false) => {}
                Ok(true) => {
                    self.done = true;
                    self.sse.clear();
                }
                Err(e) => self.out.push_back(Err(e)),
            }
        }
    }

    fn attach(&self, e: Error) -> Error {
        if e.model().is_some() { e } else { e.with_model(self.model.clone()) }
    }

    fn fail(&mut self, e: Error) -> Option<Result<StreamEvent>> {
        self.done = true;
        self.out.clear();
        self.sse.clear();
        Some(Err(self.attach(e)))
    }

    async fn next(&mut self) -> Option<Result<StreamEvent>> {
        loop {
            if let Step::Ready(item) = self.step() {
                return item;
            }
            let first = !self.got_first;
            let deadline = if first { self.deadlines.first() } else { self.deadlines.total };
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => {
                    let e = if first && self.deadlines.first_byte <= self.deadlines.total {
                        Error::timeout(format!(
                            "provider `{}` sent no stream event within {} ms",
                            self.name,
                            self.first_byte_timeout.as_millis()
                        ))
                    } else {
                        Error::timeout(format!(
                            "provider `{}` did not finish its stream within {} ms",
                            self.name,
                            self.total_timeout.as_millis()
                        ))
                    };
                    return self.fail(e);
                }
                Ok(Err(e)) => {
                    let error = if e.is_timeout() {
                        Error::timeout(format!("the stream of provider `{}` timed out", self.name))
                    } else {
                        Error::decode(format!("the stream of provider `{}` was cut", self.name))
                    };
                    return self.fail(error.with_source(e.without_url()));
                }
                Ok(Ok(None)) => {
                    let terminator = self.decoder.terminator();
                    return self.fail(Error::decode(format!(
                        "the stream of provider `{}` ended before `{terminator}`",
                        self.name
                    )));
                }
                Ok(Ok(Some(chunk))) => {
                    self.bytes = self.bytes.saturating_add(chunk.len());
                    if self.bytes > self.max_bytes {
                        let max = self.max_bytes;
                        return self.fail(Error::decode(format!(
                            "the stream of provider `{}` exceeds {max} bytes",
                            self.name
                        )));
                    }
                    if let Err(e) = self.parser.push(&chunk, &mut self.sse) {
                        return self.fail(Error::decode(format!("the stream of provider `{}`: {e}", self.name)));
                    }
                }
            }
        }
    }
}

type PumpFuture<D> = Pin<Box<dyn Future<Output = (Option<Result<StreamEvent>>, Box<Pump<D>>)> + Send>>;

/// The stream handed to callers. Dropping it drops the response and closes the connection.
struct SseStream<D> {
    pump: Option<Box<Pump<D>>>,
    pending: Option<PumpFuture<D>>,
}

impl<D: SseDecoder> futures_core::Stream for SseStream<D> {
    type Item = Result<StreamEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            let Some(mut pump) = this.pump.take() else { return Poll::Ready(None) };
            if let Step::Ready(item) = pump.step() {
                if item.is_some() {
                    this.pump = Some(pump);
                }
                return Poll::Ready(item);
            }
            this.pending = Some(Box::pin(async move {
                let item = pump.next().await;
                (item, pump)
            }));
        }
        let Some(pending) = this.pending.as_mut() else { return Poll::Ready(None) };
        match pending.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((item, pump)) => {
                this.pending = None;
                if item.is_some() {
                    this.pump = Some(pump);
                }
                Poll::Ready(item)
            }
        }
    }
}

// ---- Errors ---------------------------------------------------------------------------------------

/// What a provider said about an error: its type, its code and a sanitized message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProviderError {
    pub(crate) kind: Option<String>,
    pub(crate) code: Option<String>,
    /// The provider's message, raw: used to recognise context overflows, and shown only sanitized.
    pub(crate) message: Option<String>,
}

impl ProviderError {
    /// Reads `{"error": {"type", "code", "message"}}` (OpenAI, Anthropic), `{"error": "text"}` (some
    /// OpenAI-compatible servers) or `{"type", "message"}`. Anything else gives an empty value.
    pub(crate) fn from_body(body: &[u8]) -> Self {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return Self::default() };
        match value.get("error") {
            Some(serde_json::Value::String(message)) => Self { message: Some(message.clone()), ..Self::default() },
            Some(obj @ serde_json::Value::Object(_)) => Self::from_object(obj),
            _ => Self::from_object(&value),
        }
    }

    /// Reads the fields of one error object.
    pub(crate) fn from_object(obj: &serde_json::Value) -> Self {
        let text = |key: &str| match obj.get(key) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Self { kind: text("type"), code: text("code"), message: text("message") }
    }

    fn has(&self, name: &str) -> bool {
        self.kind.as_deref() == Some(name) || self.code.as_deref() == Some(name)
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
        ]
        .iter()
        .any(|needle| m.contains(needle))
    }

    /// The kind a provider error type or code stands for, for errors without a telling status
    /// (errors sent inside a stream).
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

    /// `` `type`, `code` `` and, when allowed, the sanitized message, as a parenthesised suffix.
    pub(crate) fn detail(&self, cx: Option<&CallContext<'_>>, key: Option<&Secret>, with_message: bool) -> String {
        let mut names: Vec<&str> = Vec::with_capacity(2);
        for n in [self.kind.as_deref(), self.code.as_deref()].into_iter().flatten() {
            let clean = n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
            if clean && !names.contains(&n) {
                names.push(n);
            }
        }
        let mut out = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        if with_message {
            if let Some(m) = self.message.as_deref().and_then(|m| sanitize(m, cx, key)) {
                if !out.is_empty() {
                    out.push_str(": ");
                }
                out.push_str(&m);
            }
        }
        if out.is_empty() { out } else { format!(" ({out})") }
    }
}

/// A provider message fit for an error: control characters removed, whitespace collapsed, cut to
/// [`MAX_PROVIDER_MESSAGE_CHARS`]; `None` when it quotes the request's text or the key.
pub(crate) fn sanitize(message: &str, cx: Option<&CallContext<'_>>, key: Option<&Secret>) -> Option<String> {
    let mut clean = String::with_capacity(message.len().min(MAX_PROVIDER_MESSAGE_CHARS * 4));
    let mut chars = 0usize;
    for word in message.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()) {
        if chars >= MAX_PROVIDER_MESSAGE_CHARS {
            clean.push('…');
            break;
        }
        if !clean.is_empty() {
            clean.push(' ');
            chars += 1;
        }
        for c in word.chars().filter(|c| !c.is_control()) {
            if chars >= MAX_PROVIDER_MESSAGE_CHARS {
                break;
            }
            clean.push(c);
            chars += 1;
        }
    }
    let clean = clean.trim_end_matches(['.', ' ']).to_owned();
    if clean.is_empty() {
        return None;
    }
    // The key, or any 8 characters of it.
    if let Some(key) = key.map(Secret::expose).filter(|k| !k.is_empty()) {
        let bytes = key.as_bytes();
        if bytes.len() < 8 {
            if message.contains(key) {
                return None;
            }
        } else if bytes.windows(8).any(|w| std::str::from_utf8(w).is_ok_and(|w| message.contains(w))) {
            return None;
        }
    }
    // Prompt text: a short text quoted whole, or any run of 24 characters of what is shown found in a
    // text. Texts are compared as the message was cleaned: control characters dropped, whitespace
    // collapsed.
    if let Some(cx) = cx {
        let texts: Vec<String> = cx
            .request
            .messages
            .iter()
            .flat_map(|m| m.texts().chain(m.tool_calls.iter().map(|c| c.arguments.as_str())))
            .map(|t| {
                t.split(|c: char| c.is_whitespace() || c.is_control())
                    .filter(|w| !w.is_empty())
                    .map(|w| w.chars().filter(|c| !c.is_control()).collect::<String>())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let short = |t: &String| (4..PROMPT_RUN).contains(&t.chars().count());
        if texts.iter().any(|t| short(t) && clean.contains(t.as_str())) {
            return None;
        }
        // Every run of `PROMPT_RUN` characters of the message, as rolling hashes; then one pass over each
        // text. A hash collision only withholds a message, which is the safe side.
        let mut runs: Vec<u64> = RollingRuns::new(clean.chars()).collect();
        runs.sort_unstable();
        if !runs.is_empty() && texts.iter().any(|t| RollingRuns::new(t.chars()).any(|h| runs.binary_search(&h).is_ok()))
        {
            return None;
        }
    }
    Some(clean)
}

/// The shortest run of prompt characters that withholds a provider message containing it.
const PROMPT_RUN: usize = 24;

/// Polynomial hashes of every window of `PROMPT_RUN` characters of a character sequence, rolling: one
/// step per character.
struct RollingRuns<I> {
    chars: I,
    window: [u32; PROMPT_RUN],
    filled: usize,
    hash: u64,
}

/// The hash base, and its `PROMPT_RUN`-th power (the weight of the character leaving the window).
const BASE: u64 = 0x100_0000_01B3;
const BASE_POW: u64 = {
    let mut p = 1u64;
    let mut i = 0;
    while i < PROMPT_RUN {
        p = p.wrapping_mul(BASE);
        i += 1;
    }
    p
};

impl<I: Iterator<Item = char>> RollingRuns<I> {
    fn new(chars: I) -> Self {
        Self { chars, window: [0; PROMPT_RUN], filled: 0, hash: 0 }
    }
}

impl<I: Iterator<Item = char>> Iterator for RollingRuns<I> {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        loop {
            let c = u32::from(self.chars.next()?);
            let slot = self.filled % PROMPT_RUN;
            let leaving = u64::from(self.window[slot]);
            self.window[slot] = c;
            self.hash = self.hash.wrapping_mul(BASE).wrapping_add(u64::from(c) + 1);
            if self.filled >= PROMPT_RUN {
                self.hash = self.hash.wrapping_sub(BASE_POW.wrapping_mul(leaving + 1));
            }
            self.filled += 1;
            if self.filled >= PROMPT_RUN {
                return Some(self.hash);
            }
        }
    }
}

/// `Retry-After` in seconds or as an HTTP date, or OpenAI's `retry-after-ms`, capped at a day.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let secs =
        |s: f64| (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(MAX_RETRY_AFTER.as_secs_f64())));
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()).and_then(|ms| secs(ms / 1000.0)) {
        return Some(ms);
    }
    let value = header("retry-after")?;
    if let Ok(s) = value.parse::<f64>() {
        return secs(s);
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

/// Maps a non-success status and the provider's error body to an error.
pub(crate) fn status_error(
    name: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    cx: &CallContext<'_>,
    key: Option<&Secret>,
) -> Error {
    let pe = ProviderError::from_body(body);
    let model = cx.model.api_name();
    let detail = |with_message| pe.detail(Some(cx), key, with_message);
    let wait = retry_after(headers);
    let error = match status {
        401 | 403 => {
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
pub(crate) fn reported_error(name: &str, pe: &ProviderError) -> Error {
    // Shown by type and code only: there is no request at hand to check the message against.
    let detail = pe.detail(None, None, false);
    match pe.kind_by_type() {
        ErrorKind::Server if pe.has("overloaded_error") => {
            Error::server(format!("provider `{name}` is overloaded{detail}"))
        }
        ErrorKind::RateLimited => {
            Error::rate_limited(format!("provider `{name}` is rate limiting this caller{detail}"), None)
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

/// The transport setters every adapter builder shares (the builder keeps a `common` field).
macro_rules! transport_setters {
    () => {
        /// The longest wait for a TCP (and TLS) connection. Default 10 s.
        pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.common.connect_timeout = timeout;
            self
        }

        /// The longest wait, from sending, for the response headers and, when streaming, for the first
        /// event that carries something. Default 120 s.
        pub fn first_byte_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.common.first_byte_timeout = timeout;
            self
        }

        /// The longest a whole call may take, from sending to the last byte, streamed or not. Default
        /// 600 s; `Duration::MAX` for no limit.
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.common.total_timeout = timeout;
            self
        }

        /// The largest response body accepted, streamed or not; a larger one fails with
        /// [`ErrorKind::Decode`](crate::ErrorKind::Decode). Default 32 MiB.
        pub fn max_response_bytes(mut self, bytes: usize) -> Self {
            self.common.max_response_bytes = bytes;
            self
        }

        /// The largest server-sent event (or line) accepted in a stream. Default 1 MiB.
        pub fn max_event_bytes(mut self, bytes: usize) -> Self {
            self.common.max_event_bytes = bytes;
            self
        }

        /// Uses this HTTP client instead of building one, for a proxy or custom TLS roots. The connect
        /// timeout and the redirect policy are then the client's; the other timeouts and limits still
        /// apply.
        pub fn http_client(mut self, client: reqwest::Client) -> Self {
            self.common.client = Some(client);
            self
        }
    };
}
pub(crate) use transport_setters;

/// A URL for messages: without user name, password and query (where credentials hide).
fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        // Unparseable: show no more than the scheme and host part before any `@`, `?` or path.
        Err(_) => url.split(['?', '@']).next().unwrap_or_default().chars().take(64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after(&headers(&[("retry-after", "7")])), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers(&[("retry-after", " 1.5 ")])), Some(Duration::from_millis(1500)));
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2"), ("retry-after-ms", "250")])),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "-3")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "1e300")])), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&headers(&[("retry-after", "NaN")])), None);
        let past = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH);
        assert_eq!(retry_after(&headers(&[("retry-after", &past)])), Some(Duration::ZERO));
        let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let d = retry_after(&headers(&[("retry-after", &future)])).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

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
    fn sanitize_cuts_and_withholds() {
        let long = "word ".repeat(100);
        let s = sanitize(&long, None, None).unwrap();
        assert!(s.chars().count() <= MAX_PROVIDER_MESSAGE_CHARS + 1 && s.ends_with('…'), "{s}");
        assert_eq!(sanitize("bad\n\tthing\u{7}.", None, None).as_deref(), Some("bad thing"));
        assert_eq!(sanitize(" \n ", None, None), None);
        let key = Secret::new("sk-test-0123456789abcdef".into());
        assert_eq!(sanitize("Incorrect API key provided: sk-test-****cdef", None, Some(&key)), None);
        assert!(sanitize("Incorrect API key provided", None, Some(&key)).is_some());
        let model = ModelProfile::new("m", "p");
        let request = Request::new("my secret question about the merger with Initech corporation next week");
        let cx = CallContext { model: &model, request: &request };
        assert_eq!(sanitize("cannot answer: 'the merger with Initech corporation next'", Some(&cx), None), None);
        // Runs at any offset, and short non-ASCII prompts measured in characters.
        let odd = Request::new("a secret: my pin is 4921 and zip 02");
        let cx = CallContext { model: &model, request: &odd };
        assert_eq!(sanitize("bad 'my pin is 4921 and zip 02'", Some(&cx), None), None);
        let cyrillic = Request::new("Пароль 12345 секрет");
        let cx = CallContext { model: &model, request: &cyrillic };
        assert_eq!(sanitize("invalid: «Пароль 12345 секрет»", Some(&cx), None), None);
        assert!(sanitize("invalid request: unknown field `foo`", Some(&cx), None).is_some());
        assert!(sanitize("invalid temperature", Some(&cx), None).is_some());
        let short = Request::new("hunter2");
        let cx = CallContext { model: &model, request: &short };
        assert_eq!(sanitize("bad input 'hunter2'", Some(&cx), None), None);
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("sk-live-abc".into());
        assert_eq!(format!("{s:?}"), "[redacted]");
        let v = s.header_value("Bearer ").unwrap();
        assert!(v.is_sensitive());
        assert!(Secret::new("bad\nkey".into()).header_value("").is_err());
    }
}
