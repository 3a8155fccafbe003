//! [`HealthTracker`]: admission, recording and the breaker's transitions, over one [`Slot`] per
//! model.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::circuit::{Circuit, Phase};
use super::stats::{Stats, duration_from_nanos, ewma, load_f64, nanos_f64, store_f64};
use super::{Admission, CircuitState, HealthConfig, LiveStats, ModelHealth, Observation};
use crate::catalog::ModelIndex;
use crate::error::Result;

#[cfg(doc)]
use crate::error::ErrorKind;

/// Health statistics and circuit breakers for the models of one catalog.
///
/// Built once per catalog and shared by reference (or in an `Arc`); every method takes `&self`.
///
/// An index outside `0..len()` is never admitted ([`Admission::Rejected`] with [`Duration::MAX`]), has
/// no statistics or state, and is ignored by [`record`](Self::record) and
/// [`release_probe`](Self::release_probe); no method panics.
pub(crate) struct HealthTracker {
    config: HealthConfig,
    pub(super) base: Instant,
    slots: Box<[Slot]>,
}

impl HealthTracker {
    /// A tracker for `models` models (indices `0..models`), all closed and without statistics, measuring
    /// time from `now`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] when `config` fails [`HealthConfig::validate`].
    pub(crate) fn new(models: usize, config: HealthConfig, now: Instant) -> Result<Self> {
        config.validate()?;
        let window = usize::try_from(config.window).unwrap_or(1);
        let slots = (0..models).map(|_| Slot::new(window)).collect();
        Ok(Self { config, base: now, slots })
    }

    /// Whether a request may be sent to model `index` now. Lock-free; no allocation.
    ///
    /// A closed circuit admits. An open one rejects until its cool-down has elapsed; the first call
    /// after that turns it half-open and takes a probe slot. A half-open circuit hands out probe slots
    /// up to [`half_open_probes`](HealthConfig::half_open_probes), then rejects with a zero `retry_in`.
    #[must_use = "a probe slot must be given back with `record_probe` or `release_probe`"]
    pub(crate) fn admit(&self, index: ModelIndex, now: Instant) -> Admission {
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
    pub(crate) fn open_for(&self, index: ModelIndex, duration: Duration, now: Instant) {
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
    pub(crate) fn record(&self, index: ModelIndex, observation: &Observation, now: Instant) {
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
    pub(crate) fn record_probe(&self, index: ModelIndex, observation: &Observation, now: Instant) {
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
    pub(crate) fn release_probe(&self, index: ModelIndex) {
        if let Some(slot) = self.slots.get(index) {
            slot.release_probe();
        }
    }

    /// Model `index`'s measured statistics, once it has [`min_samples`](HealthConfig::min_samples)
    /// counted outcomes; `None` before that and for an unknown index. Lock-free; no allocation.
    pub(crate) fn live(&self, index: ModelIndex) -> Option<LiveStats> {
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
    pub(crate) fn is_stale(&self, index: ModelIndex, now: Instant) -> bool {
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
    pub(crate) fn state(&self, index: ModelIndex, now: Instant) -> Option<CircuitState> {
        let slot = self.slots.get(index)?;
        Some(self.state_of(slot, Circuit(slot.circuit.load(Ordering::Acquire)), now))
    }

    /// Every model's health at `now`, in index order. Takes each model's lock in turn.
    pub(crate) fn snapshot(&self, now: Instant) -> Vec<ModelHealth> {
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
