//! The OpenAI-compatible adapter over real HTTP on 127.0.0.1: what it sends (path, headers, JSON body),
//! what it returns for answers in OpenAI's wire format (completions, tool calls, JSON mode, images,
//! streams with tool-call deltas and usage), how every failure maps to an error kind (statuses, cut
//! streams, error events, malformed and oversized bodies, connect, first-byte and total timeouts), that
//! no key or prompt text leaks, and the router end to end.

#![cfg(feature = "openai")]
#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use support::{Piece, Reply, Server, assert_clean, collect, model, secret_request};
use switchyard::execute::retry::RetryPolicy;
use switchyard::provider::openai::{OpenAi, OpenAiBuilder};
use switchyard::{
    Catalog, ContentPart, ErrorKind, ExecutionConfig, FinishReason, ImageDetail, Message, ModelProfile, Pricing,
    Provider, Request, ResponseFormat, Router, StreamEvent, Tool, ToolCall, Usage,
};

const KEY: &str = "sk-test-9f8e7d6c5b4a3210";

fn builder(server: &Server) -> OpenAiBuilder {
    OpenAi::builder("openai").base_url(format!("{}/v1", server.url)).api_key(KEY)
}

fn adapter(server: &Server) -> OpenAi {
    builder(server).build().unwrap()
}

const COMPLETION: &str = r#"{
  "id": "chatcmpl-123", "object": "chat.completion", "created": 1677652288, "model": "gpt-4o-mini-2024-07-18",
  "system_fingerprint": "fp_44709d6fcb",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris.", "refusal": null},
               "logprobs": null, "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 19, "completion_tokens": 2, "total_tokens": 21,
            "prompt_tokens_details": {"cached_tokens": 16, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "accepted_prediction_tokens": 0}},
  "service_tier": "default"
}"#;

#[tokio::test]
async fn complete_sends_openai_wire_format_and_reads_usage() {
    let server = Server::always(Reply::json(200, COMPLETION)).await;
    let openai = builder(&server).header("OpenAI-Organization", "org-1").build().unwrap();
    let request = Request::new("What is the capital of France?")
        .with_system("Answer in one word.")
        .with_max_tokens(20)
        .with_temperature(0.2)
        .with_stop("\n\n");
    let response = openai.complete(&model("openai", "gpt-4o-mini"), &request).await.unwrap();

    assert_eq!(response.content(), "Paris.");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.usage, Usage::new(19, 2).with_cached_input(16));

    let sent = server.only_request();
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/v1/chat/completions"));
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.header("openai-organization"), Some("org-1"));
    assert_eq!(
        sent.body,
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Answer in one word."},
                {"role": "user", "content": "What is the capital of France?"}
            ],
            "max_tokens": 20,
            "temperature": 0.2,
            "stop": ["\n\n"]
        })
    );
}

#[tokio::test]
async fn tool_calls_json_mode_and_reasoning_usage() {
    let body = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,
        "tool_calls":[{"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                      {"id":"call_def","type":"function","function":{"name":"get_time","arguments":"{}"}}]},
        "finish_reason":"tool_calls"}],
        "usage":{"prompt_tokens":80,"completion_tokens":300,"prompt_tokens_details":{"cached_tokens":0},
                 "completion_tokens_details":{"reasoning_tokens":256}}}"#;
    let server = Server::always(Reply::json(200, body)).await;
    let openai = builder(&server).max_completion_tokens(true).build().unwrap();
    let schema = r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#;
    let request = Request::from_messages(vec![
        Message::user("Weather in Paris?"),
        Message::assistant("").with_tool_call(ToolCall::new("call_0", "get_time", "{}")),
        Message::tool_result("call_0", "12:00"),
    ])
    .with_tool(Tool::new("get_weather", "Current weather", schema))
    .with_response_format(ResponseFormat::Json)
    .with_max_tokens(1000);
    let response = openai.complete(&model("openai", "o4-mini"), &request).await.unwrap();

    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(
        response.tool_calls,
        vec![
            ToolCall::new("call_abc", "get_weather", r#"{"city":"Paris"}"#),
            ToolCall::new("call_def", "get_time", "{}")
        ]
    );
    assert_eq!(response.usage, Usage::new(80, 300).with_reasoning(256));

    let sent = server.only_request().body;
    assert_eq!(sent["max_completion_tokens"], 1000);
    assert!(sent.get("max_tokens").is_none());
    assert_eq!(sent["response_format"], json!({"type": "json_object"}));
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                 "parameters": serde_json::from_str::<serde_json::Value>(schema).unwrap()}}])
    );
    assert_eq!(
        sent["messages"][1],
        json!({"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function",
               "function": {"name": "get_time", "arguments": "{}"}}]})
    );
    assert_eq!(sent["messages"][2], json!({"role": "tool", "content": "12:00", "tool_call_id": "call_0"}));

    // A JSON schema format.
    let request = Request::new("x")
        .with_response_format(ResponseFormat::JsonSchema { name: "city".into(), schema: schema.into() });
    openai.complete(&model("openai", "o4-mini"), &request).await.unwrap();
    let sent = server.requests().pop().unwrap().body;
    assert_eq!(sent["response_format"]["type"], "json_schema");
    assert_eq!(sent["response_format"]["json_schema"]["name"], "city");
    assert_eq!(sent["response_format"]["json_schema"]["schema"]["required"], json!(["city"]));
}

#[tokio::test]
async fn images_are_sent_as_content_parts() {
    let server = Server::always(Reply::json(200, COMPLETION)).await;
    let request = Request::from_messages(vec![
        Message::user("What is in these pictures?")
            .with_part(ContentPart::image("https://example.com/cat.png", ImageDetail::High))
            .with_part(ContentPart::image("data:image/jpeg;base64,/9j/4AAQ", ImageDetail::Auto)),
    ]);
    adapter(&server).complete(&model("openai", "gpt-4o"), &request).await.unwrap();
    assert_eq!(
        server.only_request().body["messages"][0]["content"],
        json!([
            {"type": "text", "text": "What is in these pictures?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "auto"}}
        ])
    );
}

#[tokio::test]
async fn azure_style_query_and_key_header_and_keyless_servers() {
    let server = Server::always(Reply::json(200, COMPLETION)).await;
    let azure = OpenAi::builder("azure")
        .base_url(format!("{}/openai/deployments/gpt4o/", server.url))
        .api_key(KEY)
        .api_key_header("api-key")
        .query("api-version", "2024-10-21")
        .build()
        .unwrap();
    azure.complete(&model("azure", "gpt-4o"), &Request::new("hi")).await.unwrap();
    let sent = server.only_request();
    assert_eq!(sent.path, "/openai/deployments/gpt4o/chat/completions");
    assert_eq!(sent.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(sent.header("api-key"), Some(KEY));
    assert_eq!(sent.header("authorization"), None);

    // A local server (Ollama, llama.cpp, vLLM) without a key: no credentials are sent.
    let local = OpenAi::builder("ollama").base_url(format!("{}/v1", server.url)).build().unwrap();
    local.complete(&model("ollama", "llama3.2"), &Request::new("hi")).await.unwrap();
    assert_eq!(server.requests()[1].header("authorization"), None);
}

fn data(json: &str) -> String {
    format!("data: {json}\n\n")
}

/// A stream in OpenAI's format, cut into pieces at awkward places.
fn text_and_tool_stream() -> Vec<Piece> {
    let chunk = |delta: &str, finish: &str| {
        data(&format!(
            r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}],"usage":null}}"#
        ))
    };
    let mut text = String::new();
    text.push_str(&chunk(r#"{"role":"assistant","content":"","refusal":null}"#, "null"));
    text.push_str(&chunk(r#"{"content":"Hel"}"#, "null"));
    text.push_str(&chunk(r#"{"content":"lo"}"#, "null"));
    text.push_str(&chunk(
        r#"{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"lookup","arguments":""}}]}"#,
        "null",
    ));
    text.push_str(&chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"q\":"}}]}"#, "null"));
    text.push_str(&chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"rust\"}"}}]}"#, "null"));
    text.push_str(&chunk("{}", r#""tool_calls""#));
    text.push_str(&data(
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":9,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":0}}}"#,
    ));
    text.push_str("data: [DONE]\n\n");
    // Split every 37 bytes, so that events and even UTF-8 sequences straddle chunks.
    text.as_bytes()
        .chunks(37)
        .flat_map(|c| [Piece::Bytes(String::from_utf8_lossy(c).into_owned()), Piece::Sleep(Duration::from_millis(1))])
        .collect()
}

#[tokio::test]
async fn stream_text_tool_call_deltas_and_usage() {
    let server = Server::always(Reply::sse(text_and_tool_stream())).await;
    let request = Request::new("search for rust").with_tool(Tool::new("lookup", "search", "{}"));
    let stream = adapter(&server).stream(&model("openai", "gpt-4o-mini"), &request).await.unwrap();
    let events: Vec<StreamEvent> = collect(stream).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        events,
        vec![
            StreamEvent::Delta("Hel".into()),
            StreamEvent::Delta("lo".into()),
            StreamEvent::ToolCall(ToolCall::new("call_1", "lookup", r#"{"q":"rust"}"#)),
            StreamEvent::Usage(Usage::new(12, 9).with_cached_input(4)),
            StreamEvent::Finish(FinishReason::ToolCalls),
        ]
    );
    let sent = server.only_request();
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"], json!({"include_usage": true}));

    // Servers that reject `stream_options` can go without.
    let quiet = builder(&server).stream_usage(false).build().unwrap();
    let _ = collect(quiet.stream(&model("openai", "m"), &request).await.unwrap()).await;
    assert!(server.requests()[1].body.get("stream_options").is_none());
}

const FIRST: &str = r#"{"choices":[{"index":0,"delta":{"content":"Once upon"},"finish_reason":null}]}"#;

#[tokio::test]
async fn a_cut_stream_ends_with_a_decode_error() {
    // The body ends cleanly, but before `[DONE]`.
    let server =
        Server::always(Reply::sse(vec![Piece::Bytes(data(FIRST)), Piece::Bytes("data: {\"choi".into())])).await;
    let events = collect(adapter(&server).stream(&model("openai", "m"), &Request::new("story")).await.unwrap()).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].as_ref().unwrap(), &StreamEvent::Delta("Once upon".into()));
    let err = events[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(err.to_string().contains("[DONE]"), "{err}");
    assert_eq!(err.model().map(|m| m.as_str()), Some("m"));

    // The connection drops mid-body.
    let server = Server::always(Reply::sse(vec![
        Piece::Bytes(data(FIRST)),
        Piece::Sleep(Duration::from_millis(50)),
        Piece::Abort,
    ]))
    .await;
    let events = collect(adapter(&server).stream(&model("openai", "m"), &Request::new("story")).await.unwrap()).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].as_ref().unwrap_err().kind(), ErrorKind::Decode);
}

#[tokio::test]
async fn error_events_map_to_their_kind() {
    let error = data(
        r#"{"error":{"message":"The server had an error while processing your request","type":"server_error","param":null,"code":null}}"#,
    );
    // Mid-stream: an item, after the content already delivered, and the stream ends.
    let server = Server::always(Reply::sse(vec![
        Piece::Bytes(data(FIRST)),
        Piece::Bytes(error.clone()),
        Piece::Bytes(data(FIRST)),
    ]))
    .await;
    let events = collect(adapter(&server).stream(&model("openai", "m"), &Request::new("story")).await.unwrap()).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let err = events[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server);
    assert!(err.is_retryable());

    // Before any content: the call that opens the stream fails, so a router can still try elsewhere.
    let limited = data(r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#);
    let server = Server::always(Reply::sse(vec![Piece::Bytes(": keep-alive\n\n".into()), Piece::Bytes(limited)])).await;
    let err = adapter(&server).stream(&model("openai", "m"), &Request::new("story")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
}

fn error_body(message: &str, kind: &str, code: &str) -> String {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}}).to_string()
}

#[tokio::test]
async fn every_error_status_maps_to_its_kind() {
    let date = httpdate_in(Duration::from_secs(30));
    let cases: Vec<(Reply, ErrorKind, Option<Duration>)> = vec![
        (
            Reply::json(
                400,
                error_body(
                    "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
                    "invalid_request_error",
                    "context_length_exceeded",
                ),
            ),
            ErrorKind::ContextOverflow,
            None,
        ),
        // vLLM words it without a code.
        (
            Reply::json(
                400,
                r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens","type":"BadRequestError","param":null,"code":400}"#,
            ),
            ErrorKind::ContextOverflow,
            None,
        ),
        (
            Reply::json(400, error_body("Invalid value for 'temperature'", "invalid_request_error", "invalid_value")),
            ErrorKind::BadRequest,
            None,
        ),
        (
            Reply::json(
                401,
                error_body(&format!("Incorrect API key provided: {KEY}"), "invalid_request_error", "invalid_api_key"),
            ),
            ErrorKind::Auth,
            None,
        ),
        (
            Reply::json(
                403,
                error_body("Country not supported", "request_forbidden", "unsupported_country_region_territory"),
            ),
            ErrorKind::Auth,
            None,
        ),
        (
            Reply::json(
                404,
                error_body("The model `gpt-9` does not exist", "invalid_request_error", "model_not_found"),
            ),
            ErrorKind::ModelNotFound,
            None,
        ),
        (
            Reply::json(429, error_body("Rate limit reached for requests", "requests", "rate_limit_exceeded"))
                .header("retry-after", "3"),
            ErrorKind::RateLimited,
            Some(Duration::from_secs(3)),
        ),
        (
            Reply::json(429, error_body("Rate limit reached", "tokens", "rate_limit_exceeded"))
                .header("retry-after", "3")
                .header("retry-after-ms", "1500"),
            ErrorKind::RateLimited,
            Some(Duration::from_millis(1500)),
        ),
        (Reply::json(429, "{}").header("retry-after", &date), ErrorKind::RateLimited, Some(Duration::from_secs(30))),
        (Reply::json(500, error_body("The server had an error", "server_error", "")), ErrorKind::Server, None),
        (Reply::json(502, "<html>Bad gateway</html>"), ErrorKind::Server, None),
        (
            Reply::json(503, error_body("The engine is currently overloaded", "server_error", ""))
                .header("retry-after", "7"),
            ErrorKind::Server,
            Some(Duration::from_secs(7)),
        ),
        (Reply::json(529, "{}"), ErrorKind::Server, None),
    ];
    for (reply, kind, retry_after) in cases {
        let status = reply.status;
        let server = Server::always(reply).await;
        let openai = adapter(&server);
        let request = Request::new("hello");
        for err in [
            openai.complete(&model("openai", "gpt-9"), &request).await.unwrap_err(),
            openai.stream(&model("openai", "gpt-9"), &request).await.err().unwrap(),
        ] {
            assert_eq!(err.kind(), kind, "{status}: {err}");
            assert_eq!(err.status(), Some(status));
            if retry_after == Some(Duration::from_secs(30)) {
                // An HTTP date: the wait is what is left until then.
                let got = err.retry_after().unwrap();
                assert!(got > Duration::from_secs(25) && got <= Duration::from_secs(31), "{got:?}");
            } else {
                assert_eq!(err.retry_after(), retry_after, "{status}: {err:?}");
            }
            assert_eq!(err.is_retryable(), matches!(kind, ErrorKind::RateLimited | ErrorKind::Server));
            assert_clean(&err, &[KEY]);
        }
    }
}

fn httpdate_in(d: Duration) -> String {
    // IMF-fixdate, computed by hand so the test does not depend on the adapter's parser.
    let secs = (std::time::SystemTime::now() + d).duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mon =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][(month - 1) as usize];
    format!("{weekday}, {day:02} {mon} {year} {h:02}:{m:02}:{s:02} GMT")
}

#[tokio::test]
async fn malformed_unknown_empty_and_oversized_bodies() {
    let cases: &[(&str, ErrorKind)] = &[
        ("not json at all", ErrorKind::Decode),
        (r#"{"choices": []}"#, ErrorKind::Decode),
        (r#"{"choices": null, "usage": null}"#, ErrorKind::Decode),
        (r#"{"choices": [{"message": {"content": ["#, ErrorKind::Decode),
        (r#"{"choices": [{"message": {"content": 42}}]}"#, ErrorKind::Decode),
    ];
    for (body, kind) in cases {
        let server = Server::always(Reply::json(200, *body)).await;
        let err = adapter(&server).complete(&model("openai", "m"), &Request::new("x")).await.unwrap_err();
        assert_eq!(err.kind(), *kind, "{body}: {err}");
    }
    // Unknown fields everywhere are ignored.
    let odd = r#"{"new_top":1,"choices":[{"index":0,"extra":[1,2],"message":{"role":"assistant","content":"ok","annotations":[]},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"future":{"x":1}}}"#;
    let server = Server::always(Reply::json(200, odd)).await;
    assert_eq!(adapter(&server).complete(&model("openai", "m"), &Request::new("x")).await.unwrap().content(), "ok");

    // A body over the limit, with and without a content length.
    let big = format!(r#"{{"choices":[{{"message":{{"content":"{}"}}}}]}}"#, "a".repeat(8 << 10));
    let server = Server::always(Reply::json(200, big.clone())).await;
    let small = builder(&server).max_response_bytes(4 << 10).build().unwrap();
    let err = small.complete(&model("openai", "m"), &Request::new("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    assert!(err.to_string().contains("exceeds 4096 bytes"), "{err}");
    let chunked = Server::always(Reply::sse(
        big.as_bytes().chunks(1000).map(|c| Piece::Bytes(String::from_utf8_lossy(c).into())).collect(),
    ))
    .await;
    let small = builder(&chunked).max_response_bytes(4 << 10).build().unwrap();
    assert_eq!(small.complete(&model("openai", "m"), &Request::new("x")).await.unwrap_err().kind(), ErrorKind::Decode);

    // An event over the event limit, and a stream over the body limit.
    let server = Server::always(Reply::sse(vec![
        Piece::Bytes(data(FIRST)),
        Piece::Bytes(format!("data: {}", "x".repeat(3000))),
    ]))
    .await;
    let small = builder(&server).max_event_bytes(1024).build().unwrap();
    let events = collect(small.stream(&model("openai", "m"), &Request::new("x")).await.unwrap()).await;
    assert_eq!(events.last().unwrap().as_ref().unwrap_err().kind(), ErrorKind::Decode);
    let flood: Vec<Piece> = std::iter::repeat_n(Piece::Bytes(data(FIRST)), 200).collect();
    let server = Server::always(Reply::sse(flood)).await;
    let small = builder(&server).max_response_bytes(4 << 10).build().unwrap();
    let events = collect(small.stream(&model("openai", "m"), &Request::new("x")).await.unwrap()).await;
    let err = events.last().unwrap().as_ref().unwrap_err();
    assert!(err.kind() == ErrorKind::Decode && err.to_string().contains("exceeds"), "{err}");

    // A stream chunk that is not JSON.
    let server = Server::always(Reply::sse(vec![Piece::Bytes(data(FIRST)), Piece::Bytes(data("{oops"))])).await;
    let events = collect(adapter(&server).stream(&model("openai", "m"), &Request::new("x")).await.unwrap()).await;
    assert_eq!(events.last().unwrap().as_ref().unwrap_err().kind(), ErrorKind::Decode);
}

fn fast(server: &Server) -> OpenAiBuilder {
    builder(server)
        .connect_timeout(Duration::from_millis(150))
        .first_byte_timeout(Duration::from_millis(150))
        .timeout(Duration::from_millis(400))
}

#[tokio::test]
async fn first_byte_timeout() {
    // No headers in time.
    let server = Server::always(Reply::json(200, COMPLETION).delayed(Duration::from_millis(600))).await;
    let start = Instant::now();
    let err = fast(&server).build().unwrap().complete(&model("openai", "m"), &Request::new("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("first byte"), "{err}");
    assert!(start.elapsed() < Duration::from_millis(500), "{:?}", start.elapsed());
}

#[tokio::test]
async fn total_timeout() {
    // Headers at once, the body too slowly.
    let slow_body = Reply::sse(vec![
        Piece::Bytes("{\"choices\":".into()),
        Piece::Sleep(Duration::from_millis(800)),
        Piece::Bytes("[]}".into()),
    ]);
    let server = Server::always(slow_body).await;
    let start = Instant::now();
    let err = fast(&server).build().unwrap().complete(&model("openai", "m"), &Request::new("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(start.elapsed() >= Duration::from_millis(380) && start.elapsed() < Duration::from_millis(750));
}

#[tokio::test]
async fn stream_first_event_timeout() {
    // Headers and a comment at once, the first chunk late: the opening call fails.
    let late = Reply::sse(vec![
        Piece::Bytes(": ping\n\n".into()),
        Piece::Sleep(Duration::from_millis(600)),
        Piece::Bytes(data(FIRST)),
    ]);
    let server = Server::always(late).await;
    let start = Instant::now();
    let err = fast(&server).build().unwrap().stream(&model("openai", "m"), &Request::new("x")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(start.elapsed() < Duration::from_millis(500), "{:?}", start.elapsed());
}

#[tokio::test]
async fn stream_total_timeout() {
    // A stream that starts and then stalls past the total timeout.
    let stall = Reply::sse(vec![
        Piece::Bytes(data(FIRST)),
        Piece::Sleep(Duration::from_millis(800)),
        Piece::Bytes("data: [DONE]\n\n".into()),
    ]);
    let server = Server::always(stall).await;
    let start = Instant::now();
    let events =
        collect(fast(&server).build().unwrap().stream(&model("openai", "m"), &Request::new("x")).await.unwrap()).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].as_ref().unwrap_err().kind(), ErrorKind::Timeout);
    assert!(start.elapsed() < Duration::from_millis(750), "{:?}", start.elapsed());
}

#[tokio::test]
async fn connect_timeout_and_refused_connections() {
    let (addr, _listener, _fillers) = support::unaccepting_listener().await;
    let openai = OpenAi::builder("openai")
        .base_url(format!("http://{addr}/v1"))
        .api_key(KEY)
        .connect_timeout(Duration::from_millis(150))
        .first_byte_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let start = Instant::now();
    let err = openai.complete(&model("openai", "m"), &Request::new("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(err.to_string().contains("connect"), "{err}");
    assert!(start.elapsed() < Duration::from_millis(600), "{:?}", start.elapsed());
    assert_clean(&err, &[KEY]);

    let closed = support::closed_port().await;
    let openai = OpenAi::builder("openai").base_url(format!("http://{closed}/v1")).build().unwrap();
    let err = openai.complete(&model("openai", "m"), &Request::new("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn keys_and_prompts_never_leak() {
    let secret = "tangerine-cobalt-7731-quietly";
    let request = secret_request(secret);
    // Error bodies that quote the prompt and the key, as some servers do.
    let quoting = move |status: u16| {
        Reply::json(
            status,
            error_body(
                &format!("bad request: 'please keep this quiet: {secret}' with key {KEY}"),
                "invalid_request_error",
                "x",
            ),
        )
    };
    let server = Server::start(move |_| quoting(400)).await;
    let openai = builder(&server).header("X-Gateway-Token", "gw-secret-123").build().unwrap();
    for text in [format!("{openai:?}"), format!("{:?}", builder(&server).header("X-Gateway-Token", "gw-secret-123"))] {
        assert!(!text.contains(KEY) && !text.contains("gw-secret-123"), "{text}");
        assert!(text.contains("openai"), "{text}");
    }
    let err = openai.complete(&model("openai", "m"), &request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert_clean(&err, &[KEY, secret, "gw-secret-123"]);
    assert!(err.to_string().contains("invalid_request_error"), "the error type is kept: {err}");

    for status in [401, 403, 404, 408, 413, 422, 429, 500, 503, 529] {
        let server = Server::start(move |_| quoting(status)).await;
        let openai = adapter(&server);
        let err = openai.complete(&model("openai", "m"), &request).await.unwrap_err();
        assert_clean(&err, &[KEY, secret]);
        let err = openai.stream(&model("openai", "m"), &request).await.err().unwrap();
        assert_clean(&err, &[KEY, secret]);
    }

    // A harmless message is kept, sanitized and cut.
    let server = Server::always(Reply::json(
        400,
        error_body(&format!("Invalid\nvalue {}", "z".repeat(500)), "invalid_request_error", "bad"),
    ))
    .await;
    let err = adapter(&server).complete(&model("openai", "m"), &request).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Invalid value zzz") && text.len() < 400 && !text.contains('\n'), "{text}");

    // Errors from the builder do not echo the key either.
    let err = OpenAi::builder("openai").api_key("sk-bad\nkey-material").build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_clean(&err, &["key-material"]);
}

#[tokio::test]
async fn builder_rejects_bad_settings() {
    for b in [
        OpenAi::builder("openai").base_url("not a url"),
        OpenAi::builder("openai").base_url("ftp://example.com/v1"),
        OpenAi::builder("openai").header("bad header", "x"),
        OpenAi::builder("openai").header("x-ok", "bad\nvalue"),
        OpenAi::builder("openai").api_key_header("bad header"),
        OpenAi::builder("openai").timeout(Duration::ZERO),
        OpenAi::builder("openai").max_response_bytes(0),
        OpenAi::builder(""),
    ] {
        assert_eq!(b.build().unwrap_err().kind(), ErrorKind::Config);
    }
}

#[tokio::test]
async fn router_end_to_end_over_loopback() {
    let server = Server::always(Reply::json(200, COMPLETION)).await;
    let catalog = Catalog::new([ModelProfile::new("mini", "openai")
        .with_api_name("gpt-4o-mini")
        .with_pricing(Pricing::per_mtok(0.15, 0.60).with_cached_input(0.075))])
    .unwrap();
    let router = Router::builder().catalog(catalog).provider(adapter(&server)).build().unwrap();
    let response = router.complete(Request::new("What is the capital of France?")).await.unwrap();
    assert_eq!(response.content(), "Paris.");
    assert_eq!(response.model().as_str(), "mini");
    // 3 uncached input tokens at $0.15/M, 16 cached at $0.075/M, 2 output at $0.60/M.
    let expected = (3.0 * 0.15 + 16.0 * 0.075 + 2.0 * 0.60) / 1e6;
    assert!((response.cost_usd - expected).abs() < 1e-12, "{} vs {expected}", response.cost_usd);
    assert_eq!(server.only_request().body["model"], "gpt-4o-mini");

    // Streams go through the router too.
    let server = Server::always(Reply::sse(text_and_tool_stream())).await;
    let catalog = Catalog::new([ModelProfile::new("mini", "openai").with_api_name("gpt-4o-mini")]).unwrap();
    let router = Router::builder().catalog(catalog).provider(adapter(&server)).build().unwrap();
    let events: Vec<_> = router.stream(Request::new("hi")).await.unwrap().collect().await;
    assert!(matches!(events.last(), Some(Ok(StreamEvent::Finish(FinishReason::ToolCalls)))), "{events:?}");

    // With retries off, a failure surfaces once, typed, with the model and its attempt attached.
    let server = Server::always(Reply::json(503, "{}").header("retry-after", "1")).await;
    let catalog = Catalog::new([ModelProfile::new("mini", "openai")]).unwrap();
    let router = Router::builder()
        .catalog(catalog)
        .provider(adapter(&server))
        .execution(ExecutionConfig::new().with_retry(RetryPolicy::no_retries()))
        .build()
        .unwrap();
    let err = router.complete(Request::new("hi")).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.status(), err.model().map(|m| m.as_str())),
        (ErrorKind::Server, Some(503), Some("mini"))
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(server.requests().len(), 1, "one attempt");
    assert_eq!(err.attempts().len(), 1);
}

#[test]
fn adapter_is_a_shareable_provider() {
    fn is<T: Provider + Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    is::<OpenAi>();
    let _: fn(OpenAi) -> std::sync::Arc<dyn Provider> = |p| std::sync::Arc::new(p);
}

/// Records every tracing event and span field as text.
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut f = Fields(span.metadata().name().to_owned());
        span.record(&mut f);
        self.0.lock().unwrap().push(f.0);
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut f = Fields(String::new());
        values.record(&mut f);
        self.0.lock().unwrap().push(f.0);
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut f = Fields(String::new());
        event.record(&mut f);
        self.0.lock().unwrap().push(f.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn logs_carry_no_keys_or_prompts() {
    let secret = "marmalade-quartz-5521-private";
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let server = runtime.block_on(Server::start(move |rec| {
        if rec.body["stream"] == true {
            Reply::sse(text_and_tool_stream())
        } else if rec.body["max_tokens"] == 1 {
            Reply::json(400, error_body(&format!("echo: {secret}"), "invalid_request_error", "x"))
        } else {
            Reply::json(200, COMPLETION)
        }
    }));
    let openai = adapter(&server);
    let request = secret_request(secret);
    let exercise = || async {
        openai.complete(&model("openai", "m"), &request).await.unwrap();
        let _ = collect(openai.stream(&model("openai", "m"), &request).await.unwrap()).await;
        openai.complete(&model("openai", "m"), &request.clone().with_max_tokens(1)).await.unwrap_err();
    };
    // Once without a subscriber, so that every log statement on the way is registered before the
    // recorder is in scope: a statement first hit by another test's thread while the recorder's
    // interest is being computed could otherwise stay switched off.
    runtime.block_on(exercise());
    tracing::subscriber::with_default(Recorder(logs.clone()), || {
        tracing::callsite::rebuild_interest_cache();
        runtime.block_on(exercise());
    });
    let logs = logs.lock().unwrap();
    assert!(logs.iter().any(|l| l.contains("openai")), "the adapter logs its calls: {logs:?}");
    for line in logs.iter() {
        assert!(!line.contains(KEY) && !line.contains(secret), "{line}");
    }
}

/// URLs that do not parse, or parse into something that is not http(s), with credentials in the
/// user info, the query or the fragment.
const BAD_URLS: &[&str] = &[
    "http://user:SECRET@[::1",
    "https://user:SECRET@[::1]:99999/v1",
    "http://SECRET@host:notaport/v1",
    "http://user:SE@CRET@[::1/v1",
    "http://[::1/v1?api_key=SECRET",
    "https://host:99999/v1?key=SECRET&x=1",
    "http://[::1#SECRET",
    "user:SECRET@api.example.com",
    "ftp://user:SECRET@example.com/v1?token=SECRET",
    "foo:user:SECRET@example.com",
    "http://user:SECRET\n@[::1",
];

#[test]
fn base_url_errors_never_echo_credentials() {
    for url in BAD_URLS {
        let builder = OpenAi::builder("openai").base_url(*url).api_key("sk-test");
        assert!(!format!("{builder:?}").contains("SECRET"), "{url}: {builder:?}");
        let err = builder.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{url}");
        assert!(!err.to_string().contains("SECRET") && !format!("{err:?}").contains("SECRET"), "{url}: {err:?}");
    }
}
