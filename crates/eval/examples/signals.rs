//! How well each built-in heuristic signal ranks prompts inside each task of the shared data sets
//! (`switchyard_eval::signals`), and which intents the intent classifier assigns there.
//!
//! ```text
//! cargo run --release -p switchyard-eval --example signals -- [--split test|train] [--fit] [--data-dir DIR]
//! ```
//!
//! - `--split test` (the default): the rows reported in `docs/evaluation.md` ("Signals"):
//!   RouterBench `split_routerdc == test`, MMLU and GSM8K rows `i % 5 == 0` (without contaminated
//!   rows), all of MT-Bench.
//! - `--split train`: the rows the signals may be tuned on (RouterBench `split_routerdc == train`,
//!   MMLU and GSM8K rows `i % 5 != 0`).
//! - `--fit`: fits the weights of the difficulty's fitted part on the training rows
//!   (`switchyard_eval::signals::fit_difficulty`) and prints them as the constant
//!   `FITTED` of `src/classify/difficulty.rs`, next to the shipped one.
//!
//! Data sets are read from the repository's `data/` (gzip-compressed), or from `--data-dir DIR`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::Path;

use switchyard::classify::{IntentClassifier, TextStats};
use switchyard::{Error, ErrorKind, Result};
use switchyard_eval::data::Dataset;
use switchyard_eval::signals::{self, Part, Signal};

/// MMLU subjects whose questions are mathematics.
const MMLU_MATH: [&str; 5] = [
    "abstract_algebra",
    "college_mathematics",
    "elementary_mathematics",
    "high_school_mathematics",
    "high_school_statistics",
];
/// MMLU subjects about programming.
const MMLU_CODE: [&str; 2] = ["college_computer_science", "high_school_computer_science"];

const USAGE: &str = "usage: signals [--split test|train] [--fit] [--data-dir DIR]";

fn main() {
    if let Err(e) = try_main() {
        eprintln!("signals: {e}");
        std::process::exit(1);
    }
}

fn try_main() -> Result<()> {
    let mut part = Part::Test;
    let mut fit = false;
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--fit" => fit = true,
            "--data-dir" => match it.next() {
                Some(d) => dir = d.into(),
                None => return Err(Error::new(ErrorKind::Config, format!("`--data-dir` needs a directory\n{USAGE}"))),
            },
            "--split" => match it.next().as_deref() {
                Some("test") => part = Part::Test,
                Some("train") => part = Part::Train,
                _ => return Err(Error::new(ErrorKind::Config, format!("`--split` takes test or train\n{USAGE}"))),
            },
            _ => return Err(Error::new(ErrorKind::Config, format!("unexpected `{flag}`\n{USAGE}"))),
        }
    }
    if fit {
        return print_fit(&dir);
    }
    let benchmarks = signals::benchmarks(&dir, part)?;

    println!("AUC of each signal against \"the weak model scored below the strong one\", within each task");
    println!("(± one standard error, Hanley-McNeil; 0.5 = no ranking power)\n");
    let mut header = String::from("| data set (rows) | task | rows | weak < strong |");
    let mut rule = String::from("|---|---|---|---|");
    for s in Signal::ALL {
        header.push_str(&format!(" {} |", s.name()));
        rule.push_str("---|");
    }
    println!("{header}\n{rule}");
    for b in &benchmarks {
        for t in signals::signal_aucs(&b.data, b.weak, b.strong, &Signal::ALL)? {
            let mut line = format!("| {} ({}) | {} | {} | {} |", b.name, b.rows, t.task, t.rows, t.positives);
            for a in &t.aucs {
                match a {
                    Some(a) => {
                        let se = signals::auc_standard_error(*a, t.positives, t.rows - t.positives);
                        line.push_str(&format!(" {a:.3} ± {se:.3} |"));
                    }
                    None => line.push_str(" – |"),
                }
            }
            println!("{line}");
        }
    }
    println!();
    for b in &benchmarks {
        println!("weak and strong models for {}: `{}` and `{}`", b.name, b.weak, b.strong);
    }

    println!("\nIntents the built-in intent classifier assigns, per task (share of rows)\n");
    let intents = IntentClassifier::default();
    for b in &benchmarks {
        let mut groups: Vec<(String, Dataset)> =
            b.data.tasks().into_iter().map(|t| (t.to_owned(), b.data.of_task(t))).collect();
        if b.name == "mmlu" {
            // Subjects whose questions are mathematics, or programming, and the rest.
            let group = |s: Option<&str>| match s.unwrap_or("") {
                s if MMLU_MATH.contains(&s) => 0,
                s if MMLU_CODE.contains(&s) => 1,
                _ => 2,
            };
            for (g, name) in
                ["mmlu (math subjects)", "mmlu (computer science)", "mmlu (other subjects)"].iter().enumerate()
            {
                groups.push(((*name).to_owned(), b.data.filter(|r| group(r.subject()) == g)));
            }
        }
        for (task, rows) in &groups {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for r in rows.rows() {
                *counts.entry(intents.infer(&TextStats::of_text(r.prompt())).intent.to_string()).or_default() += 1;
            }
            let mut counts: Vec<_> = counts.into_iter().collect();
            counts.sort_by_key(|c| std::cmp::Reverse(c.1));
            let shares: Vec<String> =
                counts.iter().map(|(i, n)| format!("{i} {:.1}%", 100.0 * *n as f64 / rows.len() as f64)).collect();
            println!("{:<12} {:<24} {}", b.name, task, shares.join(", "));
        }
    }
    Ok(())
}

/// `--fit`: the difficulty's fitted weights from the training rows, as Rust.
fn print_fit(dir: &Path) -> Result<()> {
    use switchyard::classify::learned::__training::{DIFFICULTY_FITTED, DIFFICULTY_FITTED_CENTRE};
    let train = signals::benchmarks(dir, Part::Train)?;
    let fit = signals::fit_difficulty(&train)?;
    println!("fitted on {} training rows:", fit.rows);
    for b in &train {
        println!("  {} ({}): {} rows", b.name, b.rows, b.data.len());
    }
    println!("coefficient of the hand-set difficulty: {:.4}\n", fit.base_coefficient);
    println!("| feature | fitted weight | shipped |\n|---|---|---|");
    for ((name, w), shipped) in fit.names.iter().zip(&fit.weights).zip(DIFFICULTY_FITTED) {
        println!("| {name} | {w:.4} | {shipped:.4} |");
    }
    println!("| centre | {:.4} | {:.4} |", fit.centre, DIFFICULTY_FITTED_CENTRE);
    let weights: Vec<String> = fit.weights.iter().map(|w| format!("{w:.4}")).collect();
    println!("\nsrc/classify/difficulty.rs:\npub const FITTED: [f64; FEATURES] = [{}];", weights.join(", "));
    println!("pub const FITTED_CENTRE: f64 = {:.4};", fit.centre);
    Ok(())
}
