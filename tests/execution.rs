//! The execution layer through the public API: retries, fallbacks, circuit breakers, live statistics,
//! escalation, context-overflow re-routing, deadlines, streams with a commit point, cancellation,
//! feedback and observers.
//!
//! Every async test runs on a paused tokio clock: backoff sleeps and simulated latency cost no wall
//! time and are exact, so timings can be asserted to the millisecond.

#![allow(clippy::unwrap_used, reason = "tests and their helpers may unwrap")]

mod fixtures;

use fixtures::{StreamsOnly, escalating_router, mini_frontier, models};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use proptest::prelude::*;
use tokio::time::Instant;

use switchyard::catalog::LatencyProfile;
use switchyard::classify::DifficultyClassifier;
use switchyard::execute::health::{CircuitState, HealthConfig, ModelHealth};
use switchyard::execute::quality::{Checks, Inadequacy};
use switchyard::execute::retry::{NonRetryable, RetryPolicy};
use switchyard::execute::{AttemptOutcome, AttemptReason};
use switchyard::policy::RejectReason;
use switchyard::{
    Attempt, Catalog, Completion, Decision, DecisionId, Error, ErrorKind, ExecutionConfig, Feedback, FinishReason,
    ModelId, ModelProfile, Observer, Pricing, Provider, Request, Response, ResponseFormat, Router, SimulatedModel,
    SimulatedProvider, StreamEvent, Usage, Utility,
};

// ---------------------------------------------------------------------------------------------------
// Fixtures

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

/// `mini_frontier` over a simulated provider where `mini` behaves as given. With a cost weight of 1 and
/// a difficulty classifier, easy requests go to `mini` first, and `frontier` is predicted stronger.
fn sim_router(mini: SimulatedModel, frontier: SimulatedModel, exec: ExecutionConfig) -> Router {
    Router::builder()
        .catalog(mini_frontier())
        .classifier(DifficultyClassifier::default(), 1.0)
        .policy(Utility::new().answer_value(0.02))
        .provider(SimulatedProvider::new("sim").seed(11).model("mini", mini).model("frontier", frontier))
        .execution(exec)
        .jitter_seed(1)
        .build()
        .unwrap()
}

const EASY: &str = "hi there, how are you today?";

/// A model of the [`Lab`] provider whose behaviour the test switches while the router runs.
#[derive(Default)]
struct Knobs {
    /// Fail every call with this fault.
    fault: Mutex<Option<Fault>>,
    /// Also fail every n-th call with a server error (0: never).
    fail_every: AtomicU32,
    /// How long each call takes.
    latency: Mutex<Duration>,
    /// Never answer (until the caller gives up).
    hang: AtomicBool,
    /// When each call started.
    calls: Mutex<Vec<Instant>>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    Server,
    RateLimited(Duration),
}

impl Knobs {
    fn down(&self, down: bool) {
        *self.fault.lock().unwrap() = down.then_some(Fault::Server);
    }

    fn fail_with(&self, fault: Option<Fault>) {
        *self.fault.lock().unwrap() = fault;
    }

    fn set_latency(&self, latency: Duration) {
        *self.latency.lock().unwrap() = latency;
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    fn call_times(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }
}

/// A provider named `lab` with switchable models: answers `answer from <model>` with 1000 input and 500
/// output tokens, unless its knobs say otherwise.
#[derive(Clone)]
struct Lab {
    models: Arc<HashMap<String, Arc<Knobs>>>,
}

impl Lab {
    fn new(ids: &[&str]) -> Self {
        Self { models: Arc::new(ids.iter().map(|id| ((*id).to_owned(), Arc::new(Knobs::default()))).collect()) }
    }

    fn knobs(&self, id: &str) -> &Knobs {
        &self.models[id]
    }
}

#[async_trait::async_trait]
impl Provider for Lab {
    fn name(&self) -> &str {
        "lab"
    }

    async fn complete(&self, model: &ModelProfile, _: &Request) -> switchyard::Result<Completion> {
        let knobs = self.knobs(model.id.as_str());
        let n = {
            let mut calls = knobs.calls.lock().unwrap();
            calls.push(Instant::now());
            calls.len() as u32
        };
        let latency = *knobs.latency.lock().unwrap();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if knobs.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let fault = *knobs.fault.lock().unwrap();
        let every = knobs.fail_every.load(Ordering::SeqCst);
        match fault {
            Some(Fault::Server) => return Err(Error::server("lab outage").with_status(503)),
            Some(Fault::RateLimited(after)) => {
                return Err(Error::rate_limited("lab rate limit", Some(after)).with_status(429));
            }
            None if every > 0 && n % every == 0 => return Err(Error::server("lab hiccup").with_status(500)),
            None => {}
        }
        Ok(Completion::new(format!("answer from {}", model.id), FinishReason::Stop, Usage::new(1000, 500)))
    }
}

/// Two comparable `lab` models: `cheap` costs a little less than `dear`, same ability and latency.
fn lab_catalog() -> Catalog {
    let latency = LatencyProfile::new(1000.0, 1e9); // about one second whatever the length
    Catalog::new([
        ModelProfile::new("cheap", "lab").with_pricing(Pricing::per_mtok(1.0, 2.0)).with_latency(latency),
        ModelProfile::new("dear", "lab").with_pricing(Pricing::per_mtok(1.2, 2.4)).with_latency(latency),
    ])
    .unwrap()
}

fn lab_router(lab: &Lab, policy: Utility, exec: ExecutionConfig) -> Router {
    Router::builder().catalog(lab_catalog()).policy(policy).provider(lab.clone()).execution(exec).build().unwrap()
}

fn health_of(router: &Router, id: &str) -> ModelHealth {
    router.health().into_iter().find(|h| h.model.as_ref().is_some_and(|m| m.as_str() == id)).unwrap()
}

fn reasons(attempts: &[Attempt]) -> Vec<AttemptReason> {
    attempts.iter().map(|a| a.reason).collect()
}

fn failed(kind: ErrorKind, status: Option<u16>) -> AttemptOutcome {
    AttemptOutcome::Failed { kind, status }
}

fn attempt_cost(attempts: &[Attempt]) -> f64 {
    attempts.iter().map(|a| a.cost_usd).sum()
}

fn assert_close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-9), "{a} != {b}");
}

fn text_of(events: &[switchyard::Result<StreamEvent>]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::Delta(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

/// Counts everything an observer is told.
#[derive(Default)]
struct Counts {
    decisions: AtomicUsize,
    attempts: AtomicUsize,
    finished_ok: AtomicUsize,
    finished_err: AtomicUsize,
    feedback: AtomicUsize,
    finished_decisions: Mutex<Vec<DecisionId>>,
}

#[derive(Clone, Default)]
struct Counter(Arc<Counts>);

impl Observer for Counter {
    fn on_decision(&self, _: &Decision) {
        self.0.decisions.fetch_add(1, Ordering::SeqCst);
    }

    fn on_attempt(&self, _: &Decision, _: &Attempt) {
        self.0.attempts.fetch_add(1, Ordering::SeqCst);
    }

    fn on_finish(&self, decision: &Decision, result: Result<(&ModelId, f64), &Error>) {
        match result {
            Ok(_) => self.0.finished_ok.fetch_add(1, Ordering::SeqCst),
            Err(_) => self.0.finished_err.fetch_add(1, Ordering::SeqCst),
        };
        self.0.finished_decisions.lock().unwrap().push(decision.id());
    }

    fn on_feedback(&self, _: DecisionId, _: &ModelId, _: &Feedback) {
        self.0.feedback.fetch_add(1, Ordering::SeqCst);
    }
}

impl Counter {
    fn get(&self, field: fn(&Counts) -> &AtomicUsize) -> usize {
        field(&self.0).load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------------------
// 1. Fault injection at volume

/// Sends `n` requests, 64 at a time, each with its own key, through a router over `mini_frontier`
/// whose `mini` fails 30 % of calls with a 500, 10 % with a 429 (retry after 1 s) and 5 % with a
/// timeout; checks that each ends exactly once, and how, and returns how many `mini` answered.
/// Answers are kept short (20 tokens) so that 10,000 requests take about a second.
async fn flood(exec: ExecutionConfig, n: usize) -> (Router, usize) {
    let counter = Counter::default();
    let router = Router::builder()
        .catalog(mini_frontier())
        .provider(
            SimulatedProvider::new("sim")
                .seed(2024)
                .default_model(SimulatedModel::healthy().with_output_tokens(20))
                .model("mini", SimulatedModel::healthy().with_output_tokens(20).with_failures(0.30, 0.10, 0.05)),
        )
        .execution(exec)
        .jitter_seed(1)
        .observer(counter.clone())
        .build()
        .unwrap();
    let results: Vec<(usize, switchyard::Result<Response>)> = futures::stream::iter(0..n)
        .map(|i| {
            let router = router.clone();
            async move { (i, router.complete(Request::new(EASY).with_key(format!("request-{i}"))).await) }
        })
        .buffer_unordered(64)
        .collect()
        .await;

    // Every request ended exactly once: one result per key, one finish per decision.
    assert_eq!(results.len(), n);
    assert_eq!(results.iter().map(|(i, _)| *i).collect::<HashSet<_>>().len(), n);
    assert_eq!(counter.get(|c| &c.decisions), n);
    assert_eq!(counter.get(|c| &c.finished_ok) + counter.get(|c| &c.finished_err), n);
    let finished: HashSet<DecisionId> = counter.0.finished_decisions.lock().unwrap().iter().copied().collect();
    assert_eq!(finished.len(), n, "a decision finished twice");

    let (mut ok, mut by_mini, mut attempts) = (0, 0, 0);
    let mut ids = HashSet::new();
    for (_, result) in &results {
        match result {
            Ok(r) => {
                ok += 1;
                attempts += r.attempts.len();
                assert!(ids.insert(r.decision.id()));
                let last = r.attempts.last().unwrap();
                assert_eq!(&last.model, r.model());
                assert_eq!(last.outcome, AttemptOutcome::Answered);
                assert!(r.attempts[..r.attempts.len() - 1].iter().all(|a| !a.outcome.is_answer()));
                assert!(r.attempts.len() <= 6);
                assert!(r.cost_usd > 0.0);
                assert_close(r.cost_usd, attempt_cost(&r.attempts));
                by_mini += usize::from(last.model.as_str() == "mini");
            }
            Err(e) => {
                attempts += e.attempts().len();
                assert!(!e.attempts().is_empty(), "{e}");
                assert!(e.attempts().iter().all(|a| ["mini", "frontier"].contains(&a.model.as_str())), "{e}");
                assert!(e.model().is_some(), "{e}");
            }
        }
    }
    assert!(ok * 1000 >= n * 999, "only {ok} of {n} succeeded");
    assert_eq!(counter.get(|c| &c.attempts), attempts);
    (router, by_mini)
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_requests_through_a_flaky_primary() {
    // Default settings: a model failing 45 % of its calls trips its circuit (failure rate 0.5 over a
    // window of 50) and mostly stays open; the healthy fallback serves.
    let (router, _) = flood(ExecutionConfig::new(), 4_000).await;
    assert!(health_of(&router, "mini").trips > 0);

    // With the breaker and live routing out of the way, every request tries `mini` first, with two
    // retries: all three fail for about 0.45³ ≈ 9 % of requests, which then fall back.
    let no_breaker = ExecutionConfig::new()
        .with_live_routing(false)
        .with_health(HealthConfig::new().with_failure_rate(1.0).with_min_requests(50));
    let (router, by_mini) = flood(no_breaker, 10_000).await;
    assert_eq!(health_of(&router, "mini").trips, 0);
    assert!((8_900..9_300).contains(&by_mini), "{by_mini}");
}

// ---------------------------------------------------------------------------------------------------
// 2. Circuit breaker

fn breaker_exec() -> ExecutionConfig {
    ExecutionConfig::new().with_retry(RetryPolicy::no_retries()).with_live_routing(false).with_health(
        HealthConfig::new()
            .with_window(10)
            .with_min_requests(5)
            .with_failure_rate(0.5)
            .with_open_for(Duration::from_millis(10_000))
            .with_half_open_probes(2),
    )
}

#[tokio::test(start_paused = true)]
async fn circuit_opens_rejects_probes_and_closes() {
    let lab = Lab::new(&["cheap", "dear"]);
    let router = lab_router(&lab, Utility::new(), breaker_exec());
    let req = || Request::new("hello");

    // Healthy: the cheaper model serves.
    for _ in 0..5 {
        let r = router.complete(req()).await.unwrap();
        assert_eq!(r.model().as_str(), "cheap");
    }
    // It goes down: every request still succeeds through the fallback, and within min_requests
    // failures (5, in a window of 10 with 5 successes) the circuit opens.
    lab.knobs("cheap").down(true);
    let mut failures = 0;
    while health_of(&router, "cheap").state == CircuitState::Closed {
        let r = router.complete(req()).await.unwrap();
        assert_eq!(models(&r.attempts), ["cheap", "dear"]);
        assert_eq!(reasons(&r.attempts), [AttemptReason::Primary, AttemptReason::Fallback]);
        assert_eq!(r.attempts[0].outcome, failed(ErrorKind::Server, Some(503)));
        failures += 1;
        assert!(failures <= 5, "still closed after {failures} failures");
    }
    assert_eq!(failures, 5);
    let h = health_of(&router, "cheap");
    assert_eq!(h.state, CircuitState::Open { retry_in: 10 * SEC });
    assert_eq!((h.trips, h.consecutive_failures), (1, 5));

    // Open: decisions reject it, traffic goes straight to the other model, nothing reaches it.
    let calls = lab.knobs("cheap").calls();
    tokio::time::advance(4 * SEC).await;
    let d = router.route(&req()).unwrap();
    assert_eq!(d.model().as_str(), "dear");
    assert!(!d.is_recovery());
    let rejected = d.rejections().iter().find(|r| r.model().as_str() == "cheap").unwrap();
    assert_eq!(rejected.reason(), &RejectReason::CircuitOpen { retry_in: 6 * SEC });
    for _ in 0..3 {
        let r = router.complete(req()).await.unwrap();
        assert_eq!(models(&r.attempts), ["dear"]);
        assert_eq!(r.attempts[0].reason, AttemptReason::Primary);
    }
    assert_eq!(lab.knobs("cheap").calls(), calls);

    // After the cool-down a probe goes to it; still down, it fails and the circuit re-opens for twice
    // as long.
    tokio::time::advance(6 * SEC).await;
    assert_eq!(health_of(&router, "cheap").state, CircuitState::Open { retry_in: Duration::ZERO });
    let r = router.complete(req()).await.unwrap();
    assert_eq!(models(&r.attempts), ["cheap", "dear"]);
    assert_eq!(health_of(&router, "cheap").state, CircuitState::Open { retry_in: 20 * SEC });
    assert_eq!(health_of(&router, "cheap").trips, 2);

    // It recovers: after the cool-down, probes (2 of them) succeed and close the circuit.
    lab.knobs("cheap").down(false);
    tokio::time::advance(20 * SEC).await;
    let r = router.complete(req()).await.unwrap();
    assert_eq!(models(&r.attempts), ["cheap"]);
    assert_eq!(health_of(&router, "cheap").state, CircuitState::HalfOpen);
    assert_eq!(health_of(&router, "cheap").probes_in_flight, 0);
    let r = router.complete(req()).await.unwrap();
    assert_eq!(models(&r.attempts), ["cheap"]);
    assert_eq!(health_of(&router, "cheap").state, CircuitState::Closed);
    // And it wins its traffic back.
    for _ in 0..5 {
        assert_eq!(router.complete(req()).await.unwrap().model().as_str(), "cheap");
    }
    assert!(router.route(&req()).unwrap().rejections().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_half_open_circuit_admits_only_its_probes() {
    let (lab, router) = half_open_lab().await;
    lab.knobs("cheap").set_latency(SEC);
    let calls = lab.knobs("cheap").calls();
    // 20 requests at once: 2 probe `cheap` (half_open_probes = 2), the others are turned away from
    // it and served by `dear`; the probes succeed and close the circuit.
    let results = futures::future::join_all((0..20).map(|_| router.complete(Request::new("hi")))).await;
    let served: Vec<&str> = results.iter().map(|r| r.as_ref().unwrap().model().as_str()).collect();
    assert_eq!(served.iter().filter(|m| **m == "cheap").count(), 2, "{served:?}");
    assert_eq!(lab.knobs("cheap").calls(), calls + 2);
    let h = health_of(&router, "cheap");
    assert_eq!((h.state, h.probes_in_flight), (CircuitState::Closed, 0));
}

// ---------------------------------------------------------------------------------------------------
// 3. Every circuit open

#[tokio::test(start_paused = true)]
async fn all_circuits_open_tries_the_one_closest_to_recovery() {
    let lab = Lab::new(&["cheap", "dear"]);
    let router = lab_router(&lab, Utility::new(), breaker_exec());
    lab.knobs("cheap").down(true);
    lab.knobs("dear").down(true);
    // `dear` trips first, `cheap` a second later.
    for _ in 0..5 {
        let e = router.complete(Request::new("hi").with_allowed(["dear"])).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Server);
    }
    tokio::time::advance(SEC).await;
    for _ in 0..5 {
        let _ = router.complete(Request::new("hi").with_allowed(["cheap"])).await.unwrap_err();
    }
    assert!(matches!(health_of(&router, "dear").state, CircuitState::Open { .. }));
    assert!(matches!(health_of(&router, "cheap").state, CircuitState::Open { .. }));

    // The decision is a recovery on `dear`, whose cool-down ends first.
    let d = router.route(&Request::new("hi")).unwrap();
    assert!(d.is_recovery());
    assert_eq!(d.model().as_str(), "dear");
    assert_eq!(d.rejections().len(), 1);
    assert!(matches!(d.rejections()[0].reason(), RejectReason::CircuitOpen { .. }));

    // Still down: the recovery attempt is made (not an immediate NoCandidate), and its error returned.
    let calls = lab.knobs("dear").calls();
    let e = router.complete(Request::new("hi")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server, "{e}");
    assert_eq!(e.attempts()[0].reason, AttemptReason::Recovery);
    assert_eq!(models(e.attempts()), ["dear"]);
    assert_eq!(lab.knobs("dear").calls(), calls + 1);

    // Back up: the recovery attempt answers.
    lab.knobs("dear").down(false);
    let r = router.complete(Request::new("hi")).await.unwrap();
    assert!(r.decision.is_recovery());
    assert_eq!(models(&r.attempts), ["dear"]);
    assert_eq!(r.attempts[0].reason, AttemptReason::Recovery);
    assert_eq!(r.attempts[0].outcome, AttemptOutcome::Answered);
    // Streams recover the same way.
    let s = router.stream(Request::new("hi")).await.unwrap();
    assert_eq!(s.attempts()[0].reason, AttemptReason::Recovery);
    let events: Vec<_> = s.collect().await;
    assert!(events.iter().all(Result::is_ok));
}

#[tokio::test(start_paused = true)]
async fn recovery_attempts_are_limited_like_probes() {
    let lab = Lab::new(&["cheap", "dear"]);
    let router = lab_router(&lab, Utility::new(), breaker_exec());
    lab.knobs("cheap").down(true);
    lab.knobs("dear").down(true);
    // `dear` trips first, `cheap` a second later: `dear` is the closest to recovery.
    for id in ["dear", "cheap"] {
        for _ in 0..5 {
            let _ = router.complete(Request::new("hi").with_allowed([id])).await.unwrap_err();
        }
        tokio::time::advance(SEC).await;
    }
    // Everything is open and `dear` now hangs: of 6 concurrent requests, only as many as a half-open
    // circuit admits (2) try it; the others fail at once, saying why, without calling anything.
    lab.knobs("dear").down(false);
    lab.knobs("dear").hang.store(true, Ordering::SeqCst);
    let calls = lab.knobs("dear").calls();
    let exec = |_| async { tokio::time::timeout(5 * SEC, router.complete(Request::new("hi"))).await.map_err(|_| ()) };
    let results = futures::future::join_all((0..6).map(exec)).await;
    assert_eq!(lab.knobs("dear").calls(), calls + 2);
    let fast: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(fast.len(), 4, "the other four return at once");
    for r in fast {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoCandidate, "{e}");
        assert!(e.to_string().contains("already being tried"), "{e}");
        assert!(e.attempts().is_empty());
    }
    // The slots came back when the hanging attempts were dropped.
    lab.knobs("dear").hang.store(false, Ordering::SeqCst);
    let r = router.complete(Request::new("hi")).await.unwrap();
    assert_eq!(r.attempts[0].reason, AttemptReason::Recovery);
}

/// One piece of text, then nothing, ever.
fn stalling() -> switchyard::EventStream {
    Box::pin(futures::stream::iter([Ok(StreamEvent::Delta("partial".into()))]).chain(futures::stream::pending()))
}

/// A piece of text every two seconds, forever.
fn trickling() -> switchyard::EventStream {
    Box::pin(futures::stream::unfold((), |()| async {
        tokio::time::sleep(2 * SEC).await;
        Some((Ok(StreamEvent::Delta("more ".into())), ()))
    }))
}

#[tokio::test(start_paused = true)]
async fn a_committed_stream_that_stalls_ends_with_a_timeout() {
    let finishes = Arc::new(Mutex::new(Vec::new()));
    struct Finishes(Arc<Mutex<Vec<ErrorKind>>>);
    impl Observer for Finishes {
        fn on_finish(&self, _: &Decision, result: Result<(&ModelId, f64), &Error>) {
            if let Err(e) = result {
                self.0.lock().unwrap().push(e.kind());
            }
        }
    }
    let router = Router::builder()
        .catalog(mini_frontier())
        .provider(StreamsOnly(stalling))
        .observer(Finishes(finishes.clone()))
        .execution(ExecutionConfig::new().with_first_token_timeout(3 * SEC))
        .jitter_seed(1)
        .build()
        .unwrap();
    let started = Instant::now();
    let events: Vec<_> = router.stream(Request::new(EASY)).await.unwrap().collect().await;
    assert_eq!(started.elapsed(), 3 * SEC);
    assert_eq!(text_of(&events), "partial");
    let e = events.last().unwrap().as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MidStream);
    assert_eq!(e.partial_content(), Some("partial"));
    let source = std::error::Error::source(e).and_then(|s| s.downcast_ref::<Error>()).unwrap();
    assert_eq!(source.kind(), ErrorKind::Timeout);
    // Observers get the error the caller got.
    assert_eq!(*finishes.lock().unwrap(), [ErrorKind::MidStream]);
}

// ---------------------------------------------------------------------------------------------------
// 4. Live statistics in decisions

fn live_exec() -> ExecutionConfig {
    ExecutionConfig::new().with_retry(RetryPolicy::no_retries()).with_health(
        HealthConfig::new()
            .with_window(20)
            .with_min_samples(5)
            .with_ewma_alpha(0.5)
            // A breaker that never trips at these failure rates.
            .with_failure_rate(0.9)
            .with_min_requests(20),
    )
}

async fn serve(router: &Router, n: usize) -> HashMap<String, usize> {
    let mut served = HashMap::new();
    for _ in 0..n {
        let r = router.complete(Request::new("hello")).await.unwrap();
        *served.entry(r.model().to_string()).or_default() += 1;
    }
    served
}

#[tokio::test(start_paused = true)]
async fn a_slow_model_loses_traffic_gradually_and_wins_it_back() {
    let lab = Lab::new(&["cheap", "dear"]);
    lab.knobs("cheap").set_latency(SEC);
    lab.knobs("dear").set_latency(SEC);
    let router = lab_router(&lab, Utility::new().answer_value(0.1).latency_cost(1.0), live_exec());

    // Before min_samples the catalog's figures are used; after, measured ones.
    for i in 0..5 {
        let d = router.route(&Request::new("hello")).unwrap();
        assert!(!d.candidate("cheap").unwrap().live, "after {i}");
        router.complete(Request::new("hello")).await.unwrap();
    }
    let d = router.route(&Request::new("hello")).unwrap();
    let cheap = d.candidate("cheap").unwrap();
    assert!(cheap.live);
    assert_eq!(cheap.success_rate, 1.0);
    assert_close(cheap.latency_secs, 1.0);
    assert!(!d.candidate("dear").unwrap().live);
    assert_eq!(d.model().as_str(), "cheap");

    // `cheap` turns slow (3 s). It keeps the traffic for a request or two while the moving average
    // catches up, then loses it, without any circuit opening.
    lab.knobs("cheap").set_latency(3 * SEC);
    let mut slow_answers = 0;
    while router.route(&Request::new("hello")).unwrap().model().as_str() == "cheap" {
        router.complete(Request::new("hello")).await.unwrap();
        slow_answers += 1;
        assert!(slow_answers <= 5, "still preferred after {slow_answers} slow answers");
    }
    assert!(slow_answers >= 1);
    assert!(router.health().iter().all(|h| h.state == CircuitState::Closed));
    let served = serve(&router, 10).await;
    assert_eq!(served.get("dear"), Some(&10), "{served:?}");

    // It recovers. Its figures are only refreshed when it gets traffic again; once they are, it wins.
    lab.knobs("cheap").set_latency(SEC);
    let mut waited = Duration::ZERO;
    while router.route(&Request::new("hello")).unwrap().model().as_str() != "cheap" {
        tokio::time::advance(10 * SEC).await;
        waited += 10 * SEC;
        serve(&router, 1).await;
        assert!(waited <= Duration::from_secs(3600), "never won its traffic back");
    }
    let served = serve(&router, 10).await;
    assert_eq!(served.get("cheap"), Some(&10), "{served:?}");
}

#[tokio::test(start_paused = true)]
async fn a_model_failing_at_a_low_rate_loses_traffic_before_its_circuit_opens() {
    let lab = Lab::new(&["cheap", "dear"]);
    // Values `V·p − c`: both have p = 0.5 times their success rate and `cheap` costs `dear`'s / 1.2,
    // so `cheap` is preferred while 0.5·V·(1 − s) < c_dear/6; with V = 2·c_dear, while its success
    // rate s is above 5/6.
    let probe = lab_router(&lab, Utility::new(), live_exec()).route(&Request::new("hello")).unwrap();
    let dear = probe.candidate("dear").unwrap().cost.usd;
    let router = lab_router(&lab, Utility::new().answer_value(2.0 * dear), live_exec());
    serve(&router, 10).await;
    assert_eq!(router.route(&Request::new("hello")).unwrap().model().as_str(), "cheap");

    // One call in four fails: every request still succeeds (through the fallback), and once the
    // measured success rate falls below 5/6 (4 failures in the window of 20), `dear` is preferred;
    // the circuit never opens.
    lab.knobs("cheap").fail_every.store(4, Ordering::SeqCst);
    let mut requests = 0;
    while router.route(&Request::new("hello")).unwrap().model().as_str() == "cheap" {
        serve(&router, 1).await;
        requests += 1;
        assert!(requests <= 40, "still preferred after {requests} requests");
    }
    assert_eq!(requests, 14);
    let d = router.route(&Request::new("hello")).unwrap();
    let cheap = d.candidate("cheap").unwrap();
    assert!(cheap.live && cheap.success_rate < 1.0 && cheap.success_rate > 0.5, "{cheap:?}");
    assert_eq!(health_of(&router, "cheap").state, CircuitState::Closed);
    assert_eq!(serve(&router, 10).await.get("dear"), Some(&10));

    // It recovers and, once measured again, wins the traffic back.
    lab.knobs("cheap").fail_every.store(0, Ordering::SeqCst);
    let mut waited = Duration::ZERO;
    while router.route(&Request::new("hello")).unwrap().model().as_str() != "cheap" {
        tokio::time::advance(10 * SEC).await;
        waited += 10 * SEC;
        serve(&router, 1).await;
        assert!(waited <= Duration::from_secs(3600), "never won its traffic back");
    }
    assert_eq!(serve(&router, 10).await.get("cheap"), Some(&10));
}

// ---------------------------------------------------------------------------------------------------
// 5. Escalation

fn json_request() -> Request {
    Request::new("list three colours as a JSON object").with_response_format(ResponseFormat::Json)
}

#[tokio::test(start_paused = true)]
async fn invalid_json_escalates_to_the_stronger_model() {
    let broken = || SimulatedModel::healthy().with_answer_faults(0.0, 0.0, 0.0, 1.0);
    let router = escalating_router(broken(), SimulatedModel::healthy(), 1);
    let d = router.route(&json_request()).unwrap();
    assert_eq!(d.model().as_str(), "mini");
    assert!(d.candidate("frontier").unwrap().p > d.candidate("mini").unwrap().p);

    let r = router.complete(json_request()).await.unwrap();
    assert_eq!(r.model().as_str(), "frontier");
    assert!(r.inadequacy.is_none());
    assert!(r.content().starts_with('{') && r.content().ends_with('}'), "{}", r.content());
    assert_eq!(models(&r.attempts), ["mini", "frontier"]);
    assert_eq!(reasons(&r.attempts), [AttemptReason::Primary, AttemptReason::Escalation]);
    let AttemptOutcome::Inadequate(why) = &r.attempts[0].outcome else { panic!("{:?}", r.attempts) };
    assert_eq!(why.reason(), Inadequacy::INVALID_JSON);
    assert_eq!(r.attempts[1].outcome, AttemptOutcome::Answered);
    // Both answers were paid for.
    assert!(r.attempts.iter().all(|a| a.cost_usd > 0.0));
    assert_close(r.cost_usd, attempt_cost(&r.attempts));
    assert!(r.cost_usd > r.attempts[1].cost_usd);

    // No escalations allowed: the weak answer comes back, flagged.
    let router = escalating_router(broken(), SimulatedModel::healthy(), 0);
    let r = router.complete(json_request()).await.unwrap();
    assert_eq!(r.model().as_str(), "mini");
    assert_eq!(r.inadequacy.as_ref().unwrap().reason(), Inadequacy::INVALID_JSON);
    assert_eq!(r.attempts.len(), 1);
    assert!(matches!(r.attempts[0].outcome, AttemptOutcome::Inadequate(_)));
    assert_close(r.cost_usd, r.attempts[0].cost_usd);

    // The stronger model fails: the inadequate answer already paid for is returned, flagged, not an
    // error; the failed attempts are listed and cost nothing.
    let down = SimulatedModel::healthy().with_failures(1.0, 0.0, 0.0);
    let router = escalating_router(broken(), down, 1);
    let r = router.complete(json_request()).await.unwrap();
    assert_eq!(r.model().as_str(), "mini");
    assert_eq!(r.inadequacy.as_ref().unwrap().reason(), Inadequacy::INVALID_JSON);
    assert_eq!(models(&r.attempts), ["mini", "frontier", "frontier", "frontier"]);
    assert_eq!(
        reasons(&r.attempts),
        [AttemptReason::Primary, AttemptReason::Escalation, AttemptReason::Retry, AttemptReason::Retry]
    );
    assert!(r.attempts[1..].iter().all(|a| a.outcome == failed(ErrorKind::Server, Some(500)) && a.cost_usd == 0.0));
    assert_close(r.cost_usd, r.attempts[0].cost_usd);
    // The response's latency is the request's wall time: the weak answer's call plus the failure.
    let router = Router::builder()
        .catalog(mini_frontier())
        .classifier(DifficultyClassifier::default(), 1.0)
        .provider(
            SimulatedProvider::new("sim")
                .time_scale(1.0)
                .model("mini", broken().with_output_tokens(50).with_latency(500 * MS, 100.0))
                .model("frontier", SimulatedModel::healthy().with_failures(1.0, 0.0, 0.0)),
        )
        .quality_check(Checks::standard())
        .execution(ExecutionConfig::new().with_retry(RetryPolicy::no_retries()))
        .jitter_seed(1)
        .build()
        .unwrap();
    let r = router.complete(json_request()).await.unwrap();
    assert_eq!(models(&r.attempts), ["mini", "frontier"]);
    // 500 ms to the first token, then 50 answer and 50 reasoning tokens at 100 tokens/s.
    assert_eq!(r.attempts[0].latency, 1500 * MS);
    assert_eq!(r.latency, r.attempts.iter().map(|a| a.latency).sum::<Duration>());

    // Other faults escalate the same way; an adequate weak answer does not.
    for (faults, reason) in [
        ((1.0, 0.0, 0.0, 0.0), Inadequacy::EMPTY),
        ((0.0, 1.0, 0.0, 0.0), Inadequacy::TRUNCATED),
        ((0.0, 0.0, 1.0, 0.0), Inadequacy::REFUSAL),
    ] {
        let weak = SimulatedModel::healthy().with_answer_faults(faults.0, faults.1, faults.2, faults.3);
        let r = escalating_router(weak, SimulatedModel::healthy(), 1).complete(Request::new(EASY)).await.unwrap();
        assert_eq!(r.model().as_str(), "frontier");
        assert_eq!(r.attempts[0].outcome, AttemptOutcome::Inadequate(Inadequacy::new(reason_check(reason), reason)));
    }
    let r = escalating_router(SimulatedModel::healthy(), SimulatedModel::healthy(), 1)
        .complete(json_request())
        .await
        .unwrap();
    assert_eq!(models(&r.attempts), ["mini"]);
}

fn reason_check(reason: &str) -> &'static str {
    match reason {
        Inadequacy::EMPTY => "non_empty",
        Inadequacy::TRUNCATED => "not_truncated",
        Inadequacy::REFUSAL => "no_refusal",
        _ => "valid_json",
    }
}

// ---------------------------------------------------------------------------------------------------
// 6. Context overflow

#[tokio::test(start_paused = true)]
async fn context_overflow_moves_to_a_larger_window() {
    // Ranked by price: mid (16k), small (8k), big (128k).
    let catalog = Catalog::new([
        ModelProfile::new("mid", "sim").with_pricing(Pricing::per_mtok(0.1, 0.1)).with_context(16_000, 4_000),
        ModelProfile::new("small", "sim").with_pricing(Pricing::per_mtok(0.2, 0.2)).with_context(8_000, 4_000),
        ModelProfile::new("big", "sim").with_pricing(Pricing::per_mtok(5.0, 5.0)).with_context(128_000, 4_000),
    ])
    .unwrap();
    let overflows = || SimulatedModel::healthy().with_context_overflow(1.0);
    let router = |big: SimulatedModel| {
        Router::builder()
            .catalog(catalog.clone())
            .policy(Utility::new())
            .provider(
                SimulatedProvider::new("sim").model("mid", overflows()).model("small", overflows()).model("big", big),
            )
            .build()
            .unwrap()
    };
    let r = router(SimulatedModel::healthy());
    let d = r.route(&Request::new("hello")).unwrap();
    assert_eq!(
        std::iter::once(d.model()).chain(d.fallbacks()).map(ModelId::as_str).collect::<Vec<_>>(),
        ["mid", "small", "big"]
    );
    let resp = r.complete(Request::new("hello")).await.unwrap();
    // The smaller window is passed over; no retry of the overflowing model.
    assert_eq!(models(&resp.attempts), ["mid", "big"]);
    assert_eq!(reasons(&resp.attempts), [AttemptReason::Primary, AttemptReason::LargerContext]);
    assert_eq!(resp.attempts[0].outcome, failed(ErrorKind::ContextOverflow, Some(400)));
    // A context overflow is the request's fault, not the model's: it does not count toward health.
    assert_eq!(health_of(&r, "mid").samples, 0);

    // No larger window left: the overflow comes back, with the attempts.
    let r = router(overflows());
    let e = r.complete(Request::new("hello")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContextOverflow);
    assert_eq!(models(e.attempts()), ["mid", "big"]);
}

// ---------------------------------------------------------------------------------------------------
// 7. Errors retrying cannot fix

#[tokio::test(start_paused = true)]
async fn auth_errors_move_on_or_stop_without_retrying() {
    let locked = || SimulatedModel::healthy().with_auth_failure(1.0);
    let next = sim_router(locked(), SimulatedModel::healthy(), ExecutionConfig::new());
    let started = Instant::now();
    let r = next.complete(Request::new(EASY)).await.unwrap();
    assert_eq!(models(&r.attempts), ["mini", "frontier"]);
    assert_eq!(reasons(&r.attempts), [AttemptReason::Primary, AttemptReason::Fallback]);
    assert_eq!(r.attempts[0].outcome, failed(ErrorKind::Auth, Some(401)));
    assert_eq!(started.elapsed(), Duration::ZERO, "no backoff before moving on");

    let stop = ExecutionConfig::new().with_retry(RetryPolicy::new().with_on_non_retryable(NonRetryable::Stop));
    let stop = sim_router(locked(), SimulatedModel::healthy(), stop);
    let e = stop.complete(Request::new(EASY)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    assert_eq!(e.status(), Some(401));
    assert_eq!(models(e.attempts()), ["mini"]);
    // Retryable errors still fall back under `Stop`.
    let flaky = sim_router(SimulatedModel::healthy().with_failures(1.0, 0.0, 0.0), SimulatedModel::healthy(), {
        ExecutionConfig::new().with_retry(RetryPolicy::no_retries().with_on_non_retryable(NonRetryable::Stop))
    });
    assert_eq!(models(&flaky.complete(Request::new(EASY)).await.unwrap().attempts), ["mini", "frontier"]);
}

// ---------------------------------------------------------------------------------------------------
// 8. Retry-After

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_for_unless_too_long() {
    let lab = Lab::new(&["cheap", "dear"]);
    let router = lab_router(&lab, Utility::new(), ExecutionConfig::new());
    lab.knobs("cheap").fail_with(Some(Fault::RateLimited(7 * SEC)));
    let started = Instant::now();
    let pending = router.complete(Request::new("hello"));
    // Switch the model back on while the router waits.
    let fix = async {
        tokio::time::sleep(SEC).await;
        lab.knobs("cheap").fail_with(None);
    };
    let (r, ()) = tokio::join!(pending, fix);
    let r = r.unwrap();
    assert_eq!(models(&r.attempts), ["cheap", "cheap"]);
    assert_eq!(reasons(&r.attempts), [AttemptReason::Primary, AttemptReason::Retry]);
    assert_eq!(r.attempts[0].outcome, failed(ErrorKind::RateLimited, Some(429)));
    let times = lab.knobs("cheap").call_times();
    // Backoff with jitter is at most 100 ms here: the wait is exactly the Retry-After.
    assert_eq!(times[1] - times[0], 7 * SEC);
    assert_eq!(started.elapsed(), 7 * SEC);

    // Longer than `max_retry_after` (30 s): no wait, the next candidate answers.
    lab.knobs("cheap").fail_with(Some(Fault::RateLimited(60 * SEC)));
    let started = Instant::now();
    let r = router.complete(Request::new("hello")).await.unwrap();
    assert_eq!(models(&r.attempts), ["cheap", "dear"]);
    assert_eq!(reasons(&r.attempts), [AttemptReason::Primary, AttemptReason::Fallback]);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

// ---------------------------------------------------------------------------------------------------
// 9. Deadlines

#[tokio::test(start_paused = true)]
async fn deadlines_bound_the_whole_request() {
    let lab = Lab::new(&["cheap", "dear"]);
    // Every call fails after 4 s; up to 20 retries, 1 s of backoff at most.
    let retry = RetryPolicy::new()
        .with_max_retries_per_model(20)
        .with_max_attempts(40)
        .with_initial_backoff(SEC)
        .with_max_backoff(SEC);
    lab.knobs("cheap").down(true);
    lab.knobs("cheap").set_latency(4 * SEC);
    let only_cheap = || Request::new("hello").with_allowed(["cheap"]);

    // The request's own deadline.
    let router = lab_router(&lab, Utility::new(), ExecutionConfig::new().with_retry(retry.clone()));
    let started = Instant::now();
    let e = router.complete(only_cheap().with_timeout(10 * SEC)).await.unwrap_err();
    assert!(started.elapsed() <= 10 * SEC, "took {:?}", started.elapsed());
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.attempts().len() >= 2, "{e}");
    assert!(e.attempts().iter().all(|a| a.model.as_str() == "cheap"));
    assert_eq!(e.attempts().last().unwrap().outcome.error_kind(), Some(ErrorKind::Timeout));

    // The router's deadline, for requests that set none.
    let router = lab_router(&lab, Utility::new(), ExecutionConfig::new().with_retry(retry).with_timeout(10 * SEC));
    let started = Instant::now();
    let e = router.complete(only_cheap()).await.unwrap_err();
    assert!(started.elapsed() <= 10 * SEC, "took {:?}", started.elapsed());
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(!e.attempts().is_empty());

    // A model that never answers: the attempt is cut at the deadline.
    lab.knobs("cheap").down(false);
    lab.knobs("cheap").hang.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let e = router.complete(only_cheap().with_timeout(3 * SEC)).await.unwrap_err();
    assert_eq!(started.elapsed(), 3 * SEC);
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.attempts().len(), 1);
    assert_eq!(e.attempts()[0].latency, 3 * SEC);
    lab.knobs("cheap").hang.store(false, Ordering::SeqCst);

    // The per-attempt limit moves on to the next model within the deadline.
    let lab = Lab::new(&["cheap", "dear"]);
    lab.knobs("cheap").hang.store(true, Ordering::SeqCst);
    let exec = ExecutionConfig::new().with_retry(RetryPolicy::no_retries()).with_attempt_timeout(2 * SEC);
    let router = lab_router(&lab, Utility::new(), exec);
    let started = Instant::now();
    let r = router.complete(Request::new("hello")).await.unwrap();
    assert_eq!(models(&r.attempts), ["cheap", "dear"]);
    assert_eq!(r.attempts[0].outcome, failed(ErrorKind::Timeout, None));
    assert_eq!(started.elapsed(), 2 * SEC);
}

// ---------------------------------------------------------------------------------------------------
// 10. Streams

#[tokio::test(start_paused = true)]
async fn streams_fall_back_until_the_first_content() {
    let no_retries = || ExecutionConfig::new().with_retry(RetryPolicy::no_retries());
    // Fails when opened, and fails after opening but before any content: both fall back.
    for mini in [
        SimulatedModel::healthy().with_failures(1.0, 0.0, 0.0),
        SimulatedModel::healthy().with_stream_early_failure(1.0),
    ] {
        let router = sim_router(mini, SimulatedModel::healthy(), no_retries());
        let s = router.stream(Request::new(EASY)).await.unwrap();
        assert_eq!(s.model().as_str(), "frontier");
        assert_eq!(models(s.attempts()), ["mini", "frontier"]);
        assert_eq!(reasons(s.attempts()), [AttemptReason::Primary, AttemptReason::Fallback]);
        assert_eq!(s.attempts()[0].outcome, failed(ErrorKind::Server, Some(500)));
        assert_eq!(s.attempts()[1].outcome, AttemptOutcome::Answered);
        let events: Vec<_> = s.collect().await;
        assert!(events.iter().all(Result::is_ok));
        assert!(text_of(&events).starts_with("[frontier]"));
    }
}

#[tokio::test(start_paused = true)]
async fn streams_failing_after_content_end_with_mid_stream() {
    let cut = || SimulatedModel::healthy().with_output_tokens(80).with_stream_cut(1.0);
    let router = sim_router(cut(), cut(), ExecutionConfig::new());
    let s = router.stream(Request::new(EASY)).await.unwrap();
    assert_eq!(models(s.attempts()), ["mini"]);
    let events: Vec<_> = s.collect().await;
    let delivered = text_of(&events);
    assert!(!delivered.is_empty());
    let e = events.last().unwrap().as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MidStream);
    assert_eq!(e.partial_content(), Some(delivered.as_str()));
    assert_eq!(models(e.attempts()), ["mini"]);
    assert_eq!(e.model().unwrap().as_str(), "mini");
    // Committed: nothing falls back after content, and the stream ends after the error.
    assert_eq!(events.iter().filter(|e| e.is_err()).count(), 1);
    assert_eq!(health_of(&router, "mini").consecutive_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn streams_without_content_in_time_move_on() {
    let slow = SimulatedModel::healthy().with_latency(10 * SEC, 100.0);
    let quick = SimulatedModel::healthy().with_latency(200 * MS, 1000.0).with_output_tokens(50);
    let router = Router::builder()
        .catalog(mini_frontier())
        .classifier(DifficultyClassifier::default(), 1.0)
        .provider(SimulatedProvider::new("sim").time_scale(1.0).model("mini", slow).model("frontier", quick))
        .execution(ExecutionConfig::new().with_retry(RetryPolicy::no_retries()).with_first_token_timeout(2 * SEC))
        .jitter_seed(1)
        .build()
        .unwrap();
    let started = Instant::now();
    let s = router.stream(Request::new(EASY)).await.unwrap();
    assert_eq!(models(s.attempts()), ["mini", "frontier"]);
    assert_eq!(s.attempts()[0].outcome, failed(ErrorKind::Timeout, None));
    assert_eq!(s.attempts()[0].latency, 2 * SEC);
    assert_eq!(s.time_to_first_token(), 200 * MS);
    assert_eq!(started.elapsed(), 2 * SEC + 200 * MS);
    let cost_before = s.cost_usd();
    let events: Vec<_> = s.collect().await;
    assert!(events.iter().all(Result::is_ok));
    assert_eq!(cost_before, 0.0);
}

#[tokio::test(start_paused = true)]
async fn streams_that_end_without_content_are_answers() {
    // Like an empty answer from `complete` without a quality check, a stream that ends without any
    // content is returned as it is, with its usage and finish reason.
    let empty = SimulatedModel::healthy().with_answer_faults(1.0, 0.0, 0.0, 0.0);
    let router = sim_router(empty, SimulatedModel::healthy(), ExecutionConfig::new());
    let s = router.stream(Request::new(EASY)).await.unwrap();
    assert_eq!(models(s.attempts()), ["mini"]);
    let events: Vec<_> = s.collect().await;
    assert!(matches!(events.as_slice(), [Ok(StreamEvent::Usage(_)), Ok(StreamEvent::Finish(FinishReason::Stop))]));
}

// ---------------------------------------------------------------------------------------------------
// 11. Cancellation

/// A router whose `cheap` circuit is half-open (its cool-down elapsed), with `cheap` answering again.
async fn half_open_lab() -> (Lab, Router) {
    let lab = Lab::new(&["cheap", "dear"]);
    let router = lab_router(&lab, Utility::new(), breaker_exec());
    lab.knobs("cheap").down(true);
    for _ in 0..5 {
        router.complete(Request::new("hi")).await.unwrap();
    }
    lab.knobs("cheap").down(false);
    tokio::time::advance(10 * SEC).await;
    assert_eq!(health_of(&router, "cheap").state, CircuitState::Open { retry_in: Duration::ZERO });
    (lab, router)
}

#[tokio::test(start_paused = true)]
async fn dropping_a_request_gives_its_probe_slot_back() {
    let (lab, router) = half_open_lab().await;
    lab.knobs("cheap").hang.store(true, Ordering::SeqCst);
    let mut pending = Box::pin(router.complete(Request::new("hi")));
    assert!(tokio::time::timeout(SEC, &mut pending).await.is_err());
    let h = health_of(&router, "cheap");
    assert_eq!((h.state, h.probes_in_flight), (CircuitState::HalfOpen, 1));
    drop(pending);
    assert_eq!(health_of(&router, "cheap").probes_in_flight, 0);

    // Dropped through `select!` as well.
    tokio::select! {
        _ = router.complete(Request::new("hi")) => panic!("a hanging model answered"),
        () = tokio::time::sleep(SEC) => {}
    }
    assert_eq!(health_of(&router, "cheap").probes_in_flight, 0);

    // The router keeps working: the next probes go through and close the circuit.
    lab.knobs("cheap").hang.store(false, Ordering::SeqCst);
    for _ in 0..2 {
        assert_eq!(models(&router.complete(Request::new("hi")).await.unwrap().attempts), ["cheap"]);
    }
    assert_eq!(health_of(&router, "cheap").state, CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_stream_gives_its_probe_slot_back() {
    let (_lab, router) = half_open_lab().await;
    // A committed stream holds its probe slot until it ends.
    let s = router.stream(Request::new("hi")).await.unwrap();
    assert_eq!(s.model().as_str(), "cheap");
    assert_eq!(health_of(&router, "cheap").probes_in_flight, 1);
    drop(s);
    assert_eq!(health_of(&router, "cheap").probes_in_flight, 0);
    assert_eq!(health_of(&router, "cheap").state, CircuitState::HalfOpen);
    // Streams read to the end record their outcome: two close the circuit.
    for _ in 0..2 {
        let events: Vec<_> = router.stream(Request::new("hi")).await.unwrap().collect().await;
        assert!(events.iter().all(Result::is_ok));
    }
    assert_eq!(health_of(&router, "cheap").state, CircuitState::Closed);
    assert_eq!(health_of(&router, "cheap").probes_in_flight, 0);
}

// ---------------------------------------------------------------------------------------------------
// 12. Feedback and observers

#[tokio::test(start_paused = true)]
async fn feedback_is_taken_once_per_known_decision() {
    let counter = Counter::default();
    let router = Router::builder()
        .catalog(mini_frontier())
        .provider(SimulatedProvider::new("sim"))
        .observer(counter.clone())
        .execution(ExecutionConfig::new().with_feedback_capacity(4))
        .jitter_seed(1)
        .build()
        .unwrap();

    let r = router.complete(Request::new(EASY)).await.unwrap();
    let id = r.decision.id();
    router.feedback(id, Feedback::success().with_quality(0.9).with_cost(r.cost_usd)).unwrap();
    let e = router.feedback(id, Feedback::success()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(e.to_string().contains("already has feedback"), "{e}");

    let e = router.feedback(DecisionId::from_u64(u64::MAX), Feedback::success()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(e.to_string().contains("unknown"), "{e}");

    // Feedback that names a caller counts only for that caller's requests.
    let theirs = router.route(&Request::new(EASY).with_key("alice")).unwrap().id();
    let e = router.feedback(theirs, Feedback::failure().with_key("mallory")).unwrap_err();
    assert_eq!(e.to_string(), format!("unknown decision id {theirs}"));
    router.feedback(theirs, Feedback::success().with_key("alice")).unwrap();

    // Only the last 4 decisions are kept.
    let old = router.route(&Request::new(EASY)).unwrap().id();
    for _ in 0..4 {
        router.route(&Request::new(EASY)).unwrap();
    }
    let e = router.feedback(old, Feedback::failure()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(e.to_string().contains("expired"), "{e}");
    // And only for an hour.
    let stale = router.route(&Request::new(EASY)).unwrap().id();
    tokio::time::advance(3601 * SEC).await;
    let e = router.feedback(stale, Feedback::success()).unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");

    // Invalid feedback is rejected, and does not use up the decision.
    let recent = router.route(&Request::new(EASY)).unwrap();
    for bad in [
        Feedback::success().with_quality(1.5),
        Feedback::success().with_quality(-0.1),
        Feedback::success().with_quality(f64::NAN),
        Feedback::success().with_cost(-1.0),
        Feedback::success().with_cost(f64::INFINITY),
    ] {
        let e = router.feedback(recent.id(), bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e}");
    }

    // Feedback on a decision the service executed itself feeds the model's health (the `complete`
    // above recorded one success already).
    let model = recent.model().to_string();
    assert_eq!(model, r.model().as_str());
    assert_eq!(health_of(&router, &model).samples, 1);
    router.feedback(recent.id(), Feedback::success().with_latency(Duration::from_millis(750))).unwrap();
    let h = health_of(&router, &model);
    assert_eq!(h.samples, 2);
    // The simulated call took no time: the average is α · 750 ms with the default α of 0.2.
    assert_close(h.latency_ms.unwrap(), 150.0);
    let failed_route = router.route(&Request::new(EASY)).unwrap();
    router.feedback(failed_route.id(), Feedback::failure().with_latency(SEC)).unwrap();
    let h = health_of(&router, &model);
    assert_eq!(h.samples, 3);
    assert_eq!(h.consecutive_failures, 1);
    assert_close(h.success_rate.unwrap(), 2.0 / 3.0);
    // Feedback without a latency records nothing.
    let plain = router.route(&Request::new(EASY)).unwrap();
    router.feedback(plain.id(), Feedback::success()).unwrap();
    assert_eq!(health_of(&router, &model).samples, 3);

    // The observer saw it all: 11 decisions (1 complete, 10 routes), 1 attempt, 1 finish, 5 feedbacks.
    assert_eq!(counter.get(|c| &c.decisions), 11);
    assert_eq!(counter.get(|c| &c.attempts), 1);
    assert_eq!((counter.get(|c| &c.finished_ok), counter.get(|c| &c.finished_err)), (1, 0));
    assert_eq!(counter.get(|c| &c.feedback), 5);
}

#[tokio::test(start_paused = true)]
async fn observers_see_attempts_and_finishes_of_every_kind() {
    let counter = Counter::default();
    let router = Router::builder()
        .catalog(mini_frontier())
        .classifier(DifficultyClassifier::default(), 1.0)
        .provider(SimulatedProvider::new("sim").model("mini", SimulatedModel::healthy().with_failures(1.0, 0.0, 0.0)))
        .execution(ExecutionConfig::new().with_retry(RetryPolicy::no_retries()))
        .jitter_seed(1)
        .observer(counter.clone())
        .build()
        .unwrap();
    // A fallback: 2 attempts, 1 finish.
    router.complete(Request::new(EASY)).await.unwrap();
    // A failure: 1 attempt, 1 finish with an error.
    router.complete(Request::new(EASY).with_allowed(["mini"])).await.unwrap_err();
    // A stream read to its end: 2 attempts, 1 finish.
    let events: Vec<_> = router.stream(Request::new(EASY)).await.unwrap().collect().await;
    assert!(events.iter().all(Result::is_ok));
    assert_eq!(counter.get(|c| &c.decisions), 3);
    assert_eq!(counter.get(|c| &c.attempts), 5);
    assert_eq!((counter.get(|c| &c.finished_ok), counter.get(|c| &c.finished_err)), (2, 1));
    // Feedback on an executed decision reaches the observer but not the health statistics.
    let samples: u64 = router.health().iter().map(|h| h.samples).sum();
    let d = router.route(&Request::new(EASY)).unwrap();
    let r = router.complete(Request::new(EASY)).await.unwrap();
    router.feedback(r.decision.id(), Feedback::failure().with_latency(SEC)).unwrap();
    assert_eq!(router.health().iter().map(|h| h.samples).sum::<u64>(), samples + 2);
    assert_eq!(counter.get(|c| &c.feedback), 1);
    drop(d);

    // A route-only router cannot execute: the request still finishes, with the error.
    let counter = Counter::default();
    let route_only = Router::builder().catalog(mini_frontier()).observer(counter.clone()).build().unwrap();
    let e = route_only.complete(Request::new(EASY)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProviderMissing);
    let e = route_only.stream(Request::new(EASY)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProviderMissing);
    assert_eq!(counter.get(|c| &c.decisions), 2);
    assert_eq!((counter.get(|c| &c.finished_ok), counter.get(|c| &c.finished_err)), (0, 2));
}

// ---------------------------------------------------------------------------------------------------
// 13. No prompt text in errors or Debug output

#[tokio::test(start_paused = true)]
async fn no_prompt_text_in_attempts_responses_or_errors() {
    let secret = "quokka-saxophone";
    let prompt = || Request::new(format!("tell me about {secret}")).with_response_format(ResponseFormat::Json);
    let check = |what: &str, text: String| assert!(!text.contains(secret), "{what}: {text}");

    // Escalated responses and their attempts.
    let r = escalating_router(
        SimulatedModel::healthy().with_answer_faults(0.0, 0.0, 0.0, 1.0),
        SimulatedModel::healthy(),
        1,
    )
    .complete(prompt())
    .await
    .unwrap();
    assert_eq!(r.attempts.len(), 2);
    check("response", format!("{r:?}"));
    for a in &r.attempts {
        check("attempt", format!("{a:?} {a}"));
    }

    // Errors after retries, fallbacks, overflows and auth failures.
    let failing = |m: SimulatedModel| sim_router(m.clone(), m, ExecutionConfig::new());
    for m in [
        SimulatedModel::healthy().with_failures(0.5, 0.3, 0.2),
        SimulatedModel::healthy().with_context_overflow(1.0),
        SimulatedModel::healthy().with_auth_failure(1.0),
    ] {
        let e = failing(m.clone()).complete(prompt()).await.unwrap_err();
        assert!(!e.attempts().is_empty());
        check("error", format!("{e} {e:?}"));
        let e = failing(m).stream(prompt()).await.unwrap_err();
        check("stream error", format!("{e} {e:?}"));
    }
    // Deadline errors.
    let e = failing(SimulatedModel::healthy().with_failures(1.0, 0.0, 0.0))
        .complete(prompt().with_timeout(MS))
        .await
        .unwrap_err();
    check("timeout", format!("{e} {e:?}"));

    // A stream cut after content: the partial answer is kept out of Display and Debug.
    let cut = SimulatedModel::healthy().with_stream_cut(1.0);
    let router = sim_router(cut.clone(), cut, ExecutionConfig::new());
    let s = router.stream(prompt()).await.unwrap();
    check("stream", format!("{s:?}"));
    let events: Vec<_> = s.collect().await;
    let e = events.last().unwrap().as_ref().unwrap_err();
    assert!(e.partial_content().is_some());
    check("mid-stream error", format!("{e} {e:?}"));
    check("mid-stream source", format!("{:?}", std::error::Error::source(e)));
}

// ---------------------------------------------------------------------------------------------------
// 14. Properties over random fault mixes

#[derive(Clone, Debug)]
struct Mix {
    server: f64,
    rate_limit: f64,
    timeout: f64,
    overflow: f64,
    auth: f64,
    inadequate: f64,
}

impl Mix {
    fn model(&self) -> SimulatedModel {
        let q = self.inadequate / 4.0;
        SimulatedModel::healthy()
            .with_failures(self.server, self.rate_limit, self.timeout)
            .with_context_overflow(self.overflow)
            .with_auth_failure(self.auth)
            .with_answer_faults(q, q, q, q)
    }
}

fn mix() -> impl Strategy<Value = Mix> {
    // Six shares of a unit interval, scaled so that faults take at most 90 % of the draws.
    (0.0..1.0f64, 0.0..1.0f64, 0.0..1.0f64, 0.0..0.3f64, 0.0..0.3f64, 0.0..1.0f64, 0.0..0.9f64).prop_map(
        |(s, r, t, o, a, i, total)| {
            let sum = s + r + t + o + a + i + 1e-9;
            let k = total / sum;
            Mix { server: s * k, rate_limit: r * k, timeout: t * k, overflow: o * k, auth: a * k, inadequate: i * k }
        },
    )
}

fn check_outcome(result: &switchyard::Result<Response>, max_attempts: u32) -> Result<(), TestCaseError> {
    match result {
        Ok(r) => {
            let attempts = &r.attempts;
            prop_assert!(!attempts.is_empty() && attempts.len() <= max_attempts as usize, "{attempts:?}");
            let model = r.model();
            // At most one answer is returned; failed attempts cost nothing.
            prop_assert!(attempts.iter().filter(|a| a.outcome == AttemptOutcome::Answered).count() <= 1);
            prop_assert!(attempts.iter().filter(|a| !a.outcome.is_answer()).all(|a| a.cost_usd == 0.0));
            let answered = attempts.iter().rev().find(|a| a.outcome.is_answer()).unwrap();
            prop_assert_eq!(&answered.model, model);
            match &r.inadequacy {
                None => {
                    prop_assert_eq!(&answered.outcome, &AttemptOutcome::Answered);
                    prop_assert!(std::ptr::eq(answered, attempts.last().unwrap()));
                }
                Some(why) => prop_assert_eq!(&answered.outcome, &AttemptOutcome::Inadequate(why.clone())),
            }
            let sum = attempt_cost(attempts);
            prop_assert!((r.cost_usd - sum).abs() <= 1e-12, "{} != {sum}", r.cost_usd);
        }
        Err(e) => {
            let attempts = e.attempts();
            prop_assert!(!attempts.is_empty(), "{e}");
            prop_assert!(attempts.len() <= max_attempts as usize, "{e}");
            prop_assert!(attempts.iter().all(|a| !a.outcome.is_answer()), "{e}");
            let last = attempts.last().unwrap().outcome.error_kind().unwrap();
            prop_assert!(e.kind() == last || e.kind() == ErrorKind::Timeout, "{e}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_request_ends_once_within_its_budget(
        mini in mix(),
        frontier in mix(),
        seed in any::<u64>(),
        retries in 0..3u32,
        max_attempts in 1..7u32,
        escalations in 0..3u32,
        checked in any::<bool>(),
        stop in any::<bool>(),
    ) {
        let on_non_retryable = if stop { NonRetryable::Stop } else { NonRetryable::NextCandidate };
        let retry = RetryPolicy::new()
            .with_max_retries_per_model(retries)
            .with_max_attempts(max_attempts)
            .with_on_non_retryable(on_non_retryable);
        let exec = ExecutionConfig::new()
            .with_retry(retry)
            .with_max_escalations(escalations)
            .with_health(HealthConfig::new().with_window(10).with_min_requests(4).with_open_for(Duration::from_millis(2_000)));
        let mut builder = Router::builder()
            .catalog(mini_frontier())
            .classifier(DifficultyClassifier::default(), 1.0)
            .provider(SimulatedProvider::new("sim").seed(seed).model("mini", mini.model()).model("frontier", frontier.model()))
            .execution(exec);
        if checked {
            builder = builder.quality_check(Checks::standard());
        }
        let router = builder.build().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        runtime.block_on(async {
            for i in 0..12 {
                let req = if i % 2 == 0 { Request::new(EASY) } else { json_request() };
                let result = router.complete(req).await;
                check_outcome(&result, max_attempts)?;
                tokio::time::advance(500 * MS).await;
            }
            prop_assert!(router.health().iter().all(|h| h.probes_in_flight == 0));
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------------------------------------------
// Outcomes that are not the model's doing

#[tokio::test(start_paused = true)]
async fn a_request_deadline_that_cuts_an_attempt_does_not_count_against_the_model() {
    let lab = Lab::new(&["cheap", "dear"]);
    let router = lab_router(&lab, Utility::new(), breaker_exec());
    lab.knobs("cheap").set_latency(10 * SEC);
    // Tight deadlines cut every attempt: the caller's choice, not the model's failure.
    for _ in 0..10 {
        let e = router.complete(Request::new("hi").with_allowed(["cheap"]).with_timeout(SEC)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert_eq!(e.attempts().len(), 1);
    }
    let cheap = health_of(&router, "cheap");
    assert_eq!(cheap.samples, 0, "{cheap:?}");
    assert_eq!(cheap.state, CircuitState::Closed);
    // The model's own attempt limit still counts.
    let exec = breaker_exec().with_attempt_timeout(SEC);
    let router = lab_router(&lab, Utility::new(), exec);
    let _ = router.complete(Request::new("hi").with_allowed(["cheap"])).await.unwrap_err();
    assert_eq!(health_of(&router, "cheap").samples, 1);
}

#[tokio::test(start_paused = true)]
async fn after_a_context_overflow_no_smaller_window_is_tried() {
    // Ranked by price: `small`, `mid`, `tiny`. `small` overflows, `mid` (larger) is down, and `tiny`,
    // whose window is smaller than the one that overflowed, must not be tried as a fallback.
    let catalog = Catalog::new([
        ModelProfile::new("small", "sim").with_pricing(Pricing::per_mtok(0.1, 0.1)).with_context(16_000, 1_000),
        ModelProfile::new("mid", "sim").with_pricing(Pricing::per_mtok(0.2, 0.2)).with_context(32_000, 1_000),
        ModelProfile::new("tiny", "sim").with_pricing(Pricing::per_mtok(0.3, 0.3)).with_context(8_000, 1_000),
    ])
    .unwrap();
    let router = Router::builder()
        .catalog(catalog)
        .provider(
            SimulatedProvider::new("sim")
                .model("small", SimulatedModel::healthy().with_context_overflow(1.0))
                .model("mid", SimulatedModel::healthy().with_failures(1.0, 0.0, 0.0))
                .model("tiny", SimulatedModel::healthy()),
        )
        .execution(ExecutionConfig::new().with_retry(RetryPolicy::no_retries()))
        .jitter_seed(1)
        .build()
        .unwrap();
    let e = router.complete(Request::new("hi")).await.unwrap_err();
    assert_eq!(models(e.attempts()), ["small", "mid"], "{e}");
    assert_eq!(reasons(e.attempts()), [AttemptReason::Primary, AttemptReason::LargerContext]);
}

#[tokio::test(start_paused = true)]
async fn a_stream_read_up_to_its_finish_counts_as_a_success() {
    let router = Router::builder()
        .catalog(mini_frontier())
        .provider(SimulatedProvider::new("sim").default_model(SimulatedModel::healthy().with_output_tokens(30)))
        .jitter_seed(1)
        .build()
        .unwrap();
    let mut s = router.stream(Request::new(EASY).with_allowed(["mini"])).await.unwrap();
    while let Some(event) = s.next().await {
        if matches!(event, Ok(StreamEvent::Finish(_))) {
            break; // stop at the finish, without waiting for the end of the stream
        }
    }
    drop(s);
    let mini = health_of(&router, "mini");
    assert_eq!((mini.samples, mini.consecutive_failures), (1, 0), "{mini:?}");
}

#[tokio::test(start_paused = true)]
async fn a_committed_stream_ends_at_the_request_deadline() {
    let router = Router::builder()
        .catalog(mini_frontier())
        .provider(StreamsOnly(trickling))
        .execution(ExecutionConfig::new().with_first_token_timeout(3 * SEC))
        .build()
        .unwrap();
    let started = Instant::now();
    let events: Vec<_> = router.stream(Request::new(EASY).with_timeout(9 * SEC)).await.unwrap().collect().await;
    assert_eq!(started.elapsed(), 9 * SEC);
    let e = events.last().unwrap().as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MidStream);
    assert_eq!(e.partial_content(), Some("more more more more "));
    assert!(e.to_string().contains("deadline"), "{e}");
    assert_eq!(e.attempts().last().unwrap().outcome, failed(ErrorKind::Timeout, None));
}

/// After an escalation the tokens the caller has left count both answers: the weak one as used, the
/// strong one as reserved; the request itself counts once.
#[tokio::test(start_paused = true)]
async fn after_an_escalation_the_callers_room_counts_both_answers() {
    use switchyard::limits::{CallerRateLimit, LimitsConfig, Scope};
    let limited = |escalations: u32| {
        let broken = SimulatedModel::healthy().with_answer_faults(0.0, 0.0, 0.0, 1.0);
        Router::builder()
            .catalog(mini_frontier())
            .classifier(DifficultyClassifier::default(), 1.0)
            .policy(Utility::new().answer_value(0.02))
            .provider(
                SimulatedProvider::new("sim")
                    .seed(3)
                    .model("mini", broken)
                    .model("frontier", SimulatedModel::healthy()),
            )
            .quality_check(Checks::standard())
            .execution(ExecutionConfig::new().with_max_escalations(escalations))
            .limits(LimitsConfig::new().caller_rate_limit(
                CallerRateLimit::new(Scope::Key).requests_per_minute(10).tokens_per_minute(1_000_000),
            ))
            .build()
            .unwrap()
    };
    let request = || json_request().with_key("k");
    // Without escalation: the one admission's reading.
    let once = limited(0).complete(request()).await.unwrap();
    assert_eq!(once.attempts.len(), 1);
    let first = once.caller_limits.unwrap();
    // With it: the requests as counted once, the tokens as the escalation's admission left them.
    let escalated = limited(1).complete(request()).await.unwrap();
    assert_eq!(models(&escalated.attempts), ["mini", "frontier"]);
    let after = escalated.caller_limits.unwrap();
    assert_eq!(after.requests.map(|r| (r.limit, r.remaining)), Some((10, 9)));
    // The strong model's reservation is at least the weak one's (the same request, the same default
    // output limit), and the weak answer's tokens come on top: less room than after one admission.
    let (before, now) = (first.tokens.unwrap().remaining, after.tokens.unwrap().remaining);
    assert!(now < before, "{now} >= {before}");
}
