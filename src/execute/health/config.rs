//! [`HealthConfig`]: the parameters of the statistics and the breaker, their defaults and validation.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

#[cfg(doc)]
use super::HealthTracker;

/// Parameters of the health statistics and the circuit breaker.
///
/// Every field has a default, so a config file needs to name only what it changes:
///
/// ```toml
/// failure_rate = 0.3
/// open_for_ms = 10000
/// ```
///
/// Durations are whole milliseconds (`*_ms`). Building a router checks every field.
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
    /// How many counted outcomes a model needs before the router routes on its measured statistics
    /// (at least 1). Default 20.
    pub min_samples: u32,
    /// The failure share in `(0, 1]` of the window at or above which the circuit trips. Default 0.5.
    pub failure_rate: f64,
    /// How many outcomes, counted since the circuit last closed, the window must hold before the
    /// circuit can trip, in `1..=window`. Default 10.
    pub min_requests: u32,
    /// Cool-down after the first trip (at least 1 ms). Default 30 s.
    #[serde(rename = "open_for_ms", with = "crate::types::millis")]
    pub open_for: Duration,
    /// Upper bound of the cool-down, which doubles on each consecutive re-open (at least `open_for`).
    /// Default 5 min.
    #[serde(rename = "max_open_for_ms", with = "crate::types::millis")]
    pub max_open_for: Duration,
    /// How many probe requests a half-open circuit admits at once, and how many probe successes close
    /// it, in `1..=`[`MAX_HALF_OPEN_PROBES`](Self::MAX_HALF_OPEN_PROBES). Default 3.
    pub half_open_probes: u32,
    /// How long a model's live statistics stay current without a new counted outcome (at least 1 ms).
    /// Default 60 s.
    ///
    /// A model that lost its traffic to a better one gets no new outcomes, so its statistics would
    /// never improve. Once they are this old, they count as stale and the router
    /// decides on the catalog's profile again: the model gets traffic back and is measured anew. The
    /// cost is that a model still slow or failing gets some requests again every `stale_after`.
    #[serde(rename = "stale_after_ms", with = "crate::types::millis")]
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
    pub(crate) fn validate(&self) -> Result<()> {
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
    pub(super) fn cool_down_nanos(&self, level: u32) -> u64 {
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::execute::health::HealthTracker;

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
}
