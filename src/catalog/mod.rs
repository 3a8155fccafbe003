//! The model portfolio: [`ModelId`], [`ModelProfile`] and the validated [`Catalog`]; and the names
//! a request can pin: [`Group`]s of models with a balancing [`Strategy`], and aliases ([`Resolved`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::Intent;
pub use crate::types::{Capabilities, ModelId, ModelIndex, ProviderId};

mod entry;
mod groups;
mod known;
mod known_prices;
mod litellm;

pub use self::groups::{Group, NameKind, Resolved, Strategy};
pub(crate) use self::groups::{MAX_NAME_BYTES, Names};
pub use self::litellm::from_litellm_json;

/// List prices of a model, in USD.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    /// USD per 1M input tokens.
    pub input_per_mtok: f64,
    /// USD per 1M output tokens (reasoning tokens are billed as output).
    pub output_per_mtok: f64,
    /// USD per 1M input tokens read from the provider's prompt cache; `None` when the model has no
    /// discounted cache reads (cached tokens are then billed as ordinary input).
    #[serde(default)]
    pub cached_input_per_mtok: Option<f64>,
    /// USD charged per request on top of tokens.
    #[serde(default)]
    pub request_fee: f64,
    /// A higher tier for long prompts, as some providers bill above a prompt-length threshold.
    #[serde(default)]
    pub long_context: Option<LongContextPricing>,
}

impl Pricing {
    /// Prices per 1M input and output tokens, with no cache discount, fee or long-context tier.
    pub fn per_mtok(input: f64, output: f64) -> Self {
        Self {
            input_per_mtok: input,
            output_per_mtok: output,
            cached_input_per_mtok: None,
            request_fee: 0.0,
            long_context: None,
        }
    }

    /// Sets the price per 1M cached input tokens.
    pub fn with_cached_input(mut self, per_mtok: f64) -> Self {
        self.cached_input_per_mtok = Some(per_mtok);
        self
    }

    /// Sets the fee charged per request.
    pub fn with_request_fee(mut self, usd: f64) -> Self {
        self.request_fee = usd;
        self
    }

    /// Sets the long-context tier.
    pub fn with_long_context(mut self, tier: LongContextPricing) -> Self {
        self.long_context = Some(tier);
        self
    }

    fn validate(&self, model: &str) -> Result<()> {
        check_price(model, "pricing.input_per_mtok", self.input_per_mtok)?;
        check_price(model, "pricing.output_per_mtok", self.output_per_mtok)?;
        if let Some(p) = self.cached_input_per_mtok {
            check_price(model, "pricing.cached_input_per_mtok", p)?;
        }
        check_price(model, "pricing.request_fee", self.request_fee)?;
        if let Some(lc) = &self.long_context {
            check_price(model, "pricing.long_context.input_multiplier", lc.input_multiplier)?;
            check_price(model, "pricing.long_context.output_multiplier", lc.output_multiplier)?;
        }
        Ok(())
    }
}

/// Prices that apply when a prompt is longer than a threshold: every token of such a request is billed
/// at the multiplied rate.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContextPricing {
    /// Prompts with more input tokens than this are billed at the higher tier.
    pub above_input_tokens: u32,
    /// Multiplier on input (and cached input) prices.
    pub input_multiplier: f64,
    /// Multiplier on output prices.
    pub output_multiplier: f64,
}

impl LongContextPricing {
    /// A tier above `above_input_tokens` with the given multipliers.
    pub fn new(above_input_tokens: u32, input_multiplier: f64, output_multiplier: f64) -> Self {
        Self { above_input_tokens, input_multiplier, output_multiplier }
    }
}

/// Expected latency of a model: time to first token and decoding speed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyProfile {
    /// Median time to first token, in milliseconds.
    pub ttft_ms: f64,
    /// Median output tokens per second once decoding has started.
    pub output_tokens_per_sec: f64,
}

impl LatencyProfile {
    /// A profile from time to first token (ms) and output tokens per second.
    pub fn new(ttft_ms: f64, output_tokens_per_sec: f64) -> Self {
        Self { ttft_ms, output_tokens_per_sec }
    }

    /// Expected seconds to produce `output_tokens` tokens, first token included.
    pub fn expected_secs(&self, output_tokens: f64) -> f64 {
        self.ttft_ms / 1000.0 + output_tokens / self.output_tokens_per_sec
    }
}

impl Default for LatencyProfile {
    fn default() -> Self {
        Self { ttft_ms: 500.0, output_tokens_per_sec: 60.0 }
    }
}

/// How capable a model is, on the logit scale of the decision model.
///
/// The router predicts `logit p(m) = Σ wᵢ·sᵢ(m)`; the built-in heuristic classifiers contribute
/// `θ_m − d` where `θ_m` is this ability and `d` the request's difficulty. A model with ability 2.0
/// answers a request of difficulty 0.0 acceptably with probability `σ(2) ≈ 0.88`. Per-intent values
/// describe a model that is stronger or weaker at one kind of task (a code model strong at code, weak
/// at prose): the intent classifier adds `confidence · (θ_m,intent − θ_m)`, weighted by its router
/// weight, so with the intent classifier at weight 1 and full confidence the per-intent value takes the
/// overall one's place.
///
/// A profile built without one ([`Ability::default`], or a config entry without `ability`) takes
/// the ability of the known-models table when its `api_name` or its id names a model there
/// ([`Ability::known`]: widely used models, from published benchmark scores; see
/// `docs/known-models.md`). Otherwise it counts as θ = 0, the ability of an average model on the
/// difficulty scale; the router warns when it is built with such a model, and
/// [`Decision::explain`](crate::Decision::explain) says so when it chooses one. An ability set in
/// code or in a config always wins over the table.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ability {
    /// The overall ability `θ`.
    pub overall: f64,
    /// Ability for requests of a given intent, where it differs from the overall one. Ordered, so that
    /// serialized catalogs are stable; a lookup is a few comparisons.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_intent: BTreeMap<Intent, f64>,
    /// Where the values came from (a deserialized ability was written down: set).
    #[serde(skip)]
    origin: Origin,
}

/// Who chose an ability.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Origin {
    /// Nobody: the default.
    Unset,
    /// The user, in code or in a config.
    #[default]
    Set,
    /// The known-models table, row of this canonical name.
    Known(&'static str),
}

impl Default for Ability {
    /// θ = 0 with no per-intent values, marked as not set.
    fn default() -> Self {
        Self { overall: 0.0, by_intent: BTreeMap::new(), origin: Origin::Unset }
    }
}

impl Ability {
    /// An overall ability with no per-intent values.
    pub fn new(overall: f64) -> Self {
        Self { overall, by_intent: BTreeMap::new(), origin: Origin::Set }
    }

    /// Sets the ability for one intent (the ability then counts as set by you, even if it came from
    /// the known-models table).
    pub fn with_intent(mut self, intent: Intent, ability: f64) -> Self {
        self.by_intent.insert(intent, ability);
        self.origin = Origin::Set;
        self
    }

    /// The ability the known-models table gives `model`, or `None` when the table has no such
    /// model.
    ///
    /// Matching ignores case, a provider prefix (`openai/gpt-4o`, `models/gemini-1.5-pro`), `.`
    /// versus `-` (`claude-3-5-sonnet`), and trailing snapshot markers (`-2024-08-06`,
    /// `-20241022`, `-0613`, `-002`, `-latest`, `-preview`); a snapshot the table lists under its
    /// own name (`gpt-4-1106-preview`) keeps its own row. The overall ability is derived from
    /// published MMLU and GPQA Diamond accuracies and a math ability from MATH where published, by
    /// one mapping anchored to abilities fitted on the RouterBench training split; the table, its
    /// sources and the mapping are in `docs/known-models.md`. The values are a starting point:
    /// abilities fitted on your own traffic are better.
    ///
    /// ```
    /// use switchyard::catalog::Ability;
    ///
    /// let mini = Ability::known("openai/gpt-4o-mini-2024-07-18").unwrap();
    /// let full = Ability::known("gpt-4o").unwrap();
    /// assert!(mini.overall < full.overall);
    /// assert_eq!(mini.known_as(), Some("gpt-4o-mini"));
    /// assert!(Ability::known("my-own-model").is_none());
    /// ```
    pub fn known(model: &str) -> Option<Self> {
        known::lookup(model).map(known::Known::ability)
    }

    /// The table row this ability came from ([`known`](Self::known), or a catalog entry that set no
    /// ability), by its canonical name; `None` for an ability you set, or none.
    pub fn known_as(&self) -> Option<&'static str> {
        match self.origin {
            Origin::Known(name) => Some(name),
            Origin::Unset | Origin::Set => None,
        }
    }

    /// Whether nobody set this ability (with [`new`](Self::new), [`with_intent`](Self::with_intent)
    /// or in a config) and the known-models table did not fill it: the default.
    pub(crate) fn is_unset(&self) -> bool {
        self.origin == Origin::Unset
    }

    /// Whether the ability is not the user's (unset, or from the table): it is not serialized, so
    /// that a profile read back is filled the same way.
    fn is_not_users(&self) -> bool {
        self.origin != Origin::Set
    }
}

/// The date the sources of the known-models table were read.
pub(crate) const KNOWN_CHECKED: &str = known::CHECKED;

/// One model of the portfolio: what it costs, what it can do and how fast it is.
///
/// Built with [`ModelProfile::new`] and the `with_*` setters, or filled from the known-models price
/// table with [`ModelProfile::known`]; checked when it enters a [`Catalog`].
///
/// Read from a config, an entry may name a table row with `known = "gpt-4o-mini"`: the row fills
/// every field the entry does not set (see [`ModelProfile::known`] and `docs/configuration.md`).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "entry::ModelEntry")]
pub struct ModelProfile {
    /// The id the router uses.
    pub id: ModelId,
    /// The provider that serves it.
    pub provider: ProviderId,
    /// The name the provider knows it by, when it differs from `id`.
    #[serde(default)]
    pub api_name: Option<String>,
    /// List prices.
    pub pricing: Pricing,
    /// Maximum input plus output tokens.
    pub context_window: u32,
    /// Maximum output tokens per response.
    pub max_output_tokens: u32,
    /// What the model supports.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Ability on the decision model's logit scale. Left unset (or filled from the known-models
    /// table), it is not written out, so that a profile read back is filled the same way.
    #[serde(default, skip_serializing_if = "Ability::is_not_users")]
    pub ability: Ability,
    /// Expected latency.
    #[serde(default)]
    pub latency: LatencyProfile,
    /// Free-form labels (`"tier:frontier"`, `"eu"`) that rules can select sub-portfolios by.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl ModelProfile {
    /// The known-models table's ability for this model's `api_name`, or else for its id
    /// ([`Ability::known`]): what a profile without an ability of its own takes.
    pub(crate) fn known_ability(&self) -> Option<Ability> {
        Ability::known(self.api_name()).or_else(|| Ability::known(self.id.as_str()))
    }

    /// A model served by `provider`, with zero prices, a 128k window, 4k output, streaming as its only
    /// capability and ability 0: set the real values with the `with_*` setters. (In a config file,
    /// `capabilities` defaults to none: list `"streaming"` there.)
    pub fn new(id: impl Into<ModelId>, provider: impl Into<ProviderId>) -> Self {
        Self {
            id: id.into(),
            provider: provider.into(),
            api_name: None,
            pricing: Pricing::per_mtok(0.0, 0.0),
            context_window: 128_000,
            max_output_tokens: 4_096,
            capabilities: Capabilities::STREAMING,
            ability: Ability::default(),
            latency: LatencyProfile::default(),
            tags: Vec::new(),
        }
    }

    /// A profile of a widely used model from the known-models price table: prices per input,
    /// cached-input and output token, the long-context tier where the provider has one, context
    /// window, maximum output and capabilities, each row with its sources and the date they were
    /// checked (`docs/known-models.md`), and the ability of the abilities table where it has the
    /// model ([`Ability::known`]).
    ///
    /// The id is `name` as given and the provider the table's (`openai`, `anthropic`, `google`,
    /// `mistral`, `deepseek`, `groq`): register a provider under that name, or change it. The API
    /// name is the provider's spelling of the row (`claude-sonnet-4` sends
    /// `claude-sonnet-4-20250514`); a snapshot or alias is sent as given, without a provider prefix.
    /// Matching ignores case, a provider prefix, `.` versus `-` and trailing snapshot markers, as
    /// [`Ability::known`] does. Override any field with the `with_*` setters. Latency and tags keep
    /// the defaults of [`ModelProfile::new`]. Prices change: the table is a starting point, dated,
    /// not a bill.
    ///
    /// ```
    /// use switchyard::catalog::{ModelProfile, Pricing};
    ///
    /// let mini = ModelProfile::known("openai/gpt-4o-mini-2024-07-18")?;
    /// assert_eq!(mini.provider.as_str(), "openai");
    /// assert_eq!(mini.api_name(), "gpt-4o-mini-2024-07-18");
    /// assert_eq!(mini.pricing.input_per_mtok, 0.15);
    /// assert_eq!(mini.pricing.cached_input_per_mtok, Some(0.075));
    ///
    /// // Any field can be changed afterwards.
    /// let mine = ModelProfile::known("claude-sonnet-4")?.with_pricing(Pricing::per_mtok(2.5, 12.0));
    /// assert_eq!(mine.api_name(), "claude-sonnet-4-20250514");
    ///
    /// let err = ModelProfile::known("gpt-4o-mni").unwrap_err();
    /// assert!(err.to_string().contains("did you mean `gpt-4o-mini`"));
    /// # Ok::<(), switchyard::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a name the table does not list; the
    /// message names the closest rows.
    pub fn known(name: &str) -> Result<Self> {
        known_prices::profile(name)
    }

    /// Sets the name the provider knows the model by.
    pub fn with_api_name(mut self, name: impl Into<String>) -> Self {
        self.api_name = Some(name.into());
        self
    }

    /// Sets the prices.
    pub fn with_pricing(mut self, pricing: Pricing) -> Self {
        self.pricing = pricing;
        self
    }

    /// Sets the context window and the maximum output tokens.
    pub fn with_context(mut self, context_window: u32, max_output_tokens: u32) -> Self {
        self.context_window = context_window;
        self.max_output_tokens = max_output_tokens;
        self
    }

    /// Sets the capabilities.
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Sets the ability.
    pub fn with_ability(mut self, ability: Ability) -> Self {
        self.ability = ability;
        self
    }

    /// Sets the latency profile.
    pub fn with_latency(mut self, latency: LatencyProfile) -> Self {
        self.latency = latency;
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// The name to send to the provider: `api_name` if set, else the id.
    pub fn api_name(&self) -> &str {
        self.api_name.as_deref().unwrap_or(self.id.as_str())
    }

    /// The ability for a request of `intent`, falling back to the overall ability.
    pub fn ability_for(&self, intent: Option<Intent>) -> f64 {
        intent.and_then(|i| self.ability.by_intent.get(&i).copied()).unwrap_or(self.ability.overall)
    }

    /// Whether the model carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Checks every number; the error names the model and the field.
    pub(crate) fn validate(&self) -> Result<()> {
        let id = self.id.as_str();
        if id.is_empty() {
            return Err(Error::config("a model has an empty id"));
        }
        if self.provider.as_str().is_empty() {
            return Err(Error::config(format!("model `{id}`: `provider` is empty")));
        }
        self.pricing.validate(id)?;
        if self.context_window == 0 {
            return Err(Error::config(format!("model `{id}`: `context_window` must be positive")));
        }
        if self.max_output_tokens == 0 {
            return Err(Error::config(format!("model `{id}`: `max_output_tokens` must be positive")));
        }
        if self.max_output_tokens > self.context_window {
            return Err(Error::config(format!(
                "model `{id}`: `max_output_tokens` ({}) exceeds `context_window` ({})",
                self.max_output_tokens, self.context_window
            )));
        }
        check_ability(id, "ability.overall", self.ability.overall)?;
        for (intent, a) in &self.ability.by_intent {
            check_ability(id, &format!("ability.by_intent.{}", intent.as_str()), *a)?;
        }
        if !(self.latency.ttft_ms.is_finite() && self.latency.ttft_ms >= 0.0) {
            return Err(Error::config(format!(
                "model `{id}`: `latency.ttft_ms` must be finite and >= 0, got {}",
                self.latency.ttft_ms
            )));
        }
        if !(self.latency.output_tokens_per_sec.is_finite() && self.latency.output_tokens_per_sec > 0.0) {
            return Err(Error::config(format!(
                "model `{id}`: `latency.output_tokens_per_sec` must be finite and > 0, got {}",
                self.latency.output_tokens_per_sec
            )));
        }
        Ok(())
    }

    /// Expected time to produce `output_tokens`.
    pub(crate) fn expected_latency(&self, output_tokens: f64) -> Duration {
        Duration::try_from_secs_f64(self.latency.expected_secs(output_tokens).max(0.0)).unwrap_or(Duration::MAX)
    }
}

/// The largest ability magnitude accepted: far beyond any meaningful logit (σ(50) rounds to 1), and
/// small enough that weighted sums of abilities stay finite.
pub const MAX_ABILITY: f64 = 1e6;

fn check_ability(model: &str, field: &str, value: f64) -> Result<()> {
    if value.is_finite() && value.abs() <= MAX_ABILITY {
        Ok(())
    } else {
        Err(Error::config(format!(
            "model `{model}`: `{field}` must be within [-{MAX_ABILITY}, {MAX_ABILITY}], got {value}"
        )))
    }
}

/// The largest price, fee or multiplier a catalog accepts: far above any real one, and low enough
/// that a cost computed from them over `u32::MAX` tokens stays finite.
const MAX_FIGURE: f64 = 1e9;

fn check_price(model: &str, field: &str, value: f64) -> Result<()> {
    if (0.0..=MAX_FIGURE).contains(&value) {
        Ok(())
    } else {
        Err(Error::config(format!("model `{model}`: `{field}` must be finite, >= 0 and at most 1e9, got {value}")))
    }
}

/// A validated, immutable model portfolio. Cloning is a reference-count increment.
///
/// Guarantees: at least one model, unique ids, every price finite and non-negative, every window and
/// output limit positive.
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<CatalogInner>,
}

struct CatalogInner {
    models: Vec<ModelProfile>,
    index: HashMap<ModelId, ModelIndex>,
}

impl Catalog {
    /// Validates `models` and builds the catalog. A model whose ability is unset takes the
    /// known-models table's ability for its `api_name`, or else for its id, when the table has one
    /// ([`Ability::known`]); an ability you set is kept.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for an empty portfolio, a duplicate id or any
    /// invalid profile (the message names the model and the field).
    pub fn new(models: impl IntoIterator<Item = ModelProfile>) -> Result<Self> {
        let mut models: Vec<ModelProfile> = models.into_iter().collect();
        for m in models.iter_mut().filter(|m| m.ability.is_unset()) {
            if let Some(ability) = m.known_ability() {
                m.ability = ability;
            }
        }
        if models.is_empty() {
            return Err(Error::config("the catalog is empty: add at least one model"));
        }
        let mut index = HashMap::with_capacity(models.len());
        for (i, m) in models.iter().enumerate() {
            m.validate()?;
            if index.insert(m.id.clone(), i).is_some() {
                return Err(Error::config(format!("model id `{}` appears more than once in the catalog", m.id)));
            }
        }
        Ok(Self { inner: Arc::new(CatalogInner { models, index }) })
    }

    /// The models, in catalog order.
    pub fn models(&self) -> &[ModelProfile] {
        &self.inner.models
    }

    /// The number of models.
    pub fn len(&self) -> usize {
        self.inner.models.len()
    }

    /// Always `false`: a catalog holds at least one model.
    pub fn is_empty(&self) -> bool {
        self.inner.models.is_empty()
    }

    /// The model with id `id`.
    pub fn get(&self, id: &(impl AsRef<str> + ?Sized)) -> Option<&ModelProfile> {
        self.index_of(id).map(|i| &self.inner.models[i])
    }

    /// The index of the model with id `id`.
    pub fn index_of(&self, id: &(impl AsRef<str> + ?Sized)) -> Option<ModelIndex> {
        self.inner.index.get(id.as_ref()).copied()
    }

    /// The model at `index`.
    ///
    /// # Panics
    /// When `index` is out of range; indices come from this catalog.
    pub fn model(&self, index: ModelIndex) -> &ModelProfile {
        &self.inner.models[index]
    }

    /// Returns the index of `id`, or a config error naming `what` refers to it.
    pub(crate) fn require(&self, id: &(impl AsRef<str> + ?Sized), what: &str) -> Result<ModelIndex> {
        self.index_of(id)
            .ok_or_else(|| Error::config(format!("{what} names model `{}`, which is not in the catalog", id.as_ref())))
    }

    /// Whether two handles share the same portfolio.
    pub(crate) fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.inner.models.iter().map(|m| &m.id)).finish()
    }
}

impl PartialEq for Catalog {
    fn eq(&self, other: &Self) -> bool {
        self.ptr_eq(other) || self.inner.models == other.inner.models
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn model(id: &str) -> ModelProfile {
        ModelProfile::new(id, "p").with_pricing(Pricing::per_mtok(1.0, 2.0))
    }

    #[test]
    fn rejects_empty_duplicate_and_bad_numbers() {
        assert_eq!(Catalog::new(vec![]).unwrap_err().kind(), ErrorKind::Config);
        let e = Catalog::new(vec![model("a"), model("a")]).unwrap_err();
        assert!(e.to_string().contains("`a` appears more than once"), "{e}");
        let e = Catalog::new(vec![model("a").with_pricing(Pricing::per_mtok(f64::NAN, 1.0))]).unwrap_err();
        assert!(e.to_string().contains("pricing.input_per_mtok"), "{e}");
        let e = Catalog::new(vec![model("a").with_pricing(Pricing::per_mtok(1.0, -1.0))]).unwrap_err();
        assert!(e.to_string().contains("pricing.output_per_mtok"), "{e}");
        let e = Catalog::new(vec![model("a").with_context(0, 0)]).unwrap_err();
        assert!(e.to_string().contains("context_window"), "{e}");
        let e = Catalog::new(vec![model("a").with_ability(Ability::new(f64::INFINITY))]).unwrap_err();
        assert!(e.to_string().contains("ability.overall"), "{e}");
        let e = Catalog::new(vec![model("a").with_latency(LatencyProfile::new(100.0, 0.0))]).unwrap_err();
        assert!(e.to_string().contains("output_tokens_per_sec"), "{e}");
    }

    #[test]
    fn a_known_model_without_an_ability_takes_the_table_s() {
        let set = Ability::new(0.5);
        let c = Catalog::new(vec![
            model("gpt-4o-mini"),
            model("cheap").with_api_name("openai/gpt-4o-mini-2024-07-18"),
            model("gpt-4o").with_ability(set.clone()),
            model("mine"),
        ])
        .unwrap();
        let table = Ability::known("gpt-4o-mini").unwrap();
        assert_eq!(c.models()[0].ability, table);
        assert_eq!(c.models()[0].ability.known_as(), Some("gpt-4o-mini"));
        assert!(!c.models()[0].ability.is_unset());
        assert_eq!(c.models()[1].ability, table, "the api name is matched first");
        assert_eq!(c.models()[2].ability, set, "an ability you set wins");
        assert_eq!(c.models()[2].ability.known_as(), None);
        assert!(c.models()[3].ability.is_unset());
        // Changing a table ability makes it yours.
        assert_eq!(table.with_intent(Intent::Chat, 1.0).known_as(), None);
    }

    #[test]
    fn a_table_ability_is_not_serialized_and_reads_back_the_same() {
        let c = Catalog::new(vec![model("gpt-4o"), model("mine").with_ability(Ability::new(1.0))]).unwrap();
        let json = serde_json::to_string(c.models()).unwrap();
        assert_eq!(json.matches("\"ability\"").count(), 1, "{json}");
        let back: Vec<ModelProfile> = serde_json::from_str(&json).unwrap();
        assert_eq!(Catalog::new(back).unwrap(), c);
    }

    #[test]
    fn lookup_by_id() {
        let c = Catalog::new(vec![model("a"), model("b")]).unwrap();
        assert_eq!(c.index_of("b"), Some(1));
        assert_eq!(c.get("a").map(|m| m.api_name()), Some("a"));
        assert!(c.get("zzz").is_none());
    }

    #[test]
    fn capabilities_round_trip() {
        let caps = Capabilities::TOOLS | Capabilities::JSON;
        let json = serde_json::to_string(&caps).unwrap();
        assert_eq!(json, r#"["tools","json"]"#);
        assert_eq!(serde_json::from_str::<Capabilities>(&json).unwrap(), caps);
        assert!(serde_json::from_str::<Capabilities>(r#"["telepathy"]"#).is_err());
        assert!(caps.contains(Capabilities::TOOLS));
        assert_eq!(caps.difference(Capabilities::TOOLS), Capabilities::JSON);
    }
}
