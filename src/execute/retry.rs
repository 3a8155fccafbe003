//! Retries: how often to try again, and how long to wait first.
//!
//! A [`RetryPolicy`] bounds the attempts for one request and spaces them out:
//!
//! 1. A request gets at most [`max_attempts`](RetryPolicy::max_attempts) calls in total, across every
//!    model it is tried on (first tries, retries and escalations all count).
//! 2. After a retryable error ([`ErrorKind::is_retryable`](crate::ErrorKind::is_retryable): timeout,
//!    connection, rate limit, server), the same model is retried up to
//!    [`max_retries_per_model`](RetryPolicy::max_retries_per_model) times, then the next candidate is
//!    tried.
//! 3. Before retry `n` (0 for the first retry) the router waits: exponential backoff with *full
//!    jitter*, uniform in `[0, min(max_backoff, initial_backoff · multiplier^n)]`, and never less than
//!    the provider's Retry-After. A Retry-After longer than
//!    [`max_retry_after`](RetryPolicy::max_retry_after) is not waited for: the router moves to the next
//!    candidate instead.
//! 4. A wait that would use up the time left before the request's deadline is not taken.
//! 5. After an error that retrying cannot fix (auth, bad request, unknown model), the policy's
//!    [`NonRetryable`] says whether to try the next candidate or stop.
//!
//! The jitter of each request is drawn from a generator seeded with the router's jitter seed and the
//! decision's id ([`RouterBuilder::jitter_seed`](crate::RouterBuilder::jitter_seed)), so tests that
//! set the seed are reproducible; there is no hidden randomness.
//!
//! In TOML or JSON, durations are whole milliseconds in fields suffixed `_ms`:
//!
//! ```
//! use std::time::Duration;
//! use switchyard::execute::retry::{NonRetryable, RetryPolicy};
//!
//! let policy: RetryPolicy = toml::from_str(
//!     r#"
//!     max_retries_per_model = 1
//!     initial_backoff_ms = 250
//!     max_retry_after_ms = 10000
//!     on_non_retryable = "stop"
//!     "#,
//! )?;
//! policy.validate()?;
//! assert_eq!(policy.initial_backoff, Duration::from_millis(250));
//! assert_eq!(policy.max_attempts, 6); // unset fields keep their defaults
//! assert_eq!(policy.on_non_retryable, NonRetryable::Stop);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use crate::hash::Rng;
use crate::types::millis;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What to do after an error that retrying the same model cannot fix.
///
/// Those are the errors whose [`ErrorKind::is_retryable`](crate::ErrorKind::is_retryable) is false:
/// rejected credentials, a malformed request, an unknown model.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonRetryable {
    /// Try the next candidate model: another provider, or another model, may accept the request
    /// (different credentials, a larger context window, a model that exists there).
    #[default]
    NextCandidate,
    /// Return the error to the caller.
    Stop,
}

/// How many attempts a request gets and how long to wait between them.
///
/// Fields are public to read; the struct is `#[non_exhaustive]`, so build one with
/// [`RetryPolicy::default`] and the `with_*` setters, or deserialize it. Setters do not
/// check their values: call [`validate`](Self::validate) (a policy loaded from a file should always be
/// validated). Every method stays panic-free on an invalid policy.
///
/// In serialized form every field is optional (missing ones take their defaults), unknown fields are
/// rejected, and durations are whole milliseconds under the field name with an `_ms` suffix
/// (`initial_backoff_ms = 100`); sub-millisecond parts are dropped when serializing.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries of the same model after its first try (default 2). 0 never retries a model.
    pub max_retries_per_model: u32,
    /// Attempts in total for one request, across every model, first tries and escalations included
    /// (default 6, at least 1).
    pub max_attempts: u32,
    /// The cap of the first retry's delay (default 100 ms); `initial_backoff_ms` when serialized.
    #[serde(rename = "initial_backoff_ms", with = "millis")]
    pub initial_backoff: Duration,
    /// The largest delay backoff alone produces (default 5 s); `max_backoff_ms` when serialized.
    #[serde(rename = "max_backoff_ms", with = "millis")]
    pub max_backoff: Duration,
    /// How much the delay cap grows per retry (default 2.0; finite and at least 1).
    pub multiplier: f64,
    /// The longest provider Retry-After that is waited for (default 30 s); longer ones move on to the
    /// next candidate. `max_retry_after_ms` when serialized.
    #[serde(rename = "max_retry_after_ms", with = "millis")]
    pub max_retry_after: Duration,
    /// What to do after an error that retrying cannot fix (default: try the next candidate).
    pub on_non_retryable: NonRetryable,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries_per_model: 2,
            max_attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            multiplier: 2.0,
            max_retry_after: Duration::from_secs(30),
            on_non_retryable: NonRetryable::NextCandidate,
        }
    }
}

impl RetryPolicy {
    /// The default policy: 2 retries per model, 6 attempts, 100 ms doubling up to 5 s, Retry-After up
    /// to 30 s, non-retryable errors move on.
    pub fn new() -> Self {
        Self::default()
    }

    /// A policy that never retries a model: one attempt per candidate, as many candidates as
    /// `max_attempts` allows.
    pub fn no_retries() -> Self {
        Self::default().with_max_retries_per_model(0)
    }

    /// Sets the retries of one model after its first try.
    pub fn with_max_retries_per_model(mut self, retries: u32) -> Self {
        self.max_retries_per_model = retries;
        self
    }

    /// Sets the total attempts for one request.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets the first retry's delay cap.
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// Sets the largest backoff delay.
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Sets the growth factor of the delay cap.
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets the longest Retry-After that is waited for.
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Sets what happens after a non-retryable error.
    pub fn with_on_non_retryable(mut self, on: NonRetryable) -> Self {
        self.on_non_retryable = on;
        self
    }

    /// Checks the policy.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the field (as serialized) when
    /// `max_attempts` is 0, `multiplier` is not finite or below 1, or `initial_backoff_ms` exceeds
    /// `max_backoff_ms`.
    pub fn validate(&self) -> Result<()> {
        if self.max_attempts == 0 {
            return Err(Error::config("retry policy: `max_attempts` must be at least 1"));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(Error::config(format!(
                "retry policy: `multiplier` must be finite and >= 1, got {}",
                self.multiplier
            )));
        }
        if self.initial_backoff > self.max_backoff {
            return Err(Error::config(format!(
                "retry policy: `initial_backoff_ms` ({:?}) must not exceed `max_backoff_ms` ({:?})",
                self.initial_backoff, self.max_backoff
            )));
        }
        Ok(())
    }

    /// Whether another attempt may be made for a request that has had `attempts` so far.
    pub(crate) fn allows_attempt(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }

    /// Whether a model that has been retried `retries` times (its first try not counted) may be retried
    /// again, for a request that has had `attempts` attempts so far.
    pub(crate) fn allows_retry(&self, retries: u32, attempts: u32) -> bool {
        retries < self.max_retries_per_model && self.allows_attempt(attempts)
    }

    /// Whether waiting `wait` before the next attempt leaves time before the deadline: `remaining` is
    /// the time left until it, `None` when there is none. A wait that uses up all the remaining time is
    /// not allowed, since the attempt itself would then have none.
    ///
    /// Subtract the expected latency of the next attempt from `remaining` to be stricter.
    pub(crate) fn deadline_allows(&self, wait: Duration, remaining: Option<Duration>) -> bool {
        remaining.is_none_or(|remaining| wait < remaining)
    }

    /// The cap of retry `retry`'s delay, before jitter: `min(max_backoff, initial_backoff ·
    /// multiplier^retry)`. Retry 0 is the first retry. Saturates at `max_backoff` for any `retry`,
    /// `u32::MAX` included.
    pub(crate) fn max_delay(&self, retry: u32) -> Duration {
        let max = self.max_backoff;
        let initial = self.initial_backoff.min(max);
        if initial.is_zero() {
            return Duration::ZERO;
        }
        let secs = initial.as_secs_f64() * self.multiplier.powi(i32::try_from(retry).unwrap_or(i32::MAX));
        if secs.is_nan() || secs >= max.as_secs_f64() {
            max
        } else if secs <= 0.0 {
            // Only an invalid (negative) multiplier gets here.
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(secs).map_or(max, |d| d.min(max))
        }
    }

    /// How long to wait before retry `retry` (0 for the first retry), given the provider's
    /// Retry-After, if any.
    ///
    /// 1. A `retry_after` above [`max_retry_after`](Self::max_retry_after) gives [`Backoff::GiveUp`]:
    ///    do not wait, move to the next candidate.
    /// 2. Otherwise the delay is drawn uniformly from `[0, max_delay(retry)]` (full jitter, one draw
    ///    from `jitter`) and raised to `retry_after` when that is longer.
    ///
    /// Never panics or overflows, for any `retry`.
    pub(crate) fn backoff(&self, retry: u32, retry_after: Option<Duration>, jitter: &mut Jitter) -> Backoff {
        if retry_after.is_some_and(|after| after > self.max_retry_after) {
            return Backoff::GiveUp;
        }
        let cap = self.max_delay(retry);
        let delay = Duration::try_from_secs_f64(cap.as_secs_f64() * jitter.next_f64()).map_or(cap, |d| d.min(cap));
        Backoff::Wait(retry_after.map_or(delay, |after| delay.max(after)))
    }
}

/// What `RetryPolicy::backoff` decided.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Backoff {
    /// Wait this long, then retry the same model.
    Wait(Duration),
    /// Do not wait: the provider asked for longer than the policy allows; try the next candidate.
    GiveUp,
}

impl Backoff {
    /// The wait, unless giving up.
    #[cfg(test)]
    pub(crate) fn delay(self) -> Option<Duration> {
        match self {
            Self::Wait(d) => Some(d),
            Self::GiveUp => None,
        }
    }
}

/// A small, seedable random number generator for backoff jitter (SplitMix64).
///
/// Not for cryptography. The same seed always gives the same sequence, so tests can fix it; use
/// [`Jitter::from_entropy`] in production so that clients do not retry in lockstep.
#[derive(Clone, Debug)]
pub(crate) struct Jitter(Rng);

impl Jitter {
    /// A generator with a fixed seed.
    pub(crate) fn new(seed: u64) -> Self {
        Self(Rng::new(seed))
    }

    /// A generator seeded from the standard library's per-process random hash keys and the clock.
    ///
    /// Each call gives a different seed. This is the only source of randomness in the module; it
    /// runs only when called.
    pub(crate) fn from_entropy() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        hasher.write_u128(now);
        Self::new(hasher.finish())
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniform number in `[0, 1)`, with 53 bits of precision.
    pub(crate) fn next_f64(&mut self) -> f64 {
        self.0.unit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn wait(b: Backoff) -> Duration {
        b.delay().expect("a wait")
    }

    #[test]
    fn defaults() {
        let p = RetryPolicy::default();
        assert_eq!(p, RetryPolicy::new());
        assert_eq!(p.max_retries_per_model, 2);
        assert_eq!(p.max_attempts, 6);
        assert_eq!(p.initial_backoff, MS(100));
        assert_eq!(p.max_backoff, Duration::from_secs(5));
        assert_eq!(p.multiplier, 2.0);
        assert_eq!(p.max_retry_after, Duration::from_secs(30));
        assert_eq!(p.on_non_retryable, NonRetryable::NextCandidate);
        assert!(p.validate().is_ok());
        assert_eq!(RetryPolicy::no_retries().max_retries_per_model, 0);
    }

    #[test]
    fn growth_then_cap() {
        let p = RetryPolicy::default();
        let caps: Vec<_> = (0..9).map(|r| p.max_delay(r)).collect();
        let expected = [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000].map(MS);
        assert_eq!(caps, expected);
        let flat = p.clone().with_multiplier(1.0);
        assert!((0..50).all(|r| flat.max_delay(r) == MS(100)));
        assert_eq!(p.clone().with_initial_backoff(Duration::ZERO).max_delay(10), Duration::ZERO);
    }

    #[test]
    fn jitter_stays_within_bounds_and_averages_half_the_cap() {
        let p = RetryPolicy::default();
        for retry in 0..10 {
            let cap = p.max_delay(retry);
            let mut total = 0.0;
            let n = 4000;
            for seed in 0..n {
                let d = wait(p.backoff(retry, None, &mut Jitter::new(seed)));
                assert!(d <= cap, "retry {retry} seed {seed}: {d:?} > {cap:?}");
                total += d.as_secs_f64();
            }
            let mean = total / n as f64 / cap.as_secs_f64();
            assert!((0.4..0.6).contains(&mean), "retry {retry}: mean {mean} of the cap");
        }
        // One generator, many draws: the same bounds.
        let mut jitter = Jitter::new(7);
        let draws: Vec<_> = (0..10_000).map(|_| wait(p.backoff(3, None, &mut jitter))).collect();
        assert!(draws.iter().all(|d| *d <= MS(800)));
        assert!(draws.iter().any(|d| *d < MS(80)) && draws.iter().any(|d| *d > MS(720)));
    }

    #[test]
    fn retry_after_is_a_floor_up_to_the_limit() {
        let p = RetryPolicy::default();
        for seed in 0..500 {
            let d = wait(p.backoff(10, Some(Duration::from_secs(2)), &mut Jitter::new(seed)));
            assert!((Duration::from_secs(2)..=Duration::from_secs(5)).contains(&d), "{d:?}");
            let d = wait(p.backoff(0, Some(Duration::from_secs(2)), &mut Jitter::new(seed)));
            assert_eq!(d, Duration::from_secs(2));
        }
        let at_limit = p.backoff(0, Some(Duration::from_secs(30)), &mut Jitter::new(1));
        assert_eq!(at_limit, Backoff::Wait(Duration::from_secs(30)));
        let above = p.backoff(0, Some(Duration::from_secs(30) + MS(1)), &mut Jitter::new(1));
        assert_eq!(above, Backoff::GiveUp);
        assert_eq!(above.delay(), None);
        let never = p.with_max_retry_after(Duration::ZERO);
        assert_eq!(never.backoff(0, Some(MS(1)), &mut Jitter::new(1)), Backoff::GiveUp);
        assert!(never.backoff(0, Some(Duration::ZERO), &mut Jitter::new(1)).delay().is_some());
    }

    #[test]
    fn huge_retries_saturate() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_delay(u32::MAX), p.max_backoff);
        let mut jitter = Jitter::new(3);
        for _ in 0..1000 {
            assert_eq!(p.backoff(u32::MAX, Some(Duration::MAX), &mut jitter), Backoff::GiveUp);
            assert!(wait(p.backoff(u32::MAX, None, &mut jitter)) <= p.max_backoff);
        }
        // Extreme but valid, and invalid policies: no panic, delays within the cap.
        let extreme = RetryPolicy::default()
            .with_max_backoff(Duration::MAX)
            .with_initial_backoff(Duration::MAX)
            .with_multiplier(f64::MAX)
            .with_max_retry_after(Duration::MAX);
        assert!(extreme.validate().is_ok());
        for retry in [0, 1, 2, 1000, u32::MAX] {
            assert_eq!(extreme.max_delay(retry), Duration::MAX);
            for _ in 0..100 {
                let _ = extreme.backoff(retry, Some(Duration::MAX), &mut jitter);
                let _ = extreme.backoff(retry, None, &mut jitter);
            }
        }
        for m in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -2.0, 0.0, 0.5] {
            let bad = RetryPolicy::default().with_multiplier(m);
            for retry in [0, 1, 7, u32::MAX] {
                let d = wait(bad.backoff(retry, None, &mut jitter));
                assert!(d <= bad.max_backoff, "multiplier {m}, retry {retry}: {d:?}");
            }
        }
        let inverted = RetryPolicy::default().with_initial_backoff(Duration::from_secs(60));
        assert_eq!(inverted.max_delay(0), inverted.max_backoff);
    }

    #[test]
    fn validation_names_the_field() {
        let err = |p: RetryPolicy| {
            let e = p.validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            e.to_string()
        };
        assert!(err(RetryPolicy::default().with_multiplier(f64::NAN)).contains("`multiplier`"));
        assert!(err(RetryPolicy::default().with_multiplier(f64::INFINITY)).contains("`multiplier`"));
        assert!(err(RetryPolicy::default().with_multiplier(0.5)).contains("`multiplier`"));
        assert!(err(RetryPolicy::default().with_max_attempts(0)).contains("`max_attempts`"));
        let inverted = RetryPolicy::default().with_initial_backoff(Duration::from_secs(10));
        let msg = err(inverted);
        assert!(msg.contains("`initial_backoff_ms`") && msg.contains("`max_backoff_ms`"), "{msg}");
        assert!(RetryPolicy::default().with_multiplier(1.0).with_max_retries_per_model(0).validate().is_ok());
    }

    #[test]
    fn attempt_budget_and_deadline() {
        let p = RetryPolicy::default();
        assert!(p.allows_retry(0, 1));
        assert!(p.allows_retry(1, 2));
        assert!(!p.allows_retry(2, 3), "two retries per model");
        assert!(!p.allows_retry(0, 6), "six attempts in total");
        assert!(p.allows_attempt(5));
        assert!(!p.allows_attempt(6));
        assert!(!RetryPolicy::no_retries().allows_retry(0, 1));
        assert!(p.deadline_allows(Duration::from_secs(100), None));
        assert!(p.deadline_allows(MS(100), Some(MS(101))));
        assert!(!p.deadline_allows(MS(100), Some(MS(100))));
        assert!(!p.deadline_allows(MS(100), Some(Duration::ZERO)));
    }

    #[test]
    fn jitter_is_deterministic_per_seed() {
        let a: Vec<_> = {
            let mut j = Jitter::new(99);
            (0..8).map(|_| j.next_u64()).collect()
        };
        let b: Vec<_> = {
            let mut j = Jitter::new(99);
            (0..8).map(|_| j.next_u64()).collect()
        };
        assert_eq!(a, b);
        // SplitMix64 reference output for seed 0.
        assert_eq!(Jitter::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        let mut j = Jitter::new(5);
        assert!((0..10_000).map(|_| j.next_f64()).all(|u| (0.0..1.0).contains(&u)));
        assert_ne!(Jitter::from_entropy().next_u64(), Jitter::from_entropy().next_u64());
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(4, None, &mut Jitter::new(11)), p.backoff(4, None, &mut Jitter::new(11)));
    }

    #[test]
    fn toml_round_trip() {
        let text = r#"
            max_retries_per_model = 1
            max_attempts = 4
            initial_backoff_ms = 250
            max_backoff_ms = 8000
            multiplier = 3.0
            max_retry_after_ms = 10000
            on_non_retryable = "stop"
        "#;
        let p: RetryPolicy = toml::from_str(text).unwrap();
        let expected = RetryPolicy::default()
            .with_max_retries_per_model(1)
            .with_max_attempts(4)
            .with_initial_backoff(MS(250))
            .with_max_backoff(Duration::from_secs(8))
            .with_multiplier(3.0)
            .with_max_retry_after(Duration::from_secs(10))
            .with_on_non_retryable(NonRetryable::Stop);
        assert_eq!(p, expected);
        assert!(p.validate().is_ok());
        let back: RetryPolicy = toml::from_str(&toml::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let default_back: RetryPolicy = toml::from_str(&toml::to_string(&RetryPolicy::default()).unwrap()).unwrap();
        assert_eq!(default_back, RetryPolicy::default());

        // Missing fields default; unknown ones (including a unit-less duration) are rejected.
        let partial: RetryPolicy = toml::from_str("max_attempts = 2").unwrap();
        assert_eq!(partial, RetryPolicy::default().with_max_attempts(2));
        assert_eq!(toml::from_str::<RetryPolicy>("").unwrap(), RetryPolicy::default());
        assert!(toml::from_str::<RetryPolicy>("initial_backoff = 100").is_err());
        assert!(toml::from_str::<RetryPolicy>("on_non_retryable = \"retry\"").is_err());
        let json: RetryPolicy = serde_json::from_str(r#"{"max_backoff_ms": 1000}"#).unwrap();
        assert_eq!(json.max_backoff, Duration::from_secs(1));
    }
}
