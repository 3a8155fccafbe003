//! [`LearnedClassifier`]: a [`LearnedModel`] in a router.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::{LEARNED, LEARNED_COST, LEARNED_NEED, LEARNED_TRUST, LearnedModel};
use crate::catalog::{Catalog, ModelIndex, ModelProfile};
use crate::classify::{Classifier, ClassifyInput, Signals};
use crate::error::{Error, Result};
use crate::request::{ContentPart, Role};

/// A [`Classifier`] that contributes a [`LearnedModel`]'s `logit p(m)` to each model's decision.
///
/// It reads the text of the request's user messages (the last one's last block for the
/// last-block features), predicts once per request in [`classify`](Classifier::classify), and stores
/// the predictions under [`LEARNED`] in catalog order. Catalog models the learned model was not
/// trained on get no contribution.
#[derive(Clone)]
pub struct LearnedClassifier {
    model: Arc<LearnedModel>,
    index: HashMap<String, usize>,
}

impl fmt::Debug for LearnedClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LearnedClassifier").field("model", &self.model).finish()
    }
}

impl LearnedClassifier {
    /// A classifier over a trained model.
    pub fn new(model: impl Into<Arc<LearnedModel>>) -> Self {
        let model = model.into();
        let index = model.info.models.iter().enumerate().map(|(i, m)| (m.clone(), i)).collect();
        Self { model, index }
    }

    /// Loads a model file ([`LearnedModel::load`]).
    ///
    /// # Errors
    /// As [`LearnedModel::load`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        LearnedModel::load(path).map(Self::new)
    }

    /// The model.
    pub fn model(&self) -> &LearnedModel {
        &self.model
    }

    /// Checks that the learned model knows every model of `catalog`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the catalog models it was not trained on.
    pub fn check_catalog(&self, catalog: &Catalog) -> Result<()> {
        let unknown: Vec<&str> =
            catalog.models().iter().map(|m| m.id.as_str()).filter(|id| !self.index.contains_key(*id)).collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(Error::config(format!(
                "the learned model was not trained on {} of the catalog's models: {}",
                unknown.len(),
                unknown.join(", ")
            )))
        }
    }

    fn position(&self, catalog: &Catalog, i: usize, model: &ModelProfile) -> Option<usize> {
        let models = &self.model.info.models;
        if models.len() == catalog.len() && models[i] == model.id.as_str() {
            Some(i)
        } else {
            self.index.get(model.id.as_str()).copied()
        }
    }
}

impl Classifier for LearnedClassifier {
    fn classify(&self, input: &ClassifyInput<'_>, signals: &mut Signals) -> Result<()> {
        let request = input.request;
        let last_user = request.messages.iter().rev().find(|m| m.role == Role::User);
        let prediction = match last_user.map(|m| m.content.as_slice()) {
            Some([ContentPart::Text { text }]) if request.messages.len() == 1 => {
                self.model.predict_with(text, signals.text())
            }
            _ => {
                // Several messages or parts: the user text, in order, one part per paragraph.
                let mut text = String::new();
                for m in request.messages.iter().filter(|m| m.role == Role::User) {
                    for t in m.texts() {
                        if !text.is_empty() {
                            text.push_str("\n\n");
                        }
                        text.push_str(t);
                    }
                }
                self.model.predict_with(&text, signals.text())
            }
        };
        let catalog = input.catalog;
        signals.set_per_model(
            LEARNED,
            catalog
                .models()
                .iter()
                .enumerate()
                .map(|(i, m)| self.position(catalog, i, m).map_or(f64::NAN, |k| prediction.logits[k])),
        );
        signals.set(LEARNED_TRUST, prediction.trust);
        if let Some(z) = self.model.standardised_need(prediction.need) {
            signals.set(LEARNED_NEED, z);
        }
        if !prediction.costs.is_empty() {
            signals.set_per_model(
                LEARNED_COST,
                catalog
                    .models()
                    .iter()
                    .enumerate()
                    .map(|(i, m)| self.position(catalog, i, m).map_or(f64::NAN, |k| prediction.costs[k])),
            );
        }
        Ok(())
    }

    fn model_logit(&self, signals: &Signals, _: &ModelProfile, index: ModelIndex) -> f64 {
        // NaN (an unknown model) counts as no evidence.
        signals.per_model(LEARNED, index).unwrap_or(0.0)
    }

    fn name(&self) -> &str {
        "learned"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::learned::model::planted;

    #[test]
    fn learned_costs_follow_the_likely_task() {
        use crate::catalog::ModelProfile;
        use crate::cost::LearnedCostModel;
        use crate::{Catalog, Pricing, Request, Router, Utility};
        // Trained on greetings that cost the large model little and sums that cost it a lot (long
        // answers); `crates/eval/tests/core_fixtures.rs` checks that the trainer still writes it.
        let model = LearnedModel::from_bytes(include_bytes!("testdata/costs.swlm")).unwrap();
        assert!((model.mean_costs()[1] - 0.255).abs() < 1e-4, "{:?}", model.mean_costs());
        let greet = model.predict("greet the user number 3 warmly");
        let sum = model.predict("add the numbers 4 and 2");
        assert!(greet.costs[1] < 0.1 && sum.costs[1] > 0.4, "{:?} {:?}", greet.costs, sum.costs);
        let sum_need = model.standardised_need(sum.need);
        let catalog = Catalog::new([
            ModelProfile::new("large", "p").with_pricing(Pricing::per_mtok(10.0, 10.0)),
            ModelProfile::new("small", "p").with_pricing(Pricing::per_mtok(0.1, 0.1)),
        ])
        .unwrap();
        let router = Router::builder()
            .cost_model(LearnedCostModel::new(&catalog))
            .catalog(catalog)
            .classifier(LearnedClassifier::new(model), 1.0)
            .policy(Utility::new())
            .build()
            .unwrap();
        let d = router.route(&Request::new("add the numbers 4 and 2")).unwrap();
        let large = d.candidates().iter().find(|c| c.model == 0).unwrap();
        assert!((large.cost.usd - sum.costs[1]).abs() < 1e-9, "{} vs {}", large.cost.usd, sum.costs[1]);
        // The decision reports what the classifier read: its trust and the prompt's need.
        let read = d.learned().unwrap();
        assert_eq!(read.trust, sum.trust);
        assert_eq!(read.need, sum_need);
        let text = d.explain();
        assert!(text.contains(&format!("learned trust {:.2}", sum.trust)), "{text}");
        assert!(serde_json::to_value(&d).unwrap()["learned"]["trust"].is_number());
        // A prompt unlike the training rows is said to lean on the fallback.
        let odd = router.route(&Request::new("translate this sentence please: bonjour")).unwrap();
        assert!(odd.learned().unwrap().trust < 1.0);
        assert!(odd.explain().contains("partly on the fallback rates"), "{}", odd.explain());
    }

    #[test]
    fn the_classifier_maps_models_by_id_and_ignores_unknown_ones() {
        use crate::catalog::ModelProfile;
        use crate::{Catalog, Pricing, Request, Router, Utility};
        let learned = LearnedClassifier::new(planted());
        // Catalog order differs from the model's, and one model is unknown to it.
        let catalog = Catalog::new([
            ModelProfile::new("large", "p").with_pricing(Pricing::per_mtok(10.0, 10.0)),
            ModelProfile::new("other", "p").with_pricing(Pricing::per_mtok(1.0, 1.0)),
            ModelProfile::new("small", "p").with_pricing(Pricing::per_mtok(0.1, 0.1)),
        ])
        .unwrap();
        assert!(learned.check_catalog(&catalog).unwrap_err().to_string().contains("other"));
        let router = Router::builder()
            .catalog(catalog)
            .classifier(learned.clone(), 1.0)
            .policy(Utility::new().answer_value(0.1))
            .build()
            .unwrap();
        let greet = router.route(&Request::new("greet the user number 2 warmly")).unwrap();
        assert_eq!(greet.model().as_str(), "small");
        let sum = router.route(&Request::new("add the numbers 3 and 5")).unwrap();
        assert_eq!(sum.model().as_str(), "large");
        let p = |d: &crate::Decision, idx: usize| d.candidates().iter().find(|c| c.model == idx).unwrap().p;
        // No evidence for the unknown model (index 1): p = σ(0).
        assert!((p(&sum, 1) - 0.5).abs() < 1e-9);
        let direct = learned.model().predict("add the numbers 3 and 5");
        assert!((p(&sum, 0) - direct.probability(1).unwrap()).abs() < 1e-9);
    }
}
