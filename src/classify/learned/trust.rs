//! How far a [`LearnedModel`] trusts its task head and residuals for a prompt (from how familiar
//! the prompt is), and the rates it falls back to for the rest.

use smallvec::SmallVec;

use super::{Fallback, LearnedModel};
use crate::classify::{DifficultyClassifier, TextStats};

/// Prompts at least as familiar as this percentile of held-out training prompts get the model's full
/// trust; less familiar ones less (see [`Prediction::trust`](super::Prediction::trust)).
pub const FAMILIARITY_PERCENTILES: usize = 5;

/// The success rates an unfamiliar prompt falls back to (see [`Fallback`]).
pub fn fallback_rates(overall: &[f32], costs: &[f32], kind: Fallback) -> Vec<f32> {
    let positive = costs.iter().copied().filter(|&c| c > 0.0);
    let (lo, hi) = positive.fold((f32::INFINITY, 0.0f32), |(lo, hi), c| (lo.min(c), hi.max(c)));
    if kind == Fallback::Overall || costs.len() != overall.len() || hi <= lo {
        return overall.to_vec();
    }
    let (r_lo, r_hi) = overall.iter().fold((1.0f32, 0.0f32), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    // A model that cost nothing sits with the cheapest that cost something.
    let span = (f64::from(hi) / f64::from(lo)).ln();
    costs
        .iter()
        .map(|&c| {
            let x = (f64::from(c.max(lo)) / f64::from(lo)).ln() / span;
            (f64::from(r_lo) + f64::from(r_hi - r_lo) * x) as f32
        })
        .collect()
}

/// A prompt's difficulty score, on the logit scale: the built-in [`DifficultyClassifier`]'s,
/// without offset.
pub(crate) fn difficulty(stats: &TextStats) -> f64 {
    DifficultyClassifier::default().infer(stats).0
}

/// A fallback rate `f` moved by a prompt `shift` harder than the training rows' mean difficulty
/// ([`Fallback::Difficulty`]): `σ(logit f − shift)`.
pub(crate) fn shifted(f: f64, shift: f64) -> f64 {
    crate::classify::sigmoid(super::logit(f) - shift)
}

/// The pieces of [`Fallback::Need`]: per model, its weight in the need for a dearer model (the
/// least-squares slope of a per-prompt term on the log of the model's mean cost: `(ℓ_m − ℓ̄) /
/// Σ (ℓ − ℓ̄)²`), and the bound on the standardised need. With rates `f` in price order, a router
/// weighing `V·f − c` moves from one model to the next dearer one at thresholds `t_k = Δc / Δf`;
/// scaling `V` by at most `e^B` either way keeps a range of `V` where every prompt goes to model
/// `k` as long as `e^{2B}` is below `t_k / t_{k−1}`. The bound is a quarter of the log of the
/// narrowest such ratio (half of it in log terms stays pure), 4 with two models, and 0 when two
/// models share a cost or a rate.
pub(crate) fn need_parts(costs: &[f32], fallback: &[f32]) -> (Vec<f64>, f64) {
    let m = costs.len();
    if m < 2 || fallback.len() != m || costs.iter().any(|&c| c <= 0.0) {
        return (vec![0.0; m], 0.0);
    }
    let l: Vec<f64> = costs.iter().map(|&c| f64::from(c).ln()).collect();
    let mean = l.iter().sum::<f64>() / m as f64;
    let ss: f64 = l.iter().map(|x| (x - mean).powi(2)).sum();
    if ss <= 0.0 {
        return (vec![0.0; m], 0.0);
    }
    let weights = l.iter().map(|x| (x - mean) / ss).collect();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| costs[a].total_cmp(&costs[b]));
    let mut thresholds = Vec::with_capacity(m - 1);
    for w in order.windows(2) {
        let (dc, df) = (f64::from(costs[w[1]] - costs[w[0]]), f64::from(fallback[w[1]] - fallback[w[0]]));
        if dc <= 0.0 || df <= 0.0 {
            return (weights, 0.0);
        }
        thresholds.push(dc / df);
    }
    let narrowest = thresholds.windows(2).map(|t| t[1] / t[0]).fold(f64::INFINITY, f64::min);
    let bound = if narrowest.is_infinite() { 4.0 } else { (narrowest.max(1.0).ln() / 4.0).min(4.0) };
    (weights, bound)
}

/// How far an opening of familiarity `c` lets the model be trusted: fully at or above `typical` (the
/// 5th percentile of the held-out training rows' opening familiarity), in proportion below it (a
/// prompt that opens with three known pairs of four, where training rows open with four known ones,
/// keeps three quarters), and always fully when `typical` is 0 (training prompts without a shared
/// opening, such as MMLU's questions).
pub(crate) fn opening_trust(c: f64, typical: f64) -> f64 {
    if typical > 0.0 { (c / typical).clamp(0.0, 1.0) } else { 1.0 }
}

/// A prompt's trust: the lower of its word-pair `trust` against the percentiles `q` and its
/// `opening_trust` against `typical` (see [`Prediction::trust`](super::Prediction::trust)). Training
/// and prediction both read it from here.
pub fn prompt_trust(familiarity: f64, q: &[f64], opening: f64, typical: f64) -> f64 {
    trust(familiarity, q).min(opening_trust(opening, typical))
}

/// `part / whole`, or 1 when there is nothing to count.
pub(crate) fn share(part: u32, whole: u32) -> f64 {
    if whole == 0 { 1.0 } else { f64::from(part) / f64::from(whole) }
}

/// How far to trust the task head and the residuals for a prompt of familiarity `c`: the percentile
/// of `c` among held-out training prompts, over [`FAMILIARITY_PERCENTILES`], capped at 1.
pub(crate) fn trust(c: f64, q: &[f64]) -> f64 {
    let Some(&top) = q.last() else { return 1.0 };
    if c >= top {
        return 1.0;
    }
    if c.is_nan() || q.first().is_none_or(|&lo| c < lo) {
        return 0.0;
    }
    // `q[k] <= c < q[k + 1]`: interpolate the percentile (none when a percentile is NaN).
    let Some(k) = q.windows(2).position(|w| c < w[1]) else { return 1.0 };
    let (lo, hi) = (q[k], q[k + 1]);
    let frac = if hi > lo { (c - lo) / (hi - lo) } else { 0.0 };
    ((k as f64 + frac) / FAMILIARITY_PERCENTILES as f64).clamp(0.0, 1.0)
}

impl LearnedModel {
    /// A prompt's need for a dearer model from its per-prompt terms (in model order).
    pub(crate) fn need_of(&self, terms: impl Iterator<Item = f64>) -> f64 {
        terms.zip(&self.need_weights).map(|(r, w)| r * w).sum()
    }

    /// A prompt's [`need`](super::Prediction::need) in standard deviations from the training rows'
    /// mean ([`ModelInfo::need`](super::ModelInfo::need)); `None` for a model without those
    /// statistics (no per-prompt regressions or costs, or a file written before them).
    pub fn standardised_need(&self, need: f64) -> Option<f64> {
        let (mean, sd) = self.info.need;
        (sd > 0.0).then(|| (need - mean) / sd)
    }

    /// How much [`Fallback::Need`] stretches the gaps for a prompt of this `need`: `e^z`, `z` the
    /// standardised need within the bound.
    pub(crate) fn need_stretch(&self, need: f64) -> f64 {
        match self.standardised_need(need) {
            Some(z) if self.need_bound > 0.0 => z.clamp(-self.need_bound, self.need_bound).exp(),
            _ => 1.0,
        }
    }

    /// How far to trust a prompt with these familiarities ([`prompt_trust`] with this model's
    /// percentiles), and never less than [`TrainConfig::min_trust`](super::TrainConfig::min_trust).
    pub(crate) fn trust(&self, familiarity: f64, opening: f64) -> f64 {
        let q: SmallVec<[f64; 8]> = self.familiarity.iter().map(|&x| f64::from(x)).collect();
        let typical = self.opening.last().map_or(0.0, |&x| f64::from(x));
        prompt_trust(familiarity, &q, opening, typical).max(self.info.training.min_trust)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::learned::logit;
    use crate::classify::learned::model::planted;

    /// The planted model with trust gated by familiarity alone (the default floor of 0, which its
    /// file was trained with).
    fn gated() -> LearnedModel {
        let mut m = planted();
        m.info.training.min_trust = 0.0;
        m
    }

    /// The gated planted model with costs, so that its price order and need apply: the small
    /// model at 0.2, the large at 5.
    fn priced() -> LearnedModel {
        let mut m = gated();
        m.costs = vec![0.2, 5.0];
        m.fallback = fallback_rates(&m.overall, &m.costs, Fallback::PriceOrder);
        (m.need_weights, m.need_bound) = need_parts(&m.costs, &m.fallback);
        m
    }

    #[test]
    fn an_unfamiliar_opening_withdraws_trust() {
        let m = gated();
        let p = m.predict("greet the user number 3 warmly");
        assert_eq!((p.opening_familiarity, p.trust), (1.0, 1.0));
        // The same words after an opening no training prompt had: routed on the fallback rates.
        let p = m.predict("translate this sentence please: greet the user number 3 warmly");
        assert_eq!(p.opening_familiarity, 0.0);
        assert!(p.familiarity > 0.5, "{}", p.familiarity);
        assert_eq!(p.trust, 0.0);
        for (j, &z) in p.logits.iter().enumerate() {
            assert!((z - logit(f64::from(m.fallback_rates()[j]))).abs() < 1e-9, "{z}");
        }
        // With the difficulty fallback, the same prompt's rates move by its difficulty.
        let mut d = m.clone();
        d.info.training.fallback = Fallback::Difficulty;
        let text = "translate this sentence please: greet the user number 3 warmly";
        let shift = difficulty(&TextStats::of_text(text)) - m.info().difficulty_mean;
        for (j, &z) in d.predict(text).logits.iter().enumerate() {
            assert!((z - logit(shifted(f64::from(m.fallback_rates()[j]), shift))).abs() < 1e-9, "{z}");
        }
        // Three known pairs of four, where every training row opened with four: three quarters of
        // the trust at most.
        let p = m.predict("now greet the user number 3 warmly");
        assert_eq!(p.opening_familiarity, 0.75);
        assert!(p.trust <= 0.75, "{}", p.trust);
        assert_eq!(opening_trust(0.75, 1.0), 0.75);
        assert_eq!(opening_trust(0.0, 0.5), 0.0);
        assert_eq!(opening_trust(0.75, 0.5), 1.0);
        // Training prompts without a shared opening: the opening never lowers trust.
        assert_eq!(opening_trust(0.0, 0.0), 1.0);
        // Not a number: no trust for the prompt, and a NaN percentile does not read past the end.
        assert_eq!(prompt_trust(f64::NAN, &[0.0, 0.5, 1.0], 1.0, 0.0), 0.0);
        assert_eq!(prompt_trust(0.7, &[0.0, 0.5, f64::NAN], 1.0, 0.0), 1.0);
    }

    #[test]
    fn a_trust_floor_keeps_unfamiliar_prompts_on_the_trained_model() {
        let text = "translate this sentence please: greet the user number 3 warmly";
        // A file written before the field existed loads without a floor.
        let old = LearnedModel::from_bytes(include_bytes!("testdata/planted_v3.swlm")).unwrap();
        assert_eq!(old.info().training.min_trust, 0.0);
        // The default floor is 0: familiarity alone sets the trust.
        assert_eq!(planted().info().training.min_trust, 0.0);
        let m = gated();
        assert_eq!(m.predict(text).trust, 0.0);
        // Half the trust at least: halfway between the fallback and the trained model.
        let mut half = m.clone();
        half.info.training.min_trust = 0.5;
        assert_eq!(half.predict(text).trust, 0.5);
        // A familiar prompt keeps its own, higher trust.
        assert_eq!(half.predict("greet the user number 3 warmly").trust, 1.0);
        // No gating: the unfamiliar prompt is routed as the task head and residuals say, with the
        // logits of a fully trusted prompt, whatever the fallback.
        let mut never = m.clone();
        never.info.training.min_trust = 1.0;
        let p = never.predict(text);
        assert_eq!(p.trust, 1.0);
        never.info.training.fallback = Fallback::Difficulty;
        assert_eq!(never.predict(text).logits, p.logits);
        assert!(p.logits.iter().zip(&m.predict(text).logits).any(|(a, b)| (a - b).abs() > 1e-3), "{p:?}");
        // Out of range: a configuration error.
        let cfg = super::super::TrainConfig { min_trust: 1.5, ..Default::default() };
        assert!(cfg.validate().is_err());
        assert!(super::super::TrainConfig { min_trust: 1.0, ..Default::default() }.validate().is_ok());
    }

    fn hard_text() -> String {
        "translate this sentence please: prove step by step why the theorem must hold, and explain each \
         lemma you use, then derive the exact bound"
            .to_owned()
    }

    #[test]
    fn the_difficulty_fallback_is_blended_in_by_trust() {
        let mut m = gated();
        m.info.training.fallback = Fallback::Difficulty;
        let p = |text: &str| m.predict(text);
        // Untrusted prompts: a harder one gets a lower rate for every model than an easier one.
        let easy = p("translate this sentence please: hi there");
        let hard = p(&hard_text());
        assert_eq!((easy.trust, hard.trust), (0.0, 0.0));
        for j in 0..2 {
            assert!(hard.logits[j] < easy.logits[j], "{j}: {hard:?} vs {easy:?}");
        }
        // The price-ordered fallback cannot tell them apart.
        let mut price = m.clone();
        price.info.training.fallback = Fallback::PriceOrder;
        let (easy_price, hard_price) =
            (price.predict("translate this sentence please: hi there"), price.predict(&hard_text()));
        assert_eq!(easy_price.logits, hard_price.logits);
        // A trusted prompt is not moved by its difficulty: its logits are the task prior's and the
        // residuals', whatever the fallback.
        let trusted = p("greet the user number 3 warmly");
        assert_eq!(trusted.trust, 1.0);
        assert_eq!(price.predict("greet the user number 3 warmly"), trusted);
    }

    #[test]
    fn the_need_bound_keeps_every_model_of_the_price_order_chosen_alone_somewhere() {
        // Two models: weights are the slope on log cost, and the bound is the cap.
        let (w, b) = need_parts(&[1.0, 100.0], &[0.6, 0.9]);
        let l = 100f64.ln();
        assert!((w[0] + 1.0 / l).abs() < 1e-9 && (w[1] - 1.0 / l).abs() < 1e-9, "{w:?}");
        assert_eq!(b, 4.0);
        // A need equal for every model's term has no slope.
        assert!((w[0] * 0.7 + w[1] * 0.7).abs() < 1e-12);
        // Shared costs or rates leave no window to stretch in; missing costs no weights.
        assert_eq!(need_parts(&[1.0, 1.0, 5.0], &[0.5, 0.6, 0.9]).1, 0.0);
        assert_eq!(need_parts(&[1.0, 2.0, 5.0], &[0.5, 0.5, 0.9]).1, 0.0);
        assert_eq!(need_parts(&[0.0, 2.0], &[0.5, 0.9]), (vec![0.0; 2], 0.0));
        // Four models in price order (listed out of it): at the middle of each model's window of
        // answer values, every stretch within the bound still picks that model for every prompt.
        let costs = [8.0f32, 0.5, 2.0, 30.0];
        let rates = [0.85f32, 0.55, 0.72, 0.93];
        let (_, b) = need_parts(&costs, &rates);
        assert!(b > 0.0 && b < 4.0, "{b}");
        let pick = |v: f64| {
            (0..4)
                .max_by(|&i, &j| {
                    let u = |k: usize| v * f64::from(rates[k]) - f64::from(costs[k]);
                    u(i).total_cmp(&u(j))
                })
                .unwrap()
        };
        let order = [1usize, 2, 0, 3];
        let t: Vec<f64> = order
            .windows(2)
            .map(|w| f64::from(costs[w[1]] - costs[w[0]]) / f64::from(rates[w[1]] - rates[w[0]]))
            .collect();
        for k in 1..order.len() - 1 {
            let middle = (t[k - 1] * t[k]).sqrt();
            for z in [-b, -b / 2.0, 0.0, b / 2.0, b] {
                assert_eq!(pick(middle * z.exp()), order[k], "model {} at z = {z}", order[k]);
            }
        }
    }

    #[test]
    fn the_need_fallback_stretches_an_untrusted_prompts_gaps_and_keeps_the_price_order() {
        let mut m = priced();
        m.info.training.fallback = Fallback::Need;
        let texts = [
            "translate this sentence please: add the numbers 4 and 17 with carry",
            "translate this sentence please: greet the user number 3 warmly",
        ];
        let needs: Vec<f64> = texts.iter().map(|t| m.predict(t).need).collect();
        assert!(needs[0] != needs[1], "{needs:?}");
        m.info.need = ((needs[0] + needs[1]) / 2.0, (needs[0] - needs[1]).abs() / 2.0);
        let gap = |text: &str| {
            let p = m.predict(text);
            assert_eq!(p.trust, 0.0);
            let (small, large) = (p.probability(0).unwrap(), p.probability(1).unwrap());
            assert!(large >= small, "{p:?}");
            large - small
        };
        // The needier prompt gets the wider gap; the price order holds for both.
        let (hi, lo) = if needs[0] > needs[1] { (texts[0], texts[1]) } else { (texts[1], texts[0]) };
        assert!(gap(hi) > gap(lo), "{} vs {}", gap(hi), gap(lo));
        // Without the fallback's statistics (a file written before them), the price order alone.
        let mut plain = m.clone();
        plain.info.need = (0.0, 0.0);
        let price = (0..2).map(|j| logit(f64::from(plain.fallback_rates()[j]))).collect::<Vec<_>>();
        assert_eq!(plain.predict(hi).logits.to_vec(), price);
        // A trusted prompt is not moved.
        let mut priced = m.clone();
        priced.info.training.fallback = Fallback::PriceOrder;
        assert_eq!(m.predict("greet the user number 3 warmly"), priced.predict("greet the user number 3 warmly"));
    }

    #[test]
    fn the_need_leaves_out_the_structural_features_unless_the_model_reads_them() {
        use crate::classify::learned::features::{Extractor, Namespace, Sink, scale_dense};
        let mut m = priced();
        assert!(m.info.training.need_reads_structure, "the planted file was trained with the default");
        // A deviation that leaves both needs of the untrusted text below the bound.
        m.info.need = (0.0, 1.0);
        let reads = m.clone();
        m.info.training.need_reads_structure = false;
        // The difference is the slope of the structural features' part of the terms alone.
        let dim = m.info.features.dim();
        let buckets = m.info.features.buckets();
        let texts = ["add the numbers 4 and 17 with carry", "greet the user number 3 warmly\n\n- one\n- two"];
        assert_eq!(texts.map(|t| m.predict(t).trust), [1.0, 0.0]);
        /// The dense features of a text.
        struct Dense(Vec<(usize, f32)>);
        impl Sink for Dense {
            fn hashed(&mut self, _: Namespace, _: u32, _: Option<u64>) {}
            fn dense(&mut self, i: usize, value: f32) {
                self.0.push((i, value));
            }
        }
        for text in texts {
            let mut dense = Dense(Vec::new());
            Extractor::new(&m.info.features).extract(text, &TextStats::of_text(text), &mut dense);
            let values = dense.0;
            assert!(values.iter().any(|&(_, v)| v != 0.0));
            let part: Vec<f64> = (0..2)
                .map(|j| {
                    values
                        .iter()
                        .map(|&(i, v)| {
                            let read = scale_dense(v, m.info.dense_scale.get(i));
                            f64::from(read) * f64::from(m.residual_row(buckets + i)[j])
                        })
                        .sum()
                })
                .collect();
            assert!(buckets + values.len() == dim);
            let expected = reads.predict(text).need - m.need_of(part.into_iter());
            assert!((m.predict(text).need - expected).abs() < 1e-4, "{text}");
            // The trusted part of a prediction reads every feature either way; the fallback's
            // stretch reads the need.
            let (p, q) = (m.predict(text), reads.predict(text));
            if p.trust == 1.0 {
                assert_eq!(p.logits, q.logits, "{text}");
            } else {
                // An untrusted prompt's gaps stretch by the need it has.
                assert!(p.logits != q.logits, "{text}: {} {}", p.need, q.need);
            }
        }
        // A configuration without the field (a file written before it) reads the structure.
        let old: crate::classify::learned::TrainConfig = serde_json::from_str("{}").unwrap();
        assert!(old.need_reads_structure);
        // The opt-out is written to the header and read back.
        let back: crate::classify::learned::TrainConfig =
            serde_json::from_str(&serde_json::to_string(&m.info.training).unwrap()).unwrap();
        assert!(!back.need_reads_structure);
    }

    #[test]
    fn the_fallback_follows_price_between_the_worst_and_best_overall_rates() {
        let overall = [0.9, 0.5, 0.7];
        let costs = [10.0, 0.1, 1.0];
        let f = fallback_rates(&overall, &costs, Fallback::PriceOrder);
        assert!((f[0] - 0.9).abs() < 1e-6 && (f[1] - 0.5).abs() < 1e-6, "{f:?}");
        // Halfway in log cost, halfway between the worst and the best rate.
        assert!((f[2] - 0.7).abs() < 1e-6, "{f:?}");
        // The cheapest model is never ranked above a dearer one, whatever the rates say.
        let g = fallback_rates(&[0.2, 0.9, 0.5], &costs, Fallback::PriceOrder);
        assert!(g[1] < g[2] && g[2] < g[0], "{g:?}");
        assert_eq!(fallback_rates(&overall, &costs, Fallback::Overall), overall);
        assert_eq!(fallback_rates(&overall, &[0.0; 3], Fallback::PriceOrder), overall);
        assert_eq!(fallback_rates(&overall, &[2.0; 3], Fallback::PriceOrder), overall);
    }
}
