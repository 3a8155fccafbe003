//! A routed stream as a server-sent events body in OpenAI's chunk format.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use futures_util::StreamExt;
use switchyard::RoutedStream;
use switchyard::wire::openai::{ChunkEncoder, ErrorBody};
use switchyard::wire::sse;
use tokio::sync::OwnedSemaphorePermit;

struct Streaming {
    events: RoutedStream,
    encoder: ChunkEncoder,
    pending: VecDeque<Bytes>,
    done: bool,
    /// The concurrency slot, held until the stream ends or the client goes away.
    _permit: OwnedSemaphorePermit,
}

impl Streaming {
    fn push<T: serde::Serialize>(&mut self, value: &T) {
        match sse::event(value) {
            Ok(event) => self.pending.push_back(Bytes::from(event)),
            Err(e) => tracing::error!(target: "switchyard_gateway", error = %e, "an event did not serialize"),
        }
    }
}

/// The body: chunks as they come, then the usage chunk if asked for and `data: [DONE]`. A failure
/// after the first chunk (the status is sent by then) is one `data: {"error": ...}` event, and the
/// stream ends without `[DONE]`, so that clients see an error, not a short answer.
pub(crate) fn body(
    events: RoutedStream,
    id: String,
    created: u64,
    include_usage: bool,
    permit: OwnedSemaphorePermit,
) -> Body {
    let model = events.model().to_string();
    let state = Streaming {
        events,
        encoder: ChunkEncoder::new(id, created, model, include_usage),
        pending: VecDeque::new(),
        done: false,
        _permit: permit,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(bytes) = s.pending.pop_front() {
                return Some((Ok::<_, Infallible>(bytes), s));
            }
            if s.done {
                return None;
            }
            match s.events.next().await {
                Some(Ok(event)) => {
                    for chunk in s.encoder.event(&event) {
                        s.push(&chunk);
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(target: "switchyard_gateway", kind = %e.kind(), "stream failed after its first chunk");
                    s.push(&ErrorBody::from_error(&e));
                    s.done = true;
                }
                None => {
                    for chunk in s.encoder.finish() {
                        s.push(&chunk);
                    }
                    s.pending.push_back(Bytes::from_static(sse::DONE.as_bytes()));
                    s.done = true;
                }
            }
        }
    });
    Body::from_stream(stream)
}
