//! The Azure OpenAI adapter over real HTTP on 127.0.0.1: what it sends (the deployment path with its
//! `api-version`, or the v1 path; `api-key` or an Entra ID bearer token; OpenAI's body), what it
//! returns for answers in Azure's wire format (with `prompt_filter_results` and per-choice
//! `content_filter_results`, usage with cached and reasoning tokens, streams whose first chunk has
//! empty `choices`), the content filter both ways (a refused prompt is `ErrorKind::ContentFilter`, a
//! filtered answer `FinishReason::ContentFilter`), how every other failure maps to an error kind,
//! timeouts, that no key, token or prompt text leaks, and the router end to end.
//!
//! The fixtures follow the shapes of Microsoft's Azure OpenAI REST reference (chat completions,
//! `2024-10-21`), its content filtering page (the 400 `content_filter` body with
//! `innererror.content_filter_result`, the streamed `prompt_filter_results` chunk) and the error
//! bodies Azure sends (`DeploymentNotFound`, the 401 "Access denied" and the 429 with `retry-after-ms`).

#![cfg(feature = "azure")]
#![allow(clippy::unwrap_used, reason = "tests")]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    Piece, Reply, Server, assert_clean, assert_status_errors, collect, model, pieces, secret_request, streamed_text,
};
use switchyard::execute::retry::{NonRetryable, RetryPolicy};
use switchyard::execute::{AttemptOutcome, AttemptReason};
use switchyard::provider::azure::{AzureOpenAi, AzureOpenAiBuilder};
use switchyard::provider::openai::OpenAi;
use switchyard::{
    Catalog, ErrorKind, ExecutionConfig, FinishReason, ModelProfile, Pricing, Provider, Request, Router, StreamEvent,
    Usage,
};

const KEY: &str = "3f9c2a7b1d8e4f60a5b7c9d1e2f3a4b5";
const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.test-entra-token";

fn builder(server: &Server) -> AzureOpenAiBuilder {
    AzureOpenAi::builder("azure").endpoint(&server.url).api_key(KEY)
}

fn adapter(server: &Server) -> AzureOpenAi {
    builder(server).build().unwrap()
}

const FILTER_SAFE: &str = r#"{"hate": {"filtered": false, "severity": "safe"}, "self_harm": {"filtered": false, "severity": "safe"},
  "sexual": {"filtered": false, "severity": "safe"}, "violence": {"filtered": false, "severity": "safe"}}"#;

/// A chat completion as Azure returns it: the per-choice `content_filter_results`, the
/// `prompt_filter_results`, usage with cached and reasoning tokens.
fn answer(content: &str, finish_reason: &str) -> String {
    format!(
        r#"{{
  "choices": [{{
    "content_filter_results": {{"hate": {{"filtered": false, "severity": "safe"}},
      "protected_material_code": {{"filtered": false, "detected": false}},
      "protected_material_text": {{"filtered": false, "detected": false}},
      "self_harm": {{"filtered": false, "severity": "safe"}}, "sexual": {{"filtered": false, "severity": "safe"}},
      "violence": {{"filtered": false, "severity": "safe"}}}},
    "finish_reason": "{finish_reason}", "index": 0, "logprobs": null,
    "message": {{"content": {content}, "refusal": null, "role": "assistant"}}
  }}],
  "created": 1736368410, "id": "chatcmpl-AnOgQ3ZNKX2xsBcX4DQSzuhBjUAvo", "model": "o3-mini-2025-01-31",
  "object": "chat.completion",
  "prompt_filter_results": [{{"prompt_index": 0, "content_filter_results": {{
    "hate": {{"filtered": false, "severity": "safe"}}, "jailbreak": {{"filtered": false, "detected": false}},
    "self_harm": {{"filtered": false, "severity": "safe"}}, "sexual": {{"filtered": false, "severity": "safe"}},
    "violence": {{"filtered": false, "severity": "safe"}}}}}}],
  "system_fingerprint": "fp_8f7b2c9a1d",
  "usage": {{"completion_tokens": 104, "completion_tokens_details": {{"accepted_prediction_tokens": 0, "audio_tokens": 0,
    "reasoning_tokens": 64, "rejected_prediction_tokens": 0}}, "prompt_tokens": 2100,
    "prompt_tokens_details": {{"audio_tokens": 0, "cached_tokens": 1920}}, "total_tokens": 2204}}
}}"#
    )
}

fn canberra() -> String {
    answer(r#""Canberra.""#, "stop")
}

#[tokio::test]
async fn complete_sends_the_deployment_path_and_api_key() {
    let server = Server::always(Reply::json(200, canberra())).await;
    let azure = builder(&server).header("x-ms-client-request-id", "req-1").max_completion_tokens(true).build().unwrap();
    let request = Request::new("What is the capital of Australia?").with_system("One word.").with_max_tokens(200);
    let response = azure.complete(&model("azure", "my-o3-mini"), &request).await.unwrap();

    assert_eq!(response.content(), "Canberra.");
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.usage, Usage::new(2100, 104).with_cached_input(1920).with_reasoning(64));

    let sent = server.only_request();
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/openai/deployments/my-o3-mini/chat/completions"));
    assert_eq!(sent.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(sent.header("api-key"), Some(KEY));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.header("x-ms-client-request-id"), Some("req-1"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.body,
        json!({
            "model": "my-o3-mini",
            "messages": [
                {"role": "system", "content": "One word."},
                {"role": "user", "content": "What is the capital of Australia?"}
            ],
            "max_completion_tokens": 200
        })
    );
}

#[tokio::test]
async fn entra_token_v1_path_and_api_versions() {
    let server = Server::always(Reply::json(200, canberra())).await;
    // The v1 API: no `api-version`, the deployment as the body's model, a bearer token.
    let v1 =
        AzureOpenAi::builder("azure").endpoint(format!("{}/", server.url)).bearer_token(TOKEN).v1().build().unwrap();
    v1.complete(&model("azure", "gpt-4o-prod"), &Request::new("hi")).await.unwrap();
    let sent = server.only_request();
    assert_eq!((sent.path.as_str(), sent.query.as_deref()), ("/openai/v1/chat/completions", None));
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(sent.header("api-key"), None);
    assert_eq!(sent.body["model"], "gpt-4o-prod");
    let text = format!("{v1:?}");
    assert!(!text.contains(TOKEN) && text.contains("v1: true"), "{text}");

    // An explicit version, on either path; an endpoint given with its `/openai`.
    let preview = AzureOpenAi::builder("azure")
        .endpoint(format!("{}/openai", server.url))
        .api_key(KEY)
        .api_version("2025-04-01-preview")
        .build()
        .unwrap();
    preview.complete(&model("azure", "gpt-4o-prod"), &Request::new("hi")).await.unwrap();
    let v1_preview = builder(&server).v1().api_version("preview").build().unwrap();
    v1_preview.complete(&model("azure", "gpt-4o-prod"), &Request::new("hi")).await.unwrap();
    let sent: Vec<_> = server.requests().into_iter().skip(1).map(|r| (r.path, r.query)).collect();
    assert_eq!(
        sent,
        [
            (
                "/openai/deployments/gpt-4o-prod/chat/completions".to_owned(),
                Some("api-version=2025-04-01-preview".into())
            ),
            ("/openai/v1/chat/completions".to_owned(), Some("api-version=preview".into())),
        ]
    );
}

fn data(json: &str) -> String {
    format!("data: {}\n\n", json.replace('\n', ""))
}

fn chunk(delta: &str, finish_reason: &str) -> String {
    data(&format!(
        r#"{{"choices":[{{"content_filter_results":{FILTER_SAFE},"delta":{delta},"finish_reason":{finish_reason},"index":0,"logprobs":null}}],"created":1736368410,"id":"chatcmpl-AnOh","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_f3927aa00d"}}"#
    ))
}

/// Azure's stream: the first chunk has empty `choices` and the prompt's filter results, the role
/// chunk has an empty content, every content chunk carries its filter results, usage comes in a
/// chunk with empty `choices` before `[DONE]`.
fn azure_stream(last_finish: &str) -> String {
    [
        data(&format!(
            r#"{{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{{"prompt_index":0,"content_filter_results":{FILTER_SAFE}}}]}}"#
        )),
        data(
            r#"{"choices":[{"content_filter_results":{},"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1736368410,"id":"chatcmpl-AnOh","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_f3927aa00d","usage":null}"#,
        ),
        chunk(r#"{"content":"The opposite"}"#, "null"),
        chunk(r#"{"content":" of hot is cold."}"#, "null"),
        data(&format!(
            r#"{{"choices":[{{"content_filter_results":{{}},"delta":{{}},"finish_reason":"{last_finish}","index":0,"logprobs":null}}],"created":1736368410,"id":"chatcmpl-AnOh","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","usage":null}}"#
        )),
        data(
            r#"{"choices":[],"created":1736368410,"id":"chatcmpl-AnOh","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","usage":{"completion_tokens":7,"completion_tokens_details":{"reasoning_tokens":0},"prompt_tokens":14,"prompt_tokens_details":{"cached_tokens":0},"total_tokens":21}}"#,
        ),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat()
}

#[tokio::test]
async fn stream_with_prompt_filter_results_first() {
    let expected = vec![
        StreamEvent::Delta("The opposite".into()),
        StreamEvent::Delta(" of hot is cold.".into()),
        StreamEvent::Usage(Usage::new(14, 7)),
        StreamEvent::Finish(FinishReason::Stop),
    ];
    for size in [1, 7, 64, 8192] {
        let server = Server::always(Reply::sse(pieces(&azure_stream("stop"), size))).await;
        let stream =
            adapter(&server).stream(&model("azure", "gpt-4o"), &Request::new("opposite of hot?")).await.unwrap();
        let events: Vec<StreamEvent> = collect(stream).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(events, expected, "pieces of {size}");
        let sent = server.only_request();
        assert_eq!(sent.path, "/openai/deployments/gpt-4o/chat/completions");
        assert_eq!(sent.query.as_deref(), Some("api-version=2024-10-21"));
        assert_eq!(sent.header("accept"), Some("text/event-stream"));
        assert_eq!(
            (sent.body["stream"].clone(), sent.body["stream_options"].clone()),
            (json!(true), json!({"include_usage": true}))
        );
    }
    // A stream cut before `[DONE]` is a decode error after the content.
    let cut = azure_stream("stop").replace("data: [DONE]\n\n", "");
    let server =
        Server::always(Reply::sse(vec![Piece::Bytes(cut), Piece::Sleep(Duration::from_millis(20)), Piece::Abort]))
            .await;
    let events = collect(adapter(&server).stream(&model("azure", "gpt-4o"), &Request::new("x")).await.unwrap()).await;
    assert_eq!(events.last().unwrap().as_ref().unwrap_err().kind(), ErrorKind::Decode);
}

/// The 400 Azure sends when its content filter flags the prompt (here a jailbreak attempt and
/// violence at medium severity).
const PROMPT_FILTERED: &str = r#"{"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
  "type": null, "param": "prompt", "code": "content_filter", "status": 400,
  "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
    "hate": {"filtered": false, "severity": "safe"}, "jailbreak": {"filtered": true, "detected": true},
    "self_harm": {"filtered": false, "severity": "safe"}, "sexual": {"filtered": false, "severity": "safe"},
    "violence": {"filtered": true, "severity": "medium"}}}}}"#;

#[tokio::test]
async fn content_filter_refusals_and_filtered_answers() {
    // The prompt: refused with its own kind, naming the flagged categories, both ways of calling.
    let server = Server::always(Reply::json(400, PROMPT_FILTERED)).await;
    let azure = adapter(&server);
    for err in [
        azure.complete(&model("azure", "gpt-4o"), &Request::new("x")).await.unwrap_err(),
        azure.stream(&model("azure", "gpt-4o"), &Request::new("x")).await.err().unwrap(),
    ] {
        assert_eq!((err.kind(), err.status(), err.is_retryable()), (ErrorKind::ContentFilter, Some(400), false));
        let text = err.to_string();
        assert!(text.contains("content filter") && text.contains("flagging `jailbreak`, `violence`"), "{text}");
        assert!(text.contains("ResponsibleAIPolicyViolation") && !text.contains("hate"), "{text}");
        assert_eq!(err.kind().http_status(), 400);
    }
    // Only the Azure adapter reads Azure's code: OpenAI does not send it, so `OpenAi` pointed at
    // the same body says `BadRequest`.
    let openai = OpenAi::builder("openai").base_url(&server.url).build().unwrap();
    assert_eq!(
        openai.complete(&model("openai", "m"), &Request::new("x")).await.unwrap_err().kind(),
        ErrorKind::BadRequest
    );

    // The answer: a 200 with no content and `finish_reason: content_filter`.
    let filtered = answer("null", "content_filter").replace(
        r#""violence": {"filtered": false, "severity": "safe"}}, "finish_reason""#,
        r#""violence": {"filtered": true, "severity": "high"}}, "finish_reason""#,
    );
    let server = Server::always(Reply::json(200, filtered)).await;
    let response = adapter(&server).complete(&model("azure", "gpt-4o"), &Request::new("x")).await.unwrap();
    assert_eq!((response.content(), response.finish_reason), ("", FinishReason::ContentFilter));

    // Streamed: the text so far, then the filter's finish reason.
    let server = Server::always(Reply::sse(pieces(&azure_stream("content_filter"), 64))).await;
    let events: Vec<StreamEvent> =
        collect(adapter(&server).stream(&model("azure", "gpt-4o"), &Request::new("x")).await.unwrap())
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    assert_eq!(events.last(), Some(&StreamEvent::Finish(FinishReason::ContentFilter)));
    assert_eq!(events[0], StreamEvent::Delta("The opposite".into()));
}

#[tokio::test]
async fn every_error_status_maps_to_its_kind() {
    let cases: Vec<(Reply, ErrorKind, Option<Duration>)> = vec![
        (
            Reply::json(
                400,
                r#"{"error": {"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 tokens. Please reduce the length of the messages.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}"#,
            ),
            ErrorKind::ContextOverflow,
            None,
        ),
        (
            Reply::json(
                400,
                r#"{"error": {"message": "Unrecognized request argument supplied: frobnicate", "type": "invalid_request_error", "param": null, "code": null}}"#,
            ),
            ErrorKind::BadRequest,
            None,
        ),
        (
            Reply::json(
                401,
                r#"{"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}"#,
            ),
            ErrorKind::Auth,
            None,
        ),
        (
            Reply::json(
                403,
                r#"{"error": {"code": "PermissionDenied", "message": "The principal `00000000-0000-0000-0000-000000000000` lacks the required data action `Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action` to perform `POST /openai/deployments/{deployment-id}/chat/completions` operation."}}"#,
            ),
            ErrorKind::Auth,
            None,
        ),
        (
            Reply::json(
                404,
                r#"{"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}"#,
            ),
            ErrorKind::ModelNotFound,
            None,
        ),
        (
            Reply::json(
                429,
                r#"{"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds. Go here for more details: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."}}"#,
            )
            .header("retry-after", "6")
            .header("retry-after-ms", "5921"),
            ErrorKind::RateLimited,
            Some(Duration::from_millis(5921)),
        ),
        (
            Reply::json(429, r#"{"error": {"code": "429", "message": "Rate limit is exceeded. Try again in 2 seconds."}}"#)
                .header("retry-after", "2"),
            ErrorKind::RateLimited,
            Some(Duration::from_secs(2)),
        ),
        (
            Reply::json(
                500,
                r#"{"error": {"message": "The server had an error while processing your request. Sorry about that!", "type": "server_error", "param": null, "code": null}}"#,
            ),
            ErrorKind::Server,
            None,
        ),
        (
            Reply::json(
                503,
                r#"{"error": {"code": "ServiceUnavailable", "message": "The service is temporarily unable to process your request. Please try again later."}}"#,
            ),
            ErrorKind::Server,
            None,
        ),
    ];
    let not_found: Vec<Reply> = cases.iter().filter(|c| c.1 == ErrorKind::ModelNotFound).map(|c| c.0.clone()).collect();
    assert!(!not_found.is_empty());
    assert_status_errors(cases, adapter, &model("azure", "gpt-4o"), &[KEY]).await;
    for reply in not_found {
        let server = Server::always(reply).await;
        let err = adapter(&server).complete(&model("azure", "gpt-4o"), &Request::new("x")).await.unwrap_err();
        assert!(err.to_string().contains("`gpt-4o`") && err.to_string().contains("DeploymentNotFound"), "{err}");
    }
}

fn fast(server: &Server) -> AzureOpenAi {
    builder(server).first_byte_timeout(Duration::from_millis(150)).timeout(Duration::from_millis(400)).build().unwrap()
}

#[tokio::test]
async fn connect_first_byte_and_total_timeouts() {
    let server = Server::always(Reply::json(200, canberra()).delayed(Duration::from_millis(600))).await;
    let start = Instant::now();
    let err = fast(&server).complete(&model("azure", "d"), &Request::new("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(start.elapsed() < Duration::from_millis(500), "{:?}", start.elapsed());

    // Headers and the prompt's filter results at once, but no content before the first-byte timeout.
    let stream = azure_stream("stop");
    let (first, rest) = stream.split_at(stream.find("\n\n").unwrap() + 2);
    let stalled = Reply::sse(vec![
        Piece::Bytes(first.to_owned()),
        Piece::Sleep(Duration::from_millis(600)),
        Piece::Bytes(rest.to_owned()),
    ]);
    let server = Server::always(stalled).await;
    let err = fast(&server).stream(&model("azure", "d"), &Request::new("x")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");

    let slow = Reply::sse(vec![
        Piece::Bytes(chunk(r#"{"content":"Once"}"#, "null")),
        Piece::Sleep(Duration::from_millis(800)),
    ]);
    let server = Server::always(slow).await;
    let start = Instant::now();
    let events = collect(fast(&server).stream(&model("azure", "d"), &Request::new("x")).await.unwrap()).await;
    assert_eq!(events.last().unwrap().as_ref().unwrap_err().kind(), ErrorKind::Timeout);
    assert!(start.elapsed() < Duration::from_millis(750), "{:?}", start.elapsed());

    let (addr, _listener, _fillers) = support::unaccepting_listener().await;
    let azure = AzureOpenAi::builder("azure")
        .endpoint(format!("http://{addr}"))
        .api_key(KEY)
        .connect_timeout(Duration::from_millis(150))
        .first_byte_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let start = Instant::now();
    let err = azure.complete(&model("azure", "d"), &Request::new("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(start.elapsed() < Duration::from_millis(600), "{:?}", start.elapsed());
    assert_clean(&err, &[KEY]);

    let closed = support::closed_port().await;
    let azure = AzureOpenAi::builder("azure").endpoint(format!("http://{closed}")).api_key(KEY).build().unwrap();
    let err = azure.stream(&model("azure", "d"), &Request::new("x")).await.err().unwrap();
    assert_eq!((err.kind(), err.is_retryable()), (ErrorKind::Connection, true), "{err:?}");
}

#[tokio::test]
async fn keys_tokens_and_prompts_never_leak() {
    let secret = "violet-harbour-4410-hidden";
    let request = secret_request(secret);
    for credential in [KEY, TOKEN] {
        let with =
            |b: AzureOpenAiBuilder| if credential == KEY { b.api_key(credential) } else { b.bearer_token(credential) };
        // Error bodies that echo the prompt and the credential, as a careless proxy might.
        let echo = json!({"error": {"code": "content_filter", "message": format!("filtered: please keep this quiet: {secret} {credential}"),
            "innererror": {"code": credential, "content_filter_result": {credential: {"filtered": true}}}}});
        let server = Server::always(Reply::json(400, echo.to_string())).await;
        let b = with(AzureOpenAi::builder("azure").endpoint(&server.url));
        let text = format!("{b:?}");
        let azure = b.build().unwrap();
        let text = format!("{text} {azure:?}");
        assert!(!text.contains(credential) && text.contains("[redacted]"), "{text}");
        let err = azure.complete(&model("azure", "d"), &request).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ContentFilter);
        assert_clean(&err, &[credential, secret]);
        let err = azure.stream(&model("azure", "d"), &request).await.err().unwrap();
        assert_clean(&err, &[credential, secret]);
        // Auth errors never show the provider's message.
        let body = json!({"error": {"code": "401", "message": format!("token {credential} expired")}});
        let server = Server::always(Reply::json(401, body.to_string())).await;
        let azure = with(AzureOpenAi::builder("azure").endpoint(&server.url)).build().unwrap();
        let err = azure.complete(&model("azure", "d"), &request).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Auth);
        assert_clean(&err, &[credential, secret, "expired"]);
    }
    // Endpoints with credentials in them are not shown either, valid or not.
    for endpoint in
        ["https://user:SECRET@res.openai.azure.com", "http://user:SECRET@[::1", "ftp://res.openai.azure.com?sig=SECRET"]
    {
        let b = AzureOpenAi::builder("azure").endpoint(endpoint).api_key(KEY);
        let text = format!("{b:?}");
        let shown = match b.build() {
            Ok(azure) => format!("{text} {azure:?}"),
            Err(err) => format!("{text} {err} {err:?}"),
        };
        assert!(!shown.contains("SECRET") && !shown.contains(KEY), "{shown}");
    }
}

#[tokio::test]
async fn builder_requires_an_endpoint_and_one_credential() {
    let ok = || AzureOpenAi::builder("azure").endpoint("https://res.openai.azure.com");
    for (b, says) in [
        (AzureOpenAi::builder("azure").api_key(KEY), "endpoint"),
        (ok().api_key(KEY).bearer_token(TOKEN), "not both"),
        (ok().api_version(""), "api-version"),
    ] {
        let err = b.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains(says), "{err}");
        assert_clean(&err, &[KEY, TOKEN]);
    }
    // No credentials at all is allowed: a gateway in front may add them.
    ok().build().unwrap();
}

#[tokio::test]
async fn router_moves_on_after_a_content_filter_refusal() {
    let ok = Server::always(Reply::json(200, canberra())).await;
    let strict = Server::always(Reply::json(400, PROMPT_FILTERED)).await;
    // `strict` is cheaper, so the router tries it first.
    let catalog = Catalog::new([
        ModelProfile::new("o3-mini", "azure")
            .with_api_name("my-o3-mini")
            .with_pricing(Pricing::per_mtok(1.10, 4.40).with_cached_input(0.55)),
        ModelProfile::new("mini-strict", "azure-strict")
            .with_api_name("gpt-4o-mini")
            .with_pricing(Pricing::per_mtok(0.15, 0.60)),
    ])
    .unwrap();
    let strict_adapter = || AzureOpenAi::builder("azure-strict").endpoint(&strict.url).api_key(KEY).build().unwrap();
    let quick = RetryPolicy::new().with_initial_backoff(Duration::from_millis(1));
    let router = Router::builder()
        .catalog(catalog.clone())
        .provider(adapter(&ok))
        .provider(strict_adapter())
        .execution(ExecutionConfig::new().with_retry(quick.clone()))
        .build()
        .unwrap();
    let response = router.complete(Request::new("capital of Australia?")).await.unwrap();
    assert_eq!((response.content(), response.model().as_str()), ("Canberra.", "o3-mini"));
    let attempts: Vec<_> = response.attempts.iter().map(|a| (a.model.as_str(), a.reason, a.outcome.clone())).collect();
    assert_eq!(
        attempts,
        [
            (
                "mini-strict",
                AttemptReason::Primary,
                AttemptOutcome::Failed { kind: ErrorKind::ContentFilter, status: Some(400) }
            ),
            ("o3-mini", AttemptReason::Fallback, AttemptOutcome::Answered),
        ]
    );
    assert_eq!(strict.requests().len(), 1, "not retried");
    assert_eq!(strict.requests()[0].path, "/openai/deployments/gpt-4o-mini/chat/completions");
    // 180 uncached input tokens at $1.10/M, 1920 cached at $0.55/M, 104 output at $4.40/M.
    let expected = (180.0 * 1.10 + 1920.0 * 0.55 + 104.0 * 4.40) / 1e6;
    assert!((response.cost_usd - expected).abs() < 1e-12, "{} vs {expected}", response.cost_usd);

    // Told to stop on errors that are not retryable, the router returns the refusal.
    let router = Router::builder()
        .catalog(catalog)
        .provider(adapter(&ok))
        .provider(strict_adapter())
        .execution(ExecutionConfig::new().with_retry(quick.with_on_non_retryable(NonRetryable::Stop)))
        .build()
        .unwrap();
    let err = router.complete(Request::new("capital of Australia?")).await.unwrap_err();
    assert_eq!((err.kind(), err.status(), err.attempts().len()), (ErrorKind::ContentFilter, Some(400), 1));

    // Streaming through the router.
    let streamed = Server::always(Reply::sse(pieces(&azure_stream("stop"), 13))).await;
    let router = Router::builder()
        .catalog(Catalog::new([ModelProfile::new("gpt-4o", "azure").with_api_name("gpt-4o")]).unwrap())
        .provider(adapter(&streamed))
        .build()
        .unwrap();
    let text = streamed_text(router.stream(Request::new("opposite of hot?")).await.unwrap()).await;
    assert_eq!(text, "The opposite of hot is cold.");
}

#[test]
fn adapter_is_a_shareable_provider() {
    fn is<T: Provider + Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    is::<AzureOpenAi>();
    let _: fn(AzureOpenAi) -> std::sync::Arc<dyn Provider> = |p| std::sync::Arc::new(p);
}
