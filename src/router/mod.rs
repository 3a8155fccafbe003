//! [`Router`]: classify, estimate, decide, and (for `complete` and `stream`) execute.

mod builder;
pub mod config;
mod config_error;
mod legacy;
#[cfg(feature = "tower")]
mod service;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;
use tracing::Instrument;

pub use self::builder::{RouterBuilder, Weight};
pub use crate::execute::RoutedStream;

use crate::catalog::{Capabilities, Catalog, MAX_NAME_BYTES, ModelProfile, Names, Resolved};
use crate::classify::Signals;
use crate::classify::{Classifier, ClassifyInput, ContextLength, TextStats};
use crate::cost::CostModel;
use crate::error::{Error, ErrorKind, Result};
use crate::execute::health::{CircuitState, ModelHealth, Observation};
use crate::execute::{DecisionId, Engine, ExecutionConfig, Feedback, Response, now_std};
use crate::policy::experiment::ExperimentHandle;
use crate::policy::{
    Candidate, Decision, Memo, OnLowConfidence, Outcome, Policy, PolicyInput, RejectReason, Rejection, Scored,
};
use crate::request::Request;

/// Routes requests over a model portfolio. Cheap to clone: a handle over shared, immutable state; do
/// not wrap it in an `Arc`.
///
/// [`route`](Self::route) runs classify, estimate and decide: pure, synchronous, no I/O, a few
/// microseconds. [`complete`](Self::complete) and [`stream`](Self::stream) also call the chosen model's
/// provider.
///
/// # Background tasks
///
/// A router spawns no task unless its [`limits`](crate::RouterBuilder::limits) ask for one of these
/// two, and then spawns it on the Tokio runtime current in the call that starts it (found with
/// `tokio::runtime::Handle::try_current`; the caller never gets a handle to it):
///
/// - **Flushing to the store**, with a state store other than a
///   [`MemoryStore`](crate::state::MemoryStore) and
///   [`LimitsConfig::flush_after`](crate::limits::LimitsConfig::flush_after) non-zero (the default
///   is 250 ms). When a finished request's settlement or a circuit opened here starts waiting for
///   the store, a task sleeps `flush_after` and, if no admission carried it meanwhile, sends it in
///   one round trip; it sleeps again while something waits and ends when nothing does. It holds
///   only a weak reference to the router and ends once the router is dropped.
/// - **Syncing learned state**, with
///   [`LimitsConfig::share_learning`](crate::limits::LimitsConfig::share_learning) non-zero (off by
///   default) and a policy that learns. When [`complete`](Self::complete), [`stream`](Self::stream)
///   or [`feedback`](Self::feedback) finds a sync due, a task runs one
///   [`sync_learning`](Self::sync_learning) and ends; it holds a clone of the router until then.
///
/// Both need a Tokio runtime with its time driver enabled (`#[tokio::main]` and `#[tokio::test]`
/// enable it). Called with no runtime current (a `feedback` from a plain thread, say, or a request
/// future polled by another executor), the router spawns nothing and loses nothing: what waits for
/// the store goes with the next admission, and the sync with the next call made on a runtime; await
/// [`flush_state`](Self::flush_state) or [`sync_learning`](Self::sync_learning) to send either at
/// once, as before shutting a replica down. A task on a runtime that shuts down is dropped with it;
/// its work is left to the next call, as above. With `flush_after` zero and `share_learning` zero a
/// router spawns nothing; the `redis` feature's [`RedisStore`](crate::state::RedisStore) has the
/// `redis` crate's connection manager, which runs its own task on the runtime it was created on.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) catalog: Catalog,
    pub(crate) context: ContextLength,
    pub(crate) classifiers: Vec<(Arc<dyn Classifier>, f64)>,
    pub(crate) cost_model: Arc<dyn CostModel>,
    pub(crate) policy: Arc<dyn Policy>,
    pub(crate) policy_name: Arc<str>,
    /// `"pinned"`: the policy name of pinned decisions.
    pub(crate) pinned_name: Arc<str>,
    /// The model ids, groups and aliases requests can pin.
    pub(crate) names: Names,
    /// How many unkeyed pinned requests drew a weighted group's order.
    pub(crate) pin_draws: std::sync::atomic::AtomicU64,
    pub(crate) seed: u64,
    pub(crate) fallback: Option<usize>,
    pub(crate) max_request_bytes: usize,
    pub(crate) confidence_floor: f64,
    pub(crate) on_low_confidence: OnLowConfidence,
    /// Learned state shared with other replicas, when `LimitsConfig::share_learning` is set.
    pub(crate) learning: LearningSync,
    /// Providers, health, limits, quality checks and observers: what `complete` and `stream` use.
    pub(crate) engine: Arc<Engine>,
}

/// The policy's shareable learned state and when to sync it next.
pub(crate) struct LearningSync {
    parts: Vec<crate::policy::experiment::Learning>,
    every_ms: u64,
    epoch: std::time::Instant,
    /// Milliseconds since `epoch` from which a sync is due.
    next_ms: std::sync::atomic::AtomicU64,
}

impl LearningSync {
    pub(crate) fn new(
        parts: Vec<crate::policy::experiment::Learning>,
        every: std::time::Duration,
        now: std::time::Instant,
    ) -> Self {
        let every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        Self { parts, every_ms, epoch: now, next_ms: std::sync::atomic::AtomicU64::new(every_ms) }
    }

    /// Whether a sync is due now; if so, the next one is scheduled (one caller wins).
    fn due(&self) -> bool {
        use std::sync::atomic::Ordering;
        if self.parts.is_empty() || self.every_ms == 0 {
            return false;
        }
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        now >= next
            && self
                .next_ms
                .compare_exchange(next, now.saturating_add(self.every_ms), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("Router")
            .field("catalog", &i.catalog)
            .field("classifiers", &i.classifiers.iter().map(|(c, w)| (c.name().to_owned(), *w)).collect::<Vec<_>>())
            .field("policy", &i.policy_name)
            .field("seed", &i.seed)
            .finish_non_exhaustive()
    }
}

/// Returns `result`, after yielding to the runtime once when it is an error. Errors often come back
/// without any I/O (a limit failing closed, no candidate); a caller that retries at once would
/// otherwise hold its thread forever.
async fn yield_on_error<T>(result: Result<T>) -> Result<T> {
    if result.is_err() {
        tokio::task::yield_now().await;
    }
    result
}

impl Router {
    /// Routes `request` and executes the decision: the chosen model first, then retries, fallbacks
    /// and escalations as [`crate::execute`] describes, within the request's deadline.
    ///
    /// The response says which model answered ([`Response::model`]), lists every attempt
    /// ([`Response::attempts`]), and carries the actual cost of all of them ([`Response::cost_usd`])
    /// next to the estimate for the model that answered, and the decision.
    ///
    /// # Errors
    /// Everything [`route`](Self::route) returns; [`ErrorKind::ProviderMissing`] for a route-only router;
    /// otherwise the last provider error (or a [`ErrorKind::Timeout`] when the deadline passed), with
    /// every attempt in [`Error::attempts`].
    ///
    /// An error is returned only after yielding to the runtime once, so that a caller that retries at
    /// once (an error that needed no I/O, such as [`ErrorKind::Store`] while a limit fails closed)
    /// cannot starve the other tasks of a current-thread runtime.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the attempt in flight (the provider's future is dropped) and gives
    /// back any probe slot it held; nothing else is left behind.
    pub async fn complete(&self, request: Request) -> Result<Response> {
        yield_on_error(self.complete_once(request).await).await
    }

    async fn complete_once(&self, request: Request) -> Result<Response> {
        self.sync_learning_if_due();
        let decision = self.decide(&request, Capabilities::NONE, true)?;
        let span = tracing::debug_span!("switchyard.complete", decision = decision.id().get());
        let (completion, served) = self.inner.engine.complete(&request, &decision).instrument(span).await?;
        Ok(Response::new(completion, served, decision))
    }

    /// Routes `request` to models that can stream and streams the answer, with fallbacks until the
    /// first content arrives.
    ///
    /// Each attempt opens a stream and waits for its first piece of content (text or a tool call)
    /// within [`ExecutionConfig::first_token_timeout`](crate::execute::ExecutionConfig::first_token_timeout);
    /// an error before that moves on exactly as in [`complete`](Self::complete). Once content arrived,
    /// the returned [`RoutedStream`] is committed to that model: a later failure is an
    /// [`ErrorKind::MidStream`] error carrying the text delivered so far
    /// ([`Error::partial_content`]). Quality checks and escalation do not apply to streams.
    ///
    /// # Errors
    /// As [`complete`](Self::complete), for everything before the commit point; an error is returned
    /// after yielding to the runtime once, as there.
    ///
    /// # Cancel safety
    /// Dropping the future or the stream cancels the provider call and gives back any probe slot.
    pub async fn stream(&self, request: Request) -> Result<RoutedStream> {
        yield_on_error(self.stream_once(request).await).await
    }

    async fn stream_once(&self, request: Request) -> Result<RoutedStream> {
        self.sync_learning_if_due();
        let decision = self.decide(&request, Capabilities::STREAMING, true)?;
        let span = tracing::debug_span!("switchyard.stream", decision = decision.id().get());
        self.inner.engine.stream(request, decision).instrument(span).await
    }

    /// A builder; see [`RouterBuilder`].
    pub fn builder() -> RouterBuilder {
        RouterBuilder::new()
    }

    /// The portfolio.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// What every budget that applies to requests of `tenant` and `key` has spent (and reserved for
    /// requests in flight) in its current window, as the state store reports it (this replica's
    /// local counters while the store is failing). Empty without budgets.
    ///
    /// # Errors
    /// [`ErrorKind::Store`] when the store fails or does not answer within
    /// [`LimitsConfig::store_timeout`](crate::limits::LimitsConfig::store_timeout).
    pub async fn budget_status(
        &self,
        tenant: Option<&str>,
        key: Option<&str>,
    ) -> Result<Vec<crate::limits::BudgetStatus>> {
        match &self.inner.engine.limiter {
            Some(limiter) => limiter.status(tenant, key).await,
            None => Ok(Vec::new()),
        }
    }

    /// Sends the state store what this router has not yet told it: the actual costs of finished
    /// requests, and what was spent on local counters while the store was failing. Both otherwise
    /// travel with the next request's admission (one round trip per request), or in the background
    /// once they have waited [`LimitsConfig::flush_after`](crate::limits::LimitsConfig::flush_after);
    /// call this before shutting a replica down.
    ///
    /// # Errors
    /// [`ErrorKind::Store`] when the store fails or does not answer in time; the settlements are
    /// kept for the next attempt.
    pub async fn flush_state(&self) -> Result<()> {
        match &self.inner.engine.limiter {
            Some(limiter) => limiter.flush().await,
            None => Ok(()),
        }
    }

    /// Adds up the policy's learned state with the other replicas that share the router's state
    /// store now, in one round trip: each [`Experiment`](crate::Experiment)'s statistics and each
    /// [`Bandit`](crate::Bandit)'s evidence (see
    /// [`LimitsConfig::share_learning`](crate::limits::LimitsConfig::share_learning)). The router
    /// also does this by itself, in the background, every `share_learning`; call this before reading
    /// a report that must be current, or before shutting a replica down. Does nothing when
    /// `share_learning` is off.
    ///
    /// # Errors
    /// [`ErrorKind::Store`] when the store fails or does not answer in time; what this replica
    /// observed is kept for the next sync.
    pub async fn sync_learning(&self) -> Result<()> {
        match &self.inner.engine.limiter {
            Some(limiter) => limiter.sync_learning(&self.inner.learning.parts).await,
            None => Ok(()),
        }
    }

    /// Starts a sync of learned state in the background when one is due (on a Tokio runtime;
    /// otherwise the next call on one starts it).
    pub(crate) fn sync_learning_if_due(&self) {
        if self.inner.engine.limiter.is_none() || self.inner.learning.parts.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if self.inner.learning.due() {
            let router = self.clone();
            #[expect(clippy::disallowed_methods, reason = "documented in `Router`'s background tasks")]
            runtime.spawn(async move {
                // A failure is logged by the limiter and its sums kept for the next sync.
                let _ = router.sync_learning().await;
            });
        }
    }

    /// Decides which model should serve `request`, and in which order the others would take over.
    ///
    /// Pure and synchronous: no I/O, no locks, deterministic for a given router and request.
    ///
    /// # Errors
    /// - [`ErrorKind::InvalidRequest`] when the request is larger than the router's limit, names an
    ///   unknown model in its allowed or excluded lists, or has a quality floor outside `[0, 1]` or a
    ///   negative or non-finite cost cap; or when the policy finds it invalid (an
    ///   [`Experiment`](crate::policy::experiment::Experiment) that needs a key, say).
    /// - [`ErrorKind::NoCandidate`] when hard constraints remove every model;
    ///   [`Error::rejections`] says why for each.
    /// - [`ErrorKind::Routing`] when a classifier, the cost model or the policy fails or breaks its
    ///   contract.
    pub fn route(&self, request: &Request) -> Result<Decision> {
        self.decide(request, Capabilities::NONE, false)
    }

    fn decide(&self, request: &Request, extra: Capabilities, executed: bool) -> Result<Decision> {
        let inner = &*self.inner;
        let catalog = &inner.catalog;
        let pin = self.check_request(request)?;

        let mut signals = Signals::new(TextStats::of_request(request));
        let input = ClassifyInput { request, catalog };
        inner.context.classify(&input, &mut signals).map_err(|e| routing_error("context_length", e))?;
        for (c, _) in &inner.classifiers {
            c.classify(&input, &mut signals).map_err(|e| routing_error(c.name(), e))?;
        }

        let required = request.implied_capabilities() | extra;
        let input_tokens = signals.input_tokens().map_or(0, |t| t.tokens);
        let hints = &request.hints;
        // A pinned request: the models its name stands for, in its group's balance order.
        let pin_order = pin.map(|p| inner.names.order(p, self.pin_draw(p, hints.key.as_deref())));
        let mut candidates: Vec<Candidate> =
            Vec::with_capacity(pin_order.as_ref().map_or(catalog.len(), SmallVec::len));
        let mut rejections: Vec<Rejection> = Vec::new();
        let now = now_std();
        // Capable models whose circuit is open, with the time until it lets probes through.
        let mut open: SmallVec<[(Candidate, Duration); 2]> = SmallVec::new();
        let mut visit = |idx: usize| {
            let model = catalog.model(idx);
            match self.assess(request, &signals, model, idx, required, input_tokens) {
                Ok(c) => match inner.engine.health.state(idx, now) {
                    Some(CircuitState::Open { retry_in }) if !retry_in.is_zero() => {
                        rejections.push(Rejection::new(model.id.clone(), RejectReason::CircuitOpen { retry_in }));
                        open.push((c, retry_in));
                    }
                    _ => match self.live(c, request.hints.latency_budget, now) {
                        Ok(c) => candidates.push(c),
                        Err(reason) => rejections.push(Rejection::new(model.id.clone(), reason)),
                    },
                },
                Err(reason) => rejections.push(Rejection::new(model.id.clone(), reason)),
            }
        };
        match &pin_order {
            None => (0..catalog.len()).for_each(&mut visit),
            Some(order) => {
                // Candidates stay in catalog order, as in every decision.
                let mut members: SmallVec<[usize; 8]> = order.iter().map(|r| r.model).collect();
                members.sort_unstable();
                members.into_iter().for_each(&mut visit);
            }
        }
        let mut recovery = false;
        if candidates.is_empty() {
            // Every capable model's circuit is open: try the one closest to recovery rather than fail.
            let Some(pos) = open.iter().enumerate().min_by_key(|(_, (_, retry_in))| *retry_in).map(|(i, _)| i) else {
                return Err(Error::no_candidate(rejections));
            };
            let (c, _) = open.swap_remove(pos);
            let id = &catalog.model(c.model).id;
            rejections.retain(|r| r.model() != id);
            candidates.push(c);
            recovery = true;
        }

        let (order, note, arm, memo, policy) = match (pin, pin_order) {
            (Some(pin), Some(pin_order)) => {
                // The policy is not consulted: the pin's order, less the members filtered out.
                let order: SmallVec<[Scored; 16]> = pin_order
                    .iter()
                    .filter(|r| candidates.iter().any(|c| c.model == r.model))
                    .map(|r| Scored { model: r.model, score: r.score })
                    .collect();
                let note = Some(std::borrow::Cow::Owned(format!("the request pinned {}", pin.describe())));
                (order, note, None, Memo::NONE, Arc::clone(&inner.pinned_name))
            }
            _ => {
                let uniform = crate::hash::uniform(hints.key.as_deref(), inner.seed);
                let policy_input = PolicyInput::new(request, &signals, catalog, &candidates, uniform);
                let ranking = inner.policy.rank(&policy_input).map_err(|e| routing_error(&inner.policy_name, e))?;
                let exclusive = ranking.is_exclusive();
                let crate::policy::RankingParts { mut order, note, arm, memo } = ranking.into_parts();
                check_ranking(&order, &candidates, catalog.len(), &inner.policy_name)?;
                if let Some(fb) = inner.fallback.filter(|_| !exclusive)
                    && !order.iter().any(|s| s.model == fb)
                    && candidates.iter().any(|c| c.model == fb)
                {
                    order.push(Scored { model: fb, score: f64::NEG_INFINITY });
                }
                (order, note, arm, memo, Arc::clone(&inner.policy_name))
            }
        };
        let chosen_p = candidates.iter().find(|c| c.model == order[0].model).map_or(0.0, |c| c.p);
        // A pin is the caller's explicit choice: flagged below the floor, never refused.
        if pin.is_none() && chosen_p < inner.confidence_floor && inner.on_low_confidence == OnLowConfidence::Refuse {
            let model = &catalog.model(order[0].model).id;
            return Err(Error::new(
                ErrorKind::LowConfidence,
                format!(
                    "the best candidate `{model}` answers acceptably with p {chosen_p:.2}, below the confidence floor {:.2}",
                    inner.confidence_floor
                ),
            )
            .with_rejections(rejections));
        }
        let id = inner.engine.log.issue(order[0].model, executed, memo, hints.key.as_deref(), now);
        let decision = Decision {
            id,
            recovery,
            catalog: catalog.clone(),
            ranking: order,
            candidates,
            rejections,
            policy,
            note,
            arm,
            intent: signals.intent(),
            difficulty: signals.difficulty(),
            learned: signals.get(crate::classify::learned::LEARNED_TRUST).map(|trust| crate::policy::LearnedRead {
                trust,
                need: signals.get(crate::classify::learned::LEARNED_NEED),
            }),
            input_tokens: signals.input_tokens(),
            confidence_floor: inner.confidence_floor,
            pinned: pin.cloned(),
        };
        if executed && decision.is_low_confidence() {
            tracing::warn!(
                decision = decision.id().get(),
                model = %decision.model(),
                p = chosen_p,
                floor = inner.confidence_floor,
                "low confidence: the chosen model is predicted to fail more often than the floor allows"
            );
        }
        for o in &inner.engine.observers {
            o.on_decision(&decision);
        }
        Ok(decision)
    }

    /// Replaces a candidate's catalog latency and reliability with measured ones, once its model has
    /// enough samples that are not stale, and re-checks the latency budget against them.
    fn live(
        &self,
        c: Candidate,
        budget: Option<Duration>,
        now: std::time::Instant,
    ) -> std::result::Result<Candidate, RejectReason> {
        let inner = &*self.inner;
        if !inner.engine.exec.live_routing || inner.engine.health.is_stale(c.model, now) {
            return Ok(c);
        }
        let Some(stats) = inner.engine.health.live(c.model) else { return Ok(c) };
        let output = f64::from(c.cost.output_tokens);
        let latency = match (stats.ttft, stats.tokens_per_sec) {
            (Some(ttft), Some(tps)) if tps > 0.0 => ttft.as_secs_f64() + output / tps,
            _ => stats.latency.map_or(c.latency_secs, |l| l.as_secs_f64()),
        };
        let c = c.with_live(latency, stats.success_rate);
        match budget {
            Some(budget) if c.latency_secs > budget.as_secs_f64() => Err(RejectReason::LatencyBudget {
                expected: Duration::try_from_secs_f64(c.latency_secs).unwrap_or(Duration::MAX),
                budget,
            }),
            _ => Ok(c),
        }
    }

    /// Checks the request; returns what it pins, if anything.
    fn check_request(&self, request: &Request) -> Result<Option<&Resolved>> {
        let limit = self.inner.max_request_bytes;
        let len = request.text_len();
        if len > limit {
            return Err(Error::invalid_request(format!(
                "request text is {len} bytes, above the router's limit of {limit}"
            )));
        }
        crate::request::check_params(request, limit)?;
        let hints = &request.hints;
        for (what, id) in [("key", &hints.key), ("tenant", &hints.tenant)] {
            let len = id.as_ref().map_or(0, String::len);
            if len > crate::request::MAX_KEY_BYTES {
                return Err(Error::invalid_request(format!(
                    "`{what}` is {len} bytes, above the limit of {}",
                    crate::request::MAX_KEY_BYTES
                )));
            }
        }
        if let Some(floor) = hints.quality_floor
            && !(0.0..=1.0).contains(&floor)
        {
            return Err(Error::invalid_request(format!("`quality_floor` must be within [0, 1], got {floor}")));
        }
        if let Some(cap) = hints.max_cost_usd
            && !(cap.is_finite() && cap >= 0.0)
        {
            return Err(Error::invalid_request(format!("`max_cost_usd` must be finite and >= 0, got {cap}")));
        }
        let catalog = &self.inner.catalog;
        for id in hints.allowed.iter().flatten().chain(&hints.excluded) {
            if catalog.index_of(id).is_none() {
                return Err(Error::invalid_request(format!(
                    "the request names model `{id}`, which is not in the catalog"
                )));
            }
        }
        let Some(name) = &hints.model else { return Ok(None) };
        if name.len() > MAX_NAME_BYTES {
            return Err(Error::invalid_request(format!(
                "`model` is {} bytes, above the limit of {MAX_NAME_BYTES}",
                name.len()
            )));
        }
        match self.inner.names.resolve(name) {
            Some(pin) => Ok(Some(pin)),
            None => Err(Error::invalid_request(format!("no model, group or alias is named `{name}`"))),
        }
    }

    /// The draw that orders a weighted group's members for a pinned request: `uniform(key, seed)`
    /// with a key; without one, the next output of a SplitMix64 stream seeded with the router's seed.
    fn pin_draw(&self, pin: &Resolved, key: Option<&str>) -> f64 {
        let inner = &*self.inner;
        if !inner.names.draws(pin) {
            return 0.0;
        }
        match key {
            Some(key) => crate::hash::uniform(Some(key), inner.seed),
            None => {
                let n = inner.pin_draws.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                crate::hash::to_unit(crate::hash::splitmix64(
                    inner.seed.wrapping_add(n.wrapping_mul(crate::hash::GOLDEN)),
                ))
            }
        }
    }

    /// What `name` stands for, if the router knows it: a catalog model id, a [`Group`](crate::catalog::Group) or an alias
    /// ([`RouterBuilder::group`], [`RouterBuilder::alias`]). A request pins a name with
    /// [`Request::with_model`]; a server answers 404 for a name this returns `None` for, since routing
    /// a request that pins it fails with [`ErrorKind::InvalidRequest`].
    ///
    /// ```
    /// use switchyard::catalog::{Group, NameKind};
    /// use switchyard::{Catalog, ModelProfile, Router};
    /// # fn main() -> switchyard::Result<()> {
    /// let router = Router::builder()
    ///     .catalog(Catalog::new([ModelProfile::new("gpt-4o@openai", "openai"), ModelProfile::new("gpt-4o@azure", "azure")])?)
    ///     .group(Group::new("gpt-4o", ["gpt-4o@openai", "gpt-4o@azure"]))
    ///     .alias("smart", "gpt-4o")
    ///     .build()?;
    /// let smart = router.resolve("smart").expect("an alias");
    /// assert_eq!((smart.kind(), smart.group()), (NameKind::Alias, Some("gpt-4o")));
    /// assert_eq!(router.resolve("gpt-4o@azure").map(|r| r.kind()), Some(NameKind::Model));
    /// assert!(router.resolve("gpt-5").is_none());
    /// # Ok(()) }
    /// ```
    pub fn resolve(&self, name: &str) -> Option<Resolved> {
        self.inner.names.resolve(name).cloned()
    }

    /// Every name a request can pin, for a model listing (`GET /v1/models`): the catalog's model ids
    /// in catalog order, then the groups in the order they were added, then the aliases sorted by
    /// name.
    pub fn models(&self) -> &[Resolved] {
        self.inner.names.listing()
    }

    /// Applies the hard constraints to one model and, if it passes, scores it.
    fn assess(
        &self,
        request: &Request,
        signals: &Signals,
        model: &ModelProfile,
        idx: usize,
        required: Capabilities,
        input_tokens: u32,
    ) -> std::result::Result<Candidate, RejectReason> {
        let inner = &*self.inner;
        let hints = &request.hints;
        if let Some(allowed) = &hints.allowed
            && !allowed.contains(&model.id)
        {
            return Err(RejectReason::NotAllowed);
        }
        if hints.excluded.contains(&model.id) {
            return Err(RejectReason::Excluded);
        }
        let missing = required.difference(model.capabilities);
        if !missing.is_empty() {
            return Err(RejectReason::MissingCapabilities { missing });
        }
        if let Some(requested) = request.max_tokens
            && requested > model.max_output_tokens
        {
            return Err(RejectReason::MaxOutput { requested, max: model.max_output_tokens });
        }
        let reserved = inner.context.reserved_for(request, model);
        let needed = u64::from(input_tokens) + u64::from(reserved);
        if needed > u64::from(model.context_window) {
            return Err(RejectReason::ContextWindow {
                needed,
                input: input_tokens,
                reserved,
                window: model.context_window,
            });
        }
        let cost = inner.cost_model.estimate(request, signals, model);
        if !(cost.usd.is_finite() && cost.usd >= 0.0) {
            return Err(RejectReason::InvalidCost { usd: cost.usd });
        }
        let latency_secs = model.latency.expected_secs(f64::from(cost.output_tokens));
        if let Some(budget) = hints.latency_budget
            && latency_secs > budget.as_secs_f64()
        {
            return Err(RejectReason::LatencyBudget {
                expected: model.expected_latency(f64::from(cost.output_tokens)),
                budget,
            });
        }
        if let Some(cap) = hints.max_cost_usd
            && cost.usd > cap
        {
            return Err(RejectReason::CostCap { expected: cost.usd, cap });
        }
        let mut logit = 0.0;
        for (c, w) in &inner.classifiers {
            let s = w * c.model_logit(signals, model, idx);
            if s.is_finite() {
                logit += s;
            }
        }
        // Finite terms can still overflow when summed; an infinite logit is a certain (non)success,
        // a NaN one is no evidence.
        if logit.is_nan() {
            logit = 0.0;
        }
        Ok(Candidate::new(idx, logit, cost, latency_secs))
    }

    /// Records what happened after a decision: a success or failure, a quality score, latency and
    /// cost, as the service saw them.
    ///
    /// For decisions that only [`route`](Self::route) made (the service called the provider itself), a
    /// reported latency also feeds the model's health statistics and circuit breaker; for decisions
    /// that [`complete`](Self::complete) or [`stream`](Self::stream) executed, the router already counted
    /// every attempt, and feedback only carries the service's verdict. [`Observer`](crate::Observer)s receive it.
    ///
    /// Feedback that names a [`key`](Feedback::key) is accepted only for decisions made for requests
    /// with that [`RouteHints::key`](crate::RouteHints::key); for any other it is an unknown id.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidRequest`] when the id is unknown (or was issued for another key than
    /// the feedback's), has expired (see
    /// [`ExecutionConfig::feedback_capacity`](crate::execute::ExecutionConfig::feedback_capacity) and
    /// `feedback_ttl`), already has feedback, or the feedback has a quality outside `[0, 1]` or a
    /// negative or non-finite cost.
    pub fn feedback(&self, id: DecisionId, feedback: Feedback) -> Result<()> {
        if let Some(why) = feedback.invalid() {
            return Err(Error::invalid_request(why));
        }
        let inner = &*self.inner;
        let logged = inner.engine.log.consume(id, feedback.key.as_deref(), now_std())?;
        let model = inner.catalog.models().get(logged.model).ok_or_else(|| {
            Error::new(ErrorKind::InvalidRequest, format!("decision {id} names no model of this router"))
        })?;
        if !logged.executed
            && let Some(latency) = feedback.latency
        {
            let observation = if feedback.success {
                Observation::success(latency)
            } else {
                Observation::failure(ErrorKind::Server, latency)
            };
            inner.engine.health.record(logged.model, &observation, now_std());
        }
        tracing::debug!(decision = id.get(), model = %model.id, success = feedback.success, "feedback");
        inner.policy.observe(&Outcome::new(id, logged.model, logged.memo, &feedback, &inner.catalog));
        self.sync_learning_if_due();
        for o in &inner.engine.observers {
            o.on_feedback(id, &model.id, &feedback);
        }
        Ok(())
    }

    /// Handles on every [`Experiment`](crate::policy::experiment::Experiment) in the router's policy (nested
    /// ones included), in the order the policy lists them: reports, kill switches.
    pub fn experiments(&self) -> Vec<ExperimentHandle> {
        let mut out = Vec::new();
        self.inner.policy.experiments(&mut out);
        out
    }

    /// The handle of the experiment named `name`, if the router's policy has one.
    pub fn experiment(&self, name: &str) -> Option<ExperimentHandle> {
        self.experiments().into_iter().find(|e| e.name() == name)
    }

    /// Every model's health, in catalog order: circuit state, success rate, moving averages of latency,
    /// time to first token and decoding speed. For dashboards; takes each model's statistics lock
    /// briefly.
    pub fn health(&self) -> Vec<ModelHealth> {
        let inner = &*self.inner;
        let mut all = inner.engine.health.snapshot(now_std());
        for h in &mut all {
            h.model = inner.catalog.models().get(h.index).map(|m| m.id.clone());
        }
        all
    }

    /// The execution settings.
    pub fn execution(&self) -> &ExecutionConfig {
        &self.inner.engine.exec
    }
}

fn routing_error(component: &str, e: Error) -> Error {
    // A component may find the request itself invalid (an experiment that needs a key): that is the
    // caller's error, not the router's.
    if matches!(e.kind(), ErrorKind::Routing | ErrorKind::InvalidRequest) {
        e
    } else {
        Error::new(ErrorKind::Routing, format!("`{component}` failed: {e}")).with_source(e)
    }
}

/// Checks the policy's contract: a non-empty ranking of candidates, each at most once. Linear in the
/// catalog size (bit sets over model indices), so that large catalogs stay cheap to route.
fn check_ranking(order: &[Scored], candidates: &[Candidate], models: usize, policy: &str) -> Result<()> {
    if order.is_empty() {
        return Err(Error::new(ErrorKind::Routing, format!("policy `{policy}` ranked no candidate")));
    }
    let not_candidate = |model: usize| {
        Err(Error::new(ErrorKind::Routing, format!("policy `{policy}` ranked model #{model} which is not a candidate")))
    };
    let twice =
        |model: usize| Err(Error::new(ErrorKind::Routing, format!("policy `{policy}` ranked model #{model} twice")));
    if models <= 64 {
        // One word of bits for the usual catalog.
        let bit = |model: usize| if model < 64 { 1u64 << model } else { 0 };
        let is_candidate = candidates.iter().fold(0u64, |m, c| m | bit(c.model));
        let mut seen = 0u64;
        for s in order {
            let bit = bit(s.model);
            if is_candidate & bit == 0 {
                return not_candidate(s.model);
            }
            if seen & bit != 0 {
                return twice(s.model);
            }
            seen |= bit;
        }
        return Ok(());
    }
    let words = models.div_ceil(64);
    let mut is_candidate: SmallVec<[u64; 4]> = smallvec::smallvec![0; words];
    for c in candidates {
        if let Some(w) = is_candidate.get_mut(c.model / 64) {
            *w |= 1 << (c.model % 64);
        }
    }
    let mut seen: SmallVec<[u64; 4]> = smallvec::smallvec![0; words];
    for s in order {
        let (word, bit) = (s.model / 64, 1u64 << (s.model % 64));
        if is_candidate.get(word).is_none_or(|w| w & bit == 0) {
            return not_candidate(s.model);
        }
        if seen[word] & bit != 0 {
            return twice(s.model);
        }
        seen[word] |= bit;
    }
    Ok(())
}

pub(crate) type ProviderMap = HashMap<String, Arc<dyn crate::provider::Provider>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::CostEstimate;

    #[test]
    fn check_ranking_enforces_the_policy_contract() {
        let candidates: Vec<Candidate> =
            [0, 3, 70].into_iter().map(|m| Candidate::new(m, 0.0, CostEstimate::usd(0.0), 0.0)).collect();
        let ranked = |models: &[usize]| models.iter().map(|&model| Scored { model, score: 0.0 }).collect::<Vec<_>>();
        let check = |models: &[usize]| check_ranking(&ranked(models), &candidates, 80, "p");
        assert!(check(&[70, 0, 3]).is_ok());
        assert!(check(&[3]).is_ok());
        for (bad, message) in [
            (&[][..], "ranked no candidate"),
            (&[0, 1][..], "model #1 which is not a candidate"),
            (&[0, 500][..], "model #500 which is not a candidate"),
            (&[70, 3, 70][..], "model #70 twice"),
        ] {
            let e = check(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Routing);
            assert!(e.to_string().contains(message), "{e}");
        }
        // A catalog of at most 64 models takes the one-word path.
        let small: Vec<Candidate> =
            [0, 3, 9].into_iter().map(|m| Candidate::new(m, 0.0, CostEstimate::usd(0.0), 0.0)).collect();
        let check = |models: &[usize]| check_ranking(&ranked(models), &small, 10, "p");
        assert!(check(&[9, 0, 3]).is_ok());
        for (bad, message) in [
            (&[][..], "ranked no candidate"),
            (&[0, 1][..], "model #1 which is not a candidate"),
            (&[0, 64][..], "model #64 which is not a candidate"),
            (&[0, 500][..], "model #500 which is not a candidate"),
            (&[9, 3, 9][..], "model #9 twice"),
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.to_string().contains(message), "{e}");
        }
    }
}
