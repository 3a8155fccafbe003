//! Routed streams as server-sent event bodies: the driver both streaming endpoints share, and
//! chat completions' encoder (OpenAI's chunk format).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;

use axum::body::{Body, Bytes};
use futures_util::{Stream, StreamExt};
#[cfg(doc)]
use switchyard::RoutedStream;
use switchyard::wire::openai::{ChunkEncoder, ErrorBody};
use switchyard::wire::sse;
use switchyard::{Error, StreamEvent};
use tokio::sync::OwnedSemaphorePermit;

/// Work an encoder needs done before its next bytes go out (keeping a complete answer, so that a
/// client that reads the end of the stream finds it kept).
pub(crate) type Keeping = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Turns a routed stream's events into the bytes of an event stream.
pub(crate) trait Encode: Send + 'static {
    /// The next bytes ready to send, if any.
    fn next_bytes(&mut self) -> Option<Bytes>;
    /// One event of the answer.
    fn event(&mut self, event: StreamEvent);
    /// The stream failed after its first event (the status is sent by then): what ends the body.
    fn fail(&mut self, error: &Error);
    /// The answer is complete: what ends the body.
    fn end(&mut self);
    /// What must be done before the next bytes are sent, if anything.
    fn keeping(&mut self) -> Option<Keeping> {
        None
    }
}

struct Drive<S, E> {
    events: S,
    encoder: E,
    done: bool,
    /// The concurrency slot, held until the stream ends or the client goes away.
    _permit: OwnedSemaphorePermit,
}

/// The body: `encoder`'s bytes as the events come (from a [`RoutedStream`]), then its ending, or
/// its failure. Whatever the encoder has to keep is kept before the bytes that follow it go out.
pub(crate) fn body<S, E>(events: S, encoder: E, permit: OwnedSemaphorePermit) -> Body
where
    S: Stream<Item = Result<StreamEvent, Error>> + Send + Unpin + 'static,
    E: Encode,
{
    let state = Drive { events, encoder, done: false, _permit: permit };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(keeping) = s.encoder.keeping() {
                keeping.await;
            }
            if let Some(bytes) = s.encoder.next_bytes() {
                return Some((Ok::<_, Infallible>(bytes), s));
            }
            if s.done {
                return None;
            }
            match s.events.next().await {
                Some(Ok(event)) => s.encoder.event(event),
                Some(Err(e)) => {
                    tracing::warn!(target: "switchyard_gateway", kind = %e.kind(), "stream failed after its first event");
                    s.encoder.fail(&e);
                    s.done = true;
                }
                None => {
                    s.encoder.end();
                    s.done = true;
                }
            }
        }
    });
    Body::from_stream(stream)
}

/// Chat completions: chunks as they come, then the usage chunk if asked for and `data: [DONE]`. A
/// failure after the first chunk is one `data: {"error": ...}` event, and the stream ends without
/// `[DONE]`, so that clients see an error, not a short answer.
pub(crate) struct Chunks {
    encoder: ChunkEncoder,
    pending: VecDeque<Bytes>,
}

impl Chunks {
    pub(crate) fn new(id: String, created: u64, model: String, include_usage: bool) -> Self {
        Self { encoder: ChunkEncoder::new(id, created, model, include_usage), pending: VecDeque::new() }
    }

    fn push<T: serde::Serialize>(&mut self, value: &T) {
        match sse::event(value) {
            Ok(event) => self.pending.push_back(Bytes::from(event)),
            Err(e) => tracing::error!(target: "switchyard_gateway", error = %e, "an event did not serialize"),
        }
    }
}

impl Encode for Chunks {
    fn next_bytes(&mut self) -> Option<Bytes> {
        self.pending.pop_front()
    }

    fn event(&mut self, event: StreamEvent) {
        for chunk in self.encoder.event(&event) {
            self.push(&chunk);
        }
    }

    fn fail(&mut self, error: &Error) {
        self.push(&ErrorBody::from_error(error));
    }

    fn end(&mut self) {
        for chunk in self.encoder.finish() {
            self.push(&chunk);
        }
        self.pending.push_back(Bytes::from_static(sse::DONE.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    /// Sends each event's text, and `last` at the end once something slow has been kept.
    struct Slow {
        pending: VecDeque<Bytes>,
        kept: Arc<AtomicBool>,
        keeping: Option<Keeping>,
    }

    impl Encode for Slow {
        fn next_bytes(&mut self) -> Option<Bytes> {
            self.pending.pop_front()
        }
        fn event(&mut self, event: StreamEvent) {
            if let StreamEvent::Delta(text) = event {
                self.pending.push_back(Bytes::from(text));
            }
        }
        fn fail(&mut self, _: &Error) {}
        fn end(&mut self) {
            let kept = Arc::clone(&self.kept);
            self.keeping = Some(Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                kept.store(true, Ordering::SeqCst);
            }));
            self.pending.push_back(Bytes::from_static(b"last"));
        }
        fn keeping(&mut self) -> Option<Keeping> {
            self.keeping.take()
        }
    }

    #[tokio::test]
    async fn the_last_bytes_go_out_after_what_the_encoder_keeps() {
        let kept = Arc::new(AtomicBool::new(false));
        let encoder = Slow { pending: VecDeque::new(), kept: Arc::clone(&kept), keeping: None };
        let events =
            futures_util::stream::iter([Ok(StreamEvent::Delta("a".into())), Ok(StreamEvent::Delta("b".into()))]);
        let permit = Arc::new(tokio::sync::Semaphore::new(1)).try_acquire_owned().unwrap();
        let mut chunks = body(events, encoder, permit).into_data_stream();
        let mut seen = Vec::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.unwrap();
            // Kept exactly when the last bytes arrive, not before.
            assert_eq!(kept.load(Ordering::SeqCst), &chunk[..] == b"last", "{chunk:?}");
            seen.push(chunk);
        }
        assert_eq!(seen, ["a", "b", "last"]);
    }
}
