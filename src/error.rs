//! The crate's one error type.
//!
//! [`Error`] is opaque: match on [`Error::kind`], not on the Display text. The wording of messages and
//! the types behind [`std::error::Error::source`] are not part of the API and may change in any release.
//! Messages never contain API keys or prompt text.

use std::fmt;
use std::time::Duration;

pub use crate::types::ErrorKind;
use crate::types::{Attempt, ModelId, Rejection};

/// A `Result` alias with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed error from an underlying library, used as an error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The error type of every fallible operation in the crate.
///
/// Cheap to move (one pointer). Construct provider errors with the `Error::timeout`, `Error::server`,
/// ... constructors when implementing [`Provider`](crate::Provider).
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    model: Option<ModelId>,
    status: Option<u16>,
    retry_after: Option<Duration>,
    rejections: Vec<Rejection>,
    attempts: Vec<Attempt>,
    partial: Option<String>,
    source: Option<BoxError>,
    caller_limits: Option<crate::types::CallerLimits>,
}

impl Error {
    /// A new error of `kind` with a message (lower case, no trailing period, no secrets or prompt text).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                model: None,
                status: None,
                retry_after: None,
                rejections: Vec::new(),
                attempts: Vec::new(),
                partial: None,
                source: None,
                caller_limits: None,
            }),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    pub(crate) fn no_candidate(rejections: Vec<Rejection>) -> Self {
        let mut message = format!("no model can serve this request ({} filtered:", rejections.len());
        for (i, r) in rejections.iter().enumerate() {
            use fmt::Write;
            let sep = if i == 0 { " " } else { "; " };
            let _ = write!(message, "{sep}`{}` {}", r.model(), r.reason());
        }
        message.push(')');
        let mut e = Self::new(ErrorKind::NoCandidate, message);
        e.inner.rejections = rejections;
        e
    }

    /// The provider did not answer in time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    /// The provider is rate limiting; `retry_after` is the provider's hint, if it gave one.
    pub fn rate_limited(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self::new(ErrorKind::RateLimited, message).with_retry_after(retry_after)
    }

    /// The provider failed with a server-side error (5xx, overloaded).
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Server, message)
    }

    /// The request exceeded the model's context window.
    pub fn context_overflow(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ContextOverflow, message)
    }

    /// The provider's response could not be decoded.
    pub fn decode(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Decode, message)
    }

    /// Attaches the model the error concerns.
    pub fn with_model(mut self, model: ModelId) -> Self {
        self.inner.model = Some(model);
        self
    }

    /// Attaches the HTTP status the provider returned.
    pub fn with_status(mut self, status: u16) -> Self {
        self.inner.status = Some(status);
        self
    }

    /// Attaches a retry-after hint.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.inner.retry_after = retry_after;
        self
    }

    /// Attaches an underlying cause. Its type is not part of the API.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// The category of the error.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// Whether trying the same model again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.inner.kind.is_retryable()
    }

    /// The model the error concerns, when there is one.
    pub fn model(&self) -> Option<&ModelId> {
        self.inner.model.as_ref()
    }

    /// The HTTP status the provider returned, when there was one.
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// How long the provider asked the caller to wait before retrying.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// For a request refused by a caller rate limit: where the caller stands, read in the refused
    /// admission (without the request), as [`Response::caller_limits`](crate::Response::caller_limits)
    /// says it for an admitted one.
    pub fn caller_limits(&self) -> Option<crate::types::CallerLimits> {
        self.inner.caller_limits
    }

    pub(crate) fn with_caller_limits(mut self, limits: Option<crate::types::CallerLimits>) -> Self {
        self.inner.caller_limits = limits;
        self
    }

    /// For [`ErrorKind::NoCandidate`]: every model and the hard constraint that removed it.
    pub fn rejections(&self) -> &[Rejection] {
        &self.inner.rejections
    }

    /// Every attempt the router made before giving up, in order (empty for errors raised before any
    /// provider was called, and for errors a provider returns).
    pub fn attempts(&self) -> &[Attempt] {
        &self.inner.attempts
    }

    /// For [`ErrorKind::MidStream`]: the answer text already delivered to the caller before the
    /// stream failed. Never part of `Display` or `Debug` (which show its length only).
    pub fn partial_content(&self) -> Option<&str> {
        self.inner.partial.as_deref()
    }

    pub(crate) fn with_rejections(mut self, rejections: Vec<Rejection>) -> Self {
        self.inner.rejections = rejections;
        self
    }

    pub(crate) fn with_attempts(mut self, attempts: Vec<Attempt>) -> Self {
        self.inner.attempts = attempts;
        self
    }

    pub(crate) fn with_partial(mut self, content: String) -> Self {
        self.inner.partial = Some(content);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(model) = &self.inner.model {
            write!(f, "model `{model}`: ")?;
        }
        f.write_str(&self.inner.message)?;
        if let Some(status) = self.inner.status {
            write!(f, " (status {status})")?;
        }
        if !self.inner.attempts.is_empty() {
            write!(f, "; {} attempts:", self.inner.attempts.len())?;
            for (i, a) in self.inner.attempts.iter().enumerate() {
                write!(f, "{}{a}", if i == 0 { " " } else { ", " })?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind).field("message", &self.inner.message);
        if let Some(model) = &self.inner.model {
            d.field("model", model);
        }
        if let Some(status) = &self.inner.status {
            d.field("status", status);
        }
        if let Some(retry_after) = &self.inner.retry_after {
            d.field("retry_after", retry_after);
        }
        if let Some(limits) = &self.inner.caller_limits {
            d.field("caller_limits", limits);
        }
        if !self.inner.rejections.is_empty() {
            d.field("rejections", &self.inner.rejections);
        }
        if !self.inner.attempts.is_empty() {
            d.field("attempts", &self.inner.attempts);
        }
        if let Some(partial) = &self.inner.partial {
            d.field("partial", &format_args!("{} bytes", partial.len()));
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A serde message without the string it quotes (not API: `switchyard-eval`'s data readers use it): `invalid type: string "…", expected u64` becomes
/// `invalid type: string, expected u64`. The value is the user's text, which can be a key put in the
/// wrong field; the field's path and what was expected say enough.
#[doc(hidden)]
pub fn without_values(message: &str) -> String {
    const QUOTED: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(QUOTED) {
        out.push_str(&rest[..i + QUOTED.len() - 2]);
        let value = &rest[i + QUOTED.len()..];
        let mut escaped = false;
        let end = value.char_indices().find_map(|(j, c)| match c {
            _ if escaped => {
                escaped = false;
                None
            }
            '\\' => {
                escaped = true;
                None
            }
            '"' => Some(j + 1),
            _ => None,
        });
        rest = end.map_or("", |j| &value[j..]);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_kinds() {
        assert!(Error::timeout("slow").is_retryable());
        assert!(Error::rate_limited("busy", Some(Duration::from_secs(2))).is_retryable());
        assert!(!Error::context_overflow("too long").is_retryable());
        assert!(!Error::config("bad").is_retryable());
    }

    #[test]
    fn display_names_model_and_status() {
        let e = Error::server("overloaded").with_model(ModelId::new("m")).with_status(529);
        assert_eq!(e.to_string(), "model `m`: overloaded (status 529)");
        assert_eq!(e.kind().as_str(), "server");
    }

    #[test]
    fn error_is_send_sync_and_small() {
        fn is<T: Send + Sync + 'static>() {}
        is::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }
}
