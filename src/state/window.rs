//! Windows that counters are kept over: calendar (UTC) or sliding.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// The window a limit counts over.
///
/// Calendar windows start at UTC boundaries: spending in a `day` window starts again from zero at
/// midnight UTC. A sliding window of length `w` counts the current bucket of length `w` in full and
/// the previous one in proportion to how much of it is still within `w` (the usual two-bucket
/// approximation: exact when spending is even over time, and never off by more than the previous
/// bucket's total).
///
/// In TOML: `"minute"`, `"hour"`, `"day"`, `"month"`, or `{ sliding_ms = 3600000 }`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The UTC minute.
    Minute,
    /// The UTC hour.
    Hour,
    /// The UTC day.
    Day,
    /// The UTC calendar month.
    Month,
    /// The last `Duration`, at millisecond resolution.
    Sliding(Duration),
}

/// Where a window puts a moment: its bucket, the previous bucket's weight (sliding windows only),
/// and how long the bucket's counter must live.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Slot {
    pub(crate) bucket: i64,
    /// `Some(w)`: the previous bucket counts with weight `w`.
    pub(crate) previous: Option<f64>,
    pub(crate) ttl: Duration,
    /// Time until the bucket ends (when a limit hit in it may let requests through again).
    pub(crate) resets_in: Duration,
}

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
/// The longest sliding window.
const MAX_SLIDING: Duration = Duration::from_secs(365 * 24 * 3600);
/// How long a calendar bucket's counter outlives its window (reconciliations may arrive late).
const GRACE: Duration = Duration::from_secs(3600);

impl Window {
    pub(crate) fn validate(&self, at: &str) -> Result<()> {
        match self {
            Self::Sliding(d) if d.as_millis() == 0 => {
                Err(Error::config(format!("{at}: a sliding window must be at least 1 ms long")))
            }
            // Its counters live two windows: beyond a year, their lifetime in ms would not be an
            // integer a store can take exactly.
            Self::Sliding(d) if *d > MAX_SLIDING => {
                Err(Error::config(format!("{at}: a sliding window may be at most a year (31536000000 ms) long")))
            }
            _ => Ok(()),
        }
    }

    /// A short name for keys (`day`, `s3600000`).
    pub(crate) fn tag(&self) -> String {
        match self {
            Self::Minute => "minute".into(),
            Self::Hour => "hour".into(),
            Self::Day => "day".into(),
            Self::Month => "month".into(),
            Self::Sliding(d) => format!("s{}", d.as_millis()),
        }
    }

    /// The slot of the moment `now_ms` (milliseconds since the Unix epoch).
    pub(crate) fn slot(&self, now_ms: u64) -> Slot {
        let fixed = |len: u64| Slot {
            bucket: (now_ms / len) as i64,
            previous: None,
            ttl: Duration::from_millis(len) + GRACE,
            resets_in: Duration::from_millis(len - now_ms % len),
        };
        match *self {
            Self::Minute => fixed(MINUTE),
            Self::Hour => fixed(HOUR),
            Self::Day => fixed(DAY),
            Self::Month => {
                let days = (now_ms / DAY) as i64;
                let (y, m, _) = civil_from_days(days);
                let next = if m == 12 { days_from_civil(y + 1, 1, 1) } else { days_from_civil(y, m + 1, 1) };
                let end_ms = u64::try_from(next).unwrap_or(0).saturating_mul(DAY);
                Slot {
                    bucket: y * 12 + i64::from(m) - 1,
                    previous: None,
                    ttl: Duration::from_millis(31 * DAY) + GRACE,
                    resets_in: Duration::from_millis(end_ms.saturating_sub(now_ms)),
                }
            }
            Self::Sliding(len) => {
                let len = u64::try_from(len.as_millis()).unwrap_or(u64::MAX).max(1);
                let into = now_ms % len;
                Slot {
                    bucket: (now_ms / len) as i64,
                    previous: Some(1.0 - into as f64 / len as f64),
                    // The bucket is read as the previous one during the next window.
                    ttl: Duration::from_millis(len.saturating_mul(2)) + Duration::from_secs(60),
                    resets_in: Duration::from_millis(len - into),
                }
            }
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Minute => f.write_str("minute"),
            Self::Hour => f.write_str("hour"),
            Self::Day => f.write_str("day"),
            Self::Month => f.write_str("month"),
            Self::Sliding(d) => write!(f, "sliding {} ms", d.as_millis()),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Name(String),
    Sliding { sliding_ms: u64 },
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Sliding(d) => {
                Repr::Sliding { sliding_ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX) }.serialize(s)
            }
            other => Repr::Name(other.to_string()).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Sliding { sliding_ms } => Ok(Self::Sliding(Duration::from_millis(sliding_ms))),
            Repr::Name(name) => match name.as_str() {
                "minute" => Ok(Self::Minute),
                "hour" => Ok(Self::Hour),
                "day" => Ok(Self::Day),
                "month" => Ok(Self::Month),
                _ => Err(serde::de::Error::custom(
                    "unknown window: expected minute, hour, day, month or { sliding_ms = N }",
                )),
            },
        }
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The day count since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2026-11-29 is day 20,786.
        assert_eq!(days_from_civil(2026, 11, 29), 20_786);
        assert_eq!(civil_from_days(20_786), (2026, 11, 29));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        for z in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn month_buckets_change_at_utc_month_boundaries() {
        let first_dec = u64::try_from(days_from_civil(2026, 12, 1)).unwrap() * DAY;
        let before = Window::Month.slot(first_dec - 1);
        let after = Window::Month.slot(first_dec);
        assert_eq!(after.bucket, before.bucket + 1);
        assert_eq!(before.resets_in, Duration::from_millis(1));
        assert_eq!(after.resets_in, Duration::from_millis(31 * DAY));
    }

    #[test]
    fn day_and_sliding_slots() {
        let t = 20_786 * DAY + 6 * HOUR;
        let day = Window::Day.slot(t);
        assert_eq!(day.bucket, 20_786);
        assert_eq!(day.resets_in, Duration::from_millis(18 * HOUR));
        let s = Window::Sliding(Duration::from_secs(60)).slot(t + 15_000);
        assert_eq!(s.previous, Some(0.75));
        assert_eq!(s.resets_in, Duration::from_secs(45));
    }

    #[test]
    fn windows_read_from_toml() {
        #[derive(Deserialize)]
        struct W {
            w: Window,
        }
        let w: W = toml::from_str("w = \"day\"").unwrap();
        assert_eq!(w.w, Window::Day);
        let w: W = toml::from_str("w = { sliding_ms = 5000 }").unwrap();
        assert_eq!(w.w, Window::Sliding(Duration::from_secs(5)));
        let err = toml::from_str::<W>("w = \"fortnight\"").err().unwrap().to_string();
        assert!(err.contains("fortnight"), "{err}");
    }
}
