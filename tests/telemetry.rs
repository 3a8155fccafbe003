//! Provider calls as tracing spans named after OpenTelemetry's GenAI semantic conventions: what a
//! subscriber sees for an answer, a stream and a failed call, and that no prompt or answer text is in
//! any field.

#![allow(clippy::unwrap_used, reason = "tests")]

mod fixtures;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use switchyard::{Request, SimulatedModel};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// The fields of every `chat` span, by span, in creation order.
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
    ids: Arc<Mutex<BTreeMap<u64, usize>>>,
    next: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        if span.metadata().name() == "chat" && span.metadata().target() == "switchyard::gen_ai" {
            let mut fields = BTreeMap::new();
            span.record(&mut Fields(&mut fields));
            let mut spans = self.spans.lock().unwrap();
            spans.push(fields);
            self.ids.lock().unwrap().insert(id, spans.len() - 1);
        }
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(&i) = self.ids.lock().unwrap().get(&span.into_u64()) {
            values.record(&mut Fields(&mut self.spans.lock().unwrap()[i]));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

fn captured(run: impl std::future::Future<Output = ()>) -> Vec<BTreeMap<String, String>> {
    let capture = Capture::default();
    let spans = Arc::clone(&capture.spans);
    tracing::subscriber::with_default(capture, || {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(run);
    });
    spans.lock().unwrap().clone()
}

const PROMPT: &str = "summarise the contract for account 55443322";

#[test]
fn an_answer_and_a_stream_are_genai_chat_spans_with_usage() {
    let router = fixtures::escalating_router(SimulatedModel::healthy(), SimulatedModel::healthy(), 0);
    let spans = captured(async {
        let answer = router.complete(Request::new(PROMPT).with_max_tokens(300).with_top_p(0.5)).await.unwrap();
        assert!(answer.usage.output_tokens > 0);
        let mut stream = router.stream(Request::new(PROMPT)).await.unwrap();
        while let Some(event) = stream.next().await {
            event.unwrap();
        }
    });
    assert_eq!(spans.len(), 2, "{spans:?}");
    for span in &spans {
        assert_eq!(span["gen_ai.operation.name"], "chat");
        assert_eq!(span["gen_ai.provider.name"], "sim");
        assert_eq!(span["otel.kind"], "client");
        assert_eq!(span["otel.name"], format!("chat {}", span["gen_ai.request.model"]));
        assert!(span["gen_ai.usage.input_tokens"].parse::<u32>().unwrap() > 0, "{span:?}");
        assert!(span["gen_ai.usage.output_tokens"].parse::<u32>().unwrap() > 0, "{span:?}");
        assert_eq!(span["gen_ai.response.finish_reasons"], "stop");
        assert_eq!(span["switchyard.attempt.reason"], "primary");
        assert!(!span.contains_key("error.type"));
        assert!(span.values().all(|v| !v.contains("55443322")), "{span:?}");
    }
    assert_eq!(spans[0]["gen_ai.request.max_tokens"], "300");
    assert_eq!(spans[0]["gen_ai.request.top_p"], "0.5");
    assert!(!spans[1].contains_key("gen_ai.request.max_tokens"), "unset parameters are left out");
}

#[test]
fn a_failed_call_records_its_error_type() {
    let failing = SimulatedModel::healthy().with_failures(1.0, 0.0, 0.0);
    let router = fixtures::escalating_router(failing.clone(), failing, 0);
    let spans = captured(async {
        router.complete(Request::new(PROMPT)).await.unwrap_err();
    });
    assert!(spans.len() >= 2, "every attempt is a span: {spans:?}");
    assert!(spans.iter().all(|s| s["error.type"] == "server"), "{spans:?}");
    assert!(spans.iter().any(|s| s["switchyard.attempt.reason"] != "primary"), "{spans:?}");
}
