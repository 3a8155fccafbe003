//! Tests of the whole tracker: admission, recording, the breaker's transitions, the statistics,
//! time and concurrency.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::*;
use crate::error::{Error, ErrorKind};

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
fn unknown_index_never_panics() {
    let (t, base) = tracker(2);
    assert_eq!(t.admit(2, base), Admission::Rejected { retry_in: Duration::MAX });
    assert_eq!(t.admit(usize::MAX, base), Admission::Rejected { retry_in: Duration::MAX });
    t.record(7, &fail(), base);
    t.release_probe(7);
    assert_eq!(t.live(7), None);
    assert_eq!(t.state(7, base), None);
    assert_eq!(t.snapshot(base).len(), 2);
    let empty = HealthTracker::new(0, HealthConfig::default(), base).unwrap();
    assert!(empty.snapshot(base).is_empty());
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

#[test]
fn two_failures_open_the_circuit_and_the_cool_down_lets_a_probe_through() {
    let start = Instant::now();
    let config = HealthConfig::new().with_min_requests(2).with_open_for(SEC);
    let tracker = HealthTracker::new(2, config, start).unwrap();
    let failed = Observation::failure(ErrorKind::Server, 40 * MS);
    tracker.record(0, &failed, start);
    tracker.record(0, &failed, start);
    assert_eq!(tracker.admit(0, start), Admission::Rejected { retry_in: SEC });
    assert_eq!(tracker.admit(1, start), Admission::Allowed);
    assert_eq!(tracker.admit(0, start + SEC), Admission::Probe);
}

#[test]
fn a_success_with_its_first_token_and_tokens_counts_toward_health() {
    let ok = Observation::success(1800 * MS).with_ttft(300 * MS).with_output_tokens(150);
    assert!(ok.counts_toward_health());
}
