//! Budgets, rate limits, sticky sessions and the store failure policy, through the public API, with
//! the in-memory store (the Redis store runs the same scenarios in `tests/scaling.rs`).

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

mod meter;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use meter::{Flaky, Meter, align, answer_cost, builder, close, no_retries, request, reservation};
use switchyard::execute::AttemptReason;
use switchyard::execute::health::HealthConfig;
use switchyard::limits::{Budget, LimitsConfig, OnStoreFailure, RateLimit, Scope, Window};
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
    assert!(error.retry_after().is_some_and(|d| d <= Duration::from_secs(60)));
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

#[tokio::test]
async fn spending_during_an_outage_reaches_the_store_when_it_returns() {
    let meter = Meter::new();
    let store = Flaky::new();
    // Nothing is sent in the background: the test looks at the store before the next call.
    let limits = failure_limits(10.0, OnStoreFailure::Local).flush_after(Duration::ZERO);
    let r = router(&meter, limits, store.clone());
    align(&meter, &r);
    let before = r.complete(request()).await.unwrap().cost_usd;
    store.down.store(true, Ordering::SeqCst);
    let during: f64 = {
        let mut sum = 0.0;
        for _ in 0..3 {
            sum += r.complete(request()).await.unwrap().cost_usd;
        }
        sum
    };
    // The store does not know yet.
    store.down.store(false, Ordering::SeqCst);
    let status = r.budget_status(Some("acme"), None).await.unwrap();
    assert!(close(status[0].spent_usd, before), "{} != {before}", status[0].spent_usd);
    // The next request (or a flush) carries the outage's spending to it.
    r.flush_state().await.unwrap();
    let status = r.budget_status(Some("acme"), None).await.unwrap();
    assert!(close(status[0].spent_usd, before + during), "{} != {}", status[0].spent_usd, before + during);
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
    "
    );
    let config = RouterConfig::from_toml_str(&good).unwrap();
    assert_eq!(config.limits.budgets.len(), 2);
    assert_eq!(config.limits.budgets[1].window, Window::Sliding(Duration::from_secs(3600)));
    assert_eq!(config.limits.share_learning, Duration::from_secs(5));
    assert_eq!(config.limits.flush_after, Duration::from_millis(100));
    assert!(config.builder().is_ok());

    let bad = |limits: &str, needle: &str| {
        let text = format!("{base}\n{limits}");
        let error = RouterConfig::from_toml_str(&text).and_then(|c| c.builder().map(|_| ())).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
        assert!(error.to_string().contains(needle), "{error} does not mention {needle}");
    };
    bad("[[limits.budgets]]\nscope = \"global\"\nlimit_usd = -1.0\nwindow = \"day\"", "limits.budgets[0].limit_usd");
    bad("[[limits.budgets]]\nscope = \"global\"\nlimit_usd = 1.0\nwindow = \"fortnight\"", "fortnight");
    bad("[[limits.budgets]]\nscope = \"global\"\ntenant = \"acme\"\nlimit_usd = 1.0\nwindow = \"day\"", "tenant");
    bad("[[limits.rate_limits]]\nmodel = \"nope\"\nrequests_per_minute = 1", "unknown model `nope`");
    bad("[[limits.rate_limits]]\nmodel = \"cheap\"", "requests_per_minute");
    bad("[limits]\nstore_timeout_ms = 0", "store_timeout_ms");
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
