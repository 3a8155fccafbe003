//! The statistics behind experiment reports: running moments, confidence intervals and the mixture
//! sequential probability ratio test. Every function here is pure and cheap; see
//! `docs/experiments.md` for the formulas and references.

use serde::{Deserialize, Serialize};

/// Running count, mean and sum of squared deviations (Welford, 1962): constant memory, numerically
/// stable.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Welford {
    pub(crate) n: u64,
    pub(crate) mean: f64,
    m2: f64,
}

impl Welford {
    pub(crate) fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// The moments of `n` values whose sum is `sum` and sum of squares `squares` (sums that
    /// replicas add up); `n` is rounded, and a negative spread from rounding is 0.
    pub(crate) fn from_sums(n: f64, sum: f64, squares: f64) -> Self {
        if !(n.is_finite() && n >= 0.5 && sum.is_finite() && squares.is_finite()) {
            return Self::default();
        }
        let mean = sum / n;
        Self { n: n.round() as u64, mean, m2: (squares - sum * mean).max(0.0) }
    }

    /// The unbiased sample variance (0 below two samples).
    pub(crate) fn variance(&self) -> f64 {
        if self.n < 2 { 0.0 } else { (self.m2 / (self.n - 1) as f64).max(0.0) }
    }

    /// The mean with a two-sided Student-t interval at `confidence`.
    pub(crate) fn estimate(&self, confidence: f64) -> Option<Estimate> {
        if self.n == 0 {
            return None;
        }
        let (low, high) = if self.n < 2 {
            (f64::NEG_INFINITY, f64::INFINITY)
        } else {
            let t = student_t_quantile(0.5 + confidence / 2.0, (self.n - 1) as f64);
            let half = t * (self.variance() / self.n as f64).sqrt();
            (self.mean - half, self.mean + half)
        };
        Some(Estimate { n: self.n, mean: self.mean, low, high })
    }
}

/// A mean (or rate) with a confidence interval.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// How many observations.
    pub n: u64,
    /// The mean, or the rate.
    pub mean: f64,
    /// The interval's lower end (`-inf` with fewer than two observations for a mean).
    pub low: f64,
    /// The interval's upper end.
    pub high: f64,
}

/// The Wilson score interval for a proportion (Wilson, 1927): `successes` out of `n` at
/// `confidence`. Stays inside `[0, 1]` and behaves at 0 and `n` successes, unlike the Wald interval.
pub(crate) fn wilson(successes: u64, n: u64, confidence: f64) -> Option<Estimate> {
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let p = successes as f64 / nf;
    let z = normal_quantile(0.5 + confidence / 2.0);
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let centre = (p + z2 / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / denom;
    Some(Estimate { n, mean: p, low: (centre - half).max(0.0), high: (centre + half).min(1.0) })
}

/// The standard normal quantile `Φ⁻¹(p)` for `p` in `(0, 1)` (Acklam's rational approximation,
/// relative error below 1.2e-9). Returns ±infinity at 0 and 1 and NaN outside.
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    const LOW: f64 = 0.024_25;
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

/// The Student-t quantile with `nu` degrees of freedom: exact for 1 and 2, the Cornish–Fisher
/// expansion (Abramowitz and Stegun 26.7.5) above, within 0.13% at 3 degrees of freedom and 4e-6 at
/// 10.
pub(crate) fn student_t_quantile(p: f64, nu: f64) -> f64 {
    if nu <= 1.0 {
        return (std::f64::consts::PI * (p - 0.5)).tan();
    }
    if nu <= 2.0 {
        return (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
    }
    let x = normal_quantile(p);
    let (x2, x3) = (x * x, x * x * x);
    let (x5, x7, x9) = (x3 * x2, x3 * x2 * x2, x3 * x3 * x3);
    let g1 = (x3 + x) / 4.0;
    let g2 = (5.0 * x5 + 16.0 * x3 + 3.0 * x) / 96.0;
    let g3 = (3.0 * x7 + 19.0 * x5 + 17.0 * x3 - 15.0 * x) / 384.0;
    let g4 = (79.0 * x9 + 776.0 * x7 + 1482.0 * x5 - 1920.0 * x3 - 945.0 * x) / 92_160.0;
    x + g1 / nu + g2 / (nu * nu) + g3 / (nu * nu * nu) + g4 / (nu * nu * nu * nu)
}

/// The mixture sequential probability ratio test for a difference of two means, with a normal
/// mixture of variance `tau²` over the difference (Robbins, 1970; Johari, Pekelis and Walsh, 2017).
///
/// With `d = mean_b − mean_a` and `v = var_a/n_a + var_b/n_b` (the variance of `d`):
///
/// `Λ = sqrt(v / (v + τ²)) · exp(τ² d² / (2 v (v + τ²)))`
///
/// Under `H0: no difference`, `Λ` is a nonnegative martingale with mean 1, so by Ville's inequality
/// `P(Λ ever ≥ 1/α) ≤ α`: stopping the first time it crosses `1/α` keeps the false-positive rate
/// at `α` however often the results are looked at.
pub(crate) fn msprt_lambda(d: f64, v: f64, tau2: f64) -> f64 {
    if !(v > 0.0 && tau2 > 0.0 && d.is_finite()) {
        return 1.0;
    }
    let log = 0.5 * (v / (v + tau2)).ln() + tau2 * d * d / (2.0 * v * (v + tau2));
    log.exp()
}

/// The half-width of the always-valid confidence sequence that inverts [`msprt_lambda`] at level
/// `alpha`: every `δ` with `|d − δ| < w` has `Λ(d − δ) < 1/α`, where
/// `w = sqrt(v (v + τ²)/τ² · (2 ln(1/α) + ln(1 + τ²/v)))`.
pub(crate) fn msprt_half_width(v: f64, tau2: f64, alpha: f64) -> f64 {
    if !(v > 0.0 && tau2 > 0.0) {
        return f64::INFINITY;
    }
    (v * (v + tau2) / tau2 * (2.0 * (1.0 / alpha).ln() + (1.0 + tau2 / v).ln())).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn quantiles_match_tables() {
        close(normal_quantile(0.975), 1.959_963_985, 1e-8);
        close(normal_quantile(0.5), 0.0, 1e-12);
        close(normal_quantile(0.01), -2.326_347_874, 1e-8);
        close(normal_quantile(0.999), 3.090_232_306, 1e-8);
        assert!(normal_quantile(1.5).is_nan() && normal_quantile(f64::NAN).is_nan());
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        // Student t, two-sided 95%: scipy.stats.t.ppf(0.975, nu).
        close(student_t_quantile(0.975, 1.0), 12.706_204_736, 1e-6);
        close(student_t_quantile(0.975, 2.0), 4.302_652_730, 1e-6);
        close(student_t_quantile(0.975, 3.0), 3.182_446_305, 0.005);
        close(student_t_quantile(0.975, 10.0), 2.228_138_852, 1e-4);
        close(student_t_quantile(0.975, 100.0), 1.983_971_519, 1e-6);
    }

    #[test]
    fn welford_matches_the_two_pass_formulas() {
        let xs = [0.2, 0.9, 0.4, 0.4, 1.0, 0.0, 0.7];
        let mut w = Welford::default();
        for x in xs {
            w.push(x);
        }
        w.push(f64::NAN);
        let mean = xs.iter().sum::<f64>() / 7.0;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 6.0;
        assert_eq!(w.n, 7);
        close(w.mean, mean, 1e-12);
        close(w.variance(), var, 1e-12);
        let e = w.estimate(0.95).unwrap();
        let half = student_t_quantile(0.975, 6.0) * (var / 7.0).sqrt();
        close(e.low, mean - half, 1e-12);
        close(e.high, mean + half, 1e-12);
        assert!(Welford::default().estimate(0.95).is_none());
    }

    #[test]
    fn wilson_interval_matches_a_worked_example() {
        // Reference values from the closed form evaluated independently (Python, scipy's z).
        let e = wilson(81, 263, 0.95).unwrap();
        close(e.mean, 81.0 / 263.0, 1e-12);
        close(e.low, 0.255_288_520, 1e-8);
        close(e.high, 0.366_209_577, 1e-8);
        let all = wilson(10, 10, 0.95).unwrap();
        close(all.low, 0.722_467_200, 1e-8);
        assert!(all.high <= 1.0);
        let none = wilson(0, 10, 0.95).unwrap();
        assert_eq!(none.low, 0.0);
        close(none.high, 0.277_532_800, 1e-8);
        assert!(wilson(0, 0, 0.95).is_none());
    }

    #[test]
    fn msprt_boundary_and_interval_agree() {
        let (v, tau2, alpha) = (0.001, 0.01, 0.05);
        let w = msprt_half_width(v, tau2, alpha);
        close(msprt_lambda(w, v, tau2), 1.0 / alpha, 1e-9);
        assert!(msprt_lambda(0.99 * w, v, tau2) < 1.0 / alpha);
        assert!(msprt_lambda(1.01 * w, v, tau2) > 1.0 / alpha);
        assert_eq!(msprt_lambda(0.3, 0.0, tau2), 1.0);
        assert_eq!(msprt_half_width(0.0, tau2, alpha), f64::INFINITY);
    }
}
