//! The HTTP handlers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request as HttpRequest, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use switchyard::catalog::NameKind;
use switchyard::limits::CallerLimits;
use switchyard::wire::openai::{ChatCompletion, ChatCompletionRequest};
use switchyard::{Decision, DecisionId, ErrorKind, Feedback, Request};
use tokio::sync::OwnedSemaphorePermit;

use crate::AppState;
use crate::auth::{Caller, authenticate};
use crate::error::ApiError;
use crate::responses::{Ids, Keep, ResponsesRequest, label};
use crate::stored::{Responses, Stored};

type Shared = State<Arc<AppState>>;

/// Counts every response by route and status (`switchyard_gateway_requests_total`) and its duration.
pub(crate) async fn count_requests(request: HttpRequest<Body>, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("switchyard_gateway_requests_total", "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("switchyard_gateway_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorKind::InvalidRequest, "no such endpoint")
}

/// What a request to the routing endpoints goes through first: the key, a concurrency slot, the
/// body (within the size limit) and its JSON.
struct Admitted<T> {
    caller: Caller,
    permit: OwnedSemaphorePermit,
    wire: T,
}

async fn admit<T: serde::de::DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    what: &str,
) -> Result<Admitted<T>, ApiError> {
    let caller = authenticate(&state.keys, headers).ok_or_else(ApiError::unauthorized)?;
    let permit = Arc::clone(&state.permits).try_acquire_owned().map_err(|_| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Server, "the gateway is at its concurrency limit")
            .with_retry_after(Duration::from_secs(1))
    })?;
    let bytes = axum::body::to_bytes(body, state.max_body_bytes).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::InvalidRequest,
            format!("the request body is larger than {} bytes, or was cut off", state.max_body_bytes),
        )
    })?;
    let wire: T = serde_json::from_slice(&bytes).map_err(|e| {
        // serde's message can quote the client's text; the position and what was expected suffice.
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::InvalidRequest,
            format!("the body is not a {what} request: {}", switchyard::__without_values(&e.to_string())),
        )
    })?;
    Ok(Admitted { caller, permit, wire })
}

/// The router's request for a client's body: the caller's name and tenant as routing hints, and the
/// model: `auto` routes over the catalog; a model id, group or alias pins the request to it (with its
/// group's other members as fallbacks); anything else is a 404.
fn to_request(state: &AppState, caller: &Caller, wire: ChatCompletionRequest) -> Result<Request, ApiError> {
    let model = wire.model.clone();
    with_caller(state, caller, Request::try_from(wire)?, &model)
}

/// Adds the caller's hints and the model named in the body to `request`.
fn with_caller(state: &AppState, caller: &Caller, mut request: Request, model: &str) -> Result<Request, ApiError> {
    if let Some(name) = &caller.name {
        request = request.with_key(name.clone());
    }
    if let Some(tenant) = &caller.tenant {
        request = request.with_tenant(tenant.clone());
    }
    if model != "auto" {
        if state.router.resolve(model).is_none() {
            return Err(ApiError::model_not_found(model));
        }
        request = request.with_model(model);
    }
    Ok(request)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn completion_id(state: &AppState, decision: &Decision) -> String {
    format!("chatcmpl-{:016x}{:x}", state.nonce, decision.id().get())
}

/// `x-switchyard-model` (the model that answers: after a fallback, not the decision's first choice)
/// and `x-switchyard-decision-id` (for `/v1/feedback`).
fn decision_headers(headers: &mut HeaderMap, model: &str, decision: &Decision) {
    if let Ok(v) = HeaderValue::from_str(model) {
        headers.insert("x-switchyard-model", v);
    }
    headers.insert("x-switchyard-decision-id", HeaderValue::from(decision.id().get()));
}

/// OpenAI's `x-ratelimit-*` headers from where the caller stands against its rate limits: for
/// requests and tokens each, the limit, what is left and when the sliding minute is empty again
/// (`"1.5s"`, `"1m2s"`, `"250ms"`). Nothing when no caller limit applies.
pub(crate) fn rate_limit_headers(headers: &mut HeaderMap, limits: Option<CallerLimits>) {
    let Some(limits) = limits else { return };
    for (what, room) in [("requests", limits.requests), ("tokens", limits.tokens)] {
        let Some(room) = room else { continue };
        let mut set = |name: String, value: String| {
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                headers.insert(name, value);
            }
        };
        set(format!("x-ratelimit-limit-{what}"), room.limit.to_string());
        set(format!("x-ratelimit-remaining-{what}"), room.remaining.to_string());
        set(format!("x-ratelimit-reset-{what}"), duration_text(room.resets_in));
    }
}

/// A duration as OpenAI's rate-limit headers write it: `250ms`, `1.5s`, `1m2s`, `0s`.
fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (minutes, ms) = (ms / 60_000, ms % 60_000);
    let seconds = if ms % 1000 == 0 {
        format!("{}", ms / 1000)
    } else {
        format!("{}.{:03}", ms / 1000, ms % 1000).trim_end_matches('0').to_owned()
    };
    if minutes > 0 { format!("{minutes}m{seconds}s") } else { format!("{seconds}s") }
}

/// A routing endpoint's response, or its error's (logged by code).
fn answered_or_refused(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| {
        tracing::info!(target: "switchyard_gateway", code = ?e.body().error.code, "request refused");
        e.into_response()
    })
}

/// A streamed answer's response: `body` as server-sent events, with the decision's and the caller's
/// rate-limit headers.
fn event_stream(body: Body, routed: (&str, &Decision, Option<CallerLimits>)) -> Response {
    let (model, decision, limits) = routed;
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    decision_headers(h, model, decision);
    rate_limit_headers(h, limits);
    response
}

/// A whole answer's response: `body` as JSON, with the decision's and the caller's rate-limit
/// headers; the answer is logged (model, cost, attempts; never its text).
fn json_answer<T: serde::Serialize>(body: &T, answer: &switchyard::Response) -> Response {
    tracing::info!(
        target: "switchyard_gateway",
        decision = answer.decision.id().get(),
        model = %answer.model(),
        cost_usd = answer.cost_usd,
        attempts = answer.attempts.len(),
        "answered"
    );
    let mut response = Json(body).into_response();
    decision_headers(response.headers_mut(), answer.model().as_str(), &answer.decision);
    rate_limit_headers(response.headers_mut(), answer.caller_limits);
    response
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    answered_or_refused(chat(&state, &headers, body).await)
}

async fn chat(state: &Arc<AppState>, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let Admitted { caller, permit, wire } =
        admit::<ChatCompletionRequest>(state, headers, body, "chat completions").await?;
    let stream = wire.stream;
    let include_usage = wire.stream_options.is_some_and(|o| o.include_usage);
    let request = to_request(state, &caller, wire)?;
    if stream {
        let routed = state.router.stream(request).await?;
        let (decision, model, limits) = (routed.decision().clone(), routed.model().to_string(), routed.caller_limits());
        let id = completion_id(state, &decision);
        let chunks = crate::stream::Chunks::new(id, unix_now(), model.clone(), include_usage);
        let body = crate::stream::body(routed, chunks, permit);
        return Ok(event_stream(body, (&model, &decision, limits)));
    }
    let answer = state.router.complete(request).await?;
    drop(permit);
    let body = ChatCompletion::from_response(&answer, completion_id(state, &answer.decision), unix_now());
    Ok(json_answer(&body, &answer))
}

/// `POST /v1/responses`: OpenAI's Responses API (`crate::responses`), continuing a kept conversation
/// when asked to and keeping this one when the gateway keeps responses (`crate::stored`).
pub(crate) async fn responses(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    answered_or_refused(respond(&state, &headers, body).await)
}

/// The kept responses, or the 400 that says the gateway keeps none.
fn kept_responses(state: &AppState) -> Result<&Arc<Responses>, ApiError> {
    state.responses.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::InvalidRequest,
            "this gateway keeps no responses: `previous_response_id` and `GET /v1/responses/{id}` need \
             [server] stored_responses above 0; without it, send the whole conversation in `input`",
        )
    })
}

/// The 404 for a response not kept for this caller.
fn not_kept(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorKind::InvalidRequest,
        format!("no response `{}` is kept for this caller (it may have expired)", label(id)),
    )
}

/// A kept response for `caller`, or why there is none: the gateway keeps none (400), none is kept
/// under this id for this caller (404), or the shared store did not answer (503).
async fn kept(state: &AppState, caller: &Caller, id: &str) -> Result<Arc<Stored>, ApiError> {
    kept_responses(state)?.get(id, caller.name.as_deref()).await?.ok_or_else(|| not_kept(id))
}

async fn respond(state: &Arc<AppState>, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let Admitted { caller, permit, wire } = admit::<ResponsesRequest>(state, headers, body, "responses").await?;
    let (stream, model, store) = (wire.stream, wire.model.clone(), wire.store != Some(false));
    // A follow-up whose response is not kept is a 400 with OpenAI's code, which clients read to send
    // the whole conversation instead.
    let history = match &wire.previous_response_id {
        Some(id) => match kept(state, &caller, id).await {
            Ok(stored) => stored.conversation.clone(),
            Err(e) if e.status() == StatusCode::NOT_FOUND => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorKind::InvalidRequest,
                    format!("previous response with id `{}` not found", label(id)),
                )
                .with_code("previous_response_not_found")
                .with_param("previous_response_id"));
            }
            Err(e) => return Err(e.with_param("previous_response_id")),
        },
        None => Vec::new(),
    };
    let (request, mut echo) = wire.into_request(history)?;
    let request = with_caller(state, &caller, request, &model)?;
    // The conversation to keep with the answer, when the gateway keeps responses and the client
    // did not say `store: false`.
    let keep = state.responses.as_ref().filter(|_| store).map(|responses| Keep {
        store: Arc::clone(responses),
        writes: Arc::clone(&state.writes),
        owner: caller.name.clone(),
        conversation: request.messages[echo.instruction_messages()..].to_vec(),
    });
    echo.store = keep.is_some();
    // The decision id makes it unique, the keyed hash of it unguessable.
    let ids = |decision: &Decision, model: &str| Ids {
        response: format!(
            "resp_{:016x}{:x}{:016x}",
            state.nonce,
            decision.id().get(),
            std::hash::BuildHasher::hash_one(&state.id_keys, decision.id().get())
        ),
        created_at: unix_now(),
        model: model.to_owned(),
    };
    if stream {
        let routed = state.router.stream(request).await?;
        let (decision, model, limits) = (routed.decision().clone(), routed.model().to_string(), routed.caller_limits());
        let events = crate::responses::Events::new(ids(&decision, &model), echo, keep);
        let body = crate::stream::body(routed, events, permit);
        return Ok(event_stream(body, (&model, &decision, limits)));
    }
    let answer = state.router.complete(request).await?;
    drop(permit);
    let ids = ids(&answer.decision, answer.model().as_str());
    let body = crate::responses::response(&answer, &ids, &echo);
    if let Some(keep) = keep {
        keep.keep_detached(body.clone()).await;
    }
    Ok(json_answer(&body, &answer))
}

/// `GET /v1/responses/{id}`: a kept response, as it was returned, for the caller that made it.
pub(crate) async fn stored_response(
    State(state): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.keys, &headers).ok_or_else(ApiError::unauthorized)?;
    Ok(Json(&kept(&state, &caller, &id).await?.object).into_response())
}

/// `DELETE /v1/responses/{id}`: forgets a kept response of the caller's.
pub(crate) async fn delete_response(
    State(state): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.keys, &headers).ok_or_else(ApiError::unauthorized)?;
    if !kept_responses(&state)?.remove(&id, caller.name.as_deref()).await? {
        return Err(not_kept(&id));
    }
    Ok(Json(json!({"id": id, "object": "response.deleted", "deleted": true})).into_response())
}

/// `POST /v1/route`: the decision for a chat completions body, without calling a provider.
pub(crate) async fn route(State(state): Shared, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let Admitted { caller, wire, .. } =
        admit::<ChatCompletionRequest>(&state, &headers, body, "chat completions").await?;
    let request = to_request(&state, &caller, wire)?;
    let decision = state.router.route(&request)?;
    let mut response = Json(json!({ "decision": &decision })).into_response();
    decision_headers(response.headers_mut(), decision.model().as_str(), &decision);
    Ok(response)
}

/// A decision id as the gateway hands it out (a number) or as `Decision`'s `Display` writes it
/// (`d123`).
#[derive(Deserialize)]
#[serde(untagged)]
enum WireDecisionId {
    Number(u64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    decision_id: WireDecisionId,
    #[serde(default = "yes")]
    success: bool,
    #[serde(default)]
    quality: Option<f64>,
    #[serde(default)]
    latency_ms: Option<u64>,
    #[serde(default)]
    cost_usd: Option<f64>,
}

fn yes() -> bool {
    true
}

/// `POST /v1/feedback`: from a virtual key, for that key's own decisions only (another key's
/// decision id is unknown to it).
pub(crate) async fn feedback(State(state): Shared, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let caller = authenticate(&state.keys, &headers).ok_or_else(ApiError::unauthorized)?;
    let bytes = axum::body::to_bytes(body, 64 << 10).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorKind::InvalidRequest, "feedback bodies are at most 64 KiB")
    })?;
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, ErrorKind::InvalidRequest, message);
    let body: FeedbackBody = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("invalid feedback: {}", switchyard::__without_values(&e.to_string()))))?;
    let id = match body.decision_id {
        WireDecisionId::Number(n) => n,
        WireDecisionId::Text(t) => t
            .strip_prefix('d')
            .unwrap_or(&t)
            .parse()
            .map_err(|_| bad("`decision_id` must be a number, or `d` and a number".to_owned()))?,
    };
    let mut feedback = if body.success { Feedback::success() } else { Feedback::failure() };
    if let Some(q) = body.quality {
        feedback = feedback.with_quality(q);
    }
    if let Some(ms) = body.latency_ms {
        feedback = feedback.with_latency(Duration::from_millis(ms));
    }
    if let Some(c) = body.cost_usd {
        feedback = feedback.with_cost(c);
    }
    // A virtual key's feedback counts only for its own requests (their routing key is its name).
    if let Some(name) = caller.name {
        feedback = feedback.with_key(name);
    }
    state.router.feedback(DecisionId::from_u64(id), feedback)?;
    Ok(Json(json!({ "recorded": true })).into_response())
}

/// `GET /v1/models`: `auto`, then every model id, group and alias a request can name, in OpenAI's
/// list shape (`owned_by` is a model's provider, or `switchyard` for groups and aliases, which also
/// say what they stand for).
pub(crate) async fn models(State(state): Shared, headers: HeaderMap) -> Result<Response, ApiError> {
    authenticate(&state.keys, &headers).ok_or_else(ApiError::unauthorized)?;
    let mut data = vec![json!({"id": "auto", "object": "model", "created": 0, "owned_by": "switchyard"})];
    let catalog = state.router.catalog();
    for name in state.router.models() {
        let entry = match name.kind() {
            NameKind::Model => {
                let owner = catalog.get(name.name()).map_or("switchyard", |m| m.provider.as_str());
                json!({"id": name.name(), "object": "model", "created": 0, "owned_by": owner})
            }
            NameKind::Group => json!({"id": name.name(), "object": "model", "created": 0, "owned_by": "switchyard",
                                      "members": name.members(), "strategy": name.strategy().map(|s| s.as_str())}),
            _ => json!({"id": name.name(), "object": "model", "created": 0, "owned_by": "switchyard",
                        "alias_of": name.target()}),
        };
        data.push(entry);
    }
    Ok(Json(json!({"object": "list", "data": data})).into_response())
}

/// `GET /health`: the process is up, with every model's health (circuit, success rate, latency).
pub(crate) async fn health(State(state): Shared) -> Response {
    Json(json!({"status": "ok", "models": state.router.health()})).into_response()
}

/// `GET /ready`: ready for traffic, or 503 while draining.
pub(crate) async fn ready(State(state): Shared) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "draining"}))).into_response()
    } else {
        Json(json!({"status": "ready"})).into_response()
    }
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(State(state): Shared) -> Response {
    state.metrics.run_upkeep();
    let mut response = state.metrics.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_openais_headers_write_them() {
        let ms = Duration::from_millis;
        for (d, text) in
            [(0, "0s"), (250, "250ms"), (1000, "1s"), (1500, "1.5s"), (61_250, "1m1.25s"), (120_000, "2m0s")]
        {
            assert_eq!(duration_text(ms(d)), text);
        }
    }
}
