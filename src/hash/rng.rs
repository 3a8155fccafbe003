//! A small deterministic random number generator for policies that sample: SplitMix64 (Steele, Lea
//! and Flood, 2014) with normal (Marsaglia's polar method), gamma (Marsaglia and Tsang, 2000) and
//! beta variates. No global state: each decision seeds its own generator.

use super::{GOLDEN, mix64, to_unit};

/// A SplitMix64 generator with the variates policies and training sample from.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        to_unit(self.next_u64())
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift (bias below 2^-32 for the small `n` used here).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A standard normal variate (Marsaglia's polar method).
    pub(crate) fn normal(&mut self) -> f64 {
        for _ in 0..64 {
            let u = 2.0 * self.unit() - 1.0;
            let v = 2.0 * self.unit() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return u * (-2.0 * s.ln() / s).sqrt();
            }
        }
        0.0
    }

    /// A Gamma(`shape`, 1) variate (Marsaglia and Tsang, 2000); `shape > 0`. Shapes below 1 use
    /// `Gamma(a) = Gamma(a + 1) · U^(1/a)`.
    pub(crate) fn gamma(&mut self, shape: f64) -> f64 {
        if !(shape > 0.0 && shape.is_finite()) {
            return 0.0;
        }
        if shape < 1.0 {
            let u = self.unit().max(f64::MIN_POSITIVE);
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        // Accepts with probability above 0.95 per round; 64 rounds never run out in practice.
        for _ in 0..64 {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = self.unit();
            if u < 1.0 - 0.0331 * x * x * x * x || u.max(f64::MIN_POSITIVE).ln() < 0.5 * x * x + d * (1.0 - v + v.ln())
            {
                return d * v;
            }
        }
        d
    }

    /// A Beta(`a`, `b`) variate: `X / (X + Y)` with `X ~ Gamma(a)`, `Y ~ Gamma(b)`.
    pub(crate) fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a);
        let y = self.gamma(b);
        if x + y > 0.0 { x / (x + y) } else { a / (a + b) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(mut draw: impl FnMut() -> f64, n: usize) -> (f64, f64) {
        let xs: Vec<f64> = (0..n).map(|_| draw()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (mean, var)
    }

    #[test]
    fn variates_have_the_right_moments() {
        let mut rng = Rng::new(42);
        let n = 200_000;
        let (m, v) = moments(|| rng.normal(), n);
        assert!(m.abs() < 0.01 && (v - 1.0).abs() < 0.02, "normal {m} {v}");
        for shape in [0.3, 1.0, 2.5, 40.0] {
            let (m, v) = moments(|| rng.gamma(shape), n);
            // Gamma(k, 1): mean k, variance k; tolerances are about five standard errors.
            assert!((m - shape).abs() < 5.0 * (shape / n as f64).sqrt() + 1e-3, "gamma({shape}) mean {m}");
            assert!((v / shape - 1.0).abs() < 0.05, "gamma({shape}) variance {v}");
        }
        let (a, b) = (2.0, 5.0);
        let (m, v) = moments(|| rng.beta(a, b), n);
        let (em, ev) = (a / (a + b), a * b / ((a + b) * (a + b) * (a + b + 1.0)));
        assert!((m - em).abs() < 0.002 && (v / ev - 1.0).abs() < 0.03, "beta {m} {v}");
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            counts[rng.below(5)] += 1;
        }
        assert!(counts.iter().all(|&c| (9_500..10_500).contains(&c)), "{counts:?}");
    }

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.beta(1.5, 2.5).to_bits(), b.beta(1.5, 2.5).to_bits());
        }
        assert_eq!(Rng::new(0).gamma(-1.0), 0.0);
        assert_eq!(Rng::new(0).gamma(f64::NAN), 0.0);
    }
}
