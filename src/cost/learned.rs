//! [`LearnedCostModel`]: each model's expected cost as a learned model predicts it.

use std::collections::HashMap;

use super::{CostEstimate, CostModel, TokenPriceCostModel};
use crate::catalog::{Catalog, ModelProfile};
use crate::classify::Signals;
use crate::classify::learned::LEARNED_COST;
use crate::request::Request;

/// A [`CostModel`] that expects each call to cost what the model's calls cost on the training
/// rows of the prompt's likely tasks ([`Prediction::costs`](crate::classify::learned::Prediction::costs), read from the [`LEARNED_COST`] signal
/// a [`LearnedClassifier`](crate::classify::LearnedClassifier) writes).
///
/// On routing data the cost of a call is mostly its output, which list prices and prompt length do
/// not predict: a model that answers a multiple-choice question with one letter costs a fraction
/// of one that explains itself. Learned costs carry that, per model and task. They are costs of
/// the *training* rows' prompts: use it when the traffic routed is like them (the evaluation
/// data, your own logs). A model without a learned cost (the classifier is not in the router, the
/// learned model was trained without costs, or does not know the model) is estimated by the
/// fallback [`TokenPriceCostModel`].
///
/// ```no_run
/// use switchyard::classify::LearnedClassifier;
/// use switchyard::cost::LearnedCostModel;
/// # fn run(catalog: switchyard::Catalog) -> switchyard::Result<()> {
/// let learned = LearnedClassifier::load("routerbench.swlm")?;
/// let router = switchyard::Router::builder()
///     .cost_model(LearnedCostModel::new(&catalog))
///     .catalog(catalog)
///     .classifier(learned, 1.0)
///     .build()?;
/// # let _ = router; Ok(()) }
/// # let _ = run;
/// ```
#[derive(Clone, Debug)]
pub struct LearnedCostModel {
    index: HashMap<String, usize>,
    fallback: TokenPriceCostModel,
}

impl LearnedCostModel {
    /// A cost model for the router over `catalog` (the signal is stored in catalog order).
    pub fn new(catalog: &Catalog) -> Self {
        let index = catalog.models().iter().enumerate().map(|(i, m)| (m.id.as_str().to_owned(), i)).collect();
        Self { index, fallback: TokenPriceCostModel::default() }
    }

    /// Estimates models without a learned cost with `fallback` (the default [`TokenPriceCostModel`]
    /// otherwise).
    pub fn with_fallback(mut self, fallback: TokenPriceCostModel) -> Self {
        self.fallback = fallback;
        self
    }
}

impl CostModel for LearnedCostModel {
    fn estimate(&self, request: &Request, signals: &Signals, model: &ModelProfile) -> CostEstimate {
        let base = self.fallback.estimate(request, signals, model);
        match self.index.get(model.id.as_str()).and_then(|&i| signals.per_model(LEARNED_COST, i)) {
            Some(usd) if usd.is_finite() && usd >= 0.0 => CostEstimate { usd, ..base },
            _ => base,
        }
    }
}
