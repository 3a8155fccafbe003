//! The stream that turns a provider's server-sent events (or another framing of the body, such as
//! AWS's binary event stream) into [`StreamEvent`]s, within the call's deadlines and size limits.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::transport::{Deadlines, Transport};
use crate::catalog::ModelId;
use crate::completion::{EventStream, StreamEvent};
use crate::error::{Error, Result};
use crate::provider::sse::{SseEvent, SseParser};

impl Transport {
    /// Opens a server-sent event stream over a successful response. The first event is awaited here,
    /// so an error the provider sends before any content (an overload, a rate limit) is returned as the
    /// `Err` of this call rather than as a stream item.
    #[cfg_attr(
        not(any(feature = "openai", feature = "anthropic", feature = "gemini")),
        allow(dead_code, reason = "Bedrock streams are not server-sent events")
    )]
    pub(crate) async fn event_stream<D: SseDecoder>(
        &self,
        response: reqwest::Response,
        deadlines: Deadlines,
        model: ModelId,
        decoder: D,
    ) -> Result<EventStream> {
        let parser = SseParser::new(self.max_event_bytes);
        self.framed_stream(response, deadlines, model, parser, decoder).await
    }

    /// [`event_stream`](Self::event_stream) over another framing than server-sent events: `framing`
    /// cuts the body into frames, `decoder` turns each into stream events.
    pub(crate) async fn framed_stream<F: Framing, D: SseDecoder<F::Frame>>(
        &self,
        response: reqwest::Response,
        deadlines: Deadlines,
        model: ModelId,
        framing: F,
        decoder: D,
    ) -> Result<EventStream> {
        let mut pump = Box::new(Pump {
            name: self.name.clone(),
            model,
            response,
            parser: framing,
            decoder,
            sse: VecDeque::new(),
            out: VecDeque::new(),
            deadlines,
            first_byte_timeout: self.first_byte_timeout,
            total_timeout: self.total_timeout,
            got_first: false,
            bytes: 0,
            max_bytes: self.max_response_bytes,
            done: false,
        });
        match pump.next().await {
            Some(Err(e)) => Err(e),
            Some(Ok(first)) => {
                pump.out.push_front(Ok(first));
                Ok(Box::pin(SseStream { pump: Some(pump), pending: None }))
            }
            None => Ok(Box::pin(SseStream::<F, D> { pump: None, pending: None })),
        }
    }
}

/// Cuts a response body, fed in chunks cut anywhere, into frames: [`SseParser`] for server-sent
/// events, or a binary framing. The error is shown after "the stream of provider `name`: ".
pub(crate) trait Framing: Send + 'static {
    /// One whole frame.
    type Frame: Send + 'static;
    /// Appends the frames `chunk` completes to `out`; an error ends the stream as a decode error.
    fn push(&mut self, chunk: &[u8], out: &mut VecDeque<Self::Frame>) -> std::result::Result<(), String>;
}

impl Framing for SseParser {
    type Frame = SseEvent;
    fn push(&mut self, chunk: &[u8], out: &mut VecDeque<SseEvent>) -> std::result::Result<(), String> {
        SseParser::push(self, chunk, out).map_err(|e| e.to_string())
    }
}

/// Turns a provider's stream frames (server-sent events unless said otherwise) into stream events.
pub(crate) trait SseDecoder<F = SseEvent>: Send + 'static {
    /// Handles one event, appending what it yields to `out`. Returns `Ok(true)` once the provider has
    /// said the stream is complete; an `Err` ends the stream with that error.
    fn event(&mut self, event: F, out: &mut VecDeque<Result<StreamEvent>>) -> Result<bool>;

    /// What marks the end of a complete stream (`[DONE]`, `message_stop`), for the cut-stream error.
    fn terminator(&self) -> &'static str;

    /// Called when the body ends before [`event`](Self::event) said the stream is complete. A provider
    /// whose streams end with the connection (Gemini's, after the chunk with a finish reason) appends
    /// its last events and returns `true`; the default, `false`, makes the end a cut stream.
    fn end(&mut self, _out: &mut VecDeque<Result<StreamEvent>>) -> bool {
        false
    }
}

/// The state of an open stream: the body, the parser, the decoder and what is ready to yield.
struct Pump<F: Framing, D> {
    name: Arc<str>,
    model: ModelId,
    response: reqwest::Response,
    parser: F,
    decoder: D,
    sse: VecDeque<F::Frame>,
    out: VecDeque<Result<StreamEvent>>,
    deadlines: Deadlines,
    first_byte_timeout: Duration,
    total_timeout: Duration,
    got_first: bool,
    bytes: usize,
    max_bytes: usize,
    done: bool,
}

enum Step {
    Ready(Option<Result<StreamEvent>>),
    NeedBytes,
}

impl<F: Framing, D: SseDecoder<F::Frame>> Pump<F, D> {
    /// Yields what can be yielded without I/O.
    fn step(&mut self) -> Step {
        loop {
            if let Some(item) = self.out.pop_front() {
                match &item {
                    Ok(_) => self.got_first = true,
                    Err(_) => {
                        self.done = true;
                        self.out.clear();
                    }
                }
                return Step::Ready(Some(item.map_err(|e| self.attach(e))));
            }
            if self.done {
                return Step::Ready(None);
            }
            let Some(event) = self.sse.pop_front() else { return Step::NeedBytes };
            match self.decoder.event(event, &mut self.out) {
                Ok(false) => {}
                Ok(true) => {
                    self.done = true;
                    self.sse.clear();
                }
                Err(e) => self.out.push_back(Err(e)),
            }
        }
    }

    fn attach(&self, e: Error) -> Error {
        if e.model().is_some() { e } else { e.with_model(self.model.clone()) }
    }

    fn fail(&mut self, e: Error) -> Option<Result<StreamEvent>> {
        self.done = true;
        self.out.clear();
        self.sse.clear();
        Some(Err(self.attach(e)))
    }

    async fn next(&mut self) -> Option<Result<StreamEvent>> {
        loop {
            if let Step::Ready(item) = self.step() {
                return item;
            }
            let first = !self.got_first;
            let deadline = if first { self.deadlines.first() } else { self.deadlines.total };
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => {
                    let e = if first && self.deadlines.first_byte <= self.deadlines.total {
                        Error::timeout(format!(
                            "provider `{}` sent no stream event within {} ms",
                            self.name,
                            self.first_byte_timeout.as_millis()
                        ))
                    } else {
                        Error::timeout(format!(
                            "provider `{}` did not finish its stream within {} ms",
                            self.name,
                            self.total_timeout.as_millis()
                        ))
                    };
                    return self.fail(e);
                }
                Ok(Err(e)) => {
                    let error = if e.is_timeout() {
                        Error::timeout(format!("the stream of provider `{}` timed out", self.name))
                    } else {
                        Error::decode(format!("the stream of provider `{}` was cut", self.name))
                    };
                    return self.fail(error.with_source(e.without_url()));
                }
                Ok(Ok(None)) => {
                    if self.decoder.end(&mut self.out) {
                        self.done = true;
                        self.sse.clear();
                        continue;
                    }
                    let terminator = self.decoder.terminator();
                    return self.fail(Error::decode(format!(
                        "the stream of provider `{}` ended before `{terminator}`",
                        self.name
                    )));
                }
                Ok(Ok(Some(chunk))) => {
                    self.bytes = self.bytes.saturating_add(chunk.len());
                    if self.bytes > self.max_bytes {
                        let max = self.max_bytes;
                        return self.fail(Error::decode(format!(
                            "the stream of provider `{}` exceeds {max} bytes",
                            self.name
                        )));
                    }
                    if let Err(e) = self.parser.push(&chunk, &mut self.sse) {
                        return self.fail(Error::decode(format!("the stream of provider `{}`: {e}", self.name)));
                    }
                }
            }
        }
    }
}

type PumpFuture<F, D> = Pin<Box<dyn Future<Output = (Option<Result<StreamEvent>>, Box<Pump<F, D>>)> + Send>>;

/// The stream handed to callers. Dropping it drops the response and closes the connection.
struct SseStream<F: Framing, D> {
    pump: Option<Box<Pump<F, D>>>,
    pending: Option<PumpFuture<F, D>>,
}

impl<F: Framing, D: SseDecoder<F::Frame>> futures_core::Stream for SseStream<F, D> {
    type Item = Result<StreamEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            let Some(mut pump) = this.pump.take() else { return Poll::Ready(None) };
            if let Step::Ready(item) = pump.step() {
                if item.is_some() {
                    this.pump = Some(pump);
                }
                return Poll::Ready(item);
            }
            this.pending = Some(Box::pin(async move {
                let item = pump.next().await;
                (item, pump)
            }));
        }
        let Some(pending) = this.pending.as_mut() else { return Poll::Ready(None) };
        match pending.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((item, pump)) => {
                this.pending = None;
                if item.is_some() {
                    this.pump = Some(pump);
                }
                Poll::Ready(item)
            }
        }
    }
}
