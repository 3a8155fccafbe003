//! A [`Catalog`] for a data set's models: prices from `models.json`, abilities fitted on the
//! training rows.
//!
//! [`FittedCatalog::fit`] gives each model:
//!
//! 1. **Pricing**: as the data set charges. Where it charges each model a fixed price per call
//!    ([`CostKind::PerCall`], RouteLLM's convention), that price as a request fee and nothing per
//!    token, so that the router expects what the data set will charge whatever the prompt's length.
//!    Otherwise (RouterBench: each row's tokens at list price) its price per 1M tokens from
//!    [`Prices`], for input and output alike (the data sets give one price per model).
//!    [`Utility`](switchyard::Utility) weighs these costs in USD against its answer value, so their
//!    scale matters, not only their ratios.
//! 2. **Overall ability** `θ_m = logit(ā_m)`, with `ā_m = (Σ s + ½) / (n + 1)` its smoothed mean
//!    score on the training rows.
//! 3. **Ability per intent**: the same on the training rows that the built-in
//!    [`IntentClassifier`] assigns to that intent, for intents with at least
//!    [`MIN_INTENT_ROWS`] rows. The prompt is all the router sees, so the classifier's intent (not
//!    the data set's task label) is what abilities are keyed by.
//! 4. **Difficulty offset**: minus the mean [`DifficultyClassifier`] difficulty of the training
//!    rows, so that `θ_m − d` averages to `θ_m` there ([`FittedCatalog::builder`] applies it).
//!
//! Fit on training rows only and report on others: the abilities are the training accuracies.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::data::{CostKind, Dataset};
use switchyard::Result;
use switchyard::RouterBuilder;
use switchyard::catalog::{Ability, Catalog, ModelProfile, Pricing};
use switchyard::classify::{DifficultyClassifier, Intent, IntentClassifier, TextStats};
use switchyard::config::{ClassifierConfig, PolicyConfig, RouterConfig};

/// Fewer training rows than this for an intent and a model keeps its overall ability there.
pub const MIN_INTENT_ROWS: usize = 30;

/// The largest prices file [`Prices::load`] reads, in bytes once decompressed (16 MiB; the
/// repository's `models.json` is under 1 KiB).
pub const MAX_PRICES_BYTES: u64 = 16 << 20;

/// Prices in USD per 1M tokens, by model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prices(BTreeMap<String, f64>);

impl Prices {
    /// Prices from `(model, USD per 1M tokens)` pairs.
    pub fn new<S: Into<String>>(prices: impl IntoIterator<Item = (S, f64)>) -> Self {
        Self(prices.into_iter().map(|(m, p)| (m.into(), p)).collect())
    }

    /// Reads one section of a `models.json` (the repository's `data/models.json.gz`):
    /// `"routerbench"` (its `input_usd_per_1M_tokens_inferred`) or `"routellm"`
    /// (`prices_usd_per_1M_tokens_blended`).
    /// Every object in the section whose values are all numbers is read as prices; other fields
    /// (notes, sources) are skipped.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if the text is not JSON, has no such section, or
    /// the section has no prices, or a price is negative.
    pub fn from_models_json(json: &str, section: &str) -> Result<Self> {
        let v: Value =
            serde_json::from_str(json).map_err(|e| crate::config_error(format!("models.json: {e}")).with_source(e))?;
        let sec = v
            .get(section)
            .and_then(Value::as_object)
            .ok_or_else(|| crate::config_error(format!("models.json: no section `{section}`")))?;
        let mut prices = BTreeMap::new();
        for (field, obj) in sec {
            let Some(obj) = obj.as_object() else { continue };
            if obj.is_empty() || !obj.values().all(Value::is_number) {
                continue;
            }
            for (model, price) in obj {
                let p = price.as_f64().unwrap_or(f64::NAN);
                if !(p.is_finite() && p >= 0.0) {
                    return Err(crate::config_error(format!(
                        "models.json: `{section}.{field}.{model}`: expected a price >= 0, got {price}"
                    )));
                }
                prices.insert(model.clone(), p);
            }
        }
        if prices.is_empty() {
            return Err(crate::config_error(format!("models.json: section `{section}` has no prices")));
        }
        Ok(Self(prices))
    }

    /// [`from_models_json`](Self::from_models_json) on a file, plain or gzip-compressed
    /// (`models.json.gz`; told by its first bytes, not its name).
    ///
    /// # Errors
    /// As `from_models_json`, and if the file cannot be read, is corrupt gzip, is not UTF-8 or holds
    /// more than [`MAX_PRICES_BYTES`] (decompressed).
    pub fn load(path: impl AsRef<Path>, section: &str) -> Result<Self> {
        let text = crate::file::read_to_string(path.as_ref(), MAX_PRICES_BYTES)?;
        Self::from_models_json(&text, section)
    }

    /// A model's price per 1M tokens.
    pub fn get(&self, model: &str) -> Option<f64> {
        self.0.get(model).copied()
    }
}

/// A catalog fitted to a data set's training rows, with the difficulty offset that goes with it.
#[derive(Clone, Debug)]
pub struct FittedCatalog {
    catalog: Catalog,
    difficulty_offset: f64,
    intent_rows: BTreeMap<Intent, usize>,
}

/// Per model, its price per call when the data set charges a fixed price per call
/// ([`CostKind::PerCall`]): the mean cost of its training rows. Empty otherwise.
fn per_call_prices(train: &Dataset) -> Vec<f64> {
    match (train.cost_kind(), train.costs()) {
        (Some(CostKind::PerCall), Some(costs)) if !train.is_empty() => {
            let models = train.models().len();
            (0..models).map(|m| costs.iter().skip(m).step_by(models).sum::<f64>() / train.len() as f64).collect()
        }
        _ => Vec::new(),
    }
}

fn logit_mean(sum: f64, n: usize) -> f64 {
    let p = (sum + 0.5) / (n as f64 + 1.0);
    (p / (1.0 - p)).ln()
}

impl FittedCatalog {
    /// Fits abilities on `train` (every row of it: pass the training split only) and prices each of
    /// its models from `prices`, as the [module docs](self) describe. Every model is served by
    /// provider `"eval"`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if `train` is empty or a model has no price.
    pub fn fit(train: &Dataset, prices: &Prices) -> Result<Self> {
        if train.is_empty() {
            return Err(crate::config_error(format!("cannot fit a catalog on `{}`: no rows", train.name())));
        }
        let models = train.models().len();
        let difficulty = DifficultyClassifier::default();
        let intents = IntentClassifier::default();
        let mut sums = vec![0.0; models];
        let mut by_intent: BTreeMap<Intent, (usize, Vec<f64>)> = BTreeMap::new();
        let mut d_sum = 0.0;
        for (row, scores) in train.rows().iter().zip(train.scores().chunks_exact(models)) {
            let stats = TextStats::of_text(row.prompt());
            d_sum += difficulty.infer(&stats).0;
            let intent = intents.infer(&stats).intent;
            let (n, s) = by_intent.entry(intent).or_insert_with(|| (0, vec![0.0; models]));
            *n += 1;
            for ((total, per_intent), score) in sums.iter_mut().zip(s.iter_mut()).zip(scores) {
                *total += score;
                *per_intent += score;
            }
        }
        let n = train.len();
        let per_call = per_call_prices(train);
        let mut profiles = Vec::with_capacity(models);
        for (m, id) in train.models().iter().enumerate() {
            let price = prices
                .get(id.as_str())
                .ok_or_else(|| crate::config_error(format!("no price for model `{id}` of `{}`", train.name())))?;
            let mut ability = Ability::new(logit_mean(sums[m], n));
            for (intent, (rows, s)) in &by_intent {
                if *rows >= MIN_INTENT_ROWS {
                    ability = ability.with_intent(*intent, logit_mean(s[m], *rows));
                }
            }
            let pricing = match per_call.get(m) {
                Some(&fee) => Pricing::per_mtok(0.0, 0.0).with_request_fee(fee),
                None => Pricing::per_mtok(price, price),
            };
            profiles.push(ModelProfile::new(id.clone(), "eval").with_pricing(pricing).with_ability(ability));
        }
        Ok(Self {
            catalog: Catalog::new(profiles)?,
            difficulty_offset: -d_sum / n as f64,
            intent_rows: by_intent.into_iter().map(|(i, (n, _))| (i, n)).collect(),
        })
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The offset that centres the difficulty classifier on the training rows.
    pub fn difficulty_offset(&self) -> f64 {
        self.difficulty_offset
    }

    /// How many training rows the intent classifier gave each intent.
    pub fn intent_rows(&self) -> &BTreeMap<Intent, usize> {
        &self.intent_rows
    }

    /// The router of [`builder`](Self::builder) as a [`RouterConfig`] with `policy`: the catalog's
    /// models, and the difficulty (with the offset) and intent classifiers at weight 1. Set a
    /// calibrated knob with [`Calibration::apply`](super::calibrate::Calibration::apply) and write it
    /// with [`RouterConfig::to_toml_string`]; providers are added when the config is loaded.
    pub fn config(&self, policy: PolicyConfig) -> RouterConfig {
        RouterConfig::new(self.catalog.models().to_vec())
            .with_classifiers(vec![
                ClassifierConfig::Difficulty { weight: 1.0, offset: self.difficulty_offset },
                ClassifierConfig::Intent { weight: 1.0, temperature: None },
            ])
            .with_policy(policy)
    }

    /// A route-only router builder with this catalog and the built-in classifiers, weight 1 each:
    /// [`DifficultyClassifier`] with [`difficulty_offset`](Self::difficulty_offset), and
    /// [`IntentClassifier`]. Set the policy and build.
    pub fn builder(&self) -> RouterBuilder {
        RouterBuilder::new()
            .catalog(self.catalog.clone())
            .classifier(DifficultyClassifier::default().with_offset(self.difficulty_offset), 1.0)
            .classifier(IntentClassifier::default(), 1.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests may unwrap")]

    use super::*;
    use crate::data::Row;

    fn rows(costs: Option<[f64; 2]>) -> Dataset {
        let mut b = Dataset::builder(["cheap", "dear"]);
        for i in 0..20 {
            let prompt = "word ".repeat(1 + i * 10);
            b.push(Row::new(prompt), &[f64::from(i % 2 == 0), 1.0], costs.as_ref().map(|c| c.as_slice())).unwrap();
        }
        b.build().unwrap()
    }

    #[test]
    fn a_data_set_that_charges_per_call_is_priced_per_call() {
        let prices = Prices::new([("cheap", 0.24), ("dear", 24.7)]);
        let per_call = rows(None).with_cost_per_call([("cheap", 0.001), ("dear", 0.1)]).unwrap();
        let fitted = FittedCatalog::fit(&per_call, &prices).unwrap();
        for (m, fee) in fitted.catalog().models().iter().zip([0.001, 0.1]) {
            assert!((m.pricing.request_fee - fee).abs() < 1e-15, "{m:?}");
            assert_eq!((m.pricing.input_per_mtok, m.pricing.output_per_mtok), (0.0, 0.0));
        }
        // Costs per prompt: list prices per token.
        let actual = FittedCatalog::fit(&rows(Some([0.001, 0.1])), &prices).unwrap();
        let dear = &actual.catalog().models()[1].pricing;
        assert_eq!((dear.input_per_mtok, dear.output_per_mtok, dear.request_fee), (24.7, 24.7, 0.0));
    }
}
