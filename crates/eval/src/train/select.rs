//! Routing criteria for the inner cross-validation ([`Selection`]): scores of held-out
//! probabilities that look at the pair a router decides between, the strongest model and each
//! other one, rather than at each model's calibration alone.

use switchyard::classify::learned::Selection;

use super::log_loss;

/// The held-out probabilities of one candidate: `[row][model]`, for the rows in `rows`.
pub(super) struct Held<'a> {
    /// Each row's probability per model (rows outside `rows` are ignored).
    pub(super) p: &'a [f64],
    /// Each row's score per model, in `[0, 1]`.
    pub(super) y: &'a [f64],
    /// The models per row.
    pub(super) m: usize,
    /// The held-out rows.
    pub(super) rows: &'a [usize],
}

/// The model with the highest mean score over `rows` (the first on a tie).
pub(super) fn strongest(y: &[f64], m: usize, rows: &[usize]) -> usize {
    let mut sums = vec![0.0f64; m];
    for &i in rows {
        sums.iter_mut().zip(&y[i * m..(i + 1) * m]).for_each(|(s, y)| *s += y);
    }
    (0..m).fold(0, |b, j| if sums[j] > sums[b] { j } else { b })
}

/// The candidate's held-out loss under `selection`: lower is better ([`Selection::RoutingAuc`]
/// gives `1 − AUC`). `None` for [`Selection::LogLoss`], which the trainer pools itself, and for
/// fewer than two models.
pub(super) fn loss(selection: Selection, held: &Held<'_>, strong: usize) -> Option<f64> {
    let m = held.m;
    if m < 2 {
        return None;
    }
    match selection {
        Selection::RoutingAuc => {
            let (mut total, mut weight) = (0.0, 0.0);
            for j in (0..m).filter(|&j| j != strong) {
                let rows: Vec<(f64, f64)> = held
                    .rows
                    .iter()
                    .map(|&i| {
                        let (p, y) = (&held.p[i * m..(i + 1) * m], &held.y[i * m..(i + 1) * m]);
                        (p[strong] - p[j], (y[strong] - y[j]).max(0.0))
                    })
                    .collect();
                let positives: f64 = rows.iter().map(|r| r.1).sum();
                if let Some(a) = auc(rows) {
                    total += positives * a;
                    weight += positives;
                }
            }
            (weight > 0.0).then(|| 1.0 - total / weight)
        }
        Selection::PairLogLoss => {
            let mut total = 0.0;
            for j in (0..m).filter(|&j| j != strong) {
                for &i in held.rows {
                    let (p, y) = (&held.p[i * m..(i + 1) * m], &held.y[i * m..(i + 1) * m]);
                    total += log_loss(p[strong] * (1.0 - p[j]), (y[strong] - y[j]).max(0.0));
                }
            }
            Some(total / (held.rows.len().max(1) * (m - 1)) as f64)
        }
        _ => None,
    }
}

/// Each model's held-out log loss, summed over `rows`.
pub(super) fn model_losses(held: &Held<'_>) -> Vec<f64> {
    let m = held.m;
    let mut out = vec![0.0f64; m];
    for &i in held.rows {
        for (j, o) in out.iter_mut().enumerate() {
            *o += log_loss(held.p[i * m + j], held.y[i * m + j]);
        }
    }
    out
}

/// Per model, the index of the candidate (of `losses`, `[candidate][model]`) with the lowest loss,
/// or `None` when no candidate beats `without` (that model's loss with the prior alone).
pub(super) fn choose_per_model(losses: &[Vec<f64>], without: &[f64]) -> Vec<Option<usize>> {
    (0..without.len())
        .map(|j| {
            let best = (0..losses.len()).fold(0, |b, k| if losses[k][j] < losses[b][j] { k } else { b });
            (losses.get(best).is_some_and(|l| l[j] < without[j])).then_some(best)
        })
        .collect()
}

/// The weighted ROC-AUC of `(score, weight)` rows: each row is a positive of weight `w` and a
/// negative of weight `1 − w`; tied scores count half. `None` without both positives and negatives.
pub(super) fn auc(mut rows: Vec<(f64, f64)>) -> Option<f64> {
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (pos, neg): (f64, f64) = rows.iter().fold((0.0, 0.0), |(p, n), r| (p + r.1, n + 1.0 - r.1));
    if pos <= 0.0 || neg <= 0.0 {
        return None;
    }
    // Positives times the negatives below them, with ties counted half.
    let (mut below, mut sum, mut k) = (0.0f64, 0.0f64, 0);
    while k < rows.len() {
        let end = k + rows[k..].iter().take_while(|r| r.0 == rows[k].0).count();
        let (p, n): (f64, f64) = rows[k..end].iter().fold((0.0, 0.0), |(p, n), r| (p + r.1, n + 1.0 - r.1));
        sum += p * (below + 0.5 * n);
        below += n;
        k = end;
    }
    Some(sum / (pos * neg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_ranks_and_counts_ties_half() {
        assert_eq!(auc(vec![(0.1, 0.0), (0.9, 1.0)]), Some(1.0));
        assert_eq!(auc(vec![(0.9, 0.0), (0.1, 1.0)]), Some(0.0));
        assert_eq!(auc(vec![(0.5, 0.0), (0.5, 1.0)]), Some(0.5));
        assert_eq!(auc(vec![(0.5, 1.0), (0.7, 1.0)]), None);
        // Three negatives, one positive above two of them and tied with one.
        let a = auc(vec![(0.1, 0.0), (0.2, 0.0), (0.3, 0.0), (0.3, 1.0)]).unwrap();
        assert!((a - 2.5 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn each_model_chooses_its_own_candidate_or_none() {
        // Two candidates, three models: the first prefers candidate 1, the second candidate 0,
        // the third is best with its prior alone.
        let losses = vec![vec![5.0, 1.0, 4.0], vec![2.0, 3.0, 4.5]];
        assert_eq!(choose_per_model(&losses, &[6.0, 6.0, 3.0]), vec![Some(1), Some(0), None]);
        let (y, rows) = pair();
        let p: Vec<f64> = (0..8).flat_map(|_| [0.5, 0.5]).collect();
        let l = model_losses(&Held { p: &p, y: &y, m: 2, rows: &rows });
        assert!(l.iter().all(|l| (l - 8.0 * std::f64::consts::LN_2).abs() < 1e-9));
    }

    #[test]
    fn strongest_is_the_highest_mean() {
        let y = [0.0, 1.0, 1.0, 1.0, 0.0, 1.0];
        assert_eq!(strongest(&y, 3, &[0, 1]), 2);
        assert_eq!(strongest(&y, 3, &[0]), 1);
        assert_eq!(strongest(&y, 3, &[1]), 0);
    }

    /// Two models: the strong one always succeeds, the weak one on the first half of the rows only.
    fn pair() -> (Vec<f64>, Vec<usize>) {
        let y: Vec<f64> = (0..8).flat_map(|i| [1.0, if i < 4 { 1.0 } else { 0.0 }]).collect();
        (y, (0..8).collect())
    }

    #[test]
    fn routing_auc_looks_at_the_difference_only() {
        let (y, rows) = pair();
        // Both models' probabilities move together: calibrated for each, useless for the pair.
        let together: Vec<f64> = (0..8).flat_map(|i| if i < 4 { [0.9, 0.9] } else { [0.6, 0.6] }).collect();
        // The weak model's probability alone separates the rows.
        let apart: Vec<f64> = (0..8).flat_map(|i| if i < 4 { [0.8, 0.8] } else { [0.8, 0.2] }).collect();
        let score = |p: &[f64]| loss(Selection::RoutingAuc, &Held { p, y: &y, m: 2, rows: &rows }, 0).unwrap();
        assert!((score(&together) - 0.5).abs() < 1e-12);
        assert!(score(&apart).abs() < 1e-12);
        assert_eq!(loss(Selection::LogLoss, &Held { p: &apart, y: &y, m: 2, rows: &rows }, 0), None);
    }

    #[test]
    fn pair_log_loss_prefers_the_better_difference() {
        let (y, rows) = pair();
        let good: Vec<f64> = (0..8).flat_map(|i| if i < 4 { [0.95, 0.9] } else { [0.95, 0.1] }).collect();
        let flat: Vec<f64> = (0..8).flat_map(|_| [0.95, 0.5]).collect();
        let score = |p: &[f64]| loss(Selection::PairLogLoss, &Held { p, y: &y, m: 2, rows: &rows }, 0).unwrap();
        assert!(score(&good) < score(&flat));
    }
}
