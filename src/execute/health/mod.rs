//! Per-model health: live latency and success statistics, and a circuit breaker.
//!
//! Users configure it ([`HealthConfig`], `[execution.health]` in a config file) and read it
//! ([`Router::health`](crate::Router::health): a [`ModelHealth`] per model, with its
//! [`CircuitState`] and [`LiveStats`]); the tracker itself is internal. For every request the
//! router
//!
//! 1. admits every candidate before it ranks them: a model whose circuit is open is skipped, and a
//!    model recovering from an outage receives only a few probe requests;
//! 2. reads each model's measured latency, time to first token, decoding speed and success rate,
//!    once it has [`HealthConfig::min_samples`] outcomes, unless they are stale (no outcome for
//!    [`stale_after`](HealthConfig::stale_after));
//! 3. records every attempt's outcome, or gives a probe slot back when the attempt was cancelled;
//! 4. when every capable model's circuit is open, tries the one closest to recovery rather than
//!    fail.
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
//! 3. **Half-open**: once the cool-down has elapsed, up to
//!    [`half_open_probes`](HealthConfig::half_open_probes) concurrent probe requests are let through.
//!    That many probe successes close the circuit (and start a fresh breaker window, and the cool-down
//!    back at its base); a single probe failure re-opens it with a doubled cool-down.
//!
//! Failures that are the caller's fault (an invalid or malformed request, a context overflow) or that
//! happened before the model was reached say nothing about the model and are not counted.
//!
//! # Concurrency
//!
//! Admission, reading the live statistics or a circuit's state, and giving a probe slot back are
//! lock-free and never allocate: the circuit (state, probes in flight and a generation counter) is one
//! packed `AtomicU64` that changes only by compare-and-swap, and the live statistics are published as
//! `f64` bits in atomics. Recording an outcome takes a per-model mutex for the ring and the averages,
//! publishes the results, and releases it before returning. A snapshot takes each model's mutex in
//! turn. The live statistics are published field by field, so a reader racing a writer may see one
//! field from the newer outcome and another from the older one.
//!
//! # Time
//!
//! The tracker takes no clock readings: the router passes the time to every call, and the tracker
//! measures it as nanoseconds since the router was built (saturating). On a paused tokio clock it
//! follows the paused clock.

mod circuit;
mod config;
mod observation;
mod stats;
mod tracker;

#[cfg(test)]
mod tests;

pub(crate) use self::circuit::Admission;
pub use self::circuit::CircuitState;
pub use self::config::HealthConfig;
pub(crate) use self::observation::Observation;
pub use self::stats::{LiveStats, ModelHealth};
pub(crate) use self::tracker::HealthTracker;
