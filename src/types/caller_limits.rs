//! [`CallerLimits`]: where a caller stands against its rate limits.

use std::time::Duration;

use serde::Serialize;

/// Where a caller stands against its rate limits once a request is admitted
/// ([`Response::caller_limits`](crate::Response::caller_limits),
/// [`RoutedStream::caller_limits`](crate::RoutedStream::caller_limits)), or when it is refused
/// ([`Error::caller_limits`](crate::Error::caller_limits)): of the
/// [`CallerRateLimit`](crate::limits::CallerRateLimit)s that apply to the request, the one with the
/// least room, for requests and for tokens. What a server puts in `x-ratelimit-*` headers.
///
/// Counts are the store's at admission, an admitted request included (its tokens as estimated
/// then), so that `remaining` is what the caller may still send. In serialized form:
/// `{"requests": {"limit", "remaining", "resets_in_ms"}, "tokens": ...}`, absent parts left out.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CallerLimits {
    /// Requests per minute, when a limit on them applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<LimitRoom>,
    /// Tokens per minute, when a limit on them applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<LimitRoom>,
}

/// One limit's room: see [`CallerLimits`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LimitRoom {
    /// The limit, per sliding minute.
    pub limit: u64,
    /// What the sliding minute still holds room for (0 at the limit).
    pub remaining: u64,
    /// How long until the sliding minute holds nothing of what is counted now, if nothing more is
    /// counted meanwhile: when the limit is back to its full room.
    #[serde(rename = "resets_in_ms", serialize_with = "crate::types::millis::serialize")]
    pub resets_in: Duration,
}

impl CallerLimits {
    /// Adds one limit's reading, kept if it leaves less room than what is there.
    pub(crate) fn add(&mut self, tokens: bool, room: LimitRoom) {
        let slot = if tokens { &mut self.tokens } else { &mut self.requests };
        let tighter = slot.is_none_or(|s| (room.remaining, room.limit) < (s.remaining, s.limit));
        if tighter {
            *slot = Some(room);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }

    /// The reading `elapsed` after it was taken: the resets that much nearer.
    pub(crate) fn aged(self, elapsed: Duration) -> Self {
        Self { requests: self.requests.map(|r| r.aged(elapsed)), tokens: self.tokens.map(|t| t.aged(elapsed)) }
    }
}

impl LimitRoom {
    /// The reading `elapsed` after it was taken: the reset that much nearer.
    pub(crate) fn aged(self, elapsed: Duration) -> Self {
        Self { resets_in: self.resets_in.saturating_sub(elapsed), ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tightest_limit_is_reported() {
        let room = |limit, remaining| LimitRoom { limit, remaining, resets_in: Duration::from_secs(1) };
        let mut c = CallerLimits::default();
        assert!(c.is_empty());
        c.add(false, room(60, 50));
        c.add(false, room(600, 590));
        c.add(false, room(10, 50));
        c.add(true, room(1000, 10));
        assert_eq!(c.requests, Some(room(10, 50)));
        assert_eq!(c.tokens, Some(room(1000, 10)));
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json["requests"], serde_json::json!({"limit": 10, "remaining": 50, "resets_in_ms": 1000}));
    }
}
