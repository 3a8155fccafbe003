//! Wire formats for serving the router over HTTP: OpenAI's chat-completions request, response and
//! stream chunk types with conversions to and from [`Request`](crate::Request),
//! [`Response`](crate::Response) and [`StreamEvent`](crate::StreamEvent) ([`openai`]); server-sent
//! event framing ([`sse`]); and OpenAI's error body for an [`Error`](crate::Error), with
//! [`ErrorKind::http_status`](crate::ErrorKind::http_status) for its status.
//!
//! Everything here is plain data and pure functions (serde and `serde_json` only, no HTTP stack):
//! `switchyard-gateway` is built on it, and so can any server or proxy of your own.
//!
//! ```
//! use switchyard::wire::openai::{ChatCompletion, ChatCompletionRequest};
//! use switchyard::{Request, Router};
//!
//! # async fn run(router: Router) -> Result<(), Box<dyn std::error::Error>> {
//! let body = r#"{"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "top_p": 0.9}"#;
//! let wire: ChatCompletionRequest = serde_json::from_str(body)?;
//! let request = Request::try_from(wire)?;
//! let response = router.complete(request).await?;
//! let answer = ChatCompletion::from_response(&response, format!("chatcmpl-{}", response.decision.id()), 1_700_000_000);
//! let json = serde_json::to_string(&answer)?;
//! # let _ = json; Ok(()) }
//! # let _ = run;
//! ```

pub mod openai;
pub mod sse;
