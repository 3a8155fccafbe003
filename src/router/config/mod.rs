//! The whole router as data: [`RouterConfig`], loaded from TOML or JSON.
//!
//! ```toml
//! seed = 7
//! fallback_model = "mini"
//!
//! [[classifiers]]
//! kind = "difficulty"
//! weight = 1.0
//!
//! [[classifiers]]
//! kind = "intent"
//! weight = 0.5
//!
//! [policy]
//! kind = "utility"
//! answer_value_usd = 0.02
//!
//! [[models]]
//! id = "mini"
//! provider = "sim"
//! context_window = 128000
//! max_output_tokens = 16384
//! capabilities = ["tools", "json", "streaming"]
//! ability = { overall = 1.5 }
//! pricing = { input_per_mtok = 0.15, output_per_mtok = 0.60 }
//!
//! [[groups]]
//! name = "small"
//! members = ["mini"]
//!
//! [aliases]
//! cheap = "small"
//! ```
//!
//! Errors name the file, the field (`models[2].pricing.input_per_mtok`) and what is wrong. Providers
//! hold credentials and code, so they are not part of the file: add them to the builder that
//! [`RouterConfig::builder`] returns. A complete example ships as `examples/router.toml`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Group, ModelId, ModelProfile, Names};
use crate::classify::{ContextLength, DifficultyClassifier, Intent, IntentClassifier};
use crate::cost::{OutputPrediction, TokenPriceCostModel};
use crate::error::{Error, Result};
use crate::execute::ExecutionConfig;
use crate::execute::quality::{Checks, NoRefusal, NonEmpty, NotTruncated, ValidJson};
use crate::limits::LimitsConfig;
use crate::policy::experiment::{Bandit, Experiment, SequentialTest, Unkeyed};
use crate::policy::{Action, CheapestCapable, Condition, OnLowConfidence, Policy, Rule, Rules, Utility};
use crate::router::RouterBuilder;
use crate::router::config_error::{field_error, parse_error, toml_message};

/// The largest config file [`RouterConfig::from_file`] reads: 64 MiB.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// A router's configuration: catalog, classifiers and weights, cost model, policy and limits.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// The portfolio.
    pub models: Vec<ModelProfile>,
    /// Classifiers and their weights, in order.
    #[serde(default)]
    pub classifiers: Vec<ClassifierConfig>,
    /// The policy (default: utility with the default answer value).
    #[serde(default)]
    pub policy: PolicyConfig,
    /// The cost model's parameters.
    #[serde(default)]
    pub cost: CostConfig,
    /// The context-length stage.
    #[serde(default)]
    pub context: ContextConfig,
    /// The seed of the per-request uniform number.
    #[serde(default)]
    pub seed: u64,
    /// A model appended to every decision's fallbacks.
    #[serde(default)]
    pub fallback_model: Option<ModelId>,
    /// The largest request text accepted, in bytes.
    #[serde(default)]
    pub max_request_bytes: Option<usize>,
    /// The `p` below which a decision is flagged or refused (default 0.5;
    /// [`RouterBuilder::confidence_floor`](crate::RouterBuilder::confidence_floor)).
    #[serde(default)]
    pub confidence_floor: Option<f64>,
    /// `"flag"` (the default) or `"refuse"` a decision below the confidence floor.
    #[serde(default)]
    pub on_low_confidence: OnLowConfidence,
    /// Retries, circuit breakers, deadlines and escalation.
    #[serde(default)]
    pub execution: ExecutionConfig,
    /// Quality checks whose failure escalates an answer to a stronger model, in order (default none).
    #[serde(default)]
    pub quality_checks: Vec<QualityCheckConfig>,
    /// Budgets, rate limits and sticky sessions (default none). The store they are kept in is set on
    /// the builder ([`RouterBuilder::state_store`]).
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Groups of models that requests can pin by one name, with load balancing and failover among
    /// the members (`[[groups]]`; [`RouterBuilder::group`]).
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Aliases: a name for a model id or a group (`[aliases]`, `name = "target"`;
    /// [`RouterBuilder::alias`]).
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
}

/// A built-in quality check, by name.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityCheckConfig {
    /// All of the checks below ([`Checks::standard`]).
    Standard,
    /// [`NonEmpty`]: an answer with no text and no tool calls.
    NonEmpty,
    /// [`NotTruncated`]: an answer cut off by the output limit.
    NotTruncated,
    /// [`NoRefusal`]: an answer that starts by refusing.
    NoRefusal,
    /// [`ValidJson`]: invalid JSON when JSON was requested.
    ValidJson,
}

/// One classifier and its weight.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClassifierConfig {
    /// [`DifficultyClassifier`].
    Difficulty {
        /// Weight of its contribution.
        weight: f64,
        /// Shift of every difficulty.
        #[serde(default)]
        offset: f64,
    },
    /// [`IntentClassifier`].
    Intent {
        /// Weight of its contribution.
        weight: f64,
        /// Softmax temperature.
        #[serde(default)]
        temperature: Option<f64>,
    },
    /// [`LearnedClassifier`](crate::classify::LearnedClassifier), loaded from a model file when the
    /// router is built. It must know every model of the catalog.
    Learned {
        /// Weight of its contribution.
        weight: f64,
        /// The model file ([`LearnedModel::save`](crate::classify::LearnedModel::save)), relative to
        /// the working directory.
        model: std::path::PathBuf,
    },
}

/// A policy and its parameters.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyConfig {
    /// [`Utility`].
    Utility {
        /// `V`, the value of an acceptable answer in USD (default
        /// [`DEFAULT_ANSWER_VALUE_USD`](crate::policy::DEFAULT_ANSWER_VALUE_USD)).
        #[serde(default = "default_answer_value")]
        answer_value_usd: f64,
        /// `μ`, the cost of one second of expected latency in USD.
        #[serde(default)]
        latency_usd_per_sec: f64,
    },
    /// [`CheapestCapable`].
    CheapestCapable {
        /// The quality floor in `[0, 1]`.
        quality_floor: f64,
    },
    /// [`Rules`].
    Rules {
        /// The policy for requests no rule matches.
        default: Box<PolicyConfig>,
        /// The rules, in order.
        #[serde(default)]
        rules: Vec<RuleConfig>,
    },
    /// [`Experiment`]: arms, each with its own policy. Its handle (report, kill switch) is
    /// [`Router::experiment`](crate::Router::experiment).
    Experiment(ExperimentConfig),
    /// [`Bandit`]; unset fields keep [`Bandit::new`]'s defaults.
    Bandit {
        /// `V`, the value of an acceptable answer in USD.
        #[serde(default)]
        answer_value_usd: Option<f64>,
        /// The exploration floor in `[0, 1]`.
        #[serde(default)]
        exploration: Option<f64>,
        /// How many outcomes the classifiers' `p(m)` is worth.
        #[serde(default)]
        prior_strength: Option<f64>,
        /// Difficulty band edges, strictly increasing.
        #[serde(default)]
        difficulty_bands: Option<Vec<f64>>,
        /// The evidence cap per posterior, in outcomes.
        #[serde(default)]
        max_evidence: Option<f64>,
        /// The sampling seed.
        #[serde(default)]
        seed: Option<u64>,
    },
}

/// An [`Experiment`] in a config file.
///
/// ```toml
/// [policy]
/// kind = "experiment"
/// name = "cheaper-default"
/// holdout = 0.05
/// sequential_test = { alpha = 0.05, metric = "quality" }
///
/// [[policy.arms]]
/// name = "control"
/// weight = 1.0
/// policy = { kind = "utility", answer_value_usd = 0.02 }
///
/// [[policy.arms]]
/// name = "cheaper"
/// weight = 1.0
/// policy = { kind = "utility", answer_value_usd = 0.01 }
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// The experiment's name (also the hash salt unless `salt` is set).
    pub name: String,
    /// The hash salt.
    #[serde(default)]
    pub salt: Option<String>,
    /// The arms, the control first.
    pub arms: Vec<ArmConfig>,
    /// The share of keys held out, in `[0, 1)`.
    #[serde(default)]
    pub holdout: Option<f64>,
    /// The holdout's hash salt.
    #[serde(default)]
    pub holdout_salt: Option<String>,
    /// What to do with requests without a key.
    #[serde(default)]
    pub unkeyed: Unkeyed,
    /// The sequential test's settings.
    #[serde(default)]
    pub sequential_test: SequentialTest,
}

/// One arm of an [`ExperimentConfig`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmConfig {
    /// The arm's name.
    pub name: String,
    /// Its weight, relative to the other arms'.
    #[serde(default = "one")]
    pub weight: f64,
    /// The policy that routes its traffic.
    pub policy: PolicyConfig,
}

fn one() -> f64 {
    1.0
}

fn default_answer_value() -> f64 {
    crate::policy::DEFAULT_ANSWER_VALUE_USD
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self::Utility { answer_value_usd: default_answer_value(), latency_usd_per_sec: 0.0 }
    }
}

impl PolicyConfig {
    /// Sets the policy's cost–quality knob, as `switchyard_eval::calibrate` finds it:
    /// [`Utility`]'s and [`Bandit`]'s `answer_value_usd` (`V`), [`CheapestCapable`]'s `quality_floor`;
    /// for [`Rules`], the knob of its `default` policy (the rules' own policies are left as they
    /// are).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) if `knob` is not a valid value of that knob:
    /// finite and `>= 0` for `answer_value_usd`, within `[0, 1]` for `quality_floor`; for an
    /// [`Experiment`], which has one knob per arm: calibrate an arm's policy instead.
    pub fn set_knob(&mut self, knob: f64) -> Result<()> {
        match self {
            Self::Utility { answer_value_usd, .. } => {
                crate::policy::check_weight("policy.answer_value_usd", knob)?;
                *answer_value_usd = knob;
            }
            Self::CheapestCapable { quality_floor } => {
                if !(0.0..=1.0).contains(&knob) {
                    return Err(Error::config(format!("policy.quality_floor must be within [0, 1], got {knob}")));
                }
                *quality_floor = knob;
            }
            Self::Rules { default, .. } => default.set_knob(knob)?,
            Self::Bandit { answer_value_usd, .. } => {
                crate::policy::check_weight("policy.answer_value_usd", knob)?;
                *answer_value_usd = Some(knob);
            }
            Self::Experiment(_) => {
                return Err(Error::config(
                    "an experiment has one knob per arm: set the knob of an arm's policy instead",
                ));
            }
        }
        Ok(())
    }
}

/// One rule of a [`PolicyConfig::Rules`] policy. Exactly one of `pin`, `portfolio` and `tagged` is set.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule's name, shown in explanations.
    pub name: String,
    /// When it applies.
    #[serde(default)]
    pub when: ConditionConfig,
    /// Pin this model.
    #[serde(default)]
    pub pin: Option<ModelId>,
    /// Rank only these models.
    #[serde(default)]
    pub portfolio: Option<Vec<ModelId>>,
    /// Rank only models with this tag.
    #[serde(default)]
    pub tagged: Option<String>,
    /// The policy for the rule's portfolio (default: the rules' default policy).
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
}

/// The condition of a rule; see [`Condition`].
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    /// One of these intents.
    #[serde(default)]
    pub intents: Vec<Intent>,
    /// At least this many input tokens.
    #[serde(default)]
    pub min_input_tokens: Option<u32>,
    /// At most this many input tokens.
    #[serde(default)]
    pub max_input_tokens: Option<u32>,
    /// At least this difficulty.
    #[serde(default)]
    pub min_difficulty: Option<f64>,
    /// The request carries this tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// The request's tenant.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Parameters of [`TokenPriceCostModel`].
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// Output multiplier for reasoning models.
    #[serde(default)]
    pub reasoning_overhead: Option<f64>,
    /// Typical output tokens per intent, overriding the defaults.
    #[serde(default)]
    pub output_tokens: std::collections::BTreeMap<Intent, u32>,
}

/// Parameters of [`ContextLength`].
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextConfig {
    /// Output tokens reserved when a request sets no `max_tokens`.
    #[serde(default)]
    pub reserve_output: Option<u32>,
    /// Relative band around the estimate that triggers exact counting.
    #[serde(default)]
    pub margin: Option<f64>,
}

/// Not API (`switchyard-gateway` reads its own sections of a router config file with it): `T` from
/// TOML, with the router config's rules for errors: the field's path and the text's line and
/// column, never a value.
///
/// # Errors
/// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the field and what is wrong.
#[doc(hidden)]
pub fn __from_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    let de = toml::Deserializer::parse(text).map_err(|e| parse_error("TOML", &toml_message(text, &e)))?;
    serde_path_to_error::deserialize(de).map_err(|e| field_error(e.path(), &toml_message(text, e.inner())))
}

/// Not API (`switchyard-gateway` reads its config file with it): a config file's text, read as
/// [`RouterConfig::from_file`] reads one: a regular file of at most 64 MiB, in UTF-8.
///
/// # Errors
/// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the file.
#[doc(hidden)]
pub fn __read_file(path: &Path) -> Result<String> {
    let bytes = crate::fs::read_regular_file(path, MAX_FILE_BYTES, "config")?;
    String::from_utf8(bytes).map_err(|_| Error::config(format!("cannot read config `{}`: not UTF-8", path.display())))
}

impl RouterConfig {
    /// A configuration of `models` with the defaults: no classifiers, the utility policy with the
    /// default answer value, seed 0.
    pub fn new(models: Vec<ModelProfile>) -> Self {
        Self {
            models,
            classifiers: Vec::new(),
            policy: PolicyConfig::default(),
            cost: CostConfig::default(),
            context: ContextConfig::default(),
            seed: 0,
            fallback_model: None,
            max_request_bytes: None,
            confidence_floor: None,
            on_low_confidence: OnLowConfidence::Flag,
            execution: ExecutionConfig::default(),
            quality_checks: Vec::new(),
            limits: LimitsConfig::default(),
            groups: Vec::new(),
            aliases: BTreeMap::new(),
        }
    }

    /// Sets the classifiers.
    #[must_use]
    pub fn with_classifiers(mut self, classifiers: Vec<ClassifierConfig>) -> Self {
        self.classifiers = classifiers;
        self
    }

    /// Sets the policy.
    #[must_use]
    pub fn with_policy(mut self, policy: PolicyConfig) -> Self {
        self.policy = policy;
        self
    }

    /// Writes the configuration as TOML that [`from_toml_str`](Self::from_toml_str) reads back to an
    /// equal value.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) if a value has no TOML form.
    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string_pretty(self)
            .map_err(|e| Error::config(format!("cannot write the config as TOML: {e}")).with_source(e))
    }

    /// Parses TOML.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the field and what is wrong.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        if let Some(migrated) = Self::migrate(text, |t| toml::from_str::<toml::Value>(t).ok())? {
            return Ok(migrated);
        }
        __from_toml(text)
    }

    /// Parses JSON.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the field and what is wrong.
    pub fn from_json_str(text: &str) -> Result<Self> {
        if let Some(migrated) = Self::migrate(text, |t| serde_json::from_str::<serde_json::Value>(t).ok())? {
            return Ok(migrated);
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let cfg: Self = serde_path_to_error::deserialize(&mut de).map_err(|e| field_error(e.path(), e.inner()))?;
        de.end().map_err(|e| parse_error("JSON", &e.to_string()))?;
        Ok(cfg)
    }

    /// A v0.1 config rewritten for v0.2 ([`legacy`](super::legacy)), or `None` when `text` has no
    /// v0.1 field (or does not parse: the caller's parser then says why).
    fn migrate<V: Serialize>(text: &str, parse: impl FnOnce(&str) -> Option<V>) -> Result<Option<Self>> {
        if !super::legacy::FIELDS.iter().any(|f| text.contains(f)) {
            return Ok(None);
        }
        let Some(mut value) = parse(text).and_then(|v| serde_json::to_value(v).ok()) else { return Ok(None) };
        if !super::legacy::migrate(&mut value)? {
            return Ok(None);
        }
        serde_path_to_error::deserialize(value).map(Some).map_err(|e| field_error(e.path(), e.inner()))
    }

    /// Reads a `.toml` or `.json` file and checks it (see [`validate`](Self::validate)).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the file, the field and what is wrong.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let in_file = |e: Error| Error::config(format!("`{}`: {e}", path.display())).with_source(e);
        let text = __read_file(path)?;
        let cfg = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Self::from_toml_str(&text),
            Some("json") => Self::from_json_str(&text),
            _ => Err(Error::config("unknown config format: use a `.toml` or `.json` file")),
        }
        .map_err(in_file)?;
        cfg.validate().map_err(in_file)?;
        Ok(cfg)
    }

    /// Checks everything a built router would: the catalog, the weights, the policy and its model
    /// references.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the field.
    pub fn validate(&self) -> Result<()> {
        self.builder().map(|_| ())
    }

    /// A [`RouterBuilder`] with everything but the providers; add those and call `build`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the field.
    pub fn builder(&self) -> Result<RouterBuilder> {
        for (i, m) in self.models.iter().enumerate() {
            m.validate().map_err(|e| Error::config(format!("models[{i}]: {e}")))?;
        }
        let catalog = Catalog::new(self.models.iter().cloned())?;
        let mut b = RouterBuilder::new().catalog(catalog.clone()).seed(self.seed);
        for (i, c) in self.classifiers.iter().enumerate() {
            let weight = match *c {
                ClassifierConfig::Difficulty { weight, .. }
                | ClassifierConfig::Intent { weight, .. }
                | ClassifierConfig::Learned { weight, .. } => weight,
            };
            crate::policy::check_weight(&format!("classifiers[{i}].weight"), weight)?;
            b = match c {
                &ClassifierConfig::Difficulty { weight, offset } => {
                    if !offset.is_finite() {
                        return Err(Error::config(format!("classifiers[{i}].offset must be finite, got {offset}")));
                    }
                    b.classifier(DifficultyClassifier::default().with_offset(offset), weight)
                }
                &ClassifierConfig::Intent { weight, temperature } => {
                    let mut ic = IntentClassifier::default();
                    if let Some(t) = temperature {
                        if !(t.is_finite() && t > 0.0) {
                            return Err(Error::config(format!(
                                "classifiers[{i}].temperature must be finite and > 0, got {t}"
                            )));
                        }
                        ic = ic.with_temperature(t);
                    }
                    b.classifier(ic, weight)
                }
                ClassifierConfig::Learned { weight, model } => {
                    let learned = crate::classify::LearnedClassifier::load(model)
                        .map_err(|e| Error::config(format!("classifiers[{i}].model: {e}")))?;
                    learned.check_catalog(&catalog).map_err(|e| Error::config(format!("classifiers[{i}]: {e}")))?;
                    b.classifier(learned, *weight)
                }
            };
        }
        let policy = build_policy(&self.policy, "policy")?;
        policy.validate(&catalog).map_err(|e| Error::config(format!("policy: {e}")))?;
        b = b.policy_arc(policy);

        let mut cost = TokenPriceCostModel::new();
        if let Some(r) = self.cost.reasoning_overhead {
            if !(r.is_finite() && r >= 1.0) {
                return Err(Error::config(format!("cost.reasoning_overhead must be finite and >= 1, got {r}")));
            }
            cost = cost.reasoning_overhead(r);
        }
        if !self.cost.output_tokens.is_empty() {
            let mut out = OutputPrediction::default();
            for (intent, tokens) in &self.cost.output_tokens {
                if let Some(i) = Intent::ALL.iter().position(|x| x == intent) {
                    out.by_intent[i] = *tokens;
                }
            }
            cost = cost.with_output_prediction(out);
        }
        b = b.cost_model(cost);

        let mut context = ContextLength::new();
        if let Some(r) = self.context.reserve_output {
            context = context.reserve_output(r);
        }
        if let Some(m) = self.context.margin {
            if !(0.0..=1.0).contains(&m) {
                return Err(Error::config(format!("context.margin must be within [0, 1], got {m}")));
            }
            context = context.with_margin(m);
        }
        b = b.context_length(context);
        self.execution.validate().map_err(|e| Error::config(format!("execution: {e}")))?;
        b = b.execution(self.execution.clone());
        self.limits.validate(&catalog)?;
        b = b.limits(self.limits.clone());
        if !self.quality_checks.is_empty() {
            let mut checks = Checks::new();
            for c in &self.quality_checks {
                match c {
                    QualityCheckConfig::Standard => checks.push(Checks::standard()),
                    QualityCheckConfig::NonEmpty => checks.push(NonEmpty),
                    QualityCheckConfig::NotTruncated => checks.push(NotTruncated),
                    QualityCheckConfig::NoRefusal => checks.push(NoRefusal::new()),
                    QualityCheckConfig::ValidJson => checks.push(ValidJson),
                }
            }
            b = b.quality_check(checks);
        }
        if let Some(fb) = &self.fallback_model {
            catalog.require(fb, "`fallback_model`")?;
            b = b.fallback_model(fb.clone());
        }
        if let Some(floor) = self.confidence_floor
            && !(0.0..=1.0).contains(&floor)
        {
            return Err(Error::config(format!("`confidence_floor` must be within [0, 1], got {floor}")));
        }
        b = b.confidence_floor(
            self.confidence_floor.unwrap_or(crate::router::builder::DEFAULT_CONFIDENCE_FLOOR),
            self.on_low_confidence,
        );
        if let Some(n) = self.max_request_bytes {
            b = b.max_request_bytes(n);
        }
        let aliases: Vec<(String, String)> = self.aliases.iter().map(|(a, t)| (a.clone(), t.clone())).collect();
        Names::new(&catalog, &self.groups, &aliases).map_err(|e| Error::config(format!("groups and aliases: {e}")))?;
        for g in &self.groups {
            b = b.group(g.clone());
        }
        for (name, target) in aliases {
            b = b.alias(name, target);
        }
        Ok(b)
    }
}

fn build_policy(cfg: &PolicyConfig, at: &str) -> Result<std::sync::Arc<dyn Policy>> {
    use std::sync::Arc;
    Ok(match cfg {
        PolicyConfig::Utility { answer_value_usd, latency_usd_per_sec } => {
            Arc::new(Utility::new().answer_value(*answer_value_usd).latency_cost(*latency_usd_per_sec))
        }
        PolicyConfig::CheapestCapable { quality_floor } => Arc::new(CheapestCapable::new(*quality_floor)),
        PolicyConfig::Rules { default, rules } => {
            let mut r = Rules::new(build_policy(default, &format!("{at}.default"))?);
            for (i, rule) in rules.iter().enumerate() {
                let here = format!("{at}.rules[{i}]");
                let action = match (&rule.pin, &rule.portfolio, &rule.tagged) {
                    (Some(m), None, None) => Action::Pin(m.clone()),
                    (None, Some(ms), None) => Action::Portfolio(ms.clone()),
                    (None, None, Some(t)) => Action::Tagged(t.clone()),
                    _ => {
                        return Err(Error::config(format!(
                            "{here} (`{}`): set exactly one of `pin`, `portfolio` and `tagged`",
                            rule.name
                        )));
                    }
                };
                let w = &rule.when;
                let mut cond = Condition::always().input_tokens(w.min_input_tokens, w.max_input_tokens);
                for intent in &w.intents {
                    cond = cond.intent(*intent);
                }
                if let Some(d) = w.min_difficulty {
                    cond = cond.min_difficulty(d);
                }
                if let Some(t) = &w.tag {
                    cond = cond.tag(t.clone());
                }
                if let Some(t) = &w.tenant {
                    cond = cond.tenant(t.clone());
                }
                let mut built = Rule::new(rule.name.clone(), cond, action);
                if let Some(p) = &rule.policy {
                    built = built.with_policy(build_policy(p, &format!("{here}.policy"))?);
                }
                r = r.rule(built);
            }
            Arc::new(r)
        }
        PolicyConfig::Experiment(e) => {
            let mut b = Experiment::builder(e.name.clone()).unkeyed(e.unkeyed).sequential_test(e.sequential_test);
            if let Some(salt) = &e.salt {
                b = b.salt(salt.clone());
            }
            if let Some(fraction) = e.holdout {
                b = b.holdout(fraction);
            }
            if let Some(salt) = &e.holdout_salt {
                b = b.holdout_salt(salt.clone());
            }
            for (i, arm) in e.arms.iter().enumerate() {
                let policy = build_policy(&arm.policy, &format!("{at}.arms[{i}].policy"))?;
                b = b.arm_arc(arm.name.clone(), arm.weight, policy);
            }
            Arc::new(b.build().map_err(|err| Error::config(format!("{at}: {err}")))?)
        }
        PolicyConfig::Bandit {
            answer_value_usd,
            exploration,
            prior_strength,
            difficulty_bands,
            max_evidence,
            seed,
        } => {
            let mut b = Bandit::new();
            if let Some(x) = answer_value_usd {
                b = b.answer_value(*x);
            }
            if let Some(x) = exploration {
                b = b.exploration(*x);
            }
            if let Some(x) = prior_strength {
                b = b.prior_strength(*x);
            }
            if let Some(x) = difficulty_bands {
                b = b.difficulty_bands(x.clone());
            }
            if let Some(x) = max_evidence {
                b = b.max_evidence(*x);
            }
            if let Some(x) = seed {
                b = b.seed(*x);
            }
            Arc::new(b)
        }
    })
}

#[cfg(test)]
mod tests;
