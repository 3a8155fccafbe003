//! Per-model health: live latency and success statistics, and a circuit breaker.
//!
//! A [`HealthTracker`] follows the models of one catalog, addressed by [`ModelIndex`]. The router
//!
//! 1. asks [`HealthTracker::admit`] for every candidate before it ranks them; a model whose circuit is
//!    open is skipped ([`Admission::Rejected`]), and a model recovering from an outage receives only a
//!    few probe requests ([`Admission::Probe`]);
//! 2. reads [`HealthTracker::live`] for measured latency, time to first token, decoding speed and success
//!    rate, once a model has [`HealthConfig::min_samples`] outcomes, unless they are stale
//!    ([`HealthTracker::is_stale`]: no outcome for [`stale_after`](HealthConfig::stale_after));
//! 3. reports every attempt with [`HealthTracker::record`], or [`HealthTracker::record_probe`] for an
//!    attempt admitted as a probe (or gives a probe slot back with [`HealthTracker::release_probe`]
//!    when the attempt was cancelled);
//! 4. when every candidate is open, may try [`HealthTracker::closest_to_recovery`] instead of failing.
//!
//! # The circuit breaker
//!
//! 1. **Closed**: every request is admitted. Each counted outcome enters a ring of the last
//!    [`window`](HealthConfig::window) outcomes. When a failure leaves at least
//!    [`min_requests`](HealthConfig::min_requests) outcomes in the ring (counted since the circuit last
//!    closed) with a failure share of at least [`failure_rate`](HealthConfig::failure_rate), the circuit
//!    trips.
//! 2. **Open**: requests are rejected for a cool-down: [`open_for`](HealthConfig::open_for) on the
//!    first trip, doubled on each consecutive re-open and capped at
//!    [`max_open_for`](HealthConfig::max_open_for).
//! 3. **Half-open**: once the cool-down has elapsed, [`admit`](HealthTracker::admit) hands out up to
//!    [`half_open_probes`](HealthConfig::half_open_probes) concurrent probe slots. That many probe
//!    successes close the circuit (and start a fresh breaker window, and the cool-down back at its
//!    base); a single probe failure re-opens it with a doubled cool-down.
//!
//! Failures that are the caller's fault (an invalid or malformed request, a context overflow) or that
//! happened before the model was reached say nothing about the model and are not counted; see
//! [`Observation::counts_toward_health`].
//!
//! # Concurrency
//!
//! [`admit`](HealthTracker::admit), [`live`](HealthTracker::live), [`state`](HealthTracker::state),
//! [`release_probe`](HealthTracker::release_probe) and
//! [`closest_to_recovery`](HealthTracker::closest_to_recovery) are lock-free and never allocate: the
//! circuit (state, probes in flight and a generation counter) is one packed `AtomicU64` that changes
//! only by compare-and-swap, and the live statistics are published as `f64` bits in atomics.
//! [`record`](HealthTracker::record) takes a per-model mutex for the ring and the averages, publishes
//! the results, and releases it before returning. [`snapshot`](HealthTracker::snapshot) takes each
//! model's mutex in turn. The live statistics are published field by field, so a reader racing a
//! writer may see one field from the newer outcome and another from the older one.
//!
//! # Time
//!
//! The tracker takes no clock readings: every method takes `now`, and the tracker measures time as
//! nanoseconds since the instant given to [`HealthTracker::new`] (saturating: an earlier `now` counts as
//! that instant). Callers on a paused tokio clock pass `tokio::time::Instant::now().into_std()`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use std::time::Instant;

use crate::catalog::{ModelId, ModelIndex};
use crate::error::{Error, ErrorKind, Result};

/// Parameters of the health statistics and the circuit breaker.
///
/// Every field has a default, so a config file needs to name only what it changes:
///
/// ```toml
/// failure_rate = 0.3
/// open_for_ms = 10000
/// ```
///
/// Durations are whole milliseconds (`*_ms`). [`HealthTracker::new`] calls [`validate`](Self::validate).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Smoothing factor `α ∈ (0, 1]` of the exponentially weighted moving averages of latency, time to
    /// first token and decoding speed: `ewma ← α·x + (1 − α)·ewma`, starting at the first sample.
    /// Default 0.2 (a half-life of about 3 samples).
    pub ewma_alpha: f64,
    /// How many of the latest counted outcomes the success rate and the breaker look at, in
    /// `1..=`[`MAX_WINDOW`](Self::MAX_WINDOW). Default 50.
    pub window: u32,
    /// How many counted outcomes a model needs before [`HealthTracker::live`] reports its statistics
    /// (at least 1). Default 20.
    pub min_samples: u32,
    /// The failure share in `(0, 1]` of the window at or above which the circuit trips. Default 0.5.
    pub failure_rate: f64,
    /// How many outcomes, counted since the circuit last closed, the window must hold before the
    /// circuit can trip, in `1..=window`. Default 10.
    pub min_requests: u32,
    /// Cool-down after the first trip (at least 1 ms). Default 30 s.
    #[serde(rename = "open_for_ms", with = "crate::retry::millis")]
    pub open_for: Duration,
    /// Upper bound of the cool-down, which doubles on each consecutive re-open (at least `open_for`).
    /// Default 5 min.
    #[serde(rename = "max_open_for_ms", with = "crate::retry::millis")]
    pub max_open_for: Duration,
    /// How many probe requests a half-open circuit admits at once, and how many probe successes close
    /// it, in `1..=`[`MAX_HALF_OPEN_PROBES`](Self::MAX_HALF_OPEN_PROBES). Default 3.
    pub half_open_probes: u32,
    /// How long a model's live statistics stay current without a new counted outcome (at least 1 ms).
    /// Default 60 s.
    ///
    /// A model that lost its traffic to a better one gets no new outcomes, so its statistics would
    /// never improve. Once they are this old, [`HealthTracker::is_stale`] says so and the router
    /// decides on the catalog's profile again: the model gets traffic back and is measured anew. The
    /// cost is that a model still slow or failing gets some requests again every `stale_after`.
    #[serde(rename = "stale_after_ms", with = "crate::retry::millis")]
    pub stale_after: Duration,
}

impl HealthConfig {
    /// The largest accepted [`window`](Self::window).
    pub const MAX_WINDOW: u32 = 65_536;
    /// The largest accepted [`half_open_probes`](Self::half_open_probes).
    pub const MAX_HALF_OPEN_PROBES: u32 = 1024;

    /// The default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the smoothing factor of the moving averages.
    pub fn with_ewma_alpha(mut self, alpha: f64) -> Self {
        self.ewma_alpha = alpha;
        self
    }

    /// Sets how many latest outcomes the success rate and the breaker look at.
    pub fn with_window(mut self, window: u32) -> Self {
        self.window = window;
        self
    }

    /// Sets how many outcomes a model needs before its live statistics are reported.
    pub fn with_min_samples(mut self, min_samples: u32) -> Self {
        self.min_samples = min_samples;
        self
    }

    /// Sets the failure share at or above which the circuit trips.
    pub fn with_failure_rate(mut self, failure_rate: f64) -> Self {
        self.failure_rate = failure_rate;
        self
    }

    /// Sets how many outcomes the window must hold before the circuit can trip.
    pub fn with_min_requests(mut self, min_requests: u32) -> Self {
        self.min_requests = min_requests;
        self
    }

    /// Sets the cool-down after the first trip.
    pub fn with_open_for(mut self, cool_down: Duration) -> Self {
        self.open_for = cool_down;
        self
    }

    /// Sets the upper bound of the cool-down.
    pub fn with_max_open_for(mut self, cool_down: Duration) -> Self {
        self.max_open_for = cool_down;
        self
    }

    /// Sets how many probes a half-open circuit admits at once and how many successes close it.
    pub fn with_half_open_probes(mut self, probes: u32) -> Self {
        self.half_open_probes = probes;
        self
    }

    /// Sets how long live statistics stay current without a new outcome.
    pub fn with_stale_after(mut self, after: Duration) -> Self {
        self.stale_after = after;
        self
    }

    /// Checks every field against the range its documentation gives.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] naming the first field out of range (NaN rates, a zero window or
    /// cool-down, `min_requests` larger than the window, ...).
    pub fn validate(&self) -> Result<()> {
        fn bad(field: &str, expected: &str, got: impl fmt::Display) -> Error {
            Error::new(ErrorKind::Config, format!("health: `{field}` must be {expected}, got {got}"))
        }
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            return Err(bad("ewma_alpha", "in (0, 1]", self.ewma_alpha));
        }
        if !(1..=Self::MAX_WINDOW).contains(&self.window) {
            return Err(bad("window", &format!("in 1..={}", Self::MAX_WINDOW), self.window));
        }
        if self.min_samples == 0 {
            return Err(bad("min_samples", "at least 1", self.min_samples));
        }
        if !(self.failure_rate > 0.0 && self.failure_rate <= 1.0) {
            return Err(bad("failure_rate", "in (0, 1]", self.failure_rate));
        }
        if !(1..=self.window).contains(&self.min_requests) {
            return Err(bad("min_requests", &format!("in 1..=window ({})", self.window), self.min_requests));
        }
        let ms = |d: Duration| d.as_millis();
        if self.open_for < Duration::from_millis(1) {
            return Err(bad("open_for_ms", "at least 1", ms(self.open_for)));
        }
        if self.max_open_for < self.open_for {
            return Err(bad(
                "max_open_for_ms",
                &format!("at least `open_for_ms` ({})", ms(self.open_for)),
                ms(self.max_open_for),
            ));
        }
        if !(1..=Self::MAX_HALF_OPEN_PROBES).contains(&self.half_open_probes) {
            return Err(bad(
                "half_open_probes",
                &format!("in 1..={}", Self::MAX_HALF_OPEN_PROBES),
                self.half_open_probes,
            ));
        }
        if self.stale_after < Duration::from_millis(1) {
            return Err(bad("stale_after_ms", "at least 1", ms(self.stale_after)));
        }
        Ok(())
    }

    /// The cool-down after `level` consecutive re-opens: `open_for · 2^level`, capped, in nanoseconds.
    fn cool_down_nanos(&self, level: u32) -> u64 {
        let factor = 1u32.checked_shl(level).unwrap_or(u32::MAX);
        let cool_down = self.open_for.saturating_mul(factor).min(self.max_open_for);
        u64::try_from(cool_down.as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            ewma_alpha: 0.2,
            window: 50,
            min_samples: 20,
            failure_rate: 0.5,
            min_requests: 10,
            open_for: Duration::from_secs(30),
            max_open_for: Duration::from_secs(300),
            half_open_probes: 3,
            stale_after: Duration::from_secs(60),
        }
    }
}

/// How one attempt ended.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The model answered.
    Success,
    /// The attempt failed this way.
    Failure(ErrorKind),
}

/// The outcome of one attempt on one model, as reported to [`HealthTracker::record`].
///
/// ```
/// use std::time::Duration;
/// use switchyard::health::Observation;
///
/// let ok = Observation::success(Duration::from_millis(1800))
///     .with_ttft(Duration::from_millis(300))
///     .with_output_tokens(150); // 100 tokens/s while decoding
/// assert!(ok.counts_toward_health());
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Success or the kind of failure.
    pub outcome: Outcome,
    /// Wall time of the attempt, from sending the request to the last byte (or the failure).
    pub latency: Duration,
    /// Time to the first output token, when known.
    pub ttft: Option<Duration>,
    /// Output tokens produced; with [`ttft`](Self::ttft) gives the decoding speed
    /// `output_tokens / (latency − ttft)`.
    pub output_tokens: u32,
}

impl Observation {
    /// A successful attempt that took `latency`.
    pub fn success(latency: Duration) -> Self {
        Self { outcome: Outcome::Success, latency, ttft: None, output_tokens: 0 }
    }

    /// An attempt that failed with `kind` after `latency`.
    pub fn failure(kind: ErrorKind, latency: Duration) -> Self {
        Self { outcome: Outcome::Failure(kind), latency, ttft: None, output_tokens: 0 }
    }

    /// An attempt that failed with `error` after `latency`.
    pub fn from_error(error: &Error, latency: Duration) -> Self {
        Self::failure(error.kind(), latency)
    }

    /// Sets the time to the first output token.
    pub fn with_ttft(mut self, ttft: Duration) -> Self {
        self.ttft = Some(ttft);
        self
    }

    /// Sets the number of output tokens produced.
    pub fn with_output_tokens(mut self, tokens: u32) -> Self {
        self.output_tokens = tokens;
        self
    }

    /// Whether the observation says anything about the model's health.
    ///
    /// Every success counts, and so does every failure on the model's side: timeouts, connection
    /// failures, rate limiting, server errors, rejected credentials, unknown model, undecodable
    /// responses and broken streams. Failures that are the caller's fault ([`ErrorKind::InvalidRequest`],
    /// [`ErrorKind::BadRequest`], [`ErrorKind::ContextOverflow`]) or that happen before the model is
    /// reached ([`ErrorKind::Config`], [`ErrorKind::NoCandidate`], [`ErrorKind::Routing`],
    /// [`ErrorKind::ProviderMissing`]) do not count: [`HealthTracker::record`] ignores them, and
    /// [`HealthTracker::record_probe`] only gives the probe slot back.
    pub fn counts_toward_health(&self) -> bool {
        match self.outcome {
            Outcome::Success => true,
            Outcome::Failure(kind) => match kind {
                ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::RateLimited
                | ErrorKind::Server
                | ErrorKind::Auth
                | ErrorKind::ModelNotFound
                | ErrorKind::Decode
                | ErrorKind::MidStream => true,
                ErrorKind::InvalidRequest
                | ErrorKind::BadRequest
                | ErrorKind::ContextOverflow
                | ErrorKind::Config
                | ErrorKind::NoCandidate
                | ErrorKind::Routing
                | ErrorKind::ProviderMissing
                | ErrorKind::BudgetExceeded
                | ErrorKind::Store => false,
            },
        }
    }

    fn is_failure(&self) -> bool {
        matches!(self.outcome, Outcome::Failure(_))
    }

    /// Output tokens per second while decoding, when the time to first token is known and shorter
    /// than the latency and at least one token was produced.
    fn tokens_per_sec(&self) -> Option<f64> {
        let ttft = self.ttft?;
        let decoding = self.latency.checked_sub(ttft).filter(|d| !d.is_zero())?;
        (self.output_tokens > 0).then(|| f64::from(self.output_tokens) / decoding.as_secs_f64())
    }
}

/// The state of a model's circuit breaker.
///
/// Serializes with a `state` tag (`"closed"`, `"open"`, `"half_open"`); an open circuit adds
/// `retry_in_ms`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CircuitState {
    /// Requests flow normally.
    Closed,
    /// Requests are rejected until the cool-down ends.
    Open {
        /// Time left of the cool-down; zero once it has elapsed (the next
        /// [`admit`](HealthTracker::admit) turns the circuit half-open).
        #[serde(rename = "retry_in_ms", serialize_with = "serialize_ms")]
        retry_in: Duration,
    },
    /// A few probe requests are admitted to test whether the model has recovered.
    HalfOpen,
}

impl CircuitState {
    /// A short, low-cardinality label for metrics: `"closed"`, `"open"` or `"half_open"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

fn serialize_ms<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(duration_ms(*d))
}

fn duration_ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The answer of [`HealthTracker::admit`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The circuit is closed: send the request.
    Allowed,
    /// The circuit is half-open and this request holds one of its probe slots. Report the outcome
    /// with [`HealthTracker::record_probe`], or call [`HealthTracker::release_probe`] if the attempt is
    /// abandoned, so that the slot is given back.
    Probe,
    /// Do not send the request to this model.
    Rejected {
        /// When the model may admit again: the rest of the cool-down for an open circuit; zero for a
        /// half-open circuit whose probe slots are all taken (it may close as soon as they finish);
        /// [`Duration::MAX`] for an index the tracker does not know.
        retry_in: Duration,
    },
}

impl Admission {
    /// Whether the request may be sent ([`Allowed`](Self::Allowed) or [`Probe`](Self::Probe)).
    pub fn is_admitted(&self) -> bool {
        matches!(self, Self::Allowed | Self::Probe)
    }
}

/// A model's measured statistics, from [`HealthTracker::live`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiveStats {
    /// Share of successes among the last [`window`](HealthConfig::window) counted outcomes, in `[0, 1]`.
    pub success_rate: f64,
    /// Moving average of the latency of successful attempts; `None` before the first success.
    pub latency: Option<Duration>,
    /// Moving average of the time to first token of successful attempts that reported it.
    pub ttft: Option<Duration>,
    /// Moving average of the decoding speed (output tokens per second after the first token) of
    /// successful attempts that reported a time to first token and produced tokens.
    pub tokens_per_sec: Option<f64>,
    /// Counted outcomes so far (at least [`min_samples`](HealthConfig::min_samples)).
    pub samples: u64,
}

/// One model's health, for dashboards: [`HealthTracker::snapshot`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelHealth {
    /// The model's index in the catalog.
    pub index: ModelIndex,
    /// The model's id ([`Router::health`](crate::Router::health) sets it; `None` from a bare tracker).
    pub model: Option<ModelId>,
    /// The circuit (with the time left of the cool-down when open).
    pub state: CircuitState,
    /// Share of successes in the window; `None` before the first counted outcome.
    pub success_rate: Option<f64>,
    /// Counted outcomes so far.
    pub samples: u64,
    /// Moving average of the latency of successes, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Moving average of the time to first token, in milliseconds.
    pub ttft_ms: Option<f64>,
    /// Moving average of the decoding speed, in output tokens per second.
    pub tokens_per_sec: Option<f64>,
    /// Counted failures since the last success.
    pub consecutive_failures: u32,
    /// How many times the circuit has opened (first trips and re-opens).
    pub trips: u32,
    /// Probe slots taken while half-open.
    pub probes_in_flight: u32,
}

/// Health statistics and circuit breakers for the models of one catalog.
///
/// Built once per catalog and shared by reference (or in an `Arc`); every method takes `&self`.
///
/// ```
/// use std::time::Duration;
/// use switchyard::ErrorKind;
/// use switchyard::health::{Admission, HealthConfig, HealthTracker, Observation};
/// use std::time::Instant;
///
/// # fn main() -> switchyard::Result<()> {
/// let start = Instant::now();
/// let config = HealthConfig::new().with_min_requests(2).with_open_for(Duration::from_millis(1000));
/// let tracker = HealthTracker::new(2, config, start)?;
///
/// let failed = Observation::failure(ErrorKind::Server, Duration::from_millis(40));
/// tracker.record(0, &failed, start);
/// tracker.record(0, &failed, start);
/// assert_eq!(tracker.admit(0, start), Admission::Rejected { retry_in: Duration::from_secs(1) });
/// assert_eq!(tracker.admit(1, start), Admission::Allowed);
/// assert_eq!(tracker.admit(0, start + Duration::from_secs(1)), Admission::Probe);
/// # Ok(()) }
/// ```
///
/// An index outside `0..len()` is never admitted ([`Admission::Rejected`] with [`Duration::MAX`]), has
/// no statistics or state, and is ignored by [`record`](Self::record) and
/// [`release_probe`](Self::release_probe); no method panics.
pub struct HealthTracker {
    config: HealthConfig,
    base: Instant,
    slots: Box<[Slot]>,
}

impl HealthTracker {
    /// A tracker for `models` models (indices `0..models`), all closed and without statistics, measuring
    /// time from `now`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] when `config` fails [`HealthConfig::validate`].
    pub fn new(models: usize, config: HealthConfig, now: Instant) -> Result<Self> {
        config.validate()?;
        let window = usize::try_from(config.window).unwrap_or(1);
        let slots = (0..models).map(|_| Slot::new(window)).collect();
        Ok(Self { config, base: now, slots })
    }

    /// How many models the tracker follows.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the tracker follows no model.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The configuration.
    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// Whether a request may be sent to model `index` now. Lock-free; no allocation.
    ///
    /// A closed circuit admits. An open one rejects until its cool-down has elapsed; the first call
    /// after that turns it half-open and takes a probe slot. A half-open circuit hands out probe slots
    /// up to [`half_open_probes`](HealthConfig::half_open_probes), then rejects with a zero `retry_in`.
    #[must_use = "a probe slot must be given back with `record_probe` or `release_probe`"]
    pub fn admit(&self, index: ModelIndex, now: Instant) -> Admission {
        let Some(slot) = self.slots.get(index) else {
            return Admission::Rejected { retry_in: Duration::MAX };
        };
        let mut word = Circuit(slot.circuit.load(Ordering::Acquire));
        loop {
            let next = match word.phase() {
                Phase::Closed => return Admission::Allowed,
                Phase::Open => {
                    let until = slot.open_until.load(Ordering::Acquire);
                    let t = self.nanos(now);
                    if t < until {
                        return Admission::Rejected { retry_in: Duration::from_nanos(until - t) };
                    }
                    Circuit::new(Phase::HalfOpen, 1, word.epoch())
                }
                Phase::HalfOpen => {
                    if word.probes() >= self.config.half_open_probes {
                        return Admission::Rejected { retry_in: Duration::ZERO };
                    }
                    word.with_probes(word.probes() + 1)
                }
            };
            match slot.circuit.compare_exchange_weak(word.0, next.0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Admission::Probe,
                Err(actual) => word = Circuit(actual),
            }
        }
    }

    /// Opens model `index`'s circuit until `duration` after `now`, unless it is already open for
    /// longer: another replica found the model failing (see `docs/scaling.md`). The cool-down does
    /// not grow; after it, the circuit turns half-open and probes as usual.
    pub fn open_for(&self, index: ModelIndex, duration: Duration, now: Instant) {
        let Some(slot) = self.slots.get(index) else { return };
        let until = self.nanos(now).saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
        let mut stats = slot.stats.lock().unwrap_or_else(PoisonError::into_inner);
        let mut word = Circuit(slot.circuit.load(Ordering::Acquire));
        loop {
            if word.phase() == Phase::Open && slot.open_until.load(Ordering::Acquire) >= until {
                return;
            }
            // Publish the end of the cool-down before the state that makes admit read it.
            slot.open_until.store(until, Ordering::Release);
            let next = Circuit::new(Phase::Open, 0, word.epoch().wrapping_add(1));
            match slot.circuit.compare_exchange_weak(word.0, next.0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    stats.probe_successes = 0;
                    return;
                }
                Err(actual) => word = Circuit(actual),
            }
        }
    }

    /// Records the outcome of one attempt on model `index` that was [admitted](Self::admit) as
    /// [`Admission::Allowed`], finished at `now`.
    ///
    /// Observations that do not [count toward health](Observation::counts_toward_health) are ignored.
    /// Counted ones update the window, the averages (successes only) and, while the circuit is closed,
    /// the breaker. An outcome that arrives while the circuit is open or half-open (an attempt admitted
    /// before the trip) updates the statistics only: only probes decide a half-open circuit.
    pub fn record(&self, index: ModelIndex, observation: &Observation, now: Instant) {
        self.record_outcome(index, observation, now, false);
    }

    /// Records the outcome of a probe: an attempt [admitted](Self::admit) as [`Admission::Probe`].
    ///
    /// It gives the probe slot back (never below zero). An observation that does not
    /// [count toward health](Observation::counts_toward_health) does nothing else; a counted success
    /// counts toward closing the circuit and a failure re-opens it. A probe outcome that arrives after
    /// the circuit left the half-open state updates the statistics only.
    ///
    /// A probe that outlives a whole open period (longer than the cool-down) gives its slot back to
    /// the next half-open period; probes are expected to end well within a cool-down.
    pub fn record_probe(&self, index: ModelIndex, observation: &Observation, now: Instant) {
        self.record_outcome(index, observation, now, true);
    }

    fn record_outcome(&self, index: ModelIndex, observation: &Observation, now: Instant, probe: bool) {
        let Some(slot) = self.slots.get(index) else { return };
        if !observation.counts_toward_health() {
            if probe {
                self.release_probe(index);
            }
            return;
        }
        let failed = observation.is_failure();
        let t = self.nanos(now);
        slot.last_outcome.fetch_max(t.saturating_add(1), Ordering::Relaxed);
        let mut stats = slot.stats.lock().unwrap_or_else(PoisonError::into_inner);
        stats.samples = stats.samples.saturating_add(1);
        stats.window.push(failed);
        if failed {
            stats.consecutive_failures = stats.consecutive_failures.saturating_add(1);
        } else {
            stats.consecutive_failures = 0;
            let alpha = self.config.ewma_alpha;
            stats.latency_ns = Some(ewma(stats.latency_ns, nanos_f64(observation.latency), alpha));
            if let Some(ttft) = observation.ttft {
                stats.ttft_ns = Some(ewma(stats.ttft_ns, nanos_f64(ttft), alpha));
            }
            if let Some(tps) = observation.tokens_per_sec() {
                stats.tps = Some(ewma(stats.tps, tps, alpha));
            }
        }
        slot.publish(&stats);
        self.step_breaker(slot, &mut stats, failed, t, probe);
    }

    /// Gives back a probe slot of model `index` for an attempt that was abandoned before it had an
    /// outcome (cancelled, or failed before reaching the model). Lock-free; does nothing when the
    /// circuit is not half-open or no slot is taken.
    pub fn release_probe(&self, index: ModelIndex) {
        if let Some(slot) = self.slots.get(index) {
            slot.release_probe();
        }
    }

    /// Model `index`'s measured statistics, once it has [`min_samples`](HealthConfig::min_samples)
    /// counted outcomes; `None` before that and for an unknown index. Lock-free; no allocation.
    pub fn live(&self, index: ModelIndex) -> Option<LiveStats> {
        let slot = self.slots.get(index)?;
        let samples = slot.samples.load(Ordering::Acquire);
        if samples < u64::from(self.config.min_samples) {
            return None;
        }
        Some(LiveStats {
            success_rate: load_f64(&slot.success_rate)?,
            latency: load_f64(&slot.latency_ns).map(duration_from_nanos),
            ttft: load_f64(&slot.ttft_ns).map(duration_from_nanos),
            tokens_per_sec: load_f64(&slot.tps),
            samples,
        })
    }

    /// Whether model `index` has counted outcomes, the latest older than
    /// [`stale_after`](HealthConfig::stale_after) at `now`. Callers should then set its
    /// [`live`](Self::live) statistics aside. `false` for a model without outcomes and for an unknown
    /// index. Lock-free; no allocation.
    pub fn is_stale(&self, index: ModelIndex, now: Instant) -> bool {
        let Some(slot) = self.slots.get(index) else { return false };
        match slot.last_outcome.load(Ordering::Relaxed) {
            0 => false,
            last => {
                let age = self.nanos(now).saturating_sub(last - 1);
                u128::from(age) > self.config.stale_after.as_nanos()
            }
        }
    }

    /// Model `index`'s circuit at `now`; `None` for an unknown index. Lock-free; no allocation.
    ///
    /// An open circuit whose cool-down has elapsed is reported as open with a zero `retry_in` until the
    /// next [`admit`](Self::admit) turns it half-open.
    pub fn state(&self, index: ModelIndex, now: Instant) -> Option<CircuitState> {
        let slot = self.slots.get(index)?;
        Some(self.state_of(slot, Circuit(slot.circuit.load(Ordering::Acquire)), now))
    }

    /// Among `candidates`, the model that will admit again soonest: the open circuit whose cool-down
    /// ends first, with closed and half-open circuits counting as zero. Ties go to the earliest
    /// candidate; unknown indices are skipped; `None` when no candidate is known. Lock-free.
    ///
    /// The router uses it when every candidate is rejected, to try one model rather than fail.
    pub fn closest_to_recovery(
        &self,
        candidates: impl IntoIterator<Item = ModelIndex>,
        now: Instant,
    ) -> Option<ModelIndex> {
        let mut best: Option<(Duration, ModelIndex)> = None;
        for index in candidates {
            let Some(state) = self.state(index, now) else { continue };
            let wait = match state {
                CircuitState::Open { retry_in } => retry_in,
                CircuitState::Closed | CircuitState::HalfOpen => Duration::ZERO,
            };
            if best.is_none_or(|(w, _)| wait < w) {
                best = Some((wait, index));
            }
        }
        best.map(|(_, index)| index)
    }

    /// Every model's health at `now`, in index order. Takes each model's lock in turn.
    pub fn snapshot(&self, now: Instant) -> Vec<ModelHealth> {
        self.slots
            .iter()
            .enumerate()
            .map(|(index, slot)| {
                let stats = slot.stats.lock().unwrap_or_else(PoisonError::into_inner);
                let word = Circuit(slot.circuit.load(Ordering::Acquire));
                ModelHealth {
                    index,
                    model: None,
                    state: self.state_of(slot, word, now),
                    success_rate: stats.window.success_rate(),
                    samples: stats.samples,
                    latency_ms: stats.latency_ns.map(|ns| ns / 1e6),
                    ttft_ms: stats.ttft_ns.map(|ns| ns / 1e6),
                    tokens_per_sec: stats.tps,
                    consecutive_failures: stats.consecutive_failures,
                    trips: stats.trips,
                    probes_in_flight: if word.phase() == Phase::HalfOpen { word.probes() } else { 0 },
                }
            })
            .collect()
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn state_of(&self, slot: &Slot, word: Circuit, now: Instant) -> CircuitState {
        match word.phase() {
            Phase::Closed => CircuitState::Closed,
            Phase::HalfOpen => CircuitState::HalfOpen,
            Phase::Open => {
                let until = slot.open_until.load(Ordering::Acquire);
                CircuitState::Open { retry_in: Duration::from_nanos(until.saturating_sub(self.nanos(now))) }
            }
        }
    }

    /// Moves the breaker after a counted outcome. Runs under the model's lock, so record-side
    /// transitions are serialized; `admit` only turns open into half-open and takes probe slots, which
    /// the compare-and-swap loops absorb.
    fn step_breaker(&self, slot: &Slot, stats: &mut Stats, failed: bool, t: u64, probe: bool) {
        let mut word = Circuit(slot.circuit.load(Ordering::Acquire));
        loop {
            let (next, level) = match word.phase() {
                // An attempt admitted before the trip: statistics only.
                Phase::Open => return,
                Phase::HalfOpen if !probe => return,
                Phase::Closed => {
                    let (n, failures) = stats.window.breaker_counts();
                    let rate = failures as f64 / n.max(1) as f64;
                    if !failed || n < self.config.min_requests as usize || rate < self.config.failure_rate {
                        return;
                    }
                    (Circuit::new(Phase::Open, 0, word.epoch().wrapping_add(1)), 0)
                }
                Phase::HalfOpen if failed => {
                    let level = stats.reopen_level.saturating_add(1);
                    (Circuit::new(Phase::Open, 0, word.epoch().wrapping_add(1)), level)
                }
                Phase::HalfOpen => {
                    let successes = stats.probe_successes.saturating_add(1);
                    let next = if successes >= self.config.half_open_probes {
                        Circuit::new(Phase::Closed, 0, word.epoch().wrapping_add(1))
                    } else {
                        word.with_probes(word.probes().saturating_sub(1))
                    };
                    match slot.circuit.compare_exchange_weak(word.0, next.0, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) if next.phase() == Phase::Closed => {
                            stats.probe_successes = 0;
                            stats.reopen_level = 0;
                            stats.window.reset_breaker();
                            return;
                        }
                        Ok(_) => {
                            stats.probe_successes = successes;
                            return;
                        }
                        Err(actual) => {
                            word = Circuit(actual);
                            continue;
                        }
                    }
                }
            };
            // Opening: publish the end of the cool-down before the state that makes admit read it.
            slot.open_until.store(t.saturating_add(self.config.cool_down_nanos(level)), Ordering::Release);
            match slot.circuit.compare_exchange_weak(word.0, next.0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    stats.trips = stats.trips.saturating_add(1);
                    stats.reopen_level = level;
                    stats.probe_successes = 0;
                    return;
                }
                Err(actual) => word = Circuit(actual),
            }
        }
    }
}

impl fmt::Debug for HealthTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthTracker").field("models", &self.slots.len()).field("config", &self.config).finish()
    }
}

/// One model's state. Aligned so that two models' hot atomics never share a cache line.
#[repr(align(128))]
struct Slot {
    /// The packed [`Circuit`].
    circuit: AtomicU64,
    /// End of the current cool-down, in nanoseconds since the tracker's base instant.
    open_until: AtomicU64,
    /// Counted outcomes; stored last (release) when publishing.
    samples: AtomicU64,
    /// When the latest counted outcome was recorded, in nanoseconds since the base plus one; 0 before
    /// the first.
    last_outcome: AtomicU64,
    /// Published `f64` bits; NaN means none.
    success_rate: AtomicU64,
    latency_ns: AtomicU64,
    ttft_ns: AtomicU64,
    tps: AtomicU64,
    stats: Mutex<Stats>,
}

impl Slot {
    fn new(window: usize) -> Self {
        let none = f64::NAN.to_bits();
        Self {
            circuit: AtomicU64::new(Circuit::new(Phase::Closed, 0, 0).0),
            open_until: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            last_outcome: AtomicU64::new(0),
            success_rate: AtomicU64::new(none),
            latency_ns: AtomicU64::new(none),
            ttft_ns: AtomicU64::new(none),
            tps: AtomicU64::new(none),
            stats: Mutex::new(Stats::new(window)),
        }
    }

    /// Publishes the statistics for lock-free readers. Called with the lock held.
    fn publish(&self, stats: &Stats) {
        store_f64(&self.success_rate, stats.window.success_rate());
        store_f64(&self.latency_ns, stats.latency_ns);
        store_f64(&self.ttft_ns, stats.ttft_ns);
        store_f64(&self.tps, stats.tps);
        self.samples.store(stats.samples, Ordering::Release);
    }

    fn release_probe(&self) {
        let _ = self.circuit.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
            let w = Circuit(w);
            (w.phase() == Phase::HalfOpen && w.probes() > 0).then(|| w.with_probes(w.probes() - 1).0)
        });
    }
}

fn store_f64(cell: &AtomicU64, value: Option<f64>) {
    cell.store(value.unwrap_or(f64::NAN).to_bits(), Ordering::Relaxed);
}

fn load_f64(cell: &AtomicU64) -> Option<f64> {
    let value = f64::from_bits(cell.load(Ordering::Relaxed));
    (!value.is_nan()).then_some(value)
}

fn nanos_f64(d: Duration) -> f64 {
    d.as_nanos() as f64
}

fn duration_from_nanos(ns: f64) -> Duration {
    // `as` saturates: negative and NaN become 0, huge values u64::MAX.
    Duration::from_nanos(ns as u64)
}

fn ewma(previous: Option<f64>, x: f64, alpha: f64) -> f64 {
    match previous {
        None => x,
        Some(p) => alpha * x + (1.0 - alpha) * p,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Closed,
    Open,
    HalfOpen,
}

/// The circuit packed in one `u64`: bits 0–1 the phase, bits 2–17 the probes in flight (half-open
/// only), bits 32–63 a generation bumped on every record-side transition, so that a stale
/// compare-and-swap from an earlier open or half-open period always fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Circuit(u64);

impl Circuit {
    const PROBES_SHIFT: u32 = 2;
    const PROBES_MASK: u64 = 0xFFFF;
    const EPOCH_SHIFT: u32 = 32;

    fn new(phase: Phase, probes: u32, epoch: u32) -> Self {
        let phase = match phase {
            Phase::Closed => 0,
            Phase::Open => 1,
            Phase::HalfOpen => 2,
        };
        let probes = u64::from(probes) & Self::PROBES_MASK;
        Self(phase | probes << Self::PROBES_SHIFT | u64::from(epoch) << Self::EPOCH_SHIFT)
    }

    fn phase(self) -> Phase {
        match self.0 & 0b11 {
            0 => Phase::Closed,
            1 => Phase::Open,
            _ => Phase::HalfOpen,
        }
    }

    fn probes(self) -> u32 {
        ((self.0 >> Self::PROBES_SHIFT) & Self::PROBES_MASK) as u32
    }

    fn epoch(self) -> u32 {
        (self.0 >> Self::EPOCH_SHIFT) as u32
    }

    fn with_probes(self, probes: u32) -> Self {
        Self::new(self.phase(), probes, self.epoch())
    }
}

/// The writer side of one model, behind its mutex.
struct Stats {
    window: Window,
    latency_ns: Option<f64>,
    ttft_ns: Option<f64>,
    tps: Option<f64>,
    samples: u64,
    consecutive_failures: u32,
    trips: u32,
    /// Consecutive re-opens since the circuit last closed: the cool-down's exponent.
    reopen_level: u32,
    /// Probe successes in the current half-open period.
    probe_successes: u32,
}

impl Stats {
    fn new(window: usize) -> Self {
        Self {
            window: Window::new(window),
            latency_ns: None,
            ttft_ns: None,
            tps: None,
            samples: 0,
            consecutive_failures: 0,
            trips: 0,
            reopen_level: 0,
            probe_successes: 0,
        }
    }
}

/// A ring of the last counted outcomes, with O(1) failure counts over the whole ring and over the part
/// recorded since the circuit last closed (the breaker's view).
struct Window {
    /// `true` marks a failure.
    failed: Vec<bool>,
    /// Next write position.
    head: usize,
    len: usize,
    failures: usize,
    /// Outcomes ever pushed; the outcome pushed `k`-th has sequence number `k - 1`.
    pushed: u64,
    /// Sequence number of the first outcome the breaker counts.
    breaker_from: u64,
    /// Failures in the ring with a sequence number `>= breaker_from`.
    breaker_failures: usize,
}

impl Window {
    fn new(capacity: usize) -> Self {
        Self {
            failed: vec![false; capacity.max(1)],
            head: 0,
            len: 0,
            failures: 0,
            pushed: 0,
            breaker_from: 0,
            breaker_failures: 0,
        }
    }

    fn push(&mut self, failed: bool) {
        let capacity = self.failed.len();
        let Some(cell) = self.failed.get_mut(self.head) else { return };
        if self.len == capacity {
            let evicted_seq = self.pushed.saturating_sub(capacity as u64);
            if *cell {
                self.failures = self.failures.saturating_sub(1);
                if evicted_seq >= self.breaker_from {
                    self.breaker_failures = self.breaker_failures.saturating_sub(1);
                }
            }
        } else {
            self.len += 1;
        }
        *cell = failed;
        if failed {
            self.failures += 1;
            self.breaker_failures += 1;
        }
        self.head = (self.head + 1) % capacity;
        self.pushed = self.pushed.saturating_add(1);
    }

    fn success_rate(&self) -> Option<f64> {
        (self.len > 0).then(|| (self.len - self.failures.min(self.len)) as f64 / self.len as f64)
    }

    /// Outcomes and failures the breaker sees: those in the ring recorded since the last close.
    fn breaker_counts(&self) -> (usize, usize) {
        let since = usize::try_from(self.pushed.saturating_sub(self.breaker_from)).unwrap_or(usize::MAX);
        (since.min(self.len), self.breaker_failures)
    }

    fn reset_breaker(&mut self) {
        self.breaker_from = self.pushed;
        self.breaker_failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);

    fn ok() -> Observation {
        Observation::success(100 * MS)
    }

    fn fail() -> Observation {
        Observation::failure(ErrorKind::Server, 100 * MS)
    }

    /// Window 10, trips at 5 failures out of 10, 30 s base cool-down, 3 probes.
    fn config() -> HealthConfig {
        HealthConfig::new().with_window(10).with_min_requests(10).with_min_samples(5)
    }

    fn tracker(n: usize) -> (HealthTracker, Instant) {
        let base = Instant::now();
        (HealthTracker::new(n, config(), base).unwrap(), base)
    }

    /// Trips model `i` at `at`: 10 failures.
    fn trip(t: &HealthTracker, i: usize, at: Instant) {
        for _ in 0..10 {
            t.record(i, &fail(), at);
        }
        assert!(matches!(t.state(i, at), Some(CircuitState::Open { .. })));
    }

    fn probes(t: &HealthTracker, i: usize) -> u32 {
        t.snapshot(t.base)[i].probes_in_flight
    }

    #[test]
    fn defaults_validate_and_round_trip() {
        let c = HealthConfig::default();
        c.validate().unwrap();
        assert_eq!((c.window, c.min_samples, c.min_requests, c.half_open_probes), (50, 20, 10, 3));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<HealthConfig>(&json).unwrap(), c);
        let partial: HealthConfig = toml::from_str("failure_rate = 0.3\nopen_for_ms = 1000").unwrap();
        assert_eq!(partial, HealthConfig::new().with_failure_rate(0.3).with_open_for(Duration::from_millis(1000)));
        assert!(toml::from_str::<HealthConfig>("open_for = 3").is_err());
    }

    #[test]
    fn validation_rejects_bad_values() {
        let d = HealthConfig::default;
        let bad = [
            ("ewma_alpha", d().with_ewma_alpha(f64::NAN)),
            ("ewma_alpha", d().with_ewma_alpha(0.0)),
            ("ewma_alpha", d().with_ewma_alpha(1.5)),
            ("ewma_alpha", d().with_ewma_alpha(f64::INFINITY)),
            ("window", d().with_window(0)),
            ("window", d().with_window(HealthConfig::MAX_WINDOW + 1)),
            ("min_samples", d().with_min_samples(0)),
            ("failure_rate", d().with_failure_rate(f64::NAN)),
            ("failure_rate", d().with_failure_rate(0.0)),
            ("failure_rate", d().with_failure_rate(1.01)),
            ("min_requests", d().with_min_requests(0)),
            ("min_requests", d().with_min_requests(51)),
            ("open_for_ms", d().with_open_for(Duration::from_millis(0))),
            ("max_open_for_ms", d().with_max_open_for(Duration::from_millis(29_999))),
            ("half_open_probes", d().with_half_open_probes(0)),
            ("half_open_probes", d().with_half_open_probes(HealthConfig::MAX_HALF_OPEN_PROBES + 1)),
        ];
        for (field, c) in bad {
            let e = c.validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.to_string().contains(&format!("`{field}`")), "{field}: {e}");
            assert_eq!(HealthTracker::new(1, c, Instant::now()).unwrap_err().kind(), ErrorKind::Config);
        }
        d().with_ewma_alpha(1.0).with_failure_rate(1.0).with_window(1).with_min_requests(1).validate().unwrap();
    }

    #[test]
    fn open_for_opens_then_probes_and_never_shortens_a_longer_cool_down() {
        let (t, base) = tracker(2);
        t.open_for(0, 5 * SEC, base);
        assert_eq!(t.state(0, base), Some(CircuitState::Open { retry_in: 5 * SEC }));
        assert_eq!(t.state(1, base), Some(CircuitState::Closed));
        // A shorter one changes nothing.
        t.open_for(0, SEC, base);
        assert_eq!(t.state(0, base), Some(CircuitState::Open { retry_in: 5 * SEC }));
        // After it, the circuit probes as usual and closes on successes.
        let later = base + 5 * SEC;
        for _ in 0..3 {
            assert_eq!(t.admit(0, later), Admission::Probe);
            t.record_probe(0, &ok(), later);
        }
        assert_eq!(t.state(0, later), Some(CircuitState::Closed));
        // An open circuit of its own is extended, never shortened.
        trip(&t, 1, base);
        t.open_for(1, 60 * SEC, base);
        assert_eq!(t.state(1, base), Some(CircuitState::Open { retry_in: 60 * SEC }));
        t.open_for(7, SEC, base);
    }

    #[test]
    fn does_not_trip_below_min_requests() {
        let (t, base) = tracker(1);
        for _ in 0..9 {
            t.record(0, &fail(), base);
        }
        assert_eq!(t.state(0, base), Some(CircuitState::Closed));
        assert_eq!(t.admit(0, base), Admission::Allowed);
        assert_eq!(t.snapshot(base)[0].consecutive_failures, 9);
    }

    #[test]
    fn trips_at_the_threshold_only() {
        let (t, base) = tracker(1);
        // 6 successes then 4 failures: 10 outcomes at 40 % — stays closed.
        for _ in 0..6 {
            t.record(0, &ok(), base);
        }
        for _ in 0..4 {
            t.record(0, &fail(), base);
        }
        assert_eq!(t.state(0, base), Some(CircuitState::Closed));
        // The 5th failure evicts a success: 5 of 10 = 50 % — trips.
        t.record(0, &fail(), base);
        assert_eq!(t.state(0, base), Some(CircuitState::Open { retry_in: 30 * SEC }));
        assert_eq!(t.snapshot(base)[0].trips, 1);
    }

    #[test]
    fn successes_never_trip() {
        let (t, base) = tracker(1);
        for _ in 0..9 {
            t.record(0, &fail(), base);
        }
        // 10 outcomes, 90 % failures, but the last one is a success: the breaker waits for a failure.
        t.record(0, &ok(), base);
        assert_eq!(t.state(0, base), Some(CircuitState::Closed));
        t.record(0, &fail(), base);
        assert!(matches!(t.state(0, base), Some(CircuitState::Open { .. })));
    }

    #[test]
    fn open_rejects_with_the_time_left() {
        let (t, base) = tracker(1);
        let at = base + 5 * SEC;
        trip(&t, 0, at);
        assert_eq!(t.admit(0, at), Admission::Rejected { retry_in: 30 * SEC });
        assert_eq!(t.admit(0, at + 10 * SEC), Admission::Rejected { retry_in: 20 * SEC });
        assert_eq!(t.admit(0, at + 30 * SEC - MS), Admission::Rejected { retry_in: MS });
        assert!(!t.admit(0, at).is_admitted());
        // Outcomes of attempts admitted before the trip change nothing.
        t.record(0, &ok(), at + SEC);
        assert_eq!(t.state(0, at + SEC), Some(CircuitState::Open { retry_in: 29 * SEC }));
    }

    #[test]
    fn half_open_admits_exactly_the_probe_limit() {
        let (t, base) = tracker(1);
        trip(&t, 0, base);
        let later = base + 30 * SEC;
        assert_eq!(t.state(0, later), Some(CircuitState::Open { retry_in: Duration::ZERO }));
        for _ in 0..3 {
            assert_eq!(t.admit(0, later), Admission::Probe);
        }
        assert_eq!(t.state(0, later), Some(CircuitState::HalfOpen));
        assert_eq!(t.admit(0, later), Admission::Rejected { retry_in: Duration::ZERO });
        assert_eq!(probes(&t, 0), 3);
    }

    #[test]
    fn probe_successes_close_the_circuit_with_a_fresh_window() {
        let (t, base) = tracker(1);
        trip(&t, 0, base);
        let later = base + 30 * SEC;
        for _ in 0..3 {
            assert_eq!(t.admit(0, later), Admission::Probe);
        }
        // An attempt admitted before the trip ends now: it decides nothing and frees no slot.
        t.record(0, &ok(), later);
        assert_eq!(probes(&t, 0), 3);
        t.record_probe(0, &ok(), later);
        t.record_probe(0, &ok(), later);
        assert_eq!(t.state(0, later), Some(CircuitState::HalfOpen));
        assert_eq!(probes(&t, 0), 1);
        t.record_probe(0, &ok(), later);
        assert_eq!(t.state(0, later), Some(CircuitState::Closed));
        assert_eq!(t.admit(0, later), Admission::Allowed);
        // The ring still holds 7 old failures, but the breaker counts only outcomes since the close.
        for _ in 0..9 {
            t.record(0, &fail(), later);
        }
        assert_eq!(t.state(0, later), Some(CircuitState::Closed));
        t.record(0, &fail(), later);
        // Back at the base cool-down after a close.
        assert_eq!(t.state(0, later), Some(CircuitState::Open { retry_in: 30 * SEC }));
    }

    #[test]
    fn probe_failure_reopens_with_exponential_capped_cool_down() {
        let (t, base) = tracker(1);
        trip(&t, 0, base);
        let mut now = base;
        for expected_secs in [60, 120, 240, 300, 300] {
            let prev = t.state(0, now);
            let Some(CircuitState::Open { retry_in }) = prev else { panic!("{prev:?}") };
            now += retry_in;
            assert_eq!(t.admit(0, now), Admission::Probe);
            assert_eq!(t.admit(0, now), Admission::Probe);
            t.record_probe(0, &ok(), now);
            t.record_probe(0, &fail(), now);
            assert_eq!(t.state(0, now), Some(CircuitState::Open { retry_in: expected_secs * SEC }));
            // The other probe's late outcome neither releases a slot nor closes anything.
            t.record_probe(0, &ok(), now);
            assert_eq!(probes(&t, 0), 0);
        }
        assert_eq!(t.snapshot(now)[0].trips, 6);
    }

    #[test]
    fn released_probes_free_slots() {
        let (t, base) = tracker(1);
        t.release_probe(0); // closed: no-op
        trip(&t, 0, base);
        t.release_probe(0); // open: no-op
        let later = base + 30 * SEC;
        for _ in 0..3 {
            assert_eq!(t.admit(0, later), Admission::Probe);
        }
        t.release_probe(0);
        assert_eq!(probes(&t, 0), 2);
        assert_eq!(t.admit(0, later), Admission::Probe);
        assert_eq!(t.admit(0, later), Admission::Rejected { retry_in: Duration::ZERO });
        // A caller-fault outcome gives its slot back without counting as a success or failure.
        t.record_probe(0, &Observation::failure(ErrorKind::ContextOverflow, MS), later);
        assert_eq!(probes(&t, 0), 2);
        assert_eq!(t.state(0, later), Some(CircuitState::HalfOpen));
        for _ in 0..5 {
            t.release_probe(0);
        }
        assert_eq!(probes(&t, 0), 0);
        assert_eq!(t.state(0, later), Some(CircuitState::HalfOpen));
    }

    #[test]
    fn caller_faults_do_not_count() {
        let counted = [
            ErrorKind::Timeout,
            ErrorKind::Connection,
            ErrorKind::RateLimited,
            ErrorKind::Server,
            ErrorKind::Auth,
            ErrorKind::ModelNotFound,
            ErrorKind::Decode,
            ErrorKind::MidStream,
        ];
        let ignored = [
            ErrorKind::InvalidRequest,
            ErrorKind::BadRequest,
            ErrorKind::ContextOverflow,
            ErrorKind::Config,
            ErrorKind::NoCandidate,
            ErrorKind::Routing,
            ErrorKind::ProviderMissing,
        ];
        assert!(ok().counts_toward_health());
        assert!(counted.iter().all(|&k| Observation::failure(k, MS).counts_toward_health()));
        assert!(ignored.iter().all(|&k| !Observation::failure(k, MS).counts_toward_health()));
        let e = Error::context_overflow("too long");
        assert!(!Observation::from_error(&e, MS).counts_toward_health());

        let (t, base) = tracker(1);
        for kind in ignored.iter().cycle().take(50) {
            t.record(0, &Observation::failure(*kind, MS), base);
        }
        assert_eq!(t.state(0, base), Some(CircuitState::Closed));
        let h = &t.snapshot(base)[0];
        assert_eq!((h.samples, h.consecutive_failures, h.success_rate), (0, 0, None));
    }

    #[test]
    fn averages_and_success_rate_follow_the_formulas() {
        let base = Instant::now();
        let c = HealthConfig::new().with_ewma_alpha(0.25).with_window(4).with_min_requests(4).with_min_samples(1);
        let t = HealthTracker::new(1, c, base).unwrap();
        assert_eq!(t.live(0), None);
        // 100 tokens in 2 s with a 1 s first token: 100 tokens/s.
        t.record(0, &Observation::success(2 * SEC).with_ttft(SEC).with_output_tokens(100), base);
        let live = t.live(0).unwrap();
        assert_eq!(live.latency, Some(2 * SEC));
        assert_eq!(live.ttft, Some(SEC));
        assert_eq!(live.tokens_per_sec, Some(100.0));
        assert_eq!((live.success_rate, live.samples), (1.0, 1));

        // Failures leave the averages alone; no ttft leaves ttft and speed alone.
        t.record(0, &Observation::failure(ErrorKind::Timeout, 60 * SEC), base);
        t.record(0, &Observation::success(SEC), base);
        let live = t.live(0).unwrap();
        assert_eq!(live.latency, Some(Duration::from_millis(1750))); // 0.25·1 s + 0.75·2 s
        assert_eq!(live.ttft, Some(SEC));
        assert_eq!(live.tokens_per_sec, Some(100.0));
        assert!((live.success_rate - 2.0 / 3.0).abs() < 1e-12);

        // 300 tokens in 1 s after a 0.5 s first token: 300 tokens/s → 0.25·300 + 0.75·100 = 150.
        t.record(0, &Observation::success(1500 * MS).with_ttft(500 * MS).with_output_tokens(300), base);
        let live = t.live(0).unwrap();
        assert!((live.tokens_per_sec.unwrap() - 150.0).abs() < 1e-9);
        assert_eq!(live.ttft, Some(Duration::from_millis(875))); // 0.25·0.5 s + 0.75·1 s
        assert_eq!(live.success_rate, 0.75); // S F S S

        // The window keeps the last 4: S F S S S S → S S S S.
        t.record(0, &ok(), base);
        assert_eq!(t.live(0).unwrap().success_rate, 0.75);
        t.record(0, &ok(), base);
        assert_eq!(t.live(0).unwrap().success_rate, 1.0);
        assert_eq!(t.live(0).unwrap().samples, 6);

        // Zero tokens, or latency not above ttft: no speed sample.
        assert_eq!(Observation::success(SEC).with_ttft(SEC).with_output_tokens(5).tokens_per_sec(), None);
        assert_eq!(Observation::success(SEC).with_ttft(MS).tokens_per_sec(), None);
        assert_eq!(Observation::success(SEC).with_output_tokens(5).tokens_per_sec(), None);
    }

    #[test]
    fn statistics_go_stale_without_outcomes() {
        let (t, base) = tracker(2);
        assert!(!t.is_stale(0, base + 3600 * SEC));
        for _ in 0..5 {
            t.record(0, &ok(), base);
        }
        // Caller-fault outcomes say nothing about the model and do not refresh it.
        t.record(0, &Observation::failure(ErrorKind::BadRequest, MS), base + 50 * SEC);
        assert!(!t.is_stale(0, base + 60 * SEC));
        assert!(t.is_stale(0, base + 60 * SEC + MS));
        // The statistics are still there; a new outcome makes them current again.
        assert_eq!(t.live(0).unwrap().samples, 5);
        t.record(0, &ok(), base + 90 * SEC);
        assert!(!t.is_stale(0, base + 100 * SEC));
        // An outcome recorded late, with an earlier time, does not move it back.
        t.record(0, &ok(), base + 10 * SEC);
        assert!(!t.is_stale(0, base + 150 * SEC));
        assert!(!t.is_stale(1, base + 3600 * SEC));
        assert!(!t.is_stale(9, base));
        let c = HealthConfig::new().with_stale_after(Duration::from_millis(0));
        assert!(c.validate().unwrap_err().to_string().contains("`stale_after_ms`"));
    }

    #[test]
    fn live_is_none_below_min_samples() {
        let (t, base) = tracker(1);
        for i in 0..5 {
            assert_eq!(t.live(0), None, "after {i}");
            t.record(0, &fail(), base);
        }
        let live = t.live(0).unwrap();
        assert_eq!((live.samples, live.success_rate, live.latency), (5, 0.0, None));
    }

    #[test]
    fn closest_to_recovery_picks_the_earliest() {
        let (t, base) = tracker(4);
        trip(&t, 0, base + 5 * SEC);
        trip(&t, 1, base);
        trip(&t, 2, base + 2 * SEC);
        let now = base + 10 * SEC;
        assert_eq!(t.closest_to_recovery([0, 1, 2], now), Some(1));
        assert_eq!(t.closest_to_recovery([0, 2, 99], now), Some(2));
        assert_eq!(t.closest_to_recovery(vec![0, 3], now), Some(3)); // closed counts as zero
        assert_eq!(t.closest_to_recovery([99], now), None);
        assert_eq!(t.closest_to_recovery([], now), None);
        // Ties go to the first candidate.
        assert_eq!(t.closest_to_recovery([2, 1, 0], base + 60 * SEC), Some(2));
    }

    #[test]
    fn unknown_index_never_panics() {
        let (t, base) = tracker(2);
        assert_eq!(t.admit(2, base), Admission::Rejected { retry_in: Duration::MAX });
        assert_eq!(t.admit(usize::MAX, base), Admission::Rejected { retry_in: Duration::MAX });
        t.record(7, &fail(), base);
        t.release_probe(7);
        assert_eq!(t.live(7), None);
        assert_eq!(t.state(7, base), None);
        assert_eq!(t.snapshot(base).len(), 2);
        assert_eq!((t.len(), t.is_empty()), (2, false));
        let empty = HealthTracker::new(0, HealthConfig::default(), base).unwrap();
        assert!(empty.is_empty() && empty.snapshot(base).is_empty());
    }

    #[test]
    fn time_before_base_counts_as_base() {
        let base = Instant::now() + 60 * SEC;
        let t = HealthTracker::new(1, config(), base).unwrap();
        trip(&t, 0, base - 10 * SEC);
        assert_eq!(t.admit(0, base - 10 * SEC), Admission::Rejected { retry_in: 30 * SEC });
    }

    #[test]
    fn snapshot_serializes_for_dashboards() {
        let (t, base) = tracker(2);
        trip(&t, 0, base);
        t.record(1, &Observation::success(250 * MS).with_ttft(50 * MS), base);
        let json = serde_json::to_value(t.snapshot(base + 1500 * MS)).unwrap();
        assert_eq!(json[0]["state"], serde_json::json!({ "state": "open", "retry_in_ms": 28_500.0 }));
        assert_eq!(json[0]["trips"], 1);
        assert_eq!(json[0]["consecutive_failures"], 10);
        assert_eq!(json[0]["success_rate"], 0.0);
        assert_eq!(json[1]["state"], serde_json::json!({ "state": "closed" }));
        assert_eq!(json[1]["latency_ms"], 250.0);
        assert_eq!(json[1]["ttft_ms"], 50.0);
        assert_eq!(json[1]["tokens_per_sec"], serde_json::Value::Null);
        assert_eq!(CircuitState::HalfOpen.as_str(), "half_open");
        assert!(format!("{t:?}").contains("models: 2"));
    }

    #[tokio::test(start_paused = true)]
    async fn works_under_a_paused_tokio_clock() {
        let now = || tokio::time::Instant::now().into_std();
        let t = HealthTracker::new(1, config(), now()).unwrap();
        trip(&t, 0, now());
        tokio::time::advance(29 * SEC).await;
        assert_eq!(t.admit(0, now()), Admission::Rejected { retry_in: SEC });
        tokio::time::advance(SEC).await;
        assert_eq!(t.admit(0, now()), Admission::Probe);
    }

    #[test]
    fn concurrent_records_add_up() {
        let base = Instant::now();
        // A breaker that never trips, so every admit is allowed.
        let c = HealthConfig::new().with_failure_rate(1.0).with_min_requests(50).with_min_samples(1);
        let t = HealthTracker::new(2, c, base).unwrap();
        std::thread::scope(|s| {
            for thread in 0..4 {
                let t = &t;
                s.spawn(move || {
                    for i in 0..1000 {
                        let model = i % 2;
                        assert!(t.admit(model, base).is_admitted());
                        let obs = if (i + thread) % 4 == 0 { fail() } else { ok() };
                        t.record(model, &obs, base);
                        assert!(t.live(model).is_some());
                    }
                });
            }
        });
        let snapshot = t.snapshot(base);
        assert_eq!(snapshot.iter().map(|h| h.samples).sum::<u64>(), 4000);
        assert!(snapshot.iter().all(|h| h.samples == 2000));
        assert!(snapshot.iter().all(|h| h.latency_ms.is_some_and(|ms| (ms - 100.0).abs() < 1e-6)));
        assert!(snapshot.iter().all(|h| h.success_rate.is_some_and(|r| (0.0..=1.0).contains(&r))));
    }

    #[test]
    fn concurrent_probes_never_exceed_the_limit() {
        use std::sync::atomic::AtomicU32;

        let (t, base) = tracker(1);
        trip(&t, 0, base);
        let later = base + 30 * SEC;
        let in_flight = AtomicU32::new(0);
        let granted = AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..5000 {
                        if t.admit(0, later) == Admission::Probe {
                            granted.fetch_add(1, Ordering::Relaxed);
                            let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            assert!(n <= 3, "{n} probes in flight");
                            assert!(probes(&t, 0) <= 3);
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            t.release_probe(0);
                        }
                    }
                });
            }
        });
        assert!(granted.load(Ordering::Relaxed) >= 3);
        assert_eq!(probes(&t, 0), 0);
        assert_eq!(t.state(0, later), Some(CircuitState::HalfOpen));

        // Probe successes from 4 threads close it exactly once.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100 {
                        match t.admit(0, later) {
                            Admission::Probe => t.record_probe(0, &ok(), later),
                            Admission::Allowed => t.record(0, &ok(), later),
                            Admission::Rejected { .. } => {}
                        }
                    }
                });
            }
        });
        assert_eq!(t.state(0, later), Some(CircuitState::Closed));
        assert_eq!(t.snapshot(later)[0].trips, 1);
    }
}
