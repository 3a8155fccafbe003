//! What attempts record: a stream's whole duration and its time to first content, and which length
//! stops count as truncation. Every async test runs on a paused tokio clock.

#![allow(clippy::unwrap_used, reason = "tests and their helpers may unwrap")]

mod fixtures;

use std::time::Duration;

use fixtures::{StreamsOnly, escalating_router, mini_frontier, models};
use futures::StreamExt;

use switchyard::execute::AttemptOutcome;
use switchyard::execute::quality::Inadequacy;
use switchyard::{ErrorKind, ExecutionConfig, FinishReason, Request, Router, SimulatedModel, StreamEvent};

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);
const EASY: &str = "hi there, how are you today?";

#[tokio::test(start_paused = true)]
async fn a_stop_at_the_callers_max_tokens_is_not_escalated() {
    // The weak model wants 500 tokens; the caller allows 100. It stops at the caller's limit, which a
    // stronger model would too: one call, no escalation.
    let long = || SimulatedModel::healthy().with_output_tokens(500);
    let r = escalating_router(long(), SimulatedModel::healthy(), 1)
        .complete(Request::new(EASY).with_max_tokens(100))
        .await
        .unwrap();
    assert_eq!(models(&r.attempts), ["mini"]);
    // 100 answer tokens, plus as many reasoning tokens (the fixture's models reason).
    assert_eq!((r.finish_reason, r.usage.output_tokens - r.usage.reasoning_tokens), (FinishReason::Length, 100));
    assert!(r.inadequacy.is_none());

    // Cut at 60 tokens (30 answer, 30 reasoning), below the caller's 100 (a limit of the model's
    // own): escalated.
    let cut = SimulatedModel::healthy().with_output_tokens(30).with_answer_faults(0.0, 1.0, 0.0, 0.0);
    let r = escalating_router(cut, SimulatedModel::healthy(), 1)
        .complete(Request::new(EASY).with_max_tokens(100))
        .await
        .unwrap();
    assert_eq!(models(&r.attempts), ["mini", "frontier"]);
    assert_eq!(
        r.attempts[0].outcome,
        AttemptOutcome::Inadequate(Inadequacy::new("not_truncated", Inadequacy::TRUNCATED))
    );

    // No caller limit: a length stop is escalated.
    let cut = SimulatedModel::healthy().with_output_tokens(50).with_answer_faults(0.0, 1.0, 0.0, 0.0);
    let r = escalating_router(cut, SimulatedModel::healthy(), 1).complete(Request::new(EASY)).await.unwrap();
    assert_eq!(models(&r.attempts), ["mini", "frontier"]);
}

/// One piece of text after 200 ms, then nothing, ever.
fn first_then_stall() -> switchyard::EventStream {
    Box::pin(
        futures::stream::once(async {
            tokio::time::sleep(200 * MS).await;
            Ok(StreamEvent::Delta("partial".into()))
        })
        .chain(futures::stream::pending()),
    )
}

#[tokio::test(start_paused = true)]
async fn a_stalled_stream_records_its_whole_duration_and_its_time_to_first_content() {
    let router = Router::builder()
        .catalog(mini_frontier())
        .provider(StreamsOnly(first_then_stall))
        .execution(ExecutionConfig::new().with_first_token_timeout(60 * SEC))
        .build()
        .unwrap();
    let stream = router.stream(Request::new(EASY).with_timeout(5 * SEC)).await.unwrap();
    assert_eq!(stream.time_to_first_token(), 200 * MS);
    let events: Vec<_> = stream.collect().await;
    let e = events.last().unwrap().as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MidStream);
    let attempt = e.attempts().last().unwrap();
    assert_eq!(attempt.outcome, AttemptOutcome::Failed { kind: ErrorKind::Timeout, status: None });
    // The attempt lasted until the deadline; its first content came after 200 ms.
    assert_eq!((attempt.latency, attempt.ttft), (5 * SEC, Some(200 * MS)));
    assert!(attempt.to_string().contains("timeout after 5000 ms (first content after 200 ms)"), "{attempt}");

    // A stream that ends records its whole duration too, once it ended.
    fn two_pieces() -> switchyard::EventStream {
        Box::pin(futures::stream::unfold(0, |n| async move {
            tokio::time::sleep(300 * MS).await;
            (n < 2).then(|| (Ok(StreamEvent::Delta("piece ".into())), n + 1))
        }))
    }
    let router = Router::builder().catalog(mini_frontier()).provider(StreamsOnly(two_pieces)).build().unwrap();
    let mut stream = router.stream(Request::new(EASY)).await.unwrap();
    assert_eq!(stream.attempts()[0].ttft, Some(300 * MS));
    while stream.next().await.is_some() {}
    assert_eq!((stream.attempts()[0].latency, stream.attempts()[0].ttft), (900 * MS, Some(300 * MS)));
    // Calls that were not streamed have no time to first content.
    let router = escalating_router(SimulatedModel::healthy(), SimulatedModel::healthy(), 0);
    let r = router.complete(Request::new(EASY)).await.unwrap();
    assert_eq!(r.attempts[0].ttft, None);
}
