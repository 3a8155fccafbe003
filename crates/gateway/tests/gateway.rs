//! The gateway over HTTP, called as OpenAI's clients call it, in front of a scripted OpenAI-compatible
//! upstream on 127.0.0.1: JSON and server-sent event answers, tools, pinned and routed requests, the
//! Responses API (objects, semantic events, a tool conversation, refusals, a stream cut off),
//! fallbacks before the first token, every error status, virtual keys, budgets, a caller limit shared by
//! two replicas through Redis, the concurrency limit,
//! the side endpoints (models, route, feedback, health, ready, metrics) and draining on shutdown.

#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(clippy::disallowed_methods, reason = "the tests run gateways and their shutdowns on tasks of their own")]

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Piece, Reply, Server};
use switchyard_gateway::{Gateway, GatewayConfig};
use tokio::sync::oneshot;

const UPSTREAM_KEY: &str = "sk-upstream-5e4d3c2b1a";
const TEAM_KEY: &str = "sk-team-a-0123456789";
const POOR_KEY: &str = "sk-poor-9876543210";

/// An OpenAI-compatible upstream that answers by the model asked for: `good-*` answer, `down-*` fail
/// with 500, `busy-*` with 429 and `Retry-After: 7`, `slow-*` after 2 s; with `stream`, the answer
/// comes as chunks, with usage last (`cut-*`: a malformed chunk after the first words); a request
/// with tools gets a tool call.
async fn upstream() -> Server {
    Server::start(|r| {
        let model = r.body["model"].as_str().unwrap_or_default().to_owned();
        let stream = r.body["stream"].as_bool().unwrap_or(false);
        let tools = r.body.get("tools").is_some();
        if model.starts_with("down") {
            return Reply::json(500, r#"{"error": {"message": "boom", "type": "server_error"}}"#);
        }
        if model.starts_with("busy") {
            return Reply::json(429, r#"{"error": {"message": "slow down", "type": "rate_limit_error"}}"#)
                .header("retry-after", "7");
        }
        let reply = match (stream, tools) {
            (false, false) => Reply::json(
                200,
                json!({
                    "id": "up-1", "object": "chat.completion", "created": 1, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14,
                              "prompt_tokens_details": {"cached_tokens": 4}}
                })
                .to_string(),
            ),
            (false, true) => Reply::json(
                200,
                json!({
                    "id": "up-2", "object": "chat.completion", "created": 1, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
                    ]}, "finish_reason": "tool_calls"}],
                    "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}
                })
                .to_string(),
            ),
            (true, false) => {
                let chunk = |delta: Value, finish: Value| {
                    format!(
                        "data: {}\n\n",
                        json!({"id": "up-3", "object": "chat.completion.chunk", "created": 1, "model": model,
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                    )
                };
                let mut pieces = vec![
                    Piece::Bytes(chunk(json!({"role": "assistant", "content": ""}), Value::Null)),
                    Piece::Bytes(chunk(json!({"content": "Par"}), Value::Null)),
                ];
                if model.starts_with("slow") {
                    pieces.push(Piece::Sleep(Duration::from_millis(600)));
                }
                if model.starts_with("cut") {
                    // Cut off after its first words: a chunk that is not JSON.
                    pieces.push(Piece::Bytes("data: {\"choices\": [\n\n".to_owned()));
                    return Reply::sse(pieces);
                }
                pieces.extend([
                    Piece::Bytes(chunk(json!({"content": "is."}), Value::Null)),
                    Piece::Bytes(chunk(json!({}), json!("stop"))),
                    Piece::Bytes(format!(
                        "data: {}\n\n",
                        json!({"id": "up-3", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
                               "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}})
                    )),
                    Piece::Bytes("data: [DONE]\n\n".to_owned()),
                ]);
                Reply::sse(pieces)
            }
            (true, true) => Reply::sse(vec![
                Piece::Bytes(format!("data: {}\n\n", json!({"id": "up-4", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
                        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "weather", "arguments": ""}}]}, "finish_reason": null}]}))),
                Piece::Bytes(format!("data: {}\n\n", json!({"id": "up-4", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": {"tool_calls": [
                        {"index": 0, "function": {"arguments": "{\"city\":\"Paris\"}"}}]}, "finish_reason": null}]}))),
                Piece::Bytes(format!("data: {}\n\n", json!({"id": "up-4", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}))),
                Piece::Bytes("data: [DONE]\n\n".to_owned()),
            ]),
        };
        if model.starts_with("slow") && !stream { reply.delayed(Duration::from_secs(2)) } else { reply }
    })
    .await
}

fn model(id: &str, input: f64, ability: f64) -> String {
    format!(
        "[[models]]\nid = \"{id}\"\nprovider = \"up\"\ncontext_window = 128000\nmax_output_tokens = 16384\nability = {{ overall = {ability} }}\n\
         capabilities = [\"tools\", \"json\", \"streaming\"]\n\
         pricing = {{ input_per_mtok = {input}, output_per_mtok = {} }}\n",
        input * 4.0
    )
}

/// A running gateway: its address, and the sender that shuts it down.
struct Running {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.done.await.unwrap().unwrap();
    }
}

async fn gateway(upstream: &Server, models: &[String], server: &str, limits: &str) -> Running {
    gateway_with(upstream, models, "", server, limits).await
}

/// `top` goes before every table: the router config's top-level fields.
async fn gateway_with(upstream: &Server, models: &[String], top: &str, server: &str, limits: &str) -> Running {
    gateway_env(upstream, models, top, server, limits, &[]).await
}

/// [`gateway_with`], with more environment variables.
async fn gateway_env(
    upstream: &Server,
    models: &[String],
    top: &str,
    server: &str,
    limits: &str,
    more_env: &[(&str, &str)],
) -> Running {
    let text = format!(
        "seed = 1\n{top}\n[policy]\nkind = \"utility\"\nanswer_value_usd = 0.05\n{limits}\n{server}\n\
         [[server.keys]]\nname = \"team-a\"\nkey_env = \"TEAM_A\"\ntenant = \"acme\"\n\
         [[server.keys]]\nname = \"poor\"\nkey_env = \"POOR\"\ntenant = \"poor-co\"\n\
         [[providers]]\nname = \"up\"\nkind = \"openai\"\nbase_url = \"{}/v1\"\napi_key_env = \"UPSTREAM\"\n\
         first_byte_timeout_ms = 1000\n{}",
        upstream.url,
        models.concat()
    );
    let config = GatewayConfig::from_toml_str(&text).unwrap();
    let env = |name: &str| match name {
        "UPSTREAM" => Some(UPSTREAM_KEY.to_owned()),
        "TEAM_A" => Some(TEAM_KEY.to_owned()),
        "POOR" => Some(POOR_KEY.to_owned()),
        other => more_env.iter().find(|(k, _)| *k == other).map(|(_, v)| (*v).to_owned()),
    };
    let gateway = Gateway::new(&config, &env).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(gateway.serve(listener, async move {
        let _ = stopped.await;
    }));
    Running { url, stop: Some(stop), done }
}

async fn standard() -> (Server, Running) {
    let up = upstream().await;
    let models = [model("good-mini", 0.15, 1.5), model("good-large", 2.5, 4.0)];
    let gw = gateway(&up, &models, "", "").await;
    (up, gw)
}

/// A plain-HTTP client. The workspace builds reqwest without a default TLS provider (the adapters
/// bring their own), so the client gets a rustls configuration too, unused on `http://`.
fn client() -> reqwest::Client {
    client_with(rustls::RootCertStore::empty(), reqwest::Client::builder())
}

/// `builder`'s client, trusting `roots` over HTTPS.
fn client_with(roots: rustls::RootCertStore, builder: reqwest::ClientBuilder) -> reqwest::Client {
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    builder.tls_backend_preconfigured(tls).build().unwrap()
}

async fn post(gw: &Running, key: &str, body: Value) -> reqwest::Response {
    client().post(format!("{}/v1/chat/completions", gw.url)).bearer_auth(key).json(&body).send().await.unwrap()
}

fn hello() -> Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]})
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string() && body["error"]["type"].is_string(), "{body}");
    (status, body)
}

#[tokio::test]
async fn auto_json_answer_in_openai_shape() {
    let (up, gw) = standard().await;
    let mut body = hello();
    body["top_p"] = json!(0.5);
    body["user"] = json!("end-user-1");
    body["presence_penalty"] = json!(0.25);
    let r = post(&gw, TEAM_KEY, body).await;
    assert_eq!(r.status(), 200);
    let model = r.headers()["x-switchyard-model"].to_str().unwrap().to_owned();
    let decision: u64 = r.headers()["x-switchyard-decision-id"].to_str().unwrap().parse().unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["model"], model.as_str());
    assert_eq!(v["choices"][0]["message"], json!({"role": "assistant", "content": "Paris."}));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 12);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
    // The upstream got the upstream key (never the caller's), the catalog's model, and the
    // pass-through parameters.
    let sent = up.only_request();
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {UPSTREAM_KEY}").as_str()));
    assert_eq!(sent.body["model"], model.as_str());
    assert_eq!((sent.body["top_p"].as_f64(), sent.body["user"].as_str()), (Some(0.5), Some("end-user-1")));
    assert_eq!(sent.body["presence_penalty"], 0.25);
    // Another key cannot grade that answer: the id is unknown to it, and the owner's feedback
    // still counts.
    let foreign = client()
        .post(format!("{}/v1/feedback", gw.url))
        .bearer_auth(POOR_KEY)
        .json(&json!({"decision_id": decision, "success": false}))
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(foreign).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("unknown decision id"), "{body}");
    // Feedback on that decision, once.
    let feedback =
        |body: Value| client().post(format!("{}/v1/feedback", gw.url)).bearer_auth(TEAM_KEY).json(&body).send();
    let ok = feedback(json!({"decision_id": decision, "success": true, "quality": 0.9})).await.unwrap();
    assert_eq!(ok.status(), 200);
    let again = feedback(json!({"decision_id": format!("d{decision}"), "quality": 0.1})).await.unwrap();
    assert_eq!(error_of(again).await.0, 400);
    let bad = feedback(json!({"decision_id": decision, "quality": 7.0})).await.unwrap();
    assert_eq!(error_of(bad).await.0, 400);
    gw.shutdown().await;
}

/// The `data:` events of an SSE body, and whether `[DONE]` ended it.
fn events(text: &str) -> (Vec<Value>, bool) {
    let mut out = Vec::new();
    let mut done = false;
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let data = block.strip_prefix("data: ").unwrap();
        if data == "[DONE]" {
            done = true;
        } else {
            assert!(!done, "an event after [DONE]");
            out.push(serde_json::from_str(data).unwrap());
        }
    }
    (out, done)
}

#[tokio::test]
async fn streams_are_openai_chunks_with_usage_when_asked() {
    let (up, gw) = standard().await;
    let mut body = hello();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = post(&gw, TEAM_KEY, body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert!(r.headers().contains_key("x-switchyard-decision-id"));
    let (chunks, done) = events(&r.text().await.unwrap());
    assert!(done);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Paris.");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 2);
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], "stop");
    // The adapter asked the upstream to stream, with usage.
    assert_eq!(up.only_request().body["stream_options"], json!({"include_usage": true}));
    // Without include_usage: no usage field at all.
    let mut body = hello();
    body["stream"] = json!(true);
    let (chunks, done) = events(&post(&gw, TEAM_KEY, body).await.text().await.unwrap());
    assert!(done && chunks.iter().all(|c| c.get("usage").is_none()));
    gw.shutdown().await;
}

#[tokio::test]
async fn tool_calls_come_back_in_json_and_in_streams() {
    let (up, gw) = standard().await;
    let mut body = hello();
    body["tools"] = json!([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]);
    body["tool_choice"] = json!("required");
    let v: Value = post(&gw, TEAM_KEY, body.clone()).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"],
        json!([{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}])
    );
    assert_eq!(up.only_request().body["tool_choice"], "required");
    body["stream"] = json!(true);
    let (chunks, done) = events(&post(&gw, TEAM_KEY, body).await.text().await.unwrap());
    assert!(done);
    let call = chunks.iter().find_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array()).unwrap();
    assert_eq!(call[0]["index"], 0);
    assert_eq!(call[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
    gw.shutdown().await;
}

#[tokio::test]
async fn a_pinned_model_is_served_and_an_unknown_one_is_404() {
    let (_up, gw) = standard().await;
    for pinned in ["good-mini", "good-large"] {
        let mut body = hello();
        body["model"] = json!(pinned);
        let r = post(&gw, TEAM_KEY, body).await;
        assert_eq!(r.headers()["x-switchyard-model"], pinned);
    }
    let mut body = hello();
    body["model"] = json!("gpt-7");
    let (status, v) = error_of(post(&gw, TEAM_KEY, body).await).await;
    assert_eq!(status, 404);
    assert_eq!((v["error"]["code"].as_str(), v["error"]["param"].as_str()), (Some("model_not_found"), Some("model")));
    // /v1/models lists auto and the catalog.
    let list: Value =
        client().get(format!("{}/v1/models", gw.url)).bearer_auth(TEAM_KEY).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["auto", "good-mini", "good-large"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_group_pins_a_name_and_keeps_its_fallbacks() {
    let up = upstream().await;
    // One model on two deployments: the first is down. Pinned by the group's name or an alias of it,
    // a request fails over to the other deployment; it never leaves the group for the cheap model.
    let models = [model("good-mini", 0.15, 1.5), model("down-large", 2.5, 4.0), model("good-large", 2.5, 4.0)];
    let groups = "[[groups]]\nname = \"large\"\nmembers = [\"down-large\", \"good-large\"]\nstrategy = \"priority\"\n\
                  [aliases]\nsmart = \"large\"\n";
    let gw = gateway(&up, &models, "", groups).await;
    for name in ["large", "smart"] {
        let mut body = hello();
        body["model"] = json!(name);
        body["stream"] = json!(name == "smart");
        let r = post(&gw, TEAM_KEY, body).await;
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.headers()["x-switchyard-model"], "good-large", "{name}");
    }
    let asked: Vec<String> = up.requests().iter().map(|r| r.body["model"].as_str().unwrap().to_owned()).collect();
    assert!(asked.iter().all(|m| m != "good-mini"), "{asked:?}");
    let route: Value = client()
        .post(format!("{}/v1/route", gw.url))
        .bearer_auth(TEAM_KEY)
        .json(&json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(route["decision"]["policy"], "pinned");
    assert_eq!(route["decision"]["fallbacks"], json!(["good-large"]));
    let list: Value =
        client().get(format!("{}/v1/models", gw.url)).bearer_auth(TEAM_KEY).send().await.unwrap().json().await.unwrap();
    let data = list["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["auto", "good-mini", "down-large", "good-large", "large", "smart"]);
    assert_eq!(data[4]["members"], json!(["down-large", "good-large"]));
    assert_eq!(data[5]["alias_of"], "large");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_failing_model_falls_back_before_the_first_token() {
    let up = upstream().await;
    // The cheap model is down; the router tries it first and falls back to the other one.
    let models = [model("down-mini", 0.15, 3.0), model("good-large", 2.5, 3.0)];
    let gw = gateway(&up, &models, "", "").await;
    let r = post(&gw, TEAM_KEY, hello()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchyard-model"], "good-large");
    let mut body = hello();
    body["stream"] = json!(true);
    let r = post(&gw, TEAM_KEY, body).await;
    assert_eq!(r.headers()["x-switchyard-model"], "good-large");
    let (chunks, done) = events(&r.text().await.unwrap());
    assert!(done && chunks.iter().all(|c| c["model"] == "good-large"));
    let asked: Vec<String> = up.requests().iter().map(|r| r.body["model"].as_str().unwrap().to_owned()).collect();
    assert!(asked.iter().filter(|m| *m == "down-mini").count() >= 2, "{asked:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn every_error_has_its_status_and_openai_body() {
    let up = upstream().await;
    let models = [
        model("good-mini", 0.15, 1.5),
        model("busy-one", 0.15, 1.5),
        model("slow-one", 0.15, 1.5),
        model("down-one", 0.15, 1.5),
    ];
    let server = "[server]\nmax_body_bytes = 2000\n";
    // A Retry-After longer than 1 s moves on rather than waits (and there is nowhere to move on to).
    let budget = "[execution.retry]\nmax_retry_after_ms = 1000\n\
                  [[limits.budgets]]\nscope = \"tenant\"\ntenant = \"poor-co\"\nlimit_usd = 0\nwindow = \"day\"\n";
    let gw = gateway(&up, &models, server, budget).await;
    let pinned = |m: &str| {
        let mut b = hello();
        b["model"] = json!(m);
        b
    };
    // No key, a wrong key.
    let r = client().post(format!("{}/v1/chat/completions", gw.url)).json(&hello()).send().await.unwrap();
    let (status, v) = error_of(r).await;
    assert_eq!((status, v["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    assert_eq!(error_of(post(&gw, "sk-wrong", hello()).await).await.0, 401);
    // Malformed JSON, a shape error, n > 1, an out-of-range value: 400, naming what is wrong.
    let r = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(TEAM_KEY)
        .header("content-type", "application/json")
        .body("{\"model\": \"auto\", \"messages\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 400);
    let secret = "my-secret-prompt-text";
    let (status, v) = error_of(post(&gw, TEAM_KEY, json!({"model": "auto", "messages": secret})).await).await;
    assert_eq!(status, 400);
    assert!(!v.to_string().contains(secret), "{v}");
    let mut n = hello();
    n["n"] = json!(3);
    let (status, v) = error_of(post(&gw, TEAM_KEY, n).await).await;
    assert_eq!((status, v["error"]["type"].as_str()), (400, Some("invalid_request_error")));
    assert!(v["error"]["message"].as_str().unwrap().contains("`n`"));
    // Too large: 413.
    let big = json!({"model": "auto", "messages": [{"role": "user", "content": "x".repeat(5000)}]});
    assert_eq!(error_of(post(&gw, TEAM_KEY, big).await).await.0, 413);
    // The upstream rate limits the only model: 429 with its Retry-After.
    let r = post(&gw, TEAM_KEY, pinned("busy-one")).await;
    assert_eq!(r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()), Some("7".to_owned()));
    let (status, v) = error_of(r).await;
    assert_eq!((status, v["error"]["type"].as_str()), (429, Some("rate_limit_error")));
    // A timeout: 504. A failing upstream: 502.
    assert_eq!(error_of(post(&gw, TEAM_KEY, pinned("slow-one")).await).await.0, 504);
    let (status, v) = error_of(post(&gw, TEAM_KEY, pinned("down-one")).await).await;
    assert_eq!((status, v["error"]["code"].as_str()), (502, Some("server")));
    // A tenant whose budget is spent: 429 insufficient_quota, and the upstream is not called.
    let before = up.requests().len();
    let (status, v) = error_of(post(&gw, POOR_KEY, hello()).await).await;
    assert_eq!((status, v["error"]["type"].as_str()), (429, Some("insufficient_quota")));
    assert_eq!(up.requests().len(), before);
    // An unknown path.
    let r = client().get(format!("{}/v2/nothing", gw.url)).send().await.unwrap();
    assert_eq!(error_of(r).await.0, 404);
    gw.shutdown().await;

    // A router that refuses low-confidence decisions: 422, before any provider is called.
    let weak = [model("good-weak", 0.15, -3.0)];
    let gw = gateway_with(&up, &weak, "confidence_floor = 0.9\non_low_confidence = \"refuse\"", "", "").await;
    let before = up.requests().len();
    let (status, v) = error_of(post(&gw, TEAM_KEY, hello()).await).await;
    assert_eq!((status, v["error"]["code"].as_str()), (422, Some("low_confidence")));
    assert_eq!(up.requests().len(), before);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_caller_over_its_rate_limit_gets_429_and_others_do_not() {
    let up = upstream().await;
    let limits = "[[limits.caller_rate_limits]]\nscope = \"key\"\nrequests_per_minute = 2\n\
                  tokens_per_minute = 100000\n";
    let gw = gateway(&up, &[model("good-mini", 0.15, 1.5)], "", limits).await;
    // Each answer says, as OpenAI's headers do, what the key has left of its minute.
    let header = |r: &reqwest::Response, name: &str| r.headers()[name].to_str().unwrap().to_owned();
    let mut tokens_left = 100_000;
    for (left, streamed) in [(1, false), (0, true)] {
        let r = if streamed {
            let mut body = hello();
            body["stream"] = json!(true);
            post(&gw, TEAM_KEY, body).await
        } else {
            post(&gw, TEAM_KEY, hello()).await
        };
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-ratelimit-limit-requests"), "2");
        assert_eq!(header(&r, "x-ratelimit-remaining-requests"), left.to_string());
        let reset = header(&r, "x-ratelimit-reset-requests");
        assert!(reset.starts_with("1m") || reset == "2m0s", "{reset}");
        assert_eq!(header(&r, "x-ratelimit-limit-tokens"), "100000");
        let tokens: u64 = header(&r, "x-ratelimit-remaining-tokens").parse().unwrap();
        assert!(tokens < tokens_left, "{tokens}");
        tokens_left = tokens;
        let _ = r.text().await.unwrap();
    }
    let r = post(&gw, TEAM_KEY, hello()).await;
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=120).contains(&wait), "{wait}");
    // The refusal says where the key stands too, as OpenAI's 429s do.
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "2");
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "0");
    let (status, v) = error_of(r).await;
    assert_eq!((status, v["error"]["type"].as_str()), (429, Some("rate_limit_error")));
    assert!(!v.to_string().contains(TEAM_KEY));
    assert_eq!(up.requests().len(), 2, "the refused request reached no provider");
    // Another key has its own allowance.
    let other = post(&gw, POOR_KEY, hello()).await;
    assert_eq!(other.status(), 200);
    assert_eq!(header(&other, "x-ratelimit-remaining-requests"), "1");
    // The Responses API says the same.
    let r = post_responses(&gw, POOR_KEY, json!({"model": "auto", "input": "What is the capital of France?"})).await;
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "0");
    gw.shutdown().await;
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn replicas_on_one_redis_state_share_a_callers_rate_limit() {
    let redis = support::redis::Redis::shared();
    let namespace = redis.namespace("gateway");
    let up = upstream().await;
    let models = [model("good-mini", 0.15, 1.5)];
    let limits = "[[limits.caller_rate_limits]]\nscope = \"key\"\nrequests_per_minute = 3\n\
                  tokens_per_minute = 100000\n";
    let server = format!("[server]\nstate = {{ redis_url_env = \"STATE_URL\", namespace = \"{namespace}\" }}\n");
    let env = [("STATE_URL", redis.url())];
    let a = gateway_env(&up, &models, "", &server, limits, &env).await;
    let b = gateway_env(&up, &models, "", &server, limits, &env).await;
    // One allowance for the key, whichever replica answers.
    for (gw, left) in [(&a, 2), (&b, 1), (&a, 0)] {
        let r = post(gw, TEAM_KEY, hello()).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-remaining-requests"], left.to_string().as_str());
        let _ = r.text().await.unwrap();
    }
    let (status, v) = error_of(post(&b, TEAM_KEY, hello()).await).await;
    assert_eq!((status, v["error"]["type"].as_str()), (429, Some("rate_limit_error")));
    assert_eq!(up.requests().len(), 3, "the refused request reached no provider");
    // Another key has its own allowance on the shared store.
    assert_eq!(post(&b, POOR_KEY, hello()).await.headers()["x-ratelimit-remaining-requests"], "2");
    // A replica that keeps its own state counts the key from nothing.
    let alone = gateway(&up, &models, "", limits).await;
    assert_eq!(post(&alone, TEAM_KEY, hello()).await.headers()["x-ratelimit-remaining-requests"], "2");
    for gw in [a, b, alone] {
        gw.shutdown().await;
    }
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn replicas_on_one_redis_state_continue_each_others_kept_responses() {
    let redis = support::redis::Redis::shared();
    let namespace = redis.namespace("gateway-responses");
    let up = upstream().await;
    let models = [model("good-mini", 0.15, 1.5)];
    let server = format!(
        "[server]\nstored_responses = 2\nstored_responses_max_bytes = 8192\n\
         state = {{ redis_url_env = \"STATE_URL\", namespace = \"{namespace}\" }}\n"
    );
    let env = [("STATE_URL", redis.url())];
    let a = gateway_env(&up, &models, "", &server, "", &env).await;
    let b = gateway_env(&up, &models, "", &server, "", &env).await;
    let url = |gw: &Running, id: &str| format!("{}/v1/responses/{id}", gw.url);
    // Answered by one replica, continued on the other.
    let first: Value =
        post_responses(&a, TEAM_KEY, json!({"model": "auto", "input": "What is the capital of France?"}))
            .await
            .json()
            .await
            .unwrap();
    let id = first["id"].as_str().unwrap().to_owned();
    let second =
        post_responses(&b, TEAM_KEY, json!({"model": "auto", "previous_response_id": id, "input": "And of Italy?"}))
            .await;
    assert_eq!(second.status(), 200);
    let second = second.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let sent = up.requests().pop().unwrap();
    let roles: Vec<&str> =
        sent.body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(sent.body["messages"][1]["content"], "Paris.");
    // Read back on the other replica as it was returned; another caller does not find it.
    let got: Value = client().get(url(&b, &id)).bearer_auth(TEAM_KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, first);
    assert_eq!(client().get(url(&b, &id)).bearer_auth(POOR_KEY).send().await.unwrap().status(), 404);
    assert_eq!(client().delete(url(&b, &id)).bearer_auth(POOR_KEY).send().await.unwrap().status(), 404);
    let stolen = json!({"model": "auto", "previous_response_id": id, "input": "And of Spain?"});
    let (status, error) = error_of(post_responses(&a, POOR_KEY, stolen).await).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("previous_response_not_found")));
    assert_eq!(client().get(url(&a, &id)).bearer_auth(TEAM_KEY).send().await.unwrap().status(), 200);
    // A conversation larger than the bytes allowed is answered and not kept.
    let long = "Tell me about Paris. ".repeat(500);
    let big: Value = post_responses(&a, TEAM_KEY, json!({"model": "auto", "input": long})).await.json().await.unwrap();
    let big = big["id"].as_str().unwrap();
    assert_eq!(client().get(url(&b, big)).bearer_auth(TEAM_KEY).send().await.unwrap().status(), 404);
    // A streamed answer is kept before its last event is sent: the other replica finds it at once.
    let events = stream_responses(&b, json!({"model": "auto", "input": "What is the capital of France?"})).await;
    let streamed = events.last().unwrap()["response"]["id"].as_str().unwrap().to_owned();
    let got: Value = client().get(url(&a, &streamed)).bearer_auth(TEAM_KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["output"][0]["content"][0]["text"], "Paris.");
    // Deleted on one replica, gone on both.
    assert_eq!(client().delete(url(&a, &streamed)).bearer_auth(TEAM_KEY).send().await.unwrap().status(), 200);
    assert_eq!(client().get(url(&b, &streamed)).bearer_auth(TEAM_KEY).send().await.unwrap().status(), 404);
    // Two at most, across the replicas: the follow-up is the one left, and two more push it out.
    assert_eq!(client().get(url(&a, &second)).bearer_auth(TEAM_KEY).send().await.unwrap().status(), 200);
    for gw in [&a, &b] {
        let _ = post_responses(gw, TEAM_KEY, json!({"model": "auto", "input": "hi"})).await.text().await;
    }
    assert_eq!(client().get(url(&a, &second)).bearer_auth(TEAM_KEY).send().await.unwrap().status(), 404);
    // A replica that keeps its own responses does not know them.
    let alone = gateway(&up, &models, "[server]\nstored_responses = 2\n", "").await;
    assert_eq!(client().get(url(&alone, &id)).bearer_auth(TEAM_KEY).send().await.unwrap().status(), 404);
    for gw in [a, b, alone] {
        gw.shutdown().await;
    }
}

/// The status of the team's `GET url` once the store answers again (not a 503), trying for 5 s.
async fn once_reachable(url: &str) -> u16 {
    let mut status = 0;
    for _ in 0..100 {
        status = client().get(url).bearer_auth(TEAM_KEY).send().await.unwrap().status().as_u16();
        if status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    status
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn with_the_shared_store_down_an_answer_is_given_unkept_and_a_follow_up_is_a_503() {
    let mut redis = support::redis::Redis::owned();
    let up = upstream().await;
    let models = [model("good-mini", 0.15, 1.5)];
    let server = "[server]\nstored_responses = 2\nstate = { redis_url_env = \"STATE_URL\" }\n";
    let gw = gateway_env(&up, &models, "", server, "", &[("STATE_URL", redis.url())]).await;
    let body = json!({"model": "auto", "input": "What is the capital of France?"});
    let kept: Value = post_responses(&gw, TEAM_KEY, body.clone()).await.json().await.unwrap();
    let url = format!("{}/v1/responses/{}", gw.url, kept["id"].as_str().unwrap());
    let status = || async { client().get(&url).bearer_auth(TEAM_KEY).send().await.unwrap().status().as_u16() };
    assert_eq!(status().await, 200);
    // A server that hangs: a 503 while it does, and the response is there when it is back.
    redis.pause();
    assert_eq!(status().await, 503);
    redis.resume();
    assert_eq!(once_reachable(&url).await, 200);
    // A server that is gone: the answer is given and not kept; what needs the store says so.
    redis.stop();
    let r = post_responses(&gw, TEAM_KEY, body).await;
    assert_eq!(r.status(), 200);
    let lost = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let follow_up = json!({"model": "auto", "previous_response_id": kept["id"], "input": "And of Italy?"});
    let (code, error) = error_of(post_responses(&gw, TEAM_KEY, follow_up).await).await;
    assert_eq!(code, 503, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("redis"), "{error}");
    assert_eq!(status().await, 503);
    assert_eq!(client().delete(&url).bearer_auth(TEAM_KEY).send().await.unwrap().status(), 503);
    // Back, empty (it keeps nothing on disk): neither is found.
    assert!(redis.start());
    assert_eq!(once_reachable(&url).await, 404);
    let lost = format!("{}/v1/responses/{lost}", gw.url);
    assert_eq!(client().get(&lost).bearer_auth(TEAM_KEY).send().await.unwrap().status(), 404);
    gw.shutdown().await;
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn shutdown_waits_for_a_kept_response_whose_client_has_gone() {
    let redis = support::redis::Redis::owned();
    let up = upstream().await;
    let models = [model("good-mini", 0.15, 1.5)];
    let server = "[server]\nstored_responses = 2\nstate = { redis_url_env = \"STATE_URL\" }\n";
    let gw = gateway_env(&up, &models, "", server, "", &[("STATE_URL", redis.url())]).await;
    // The store hangs while the answer is written; the client gives up and goes away.
    redis.pause();
    let impatient =
        client_with(rustls::RootCertStore::empty(), reqwest::Client::builder().timeout(Duration::from_millis(300)));
    let body = json!({"model": "auto", "input": "What is the capital of France?"});
    let sent = impatient.post(format!("{}/v1/responses", gw.url)).bearer_auth(TEAM_KEY).json(&body).send().await;
    assert!(sent.is_err_and(|e| e.is_timeout()), "the client timed out");
    // The shutdown waits for the write, and it lands once the store answers again.
    let mut stopping = tokio::spawn(gw.shutdown());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!stopping.is_finished(), "the shutdown did not wait for the write");
    redis.resume();
    tokio::time::timeout(Duration::from_secs(5), &mut stopping).await.unwrap().unwrap();
    assert_eq!(redis.reply("ZCARD {switchyard}:di:responses"), ":1", "the response was kept");
}

#[tokio::test]
async fn a_state_store_without_its_url_or_with_a_bad_one_stops_the_start_without_showing_it() {
    let text = format!(
        "[server]\nstate = {{ redis_url_env = \"STATE_URL\" }}\n[[providers]]\nname = \"up\"\nkind = \"simulated\"\n{}",
        model("m", 1.0, 2.0)
    );
    let config = GatewayConfig::from_toml_str(&text).unwrap();
    let err = Gateway::new(&config, &|_| None).unwrap_err();
    assert_eq!(err.kind(), switchyard::ErrorKind::Config);
    assert!(err.to_string().contains("`STATE_URL` (redis_url_env) is not set"), "{err}");
    let secret = "redis://user:s3cret-pw@127.0.0.1:notaport";
    let err = Gateway::new(&config, &|name| (name == "STATE_URL").then(|| secret.to_owned())).unwrap_err();
    assert_eq!(err.kind(), switchyard::ErrorKind::Config);
    assert!(err.to_string().contains("STATE_URL") && !err.to_string().contains("s3cret"), "{err}");
    // An unknown field in the section is refused by name.
    let typo = text.replace("redis_url_env", "redis_url");
    assert!(GatewayConfig::from_toml_str(&typo).unwrap_err().to_string().contains("redis_url"));
}

/// Serves `config_text` with `env` until the returned sender fires; the URL and the server's task.
async fn serve(
    config_text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let config = GatewayConfig::from_toml_str(config_text).unwrap();
    let gateway = Gateway::new(&config, env).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(gateway.serve(listener, async move {
        let _ = stopped.await;
    }));
    (url, stop, done)
}

#[tokio::test]
async fn an_anthropic_provider_answers_in_openai_shape() {
    let up = Server::start(|_| {
        Reply::json(
            200,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
                   "content": [{"type": "text", "text": "Ciao."}], "stop_reason": "end_turn",
                   "usage": {"input_tokens": 11, "output_tokens": 3}})
            .to_string(),
        )
    })
    .await;
    let text = format!(
        "[[providers]]\nname = \"anthropic\"\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key_env = \"A\"\n\
         [[models]]\nid = \"haiku\"\nprovider = \"anthropic\"\napi_name = \"claude-3-5-haiku-20241022\"\n\
         context_window = 200000\nmax_output_tokens = 8192\npricing = {{ input_per_mtok = 0.8, output_per_mtok = 4 }}\n",
        up.url
    );
    let (url, stop, done) = serve(&text, &|v| (v == "A").then(|| "sk-ant-789".to_owned())).await;
    let mut body = hello();
    body["top_p"] = json!(0.5);
    let v: Value =
        client().post(format!("{url}/v1/chat/completions")).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Ciao.");
    assert_eq!(v["usage"]["prompt_tokens"], 11);
    let sent = up.only_request();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-789"));
    assert_eq!(sent.body["top_p"], 0.5);
    // A parameter the Messages API cannot carry: the only model refuses it, named, and nothing is sent.
    let mut seeded = hello();
    seeded["seed"] = json!(7);
    let (status, v) =
        error_of(client().post(format!("{url}/v1/chat/completions")).json(&seeded).send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("`seed`"), "{v}");
    assert_eq!(up.requests().len(), 1);
    let _ = stop.send(());
    done.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_gemini_provider_answers_in_openai_shape() {
    // A Gemini upstream: the gateway's client speaks OpenAI, the upstream Google's format.
    let up = Server::start(|_| {
        Reply::json(
            200,
            json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text": "Bonjour."}]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3, "totalTokenCount": 12},
                "modelVersion": "gemini-2.5-flash"
            })
            .to_string(),
        )
    })
    .await;
    let text = format!(
        "[[providers]]\nname = \"google\"\nkind = \"gemini\"\nbase_url = \"{}/v1beta\"\napi_key_env = \"G\"\n\
         [[models]]\nid = \"flash\"\nprovider = \"google\"\napi_name = \"gemini-2.5-flash\"\n\
         context_window = 1000000\nmax_output_tokens = 8192\npricing = {{ input_per_mtok = 0.3, output_per_mtok = 2.5 }}\n",
        up.url
    );
    let (url, stop, done) = serve(&text, &|v| (v == "G").then(|| "g-key-123".to_owned())).await;
    let r = client().post(format!("{url}/v1/chat/completions")).json(&hello()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Bonjour.");
    assert_eq!((v["usage"]["prompt_tokens"].as_u64(), v["usage"]["completion_tokens"].as_u64()), (Some(9), Some(3)));
    let sent = up.only_request();
    assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(sent.header("x-goog-api-key"), Some("g-key-123"));
    let _ = stop.send(());
    done.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_azure_deployment_is_called_by_its_path_and_api_key() {
    let up = Server::start(|_| {
        Reply::json(
            200,
            json!({"id": "a-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                   "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hallo."}, "finish_reason": "stop",
                                "content_filter_results": {}}],
                   "usage": {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10}})
            .to_string(),
        )
    })
    .await;
    let text = format!(
        "[[providers]]\nname = \"az\"\nkind = \"azure\"\nbase_url = \"{}\"\napi_key_env = \"AZ\"\napi_version = \"2024-10-21\"\n\
         [[models]]\nid = \"gpt-4o\"\nprovider = \"az\"\napi_name = \"gpt4o-prod\"\n\
         context_window = 128000\nmax_output_tokens = 16384\npricing = {{ input_per_mtok = 2.5, output_per_mtok = 10 }}\n",
        up.url
    );
    let (url, stop, done) = serve(&text, &|v| (v == "AZ").then(|| "az-key-456".to_owned())).await;
    let v: Value =
        client().post(format!("{url}/v1/chat/completions")).json(&hello()).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hallo.");
    let sent = up.only_request();
    assert_eq!(sent.path, "/openai/deployments/gpt4o-prod/chat/completions");
    assert_eq!(sent.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(sent.header("api-key"), Some("az-key-456"));
    let _ = stop.send(());
    done.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_bedrock_model_is_called_signed() {
    let up = Server::start(|_| {
        Reply::json(
            200,
            json!({"output": {"message": {"role": "assistant", "content": [{"text": "Hola."}]}},
                   "stopReason": "end_turn", "usage": {"inputTokens": 7, "outputTokens": 2, "totalTokens": 9},
                   "metrics": {"latencyMs": 120}})
            .to_string(),
        )
    })
    .await;
    let text = format!(
        "[[providers]]\nname = \"aws\"\nkind = \"bedrock\"\nbase_url = \"{}\"\nregion = \"eu-west-1\"\n\
         access_key_id_env = \"AK\"\nsecret_access_key_env = \"SK\"\n\
         [[models]]\nid = \"haiku\"\nprovider = \"aws\"\napi_name = \"anthropic.claude-3-5-haiku-20241022-v1:0\"\n\
         context_window = 200000\nmax_output_tokens = 8192\npricing = {{ input_per_mtok = 0.8, output_per_mtok = 4 }}\n",
        up.url
    );
    let env = |v: &str| match v {
        "AK" => Some("AKIDEXAMPLE".to_owned()),
        "SK" => Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned()),
        _ => None,
    };
    let (url, stop, done) = serve(&text, &env).await;
    let v: Value =
        client().post(format!("{url}/v1/chat/completions")).json(&hello()).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hola.");
    let sent = up.only_request();
    assert_eq!(sent.path, "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse");
    let auth = sent.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && auth.contains("/eu-west-1/bedrock/aws4_request"),
        "{auth}"
    );
    assert!(!format!("{v}").contains("wJalrXUtnFEMI"));
    let _ = stop.send(());
    done.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_concurrency_limit_answers_503_with_retry_after() {
    let up = upstream().await;
    let gw = gateway(&up, &[model("slow-one", 0.15, 1.5)], "[server]\nmax_concurrency = 1\n", "").await;
    let mut slow = hello();
    slow["stream"] = json!(true);
    let first = post(&gw, TEAM_KEY, slow).await;
    assert_eq!(first.status(), 200, "the stream holds the only slot until it ends");
    let r = post(&gw, TEAM_KEY, hello()).await;
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(error_of(r).await.0, 503);
    let (_, done) = events(&first.text().await.unwrap());
    assert!(done);
    // The slot is free again once the stream ended.
    let mut again = hello();
    again["stream"] = json!(true);
    assert_eq!(post(&gw, TEAM_KEY, again).await.status(), 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn side_endpoints_route_health_and_metrics() {
    let (up, gw) = standard().await;
    let r = client().post(format!("{}/v1/route", gw.url)).bearer_auth(TEAM_KEY).json(&hello()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let d = &v["decision"];
    assert!(d["model"].is_string() && d["explanation"].as_str().unwrap().contains("chose"));
    assert_eq!(d["ranking"].as_array().unwrap().len(), 2);
    assert!(up.requests().is_empty(), "a dry run calls no provider");
    for path in ["/health", "/ready"] {
        assert_eq!(client().get(format!("{}{path}", gw.url)).send().await.unwrap().status(), 200);
    }
    let health: Value = client().get(format!("{}/health", gw.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["models"][0]["model"], "good-mini");
    assert_eq!(health["models"][0]["state"]["state"], "closed", "{health}");
    assert_eq!(post(&gw, TEAM_KEY, hello()).await.status(), 200);
    let r = client().get(format!("{}/metrics", gw.url)).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for metric in [
        "switchyard_decisions_total",
        "switchyard_attempts_total",
        "switchyard_requests_total",
        "switchyard_gateway_requests_total",
    ] {
        assert!(text.contains(metric), "{metric} missing from\n{text}");
    }
    assert!(!text.contains(TEAM_KEY) && !text.contains("acme"), "no key or tenant in metrics");
    gw.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_stream_finish() {
    let up = upstream().await;
    let gw = gateway(&up, &[model("slow-one", 0.15, 1.5)], "", "").await;
    let mut body = hello();
    body["stream"] = json!(true);
    let response = post(&gw, TEAM_KEY, body).await;
    assert_eq!(response.status(), 200);
    let url = gw.url.clone();
    // Shut down while the upstream pauses mid-answer; the stream still ends with [DONE].
    let stopping = tokio::spawn(gw.shutdown());
    let (chunks, done) = events(&response.text().await.unwrap());
    assert!(done, "the stream was cut: {chunks:?}");
    stopping.await.unwrap();
    assert!(client().get(format!("{url}/health")).send().await.is_err(), "the listener is closed after the drain");
}

async fn post_responses(gw: &Running, key: &str, body: Value) -> reqwest::Response {
    client().post(format!("{}/v1/responses", gw.url)).bearer_auth(key).json(&body).send().await.unwrap()
}

/// The events of a Responses API stream: each block's `event:` name and its data, which must agree.
fn named_events(text: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let (name, data) = block.split_once('\n').unwrap();
        let name = name.strip_prefix("event: ").unwrap();
        let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["type"], name, "{block}");
        assert_eq!(data["sequence_number"], out.len(), "{block}");
        out.push(data);
    }
    out
}

/// `body` streamed (`stream: true`) from `/v1/responses`: its events, checked as `named_events` does.
async fn stream_responses(gw: &Running, mut body: Value) -> Vec<Value> {
    body["stream"] = json!(true);
    let r = post_responses(gw, TEAM_KEY, body).await;
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    named_events(&r.text().await.unwrap())
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn the_responses_api_answers_in_json_and_in_semantic_events() {
    let (up, gw) = standard().await;
    let body = json!({"model": "auto", "instructions": "Be brief.", "input": "What is the capital of France?",
                      "max_output_tokens": 50, "store": false, "metadata": {"team": "geo"},
                      "client_metadata": {"session": "s1"}, "prompt_cache_retention": "24h", "top_logprobs": 0});
    let r = post_responses(&gw, TEAM_KEY, body.clone()).await;
    assert_eq!(r.status(), 200);
    let model = r.headers()["x-switchyard-model"].to_str().unwrap().to_owned();
    assert!(r.headers().contains_key("x-switchyard-decision-id"));
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["object"].as_str(), v["status"].as_str()), (Some("response"), Some("completed")));
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["model"], model.as_str());
    assert_eq!(v["output"].as_array().unwrap().len(), 1);
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["content"], json!([{"type": "output_text", "text": "Paris.", "annotations": []}]));
    assert_eq!(v["usage"]["input_tokens"], 12);
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 4);
    assert_eq!(v["usage"]["total_tokens"], 14);
    assert_eq!((v["max_output_tokens"].as_u64(), v["metadata"]["team"].as_str()), (Some(50), Some("geo")));
    // Upstream, it is a chat completion: the instructions first, then the input.
    let sent = up.only_request();
    assert_eq!(sent.body["messages"][0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(sent.body["messages"][1]["role"], "user");
    assert_eq!(sent.body["max_tokens"], 50);
    assert!(sent.body.get("store").is_none() && sent.body.get("metadata").is_none());
    assert!(sent.body.get("client_metadata").is_none() && sent.body.get("top_logprobs").is_none());
    assert_eq!(sent.body["prompt_cache_retention"], "24h");

    let events = stream_responses(&gw, body).await;
    assert_eq!(
        kinds(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[0]["response"]["status"], "in_progress");
    let text: String = events.iter().filter_map(|e| e["delta"].as_str()).collect();
    assert_eq!(text, "Paris.");
    assert_eq!(events[6]["text"], "Paris.");
    let done = &events[9]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "Paris.");
    assert_eq!(done["usage"]["output_tokens"], 2);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_responses_api_carries_a_tool_conversation_both_ways() {
    let (up, gw) = standard().await;
    let body = json!({
        "model": "auto",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            {"type": "function_call", "call_id": "call_0", "name": "weather", "arguments": "{\"city\":\"Lyon\"}"},
            {"type": "function_call_output", "call_id": "call_0", "output": "12C"},
            {"role": "user", "content": "And in Paris?"}
        ],
        "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": "required"
    });
    let v: Value = post_responses(&gw, TEAM_KEY, body.clone()).await.json().await.unwrap();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"].as_array().unwrap().len(), 1, "{v}");
    let call = &v["output"][0];
    assert_eq!((call["type"].as_str(), call["call_id"].as_str()), (Some("function_call"), Some("call_1")));
    assert_eq!((call["name"].as_str(), call["arguments"].as_str()), (Some("weather"), Some("{\"city\":\"Paris\"}")));
    // Upstream: the call and its output as chat messages, and the tool in chat's shape.
    let sent = up.only_request();
    let messages = sent.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["tool_calls"][0]["id"], "call_0");
    assert_eq!(messages[2], json!({"role": "tool", "tool_call_id": "call_0", "content": "12C"}));
    assert_eq!(sent.body["tools"][0]["function"]["name"], "weather");
    assert_eq!(sent.body["tool_choice"], "required");

    let events = stream_responses(&gw, body).await;
    assert_eq!(
        kinds(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[2]["item"]["status"], "in_progress");
    assert_eq!(events[4]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(events[6]["response"]["output"][0]["call_id"], "call_1");
    gw.shutdown().await;
}

#[tokio::test]
async fn the_responses_api_refuses_what_it_cannot_serve_in_openais_error_shape() {
    let (up, gw) = standard().await;
    let cases = [
        (
            TEAM_KEY,
            json!({"model": "auto", "input": "hi", "previous_response_id": "resp_1"}),
            400,
            "previous_response_id",
        ),
        (TEAM_KEY, json!({"model": "auto", "input": "hi", "tools": [{"type": "web_search"}]}), 400, "tools[0]"),
        (TEAM_KEY, json!({"model": "no-such-model", "input": "hi"}), 404, "no-such-model"),
        (TEAM_KEY, json!({"input": "hi"}), 400, "model"),
        (TEAM_KEY, json!({"model": "auto", "input": "hi", "seed": 1.5}), 400, "`seed`"),
        (TEAM_KEY, json!({"model": "auto", "input": "hi", "seed": "7"}), 400, "`seed`"),
        ("sk-wrong", json!({"model": "auto", "input": "hi"}), 401, ""),
    ];
    for (key, body, status, says) in cases {
        let (got, error) = error_of(post_responses(&gw, key, body.clone()).await).await;
        assert_eq!(got, status, "{body}: {error}");
        assert!(error["error"]["message"].as_str().unwrap().contains(says), "{body}: {error}");
    }
    assert!(up.requests().is_empty(), "nothing reached the upstream");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_responses_stream_cut_off_after_its_first_words_ends_with_response_failed() {
    let up = upstream().await;
    let gw = gateway(&up, &[model("cut-mini", 0.15, 1.5)], "", "").await;
    let events = stream_responses(&gw, json!({"model": "cut-mini", "input": "What is the capital of France?"})).await;
    let kinds = kinds(&events);
    assert_eq!(kinds.first(), Some(&"response.created"));
    assert!(kinds.contains(&"response.output_text.delta"), "{kinds:?}");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert!(last["response"]["error"]["message"].is_string(), "{last}");
    assert_eq!(last["response"]["error"]["code"], "server_error");
    assert!(!kinds.contains(&"response.completed"));
    gw.shutdown().await;
}

/// The test certificates (`tests/tls/README.md`).
fn tls_file(name: &str) -> String {
    format!("{}/tests/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn with_tls_the_gateway_serves_https_and_only_https() {
    use rustls::pki_types::pem::PemObject;
    let up = upstream().await;
    let server =
        format!("[server]\ntls = {{ cert = \"{}\", key = \"{}\" }}\n", tls_file("server.pem"), tls_file("server.key"));
    let gw = gateway(&up, &[model("good-mini", 0.15, 1.5)], &server, "").await;
    let https = gw.url.replacen("http://", "https://", 1);
    // Clients that trust the test CA, and nothing else.
    let ca = || {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from_pem_file(tls_file("ca.pem")).unwrap()).unwrap();
        roots
    };
    let secure = client_with(ca(), reqwest::Client::builder());
    let chat = |client: &reqwest::Client, base: &str| {
        client.post(format!("{base}/v1/chat/completions")).bearer_auth(TEAM_KEY).json(&hello()).send()
    };
    let r = chat(&secure, &https).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Paris.");
    // Plain HTTP on the same port gets no answer; nor does a client that does not trust the CA.
    assert!(chat(&client(), &gw.url).await.is_err(), "plain HTTP was answered");
    assert!(chat(&client(), &https).await.is_err(), "a client without the CA connected");
    // Clients that connect and say nothing, or stop halfway through their hello, hold up no new
    // connection's handshake.
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let _idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut halfway = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut halfway, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
    // A new connection (no idle one to reuse) that must complete its own handshake.
    let fresh = client_with(ca(), reqwest::Client::builder().pool_max_idle_per_host(0));
    let again = tokio::time::timeout(Duration::from_secs(2), fresh.get(format!("{https}/health")).send()).await;
    assert_eq!(again.expect("a new handshake waited on a stalled one").unwrap().status(), 200);
    assert_eq!(up.requests().len(), 1, "only the HTTPS request reached the upstream");
    gw.shutdown().await;
}

#[test]
fn tls_files_that_cannot_serve_stop_the_start_naming_the_file() {
    let try_build = |cert: &str, key: &str| {
        let text = format!(
            "{}\n[server]\ntls = {{ cert = \"{cert}\", key = \"{key}\" }}\n[[providers]]\nname = \"up\"\nkind = \"simulated\"\n",
            model("m", 1.0, 1.0)
        );
        let config = GatewayConfig::from_toml_str(&text).unwrap();
        Gateway::new(&config, &|_| None).map(|_| ()).map_err(|e| e.to_string())
    };
    let build = |cert: &str, key: &str| try_build(cert, key).unwrap_err();
    let (cert, key) = (tls_file("server.pem"), tls_file("server.key"));
    assert!(try_build(&cert, &key).is_ok(), "the test pair serves");
    let ca = tls_file("ca.pem");
    let e = build("/nowhere/cert.pem", &key);
    assert!(e.contains("tls.cert") && e.contains("/nowhere/cert.pem"), "{e}");
    let e = build(&cert, &tls_file("README.md"));
    assert!(e.contains("tls.key") && e.contains("README.md"), "{e}");
    // A key is not a certificate.
    let e = build(&key, &key);
    assert!(e.contains("tls.cert"), "{e}");
    // The CA's certificate with the server's key: they do not fit.
    let e = build(&ca, &key);
    assert!(e.contains("does not fit"), "{e}");
    // The key's contents never appear.
    let secret = std::fs::read_to_string(&key).unwrap();
    let body = secret.lines().nth(1).unwrap();
    assert!(!build(&ca, &key).contains(body));
}

#[tokio::test]
async fn kept_responses_carry_a_conversation_on_for_their_caller_only() {
    let up = upstream().await;
    let models = [model("good-mini", 0.15, 1.5), model("cut-mini", 0.15, 1.0)];
    let gw = gateway(&up, &models, "[server]\nstored_responses = 2\n", "").await;
    let first: Value = post_responses(
        &gw,
        TEAM_KEY,
        json!({"model": "auto", "instructions": "Be brief.", "input": "What is the capital of France?"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(first["store"], true);
    let id = first["id"].as_str().unwrap().to_owned();
    // The follow-up carries the conversation: the earlier question and answer, then the new
    // question; the earlier instructions are not inherited.
    let second = post_responses(
        &gw,
        TEAM_KEY,
        json!({"model": "auto", "previous_response_id": id, "input": "And of Italy?", "store": false}),
    )
    .await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!((second["previous_response_id"].as_str(), second["store"].as_bool()), (Some(id.as_str()), Some(false)));
    let sent = up.requests().pop().unwrap();
    let roles: Vec<&str> =
        sent.body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(sent.body["messages"][1]["content"], "Paris.");
    // `store: false` kept nothing.
    let url = |id: &str| format!("{}/v1/responses/{id}", gw.url);
    let r = client().get(url(second["id"].as_str().unwrap())).bearer_auth(TEAM_KEY).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // The kept one, as it was returned; another caller does not find it, nor chain on it.
    let got: Value = client().get(url(&id)).bearer_auth(TEAM_KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, first);
    assert_eq!(client().get(url(&id)).bearer_auth(POOR_KEY).send().await.unwrap().status(), 404);
    assert_eq!(client().delete(url(&id)).bearer_auth(POOR_KEY).send().await.unwrap().status(), 404);
    // Chaining on a response not kept for the caller is OpenAI's 400, with the code clients read to
    // send the whole conversation instead.
    let stolen = json!({"model": "auto", "previous_response_id": id, "input": "And of Spain?"});
    let (status, error) = error_of(post_responses(&gw, POOR_KEY, stolen).await).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "previous_response_not_found", "{error}");
    assert_eq!(error["error"]["param"], "previous_response_id", "{error}");
    // A streamed answer is kept once it is complete.
    let events = stream_responses(&gw, json!({"model": "auto", "input": "What is the capital of France?"})).await;
    let streamed = events.last().unwrap()["response"]["id"].as_str().unwrap().to_owned();
    let got: Value = client().get(url(&streamed)).bearer_auth(TEAM_KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["output"][0]["content"][0]["text"], "Paris.");
    // A stream that failed is not kept.
    let failed = stream_responses(&gw, json!({"model": "cut-mini", "input": "What is the capital of France?"})).await;
    let failed = failed.last().unwrap();
    assert_eq!(failed["type"], "response.failed");
    let r = client().get(url(failed["response"]["id"].as_str().unwrap())).bearer_auth(TEAM_KEY).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // Deleted: gone. Two kept at most: a third pushes the oldest out.
    let deleted: Value =
        client().delete(url(&streamed)).bearer_auth(TEAM_KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(deleted, json!({"id": streamed, "object": "response.deleted", "deleted": true}));
    assert_eq!(client().get(url(&streamed)).bearer_auth(TEAM_KEY).send().await.unwrap().status(), 404);
    for _ in 0..2 {
        let _ = post_responses(&gw, TEAM_KEY, json!({"model": "auto", "input": "hi"})).await.text().await;
    }
    assert_eq!(client().get(url(&id)).bearer_auth(TEAM_KEY).send().await.unwrap().status(), 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn without_kept_responses_a_follow_up_is_refused_saying_so() {
    let (up, gw) = standard().await;
    let body = json!({"model": "auto", "input": "hi", "previous_response_id": "resp_1"});
    let (status, error) = error_of(post_responses(&gw, TEAM_KEY, body).await).await;
    assert_eq!(status, 400);
    assert!(error["error"]["message"].as_str().unwrap().contains("stored_responses"), "{error}");
    let r = client().get(format!("{}/v1/responses/resp_1", gw.url)).bearer_auth(TEAM_KEY).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(up.requests().is_empty());
    gw.shutdown().await;
}
