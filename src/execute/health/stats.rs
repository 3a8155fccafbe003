//! Measured statistics: the public [`LiveStats`] and [`ModelHealth`], the writer-side [`Stats`] and
//! its [`Window`] of outcomes, the moving average, and the helpers that publish `f64`s in atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::CircuitState;
use crate::catalog::{ModelId, ModelIndex};

#[cfg(doc)]
use super::{HealthConfig, HealthTracker};

/// A model's measured statistics, as the router routes on them.
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

/// One model's health, for dashboards: [`Router::health`](crate::Router::health).
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

pub(super) fn store_f64(cell: &AtomicU64, value: Option<f64>) {
    cell.store(value.unwrap_or(f64::NAN).to_bits(), Ordering::Relaxed);
}

pub(super) fn load_f64(cell: &AtomicU64) -> Option<f64> {
    let value = f64::from_bits(cell.load(Ordering::Relaxed));
    (!value.is_nan()).then_some(value)
}

pub(super) fn nanos_f64(d: Duration) -> f64 {
    d.as_nanos() as f64
}

pub(super) fn duration_from_nanos(ns: f64) -> Duration {
    // `as` saturates: negative and NaN become 0, huge values u64::MAX.
    Duration::from_nanos(ns as u64)
}

pub(super) fn ewma(previous: Option<f64>, x: f64, alpha: f64) -> f64 {
    match previous {
        None => x,
        Some(p) => alpha * x + (1.0 - alpha) * p,
    }
}

/// The writer side of one model, behind its mutex.
pub(super) struct Stats {
    pub(super) window: Window,
    pub(super) latency_ns: Option<f64>,
    pub(super) ttft_ns: Option<f64>,
    pub(super) tps: Option<f64>,
    pub(super) samples: u64,
    pub(super) consecutive_failures: u32,
    pub(super) trips: u32,
    /// Consecutive re-opens since the circuit last closed: the cool-down's exponent.
    pub(super) reopen_level: u32,
    /// Probe successes in the current half-open period.
    pub(super) probe_successes: u32,
}

impl Stats {
    pub(super) fn new(window: usize) -> Self {
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
pub(super) struct Window {
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

    pub(super) fn push(&mut self, failed: bool) {
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

    pub(super) fn success_rate(&self) -> Option<f64> {
        (self.len > 0).then(|| (self.len - self.failures.min(self.len)) as f64 / self.len as f64)
    }

    /// Outcomes and failures the breaker sees: those in the ring recorded since the last close.
    pub(super) fn breaker_counts(&self) -> (usize, usize) {
        let since = usize::try_from(self.pushed.saturating_sub(self.breaker_from)).unwrap_or(usize::MAX);
        (since.min(self.len), self.breaker_failures)
    }

    pub(super) fn reset_breaker(&mut self) {
        self.breaker_from = self.pushed;
        self.breaker_failures = 0;
    }
}
