//! [`RouterBuilder`]: assemble and validate a [`Router`].

use std::fmt;
use std::sync::Arc;

use crate::catalog::{Catalog, Group, ModelId, Names};
use crate::classify::{Classifier, ContextLength};
use crate::cost::{CostModel, TokenPriceCostModel};
use crate::error::{Error, Result};
use crate::execute::ExecutionConfig;
use crate::execute::health::HealthTracker;
use crate::execute::quality::QualityCheck;
use crate::execute::retry::Jitter;
use crate::execute::{DecisionLog, Engine};
use crate::limits::{Limiter, LimitsConfig};
use crate::policy::Observer;
use crate::policy::{OnLowConfidence, Policy, Utility};
use crate::provider::Provider;
use crate::router::{Inner, ProviderMap, Router};
use crate::state::{MemoryStore, StateStore};

/// A classifier weight: finite and non-negative.
///
/// ```
/// use switchyard::{ErrorKind, Weight};
/// assert!(Weight::try_from(0.5).is_ok());
/// assert_eq!(Weight::try_from(f64::NAN).unwrap_err().kind(), ErrorKind::Config);
/// assert_eq!(Weight::try_from(-1.0).unwrap_err().kind(), ErrorKind::Config);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Weight(f64);

impl Weight {
    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Weight {
    type Error = Error;
    fn try_from(value: f64) -> Result<Self> {
        if value.is_finite() && value >= 0.0 {
            Ok(Self(value))
        } else {
            Err(Error::config(format!("a weight must be finite and >= 0, got {value}")))
        }
    }
}

/// Builds a [`Router`]. Setters take and return the builder; a bad value is kept and reported by
/// [`build`](Self::build), which validates everything at once.
///
/// ```
/// use switchyard::{Router, Catalog, ModelProfile, Pricing, SimulatedProvider, Utility};
/// use switchyard::classify::{DifficultyClassifier, IntentClassifier};
/// # fn main() -> switchyard::Result<()> {
/// let catalog = Catalog::new([
///     ModelProfile::new("small", "sim").with_pricing(Pricing::per_mtok(0.15, 0.6)),
///     ModelProfile::new("large", "sim").with_pricing(Pricing::per_mtok(2.5, 10.0)),
/// ])?;
/// let router = Router::builder()
///     .catalog(catalog)
///     .classifier(DifficultyClassifier::default(), 1.0)
///     .classifier(IntentClassifier::default(), 0.5)
///     .policy(Utility::new().answer_value(0.02))
///     .provider(SimulatedProvider::new("sim"))
///     .build()?;
/// # let _ = router; Ok(()) }
/// ```
#[must_use]
pub struct RouterBuilder {
    catalog: Option<Catalog>,
    context: ContextLength,
    classifiers: Vec<(Arc<dyn Classifier>, f64)>,
    cost_model: Arc<dyn CostModel>,
    policy: Arc<dyn Policy>,
    providers: ProviderMap,
    seed: u64,
    fallback: Option<ModelId>,
    max_request_bytes: usize,
    confidence_floor: f64,
    on_low_confidence: OnLowConfidence,
    exec: ExecutionConfig,
    quality: Option<Arc<dyn QualityCheck>>,
    observers: Vec<Arc<dyn Observer>>,
    jitter_seed: Option<u64>,
    limits: LimitsConfig,
    store: Option<Arc<dyn StateStore>>,
    groups: Vec<Group>,
    aliases: Vec<(String, String)>,
    error: Option<Error>,
}

impl fmt::Debug for RouterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterBuilder")
            .field("catalog", &self.catalog)
            .field("classifiers", &self.classifiers.len())
            .field("policy", &self.policy.name())
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for RouterBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// The default confidence floor: a choice more likely to fail than to succeed is flagged.
pub(crate) const DEFAULT_CONFIDENCE_FLOOR: f64 = 0.5;

/// The default limit on a request's text, in bytes.
pub(crate) const DEFAULT_MAX_REQUEST_BYTES: usize = 32 << 20;

impl RouterBuilder {
    /// An empty builder: no catalog yet, no classifiers, the list-price cost model, [`Utility`] with
    /// `λ = 1`, seed 0 and a 32 MiB request limit.
    pub fn new() -> Self {
        Self {
            catalog: None,
            context: ContextLength::default(),
            classifiers: Vec::new(),
            cost_model: Arc::new(TokenPriceCostModel::default()),
            policy: Arc::new(Utility::default()),
            providers: ProviderMap::new(),
            seed: 0,
            fallback: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            confidence_floor: DEFAULT_CONFIDENCE_FLOOR,
            on_low_confidence: OnLowConfidence::Flag,
            exec: ExecutionConfig::default(),
            quality: None,
            observers: Vec::new(),
            jitter_seed: None,
            limits: LimitsConfig::default(),
            store: None,
            groups: Vec::new(),
            aliases: Vec::new(),
            error: None,
        }
    }

    fn fail(mut self, e: Error) -> Self {
        if self.error.is_none() {
            self.error = Some(e);
        }
        self
    }

    /// Sets the portfolio.
    pub fn catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Adds a classifier whose per-model contribution is weighted by `weight` (finite, ≥ 0).
    pub fn classifier(self, classifier: impl Classifier + 'static, weight: f64) -> Self {
        self.classifier_arc(Arc::new(classifier), weight)
    }

    /// Adds a shared classifier.
    pub(crate) fn classifier_arc(mut self, classifier: Arc<dyn Classifier>, weight: f64) -> Self {
        match Weight::try_from(weight) {
            Ok(w) => {
                self.classifiers.push((classifier, w.get()));
                self
            }
            Err(_) => {
                let name = classifier.name().to_owned();
                self.fail(Error::config(format!(
                    "classifier `{name}` has weight {weight}; weights must be finite and >= 0"
                )))
            }
        }
    }

    /// Replaces the context-length stage (token counting for the window constraint).
    pub fn context_length(mut self, context: ContextLength) -> Self {
        self.context = context;
        self
    }

    /// Replaces the cost model.
    pub fn cost_model(mut self, cost_model: impl CostModel + 'static) -> Self {
        self.cost_model = Arc::new(cost_model);
        self
    }

    /// Replaces the policy.
    pub fn policy(self, policy: impl Policy + 'static) -> Self {
        self.policy_arc(Arc::new(policy))
    }

    /// Replaces the policy with a shared one.
    pub fn policy_arc(mut self, policy: Arc<dyn Policy>) -> Self {
        self.policy = policy;
        self
    }

    /// Registers a provider under its [`name`](Provider::name). Models name it in
    /// [`ModelProfile::provider`](crate::ModelProfile::provider).
    pub fn provider(self, provider: impl Provider + 'static) -> Self {
        self.provider_arc(Arc::new(provider))
    }

    /// Registers a shared provider.
    pub(crate) fn provider_arc(mut self, provider: Arc<dyn Provider>) -> Self {
        let name = provider.name().to_owned();
        if self.providers.insert(name.clone(), provider).is_some() {
            return self.fail(Error::config(format!("provider `{name}` is registered twice")));
        }
        self
    }

    /// Seeds the router's only randomness, the per-request uniform number policies may use.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// A model appended to every decision's fallbacks when it passes the request's hard constraints.
    pub fn fallback_model(mut self, model: impl Into<ModelId>) -> Self {
        self.fallback = Some(model.into());
        self
    }

    /// Adds a group: one name for several catalog models that serve the same requests (the same
    /// model on two providers), with load balancing and failover among them by the group's
    /// [`Strategy`](crate::catalog::Strategy). A request pins it with
    /// [`Request::with_model`](crate::Request::with_model); requests that pin nothing are routed by
    /// the policy over the whole catalog as before. Checked by [`build`](Self::build).
    pub fn group(mut self, group: Group) -> Self {
        self.groups.push(group);
        self
    }

    /// Adds an alias: `name` stands for `target`, a catalog model id or a group's name (not another
    /// alias). Checked by [`build`](Self::build).
    pub fn alias(mut self, name: impl Into<String>, target: impl Into<String>) -> Self {
        self.aliases.push((name.into(), target.into()));
        self
    }

    /// Sets the confidence floor, in `[0, 1]`, and what to do below it. A decision whose chosen
    /// model is predicted to answer acceptably with a probability below the floor is flagged
    /// ([`Decision::is_low_confidence`](crate::Decision::is_low_confidence)) or refused, as `action`
    /// says. The default is 0.5 with [`OnLowConfidence::Flag`]; a floor of 0 turns it off.
    pub fn confidence_floor(mut self, floor: f64, action: OnLowConfidence) -> Self {
        if !(0.0..=1.0).contains(&floor) {
            return self.fail(Error::config(format!("`confidence_floor` must be within [0, 1], got {floor}")));
        }
        self.confidence_floor = floor;
        self.on_low_confidence = action;
        self
    }

    /// Rejects requests whose text is longer than `bytes`.
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// Sets budgets, rate limits and sticky sessions ([`crate::limits`]); none by default.
    ///
    /// With a shared store, [`LimitsConfig::flush_after`] and [`LimitsConfig::share_learning`] make
    /// the router spawn short tasks on the caller's Tokio runtime; see
    /// [`Router`'s background tasks](crate::Router#background-tasks).
    pub fn limits(mut self, limits: LimitsConfig) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the store that budgets, rate limits and sticky sessions are kept in: a
    /// [`MemoryStore`](crate::state::MemoryStore) of the router's own by default; a shared one
    /// (`RedisStore`, feature `redis`) makes the limits hold across replicas. Routers on one store
    /// also share open circuits, with or without limits
    /// ([`LimitsConfig::share_circuits`](crate::limits::LimitsConfig::share_circuits)).
    pub fn state_store(self, store: impl StateStore + 'static) -> Self {
        self.state_store_arc(Arc::new(store))
    }

    /// Sets the state store from an `Arc`.
    pub fn state_store_arc(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Sets how [`complete`](Router::complete) and [`stream`](Router::stream) execute decisions:
    /// retries, circuit breakers, deadlines and escalation. Default: [`ExecutionConfig::default`].
    pub fn execution(mut self, execution: ExecutionConfig) -> Self {
        self.exec = execution;
        self
    }

    /// Checks every answer of [`complete`](Router::complete): an inadequate one is escalated to a
    /// stronger model, at most [`ExecutionConfig::max_escalations`] times. Off by default;
    /// [`Checks::standard`](crate::execute::quality::Checks::standard) catches empty, cut-off and refused answers
    /// and invalid JSON.
    pub fn quality_check(mut self, check: impl QualityCheck + 'static) -> Self {
        self.quality = Some(Arc::new(check));
        self
    }

    /// Seeds the random part of retry backoff (full jitter), for reproducible runs. By default each
    /// router draws its own seed, so that a fleet of replicas does not retry in step. Independent of
    /// [`seed`](Self::seed), which drives routing.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// Adds an [`Observer`] that receives every decision, attempt, outcome and feedback.
    pub fn observer(mut self, observer: impl Observer + 'static) -> Self {
        self.observers.push(Arc::new(observer));
        self
    }

    /// Validates the configuration and builds the router.
    ///
    /// Building spawns nothing and needs no runtime. With [`limits`](Self::limits) that flush to a
    /// shared store or share learned state, the router later spawns short tasks on the caller's Tokio
    /// runtime; see [`Router`'s background tasks](crate::Router#background-tasks).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for the first problem found: a bad weight, a
    /// provider registered twice, no catalog, a policy that names unknown models or has invalid
    /// parameters, an unknown fallback model, a model whose provider is not registered (unless no
    /// provider is registered at all: the router is then route-only), invalid execution settings, or
    /// invalid limits (a negative or non-finite cap, a zero-length window, a rate limit on an unknown or
    /// duplicate model, a zero timeout), or invalid groups and aliases (an empty group, a member
    /// that is not in the catalog or is listed twice, weights that are not one finite, non-negative
    /// number per member with a positive sum, a group name or alias that is also a model id or
    /// defined twice, an alias to an unknown name or to another alias).
    pub fn build(self) -> Result<Router> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.exec.validate()?;
        let catalog = self.catalog.ok_or_else(|| Error::config("no catalog: call `RouterBuilder::catalog`"))?;
        if !self.classifiers.is_empty() && self.classifiers.iter().all(|(_, w)| *w == 0.0) {
            return Err(Error::config("every classifier weight is 0: give at least one a positive weight"));
        }
        self.policy.validate(&catalog)?;
        for m in catalog.models() {
            if m.ability.is_unset() {
                tracing::warn!(
                    model = %m.id,
                    "no ability set: the difficulty and intent classifiers treat this model as θ = 0, an average model"
                );
            } else if let Some(known) = m.ability.known_as() {
                tracing::info!(
                    model = %m.id,
                    known,
                    theta = m.ability.overall,
                    checked = crate::catalog::KNOWN_CHECKED,
                    "no ability set: using the known-models table's"
                );
            }
        }
        let names = Names::new(&catalog, &self.groups, &self.aliases)?;
        let fallback = match &self.fallback {
            Some(id) => Some(catalog.require(id, "`fallback_model`")?),
            None => None,
        };
        let providers = if self.providers.is_empty() {
            vec![None; catalog.len()]
        } else {
            let mut v = Vec::with_capacity(catalog.len());
            for m in catalog.models() {
                let p = self.providers.get(m.provider.as_str()).ok_or_else(|| {
                    let mut known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    Error::config(format!(
                        "model `{}` names provider `{}`, which is not registered (registered: {})",
                        m.id,
                        m.provider,
                        known.join(", ")
                    ))
                })?;
                v.push(Some(p.clone()));
            }
            v
        };
        let share_every = self.limits.share_learning;
        let mut learning = Vec::new();
        if !share_every.is_zero() {
            self.policy.learning(&mut learning);
            for (i, l) in learning.iter().enumerate() {
                if learning[..i].iter().any(|o| o.label() == l.label()) {
                    return Err(Error::config(format!(
                        "limits.share_learning: the policy has two of {}; give them different names",
                        l.label()
                    )));
                }
            }
        }
        let limiter = if self.limits.is_empty() && self.store.is_none() {
            None
        } else {
            let store = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
            Some(Arc::new(Limiter::new(self.limits, store, &catalog)?))
        };
        let policy_name: Arc<str> = Arc::from(self.policy.name());
        let now = tokio::time::Instant::now().into_std();
        let models = catalog.len();
        Ok(Router {
            inner: Arc::new(Inner {
                engine: Arc::new(Engine {
                    catalog: catalog.clone(),
                    cost_model: Arc::clone(&self.cost_model),
                    providers,
                    health: HealthTracker::new(models, self.exec.health.clone(), now)?,
                    log: DecisionLog::new(self.exec.feedback_capacity, self.exec.feedback_ttl, now),
                    exec: self.exec,
                    quality: self.quality,
                    observers: self.observers,
                    recovering: (0..models).map(|_| std::sync::atomic::AtomicU32::new(0)).collect(),
                    limiter,
                    jitter_seed: self.jitter_seed.unwrap_or_else(|| Jitter::from_entropy().next_u64()),
                }),
                catalog,
                context: self.context,
                classifiers: self.classifiers,
                cost_model: self.cost_model,
                policy: self.policy,
                policy_name,
                pinned_name: Arc::from("pinned"),
                names,
                pin_draws: std::sync::atomic::AtomicU64::new(0),
                seed: self.seed,
                fallback,
                max_request_bytes: self.max_request_bytes,
                confidence_floor: self.confidence_floor,
                on_low_confidence: self.on_low_confidence,
                learning: crate::router::LearningSync::new(learning, share_every, now),
            }),
        })
    }
}
