//! The circuit breaker's states: the public [`CircuitState`] and [`Admission`], and the packed
//! word the tracker changes by compare-and-swap.

use std::time::Duration;

use serde::Serialize;

#[cfg(doc)]
use super::HealthTracker;

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
        /// admission turns the circuit half-open).
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
pub(crate) enum Admission {
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
    #[cfg(test)]
    pub(crate) fn is_admitted(&self) -> bool {
        matches!(self, Self::Allowed | Self::Probe)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Closed,
    Open,
    HalfOpen,
}

/// The circuit packed in one `u64`: bits 0–1 the phase, bits 2–17 the probes in flight (half-open
/// only), bits 32–63 a generation bumped on every record-side transition, so that a stale
/// compare-and-swap from an earlier open or half-open period always fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Circuit(pub(super) u64);

impl Circuit {
    const PROBES_SHIFT: u32 = 2;
    const PROBES_MASK: u64 = 0xFFFF;
    const EPOCH_SHIFT: u32 = 32;

    pub(super) fn new(phase: Phase, probes: u32, epoch: u32) -> Self {
        let phase = match phase {
            Phase::Closed => 0,
            Phase::Open => 1,
            Phase::HalfOpen => 2,
        };
        let probes = u64::from(probes) & Self::PROBES_MASK;
        Self(phase | probes << Self::PROBES_SHIFT | u64::from(epoch) << Self::EPOCH_SHIFT)
    }

    pub(super) fn phase(self) -> Phase {
        match self.0 & 0b11 {
            0 => Phase::Closed,
            1 => Phase::Open,
            _ => Phase::HalfOpen,
        }
    }

    pub(super) fn probes(self) -> u32 {
        ((self.0 >> Self::PROBES_SHIFT) & Self::PROBES_MASK) as u32
    }

    pub(super) fn epoch(self) -> u32 {
        (self.0 >> Self::EPOCH_SHIFT) as u32
    }

    pub(super) fn with_probes(self, probes: u32) -> Self {
        Self::new(self.phase(), probes, self.epoch())
    }
}
