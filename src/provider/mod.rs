//! Providers: the I/O edge. [`Provider`] sends a request to one model and reports what came back.
//!
//! [`SimulatedProvider`] is always built: deterministic, seeded, no network, for examples and tests.
//! HTTP adapters live behind their own cargo features: [`openai`] (OpenAI-compatible chat completions,
//! feature `openai`), [`anthropic`] (the Messages API, feature `anthropic`), [`gemini`] (Google's
//! Gemini API and Vertex AI, feature `gemini`), [`azure`] (Azure OpenAI deployments, feature `azure`)
//! and [`bedrock`] (AWS Bedrock's Converse API, feature `bedrock`). They share one HTTP stack: a `reqwest` client over rustls per adapter, connect, first-byte and total timeouts, bounded
//! bodies, and a server-sent events parser with a size limit per event.

#[cfg(feature = "anthropic")]
#[cfg_attr(docsrs, doc(cfg(feature = "anthropic")))]
pub mod anthropic;
#[cfg(feature = "azure")]
#[cfg_attr(docsrs, doc(cfg(feature = "azure")))]
pub mod azure;
#[cfg(feature = "bedrock")]
#[cfg_attr(docsrs, doc(cfg(feature = "bedrock")))]
pub mod bedrock;
#[cfg(feature = "__fuzz")]
pub(crate) mod fuzz;
#[cfg(feature = "gemini")]
#[cfg_attr(docsrs, doc(cfg(feature = "gemini")))]
pub mod gemini;
#[cfg(any(feature = "openai", feature = "anthropic", feature = "gemini", feature = "bedrock"))]
mod http;
#[cfg(feature = "openai")]
#[cfg_attr(docsrs, doc(cfg(feature = "openai")))]
pub mod openai;
mod simulated;
#[cfg(any(feature = "openai", feature = "anthropic", feature = "gemini", feature = "bedrock"))]
#[cfg_attr(
    not(any(feature = "openai", feature = "anthropic", feature = "gemini")),
    allow(dead_code, reason = "the Bedrock adapter streams AWS's binary framing, not server-sent events")
)]
mod sse;

#[cfg(any(feature = "openai", feature = "anthropic", feature = "gemini", feature = "bedrock"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "openai", feature = "anthropic", feature = "gemini", feature = "bedrock")))
)]
pub use self::http::redact_url;

use std::sync::Arc;

use async_trait::async_trait;

pub use self::simulated::{SimulatedModel, SimulatedProvider};

use crate::catalog::ModelProfile;
use crate::completion::{Completion, EventStream, StreamEvent};
use crate::error::Result;
use crate::request::Request;

/// Sends requests to models and reports usage and typed errors.
///
/// # Invariants
/// - `complete` returns the answer with the provider's reported [`Usage`](crate::Usage), or an
///   [`Error`](crate::Error) of the kind that says what happened: [`Error::timeout`](crate::Error::timeout),
///   [`Error::rate_limited`](crate::Error::rate_limited) with the provider's retry-after,
///   [`Error::server`](crate::Error::server) for 5xx and overloaded,
///   [`Error::context_overflow`](crate::Error::context_overflow), and
///   [`ErrorKind::Auth`](crate::ErrorKind::Auth), [`ErrorKind::BadRequest`](crate::ErrorKind::BadRequest)
///   or [`ErrorKind::Decode`](crate::ErrorKind::Decode) through [`Error::new`](crate::Error::new).
///   Callers decide by kind whether to retry or try another model ([`Error::is_retryable`](crate::Error::is_retryable)).
/// - Errors never contain API keys or prompt text.
/// - The model to call is [`ModelProfile::api_name`].
///
/// # Cancel safety
/// Dropping the future of `complete`, or the stream of `stream`, must abandon the call and leak
/// nothing; the router drops them when its caller goes away.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The name models refer to in [`ModelProfile::provider`].
    fn name(&self) -> &str;

    /// Sends `request` to `model` and waits for the whole answer.
    async fn complete(&self, model: &ModelProfile, request: &Request) -> Result<Completion>;

    /// Sends `request` to `model` and streams the answer. The default calls
    /// [`complete`](Self::complete) and replays the answer as one delta, its tool calls, its usage and
    /// its finish reason.
    async fn stream(&self, model: &ModelProfile, request: &Request) -> Result<EventStream> {
        let response = self.complete(model, request).await?;
        let mut events = Vec::with_capacity(3 + response.tool_calls.len());
        if !response.content.is_empty() {
            events.push(Ok(StreamEvent::Delta(response.content)));
        }
        events.extend(response.tool_calls.into_iter().map(|c| Ok(StreamEvent::ToolCall(c))));
        events.push(Ok(StreamEvent::Usage(response.usage)));
        events.push(Ok(StreamEvent::Finish(response.finish_reason)));
        Ok(Box::pin(iter_stream(events)))
    }
}

macro_rules! forward_provider {
    ($($ptr:ty),*) => {$(
        #[async_trait]
        impl<T: Provider + ?Sized> Provider for $ptr {
            fn name(&self) -> &str {
                (**self).name()
            }
            async fn complete(&self, model: &ModelProfile, request: &Request) -> Result<Completion> {
                (**self).complete(model, request).await
            }
            async fn stream(&self, model: &ModelProfile, request: &Request) -> Result<EventStream> {
                (**self).stream(model, request).await
            }
        }
    )*};
}
forward_provider!(Box<T>, Arc<T>);

/// A stream over the items of an iterator, ready at once.
pub(crate) fn iter_stream<I>(items: I) -> IterStream<I::IntoIter>
where
    I: IntoIterator,
{
    IterStream(items.into_iter())
}

pub(crate) struct IterStream<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    type Item = I::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}
