//! The Bedrock adapter over real HTTP on 127.0.0.1: what it sends (the model's URI-encoded path, the
//! Converse body, the SigV4 headers, checked by an independent verifier below as AWS would check
//! them), what it returns for answers in Converse's wire format (text, tools, cache usage, the binary
//! ConverseStream event stream cut at every byte), how every failure maps to an error kind (Bedrock's
//! exception types by `x-amzn-ErrorType` header and `__type` body field, exceptions inside streams,
//! CRC corruption, oversized messages, cut streams, timeouts), that no key, token, signature or
//! prompt text leaks, and the router end to end.
//!
//! The fixtures follow the AWS Bedrock API reference (`Converse`, `ConverseStream`, the common
//! errors) and the `application/vnd.amazon.eventstream` encoding; the test encoder is checked
//! against a published frame.

#![cfg(feature = "bedrock")]
#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use support::{Piece, Recorded, Reply, Server, assert_clean, collect, model, secret_request, streamed_text};
use switchyard::execute::retry::RetryPolicy;
use switchyard::provider::bedrock::{Bedrock, BedrockBuilder};
use switchyard::{
    Catalog, ContentPart, ErrorKind, ExecutionConfig, FinishReason, ImageDetail, Message, ModelProfile, Pricing,
    Provider, Request, StreamEvent, Tool, ToolCall, ToolChoice, Usage,
};

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE-session-token-0123456789";
const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

fn builder(server: &Server) -> BedrockBuilder {
    Bedrock::builder("bedrock").region("us-east-1").credentials(ACCESS_KEY, SECRET_KEY).base_url(&server.url)
}

fn adapter(server: &Server) -> Bedrock {
    builder(server).build().unwrap()
}

// ---- An independent SigV4 verifier, as the service runs it --------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), data.as_bytes()).as_ref().to_vec()
}

/// Recomputes the signature of a recorded request and checks the `Authorization` header against it.
fn verify_signature(sent: &Recorded, region: &str, secret: &str) {
    let auth = sent.header("authorization").expect("signed");
    let date_time = sent.header("x-amz-date").unwrap();
    assert_eq!(date_time.len(), 16, "{date_time}");
    let date = &date_time[..8];
    let prefix =
        format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{date}/{region}/bedrock/aws4_request, SignedHeaders=");
    let rest = auth.strip_prefix(&prefix).unwrap_or_else(|| panic!("{auth}"));
    let (signed, signature) = rest.split_once(", Signature=").unwrap();
    let payload = sha256(&sent.raw_body);
    assert_eq!(sent.header("x-amz-content-sha256"), Some(payload.as_str()));
    let mut canonical_headers = String::new();
    for name in signed.split(';') {
        canonical_headers.push_str(&format!("{name}:{}\n", sent.header(name).unwrap().trim()));
    }
    // Every service but S3 encodes the path once more: `%3A` is signed as `%253A`.
    let path = sent.path.replace('%', "%25");
    let canonical = format!("POST\n{path}\n\n{canonical_headers}\n{signed}\n{payload}");
    let scope = format!("{date}/{region}/bedrock/aws4_request");
    let to_sign = format!("AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}", sha256(canonical.as_bytes()));
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date);
    for part in [region, "bedrock", "aws4_request"] {
        key = hmac(&key, part);
    }
    assert_eq!(signature, hex(&hmac(&key, &to_sign)), "the signature does not verify");
}

// ---- Fixtures ------------------------------------------------------------------------------------

/// A Converse answer in the shape of the API reference's example, with cache counts.
const ANSWER: &str = r#"{
  "output": {"message": {"role": "assistant", "content": [{"text": "Canberra."}]}},
  "stopReason": "end_turn",
  "usage": {"inputTokens": 12, "outputTokens": 4, "totalTokens": 3016, "cacheReadInputTokens": 2000, "cacheWriteInputTokens": 1000},
  "metrics": {"latencyMs": 388}
}"#;

/// A tool call answer, as in the reference's tool use example.
const TOOL_ANSWER: &str = r#"{
  "output": {"message": {"role": "assistant", "content": [
    {"text": "I'll look up the most popular song."},
    {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "top_song", "input": {"sign": "WZPZ"}}}
  ]}},
  "stopReason": "tool_use",
  "usage": {"inputTokens": 375, "outputTokens": 84, "totalTokens": 459},
  "metrics": {"latencyMs": 1140}
}"#;

// ---- A test encoder for the binary event stream ---------------------------------------------------

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = (16 + h.len() + payload.len()) as u32;
    let mut m = total.to_be_bytes().to_vec();
    m.extend_from_slice(&(h.len() as u32).to_be_bytes());
    m.extend_from_slice(&crc32(&m).to_be_bytes());
    m.extend_from_slice(&h);
    m.extend_from_slice(payload);
    m.extend_from_slice(&crc32(&m).to_be_bytes());
    m
}

fn event(kind: &str, payload: &str) -> Vec<u8> {
    frame(
        &[(":event-type", kind), (":content-type", "application/json"), (":message-type", "event")],
        payload.as_bytes(),
    )
}

fn exception(kind: &str, message: &str) -> Vec<u8> {
    let payload = json!({ "message": message }).to_string();
    frame(
        &[(":exception-type", kind), (":content-type", "application/json"), (":message-type", "exception")],
        payload.as_bytes(),
    )
}

#[test]
fn the_test_encoder_matches_a_published_frame() {
    // aws-c-event-stream's and botocore's test frame: a `content-type` header and `{'foo':'bar'}`.
    let published = "0000003d0000002007fd83960c636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e7b27666f6f273a27626172277d8d9c08b1";
    assert_eq!(hex(&frame(&[("content-type", "application/json")], b"{'foo':'bar'}")), published);
    assert_eq!(hex(&frame(&[], b"")), "000000100000000005c248eb7d98c8ff");
}

fn full_stream() -> Vec<u8> {
    [
        event("messageStart", r#"{"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0","role":"assistant"}"#),
        event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"The opposite"},"p":"abcdefghijkl"}"#),
        event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":" of hot is cold."},"p":"abcd"}"#),
        event("contentBlockStop", r#"{"contentBlockIndex":0,"p":"abcdefghijklmnopq"}"#),
        event("messageStop", r#"{"p":"abcdefghij","stopReason":"end_turn"}"#),
        event("metadata", r#"{"metrics":{"latencyMs":412},"p":"abcdef","usage":{"inputTokens":16,"outputTokens":9,"totalTokens":25}}"#),
    ]
    .concat()
}

fn stream_reply(pieces: Vec<Piece>) -> Reply {
    Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/vnd.amazon.eventstream".into())],
        delay: Duration::ZERO,
        pieces,
    }
}

// ---- Converse ------------------------------------------------------------------------------------

#[tokio::test]
async fn complete_sends_converse_signed_and_reads_usage() {
    let server = Server::always(Reply::json(200, ANSWER)).await;
    let request = Request::new("What is the capital of Australia?")
        .with_system("Answer in one word.")
        .with_temperature(0.0)
        .with_top_p(0.5)
        .with_max_tokens(64)
        .with_stop("###")
        .with_extra("top_k", json!(40));
    let response = adapter(&server).complete(&model("bedrock", HAIKU), &request).await.unwrap();
    assert_eq!(response.content(), "Canberra.");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    // Input counts the cache reads and writes, which `inputTokens` leaves out.
    assert_eq!(response.usage, Usage::new(3012, 4).with_cached_input(2000));

    let sent = server.only_request();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse")
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.header("x-amz-security-token"), None);
    assert!(sent.header("authorization").unwrap().contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date, "));
    verify_signature(&sent, "us-east-1", SECRET_KEY);
    assert_eq!(
        sent.body,
        json!({
            "messages": [{"role": "user", "content": [{"text": "What is the capital of Australia?"}]}],
            "system": [{"text": "Answer in one word."}],
            "inferenceConfig": {"maxTokens": 64, "temperature": 0.0, "topP": 0.5, "stopSequences": ["###"]},
            "additionalModelRequestFields": {"top_k": 40}
        })
    );
}

#[tokio::test]
async fn session_tokens_are_sent_and_signed_and_arns_encoded() {
    let server = Server::always(Reply::json(200, ANSWER)).await;
    let bedrock = builder(&server).region("eu-west-3").session_token(SESSION_TOKEN).build().unwrap();
    let arn = "arn:aws:bedrock:eu-west-3:123456789012:inference-profile/eu.anthropic.claude-3-haiku-20240307-v1:0";
    bedrock.complete(&model("bedrock", arn), &Request::new("hi")).await.unwrap();
    let sent = server.only_request();
    assert_eq!(
        sent.path,
        "/model/arn%3Aaws%3Abedrock%3Aeu-west-3%3A123456789012%3Ainference-profile%2Feu.anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    );
    assert_eq!(sent.header("x-amz-security-token"), Some(SESSION_TOKEN));
    assert!(
        sent.header("authorization")
            .unwrap()
            .contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, ")
    );
    verify_signature(&sent, "eu-west-3", SECRET_KEY);
    let text = format!("{bedrock:?}");
    assert!(!text.contains(SESSION_TOKEN) && !text.contains(SECRET_KEY) && !text.contains(ACCESS_KEY), "{text}");
}

#[tokio::test]
async fn tools_and_images_round_trip() {
    let server = Server::always(Reply::json(200, TOOL_ANSWER)).await;
    let request = Request::from_messages(vec![
        Message::user("What is the most popular song on WZPZ?")
            .with_part(ContentPart::image("data:image/png;base64,iVBORw0KGgo=", ImageDetail::High)),
        Message::assistant("").with_tool_call(ToolCall::new("tooluse_1", "top_song", r#"{"sign":"WKRP"}"#)),
        Message::tool_result("tooluse_1", "Elemental Hotel, by 8 Storey Hike"),
        Message::user("And on WZPZ?"),
    ])
    .with_tool(Tool::new(
        "top_song",
        "Get the most popular song played on a radio station.",
        r#"{"type":"object","properties":{"sign":{"type":"string"}},"required":["sign"]}"#,
    ))
    .with_tool_choice(ToolChoice::Required);
    let response = adapter(&server).complete(&model("bedrock", HAIKU), &request).await.unwrap();
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.content(), "I'll look up the most popular song.");
    assert_eq!(
        response.tool_calls,
        vec![ToolCall::new("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "top_song", r#"{"sign":"WZPZ"}"#)]
    );
    assert_eq!(response.usage, Usage::new(375, 84));
    let body = server.only_request().body;
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [
                {"text": "What is the most popular song on WZPZ?"},
                {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}
            ]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": "top_song", "input": {"sign": "WKRP"}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "Elemental Hotel, by 8 Storey Hike"}]}},
                {"text": "And on WZPZ?"}
            ]}
        ])
    );
    assert_eq!(
        body["toolConfig"],
        json!({
            "tools": [{"toolSpec": {
                "name": "top_song",
                "description": "Get the most popular song played on a radio station.",
                "inputSchema": {"json": {"type": "object", "properties": {"sign": {"type": "string"}}, "required": ["sign"]}}
            }}],
            "toolChoice": {"any": {}}
        })
    );
}

#[tokio::test]
async fn refused_requests_are_not_sent() {
    let server = Server::always(Reply::json(200, ANSWER)).await;
    let bedrock = adapter(&server);
    let https_image = Request::from_messages(vec![
        Message::user("what?").with_part(ContentPart::image("https://x/y.png", ImageDetail::Auto)),
    ]);
    for (request, needle) in [
        (Request::new("hi").with_seed(7), "`seed`"),
        (Request::new("hi").with_logit_bias(50256, -100.0), "`logit_bias`"),
        (https_image, "data:"),
    ] {
        let e = bedrock.complete(&model("bedrock", HAIKU), &request).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert!(e.to_string().contains(needle), "{e}");
    }
    assert!(server.requests().is_empty());
}

// ---- ConverseStream ------------------------------------------------------------------------------

#[tokio::test]
async fn stream_split_at_every_byte() {
    let bytes = full_stream();
    let body = bytes.clone();
    // The request's `x-split` header says where the body is cut (the pause makes two reads of it).
    let server = Server::start(move |sent| {
        let at = sent.header("x-split").unwrap().parse::<usize>().unwrap();
        stream_reply(vec![
            Piece::Raw(body[..at].to_vec()),
            Piece::Sleep(Duration::from_millis(1)),
            Piece::Raw(body[at..].to_vec()),
        ])
    })
    .await;
    let expected = vec![
        StreamEvent::Delta("The opposite".into()),
        StreamEvent::Delta(" of hot is cold.".into()),
        StreamEvent::Usage(Usage::new(16, 9)),
        StreamEvent::Finish(FinishReason::Stop),
    ];
    // Concurrently: each response waits for the loopback's delayed acknowledgement once.
    let results: Vec<(usize, Vec<StreamEvent>)> = futures::stream::iter(0..=bytes.len())
        .map(|at| {
            let bedrock = builder(&server).header("x-split", &at.to_string()).build().unwrap();
            async move {
                let stream = bedrock.stream(&model("bedrock", HAIKU), &Request::new("opposite of hot?")).await.unwrap();
                (at, collect(stream).await.into_iter().map(|e| e.unwrap()).collect())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(results.len(), bytes.len() + 1);
    for (at, events) in results {
        assert_eq!(events, expected, "split at {at}");
    }
    let sent = &server.requests()[0];
    assert_eq!(sent.path, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream");
    assert_eq!(sent.header("accept"), Some("application/vnd.amazon.eventstream"));
    verify_signature(sent, "us-east-1", SECRET_KEY);
}

#[tokio::test]
async fn streamed_tool_calls() {
    let bytes = [
        event("messageStart", r#"{"role":"assistant"}"#),
        event(
            "contentBlockStart",
            r#"{"contentBlockIndex":0,"start":{"toolUse":{"name":"top_song","toolUseId":"tooluse_9"}}}"#,
        ),
        event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"toolUse":{"input":"{\"sign\": "}}}"#),
        event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"toolUse":{"input":"\"WZPZ\"}"}}}"#),
        event("contentBlockStop", r#"{"contentBlockIndex":0}"#),
        event("messageStop", r#"{"stopReason":"tool_use"}"#),
        event(
            "metadata",
            r#"{"usage":{"inputTokens":300,"outputTokens":40,"totalTokens":440,"cacheReadInputTokens":100}}"#,
        ),
    ]
    .concat();
    let server = Server::always(stream_reply(vec![Piece::Raw(bytes)])).await;
    let stream = adapter(&server).stream(&model("bedrock", HAIKU), &Request::new("song?")).await.unwrap();
    let events: Vec<StreamEvent> = collect(stream).await.into_iter().map(|e| e.unwrap()).collect();
    assert_eq!(
        events,
        vec![
            StreamEvent::ToolCall(ToolCall::new("tooluse_9", "top_song", r#"{"sign": "WZPZ"}"#)),
            StreamEvent::Usage(Usage::new(400, 40).with_cached_input(100)),
            StreamEvent::Finish(FinishReason::ToolCalls),
        ]
    );
}

#[tokio::test]
async fn stream_failures() {
    let m = model("bedrock", HAIKU);
    let ask = Request::new("hi");
    let good = full_stream();
    // An exception first: the error of the call itself.
    let server =
        Server::always(stream_reply(vec![Piece::Raw(exception("throttlingException", "Too many requests"))])).await;
    assert_eq!(adapter(&server).stream(&m, &ask).await.err().unwrap().kind(), ErrorKind::RateLimited);
    for (kind, expected) in [
        ("modelStreamErrorException", ErrorKind::Server),
        ("internalServerException", ErrorKind::Server),
        ("serviceUnavailableException", ErrorKind::Server),
        ("validationException", ErrorKind::BadRequest),
    ] {
        // After content: the last item of the stream.
        let bytes =
            [event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#), exception(kind, "oops")]
                .concat();
        let server = Server::always(stream_reply(vec![Piece::Raw(bytes)])).await;
        let events = collect(adapter(&server).stream(&m, &ask).await.unwrap()).await;
        assert_eq!(events.len(), 2, "{kind}");
        let e = events[1].as_ref().unwrap_err();
        assert_eq!(e.kind(), expected, "{kind}");
        assert_eq!(e.model().map(|m| m.as_str()), Some("m"));
    }
    // A flipped bit anywhere fails the CRC: at the start, the call; later, the stream.
    for at in [3, 10, 20, good.len() - 2] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        let server = Server::always(stream_reply(vec![Piece::Raw(bad)])).await;
        let e = match adapter(&server).stream(&m, &ask).await {
            Err(e) => e,
            Ok(s) => collect(s).await.into_iter().find_map(Result::err).expect("an error"),
        };
        assert_eq!(e.kind(), ErrorKind::Decode, "flipped at {at}: {e}");
        assert!(e.to_string().contains("CRC") || e.to_string().contains("lengths"), "{e}");
    }
    // A message over the limit.
    let server = Server::always(stream_reply(vec![Piece::Raw(good.clone())])).await;
    let small = builder(&server).max_event_bytes(64).build().unwrap();
    let e = small.stream(&m, &ask).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Decode);
    assert!(e.to_string().contains("exceeds"), "{e}");
    // Cut before `messageStop`, cleanly or by a dropped connection.
    let half = good[..good.len() / 2].to_vec();
    for tail in [vec![], vec![Piece::Sleep(Duration::from_millis(50)), Piece::Abort]] {
        let mut pieces = vec![Piece::Raw(half.clone())];
        pieces.extend(tail);
        let server = Server::always(stream_reply(pieces)).await;
        let events = collect(adapter(&server).stream(&m, &ask).await.unwrap()).await;
        assert_eq!(events.last().unwrap().as_ref().unwrap_err().kind(), ErrorKind::Decode);
    }
}

// ---- Errors --------------------------------------------------------------------------------------

#[tokio::test]
async fn every_error_class_maps_to_its_kind() {
    let header = |status: u16, kind: &str, message: &str| {
        Reply::json(status, json!({ "message": message }).to_string())
            .header("x-amzn-ErrorType", &format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"))
    };
    let body_type = |status: u16, kind: &str, message: &str| {
        Reply::json(status, json!({ "__type": kind, "message": message }).to_string())
    };
    let cases = [
        (
            header(400, "ValidationException", "Malformed input request: #: required key [messages] not found"),
            ErrorKind::BadRequest,
        ),
        (header(400, "ValidationException", "Input is too long for requested model."), ErrorKind::ContextOverflow),
        (
            body_type(
                400,
                "ValidationException",
                "Too many input tokens. Max input tokens: 8192, request input token count: 9001",
            ),
            ErrorKind::ContextOverflow,
        ),
        (
            header(
                400,
                "ValidationException",
                "The model returned the following errors: prompt is too long: 215000 tokens > 200000 maximum",
            ),
            ErrorKind::ContextOverflow,
        ),
        (
            header(403, "AccessDeniedException", "You don't have access to the model with the specified model ID."),
            ErrorKind::Auth,
        ),
        (
            body_type(403, "UnrecognizedClientException", "The security token included in the request is invalid."),
            ErrorKind::Auth,
        ),
        (
            body_type(
                403,
                "com.amazon.coral.service#ExpiredTokenException",
                "The security token included in the request is expired",
            ),
            ErrorKind::Auth,
        ),
        (
            header(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided.",
            ),
            ErrorKind::Auth,
        ),
        (
            header(
                404,
                "ResourceNotFoundException",
                "Could not resolve the foundation model from the provided model identifier.",
            ),
            ErrorKind::ModelNotFound,
        ),
        (
            header(429, "ThrottlingException", "Too many requests, please wait before trying again."),
            ErrorKind::RateLimited,
        ),
        (header(429, "ServiceQuotaExceededException", "Too many tokens per day."), ErrorKind::RateLimited),
        (body_type(400, "ServiceQuotaExceededException", "quota"), ErrorKind::RateLimited),
        (header(429, "ModelNotReadyException", "Model is not ready for inference."), ErrorKind::Server),
        (header(503, "ServiceUnavailableException", "Service is unavailable."), ErrorKind::Server),
        (header(500, "InternalServerException", "Internal server error"), ErrorKind::Server),
        (header(424, "ModelErrorException", "The model encountered an error"), ErrorKind::Server),
        (header(408, "ModelTimeoutException", "Model timed out"), ErrorKind::Timeout),
        // Without a type: the status decides.
        (Reply::json(502, "<html>Bad Gateway</html>"), ErrorKind::Server),
        (Reply::json(429, "{}"), ErrorKind::RateLimited),
        (Reply::json(403, "{}"), ErrorKind::Auth),
        (Reply::json(404, "{}"), ErrorKind::ModelNotFound),
        (Reply::json(400, r#"{"message":"odd"}"#), ErrorKind::BadRequest),
    ];
    for (reply, kind) in cases {
        let status = reply.status;
        let server = Server::always(reply.clone()).await;
        let e = adapter(&server).complete(&model("bedrock", HAIKU), &Request::new("hi")).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{reply:?}: {e}");
        assert_eq!(e.status(), Some(status), "{e}");
        assert_eq!(
            e.is_retryable(),
            matches!(kind, ErrorKind::RateLimited | ErrorKind::Server | ErrorKind::Timeout),
            "{e}"
        );
        // The same answer to a stream call.
        let e = adapter(&server).stream(&model("bedrock", HAIKU), &Request::new("hi")).await.err().unwrap();
        assert_eq!(e.kind(), kind, "stream {reply:?}: {e}");
    }
    let server = Server::always(header(429, "ThrottlingException", "slow down").header("retry-after", "7")).await;
    let e = adapter(&server).complete(&model("bedrock", HAIKU), &Request::new("hi")).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    let server = Server::always(header(404, "ResourceNotFoundException", "no")).await;
    let e = adapter(&server).complete(&model("bedrock", HAIKU), &Request::new("hi")).await.unwrap_err();
    assert!(e.to_string().contains(HAIKU), "{e}");
}

#[tokio::test]
async fn malformed_and_oversized_bodies() {
    for body in [
        "{not json",
        "{}",
        r#"{"output":{"message":{"content":[]}}}"#,
        r#"{"Output":{"__type":"com.amazon.coral.service#UnknownOperationException"}}"#,
    ] {
        let server = Server::always(Reply::json(200, body)).await;
        let e = adapter(&server).complete(&model("bedrock", HAIKU), &Request::new("hi")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode, "{body}: {e}");
    }
    let server = Server::always(Reply::json(200, ANSWER)).await;
    let small = builder(&server).max_response_bytes(64).build().unwrap();
    let e = small.complete(&model("bedrock", HAIKU), &Request::new("hi")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
}

#[tokio::test]
async fn first_byte_and_total_timeouts() {
    let fast = |server: &Server| {
        builder(server)
            .first_byte_timeout(Duration::from_millis(150))
            .timeout(Duration::from_millis(400))
            .build()
            .unwrap()
    };
    let m = model("bedrock", HAIKU);
    let server = Server::always(Reply::json(200, ANSWER).delayed(Duration::from_millis(600))).await;
    let started = Instant::now();
    let e = fast(&server).complete(&m, &Request::new("hi")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_millis(550), "{:?}", started.elapsed());
    // Headers at once, no event before the first-byte timeout.
    let stalled = stream_reply(vec![Piece::Sleep(Duration::from_millis(600)), Piece::Raw(full_stream())]);
    let server = Server::always(stalled).await;
    assert_eq!(fast(&server).stream(&m, &Request::new("hi")).await.err().unwrap().kind(), ErrorKind::Timeout);
    // A first event, then nothing until after the total timeout.
    let first = event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#);
    let slow =
        stream_reply(vec![Piece::Raw(first), Piece::Sleep(Duration::from_millis(800)), Piece::Raw(full_stream())]);
    let server = Server::always(slow).await;
    let events = collect(fast(&server).stream(&m, &Request::new("hi")).await.unwrap()).await;
    assert_eq!(events.last().unwrap().as_ref().unwrap_err().kind(), ErrorKind::Timeout);
    let refused = Bedrock::builder("bedrock")
        .region("us-east-1")
        .credentials(ACCESS_KEY, SECRET_KEY)
        .base_url(format!("http://{}", support::closed_port().await))
        .build()
        .unwrap();
    assert_eq!(refused.complete(&m, &Request::new("hi")).await.unwrap_err().kind(), ErrorKind::Connection);
}

#[tokio::test]
async fn keys_tokens_signatures_and_prompts_never_leak() {
    let prompt = "the merger with Initech closes on the ninth";
    let secrets = [SECRET_KEY, SESSION_TOKEN, ACCESS_KEY, "Signature=", prompt];
    let echo_all = format!(
        "The request signature we calculated does not match. The Canonical String for this request should have been 'POST x-amz-security-token:{SESSION_TOKEN}' {SECRET_KEY} {prompt}"
    );
    for (status, kind) in [
        (403, "InvalidSignatureException"),
        (400, "ValidationException"),
        (500, "InternalServerException"),
        (429, "ThrottlingException"),
    ] {
        let reply = Reply::json(status, json!({ "message": echo_all }).to_string()).header("x-amzn-ErrorType", kind);
        let server = Server::always(reply).await;
        let bedrock = builder(&server).session_token(SESSION_TOKEN).build().unwrap();
        let e = bedrock.complete(&model("bedrock", HAIKU), &secret_request(prompt)).await.unwrap_err();
        assert_clean(&e, &secrets);
        let e = bedrock.stream(&model("bedrock", HAIKU), &secret_request(prompt)).await.err().unwrap();
        assert_clean(&e, &secrets);
    }
    let bytes = exception("validationException", &echo_all);
    let server = Server::always(stream_reply(vec![Piece::Raw(bytes)])).await;
    let e = adapter(&server).stream(&model("bedrock", HAIKU), &secret_request(prompt)).await.err().unwrap();
    assert_clean(&e, &secrets);
    let b = Bedrock::builder("bedrock")
        .region("us-east-1")
        .credentials(ACCESS_KEY, SECRET_KEY)
        .session_token(SESSION_TOKEN);
    let text = format!("{b:?}");
    let text = format!("{text} {:?}", b.build().unwrap());
    for s in [SECRET_KEY, SESSION_TOKEN, ACCESS_KEY] {
        assert!(!text.contains(s), "{text}");
    }
}

// ---- The router ------------------------------------------------------------------------------------

#[tokio::test]
async fn router_end_to_end_with_throttling_fallback() {
    let ok = Server::always(Reply::json(200, ANSWER)).await;
    let throttled = Server::always(
        Reply::json(429, r#"{"message":"Too many requests, please wait before trying again."}"#)
            .header("x-amzn-ErrorType", "ThrottlingException"),
    )
    .await;
    let catalog = Catalog::new([
        ModelProfile::new("haiku", "bedrock")
            .with_api_name(HAIKU)
            .with_pricing(Pricing::per_mtok(0.25, 1.25).with_cached_input(0.025)),
        ModelProfile::new("lite", "bedrock-busy")
            .with_api_name("amazon.nova-lite-v1:0")
            .with_pricing(Pricing::per_mtok(0.06, 0.24)),
    ])
    .unwrap();
    let router = switchyard::Router::builder()
        .catalog(catalog)
        .provider(adapter(&ok))
        .provider(
            Bedrock::builder("bedrock-busy")
                .region("us-east-1")
                .credentials(ACCESS_KEY, SECRET_KEY)
                .base_url(&throttled.url)
                .build()
                .unwrap(),
        )
        .execution(ExecutionConfig::new().with_retry(RetryPolicy::new().with_initial_backoff(Duration::from_millis(1))))
        .build()
        .unwrap();
    let response = router.complete(Request::new("capital of Australia?")).await.unwrap();
    assert_eq!(response.content(), "Canberra.");
    assert_eq!(response.model().as_str(), "haiku");
    assert!(!throttled.requests().is_empty());
    assert_eq!(throttled.requests()[0].path, "/model/amazon.nova-lite-v1%3A0/converse");
    // 1012 uncached input tokens at $0.25/M (cache writes priced as input), 2000 cached at $0.025/M,
    // 4 output tokens at $1.25/M.
    let expected = (1012.0 * 0.25 + 2000.0 * 0.025 + 4.0 * 1.25) / 1e6;
    assert!((response.cost_usd - expected).abs() < 1e-12, "{} vs {expected}", response.cost_usd);

    let streamed = Server::always(stream_reply(vec![Piece::Raw(full_stream())])).await;
    let router = switchyard::Router::builder()
        .catalog(Catalog::new([ModelProfile::new("haiku", "bedrock").with_api_name(HAIKU)]).unwrap())
        .provider(adapter(&streamed))
        .build()
        .unwrap();
    let text = streamed_text(router.stream(Request::new("opposite of hot?")).await.unwrap()).await;
    assert_eq!(text, "The opposite of hot is cold.");
}

#[test]
fn adapter_is_a_shareable_provider() {
    fn is<T: Provider + Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    is::<Bedrock>();
    let _: fn(Bedrock) -> Arc<dyn Provider> = |p| Arc::new(p);
}

#[test]
fn builder_errors_are_config_errors_without_secrets() {
    for b in [
        Bedrock::builder("bedrock").credentials(ACCESS_KEY, SECRET_KEY),
        Bedrock::builder("bedrock").region("us-east-1"),
        Bedrock::builder("bedrock")
            .region("us-east-1")
            .credentials(ACCESS_KEY, SECRET_KEY)
            .base_url("ftp://user:SECRET@x/"),
    ] {
        let e = b.build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert_clean(&e, &[SECRET_KEY, "SECRET"]);
    }
}
