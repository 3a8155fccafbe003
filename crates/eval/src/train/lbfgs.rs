//! Limited-memory BFGS with a backtracking (Armijo) line search: the residual regressions'
//! solver, run until the penalised log loss converges.

/// Stops when the gradient's largest entry falls below `tolerance`, when an iteration lowers the
/// objective by less than `1e-10` of its value, or after `max_iterations`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Options {
    pub(super) tolerance: f64,
    pub(super) max_iterations: usize,
    pub(super) memory: usize,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Outcome {
    pub(super) iterations: usize,
    pub(super) value: f64,
    pub(super) converged: bool,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// Minimises `f` from `x` (overwritten with the minimum); `f(x, grad)` returns the objective and
/// writes its gradient. Deterministic: the same start and function give the same result.
pub(super) fn minimize(
    x: &mut [f64],
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    options: Options,
    mut progress: impl FnMut(usize, f64),
) -> Outcome {
    let n = x.len();
    let mut g = vec![0.0; n];
    let mut value = f(x, &mut g);
    let (mut s_hist, mut y_hist, mut rho): (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<f64>) = (vec![], vec![], vec![]);
    let mut d = vec![0.0; n];
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    let mut alpha = vec![0.0; options.memory];
    let max_abs = |g: &[f64]| g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for it in 0..options.max_iterations {
        if max_abs(&g) <= options.tolerance {
            return Outcome { iterations: it, value, converged: true };
        }
        // The two-loop recursion: d = −H·g.
        d.copy_from_slice(&g);
        let k = s_hist.len();
        for i in (0..k).rev() {
            alpha[i] = rho[i] * dot(&s_hist[i], &d);
            for (d, y) in d.iter_mut().zip(&y_hist[i]) {
                *d -= alpha[i] * y;
            }
        }
        let gamma = if k > 0 { dot(&s_hist[k - 1], &y_hist[k - 1]) / dot(&y_hist[k - 1], &y_hist[k - 1]) } else { 1.0 };
        d.iter_mut().for_each(|d| *d *= gamma);
        for i in 0..k {
            let beta = rho[i] * dot(&y_hist[i], &d);
            for (d, s) in d.iter_mut().zip(&s_hist[i]) {
                *d += (alpha[i] - beta) * s;
            }
        }
        d.iter_mut().for_each(|d| *d = -*d);
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            rho.clear();
            d.iter_mut().zip(&g).for_each(|(d, g)| *d = -g);
            slope = -dot(&g, &g);
        }
        let mut step = if k == 0 { (1.0 / max_abs(&g)).min(1.0) } else { 1.0 };
        let mut accepted = None;
        for _ in 0..40 {
            for ((xn, x), d) in x_new.iter_mut().zip(x.iter()).zip(&d) {
                *xn = x + step * d;
            }
            let v = f(&x_new, &mut g_new);
            if v.is_finite() && v <= value + 1e-4 * step * slope {
                accepted = Some(v);
                break;
            }
            step *= 0.5;
        }
        let Some(v) = accepted else {
            return Outcome { iterations: it, value, converged: false };
        };
        let s: Vec<f64> = x_new.iter().zip(x.iter()).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        x.copy_from_slice(&x_new);
        g.copy_from_slice(&g_new);
        let decrease = value - v;
        value = v;
        progress(it + 1, value);
        if sy > 1e-12 {
            if s_hist.len() == options.memory {
                s_hist.remove(0);
                y_hist.remove(0);
                rho.remove(0);
            }
            s_hist.push(s);
            y_hist.push(y);
            rho.push(1.0 / sy);
        }
        if decrease <= 1e-10 * value.abs().max(1.0) {
            return Outcome { iterations: it + 1, value, converged: true };
        }
    }
    Outcome { iterations: options.max_iterations, value, converged: max_abs(&g) <= options.tolerance }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_a_badly_scaled_quadratic_and_of_a_logistic_loss() {
        let options = Options { tolerance: 1e-9, max_iterations: 500, memory: 10 };
        let scale = [1.0, 100.0, 0.01, 10.0];
        let mut x = vec![1.0; 4];
        let out = minimize(
            &mut x,
            |x, g| {
                let mut v = 0.0;
                for i in 0..4 {
                    let r = x[i] - i as f64;
                    v += 0.5 * scale[i] * r * r;
                    g[i] = scale[i] * r;
                }
                v
            },
            options,
            |_, _| {},
        );
        assert!(out.converged, "{out:?}");
        for (i, x) in x.iter().enumerate() {
            assert!((x - i as f64).abs() < 1e-4, "{x} vs {i}");
        }
        // One-feature logistic regression with L2 1: the gradient vanishes at the optimum.
        let data = [(1.0, 1.0), (2.0, 1.0), (-1.0, 0.0), (0.5, 0.0), (-2.0, 0.0)];
        let mut w = vec![0.0, 0.0];
        let loss = |w: &[f64], g: &mut [f64]| {
            let mut v = 0.5 * w[0] * w[0];
            g[0] = w[0];
            g[1] = 0.0;
            for &(x, y) in &data {
                let p = 1.0 / (1.0 + (-(w[0] * x + w[1])).exp());
                v -= y * p.ln() + (1.0 - y) * (1.0 - p).ln();
                g[0] += (p - y) * x;
                g[1] += p - y;
            }
            v
        };
        assert!(minimize(&mut w, loss, options, |_, _| {}).converged);
        let mut g = vec![0.0; 2];
        loss(&w, &mut g);
        assert!(g.iter().all(|g| g.abs() < 1e-6), "{g:?}");
        assert!(w[0] > 0.5, "{w:?}");
    }
}
