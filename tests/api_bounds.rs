//! Compile-time guarantees of the public API (STYLE.md rule 1): the four traits are object safe and
//! `Send + Sync`, the handle types are `Send + Sync` (and `Router` is `Clone`), the futures of
//! `complete` and `stream` are `Send`, the forwarding impls exist, and closures implement `Policy`,
//! `CostModel` and (through `classify::from_fn` / `classify::logit_fn`) `Classifier`.
//!
//! Every adapter is also wired into a real router and routed once, with an assertion that it was the
//! one that decided, so a forwarding impl that silently did nothing would fail here.

#![allow(clippy::unwrap_used, reason = "tests and their helpers may unwrap")]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use switchyard::catalog::Ability;
use switchyard::classify::{self, ClassifyInput, DifficultyClassifier, IntentClassifier};
use switchyard::policy::{Candidate, RejectReason};
use switchyard::{
    Capabilities, Catalog, Classifier, Completion, CostEstimate, CostModel, Decision, Error, ErrorKind, FinishReason,
    ModelProfile, Policy, PolicyInput, Pricing, Provider, Ranking, Request, Response, Result, RoutedStream, Router,
    SignalKey, Signals, SimulatedProvider, StreamEvent, TokenPriceCostModel, Usage, Utility,
};

// Object safety of all four traits, in one line.
const _: fn(&dyn Classifier, &dyn CostModel, &dyn Policy, &dyn Provider) = |_, _, _, _| {};

fn is_send_sync<T: Send + Sync>() {}
fn is_send_sync_clone<T: Send + Sync + Clone>() {}
fn is_send<T: Send>() {}
fn is_classifier<T: Classifier>() {}
fn is_policy<T: Policy>() {}
fn is_cost_model<T: CostModel>() {}
fn is_provider<T: Provider>() {}
fn send_future<F: Future + Send>(f: F) -> F {
    f
}

#[test]
fn handle_and_data_types_are_send_sync() {
    is_send_sync_clone::<Router>();
    is_send_sync_clone::<Catalog>();
    is_send_sync::<Decision>();
    is_send_sync_clone::<switchyard::catalog::Resolved>();
    is_send_sync_clone::<switchyard::catalog::Group>();
    is_send_sync::<Error>();
    is_send_sync::<Request>();
    is_send_sync::<Response>();
    is_send_sync::<ModelProfile>();
    is_send::<RoutedStream>();
    is_send_sync::<Arc<dyn Classifier>>();
    is_send_sync::<Arc<dyn Policy>>();
    is_send_sync::<Arc<dyn CostModel>>();
    is_send_sync::<Arc<dyn Provider>>();
    is_send_sync_clone::<switchyard::Experiment>();
    is_send_sync_clone::<switchyard::policy::experiment::ExperimentHandle>();
    is_send_sync_clone::<switchyard::Bandit>();
    is_send_sync_clone::<switchyard::policy::experiment::SpendController>();
    is_send_sync_clone::<switchyard::policy::experiment::Knob>();
    is_send_sync::<switchyard::policy::experiment::ExperimentReport>();
    // `Error` is documented as "one pointer", cheap to move.
    assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
}

#[test]
fn forwarding_impls_exist() {
    is_classifier::<Arc<dyn Classifier>>();
    is_classifier::<Box<dyn Classifier>>();
    is_classifier::<&'static dyn Classifier>();
    is_policy::<Arc<dyn Policy>>();
    is_cost_model::<Arc<dyn CostModel>>();
    is_provider::<Arc<dyn Provider>>();
    is_provider::<Box<dyn Provider>>();
}

fn two_models() -> Catalog {
    Catalog::new([
        ModelProfile::new("cheap", "sim").with_pricing(Pricing::per_mtok(0.1, 0.4)).with_ability(Ability::new(1.0)),
        ModelProfile::new("dear", "sim").with_pricing(Pricing::per_mtok(5.0, 20.0)).with_ability(Ability::new(4.0)),
    ])
    .unwrap()
}

#[tokio::test]
async fn futures_of_complete_and_stream_are_send() {
    let router = Router::builder().catalog(two_models()).provider(SimulatedProvider::new("sim")).build().unwrap();
    let response = send_future(router.complete(Request::new("hello"))).await.unwrap();
    assert!(!response.model().as_str().is_empty());
    let mut stream = send_future(router.stream(Request::new("hello"))).await.unwrap();
    let mut finished = false;
    while let Some(event) = stream.next().await {
        if matches!(event.unwrap(), StreamEvent::Finish(_)) {
            finished = true;
        }
    }
    assert!(finished);
    // The futures can move to another thread of a multi-threaded runtime.
    let r2 = router.clone();
    #[allow(clippy::disallowed_methods, reason = "the test proves the future can be spawned")]
    let handle = tokio::spawn(async move { r2.complete(Request::new("from another task")).await.map(|r| r.usage) });
    assert!(handle.await.unwrap().unwrap().output_tokens > 0);
}

#[test]
fn arc_dyn_policy_forwards_observe_and_experiments() {
    // An experiment behind `Arc<dyn Policy>`: the router must still find its handle and its outcomes.
    let experiment = switchyard::Experiment::builder("fwd")
        .arm("a", 1.0, Utility::new())
        .arm("b", 1.0, Utility::new().answer_value(1e9))
        .build()
        .unwrap();
    let policy: Arc<dyn Policy> = Arc::new(experiment);
    let router = Router::builder().catalog(two_models()).policy(policy).build().unwrap();
    let handle = router.experiment("fwd").unwrap();
    let d = router.route(&Request::new("hello").with_key("u1")).unwrap();
    router.feedback(d.id(), switchyard::Feedback::success()).unwrap();
    assert_eq!(handle.report().arms.iter().map(|a| a.feedback).sum::<u64>(), 1);
}

#[test]
fn arc_dyn_classifier_policy_and_cost_model_drive_a_router() {
    // Shared trait objects, passed where `impl Trait` is expected: the forwarding impls must forward
    // every method (a classifier's `model_logit` and `name`, a policy's `name` and `validate`).
    let classifier: Arc<dyn Classifier> = Arc::new(DifficultyClassifier::default());
    let policy: Arc<dyn Policy> = Arc::new(Utility::new().answer_value(1e9));
    let cost: Arc<dyn CostModel> = Arc::new(TokenPriceCostModel::new());
    let router = Router::builder()
        .catalog(two_models())
        .classifier(classifier.clone(), 1.0)
        .policy(policy)
        .cost_model(cost)
        .build()
        .unwrap();
    let d = router.route(&Request::new("What is the capital of France?")).unwrap();
    // λ = 0: the most able model wins; the policy name comes through the Arc.
    assert_eq!(d.model().as_str(), "dear");
    assert_eq!(d.policy(), "utility");
    assert!(d.difficulty().is_some(), "the Arc'd classifier ran");
    let dear = d.candidate("dear").unwrap();
    let expected_logit = 4.0 - d.difficulty().unwrap();
    assert!((dear.logit - expected_logit).abs() < 1e-12, "{dear:?}");
    assert!(dear.cost.usd > 0.0);

    // `validate` is forwarded through `Arc<dyn Policy>` too.
    let bad: Arc<dyn Policy> = Arc::new(Utility::new().answer_value(-1.0));
    let err = Router::builder().catalog(two_models()).policy(bad).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);

    // `Box<dyn Classifier>` works as well.
    let boxed: Box<dyn Classifier> = Box::new(DifficultyClassifier::default());
    let router = Router::builder().catalog(two_models()).classifier(boxed, 2.0).build().unwrap();
    let d = router.route(&Request::new("hi")).unwrap();
    let cheap = d.candidate("cheap").unwrap();
    assert!((cheap.logit - 2.0 * (1.0 - d.difficulty().unwrap())).abs() < 1e-12);
}

/// A provider written by hand (the expansion `#[async_trait]` produces), echoing the prompt.
struct Echo {
    calls: AtomicUsize,
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Provider for Echo {
    fn name(&self) -> &str {
        "echo"
    }

    fn complete<'a, 'b, 'c, 'f>(
        &'a self,
        model: &'b ModelProfile,
        request: &'c Request,
    ) -> BoxFut<'f, Result<Completion>>
    where
        'a: 'f,
        'b: 'f,
        'c: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let text = request.last_user_text().unwrap_or_default();
            Ok(Completion::new(format!("{}:{text}", model.id), FinishReason::Stop, Usage::new(10, 5)))
        })
    }
}

#[tokio::test]
async fn arc_and_box_dyn_provider_serve_requests() {
    let concrete = Arc::new(Echo { calls: AtomicUsize::new(0) });
    let echo: Arc<dyn Provider> = concrete.clone();
    let router = Router::builder()
        .catalog(Catalog::new([ModelProfile::new("only", "echo").with_pricing(Pricing::per_mtok(1.0, 2.0))]).unwrap())
        .provider(echo.clone())
        .build()
        .unwrap();
    let r = router.complete(Request::new("ping")).await.unwrap();
    assert_eq!(r.content(), "only:ping");
    assert_eq!(r.usage, Usage::new(10, 5));
    // Actual cost: 10 input tokens at $1/M plus 5 output tokens at $2/M.
    assert!((r.cost_usd - 20e-6).abs() < 1e-15, "{}", r.cost_usd);

    // The default `stream` replays `complete`, and is forwarded through `Box<dyn Provider>`.
    let boxed: Box<dyn Provider> = Box::new(Echo { calls: AtomicUsize::new(0) });
    let router = Router::builder()
        .catalog(Catalog::new([ModelProfile::new("only", "echo")]).unwrap())
        .provider(boxed)
        .build()
        .unwrap();
    let events: Vec<StreamEvent> =
        router.stream(Request::new("pong")).await.unwrap().map(|e| e.unwrap()).collect().await;
    assert_eq!(
        events,
        vec![
            StreamEvent::Delta("only:pong".into()),
            StreamEvent::Usage(Usage::new(10, 5)),
            StreamEvent::Finish(FinishReason::Stop)
        ]
    );
    let via_arc = Router::builder()
        .catalog(Catalog::new([ModelProfile::new("only", "echo")]).unwrap())
        .provider(echo.clone())
        .build()
        .unwrap();
    via_arc.complete(Request::new("x")).await.unwrap();
    // Both routers called the one shared instance.
    assert_eq!(concrete.calls.load(Ordering::Relaxed), 2);
}

#[test]
fn closure_policy_decides() {
    // The dearest candidate first: the opposite of every built-in default, so the closure must have run.
    let policy =
        |input: &PolicyInput<'_>| -> Result<Ranking> { Ok(Ranking::by_score(input, |c: &Candidate| c.cost.usd)) };
    let router = Router::builder().catalog(two_models()).policy(policy).build().unwrap();
    let d = router.route(&Request::new("hello")).unwrap();
    assert_eq!(d.model().as_str(), "dear");
    assert_eq!(d.fallbacks().map(|m| m.as_str()).collect::<Vec<_>>(), ["cheap"]);
    assert_eq!(d.policy(), "custom");

    // A closure that fails makes routing fail with `Routing`.
    let failing = |_: &PolicyInput<'_>| -> Result<Ranking> { Err(Error::new(ErrorKind::BadRequest, "nope")) };
    let router = Router::builder().catalog(two_models()).policy(failing).build().unwrap();
    assert_eq!(router.route(&Request::new("hello")).unwrap_err().kind(), ErrorKind::Routing);

    // A closure that breaks the ranking contract (empty ranking) is caught.
    let empty = |_: &PolicyInput<'_>| -> Result<Ranking> { Ok(Ranking::new()) };
    let router = Router::builder().catalog(two_models()).policy(empty).build().unwrap();
    assert_eq!(router.route(&Request::new("hello")).unwrap_err().kind(), ErrorKind::Routing);

    // ... and so is one that ranks a model twice, or one that is not a candidate.
    let twice = |_: &PolicyInput<'_>| -> Result<Ranking> {
        let mut r = Ranking::new();
        r.push(0, 1.0);
        r.push(0, 0.5);
        Ok(r)
    };
    let router = Router::builder().catalog(two_models()).policy(twice).build().unwrap();
    assert_eq!(router.route(&Request::new("hello")).unwrap_err().kind(), ErrorKind::Routing);
    let stranger = |_: &PolicyInput<'_>| -> Result<Ranking> {
        let mut r = Ranking::new();
        r.push(7, 1.0);
        Ok(r)
    };
    let router = Router::builder().catalog(two_models()).policy(stranger).build().unwrap();
    assert_eq!(router.route(&Request::new("hello")).unwrap_err().kind(), ErrorKind::Routing);
}

#[test]
fn closure_cost_model_prices_candidates() {
    let cost = |_: &Request, _: &Signals, m: &ModelProfile| -> CostEstimate {
        CostEstimate::usd(if m.id.as_str() == "cheap" { 3.0 } else { 0.5 })
    };
    let router = Router::builder()
        .catalog(two_models())
        .cost_model(cost)
        .policy(Utility::new().answer_value(0.002))
        .build()
        .unwrap();
    let d = router.route(&Request::new("hello")).unwrap();
    assert_eq!(d.candidate("cheap").unwrap().cost.usd, 3.0);
    assert_eq!(d.candidate("dear").unwrap().cost.usd, 0.5);
    // With a heavy cost weight the closure's prices, not the list prices, decide.
    assert_eq!(d.model().as_str(), "dear");
    assert_eq!(d.estimated_cost(), 0.5);

    // An invalid estimate removes the model, and says why.
    let nan = |_: &Request, _: &Signals, m: &ModelProfile| -> CostEstimate {
        CostEstimate::usd(if m.id.as_str() == "cheap" { f64::NAN } else { 1.0 })
    };
    let router = Router::builder().catalog(two_models()).cost_model(nan).build().unwrap();
    let d = router.route(&Request::new("hello")).unwrap();
    assert_eq!(d.model().as_str(), "dear");
    assert_eq!(d.rejections().len(), 1);
    assert_eq!(d.rejections()[0].model().as_str(), "cheap");
    assert!(matches!(d.rejections()[0].reason(), RejectReason::InvalidCost { usd } if usd.is_nan()));
}

#[test]
fn closure_classifiers_from_fn_and_logit_fn() {
    const VIP: SignalKey = SignalKey("test.vip");
    let vip = classify::from_fn("vip", |input: &ClassifyInput<'_>, signals: &mut Signals| {
        let is_vip = input.request.hints.tags.iter().any(|t| t == "vip");
        signals.set(VIP, if is_vip { 1.0 } else { 0.0 });
        Ok(())
    });
    // Reads the signal `vip` wrote: `model_logit` runs after every classifier's `classify`.
    let boost = classify::logit_fn("boost", |signals: &Signals, model: &ModelProfile| {
        let v = signals.get(VIP).unwrap_or(-100.0);
        if model.id.as_str() == "dear" { 3.0 * v } else { 0.0 }
    });
    let router = Router::builder()
        .catalog(two_models())
        .classifier(vip, 1.0)
        .classifier(boost, 2.0)
        .policy(Utility::new().answer_value(0.04))
        .build()
        .unwrap();

    let plain = router.route(&Request::new("hello")).unwrap();
    assert_eq!(plain.candidate("dear").unwrap().logit, 0.0);
    assert_eq!(plain.candidate("cheap").unwrap().logit, 0.0);
    assert_eq!(plain.model().as_str(), "cheap");

    let vip_req = router.route(&Request::new("hello").with_tag("vip")).unwrap();
    assert_eq!(vip_req.candidate("dear").unwrap().logit, 6.0, "weight 2 × logit 3");
    assert_eq!(vip_req.candidate("cheap").unwrap().logit, 0.0);
    assert_eq!(vip_req.model().as_str(), "dear");

    // A failing closure classifier fails routing with `Routing`, naming the classifier.
    let broken = classify::from_fn("broken", |_: &ClassifyInput<'_>, _: &mut Signals| {
        Err(Error::new(ErrorKind::Decode, "boom"))
    });
    let router = Router::builder().catalog(two_models()).classifier(broken, 1.0).build().unwrap();
    let err = router.route(&Request::new("hello")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Routing);
    assert!(err.to_string().contains("broken"), "{err}");

    // A non-finite `model_logit` is treated as zero.
    let inf = classify::logit_fn("inf", |_: &Signals, _: &ModelProfile| f64::INFINITY);
    let router = Router::builder().catalog(two_models()).classifier(inf, 1.0).build().unwrap();
    let d = router.route(&Request::new("hello")).unwrap();
    assert!(d.candidates().iter().all(|c| c.logit == 0.0 && c.p == 0.5), "{d:?}");
}

#[test]
fn intent_classifier_and_capabilities_are_public() {
    // A smoke check that the pieces a user combines are reachable from the crate root and modules.
    let router = Router::builder().catalog(two_models()).classifier(IntentClassifier::default(), 1.0).build().unwrap();
    let d = router.route(&Request::new("Translate this sentence into French: the cat sleeps.")).unwrap();
    assert_eq!(d.intent().map(|i| i.intent), Some(classify::Intent::Translation));
    assert!(Capabilities::ALL.contains(Capabilities::TOOLS | Capabilities::STREAMING));
}
