//! Tests of loading, validating and writing router configs.

use super::*;
use crate::error::ErrorKind;
use crate::policy::experiment::Metric;

const GOOD: &str = r#"
seed = 7
fallback_model = "big"

[[classifiers]]
kind = "difficulty"
weight = 1.0

[[classifiers]]
kind = "intent"
weight = 0.5

[policy]
kind = "rules"
default = { kind = "utility", answer_value_usd = 0.01 }

[[policy.rules]]
name = "code to big"
when = { intents = ["code"] }
pin = "big"

[[models]]
id = "small"
provider = "sim"
context_window = 16000
max_output_tokens = 4000
pricing = { input_per_mtok = 0.1, output_per_mtok = 0.4 }

[[models]]
id = "big"
provider = "sim"
context_window = 200000
max_output_tokens = 8000
capabilities = ["tools", "json"]
ability = { overall = 3.0, by_intent = { code = 3.5 } }
pricing = { input_per_mtok = 3.0, output_per_mtok = 15.0, cached_input_per_mtok = 0.3 }
"#;

#[test]
fn loads_toml_and_builds() {
    let cfg = RouterConfig::from_toml_str(GOOD).unwrap();
    assert_eq!(cfg.models.len(), 2);
    let router = cfg.builder().unwrap().build().unwrap();
    let d = router.route(&crate::request::Request::new("Write a Rust function that reverses a string.")).unwrap();
    assert_eq!(d.model().as_str(), "big");
    assert_eq!(d.note(), Some("rule `code to big` pinned `big`"));
}

#[test]
fn toml_round_trip_and_knobs() {
    let mut cfg = RouterConfig::from_toml_str(GOOD).unwrap();
    cfg.set_knob_for_test(0.25);
    let text = cfg.to_toml_string().unwrap();
    let back = RouterConfig::from_toml_str(&text).unwrap();
    assert_eq!(back, cfg, "{text}");
    back.validate().unwrap();
    assert!(text.contains("answer_value_usd = 0.25"), "{text}");
    assert_eq!(RouterConfig::from_json_str(&serde_json::to_string(&cfg).unwrap()).unwrap(), cfg);
    // A config with every optional part set survives too.
    let full = format!(
        "quality_checks = [\"standard\"]\nmax_request_bytes = 1000\n{GOOD}\n[execution]\ntimeout_ms = 5000\n[context]\nmargin = 0.2\n[cost]\nreasoning_overhead = 2.0\noutput_tokens = {{ code = 700 }}\n"
    );
    let full = RouterConfig::from_toml_str(&full).unwrap();
    assert_eq!(RouterConfig::from_toml_str(&full.to_toml_string().unwrap()).unwrap(), full);

    let mut floor = PolicyConfig::CheapestCapable { quality_floor: 0.5 };
    floor.set_knob(0.8).unwrap();
    assert_eq!(floor, PolicyConfig::CheapestCapable { quality_floor: 0.8 });
    assert_eq!(floor.set_knob(1.5).unwrap_err().kind(), ErrorKind::Config);
    let mut utility = PolicyConfig::default();
    for bad in [f64::NAN, -1.0, f64::INFINITY] {
        assert_eq!(utility.set_knob(bad).unwrap_err().kind(), ErrorKind::Config);
    }
    utility.set_knob(3.0).unwrap();
    assert!(matches!(utility, PolicyConfig::Utility { answer_value_usd, .. } if answer_value_usd == 3.0));
    let built = RouterConfig::new(cfg.models.clone()).with_policy(utility);
    built.validate().unwrap();
    assert_eq!(built.classifiers, []);
}

impl RouterConfig {
    fn set_knob_for_test(&mut self, knob: f64) {
        self.policy.set_knob(knob).unwrap();
        match &self.policy {
            PolicyConfig::Rules { default, .. } => {
                assert!(
                    matches!(**default, PolicyConfig::Utility { answer_value_usd, .. } if answer_value_usd == knob)
                );
            }
            other => panic!("expected rules, got {other:?}"),
        }
    }
}

#[test]
fn json_round_trip() {
    let cfg = RouterConfig::from_toml_str(GOOD).unwrap();
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(RouterConfig::from_json_str(&json).unwrap(), cfg);
}

fn err(toml: &str) -> String {
    let e = RouterConfig::from_toml_str(toml).and_then(|c| c.validate()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    e.to_string()
}

#[test]
fn errors_name_the_field() {
    let e = err(&GOOD.replace("input_per_mtok = 0.1", "input_per_mtok = \"cheap\""));
    assert!(e.contains("models[0].pricing.input_per_mtok"), "{e}");
    let e = err(&GOOD.replace("input_per_mtok = 0.1", "input_per_mtok = nan"));
    assert!(e.contains("models[0]") && e.contains("pricing.input_per_mtok"), "{e}");
    let e = err(&GOOD.replace("input_per_mtok = 0.1", "input_per_mtok = -1.0"));
    assert!(e.contains("must be finite, >= 0 and at most 1e9"), "{e}");
    let e = err(&GOOD.replace("weight = 0.5", "weight = -0.5"));
    assert!(e.contains("classifiers[1].weight"), "{e}");
    let e = err(&GOOD.replace("pin = \"big\"", "pin = \"huge\""));
    assert!(e.contains("`huge`") && e.contains("code to big"), "{e}");
    let e = err(&GOOD.replace("fallback_model = \"big\"", "fallback_model = \"nope\""));
    assert!(e.contains("`nope`"), "{e}");
    let e = err(&GOOD.replace("kind = \"intent\"", "kind = \"telepathy\""));
    assert!(e.contains("classifiers[1]") && e.contains("telepathy"), "{e}");
    let e = err(&GOOD.replace("capabilities = [\"tools\", \"json\"]", "capabilities = [\"tools\", \"psychic\"]"));
    assert!(e.contains("models[1].capabilities") && e.contains("psychic"), "{e}");
    let e = err(&GOOD.replace("seed = 7", "seed = 7\nsede = 8"));
    assert!(e.contains("sede"), "{e}");
    let e = err(&GOOD.replace("id = \"small\"", "id = \"big\""));
    assert!(e.contains("more than once"), "{e}");
    let e = err("models = []");
    assert!(e.contains("empty"), "{e}");
    let e = err(&GOOD.replace("answer_value_usd = 0.01", "answer_value_usd = inf"));
    assert!(e.contains("answer_value_usd"), "{e}");
    // v0.1's relative cost weight has no equivalent: the error says what to write instead.
    let e = err(&GOOD.replace("answer_value_usd = 0.01", "cost_weight = 2.0"));
    assert!(e.contains("policy.default.cost_weight") && e.contains("write `answer_value_usd`"), "{e}");
    let e =
        err(&GOOD.replace("answer_value_usd = 0.01", "cost_weight = 1.0, latency_weight = 0.3, cost_ref_usd = 0.01"));
    assert!(e.contains("latency_usd_per_sec"), "{e}");
    let e = err(&GOOD.replace("pin = \"big\"", "pin = \"big\"\ntagged = \"x\""));
    assert!(e.contains("exactly one"), "{e}");
    let e = err("this is not toml = = =");
    assert!(e.contains("invalid TOML"), "{e}");
    let e = err(&format!("{GOOD}\n[execution]\ntimeout_ms = 0\n"));
    assert!(e.contains("execution") && e.contains("timeout_ms"), "{e}");
    let e = err(&format!("{GOOD}\n[execution.retry]\nmultiplier = 0.5\n"));
    assert!(e.contains("execution") && e.contains("multiplier"), "{e}");
    let e = err(&format!("{GOOD}\n[execution.health]\nfailure_rate = 2.0\n"));
    assert!(e.contains("failure_rate"), "{e}");
    let e = err(&format!("{GOOD}\n[execution]\ntimeuot_ms = 5\n"));
    assert!(e.contains("execution") && e.contains("timeuot_ms"), "{e}");
    let e = err(&format!("quality_checks = [\"non_empty\", \"telepathy\"]\n{GOOD}"));
    assert!(e.contains("quality_checks[1]") && e.contains("telepathy"), "{e}");
}

#[test]
fn execution_settings_and_quality_checks_load() {
    let text = format!(
        "quality_checks = [\"standard\"]\n{GOOD}\n[execution]\ntimeout_ms = 5000\nmax_escalations = 2\n\
         [execution.retry]\nmax_retries_per_model = 1\non_non_retryable = \"stop\"\n\
         [execution.health]\nopen_for_ms = 1000\n"
    );
    let config = RouterConfig::from_toml_str(&text).unwrap();
    assert_eq!(config.execution.timeout, std::time::Duration::from_secs(5));
    assert_eq!(config.execution.max_escalations, 2);
    assert_eq!(config.execution.retry.max_retries_per_model, 1);
    assert_eq!(config.execution.health.open_for, std::time::Duration::from_millis(1000));
    assert_eq!(config.quality_checks, [QualityCheckConfig::Standard]);
    let router = config.builder().unwrap().build().unwrap();
    assert_eq!(router.execution().max_escalations, 2);
}

const EXPERIMENT: &str = r#"
[policy]
kind = "experiment"
name = "lambda-test"
holdout = 0.1
sequential_test = { alpha = 0.01, metric = "success", min_samples = 20 }

[[policy.arms]]
name = "control"
policy = { kind = "utility", answer_value_usd = 0.02 }

[[policy.arms]]
name = "bandit"
weight = 2.0
policy = { kind = "bandit", exploration = 0.1, difficulty_bands = [0.0, 2.0], seed = 3 }

[[models]]
id = "small"
provider = "sim"
context_window = 16000
max_output_tokens = 4000
pricing = { input_per_mtok = 0.1, output_per_mtok = 0.4 }

[[models]]
id = "big"
provider = "sim"
context_window = 16000
max_output_tokens = 4000
ability = { overall = 3.0 }
pricing = { input_per_mtok = 3.0, output_per_mtok = 15.0 }
"#;

#[test]
fn experiments_and_bandits_load() {
    let cfg = RouterConfig::from_toml_str(EXPERIMENT).unwrap();
    let PolicyConfig::Experiment(e) = &cfg.policy else { panic!("{:?}", cfg.policy) };
    assert_eq!(e.arms.len(), 2);
    assert_eq!(e.arms[0].weight, 1.0);
    assert_eq!(e.sequential_test.alpha, 0.01);
    assert_eq!(e.sequential_test.mixture_sd, SequentialTest::default().mixture_sd);
    let router = cfg.builder().unwrap().build().unwrap();
    let handle = router.experiment("lambda-test").unwrap();
    let report = handle.report();
    assert_eq!(report.arms[1].share, 0.9 * 2.0 / 3.0);
    assert_eq!(report.holdout.as_ref().map(|h| h.share), Some(0.1));
    let d = router.route(&crate::request::Request::new("hi").with_key("user-1")).unwrap();
    assert_eq!(d.arm().map(|a| a.experiment()), Some("lambda-test"));
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(RouterConfig::from_json_str(&json).unwrap(), cfg);

    let reward = EXPERIMENT.replace("metric = \"success\"", "metric = { reward = { answer_value_usd = 0.01 } }");
    let cfg = RouterConfig::from_toml_str(&reward).unwrap();
    let PolicyConfig::Experiment(e) = &cfg.policy else { panic!("{:?}", cfg.policy) };
    assert_eq!(e.sequential_test.metric, Metric::Reward { answer_value_usd: 0.01 });
    cfg.validate().unwrap();
    let e = err(&reward.replace("answer_value_usd = 0.01", "answer_value_usd = -1.0"));
    assert!(e.contains("answer_value_usd"), "{e}");
    // v0.1's fixed reference converts exactly: `cost_weight = 0.5, cost_ref_usd = 0.005` is V = 0.01.
    let old =
        EXPERIMENT.replace("metric = \"success\"", "metric = { reward = { cost_weight = 0.5, cost_ref_usd = 0.005 } }");
    assert_eq!(RouterConfig::from_toml_str(&old).unwrap(), cfg);
    let e = err(&EXPERIMENT.replace("exploration = 0.1", "exploration = 2.0"));
    assert!(e.contains("exploration"), "{e}");
    let e = err(&EXPERIMENT.replace("name = \"bandit\"", "name = \"control\""));
    assert!(e.contains("named twice"), "{e}");
    let e = err(&EXPERIMENT.replace("holdout = 0.1", "holdout = 1.5"));
    assert!(e.contains("holdout"), "{e}");
    let e = err(&EXPERIMENT.replace("alpha = 0.01", "alpah = 0.01"));
    assert!(e.contains("alpah"), "{e}");
    let e = err(&EXPERIMENT.replace("weight = 2.0", "weight = -2.0"));
    assert!(e.contains("weight"), "{e}");
}

#[test]
fn from_file_names_the_file() {
    let dir = std::env::temp_dir().join(format!("switchyard-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("router.toml");
    std::fs::write(&path, GOOD.replace("context_window = 16000", "context_window = 0")).unwrap();
    let e = RouterConfig::from_file(&path).unwrap_err().to_string();
    assert!(e.contains("router.toml") && e.contains("context_window"), "{e}");
    let e = RouterConfig::from_file(dir.join("missing.toml")).unwrap_err().to_string();
    assert!(e.contains("missing.toml"), "{e}");
    let e = RouterConfig::from_file(dir.join("router.yaml")).unwrap_err().to_string();
    assert!(e.contains("router.yaml"), "{e}");
    // A device or a directory is refused before anything is read.
    for path in [std::path::PathBuf::from("/dev/zero"), dir.clone()] {
        let e = RouterConfig::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

const GROUPS: &str = r#"
[[groups]]
name = "pair"
members = ["small", "big"]
weights = [3.0, 1.0]

[[groups]]
name = "standby"
members = ["big", "small"]
strategy = "priority"

[aliases]
fast = "pair"
best = "big"
"#;

#[test]
fn groups_and_aliases_load_round_trip_and_route() {
    let text = format!("{GOOD}\n{GROUPS}");
    let cfg = RouterConfig::from_toml_str(&text).unwrap();
    assert_eq!(cfg.groups.len(), 2);
    assert_eq!(cfg.groups[0].weights, Some(vec![3.0, 1.0]));
    assert_eq!(cfg.groups[1].strategy, crate::catalog::Strategy::Priority);
    assert_eq!(cfg.aliases.get("fast").map(String::as_str), Some("pair"));
    let written = cfg.to_toml_string().unwrap();
    assert_eq!(RouterConfig::from_toml_str(&written).unwrap(), cfg, "{written}");
    assert_eq!(RouterConfig::from_json_str(&serde_json::to_string(&cfg).unwrap()).unwrap(), cfg);
    let router = cfg.builder().unwrap().build().unwrap();
    let names: Vec<&str> = router.models().iter().map(|r| r.name()).collect();
    assert_eq!(names, ["small", "big", "pair", "standby", "best", "fast"]);
    let d = router.route(&crate::request::Request::new("hi").with_model("standby")).unwrap();
    assert_eq!((d.model().as_str(), d.policy()), ("big", "pinned"));
    assert_eq!(d.fallbacks().map(|m| m.as_str()).collect::<Vec<_>>(), ["small"]);
}

#[test]
fn bad_groups_and_aliases_name_the_problem() {
    let with = |groups: &str| err(&format!("{GOOD}\n{groups}"));
    let e = with(&GROUPS.replace("[\"small\", \"big\"]", "[\"small\", \"huge\"]"));
    assert!(e.contains("group `pair`") && e.contains("`huge`"), "{e}");
    let e = with(&GROUPS.replace("[3.0, 1.0]", "[3.0, -1.0]"));
    assert!(e.contains("group `pair`") && e.contains(">= 0"), "{e}");
    let e = with(&GROUPS.replace("[3.0, 1.0]", "[0.0, 0.0]"));
    assert!(e.contains("at least one must be positive"), "{e}");
    let e = with(&GROUPS.replace("[3.0, 1.0]", "[nan, 1.0]"));
    assert!(e.contains("finite"), "{e}");
    let e = with(&GROUPS.replace("members = [\"big\", \"small\"]", "members = []"));
    assert!(e.contains("group `standby` has no members"), "{e}");
    let e = with(&GROUPS.replace("name = \"standby\"", "name = \"small\""));
    assert!(e.contains("name of a model id"), "{e}");
    let e = with(&GROUPS.replace("fast = \"pair\"", "fast = \"nowhere\""));
    assert!(e.contains("alias `fast`") && e.contains("`nowhere`"), "{e}");
    let e = with(&GROUPS.replace("strategy = \"priority\"", "strategy = \"roulette\""));
    assert!(e.contains("groups[1].strategy"), "{e}");
    let e = with(&GROUPS.replace("strategy = \"priority\"", "strategy = \"priority\"\nweights = [1.0, 1.0]"));
    assert!(e.contains("only the weighted strategy"), "{e}");
}
