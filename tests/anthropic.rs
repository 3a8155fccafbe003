//! The Anthropic adapter over real HTTP on 127.0.0.1: what it sends (path, `x-api-key`,
//! `anthropic-version`, the Messages API body), what it returns for answers in Anthropic's wire format
//! (text, tool use, cache usage, the full event stream), how every failure maps to an error kind
//! (statuses including 529, `error` events, cut streams, malformed and oversized bodies, timeouts),
//! that no key or prompt text leaks, and the router end to end.

#![cfg(feature = "anthropic")]
#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{Piece, Reply, Server, assert_clean, assert_status_errors, collect, model, pieces, secret_request};
use switchyard::execute::retry::RetryPolicy;
use switchyard::execute::{AttemptOutcome, AttemptReason};
use switchyard::provider::anthropic::{Anthropic, AnthropicBuilder};
use switchyard::{
    Catalog, ContentPart, ErrorKind, ExecutionConfig, FinishReason, ImageDetail, Message, ModelProfile, Pricing,
    Provider, Request, Router, StreamEvent, Tool, ToolCall, Usage,
};

const KEY: &str = "sk-ant-api03-test-0123456789";

fn builder(server: &Server) -> AnthropicBuilder {
    Anthropic::builder("anthropic").base_url(&server.url).api_key(KEY)
}

fn adapter(server: &Server) -> Anthropic {
    builder(server).build().unwrap()
}

const MESSAGE: &str = r#"{
  "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
  "content": [{"type": "text", "text": "Canberra."}],
  "stop_reason": "end_turn", "stop_sequence": null,
  "usage": {"input_tokens": 12, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 3000,
            "output_tokens": 6, "service_tier": "standard"}
}"#;

#[tokio::test]
async fn complete_sends_messages_api_wire_format_and_converts_cache_usage() {
    let server = Server::always(Reply::json(200, MESSAGE)).await;
    let anthropic = builder(&server).header("anthropic-beta", "prompt-caching-2024-07-31").build().unwrap();
    let profile = model("anthropic", "claude-3-5-haiku-latest").with_context(200_000, 8_192);
    let request = Request::new("What is the capital of Australia?")
        .with_system("Answer in one word.")
        .with_temperature(0.0)
        .with_stop("###");
    let response = anthropic.complete(&profile, &request).await.unwrap();

    assert_eq!(response.content(), "Canberra.");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    // Our input includes cache reads and writes: 12 + 3000 + 1000; cached = the reads.
    assert_eq!(response.usage, Usage::new(4012, 6).with_cached_input(3000));

    let sent = server.only_request();
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/v1/messages"));
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("anthropic-beta"), Some("prompt-caching-2024-07-31"));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        sent.body,
        json!({
            "model": "claude-3-5-haiku-latest",
            "max_tokens": 8192,
            "system": "Answer in one word.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "What is the capital of Australia?"}]}],
            "temperature": 0.0,
            "stop_sequences": ["###"]
        })
    );
}

#[tokio::test]
async fn tools_tool_use_and_images() {
    let body = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-0",
        "content":[{"type":"text","text":"I'll check the weather."},
                   {"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{"location":"San Francisco, CA","unit":"celsius"}}],
        "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":91}}"#;
    let server = Server::always(Reply::json(200, body)).await;
    let schema = r#"{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}"#;
    let request = Request::from_messages(vec![
        Message::user("Weather where this photo was taken?")
            .with_part(ContentPart::image("data:image/jpeg;base64,/9j/4AAQSkZJRg==", ImageDetail::Auto))
            .with_part(ContentPart::image("https://example.com/photo.png", ImageDetail::High)),
        Message::assistant("").with_tool_call(ToolCall::new("toolu_0", "locate", "{\"photo\":1}")),
        Message::tool_result("toolu_0", "San Francisco"),
    ])
    .with_tool(Tool::new("get_weather", "Current weather", schema))
    .with_max_tokens(1024);
    let response = adapter(&server).complete(&model("anthropic", "claude-sonnet-4-0"), &request).await.unwrap();

    assert_eq!(response.content(), "I'll check the weather.");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.usage, Usage::new(472, 91));
    assert_eq!(response.tool_calls.len(), 1);
    let call = &response.tool_calls[0];
    assert_eq!((call.id.as_str(), call.name.as_str()), ("toolu_01A09q90qw90lq917835lq9", "get_weather"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&call.arguments).unwrap(),
        json!({"location": "San Francisco, CA", "unit": "celsius"})
    );

    let sent = server.only_request().body;
    assert_eq!(sent["max_tokens"], 1024);
    assert_eq!(
        sent["tools"],
        json!([{"name": "get_weather", "description": "Current weather",
                "input_schema": serde_json::from_str::<serde_json::Value>(schema).unwrap()}])
    );
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "Weather where this photo was taken?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/photo.png"}}
            ]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_0", "name": "locate", "input": {"photo": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": "San Francisco"}]}
        ])
    );
}

/// Anthropic's event stream, as its reference shows it: named events, a ping, text and tool-input
/// deltas, usage in `message_start` and `message_delta`.
fn full_stream() -> String {
    [
        r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-0","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":100,"output_tokens":1}}}"#,
        r#"event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"event: ping
data: {"type": "ping"}"#,
        r#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay, "}}"#,
        r#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"checking."}}"#,
        r#"event: content_block_stop
data: {"type":"content_block_stop","index":0}"#,
        r#"event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}"#,
        r#"event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        r#"event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"San Fra"}}"#,
        r#"event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ncisco, CA\"}"}}"#,
        r#"event: content_block_stop
data: {"type":"content_block_stop","index":1}"#,
        r#"event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}"#,
        r#"event: message_stop
data: {"type":"message_stop"}"#,
    ]
    .iter()
    .map(|e| format!("{e}\n\n"))
    .collect()
}

#[tokio::test]
async fn stream_text_tool_input_and_usage() {
    let server = Server::always(Reply::sse(pieces(&full_stream(), 41))).await;
    let request = Request::new("Weather in SF?").with_tool(Tool::new("get_weather", "weather", "{}"));
    let stream = adapter(&server).stream(&model("anthropic", "claude-sonnet-4-0"), &request).await.unwrap();
    let events: Vec<StreamEvent> = collect(stream).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        events,
        vec![
            StreamEvent::Delta("Okay, ".into()),
            StreamEvent::Delta("checking.".into()),
            StreamEvent::ToolCall(ToolCall::new(
                "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "get_weather",
                r#"{"location": "San Francisco, CA"}"#
            )),
            StreamEvent::Usage(Usage::new(125, 89).with_cached_input(100)),
            StreamEvent::Finish(FinishReason::ToolCalls),
        ]
    );
    let sent = server.only_request();
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
}

const START: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"m","usage":{"input_tokens":5,"output_tokens":1}}}"#;
const TEXT: &str = r#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Once"}}"#;
const OVERLOADED: &str = r#"event: error
data: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#;

#[tokio::test]
async fn error_events_and_cut_streams() {
    // An overload after content: a stream item, then the end.
    let server = Server::always(Reply::events(&[START, TEXT, OVERLOADED, TEXT])).await;
    let events =
        collect(adapter(&server).stream(&model("anthropic", "m"), &Request::new("story")).await.unwrap()).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].as_ref().unwrap(), &StreamEvent::Delta("Once".into()));
    let err = events[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert!(err.is_retryable() && err.to_string().contains("overloaded_error"), "{err}");
    assert_eq!(err.model().map(|m| m.as_str()), Some("m"));

    // Before any content: the opening call fails.
    let server = Server::always(Reply::events(&[START, OVERLOADED])).await;
    let err = adapter(&server).stream(&model("anthropic", "m"), &Request::new("story")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Server);

    // Other error types keep their meaning.
    let limited = r#"event: error
data: {"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#;
    let server = Server::always(Reply::events(&[START, limited])).await;
    let err = adapter(&server).stream(&model("anthropic", "m"), &Request::new("story")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::RateLimited);

    // Cut: the body ends before `message_stop`, or the connection drops.
    for tail in [vec![], vec![Piece::Sleep(Duration::from_millis(50)), Piece::Abort]] {
        let mut p = vec![Piece::Bytes(format!("{START}\n\n{TEXT}\n\n"))];
        p.extend(tail);
        let server = Server::always(Reply::sse(p)).await;
        let events =
            collect(adapter(&server).stream(&model("anthropic", "m"), &Request::new("story")).await.unwrap()).await;
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[1].as_ref().unwrap_err().kind(), ErrorKind::Decode);
    }
}

fn error_body(kind: &str, message: &str) -> String {
    json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
}

#[tokio::test]
async fn every_error_status_maps_to_its_kind() {
    let cases: Vec<(Reply, ErrorKind, Option<Duration>)> = vec![
        (
            Reply::json(400, error_body("invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum")),
            ErrorKind::ContextOverflow,
            None,
        ),
        (
            Reply::json(
                400,
                error_body(
                    "invalid_request_error",
                    "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000",
                ),
            ),
            ErrorKind::ContextOverflow,
            None,
        ),
        (
            Reply::json(400, error_body("invalid_request_error", "messages: roles must alternate")),
            ErrorKind::BadRequest,
            None,
        ),
        (Reply::json(401, error_body("authentication_error", "invalid x-api-key")), ErrorKind::Auth, None),
        (
            Reply::json(403, error_body("permission_error", "Your API key does not have permission")),
            ErrorKind::Auth,
            None,
        ),
        (Reply::json(404, error_body("not_found_error", "model: claude-9")), ErrorKind::ModelNotFound, None),
        (
            Reply::json(413, error_body("request_too_large", "Request exceeds the maximum allowed number of bytes")),
            ErrorKind::BadRequest,
            None,
        ),
        (
            Reply::json(429, error_body("rate_limit_error", "Number of request tokens has exceeded your rate limit"))
                .header("retry-after", "12"),
            ErrorKind::RateLimited,
            Some(Duration::from_secs(12)),
        ),
        (Reply::json(500, error_body("api_error", "Internal server error")), ErrorKind::Server, None),
        (
            Reply::json(529, error_body("overloaded_error", "Overloaded")).header("retry-after", "2"),
            ErrorKind::Server,
            Some(Duration::from_secs(2)),
        ),
    ];
    assert_status_errors(cases, adapter, &model("anthropic", "claude-9"), &[KEY]).await;
}

#[tokio::test]
async fn malformed_and_oversized_bodies() {
    for body in ["<html>oops</html>", "{}", r#"{"content":[{"type":"text","text":1}],"usage":{}}"#, r#"{"content":"#] {
        let server = Server::always(Reply::json(200, body)).await;
        let err = adapter(&server).complete(&model("anthropic", "m"), &Request::new("x")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{body}: {err}");
    }
    let big = MESSAGE.replace("Canberra.", &"a".repeat(10_000));
    let server = Server::always(Reply::json(200, big)).await;
    let small = builder(&server).max_response_bytes(2048).build().unwrap();
    assert_eq!(
        small.complete(&model("anthropic", "m"), &Request::new("x")).await.unwrap_err().kind(),
        ErrorKind::Decode
    );
}

fn fast(server: &Server) -> Anthropic {
    builder(server).first_byte_timeout(Duration::from_millis(150)).timeout(Duration::from_millis(400)).build().unwrap()
}

#[tokio::test]
async fn first_byte_timeout() {
    let server = Server::always(Reply::json(200, MESSAGE).delayed(Duration::from_millis(600))).await;
    let start = Instant::now();
    let err = fast(&server).complete(&model("anthropic", "m"), &Request::new("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(start.elapsed() < Duration::from_millis(500), "{:?}", start.elapsed());
}

#[tokio::test]
async fn stream_first_content_timeout() {
    // `message_start` and pings come at once, but no content: the first-byte timeout covers the first
    // event that carries something.
    let ping = "event: ping\ndata: {\"type\": \"ping\"}\n\n";
    let stalled = Reply::sse(vec![
        Piece::Bytes(format!("{START}\n\n{ping}")),
        Piece::Sleep(Duration::from_millis(600)),
        Piece::Bytes(format!("{TEXT}\n\n")),
    ]);
    let server = Server::always(stalled).await;
    let err = fast(&server).stream(&model("anthropic", "m"), &Request::new("x")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
}

#[tokio::test]
async fn stream_total_timeout() {
    let slow =
        Reply::sse(vec![Piece::Bytes(format!("{START}\n\n{TEXT}\n\n")), Piece::Sleep(Duration::from_millis(800))]);
    let server = Server::always(slow).await;
    let start = Instant::now();
    let events = collect(fast(&server).stream(&model("anthropic", "m"), &Request::new("x")).await.unwrap()).await;
    assert_eq!(events.last().unwrap().as_ref().unwrap_err().kind(), ErrorKind::Timeout);
    assert!(start.elapsed() < Duration::from_millis(750), "{:?}", start.elapsed());
}

#[tokio::test]
async fn keys_and_prompts_never_leak() {
    let secret = "violet-harbour-4410-hidden";
    let request = secret_request(secret);
    // Echo the prompt and the key back, as a careless proxy might.
    let echo = error_body("invalid_request_error", &format!("bad: please keep this quiet: {secret} {KEY}"));
    let server = Server::always(Reply::json(400, echo)).await;
    let anthropic = adapter(&server);
    let text = format!("{anthropic:?} {:?}", builder(&server));
    assert!(!text.contains(KEY) && text.contains("anthropic-version"), "{text}");
    let err = anthropic.complete(&model("anthropic", "m"), &request).await.unwrap_err();
    assert_clean(&err, &[KEY, secret]);
    let err = anthropic.stream(&model("anthropic", "m"), &request).await.err().unwrap();
    assert_clean(&err, &[KEY, secret]);

    // The event stream never puts provider messages into errors.
    let leaky = format!(
        "event: error\ndata: {}",
        json!({"type": "error", "error": {"type": "api_error", "message": format!("failed on: {secret}")}})
    );
    let server = Server::always(Reply::events(&[START, TEXT, &leaky])).await;
    let events = collect(adapter(&server).stream(&model("anthropic", "m"), &request).await.unwrap()).await;
    let err = events.last().unwrap().as_ref().unwrap_err();
    assert_clean(err, &[KEY, secret]);
}

#[tokio::test]
async fn router_end_to_end_with_529() {
    let ok = Server::always(Reply::json(200, MESSAGE)).await;
    let overloaded = Server::always(Reply::json(529, error_body("overloaded_error", "Overloaded"))).await;
    // `busy` is cheaper, so the router tries it first.
    let catalog = Catalog::new([
        ModelProfile::new("haiku", "anthropic")
            .with_api_name("claude-3-5-haiku-latest")
            .with_pricing(Pricing::per_mtok(0.80, 4.00).with_cached_input(0.08)),
        ModelProfile::new("busy", "anthropic-busy").with_pricing(Pricing::per_mtok(0.25, 1.25)),
    ])
    .unwrap();
    let quick_retries = RetryPolicy::new().with_initial_backoff(Duration::from_millis(1));
    let router = Router::builder()
        .catalog(catalog)
        .provider(adapter(&ok))
        .provider(Anthropic::builder("anthropic-busy").base_url(&overloaded.url).api_key(KEY).build().unwrap())
        .execution(ExecutionConfig::new().with_retry(quick_retries))
        .build()
        .unwrap();

    // Through the real HTTP stack: the 529s are retried, then the router falls back to the other
    // provider, and the response lists every attempt.
    let response = router.complete(Request::new("capital of Australia?")).await.unwrap();
    assert_eq!(response.content(), "Canberra.");
    assert_eq!(response.model().as_str(), "haiku");
    let attempts: Vec<_> = response.attempts.iter().map(|a| (a.model.as_str(), a.reason, a.outcome.clone())).collect();
    let overloaded_529 = AttemptOutcome::Failed { kind: ErrorKind::Server, status: Some(529) };
    assert_eq!(
        attempts,
        [
            ("busy", AttemptReason::Primary, overloaded_529.clone()),
            ("busy", AttemptReason::Retry, overloaded_529.clone()),
            ("busy", AttemptReason::Retry, overloaded_529),
            ("haiku", AttemptReason::Fallback, AttemptOutcome::Answered),
        ]
    );
    assert_eq!(overloaded.requests().len(), 3);
    // 1012 uncached input tokens (12 plus 1000 cache writes) at $0.80/M, 3000 cache reads at $0.08/M,
    // 6 output tokens at $4/M; the failed calls cost nothing.
    let expected = (1012.0 * 0.80 + 3000.0 * 0.08 + 6.0 * 4.00) / 1e6;
    assert!((response.cost_usd - expected).abs() < 1e-12, "{} vs {expected}", response.cost_usd);

    // Only the overloaded model allowed: the typed, retryable 529 comes back with every attempt.
    let err = router.complete(Request::new("hello").with_allowed(["busy"])).await.unwrap_err();
    assert_eq!((err.kind(), err.status()), (ErrorKind::Server, Some(529)));
    assert!(err.is_retryable());
    assert_eq!(err.model().unwrap().as_str(), "busy");
    assert_eq!(err.attempts().len(), 3);
    assert_eq!(overloaded.requests().len(), 6);
}

#[test]
fn adapter_is_a_shareable_provider() {
    fn is<T: Provider + Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    is::<Anthropic>();
    let _: fn(Anthropic) -> std::sync::Arc<dyn Provider> = |p| std::sync::Arc::new(p);
}

#[tokio::test]
async fn version_header_can_be_changed() {
    let server = Server::always(Reply::json(200, MESSAGE)).await;
    for (b, expected) in [
        (builder(&server).version("2099-01-01"), "2099-01-01"),
        (builder(&server).header("anthropic-version", "2098-01-01"), "2098-01-01"),
        (builder(&server).header("anthropic-version", "2098-01-01").version("2099-01-01"), "2099-01-01"),
    ] {
        b.build().unwrap().complete(&model("anthropic", "m"), &Request::new("hi")).await.unwrap();
        let sent = server.requests().pop().unwrap();
        assert_eq!(sent.headers.get_all("anthropic-version").iter().count(), 1);
        assert_eq!(sent.header("anthropic-version"), Some(expected));
    }
}

#[test]
fn base_url_errors_never_echo_credentials() {
    for url in [
        "http://user:SECRET@[::1",
        "https://user:SECRET@[::1]:99999/v1",
        "http://user:SE@CRET@[::1/v1",
        "http://[::1/v1?api_key=SECRET",
        "https://host:99999/v1?key=SECRET",
        "user:SECRET@api.example.com",
        "ftp://user:SECRET@example.com/v1?token=SECRET",
    ] {
        let builder = Anthropic::builder("anthropic").base_url(url).api_key("sk-test");
        assert!(!format!("{builder:?}").contains("SECRET"), "{url}: {builder:?}");
        let err = builder.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{url}");
        assert!(!err.to_string().contains("SECRET") && !format!("{err:?}").contains("SECRET"), "{url}: {err:?}");
    }
}
