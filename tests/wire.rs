//! The OpenAI wire layer (`switchyard::wire`) as an OpenAI-compatible server uses it: a client's
//! request body in, the router's answer out as `chat.completion` JSON or as a server-sent event
//! stream of `chat.completion.chunk`s, errors as OpenAI's error body; and the serialized forms of
//! `Response`, `Decision`, `Attempt` and `BudgetStatus`.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

mod fixtures;

use futures::StreamExt;
use serde_json::{Value, json};
use switchyard::wire::openai::{ChatCompletion, ChatCompletionRequest, ChunkEncoder, ErrorBody};
use switchyard::wire::sse;
use switchyard::{
    ErrorKind, FinishReason, ImageDetail, ResponseFormat, Role, Router, SimulatedProvider, StreamEvent, ToolCall,
    ToolChoice, Usage, Utility,
};

fn router() -> Router {
    Router::builder()
        .catalog(fixtures::mini_frontier())
        .policy(Utility::new().answer_value(0.07))
        .provider(SimulatedProvider::new("sim"))
        .build()
        .unwrap()
}

fn parse(body: Value) -> switchyard::Result<switchyard::Request> {
    let wire: ChatCompletionRequest = serde_json::from_value(body).unwrap();
    switchyard::Request::try_from(wire)
}

#[test]
fn a_full_client_body_converts_field_for_field() {
    let body = json!({
        "model": "auto",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":1}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"}
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "Looks up",
                   "parameters": {"type": "object", "properties": {"q": {"type": "integer"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
        "parallel_tool_calls": false,
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}},
        "max_tokens": 100,
        "max_completion_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "n": 1,
        "seed": 7,
        "stop": "END",
        "stream": true,
        "stream_options": {"include_usage": true},
        "user": "end-user-7",
        "logit_bias": {"50256": -100},
        "presence_penalty": 0.5,
        "reasoning_effort": "low"
    });
    let r = parse(body).unwrap();
    assert_eq!(r.messages.len(), 4);
    assert_eq!(r.messages[0].role, Role::System, "developer messages are system messages");
    assert_eq!(r.messages[1].content.len(), 2);
    assert_eq!(
        r.messages[1].content[1],
        switchyard::ContentPart::image("data:image/png;base64,AAAA", ImageDetail::Low)
    );
    assert!(r.messages[2].content.is_empty());
    assert_eq!(r.messages[2].tool_calls, vec![ToolCall::new("call_1", "lookup", "{\"q\":1}")]);
    assert_eq!(r.messages[3].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(r.tools[0].name, "lookup");
    let schema: Value = serde_json::from_str(&r.tools[0].parameters).unwrap();
    assert_eq!(schema["properties"]["q"]["type"], "integer");
    assert_eq!(r.tool_choice, Some(ToolChoice::Function("lookup".into())));
    assert_eq!(r.parallel_tool_calls, Some(false));
    assert!(matches!(&r.response_format, ResponseFormat::JsonSchema { name, .. } if name == "answer"));
    assert_eq!(r.max_tokens, Some(50), "max_completion_tokens wins");
    assert_eq!((r.temperature, r.top_p, r.seed), (Some(0.2), Some(0.9), Some(7)));
    assert_eq!(r.stop, vec!["END".to_owned()]);
    assert_eq!(r.user.as_deref(), Some("end-user-7"));
    assert_eq!(r.logit_bias.get(&50256), Some(&-100.0));
    let extra: Vec<&str> = r.extra.keys().map(String::as_str).collect();
    assert_eq!(extra, ["presence_penalty", "reasoning_effort"], "model, stream and stream_options are the server's");
    // The converted request passes the router's own checks.
    router().route(&r).unwrap();
}

#[test]
fn what_cannot_be_served_is_refused_by_field() {
    let user = json!({"role": "user", "content": "hi"});
    for (body, field) in [
        (json!({"model": "auto", "messages": []}), "`messages`"),
        (json!({"model": "auto", "messages": [user], "n": 2}), "`n`"),
        (json!({"model": "auto", "messages": [{"role": "robot", "content": "hi"}]}), "`messages[0].role`"),
        (
            json!({"model": "auto", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            "`input_audio`",
        ),
        (json!({"model": "auto", "messages": [{"role": "tool", "content": "x"}]}), "tool_call_id"),
        (json!({"model": "auto", "messages": [user], "logit_bias": {"abc": 1}}), "`logit_bias`"),
        (json!({"model": "auto", "messages": [user], "tool_choice": "sometimes"}), "`tool_choice`"),
        (json!({"model": "auto", "messages": [user], "response_format": {"type": "yaml"}}), "`response_format.type`"),
        (
            json!({"model": "auto", "messages": [user], "tools": [{"type": "code", "function": {"name": "f"}}]}),
            "`tools[0].type`",
        ),
    ] {
        let e = parse(body).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e}");
        assert!(e.to_string().contains(field), "{e} should name {field}");
    }
}

#[tokio::test]
async fn an_answer_is_a_chat_completion_with_usage_details() {
    let router = router();
    let request =
        parse(json!({"model": "auto", "messages": [{"role": "user", "content": "hi there, how are you?"}]})).unwrap();
    let response = router.complete(request).await.unwrap();
    let body = serde_json::to_value(ChatCompletion::from_response(&response, "chatcmpl-1", 1_700_000_000)).unwrap();
    assert_eq!(body["id"], "chatcmpl-1");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["created"], 1_700_000_000);
    assert_eq!(body["model"], response.model().as_str());
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], response.content());
    assert!(choice["message"].get("tool_calls").is_none());
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["logprobs"], Value::Null);
    let usage = &body["usage"];
    assert_eq!(usage["prompt_tokens"], response.usage.input_tokens);
    assert_eq!(usage["completion_tokens"], response.usage.output_tokens);
    assert_eq!(usage["total_tokens"], response.usage.input_tokens + response.usage.output_tokens);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], response.usage.cached_input_tokens);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], response.usage.reasoning_tokens);
    // An OpenAI client's own types read it back.
    let back: ChatCompletion = serde_json::from_value(body).unwrap();
    assert_eq!(back.choices.len(), 1);
}

#[tokio::test]
async fn responses_and_decisions_serialize_without_prompt_text() {
    let router = router();
    let secret = "my account number is 998877, summarise my statement";
    let response = router.complete(switchyard::Request::new(secret).with_key("k")).await.unwrap();
    let v = serde_json::to_value(&response).unwrap();
    assert_eq!(v["model"], response.model().as_str());
    assert!(v["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["attempts"][0]["outcome"], json!({"result": "answered"}));
    assert_eq!(v["attempts"][0]["reason"], "primary");
    assert_eq!(v["cost_usd"].as_f64().unwrap(), response.cost_usd);
    let decision = &v["decision"];
    assert_eq!(decision["id"], response.decision.id().get());
    assert_eq!(decision["model"], response.model().as_str());
    assert_eq!(decision["policy"], response.decision.policy());
    assert_eq!(decision["ranking"][0]["model"], response.model().as_str());
    assert!(decision["ranking"][0]["p"].as_f64().unwrap() > 0.0);
    assert_eq!(decision["explanation"], response.decision.explain());
    assert_eq!(decision["low_confidence"], response.decision.is_low_confidence());
    let text = serde_json::to_string(&v["decision"]).unwrap();
    assert!(!text.contains("998877"), "{text}");
}

/// A client's reading of an SSE body: the JSON of each `data:` event, and whether `[DONE]` ended it.
fn read_sse(body: &str) -> (Vec<Value>, bool) {
    let mut events = Vec::new();
    let mut done = false;
    for block in body.split("\n\n").filter(|b| !b.is_empty()) {
        let data = block.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {block:?}"));
        assert!(!done, "an event after [DONE]");
        if data == "[DONE]" {
            done = true;
        } else {
            events.push(serde_json::from_str(data).unwrap());
        }
    }
    (events, done)
}

#[tokio::test]
async fn a_stream_is_openai_chunks_with_usage_last() {
    let router = router();
    for include_usage in [true, false] {
        let mut stream = router.stream(switchyard::Request::new("hi there, how are you?")).await.unwrap();
        let model = stream.decision().model().to_string();
        let mut encoder = ChunkEncoder::new("chatcmpl-9", 1_700_000_000, model.clone(), include_usage);
        let mut body = String::new();
        let mut text = String::new();
        let mut usage = None;
        while let Some(event) = stream.next().await {
            let event = event.unwrap();
            match &event {
                StreamEvent::Delta(t) => text.push_str(t),
                StreamEvent::Usage(u) => usage = Some(*u),
                _ => {}
            }
            for chunk in encoder.event(&event) {
                body.push_str(&sse::event(&chunk).unwrap());
            }
        }
        for chunk in encoder.finish() {
            body.push_str(&sse::event(&chunk).unwrap());
        }
        body.push_str(sse::DONE);
        let (events, done) = read_sse(&body);
        assert!(done);
        assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
        let mut streamed = String::new();
        for e in &events {
            assert_eq!(e["object"], "chat.completion.chunk");
            assert_eq!((e["id"].as_str(), e["created"].as_u64()), (Some("chatcmpl-9"), Some(1_700_000_000)));
            assert_eq!(e["model"], model.as_str());
            if let Some(t) = e["choices"][0]["delta"]["content"].as_str() {
                streamed.push_str(t);
            }
        }
        assert_eq!(streamed, text);
        let finishes: Vec<&Value> = events.iter().filter(|e| !e["choices"][0]["finish_reason"].is_null()).collect();
        assert_eq!(finishes.len(), 1);
        assert_eq!(finishes[0]["choices"][0]["finish_reason"], "stop");
        let last = events.last().unwrap();
        if include_usage {
            let usage = usage.expect("the simulated provider reports usage");
            assert_eq!(last["choices"], json!([]));
            assert_eq!(last["usage"]["prompt_tokens"], usage.input_tokens);
            assert_eq!(last["usage"]["completion_tokens"], usage.output_tokens);
            assert!(events[..events.len() - 1].iter().all(|e| e["usage"].is_null() && e.get("usage").is_some()));
        } else {
            assert!(events.iter().all(|e| e.get("usage").is_none()), "no usage field unless asked for");
        }
    }
}

#[test]
fn tool_calls_stream_whole_with_their_index() {
    let mut encoder = ChunkEncoder::new("c", 1, "m", false);
    let mut chunks = Vec::new();
    for event in [
        StreamEvent::ToolCall(ToolCall::new("call_a", "f", "{\"x\":1}")),
        StreamEvent::ToolCall(ToolCall::new("call_b", "g", "{}")),
        StreamEvent::Usage(Usage::new(3, 4)),
        StreamEvent::Finish(FinishReason::ToolCalls),
        StreamEvent::Delta("late".into()),
    ] {
        chunks.extend(encoder.event(&event));
    }
    chunks.extend(encoder.finish());
    let v: Vec<Value> = chunks.iter().map(|c| serde_json::to_value(c).unwrap()).collect();
    assert_eq!(v.len(), 3, "two calls and the finish; nothing after the finish");
    assert_eq!(v[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        v[0]["choices"][0]["delta"]["tool_calls"],
        json!([{"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}])
    );
    assert_eq!(v[1]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
    assert_eq!(v[2]["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn errors_are_openai_error_bodies_with_their_status() {
    let router = router();
    let e = router.complete(switchyard::Request::new("x").with_top_p(3.0)).await.unwrap_err();
    assert_eq!(e.kind().http_status(), 400);
    let body = serde_json::to_value(ErrorBody::from_error(&e)).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_eq!(body["error"]["param"], Value::Null);
    assert!(body["error"]["message"].as_str().unwrap().contains("top_p"));
    for (kind, status, family) in [
        (ErrorKind::RateLimited, 429, "rate_limit_error"),
        (ErrorKind::BudgetExceeded, 429, "insufficient_quota"),
        (ErrorKind::Timeout, 504, "server_error"),
        (ErrorKind::Server, 502, "server_error"),
        (ErrorKind::NoCandidate, 400, "invalid_request_error"),
        (ErrorKind::LowConfidence, 422, "invalid_request_error"),
        (ErrorKind::ContentFilter, 400, "invalid_request_error"),
        (ErrorKind::Store, 503, "server_error"),
    ] {
        assert_eq!(kind.http_status(), status, "{kind}");
        assert_eq!(ErrorBody::new(kind, "m").error.kind, family, "{kind}");
    }
    let not_found =
        ErrorBody::new(ErrorKind::InvalidRequest, "The model `x` does not exist").with_code("model_not_found");
    assert_eq!(serde_json::to_value(not_found).unwrap()["error"]["code"], "model_not_found");
}
