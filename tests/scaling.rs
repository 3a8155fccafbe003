//! Many replicas on one Redis: routers that share budgets through a real `redis-server` on
//! 127.0.0.1 (started by `.ci/run`, or by the test itself), under concurrency, failures,
//! cancellation and a server that stops in the middle of a load test.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

mod meter;
mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use meter::{Meter, align, builder, close, no_retries, request, reservation};
use support::redis::Redis;
use switchyard::execute::AttemptReason;
use switchyard::execute::health::HealthConfig;
use switchyard::limits::{Budget, CallerRateLimit, LimitsConfig, OnStoreFailure, Scope, Window};
use switchyard::state::{RedisConfig, RedisStore, StateStore};
use switchyard::{ErrorKind, Response, Router};

/// A replica: its own connection to the shared server, namespace `ns`.
async fn replica(meter: &Meter, url: &str, ns: &str, limits: LimitsConfig) -> Router {
    let store = RedisStore::connect(url, RedisConfig::new().with_namespace(ns)).await.unwrap();
    router(meter, limits, Arc::new(store))
}

fn router(meter: &Meter, limits: LimitsConfig, store: Arc<dyn StateStore>) -> Router {
    // No circuit breaking: the failure phases must not take models out of rotation for the rest.
    let health = HealthConfig::new().with_window(1000).with_min_requests(1000);
    builder(meter, 1e9, no_retries(health)).limits(limits).state_store_arc(store).build().unwrap()
}

/// The worst-case reservation of `model`, with `meter` made to report the router's input estimate
/// so actual costs match reservations.
fn aligned_reservation(meter: &Meter, router: &Router, model: &str) -> f64 {
    align(meter, router);
    reservation(router, model)
}

async fn global_spent(router: &Router) -> f64 {
    router.budget_status(None, None).await.unwrap()[0].spent_usd
}

async fn connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// Leases still open in namespace `ns`.
async fn open_leases(url: &str, ns: &str) -> i64 {
    let mut con = connection(url).await;
    redis::cmd("ZCARD").arg(format!("{{{ns}}}:leases")).query_async(&mut con).await.unwrap()
}

fn cost(results: &[switchyard::Result<Response>]) -> f64 {
    results.iter().filter_map(|r| r.as_ref().ok()).map(|r| r.cost_usd).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn four_replicas_never_overspend_a_shared_budget_and_leak_no_reservation() {
    let redis = Redis::shared();
    let ns = redis.namespace("four_replicas");
    let meter = Meter::new();
    let probe = router(
        &meter,
        LimitsConfig::new().budget(Budget::new(Scope::Global, 1.0, Window::Day)),
        Arc::new(switchyard::state::MemoryStore::new()),
    );
    let dear = aligned_reservation(&meter, &probe, "dear");
    let cheap = aligned_reservation(&meter, &probe, "cheap");
    // Forty answers from `dear`, then room for a cheaper one.
    let cap = 40.5 * dear;
    let limits =
        LimitsConfig::new().budget(Budget::new(Scope::Global, cap, Window::Day)).store_timeout(Duration::from_secs(2));
    let mut routers = Vec::new();
    for _ in 0..4 {
        routers.push(replica(&meter, redis.url(), &ns, limits.clone()).await);
    }
    // Failed and cancelled requests first: if they left reservations behind, the load below could
    // not use the whole budget.
    for m in ["cheap", "mid", "dear"] {
        meter.knobs(m).fail.store(true, Ordering::SeqCst);
    }
    let calls = (0..64).map(|i| {
        let r = routers[i % 4].clone();
        async move { r.complete(request()).await }
    });
    let failed = futures::future::join_all(calls).await;
    // In flight, their reservations fill the budget: the last ones are refused before they start.
    for r in &failed {
        let e = r.as_ref().err().unwrap();
        assert!(matches!(e.kind(), ErrorKind::Server | ErrorKind::BudgetExceeded), "{e}");
    }
    assert!(failed.iter().any(|r| r.as_ref().is_err_and(|e| e.kind() == ErrorKind::Server)));
    for m in ["cheap", "mid", "dear"] {
        meter.knobs(m).fail.store(false, Ordering::SeqCst);
        meter.knobs(m).hang.store(true, Ordering::SeqCst);
    }
    let calls = (0..64).map(|i| {
        let r = routers[i % 4].clone();
        // Long enough for the admission's round trip even on a busy machine: a request cancelled
        // while its admission is in flight holds its reservation until the lease expires (see
        // docs/scaling.md); these are cancelled while their model hangs.
        async move { tokio::time::timeout(Duration::from_millis(500), r.complete(request())).await }
    });
    let cancelled = futures::future::join_all(calls).await;
    // Cancelled while their models hang, or refused because the hanging ones hold the budget.
    for r in &cancelled {
        assert!(r.as_ref().map_or(true, |r| r.as_ref().is_err_and(|e| e.kind() == ErrorKind::BudgetExceeded)));
    }
    assert!(cancelled.iter().filter(|r| r.is_err()).count() >= 32, "most were cancelled mid-flight");
    for m in ["cheap", "mid", "dear"] {
        meter.knobs(m).hang.store(false, Ordering::SeqCst);
    }
    *meter.knobs("dear").latency.lock().unwrap() = Duration::from_millis(5);

    // 256 concurrent requests over the four replicas.
    let calls = (0..256).map(|i| {
        let r = routers[i % 4].clone();
        async move { r.complete(request()).await }
    });
    let results = futures::future::join_all(calls).await;
    let served = results.iter().filter(|r| r.is_ok()).count();
    let refused = results.iter().filter(|r| r.as_ref().is_err_and(|e| e.kind() == ErrorKind::BudgetExceeded)).count();
    assert_eq!(served + refused, 256, "every request ends in an answer or BudgetExceeded");
    let spent = cost(&results);
    assert!(spent <= cap + dear, "spent {spent} > cap {cap} + one request's maximum {dear}");
    assert!(cap - spent < cheap + 1e-9, "the whole budget was usable: {spent} of {cap}");
    let downgraded = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|r| r.attempts[0].reason == AttemptReason::Downgrade)
        .count();
    assert!(downgraded > 0, "near the cap requests went to cheaper models");
    for r in &routers {
        r.flush_state().await.unwrap();
    }
    let recorded = global_spent(&routers[0]).await;
    assert!(close(recorded, spent), "redis says {recorded}, the answers cost {spent}");
    assert_eq!(open_leases(redis.url(), &ns).await, 0, "no reservation is left open");
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn an_idle_replicas_settlement_reaches_the_others_by_itself() {
    let redis = Redis::shared();
    let ns = redis.namespace("idle_settles");
    let meter = Meter::new();
    let limits = LimitsConfig::new().budget(Budget::new(Scope::Global, 10.0, Window::Day));
    let a = replica(&meter, redis.url(), &ns, limits.clone().flush_after(Duration::from_millis(50))).await;
    let b = replica(&meter, redis.url(), &ns, limits).await;
    // The answer reports no input tokens: it costs less than its reservation.
    meter.input_tokens.store(0, Ordering::SeqCst);
    let reserved = reservation(&a, "dear");
    let cost = a.complete(request()).await.unwrap().cost_usd;
    assert!(cost < reserved);
    // `a` has nothing more to do; its settlement still reaches the store, and `b` sees it.
    let started = Instant::now();
    loop {
        let seen = global_spent(&b).await;
        if close(seen, cost) {
            break;
        }
        assert!(close(seen, reserved), "{seen} is neither the reservation {reserved} nor the cost {cost}");
        assert!(started.elapsed() < Duration::from_secs(5), "the idle replica never settled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(open_leases(redis.url(), &ns).await, 0);
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn a_tenant_near_its_cap_is_downgraded_then_refused_across_replicas() {
    let redis = Redis::shared();
    let ns = redis.namespace("downgrade");
    let meter = Meter::new();
    let probe = router(
        &meter,
        LimitsConfig::new().budget(Budget::tenant("acme", 1.0, Window::Month)),
        Arc::new(switchyard::state::MemoryStore::new()),
    );
    let (dear, mid) = (aligned_reservation(&meter, &probe, "dear"), aligned_reservation(&meter, &probe, "mid"));
    let cap = dear + mid + mid / 2.0;
    let limits = LimitsConfig::new().budget(Budget::tenant("acme", cap, Window::Month));
    let a = replica(&meter, redis.url(), &ns, limits.clone()).await;
    let b = replica(&meter, redis.url(), &ns, limits).await;
    let first = a.complete(request()).await.unwrap();
    let second = b.complete(request()).await.unwrap();
    assert_eq!((first.model.as_str(), first.attempts[0].reason), ("dear", AttemptReason::Primary));
    assert_eq!((second.model.as_str(), second.attempts[0].reason), ("mid", AttemptReason::Downgrade));
    let third = a.complete(request()).await.unwrap();
    assert_eq!(third.model.as_str(), "cheap");
    // Keep going on the other replica until nothing fits.
    let mut n = 0;
    let error = loop {
        match b.complete(request()).await {
            Ok(r) => assert_eq!(r.model.as_str(), "cheap"),
            Err(e) => break e,
        }
        n += 1;
        assert!(n < 1000, "the budget never ran out");
    };
    assert_eq!(error.kind(), ErrorKind::BudgetExceeded, "{error}");
    assert_eq!(error.rejections().len(), 3);
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn one_round_trip_per_request() {
    // A server of its own: the server's command counts must not include other tests' calls.
    let redis = Redis::owned();
    let ns = redis.namespace("round_trips");
    let meter = Meter::new();
    let limits = LimitsConfig::new()
        .budget(Budget::new(Scope::Global, 1e6, Window::Day))
        .budget(Budget::new(Scope::Tenant, 1e6, Window::Sliding(Duration::from_secs(3600))))
        .rate_limit(
            switchyard::limits::RateLimit::new("dear").requests_per_minute(1_000_000).tokens_per_minute(1 << 40),
        )
        .caller_rate_limit(CallerRateLimit::new(Scope::Tenant).requests_per_minute(1_000_000))
        .caller_rate_limit(CallerRateLimit::new(Scope::Key).tokens_per_minute(1 << 40))
        .sticky(Duration::from_secs(60))
        // No timeouts on a busy machine: a timed-out call would be replayed later as another one.
        .store_timeout(Duration::from_secs(5))
        // Nor a background flush if a request stalls: under steady traffic none is sent, and a
        // slow machine must not make one.
        .flush_after(Duration::from_secs(60));
    let router = replica(&meter, redis.url(), &ns, limits).await;
    // The first call loads the script.
    router.complete(request().with_key("k")).await.unwrap();
    let mut con = connection(redis.url()).await;
    let before: String = redis::cmd("INFO").arg("commandstats").query_async(&mut con).await.unwrap();
    let n = 50;
    for _ in 0..n {
        router.complete(request().with_key("k")).await.unwrap();
    }
    let after: String = redis::cmd("INFO").arg("commandstats").query_async(&mut con).await.unwrap();
    // Commands the script runs inside count too; these are the ones a client sends.
    let calls = |info: &str, command: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(calls(&after, "evalsha") - calls(&before, "evalsha"), n, "one script call per request");
    for other in ["eval", "script|load", "ping", "hello", "select"] {
        assert_eq!(calls(&after, other), calls(&before, other), "{other} was called");
    }
}

/// Runs `n` requests over `routers`, `routers.len()` at a time, and says how long the slowest took.
async fn load(routers: &[Router], n: usize) -> (Vec<switchyard::Result<Response>>, Duration) {
    let mut results = Vec::new();
    let mut slowest = Duration::ZERO;
    for chunk in (0..n).collect::<Vec<_>>().chunks(routers.len()) {
        let calls = chunk.iter().map(|&i| {
            let r = routers[i % routers.len()].clone();
            async move {
                let started = Instant::now();
                let result = r.complete(request()).await;
                (result, started.elapsed())
            }
        });
        for (result, took) in futures::future::join_all(calls).await {
            slowest = slowest.max(took);
            results.push(result);
        }
    }
    (results, slowest)
}

/// Four replicas on `redis` with [`fault_limits`], `meter` reporting their input estimate.
async fn fault_replicas(meter: &Meter, redis: &Redis, ns: &str) -> Vec<Router> {
    let mut routers = Vec::new();
    for _ in 0..4 {
        routers.push(replica(meter, redis.url(), ns, fault_limits()).await);
    }
    align(meter, &routers[0]);
    routers
}

fn fault_limits() -> LimitsConfig {
    LimitsConfig::new()
        .budget(Budget::new(Scope::Global, 1000.0, Window::Day).on_store_failure(OnStoreFailure::Local))
        .store_timeout(Duration::from_millis(100))
        .store_retry(Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn a_frozen_server_mid_load_keeps_requests_flowing_and_its_state_catches_up() {
    let redis = Redis::owned();
    let ns = redis.namespace("frozen");
    let meter = Meter::new();
    let routers = fault_replicas(&meter, &redis, &ns).await;
    let (before, _) = load(&routers, 40).await;
    assert!(before.iter().all(Result::is_ok));

    redis.pause();
    let (during, slowest) = load(&routers, 40).await;
    assert!(during.iter().all(Result::is_ok), "local counters serve while the server is frozen");
    assert!(slowest < Duration::from_secs(2), "no request waits on the frozen server: {slowest:?}");
    redis.resume();

    tokio::time::sleep(Duration::from_millis(300)).await;
    let (after, _) = load(&routers, 40).await;
    assert!(after.iter().all(Result::is_ok));
    for r in &routers {
        r.flush_state().await.unwrap();
    }
    // The server kept its data; what was spent while it was frozen was added once it answered
    // again. Admissions that timed out but ran when the server woke hold their reservations until
    // their leases expire (deadline plus grace): compare with those leases' amounts left out.
    let spent = cost(&before) + cost(&during) + cost(&after);
    let recorded = global_spent(&routers[0]).await;
    let orphaned = orphaned_reservations(redis.url(), &ns).await;
    assert!(
        close(recorded - orphaned, spent),
        "redis says {recorded} (of which {orphaned} orphaned), answers cost {spent}"
    );
}

/// What leases still open in `ns` reserve, summed: admissions whose replies were lost.
async fn orphaned_reservations(url: &str, ns: &str) -> f64 {
    let mut con = connection(url).await;
    let leases: Vec<(String, String)> =
        redis::cmd("HGETALL").arg(format!("{{{ns}}}:lease")).query_async(&mut con).await.unwrap();
    leases
        .iter()
        .map(|(_, charges)| {
            let v: Vec<serde_json::Value> = serde_json::from_str(charges).unwrap();
            v.chunks(2).filter_map(|c| c.get(1)?.as_str()?.parse::<f64>().ok()).sum::<f64>()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server"]
async fn a_server_killed_mid_load_is_survived_and_rejoined_when_it_restarts() {
    let mut redis = Redis::owned();
    let ns = redis.namespace("killed");
    let meter = Meter::new();
    let routers = fault_replicas(&meter, &redis, &ns).await;
    let (before, _) = load(&routers, 20).await;
    assert!(before.iter().all(Result::is_ok));

    redis.stop();
    let (during, slowest) = load(&routers, 40).await;
    assert!(during.iter().all(Result::is_ok), "local counters serve while the server is down");
    assert!(slowest < Duration::from_secs(2), "no request waits on the dead server: {slowest:?}");
    // The local counters start from what the server last reported and keep counting.
    let local = global_spent(&routers[0]).await;
    assert!(local >= cost(&before) - 1e-9, "{local}");

    assert!(redis.start(), "the server starts again on its port");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (after, _) = load(&routers, 20).await;
    assert!(after.iter().all(Result::is_ok));
    for r in &routers {
        r.flush_state().await.unwrap();
    }
    // The restarted server kept nothing (no persistence): it now holds what was spent while it was
    // down, replayed by the replicas, plus everything since.
    let recorded = global_spent(&routers[0]).await;
    let expected = cost(&during) + cost(&after);
    assert!(close(recorded, expected), "redis says {recorded}, expected {expected}");
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn budget_exceeded_leaves_budget_status_readable() {
    let redis = Redis::shared();
    let ns = redis.namespace("status");
    let meter = Meter::new();
    let limits = LimitsConfig::new().budget(Budget::tenant("acme", 0.0, Window::Hour));
    let r = replica(&meter, redis.url(), &ns, limits).await;
    let error = r.complete(request()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BudgetExceeded);
    let status = r.budget_status(Some("acme"), None).await.unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!((status[0].spent_usd, status[0].remaining_usd()), (0.0, 0.0));
    assert!(status[0].resets_in <= Duration::from_secs(3600));
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn a_circuit_opened_on_one_replica_is_avoided_by_the_others() {
    let redis = Redis::shared();
    let ns = redis.namespace("circuits");
    let meter = Meter::new();
    let health = HealthConfig::new().with_min_requests(2).with_failure_rate(0.5).with_open_for(Duration::from_secs(30));
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let store = RedisStore::connect(redis.url(), RedisConfig::new().with_namespace(ns.clone())).await.unwrap();
        replicas.push(builder(&meter, 1e9, no_retries(health.clone())).state_store(store).build().unwrap());
    }
    meter.knobs("dear").fail.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let _ = replicas[0].complete(request()).await;
    }
    let calls = meter.calls("dear");
    // The next request on the first replica carries the news to Redis; the others read it there.
    replicas[0].flush_state().await.unwrap();
    for r in &replicas[1..] {
        let served = r.complete(request()).await.unwrap();
        assert_eq!(served.model.as_str(), "mid");
        let dear = r.health().into_iter().find(|h| h.model.as_ref().is_some_and(|m| m.as_str() == "dear")).unwrap();
        assert_eq!(dear.state.as_str(), "open");
    }
    assert_eq!(meter.calls("dear"), calls, "no other replica called the failing model");
}

#[tokio::test]
#[ignore = "needs redis-server"]
async fn replicas_add_up_experiment_statistics_and_bandit_evidence_in_redis() {
    use switchyard::{Bandit, Experiment, Feedback, Request, Utility};
    // A server of its own: its syncs read thousands of counters, which would hold up the shared
    // server's other tests (a single-threaded server runs one script at a time).
    let redis = Redis::owned();
    let ns = redis.namespace("learning");
    let meter = Meter::new();
    let mut replicas = Vec::new();
    let mut bandits = Vec::new();
    for seed in 0..3 {
        let bandit = Bandit::new().seed(seed).name("arm-bandit");
        let experiment = Experiment::builder("fleet")
            .arm("utility", 1.0, Utility::new())
            .arm("bandit", 1.0, bandit.clone())
            .build()
            .unwrap();
        let store = RedisStore::connect(redis.url(), RedisConfig::new().with_namespace(ns.clone())).await.unwrap();
        let limits = LimitsConfig::new().share_learning(Duration::from_secs(3600));
        replicas.push(
            builder(&meter, 1e9, no_retries(HealthConfig::new()))
                .policy(experiment)
                .limits(limits)
                .state_store(store)
                .build()
                .unwrap(),
        );
        bandits.push(bandit);
    }
    let mut to_bandit = 0;
    for (r, router) in replicas.iter().enumerate() {
        for i in 0..50 {
            let d = router.route(&Request::new("Name three prime numbers.").with_key(format!("r{r}u{i}"))).unwrap();
            to_bandit += u64::from(d.arm().unwrap().arm() == "bandit");
            let q = if d.model().as_str() == "cheap" { 0.3 } else { 0.9 };
            router.feedback(d.id(), Feedback::success().with_quality(q)).unwrap();
        }
    }
    // Each replica adds its sums; a second round reads everyone's.
    for _ in 0..2 {
        for router in &replicas {
            router.sync_learning().await.unwrap();
        }
    }
    let reports: Vec<_> = replicas.iter().map(|r| r.experiment("fleet").unwrap().report()).collect();
    for report in &reports {
        assert_eq!(report.arms.iter().map(|a| a.feedback).sum::<u64>(), 150, "{report}");
        assert_eq!(report.arms.iter().map(|a| a.routed).sum::<u64>(), 150, "{report}");
        assert_eq!(report.arms[1].feedback, to_bandit);
        assert_eq!(report.arms[0].quality, reports[0].arms[0].quality);
    }
    let outcomes = |b: &Bandit| b.snapshot().buckets.iter().flat_map(|k| &k.models).map(|m| m.outcomes).sum::<u64>();
    for bandit in &bandits {
        assert_eq!(outcomes(bandit), to_bandit, "every replica's bandit holds the fleet's evidence");
        assert_eq!(bandit.snapshot(), bandits[0].snapshot());
    }
    // Experiment statistics live in the namespace for 30 days after the last sync that listed
    // them.
    let mut con = connection(redis.url()).await;
    let key = format!("{{{ns}}}:c:exp:fleet:utility:feedback");
    let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut con).await.unwrap();
    assert!((30 * 86_400 - 60..=30 * 86_400).contains(&ttl), "{key}: {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs redis-server"]
async fn replicas_share_caller_rate_limits_exactly() {
    let redis = Redis::shared();
    let ns = redis.namespace("caller_limits");
    let meter = Meter::new();
    let key = "user:1 é";
    let limits = LimitsConfig::new()
        .caller_rate_limit(CallerRateLimit::new(Scope::Tenant).requests_per_minute(20))
        .caller_rate_limit(CallerRateLimit::new(Scope::Key).requests_per_minute(1000).tokens_per_minute(1 << 30))
        .store_timeout(Duration::from_secs(2))
        .flush_after(Duration::from_millis(20));
    let mut routers = Vec::new();
    for _ in 0..4 {
        routers.push(replica(&meter, redis.url(), &ns, limits.clone()).await);
    }
    *meter.knobs("dear").latency.lock().unwrap() = Duration::from_millis(2);
    // 64 at once over four replicas: exactly 20 are admitted, whichever replica they reach.
    let calls = (0..64).map(|i| {
        let r = routers[i % 4].clone();
        async move { r.complete(request().with_key(key)).await }
    });
    let results = futures::future::join_all(calls).await;
    let served = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(served, 20);
    assert_eq!(meter.calls("dear"), 20, "refused requests called no model");
    // Each answer says how much room its admission left: the tenant's 20 (tighter than the key's
    // 1000), counted atomically across replicas, so 19 down to 0, each once.
    let mut left: Vec<u64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| {
            let c = r.caller_limits.unwrap();
            // The key's tokens, read in the same atomic step: some of them used.
            let tokens = c.tokens.unwrap();
            assert!(tokens.limit == 1 << 30 && tokens.remaining < 1 << 30, "{c:?}");
            c.requests.map(|q| (q.limit, q.remaining)).unwrap()
        })
        .map(|(limit, remaining)| {
            assert_eq!(limit, 20);
            remaining
        })
        .collect();
    left.sort_unstable();
    assert_eq!(left, (0..20).collect::<Vec<u64>>());
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
        let retry = e.retry_after().unwrap();
        assert!(retry > Duration::ZERO && retry <= Duration::from_secs(120), "{retry:?}");
        assert!(!e.to_string().contains(key) && !format!("{e:?}").contains(key));
        // The refusal's own reading: the tenant's 20 used up.
        assert_eq!(e.caller_limits().and_then(|c| c.requests).map(|r| (r.limit, r.remaining)), Some((20, 0)), "{e:?}");
    }
    // Another tenant is counted apart, on any replica.
    assert!(routers[3].complete(request().with_tenant("globex").with_key("other")).await.is_ok());
    // The key's counters are stored under its escaped form, never the key itself; its tokens
    // settled to the actual usage of the 20 answers once every replica flushed.
    let mut con = connection(redis.url()).await;
    let started = Instant::now();
    let actual = 20.0 * f64::from(meter.input_tokens.load(Ordering::SeqCst) + meter::OUTPUT);
    loop {
        let names: Vec<String> =
            redis::cmd("KEYS").arg(format!("{{{ns}}}:c:caller:key:*")).query_async(&mut con).await.unwrap();
        assert!(names.iter().all(|n| !n.contains("user:1") && !n.contains('é')), "{names:?}");
        let ours = format!("{{{ns}}}:c:caller:key:user%3A1%20%C3%A9:tokens:");
        let tokens: Vec<&String> = names.iter().filter(|n| n.starts_with(&ours)).collect();
        assert!(!tokens.is_empty(), "{names:?}");
        let mut total = 0.0;
        for n in tokens {
            let v: String = redis::cmd("GET").arg(n).query_async(&mut con).await.unwrap();
            total += v.parse::<f64>().unwrap();
        }
        let open = open_leases(redis.url(), &ns).await;
        if close(total, actual) && open == 0 {
            break;
        }
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(5), "tokens at {total}, not the actual {actual}; {open} leases open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
