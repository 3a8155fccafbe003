//! Experiments, their statistics, the bandit and the λ controller, through the public API: sticky
//! and weighted assignment, holdout and kill switch, the sequential test's error rate and power,
//! feedback errors, bounded state, bandit convergence and the controller under a traffic shift.

#![allow(clippy::unwrap_used, reason = "tests and their helpers may unwrap")]

mod fixtures;

use std::collections::HashMap;
use std::time::Duration;

use fixtures::mini_frontier;
use proptest::prelude::*;
use switchyard::catalog::Ability;
use switchyard::classify::{self, ClassifyInput};
use switchyard::execute::DecisionId;
use switchyard::policy::experiment::{
    Assignment, Conclusion, ControllerTarget, ExperimentReport, Knob, Metric, SequentialTest, SpendController, Unkeyed,
    assignment_unit,
};
use switchyard::policy::{Action, Candidate, Condition, Memo, Outcome, Rule};
use switchyard::{
    Bandit, Catalog, CheapestCapable, CostEstimate, ErrorKind, ExecutionConfig, Experiment, Feedback, ModelProfile,
    Policy, PolicyInput, Pricing, Request, Router, Rules, Signals, Utility,
};

/// SplitMix64: the tests' own seeded randomness for synthetic outcomes.
struct TestRng(u64);

impl TestRng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn bernoulli(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

fn two_arms(name: &str) -> switchyard::policy::experiment::ExperimentBuilder {
    Experiment::builder(name).arm("control", 1.0, Utility::new()).arm("treatment", 1.0, CheapestCapable::new(0.5))
}

fn router_with(policy: impl Policy + 'static) -> Router {
    Router::builder().catalog(mini_frontier()).policy(policy).seed(3).build().unwrap()
}

// ---------------------------------------------------------------------------------------------------
// Assignment

#[test]
fn assignment_is_sticky_and_matches_the_weights_over_100k_keys() {
    let e = Experiment::builder("weights")
        .arm("a", 1.0, Utility::new())
        .arm("b", 2.0, Utility::new())
        .arm("c", 1.0, Utility::new())
        .arm("off", 0.0, Utility::new())
        .build()
        .unwrap();
    let h = e.handle();
    let n = 100_000;
    let mut counts: HashMap<String, u64> = HashMap::new();
    for i in 0..n {
        let key = format!("user-{i}");
        let tag = h.arm_for(Some(&key)).unwrap();
        assert_eq!(tag.assignment(), Assignment::Assigned);
        assert_eq!(h.arm_for(Some(&key)).unwrap(), tag, "sticky");
        *counts.entry(tag.arm().to_owned()).or_default() += 1;
    }
    assert_eq!(counts.get("off"), None, "a zero-weight arm gets no traffic");
    for (arm, share) in [("a", 0.25), ("b", 0.5), ("c", 0.25)] {
        let observed = counts[arm] as f64 / n as f64;
        // Five binomial standard deviations: a fair split fails this with probability below 1e-6, and
        // the keys are fixed, so the outcome is the same on every run.
        let bound = 5.0 * (share * (1.0 - share) / n as f64).sqrt();
        assert!((observed - share).abs() < bound, "{arm}: {observed} vs {share} ± {bound}");
    }
}

#[test]
fn routed_decisions_carry_their_arm_and_stay_sticky() {
    let e = two_arms("sticky").build().unwrap();
    let h = e.handle();
    let router = router_with(e);
    let mut seen = HashMap::new();
    for i in 0..400 {
        let key = format!("k{i}");
        let request = Request::new("Summarise the causes of the first world war in two sentences.").with_key(&key);
        let first = router.route(&request).unwrap();
        let again = router.route(&request).unwrap();
        let tag = first.arm().unwrap();
        assert_eq!(first, again);
        assert_eq!(tag.experiment(), "sticky");
        assert_eq!(Some(tag.clone()), h.arm_for(Some(&key)));
        assert!(first.explain().contains(&format!("arm `{}`", tag.arm())), "{}", first.explain());
        *seen.entry(tag.arm().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    // The split is the pinned hash: any process computes the same arm.
    let u = assignment_unit("sticky", "k0");
    assert_eq!(h.arm_for(Some("k0")).unwrap().arm(), if u < 0.5 { "control" } else { "treatment" });
}

#[test]
fn experiments_with_different_salts_split_independently() {
    let a = two_arms("first").build().unwrap().handle();
    let b = two_arms("second").build().unwrap().handle();
    let same = two_arms("third").salt("first").build().unwrap().handle();
    let n = 40_000;
    let mut both = 0u64;
    for i in 0..n {
        let key = format!("user-{i}");
        let (x, y) = (a.arm_for(Some(&key)).unwrap(), b.arm_for(Some(&key)).unwrap());
        both += u64::from(x.arm() == "treatment" && y.arm() == "treatment");
        assert_eq!(same.arm_for(Some(&key)).unwrap().arm(), x.arm(), "the same salt, the same split");
    }
    // Independent halves overlap on a quarter of the keys.
    let share = both as f64 / n as f64;
    assert!((share - 0.25).abs() < 5.0 * (0.25 * 0.75 / n as f64).sqrt(), "{share}");
}

#[test]
fn holdout_takes_its_fraction_and_the_arms_split_the_rest() {
    let h = two_arms("held").holdout(0.1).build().unwrap().handle();
    let n = 50_000;
    let (mut held, mut treated) = (0u64, 0u64);
    for i in 0..n {
        let tag = h.arm_for(Some(&format!("u{i}"))).unwrap();
        match tag.assignment() {
            Assignment::Holdout => {
                assert_eq!(tag.arm(), "holdout");
                held += 1;
            }
            Assignment::Assigned => treated += u64::from(tag.arm() == "treatment"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let share = held as f64 / n as f64;
    assert!((share - 0.1).abs() < 5.0 * (0.09 / n as f64).sqrt(), "{share}");
    let rest = treated as f64 / (n - held) as f64;
    assert!((rest - 0.5).abs() < 5.0 * (0.25 / (n - held) as f64).sqrt(), "{rest}");
    // A shared holdout salt holds out the same users in every experiment.
    let x = two_arms("x").holdout(0.2).holdout_salt("global").build().unwrap().handle();
    let y = two_arms("y").holdout(0.2).holdout_salt("global").build().unwrap().handle();
    for i in 0..2_000 {
        let key = format!("u{i}");
        let held_x = x.arm_for(Some(&key)).unwrap().assignment() == Assignment::Holdout;
        let held_y = y.arm_for(Some(&key)).unwrap().assignment() == Assignment::Holdout;
        assert_eq!(held_x, held_y);
    }
}

#[test]
fn unkeyed_requests_go_to_the_control_or_are_rejected() {
    let router = router_with(two_arms("unkeyed").build().unwrap());
    let d = router.route(&Request::new("hello")).unwrap();
    let tag = d.arm().unwrap();
    assert_eq!((tag.arm(), tag.assignment()), ("control", Assignment::Unkeyed));
    assert!(d.explain().contains("(unkeyed)"), "{}", d.explain());
    router.feedback(d.id(), Feedback::success()).unwrap();
    let report = router.experiment("unkeyed").unwrap().report();
    assert_eq!(report.unkeyed_feedback, 1);
    assert_eq!(report.arms[0].feedback, 0, "unkeyed outcomes are not randomised and stay out of the arms");

    let strict = router_with(two_arms("strict").unkeyed(Unkeyed::Reject).build().unwrap());
    let e = strict.route(&Request::new("hello")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e}");
    assert!(e.to_string().contains("strict") && !e.to_string().contains("hello"), "{e}");
    assert!(strict.route(&Request::new("hello").with_key("u1")).is_ok());
}

#[test]
fn kill_switch_sends_everything_to_the_control_at_run_time() {
    let router = router_with(two_arms("killable").build().unwrap());
    let handle = router.experiment("killable").unwrap();
    let key = (0..).map(|i| format!("u{i}")).find(|k| handle.arm_for(Some(k)).unwrap().arm() == "treatment").unwrap();
    let request = Request::new("Explain recursion to a child.").with_key(&key);
    assert_eq!(router.route(&request).unwrap().arm().unwrap().arm(), "treatment");

    // Another clone of the router (another thread's handle) flips it.
    let other = router.clone();
    std::thread::spawn(move || other.experiment("killable").unwrap().kill()).join().unwrap();
    assert!(handle.is_killed());
    let d = router.route(&request).unwrap();
    let tag = d.arm().unwrap();
    assert_eq!((tag.arm(), tag.assignment()), ("control", Assignment::Killed));
    router.feedback(d.id(), Feedback::success()).unwrap();
    let report = handle.report();
    assert!(report.killed && report.killed_feedback == 1);
    assert!(report.to_string().contains("killed"), "{report}");

    handle.revive();
    assert_eq!(router.route(&request).unwrap().arm().unwrap().arm(), "treatment");
}

#[test]
fn kill_switch_under_concurrent_routing() {
    let router = router_with(two_arms("race").build().unwrap());
    let handle = router.experiment("race").unwrap();
    std::thread::scope(|s| {
        for t in 0..3 {
            let router = &router;
            s.spawn(move || {
                for i in 0..2_000 {
                    let d = router.route(&Request::new("hi").with_key(format!("t{t}-{i}"))).unwrap();
                    let tag = d.arm().unwrap();
                    // Whatever the switch's state, a killed decision is always the control's.
                    if tag.assignment() == Assignment::Killed {
                        assert_eq!(tag.arm(), "control");
                    }
                }
            });
        }
        for _ in 0..50 {
            handle.kill();
            std::thread::yield_now();
            handle.revive();
        }
        handle.kill();
    });
    let d = router.route(&Request::new("hi").with_key("after")).unwrap();
    assert_eq!(d.arm().unwrap().assignment(), Assignment::Killed);
}

#[test]
fn build_validates_the_experiment() {
    let config = |b: switchyard::policy::experiment::ExperimentBuilder| {
        let e = b.build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        e.to_string()
    };
    let one = Experiment::builder("one").arm("a", 1.0, Utility::new());
    assert!(config(one).contains("at least two arms"));
    let dup = Experiment::builder("d").arm("a", 1.0, Utility::new()).arm("a", 1.0, Utility::new());
    assert!(config(dup).contains("`a` is named twice"));
    let nan = Experiment::builder("n").arm("a", f64::NAN, Utility::new()).arm("b", 1.0, Utility::new());
    assert!(config(nan).contains("weight"));
    let neg = Experiment::builder("n").arm("a", -1.0, Utility::new()).arm("b", 1.0, Utility::new());
    assert!(config(neg).contains("weight"));
    let inf = Experiment::builder("n").arm("a", f64::INFINITY, Utility::new()).arm("b", 1.0, Utility::new());
    assert!(config(inf).contains("weight"));
    let zero = Experiment::builder("z").arm("a", 0.0, Utility::new()).arm("b", 0.0, Utility::new());
    assert!(config(zero).contains("weight 0"));
    assert!(config(two_arms("h").holdout(1.0)).contains("holdout"));
    assert!(config(two_arms("h").holdout(f64::NAN)).contains("holdout"));
    let reserved = Experiment::builder("r").arm("holdout", 1.0, Utility::new()).arm("b", 1.0, Utility::new());
    assert!(config(reserved.holdout(0.1)).contains("reserved"));
    assert!(config(two_arms("")).contains("name"));
    assert!(config(two_arms("t").sequential_test(SequentialTest::new().alpha(0.0))).contains("alpha"));
    assert!(config(two_arms("t").sequential_test(SequentialTest::new().mixture_sd(-1.0))).contains("mixture_sd"));

    // Arms are checked against the catalog when the router is built, naming the arm.
    let pin = Rules::new(Utility::new()).rule(Rule::new("r", Condition::always(), Action::Pin("gpt-9".into())));
    let e = Experiment::builder("cat").arm("a", 1.0, Utility::new()).arm("b", 1.0, pin).build().unwrap();
    let err = Router::builder().catalog(mini_frontier()).policy(e).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("arm `b`") && err.to_string().contains("gpt-9"), "{err}");
    let bad_lambda =
        Experiment::builder("l").arm("a", 1.0, Utility::new().answer_value(-2.0)).arm("b", 1.0, Utility::new());
    let err = Router::builder().catalog(mini_frontier()).policy(bad_lambda.build().unwrap()).build().unwrap_err();
    assert!(err.to_string().contains("arm `a`"), "{err}");
}

// ---------------------------------------------------------------------------------------------------
// Statistics

/// Drives an experiment without a router: ranks a fixed input per key and reports an outcome drawn
/// from each arm's quality rate. Returns the report after `n` outcomes.
fn simulate(e: &Experiment, rates: &[f64], n: usize, seed: u64) -> ExperimentReport {
    let catalog = mini_frontier();
    let request = Request::new("x");
    let signals = Signals::default();
    let candidates =
        [Candidate::new(0, 0.0, CostEstimate::usd(0.001), 1.0), Candidate::new(1, 0.0, CostEstimate::usd(0.01), 1.0)];
    let handle = e.handle();
    let arms: Vec<String> = handle.arms().map(str::to_owned).collect();
    let mut rng = TestRng(seed);
    for i in 0..n {
        let request = request.clone().with_key(format!("{seed}-{i}"));
        let input = PolicyInput::new(&request, &signals, &catalog, &candidates, 0.5);
        let ranking = e.rank(&input).unwrap();
        let arm = ranking.arm().unwrap();
        let rate = rates[arms.iter().position(|a| a == arm.arm()).unwrap()];
        let feedback = Feedback::success().with_quality(if rng.bernoulli(rate) { 1.0 } else { 0.0 });
        e.observe(&Outcome::new(DecisionId::from_u64(i as u64 + 1), 0, ranking.memo(), &feedback, &catalog));
    }
    handle.report()
}

#[test]
fn sequential_test_keeps_its_false_positive_rate_on_a_a_tests() {
    // A/A experiments, each monitored after every outcome for 1,500 outcomes: the verdict is fixed the
    // first time the test crosses, so any crossing counts as a false positive. A common rate, and a
    // rare one (where estimated variances are least reliable).
    let alpha = 0.05;
    for (rate, runs) in [(0.3, 300u32), (0.05, 200)] {
        let mut false_positives = 0;
        for run in 0..runs {
            let e = two_arms(&format!("aa-{run}"))
                .sequential_test(SequentialTest::new().alpha(alpha).min_samples(50))
                .build()
                .unwrap();
            let report = simulate(&e, &[rate, rate], 1_500, u64::from(run));
            if report.comparisons[0].verdict != Conclusion::Undecided {
                false_positives += 1;
            }
        }
        let fp = f64::from(false_positives) / f64::from(runs);
        println!("A/A at rate {rate}: false-positive rate {fp:.3} over {runs} runs (alpha {alpha})");
        assert!(fp <= alpha, "{rate}: {fp}");
    }
}

#[test]
fn sequential_test_detects_a_real_difference_and_its_direction() {
    let mut decided = Vec::new();
    for (seed, rates, want) in [(1, [0.3, 0.4], Conclusion::Better), (2, [0.5, 0.4], Conclusion::Worse)] {
        let e = two_arms(&format!("ab-{seed}")).sequential_test(SequentialTest::new().min_samples(50)).build().unwrap();
        let report = simulate(&e, &rates, 6_000, seed);
        let c = &report.comparisons[0];
        assert_eq!(c.verdict, want, "{report}");
        assert!(c.p_value < c.alpha, "{report}");
        assert!(c.low <= rates[1] - rates[0] && rates[1] - rates[0] <= c.high, "{report}");
        decided.push(c.decided_after.unwrap());
    }
    println!("a 0.1 difference was decided after {decided:?} observations");
    // Report contents: rates with Wilson intervals, means with t intervals, JSON and a table.
    let e = two_arms("report").build().unwrap();
    let report = simulate(&e, &[0.3, 0.6], 2_000, 9);
    for a in &report.arms {
        let s = a.success_rate.unwrap();
        assert_eq!(s.mean, 1.0, "every outcome was a success, with a quality of 0 or 1");
        let q = a.quality.unwrap();
        assert!(q.low < q.mean && q.mean < q.high && q.n == a.feedback);
    }
    assert_eq!(report.arms.iter().map(|a| a.feedback).sum::<u64>(), 2_000);
    assert_eq!(report.arms.iter().map(|a| a.routed).sum::<u64>(), 2_000);
    let json = report.to_json();
    assert!(json.contains("\"verdict\": \"better\"") && json.contains("\"success_rate\""), "{json}");
    let back: ExperimentReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back.arms.len(), 2);
    let table = report.to_string();
    assert!(table.contains("treatment vs control") && table.contains("better"), "{table}");
}

#[test]
fn three_arms_share_alpha_and_only_the_better_arm_wins() {
    let e = Experiment::builder("three")
        .arm("control", 1.0, Utility::new())
        .arm("same", 1.0, Utility::new())
        .arm("better", 1.0, Utility::new())
        .sequential_test(SequentialTest::new().metric(Metric::Success).min_samples(50))
        .build()
        .unwrap();
    let catalog = mini_frontier();
    let signals = Signals::default();
    let candidates = [Candidate::new(0, 0.0, CostEstimate::usd(0.001), 1.0)];
    let handle = e.handle();
    let mut rng = TestRng(5);
    for i in 0..9_000u64 {
        let request = Request::new("x").with_key(format!("u{i}"));
        let ranking = e.rank(&PolicyInput::new(&request, &signals, &catalog, &candidates, 0.1)).unwrap();
        let p = if ranking.arm().unwrap().arm() == "better" { 0.5 } else { 0.35 };
        let f = if rng.bernoulli(p) { Feedback::success() } else { Feedback::failure() };
        e.observe(&Outcome::new(DecisionId::from_u64(i + 1), 0, ranking.memo(), &f, &catalog));
    }
    let report = handle.report();
    assert_eq!(report.comparisons.len(), 2);
    assert!((report.comparisons[0].alpha - 0.025).abs() < 1e-12, "Bonferroni over two comparisons");
    assert_eq!(report.comparisons[0].verdict, Conclusion::Undecided, "{report}");
    assert_eq!(report.comparisons[1].verdict, Conclusion::Better, "{report}");
}

#[test]
fn feedback_reaches_the_experiment_through_the_router_and_bad_ids_are_typed_errors() {
    let e = two_arms("fb").build().unwrap();
    let router = Router::builder()
        .catalog(mini_frontier())
        .policy(e)
        .execution(ExecutionConfig::new().with_feedback_capacity(8))
        .build()
        .unwrap();
    let handle = router.experiment("fb").unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(router.route(&Request::new("Translate 'good morning' to French.").with_key(format!("u{i}"))).unwrap());
    }
    // The first 12 decisions have expired: the log keeps the last 8.
    for d in &ids[..12] {
        let e = router.feedback(d.id(), Feedback::success()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        assert!(e.to_string().contains("expired"), "{e}");
    }
    let unknown = router.feedback(DecisionId::from_u64(10_000), Feedback::success()).unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::InvalidRequest);
    assert!(unknown.to_string().contains("unknown"), "{unknown}");
    let report = handle.report();
    assert_eq!(report.arms.iter().map(|a| a.feedback).sum::<u64>(), 0, "failed feedback is not counted");
    for d in &ids[12..] {
        let f = Feedback::success().with_quality(0.8).with_cost(0.002).with_latency(Duration::from_millis(300));
        router.feedback(d.id(), f).unwrap();
    }
    let again = router.feedback(ids[19].id(), Feedback::success()).unwrap_err();
    assert!(again.to_string().contains("already has feedback"), "{again}");
    let report = handle.report();
    assert_eq!(report.arms.iter().map(|a| a.feedback).sum::<u64>(), 8);
    assert_eq!(report.arms.iter().map(|a| a.routed).sum::<u64>(), 20);
    let arm = report.arms.iter().find(|a| a.feedback > 0).unwrap();
    assert!((arm.quality.unwrap().mean - 0.8).abs() < 1e-12);
    assert!((arm.cost_usd.unwrap().mean - 0.002).abs() < 1e-12);
    assert!((arm.latency_ms.unwrap().mean - 300.0).abs() < 1e-9);
}

#[test]
fn experiments_nested_in_rules_and_bandits_in_arms_get_their_feedback() {
    let bandit = Bandit::new().seed(1);
    let e = Experiment::builder("nested")
        .arm("utility", 1.0, Utility::new())
        .arm("bandit", 1.0, bandit.clone())
        .build()
        .unwrap();
    let rules = Rules::new(e).rule(Rule::new(
        "code",
        Condition::always().tag("pinned"),
        Action::Portfolio(vec!["mini".into()]),
    ));
    let router = router_with(rules);
    assert_eq!(router.experiments().len(), 1);
    let handle = router.experiment("nested").unwrap();
    let mut bandit_decisions = 0;
    for i in 0..200 {
        let d = router.route(&Request::new("What is 2 + 2?").with_key(format!("u{i}"))).unwrap();
        let tag = d.arm().unwrap();
        bandit_decisions += u32::from(tag.arm() == "bandit");
        router.feedback(d.id(), Feedback::success().with_quality(0.7)).unwrap();
    }
    let report = handle.report();
    assert_eq!(report.arms.iter().map(|a| a.feedback).sum::<u64>(), 200);
    let learned: u64 = bandit.snapshot().buckets.iter().flat_map(|b| &b.models).map(|m| m.outcomes).sum();
    assert_eq!(learned, u64::from(bandit_decisions), "the bandit learns from exactly its own decisions");
    assert!(bandit_decisions > 50);
}

// ---------------------------------------------------------------------------------------------------
// Bandit

/// Three models the catalog rates alike, with different true quality and cost.
fn trio() -> Catalog {
    Catalog::new([
        ModelProfile::new("a", "sim").with_pricing(Pricing::per_mtok(1.0, 1.0)).with_ability(Ability::new(1.0)),
        ModelProfile::new("b", "sim").with_pricing(Pricing::per_mtok(1.0, 1.0)).with_ability(Ability::new(1.0)),
        ModelProfile::new("c", "sim").with_pricing(Pricing::per_mtok(4.0, 4.0)).with_ability(Ability::new(1.0)),
    ])
    .unwrap()
}

fn bandit_run(bandit: &Bandit, truth: &HashMap<&str, f64>, rounds: usize, seed: u64) -> Vec<String> {
    let router = Router::builder()
        .catalog(trio())
        .classifier(classify::logit_fn("irt", |_, m| m.ability_for(None)), 1.0)
        .policy(bandit.clone())
        .build()
        .unwrap();
    let mut rng = TestRng(seed);
    let mut chosen = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let d = router.route(&Request::new("Which is larger, 7 or 9?").with_key(format!("u{}", i % 97))).unwrap();
        let model = d.model().to_string();
        let q = if rng.bernoulli(truth[model.as_str()]) { 1.0 } else { 0.0 };
        router.feedback(d.id(), Feedback::success().with_quality(q)).unwrap();
        chosen.push(model);
    }
    chosen
}

fn share(chosen: &[String], model: &str) -> f64 {
    chosen.iter().filter(|m| *m == model).count() as f64 / chosen.len() as f64
}

#[test]
fn bandit_converges_to_the_best_model() {
    let truth: HashMap<&str, f64> = [("a", 0.55), ("b", 0.8), ("c", 0.6)].into();
    let bandit = Bandit::new().answer_value(1e9).exploration(0.02).seed(11);
    let chosen = bandit_run(&bandit, &truth, 3_000, 1);
    let late = &chosen[2_000..];
    println!("share of the best model: first 200 {:.2}, last 1000 {:.2}", share(&chosen[..200], "b"), share(late, "b"));
    assert!(share(late, "b") > 0.9, "{}", share(late, "b"));
    assert!(share(late, "a") > 0.0 || share(late, "c") > 0.0, "the exploration floor keeps trying others");
    let snap = bandit.snapshot();
    assert_eq!(snap.buckets.len(), 1);
    assert!(snap.buckets[0].models.iter().map(|m| m.outcomes).sum::<u64>() == 3_000);
}

#[test]
fn bandit_weighs_cost_against_quality() {
    // `c` is a little better than `b` but four times the price: when an answer is worth what `c`
    // costs, the gain of 0.1 (worth a tenth of `c`'s price) does not pay for the three quarters of
    // it that `c` costs more; when answers are worth much more, it does.
    let truth: HashMap<&str, f64> = [("a", 0.3), ("b", 0.7), ("c", 0.8)].into();
    let probe = Router::builder().catalog(trio()).build().unwrap();
    let c = probe.route(&Request::new("Which is larger, 7 or 9?")).unwrap().candidate("c").unwrap().cost.usd;
    let cheap = bandit_run(&Bandit::new().answer_value(c).seed(2), &truth, 2_500, 3);
    let free = bandit_run(&Bandit::new().answer_value(1e9).seed(2), &truth, 2_500, 3);
    assert!(share(&cheap[1_500..], "b") > 0.85, "{}", share(&cheap[1_500..], "b"));
    assert!(share(&free[1_500..], "c") > 0.7, "{}", share(&free[1_500..], "c"));
}

#[test]
fn bandit_is_deterministic_and_respects_constraints() {
    let truth: HashMap<&str, f64> = [("a", 0.5), ("b", 0.6), ("c", 0.7)].into();
    let x = bandit_run(&Bandit::new().seed(4), &truth, 300, 8);
    let y = bandit_run(&Bandit::new().seed(4), &truth, 300, 8);
    assert_eq!(x, y, "same seed, same inputs, same feedback: same decisions");

    let router = Router::builder().catalog(trio()).policy(Bandit::new().exploration(1.0)).build().unwrap();
    for i in 0..200 {
        let mut request = Request::new("hi").with_key(format!("u{i}"));
        request.hints.allowed = Some(vec!["a".into(), "c".into()]);
        let d = router.route(&request).unwrap();
        assert_ne!(d.model().as_str(), "b", "exploration only ranks candidates");
        assert!(d.ranking().len() == 2);
    }
    // A bandit learns on one catalog only.
    let shared = Bandit::new();
    let _ = Router::builder().catalog(trio()).policy(shared.clone()).build().unwrap();
    let e = Router::builder().catalog(mini_frontier()).policy(shared).build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let e =
        Router::builder().catalog(trio()).policy(Bandit::new().difficulty_bands(vec![1.0, 0.5])).build().unwrap_err();
    assert!(e.to_string().contains("difficulty_bands"), "{e}");
    let e = Router::builder().catalog(trio()).policy(Bandit::new().exploration(1.5)).build().unwrap_err();
    assert!(e.to_string().contains("exploration"), "{e}");
}

#[test]
fn bandit_state_is_bounded_and_follows_drift() {
    let catalog = trio();
    let bandit = Bandit::new().max_evidence(50.0);
    Router::builder().catalog(catalog.clone()).policy(bandit.clone()).build().unwrap();
    let memo = Memo::NONE.nest(0);
    for i in 0..10_000u64 {
        let f = Feedback::success().with_quality(if i < 5_000 { 1.0 } else { 0.0 });
        bandit.observe(&Outcome::new(DecisionId::from_u64(i + 1), 1, memo, &f, &catalog));
    }
    let snap = bandit.snapshot();
    let m = &snap.buckets[0].models[0];
    assert_eq!(m.outcomes, 10_000);
    assert!((m.successes + m.failures - 50.0).abs() < 1e-9, "{m:?}");
    assert!(m.successes < 1e-6, "the old successes faded: {m:?}");
    // Outcomes with foreign memos or models are ignored, never a panic.
    let f = Feedback::success();
    bandit.observe(&Outcome::new(DecisionId::from_u64(1), 99, memo, &f, &catalog));
    bandit.observe(&Outcome::new(DecisionId::from_u64(1), 0, Memo::new(u64::MAX), &f, &catalog));
    bandit.observe(&Outcome::new(DecisionId::from_u64(1), 0, Memo::NONE, &f, &catalog));
}

#[test]
fn bandit_and_experiment_stay_consistent_under_concurrent_routing_and_feedback() {
    let bandit = Bandit::new().seed(9).max_evidence(1e9);
    let e = Experiment::builder("threads")
        .arm("utility", 1.0, Utility::new())
        .arm("bandit", 1.0, bandit.clone())
        .build()
        .unwrap();
    let router = Router::builder().catalog(trio()).policy(e).build().unwrap();
    let handle = router.experiment("threads").unwrap();
    let per_thread = 3_000u64;
    let bandit_feedback: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4u64)
            .map(|t| {
                let router = &router;
                s.spawn(move || {
                    let mut rng = TestRng(t);
                    let mut mine = 0;
                    for i in 0..per_thread {
                        let d =
                            router.route(&Request::new("Name three rivers.").with_key(format!("t{t}-{i}"))).unwrap();
                        mine += u64::from(d.arm().unwrap().arm() == "bandit");
                        let q = if rng.bernoulli(0.6) { 1.0 } else { 0.0 };
                        router.feedback(d.id(), Feedback::success().with_quality(q)).unwrap();
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let report = handle.report();
    assert_eq!(report.arms.iter().map(|a| a.feedback).sum::<u64>(), 4 * per_thread);
    assert_eq!(report.arms.iter().map(|a| a.routed).sum::<u64>(), 4 * per_thread);
    assert_eq!(report.arms[1].feedback, bandit_feedback);
    let learned: u64 = bandit.snapshot().buckets.iter().flat_map(|b| &b.models).map(|m| m.outcomes).sum();
    assert_eq!(learned, bandit_feedback, "no outcome lost or counted twice");
    let evidence: f64 =
        bandit.snapshot().buckets.iter().flat_map(|b| &b.models).map(|m| m.successes + m.failures).sum();
    assert!((evidence - bandit_feedback as f64).abs() < 1e-6, "{evidence} vs {bandit_feedback}");
}

// ---------------------------------------------------------------------------------------------------
// Controller

/// A router whose requests state their difficulty (`"d=2.5 ..."`), over `mini_frontier`, ranked by
/// utility with the answer value on `knob`.
fn knob_router(knob: &Knob, controller: Option<SpendController>) -> Router {
    let difficulty = classify::from_fn("stated", |input: &ClassifyInput<'_>, s: &mut Signals| {
        let text = input.request.last_user_text().unwrap_or("");
        let d = text.strip_prefix("d=").and_then(|t| t.split(' ').next()).and_then(|t| t.parse().ok());
        s.set_difficulty(d.unwrap_or(0.0));
        Ok(())
    });
    let irt =
        classify::logit_fn("irt", |s: &Signals, m: &ModelProfile| m.ability_for(None) - s.difficulty().unwrap_or(0.0));
    let mut b = Router::builder()
        .catalog(mini_frontier())
        .classifier(difficulty, 0.0)
        .classifier(irt, 1.0)
        .policy(Utility::new().answer_value_knob(knob.clone()));
    if let Some(c) = controller {
        b = b.observer(c);
    }
    b.build().unwrap()
}

/// Frontier share per phase: 3,000 requests with difficulties around 0.5, then 3,000 around 2.5
/// (the last 1,500 after the controller had time to settle); and the mean expected cost of the last
/// 1,500.
fn shifted_traffic_with_cost(router: &Router) -> ((f64, f64, f64), f64) {
    let mut rng = TestRng(17);
    let mut frontier = [0u32; 3];
    let mut cost = 0.0;
    for i in 0..6_000 {
        let centre = if i < 3_000 { 0.5 } else { 2.5 };
        let d = centre + 3.0 * (rng.unit() - 0.5);
        let decision = router.route(&Request::new(format!("d={d:.3} question"))).unwrap();
        let phase = if i < 3_000 {
            0
        } else if i < 4_500 {
            1
        } else {
            2
        };
        frontier[phase] += u32::from(decision.model().as_str() == "frontier");
        if phase == 2 {
            cost += decision.estimated_cost() / 1_500.0;
        }
    }
    ((f64::from(frontier[0]) / 3_000.0, f64::from(frontier[1]) / 1_500.0, f64::from(frontier[2]) / 1_500.0), cost)
}

/// `frontier`'s expected cost for the controller tests' requests.
fn frontier_cost() -> f64 {
    let probe = knob_router(&Knob::new(0.0), None);
    probe.route(&Request::new("d=1.000 question")).unwrap().candidate("frontier").unwrap().cost.usd
}

fn shifted_traffic(router: &Router) -> (f64, f64, f64) {
    shifted_traffic_with_cost(router).0
}

#[test]
fn controller_holds_the_frontier_share_through_a_traffic_shift() {
    // An answer worth 10/3 of frontier's price.
    let start = frontier_cost() / 0.3;
    let fixed = Knob::new(start);
    let (before, _, after) = shifted_traffic(&knob_router(&fixed, None));
    println!("fixed V = ${start:.5}: frontier share {before:.2} before the shift, {after:.2} after");
    assert!(after > 0.35, "without control the shift sends much more to frontier: {after}");

    let knob = Knob::new(start);
    let target = ControllerTarget::ShareAtMost { models: vec!["frontier".into()], share: 0.2 };
    let controller = SpendController::builder(knob.clone(), target).window(200).build().unwrap();
    let router = knob_router(&knob, Some(controller.clone()));
    let (before, settling, after) = shifted_traffic(&router);
    println!(
        "controlled: frontier share {before:.2} before, {settling:.2} while settling, {after:.2} after; V = ${:.5} after {} steps",
        knob.get(),
        controller.steps()
    );
    assert!((after - 0.2).abs() < 0.05, "the controller holds 20% after the shift: {after}");
    assert!(knob.get() < start, "V fell to hold the target: {}", knob.get());
    assert_eq!(controller.steps(), 30);
}

#[test]
fn controller_holds_a_mean_cost() {
    let knob = Knob::new(frontier_cost() / 0.3);
    let probe = knob_router(&Knob::new(0.0), None);
    let costs: Vec<f64> = ["d=1.0 question"]
        .iter()
        .map(|t| probe.route(&Request::new(*t)).unwrap())
        .flat_map(|d| d.candidates().iter().map(|c| c.cost.usd).collect::<Vec<_>>())
        .collect();
    let (cheap, dear) = (costs[0].min(costs[1]), costs[0].max(costs[1]));
    // A budget that allows frontier on about a third of the requests.
    let usd = cheap + (dear - cheap) / 3.0;
    let controller =
        SpendController::builder(knob.clone(), ControllerTarget::MeanCostAtMost { usd }).window(200).build().unwrap();
    let router = knob_router(&knob, Some(controller.clone()));
    let (_, mean) = shifted_traffic_with_cost(&router);
    println!("mean cost after the shift {mean:.6} vs target {usd:.6}; V = ${:.5}", knob.get());
    assert!((mean / usd - 1.0).abs() < 0.1, "mean cost {mean} vs target {usd}");
}

// ---------------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn assignment_invariants(
        weights in prop::collection::vec(0.0f64..10.0, 2..8),
        keys in prop::collection::vec("[a-z0-9-]{0,12}", 1..40),
        scale in -8i32..8,
        salt in "[a-z]{1,8}",
    ) {
        prop_assume!(weights.iter().any(|w| *w > 0.0));
        let build = |factor: f64| {
            let mut b = Experiment::builder("p").salt(salt.clone());
            for (i, w) in weights.iter().enumerate() {
                b = b.arm(format!("arm{i}"), w * factor, Utility::new());
            }
            b.build().unwrap().handle()
        };
        let h = build(1.0);
        // Scaling every weight by a power of two is exact, and must not move any key.
        let scaled = build(2f64.powi(scale));
        for key in &keys {
            let tag = h.arm_for(Some(key)).unwrap();
            prop_assert_eq!(h.arm_for(Some(key)).unwrap(), tag.clone());
            let i: usize = tag.arm().trim_start_matches("arm").parse().unwrap();
            prop_assert!(i < weights.len());
            prop_assert!(weights[i] > 0.0, "zero-weight arm {} chosen", i);
            let moved = scaled.arm_for(Some(key)).unwrap();
            prop_assert_eq!(moved.arm(), tag.arm());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn bandit_and_experiment_rank_each_candidate_once(
        present in prop::collection::vec(any::<bool>(), 3),
        ps in prop::collection::vec(-4.0f64..4.0, 3),
        costs in prop::collection::vec(0.0f64..0.1, 3),
        uniform in 0.0f64..1.0,
        key in "[a-z]{0,6}",
        exploration in 0.0f64..1.0,
    ) {
        let catalog = trio();
        let candidates: Vec<Candidate> = (0..3)
            .filter(|&m| present[m])
            .map(|m| Candidate::new(m, ps[m], CostEstimate::usd(costs[m]), 1.0))
            .collect();
        prop_assume!(!candidates.is_empty());
        let bandit = Bandit::new().exploration(exploration);
        let e = Experiment::builder("p").arm("u", 1.0, Utility::new()).arm("b", 1.0, bandit).build().unwrap();
        let request = Request::new("x").with_key(key);
        let signals = Signals::default();
        let input = PolicyInput::new(&request, &signals, &catalog, &candidates, uniform);
        let ranking = e.rank(&input).unwrap();
        let mut ranked: Vec<usize> = ranking.order().iter().map(|s| s.model).collect();
        ranked.sort_unstable();
        let mut expected: Vec<usize> = candidates.iter().map(|c| c.model).collect();
        expected.sort_unstable();
        prop_assert_eq!(ranked, expected);
        prop_assert!(ranking.arm().is_some());
    }
}
