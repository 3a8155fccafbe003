//! Criterion benchmarks of what the gateway adds to a request, in process (no sockets): the same
//! requests through `Router::complete` directly, and through the gateway's HTTP handler as an OpenAI
//! client sends them.
//!
//! - `gateway/router_complete`: `Router::complete` for a `Request`: the baseline.
//! - `gateway/http_json`: `POST /v1/chat/completions` through the axum app (`tower::ServiceExt::oneshot`):
//!   the key check, the concurrency slot, reading and parsing the body, converting it, the same
//!   `complete`, the `chat.completion` JSON, headers and metrics; the body is read to the end.
//! - `gateway/wire_only`: parsing the body, `Request::try_from` and writing a `chat.completion` for
//!   a response already made: the wire layer's share.
//!
//! The router is the example config's (`crates/gateway/gateway.toml`: four models, difficulty and
//! intent classifiers, the simulated provider answering at once). Prompts cycle through eight short
//! requests of different kinds. Each call runs with `block_on` on a current-thread tokio runtime.
//!
//! ```text
//! cargo bench -p switchyard-gateway --bench gateway -- --warm-up-time 1 --measurement-time 3
//! ```

#![allow(clippy::unwrap_used, reason = "benchmarks")]

use std::hint::black_box;

use axum::body::Body;
use axum::http::Request as HttpRequest;
use criterion::{Criterion, criterion_group, criterion_main};
use switchyard::Request;
use switchyard::wire::openai::{ChatCompletion, ChatCompletionRequest};
use switchyard_gateway::{Gateway, GatewayConfig};
use tower::ServiceExt;

const PROMPTS: [&str; 8] = [
    "Hi there, how are you?",
    "What is 17 * 23?",
    "Write a haiku about autumn leaves.",
    "Translate 'good morning, how did you sleep?' into French.",
    "Extract the names and dates from: Ada met Charles on 5 June 1833 in London.",
    "Write a Python function that returns the n-th Fibonacci number iteratively.",
    "Prove that the square root of 2 is irrational, step by step.",
    "Summarise the trade-offs between optimistic and pessimistic locking in databases.",
];

fn body(prompt: &str) -> String {
    serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]}).to_string()
}

fn bench(c: &mut Criterion) {
    let config = GatewayConfig::from_toml_str(include_str!("../gateway.toml")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let gateway = rt.block_on(async { Gateway::new(&config, &|_| None).unwrap() });
    let app = gateway.app();
    let router = gateway.router().clone();
    let bodies: Vec<String> = PROMPTS.iter().map(|p| body(p)).collect();
    let mut group = c.benchmark_group("gateway");

    let mut i = 0;
    group.bench_function("router_complete", |b| {
        b.iter(|| {
            i = (i + 1) % PROMPTS.len();
            let response = rt.block_on(router.complete(Request::new(PROMPTS[i]))).unwrap();
            black_box(response.usage)
        });
    });

    let mut i = 0;
    group.bench_function("http_json", |b| {
        b.iter(|| {
            i = (i + 1) % bodies.len();
            let request = HttpRequest::post("/v1/chat/completions")
                .header("content-type", "application/json")
                .body(Body::from(bodies[i].clone()))
                .unwrap();
            rt.block_on(async {
                let response = app.clone().oneshot(request).await.unwrap();
                assert!(response.status().is_success());
                black_box(axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().len())
            })
        });
    });

    let answer = rt.block_on(router.complete(Request::new(PROMPTS[0]))).unwrap();
    let mut i = 0;
    group.bench_function("wire_only", |b| {
        b.iter(|| {
            i = (i + 1) % bodies.len();
            let wire: ChatCompletionRequest = serde_json::from_str(&bodies[i]).unwrap();
            let request = Request::try_from(wire).unwrap();
            let out = serde_json::to_vec(&ChatCompletion::from_response(&answer, "chatcmpl-1", 1)).unwrap();
            black_box((request.messages.len(), out.len()))
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
