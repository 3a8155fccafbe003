//! A provider for the limits tests: three models at known prices that answer with a fixed usage, and
//! can be switched to fail, hang or take a while.

#![allow(dead_code, reason = "each test binary uses a different subset of the helpers")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use switchyard::state::{Admit, Admitted, Counter, MemoryStore, Settlement, StateStore};

use switchyard::catalog::Ability;
use switchyard::classify::DifficultyClassifier;
use switchyard::execute::health::HealthConfig;
use switchyard::execute::retry::RetryPolicy;
use switchyard::{
    Catalog, Completion, Error, ExecutionConfig, FinishReason, ModelProfile, Pricing, Provider, Request, Router,
    RouterBuilder, Usage, Utility,
};

/// Output tokens of every answer.
pub(crate) const OUTPUT: u32 = 500;
/// `max_tokens` of the test requests: the reservation's output.
pub(crate) const MAX_TOKENS: u32 = 500;

#[derive(Default)]
pub(crate) struct Knobs {
    pub(crate) fail: AtomicBool,
    pub(crate) hang: AtomicBool,
    pub(crate) latency: Mutex<Duration>,
    pub(crate) calls: AtomicU64,
}

/// Provider `meter`: models `cheap`, `mid` and `dear`.
#[derive(Clone)]
pub(crate) struct Meter {
    models: Arc<HashMap<String, Arc<Knobs>>>,
    /// Input tokens reported in the usage (set it to the router's estimate so reservations and
    /// actual costs agree).
    pub(crate) input_tokens: Arc<AtomicU32>,
}

impl Meter {
    pub(crate) fn new() -> Self {
        let models = ["cheap", "mid", "dear"].iter().map(|m| ((*m).to_owned(), Arc::new(Knobs::default()))).collect();
        Self { models: Arc::new(models), input_tokens: Arc::new(AtomicU32::new(10)) }
    }

    pub(crate) fn knobs(&self, model: &str) -> &Knobs {
        &self.models[model]
    }

    pub(crate) fn calls(&self, model: &str) -> u64 {
        self.knobs(model).calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Provider for Meter {
    fn name(&self) -> &str {
        "meter"
    }

    async fn complete(&self, model: &ModelProfile, _: &Request) -> switchyard::Result<Completion> {
        let knobs = self.knobs(model.id.as_str());
        knobs.calls.fetch_add(1, Ordering::SeqCst);
        let latency = *knobs.latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if knobs.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if knobs.fail.load(Ordering::SeqCst) {
            return Err(Error::server("meter outage").with_status(503));
        }
        let usage = Usage::new(self.input_tokens.load(Ordering::SeqCst), OUTPUT);
        Ok(Completion::new(format!("answer from {}", model.id), FinishReason::Stop, usage))
    }
}

/// `cheap` ($1/$2 per Mtok, ability logit 1), `mid` ($3/$15, 2), `dear` ($10/$30, 3).
pub(crate) fn catalog() -> Catalog {
    let model = |id: &str, input: f64, output: f64, ability: f64| {
        ModelProfile::new(id, "meter")
            .with_pricing(Pricing::per_mtok(input, output))
            .with_context(128_000, 4096)
            .with_ability(Ability::new(ability))
    };
    Catalog::new([model("cheap", 1.0, 2.0, 1.0), model("mid", 3.0, 15.0, 2.0), model("dear", 10.0, 30.0, 3.0)])
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The actual cost of one answer of `model` with `input` tokens in.
pub(crate) fn answer_cost(model: &str, input: u32) -> f64 {
    let (i, o) = match model {
        "cheap" => (1.0, 2.0),
        "mid" => (3.0, 15.0),
        _ => (10.0, 30.0),
    };
    (f64::from(input) * i + f64::from(OUTPUT) * o) / 1e6
}

/// Execution without retries (each failure moves straight to the next candidate), with `health`.
pub(crate) fn no_retries(health: HealthConfig) -> ExecutionConfig {
    ExecutionConfig::new().with_retry(RetryPolicy::new().with_max_retries_per_model(0)).with_health(health)
}

/// A router over [`catalog`] and `meter` with answer value `answer_value` in USD (large: `dear`,
/// then `mid`, then `cheap`; 0: the reverse), executing as `exec`.
pub(crate) fn builder(meter: &Meter, answer_value: f64, exec: ExecutionConfig) -> RouterBuilder {
    Router::builder()
        .catalog(catalog())
        .classifier(DifficultyClassifier::default(), 1.0)
        .policy(Utility::new().answer_value(answer_value))
        .provider(meter.clone())
        .execution(exec)
}

/// The tests' request: tenant `acme`, `MAX_TOKENS` out.
pub(crate) fn request() -> Request {
    Request::new("Summarise the quarterly report in three bullet points.")
        .with_max_tokens(MAX_TOKENS)
        .with_tenant("acme")
}

/// What `router` reserves on `model` for [`request`]: its input estimate plus `MAX_TOKENS` out.
pub(crate) fn reservation(router: &Router, model: &str) -> f64 {
    let decision = router.route(&request()).unwrap_or_else(|e| panic!("{e}"));
    let c = decision
        .candidates()
        .iter()
        .find(|c| router.catalog().model(c.model).id.as_str() == model)
        .unwrap_or_else(|| panic!("{model} is a candidate"));
    let p = &router.catalog().model(c.model).pricing;
    (f64::from(c.cost.input_tokens) * p.input_per_mtok + f64::from(MAX_TOKENS) * p.output_per_mtok) / 1e6
}

/// Makes `meter` report `router`'s input estimate, so actual costs equal reservations.
pub(crate) fn align(meter: &Meter, router: &Router) {
    let decision = router.route(&request()).unwrap_or_else(|e| panic!("{e}"));
    meter.input_tokens.store(decision.candidates()[0].cost.input_tokens, Ordering::SeqCst);
}

/// Equal up to rounding.
pub(crate) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// A store that can be switched to fail, to hang, or to lose its replies (what was asked is done,
/// and the caller gets an error, as when an answer arrives after the caller's timeout).
pub(crate) struct Flaky {
    pub(crate) inner: MemoryStore,
    pub(crate) down: AtomicBool,
    pub(crate) hang: AtomicBool,
    pub(crate) lose_replies: AtomicBool,
}

impl Flaky {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::new(),
            down: AtomicBool::new(false),
            hang: AtomicBool::new(false),
            lose_replies: AtomicBool::new(false),
        })
    }

    fn reply<T>(&self, reply: switchyard::Result<T>) -> switchyard::Result<T> {
        if self.lose_replies.load(Ordering::SeqCst) {
            return Err(switchyard::Error::new(switchyard::ErrorKind::Store, "flaky store lost its reply"));
        }
        reply
    }

    async fn gate(&self) -> switchyard::Result<()> {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(switchyard::Error::new(switchyard::ErrorKind::Store, "flaky store is down"));
        }
        Ok(())
    }
}

#[async_trait]
impl StateStore for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }
    async fn admit(&self, admit: &Admit) -> switchyard::Result<Admitted> {
        self.gate().await?;
        self.reply(self.inner.admit(admit).await)
    }
    async fn settle(&self, settlements: &[Settlement]) -> switchyard::Result<()> {
        self.gate().await?;
        self.reply(self.inner.settle(settlements).await)
    }
    async fn read(&self, counters: &[Counter]) -> switchyard::Result<Vec<f64>> {
        self.gate().await?;
        self.inner.read(counters).await
    }
}
