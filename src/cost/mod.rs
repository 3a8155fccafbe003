//! Cost: the [`CostModel`] trait, the list-price [`TokenPriceCostModel`] and the
//! [`LearnedCostModel`].

use std::fmt;
use std::sync::Arc;

use crate::catalog::{Capabilities, ModelProfile, Pricing};
use crate::classify::Intent;
use crate::classify::Signals;
use crate::completion::Usage;
use crate::request::Request;

mod learned;

pub use self::learned::LearnedCostModel;

/// The expected cost of sending a request to one model.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CostEstimate {
    /// Expected USD.
    pub usd: f64,
    /// Input tokens billed, cached ones included.
    pub input_tokens: u32,
    /// Input tokens expected from the prompt cache.
    pub cached_input_tokens: u32,
    /// Predicted output tokens, hidden reasoning included.
    pub output_tokens: u32,
}

impl CostEstimate {
    /// An estimate of `usd` with no token breakdown.
    pub fn usd(usd: f64) -> Self {
        Self { usd, ..Self::default() }
    }

    /// An estimate with its token breakdown.
    pub fn new(usd: f64, input_tokens: u32, cached_input_tokens: u32, output_tokens: u32) -> Self {
        Self { usd, input_tokens, cached_input_tokens, output_tokens }
    }
}

/// Predicts what a request will cost on a model, and computes what it did cost.
///
/// # Invariants
/// Pure, CPU-only and deterministic. `estimate` returns a finite, non-negative `usd`; the router
/// rejects a model whose estimate is not (and says so in the decision).
pub trait CostModel: Send + Sync {
    /// The expected cost of `request` on `model`, given the signals classifiers wrote.
    fn estimate(&self, request: &Request, signals: &Signals, model: &ModelProfile) -> CostEstimate;

    /// The actual cost of a call from the usage the provider reported, with the model's list prices.
    fn actual(&self, usage: &Usage, model: &ModelProfile) -> f64 {
        price(&model.pricing, usage.input_tokens, usage.cached_input_tokens, usage.output_tokens)
    }
}

impl<F> CostModel for F
where
    F: Fn(&Request, &Signals, &ModelProfile) -> CostEstimate + Send + Sync,
{
    fn estimate(&self, request: &Request, signals: &Signals, model: &ModelProfile) -> CostEstimate {
        self(request, signals, model)
    }
}

macro_rules! forward_cost_model {
    ($($ptr:ty),*) => {$(
        impl<T: CostModel + ?Sized> CostModel for $ptr {
            fn estimate(&self, request: &Request, signals: &Signals, model: &ModelProfile) -> CostEstimate {
                (**self).estimate(request, signals, model)
            }
            fn actual(&self, usage: &Usage, model: &ModelProfile) -> f64 {
                (**self).actual(usage, model)
            }
        }
    )*};
}
// `Box<T>` and `&T` cannot forward: they implement `Fn` when `T` does, which overlaps the closure impl.
forward_cost_model!(Arc<T>);

/// The USD price of a call: uncached input, cached input and output tokens at the model's list prices,
/// the long-context tier when the prompt is above its threshold, plus the per-request fee.
pub fn price(pricing: &Pricing, input_tokens: u32, cached_input_tokens: u32, output_tokens: u32) -> f64 {
    let cached = cached_input_tokens.min(input_tokens);
    let uncached = input_tokens - cached;
    let (in_mult, out_mult) = match &pricing.long_context {
        Some(lc) if input_tokens > lc.above_input_tokens => (lc.input_multiplier, lc.output_multiplier),
        _ => (1.0, 1.0),
    };
    let cached_price = pricing.cached_input_per_mtok.unwrap_or(pricing.input_per_mtok);
    let per_mtok = f64::from(uncached) * pricing.input_per_mtok * in_mult
        + f64::from(cached) * cached_price * in_mult
        + f64::from(output_tokens) * pricing.output_per_mtok * out_mult;
    per_mtok / 1e6 + pricing.request_fee
}

/// Input tokens billed at the cache price: the request's
/// [`cached_input_tokens`](crate::RouteHints::cached_input_tokens) hint, at most `input_tokens`, for
/// models with a cache price; 0 otherwise.
pub(crate) fn cached_input_tokens(request: &Request, model: &ModelProfile, input_tokens: u32) -> u32 {
    match (model.pricing.cached_input_per_mtok, request.hints.cached_input_tokens) {
        (Some(_), Some(c)) => c.min(input_tokens),
        _ => 0,
    }
}

/// Predicts output length per intent.
///
/// The prediction is the intent's typical length scaled by difficulty (`× e^(0.2·d)`, so harder
/// requests get longer answers), capped by the request's `max_tokens` and the model's output limit.
/// Translation and extraction scale with the input instead: a translation is about as long as its
/// source, a summary a fraction of it. Models with built-in reasoning are charged
/// [`reasoning_overhead`](TokenPriceCostModel::reasoning_overhead) times more output for their hidden
/// reasoning tokens (before the cap).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct OutputPrediction {
    /// Typical output tokens per intent, in [`Intent::ALL`] order.
    pub by_intent: [u32; 7],
    /// Output tokens when no intent is known.
    pub default: u32,
    /// For translation: output tokens per input token.
    pub translation_ratio: f64,
    /// For extraction and summaries: output tokens per input token (on top of the intent's typical length).
    pub extraction_ratio: f64,
}

impl Default for OutputPrediction {
    fn default() -> Self {
        Self {
            // code, math, reasoning, creative, extraction, translation, chat
            by_intent: [450, 350, 450, 400, 150, 0, 150],
            default: 250,
            translation_ratio: 1.15,
            extraction_ratio: 0.05,
        }
    }
}

impl OutputPrediction {
    /// Predicted output tokens before the caps, from the signals and the input token count.
    pub fn predict(&self, signals: &Signals, input_tokens: u32) -> f64 {
        let base = match signals.intent() {
            Some(s) => {
                let i = Intent::ALL.iter().position(|x| *x == s.intent).unwrap_or(0);
                let typical = f64::from(self.by_intent[i]);
                match s.intent {
                    Intent::Translation => typical + self.translation_ratio * f64::from(input_tokens),
                    Intent::Extraction => typical + self.extraction_ratio * f64::from(input_tokens),
                    _ => typical,
                }
            }
            None => f64::from(self.default),
        };
        let d = signals.difficulty().unwrap_or(0.0);
        base * growth(0.2 * d)
    }
}

/// `e^x`. The built-in difficulty lies in `[-3, 6]`, so `x` in `[-0.6, 1.2]`, where a degree-16
/// Taylor polynomial is within 1e-12 of the library's `exp` at a fraction of its cost; it runs once
/// per candidate model.
#[inline]
fn growth(x: f64) -> f64 {
    if x.is_nan() || x.abs() > 1.25 {
        return x.exp();
    }
    // 1/k! for k = 16 down to 0.
    const C: [f64; 17] = {
        let mut c = [1.0; 17];
        let mut k = 1;
        while k < 17 {
            c[16 - k] = c[17 - k] / k as f64;
            k += 1;
        }
        c
    };
    C.iter().fold(0.0, |acc, &c| acc * x + c)
}

/// Expected cost from list prices: input, cached input and predicted output tokens times the model's
/// prices, plus the long-context tier and per-request fees.
///
/// Input tokens come from [`Signals::input_tokens`] (the router's [`ContextLength`](crate::classify::ContextLength)
/// stage always sets them); cached input from the request's
/// [`cached_input_tokens`](crate::RouteHints::cached_input_tokens) hint, for models with a cache price.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenPriceCostModel {
    output: OutputPrediction,
    reasoning_overhead: f64,
}

impl Default for TokenPriceCostModel {
    fn default() -> Self {
        Self { output: OutputPrediction::default(), reasoning_overhead: 2.0 }
    }
}

impl TokenPriceCostModel {
    /// List prices with the default output prediction and a reasoning overhead of 2.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the output prediction.
    pub fn with_output_prediction(mut self, output: OutputPrediction) -> Self {
        self.output = output;
        self
    }

    /// Output multiplier for models with [`Capabilities::REASONING`] (hidden reasoning tokens are
    /// billed as output). Values below 1 or not finite are replaced by 1.
    pub fn reasoning_overhead(mut self, factor: f64) -> Self {
        self.reasoning_overhead = if factor.is_finite() && factor >= 1.0 { factor } else { 1.0 };
        self
    }

    /// Predicted output tokens for `request` on `model`.
    pub fn predict_output(&self, request: &Request, signals: &Signals, model: &ModelProfile, input_tokens: u32) -> u32 {
        let mut out = self.output.predict(signals, input_tokens);
        if model.capabilities.contains(Capabilities::REASONING) {
            out *= self.reasoning_overhead;
        }
        let cap = request.max_tokens.unwrap_or(u32::MAX).min(model.max_output_tokens);
        // Rounds half up, as `f64::round` does for positive numbers (a library call on baseline
        // x86-64): adding one half is exact below 2^52, and larger values saturate to `u32::MAX`
        // either way. A NaN prediction becomes 1.
        ((out.max(1.0) + 0.5) as u32).min(cap)
    }
}

impl CostModel for TokenPriceCostModel {
    fn estimate(&self, request: &Request, signals: &Signals, model: &ModelProfile) -> CostEstimate {
        let input = signals.input_tokens().map_or(0, |t| t.tokens);
        let cached = cached_input_tokens(request, model, input);
        let output = self.predict_output(request, signals, model, input);
        CostEstimate {
            usd: price(&model.pricing, input, cached, output),
            input_tokens: input,
            cached_input_tokens: cached,
            output_tokens: output,
        }
    }
}

impl fmt::Display for CostEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${:.6} ({} in", self.usd, self.input_tokens)?;
        if self.cached_input_tokens > 0 {
            write!(f, ", {} cached", self.cached_input_tokens)?;
        }
        write!(f, ", ~{} out)", self.output_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::LongContextPricing;
    use crate::classify::TextStats;
    use crate::classify::TokenEstimate;

    #[test]
    fn price_counts_cache_tier_and_fee() {
        let p = Pricing::per_mtok(2.0, 8.0).with_cached_input(0.5).with_request_fee(0.001);
        // 1M input of which 400k cached, 100k output
        let usd = price(&p, 1_000_000, 400_000, 100_000);
        assert!((usd - (0.6 * 2.0 + 0.4 * 0.5 + 0.1 * 8.0 + 0.001)).abs() < 1e-9, "{usd}");
        let lc = Pricing::per_mtok(1.0, 1.0).with_long_context(LongContextPricing::new(200_000, 2.0, 1.5));
        assert!((price(&lc, 100_000, 0, 0) - 0.1).abs() < 1e-12);
        assert!((price(&lc, 300_000, 0, 1_000_000) - (0.6 + 1.5)).abs() < 1e-9);
        // cached above input is clamped
        assert!((price(&p, 10, 50, 0) - (10.0 * 0.5 / 1e6 + 0.001)).abs() < 1e-12);
    }

    #[test]
    fn growth_is_exp() {
        // The polynomial's range, ends included; `exp` itself beyond it.
        for i in -1250..=1250 {
            let x = f64::from(i) / 1000.0;
            let (got, want) = (growth(x), x.exp());
            assert!((got - want).abs() <= 1e-12 * want, "{x}: {got} vs {want}");
        }
        for x in [-3.0, -1.2500001, 1.2500001, 6.0] {
            assert_eq!(growth(x), x.exp());
        }
        assert!(growth(f64::NAN).is_nan());
    }

    #[test]
    fn estimate_caps_output_and_uses_cache_hint() {
        let model = ModelProfile::new("m", "p")
            .with_pricing(Pricing::per_mtok(1.0, 4.0).with_cached_input(0.1))
            .with_context(100_000, 64);
        let req = Request::new("x").with_cached_input_tokens(500);
        let mut s = Signals::new(TextStats::default());
        s.set_input_tokens(TokenEstimate { tokens: 1_000, exact: false });
        let e = TokenPriceCostModel::new().estimate(&req, &s, &model);
        assert_eq!(e.output_tokens, 64);
        assert_eq!(e.cached_input_tokens, 500);
        let expected = (500.0 * 1.0 + 500.0 * 0.1 + 64.0 * 4.0) / 1e6;
        assert!((e.usd - expected).abs() < 1e-12);
        // actual() uses the same table
        let usage = Usage::new(1_000, 64).with_cached_input(500);
        assert!((TokenPriceCostModel::new().actual(&usage, &model) - expected).abs() < 1e-12);
    }
}
