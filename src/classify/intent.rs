//! The intent of a request: [`Intent`] and the heuristic [`IntentClassifier`].

use crate::catalog::{ModelIndex, ModelProfile};
use crate::classify::{Classifier, ClassifyInput, TextStats};
use crate::classify::{IntentScore, Signals};
use crate::error::Result;
pub use crate::types::Intent;

/// Assigns an [`Intent`] with a confidence from cue words and structure.
///
/// Each intent gets a score from the cue counts of [`TextStats`] (code fences and programming words for
/// code; mathematical words, arithmetic between numbers, and numbers in a question for math, halved
/// when the request also names code; and so on, plus a small prior for chat); the confidence is the
/// softmax probability of the best one. Its per-model contribution is
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
        // Numbers in a question ("how far does it go if ... 60 miles ... 3 hours?") and arithmetic
        // between numbers ("17 * 23", "15%") are math; a request that names code asks for code, even
        // when the code computes something.
        let quantities = if s.questions > 0 { 0.1 * f(s.numbers, 6) } else { 0.0 };
        let math = 1.2 * f(s.math_cues, 6)
            + 0.3 * f(s.math_symbols, 10)
            + 0.03 * f(s.digits, 40)
            + 1.5 * f(s.arithmetic, 2)
            + quantities;
        let names_code = s.code_cues >= 2 || s.code_fences > 0;
        [
            1.1 * f(s.code_cues, 8) + 2.0 * f(s.code_fences, 2) + 0.12 * f(s.code_symbols, 12),
            if names_code { 0.5 * math } else { math },
            1.0 * f(s.reason_cues, 6) + 0.2 * f(s.step_cues, 4) + 0.1 * f(s.wh_words, 4),
            // "Write a" is creative unless what is written is code.
            1.6 * f(s.creative_cues.saturating_sub(u32::from(s.code_cues > 0)), 4),
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
    fn arithmetic_and_word_problems_are_math() {
        for text in [
            "What is 17 * 23?",
            "What is 15% of 240?",
            "Compute 1234 + 5678.",
            "If a train travels 60 miles per hour for 3 hours, how far does it go?",
            "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. \
             How many clips did Natalia sell altogether?",
            "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for \
             her friends every day with four. She sells the remainder at the farmers' market daily for $2 per \
             fresh duck egg. How much in dollars does she make every day at the farmers' market?",
            "A train leaves at 9:40 and travels 210 km at 84 km/h, then waits 12 minutes and travels another 95 km \
             at 76 km/h. At what time does it arrive? Show your work step by step.",
        ] {
            assert_eq!(intent(text), Intent::Math, "{text}");
        }
    }

    #[test]
    fn numbers_alone_do_not_make_math() {
        // Code that computes stays code.
        assert_eq!(intent("Write a Python function that returns x * 2 + 1 for each of 10 integers."), Intent::Code);
        assert_eq!(intent("Write a python function to identify non-prime numbers."), Intent::Code);
        assert_eq!(intent("Write a function to find the shared elements from the given two lists."), Intent::Code);
        assert_eq!(
            intent("Why does this fail?\n```python\nfor i in range(10):\n    total = i * 2 + 1\n```"),
            Intent::Code
        );
        // Small talk that mentions a sum stays small talk.
        assert_eq!(intent("Hi! How are you? My kid asked me what 2 + 2 is, haha."), Intent::Chat);
        // Extraction of figures is extraction.
        assert_eq!(
            intent(
                "Extract the invoice number, date and total from this email: \"invoice INV-2291 dated \
                    3 March 2025 for a total of EUR 1,240.00.\""
            ),
            Intent::Extraction
        );
        assert_eq!(intent("List every item on this receipt as JSON."), Intent::Extraction);
        // A multiple-choice instruction is not code.
        assert_eq!(
            intent(
                "Sarah was a much better surgeon than Maria so _ always got the harder cases.\nA) Maria\nB) Sarah\n\
                    Print only a single choice from \"A\" or \"B\" without explanation. Answer:"
            ),
            Intent::Chat
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
