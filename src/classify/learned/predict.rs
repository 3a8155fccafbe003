//! Prediction: a [`LearnedModel`]'s `logit p(m)` for every model it knows, for one prompt.

use smallvec::SmallVec;

use super::Fallback;
use super::LearnedModel;
use super::features::{
    Extractor, FeatureConfig, NAMESPACES, Namespace, Sink, TermCounts, familiarity_key, scale_dense, tf_step,
};
use super::trust::{difficulty, share, shifted};
use crate::classify::TextStats;

/// Probabilities are kept within `[P_MIN, 1 − P_MIN]` before taking logits.
const P_MIN: f64 = 1e-3;

/// Term-count slots on the stack (8 KiB): enough for prompts up to about 1.9 KB
/// ([`Extractor::max_terms`]); longer ones count on the heap.
const TERM_SLOTS: usize = 2048;

/// One prompt's predictions.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// `logit p(m)` per model, in the order of [`ModelInfo::models`](super::ModelInfo::models).
    pub logits: SmallVec<[f64; 12]>,
    /// The most likely task and its probability, when the model has a task head.
    pub task: Option<(usize, f64)>,
    /// The share of the prompt's word pairs that some training prompt contained (1 for a prompt
    /// without any).
    pub familiarity: f64,
    /// The share of the prompt's first four word pairs that also opened some training prompt (1 for
    /// a prompt without any, and for a model that has no record of openings). Benchmarks and
    /// applications open their prompts with templates of their own, so a new kind of prompt shows
    /// here even when its words are familiar English.
    pub opening_familiarity: f64,
    /// Each model's expected cost of the prompt, in the order of
    /// [`ModelInfo::models`](super::ModelInfo::models): the mean cost per training row of the likely
    /// tasks, `Σₜ P(t | x) · c(t, m)`, blended with the model's mean over every training row as
    /// [`trust`](Self::trust) says. Empty when the training rows had no costs.
    pub costs: SmallVec<[f64; 12]>,
    /// How far the prediction trusts the task head and the per-prompt regressions, in `[0, 1]`: 1
    /// for a prompt at least as familiar as 95% of held-out training prompts, falling to 0 for one
    /// less familiar than all of them, on [`familiarity`](Self::familiarity); and no more than
    /// [`opening_familiarity`](Self::opening_familiarity) over that of 95% of held-out training
    /// prompts (the lower of the two). The rest of the weight goes to the fallback rates
    /// ([`Fallback`](super::Fallback)): a prompt unlike the training data is routed as the average prompt.
    pub trust: f64,
    /// The prompt's need for a dearer model: the least-squares slope, across the models, of its
    /// per-prompt terms (`b_m + w_m · x`, without the dense structural features' part when
    /// [`TrainConfig::need_reads_structure`](super::TrainConfig::need_reads_structure) is off) on
    /// the log of each model's mean training cost (0 without per-prompt regressions or costs).
    /// [`ModelInfo::need`](super::ModelInfo::need) gives its mean and standard deviation over the
    /// training rows; [`Fallback::Need`] reads it.
    pub need: f64,
}

impl Prediction {
    /// `p(m)` for the model at `index` of [`ModelInfo::models`](super::ModelInfo::models).
    pub fn probability(&self, index: usize) -> Option<f64> {
        self.logits.get(index).map(|&z| crate::classify::sigmoid(z))
    }
}

impl LearnedModel {
    /// Predicts every model's `logit p(m)` for one prompt.
    pub fn predict(&self, prompt: &str) -> Prediction {
        self.predict_with(prompt, &TextStats::of_text(prompt))
    }

    /// Like [`predict`](Self::predict), with the prompt's statistics already computed.
    pub fn predict_with(&self, prompt: &str, stats: &TextStats) -> Prediction {
        let (m, t, m4, stride) = (self.info.models.len(), self.info.tasks.len(), self.m4, self.stride);
        // The sums live on the stack unless the task head is very wide.
        let mut stack = [0.0f32; 256];
        let mut heap = Vec::new();
        let len = (NAMESPACES + 1) * stride;
        let acc: &mut [f32] = if len <= stack.len() {
            &mut stack[..len]
        } else {
            heap.resize(len, 0.0);
            &mut heap
        };
        // Character n-grams feed the residual regressions only.
        let features = FeatureConfig {
            char_ngram: if self.info.residual { self.info.features.char_ngram } else { 0 },
            ..self.info.features.clone()
        };
        let extractor = Extractor::new(&features);
        // Term counts for sublinear term frequency, on the stack for prompts up to a few KB.
        let mut slots = [0u32; TERM_SLOTS];
        let mut more = Vec::new();
        let terms = features.tf_idf.then(|| {
            let need = (extractor.max_terms(prompt) + 1).next_power_of_two();
            if need <= TERM_SLOTS {
                TermCounts::new(&mut slots[..need])
            } else {
                more.resize(need, 0);
                TermCounts::new(&mut more)
            }
        });
        let mut dot = Dot {
            stride,
            m4,
            buckets: self.info.features.buckets(),
            table: &self.table,
            seen: &self.seen,
            openings: &self.openings,
            idf: &self.idf,
            dense_scale: &self.info.dense_scale,
            terms,
            words: 0,
            known: 0,
            opening: 0,
            opening_known: 0,
            norm2: [0.0; NAMESPACES],
            acc,
        };
        extractor.extract(prompt, stats, &mut dot);
        let familiarity = share(dot.known, dot.words);
        // A model without a record of openings (a version-2 file) finds every opening familiar.
        let opening = if self.openings.is_empty() { 1.0 } else { share(dot.opening_known, dot.opening) };
        let a = self.trust(familiarity, opening);
        let scale = dot.norm2.map(|c| if c > 0.0 { 1.0 / c.sqrt() } else { 0.0 });
        // Lane `k` of the combined row: each namespace's sum scaled to unit length, plus the dense part.
        let lane = |k: usize| -> f32 {
            let mut s = dot.acc[NAMESPACES * stride + k];
            for (ns, sc) in scale.iter().enumerate() {
                s += sc * dot.acc[ns * stride + k];
            }
            s
        };

        // The task prior, and the expected costs.
        let mut prior: SmallVec<[f64; 12]> = SmallVec::from_elem(0.0, m);
        let has_costs = self.costs.iter().any(|&c| c > 0.0);
        let mut costs: SmallVec<[f64; 12]> = SmallVec::new();
        if has_costs {
            costs.extend(self.costs.iter().map(|&c| (1.0 - a) * f64::from(c)));
        }
        let mut task = None;
        if t == 0 {
            for (p, &r) in prior.iter_mut().zip(&self.rates) {
                *p = f64::from(r);
            }
            for (c, &tc) in costs.iter_mut().zip(&self.task_costs) {
                *c += a * f64::from(tc);
            }
        } else {
            let r = self.info.task_rank;
            let h: SmallVec<[f64; 16]> = (0..r).map(|k| f64::from(lane(m4 + k))).collect();
            let mut z: SmallVec<[f64; 64]> = (0..t)
                .map(|j| {
                    let u = h.iter().enumerate().map(|(k, h)| h * f64::from(self.task_u[k * t + j])).sum::<f64>();
                    f64::from(self.task_bias[j]) + u
                })
                .collect();
            softmax(&mut z);
            let (best, p) = z.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or((0, 0.0));
            task = Some((best, p));
            for (k, &pk) in z.iter().enumerate() {
                let row = &self.rates[k * m..(k + 1) * m];
                for (p, &r) in prior.iter_mut().zip(row) {
                    *p += pk * f64::from(r);
                }
                for (c, &tc) in costs.iter_mut().zip(&self.task_costs[k * m..(k + 1) * m]) {
                    *c += a * pk * f64::from(tc);
                }
            }
        }

        // With the difficulty fallback, an untrusted prompt's rates move with its difficulty.
        let shift = if a < 1.0 && self.info.training.fallback == Fallback::Difficulty {
            difficulty(stats) - self.info.difficulty_mean
        } else {
            0.0
        };
        // Each model's per-prompt term, once.
        let residuals: SmallVec<[f64; 12]> =
            (0..m).map(|j| if self.info.residual { f64::from(self.bias[j] + lane(j)) } else { 0.0 }).collect();
        // With the need fallback, an untrusted prompt's gaps to the dearest model scale with its need.
        // The need reads the structural features' part of the terms too, unless the model was
        // trained without it.
        let structure = |j: usize| {
            if self.info.training.need_reads_structure { 0.0 } else { f64::from(dot.acc[NAMESPACES * stride + j]) }
        };
        let need = if self.info.residual { self.need_of((0..m).map(|j| residuals[j] - structure(j))) } else { 0.0 };
        let stretch =
            if a < 1.0 && self.info.training.fallback == Fallback::Need { self.need_stretch(need) } else { 1.0 };
        let top = if stretch == 1.0 { 0.0 } else { self.fallback.iter().copied().fold(0.0f32, f32::max) };
        let logits = (0..m)
            .map(|j| {
                let f = f64::from(self.fallback[j]);
                let f = if shift == 0.0 { f } else { shifted(f, shift) };
                let f = if stretch == 1.0 {
                    f
                } else {
                    (f64::from(top) - stretch * f64::from(top - self.fallback[j])).clamp(P_MIN, 1.0 - P_MIN)
                };
                let prior = a * prior[j] + (1.0 - a) * f;
                logit(prior) + a * residuals[j]
            })
            .collect();
        Prediction { logits, task, familiarity, opening_familiarity: opening, costs, trust: a, need }
    }
}

/// Accumulates dot products per namespace while features stream in.
struct Dot<'w> {
    stride: usize,
    m4: usize,
    buckets: usize,
    table: &'w [f32],
    seen: &'w [u64],
    openings: &'w [u32],
    /// The IDF of each bucket, and the prompt's term counts, with TF-IDF weighting.
    idf: &'w [f32],
    terms: Option<TermCounts<'w>>,
    /// How the dense features are read ([`ModelInfo::dense_scale`](super::ModelInfo::dense_scale);
    /// empty: as they are computed).
    dense_scale: &'w [(f32, f32)],
    /// Word pairs, and those the training rows contained.
    words: u32,
    known: u32,
    /// Opening word pairs, and those that opened some training row.
    opening: u32,
    opening_known: u32,
    /// Each namespace's squared norm so far.
    norm2: [f32; NAMESPACES],
    /// One row of sums per namespace, then one for the dense features.
    acc: &'w mut [f32],
}

/// `acc += row`, four lanes at a time (both lengths are multiples of four).
#[inline]
fn add_row(acc: &mut [f32], row: &[f32]) {
    for (a, r) in acc.chunks_exact_mut(4).zip(row.chunks_exact(4)) {
        let s = [a[0] + r[0], a[1] + r[1], a[2] + r[2], a[3] + r[3]];
        a.copy_from_slice(&s);
    }
}

/// `acc += v · row`, four lanes at a time.
#[inline]
fn add_scaled_row(acc: &mut [f32], row: &[f32], v: f32) {
    for (a, r) in acc.chunks_exact_mut(4).zip(row.chunks_exact(4)) {
        let s = [a[0] + v * r[0], a[1] + v * r[1], a[2] + v * r[2], a[3] + v * r[3]];
        a.copy_from_slice(&s);
    }
}

impl Sink for Dot<'_> {
    #[inline]
    fn hashed(&mut self, ns: Namespace, index: u32, pair: Option<u64>) {
        let n = ns as usize;
        let v = match &mut self.terms {
            Some(terms) => {
                let (d, d2) = tf_step(terms.bump(ns, index));
                let idf = self.idf.get(index as usize).copied().unwrap_or(1.0);
                self.norm2[n] += d2 * idf * idf;
                d * idf
            }
            None => {
                self.norm2[n] += 1.0;
                1.0
            }
        };
        if let Some(key) = pair {
            let k = familiarity_key(key);
            self.words += 1;
            self.known += self.seen.get((k >> 6) as usize).map_or(0, |w| (w >> (k & 63) & 1) as u32);
        }
        let stride = self.stride;
        // Character n-grams feed the residual regressions only.
        let lanes = if ns == Namespace::LastChars { self.m4 } else { stride };
        let start = index as usize * stride;
        if let (Some(row), Some(acc)) =
            (self.table.get(start..start + lanes), self.acc.get_mut(n * stride..n * stride + lanes))
        {
            if self.terms.is_some() {
                add_scaled_row(acc, row, v);
            } else {
                add_row(acc, row);
            }
        }
    }

    fn opening(&mut self, key: u64) {
        self.opening += 1;
        self.opening_known += u32::from(self.openings.binary_search(&familiarity_key(key)).is_ok());
    }

    fn dense(&mut self, i: usize, value: f32) {
        let value = scale_dense(value, self.dense_scale.get(i));
        let stride = self.stride;
        let start = (self.buckets + i) * stride;
        if let Some(row) = self.table.get(start..start + stride) {
            for (a, w) in self.acc[NAMESPACES * stride..].iter_mut().zip(row) {
                *a += value * w;
            }
        }
    }
}

/// Turns scores into probabilities in place (the maximum is subtracted first).
pub fn softmax(z: &mut [f64]) {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in z.iter_mut() {
        *v /= sum;
    }
}

/// `ln(p / (1 − p))`, with `p` clamped away from 0 and 1.
pub fn logit(p: f64) -> f64 {
    let p = p.clamp(P_MIN, 1.0 - P_MIN);
    (p / (1.0 - p)).ln()
}

#[cfg(test)]
mod tests {
    use crate::classify::learned::model::planted;

    #[test]
    fn recovers_a_planted_signal() {
        let m = planted();
        assert_eq!(m.info().models, ["small", "large"]);
        assert_eq!(m.info().tasks.len(), 2);
        let p = |text: &str, j| m.predict(text).probability(j).unwrap();
        // The task prior: the small model answers greetings, not sums.
        assert!(p("greet the user number 3 warmly", 0) > 0.9, "{}", p("greet the user number 3 warmly", 0));
        assert!(p("add the numbers 4 and 17", 0) < 0.1);
        // The per-prompt signal inside the task: "carry" defeats the large model.
        assert!(p("add the numbers 4 and 17", 1) > 0.8, "{}", p("add the numbers 4 and 17", 1));
        assert!(p("add the numbers 4 and 17 with carry", 1) < 0.35, "{}", p("add the numbers 4 and 17 with carry", 1));
        let task = m.predict("add the numbers 1 and 2").task.unwrap();
        assert_eq!(m.info().tasks[task.0], "math");
    }
}
