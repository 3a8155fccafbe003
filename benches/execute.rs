//! Criterion benchmarks of the execution layer's overhead: what [`Router::complete`] costs on top of
//! calling the provider directly.
//!
//! - `execute/provider_direct/11`: [`SimulatedProvider::complete`] for the model the router would
//!   choose, called directly: the baseline.
//! - `execute/router_complete/11`: [`Router::complete`] with `request.clone()`: route, admission,
//!   attempt timeout, the provider call, health bookkeeping, cost and the response's attempt list.
//! - `execute/overhead_paired/11`: the overhead itself: each iteration calls the provider directly,
//!   then `complete` (with the clone) for the same request, and counts the difference. Pairing the
//!   calls keeps the machine's speed, which drifts on a shared 2-core VM, out of the difference.
//! - `execute/router_route/11`: [`Router::route`] alone, the decision `complete` starts with.
//! - `execute/request_clone/11`: `request.clone()` alone, which `router_complete` includes and
//!   `provider_direct` does not.
//!
//! The overhead of `complete` is `overhead_paired` (or, less steadily, `router_complete −
//! provider_direct`). Every benchmark cycles through
//! the same 64 distinct prompts of about 1 KB (windows of the repository's data sets' MT-Bench, GSM8K and
//! MMLU prompts and the English sample, as in `benches/route.rs`) over the 11 RouterBench models. The
//! simulated provider answers at once (`time_scale` 0, so no timer is involved) with 128 output
//! tokens, and never fails. Each call runs to completion with `block_on` on a current-thread tokio
//! runtime with the time driver enabled (`complete` puts a timeout on each attempt).
//!
//! Text is read at run time from the repository's `data/` (gzip-compressed); a missing file stops
//! the benchmark with a message naming it.
//!
//! ```text
//! cargo bench --bench execute -- --warm-up-time 1 --measurement-time 3
//! ```

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use switchyard::classify::{DifficultyClassifier, IntentClassifier};
use switchyard::{ModelProfile, Provider, Request, Router, SimulatedModel, SimulatedProvider, Utility};

use common::{corpus, requests, routerbench_catalog};

/// A provider that answers every call at once with 128 output tokens.
fn provider() -> SimulatedProvider {
    SimulatedProvider::new("sim")
        .seed(1)
        .time_scale(0.0)
        .default_model(SimulatedModel::healthy().with_output_tokens(128))
}

fn bench_execute(c: &mut Criterion) {
    let corpus = corpus();
    let pool = requests(&corpus, 1024, 64);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a tokio runtime");
    let router = Router::builder()
        .catalog(routerbench_catalog())
        .classifier(DifficultyClassifier::default(), 1.0)
        .classifier(IntentClassifier::default(), 0.5)
        .policy(Utility::new().answer_value(0.02))
        .provider(provider())
        .build()
        .expect("the router is valid");
    let direct = provider();
    // Each request with the profile of the model the router chooses for it, for the direct calls.
    let chosen: Vec<(Request, ModelProfile)> = pool
        .iter()
        .map(|r| (r.clone(), router.route(r).expect("the benchmark requests route").profile().clone()))
        .collect();
    for request in &pool {
        let response = rt.block_on(router.complete(request.clone())).expect("the simulated provider answers");
        assert_eq!(response.attempts.len(), 1, "a healthy provider answers on the first attempt");
    }

    let n = router.catalog().len();
    let mut group = c.benchmark_group("execute");
    group.bench_with_input(BenchmarkId::new("provider_direct", n), &chosen, |b, chosen| {
        let mut next = chosen.iter().cycle();
        b.iter(|| {
            let (request, model) = next.next().unwrap_or(&chosen[0]);
            rt.block_on(direct.complete(black_box(model), black_box(request)))
        });
    });
    group.bench_with_input(BenchmarkId::new("router_complete", n), &pool, |b, pool| {
        let mut next = pool.iter().cycle();
        b.iter(|| rt.block_on(router.complete(black_box(next.next().unwrap_or(&pool[0])).clone())));
    });
    // The overhead itself, as paired differences: each iteration calls the provider directly and then
    // through the router for the same request, and counts only the difference, so that the machine's
    // speed drifting between benchmarks does not enter it.
    group.bench_with_input(BenchmarkId::new("overhead_paired", n), &chosen, |b, chosen| {
        let mut next = chosen.iter().cycle();
        b.iter_custom(|iters| {
            let mut diff: i128 = 0;
            for _ in 0..iters {
                let (request, model) = next.next().unwrap_or(&chosen[0]);
                let t0 = std::time::Instant::now();
                let _ = black_box(rt.block_on(direct.complete(black_box(model), black_box(request))));
                let t1 = std::time::Instant::now();
                let _ = black_box(rt.block_on(router.complete(black_box(request).clone())));
                let t2 = std::time::Instant::now();
                diff += (t2 - t1).as_nanos() as i128 - (t1 - t0).as_nanos() as i128;
            }
            // A batch whose difference is not positive counts as 1 ns (criterion needs a positive time).
            std::time::Duration::from_nanos(u64::try_from(diff.max(1)).unwrap_or(u64::MAX))
        });
    });
    group.bench_with_input(BenchmarkId::new("router_route", n), &pool, |b, pool| {
        let mut next = pool.iter().cycle();
        b.iter(|| router.route(black_box(next.next().unwrap_or(&pool[0]))));
    });
    group.bench_with_input(BenchmarkId::new("request_clone", n), &pool, |b, pool| {
        let mut next = pool.iter().cycle();
        b.iter(|| black_box(next.next().unwrap_or(&pool[0])).clone());
    });
    group.finish();
}

criterion_group!(benches, bench_execute);
criterion_main!(benches);
