//! Groups and aliases: pinned requests spread over a group's members by weight, fail over inside
//! the group within one request, follow priority order, respect hard constraints; aliases resolve;
//! unknown names are refused; requests that pin nothing route as before.

#![allow(clippy::unwrap_used, reason = "tests and their helpers may unwrap")]

use switchyard::catalog::{Group, NameKind, Strategy};
use switchyard::execute::health::HealthConfig;
use switchyard::execute::retry::RetryPolicy;
use switchyard::execute::{AttemptOutcome, AttemptReason};
use switchyard::policy::RejectReason;
use switchyard::{
    Capabilities, Catalog, ContentPart, ErrorKind, ExecutionConfig, ImageDetail, Message, ModelProfile, Pricing,
    Request, Router, RouterBuilder, RouterConfig, SimulatedModel, SimulatedProvider,
};

const OPENAI: &str = "gpt-4o@openai";
const AZURE: &str = "gpt-4o@azure";

/// `gpt-4o` on two providers (only OpenAI's accepts images), and a cheap model the policy prefers.
fn catalog() -> Catalog {
    let gpt4o = |id: &str, provider: &str| {
        ModelProfile::new(id, provider)
            .with_api_name("gpt-4o")
            .with_pricing(Pricing::per_mtok(2.5, 10.0))
            .with_capabilities(Capabilities::TOOLS | Capabilities::STREAMING)
    };
    Catalog::new([
        gpt4o(OPENAI, "openai").with_capabilities(Capabilities::TOOLS | Capabilities::STREAMING | Capabilities::VISION),
        gpt4o(AZURE, "azure"),
        ModelProfile::new("mini", "openai").with_pricing(Pricing::per_mtok(0.15, 0.6)),
    ])
    .unwrap()
}

fn builder(azure: SimulatedModel) -> RouterBuilder {
    Router::builder()
        .catalog(catalog())
        .provider(SimulatedProvider::new("openai"))
        .provider(SimulatedProvider::new("azure").default_model(azure))
        .execution(ExecutionConfig::new().with_retry(RetryPolicy::no_retries()).with_live_routing(false))
        .jitter_seed(1)
        .seed(7)
}

fn grouped() -> Router {
    builder(SimulatedModel::healthy())
        .group(Group::new("gpt-4o", [OPENAI, AZURE]).with_weights([3.0, 1.0]))
        .group(Group::new("gpt-4o-standby", [AZURE, OPENAI]).with_strategy(Strategy::Priority))
        .alias("smart", "gpt-4o")
        .alias("cheap", "mini")
        .build()
        .unwrap()
}

fn ids<'a>(it: impl Iterator<Item = &'a switchyard::ModelId>) -> Vec<String> {
    it.map(ToString::to_string).collect()
}

fn share_of_openai(router: &Router, requests: impl Iterator<Item = Request>) -> f64 {
    let (mut openai, mut n) = (0u32, 0u32);
    for req in requests {
        let d = router.route(&req).unwrap();
        assert_eq!(d.policy(), "pinned");
        assert_eq!(d.ranking().len(), 2, "the other member is the fallback");
        openai += u32::from(d.model().as_str() == OPENAI);
        n += 1;
    }
    f64::from(openai) / f64::from(n)
}

#[test]
fn a_pinned_group_spreads_load_by_weight() {
    let router = grouped();
    // Keyed: each key always lands on the same member, and keys spread 3 : 1.
    let keyed =
        |i: u32| Request::new("Summarise the meeting notes.").with_model("gpt-4o").with_key(format!("user-{i}"));
    let share = share_of_openai(&router, (0..4000).map(keyed));
    assert!((share - 0.75).abs() < 0.03, "share of {OPENAI}: {share}");
    for i in 0..50 {
        assert_eq!(router.route(&keyed(i)).unwrap(), router.route(&keyed(i)).unwrap());
    }
    // Unkeyed: successive requests spread 3 : 1 as well, and the same sequence replays on a router
    // with the same seed.
    let unkeyed = || (0..4000).map(|_| Request::new("Summarise the meeting notes.").with_model("smart"));
    let share = share_of_openai(&router, unkeyed());
    assert!((share - 0.75).abs() < 0.03, "share of {OPENAI}: {share}");
    let (a, b) = (grouped(), grouped());
    for req in unkeyed().take(100) {
        assert_eq!(a.route(&req).unwrap(), b.route(&req).unwrap());
    }
}

#[test]
fn pinned_decisions_say_what_was_pinned() {
    let router = grouped();
    // The policy alone would pick the cheap model.
    assert_eq!(router.route(&Request::new("hi")).unwrap().model().as_str(), "mini");

    let d = router.route(&Request::new("hi").with_model("smart").with_key("k")).unwrap();
    assert_eq!(d.policy(), "pinned");
    let pin = d.pinned().unwrap();
    assert_eq!(
        (pin.name(), pin.kind(), pin.target(), pin.group()),
        ("smart", NameKind::Alias, "gpt-4o", Some("gpt-4o"))
    );
    assert_eq!(pin.strategy(), Some(Strategy::Weighted));
    let explain = d.explain();
    assert!(explain.starts_with("pinned chose"), "{explain}");
    assert!(explain.contains("alias `smart` for group `gpt-4o` (weighted)"), "{explain}");
    // Only the members were considered: the cheap model is neither a candidate nor a rejection.
    assert!(d.candidate("mini").is_none() && d.rejections().is_empty());
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["policy"], "pinned");
    assert_eq!(json["pinned"]["group"], "gpt-4o");

    // A model id of a group: that model first, the group's other members as fallbacks.
    let d = router.route(&Request::new("hi").with_model(AZURE)).unwrap();
    assert_eq!((d.model().as_str(), ids(d.fallbacks())), (AZURE, vec![OPENAI.to_owned()]));
    assert!(
        d.explain().contains("with the other members of group `gpt-4o` (weighted) as fallbacks"),
        "{}",
        d.explain()
    );
    // A model in no group (through an alias): that model alone.
    let d = router.route(&Request::new("Prove that there are infinitely many primes.").with_model("cheap")).unwrap();
    assert_eq!((d.model().as_str(), d.fallbacks().count()), ("mini", 0));
    assert!(d.explain().contains("alias `cheap` for model `mini`, with no fallback"), "{}", d.explain());
}

#[test]
fn priority_order_takes_the_first_member_that_passes() {
    let router = grouped();
    for key in ["a", "b", "c", "d"] {
        let d = router.route(&Request::new("hi").with_model("gpt-4o-standby").with_key(key)).unwrap();
        assert_eq!((d.model().as_str(), ids(d.fallbacks())), (AZURE, vec![OPENAI.to_owned()]));
        assert_eq!(d.ranking().iter().map(|s| s.score).collect::<Vec<_>>(), [0.0, -1.0]);
    }
    // With an image, the first member lacks vision: it is filtered and reported, the second serves.
    let image = Request::from_messages(vec![
        Message::user("What is in this picture?")
            .with_part(ContentPart::image("https://example.com/a.png", ImageDetail::Low)),
    ]);
    let d = router.route(&image.clone().with_model("gpt-4o-standby")).unwrap();
    assert_eq!((d.model().as_str(), d.fallbacks().count()), (OPENAI, 0));
    assert_eq!(d.rejections().len(), 1);
    assert_eq!(d.rejections()[0].model().as_str(), AZURE);
    assert!(
        matches!(d.rejections()[0].reason(), RejectReason::MissingCapabilities { missing } if *missing == Capabilities::VISION)
    );
    // The weighted group too, whatever the key.
    for i in 0..20 {
        let d = router.route(&image.clone().with_model("gpt-4o").with_key(format!("u{i}"))).unwrap();
        assert_eq!(d.model().as_str(), OPENAI);
    }
    // A pin no member can serve fails, naming each member's reason.
    let e = router.route(&image.with_model("cheap")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoCandidate);
    assert_eq!(e.rejections().len(), 1);
    assert_eq!(e.rejections()[0].model().as_str(), "mini");
}

#[tokio::test(start_paused = true)]
async fn a_failing_member_fails_over_inside_the_group() {
    let router = builder(SimulatedModel::healthy().with_failures(1.0, 0.0, 0.0))
        .group(Group::new("gpt-4o", [AZURE, OPENAI]).with_strategy(Strategy::Priority))
        .build()
        .unwrap();
    let r = router.complete(Request::new("hi").with_model("gpt-4o")).await.unwrap();
    assert_eq!(r.model().as_str(), OPENAI);
    let tried: Vec<(&str, AttemptReason)> = r.attempts.iter().map(|a| (a.model.as_str(), a.reason)).collect();
    assert_eq!(tried, [(AZURE, AttemptReason::Primary), (OPENAI, AttemptReason::Fallback)]);
    assert!(matches!(r.attempts[0].outcome, AttemptOutcome::Failed { kind: ErrorKind::Server, .. }));
    // Never outside the group: the cheap model is not a fallback.
    assert_eq!(r.decision.ranking().len(), 2);

    // Streams fail over the same way.
    let s = router.stream(Request::new("hi").with_model("gpt-4o")).await.unwrap();
    assert_eq!(s.model().as_str(), OPENAI);
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_moves_keys_to_the_other_member() {
    let health = HealthConfig::new().with_window(4).with_min_requests(2).with_failure_rate(0.5);
    let router = builder(SimulatedModel::healthy().with_failures(1.0, 0.0, 0.0))
        .execution(
            ExecutionConfig::new().with_retry(RetryPolicy::no_retries()).with_live_routing(false).with_health(health),
        )
        .group(Group::new("gpt-4o", [OPENAI, AZURE]))
        .build()
        .unwrap();
    // Requests whose key lands on Azure fail over to OpenAI until Azure's circuit opens.
    let mut i = 0;
    loop {
        let req = Request::new("hi").with_model("gpt-4o").with_key(format!("user-{i}"));
        i += 1;
        let d = router.route(&req).unwrap();
        if d.rejections().iter().any(|r| matches!(r.reason(), RejectReason::CircuitOpen { .. })) {
            assert_eq!((d.model().as_str(), d.fallbacks().count()), (OPENAI, 0));
            break;
        }
        let r = router.complete(req).await.unwrap();
        assert_eq!(r.model().as_str(), OPENAI);
        assert!(i < 100, "the circuit never opened");
    }
    // While it is open, every key is served by OpenAI.
    for i in 0..20 {
        let r = router.complete(Request::new("hi").with_model("gpt-4o").with_key(format!("k{i}"))).await.unwrap();
        let tried: Vec<&str> = r.attempts.iter().map(|a| a.model.as_str()).collect();
        assert_eq!(tried, [OPENAI]);
    }
}

#[test]
fn unknown_names_are_refused_and_listed_names_resolve() {
    let router = grouped();
    assert!(router.resolve("gpt-5").is_none());
    let e = router.route(&Request::new("hi").with_model("gpt-5")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(e.to_string().contains("`gpt-5`"), "{e}");
    let e = router.route(&Request::new("hi").with_model("x".repeat(10_000))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(e.to_string().len() < 200, "{e}");

    let listed: Vec<(&str, NameKind)> = router.models().iter().map(|r| (r.name(), r.kind())).collect();
    assert_eq!(
        listed,
        [
            (OPENAI, NameKind::Model),
            (AZURE, NameKind::Model),
            ("mini", NameKind::Model),
            ("gpt-4o", NameKind::Group),
            ("gpt-4o-standby", NameKind::Group),
            ("cheap", NameKind::Alias),
            ("smart", NameKind::Alias),
        ]
    );
    for r in router.models() {
        assert_eq!(router.resolve(r.name()).as_ref(), Some(r));
        assert!(router.route(&Request::new("hi").with_model(r.name()).with_key("k")).is_ok(), "{}", r.name());
    }
    let smart = router.resolve("smart").unwrap();
    assert_eq!(ids(smart.members().iter()), [OPENAI, AZURE]);
}

#[test]
fn requests_that_pin_nothing_route_as_before() {
    let plain = builder(SimulatedModel::healthy()).build().unwrap();
    let grouped = grouped();
    for (i, text) in ["hi", "Write a Rust function that reverses a string.", "Prove Fermat's little theorem."]
        .into_iter()
        .enumerate()
    {
        let req = Request::new(text).with_key(format!("user-{i}"));
        let (a, b) = (plain.route(&req).unwrap(), grouped.route(&req).unwrap());
        assert_eq!(a, b);
        assert!(b.pinned().is_none());
    }
}

#[test]
fn bad_groups_fail_the_build_with_config_errors() {
    let build = |b: RouterBuilder| b.build().unwrap_err();
    for (b, message) in [
        (builder(SimulatedModel::healthy()).group(Group::new("g", ["nope"])), "`nope`, which is not in the catalog"),
        (builder(SimulatedModel::healthy()).group(Group::new("g", Vec::<&str>::new())), "no members"),
        (builder(SimulatedModel::healthy()).group(Group::new("mini", [OPENAI])), "name of a model id"),
        (
            builder(SimulatedModel::healthy()).group(Group::new("g", [OPENAI, AZURE]).with_weights([0.0, 0.0])),
            "positive",
        ),
        (
            builder(SimulatedModel::healthy()).group(Group::new("g", [OPENAI, AZURE]).with_weights([f64::NAN, 1.0])),
            "finite",
        ),
        (builder(SimulatedModel::healthy()).alias("x", "nowhere"), "neither a model id nor a group"),
        (builder(SimulatedModel::healthy()).alias("a", "mini").alias("b", "a"), "points at alias `a`"),
    ] {
        let e = build(b);
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains(message), "{e} (expected {message})");
    }
}

#[tokio::test(start_paused = true)]
async fn a_config_with_groups_and_aliases_round_trips_and_serves() {
    let text = r#"
[[models]]
id = "gpt-4o@openai"
provider = "openai"
api_name = "gpt-4o"
context_window = 128000
max_output_tokens = 16384
capabilities = ["streaming"]
pricing = { input_per_mtok = 2.5, output_per_mtok = 10.0 }

[[models]]
id = "gpt-4o@azure"
provider = "azure"
api_name = "gpt-4o"
context_window = 128000
max_output_tokens = 16384
capabilities = ["streaming"]
pricing = { input_per_mtok = 2.5, output_per_mtok = 10.0 }

[[groups]]
name = "gpt-4o"
members = ["gpt-4o@azure", "gpt-4o@openai"]
strategy = "priority"

[aliases]
default = "gpt-4o"
"#;
    let config = RouterConfig::from_toml_str(text).unwrap();
    let back = RouterConfig::from_toml_str(&config.to_toml_string().unwrap()).unwrap();
    assert_eq!(back, config);
    let router = back
        .builder()
        .unwrap()
        .provider(SimulatedProvider::new("openai"))
        .provider(SimulatedProvider::new("azure").default_model(SimulatedModel::healthy().with_failures(1.0, 0.0, 0.0)))
        .execution(ExecutionConfig::new().with_retry(RetryPolicy::no_retries()))
        .build()
        .unwrap();
    let r = router.complete(Request::new("hi").with_model("default")).await.unwrap();
    assert_eq!(r.model().as_str(), OPENAI);
    assert_eq!(
        r.attempts.iter().map(|a| a.reason).collect::<Vec<_>>(),
        [AttemptReason::Primary, AttemptReason::Fallback]
    );
    let e = router.complete(Request::new("hi").with_model("gpt-4")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
}
