//! # switchyard-gateway
//!
//! An OpenAI-compatible HTTP gateway in front of a [`switchyard`] router: point an existing OpenAI
//! client at it and set `model = "auto"`.
//!
//! The binary, `switchyard-gateway --config FILE [--listen ADDR]`, reads a [`GatewayConfig`] (a router
//! configuration plus `[server]` and `[[providers]]`) and serves:
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /v1/chat/completions` | OpenAI's chat completions, JSON or server-sent events (`stream`); `model = "auto"` routes, a catalog id pins |
//! | `POST /v1/responses` | OpenAI's Responses API: the conversation in `input` (after a kept one's, with `[server] stored_responses`), JSON or semantic events (`stream`) |
//! | `GET`, `DELETE /v1/responses/{id}` | a kept response, for the caller that made it |
//! | `POST /v1/route` | a chat completions body, routed without calling a provider: the decision and its explanation |
//! | `POST /v1/feedback` | `{"decision_id", "success", "quality"}` for an earlier answer |
//! | `GET /v1/models` | `auto` and every catalog model |
//! | `GET /health`, `GET /ready` | liveness; readiness (503 while draining) |
//! | `GET /metrics` | Prometheus text: the router's decisions, attempts, results, cost, and the gateway's requests |
//!
//! Answers carry `x-switchyard-model` and `x-switchyard-decision-id` headers. Errors are OpenAI error
//! bodies with the status of [`switchyard::ErrorKind::http_status`]. See `docs/gateway.md`.
//!
//! To embed the gateway in a program of your own, build a [`Gateway`] and mount [`Gateway::app`] or
//! call [`Gateway::serve`].

mod auth;
pub mod config;
mod error;
mod handlers;
mod responses;
mod stored;
mod stream;
mod tls;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::routing::{get, post};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use switchyard::policy::MetricsObserver;
use switchyard::{Error, ErrorKind, Result};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use self::auth::VirtualKey;
pub use self::config::GatewayConfig;

/// What every handler shares.
pub(crate) struct AppState {
    pub(crate) router: switchyard::Router,
    pub(crate) keys: Vec<VirtualKey>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) max_concurrency: usize,
    pub(crate) max_body_bytes: usize,
    pub(crate) draining: AtomicBool,
    /// Makes completion ids unique across restarts (decision ids restart at each start).
    pub(crate) nonce: u64,
    /// Random keys that make response ids unguessable (a kept response is read by its id).
    pub(crate) id_keys: std::collections::hash_map::RandomState,
    pub(crate) metrics: PrometheusHandle,
    /// `[server] stored_responses`: kept Responses API answers, when any are kept.
    pub(crate) responses: Option<Arc<stored::Responses>>,
    /// Writes of kept responses under way, which a shutdown waits for after the drain.
    pub(crate) writes: Arc<stored::Writes>,
}

/// The process's Prometheus recorder: installed as the global `metrics` recorder on first use. When
/// the embedding program installed a recorder of its own first, `/metrics` shows nothing of the
/// router's metrics (they go to that recorder).
fn prometheus() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(target: "switchyard_gateway", "a metrics recorder was already installed: /metrics will not show the router's metrics");
            }
            handle
        })
        .clone()
}

/// The Redis server `[server] state` names, through two connections: one for the router's limits,
/// with the store's default timeouts (a limit that waits long holds its request up), and one for
/// kept responses, whose documents can be large.
#[cfg(feature = "redis")]
struct SharedStore {
    limits: switchyard::state::RedisStore,
    documents: switchyard::state::RedisStore,
}

/// Without the `redis` feature there is none.
#[cfg(not(feature = "redis"))]
type SharedStore = std::convert::Infallible;

/// How long the server may take to answer a command on kept responses.
#[cfg(feature = "redis")]
const DOCUMENT_TIMEOUT: Duration = Duration::from_secs(2);

/// The store `[server] state` names: a Redis server, connected on its first call.
#[cfg(feature = "redis")]
fn shared_store(state: &config::StateConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<SharedStore> {
    let url = env(&state.redis_url_env).filter(|v| !v.is_empty()).ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            format!("server.state: the environment variable `{}` (redis_url_env) is not set", state.redis_url_env),
        )
    })?;
    let config = switchyard::state::RedisConfig::new().with_namespace(state.namespace.clone());
    // The URL may carry a password: errors and logs name the variable, never its value.
    let connect = |config| {
        switchyard::state::RedisStore::lazy(&url, config)
            .map_err(|e| Error::new(e.kind(), format!("server.state (`{}`): {e}", state.redis_url_env)))
    };
    let store = SharedStore {
        limits: connect(config.clone())?,
        documents: connect(config.with_response_timeout(DOCUMENT_TIMEOUT))?,
    };
    tracing::info!(
        target: "switchyard_gateway",
        namespace = %state.namespace,
        "limits, circuits and kept responses shared through redis"
    );
    Ok(store)
}

/// Without the `redis` feature, `[server] state` cannot be served.
#[cfg(not(feature = "redis"))]
fn shared_store(_: &config::StateConfig, _: &dyn Fn(&str) -> Option<String>) -> Result<SharedStore> {
    Err(Error::new(ErrorKind::Config, "server.state needs switchyard-gateway built with its `redis` feature"))
}

/// The shared store as the router's state store.
#[cfg(feature = "redis")]
fn state_store(store: &SharedStore) -> Arc<dyn switchyard::state::StateStore> {
    Arc::new(store.limits.clone())
}

/// Without the `redis` feature there is no shared store to hand over.
#[cfg(not(feature = "redis"))]
fn state_store(store: &SharedStore) -> Arc<dyn switchyard::state::StateStore> {
    match *store {}
}

/// Where `[server] stored_responses` keeps responses: in the shared store when there is one, so
/// that a follow-up finds its conversation on any replica, else in this process. Both keep to the
/// same bounds.
fn response_store(server: &config::ServerConfig, shared: Option<&SharedStore>) -> Result<stored::Responses> {
    let ttl = Duration::from_millis(server.stored_responses_ttl_ms);
    let (count, bytes) = (server.stored_responses, server.stored_responses_max_bytes);
    match shared {
        #[cfg(feature = "redis")]
        Some(store) => {
            Ok(stored::Responses::Shared(store.documents.documents("responses", ttl, count as u64, bytes as u64)?))
        }
        #[cfg(not(feature = "redis"))]
        Some(never) => match *never {},
        None => Ok(stored::Responses::Local(stored::ResponseStore::new(count, bytes, ttl))),
    }
}

/// A gateway: the router, its providers and the HTTP routes.
pub struct Gateway {
    state: Arc<AppState>,
    drain_timeout: Duration,
    /// `[server] tls`: HTTPS.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("models", &self.state.router.catalog().len())
            .field("keys", &self.state.keys.len())
            .field("max_body_bytes", &self.state.max_body_bytes)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds the router and its providers. `env` maps an environment variable's name to its value
    /// (`|name| std::env::var(name).ok()` in the binary): provider and virtual keys are read through
    /// it, never from the file.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the field, or the variable that is not set, or a TLS file that
    /// cannot be read or used.
    pub fn new(config: &GatewayConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let tls = config.server.tls.as_ref().map(tls::acceptor).transpose()?;
        let mut builder = config.router_builder(env)?.observer(MetricsObserver::new());
        let shared = config.server.state.as_ref().map(|state| shared_store(state, env)).transpose()?;
        if let Some(store) = &shared {
            builder = builder.state_store_arc(state_store(store));
        }
        let router = builder.build()?;
        let mut keys = Vec::with_capacity(config.server.keys.len());
        for (i, k) in config.server.keys.iter().enumerate() {
            let key = env(&k.key_env).filter(|v| !v.is_empty()).ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!("server.keys[{i}]: the environment variable `{}` (key_env) is not set", k.key_env),
                )
            })?;
            keys.push(VirtualKey::new(key, k.name.clone(), k.tenant.clone()));
        }
        if keys.is_empty() {
            tracing::warn!(target: "switchyard_gateway", "no [[server.keys]]: every caller is let in");
            if config.server.stored_responses > 0 {
                tracing::warn!(
                    target: "switchyard_gateway",
                    "stored_responses without [[server.keys]]: every caller shares the kept responses"
                );
            }
        }
        let responses = match config.server.stored_responses {
            0 => None,
            _ => Some(Arc::new(response_store(&config.server, shared.as_ref())?)),
        };
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let state = AppState {
            router,
            keys,
            permits: Arc::new(Semaphore::new(config.server.max_concurrency)),
            max_concurrency: config.server.max_concurrency,
            max_body_bytes: config.server.max_body_bytes,
            draining: AtomicBool::new(false),
            nonce,
            metrics: prometheus(),
            id_keys: std::collections::hash_map::RandomState::new(),
            responses,
            writes: Arc::default(),
        };
        Ok(Self { state: Arc::new(state), drain_timeout: config.server.drain_timeout(), tls })
    }

    /// The router behind the gateway.
    pub fn router(&self) -> &switchyard::Router {
        &self.state.router
    }

    /// The HTTP routes, to serve or to mount in an application of your own.
    pub fn app(&self) -> axum::Router {
        axum::Router::new()
            .route("/v1/chat/completions", post(handlers::chat_completions))
            .route("/v1/responses", post(handlers::responses))
            .route("/v1/responses/{id}", get(handlers::stored_response).delete(handlers::delete_response))
            .route("/v1/route", post(handlers::route))
            .route("/v1/feedback", post(handlers::feedback))
            .route("/v1/models", get(handlers::models))
            .route("/health", get(handlers::health))
            .route("/ready", get(handlers::ready))
            .route("/metrics", get(handlers::metrics))
            .fallback(handlers::not_found)
            .layer(axum::middleware::from_fn(handlers::count_requests))
            .with_state(Arc::clone(&self.state))
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting connections, reports
    /// not ready, and lets in-flight requests and streams finish, and the kept responses still being
    /// written (whose clients may have gone), for up to the drain timeout. With
    /// `[server] tls`, every connection is HTTPS (handshakes run side by side; one that fails or
    /// takes over 10 s is dropped).
    ///
    /// # Errors
    /// An I/O error from the listener.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        match self.tls.clone() {
            Some(acceptor) => self.serve_on(tls::TlsListener::new(listener, acceptor), shutdown).await,
            None => self.serve_on(listener, shutdown).await,
        }
    }

    async fn serve_on<L>(self, listener: L, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()>
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(listener, self.app()).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        #[allow(
            clippy::disallowed_methods,
            reason = "a server owns its runtime: the server runs on a task so that it can be stopped after the drain timeout"
        )]
        let mut server = tokio::spawn(server.into_future());
        tokio::select! {
            result = &mut server => return result.map_err(std::io::Error::other)?,
            () = shutdown => {}
        }
        self.state.draining.store(true, Ordering::Relaxed);
        tracing::info!(target: "switchyard_gateway", in_flight = self.in_flight(), "shutting down: draining");
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        let _ = stop.send(());
        match tokio::time::timeout(self.drain_timeout, &mut server).await {
            Ok(result) => result.map_err(std::io::Error::other)?,
            Err(_) => {
                tracing::warn!(target: "switchyard_gateway", in_flight = self.in_flight(), "drain timeout: closing what is left");
                server.abort();
                Ok(())
            }
        }?;
        // Kept responses still being written (their clients may have gone): within the same timeout.
        if tokio::time::timeout_at(deadline, self.state.writes.idle()).await.is_err() {
            tracing::warn!(
                target: "switchyard_gateway",
                writes = self.state.writes.in_flight(),
                "drain timeout: kept responses still being written are cut short"
            );
        }
        if let Err(e) = self.state.router.flush_state().await {
            tracing::warn!(target: "switchyard_gateway", error = %e, "could not flush the router's state");
        }
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.state.max_concurrency.saturating_sub(self.state.permits.available_permits())
    }
}
