//! How long a provider asks callers to wait: `Retry-After` and `retry-after-ms`.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `Retry-After` in seconds or as an HTTP date, or OpenAI's `retry-after-ms`, capped at a day.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let secs =
        |s: f64| (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(MAX_RETRY_AFTER.as_secs_f64())));
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()).and_then(|ms| secs(ms / 1000.0)) {
        return Some(ms);
    }
    let value = header("retry-after")?;
    if let Ok(s) = value.parse::<f64>() {
        return secs(s);
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

/// A protobuf `Duration` in its JSON form (`"37s"`, `"0.250s"`), as Google's `RetryInfo.retryDelay`
/// carries it, capped at a day.
pub(crate) fn google_duration(text: &str) -> Option<Duration> {
    let secs = text.trim().strip_suffix('s')?.parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER.as_secs_f64())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after(&headers(&[("retry-after", "7")])), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers(&[("retry-after", " 1.5 ")])), Some(Duration::from_millis(1500)));
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2"), ("retry-after-ms", "250")])),
            Some(Duration::from_millis(250))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "-3")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "1e300")])), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&headers(&[("retry-after", "NaN")])), None);
        let past = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH);
        assert_eq!(retry_after(&headers(&[("retry-after", &past)])), Some(Duration::ZERO));
        let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let d = retry_after(&headers(&[("retry-after", &future)])).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn google_durations() {
        assert_eq!(google_duration("37s"), Some(Duration::from_secs(37)));
        assert_eq!(google_duration(" 0.250s"), Some(Duration::from_millis(250)));
        assert_eq!(google_duration("1e9s"), Some(MAX_RETRY_AFTER));
        for bad in ["37", "-1s", "NaNs", "s", "", "soon s"] {
            assert_eq!(google_duration(bad), None, "{bad}");
        }
    }
}
