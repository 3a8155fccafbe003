//! Criterion benchmarks of what budgets and rate limits add to a request.
//!
//! - `limits/complete_unlimited/11`: [`Router::complete`] without limits: the baseline.
//! - `limits/complete_memory_budgets/11`: the same router with a global and a per-tenant daily
//!   budget kept in a [`MemoryStore`]: every request is admitted (reserving its worst-case cost on
//!   both counters) and settled.
//! - `limits/overhead_memory_budgets/11`: the difference itself, paired: each iteration runs the
//!   same request through both routers and counts only the difference, so the machine's drifting
//!   speed stays out of it.
//! - `limits/*_memory_budgets_rates/11`: the same with a requests- and tokens-per-minute limit on
//!   every one of the 11 models as well (46 counters per admission).
//! - With feature `redis` and a server (`SWITCHYARD_REDIS_URL`, or a `redis-server` on the `PATH`
//!   that the benchmark starts on a free loopback port): `limits/complete_redis/11` and
//!   `limits/overhead_redis/11`, the two budgets kept in a `RedisStore`: one script call per
//!   request, the settlement of the previous request riding along with it; and `limits/redis_ping`,
//!   a bare `PING` round trip to the same server.
//!
//! Budgets are large enough never to refuse. Requests are the 64 prompts of about 1 KB of
//! `benches/route.rs`, with tenant `acme`; the simulated provider answers at once.
//!
//! ```text
//! cargo bench --bench limits -- --warm-up-time 1 --measurement-time 3
//! cargo bench --bench limits --features redis
//! ```

mod common;
#[cfg(feature = "redis")]
#[path = "../tests/support/redis.rs"]
#[allow(dead_code, unreachable_pub, reason = "the test helper has more than the benchmark uses")]
mod redis_server;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use switchyard::classify::{DifficultyClassifier, IntentClassifier};
use switchyard::limits::{Budget, LimitsConfig, RateLimit, Scope, Window};
use switchyard::state::{MemoryStore, StateStore};
use switchyard::{Request, Router, SimulatedModel, SimulatedProvider, Utility};

use common::{corpus, requests, routerbench_catalog};

fn router(limits: Option<(LimitsConfig, Arc<dyn StateStore>)>) -> Router {
    let provider = SimulatedProvider::new("sim")
        .seed(1)
        .time_scale(0.0)
        .default_model(SimulatedModel::healthy().with_output_tokens(128));
    let mut b = Router::builder()
        .catalog(routerbench_catalog())
        .classifier(DifficultyClassifier::default(), 1.0)
        .classifier(IntentClassifier::default(), 0.5)
        .policy(Utility::new().answer_value(0.02))
        .provider(provider);
    if let Some((limits, store)) = limits {
        b = b.limits(limits).state_store_arc(store);
    }
    b.build().expect("the router is valid")
}

/// A global and a per-tenant daily budget.
fn budgets() -> LimitsConfig {
    LimitsConfig::new().budget(Budget::new(Scope::Global, 1e9, Window::Day)).budget(Budget::new(
        Scope::Tenant,
        1e9,
        Window::Day,
    ))
}

/// [`budgets`], and requests and tokens per minute on every model.
fn limits() -> LimitsConfig {
    let mut limits = budgets();
    for m in routerbench_catalog().models() {
        limits =
            limits.rate_limit(RateLimit::new(m.id.clone()).requests_per_minute(u32::MAX).tokens_per_minute(u64::MAX));
    }
    limits
}

/// Benchmarks `complete` through `limited` next to the unlimited baseline, and their paired
/// difference, under `name`.
fn compare(c: &mut Criterion, rt: &tokio::runtime::Runtime, pool: &[Request], limited: &Router, name: &str) {
    let baseline = router(None);
    let n = baseline.catalog().len();
    for r in pool {
        let response = rt.block_on(limited.complete(r.clone())).expect("the simulated provider answers");
        assert_eq!(response.attempts.len(), 1);
    }
    let mut group = c.benchmark_group("limits");
    group.bench_with_input(BenchmarkId::new("complete_unlimited", n), pool, |b, pool| {
        let mut next = pool.iter().cycle();
        b.iter(|| rt.block_on(baseline.complete(black_box(next.next().unwrap_or(&pool[0])).clone())));
    });
    group.bench_with_input(BenchmarkId::new(format!("complete_{name}"), n), pool, |b, pool| {
        let mut next = pool.iter().cycle();
        b.iter(|| rt.block_on(limited.complete(black_box(next.next().unwrap_or(&pool[0])).clone())));
    });
    group.bench_with_input(BenchmarkId::new(format!("overhead_{name}"), n), pool, |b, pool| {
        let mut next = pool.iter().cycle();
        b.iter_custom(|iters| {
            let mut diff: i128 = 0;
            for i in 0..iters {
                let request = next.next().unwrap_or(&pool[0]);
                // Alternate which call goes first, so that neither always finds the caches warm.
                let (first, second) = if i % 2 == 0 { (&baseline, limited) } else { (limited, &baseline) };
                let t0 = Instant::now();
                let _ = black_box(rt.block_on(first.complete(black_box(request).clone())));
                let t1 = Instant::now();
                let _ = black_box(rt.block_on(second.complete(black_box(request).clone())));
                let t2 = Instant::now();
                let (a, b) = ((t1 - t0).as_nanos() as i128, (t2 - t1).as_nanos() as i128);
                diff += if i % 2 == 0 { b - a } else { a - b };
            }
            // A batch whose difference is not positive counts as 1 ns (criterion needs a positive time).
            std::time::Duration::from_nanos(u64::try_from(diff.max(1)).unwrap_or(u64::MAX))
        });
    });
    group.finish();
}

fn bench_limits(c: &mut Criterion) {
    let corpus = corpus();
    let pool: Vec<Request> = requests(&corpus, 1024, 64).into_iter().map(|r| r.with_tenant("acme")).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let memory = router(Some((budgets(), Arc::new(MemoryStore::new()))));
    compare(c, &rt, &pool, &memory, "memory_budgets");
    let memory = router(Some((limits(), Arc::new(MemoryStore::new()))));
    compare(c, &rt, &pool, &memory, "memory_budgets_rates");
    #[cfg(feature = "redis")]
    redis::bench(c, &rt, &pool);
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;

    pub(super) fn bench(c: &mut Criterion, rt: &tokio::runtime::Runtime, pool: &[Request]) {
        // Needs a Redis server: `SWITCHYARD_REDIS_URL`, or a `redis-server` to start.
        let server = super::redis_server::Redis::shared();
        let store = rt
            .block_on(switchyard::state::RedisStore::connect(
                server.url(),
                switchyard::state::RedisConfig::default().with_namespace(server.namespace("bench-limits")),
            ))
            .expect("the Redis server answers");
        let limited = router(Some((budgets(), Arc::new(store))));
        compare(c, rt, pool, &limited, "redis");
        // A bare round trip to the same server, for scale.
        let client = ::redis::Client::open(server.url()).expect("a redis url");
        let mut con = rt.block_on(client.get_multiplexed_async_connection()).expect("the Redis server answers");
        c.bench_function("limits/redis_ping", |b| {
            b.iter(|| rt.block_on(::redis::cmd("PING").query_async::<String>(&mut con)).expect("PONG"));
        });
    }
}

criterion_group!(benches, bench_limits);
criterion_main!(benches);
