//! Property tests of routing over random catalogs and random requests.
//!
//! - Every model in a decision's ranking satisfies every hard constraint, every model the router
//!   removed was removed for a reason that holds, and every catalog model is one or the other.
//! - `CheapestCapable` never passes over a cheaper candidate that reaches the floor.
//! - `Utility`: a larger answer value never lowers the chosen model's `p`, nor, without a latency
//!   cost, its expected cost.
//! - Independence of irrelevant alternatives: adding a model that is not chosen changes neither the
//!   choice nor the order of the others, for every built-in policy (`Utility`, `CheapestCapable`,
//!   `Rules`, `Bandit`, `Experiment`).
//! - Decisions are deterministic, within one router and across routers built the same way.
//! - Adding a model that the hard constraints filter out changes nothing.
//! - `route()` never panics: any request, any valid catalog, gives a decision or a typed error.
//! - `uniform(key, seed)` is in `[0, 1)` and a pure function of its inputs.

#![allow(clippy::unwrap_used, reason = "tests and their helpers may unwrap")]

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;
use switchyard::catalog::{Ability, LatencyProfile};
use switchyard::classify::{DifficultyClassifier, HeuristicCounter, Intent, IntentClassifier, TokenCounter};
use switchyard::cost::price;
use switchyard::policy::experiment::{Bandit, Experiment};
use switchyard::policy::{Action, Condition, RejectReason, Rule, Rules};
use switchyard::{
    Capabilities, Catalog, CheapestCapable, ContentPart, Decision, ErrorKind, ImageDetail, Message, ModelId,
    ModelProfile, Pricing, Request, ResponseFormat, Role, Router, RouterBuilder, Tool, Utility, uniform,
};

const CASES: u32 = 256;

// ---------------------------------------------------------------------------------------------------
// Catalogs

const CAPS: [Capabilities; 5] =
    [Capabilities::TOOLS, Capabilities::VISION, Capabilities::JSON, Capabilities::STREAMING, Capabilities::REASONING];
const TAGS: [&str; 3] = ["eu", "fast", "frontier"];

fn caps_from_bits(bits: u8) -> Capabilities {
    CAPS.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).fold(Capabilities::NONE, |acc, (_, c)| acc | *c)
}

#[derive(Clone, Debug)]
struct ModelSpec {
    input_price: f64,
    output_price: f64,
    cached_price: Option<f64>,
    fee: f64,
    window: u32,
    max_out_raw: u32,
    caps: u8,
    ability: f64,
    intent_ability: Option<(usize, f64)>,
    ttft_ms: f64,
    tokens_per_sec: f64,
    tags: u8,
}

impl ModelSpec {
    fn profile(&self, id: &str) -> ModelProfile {
        let mut pricing = Pricing::per_mtok(self.input_price, self.output_price).with_request_fee(self.fee);
        if let Some(c) = self.cached_price {
            pricing = pricing.with_cached_input(c);
        }
        let mut ability = Ability::new(self.ability);
        if let Some((i, a)) = self.intent_ability {
            ability = ability.with_intent(Intent::ALL[i % Intent::ALL.len()], a);
        }
        let max_out = 1 + self.max_out_raw % self.window;
        let mut m = ModelProfile::new(id, "sim")
            .with_pricing(pricing)
            .with_context(self.window, max_out)
            .with_capabilities(caps_from_bits(self.caps))
            .with_ability(ability)
            .with_latency(LatencyProfile::new(self.ttft_ms, self.tokens_per_sec));
        for (i, t) in TAGS.iter().enumerate() {
            if self.tags & (1 << i) != 0 {
                m = m.with_tag(*t);
            }
        }
        m
    }
}

fn price_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![2 => Just(0.0), 3 => 0.0..2.0f64, 3 => 0.0..100.0f64]
}

fn window_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..64, 64u32..4_096, 4_096u32..200_000, 200_000u32..=2_000_000, Just(u32::MAX)]
}

fn model_spec() -> impl Strategy<Value = ModelSpec> {
    (
        (
            price_strategy(),
            price_strategy(),
            proptest::option::weighted(0.2, 0.0..1.0f64),
            prop_oneof![4 => Just(0.0), 1 => 0.0..0.01f64],
        ),
        (window_strategy(), any::<u32>(), any::<u8>()),
        (-3.0..6.0f64, proptest::option::weighted(0.3, (0usize..7, -3.0..6.0f64))),
        (0.0..5_000.0f64, 1.0..500.0f64, any::<u8>()),
    )
        .prop_map(
            |(
                (input_price, output_price, cached_price, fee),
                (window, max_out_raw, caps),
                (ability, intent_ability),
                (ttft_ms, tokens_per_sec, tags),
            )| {
                ModelSpec {
                    input_price,
                    output_price,
                    cached_price,
                    fee,
                    window,
                    max_out_raw,
                    caps,
                    ability,
                    intent_ability,
                    ttft_ms,
                    tokens_per_sec,
                    tags,
                }
            },
        )
}

fn catalog_of(specs: &[ModelSpec]) -> Catalog {
    Catalog::new(specs.iter().enumerate().map(|(i, s)| s.profile(&format!("m{i}"))))
        .expect("generated catalogs are valid")
}

// ---------------------------------------------------------------------------------------------------
// Requests

const WORDS: [&str; 40] = [
    "the",
    "a",
    "model",
    "prove",
    "why",
    "explain",
    "step",
    "by",
    "must",
    "exactly",
    "at",
    "least",
    "code",
    "function",
    "python",
    "rust",
    "integral",
    "equation",
    "solve",
    "poem",
    "story",
    "summarize",
    "extract",
    "translate",
    "french",
    "hello",
    "thanks",
    "how",
    "what",
    "?",
    "1.",
    "-",
    "```",
    "\n",
    "x^2",
    "=",
    "+",
    "{",
    "}",
    "and",
];

fn text_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => any::<String>(),
        2 => proptest::collection::vec(any::<char>(), 0..64).prop_map(String::from_iter),
        1 => "[ -~]{0,200}",
        3 => proptest::collection::vec(select(&WORDS[..]), 0..400).prop_map(|w| w.join(" ")),
        1 => proptest::collection::vec(select(&WORDS[..]), 400..4_000).prop_map(|w| w.join(" ")),
        1 => Just(String::new()),
    ]
}

#[derive(Clone, Debug)]
struct RequestSpec {
    messages: Vec<(u8, String)>,
    system: Option<String>,
    images: Vec<u8>,
    tools: u8,
    json: bool,
    max_tokens: Option<u32>,
    latency_budget_ms: Option<u64>,
    max_cost: Option<f64>,
    allowed: Option<Vec<bool>>,
    excluded: Vec<bool>,
    quality_floor: Option<f64>,
    key: Option<String>,
    required: u8,
    cached: Option<u32>,
}

fn request_spec() -> impl Strategy<Value = RequestSpec> {
    (
        (
            proptest::collection::vec((0u8..4, text_strategy()), 0..4),
            proptest::option::weighted(0.3, text_strategy()),
            proptest::collection::vec(0u8..3, 0..3),
            prop_oneof![3 => Just(0u8), 1 => 1u8..3],
            proptest::bool::weighted(0.2),
        ),
        (
            proptest::option::weighted(0.5, prop_oneof![0u32..100, 100u32..10_000, any::<u32>()]),
            proptest::option::weighted(0.3, prop_oneof![0u64..2_000, 2_000u64..120_000]),
            proptest::option::weighted(0.3, prop_oneof![Just(0.0), 0.0..0.01f64, 0.0..10.0f64]),
        ),
        (
            proptest::option::weighted(0.2, proptest::collection::vec(proptest::bool::weighted(0.7), 12)),
            proptest::collection::vec(proptest::bool::weighted(0.1), 12),
            proptest::option::weighted(0.4, 0.0..=1.0f64),
            proptest::option::of("[a-z0-9]{0,12}"),
            prop_oneof![4 => Just(0u8), 1 => any::<u8>()],
            proptest::option::weighted(0.2, any::<u32>()),
        ),
    )
        .prop_map(
            |(
                (messages, system, images, tools, json),
                (max_tokens, latency_budget_ms, max_cost),
                (allowed, excluded, quality_floor, key, required, cached),
            )| RequestSpec {
                messages,
                system,
                images,
                tools,
                json,
                max_tokens,
                latency_budget_ms,
                max_cost,
                allowed,
                excluded,
                quality_floor,
                key,
                required,
                cached,
            },
        )
}

fn request_of(spec: &RequestSpec, ids: &[ModelId]) -> Request {
    let roles = [Role::User, Role::Assistant, Role::System, Role::User];
    let mut messages: Vec<Message> =
        spec.messages.iter().map(|(r, t)| Message::new(roles[usize::from(*r) % 4], t.clone())).collect();
    if !spec.images.is_empty() {
        let mut m = messages.pop().unwrap_or_else(|| Message::user(""));
        for d in &spec.images {
            let detail = [ImageDetail::Auto, ImageDetail::Low, ImageDetail::High][usize::from(*d) % 3];
            m = m.with_part(ContentPart::image("https://example.com/i.png", detail));
        }
        messages.push(m);
    }
    let mut req = Request::from_messages(messages);
    if let Some(s) = &spec.system {
        req = req.with_system(s.clone());
    }
    for i in 0..spec.tools {
        req = req.with_tool(Tool::new(format!("tool{i}"), "does a thing", r#"{"type":"object"}"#));
    }
    if spec.json {
        req = req.with_response_format(ResponseFormat::Json);
    }
    if let Some(t) = spec.max_tokens {
        req = req.with_max_tokens(t);
    }
    if let Some(ms) = spec.latency_budget_ms {
        req = req.with_latency_budget(Duration::from_millis(ms));
    }
    if let Some(c) = spec.max_cost {
        req = req.with_max_cost(c);
    }
    if let Some(mask) = &spec.allowed {
        req = req.with_allowed(ids.iter().zip(mask).filter(|(_, b)| **b).map(|(id, _)| id.clone()));
    }
    for (id, b) in ids.iter().zip(&spec.excluded) {
        if *b {
            req = req.with_excluded(id.clone());
        }
    }
    if let Some(f) = spec.quality_floor {
        req = req.with_quality_floor(f);
    }
    if let Some(k) = &spec.key {
        req = req.with_key(k.clone());
    }
    if spec.required != 0 {
        req = req.with_required(caps_from_bits(spec.required));
    }
    if let Some(c) = spec.cached {
        req = req.with_cached_input_tokens(c);
    }
    req
}

// ---------------------------------------------------------------------------------------------------
// Routers

#[derive(Clone, Debug)]
enum PolicySpec {
    Utility { value: f64, mu: f64 },
    Cheapest { floor: f64 },
}

fn policy_spec() -> impl Strategy<Value = PolicySpec> {
    prop_oneof![
        (answer_value(), prop_oneof![Just(0.0), 0.0..0.01f64])
            .prop_map(|(value, mu)| PolicySpec::Utility { value, mu }),
        (0.0..=1.0f64).prop_map(|floor| PolicySpec::Cheapest { floor }),
    ]
}

#[derive(Clone, Debug)]
struct RouterSpec {
    difficulty_weight: f64,
    intent_weight: f64,
    seed: u64,
    policy: PolicySpec,
}

fn router_spec() -> impl Strategy<Value = RouterSpec> {
    (prop_oneof![Just(0.0), 0.0..3.0f64], prop_oneof![Just(0.0), 0.0..3.0f64], any::<u64>(), policy_spec()).prop_map(
        |(difficulty_weight, intent_weight, seed, policy)| {
            // `build()` rejects classifiers whose weights are all zero; keep one positive.
            let intent_weight = if difficulty_weight == 0.0 && intent_weight == 0.0 { 1.0 } else { intent_weight };
            RouterSpec { difficulty_weight, intent_weight, seed, policy }
        },
    )
}

fn builder_of(spec: &RouterSpec, catalog: Catalog) -> RouterBuilder {
    let b = Router::builder()
        .catalog(catalog)
        .classifier(DifficultyClassifier::default(), spec.difficulty_weight)
        .classifier(IntentClassifier::default(), spec.intent_weight)
        .seed(spec.seed);
    match spec.policy {
        PolicySpec::Utility { value, mu } => b.policy(Utility::new().answer_value(value).latency_cost(mu)),
        PolicySpec::Cheapest { floor } => b.policy(CheapestCapable::new(floor)),
    }
}

fn router_of(spec: &RouterSpec, catalog: Catalog) -> Router {
    builder_of(spec, catalog).build().expect("generated routers are valid")
}

struct Case {
    catalog: Catalog,
    router: Router,
    request: Request,
}

fn case() -> impl Strategy<Value = (Vec<ModelSpec>, RouterSpec, RequestSpec)> {
    (proptest::collection::vec(model_spec(), 1..=12), router_spec(), request_spec())
}

fn build_case(models: &[ModelSpec], rs: &RouterSpec, qs: &RequestSpec) -> Case {
    let catalog = catalog_of(models);
    let ids: Vec<ModelId> = catalog.models().iter().map(|m| m.id.clone()).collect();
    let request = request_of(qs, &ids);
    let router = router_of(rs, catalog.clone());
    Case { catalog, router, request }
}

fn ranking_ids(d: &Decision) -> Vec<ModelId> {
    std::iter::once(d.model().clone()).chain(d.fallbacks().cloned()).collect()
}

/// `spec` made dearer, weaker and slower than every model of `models`, and able to serve any
/// request: the model a relative cost or latency scale would pick up, and no policy should choose.
fn dearer_weaker_slower(models: &[ModelSpec], mut spec: ModelSpec) -> ModelSpec {
    let max = |f: fn(&ModelSpec) -> f64| models.iter().map(f).fold(0.0, f64::max);
    spec.input_price = 10.0 * max(|m| m.input_price) + 1.0;
    spec.output_price = 10.0 * max(|m| m.output_price) + 1.0;
    spec.cached_price = None;
    spec.fee = 10.0 * max(|m| m.fee);
    spec.ability = models.iter().map(|m| m.ability).fold(f64::INFINITY, f64::min) - 1.0;
    spec.intent_ability = None;
    spec.window = u32::MAX;
    spec.max_out_raw = u32::MAX - 1;
    spec.caps = u8::MAX;
    spec.ttft_ms = 10.0 * max(|m| m.ttft_ms) + 1.0;
    spec.tokens_per_sec = 0.5;
    spec.tags = u8::MAX;
    spec
}

/// Answer values from "almost only cost" to "almost only quality", in USD.
fn answer_value() -> impl Strategy<Value = f64> {
    prop_oneof![1 => Just(0.0), 8 => (-7.0..3.0f64).prop_map(|e| 10f64.powf(e))]
}

/// Every built-in policy, for the independence property.
#[derive(Clone, Debug)]
enum IiaPolicy {
    Utility {
        value: f64,
        mu: f64,
    },
    Cheapest {
        floor: f64,
    },
    /// Rules: code goes to `m0` (when it is a candidate), maths to the portfolio of the first three
    /// models.
    Rules {
        value: f64,
    },
    Bandit {
        value: f64,
        exploration: f64,
        seed: u64,
    },
    /// Two arms, `Utility` and `CheapestCapable`, split by the request's key.
    Experiment {
        value: f64,
        floor: f64,
    },
}

fn iia_policy() -> impl Strategy<Value = IiaPolicy> {
    prop_oneof![
        (answer_value(), prop_oneof![Just(0.0), 0.0..0.01f64]).prop_map(|(value, mu)| IiaPolicy::Utility { value, mu }),
        (0.0..=1.0f64).prop_map(|floor| IiaPolicy::Cheapest { floor }),
        answer_value().prop_map(|value| IiaPolicy::Rules { value }),
        (answer_value(), prop_oneof![Just(0.0), Just(1.0), 0.0..1.0f64], any::<u64>())
            .prop_map(|(value, exploration, seed)| IiaPolicy::Bandit { value, exploration, seed }),
        (answer_value(), 0.0..=1.0f64).prop_map(|(value, floor)| IiaPolicy::Experiment { value, floor }),
    ]
}

impl IiaPolicy {
    /// The policy over a portfolio whose first `n` models are `m0`, `m1`, …
    fn build(&self, b: RouterBuilder, n: usize) -> RouterBuilder {
        match *self {
            Self::Utility { value, mu } => b.policy(Utility::new().answer_value(value).latency_cost(mu)),
            Self::Cheapest { floor } => b.policy(CheapestCapable::new(floor)),
            Self::Rules { value } => b.policy(
                Rules::new(Utility::new().answer_value(value))
                    .rule(Rule::new("code", Condition::always().intent(Intent::Code), Action::Pin("m0".into())))
                    .rule(Rule::new(
                        "math",
                        Condition::always().intent(Intent::Math),
                        Action::Portfolio((0..n.min(3)).map(|i| ModelId::new(format!("m{i}"))).collect()),
                    )),
            ),
            Self::Bandit { value, exploration, seed } => {
                b.policy(Bandit::new().answer_value(value).exploration(exploration).seed(seed))
            }
            Self::Experiment { value, floor } => b.policy(
                Experiment::builder("iia")
                    .arm("utility", 1.0, Utility::new().answer_value(value))
                    .arm("cheapest", 1.0, CheapestCapable::new(floor))
                    .build()
                    .expect("a valid experiment"),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The hard-constraint oracle

/// The output reservation documented by `ContextLength`: `max_tokens`, else 1024, capped at the
/// model's output limit.
fn reserved(req: &Request, m: &ModelProfile) -> u32 {
    req.max_tokens.unwrap_or(1024).min(m.max_output_tokens)
}

fn expected_input_tokens(req: &Request) -> u32 {
    u32::try_from(HeuristicCounter::default().count_request(req).unwrap()).unwrap_or(u32::MAX)
}

/// Checks that `m`, a candidate of `d`, satisfies every hard constraint of `req`.
fn check_candidate(req: &Request, d: &Decision, m: &ModelProfile) -> Result<(), TestCaseError> {
    let input = d.input_tokens().expect("the router always counts input tokens").tokens;
    prop_assert!(
        u64::from(m.context_window) >= u64::from(input) + u64::from(reserved(req, m)),
        "`{}`: window {} < {} + {}",
        m.id,
        m.context_window,
        input,
        reserved(req, m)
    );
    if let Some(mt) = req.max_tokens {
        prop_assert!(mt <= m.max_output_tokens, "`{}`: max_tokens {} > max output {}", m.id, mt, m.max_output_tokens);
    }
    prop_assert!(
        m.capabilities.contains(req.implied_capabilities()),
        "`{}` lacks {:?}",
        m.id,
        req.implied_capabilities()
    );
    if let Some(allowed) = &req.hints.allowed {
        prop_assert!(allowed.contains(&m.id), "`{}` not allowed", m.id);
    }
    prop_assert!(!req.hints.excluded.contains(&m.id), "`{}` excluded", m.id);
    let c = d.candidate(m.id.as_str()).expect("ranked models are candidates");
    prop_assert!(c.cost.usd.is_finite() && c.cost.usd >= 0.0, "{:?}", c);
    prop_assert_eq!(c.cost.input_tokens, input);
    prop_assert_eq!(
        c.cost.usd,
        price(&m.pricing, c.cost.input_tokens, c.cost.cached_input_tokens, c.cost.output_tokens)
    );
    prop_assert_eq!(c.latency_secs, m.latency.expected_secs(f64::from(c.cost.output_tokens)));
    prop_assert!((0.0..=1.0).contains(&c.p), "p = {}", c.p);
    if let Some(budget) = req.hints.latency_budget {
        prop_assert!(c.latency_secs <= budget.as_secs_f64(), "`{}`: {}s > {:?}", m.id, c.latency_secs, budget);
    }
    if let Some(cap) = req.hints.max_cost_usd {
        prop_assert!(c.cost.usd <= cap, "`{}`: ${} > ${}", m.id, c.cost.usd, cap);
    }
    Ok(())
}

/// Checks that the constraint a rejection names really removes the model.
fn check_rejection(req: &Request, m: &ModelProfile, reason: &RejectReason) -> Result<(), TestCaseError> {
    match reason {
        RejectReason::NotAllowed => prop_assert!(req.hints.allowed.as_ref().is_some_and(|a| !a.contains(&m.id))),
        RejectReason::Excluded => prop_assert!(req.hints.excluded.contains(&m.id)),
        RejectReason::MissingCapabilities { missing } => {
            prop_assert!(!missing.is_empty());
            prop_assert_eq!(*missing, req.implied_capabilities().difference(m.capabilities));
        }
        RejectReason::MaxOutput { requested, max } => {
            prop_assert_eq!(Some(*requested), req.max_tokens);
            prop_assert_eq!(*max, m.max_output_tokens);
            prop_assert!(requested > max);
        }
        RejectReason::ContextWindow { needed, input, reserved: r, window } => {
            prop_assert_eq!(*window, m.context_window);
            prop_assert_eq!(*input, expected_input_tokens(req));
            prop_assert_eq!(*r, reserved(req, m));
            prop_assert_eq!(*needed, u64::from(*input) + u64::from(*r));
            prop_assert!(needed > &u64::from(*window));
        }
        RejectReason::LatencyBudget { expected, budget } => {
            prop_assert_eq!(Some(*budget), req.hints.latency_budget);
            prop_assert!(expected >= budget, "{:?} < {:?}", expected, budget);
        }
        RejectReason::CostCap { expected, cap } => {
            prop_assert_eq!(Some(*cap), req.hints.max_cost_usd);
            prop_assert!(expected > cap);
        }
        other => prop_assert!(false, "unexpected rejection of `{}`: {:?}", m.id, other),
    }
    Ok(())
}

/// The whole decision against the oracle: ranking, candidates, rejections, partition.
fn check_decision(catalog: &Catalog, req: &Request, d: &Decision) -> Result<(), TestCaseError> {
    prop_assert_eq!(d.input_tokens().map(|t| t.tokens), Some(expected_input_tokens(req)));
    let ranked = ranking_ids(d);
    let mut seen = std::collections::HashSet::new();
    for id in &ranked {
        prop_assert!(seen.insert(id.clone()), "`{}` ranked twice", id);
        check_candidate(req, d, catalog.get(id).unwrap())?;
    }
    for c in d.candidates() {
        check_candidate(req, d, catalog.model(c.model))?;
    }
    for r in d.rejections() {
        check_rejection(req, catalog.get(r.model()).unwrap(), r.reason())?;
    }
    // Every model is either a candidate or rejected, never both.
    for m in catalog.models() {
        let cand = d.candidate(m.id.as_str()).is_some();
        let rej = d.rejections().iter().filter(|r| r.model() == &m.id).count();
        prop_assert!(cand as usize + rej == 1, "`{}`: candidate {}, rejected {} times", m.id, cand, rej);
    }
    Ok(())
}

/// The documented utility, `V·p − c − μ·l`, recomputed from the candidates: the ranking lists every
/// candidate, best first, with these scores.
fn check_utility_ranking(d: &Decision, value: f64, mu: f64) -> Result<(), TestCaseError> {
    let cands = d.candidates();
    let utility = |c: &switchyard::policy::Candidate| value * c.p - c.cost.usd - mu * c.latency_secs;
    prop_assert_eq!(d.ranking().len(), cands.len());
    let mut previous = f64::INFINITY;
    for s in d.ranking() {
        let c = cands.iter().find(|c| c.model == s.model).unwrap();
        let expected = utility(c);
        prop_assert!((s.score - expected).abs() <= 1e-9 * (1.0 + expected.abs()), "score {} != {}", s.score, expected);
        prop_assert!(expected <= previous + 1e-9, "ranking not in utility order: {} after {}", expected, previous);
        previous = expected;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    /// The chosen model and every fallback satisfy every hard constraint; every rejection is
    /// justified; when nothing fits, the error lists every model.
    #[test]
    fn decisions_respect_hard_constraints((models, rs, qs) in case()) {
        let Case { catalog, router, request } = build_case(&models, &rs, &qs);
        match router.route(&request) {
            Ok(d) => check_decision(&catalog, &request, &d)?,
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::NoCandidate, "{}", e);
                prop_assert_eq!(e.rejections().len(), catalog.len());
                for r in e.rejections() {
                    check_rejection(&request, catalog.get(r.model()).unwrap(), r.reason())?;
                }
            }
        }
    }

    /// `CheapestCapable` picks the cheapest candidate that reaches the floor, or, when none does,
    /// the most likely to succeed.
    #[test]
    fn cheapest_capable_never_skips_a_cheaper_capable_model(
        (models, rs, qs) in case(),
        floor in 0.0..=1.0f64,
    ) {
        let rs = RouterSpec { policy: PolicySpec::Cheapest { floor }, ..rs };
        let Case { router, request, .. } = build_case(&models, &rs, &qs);
        let Ok(d) = router.route(&request) else { return Ok(()) };
        let floor = request.hints.quality_floor.unwrap_or(floor);
        let chosen = d.chosen();
        let capable: Vec<_> = d.candidates().iter().filter(|c| c.p >= floor).collect();
        if capable.is_empty() {
            for c in d.candidates() {
                prop_assert!(c.p <= chosen.p, "{:?} beats the chosen {:?}", c, chosen);
            }
        } else {
            prop_assert!(chosen.p >= floor, "chose {:?} below the floor {}", chosen, floor);
            for c in capable {
                prop_assert!(c.cost.usd >= chosen.cost.usd, "{:?} is capable and cheaper than {:?}", c, chosen);
            }
        }
    }

    /// Raising `V` never lowers the chosen model's `p` and, without a latency cost, never lowers
    /// its expected cost (same request, same catalog).
    #[test]
    fn utility_answer_value_is_monotone(
        (models, rs, qs) in case(),
        value in answer_value(),
        factor in 1.01..100.0f64,
        mu in prop_oneof![Just(0.0), 0.0..0.01f64],
    ) {
        let catalog = catalog_of(&models);
        let ids: Vec<ModelId> = catalog.models().iter().map(|m| m.id.clone()).collect();
        let request = request_of(&qs, &ids);
        let at = |value: f64| {
            let spec = RouterSpec { policy: PolicySpec::Utility { value, mu }, ..rs.clone() };
            router_of(&spec, catalog.clone()).route(&request)
        };
        let higher = value * factor + 1e-9;
        let (Ok(low), Ok(high)) = (at(value), at(higher)) else { return Ok(()) };
        check_utility_ranking(&low, value, mu)?;
        check_utility_ranking(&high, higher, mu)?;
        prop_assert_eq!(low.candidates(), high.candidates());
        prop_assert!(high.chosen().p >= low.chosen().p - 1e-12, "V {} chose p {}, V {} chose p {}", value, low.chosen().p, higher, high.chosen().p);
        if mu == 0.0 {
            let max_cost = low.candidates().iter().map(|c| c.cost.usd).fold(0.0, f64::max);
            prop_assert!(
                high.estimated_cost() >= low.estimated_cost() - 1e-9 * max_cost,
                "V {} chose `{}` (${}), V {} chose `{}` (${})",
                value, low.model(), low.estimated_cost(), higher, high.model(), high.estimated_cost()
            );
        }
    }

    /// Independence of irrelevant alternatives: a model added to the portfolio either is chosen or
    /// changes nothing, neither the choice nor the order of the other models, whatever the policy.
    #[test]
    fn adding_a_model_that_is_not_chosen_changes_nothing(
        (models, rs, qs) in case(),
        extra in model_spec(),
        dearer in any::<bool>(),
        at in any::<proptest::sample::Index>(),
        policy in iia_policy(),
    ) {
        let catalog = catalog_of(&models);
        let ids: Vec<ModelId> = catalog.models().iter().map(|m| m.id.clone()).collect();
        let request = request_of(&qs, &ids);
        let extra = if dearer { dearer_weaker_slower(&models, extra) } else { extra };
        let added = ModelId::new("added");
        // The added model goes anywhere in the catalog; the others keep their ids and order.
        let mut wider: Vec<ModelProfile> = catalog.models().to_vec();
        wider.insert(at.index(wider.len() + 1), extra.profile(added.as_str()));
        let route = |catalog: Catalog| {
            let b = Router::builder()
                .catalog(catalog)
                .classifier(DifficultyClassifier::default(), rs.difficulty_weight)
                .classifier(IntentClassifier::default(), rs.intent_weight)
                .seed(rs.seed);
            policy.build(b, models.len()).build().expect("generated routers are valid").route(&request)
        };
        let (Ok(before), Ok(after)) = (route(catalog.clone()), route(Catalog::new(wider).unwrap())) else { return Ok(()) };
        if after.model() == &added {
            return Ok(());
        }
        let order = |d: &Decision| -> Vec<ModelId> { ranking_ids(d).into_iter().filter(|m| *m != added).collect() };
        prop_assert_eq!(before.model(), after.model(), "{:?}: adding `{}` moved the choice", policy, added);
        prop_assert_eq!(order(&before), order(&after), "{:?}: adding `{}` reordered the others", policy, added);
    }

    /// The same request gets the same decision from one router, from a clone and from a twin
    /// built the same way.
    #[test]
    fn decisions_are_deterministic((models, rs, qs) in case()) {
        let Case { catalog, router, request } = build_case(&models, &rs, &qs);
        let twin = router_of(&rs, catalog_of(&models));
        let a = router.route(&request);
        let b = router.route(&request);
        let c = twin.route(&request);
        let d = router.clone().route(&request);
        match (a, b, c, d) {
            (Ok(a), Ok(b), Ok(c), Ok(d)) => {
                prop_assert_eq!(&a, &b);
                prop_assert_eq!(&a, &c);
                prop_assert_eq!(&a, &d);
                prop_assert_eq!(a.explain(), c.explain());
                let _ = catalog;
            }
            (Err(a), Err(b), Err(c), Err(d)) => {
                prop_assert_eq!(a.kind(), b.kind());
                prop_assert_eq!(a.kind(), c.kind());
                prop_assert_eq!(a.kind(), d.kind());
                prop_assert_eq!(a.rejections(), c.rejections());
                prop_assert_eq!(a.to_string(), c.to_string());
            }
            (a, b, c, d) => prop_assert!(false, "diverged: {:?} {:?} {:?} {:?}", a, b, c, d),
        }
    }

    /// A model the hard constraints remove (it lacks what the request needs, or its window is a
    /// single token) changes neither the choice nor the order of the ranking, wherever it sits in
    /// the catalog.
    #[test]
    fn filtered_models_change_nothing(
        (models, rs, qs) in case(),
        extra in model_spec(),
        position in any::<prop::sample::Index>(),
    ) {
        let before = catalog_of(&models);
        let ids: Vec<ModelId> = before.models().iter().map(|m| m.id.clone()).collect();
        let request = request_of(&qs, &ids);
        let implied = request.implied_capabilities();
        prop_assume!(!implied.is_empty() || expected_input_tokens(&request) > 0);

        // Lacks every capability the request implies, and has room for a single token.
        let misfit = extra.profile("misfit").with_context(1, 1).with_capabilities(
            if implied.is_empty() { caps_from_bits(extra.caps) } else { Capabilities::NONE },
        );
        let mut profiles: Vec<ModelProfile> = before.models().to_vec();
        profiles.insert(position.index(profiles.len() + 1), misfit);
        let after = Catalog::new(profiles).unwrap();

        let a = router_of(&rs, before).route(&request);
        let b = router_of(&rs, after).route(&request);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                prop_assert!(b.candidate("misfit").is_none());
                prop_assert!(b.rejections().iter().any(|r| r.model().as_str() == "misfit"));
                prop_assert_eq!(a.model(), b.model());
                prop_assert_eq!(ranking_ids(&a), ranking_ids(&b));
                prop_assert_eq!(a.candidates().len(), b.candidates().len());
                let scores = |d: &Decision| d.ranking().iter().map(|s| s.score).collect::<Vec<_>>();
                prop_assert_eq!(scores(&a), scores(&b));
            }
            (Err(a), Err(b)) => {
                prop_assert_eq!(a.kind(), b.kind());
                prop_assert_eq!(b.rejections().len(), a.rejections().len() + 1);
            }
            (a, b) => prop_assert!(false, "adding a filtered model changed the outcome: {:?} vs {:?}", a, b),
        }
    }

    /// `route()` never panics. Any catalog the validation accepts and any request, however odd,
    /// gives a decision, `NoCandidate` or (exactly when the request breaks a documented rule)
    /// `InvalidRequest`.
    #[test]
    fn route_never_panics(
        specs in proptest::collection::vec(wild_model(), 1..=6),
        (rs, qs) in (router_spec(), request_spec()),
        floor in wild_f64(),
        cap in wild_f64(),
        budget_ms in proptest::option::of(any::<u64>()),
        unknown in proptest::option::weighted(0.1, "[a-z]{1,8}"),
        limit in prop_oneof![Just(usize::MAX), 0usize..4_096],
    ) {
        let catalog = match Catalog::new(specs) {
            Ok(c) => c,
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::Config);
                return Ok(());
            }
        };
        let ids: Vec<ModelId> = catalog.models().iter().map(|m| m.id.clone()).collect();
        let mut request = request_of(&qs, &ids);
        request.hints.quality_floor = floor;
        request.hints.max_cost_usd = cap;
        request.hints.latency_budget = budget_ms.map(Duration::from_millis);
        if let Some(u) = &unknown {
            request = request.with_excluded(format!("{u}-not-in-catalog"));
        }
        let router = builder_of(&rs, catalog.clone()).max_request_bytes(limit).build().unwrap();
        let invalid = request.text_len() > limit
            || floor.is_some_and(|f| !(0.0..=1.0).contains(&f))
            || cap.is_some_and(|c| !(c.is_finite() && c >= 0.0))
            || unknown.is_some();
        match router.route(&request) {
            Ok(d) => {
                prop_assert!(!invalid);
                prop_assert!(d.candidates().iter().all(|c| (0.0..=1.0).contains(&c.p)), "{:?}", d);
                let _ = d.explain();
                let _ = format!("{d:?}");
            }
            Err(e) => {
                let _ = format!("{e} {e:?}");
                if invalid {
                    prop_assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{}", e);
                } else {
                    prop_assert_eq!(e.kind(), ErrorKind::NoCandidate, "{}", e);
                    prop_assert_eq!(e.rejections().len(), catalog.len());
                }
            }
        }
    }

    /// `uniform` is a pure function into `[0, 1)`.
    #[test]
    fn uniform_is_a_pure_unit_interval_sample(key in proptest::option::of(any::<String>()), seed in any::<u64>()) {
        let u = uniform(key.as_deref(), seed);
        prop_assert!((0.0..1.0).contains(&u), "{}", u);
        prop_assert_eq!(u.to_bits(), uniform(key.as_deref(), seed).to_bits());
        let owned = key.clone();
        prop_assert_eq!(u.to_bits(), uniform(owned.as_deref(), seed).to_bits());
    }
}

/// Floats a caller may pass: ordinary, out of range, infinite, NaN, negative zero.
fn wild_f64() -> impl Strategy<Value = Option<f64>> {
    proptest::option::of(prop_oneof![
        3 => 0.0..=1.0f64,
        1 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(-0.0),
        1 => Just(1.0 + f64::EPSILON),
        1 => Just(-f64::MIN_POSITIVE),
    ])
}

fn wild_num(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => lo..hi,
        1 => Just(0.0),
        1 => Just(f64::MAX),
        1 => Just(f64::MIN_POSITIVE),
        1 => Just(1e-300),
        1 => Just(1e300),
        1 => any::<f64>(),
    ]
}

/// Models with extreme numbers; some fail validation, which must then be a `Config` error.
fn wild_model() -> impl Strategy<Value = ModelProfile> {
    (
        (wild_num(0.0, 100.0), wild_num(0.0, 100.0), wild_num(0.0, 1.0)),
        (any::<u32>(), any::<u32>(), any::<u8>()),
        (
            wild_num(-10.0, 10.0),
            proptest::option::of(wild_num(-10.0, 10.0)),
            wild_num(0.0, 5_000.0),
            wild_num(0.0, 500.0),
        ),
        "[a-z]{1,3}",
    )
        .prop_map(|((i, o, fee), (window, max_out, caps), (ability, code, ttft, tps), id)| {
            let mut ab = Ability::new(ability);
            if let Some(c) = code {
                ab = ab.with_intent(Intent::Code, c);
            }
            ModelProfile::new(id, "sim")
                .with_pricing(Pricing::per_mtok(i, o).with_request_fee(fee))
                .with_context(window, max_out)
                .with_capabilities(caps_from_bits(caps))
                .with_ability(ab)
                .with_latency(LatencyProfile::new(ttft, tps))
        })
}

/// `uniform` spreads keys evenly: a constant or badly mixed hash fails this.
#[test]
fn uniform_spreads_keys_and_seeds() {
    let n = 20_000;
    let mut buckets = [0u32; 10];
    let mut sum = 0.0;
    for i in 0..n {
        let u = uniform(Some(&format!("user-{i}")), 42);
        buckets[(u * 10.0) as usize] += 1;
        sum += u;
    }
    let mean = sum / f64::from(n);
    assert!((mean - 0.5).abs() < 0.01, "{mean}");
    for b in buckets {
        assert!((f64::from(b) / f64::from(n) - 0.1).abs() < 0.01, "{buckets:?}");
    }
    // The seed matters, and so does the key.
    assert_ne!(uniform(Some("k"), 1), uniform(Some("k"), 2));
    assert_ne!(uniform(Some("a"), 1), uniform(Some("b"), 1));
    let same_key: Vec<f64> = (0..1_000u64).map(|s| uniform(Some("fixed"), s)).collect();
    let mean = same_key.iter().sum::<f64>() / 1_000.0;
    assert!((mean - 0.5).abs() < 0.05, "{mean}");
}

/// The documented output reservation, on a boundary: exactly fitting is allowed, one more is not.
#[test]
fn window_boundary_is_inclusive() {
    let req = Request::new("hello world, how are you?");
    let input = expected_input_tokens(&req);
    for max_tokens in [None, Some(10u32)] {
        let mut r = req.clone();
        r.max_tokens = max_tokens;
        let reserve = max_tokens.unwrap_or(1024);
        let exact = ModelProfile::new("exact", "sim").with_context(input + reserve, reserve);
        let short = ModelProfile::new("short", "sim").with_context(input + reserve - 1, reserve);
        let router = Router::builder().catalog(Catalog::new([short, exact]).unwrap()).build().unwrap();
        let d = router.route(&r).unwrap();
        assert_eq!(d.model().as_str(), "exact");
        assert_eq!(d.input_tokens().unwrap().tokens, input);
        assert!(matches!(d.rejections()[0].reason(), RejectReason::ContextWindow { .. }));
    }
}
