//! [`DifficultyClassifier`]: difficulty and reasoning depth from cheap text features.

use crate::catalog::{ModelIndex, ModelProfile};
use crate::classify::Signals;
use crate::classify::{Classifier, ClassifyInput, HeuristicCounter, TextStats};
use crate::error::Result;

/// Estimates how hard a request is, on the logit scale of the catalog's abilities.
///
/// The difficulty `d` is a sum of capped feature terms: length (logarithmic in tokens), questions,
/// reasoning cues ("prove", "why", "step by step"), constraints ("must", "at least", "exactly"),
/// multi-part structure (list items, sequencing words), code and math, minus a discount for short small
/// talk, plus a part fitted offline on the shared routing data's training rows (prompt length,
/// numbers, arithmetic, long words, wh-words and question marks, weighed by how well they pick out,
/// within a benchmark, the prompts a weak model fails and a strong one answers; see
/// `docs/evaluation.md`, "Signals"); it is clamped to `[-3, 6]`. A one-line greeting scores about
/// −3, a short factual question about −1.5, a multi-part proof or a constrained coding task 2 to
/// 3. The contribution to
/// `logit p(m)` is `θ_m − d`: a model answers requests below its ability well and those above it
/// badly, as in a one-parameter item-response model.
///
/// It also records a reasoning depth in `[0, 1]` ([`Signals::reasoning_depth`]).
#[derive(Clone, Debug)]
pub struct DifficultyClassifier {
    offset: f64,
    counter: HeuristicCounter,
}

impl Default for DifficultyClassifier {
    fn default() -> Self {
        Self { offset: 0.0, counter: HeuristicCounter::default() }
    }
}

impl DifficultyClassifier {
    /// Shifts every difficulty by `offset` (calibrates the scale to a catalog's abilities). A
    /// non-finite offset is replaced by 0.
    pub fn with_offset(mut self, offset: f64) -> Self {
        self.offset = if offset.is_finite() { offset } else { 0.0 };
        self
    }

    /// Difficulty and reasoning depth for precomputed statistics.
    pub fn infer(&self, s: &TextStats) -> (f64, f64) {
        let f = |x: u32, cap: u32| f64::from(x.min(cap));
        let tokens = self.counter.estimate_text(s);
        let (base, x) = parts(s, tokens);
        let fitted: f64 = FITTED.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() - FITTED_CENTRE;
        let d = (base + fitted + self.offset).clamp(-3.0, 6.0);
        let (code, math) = (is_code(s), is_math(s));
        let depth_logit = -2.0
            + 0.8 * f(s.reason_cues, 4)
            + 0.3 * f(s.step_cues, 4)
            + 0.25 * f(s.list_items, 6)
            + if math { 0.8 } else { 0.0 }
            + if code { 0.4 } else { 0.0 };
        (d, 1.0 / (1.0 + (-depth_logit).exp()))
    }
}

fn is_code(s: &TextStats) -> bool {
    s.code_fences > 0 || s.code_cues >= 2
}

fn is_math(s: &TextStats) -> bool {
    s.math_cues >= 1 || s.math_symbols >= 3 || s.arithmetic >= 1
}

/// The number of features of the fitted part of the difficulty.
pub const FEATURES: usize = 6;

/// The names of the features, in order (for the program that fits them).
pub const FEATURE_NAMES: [&str; FEATURES] =
    ["ln(1 + min(tokens, 2048)/30)", "ln(1 + numbers)", "arithmetic", "long-word share", "wh-words", "questions"];

/// The weights of the fitted features: a logistic regression, on the shared routing data's
/// training rows, of "the weak model scored below the strong one" on these features, with one
/// intercept per task and the hand-set part of the difficulty as a term of its own
/// (`switchyard_eval::signals::fit_difficulty`; `docs/evaluation.md`, "Signals"). Regenerate with
/// `cargo run --release -p switchyard-eval --example signals -- --fit`.
pub const FITTED: [f64; FEATURES] = [0.4888, 0.2963, -0.0964, 0.0054, 0.0508, -0.1898];
/// `Σ FITTED · mean feature` on those rows: subtracted, so that the fitted part averages zero there.
pub const FITTED_CENTRE: f64 = 0.7826;

/// The hand-set part of the difficulty, and the features of the fitted part.
pub(crate) fn parts(s: &TextStats, tokens: f64) -> (f64, [f64; FEATURES]) {
    let f = |x: u32, cap: u32| f64::from(x.min(cap));
    let (code, math) = (is_code(s), is_math(s));
    let multi_part = f(s.list_items, 8) + 0.5 * f(s.step_cues, 6) + f(s.questions.saturating_sub(1), 4);
    let mut d = -1.0
        + 0.35 * (1.0 + tokens / 30.0).ln()
        + 0.55 * f(s.reason_cues, 4)
        + 0.2 * f(s.constraint_cues, 6)
        + 0.2 * multi_part
        + if code { 0.6 } else { 0.0 }
        + if math { 0.7 } else { 0.0 };
    if tokens < 40.0 && s.chat_cues > 0 && s.reason_cues == 0 && !code && !math {
        d -= 0.6 * f(s.chat_cues, 2);
    }
    let x = [
        (1.0 + tokens.min(2048.0) / 30.0).ln(),
        (1.0 + f(s.numbers, 30)).ln(),
        f(s.arithmetic, 4),
        f(s.long_words, 10_000) / f(s.words.max(1), u32::MAX),
        f(s.wh_words, 4),
        f(s.questions, 4),
    ];
    (d, x)
}

impl Classifier for DifficultyClassifier {
    fn classify(&self, _: &ClassifyInput<'_>, signals: &mut Signals) -> Result<()> {
        let (d, depth) = self.infer(signals.text());
        signals.set_difficulty(d);
        signals.set_reasoning_depth(depth);
        Ok(())
    }

    fn model_logit(&self, signals: &Signals, model: &ModelProfile, _: ModelIndex) -> f64 {
        model.ability.overall - signals.difficulty().unwrap_or(0.0)
    }

    fn name(&self) -> &str {
        "difficulty"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> f64 {
        DifficultyClassifier::default().infer(&TextStats::of_text(text)).0
    }

    #[test]
    fn orders_easy_below_hard() {
        let greeting = d("hi there!");
        let fact = d("What is the capital of Australia?");
        let proof = d("Prove rigorously that there are infinitely many primes of the form 4k+3. \
                       Explain each step, justify every lemma you use, and then derive a bound on their density.");
        let code = d("Implement a lock-free queue in Rust. It must be MPMC, must not allocate on push, \
                      and should handle at least 10M ops/s.\n1. Design\n2. Code\n3. Unit tests");
        assert!(greeting < fact, "{greeting} < {fact}");
        assert!(fact < proof, "{fact} < {proof}");
        assert!(fact < code, "{fact} < {code}");
        assert!(proof > 2.0, "{proof}");
    }

    #[test]
    fn bounded_for_any_input() {
        let huge = "why prove must ".repeat(10_000);
        let (dv, depth) = DifficultyClassifier::default().infer(&TextStats::of_text(&huge));
        assert!((-3.0..=6.0).contains(&dv));
        assert!((0.0..=1.0).contains(&depth));
    }
}
