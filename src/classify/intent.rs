//! The intent of a request: [`Intent`] and the heuristic [`IntentClassifier`].

use crate::catalog::{ModelIndex, ModelProfile};
use crate::classify::{Classifier, ClassifyInput, TextStats};
use crate::classify::{IntentScore, Signals};
use crate::error::Result;
pub use crate::types::Intent;

/// Assigns an [`Intent`] with a confidence from cue words and structure.
///
/// Each intent gets a score from the cue counts of [`TextStats`] (code fences and programming words for
/// code, operators and mathematical words for math, and so on, plus a small prior for chat); the
/// confidence is the softmax probability of the best one. Its per-model contribution is
/// `confidence · (θ_m,intent − θ_m)`: zero for models with no per-intent ability.
#[derive(Clone, Debug)]
pub struct IntentClassifier {
    temperature: f64,
}

impl Default for IntentClassifier {
    fn default() -> Self {
        Self { temperature: 1.0 }
    }
}

impl IntentClassifier {
    /// The scores of every intent, in [`Intent::ALL`] order.
    pub(crate) fn scores(s: &TextStats) -> [f64; 7] {
        let f = |x: u32, cap: u32| f64::from(x.min(cap));
        let translate =
            if s.translate_cues > 0 { 2.5 * f(s.translate_cues, 3) + 0.5 * f(s.language_cues, 2) } else { 0.0 };
        let long_doc = if s.bytes > 3000 { 1.0 + (f64::from(s.bytes) / 3000.0).ln() } else { 0.0 };
        [
            1.1 * f(s.code_cues, 8) + 2.0 * f(s.code_fences, 2) + 0.12 * f(s.code_symbols, 12),
            1.2 * f(s.math_cues, 6) + 0.3 * f(s.math_symbols, 10) + 0.03 * f(s.digits, 40),
            1.0 * f(s.reason_cues, 6) + 0.2 * f(s.step_cues, 4) + 0.1 * f(s.wh_words, 4),
            1.6 * f(s.creative_cues, 4),
            1.5 * f(s.extract_cues, 5) + long_doc,
            translate,
            0.9 * f(s.chat_cues, 3) + 0.6,
        ]
    }

    /// Sets the softmax temperature (higher is less confident). Must be finite and positive; others
    /// are replaced by 1.
    pub fn with_temperature(mut self, temperature: f64) -> Self {
        self.temperature = if temperature.is_finite() && temperature > 0.0 { temperature } else { 1.0 };
        self
    }

    /// The intent and its confidence for precomputed statistics.
    pub fn infer(&self, s: &TextStats) -> IntentScore {
        let scores = Self::scores(s);
        let mut best = 0;
        for i in 1..scores.len() {
            if scores[i] > scores[best] {
                best = i;
            }
        }
        let max = scores[best];
        let z: f64 = scores.iter().map(|x| ((x - max) / self.temperature).exp()).sum();
        IntentScore { intent: Intent::ALL[best], confidence: 1.0 / z }
    }
}

impl Classifier for IntentClassifier {
    fn classify(&self, _: &ClassifyInput<'_>, signals: &mut Signals) -> Result<()> {
        let score = self.infer(signals.text());
        signals.set_intent(score);
        Ok(())
    }

    fn model_logit(&self, signals: &Signals, model: &ModelProfile, _: ModelIndex) -> f64 {
        match signals.intent() {
            Some(s) => s.confidence * (model.ability_for(Some(s.intent)) - model.ability.overall),
            None => 0.0,
        }
    }

    fn name(&self) -> &str {
        "intent"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(text: &str) -> Intent {
        IntentClassifier::default().infer(&TextStats::of_text(text)).intent
    }

    #[test]
    fn recognises_common_intents() {
        assert_eq!(intent("Write a Python function that parses a CSV file and returns a list of dicts."), Intent::Code);
        assert_eq!(intent("Solve the equation 3x^2 + 2x - 5 = 0 and compute the sum of the roots."), Intent::Math);
        assert_eq!(intent("Translate this sentence into French: the cat sleeps on the sofa."), Intent::Translation);
        assert_eq!(intent("Write a haiku about autumn rain."), Intent::Creative);
        assert_eq!(intent("Summarize the following article in three bullet points."), Intent::Extraction);
        assert_eq!(intent("hey, how are you today?"), Intent::Chat);
        assert_eq!(
            intent("Compare the tradeoffs of the two strategies and justify which is optimal."),
            Intent::Reasoning
        );
    }

    #[test]
    fn confidence_is_a_probability() {
        for text in ["", "x", "write code", "poem poem poem story"] {
            let s = IntentClassifier::default().infer(&TextStats::of_text(text));
            assert!(s.confidence > 0.0 && s.confidence <= 1.0, "{text}: {s:?}");
        }
        assert_eq!(intent(""), Intent::Chat);
    }
}
