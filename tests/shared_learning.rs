//! Learned state shared by replicas through a state store (`LimitsConfig::share_learning`):
//! experiments' statistics and sequential tests over every replica's traffic, bandits' evidence,
//! syncs that fail and keep their sums, background syncs. In process here; on a real Redis in
//! `tests/scaling.rs`.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

mod fixtures;
mod meter;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fixtures::mini_frontier;
use meter::Flaky;
use switchyard::limits::LimitsConfig;
use switchyard::policy::experiment::{Conclusion, ExperimentReport, Metric, SequentialTest};
use switchyard::state::{MemoryStore, StateStore};
use switchyard::{Bandit, CheapestCapable, ErrorKind, Experiment, Feedback, Policy, Request, Router, Utility};

/// The same experiment on every replica: `control` and `treatment`, compared on quality, deciding
/// only after 60 outcomes per arm.
fn experiment() -> Experiment {
    Experiment::builder("shared")
        .arm("control", 1.0, Utility::new())
        .arm("treatment", 1.0, CheapestCapable::new(0.5))
        .sequential_test(SequentialTest::new().metric(Metric::Quality).min_samples(60))
        .build()
        .unwrap()
}

fn replica(policy: impl Policy + 'static, store: Arc<dyn StateStore>, every: Duration) -> Router {
    Router::builder()
        .catalog(mini_frontier())
        .policy(policy)
        .limits(LimitsConfig::new().share_learning(every))
        .state_store_arc(store)
        .build()
        .unwrap()
}

/// Routes `n` keyed requests (keys `prefix0`, `prefix1`, ...) and reports quality 0.9 for the
/// control and 0.2 for the treatment.
fn traffic(router: &Router, prefix: &str, n: usize) {
    for i in 0..n {
        let d = router.route(&Request::new("Summarise this paragraph.").with_key(format!("{prefix}{i}"))).unwrap();
        let q = if d.arm().unwrap().arm() == "control" { 0.9 } else { 0.2 };
        router.feedback(d.id(), Feedback::success().with_quality(q)).unwrap();
    }
}

fn feedback(report: &ExperimentReport) -> Vec<u64> {
    report.arms.iter().map(|a| a.feedback).collect()
}

fn routed(report: &ExperimentReport) -> u64 {
    report.arms.iter().map(|a| a.routed).sum()
}

#[tokio::test]
async fn experiment_statistics_and_tests_cover_every_replicas_traffic() {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let (a, b) = (
        replica(experiment(), store.clone(), Duration::from_secs(3600)),
        replica(experiment(), store, Duration::from_secs(3600)),
    );
    traffic(&a, "a", 80);
    traffic(&b, "b", 80);
    // Alone, neither replica has 60 outcomes per arm: no verdict.
    let alone = a.experiment("shared").unwrap().report();
    assert_eq!(feedback(&alone).iter().sum::<u64>(), 80);
    assert!(feedback(&alone).iter().all(|&n| n < 60), "{:?}", feedback(&alone));
    assert_eq!(alone.comparisons[0].verdict, Conclusion::Undecided);

    a.sync_learning().await.unwrap();
    b.sync_learning().await.unwrap();
    a.sync_learning().await.unwrap();
    let (ra, rb) = (a.experiment("shared").unwrap().report(), b.experiment("shared").unwrap().report());
    assert_eq!(feedback(&ra), feedback(&rb), "both replicas report the fleet");
    assert_eq!(feedback(&ra).iter().sum::<u64>(), 160);
    assert_eq!((routed(&ra), routed(&rb)), (160, 160));
    assert!(feedback(&ra).iter().all(|&n| n >= 60), "{:?}", feedback(&ra));
    // The pooled quality of each arm is the mean of both replicas' outcomes.
    let control = ra.arms[0].quality.unwrap();
    assert!((control.mean - 0.9).abs() < 1e-9 && control.n == ra.arms[0].feedback, "{control:?}");
    // The sequential test runs on the fleet's outcomes: the treatment is worse.
    assert_eq!(ra.comparisons[0].verdict, Conclusion::Worse, "{ra}");
    assert_eq!(rb.comparisons[0].verdict, Conclusion::Worse, "{rb}");

    // Outcomes after a sync count at once here, and everywhere after the next syncs; nothing twice.
    traffic(&a, "c", 10);
    assert_eq!(feedback(&a.experiment("shared").unwrap().report()).iter().sum::<u64>(), 170);
    assert_eq!(feedback(&b.experiment("shared").unwrap().report()).iter().sum::<u64>(), 160);
    a.sync_learning().await.unwrap();
    a.sync_learning().await.unwrap();
    b.sync_learning().await.unwrap();
    assert_eq!(feedback(&a.experiment("shared").unwrap().report()).iter().sum::<u64>(), 170);
    assert_eq!(feedback(&b.experiment("shared").unwrap().report()).iter().sum::<u64>(), 170);
}

#[tokio::test]
async fn a_bandit_learns_from_every_replicas_outcomes() {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let (bandit_a, bandit_b) = (Bandit::new().seed(1).name("pick"), Bandit::new().seed(2).name("pick"));
    let a = replica(bandit_a.clone(), store.clone(), Duration::from_secs(3600));
    let b = replica(bandit_b.clone(), store, Duration::from_secs(3600));
    for i in 0..300 {
        let d = a.route(&Request::new(format!("Write a haiku about the number {i}."))).unwrap();
        a.feedback(d.id(), Feedback::success().with_quality(if d.model().as_str() == "mini" { 0.1 } else { 0.8 }))
            .unwrap();
    }
    b.route(&Request::new("warm up")).unwrap();
    let evidence = |bandit: &Bandit| -> (u64, f64) {
        let cells = bandit.snapshot().buckets.into_iter().flat_map(|b| b.models);
        cells.fold((0, 0.0), |(n, s), m| (n + m.outcomes, s + m.successes + m.failures))
    };
    assert_eq!(evidence(&bandit_b).0, 0);
    a.sync_learning().await.unwrap();
    b.sync_learning().await.unwrap();
    let (learned_a, learned_b) = (evidence(&bandit_a), evidence(&bandit_b));
    assert_eq!(learned_a.0, 300);
    assert_eq!(learned_b.0, 300, "the other replica holds the same evidence");
    assert!((learned_a.1 - learned_b.1).abs() < 1e-6, "{learned_a:?} vs {learned_b:?}");
    assert_eq!(bandit_a.snapshot(), bandit_b.snapshot());
}

#[tokio::test]
async fn a_failed_sync_keeps_its_sums_for_the_next() {
    let flaky = Flaky::new();
    flaky.down.store(true, Ordering::SeqCst);
    let store: Arc<dyn StateStore> = flaky.clone();
    let (a, b) = (
        replica(experiment(), store.clone(), Duration::from_secs(3600)),
        replica(experiment(), store, Duration::from_secs(3600)),
    );
    traffic(&a, "a", 30);
    let error = a.sync_learning().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Store, "{error}");
    traffic(&a, "b", 20);
    assert_eq!(feedback(&a.experiment("shared").unwrap().report()).iter().sum::<u64>(), 50, "local statistics go on");
    flaky.down.store(false, Ordering::SeqCst);
    a.sync_learning().await.unwrap();
    b.sync_learning().await.unwrap();
    let report = b.experiment("shared").unwrap().report();
    assert_eq!(feedback(&report).iter().sum::<u64>(), 50, "every outcome counted once");
    assert_eq!(routed(&report), 50);
}

#[tokio::test]
async fn replicas_sync_by_themselves_once_the_interval_has_passed() {
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let every = Duration::from_millis(20);
    let (a, b) = (replica(experiment(), store.clone(), every), replica(experiment(), store, every));
    traffic(&a, "a", 40);
    let mut seen = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Requests and feedback start the background syncs.
        let d = b.route(&Request::new("ping").with_key("probe")).unwrap();
        b.feedback(d.id(), Feedback::success()).unwrap();
        let d = a.route(&Request::new("ping").with_key("probe")).unwrap();
        a.feedback(d.id(), Feedback::success()).unwrap();
        seen = feedback(&b.experiment("shared").unwrap().report()).iter().sum::<u64>();
        if seen >= 40 {
            break;
        }
    }
    assert!(seen >= 40, "replica b never saw replica a's outcomes ({seen})");
}

#[test]
fn two_learners_of_one_name_are_a_config_error() {
    let twins = Experiment::builder("twins").arm("a", 1.0, Bandit::new()).arm("b", 1.0, Bandit::new()).build().unwrap();
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let e = Router::builder()
        .catalog(mini_frontier())
        .policy(twins)
        .limits(LimitsConfig::new().share_learning(Duration::from_secs(1)))
        .state_store_arc(store)
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("bandit `bandit`"), "{e}");
    // Named apart, they share fine; without sharing, names do not matter.
    let named =
        Experiment::builder("twins").arm("a", 1.0, Bandit::new().name("x")).arm("b", 1.0, Bandit::new().name("y"));
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    replica(named.build().unwrap(), store, Duration::from_secs(1));
}
