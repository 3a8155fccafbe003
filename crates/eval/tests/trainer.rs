//! The trainer through its public API: deterministic, strict about its configuration, and reporting
//! its progress. That it recovers planted signals is checked through the model files it writes
//! (`core_fixtures.rs`) and the core's prediction tests on them.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

use switchyard_eval::data::Dataset;
use switchyard_eval::train::Stage;
use switchyard_eval::{TrainConfig, Trainer};

mod support;
use support::planted;

fn config(set: impl FnOnce(&mut TrainConfig)) -> TrainConfig {
    let mut c = TrainConfig::default();
    set(&mut c);
    c
}

#[test]
fn training_is_deterministic() {
    let train = || Trainer::new(TrainConfig::default()).fit(&planted(600), "planted").unwrap();
    assert!(train() == train());
}

#[test]
fn bad_training_input_is_a_config_error() {
    let data = planted(10);
    let bad = |c: TrainConfig| Trainer::new(c).fit(&data, "t").unwrap_err().kind();
    assert_eq!(bad(config(|c| c.l2 = vec![])), switchyard::ErrorKind::Config);
    assert_eq!(bad(config(|c| c.l2 = vec![f64::NAN])), switchyard::ErrorKind::Config);
    assert_eq!(bad(config(|c| c.epochs = 0)), switchyard::ErrorKind::Config);
    assert_eq!(bad(config(|c| c.validation = 1.0)), switchyard::ErrorKind::Config);
    assert_eq!(bad(config(|c| c.learning_rate = -1.0)), switchyard::ErrorKind::Config);
    let empty = Dataset::builder(["a"]).build().unwrap();
    assert!(Trainer::new(TrainConfig::default()).fit(&empty, "t").is_err());
}

#[test]
fn progress_is_reported_for_every_stage() {
    let mut stages = Vec::new();
    Trainer::new(config(|c| c.epochs = 2)).on_progress(|p| stages.push(p.stage)).fit(&planted(60), "t").unwrap();
    assert!(stages.contains(&Stage::Features));
    assert!(stages.contains(&Stage::TaskFold(0)));
    assert!(stages.contains(&Stage::TaskHead));
    assert!(stages.contains(&Stage::Validation(0)));
    assert_eq!(stages.last(), Some(&Stage::Residual));
}
