//! The learned-model files the core crate's unit tests load (`src/classify/learned/testdata/`):
//! prediction and the file format are tested in the core, training here. This test checks that the
//! trainer still writes those files byte for byte; after a deliberate change to training or to the
//! file format, `SWITCHYARD_BLESS=1 cargo test -p switchyard-eval --test core_fixtures` rewrites them.

#![allow(clippy::unwrap_used, reason = "tests and their helpers may unwrap")]

use std::path::PathBuf;

use switchyard_eval::data::{Dataset, Row};
use switchyard_eval::{TrainConfig, Trainer};

/// Two kinds of prompts: "sum" prompts only the large model answers, "greet" prompts both do;
/// within "sum" prompts, those that mention "carry" defeat the large model too.
fn planted(n: usize) -> Dataset {
    let mut b = Dataset::builder(["small", "large"]);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let noise = x % 5;
        let (prompt, task, scores) = if i % 2 == 0 {
            (format!("greet the user number {noise} warmly"), "chat", [1.0, 1.0])
        } else if i % 6 == 1 {
            (format!("add the numbers {noise} and {} with carry", x % 97), "math", [0.0, 0.0])
        } else {
            (format!("add the numbers {noise} and {}", x % 89), "math", [0.0, 1.0])
        };
        b.push(Row::new(prompt).with_task(task), &scores, None).unwrap();
    }
    b.build().unwrap()
}

/// Greetings cost the large model little, sums a lot (long answers); both models answer both.
fn costs() -> Dataset {
    let mut b = Dataset::builder(["small", "large"]);
    for i in 0..300 {
        let (prompt, task, cost) = if i % 2 == 0 {
            (format!("greet the user number {} warmly", i % 7), "chat", [0.001, 0.01])
        } else {
            (format!("add the numbers {} and {}", i % 5, i % 11), "math", [0.001, 0.5])
        };
        b.push(Row::new(prompt).with_task(task), &[1.0, 1.0], Some(&cost)).unwrap();
    }
    b.build().unwrap()
}

/// Short greetings both models answer and sums only the large one does, with distinct openings.
fn openings() -> Dataset {
    let mut b = Dataset::builder(["small", "large"]);
    for i in 0..200 {
        let (prompt, scores) =
            if i % 2 == 0 { (format!("greet user {i}"), [1.0, 1.0]) } else { (format!("sum {i} and 2"), [0.0, 1.0]) };
        b.push(Row::new(prompt).with_task(if i % 2 == 0 { "chat" } else { "math" }), &scores, None).unwrap();
    }
    b.build().unwrap()
}

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
    check("openings.swlm", Trainer::new(quick).fit(&openings(), "t").unwrap().to_bytes());
}
