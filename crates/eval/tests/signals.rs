//! The built-in difficulty signal ranks held-out prompts inside a task better than chance.
//!
//! The data sets are the repository's `data/` (gzip-compressed); a missing file fails the test,
//! naming the file.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]
#![allow(clippy::print_stdout, reason = "tests report what they measured")]

mod repo_data;

use std::path::PathBuf;

use switchyard_eval::signals::{self, Part, Signal};

/// The repository's `data/`, after checking that every file `signals::benchmarks` reads is there.
fn data_dir() -> PathBuf {
    for file in [repo_data::ROUTERBENCH, repo_data::ROUTELLM, repo_data::MT_BENCH] {
        repo_data::file(file);
    }
    repo_data::dir()
}

/// MMLU's held-out rows (2,808, rows `i % 5 == 0` without contaminated ones; never fitted on).
/// Measured: 0.589 ± 0.015 with the fitted difficulty, 0.559 before it; the bound sits two standard
/// errors below the measurement, so the difficulty before the fit would fail it.
#[test]
fn difficulty_ranks_held_out_mmlu_prompts() {
    let dir = data_dir();
    let test = signals::benchmarks(&dir, Part::Test).unwrap();
    let mmlu = test.iter().find(|b| b.name == "mmlu").unwrap();
    let aucs = signals::signal_aucs(&mmlu.data, mmlu.weak, mmlu.strong, &[Signal::Difficulty]).unwrap();
    let auc = aucs[0].aucs[0].unwrap();
    println!("difficulty AUC on held-out MMLU: {auc:.3} ({} rows)", aucs[0].rows);
    assert!(auc > 0.56, "difficulty AUC {auc:.3} on held-out MMLU is not above 0.56");
}

/// The fit is deterministic and reproduces the constants the core ships.
#[test]
fn fitted_difficulty_weights_are_the_shipped_ones() {
    use switchyard::classify::learned::__training::{DIFFICULTY_FITTED, DIFFICULTY_FITTED_CENTRE};
    let dir = data_dir();
    let fit = signals::fit_difficulty(&signals::benchmarks(&dir, Part::Train).unwrap()).unwrap();
    for (w, shipped) in fit.weights.iter().zip(DIFFICULTY_FITTED) {
        assert!((w - shipped).abs() < 1e-4, "fitted {:?}, shipped {DIFFICULTY_FITTED:?}", fit.weights);
    }
    assert!((fit.centre - DIFFICULTY_FITTED_CENTRE).abs() < 1e-4, "{} vs {DIFFICULTY_FITTED_CENTRE}", fit.centre);
}
