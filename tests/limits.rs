//! Budgets, rate limits, sticky sessions and the store failure policy, through the public API, with
//! the in-memory store (the Redis store runs the same scenarios in `tests/scaling.rs`).

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

mod meter;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use meter::{Flaky, Meter, align, answer_cost, builder, close, no_retries, request, reservation};
use switchyard::execute::AttemptReason;
use switchyard::execute::health::HealthConfig;
use switchyard::limits::{Budget, CallerRateLimit, LimitsConfig, OnStoreFailure, RateLimit, Scope, Window};
use switchyard::policy::RejectReason;
use switchyard::state::{MemoryStore, StateStore};
use switchyard::{ErrorKind, Router, RouterConfig};

/// A router that prefers quality (`dear`, then `mid`, then `cheap`), without retries.
fn router(meter: &Meter, limits: LimitsConfig, store: Arc<dyn StateStore>) -> Router {
    builder(meter, 1e9, no_retries(HealthConfig::new())).limits(limits).state_store_arc(store).build().unwrap()
}

async fn spent(router: &Router) -> f64 {
    router.budget_status(Some("acme"), None).await.unwrap()[0].spent_usd
}

#[tokio::test]
async fn a_tenant_near_its_cap_is_downgraded_then_refused() {
    let meter = Meter::new();
    let probe = router(
        &meter,
        LimitsConfig::new().budget(Budget::tenant("acme", 1.0, Window::Day)),
        Arc::new(MemoryStore::new()),
    );
    let (dear, mid, cheap) = (reservation(&probe, "dear"), reservation(&probe, "mid"), reservation(&probe, "cheap"));
    // Room for two answers from `dear`, then one from `mid`, then two from `cheap`.
    let cap = 2.0 * dear + mid + 2.0 * cheap + cheap / 2.0;
    let limits = LimitsConfig::new().budget(Budget::tenant("acme", cap, Window::Day));
    let router = router(&meter, limits, Arc::new(MemoryStore::new()));
    align(&meter, &router);

    let mut served = Vec::new();
    let mut total = 0.0;
    let error = loop {
        match router.complete(request()).await {
            Ok(response) => {
                served.push((response.model.clone().to_string(), response.attempts[0].reason));
                total += response.cost_usd;
            }
            Err(e) => break e,
        }
        assert!(served.len() < 10, "the budget never ran out");
    };
    let expect = |m: &str, r| (m.to_owned(), r);
    assert_eq!(
        served,
        vec![
            expect("dear", AttemptReason::Primary),
            expect("dear", AttemptReason::Primary),
            expect("mid", AttemptReason::Downgrade),
            expect("cheap", AttemptReason::Downgrade),
            expect("cheap", AttemptReason::Downgrade),
        ]
    );
    assert_eq!(error.kind(), ErrorKind::BudgetExceeded, "{error}");
    assert!(error.attempts().is_empty(), "nothing was tried: {:?}", error.attempts());
    assert_eq!(error.rejections().len(), 3);
    for r in error.rejections() {
        assert!(matches!(r.reason(), RejectReason::Budget { .. }), "{r:?}");
    }
    assert!(error.to_string().contains("tenant `acme` budget"), "{error}");
    let retry = error.retry_after().unwrap();
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(86_400));
    // Reservations were reconciled to the actual costs, and the cap held.
    let spent = spent(&router).await;
    assert!(close(spent, total), "{spent} != {total}");
    assert!(spent <= cap);
    // Another tenant is not affected.
    let other = router.complete(request().with_tenant("globex")).await.unwrap();
    assert_eq!(other.model.as_str(), "dear");
}

#[tokio::test]
async fn fallbacks_are_checked_against_the_budget_too() {
    let meter = Meter::new();
    let probe = router(
        &meter,
        LimitsConfig::new().budget(Budget::new(Scope::Global, 1.0, Window::Day)),
        Arc::new(MemoryStore::new()),
    );
    let cheap = reservation(&probe, "cheap");
    // Cost-first ranking: cheap, mid, dear. The budget covers `cheap` only.
    let router = builder(&meter, 0.0, no_retries(HealthConfig::new()))
        .limits(LimitsConfig::new().budget(Budget::new(Scope::Global, cheap * 1.5, Window::Day)))
        .build()
        .unwrap();
    meter.knobs("cheap").fail.store(true, Ordering::SeqCst);
    let error = router.complete(request()).await.unwrap_err();
    // `cheap` failed; neither fallback fits the budget, so neither was called.
    assert_eq!(error.kind(), ErrorKind::Server, "{error}");
    assert_eq!(error.attempts().len(), 1);
    assert_eq!((meter.calls("mid"), meter.calls("dear")), (0, 0));
    let refused: Vec<&str> = error.rejections().iter().map(|r| r.model().as_str()).collect();
    assert_eq!(refused, ["mid", "dear"]);
    // The failed attempt cost nothing, and its reservation was given back.
    assert!(router.budget_status(None, None).await.unwrap()[0].spent_usd.abs() < 1e-12);
}

#[tokio::test]
async fn a_model_at_its_rate_limit_is_passed_over_before_it_says_429() {
    let meter = Meter::new();
    let limits = LimitsConfig::new()
        .rate_limit(RateLimit::new("dear").requests_per_minute(2))
        .rate_limit(RateLimit::new("mid").requests_per_minute(1))
        .rate_limit(RateLimit::new("cheap").tokens_per_minute(1));
    let router = router(&meter, limits, Arc::new(MemoryStore::new()));
    let mut served = Vec::new();
    for _ in 0..3 {
        let r = router.complete(request()).await.unwrap();
        served.push(r.model.to_string());
    }
    assert_eq!(served, ["dear", "dear", "mid"]);
    let error = router.complete(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited, "{error}");
    // When the sliding minute has room for one more on `dear` (the first to free it): after its
    // current bucket turns over and the requests in it fade to half, within two minutes.
    assert!(error.retry_after().is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(120)));
    let reasons: Vec<String> = error.rejections().iter().map(|r| r.reason().to_string()).collect();
    assert!(reasons.iter().any(|r| r.contains("2 requests per minute")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("1 tokens per minute")), "{reasons:?}");
    assert_eq!(meter.calls("cheap"), 0);
}

#[tokio::test]
async fn failed_and_cancelled_requests_leave_no_reservation_behind() {
    let meter = Meter::new();
    let store = Arc::new(MemoryStore::new());
    let limits = LimitsConfig::new().budget(Budget::tenant("acme", 100.0, Window::Day));
    let router = router(&meter, limits, store.clone());
    // Every model fails: each attempt's reservation is given back.
    for m in ["cheap", "mid", "dear"] {
        meter.knobs(m).fail.store(true, Ordering::SeqCst);
    }
    for _ in 0..8 {
        assert_eq!(router.complete(request()).await.unwrap_err().kind(), ErrorKind::Server);
    }
    assert!(spent(&router).await.abs() < 1e-12);
    // Every model hangs: 64 requests are cancelled mid-flight.
    for m in ["cheap", "mid", "dear"] {
        meter.knobs(m).fail.store(false, Ordering::SeqCst);
        meter.knobs(m).hang.store(true, Ordering::SeqCst);
    }
    let calls = (0..64).map(|_| tokio::time::timeout(Duration::from_millis(20), router.complete(request())));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_err), "every request was cancelled");
    assert!(meter.calls("dear") >= 64);
    assert!(spent(&router).await.abs() < 1e-12, "a cancelled request kept its reservation");
    assert_eq!(store.open_leases(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_routers_on_one_store_never_overspend_a_shared_budget() {
    let meter = Meter::new();
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let probe = router(&meter, LimitsConfig::new().budget(Budget::new(Scope::Global, 1.0, Window::Day)), store.clone());
    let dear = reservation(&probe, "dear");
    let cap = 40.0 * dear;
    let limits = LimitsConfig::new().budget(Budget::new(Scope::Global, cap, Window::Day));
    let routers: Vec<Router> = (0..4).map(|_| router(&meter, limits.clone(), store.clone())).collect();
    align(&meter, &routers[0]);
    *meter.knobs("dear").latency.lock().unwrap() = Duration::from_millis(5);
    let tasks = (0..256).map(|i| {
        let r = routers[i % 4].clone();
        async move { r.complete(request()).await }
    });
    let results = futures::future::join_all(tasks).await;
    let total: f64 = results.iter().filter_map(|r| r.as_ref().ok()).map(|r| r.cost_usd).sum();
    let served = results.iter().filter(|r| r.is_ok()).count();
    let refused = results.iter().filter(|r| r.as_ref().is_err_and(|e| e.kind() == ErrorKind::BudgetExceeded)).count();
    assert_eq!(served + refused, 256);
    assert!(total <= cap + 1e-9, "spent {total} > cap {cap}");
    let recorded = spent_global(&routers[0]).await;
    assert!(close(recorded, total), "{recorded} != {total}");
    // Nearly all of the budget was used: at most one `cheap` answer's worth is left over.
    assert!(cap - total < answer_cost("cheap", meter.input_tokens.load(Ordering::SeqCst)) + 1e-9, "{total} of {cap}");
}

async fn spent_global(router: &Router) -> f64 {
    router.budget_status(None, None).await.unwrap()[0].spent_usd
}

/// Two caller keys with the same FNV-1a-64 hash (found by a collision search): budgets were once
/// stored under that hash.
const FNV_TWINS: [&str; 2] = ["2d26cf67a14d0f52", "a5523897940691dd"];

#[tokio::test]
async fn caller_keys_with_the_same_fnv_hash_do_not_share_a_budget() {
    let fnv =
        |k: &str| k.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    assert_eq!(fnv(FNV_TWINS[0]), fnv(FNV_TWINS[1]));
    let meter = Meter::new();
    let probe = router(&meter, LimitsConfig::new(), Arc::new(MemoryStore::new()));
    // Room for one answer from `dear` per key.
    let cap = 1.5 * reservation(&probe, "dear");
    let limits = LimitsConfig::new().budget(Budget::new(Scope::Key, cap, Window::Day));
    let r = router(&meter, limits, Arc::new(MemoryStore::new()));
    align(&meter, &r);
    let first = r.complete(request().with_key(FNV_TWINS[0])).await.unwrap();
    assert_eq!(first.model.as_str(), "dear");
    let again = r.complete(request().with_key(FNV_TWINS[0])).await.unwrap();
    assert_eq!(again.model.as_str(), "mid", "the first key's budget is spent");
    // The twin key has a budget of its own.
    let twin = r.complete(request().with_key(FNV_TWINS[1])).await.unwrap();
    assert_eq!(twin.model.as_str(), "dear", "the twin key shared the first key's budget");
    // Keys and tenants past 1 KiB are refused, typed.
    let long = "k".repeat(1025);
    assert_eq!(r.complete(request().with_key(long.as_str())).await.unwrap_err().kind(), ErrorKind::InvalidRequest);
    assert_eq!(r.complete(request().with_tenant(long)).await.unwrap_err().kind(), ErrorKind::InvalidRequest);
}

#[tokio::test]
async fn a_full_memory_store_refuses_new_keys_and_keeps_serving_known_ones() {
    let meter = Meter::new();
    let limits = LimitsConfig::new().budget(Budget::new(Scope::Key, 1.0, Window::Day));
    // A calendar window: one counter per key.
    let r = router(&meter, limits, Arc::new(MemoryStore::with_max_entries(2)));
    for key in ["u1", "u2"] {
        r.complete(request().with_key(key)).await.unwrap();
    }
    let e = r.complete(request().with_key("u3")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Store, "{e}");
    assert!(e.to_string().contains("memory store is full"), "{e}");
    // Known keys are still counted in the store (it did not fall back to local counters).
    for key in ["u1", "u2", "u1"] {
        r.complete(request().with_key(key)).await.unwrap();
    }
    let spent = r.budget_status(Some("acme"), Some("u1")).await.unwrap()[0].spent_usd;
    assert!(spent > 0.0);
}

#[tokio::test]
async fn sticky_sessions_stay_on_their_model_while_it_is_healthy() {
    let meter = Meter::new();
    let limits = LimitsConfig::new().sticky(Duration::from_secs(600));
    let health = HealthConfig::new().with_min_requests(2).with_failure_rate(0.5);
    let router = builder(&meter, 1e9, no_retries(health)).limits(limits).build().unwrap();
    // The conversation starts on `mid` (the only model it allows at first).
    let first = router.complete(request().with_key("conv-1").with_allowed(["mid"])).await.unwrap();
    assert_eq!(first.model.as_str(), "mid");
    // It stays there although `dear` ranks first; another conversation goes to `dear`.
    let again = router.complete(request().with_key("conv-1")).await.unwrap();
    assert_eq!((again.model.as_str(), again.attempts[0].reason), ("mid", AttemptReason::Sticky));
    let other = router.complete(request().with_key("conv-2")).await.unwrap();
    assert_eq!(other.model.as_str(), "dear");
    // `mid` fails until its circuit opens: the conversation moves on.
    meter.knobs("mid").fail.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let _ = router.complete(request().with_key("conv-3").with_allowed(["mid"])).await;
    }
    let moved = router.complete(request().with_key("conv-1")).await.unwrap();
    assert_eq!(moved.model.as_str(), "dear");
}

fn failure_limits(cap: f64, mode: OnStoreFailure) -> LimitsConfig {
    LimitsConfig::new()
        .budget(Budget::tenant("acme", cap, Window::Day).on_store_failure(mode))
        .store_timeout(Duration::from_millis(30))
        .store_retry(Duration::ZERO)
}

#[tokio::test]
async fn while_the_store_is_down_each_limit_fails_as_configured() {
    let meter = Meter::new();
    let probe = router(&meter, failure_limits(1.0, OnStoreFailure::Local), Flaky::new());
    let dear = reservation(&probe, "dear");
    // One `dear` answer fits, a second does not.
    let cap = 1.5 * dear;

    // local: this replica keeps counting on its own and downgrades the second request.
    let store = Flaky::new();
    store.down.store(true, Ordering::SeqCst);
    let r = router(&meter, failure_limits(cap, OnStoreFailure::Local), store.clone());
    align(&meter, &r);
    let served: Vec<String> = [r.complete(request()).await.unwrap(), r.complete(request()).await.unwrap()]
        .map(|x| x.model.to_string())
        .into();
    assert_eq!(served, ["dear", "mid"]);

    // open: nothing is enforced while the store is down.
    let store = Flaky::new();
    store.down.store(true, Ordering::SeqCst);
    let r = router(&meter, failure_limits(cap, OnStoreFailure::Open), store.clone());
    for _ in 0..3 {
        assert_eq!(r.complete(request()).await.unwrap().model.as_str(), "dear");
    }

    // closed: requests the budget applies to are refused; others go through.
    let store = Flaky::new();
    store.down.store(true, Ordering::SeqCst);
    let r = router(&meter, failure_limits(cap, OnStoreFailure::Closed), store.clone());
    let error = r.complete(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Store, "{error}");
    assert!(error.rejections().iter().all(|x| *x.reason() == RejectReason::StoreUnavailable));
    assert!(r.complete(request().with_tenant("globex")).await.is_ok());
}

#[tokio::test(flavor = "current_thread")]
#[allow(clippy::disallowed_methods, reason = "the test needs another task on the runtime")]
async fn a_client_retrying_a_store_error_at_once_does_not_starve_other_tasks() {
    let meter = Meter::new();
    let store = Flaky::new();
    store.down.store(true, Ordering::SeqCst);
    // Closed: every request the budget applies to is refused with a store error, and for a minute the
    // store is not asked again, so the error comes back without waiting for anything.
    let limits = failure_limits(10.0, OnStoreFailure::Closed).store_retry(Duration::from_secs(60));
    let r = router(&meter, limits, store.clone());
    let progress = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let other = tokio::spawn({
        let progress = progress.clone();
        async move {
            loop {
                progress.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }
    });
    // A client that retries at once, on the same thread: the other task must still run.
    for _ in 0..100 {
        assert_eq!(r.complete(request()).await.unwrap_err().kind(), ErrorKind::Store);
    }
    assert!(progress.load(Ordering::SeqCst) > 0, "the retrying loop starved the other task");
    other.abort();
}

#[tokio::test]
async fn a_hung_store_costs_a_request_its_timeout_and_no_more() {
    let meter = Meter::new();
    let store = Flaky::new();
    store.hang.store(true, Ordering::SeqCst);
    let limits = failure_limits(10.0, OnStoreFailure::Local).store_retry(Duration::from_secs(60));
    let r = router(&meter, limits, store.clone());
    let started = std::time::Instant::now();
    assert!(r.complete(request()).await.is_ok());
    // The first request waited for the store's timeout; the next ones do not ask it again.
    for _ in 0..20 {
        assert!(r.complete(request()).await.is_ok());
    }
    assert!(started.elapsed() < Duration::from_millis(30 * 5), "{:?}", started.elapsed());
}

/// A router on a flaky store that sends nothing in the background (the tests look at the store
/// before the next call), one request served before an outage and three during it: the router,
/// the store, and what each part cost.
async fn an_outage(meter: &Meter) -> (Router, Arc<Flaky>, f64, f64) {
    let store = Flaky::new();
    let limits = failure_limits(10.0, OnStoreFailure::Local).flush_after(Duration::ZERO);
    let r = router(meter, limits, store.clone());
    align(meter, &r);
    let before = r.complete(request()).await.unwrap().cost_usd;
    store.down.store(true, Ordering::SeqCst);
    let mut during = 0.0;
    for _ in 0..3 {
        during += r.complete(request()).await.unwrap().cost_usd;
    }
    store.down.store(false, Ordering::SeqCst);
    (r, store, before, during)
}

#[tokio::test]
async fn spending_during_an_outage_reaches_the_store_when_it_returns() {
    let meter = Meter::new();
    let (r, _store, before, during) = an_outage(&meter).await;
    // The store does not know yet.
    let status = r.budget_status(Some("acme"), None).await.unwrap();
    assert!(close(status[0].spent_usd, before), "{} != {before}", status[0].spent_usd);
    // The next request (or a flush) carries the outage's spending to it.
    r.flush_state().await.unwrap();
    let status = r.budget_status(Some("acme"), None).await.unwrap();
    assert!(close(status[0].spent_usd, before + during), "{} != {}", status[0].spent_usd, before + during);
}

#[tokio::test]
async fn outage_spending_sent_again_after_a_lost_reply_counts_once() {
    let meter = Meter::new();
    let (r, store, before, during) = an_outage(&meter).await;
    // Back, but its first reply is lost: the spending was added, and the router cannot know.
    store.lose_replies.store(true, Ordering::SeqCst);
    assert!(r.flush_state().await.is_err());
    store.lose_replies.store(false, Ordering::SeqCst);
    // Sent again, with what was spent since, and added once.
    let after = r.complete(request()).await.unwrap().cost_usd;
    r.flush_state().await.unwrap();
    let want = before + during + after;
    let got = spent(&r).await;
    assert!(
        close(got, want),
        "{got} != {want} (the outage's spending counted {} times)",
        (got - before - after) / during
    );
}

#[tokio::test]
async fn a_reservation_whose_admission_reply_was_lost_is_given_back() {
    let meter = Meter::new();
    let store = Flaky::new();
    let limits = failure_limits(10.0, OnStoreFailure::Local).flush_after(Duration::ZERO);
    let r = router(&meter, limits, store.clone());
    align(&meter, &r);
    // The store runs the admission, reserving, and its reply is lost: the request is served on
    // local counters.
    store.lose_replies.store(true, Ordering::SeqCst);
    let served = r.complete(request()).await.unwrap().cost_usd;
    store.lose_replies.store(false, Ordering::SeqCst);
    r.flush_state().await.unwrap();
    // The store holds what was spent, not also the reservation nobody holds.
    let got = spent(&r).await;
    assert!(close(got, served), "{got} != {served}");
    assert_eq!(store.inner.open_leases(), 0);
}

#[tokio::test]
async fn a_request_whose_caller_goes_away_while_the_store_hangs_loses_nothing_queued() {
    let meter = Meter::new();
    let store = Flaky::new();
    let limits = failure_limits(10.0, OnStoreFailure::Local).flush_after(Duration::ZERO);
    let r = router(&meter, limits, store.clone());
    // A request served (it costs less than it reserved): its settlement waits for the next call to
    // the store.
    let served = r.complete(request()).await.unwrap().cost_usd;
    // The next call hangs, and its caller gives up before the store timeout.
    store.hang.store(true, Ordering::SeqCst);
    assert!(tokio::time::timeout(Duration::from_millis(5), r.complete(request())).await.is_err());
    store.hang.store(false, Ordering::SeqCst);
    // The settlement was kept: the store holds what was spent, not the reservation.
    r.flush_state().await.unwrap();
    let got = spent(&r).await;
    assert!(close(got, served), "{got} != {served}");
}

#[tokio::test]
async fn spending_while_failing_open_reaches_the_store_when_it_returns() {
    let meter = Meter::new();
    let store = Flaky::new();
    let limits = failure_limits(10.0, OnStoreFailure::Open)
        .rate_limit(RateLimit::new("dear").requests_per_minute(1000).on_store_failure(OnStoreFailure::Open))
        .flush_after(Duration::ZERO);
    let r = router(&meter, limits, store.clone());
    align(&meter, &r);
    let before = r.complete(request()).await.unwrap().cost_usd;
    store.down.store(true, Ordering::SeqCst);
    let mut during = 0.0;
    for _ in 0..3 {
        let answer = r.complete(request()).await.unwrap();
        assert_eq!(answer.model.as_str(), "dear", "open: nothing is enforced while the store is down");
        during += answer.cost_usd;
    }
    store.down.store(false, Ordering::SeqCst);
    assert!(close(spent(&r).await, before), "the store does not know yet");
    // The outage's spending (and requests) reach the store with the next call or a flush.
    r.flush_state().await.unwrap();
    assert!(close(spent(&r).await, before + during), "{} != {}", spent(&r).await, before + during);
}

#[tokio::test]
async fn an_idle_routers_settlements_reach_a_shared_store_by_themselves() {
    // A store that is not in process: settlements wait for the next admission, or `flush_after`.
    for after in [Duration::from_millis(40), Duration::ZERO] {
        let meter = Meter::new();
        let store = Flaky::new();
        let limits = LimitsConfig::new().budget(Budget::tenant("acme", 10.0, Window::Day)).flush_after(after);
        let r = router(&meter, limits, store.clone());
        // The answer reports fewer input tokens than the router reserved for.
        meter.input_tokens.store(0, Ordering::SeqCst);
        let reserved = reservation(&r, "dear");
        let cost = r.complete(request()).await.unwrap().cost_usd;
        assert!(close(cost, answer_cost("dear", 0)) && cost < reserved, "{cost} vs {reserved}");
        // Until the settlement arrives, the store holds the reservation.
        assert!(close(spent(&r).await, reserved), "{} != {reserved}", spent(&r).await);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let now = spent(&r).await;
        if after.is_zero() {
            assert!(close(now, reserved), "nothing sent without a request: {now} != {reserved}");
            r.flush_state().await.unwrap();
            assert!(close(spent(&r).await, cost));
        } else {
            assert!(close(now, cost), "settled in the background: {now} != {cost}");
        }
        assert_eq!(store.inner.open_leases(), 0);
    }
}

#[test]
fn limits_load_from_toml_and_bad_values_name_their_field() {
    let base = r#"
        [[models]]
        id = "cheap"
        provider = "meter"
        pricing = { input_per_mtok = 1.0, output_per_mtok = 2.0 }
        context_window = 128000
        max_output_tokens = 4096
    "#;
    let good = format!(
        "{base}
        [limits]
        store_timeout_ms = 20
        reserve = \"expected\"
        sticky = {{ ttl_ms = 60000 }}
        share_learning_ms = 5000
        flush_after_ms = 100
        [[limits.budgets]]
        scope = \"tenant\"
        tenant = \"acme\"
        limit_usd = 25.0
        window = \"month\"
        [[limits.budgets]]
        scope = \"global\"
        limit_usd = 100.0
        window = {{ sliding_ms = 3600000 }}
        on_store_failure = \"closed\"
        [[limits.rate_limits]]
        model = \"cheap\"
        requests_per_minute = 100
        [[limits.caller_rate_limits]]
        scope = \"tenant\"
        requests_per_minute = 60
        tokens_per_minute = 100000
        [[limits.caller_rate_limits]]
        scope = \"key\"
        tenant = \"acme\"
        tokens_per_minute = 5000
        on_store_failure = \"closed\"
    "
    );
    let config = RouterConfig::from_toml_str(&good).unwrap();
    assert_eq!(config.limits.budgets.len(), 2);
    assert_eq!(config.limits.budgets[1].window, Window::Sliding(Duration::from_secs(3600)));
    assert_eq!(config.limits.share_learning, Duration::from_secs(5));
    assert_eq!(config.limits.flush_after, Duration::from_millis(100));
    assert_eq!(
        config.limits.caller_rate_limits,
        [
            CallerRateLimit::new(Scope::Tenant).requests_per_minute(60).tokens_per_minute(100_000),
            CallerRateLimit::new(Scope::Key)
                .for_tenant("acme")
                .tokens_per_minute(5000)
                .on_store_failure(OnStoreFailure::Closed),
        ]
    );
    assert!(config.builder().is_ok());

    let bad = |limits: &str, needle: &str| {
        let text = format!("{base}\n{limits}");
        let error = RouterConfig::from_toml_str(&text).and_then(|c| c.builder().map(|_| ())).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
        assert!(error.to_string().contains(needle), "{error} does not mention {needle}");
    };
    bad("[[limits.budgets]]\nscope = \"global\"\nlimit_usd = -1.0\nwindow = \"day\"", "limits.budgets[0].limit_usd");
    bad(
        "[[limits.budgets]]\nscope = \"global\"\nlimit_usd = 1.0\nwindow = \"fortnight\"",
        "`limits.budgets[0].window`: unknown window",
    );
    bad("[[limits.budgets]]\nscope = \"global\"\nlimit_usd = 1.0\nwindow = { sliding_ms = 0 }", "at least 1 ms");
    bad(
        "[[limits.budgets]]\nscope = \"global\"\nlimit_usd = 1.0\nwindow = { sliding_ms = 100000000000000000 }",
        "at most a year",
    );
    bad("[[limits.budgets]]\nscope = \"global\"\ntenant = \"acme\"\nlimit_usd = 1.0\nwindow = \"day\"", "tenant");
    bad("[[limits.rate_limits]]\nmodel = \"nope\"\nrequests_per_minute = 1", "unknown model `nope`");
    bad("[[limits.rate_limits]]\nmodel = \"cheap\"", "requests_per_minute");
    bad("[limits]\nstore_timeout_ms = 0", "store_timeout_ms");
    let caller = "[[limits.caller_rate_limits]]";
    bad(&format!("{caller}\nscope = \"tenant\""), "limits.caller_rate_limits[0]: set requests_per_minute");
    bad(
        &format!("{caller}\nscope = \"key\"\nrequests_per_minute = 0"),
        "limits.caller_rate_limits[0].requests_per_minute",
    );
    bad(&format!("{caller}\nscope = \"key\"\ntokens_per_minute = 0"), "limits.caller_rate_limits[0].tokens_per_minute");
    bad(&format!("{caller}\nscope = \"key\"\ntokens_per_minute = -5"), "tokens_per_minute");
    bad(&format!("{caller}\nscope = \"key\"\ntokens_per_minute = nan"), "tokens_per_minute");
    bad(
        &format!("{caller}\nscope = \"global\"\ntenant = \"acme\"\nrequests_per_minute = 1"),
        "limits.caller_rate_limits[0].tenant",
    );
    bad(&format!("{caller}\nscope = \"tenant\"\nrpm = 1"), "rpm");
    bad(&format!("{caller}\nscope = \"team\"\nrequests_per_minute = 1"), "team");
}

#[tokio::test]
async fn a_circuit_opened_by_one_router_is_open_for_every_router_on_the_store() {
    let meter = Meter::new();
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let health = HealthConfig::new().with_min_requests(2).with_failure_rate(0.5).with_open_for(Duration::from_secs(30));
    let exec = no_retries(health);
    let replica =
        |store: Arc<dyn StateStore>| builder(&meter, 1e9, exec.clone()).state_store_arc(store).build().unwrap();
    let (a, b) = (replica(store.clone()), replica(store.clone()));
    // `dear` fails on `a` until its circuit opens there.
    meter.knobs("dear").fail.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let _ = a.complete(request()).await;
    }
    let open = |r: &Router| {
        r.health().into_iter().any(|h| h.model.is_some_and(|m| m.as_str() == "dear") && h.state.as_str() == "open")
    };
    assert!(open(&a));
    assert!(!open(&b), "`b` has not heard yet");
    let calls = meter.calls("dear");
    // `b` still ranks `dear` first, but the store says its circuit is open: `b` goes to `mid`
    // without calling `dear`, and opens the circuit on its side for the rest of the cool-down.
    let served = b.complete(request()).await.unwrap();
    assert_eq!((served.model.as_str(), served.attempts[0].reason), ("mid", AttemptReason::Fallback));
    assert_eq!(meter.calls("dear"), calls);
    assert!(open(&b));
    assert!(b.route(&request()).unwrap().model().as_str() != "dear");
    // Without sharing, `b` finds out for itself.
    let c = builder(&meter, 1e9, exec)
        .limits(LimitsConfig::new().share_circuits(false))
        .state_store_arc(store)
        .build()
        .unwrap();
    let _ = c.complete(request()).await;
    assert_eq!(meter.calls("dear"), calls + 1);
}

#[tokio::test]
async fn a_model_near_its_rate_limit_serves_only_when_nothing_else_can() {
    let meter = Meter::new();
    let limits = LimitsConfig::new().rate_limit(RateLimit::new("dear").requests_per_minute(10).prefer_below(0.5));
    let router = router(&meter, limits, Arc::new(MemoryStore::new()));
    let mut served = Vec::new();
    for _ in 0..6 {
        served.push(router.complete(request()).await.unwrap().model.to_string());
    }
    // Five requests reach half of `dear`'s limit; the sixth goes to `mid`.
    assert_eq!(served, ["dear", "dear", "dear", "dear", "dear", "mid"]);
    // With no other candidate, `dear` serves up to its limit itself, then refuses.
    let only_dear = || request().with_allowed(["dear"]);
    for _ in 0..5 {
        assert_eq!(router.complete(only_dear()).await.unwrap().model.as_str(), "dear");
    }
    let error = router.complete(only_dear()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited, "{error}");
    assert!(error.to_string().contains("10 requests per minute"), "{error}");
    // A share outside (0, 1] is a configuration error.
    let bad = LimitsConfig::new().rate_limit(RateLimit::new("dear").requests_per_minute(10).prefer_below(0.0));
    let error = Router::builder().catalog(meter::catalog()).limits(bad).build().unwrap_err();
    assert!(error.to_string().contains("prefer_below"), "{error}");
}

/// A router preferring `dear` with `limits` on a fresh in-process store.
fn callers(meter: &Meter, limits: LimitsConfig) -> Router {
    router(meter, limits, Arc::new(MemoryStore::new()))
}

fn calls(meter: &Meter) -> u64 {
    ["cheap", "mid", "dear"].iter().map(|m| meter.calls(m)).sum()
}

#[tokio::test]
async fn a_caller_over_its_requests_per_minute_is_refused_before_any_model_is_called() {
    let meter = Meter::new();
    let limits = LimitsConfig::new().caller_rate_limit(CallerRateLimit::new(Scope::Tenant).requests_per_minute(3));
    let router = callers(&meter, limits);
    for _ in 0..3 {
        assert_eq!(router.complete(request()).await.unwrap().model.as_str(), "dear");
    }
    let before = calls(&meter);
    let error = router.complete(request()).await.unwrap_err();
    assert_eq!(calls(&meter), before, "refused before any provider call");
    assert_eq!(error.kind(), ErrorKind::RateLimited, "{error}");
    // The sliding minute frees room for a fourth request within a minute and a bit (the
    // previous bucket fades, or the current one turns over and then fades).
    let retry = error.retry_after().unwrap();
    assert!(retry > Duration::ZERO && retry <= Duration::from_secs(120), "{retry:?}");
    assert!(error.attempts().is_empty());
    assert_eq!(error.rejections().len(), 3, "every candidate, alike");
    for r in error.rejections() {
        assert_eq!(
            *r.reason(),
            RejectReason::CallerRateLimit { limit: "per-tenant limit of 3 requests per minute".into() },
            "{r}"
        );
    }
    assert!(error.to_string().contains("the caller is at a rate limit"), "{error}");
    // Where the caller stands, read in the refused admission: no room left.
    let room = error.caller_limits().and_then(|c| c.requests).unwrap();
    assert_eq!((room.limit, room.remaining), (3, 0));
    assert!(room.resets_in >= retry && room.resets_in <= Duration::from_secs(120), "{room:?} {retry:?}");
    // Another tenant has its own count; a request without a tenant is not counted at all.
    assert!(router.complete(request().with_tenant("globex")).await.is_ok());
    for _ in 0..5 {
        let mut anonymous = request();
        anonymous.hints.tenant = None;
        assert!(router.complete(anonymous).await.is_ok());
    }
}

#[tokio::test]
async fn keys_and_tenants_are_counted_apart_and_a_named_tenant_has_its_own_limit() {
    let meter = Meter::new();
    let limits = LimitsConfig::new()
        .caller_rate_limit(CallerRateLimit::new(Scope::Key).requests_per_minute(2))
        .caller_rate_limit(CallerRateLimit::new(Scope::Tenant).requests_per_minute(5))
        .caller_rate_limit(CallerRateLimit::tenant("big").requests_per_minute(50));
    let router = callers(&meter, limits);
    let ok = |tenant: &'static str, key: &'static str| {
        let router = router.clone();
        async move { router.complete(request().with_tenant(tenant).with_key(key)).await.map(|_| ()) }
    };
    ok("acme", "k1").await.unwrap();
    ok("acme", "k1").await.unwrap();
    // `k1` is at its 2; `k2` of the same tenant is not.
    let error = ok("acme", "k1").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert!(error.to_string().contains("per-key limit of 2 requests per minute"), "{error}");
    assert!(!error.to_string().contains("k1") && !format!("{error:?}").contains("\"k1\""), "{error:?}");
    ok("acme", "k2").await.unwrap();
    ok("acme", "k2").await.unwrap();
    // `acme` has made 4 (the refused one did not count): one more, with a new key, then the
    // tenant's limit of 5 refuses a fresh key too.
    ok("acme", "k3").await.unwrap();
    let error = ok("acme", "k4").await.unwrap_err();
    assert!(error.to_string().contains("per-tenant limit of 5 requests per minute"), "{error}");
    // The same key under another tenant is counted by key: `k1` is still at its limit.
    assert_eq!(ok("globex", "k1").await.unwrap_err().kind(), ErrorKind::RateLimited);
    // `big` has 50 instead of 5, and each key still 2.
    for k in 0..10 {
        for _ in 0..2 {
            ok("big", ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"][k]).await.unwrap();
        }
    }
}

#[tokio::test]
async fn tokens_count_the_estimate_then_settle_to_the_actual_usage() {
    let meter = Meter::new();
    let router = callers(&meter, LimitsConfig::new());
    align(&meter, &router);
    let input = u64::from(meter.input_tokens.load(Ordering::SeqCst));
    // Asks for 2,000 tokens out and gets `OUTPUT` (500): the estimate is input + 2,000, the actual
    // input + 500.
    let long = || request().with_max_tokens(2000);
    let (estimate, actual) = (input + 2000, input + u64::from(meter::OUTPUT));
    // Room for one estimate on top of one actual answer, not two estimates.
    let tpm = actual + estimate + 10;
    let limits = LimitsConfig::new().caller_rate_limit(CallerRateLimit::tenant("acme").tokens_per_minute(tpm));
    let router = callers(&meter, limits);
    router.complete(long()).await.unwrap();
    // Settled to `actual`: a second estimate fits.
    router.complete(long()).await.unwrap();
    // 2 × actual + estimate > tpm.
    let error = router.complete(long()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited, "{error}");
    assert!(error.retry_after().is_some());
    assert!(error.to_string().contains(&format!("tenant `acme` limit of {tpm} tokens per minute")), "{error}");
    // A smaller request still fits in what is left.
    assert!(tpm - 2 * actual >= input + 100);
    router.complete(request().with_max_tokens(100)).await.unwrap();
    // A request that could never fit says so without a time to retry.
    let huge = LimitsConfig::new().caller_rate_limit(CallerRateLimit::tenant("acme").tokens_per_minute(100));
    let error = callers(&meter, huge).complete(long()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited, "{error}");
    assert_eq!(error.retry_after(), None);
}

#[tokio::test]
async fn a_request_counts_once_however_many_models_it_tries_but_all_its_tokens_count() {
    let meter = Meter::new();
    let limits = LimitsConfig::new().caller_rate_limit(CallerRateLimit::tenant("acme").requests_per_minute(2));
    let router = callers(&meter, limits);
    // `dear` fails: each request falls back to `mid`, two attempts, one request.
    meter.knobs("dear").fail.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        let r = router.complete(request()).await.unwrap();
        assert_eq!((r.model.as_str(), r.attempts.len()), ("mid", 2));
    }
    assert_eq!(router.complete(request()).await.unwrap_err().kind(), ErrorKind::RateLimited);

    // Tokens: the failed attempt reported none, the fallback's answer counts.
    let meter = Meter::new();
    let router = callers(&meter, LimitsConfig::new());
    align(&meter, &router);
    let actual = u64::from(meter.input_tokens.load(Ordering::SeqCst)) + u64::from(meter::OUTPUT);
    let estimate = u64::from(meter.input_tokens.load(Ordering::SeqCst)) + u64::from(meter::MAX_TOKENS);
    let limits = LimitsConfig::new()
        .caller_rate_limit(CallerRateLimit::tenant("acme").tokens_per_minute(2 * actual + estimate - 1));
    let router = callers(&meter, limits);
    meter.knobs("dear").fail.store(true, Ordering::SeqCst);
    router.complete(request()).await.unwrap();
    router.complete(request()).await.unwrap();
    assert_eq!(router.complete(request()).await.unwrap_err().kind(), ErrorKind::RateLimited);
}

#[tokio::test]
async fn streams_count_and_a_cancelled_request_still_counts_as_made() {
    let meter = Meter::new();
    let limits = LimitsConfig::new().caller_rate_limit(CallerRateLimit::tenant("acme").requests_per_minute(3));
    let store = Arc::new(MemoryStore::new());
    let router = router(&meter, limits, store.clone());
    for _ in 0..2 {
        let mut stream = router.stream(request()).await.unwrap();
        while let Some(event) = stream.next().await {
            event.unwrap();
        }
    }
    // The third hangs and is cancelled: it was made, and counts.
    meter.knobs("dear").hang.store(true, Ordering::SeqCst);
    let cancelled = tokio::time::timeout(Duration::from_millis(50), router.complete(request())).await;
    assert!(cancelled.is_err());
    meter.knobs("dear").hang.store(false, Ordering::SeqCst);
    let error = router.stream(request()).await.err().unwrap();
    assert_eq!(error.kind(), ErrorKind::RateLimited, "{error}");
    assert_eq!(store.open_leases(), 0);
}

#[tokio::test]
async fn a_caller_rate_limit_fails_as_configured_while_the_store_is_down() {
    let meter = Meter::new();
    let limits = |mode| {
        LimitsConfig::new()
            .caller_rate_limit(CallerRateLimit::tenant("acme").requests_per_minute(1).on_store_failure(mode))
            .store_timeout(Duration::from_millis(30))
            .store_retry(Duration::ZERO)
    };
    let down = || {
        let store = Flaky::new();
        store.down.store(true, Ordering::SeqCst);
        store
    };
    // local: counted on this replica's own counters.
    let r = router(&meter, limits(OnStoreFailure::Local), down());
    r.complete(request()).await.unwrap();
    assert_eq!(r.complete(request()).await.unwrap_err().kind(), ErrorKind::RateLimited);
    // open: not enforced.
    let r = router(&meter, limits(OnStoreFailure::Open), down());
    for _ in 0..3 {
        r.complete(request()).await.unwrap();
    }
    // closed: the tenant is refused, typed; others go through.
    let r = router(&meter, limits(OnStoreFailure::Closed), down());
    let error = r.complete(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Store, "{error}");
    assert!(r.complete(request().with_tenant("globex")).await.is_ok());
}

#[tokio::test]
async fn answers_and_streams_say_where_the_caller_stands_against_its_rate_limits() {
    let meter = Meter::new();
    let limits = LimitsConfig::new()
        .caller_rate_limit(CallerRateLimit::new(Scope::Tenant).requests_per_minute(4))
        .caller_rate_limit(CallerRateLimit::new(Scope::Key).requests_per_minute(10).tokens_per_minute(100_000))
        // One call a minute on `dear`: the second request is admitted by the full admission (to
        // `mid`), not the quick one.
        .rate_limit(RateLimit::new("dear").requests_per_minute(1).prefer_below(1.0));
    let router = callers(&meter, limits);
    let mut tokens_left = 100_000;
    for (expected, model) in [(3, "dear"), (2, "mid")] {
        let r = router.complete(request().with_key("k")).await.unwrap();
        assert_eq!(r.model.as_str(), model);
        let c = r.caller_limits.unwrap();
        // The tenant's 4 is tighter than the key's 10.
        let requests = c.requests.unwrap();
        assert_eq!((requests.limit, requests.remaining), (4, expected), "{c:?}");
        // Counted in this minute's bucket: it is all gone once this bucket has turned over and
        // then faded, between one and two minutes from now.
        assert!(requests.resets_in > Duration::from_secs(60), "{c:?}");
        assert!(requests.resets_in <= Duration::from_secs(120), "{c:?}");
        let tokens = c.tokens.unwrap();
        assert_eq!(tokens.limit, 100_000);
        assert!(tokens.remaining < tokens_left, "{c:?}");
        tokens_left = tokens.remaining;
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["caller_limits"]["requests"]["remaining"], expected);
    }
    let stream = router.stream(request().with_key("k")).await.unwrap();
    assert_eq!(stream.caller_limits().and_then(|c| c.requests).map(|r| r.remaining), Some(1));
    drop(stream);
    // No limit applies to a request without tenant or key.
    let mut anonymous = request();
    anonymous.hints.tenant = None;
    let r = router.complete(anonymous).await.unwrap();
    assert_eq!(r.caller_limits, None);
    assert!(serde_json::to_value(&r).unwrap().get("caller_limits").is_none());
}
