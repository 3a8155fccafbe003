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

mod circuit;
mod config;
mod observation;
mod stats;
mod tracker;

#[cfg(test)]
mod tests;

pub use self::circuit::{Admission, CircuitState};
pub use self::config::HealthConfig;
pub use self::observation::{CallOutcome, Observation};
pub use self::stats::{LiveStats, ModelHealth};
pub use self::tracker::HealthTracker;

#[cfg(doc)]
use crate::catalog::ModelIndex;
