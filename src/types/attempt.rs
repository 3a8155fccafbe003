//! [`Attempt`]: one provider call on behalf of a request, and how it ended.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ErrorKind, ModelId};

/// Why an attempt was made.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptReason {
    /// The decision's first choice.
    Primary,
    /// The same model again, after a retryable error.
    Retry,
    /// The next candidate, after the previous one failed.
    Fallback,
    /// A candidate with a larger context window, after a context overflow.
    LargerContext,
    /// A stronger candidate, after an inadequate answer.
    Escalation,
    /// Every candidate's circuit was open; the one closest to recovery was tried.
    Recovery,
    /// The decision's first choice did not fit a budget or rate limit; this is the best-ranked
    /// candidate that did ([`crate::limits`]).
    Downgrade,
    /// The model that served the conversation before ([`LimitsConfig::sticky`](crate::limits::LimitsConfig::sticky)).
    Sticky,
}

impl AttemptReason {
    /// A short lower-case name (`primary`, `retry`, `fallback`, ...).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Retry => "retry",
            Self::Fallback => "fallback",
            Self::LargerContext => "larger_context",
            Self::Escalation => "escalation",
            Self::Recovery => "recovery",
            Self::Downgrade => "downgrade",
            Self::Sticky => "sticky",
        }
    }
}

impl fmt::Display for AttemptReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an attempt ended.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// An answer that was returned (or streamed) to the caller.
    Answered,
    /// An answer a quality check rejected; the request was escalated or this answer was returned
    /// flagged.
    Inadequate(Inadequacy),
    /// The provider failed with this kind of error (the status, when the provider gave one).
    Failed {
        /// The error kind.
        kind: ErrorKind,
        /// The HTTP status, if any.
        status: Option<u16>,
    },
}

impl AttemptOutcome {
    /// Whether the attempt produced an answer (adequate or not).
    pub fn is_answer(&self) -> bool {
        !matches!(self, Self::Failed { .. })
    }

    /// The error kind of a failed attempt.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match self {
            Self::Failed { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Answered => f.write_str("answered"),
            Self::Inadequate(why) => write!(f, "inadequate ({why})"),
            Self::Failed { kind, status: Some(s) } => write!(f, "{} (status {s})", kind.as_str()),
            Self::Failed { kind, status: None } => f.write_str(kind.as_str()),
        }
    }
}

/// One call to a provider on behalf of a request.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    /// The model called.
    pub model: ModelId,
    /// Why it was called.
    pub reason: AttemptReason,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Wall time of the whole call. For a committed stream, the time until the stream ended (or failed);
    /// while it is still being read, the time to its first content.
    pub latency: Duration,
    /// For a streamed attempt that delivered content: the time from its start to the first content.
    /// `None` for calls that were not streamed or failed before any content.
    pub ttft: Option<Duration>,
    /// Actual cost in USD of what the provider reported using (0 for a failed call, which providers do
    /// not bill).
    pub cost_usd: f64,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} `{}`: {} after {:.0} ms",
            self.reason,
            self.model,
            self.outcome,
            self.latency.as_secs_f64() * 1000.0
        )?;
        if let Some(ttft) = self.ttft {
            write!(f, " (first content after {:.0} ms)", ttft.as_secs_f64() * 1000.0)?;
        }
        if self.cost_usd > 0.0 {
            write!(f, ", ${:.6}", self.cost_usd)?;
        }
        Ok(())
    }
}

fn millis_f64(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// In serialized form: `{"result": "answered"}`, `{"result": "inadequate", "check", "reason"}` or
/// `{"result": "failed", "kind", "status"}`.
impl Serialize for AttemptOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        match self {
            Self::Answered => map.serialize_entry("result", "answered")?,
            Self::Inadequate(why) => {
                map.serialize_entry("result", "inadequate")?;
                map.serialize_entry("check", &why.check)?;
                map.serialize_entry("reason", &why.reason)?;
            }
            Self::Failed { kind, status } => {
                map.serialize_entry("result", "failed")?;
                map.serialize_entry("kind", kind.as_str())?;
                map.serialize_entry("status", status)?;
            }
        }
        map.end()
    }
}

/// In serialized form: `{"model", "reason", "outcome", "latency_ms", "ttft_ms", "cost_usd"}`, with
/// the durations as fractional milliseconds.
impl Serialize for Attempt {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            model: &'a ModelId,
            reason: AttemptReason,
            outcome: &'a AttemptOutcome,
            latency_ms: f64,
            ttft_ms: Option<f64>,
            cost_usd: f64,
        }
        Wire {
            model: &self.model,
            reason: self.reason,
            outcome: &self.outcome,
            latency_ms: millis_f64(self.latency),
            ttft_ms: self.ttft.map(millis_f64),
            cost_usd: self.cost_usd,
        }
        .serialize(serializer)
    }
}

/// Why an answer is inadequate: the failing check's name and a reason code, both safe to log.
///
/// Display is `` `check`: reason `` (or just the reason when no check name is known). Neither holds
/// request or answer text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Inadequacy {
    pub(crate) reason: Cow<'static, str>,
    pub(crate) check: Option<Cow<'static, str>>,
}

impl Inadequacy {
    /// The answer has no text and no tool calls ([`NonEmpty`](crate::execute::quality::NonEmpty)).
    pub const EMPTY: &'static str = "empty";
    /// The output token limit cut the answer off ([`NotTruncated`](crate::execute::quality::NotTruncated)).
    pub const TRUNCATED: &'static str = "truncated";
    /// The answer opens with a refusal ([`NoRefusal`](crate::execute::quality::NoRefusal)).
    pub const REFUSAL: &'static str = "refusal";
    /// JSON was asked for and the answer does not parse as JSON ([`ValidJson`](crate::execute::quality::ValidJson)).
    pub const INVALID_JSON: &'static str = "invalid_json";
    /// The arguments of a tool call do not parse as JSON ([`ValidJson`](crate::execute::quality::ValidJson)).
    pub const INVALID_TOOL_ARGUMENTS: &'static str = "invalid_tool_arguments";

    /// An inadequacy found by the check named `check`, for `reason` (a short code such as
    /// `"no_source"`; never request or answer text).
    pub fn new(check: impl Into<Cow<'static, str>>, reason: impl Into<Cow<'static, str>>) -> Self {
        Self { reason: reason.into(), check: Some(check.into()) }
    }

    /// The reason code (`"truncated"`); compare with the associated constants for built-in reasons.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The name of the check that failed, when known (`"not_truncated"`).
    pub fn check(&self) -> Option<&str> {
        self.check.as_deref()
    }
}

/// In serialized form: `{"check", "reason"}` (`check` may be `null`).
impl Serialize for Inadequacy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("check", &self.check)?;
        map.serialize_entry("reason", &self.reason)?;
        map.end()
    }
}

impl fmt::Display for Inadequacy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.check {
            Some(check) => write!(f, "`{check}`: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}
