//! The router's behaviour through the public API: `build()` validation, `route()` constraints and
//! errors, what the built-in policies decide, `complete()` and `stream()` with the simulated provider,
//! and that no `Debug` or `Display` output leaks prompt text.

#![allow(clippy::unwrap_used, reason = "tests and their helpers may unwrap")]

mod fixtures;

use fixtures::mini_frontier;
use std::time::Duration;

use futures::StreamExt;
use switchyard::catalog::{Ability, LatencyProfile};
use switchyard::classify::{DifficultyClassifier, Intent, IntentClassifier};
use switchyard::execute::{AttemptOutcome, AttemptReason};
use switchyard::policy::{Action, Condition, OnLowConfidence, RejectReason, Rule};
use switchyard::{
    Capabilities, Catalog, CheapestCapable, Completion, ContentPart, CostModel, Decision, Error, ErrorKind,
    FinishReason, Message, ModelProfile, Pricing, Request, ResponseFormat, Router, RouterBuilder, Rules,
    SimulatedModel, SimulatedProvider, StreamEvent, TokenPriceCostModel, Tool, Usage, Utility,
};
use switchyard::{ImageDetail, ToolCall};

// ---------------------------------------------------------------------------------------------------
// Fixtures

fn model(id: &str) -> ModelProfile {
    ModelProfile::new(id, "sim").with_pricing(Pricing::per_mtok(1.0, 2.0))
}

fn utility_router(catalog: Catalog, answer_value: f64) -> Router {
    Router::builder()
        .catalog(catalog)
        .classifier(DifficultyClassifier::default(), 1.0)
        .classifier(IntentClassifier::default(), 0.5)
        .policy(Utility::new().answer_value(answer_value))
        .provider(SimulatedProvider::new("sim"))
        .build()
        .unwrap()
}

const EASY_CHAT: &str = "hi there, how are you today?";
const HARD_PROOF: &str = "Prove rigorously that there are infinitely many primes of the form 4k+3. \
    Explain each step, justify every lemma you use, and then derive a bound on their density. \
    Finally, prove that the bound is tight and explain why the argument fails for primes of the form 4k+1.";

fn config_err(b: RouterBuilder) -> Error {
    let err = b.build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    err
}

fn assert_mentions(err: &Error, needles: &[&str]) {
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "{msg:?} should mention {n:?}");
    }
}

fn ids<'a>(it: impl Iterator<Item = &'a switchyard::ModelId>) -> Vec<String> {
    it.map(|m| m.to_string()).collect()
}

fn ranking_ids(d: &Decision) -> Vec<String> {
    std::iter::once(d.model().to_string()).chain(ids(d.fallbacks())).collect()
}

// ---------------------------------------------------------------------------------------------------
// build()

#[test]
fn build_requires_a_catalog() {
    let err = config_err(Router::builder());
    assert_mentions(&err, &["catalog"]);
}

#[test]
fn catalog_rejects_empty_and_duplicates() {
    let err = Catalog::new(vec![]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_mentions(&err, &["empty"]);

    let err = Catalog::new([model("twin"), model("solo"), model("twin")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_mentions(&err, &["`twin`"]);
    assert!(!err.to_string().contains("solo"), "{err}");
}

#[test]
fn catalog_rejects_bad_prices() {
    let cases: Vec<(Pricing, &str)> = vec![
        (Pricing::per_mtok(f64::NAN, 1.0), "input_per_mtok"),
        (Pricing::per_mtok(f64::INFINITY, 1.0), "input_per_mtok"),
        (Pricing::per_mtok(-0.5, 1.0), "input_per_mtok"),
        (Pricing::per_mtok(1.0, f64::NAN), "output_per_mtok"),
        (Pricing::per_mtok(1.0, f64::NEG_INFINITY), "output_per_mtok"),
        (Pricing::per_mtok(1.0, -1e-9), "output_per_mtok"),
        (Pricing::per_mtok(1.0, 1.0).with_cached_input(f64::NAN), "cached_input_per_mtok"),
        (Pricing::per_mtok(1.0, 1.0).with_cached_input(-1.0), "cached_input_per_mtok"),
        (Pricing::per_mtok(1.0, 1.0).with_request_fee(f64::INFINITY), "request_fee"),
        (Pricing::per_mtok(1.0, 1.0).with_request_fee(-0.01), "request_fee"),
        // Finite, but a request's cost from it would not be.
        (Pricing::per_mtok(1e300, 1.0), "input_per_mtok"),
    ];
    for (pricing, field) in cases {
        let err = Catalog::new([model("ok"), model("bad-price").with_pricing(pricing.clone())]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{pricing:?}");
        assert_mentions(&err, &["bad-price", field]);
    }
    // Zero prices are fine (self-hosted models).
    Catalog::new([model("free").with_pricing(Pricing::per_mtok(0.0, 0.0))]).unwrap();
}

#[test]
fn catalog_rejects_bad_windows_abilities_and_latency() {
    let err = Catalog::new([model("w").with_context(0, 0)]).unwrap_err();
    assert_mentions(&err, &["`w`", "context_window"]);
    let err = Catalog::new([model("o").with_context(1000, 2000)]).unwrap_err();
    assert_mentions(&err, &["`o`", "max_output_tokens"]);
    let err = Catalog::new([model("a").with_ability(Ability::new(f64::NAN))]).unwrap_err();
    assert_mentions(&err, &["`a`", "ability"]);
    let err = Catalog::new([model("a").with_ability(Ability::new(1.0).with_intent(Intent::Code, f64::INFINITY))])
        .unwrap_err();
    assert_mentions(&err, &["`a`", "ability"]);
    let err = Catalog::new([model("l").with_latency(LatencyProfile::new(f64::NAN, 10.0))]).unwrap_err();
    assert_mentions(&err, &["`l`", "ttft_ms"]);
    let err = Catalog::new([model("l").with_latency(LatencyProfile::new(100.0, 0.0))]).unwrap_err();
    assert_mentions(&err, &["`l`", "output_tokens_per_sec"]);
    let err = Catalog::new([ModelProfile::new("", "sim")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let err = Catalog::new([ModelProfile::new("p", "")]).unwrap_err();
    assert_mentions(&err, &["`p`", "provider"]);
}

#[test]
fn build_rejects_bad_classifier_weights() {
    for w in [-1.0, -0.0001, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = config_err(Router::builder().catalog(mini_frontier()).classifier(DifficultyClassifier::default(), w));
        assert_mentions(&err, &["difficulty", "weight"]);
    }
    // The first bad setter is the one reported, even after later good ones.
    let err = config_err(
        Router::builder()
            .classifier(IntentClassifier::default(), f64::NAN)
            .classifier(DifficultyClassifier::default(), 1.0)
            .catalog(mini_frontier()),
    );
    assert_mentions(&err, &["intent"]);
    // Zero is a valid weight next to a positive one, but not for every classifier.
    Router::builder()
        .catalog(mini_frontier())
        .classifier(DifficultyClassifier::default(), 0.0)
        .classifier(IntentClassifier::default(), 0.5)
        .build()
        .unwrap();
    let err = config_err(
        Router::builder()
            .catalog(mini_frontier())
            .classifier(DifficultyClassifier::default(), 0.0)
            .classifier(IntentClassifier::default(), 0.0),
    );
    assert_mentions(&err, &["weight"]);
    // No classifier at all is fine: every model then has p = 0.5.
    let d = Router::builder().catalog(mini_frontier()).build().unwrap().route(&Request::new("hi")).unwrap();
    assert!(d.candidates().iter().all(|c| c.p == 0.5));
}

#[test]
fn build_rejects_bad_policy_parameters() {
    for value in [f64::NAN, -1.0, f64::INFINITY] {
        let err = config_err(Router::builder().catalog(mini_frontier()).policy(Utility::new().answer_value(value)));
        assert_mentions(&err, &["answer_value_usd"]);
    }
    let err = config_err(Router::builder().catalog(mini_frontier()).policy(Utility::new().latency_cost(f64::NAN)));
    assert_mentions(&err, &["latency_usd_per_sec"]);
    for floor in [1.5, -0.1, f64::NAN] {
        let err = config_err(Router::builder().catalog(mini_frontier()).policy(CheapestCapable::new(floor)));
        assert_mentions(&err, &["quality_floor"]);
    }
    Router::builder().catalog(mini_frontier()).policy(CheapestCapable::new(1.0)).build().unwrap();
    Router::builder().catalog(mini_frontier()).policy(CheapestCapable::new(0.0)).build().unwrap();
}

#[test]
fn build_rejects_rules_naming_unknown_models() {
    let pin = Rules::new(Utility::new()).rule(Rule::new("to-ghost", Condition::always(), Action::Pin("ghost".into())));
    let err = config_err(Router::builder().catalog(mini_frontier()).policy(pin));
    assert_mentions(&err, &["to-ghost", "`ghost`"]);

    let portfolio = Rules::new(Utility::new()).rule(Rule::new(
        "pair",
        Condition::always(),
        Action::Portfolio(vec!["mini".into(), "phantom".into()]),
    ));
    let err = config_err(Router::builder().catalog(mini_frontier()).policy(portfolio));
    assert_mentions(&err, &["pair", "`phantom`"]);

    let empty = Rules::new(Utility::new()).rule(Rule::new("none", Condition::always(), Action::Portfolio(vec![])));
    let err = config_err(Router::builder().catalog(mini_frontier()).policy(empty));
    assert_mentions(&err, &["none", "empty"]);

    let tagged = Rules::new(Utility::new()).rule(Rule::new("t", Condition::always(), Action::Tagged("nowhere".into())));
    let err = config_err(Router::builder().catalog(mini_frontier()).policy(tagged));
    assert_mentions(&err, &["`nowhere`"]);

    // A rule's own policy and the default policy are validated too.
    let inner = Rules::new(Utility::new()).rule(
        Rule::new("p", Condition::always(), Action::Portfolio(vec!["mini".into()]))
            .with_policy(CheapestCapable::new(2.0)),
    );
    let err = config_err(Router::builder().catalog(mini_frontier()).policy(inner));
    assert_mentions(&err, &["quality_floor"]);
    let bad_default = Rules::new(Utility::new().answer_value(f64::NAN));
    let err = config_err(Router::builder().catalog(mini_frontier()).policy(bad_default));
    assert_mentions(&err, &["answer_value_usd"]);
    let bad_difficulty = Rules::new(Utility::new()).rule(Rule::new(
        "d",
        Condition::always().min_difficulty(f64::NAN),
        Action::Pin("mini".into()),
    ));
    let err = config_err(Router::builder().catalog(mini_frontier()).policy(bad_difficulty));
    assert_mentions(&err, &["min_difficulty"]);
    // A pin with its own policy (which could never run) and an inverted token range are mistakes.
    let pin_policy = Rules::new(Utility::new())
        .rule(Rule::new("pinned", Condition::always(), Action::Pin("mini".into())).with_policy(Utility::new()));
    let err = config_err(Router::builder().catalog(mini_frontier()).policy(pin_policy));
    assert_mentions(&err, &["pinned", "policy"]);
    let inverted = Rules::new(Utility::new()).rule(Rule::new(
        "range",
        Condition::always().input_tokens(Some(500), Some(100)),
        Action::Pin("mini".into()),
    ));
    let err = config_err(Router::builder().catalog(mini_frontier()).policy(inverted));
    assert_mentions(&err, &["range", "min_input_tokens"]);
}

#[test]
fn build_rejects_unknown_fallback_and_providers() {
    let err = config_err(Router::builder().catalog(mini_frontier()).fallback_model("nope"));
    assert_mentions(&err, &["`nope`", "fallback"]);

    let catalog = Catalog::new([model("a"), ModelProfile::new("b", "elsewhere")]).unwrap();
    let err = config_err(Router::builder().catalog(catalog).provider(SimulatedProvider::new("sim")));
    assert_mentions(&err, &["`b`", "`elsewhere`"]);

    let err = config_err(
        Router::builder()
            .catalog(mini_frontier())
            .provider(SimulatedProvider::new("sim"))
            .provider(SimulatedProvider::new("sim")),
    );
    assert_mentions(&err, &["`sim`", "twice"]);

    // No provider at all: a route-only router.
    let router =
        Router::builder().catalog(Catalog::new([ModelProfile::new("b", "elsewhere")]).unwrap()).build().unwrap();
    assert_eq!(router.route(&Request::new("hi")).unwrap().model().as_str(), "b");
}

// ---------------------------------------------------------------------------------------------------
// route(): hard constraints and request validation

fn everything() -> Capabilities {
    Capabilities::TOOLS | Capabilities::VISION | Capabilities::JSON | Capabilities::STREAMING
}

/// Every model is filtered, each by a different constraint.
#[test]
fn no_candidate_lists_every_model_and_its_reason() {
    let fast = LatencyProfile::new(100.0, 1_000_000.0);
    let full = |id: &str| {
        ModelProfile::new(id, "sim")
            .with_pricing(Pricing::per_mtok(0.0, 0.0))
            .with_context(200_000, 8_000)
            .with_capabilities(everything())
            .with_latency(fast)
    };
    let catalog = Catalog::new([
        full("not-allowed"),
        full("excluded"),
        full("no-tools").with_capabilities(Capabilities::VISION | Capabilities::JSON | Capabilities::STREAMING),
        full("no-vision").with_capabilities(Capabilities::TOOLS | Capabilities::JSON | Capabilities::STREAMING),
        full("no-json").with_capabilities(Capabilities::TOOLS | Capabilities::VISION | Capabilities::STREAMING),
        full("short-output").with_context(200_000, 1_000),
        full("tiny-window").with_context(2_500, 2_000),
        full("slow").with_latency(LatencyProfile::new(60_000.0, 100.0)),
        full("pricey").with_pricing(Pricing::per_mtok(1_000.0, 1_000.0)),
    ])
    .unwrap();
    let router =
        Router::builder().catalog(catalog.clone()).classifier(DifficultyClassifier::default(), 1.0).build().unwrap();
    let secret = "zanzibarquokka";
    let prompt = format!("{secret} {}", "please read this paragraph carefully. ".repeat(300));
    let request = Request::from_messages(vec![
        Message::user(prompt).with_part(ContentPart::image("https://example.com/cat.png", ImageDetail::Auto)),
    ])
    .with_tool(Tool::new("lookup", "looks things up", r#"{"type":"object"}"#))
    .with_response_format(ResponseFormat::Json)
    .with_max_tokens(2_000)
    .with_latency_budget(Duration::from_secs(10))
    .with_max_cost(0.01)
    .with_allowed(catalog.models().iter().map(|m| m.id.clone()).filter(|id| id.as_str() != "not-allowed"))
    .with_excluded("excluded");

    let err = router.route(&request).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoCandidate, "{err}");
    let rejections = err.rejections();
    assert_eq!(rejections.len(), catalog.len(), "{rejections:?}");
    let reason = |id: &str| {
        rejections.iter().find(|r| r.model().as_str() == id).unwrap_or_else(|| panic!("{id} missing")).reason().clone()
    };

    assert_eq!(reason("not-allowed"), RejectReason::NotAllowed);
    assert_eq!(reason("excluded"), RejectReason::Excluded);
    assert_eq!(reason("no-tools"), RejectReason::MissingCapabilities { missing: Capabilities::TOOLS });
    assert_eq!(reason("no-vision"), RejectReason::MissingCapabilities { missing: Capabilities::VISION });
    assert_eq!(reason("no-json"), RejectReason::MissingCapabilities { missing: Capabilities::JSON });
    assert_eq!(reason("short-output"), RejectReason::MaxOutput { requested: 2_000, max: 1_000 });
    match reason("tiny-window") {
        RejectReason::ContextWindow { needed, input, reserved, window } => {
            assert_eq!(window, 2_500);
            assert_eq!(reserved, 2_000);
            assert!(input > 1_500, "{input}");
            assert_eq!(needed, u64::from(input) + 2_000);
        }
        other => panic!("{other:?}"),
    }
    match reason("slow") {
        RejectReason::LatencyBudget { expected, budget } => {
            assert_eq!(budget, Duration::from_secs(10));
            assert!(expected >= Duration::from_secs(60), "{expected:?}");
        }
        other => panic!("{other:?}"),
    }
    match reason("pricey") {
        RejectReason::CostCap { expected, cap } => {
            assert_eq!(cap, 0.01);
            assert!(expected > 0.5, "{expected}");
        }
        other => panic!("{other:?}"),
    }
    // The message names every model, and the reasons in words; never the prompt.
    let msg = err.to_string();
    for m in catalog.models() {
        assert!(msg.contains(&format!("`{}`", m.id)), "{msg}");
    }
    for words in ["context window", "lacks tools", "lacks vision", "lacks json", "budget", "cap", "excluded", "allowed"]
    {
        assert!(msg.contains(words), "{msg} should say {words:?}");
    }
    assert!(!msg.contains(secret) && !format!("{err:?}").contains(secret));

    // Dropping one constraint at a time lets exactly the model it removed through.
    let relaxed = |r: Request, expect: &str| {
        let d = router.route(&r).unwrap();
        assert_eq!(d.model().as_str(), expect);
        assert_eq!(d.candidates().len(), 1, "{d:?}");
    };
    let mut no_budget = request.clone();
    no_budget.hints.latency_budget = None;
    relaxed(no_budget, "slow");
    let mut no_cap = request.clone();
    no_cap.hints.max_cost_usd = None;
    relaxed(no_cap, "pricey");
    let mut no_json = request.clone();
    no_json.response_format = ResponseFormat::Text;
    relaxed(no_json, "no-json");
    let mut short = request.clone();
    short.max_tokens = Some(1_000);
    // 1000 output tokens: short-output now fits; tiny-window still does not (input > 1500).
    relaxed(short, "short-output");
}

#[test]
fn required_capabilities_from_hints_and_tool_history() {
    let catalog = Catalog::new([
        model("plain").with_capabilities(Capabilities::NONE),
        model("reasoner")
            .with_capabilities(Capabilities::REASONING | Capabilities::TOOLS)
            .with_pricing(Pricing::per_mtok(5.0, 5.0)),
    ])
    .unwrap();
    let router = Router::builder().catalog(catalog).build().unwrap();
    assert_eq!(router.route(&Request::new("x")).unwrap().model().as_str(), "plain");
    let d = router.route(&Request::new("x").with_required(Capabilities::REASONING)).unwrap();
    assert_eq!(d.model().as_str(), "reasoner");
    assert_eq!(d.rejections()[0].reason(), &RejectReason::MissingCapabilities { missing: Capabilities::REASONING });
    // A conversation that already used tools needs a tool-capable model even without tool definitions.
    let history = Request::new("what's the weather?")
        .with_message(Message::assistant("").with_tool_call(ToolCall::new("c1", "weather", "{}")))
        .with_message(Message::tool_result("c1", "sunny"));
    assert_eq!(router.route(&history).unwrap().model().as_str(), "reasoner");
}

#[test]
fn invalid_requests_are_rejected_before_routing() {
    let router = Router::builder().catalog(mini_frontier()).max_request_bytes(100).build().unwrap();
    for floor in [1.5, -0.01, f64::NAN, f64::INFINITY] {
        let err = router.route(&Request::new("hi").with_quality_floor(floor)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{floor}");
        assert_mentions(&err, &["quality_floor"]);
    }
    for floor in [0.0, 1.0, 0.5] {
        router.route(&Request::new("hi").with_quality_floor(floor)).unwrap();
    }
    for cap in [-1.0, f64::NAN, f64::INFINITY] {
        let err = router.route(&Request::new("hi").with_max_cost(cap)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{cap}");
        assert_mentions(&err, &["max_cost_usd"]);
    }
    let err = router.route(&Request::new("hi").with_allowed(["mini", "imaginary"])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert_mentions(&err, &["`imaginary`"]);
    let err = router.route(&Request::new("hi").with_excluded("unheard-of")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert_mentions(&err, &["`unheard-of`"]);

    // Pass-through parameters are checked too, naming the field; a reserved `extra` key is refused.
    for (request, field) in [
        (Request::new("hi").with_top_p(2.0), "top_p"),
        (Request::new("hi").with_temperature(f32::NAN), "temperature"),
        (Request::new("hi").with_extra("model", serde_json::json!("gpt-4o")), "`model`"),
        (Request::new("hi").with_extra("n", serde_json::json!(3)), "one answer"),
        (Request::new("hi").with_extra("k", serde_json::json!("v".repeat(100))), "limit of 100"),
    ] {
        let err = router.route(&request).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{field}");
        assert_mentions(&err, &[field]);
    }
    router.route(&Request::new("hi").with_top_p(0.5).with_extra("presence_penalty", serde_json::json!(0.1))).unwrap();

    // The byte limit: exactly at it is fine, one byte over is not; tool definitions count.
    router.route(&Request::new("x".repeat(100))).unwrap();
    let secret = "q".repeat(101);
    let err = router.route(&Request::new(secret.clone())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert_mentions(&err, &["101", "100"]);
    assert!(!err.to_string().contains(&secret));
    let err = router.route(&Request::new("x".repeat(90)).with_tool(Tool::new("t", "a description", "{}"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    let err = router.route(&Request::new("x".repeat(60)).with_system("y".repeat(41))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
}

#[test]
fn ten_megabyte_prompts_fail_cleanly() {
    let catalog =
        Catalog::new([model("small").with_context(128_000, 4_096), model("large").with_context(1_000_000, 32_000)])
            .unwrap();
    let router = Router::builder()
        .catalog(catalog)
        .classifier(DifficultyClassifier::default(), 1.0)
        .classifier(IntentClassifier::default(), 1.0)
        .build()
        .unwrap();
    let ten_mb = |unit: &str| unit.repeat((10 << 20) / unit.len() + 1);
    for text in [ten_mb("word "), ten_mb("漢字かな交じり文"), ten_mb("résumé naïve 🦀 \u{0301}\u{200F} ")]
    {
        assert!(text.len() >= 10 << 20, "{}", text.len());
        let err = router.route(&Request::new(text)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoCandidate, "{err}");
        assert_eq!(err.rejections().len(), 2);
        for r in err.rejections() {
            assert!(matches!(r.reason(), RejectReason::ContextWindow { input, .. } if *input > 1_000_000), "{r}");
        }
    }
    // Under a smaller byte limit the same request is an invalid request instead.
    let limited = Router::builder().catalog(mini_frontier()).max_request_bytes(1 << 20).build().unwrap();
    let err = limited.route(&Request::new("word ".repeat(2 << 20))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
}

#[tokio::test]
async fn empty_and_unusual_text_routes() {
    let router = utility_router(mini_frontier(), 0.02);
    let texts = [
        "",
        " ",
        "\0",
        "\0\0\0 nul \0 bytes",
        "🦀🔥👩‍👩‍👧‍👦🏳️‍🌈",
        "你好，世界。これは日本語です。한국어",
        "مرحبا بالعالم שלום עולם",
        "\u{202E}reversed\u{202C}",
        "\u{0301}",
        "\u{0301}\u{0302}\u{0303}\u{20DD}",
        "\u{FEFF}\u{200B}\u{200D}",
        "\r\n\t\u{000B}\u{000C}",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 ∀x∈ℝ: x² ≥ 0",
        "```\n```\n```",
        "1. 2. 3. - - - * * *",
    ];
    let mut requests: Vec<Request> = texts.iter().map(|t| Request::new(*t)).collect();
    requests.push(Request::from_messages(vec![]));
    requests.push(Request::default());
    requests.push(Request::from_messages(vec![Message::user("").with_part(ContentPart::text(""))]));
    requests.push(Request::new("").with_system("").with_key("").with_tag("").with_tenant(""));
    requests.push(Request::from_messages(texts.iter().map(|t| Message::assistant(*t)).collect()));
    for req in requests {
        let d = router.route(&req).unwrap_or_else(|e| panic!("{req:?}: {e}"));
        assert!(d.candidates().len() == 2);
        let _ = d.explain();
        let r = router.complete(req.clone()).await.unwrap();
        assert_eq!(r.model(), d.model());
    }
    let d = router.route(&Request::from_messages(vec![])).unwrap();
    assert_eq!(d.input_tokens().map(|t| t.tokens), Some(0));
}

// ---------------------------------------------------------------------------------------------------
// route(): the decision

#[test]
fn long_document_goes_to_the_long_context_model() {
    let catalog = Catalog::new([
        model("short")
            .with_context(8_192, 4_096)
            .with_pricing(Pricing::per_mtok(0.1, 0.2))
            .with_ability(Ability::new(3.0)),
        model("long")
            .with_context(1_000_000, 8_192)
            .with_pricing(Pricing::per_mtok(3.0, 15.0))
            .with_ability(Ability::new(1.0)),
    ])
    .unwrap();
    let router = utility_router(catalog, 0.02);
    let short = router.route(&Request::new("Summarise: the cat sat on the mat.")).unwrap();
    assert_eq!(short.model().as_str(), "short", "short prompts go to the cheap, able model");

    let doc = "The quarterly report describes revenue, costs and outlook in detail. ".repeat(2_000);
    let d = router.route(&Request::new(format!("Summarise this document:\n{doc}"))).unwrap();
    assert_eq!(d.model().as_str(), "long");
    assert_eq!(d.fallbacks().count(), 0);
    assert!(d.input_tokens().unwrap().tokens > 8_192);
    assert_eq!(d.rejections().len(), 1);
    assert!(matches!(d.rejections()[0].reason(), RejectReason::ContextWindow { window: 8_192, .. }));
    assert!(d.explain().contains("`short`"), "the explanation lists the filtered model: {}", d.explain());
}

#[test]
fn reserved_output_follows_max_tokens_then_default_capped_by_model() {
    // Window 1100 with 1024 reserved by default: a few tokens fit; with max_tokens 1100 nothing does.
    let catalog = Catalog::new([model("w").with_context(1_100, 1_100)]).unwrap();
    let router = Router::builder().catalog(catalog).build().unwrap();
    let d = router.route(&Request::new("hello there")).unwrap();
    let input = d.input_tokens().unwrap().tokens;
    assert!(input + 1_024 <= 1_100);
    let err = router.route(&Request::new("hello there").with_max_tokens(1_100)).unwrap_err();
    match err.rejections()[0].reason() {
        RejectReason::ContextWindow { reserved, needed, .. } => {
            assert_eq!(*reserved, 1_100);
            assert_eq!(*needed, u64::from(input) + 1_100);
        }
        other => panic!("{other:?}"),
    }
    // The default reservation is capped at the model's output limit.
    let catalog = Catalog::new([model("w").with_context(300, 100)]).unwrap();
    let router = Router::builder().catalog(catalog).build().unwrap();
    router.route(&Request::new("hello there")).unwrap();
    let err = router.route(&Request::new("word ".repeat(300))).unwrap_err();
    assert!(matches!(err.rejections()[0].reason(), RejectReason::ContextWindow { reserved: 100, window: 300, .. }));
}

#[test]
fn tools_requests_never_go_to_models_without_tools() {
    let catalog = Catalog::new([
        model("best-no-tools").with_pricing(Pricing::per_mtok(0.0, 0.0)).with_ability(Ability::new(6.0)),
        model("tools-a").with_capabilities(Capabilities::TOOLS).with_pricing(Pricing::per_mtok(1.0, 1.0)),
        model("json-only").with_capabilities(Capabilities::JSON).with_ability(Ability::new(6.0)),
        model("tools-b")
            .with_capabilities(Capabilities::TOOLS | Capabilities::JSON)
            .with_pricing(Pricing::per_mtok(9.0, 9.0)),
    ])
    .unwrap();
    for policy in [0.0, 1.0, 10.0] {
        let router = utility_router(catalog.clone(), policy);
        assert_eq!(router.route(&Request::new("hi")).unwrap().model().as_str(), "best-no-tools");
        let req = Request::new("What's the weather in Paris?").with_tool(Tool::new("weather", "current weather", "{}"));
        let d = router.route(&req).unwrap();
        for id in ranking_ids(&d) {
            assert!(catalog.get(&id).unwrap().capabilities.contains(Capabilities::TOOLS), "{id} in {d:?}");
        }
        assert_eq!(d.candidates().len(), 2);
        let req = req.with_response_format(ResponseFormat::JsonSchema { name: "w".into(), schema: "{}".into() });
        assert_eq!(ranking_ids(&router.route(&req).unwrap()), ["tools-b"]);
    }
}

#[test]
fn easy_chat_goes_cheap_and_hard_proof_goes_strong() {
    let router = utility_router(mini_frontier(), 0.07);
    let easy = router.route(&Request::new(EASY_CHAT)).unwrap();
    let hard = router.route(&Request::new(HARD_PROOF)).unwrap();
    assert_eq!(easy.model().as_str(), "mini", "{}", easy.explain());
    assert_eq!(hard.model().as_str(), "frontier", "{}", hard.explain());
    assert!(hard.difficulty().unwrap() > easy.difficulty().unwrap() + 2.0);
    // p follows the item-response model: p = σ(θ − d) for the difficulty classifier alone.
    let sigma = |x: f64| 1.0 / (1.0 + (-x).exp());
    let router = Router::builder()
        .catalog(mini_frontier())
        .classifier(DifficultyClassifier::default(), 1.0)
        .policy(Utility::new().answer_value(0.07))
        .build()
        .unwrap();
    let d = router.route(&Request::new(HARD_PROOF)).unwrap();
    let diff = d.difficulty().unwrap();
    assert!((d.candidate("mini").unwrap().p - sigma(1.5 - diff)).abs() < 1e-12);
    assert!((d.candidate("frontier").unwrap().p - sigma(4.0 - diff)).abs() < 1e-12);
    // The frontier model is dearer for the same request.
    assert!(d.candidate("frontier").unwrap().cost.usd > d.candidate("mini").unwrap().cost.usd);

    // λ = 0: quality only; a huge λ: cost only.
    let d = utility_router(mini_frontier(), 1e9).route(&Request::new(EASY_CHAT)).unwrap();
    assert_eq!(d.model().as_str(), "frontier");
    let d = utility_router(mini_frontier(), 0.0).route(&Request::new(HARD_PROOF)).unwrap();
    assert_eq!(d.model().as_str(), "mini");
}

#[test]
fn per_intent_abilities_route_code_to_the_code_model() {
    let catalog = Catalog::new([
        model("generalist").with_ability(Ability::new(2.0)).with_pricing(Pricing::per_mtok(1.0, 1.0)),
        model("coder")
            .with_ability(Ability::new(0.0).with_intent(Intent::Code, 5.0))
            .with_pricing(Pricing::per_mtok(1.0, 1.0)),
    ])
    .unwrap();
    let router = Router::builder()
        .catalog(catalog)
        .classifier(DifficultyClassifier::default(), 1.0)
        .classifier(IntentClassifier::default(), 1.0)
        .policy(Utility::new().answer_value(1e9))
        .build()
        .unwrap();
    let code = router
        .route(&Request::new("Write a Python function that parses a CSV file and returns a list of dicts."))
        .unwrap();
    assert_eq!(code.intent().unwrap().intent, Intent::Code);
    assert_eq!(code.model().as_str(), "coder", "{}", code.explain());
    let chat = router.route(&Request::new(EASY_CHAT)).unwrap();
    assert_eq!(chat.model().as_str(), "generalist", "{}", chat.explain());
}

#[test]
fn cheapest_capable_uses_the_floor() {
    let catalog = Catalog::new([
        model("weak").with_ability(Ability::new(-2.0)).with_pricing(Pricing::per_mtok(0.01, 0.01)),
        model("ok").with_ability(Ability::new(2.0)).with_pricing(Pricing::per_mtok(1.0, 1.0)),
        model("strong").with_ability(Ability::new(6.0)).with_pricing(Pricing::per_mtok(10.0, 10.0)),
    ])
    .unwrap();
    let router = Router::builder()
        .catalog(catalog)
        .classifier(DifficultyClassifier::default(), 1.0)
        .policy(CheapestCapable::new(0.7))
        .build()
        .unwrap();
    let req = Request::new("What is the capital of France?");
    let d = router.route(&req).unwrap();
    assert_eq!(d.policy(), "cheapest-capable");
    assert_eq!(ranking_ids(&d), ["ok", "strong", "weak"], "{}", d.explain());
    // The request's floor overrides the policy's.
    assert_eq!(router.route(&req.clone().with_quality_floor(0.0)).unwrap().model().as_str(), "weak");
    assert_eq!(router.route(&req.clone().with_quality_floor(0.99)).unwrap().model().as_str(), "strong");
    // Nothing reaches the floor: the most likely model serves, and the note says so.
    let d = router.route(&req.with_quality_floor(1.0)).unwrap();
    assert_eq!(ranking_ids(&d), ["strong", "ok", "weak"]);
    assert!(d.note().unwrap().contains("floor"), "{:?}", d.note());
}

#[test]
fn explain_names_the_choice_and_hides_the_prompt() {
    let router = utility_router(mini_frontier(), 0.07);
    let secret = "platypusgrenadine";
    for prompt in [format!("{secret}: {HARD_PROOF}"), format!("hey {secret}, how are you?")] {
        let req = Request::new(prompt).with_system(format!("system {secret}")).with_tag("t").with_key("user-1");
        let d = router.route(&req).unwrap();
        let text = d.explain();
        assert!(text.contains(&format!("`{}`", d.model())), "{text}");
        assert!(text.contains("utility"), "{text}");
        let runner_up = d.fallbacks().next().unwrap();
        assert!(text.contains(&format!("`{runner_up}`")), "{text}");
        assert!(text.contains("difficulty"), "{text}");
        assert!(!text.contains(secret), "{text}");
        assert!(!format!("{d:?}").contains(secret));
    }
}

#[test]
fn routing_is_deterministic() {
    let router = utility_router(mini_frontier(), 0.07);
    let twin = utility_router(mini_frontier(), 0.07);
    let clone = router.clone();
    for text in [EASY_CHAT, HARD_PROOF, "", "🦀"] {
        let req = Request::new(text).with_key("user-7");
        let a = router.route(&req).unwrap();
        assert_eq!(a, router.route(&req).unwrap());
        assert_eq!(a, twin.route(&req).unwrap());
        assert_eq!(a, clone.route(&req).unwrap());
        assert_eq!(a.explain(), twin.route(&req).unwrap().explain());
    }
    // Different requests do get different decisions (so equality above is not vacuous).
    assert_ne!(router.route(&Request::new(EASY_CHAT)).unwrap(), router.route(&Request::new(HARD_PROOF)).unwrap());
}

#[test]
fn fallback_model_is_appended_when_it_passes_constraints() {
    let catalog = Catalog::new([
        model("a").with_pricing(Pricing::per_mtok(0.1, 0.1)),
        model("b").with_pricing(Pricing::per_mtok(1.0, 1.0)).with_capabilities(Capabilities::TOOLS),
        model("backup").with_pricing(Pricing::per_mtok(5.0, 5.0)),
    ])
    .unwrap();
    // A policy that only ever ranks its favourite: the fallback is appended after it.
    let only_first = |input: &switchyard::PolicyInput<'_>| -> switchyard::Result<switchyard::Ranking> {
        let mut r = switchyard::Ranking::new();
        r.push(input.candidates[0].model, 1.0);
        Ok(r)
    };
    let router = Router::builder().catalog(catalog).policy(only_first).fallback_model("backup").build().unwrap();
    let d = router.route(&Request::new("hi")).unwrap();
    assert_eq!(ranking_ids(&d), ["a", "backup"]);
    // The fallback never jumps the queue, and is not appended when filtered out.
    let d = router.route(&Request::new("hi").with_excluded("a")).unwrap();
    assert_eq!(ranking_ids(&d), ["b", "backup"]);
    let d = router.route(&Request::new("hi").with_tool(Tool::new("t", "d", "{}"))).unwrap();
    assert_eq!(ranking_ids(&d), ["b"]);
    let d = router.route(&Request::new("hi").with_allowed(["backup"])).unwrap();
    assert_eq!(ranking_ids(&d), ["backup"]);
}

#[test]
fn decision_equality_compares_the_numbers() {
    // Two routers that rank alike (a constant score) but price differently: the decisions name the
    // same models in the same order, yet are not equal, because their candidates' costs differ.
    let constant = |input: &switchyard::PolicyInput<'_>| -> switchyard::Result<switchyard::Ranking> {
        Ok(switchyard::Ranking::by_score(input, |_| 1.0))
    };
    let priced = |usd: f64| {
        Router::builder()
            .catalog(mini_frontier())
            .policy(constant)
            .cost_model(move |_: &Request, _: &switchyard::Signals, _: &ModelProfile| {
                switchyard::CostEstimate::usd(usd)
            })
            .build()
            .unwrap()
    };
    let (a, b) = (priced(1.0).route(&Request::new("hi")).unwrap(), priced(2.0).route(&Request::new("hi")).unwrap());
    assert_eq!(ranking_ids(&a), ranking_ids(&b));
    assert_ne!(a, b);
    assert_eq!(a, priced(1.0).route(&Request::new("hi")).unwrap());
}

// ---------------------------------------------------------------------------------------------------
// Rules

fn rules_catalog() -> Catalog {
    Catalog::new([
        model("mini")
            .with_pricing(Pricing::per_mtok(0.1, 0.4))
            .with_ability(Ability::new(1.5))
            .with_capabilities(everything()),
        model("coder")
            .with_pricing(Pricing::per_mtok(1.0, 4.0))
            .with_ability(Ability::new(2.0))
            .with_capabilities(Capabilities::STREAMING),
        model("frontier")
            .with_pricing(Pricing::per_mtok(3.0, 12.0))
            .with_ability(Ability::new(4.0))
            .with_capabilities(everything()),
        model("eu-small")
            .with_pricing(Pricing::per_mtok(0.5, 1.0))
            .with_ability(Ability::new(1.0))
            .with_tag("eu")
            .with_capabilities(everything()),
        model("eu-large").with_pricing(Pricing::per_mtok(2.0, 8.0)).with_ability(Ability::new(3.5)).with_tag("eu"),
    ])
    .unwrap()
}

fn rules_router() -> Router {
    let rules = Rules::new(Utility::new())
        .rule(Rule::new("code", Condition::always().intent(Intent::Code), Action::Pin("coder".into())))
        .rule(Rule::new(
            "vip",
            Condition::always().tag("vip"),
            Action::Portfolio(vec!["frontier".into(), "eu-large".into()]),
        ))
        .rule(Rule::new("acme", Condition::always().tenant("acme"), Action::Tagged("eu".into())))
        .rule(Rule::new("huge", Condition::always().input_tokens(Some(2_000), None), Action::Pin("frontier".into())));
    Router::builder()
        .catalog(rules_catalog())
        .classifier(DifficultyClassifier::default(), 1.0)
        .classifier(IntentClassifier::default(), 1.0)
        .policy(rules)
        .build()
        .unwrap()
}

fn default_router() -> Router {
    Router::builder()
        .catalog(rules_catalog())
        .classifier(DifficultyClassifier::default(), 1.0)
        .classifier(IntentClassifier::default(), 1.0)
        .policy(Utility::new())
        .build()
        .unwrap()
}

const CODE: &str = "Write a Python function that parses a CSV file and returns a list of dicts.";

#[test]
fn rules_pin_by_intent_with_default_order_behind() {
    let router = rules_router();
    let req = Request::new(CODE);
    let d = router.route(&req).unwrap();
    assert_eq!(d.intent().unwrap().intent, Intent::Code);
    assert_eq!(d.model().as_str(), "coder");
    assert_eq!(d.policy(), "rules");
    assert!(d.note().unwrap().contains("`code`"), "{:?}", d.note());
    assert!(d.explain().contains("`code`"));
    // The others follow in the default policy's order.
    let default_order: Vec<String> =
        ranking_ids(&default_router().route(&req).unwrap()).into_iter().filter(|m| m != "coder").collect();
    assert_eq!(ids(d.fallbacks()), default_order);
    assert_eq!(d.fallbacks().count(), 4);
}

#[test]
fn rules_skip_a_pinned_model_that_was_filtered() {
    let router = rules_router();
    // "coder" cannot call tools: the code rule does not apply, no other rule matches, the default decides.
    let req = Request::new(CODE).with_tool(Tool::new("run", "runs code", "{}"));
    let d = router.route(&req).unwrap();
    assert_ne!(d.model().as_str(), "coder");
    assert!(d.candidate("coder").is_none());
    assert!(d.note().is_none(), "{:?}", d.note());
    assert_eq!(ranking_ids(&d), ranking_ids(&default_router().route(&req).unwrap()));
    // ... and the next matching rule applies when there is one.
    let d = router.route(&req.clone().with_tenant("acme")).unwrap();
    assert_eq!(d.model().as_str(), "eu-small");
    assert!(d.note().unwrap().contains("`acme`"), "{:?}", d.note());
    // Excluding the pinned model skips the rule as well.
    let d = router.route(&Request::new(CODE).with_excluded("coder")).unwrap();
    assert!(d.note().is_none());
}

#[test]
fn rules_select_portfolios_by_tag_and_tenant() {
    let router = rules_router();
    // Tag: only the portfolio is ranked, so it has no fallbacks outside it.
    let d = router.route(&Request::new(EASY_CHAT).with_tag("vip")).unwrap();
    let mut got = ranking_ids(&d);
    got.sort();
    assert_eq!(got, ["eu-large", "frontier"]);
    assert!(d.note().unwrap().contains("`vip`"));
    // Tenant: models carrying the catalog tag.
    let d = router.route(&Request::new(EASY_CHAT).with_tenant("acme")).unwrap();
    let mut got = ranking_ids(&d);
    got.sort();
    assert_eq!(got, ["eu-large", "eu-small"]);
    assert!(d.note().unwrap().contains("`eu`"));
    // Another tenant, no tag: the default policy.
    let req = Request::new(EASY_CHAT).with_tenant("globex").with_tag("regular");
    let d = router.route(&req).unwrap();
    assert!(d.note().is_none());
    assert_eq!(ranking_ids(&d), ranking_ids(&default_router().route(&req).unwrap()));
    // First matching rule wins: code intent (rule 1) beats the vip tag (rule 2).
    let d = router.route(&Request::new(CODE).with_tag("vip").with_tenant("acme")).unwrap();
    assert_eq!(d.model().as_str(), "coder");
    // A portfolio whose models are all filtered is passed over: the vip portfolio cannot do vision here
    // (eu-large lacks it) once frontier is excluded.
    let img = Request::from_messages(vec![
        Message::user("what is in this picture?")
            .with_part(ContentPart::image("https://example.com/x.png", ImageDetail::Low)),
    ])
    .with_tag("vip")
    .with_excluded("frontier");
    let d = router.route(&img).unwrap();
    assert!(d.note().is_none(), "{:?}", d.note());
    assert!(ranking_ids(&d).iter().all(|m| m != "eu-large" && m != "frontier"));
}

// A rule's portfolio is exclusive: the router's fallback model is not appended to it.
#[test]
fn rule_portfolios_are_exclusive_of_the_fallback_model() {
    let rules = Rules::new(Utility::new())
        .rule(Rule::new("vip", Condition::always().tag("vip"), Action::Portfolio(vec!["frontier".into()])))
        .rule(Rule::new("acme", Condition::always().tenant("acme"), Action::Tagged("eu".into())));
    let router = Router::builder().catalog(rules_catalog()).policy(rules).fallback_model("mini").build().unwrap();
    let d = router.route(&Request::new(EASY_CHAT).with_tag("vip")).unwrap();
    assert_eq!(ranking_ids(&d), ["frontier"]);
    let d = router.route(&Request::new(EASY_CHAT).with_tenant("acme")).unwrap();
    assert!(ranking_ids(&d).iter().all(|m| m.starts_with("eu-")), "{:?}", ranking_ids(&d));
    // Without a rule, the fallback is appended as usual (when the policy left it out).
    let d = router.route(&Request::new(EASY_CHAT)).unwrap();
    assert!(ranking_ids(&d).contains(&"mini".to_owned()));
}

#[test]
fn rules_match_on_input_tokens() {
    let router = rules_router();
    let long = Request::new("lorem ipsum dolor sit amet ".repeat(1_000));
    let d = router.route(&long).unwrap();
    assert!(d.input_tokens().unwrap().tokens >= 2_000);
    assert_eq!(d.model().as_str(), "frontier");
    assert!(d.note().unwrap().contains("`huge`"));
    let d = router.route(&Request::new("lorem ipsum dolor sit amet ".repeat(10))).unwrap();
    assert!(d.note().is_none());
}

// ---------------------------------------------------------------------------------------------------
// complete() and stream()

#[tokio::test]
async fn complete_returns_model_cost_and_decision() {
    let router = utility_router(mini_frontier(), 0.07);
    for (text, expect) in [(EASY_CHAT, "mini"), (HARD_PROOF, "frontier")] {
        let req = Request::new(text).with_key("k");
        let decision = router.route(&req).unwrap();
        let r = router.complete(req).await.unwrap();
        assert_eq!(r.model().as_str(), expect);
        let profile = router.catalog().get(expect).unwrap();
        assert!(r.usage.input_tokens > 0 && r.usage.output_tokens > 0, "{:?}", r.usage);
        let actual = TokenPriceCostModel::new().actual(&r.usage, profile);
        assert!(actual > 0.0);
        assert_eq!(r.cost_usd, actual);
        let manual = (f64::from(r.usage.input_tokens) * profile.pricing.input_per_mtok
            + f64::from(r.usage.output_tokens) * profile.pricing.output_per_mtok)
            / 1e6;
        assert!((r.cost_usd - manual).abs() < 1e-15);
        assert_eq!(&r.decision, &decision);
        assert!(!r.content().is_empty());
        assert_eq!(r.finish_reason, FinishReason::Stop);
    }
    // A free model costs nothing.
    let free = Router::builder()
        .catalog(Catalog::new([model("free").with_pricing(Pricing::per_mtok(0.0, 0.0))]).unwrap())
        .provider(SimulatedProvider::new("sim"))
        .build()
        .unwrap();
    assert_eq!(free.complete(Request::new("hi")).await.unwrap().cost_usd, 0.0);
}

#[tokio::test]
async fn complete_uses_the_router_cost_model_for_actual_cost() {
    // A cost model with its own `actual` (a negotiated discount): the response reports it.
    struct Discount;
    impl CostModel for Discount {
        fn estimate(&self, r: &Request, s: &switchyard::Signals, m: &ModelProfile) -> switchyard::CostEstimate {
            TokenPriceCostModel::new().estimate(r, s, m)
        }
        fn actual(&self, usage: &Usage, model: &ModelProfile) -> f64 {
            TokenPriceCostModel::new().actual(usage, model) * 0.5
        }
    }
    let router = Router::builder()
        .catalog(mini_frontier())
        .cost_model(Discount)
        .provider(SimulatedProvider::new("sim"))
        .build()
        .unwrap();
    let r = router.complete(Request::new("hi")).await.unwrap();
    let profile = router.catalog().get(r.model()).unwrap();
    assert_eq!(r.cost_usd, TokenPriceCostModel::new().actual(&r.usage, profile) * 0.5);
}

#[tokio::test]
async fn complete_without_providers_is_provider_missing() {
    let router = Router::builder().catalog(mini_frontier()).build().unwrap();
    let d = router.route(&Request::new("hi")).unwrap();
    let err = router.complete(Request::new("hi")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderMissing);
    assert_eq!(err.model(), Some(d.model()));
    assert_mentions(&err, &["`sim`"]);
    let err = router.stream(Request::new("hi")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderMissing);
    // Routing errors come first.
    let err = router.complete(Request::new("hi").with_quality_floor(2.0)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
}

#[tokio::test(start_paused = true)]
async fn provider_errors_are_typed_and_name_the_model() {
    let cases = [
        (SimulatedModel::healthy().with_failures(1.0, 0.0, 0.0), ErrorKind::Server, Some(500), None),
        (
            SimulatedModel::healthy().with_failures(0.0, 1.0, 0.0),
            ErrorKind::RateLimited,
            Some(429),
            Some(Duration::from_secs(1)),
        ),
        (SimulatedModel::healthy().with_failures(0.0, 0.0, 1.0), ErrorKind::Timeout, None, None),
    ];
    for (behaviour, kind, status, retry_after) in cases {
        let router = Router::builder()
            .catalog(mini_frontier())
            .classifier(DifficultyClassifier::default(), 1.0)
            .policy(Utility::new().answer_value(0.07))
            .provider(SimulatedProvider::new("sim").model("mini", behaviour))
            .build()
            .unwrap();
        let secret = "wombatcheesecake";
        // The failing model is retried, then the healthy one answers; the attempts say what happened.
        let r = router.complete(Request::new(format!("hi {secret}, how are you?"))).await.unwrap();
        assert_eq!(r.model().as_str(), "frontier");
        let (failed, answered) = r.attempts.split_at(r.attempts.len() - 1);
        assert_eq!(failed.len(), 3, "{:?}", r.attempts); // the first try and two retries
        for a in failed {
            assert_eq!(a.model.as_str(), "mini");
            assert_eq!(a.outcome, AttemptOutcome::Failed { kind, status });
        }
        assert_eq!(answered[0].outcome, AttemptOutcome::Answered);
        assert_eq!(answered[0].reason, AttemptReason::Fallback);
        // With only the failing model allowed, the last error comes back, with every attempt.
        let only_mini = Request::new(format!("hi {secret}, how are you?")).with_allowed(["mini"]);
        let err = router.complete(only_mini.clone()).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert_eq!(err.model().map(|m| m.as_str()), Some("mini"));
        assert_eq!(err.status(), status);
        assert_eq!(err.retry_after(), retry_after);
        assert!(err.is_retryable());
        assert_eq!(err.attempts().len(), 3);
        assert!(err.to_string().contains("`mini`") && err.to_string().contains("3 attempts"), "{err}");
        assert!(!err.to_string().contains(secret) && !format!("{err:?}").contains(secret));
        // The same failure when opening a stream.
        let err = router.stream(only_mini).await.err().unwrap();
        assert_eq!(err.kind(), kind);
        assert_eq!(err.model().map(|m| m.as_str()), Some("mini"));
        // The healthy model still answers.
        let r = router.complete(Request::new(HARD_PROOF)).await.unwrap();
        assert_eq!(r.model().as_str(), "frontier");
    }
}

async fn collect(router: &Router, req: Request) -> (Decision, Vec<switchyard::Result<StreamEvent>>) {
    let stream = router.stream(req).await.unwrap();
    let decision = stream.decision().clone();
    (decision, stream.collect().await)
}

#[tokio::test]
async fn stream_matches_complete() {
    let make = || {
        Router::builder()
            .catalog(mini_frontier())
            .classifier(DifficultyClassifier::default(), 1.0)
            .policy(Utility::new().answer_value(0.07))
            .provider(
                SimulatedProvider::new("sim").seed(3).default_model(SimulatedModel::healthy().with_output_tokens(60)),
            )
            .build()
            .unwrap()
    };
    for text in [EASY_CHAT, HARD_PROOF] {
        let whole = make().complete(Request::new(text)).await.unwrap();
        let (decision, events) = collect(&make(), Request::new(text)).await;
        assert_eq!(decision.model(), whole.model());
        let events: Vec<StreamEvent> = events.into_iter().map(|e| e.unwrap()).collect();
        let mut text_out = String::new();
        let (mut deltas, mut usage, mut finish) = (0, Vec::new(), Vec::new());
        for e in &events {
            match e {
                StreamEvent::Delta(s) => {
                    deltas += 1;
                    text_out.push_str(s);
                }
                StreamEvent::Usage(u) => usage.push(*u),
                StreamEvent::Finish(f) => finish.push(*f),
                other => panic!("{other:?}"),
            }
        }
        assert!(deltas > 1, "{events:?}");
        assert_eq!(text_out, whole.content);
        assert!(text_out.starts_with(&format!("[{}]", decision.model())));
        assert_eq!(usage, [whole.usage]);
        assert_eq!(finish, [FinishReason::Stop]);
        assert!(matches!(events.last(), Some(StreamEvent::Finish(_))));
    }
    // JSON and tool answers stream as well.
    let (_, events) = collect(&make(), Request::new("give me json").with_response_format(ResponseFormat::Json)).await;
    let json: String = events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::Delta(s)) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    let (_, events) = collect(&make(), Request::new("weather?").with_tool(Tool::new("weather", "w", "{}"))).await;
    assert!(events.iter().any(|e| matches!(e, Ok(StreamEvent::ToolCall(c)) if c.name == "weather")));
    assert!(events.iter().any(|e| matches!(e, Ok(StreamEvent::Finish(FinishReason::ToolCalls)))));
}

#[tokio::test]
async fn cut_streams_end_with_a_typed_error() {
    let router = Router::builder()
        .catalog(mini_frontier())
        .provider(
            SimulatedProvider::new("sim")
                .default_model(SimulatedModel::healthy().with_output_tokens(50).with_stream_cut(1.0)),
        )
        .build()
        .unwrap();
    let (decision, events) = collect(&router, Request::new("hi")).await;
    assert!(matches!(events.first(), Some(Ok(StreamEvent::Delta(_)))), "{events:?}");
    let err = events.last().unwrap().as_ref().unwrap_err();
    // After content reached the caller the stream cannot fall back: a mid-stream error with the
    // provider's decode error as its source and the delivered text.
    assert_eq!(err.kind(), ErrorKind::MidStream);
    assert_eq!(err.model(), Some(decision.model()));
    let source = std::error::Error::source(err).and_then(|s| s.downcast_ref::<switchyard::Error>()).unwrap();
    assert_eq!(source.kind(), ErrorKind::Decode);
    let delivered: String = events
        .iter()
        .filter_map(|e| match e {
            Ok(StreamEvent::Delta(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert!(!delivered.is_empty());
    assert_eq!(err.partial_content(), Some(delivered.as_str()));
    assert!(!format!("{err:?}").contains(&delivered));
    assert!(!events.iter().any(|e| matches!(e, Ok(StreamEvent::Finish(_)))));
}

#[tokio::test]
async fn streams_never_use_models_that_cannot_stream() {
    let catalog = Catalog::new([
        model("batch-only")
            .with_capabilities(Capabilities::TOOLS)
            .with_pricing(Pricing::per_mtok(0.0, 0.0))
            .with_ability(Ability::new(5.0)),
        model("streamer")
            .with_capabilities(Capabilities::STREAMING | Capabilities::TOOLS)
            .with_pricing(Pricing::per_mtok(2.0, 2.0)),
        model("streamer-2").with_capabilities(Capabilities::STREAMING).with_pricing(Pricing::per_mtok(3.0, 3.0)),
    ])
    .unwrap();
    let router = utility_router(catalog.clone(), 0.02);
    let req = Request::new("hello there");
    assert_eq!(router.route(&req).unwrap().model().as_str(), "batch-only");
    assert_eq!(router.complete(req.clone()).await.unwrap().model().as_str(), "batch-only");
    let (d, events) = collect(&router, req).await;
    assert_eq!(d.model().as_str(), "streamer");
    for id in ranking_ids(&d) {
        assert!(catalog.get(&id).unwrap().capabilities.contains(Capabilities::STREAMING), "{id}");
    }
    assert_eq!(d.rejections()[0].reason(), &RejectReason::MissingCapabilities { missing: Capabilities::STREAMING });
    assert!(events.iter().all(|e| e.is_ok()));
    // Nothing can stream: NoCandidate, with the reason.
    let only_batch = Router::builder()
        .catalog(Catalog::new([model("batch-only").with_capabilities(Capabilities::NONE)]).unwrap())
        .provider(SimulatedProvider::new("sim"))
        .build()
        .unwrap();
    let err = only_batch.stream(Request::new("hi")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::NoCandidate);
    assert_mentions(&err, &["streaming"]);
    only_batch.complete(Request::new("hi")).await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Debug output never contains prompt text

#[tokio::test]
async fn debug_output_never_contains_prompt_text() {
    let secret = "marmalade-pangolin";
    let router = Router::builder()
        .catalog(mini_frontier())
        .classifier(DifficultyClassifier::default(), 1.0)
        .provider(SimulatedProvider::new("sim"))
        .build()
        .unwrap();
    let req = Request::new(format!("tell me about {secret}"))
        .with_system(format!("you know {secret}"))
        .with_message(Message::assistant(format!("{secret}!")).with_tool_call(ToolCall::new(
            "c1",
            "lookup",
            format!("{{\"q\":\"{secret}\"}}"),
        )))
        .with_message(Message::tool_result("c1", format!("{secret} found")))
        .with_message(
            Message::user(secret).with_part(ContentPart::image(format!("https://x/{secret}.png"), ImageDetail::High)),
        )
        .with_tool(Tool::new("lookup", "find things", "{}"))
        .with_stop(secret);
    let dbg = format!("{req:?}");
    assert!(!dbg.contains(secret), "{dbg}");
    assert!(dbg.contains("Request"), "{dbg}");
    assert!(!format!("{:#?}", req).contains(secret));

    let d = router.route(&req).unwrap();
    assert!(!format!("{d:?}").contains(secret));
    assert!(!format!("{d:#?}").contains(secret));

    let r = router.complete(req.clone()).await.unwrap();
    assert!(!format!("{r:?}").contains(secret));

    // A response whose content quotes the prompt still does not show it.
    let echo = Completion::new(format!("you said {secret}"), FinishReason::Stop, Usage::new(1, 1))
        .with_tool_call(ToolCall::new("c2", "lookup", format!("\"{secret}\"")));
    let dbg = format!("{echo:?}");
    assert!(!dbg.contains(secret), "{dbg}");
    assert!(!format!("{:?}", StreamEvent::Delta(secret.to_owned())).contains(secret));

    // Errors from every stage.
    let tiny = Router::builder().catalog(Catalog::new([model("t").with_context(10, 5)]).unwrap()).build().unwrap();
    let errors = [
        tiny.route(&req).unwrap_err(),
        router.route(&req.clone().with_quality_floor(7.0)).unwrap_err(),
        Router::builder().catalog(mini_frontier()).max_request_bytes(5).build().unwrap().route(&req).unwrap_err(),
        Router::builder().catalog(mini_frontier()).build().unwrap().complete(req.clone()).await.unwrap_err(),
    ];
    for err in errors {
        assert!(!format!("{err:?}").contains(secret), "{err:?}");
        assert!(!err.to_string().contains(secret), "{err}");
    }
    let stream = router.stream(req).await.unwrap();
    assert!(!format!("{stream:?}").contains(secret));
}

#[test]
fn extreme_but_valid_latency_profiles_do_not_panic() {
    // Validation accepts any finite, non-negative time to first token and any positive speed; the
    // latency constraint must then reject such a model, not panic building its reason.
    let catalog = Catalog::new([
        model("glacial").with_latency(LatencyProfile::new(1e30, 60.0)),
        model("crawling").with_latency(LatencyProfile::new(100.0, 1e-300)),
        model("fine"),
    ])
    .unwrap();
    let router = Router::builder().catalog(catalog).build().unwrap();
    let d = router.route(&Request::new("hello").with_latency_budget(Duration::from_secs(60))).unwrap();
    assert_eq!(d.model().as_str(), "fine");
    assert_eq!(d.rejections().len(), 2);
    for r in d.rejections() {
        assert!(matches!(r.reason(), RejectReason::LatencyBudget { .. }), "{r}");
    }
    let _ = d.explain();
}

// Any latency profile the catalog accepts is simulated without panicking (waits are capped).
#[tokio::test]
async fn simulated_provider_survives_extreme_latency_profiles() {
    let catalog = Catalog::new([model("glacial").with_latency(LatencyProfile::new(1e30, 1e-300))]).unwrap();
    let router = Router::builder().catalog(catalog).provider(SimulatedProvider::new("sim")).build().unwrap();
    let r = router.complete(Request::new("hello")).await.unwrap();
    assert_eq!(r.model().as_str(), "glacial");
    let (_, events) = collect(&router, Request::new("hello")).await;
    assert!(events.iter().all(|e| e.is_ok()));
}

// Abilities beyond any meaningful logit are rejected, and custom classifiers whose finite scores
// overflow when summed still give a probability, and a decision equal to itself.
#[test]
fn p_is_a_probability_even_for_extreme_abilities() {
    let e = Catalog::new([model("extreme").with_ability(Ability::new(f64::MAX))]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("ability.overall"), "{e}");
    let catalog = Catalog::new([
        model("extreme").with_ability(Ability::new(1e6).with_intent(Intent::Code, -1e6)),
        model("normal"),
    ])
    .unwrap();
    let huge = |sign: f64| {
        switchyard::classify::logit_fn(
            "huge",
            move |_: &switchyard::Signals, m: &switchyard::ModelProfile| {
                if m.id.as_str() == "extreme" { sign * f64::MAX } else { 0.0 }
            },
        )
    };
    let router = Router::builder()
        .catalog(catalog)
        .classifier(DifficultyClassifier::default(), 2.0)
        .classifier(IntentClassifier::default(), 2.0)
        .classifier(huge(1.0), 2.0) // 2 · MAX overflows to +inf
        .classifier(huge(-1.0), 2.0) // and -inf: their sum would be NaN
        .classifier(huge(1.0), 1.0)
        .classifier(huge(1.0), 1.0)
        .classifier(huge(-1.0), 1.0)
        .build()
        .unwrap();
    let d = router.route(&Request::new(CODE)).unwrap();
    for c in d.candidates() {
        assert!((0.0..=1.0).contains(&c.p), "{c:?}");
    }
    assert_eq!(d, router.route(&Request::new(CODE)).unwrap());
}

// ---------------------------------------------------------------------------------------------------
// The confidence floor

/// Two weak models: a hard proof is more likely to fail than to succeed on either.
fn weak_router(b: RouterBuilder) -> Router {
    let catalog = Catalog::new([
        model("weak").with_ability(Ability::new(-2.0)),
        model("weaker").with_ability(Ability::new(-3.0)),
    ])
    .unwrap();
    b.catalog(catalog)
        .classifier(DifficultyClassifier::default(), 1.0)
        .policy(Utility::new().answer_value(1e9))
        .provider(SimulatedProvider::new("sim"))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_choice_below_the_confidence_floor_is_flagged_and_still_served_by_default() {
    let router = weak_router(Router::builder());
    let d = router.route(&Request::new(HARD_PROOF)).unwrap();
    assert!(d.chosen().p < 0.5, "{}", d.chosen().p);
    assert!(d.explain().contains("below the floor 0.50"), "{}", d.explain());
    assert!(d.is_low_confidence());
    assert!(d.explain().contains("low confidence"), "{}", d.explain());
    let response = router.complete(Request::new(HARD_PROOF)).await.unwrap();
    assert!(response.decision.is_low_confidence());
    // A confident choice is not flagged, and a floor of 0 flags nothing.
    let strong = utility_router(mini_frontier(), 1e9).route(&Request::new(EASY_CHAT)).unwrap();
    assert!(strong.chosen().p >= 0.5 && !strong.is_low_confidence(), "{}", strong.explain());
    assert!(!strong.explain().contains("low confidence"));
    let off = weak_router(Router::builder().confidence_floor(0.0, OnLowConfidence::Flag))
        .route(&Request::new(HARD_PROOF))
        .unwrap();
    assert!(!off.is_low_confidence());
}

#[tokio::test]
async fn a_router_set_to_refuse_returns_a_low_confidence_error_without_calling_a_model() {
    let router = weak_router(Router::builder().confidence_floor(0.5, OnLowConfidence::Refuse));
    let err = router.route(&Request::new(HARD_PROOF)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LowConfidence);
    assert_mentions(&err, &["`weak`", "confidence floor 0.50"]);
    assert!(!err.to_string().contains("primes"), "no prompt text: {err}");
    let err = router.complete(Request::new(HARD_PROOF)).await.unwrap_err();
    assert_eq!((err.kind(), err.attempts().len()), (ErrorKind::LowConfidence, 0));
    // Below the floor only: with a floor under the choice's p (about 0.007), the request goes through.
    let lenient = weak_router(Router::builder().confidence_floor(0.001, OnLowConfidence::Refuse));
    assert!(lenient.route(&Request::new(HARD_PROOF)).is_ok());
}

#[test]
fn a_confidence_floor_outside_zero_to_one_is_a_config_error() {
    for floor in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
        let b = Router::builder().catalog(mini_frontier()).confidence_floor(floor, OnLowConfidence::Flag);
        assert_mentions(&config_err(b), &["confidence_floor"]);
    }
}

#[test]
fn the_confidence_floor_loads_from_a_config() {
    let models = "[[models]]\nid = \"weak\"\nprovider = \"sim\"\nability = { overall = -2.0 }\npricing = { input_per_mtok = 1.0, output_per_mtok = 2.0 }\ncontext_window = 128000\nmax_output_tokens = 4096\n";
    let cfg = switchyard::RouterConfig::from_toml_str(&format!(
        "confidence_floor = 0.4\non_low_confidence = \"refuse\"\n[[classifiers]]\nkind = \"difficulty\"\nweight = 1.0\n{models}"
    ))
    .unwrap();
    let router = cfg.builder().unwrap().provider(SimulatedProvider::new("sim")).build().unwrap();
    assert_eq!(router.route(&Request::new(HARD_PROOF)).unwrap_err().kind(), ErrorKind::LowConfidence);
    let bad = switchyard::RouterConfig::from_toml_str(&format!("on_low_confidence = \"ignore\"\n{models}"));
    assert!(bad.unwrap_err().to_string().contains("on_low_confidence"));
    let bad = switchyard::RouterConfig::from_toml_str(&format!("confidence_floor = 2.0\n{models}")).unwrap();
    assert!(bad.validate().unwrap_err().to_string().contains("confidence_floor"));
}

#[test]
fn explain_says_when_the_chosen_model_has_no_ability() {
    let bare = Catalog::new([model("bare")]).unwrap();
    let d = utility_router(bare, 0.02).route(&Request::new(EASY_CHAT)).unwrap();
    assert!(d.explain().contains("`bare` has no ability set"), "{}", d.explain());
    // Set to the same value on purpose: nothing to say.
    let zero = Catalog::new([model("zero").with_ability(Ability::new(0.0))]).unwrap();
    let d = utility_router(zero, 0.02).route(&Request::new(EASY_CHAT)).unwrap();
    assert!(!d.explain().contains("no ability"), "{}", d.explain());
    // In a config, an entry without `ability` is unset, one with `ability = { overall = 0 }` is set.
    let entry = |id: &str, ability: &str| {
        format!(
            "[[models]]\nid = \"{id}\"\nprovider = \"sim\"\ncontext_window = 8000\nmax_output_tokens = 1000\n\
             pricing = {{ input_per_mtok = 1.0, output_per_mtok = 1.0 }}\n{ability}"
        )
    };
    for (ability, unset) in [("", true), ("ability = { overall = 0.0 }\n", false)] {
        let cfg = switchyard::RouterConfig::from_toml_str(&entry("m", ability)).unwrap();
        let router = cfg.builder().unwrap().provider(SimulatedProvider::new("sim")).build().unwrap();
        let explained = router.route(&Request::new(EASY_CHAT)).unwrap().explain();
        assert_eq!(explained.contains("has no ability set"), unset, "{explained}");
    }
}

#[test]
fn a_known_model_without_an_ability_gets_the_table_s_in_code_and_in_configs() {
    let known = Catalog::new([model("gpt-4o-mini")]).unwrap();
    assert_eq!(known.models()[0].ability, Ability::known("gpt-4o-mini").unwrap());
    let d = utility_router(known, 1.0).route(&Request::new(EASY_CHAT)).unwrap();
    assert!(
        d.explain().contains("ability of `gpt-4o-mini` from the known-models table, checked 2026-"),
        "{}",
        d.explain()
    );
    assert!(!d.explain().contains("no ability"), "{}", d.explain());
    // In a config: matched by `api_name`, then by id; an ability written down wins.
    let entry = |id: &str, extra: &str| {
        format!(
            "[[models]]\nid = \"{id}\"\nprovider = \"sim\"\ncontext_window = 8000\nmax_output_tokens = 1000\n\
             pricing = {{ input_per_mtok = 1.0, output_per_mtok = 1.0 }}\n{extra}"
        )
    };
    let text = [
        entry("fast", "api_name = \"anthropic/claude-3-5-haiku-20241022\"\n"),
        entry("gpt-4o-2024-08-06", ""),
        entry("o3", "ability = { overall = 0.25 }\n"),
        entry("mine", ""),
    ]
    .concat();
    let cfg = switchyard::RouterConfig::from_toml_str(&text).unwrap();
    let router = cfg.builder().unwrap().provider(SimulatedProvider::new("sim")).build().unwrap();
    let models = router.catalog().models();
    assert_eq!(models[0].ability.known_as(), Some("claude-3.5-haiku"));
    assert_eq!(models[1].ability, Ability::known("gpt-4o").unwrap());
    assert_eq!((models[2].ability.overall, models[2].ability.known_as()), (0.25, None));
    assert_eq!((models[3].ability.overall, models[3].ability.known_as()), (0.0, None));
}

#[cfg(feature = "tower")]
#[tokio::test]
async fn a_router_is_a_tower_service() {
    use tower_service::Service;
    let mut service = utility_router(mini_frontier(), 0.07);
    std::future::poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
    let response = service.call(Request::new(EASY_CHAT)).await.unwrap();
    assert_eq!(response.model().as_str(), "mini");
    let err = service.call(Request::new("x").with_top_p(9.0)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
}
