//! [`ErrorKind`]: what went wrong, as a stable, matchable category.

use std::fmt;

/// What went wrong, as a stable, matchable category.
///
/// New kinds may be added in any minor release.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The router, catalog or a config file is invalid: a NaN price, a duplicate model id, an unknown
    /// model named by a rule, an empty portfolio.
    Config,
    /// The request itself is invalid: too large, a quality floor outside `[0, 1]`, an unknown model in
    /// the allowed list.
    InvalidRequest,
    /// Every model was filtered out by a hard constraint; [`Error::rejections`](crate::Error::rejections) says why for each.
    NoCandidate,
    /// A component (classifier, cost model, policy) failed while routing.
    Routing,
    /// The provider did not answer in time.
    Timeout,
    /// The connection to the provider failed before a response arrived.
    Connection,
    /// The provider is rate limiting this caller; [`Error::retry_after`](crate::Error::retry_after) may say for how long.
    RateLimited,
    /// The provider failed or is overloaded (5xx, Anthropic's 529).
    Server,
    /// The request does not fit the model's context window.
    ContextOverflow,
    /// The provider rejected the credentials (401, 403).
    Auth,
    /// The provider rejected the request as malformed (400 other than context overflow).
    BadRequest,
    /// The provider does not know the model (404).
    ModelNotFound,
    /// The provider's content filter refused the request: the prompt was flagged (Azure OpenAI's 400
    /// `content_filter`). Not retryable on the same model; a router moves on to its next candidate
    /// unless told to stop ([`NonRetryable::Stop`](crate::execute::retry::NonRetryable::Stop)), since
    /// another provider may not filter the same text. An answer cut by a filter is not an error but a
    /// [`FinishReason::ContentFilter`](crate::FinishReason::ContentFilter).
    ContentFilter,
    /// The provider's response could not be decoded (malformed JSON, a cut stream).
    Decode,
    /// A stream failed after content had already been delivered to the caller.
    MidStream,
    /// No provider is registered for the model that was chosen.
    ProviderMissing,
    /// Every candidate that could serve the request costs more than a budget has left;
    /// [`Error::rejections`](crate::Error::rejections) says which budget stopped which model.
    BudgetExceeded,
    /// The shared state store (Redis) failed or did not answer in time, and a limit configured to
    /// fail closed could not be checked.
    Store,
    /// The best candidate's predicted probability of an acceptable answer is below the router's
    /// confidence floor, and the router is set to refuse such requests
    /// ([`OnLowConfidence::Refuse`](crate::policy::OnLowConfidence::Refuse)).
    LowConfidence,
}

impl ErrorKind {
    /// Whether a request that failed this way may succeed when tried again on the same model.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Timeout | Self::Connection | Self::RateLimited | Self::Server)
    }

    /// The HTTP status a server in front of the router answers a request that failed this way with.
    ///
    /// | kind | status |
    /// |---|---|
    /// | `InvalidRequest`, `NoCandidate`, `ContextOverflow`, `BadRequest`, `ContentFilter` | 400: the request, as sent, cannot be served by this portfolio |
    /// | `LowConfidence` | 422: no model is likely enough to answer it well |
    /// | `RateLimited`, `BudgetExceeded` | 429 (send `Retry-After` from [`Error::retry_after`](crate::Error::retry_after) when there is one) |
    /// | `Config`, `Routing`, `ProviderMissing` | 500: the router's own setup |
    /// | `Connection`, `Server`, `Auth`, `ModelNotFound`, `Decode`, `MidStream` | 502: the upstream provider failed, or refused the router's credentials or model name, which the caller cannot fix |
    /// | `Store` | 503: the shared state store is unavailable |
    /// | `Timeout` | 504 |
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidRequest
            | Self::NoCandidate
            | Self::ContextOverflow
            | Self::BadRequest
            | Self::ContentFilter => 400,
            Self::LowConfidence => 422,
            Self::RateLimited | Self::BudgetExceeded => 429,
            Self::Config | Self::Routing | Self::ProviderMissing => 500,
            Self::Connection | Self::Server | Self::Auth | Self::ModelNotFound | Self::Decode | Self::MidStream => 502,
            Self::Store => 503,
            Self::Timeout => 504,
        }
    }

    /// A short, low-cardinality label for metrics (`"rate_limited"`, `"timeout"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::InvalidRequest => "invalid_request",
            Self::NoCandidate => "no_candidate",
            Self::Routing => "routing",
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::RateLimited => "rate_limited",
            Self::Server => "server",
            Self::ContextOverflow => "context_overflow",
            Self::Auth => "auth",
            Self::BadRequest => "bad_request",
            Self::ModelNotFound => "model_not_found",
            Self::ContentFilter => "content_filter",
            Self::Decode => "decode",
            Self::MidStream => "mid_stream",
            Self::ProviderMissing => "provider_missing",
            Self::BudgetExceeded => "budget_exceeded",
            Self::Store => "store",
            Self::LowConfidence => "low_confidence",
        }
    }
}

/// In serialized form, [`as_str`](ErrorKind::as_str)'s label.
impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
