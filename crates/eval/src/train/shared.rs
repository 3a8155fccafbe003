//! The shared-difficulty form of the per-prompt term
//! ([`Residuals::SharedDifficulty`](switchyard::classify::learned::Residuals::SharedDifficulty)): one
//! regression predicts how hard a prompt is for the models on average, and each model gets an
//! intercept and a slope on that difficulty.
//!
//! 1. A logistic regression `s(x) = c + v · x` is fitted to each row's mean correctness over the
//!    models, with the logit of the mean of the models' priors as offset, so that it learns what
//!    the prior does not already say.
//! 2. For every `l2` candidate, each row's score `s` comes from a regression fitted on the inner
//!    folds that do not hold it (cross-fitting); per model, `(α_m, β_m)` minimise the log loss of
//!    `σ(logit π(m) + α_m + β_m · s)`. A candidate is scored on each fold with `(α, β)` calibrated
//!    on the other folds' rows, so that no score is judged by a fit that saw it.
//! 3. The candidate with the lowest held-out loss is kept if it beats the prior alone (as with
//!    [`Residuals::PerModel`](switchyard::classify::learned::Residuals::PerModel)); `v` is refitted on every row, `(α, β)` are calibrated on every row's
//!    cross-fitted score, and the model stores `w_m = β_m · v`, `b_m = α_m + β_m · c`.

use switchyard::classify::learned::__training::{Rng, logit, sigmoid};

use super::{Head, Residual, Stage, Trainer, candidates, every, inner_splits, log_loss, mean};

/// Newton iterations of the two-parameter calibration (it converges in a handful).
const CALIBRATION_STEPS: usize = 50;

/// A small ridge on the calibration's two parameters, in rows: it keeps the Newton step defined
/// when every score is equal, and is negligible against thousands of rows.
const CALIBRATION_RIDGE: f64 = 1e-3;

/// The shared-difficulty term, fitted.
pub(super) struct Shared {
    /// The `[feature][model]` weights and biases (empty when the term is not kept).
    pub(super) head: Head,
    /// The chosen `l2`.
    pub(super) l2: f64,
    /// The held-out log loss per row and model, of the term or of the prior alone, whichever is lower.
    pub(super) loss: Option<f64>,
    /// Whether the term beat the prior alone.
    pub(super) keep: bool,
    /// Each training row's term per model (`[row][model]`), from its cross-fitted score: what a
    /// regression fitted on top of it adds to its offsets. Zeros when the term is not kept.
    pub(super) term: Vec<f64>,
}

impl Trainer<'_> {
    /// The per-prompt term in its shared-difficulty form.
    pub(super) fn fit_shared(&mut self, r: &Residual<'_>, rng: &mut Rng) -> Shared {
        let (m, dim) = (r.m, r.dim);
        let n = r.offsets.len() / m.max(1);
        let mean_prior: Vec<f64> = (0..n)
            .map(|i| logit(r.offsets[i * m..(i + 1) * m].iter().map(|&o| sigmoid(o)).sum::<f64>() / m as f64))
            .collect();
        let mean_score: Vec<f64> = (0..n).map(|i| mean(&r.scores[i * m..(i + 1) * m])).collect();
        let shared = Residual { matrix: r.matrix, offsets: &mean_prior, scores: &mean_score, m: 1, dim };

        // Cross-fitted scores of every candidate.
        let l2s = self.config.l2.clone();
        let order = candidates(&self.config);
        let splits = inner_splits(&self.config, n, rng);
        let mut scores = vec![vec![f64::NAN; n]; l2s.len()];
        let mut z = [0.0f64];
        for (valid, fit) in &splits {
            let mut start: Option<Vec<f64>> = None;
            for &(k, l2) in &order {
                let (head, x) = self.fit_residual(&shared, fit, l2, start.as_deref(), rng, Stage::Validation(k as u32));
                for &i in valid {
                    head.scores(r.matrix.row(i), every, &mut z);
                    scores[k][i] = z[0];
                }
                start = x;
            }
        }

        // Each candidate's held-out loss, calibrated on rows other than the ones it is scored on
        // (on the held-out share itself when there is only one).
        let held: Vec<usize> = splits.iter().flat_map(|(valid, _)| valid.iter().copied()).collect();
        let count = held.len().max(1) as f64;
        let losses: Vec<f64> = scores
            .iter()
            .map(|s| {
                let total: f64 = splits
                    .iter()
                    .enumerate()
                    .map(|(f, (valid, _))| {
                        let others: Vec<usize> = if splits.len() == 1 {
                            valid.clone()
                        } else {
                            let other_folds = splits.iter().enumerate().filter(|&(g, _)| g != f);
                            other_folds.flat_map(|(_, (v, _))| v.iter().copied()).collect()
                        };
                        calibrated_loss(r, s, &calibrate(r, s, &others), valid)
                    })
                    .sum();
                total / count
            })
            .collect();
        let without = r.losses(None, &held).iter().sum::<f64>() / count;
        let best = (0..l2s.len()).fold(0, |b, k| if losses[k] < losses[b] { k } else { b });
        let (l2, loss) = (l2s[best], losses[best]);
        if l2s.len() > 1 && loss >= without {
            self.report(Stage::Residual, 1, 1, without);
            return Shared { head: Head::new(0, m), l2, loss: Some(without), keep: false, term: vec![0.0; n * m] };
        }

        let calibration = calibrate(r, &scores[best], &held);
        let all: Vec<usize> = (0..n).collect();
        let (difficulty, _) = self.fit_residual(&shared, &all, l2, None, rng, Stage::Residual);
        let mut head = Head::new(dim, m);
        for (f, &v) in difficulty.w.iter().enumerate() {
            for (j, &[_, beta]) in calibration.iter().enumerate() {
                head.w[f * m + j] = (beta * f64::from(v)) as f32;
            }
        }
        for (j, &[alpha, beta]) in calibration.iter().enumerate() {
            head.b[j] = (alpha + beta * f64::from(difficulty.b[0])) as f32;
        }
        // Rows that no inner fold held out (one held-out share) take the final regression's score.
        let term = (0..n)
            .flat_map(|i| {
                let mut s = scores[best][i];
                if s.is_nan() {
                    difficulty.scores(r.matrix.row(i), every, &mut z);
                    s = z[0];
                }
                calibration.iter().map(move |&[alpha, beta]| alpha + beta * s)
            })
            .collect();
        Shared { head, l2, loss: Some(loss.min(without)), keep: true, term }
    }
}

/// Per model, the `[α, β]` that minimise the log loss of `σ(offset + α + β · s)` over `rows`, by
/// Newton's method (the loss is convex in them); `[0, 0]` if it fails to give finite values.
fn calibrate(r: &Residual<'_>, s: &[f64], rows: &[usize]) -> Vec<[f64; 2]> {
    let m = r.m;
    (0..m)
        .map(|j| {
            let mut t = [0.0f64; 2];
            for _ in 0..CALIBRATION_STEPS {
                let (mut g, mut h) =
                    ([CALIBRATION_RIDGE * t[0], CALIBRATION_RIDGE * t[1]], [CALIBRATION_RIDGE, 0.0, CALIBRATION_RIDGE]);
                for &i in rows {
                    let p = sigmoid(r.offsets[i * m + j] + t[0] + t[1] * s[i]);
                    let (d, w) = (p - r.scores[i * m + j], p * (1.0 - p));
                    g[0] += d;
                    g[1] += d * s[i];
                    h[0] += w;
                    h[1] += w * s[i];
                    h[2] += w * s[i] * s[i];
                }
                let det = h[0] * h[2] - h[1] * h[1];
                if det.is_nan() || det <= 0.0 {
                    break;
                }
                let step = [(h[2] * g[0] - h[1] * g[1]) / det, (h[0] * g[1] - h[1] * g[0]) / det];
                t[0] -= step[0];
                t[1] -= step[1];
                if step[0].abs().max(step[1].abs()) < 1e-10 {
                    break;
                }
            }
            if t.iter().all(|x| x.is_finite()) { t } else { [0.0, 0.0] }
        })
        .collect()
}

/// The summed log loss (each row's mean over the models) of `rows` with `calibration`.
fn calibrated_loss(r: &Residual<'_>, s: &[f64], calibration: &[[f64; 2]], rows: &[usize]) -> f64 {
    let m = r.m;
    rows.iter()
        .map(|&i| {
            let loss: f64 = calibration
                .iter()
                .enumerate()
                .map(|(j, &[alpha, beta])| {
                    log_loss(sigmoid(r.offsets[i * m + j] + alpha + beta * s[i]), r.scores[i * m + j])
                })
                .sum();
            loss / m.max(1) as f64
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::Matrix;

    #[test]
    fn calibration_recovers_an_intercept_and_a_slope() {
        // Two models whose success follows σ(α + β·s) on a grid of scores, with fractional scores
        // as the expected outcome: the fit must recover (α, β) for each.
        let truth = [[0.5, 2.0], [-1.0, 0.5]];
        let n = 200;
        let s: Vec<f64> = (0..n).map(|i| -2.0 + 4.0 * i as f64 / (n - 1) as f64).collect();
        let scores: Vec<f64> = (0..n)
            .flat_map(|i| truth.iter().map(move |&[a, b]| sigmoid(a + b * (-2.0 + 4.0 * i as f64 / 199.0))))
            .collect();
        let offsets = vec![0.0; n * 2];
        let matrix = Matrix { entries: Vec::new(), offsets: vec![0; n + 1] };
        let r = Residual { matrix: &matrix, offsets: &offsets, scores: &scores, m: 2, dim: 0 };
        let rows: Vec<usize> = (0..n).collect();
        let fitted = calibrate(&r, &s, &rows);
        for (got, want) in fitted.iter().zip(&truth) {
            assert!((got[0] - want[0]).abs() < 1e-3 && (got[1] - want[1]).abs() < 1e-3, "{got:?} against {want:?}");
        }
        // And the calibrated loss is below the uncalibrated one.
        assert!(calibrated_loss(&r, &s, &fitted, &rows) < calibrated_loss(&r, &s, &[[0.0, 0.0]; 2], &rows));
    }
}
