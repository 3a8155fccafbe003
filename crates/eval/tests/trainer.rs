//! The trainer through its public API: deterministic, strict about its configuration, and reporting
//! its progress. That it recovers planted signals is checked through the model files it writes
//! (`core_fixtures.rs`) and the core's prediction tests on them.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

use switchyard_eval::data::{Dataset, Row};
use switchyard_eval::train::Stage;
use switchyard_eval::{Residuals, Selection, Standardize, TrainConfig, Trainer};

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
    // `Standardize::Auto` (the default) trains the standardised form alongside, on a thread of its
    // own that reports nothing: each stage is seen once.
    assert_eq!(stages.iter().filter(|s| **s == Stage::Features).count(), 1, "{stages:?}");
}

/// Greetings both models answer, sums only the large one does, sums "with carry" neither: one
/// task, so that the prior is the same for every prompt and the per-prompt term is all that moves.
/// One row in four has the outcomes of the next kind instead, so that no probability saturates.
fn graded(n: usize) -> Dataset {
    let mut b = Dataset::builder(["small", "large"]);
    for i in 0..n {
        let outcome = [[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]];
        let kind = i % 3;
        let scores = if i % 4 == 3 { outcome[(kind + 1) % 3] } else { outcome[kind] };
        let prompt = match kind {
            0 => format!("greet the user number {} warmly", i % 7),
            1 => format!("add the numbers {} and {}", i % 5, i % 11),
            _ => format!("add the numbers {} and {} with carry", i % 5, i % 13),
        };
        b.push(Row::new(prompt).with_task("one"), &scores, None).unwrap();
    }
    b.build().unwrap()
}

#[test]
fn a_shared_difficulty_moves_every_model_along_one_direction() {
    let shared = config(|c| {
        c.residuals = Residuals::SharedDifficulty;
        c.min_trust = 1.0;
    });
    let model = Trainer::new(shared.clone()).fit(&graded(300), "graded").unwrap();
    assert!(model.info().residual);
    let shift = |a: &str, b: &str| -> [f64; 2] {
        let (pa, pb) = (model.predict(a), model.predict(b));
        let logit = |p: f64| (p / (1.0 - p)).ln();
        [0, 1].map(|m| logit(pa.probability(m).unwrap()) - logit(pb.probability(m).unwrap()))
    };
    // Each model's logit moves by its own slope times one shared score: the ratio of the two
    // models' shifts is the same for any two pairs of prompts.
    let (one, two) = (
        shift("greet the user number 3 warmly", "add the numbers 2 and 7 with carry"),
        shift("add the numbers 4 and 9", "add the numbers 1 and 3 with carry"),
    );
    assert!(one[0] > 0.0 && one[1] > 0.0, "an easier prompt raises both models: {one:?}");
    assert!((one[0] / one[1] - two[0] / two[1]).abs() < 1e-3, "{one:?} and {two:?}");
    // One regression per model has no such constraint: the large model tells plain sums from
    // greetings far less than the small one does.
    let model = Trainer::new(config(|c| c.min_trust = 1.0)).fit(&graded(300), "graded").unwrap();
    let shift = |a: &str, b: &str| -> [f64; 2] {
        let (pa, pb) = (model.predict(a), model.predict(b));
        let logit = |p: f64| (p / (1.0 - p)).ln();
        [0, 1].map(|m| logit(pa.probability(m).unwrap()) - logit(pb.probability(m).unwrap()))
    };
    let (one, two) = (
        shift("greet the user number 3 warmly", "add the numbers 2 and 7 with carry"),
        shift("add the numbers 4 and 9", "add the numbers 1 and 3 with carry"),
    );
    assert!((one[0] / one[1] - two[0] / two[1]).abs() > 0.1, "{one:?} and {two:?}");
}

#[test]
fn a_shared_difficulty_with_per_model_regressions_on_top_trains_deterministically() {
    let c = config(|c| c.residuals = Residuals::SharedDifficultyAndPerModel);
    let train = || Trainer::new(c.clone()).fit(&graded(300), "graded").unwrap();
    let model = train();
    assert!(model == train());
    let p = model.predict("add the numbers 2 and 7");
    assert!(p.probability(0).unwrap() < p.probability(1).unwrap());
}

#[test]
fn the_residual_form_is_recorded_only_when_it_is_not_the_default() {
    let json = serde_json::to_value(TrainConfig::default()).unwrap();
    assert!(json.get("residuals").is_none(), "{json}");
    let c: TrainConfig = serde_json::from_str(r#"{"residuals": "shared_difficulty"}"#).unwrap();
    assert_eq!(c.residuals, Residuals::SharedDifficulty);
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["residuals"], "shared_difficulty");
}

/// Two prompts, a model that succeeds on greetings only and one whose outcomes are a fixed
/// pseudo-random draw, the same on both prompts: its regression can only fit noise.
fn one_planted_one_noisy(n: usize) -> Dataset {
    let mut b = Dataset::builder(["noisy", "planted"]);
    let mut state = 0x2545_f491_u64;
    for i in 0..n {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let noisy = if state >> 63 == 1 { 1.0 } else { 0.0 };
        let greet = i % 2 == 0;
        let planted = if greet == (i % 5 != 4) { 1.0 } else { 0.0 };
        let prompt = if greet { "greet the user warmly" } else { "add the numbers with carry" };
        b.push(Row::new(prompt).with_task("one"), &[noisy, planted], None).unwrap();
    }
    b.build().unwrap()
}

#[test]
fn per_model_selection_leaves_out_a_regression_that_fits_only_noise() {
    let data = one_planted_one_noisy(400);
    let moves = |selection: Selection, m: usize| {
        let model = Trainer::new(config(|c| {
            c.selection = selection;
            c.min_trust = 1.0;
        }))
        .fit(&data, "noisy")
        .unwrap();
        let (a, b) = (model.predict("greet the user warmly"), model.predict("add the numbers with carry"));
        a.probability(m).unwrap() - b.probability(m).unwrap()
    };
    // One `l2` for both models: the noisy model's regression is kept with the planted one's.
    assert!(moves(Selection::LogLoss, 0).abs() > 1e-4);
    // Its own held-out loss leaves it out, and keeps the planted one.
    assert_eq!(moves(Selection::PerModelLogLoss, 0), 0.0);
    assert!(moves(Selection::PerModelLogLoss, 1) > 0.3);
}

#[test]
fn every_selection_trains_deterministically_and_is_recorded_only_off_the_default() {
    assert!(serde_json::to_value(TrainConfig::default()).unwrap().get("selection").is_none());
    for s in ["routing_auc", "pair_log_loss", "per_model_log_loss"] {
        let c: TrainConfig = serde_json::from_str(&format!(r#"{{"selection": "{s}"}}"#)).unwrap();
        assert_eq!(serde_json::to_value(&c).unwrap()["selection"], s);
        let train = || Trainer::new(c.clone()).fit(&graded(150), "graded").unwrap();
        let model = train();
        assert!(model == train());
        let p = model.predict("add the numbers 2 and 7");
        assert!(p.probability(0).unwrap() < p.probability(1).unwrap(), "{s}");
    }
}

/// Each dense feature of every row's prompt, as computed.
fn dense_values(data: &Dataset) -> Vec<Vec<f32>> {
    use switchyard::classify::TextStats;
    use switchyard::classify::learned::__training::{Extractor, Namespace, Sink};
    struct Dense(Vec<f32>);
    impl Sink for Dense {
        fn hashed(&mut self, _: Namespace, _: u32, _: Option<u64>) {}
        fn dense(&mut self, _: usize, value: f32) {
            self.0.push(value);
        }
    }
    let features = TrainConfig::default().features;
    data.rows()
        .iter()
        .map(|r| {
            let mut d = Dense(Vec::new());
            Extractor::new(&features).extract(r.prompt(), &TextStats::of_text(r.prompt()), &mut d);
            d.0
        })
        .collect()
}

#[test]
fn standardised_dense_features_keep_their_training_mean_and_deviation_unless_most_rows_lack_them() {
    let data = graded(300);
    let on = Trainer::new(config(|c| c.features.standardize = Standardize::On)).fit(&data, "t").unwrap();
    let scale = &on.info().dense_scale;
    let values = dense_values(&data);
    assert_eq!(scale.len(), values[0].len());
    let (mut standardised, mut kept) = (0, 0);
    for (i, &(shift, inv_sd)) in scale.iter().enumerate() {
        let column: Vec<f64> = values.iter().map(|v| f64::from(v[i])).collect();
        let n = column.len() as f64;
        let mean = column.iter().sum::<f64>() / n;
        let sd = (column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        if 2 * column.iter().filter(|&&v| v != 0.0).count() < column.len() {
            assert_eq!((shift, inv_sd), (0.0, 1.0), "feature {i} is zero on most rows: as computed");
            kept += 1;
        } else if sd > 1e-6 {
            assert!((f64::from(shift) - mean).abs() < 1e-4, "feature {i}: shift {shift}, mean {mean}");
            assert!((f64::from(inv_sd) * sd - 1.0).abs() < 1e-3, "feature {i}: 1/sd {inv_sd}, sd {sd}");
            standardised += 1;
        } else {
            assert_eq!(inv_sd, 0.0, "feature {i} is constant");
        }
    }
    assert!(standardised >= 3 && kept >= 3, "{standardised} standardised, {kept} kept");
    // The file keeps them: the loaded model predicts alike.
    let loaded = switchyard::classify::learned::LearnedModel::from_bytes(&on.to_bytes()).unwrap();
    for text in ["add the numbers 3 and 9", "greet the user number 2 warmly", "a prompt of another kind?"] {
        assert_eq!(loaded.predict(text), on.predict(text));
    }
    let off = Trainer::new(config(|c| c.features.standardize = Standardize::Off)).fit(&data, "t").unwrap();
    assert!(off.info().dense_scale.is_empty());
    assert!(on.predict("add the numbers 3 and 9").logits != off.predict("add the numbers 3 and 9").logits);
}

#[test]
fn auto_keeps_the_form_whose_held_out_loss_is_lower_and_records_the_choice() {
    for data in [graded(300), planted(400)] {
        let fit = |form| Trainer::new(config(|c| c.features.standardize = form)).fit(&data, "t").unwrap();
        let (on, off, auto) = (fit(Standardize::On), fit(Standardize::Off), fit(Standardize::Auto));
        let (a, b) = (on.info().validation_loss.unwrap(), off.info().validation_loss.unwrap());
        let expected = if a < b { &on } else { &off };
        assert_eq!(auto.info().dense_scale, expected.info().dense_scale);
        assert_eq!(auto.info().validation_loss, expected.info().validation_loss);
        assert_eq!(auto.info().features.standardize, if a < b { Standardize::On } else { Standardize::Off });
        assert_eq!(auto.info().training.features.standardize, Standardize::Auto);
        for text in ["add the numbers 3 and 9", "greet the user number 2 warmly"] {
            assert_eq!(auto.predict(text), expected.predict(text));
        }
    }
}
