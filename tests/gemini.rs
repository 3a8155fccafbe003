//! The Gemini adapter over real HTTP on 127.0.0.1: what it sends (the per-model path, `x-goog-api-key`
//! or a bearer token on Vertex AI, the `GenerateContentRequest` body), what it returns for answers in
//! Gemini's wire format (text, function calls, JSON, thinking and cache usage, the `alt=sse` stream),
//! how every failure maps to an error kind (Google's error bodies with their statuses and
//! `RetryInfo`, error chunks, cut streams, malformed and oversized bodies, timeouts), that no key,
//! token or prompt text leaks, and the router end to end.
//!
//! The fixtures follow the shapes of Google's API reference (`models.generateContent`,
//! `models.streamGenerateContent`, the error model of `google.rpc.Status`).

#![cfg(feature = "gemini")]
#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    Piece, Reply, Server, assert_clean, assert_status_errors, collect, model, pieces, secret_request, streamed_text,
};
use switchyard::execute::retry::RetryPolicy;
use switchyard::execute::{AttemptOutcome, AttemptReason};
use switchyard::provider::gemini::{Gemini, GeminiBuilder};
use switchyard::{
    Catalog, ContentPart, ErrorKind, ExecutionConfig, FinishReason, ImageDetail, Message, ModelProfile, Pricing,
    Provider, Request, ResponseFormat, Router, StreamEvent, Tool, ToolCall, ToolChoice, Usage,
};

const KEY: &str = "AIzaSyD-test-0123456789abcdefghijkl";
const TOKEN: &str = "ya29.a0-test-token-0123456789";

fn builder(server: &Server) -> GeminiBuilder {
    Gemini::builder("gemini").base_url(format!("{}/v1beta", server.url)).api_key(KEY)
}

fn adapter(server: &Server) -> Gemini {
    builder(server).build().unwrap()
}

/// A `generateContent` answer, as in Google's reference: text, finish reason, safety ratings, usage
/// with cached and thinking tokens, the model version and response id.
const ANSWER: &str = r#"{
  "candidates": [
    {
      "content": {"parts": [{"text": "Canberra."}], "role": "model"},
      "finishReason": "STOP",
      "avgLogprobs": -0.0123,
      "safetyRatings": [
        {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "NEGLIGIBLE"}
      ],
      "index": 0
    }
  ],
  "usageMetadata": {
    "promptTokenCount": 4012,
    "candidatesTokenCount": 6,
    "totalTokenCount": 4118,
    "cachedContentTokenCount": 3000,
    "thoughtsTokenCount": 100,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 4012}],
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 3000}]
  },
  "modelVersion": "gemini-2.5-flash",
  "responseId": "mAitaLmkHPPlz7IPvtfUqQ4"
}"#;

#[tokio::test]
async fn complete_sends_gemini_wire_format_and_reads_usage() {
    let server = Server::always(Reply::json(200, ANSWER)).await;
    let gemini = builder(&server).header("x-goog-user-project", "billing-project").build().unwrap();
    let request = Request::new("What is the capital of Australia?")
        .with_system("Answer in one word.")
        .with_temperature(0.0)
        .with_max_tokens(64)
        .with_stop("###");
    let response = gemini.complete(&model("gemini", "gemini-2.5-flash"), &request).await.unwrap();

    assert_eq!(response.content(), "Canberra.");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    // Output includes the thinking tokens; input already includes the cached ones.
    assert_eq!(response.usage, Usage::new(4012, 106).with_cached_input(3000).with_reasoning(100));

    let sent = server.only_request();
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/v1beta/models/gemini-2.5-flash:generateContent"));
    assert_eq!(sent.query, None, "the key is never in the URL");
    assert_eq!(sent.header("x-goog-api-key"), Some(KEY));
    assert_eq!(sent.header("x-goog-user-project"), Some("billing-project"));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.body,
        json!({
            "contents": [{"role": "user", "parts": [{"text": "What is the capital of Australia?"}]}],
            "systemInstruction": {"parts": [{"text": "Answer in one word."}]},
            "generationConfig": {"maxOutputTokens": 64, "temperature": 0.0, "stopSequences": ["###"]}
        })
    );
}

#[tokio::test]
async fn vertex_ai_with_a_bearer_token() {
    let server = Server::always(Reply::json(200, ANSWER)).await;
    let vertex = Gemini::builder("vertex")
        .vertex("my-project", "us-central1")
        .base_url(format!("{}/v1", server.url))
        .bearer_token(TOKEN)
        .build()
        .unwrap();
    let response = vertex.complete(&model("vertex", "gemini-2.0-flash-001"), &Request::new("hi")).await.unwrap();
    assert_eq!(response.content(), "Canberra.");
    let sent = server.only_request();
    assert_eq!(
        sent.path,
        "/v1/projects/my-project/locations/us-central1/publishers/google/models/gemini-2.0-flash-001:generateContent"
    );
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(sent.header("x-goog-api-key"), None);
    let text = format!("{vertex:?}");
    assert!(!text.contains(TOKEN) && text.contains("vertex: true"), "{text}");
}

/// A function call as Gemini sends it (no id; Gemini 3 adds a thought signature).
const FUNCTION_CALL: &str = r#"{
  "candidates": [{
    "content": {"role": "model", "parts": [
      {"text": "I'll check the weather."},
      {"functionCall": {"name": "get_weather", "args": {"location": "San Francisco, CA", "unit": "celsius"}},
       "thoughtSignature": "CiQBVKhc7ZKv0vX2Vw=="}
    ]},
    "finishReason": "STOP", "index": 0
  }],
  "usageMetadata": {"promptTokenCount": 472, "candidatesTokenCount": 91, "totalTokenCount": 563},
  "modelVersion": "gemini-3-pro-preview"
}"#;

#[tokio::test]
async fn tools_round_trip_with_names_and_thought_signatures() {
    let server = Server::always(Reply::json(200, FUNCTION_CALL)).await;
    let gemini = adapter(&server);
    let schema = r#"{"type":"object","properties":{"location":{"type":"string"}},"required":["location"],"additionalProperties":false}"#;
    let tool = Tool::new("get_weather", "Current weather", schema);
    let first = Request::new("Weather in SF?").with_tool(tool.clone()).with_tool_choice(ToolChoice::Auto);
    let response = gemini.complete(&model("gemini", "gemini-3-pro-preview"), &first).await.unwrap();

    assert_eq!(response.content(), "I'll check the weather.");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.usage, Usage::new(472, 91));
    let call = response.tool_calls[0].clone();
    assert_eq!(call.name, "get_weather");
    assert!(call.id.starts_with("call_0"), "{}", call.id);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&call.arguments).unwrap(),
        json!({"location": "San Francisco, CA", "unit": "celsius"})
    );
    let sent = server.only_request().body;
    assert_eq!(
        sent["tools"],
        json!([{"functionDeclarations": [{"name": "get_weather", "description": "Current weather",
            "parametersJsonSchema": serde_json::from_str::<serde_json::Value>(schema).unwrap()}]}])
    );
    assert_eq!(sent["toolConfig"], json!({"functionCallingConfig": {"mode": "AUTO"}}));

    // The caller runs the tool and sends the result back under the call's id.
    let second = Request::from_messages(vec![
        Message::user("Weather in SF?"),
        Message::assistant("I'll check the weather.").with_tool_call(call.clone()),
        Message::tool_result(call.id.clone(), r#"{"temperature": 18, "sky": "fog"}"#),
    ])
    .with_tool(tool);
    gemini.complete(&model("gemini", "gemini-3-pro-preview"), &second).await.unwrap();
    let sent = server.requests().pop().unwrap().body;
    assert_eq!(
        sent["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather in SF?"}]},
            {"role": "model", "parts": [
                {"text": "I'll check the weather."},
                {"functionCall": {"name": "get_weather", "args": {"location": "San Francisco, CA", "unit": "celsius"}},
                 "thoughtSignature": "CiQBVKhc7ZKv0vX2Vw=="}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temperature": 18, "sky": "fog"}}}
            ]}
        ])
    );
}

#[tokio::test]
async fn json_schema_output_and_images() {
    let answer = r#"{"candidates": [{"content": {"parts": [{"text": "{\"city\": \"Paris\"}"}], "role": "model"},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 270, "candidatesTokenCount": 7, "totalTokenCount": 277}}"#;
    let server = Server::always(Reply::json(200, answer)).await;
    let schema = r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#;
    let request = Request::from_messages(vec![
        Message::user("Where was this taken?")
            .with_part(ContentPart::image("data:image/jpeg;base64,/9j/4AAQSkZJRg==", ImageDetail::Auto))
            .with_part(ContentPart::image("gs://cloud-samples-data/generative-ai/image/scones.jpg", ImageDetail::High)),
    ])
    .with_response_format(ResponseFormat::JsonSchema { name: "place".into(), schema: schema.into() });
    let response = adapter(&server).complete(&model("gemini", "gemini-2.5-flash"), &request).await.unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(response.content()).unwrap(), json!({"city": "Paris"}));

    let sent = server.only_request().body;
    assert_eq!(
        sent["contents"][0]["parts"],
        json!([
            {"text": "Where was this taken?"},
            {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://cloud-samples-data/generative-ai/image/scones.jpg"}}
        ])
    );
    assert_eq!(
        sent["generationConfig"],
        json!({"responseMimeType": "application/json", "responseJsonSchema": serde_json::from_str::<serde_json::Value>(schema).unwrap()})
    );

    // Plain JSON mode, and the OpenAPI-subset field names for older models.
    let legacy = builder(&server).openapi_schemas(true).build().unwrap();
    let request = Request::new("a city").with_response_format(ResponseFormat::JsonSchema {
        name: "place".into(),
        schema: r#"{"type":"OBJECT","properties":{"city":{"type":"STRING"}}}"#.into(),
    });
    legacy.complete(&model("gemini", "gemini-1.5-flash"), &request).await.unwrap();
    let sent = server.requests().pop().unwrap().body;
    assert_eq!(sent["generationConfig"]["responseSchema"]["type"], "OBJECT");
    let request = Request::new("a city").with_response_format(ResponseFormat::Json);
    adapter(&server).complete(&model("gemini", "gemini-2.5-flash"), &request).await.unwrap();
    let sent = server.requests().pop().unwrap().body;
    assert_eq!(sent["generationConfig"], json!({"responseMimeType": "application/json"}));
}

/// A `streamGenerateContent?alt=sse` body as Google sends it: one whole `GenerateContentResponse` per
/// event, `\r\n\r\n` between events, running usage in every chunk, the finish reason and the final
/// counts in the last.
fn full_stream() -> String {
    [
        r#"data: {"candidates": [{"content": {"parts": [{"text": "The"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 8,"totalTokenCount": 8,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 8}]},"modelVersion": "gemini-2.5-flash","responseId": "r1"}"#,
        r#"data: {"candidates": [{"content": {"parts": [{"text": " opposite of hot is cold."}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 8,"totalTokenCount": 8},"modelVersion": "gemini-2.5-flash","responseId": "r1"}"#,
        r#"data: {"candidates": [{"content": {"parts": [{"functionCall": {"name": "log","args": {"word": "cold"}}}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 8,"candidatesTokenCount": 7,"totalTokenCount": 35,"cachedContentTokenCount": 4,"thoughtsTokenCount": 20},"modelVersion": "gemini-2.5-flash","responseId": "r1"}"#,
    ]
    .iter()
    .map(|e| format!("{e}\r\n\r\n"))
    .collect()
}

#[tokio::test]
async fn stream_split_anywhere_with_usage_last() {
    let expected = vec![
        StreamEvent::Delta("The".into()),
        StreamEvent::Delta(" opposite of hot is cold.".into()),
        StreamEvent::ToolCall(ToolCall::new("call_0", "log", r#"{"word":"cold"}"#)),
        StreamEvent::Usage(Usage::new(8, 27).with_cached_input(4).with_reasoning(20)),
        StreamEvent::Finish(FinishReason::ToolCalls),
    ];
    // Every split point lands somewhere: inside JSON, between `\r` and `\n`, in `data:`.
    for size in [1, 2, 7, 64, 4096] {
        let server = Server::always(Reply::sse(pieces(&full_stream(), size))).await;
        let request = Request::new("opposite of hot?").with_tool(Tool::new("log", "logs", "{}"));
        let stream = adapter(&server).stream(&model("gemini", "gemini-2.5-flash"), &request).await.unwrap();
        let events: Vec<StreamEvent> = collect(stream).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(events, expected, "pieces of {size}");
        let sent = server.only_request();
        assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent");
        assert_eq!(sent.query.as_deref(), Some("alt=sse"));
        assert_eq!(sent.header("accept"), Some("text/event-stream"));
    }
}

const CHUNK: &str = r#"data: {"candidates": [{"content": {"parts": [{"text": "Once"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 5,"totalTokenCount": 5}}"#;

#[tokio::test]
async fn error_chunks_and_cut_streams() {
    let unavailable = r#"data: {"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}"#;
    // After content: a stream item, then the end.
    let server = Server::always(Reply::events(&[CHUNK, unavailable, CHUNK])).await;
    let events = collect(adapter(&server).stream(&model("gemini", "m"), &Request::new("story")).await.unwrap()).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let err = events[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert!(err.is_retryable() && err.to_string().contains("UNAVAILABLE"), "{err}");
    assert_eq!(err.model().map(|m| m.as_str()), Some("m"));

    // Before any content: the opening call fails, with the retry delay of a rate limit.
    let limited = r#"data: {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "4s"}]}}"#;
    let server = Server::always(Reply::events(&[limited])).await;
    let err = adapter(&server).stream(&model("gemini", "m"), &Request::new("story")).await.err().unwrap();
    assert_eq!((err.kind(), err.retry_after()), (ErrorKind::RateLimited, Some(Duration::from_secs(4))));

    // Cut: the body ends before a chunk with a finish reason, or the connection drops.
    for tail in [vec![], vec![Piece::Sleep(Duration::from_millis(50)), Piece::Abort]] {
        let mut p = vec![Piece::Bytes(format!("{CHUNK}\r\n\r\n"))];
        p.extend(tail);
        let server = Server::always(Reply::sse(p)).await;
        let events =
            collect(adapter(&server).stream(&model("gemini", "m"), &Request::new("story")).await.unwrap()).await;
        assert_eq!(events.len(), 2, "{events:?}");
        let err = events[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    }

    // A blocked prompt streams one chunk with the block reason and no candidates.
    let blocked = r#"data: {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]}, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}"#;
    let server = Server::always(Reply::events(&[blocked])).await;
    let events: Vec<StreamEvent> =
        collect(adapter(&server).stream(&model("gemini", "m"), &Request::new("x")).await.unwrap())
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    assert_eq!(events, vec![StreamEvent::Usage(Usage::new(9, 0)), StreamEvent::Finish(FinishReason::ContentFilter)]);
}

fn google_error(code: u16, status: &str, message: &str, details: serde_json::Value) -> String {
    json!({"error": {"code": code, "message": message, "status": status, "details": details}}).to_string()
}

#[tokio::test]
async fn every_error_status_maps_to_its_kind() {
    let none = json!([]);
    let cases: Vec<(Reply, ErrorKind, Option<Duration>)> = vec![
        (
            Reply::json(
                400,
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "The input token count (1200293) exceeds the maximum number of tokens allowed (1048576).",
                    none.clone(),
                ),
            ),
            ErrorKind::ContextOverflow,
            None,
        ),
        (
            Reply::json(
                400,
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "Unable to submit request because the input token count is 1500000 but model only supports up to 1048576. Reduce the input token count and try again.",
                    none.clone(),
                ),
            ),
            ErrorKind::ContextOverflow,
            None,
        ),
        (
            Reply::json(
                400,
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "* GenerateContentRequest.contents: contents is not specified",
                    none.clone(),
                ),
            ),
            ErrorKind::BadRequest,
            None,
        ),
        (
            Reply::json(
                400,
                google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "API key not valid. Please pass a valid API key.",
                    json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                            "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]),
                ),
            ),
            ErrorKind::Auth,
            None,
        ),
        (
            Reply::json(
                400,
                google_error(
                    400,
                    "FAILED_PRECONDITION",
                    "User location is not supported for the API use.",
                    none.clone(),
                ),
            ),
            ErrorKind::BadRequest,
            None,
        ),
        (
            Reply::json(
                401,
                google_error(
                    401,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                    none.clone(),
                ),
            ),
            ErrorKind::Auth,
            None,
        ),
        (
            Reply::json(
                403,
                google_error(
                    403,
                    "PERMISSION_DENIED",
                    "Permission denied on resource project my-project.",
                    none.clone(),
                ),
            ),
            ErrorKind::Auth,
            None,
        ),
        (
            Reply::json(
                404,
                google_error(
                    404,
                    "NOT_FOUND",
                    "models/gemini-9 is not found for API version v1beta, or is not supported for generateContent.",
                    none.clone(),
                ),
            ),
            ErrorKind::ModelNotFound,
            None,
        ),
        (
            Reply::json(
                429,
                google_error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "You exceeded your current quota, please check your plan and billing details.",
                    json!([
                        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                            "quotaDimensions": {"location": "global", "model": "gemini-2.0-flash"}, "quotaValue": "15"}]},
                        {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "Learn more about Gemini API quotas",
                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}
                    ]),
                ),
            ),
            ErrorKind::RateLimited,
            Some(Duration::from_secs(37)),
        ),
        (
            // A Retry-After header wins over the body's delay.
            Reply::json(
                429,
                google_error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "Resource has been exhausted (e.g. check quota).",
                    json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]),
                ),
            )
            .header("retry-after", "3"),
            ErrorKind::RateLimited,
            Some(Duration::from_secs(3)),
        ),
        (
            Reply::json(
                500,
                google_error(
                    500,
                    "INTERNAL",
                    "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
                    none.clone(),
                ),
            ),
            ErrorKind::Server,
            None,
        ),
        (
            Reply::json(
                503,
                google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", none.clone()),
            ),
            ErrorKind::Server,
            None,
        ),
        (
            Reply::json(
                504,
                google_error(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.", none),
            ),
            ErrorKind::Server,
            None,
        ),
    ];
    assert_status_errors(cases, adapter, &model("gemini", "gemini-9"), &[KEY]).await;
}

#[tokio::test]
async fn malformed_and_oversized_bodies() {
    for body in [
        "<html>oops</html>",
        "{}",
        r#"{"candidates": [{"content": {"parts": [{"text": 1}]}}]}"#,
        r#"{"candidates":"#,
        r#"{"candidates": "none"}"#,
    ] {
        let server = Server::always(Reply::json(200, body)).await;
        let err = adapter(&server).complete(&model("gemini", "m"), &Request::new("x")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{body}: {err}");
    }
    let server = Server::always(Reply::events(&["data: {\"candidates\": [{\"content\": "])).await;
    let err = adapter(&server).stream(&model("gemini", "m"), &Request::new("x")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");

    let big = ANSWER.replace("Canberra.", &"a".repeat(10_000));
    let server = Server::always(Reply::json(200, big)).await;
    let small = builder(&server).max_response_bytes(2048).build().unwrap();
    assert_eq!(small.complete(&model("gemini", "m"), &Request::new("x")).await.unwrap_err().kind(), ErrorKind::Decode);
    let server = Server::always(Reply::sse(pieces(&full_stream(), 256))).await;
    let small = builder(&server).max_event_bytes(128).build().unwrap();
    let err = small.stream(&model("gemini", "m"), &Request::new("x")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
}

fn fast(server: &Server) -> Gemini {
    builder(server).first_byte_timeout(Duration::from_millis(150)).timeout(Duration::from_millis(400)).build().unwrap()
}

#[tokio::test]
async fn first_byte_and_total_timeouts() {
    let server = Server::always(Reply::json(200, ANSWER).delayed(Duration::from_millis(600))).await;
    let start = Instant::now();
    let err = fast(&server).complete(&model("gemini", "m"), &Request::new("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(start.elapsed() < Duration::from_millis(500), "{:?}", start.elapsed());

    // Headers at once, but no chunk that carries something before the first-byte timeout.
    let stalled = Reply::sse(vec![Piece::Sleep(Duration::from_millis(600)), Piece::Bytes(format!("{CHUNK}\r\n\r\n"))]);
    let server = Server::always(stalled).await;
    let err = fast(&server).stream(&model("gemini", "m"), &Request::new("x")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");

    let slow = Reply::sse(vec![Piece::Bytes(format!("{CHUNK}\r\n\r\n")), Piece::Sleep(Duration::from_millis(800))]);
    let server = Server::always(slow).await;
    let start = Instant::now();
    let events = collect(fast(&server).stream(&model("gemini", "m"), &Request::new("x")).await.unwrap()).await;
    assert_eq!(events.last().unwrap().as_ref().unwrap_err().kind(), ErrorKind::Timeout);
    assert!(start.elapsed() < Duration::from_millis(750), "{:?}", start.elapsed());
}

#[tokio::test]
async fn connect_timeout_and_refused_connections() {
    let (addr, _listener, _fillers) = support::unaccepting_listener().await;
    let gemini = Gemini::builder("gemini")
        .base_url(format!("http://{addr}/v1beta"))
        .api_key(KEY)
        .connect_timeout(Duration::from_millis(150))
        .first_byte_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let start = Instant::now();
    let err = gemini.complete(&model("gemini", "m"), &Request::new("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(start.elapsed() < Duration::from_millis(600), "{:?}", start.elapsed());
    assert_clean(&err, &[KEY]);

    let closed = support::closed_port().await;
    let gemini = Gemini::builder("gemini").base_url(format!("http://{closed}/v1beta")).api_key(KEY).build().unwrap();
    let err = gemini.stream(&model("gemini", "m"), &Request::new("x")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    assert!(err.is_retryable());
    assert_clean(&err, &[KEY]);
}

#[tokio::test]
async fn keys_tokens_and_prompts_never_leak() {
    let secret = "violet-harbour-4410-hidden";
    let request = secret_request(secret);
    for credential in [KEY, TOKEN] {
        // Error bodies that echo the prompt and the credential, as a careless proxy might.
        let echo = google_error(
            400,
            "INVALID_ARGUMENT",
            &format!("bad: please keep this quiet: {secret} {credential}"),
            json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": credential}]),
        );
        let server = Server::always(Reply::json(400, echo)).await;
        let b = Gemini::builder("gemini").base_url(format!("{}/v1beta", server.url));
        let b = if credential == KEY { b.api_key(credential) } else { b.bearer_token(credential) };
        let text = format!("{b:?}");
        let gemini = b.build().unwrap();
        let text = format!("{text} {gemini:?}");
        assert!(!text.contains(credential) && text.contains("[redacted]"), "{text}");
        let err = gemini.complete(&model("gemini", "m"), &request).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        assert_clean(&err, &[credential, secret]);
        let err = gemini.stream(&model("gemini", "m"), &request).await.err().unwrap();
        assert_clean(&err, &[credential, secret]);
        // Auth errors never show the provider's message.
        let server = Server::always(Reply::json(
            401,
            google_error(401, "UNAUTHENTICATED", &format!("token {credential} expired"), json!([])),
        ))
        .await;
        let b = Gemini::builder("gemini").base_url(format!("{}/v1beta", server.url));
        let b = if credential == KEY { b.api_key(credential) } else { b.bearer_token(credential) };
        let err = b.build().unwrap().complete(&model("gemini", "m"), &request).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Auth);
        assert_clean(&err, &[credential, secret, "expired"]);
    }

    // Stream error chunks never put provider messages into errors.
    let leaky = format!(
        "data: {}",
        json!({"error": {"code": 500, "status": "INTERNAL", "message": format!("failed on: {secret}")}})
    );
    let server = Server::always(Reply::events(&[CHUNK, &leaky])).await;
    let events = collect(adapter(&server).stream(&model("gemini", "m"), &request).await.unwrap()).await;
    let err = events.last().unwrap().as_ref().unwrap_err();
    assert_clean(err, &[KEY, secret]);
}

#[tokio::test]
async fn refused_parameters_are_not_sent() {
    let server = Server::always(Reply::json(200, ANSWER)).await;
    let gemini = adapter(&server);
    let tools = Request::new("hi").with_tool(Tool::new("f", "", "{}"));
    for (request, field) in [
        (Request::new("hi").with_logit_bias(42, 5.0), "logit_bias"),
        (tools.with_parallel_tool_calls(false), "parallel_tool_calls"),
        (Request::new("hi").with_extra("contents", json!([])), "contents"),
    ] {
        let err = gemini.complete(&model("gemini", "m"), &request).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        assert!(err.to_string().contains(field), "{err}");
    }
    assert!(server.requests().is_empty());
    // Mapped: `top_p`, `seed`, `tool_choice`; `extra` at the top level and into `generationConfig`.
    let request = Request::new("hi")
        .with_top_p(0.5)
        .with_seed(42)
        .with_extra("safetySettings", json!([{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]))
        .with_extra("generationConfig", json!({"topK": 40, "thinkingConfig": {"thinkingBudget": 1024}}));
    gemini.complete(&model("gemini", "m"), &request).await.unwrap();
    let sent = server.only_request().body;
    assert_eq!(
        sent["generationConfig"],
        json!({"topP": 0.5, "seed": 42, "topK": 40, "thinkingConfig": {"thinkingBudget": 1024}})
    );
    assert_eq!(sent["safetySettings"][0]["threshold"], "BLOCK_ONLY_HIGH");
}

#[tokio::test]
async fn router_end_to_end_with_503_fallback() {
    let ok = Server::always(Reply::json(200, ANSWER)).await;
    let overloaded = Server::always(Reply::json(
        503,
        google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", json!([])),
    ))
    .await;
    // `busy` is cheaper, so the router tries it first.
    let catalog = Catalog::new([
        ModelProfile::new("flash", "gemini")
            .with_api_name("gemini-2.5-flash")
            .with_pricing(Pricing::per_mtok(0.30, 2.50).with_cached_input(0.075)),
        ModelProfile::new("busy", "gemini-busy")
            .with_api_name("gemini-2.5-flash-lite")
            .with_pricing(Pricing::per_mtok(0.10, 0.40)),
    ])
    .unwrap();
    let quick_retries = RetryPolicy::new().with_initial_backoff(Duration::from_millis(1));
    let router = Router::builder()
        .catalog(catalog)
        .provider(adapter(&ok))
        .provider(
            Gemini::builder("gemini-busy").base_url(format!("{}/v1beta", overloaded.url)).api_key(KEY).build().unwrap(),
        )
        .execution(ExecutionConfig::new().with_retry(quick_retries))
        .build()
        .unwrap();

    let response = router.complete(Request::new("capital of Australia?")).await.unwrap();
    assert_eq!(response.content(), "Canberra.");
    assert_eq!(response.model().as_str(), "flash");
    let attempts: Vec<_> = response.attempts.iter().map(|a| (a.model.as_str(), a.reason, a.outcome.clone())).collect();
    let unavailable = AttemptOutcome::Failed { kind: ErrorKind::Server, status: Some(503) };
    assert_eq!(
        attempts,
        [
            ("busy", AttemptReason::Primary, unavailable.clone()),
            ("busy", AttemptReason::Retry, unavailable.clone()),
            ("busy", AttemptReason::Retry, unavailable),
            ("flash", AttemptReason::Fallback, AttemptOutcome::Answered),
        ]
    );
    assert_eq!(overloaded.requests().len(), 3);
    assert_eq!(overloaded.requests()[0].path, "/v1beta/models/gemini-2.5-flash-lite:generateContent");
    // 1012 uncached input tokens at $0.30/M, 3000 cached at $0.075/M, 106 output tokens (thinking
    // included) at $2.50/M.
    let expected = (1012.0 * 0.30 + 3000.0 * 0.075 + 106.0 * 2.50) / 1e6;
    assert!((response.cost_usd - expected).abs() < 1e-12, "{} vs {expected}", response.cost_usd);

    // Streaming through the router.
    let streamed = Server::always(Reply::sse(pieces(&full_stream(), 13))).await;
    let router = Router::builder()
        .catalog(Catalog::new([ModelProfile::new("flash", "gemini").with_api_name("gemini-2.5-flash")]).unwrap())
        .provider(adapter(&streamed))
        .build()
        .unwrap();
    let text = streamed_text(router.stream(Request::new("opposite of hot?")).await.unwrap()).await;
    assert_eq!(text, "The opposite of hot is cold.");
}

#[test]
fn adapter_is_a_shareable_provider() {
    fn is<T: Provider + Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    is::<Gemini>();
    let _: fn(Gemini) -> std::sync::Arc<dyn Provider> = |p| std::sync::Arc::new(p);
}

#[test]
fn base_url_errors_never_echo_credentials() {
    for url in ["http://user:SECRET@[::1", "https://host:99999/v1beta?key=SECRET", "ftp://user:SECRET@example.com/v1"] {
        let builder = Gemini::builder("gemini").base_url(url).api_key("AIza-test");
        assert!(!format!("{builder:?}").contains("SECRET"), "{url}: {builder:?}");
        let err = builder.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{url}");
        assert!(!err.to_string().contains("SECRET") && !format!("{err:?}").contains("SECRET"), "{url}: {err:?}");
    }
}
