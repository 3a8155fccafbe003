//! The known-models table (`Ability::known`) against abilities fitted on the shared RouterBench
//! training split (RouterDC `train`): the table is anchored so that the two agree on average, and
//! they order the models they share alike. The data are the repository's `data/`; a missing file
//! fails the test, naming the file.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]
#![allow(clippy::print_stdout, reason = "tests report what they compared")]

mod repo_data;

use switchyard::catalog::Ability;
use switchyard_eval::catalog::{FittedCatalog, Prices};
use switchyard_eval::data::{Dataset, Format, SplitKind};

/// RouterBench's `claude-v2` answers fewer training rows than its `claude-instant-v1` (0.54
/// against 0.67), the reverse of the published MMLU scores the table uses (78.5 against 73.4); the
/// table follows the published scores, so pairs with it are reported but not asserted.
const KNOWN_DISAGREEMENT: &str = "claude-v2";

fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut r = vec![0.0; values.len()];
    for (rank, i) in order.into_iter().enumerate() {
        r[i] = rank as f64;
    }
    r
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let d2: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - y).powi(2)).sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

#[test]
fn the_table_agrees_with_abilities_fitted_on_the_routerbench_training_split() {
    let all = Dataset::load(repo_data::file(repo_data::ROUTERBENCH), Format::RouterBench).unwrap();
    let train = all.in_split(SplitKind::RouterDc, "train");
    let prices = Prices::load(repo_data::file(repo_data::MODELS), "routerbench").unwrap();
    let fitted = FittedCatalog::fit(&train, &prices).unwrap();

    let mut shared = Vec::new();
    for m in fitted.catalog().models() {
        match Ability::known(m.id.as_str()) {
            Some(table) => shared.push((m.id.to_string(), m.ability.overall, table.overall)),
            None => println!("not in the table: {}", m.id),
        }
    }
    for (id, fit, table) in &shared {
        println!("{id:<40} fitted {fit:>6.3}  table {table:>6.3}");
    }
    assert!(shared.len() >= 8, "only {} models in both", shared.len());

    // The anchor: the mean of fitted − table is zero (to the table's rounding of the anchor).
    let mean = shared.iter().map(|(_, f, t)| f - t).sum::<f64>() / shared.len() as f64;
    assert!(mean.abs() < 0.01, "mean fitted − table {mean:.4}: update the anchor in src/catalog/known.rs");

    // Order: rank correlation over all of them, and every pair the table separates by at least
    // half a logit is ordered alike (pairs with the known disagreement reported only).
    let rho =
        spearman(&shared.iter().map(|s| s.1).collect::<Vec<_>>(), &shared.iter().map(|s| s.2).collect::<Vec<_>>());
    println!("Spearman rank correlation, all {} models: {rho:.3}", shared.len());
    assert!(rho >= 0.4, "rank correlation {rho:.3}");
    let mut failures = Vec::new();
    for a in &shared {
        for b in &shared {
            if b.2 - a.2 >= 0.5 && a.1 >= b.1 {
                let line = format!("table {} < {} but fitted {:.3} >= {:.3}", a.0, b.0, a.1, b.1);
                if a.0.contains(KNOWN_DISAGREEMENT) || b.0.contains(KNOWN_DISAGREEMENT) {
                    println!("known disagreement: {line}");
                } else {
                    failures.push(line);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let without: Vec<_> = shared.iter().filter(|s| !s.0.contains(KNOWN_DISAGREEMENT)).collect();
    let rho =
        spearman(&without.iter().map(|s| s.1).collect::<Vec<_>>(), &without.iter().map(|s| s.2).collect::<Vec<_>>());
    println!("Spearman without {KNOWN_DISAGREEMENT}: {rho:.3}");
    assert!(rho >= 0.8, "rank correlation without {KNOWN_DISAGREEMENT}: {rho:.3}");
}
