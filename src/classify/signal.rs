//! [`Signals`]: what classifiers found out about a request.
//!
//! Request-level findings have typed slots (token count, difficulty, intent); anything else goes into
//! keyed custom values. Signals live on the stack during routing and allocate only when more than four
//! custom values are written.

use smallvec::SmallVec;

use crate::classify::TextStats;
use crate::types::Intent;

/// A token count with its provenance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TokenEstimate {
    /// Input tokens, message and image overheads included.
    pub tokens: u32,
    /// Whether the count came from an exact tokenizer rather than the heuristic.
    pub exact: bool,
}

/// The intent a classifier assigned, with its confidence in `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct IntentScore {
    /// The most likely intent.
    pub intent: Intent,
    /// Its probability among the intents.
    pub confidence: f64,
}

/// The key of a custom signal. Choose a name unlikely to collide (`"acme.toxicity"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignalKey(pub &'static str);

/// Everything classifiers have said about one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signals {
    text: TextStats,
    input_tokens: Option<TokenEstimate>,
    difficulty: Option<f64>,
    reasoning_depth: Option<f64>,
    intent: Option<IntentScore>,
    custom: SmallVec<[(SignalKey, f64); 4]>,
    per_model: SmallVec<[(SignalKey, SmallVec<[f64; 12]>); 1]>,
}

impl Signals {
    /// Signals that start from precomputed text statistics.
    pub(crate) fn new(text: TextStats) -> Self {
        Self { text, ..Self::default() }
    }

    /// Statistics of the request's text, computed once by the router before any classifier runs.
    pub fn text(&self) -> &TextStats {
        &self.text
    }

    /// Input tokens, when a classifier counted them.
    pub fn input_tokens(&self) -> Option<TokenEstimate> {
        self.input_tokens
    }

    /// Records the input token count.
    pub fn set_input_tokens(&mut self, estimate: TokenEstimate) {
        self.input_tokens = Some(estimate);
    }

    /// The request's difficulty on the decision model's logit scale (0 is a request a model of ability
    /// 0 answers half the time).
    pub fn difficulty(&self) -> Option<f64> {
        self.difficulty
    }

    /// Records the difficulty.
    pub fn set_difficulty(&mut self, difficulty: f64) {
        self.difficulty = Some(difficulty);
    }

    /// How much multi-step reasoning the request asks for, in `[0, 1]`.
    pub fn reasoning_depth(&self) -> Option<f64> {
        self.reasoning_depth
    }

    /// Records the reasoning depth.
    pub fn set_reasoning_depth(&mut self, depth: f64) {
        self.reasoning_depth = Some(depth);
    }

    /// The request's intent.
    pub fn intent(&self) -> Option<IntentScore> {
        self.intent
    }

    /// Records the intent.
    pub fn set_intent(&mut self, intent: IntentScore) {
        self.intent = Some(intent);
    }

    /// A custom value.
    pub fn get(&self, key: SignalKey) -> Option<f64> {
        self.custom.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// Sets a custom value, replacing an earlier one with the same key.
    pub fn set(&mut self, key: SignalKey, value: f64) {
        match self.custom.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.custom.push((key, value)),
        }
    }

    /// Sets one value per catalog model (index `i` is the model at
    /// [`ModelIndex`](crate::catalog::ModelIndex) `i`), replacing earlier values with the same key.
    /// A classifier that predicts something for every model at once (the
    /// [`LearnedClassifier`](crate::classify::LearnedClassifier)) writes its predictions here in
    /// [`classify`](crate::Classifier::classify) and reads them back in
    /// [`model_logit`](crate::Classifier::model_logit). Up to 12 models are stored without allocating.
    pub fn set_per_model(&mut self, key: SignalKey, values: impl IntoIterator<Item = f64>) {
        let values: SmallVec<[f64; 12]> = values.into_iter().collect();
        match self.per_model.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = values,
            None => self.per_model.push((key, values)),
        }
    }

    /// The value [`set_per_model`](Self::set_per_model) stored for the model at `index`.
    pub fn per_model(&self, key: SignalKey, index: usize) -> Option<f64> {
        self.per_model.iter().find(|(k, _)| *k == key).and_then(|(_, v)| v.get(index).copied())
    }
}

/// The logistic function, `1 / (1 + e^-x)`: a decision logit's probability.
pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
