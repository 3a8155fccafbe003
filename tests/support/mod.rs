//! A scripted HTTP server on 127.0.0.1 for the adapter tests: it records every request (method, path,
//! query, headers, JSON body) and answers with what the test's closure returns: a status with a body,
//! after an optional delay, or a stream of byte pieces with pauses, optionally aborted mid-way.
//! [`redis`] starts local Redis servers for the state store tests; [`data`] reads the repository's
//! `data/` files.

#![allow(dead_code, reason = "each test binary uses a different subset of the helpers")]
#![allow(clippy::disallowed_methods, reason = "the test server runs on its own tasks")]

pub(crate) mod data;
pub(crate) mod redis;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use switchyard::{Error, ModelProfile, Request, StreamEvent};

/// What the server saw.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: serde_json::Value,
    /// The body's bytes, as received.
    pub(crate) raw_body: Vec<u8>,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One piece of a streamed body.
#[derive(Clone, Debug)]
pub(crate) enum Piece {
    Bytes(String),
    /// Bytes that need not be text (a binary framing).
    Raw(Vec<u8>),
    Sleep(Duration),
    /// Fails the body: the server drops the connection without finishing the response.
    Abort,
}

/// What the server answers.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) delay: Duration,
    pub(crate) pieces: Vec<Piece>,
}

impl Reply {
    /// A JSON body with a status.
    pub(crate) fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            delay: Duration::ZERO,
            pieces: vec![Piece::Bytes(body.into())],
        }
    }

    /// A 200 event stream of these pieces.
    pub(crate) fn sse(pieces: Vec<Piece>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            delay: Duration::ZERO,
            pieces,
        }
    }

    /// A 200 event stream of these events, each followed by a blank line.
    pub(crate) fn events(events: &[&str]) -> Self {
        Self::sse(events.iter().map(|e| Piece::Bytes(format!("{e}\n\n"))).collect())
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Waits this long before sending the status and headers.
    pub(crate) fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Script = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// A running server. Dropping it stops accepting connections.
pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) addr: SocketAddr,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Starts a server that answers every request with `script(request)`.
    pub(crate) async fn start(script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(script);
        let state = (recorded.clone(), script);
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (recorded, script) = state.clone();
            async move { answer(req, recorded, script).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url: format!("http://{addr}"), addr, recorded, task }
    }

    /// Starts a server that always gives the same reply.
    pub(crate) async fn always(reply: Reply) -> Self {
        Self::start(move |_| reply.clone()).await
    }

    /// Every request received so far.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }

    /// The only request received.
    pub(crate) fn only_request(&self) -> Recorded {
        let all = self.requests();
        assert_eq!(all.len(), 1, "{all:?}");
        all.into_iter().next().unwrap()
    }
}

async fn answer(
    req: axum::extract::Request,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    script: Script,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let rec = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        raw_body: bytes.to_vec(),
    };
    recorded.lock().unwrap().push(rec.clone());
    let reply = script(&rec);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let stream = futures::stream::iter(reply.pieces).then(|piece| async move {
        match piece {
            Piece::Bytes(s) => Some(Ok::<_, std::io::Error>(Bytes::from(s))),
            Piece::Raw(b) => Some(Ok(Bytes::from(b))),
            Piece::Sleep(d) => {
                tokio::time::sleep(d).await;
                None
            }
            Piece::Abort => Some(Err(std::io::Error::other("aborted by the test"))),
        }
    });
    let body = Body::from_stream(stream.filter_map(|x| async move { x }));
    let mut builder = axum::response::Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
    for (k, v) in &reply.headers {
        builder = builder.header(k, v);
    }
    builder.body(body).unwrap()
}

/// A port with nothing listening (bound, then released).
pub(crate) async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A listener whose accept queue is full, so that a new connection hangs in the handshake. Keep the
/// returned values alive for the duration of the test.
pub(crate) async fn unaccepting_listener() -> (SocketAddr, tokio::net::TcpListener, Vec<std::net::TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    // The queue holds backlog + 1 connections; fill it (a few more do not hurt: they time out too).
    for _ in 0..4 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(50)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    (addr, listener, fillers)
}

/// Asserts that neither `Debug` nor `Display` of `err` contains any of `secrets`.
pub(crate) fn assert_clean(err: &Error, secrets: &[&str]) {
    let text = format!("{err} {err:?}");
    for s in secrets {
        assert!(!text.contains(s), "error leaks {s:?}: {text}");
    }
}

/// For each `(reply, kind, retry_after)`: a server that always gives `reply`, and `adapter` over
/// it called once for an answer and once for a stream; both errors must be of `kind`, carry the
/// reply's status and `retry_after`, be retryable exactly for rate limits and server errors, and
/// quote none of `secrets`.
pub(crate) async fn assert_status_errors<P: switchyard::Provider>(
    cases: Vec<(Reply, switchyard::ErrorKind, Option<Duration>)>,
    adapter: impl Fn(&Server) -> P,
    model: &ModelProfile,
    secrets: &[&str],
) {
    use switchyard::ErrorKind;
    for (reply, kind, retry_after) in cases {
        let status = reply.status;
        let server = Server::always(reply).await;
        let provider = adapter(&server);
        for err in [
            provider.complete(model, &Request::new("hello")).await.unwrap_err(),
            provider.stream(model, &Request::new("hello")).await.err().unwrap(),
        ] {
            assert_eq!(err.kind(), kind, "{status}: {err}");
            assert_eq!(err.status(), Some(status));
            assert_eq!(err.retry_after(), retry_after, "{status}: {err}");
            assert_eq!(err.is_retryable(), matches!(kind, ErrorKind::RateLimited | ErrorKind::Server), "{status}");
            assert_clean(&err, secrets);
        }
    }
}

/// A model profile of `provider` called `api` by the backend.
pub(crate) fn model(provider: &str, api: &str) -> ModelProfile {
    ModelProfile::new("m", provider).with_api_name(api)
}

/// A request whose prompt text must never leak.
pub(crate) fn secret_request(secret: &str) -> Request {
    Request::new(format!("please keep this quiet: {secret}")).with_system(format!("system says {secret}"))
}

/// `text` as a streamed body cut every `size` bytes, with a millisecond between pieces.
pub(crate) fn pieces(text: &str, size: usize) -> Vec<Piece> {
    text.as_bytes()
        .chunks(size)
        .flat_map(|c| [Piece::Bytes(String::from_utf8_lossy(c).into_owned()), Piece::Sleep(Duration::from_millis(1))])
        .collect()
}

/// Every item of an adapter's event stream.
pub(crate) async fn collect(stream: switchyard::EventStream) -> Vec<switchyard::Result<StreamEvent>> {
    stream.collect().await
}

/// The answer text of a routed stream, read to its end (an error fails the test).
pub(crate) async fn streamed_text(mut stream: switchyard::RoutedStream) -> String {
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        if let StreamEvent::Delta(piece) = event.expect("a streamed event") {
            text.push_str(&piece);
        }
    }
    text
}
