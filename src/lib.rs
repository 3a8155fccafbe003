//! # switchyard
//!
//! Route each LLM request to the cheapest model in a portfolio that will still answer it well.
//!
//! A service describes its portfolio (a [`Catalog`] of [`ModelProfile`]s: prices, context window,
//! capabilities, ability, latency), plugs in [`Provider`]s and asks a [`Router`]. For every request the
//! router
//!
//! 1. **classifies** it ([`Classifier`]): input tokens, difficulty and reasoning depth, intent,
//!    required capabilities;
//! 2. **estimates** each model's cost ([`CostModel`]) and latency;
//! 3. **decides** ([`Policy`]): hard constraints filter, classifiers' weighted signals give each model a
//!    predicted success probability `p(m)`, and the policy ranks the survivors into a [`Decision`]: the
//!    chosen model, its fallbacks, every candidate's numbers and an explanation;
//! 4. **executes** through the chosen model's [`Provider`] ([`Router::complete`], [`Router::stream`]).
//!
//! Steps 1 to 3 are [`Router::route`]: pure, synchronous, no I/O, a few microseconds (the README
//! lists the measured figures).
//!
//! ```
//! use switchyard::{Catalog, ModelProfile, Pricing, Request, Router, SimulatedProvider, Utility};
//! use switchyard::catalog::Ability;
//! use switchyard::classify::{DifficultyClassifier, IntentClassifier};
//!
//! # async fn run() -> switchyard::Result<()> {
//! let catalog = Catalog::new([
//!     ModelProfile::new("mini", "sim")
//!         .with_pricing(Pricing::per_mtok(0.15, 0.60))
//!         .with_ability(Ability::new(1.5)),
//!     ModelProfile::new("frontier", "sim")
//!         .with_pricing(Pricing::per_mtok(2.50, 10.00))
//!         .with_ability(Ability::new(4.0)),
//! ])?;
//! let router = Router::builder()
//!     .catalog(catalog)
//!     .classifier(DifficultyClassifier::default(), 1.0)
//!     .classifier(IntentClassifier::default(), 0.5)
//!     .policy(Utility::new()) // maximise $0.01 × p − cost per request
//!     .provider(SimulatedProvider::new("sim"))
//!     .build()?;
//!
//! let request = Request::new("What is the capital of France?");
//! let decision = router.route(&request)?; // pure, sync, no I/O
//! assert_eq!(decision.model().as_str(), "mini");
//! println!("{}", decision.explain());
//!
//! let response = router.complete(request).await?;
//! println!("{} answered for ${:.6}", response.model(), response.cost_usd);
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(run()).unwrap();
//! ```
//!
//! # The decision model
//!
//! Classifiers contribute evidence in logit space, weighted by the router:
//! `logit p(m) = Σᵢ wᵢ · sᵢ(m)`. The built-in difficulty classifier gives `θ_m − d` (the catalog's
//! ability minus the request's difficulty, a one-parameter item-response model), the intent
//! classifier the model's per-intent edge. [`Utility`] maximises the expected net value `V·p(m) − c(m) − μ·l(m)` in USD, where `V` is
//! what an acceptable answer is worth;
//! [`CheapestCapable`] picks the cheapest model with `p(m)` above a floor; [`Rules`] pins models or
//! sub-portfolios by intent, size, tag or tenant. See `docs/architecture.md`.
//!
//! A request can instead pin what serves it, [`Request::with_model`]: a model id, an alias or a
//! [`catalog::Group`] (one name for several deployments, with weighted or priority load balancing
//! and failover among them); the policy is then not consulted. [`Router::resolve`] and
//! [`Router::models`] tell a server which names exist.
//!
//! # Learning from outcomes
//!
//! [`Router::feedback`] reports what happened after a decision. [`Experiment`] splits traffic
//! between policies by a stable hash of the request key and tells, with an always-valid sequential
//! test, when one arm is better; [`Bandit`] learns per kind of request which model serves best for
//! its price; [`policy::experiment::SpendController`] holds a tier share or a cost per request by turning
//! `Utility`'s answer value as traffic shifts. See [`policy::experiment`] and `docs/experiments.md`.
//!
//! # Optional features
//!
//! | feature | what it adds |
//! |---|---|
//! | `tokenizers` | [`classify::HfTokenizer`]: exact counts from a Hugging Face `tokenizer.json` (no downloads) |
//! | `tiktoken` | [`classify::Tiktoken`]: exact counts with OpenAI's `o200k_base` and `cl100k_base` |
//! | `openai` | `provider::openai::OpenAi`: OpenAI-compatible chat completions (OpenAI, Azure, vLLM, Ollama, llama.cpp, OpenRouter, Together, Groq) over `reqwest` and rustls |
//! | `anthropic` | `provider::anthropic::Anthropic`: Anthropic's Messages API over `reqwest` and rustls |
//! | `gemini` | `provider::gemini::Gemini`: Google's Gemini API (API key) and Vertex AI (bearer token), `generateContent` and `streamGenerateContent`, over `reqwest` and rustls |
//! | `azure` | `provider::azure::AzureOpenAi`: Azure OpenAI deployments (`api-version`, or the v1 API) with an `api-key` or a Microsoft Entra ID token, content-filter refusals as `ErrorKind::ContentFilter`; enables `openai` |
//! | `bedrock` | `provider::bedrock::Bedrock`: AWS Bedrock's Converse and ConverseStream APIs, SigV4-signed (credentials from the builder, the environment or the shared AWS files), over `reqwest` and rustls |
//! | `redis` | `state::RedisStore`: budgets, rate limits, sticky sessions and open circuits shared by every replica through a Redis server (one Lua script call per request; the `redis` crate with Tokio) |
//! | `full` | all of the above |
//!
//! Nothing is on by default. The simulated provider and TOML/JSON configuration are always built;
//! without `openai`, `anthropic`, `gemini` or `bedrock` no HTTP client is compiled. `docs/providers.md` describes the
//! adapters: the wire formats covered, the error mapping, the timeouts and what is not covered yet.
//!
//! # Budgets, rate limits and replicas
//!
//! [`limits`] caps USD spending per tenant, per caller key or overall, and requests and tokens per
//! minute per model. Before each attempt the router reserves the candidate's cost in a
//! [`state::StateStore`]; a candidate that does not fit is passed over for a cheaper one, and when
//! none fits the request fails with [`ErrorKind::BudgetExceeded`]. With a shared store (Redis) the
//! limits hold across replicas; when the store fails, each limit fails open, closed or onto local
//! counters as configured. See `docs/scaling.md`. With a shared store the router flushes finished
//! requests' settlements, and optionally syncs learned state, in short tasks it spawns on the
//! caller's Tokio runtime; [`Router`'s background tasks](Router#background-tasks) says when, and
//! what happens without a runtime.
//!
//! # Errors
//!
//! One [`Error`] type; match on [`Error::kind`]. Display wording and error sources are not API.
//! Errors, `Debug` output and logs never contain API keys or prompt text.
//!
//! # Public dependencies
//!
//! - `serde` 1 (config and data types derive its traits);
//! - `futures-core` 0.3 (`Stream`);
//! - `smallvec` 1 (1.15 or later): [`RouteHints::tags`], the learned classifier's
//!   [`Prediction::logits`](classify::learned::Prediction::logits) and
//!   [`Prediction::costs`](classify::learned::Prediction::costs), and the fields of the state-store
//!   protocol a custom [`state::StateStore`] reads and writes ([`state::Check::terms`],
//!   [`state::Choice::charges`] and [`state::Choice::checks`], [`state::Lease::charges`],
//!   [`state::Settlement::actual`]) are `smallvec::SmallVec`s. Code that builds or matches on these
//!   values uses smallvec 1.x; moving to smallvec 2 would be a breaking release;
//! - `reqwest` 0.13, under the `openai`, `anthropic`, `gemini` and `bedrock` features only: the adapters' `http_client`
//!   setters take a `reqwest::Client`.
//!
//! Nothing else appears in public signatures.
//!
//! # Minimum supported Rust version
//!
//! 1.88: the highest `rust-version` declared by a dependency with every feature on (`redis` 1.8 needs
//! it). CI checks the declared version against the dependencies' on every change rather than
//! building with that toolchain. Raising it is a minor-version change, noted in the changelog.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod catalog;
pub mod classify;
mod completion;
pub mod cost;
mod error;
pub mod execute;
mod fs;
pub mod hash;
pub mod limits;
pub mod policy;
pub mod provider;
mod request;
mod router;
pub mod state;
mod types;
pub mod wire;

pub use crate::catalog::{Capabilities, Catalog, ModelId, ModelProfile, Pricing, ProviderId};
pub use crate::classify::Classifier;
pub use crate::classify::{IntentScore, SignalKey, Signals, TokenEstimate};
pub use crate::completion::{Completion, EventStream, FinishReason, StreamEvent, Usage};
pub use crate::cost::{CostEstimate, CostModel, TokenPriceCostModel};
#[doc(hidden)]
pub use crate::error::without_values as __without_values;
pub use crate::error::{BoxError, Error, ErrorKind, Result};
pub use crate::execute::Response;
pub use crate::execute::{Attempt, DecisionId, ExecutionConfig, Feedback};
pub use crate::hash::uniform;
pub use crate::policy::Observer;
pub use crate::policy::{Bandit, Experiment};
pub use crate::policy::{CheapestCapable, Decision, Policy, PolicyInput, Ranking, Rules, Utility};
pub use crate::provider::{Provider, SimulatedModel, SimulatedProvider};
pub use crate::request::{
    ContentPart, ImageDetail, Message, Request, ResponseFormat, Role, RouteHints, Tool, ToolCall, ToolChoice,
};
pub use crate::router::config::{self, RouterConfig};
pub use crate::router::{RoutedStream, Router, RouterBuilder, Weight};

/// Entry points into private parsers for the fuzz targets (`fuzz/`) and `tests/fuzz_inputs.rs`.
///
/// Compiled only with the hidden `__fuzz` feature. Not API: no stability promise of any kind.
#[cfg(feature = "__fuzz")]
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::provider::fuzz::{
        anthropic_response, anthropic_stream, gemini_response, gemini_stream, openai_response, openai_stream, sse,
        status_error_for,
    };

    /// Rewrites the trailing checksum of a learned-model file (its last 8 bytes) to match the rest,
    /// so that a mutated file gets past the checksum to the decoder. Shorter input is left alone.
    pub fn seal_learned_model(bytes: &mut [u8]) {
        if let Some(split) = bytes.len().checked_sub(8) {
            let sum = crate::hash::fnv1a(&bytes[..split]);
            bytes[split..].copy_from_slice(&sum.to_le_bytes());
        }
    }
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/experiments.md")]
struct ExperimentsDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/learned-routing.md")]
struct LearnedRoutingDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/scaling.md")]
struct ScalingDoctests;
