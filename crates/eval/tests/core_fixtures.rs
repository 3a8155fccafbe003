//! The learned-model files the core crate's unit tests load (`src/classify/learned/testdata/`):
//! prediction and the file format are tested in the core, training here. This test checks that the
//! trainer still writes those files byte for byte; after a deliberate change to training or to the
//! file format, `SWITCHYARD_BLESS=1 cargo test -p switchyard-eval --test core_fixtures` rewrites them.

#![allow(clippy::unwrap_used, reason = "tests and their helpers may unwrap")]

use std::path::PathBuf;

use switchyard_eval::{TrainConfig, Trainer};

mod support;
use support::{costs, openings, planted};

fn check(name: &str, bytes: Vec<u8>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../src/classify/learned/testdata").join(name);
    #[allow(clippy::disallowed_methods, reason = "a test's switch to rewrite its reference files")]
    let bless = std::env::var_os("SWITCHYARD_BLESS").is_some();
    if bless {
        std::fs::write(&path, &bytes).unwrap();
        return;
    }
    let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()));
    assert!(
        stored == bytes,
        "`{}` is not what the trainer writes today; after a deliberate change, rerun with SWITCHYARD_BLESS=1",
        path.display()
    );
}

#[test]
fn the_core_crates_model_files_are_what_the_trainer_writes() {
    check("planted.swlm", Trainer::new(TrainConfig::default()).fit(&planted(600), "planted").unwrap().to_bytes());
    check("costs.swlm", Trainer::new(TrainConfig::default()).fit(&costs(), "costs").unwrap().to_bytes());
    let mut quick = TrainConfig::default();
    quick.epochs = 2;
    // Without TF-IDF, as versions 2 and 3 were trained: the core reads it as those versions too.
    quick.features.tf_idf = false;
    check("openings.swlm", Trainer::new(quick).fit(&openings(), "t").unwrap().to_bytes());
}
