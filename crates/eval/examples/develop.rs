//! Development runs for the cross-benchmark protocols: everything here looks at training rows, or
//! at a third data set, never at the rows `evaluate --data gsm8k-to-mmlu` or `mmlu-to-gsm8k`
//! reports.
//!
//! ```text
//! cargo run --release --example develop -- --train gsm8k|mmlu|routerbench [--dev routerbench|folds|hold-out] [--set JSON]
//!     [--drop-reversed]
//! ```
//!
//! - `--train`: the benchmark trained on (RouteLLM's rows without contaminated ones), or
//!   `routerbench`: RouterBench's training split (`split_routerdc == train`, all eleven models),
//!   with `--dev folds` or `--dev hold-out` only. Its test split, which `evaluate` reports, is never
//!   read.
//! - `--dev routerbench` (the default): an out-of-distribution target that neither cross-benchmark
//!   protocol reports: RouterBench's 3,164 prompts (ARC, MBPP, Winogrande) with two of its models,
//!   GPT-4 (`gpt-4-1106-preview`) and Mixtral (`mistralai/mixtral-8x7b-chat`, named as RouteLLM
//!   names it), priced per call as RouteLLM prices them. The router is trained on every row of
//!   `--train`. Each of the three tasks is also reported on its own (the same choices, split by
//!   task), which tells ranking inside a task from ranking between tasks.
//! - `--dev folds`: 5-fold cross-validation inside the training benchmark's rows (row `i` in fold
//!   `i % 5`), pooled: the in-distribution signal. For `--train routerbench`, the folds of its
//!   training split.
//! - `--dev hold-out` (`--train routerbench` only): each task of RouterBench's training split held
//!   out in turn, trained on the other two: the development counterpart of `evaluate --hold-out`,
//!   which reports on every row of the task.
//! - `--set`: a JSON object merged into the default `TrainConfig` (`{"epochs": 30}`,
//!   `{"features": {"char_ngram": 0}}`, `{"residuals": "shared_difficulty"}`, `{"selection": "routing_auc"}`).
//! - `--drop-reversed`: each router is trained without the tasks on which
//!   [`audit`](switchyard_eval::audit) finds the strongest model clearly weaker, as `evaluate
//!   --drop-reversed` does (the audit of the rows it is trained on).
//!
//! Prints AIQ, the saving at 95% of GPT-4's accuracy and APGR, with the zero router's.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::Instant;

use switchyard::classify::LearnedClassifier;
use switchyard::cost::LearnedCostModel;
use switchyard::{Error, ErrorKind, Result, RouterBuilder, Utility};
use switchyard_eval::Trainer;
use switchyard_eval::audit::{DEFAULT_MIN_Z, audit};
use switchyard_eval::catalog::{FittedCatalog, Prices};
use switchyard_eval::cv::{self, cross_validate, k_fold};
use switchyard_eval::data::{Dataset, Format, Row, SplitKind};
use switchyard_eval::replay::{Report, Run, value_grid};
use switchyard_eval::train::patched_config;

const USAGE: &str =
    "usage: develop --train gsm8k|mmlu|routerbench [--dev routerbench|folds|hold-out] [--set JSON] [--drop-reversed]";
const STRONG: &str = "gpt-4-1106-preview";
const WEAK: &str = "mistralai/Mixtral-8x7B-Instruct-v0.1";

fn usage(msg: &str) -> Error {
    Error::new(ErrorKind::Config, format!("{msg}\n{USAGE}"))
}

fn main() {
    if let Err(e) = try_main() {
        eprintln!("develop: {e}");
        std::process::exit(1);
    }
}

/// RouterBench's rows with GPT-4 and Mixtral only, priced as RouteLLM prices them.
fn routerbench_pair(dir: &Path) -> Result<Dataset> {
    let all = Dataset::load(dir.join("routerbench_arc_mbpp_winogrande.jsonl.gz"), Format::RouterBench)?;
    let (s, w) = (
        all.model_index(STRONG).ok_or_else(|| usage("no GPT-4 in RouterBench"))?,
        all.model_index("mistralai/mixtral-8x7b-chat").ok_or_else(|| usage("no Mixtral in RouterBench"))?,
    );
    let m = all.models().len();
    let mut b = Dataset::builder([STRONG, WEAK]).name("routerbench, gpt-4 and mixtral");
    for (i, row) in all.rows().iter().enumerate() {
        let scores = [all.scores()[i * m + s], all.scores()[i * m + w]];
        b.push(Row::new(row.prompt()).with_task(row.task()), &scores, None)?;
    }
    b.build()?.with_cost_per_call([(STRONG, 24.7), (WEAK, 0.24)])
}

fn try_main() -> Result<()> {
    let (mut train, mut dev, mut patch, mut drop_reversed) = (None, "routerbench".to_owned(), None, false);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| usage(&format!("`{flag}` needs a value")));
        match flag.as_str() {
            "--train" => train = Some(value()?),
            "--dev" => dev = value()?,
            "--set" => patch = Some(value()?),
            "--drop-reversed" => drop_reversed = true,
            other => return Err(usage(&format!("unknown argument `{other}`"))),
        }
    }
    let train = train.ok_or_else(|| usage("`--train` is required"))?;
    if !matches!(train.as_str(), "gsm8k" | "mmlu" | "routerbench") {
        return Err(usage(&format!("unknown benchmark `{train}`")));
    }
    let routerbench = train == "routerbench";
    if (routerbench && dev == "routerbench") || (!routerbench && dev == "hold-out") {
        return Err(usage(
            "`--train routerbench` goes with `--dev folds` or `--dev hold-out`, and `hold-out` only with it",
        ));
    }
    let cfg = patched_config(patch.as_deref().unwrap_or("{}")).map_err(|e| usage(&format!("`--set`: {e}")))?;
    // The repository's data sets (gzip-compressed; see data/README.md).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let (rows, prices) = if routerbench {
        let all = Dataset::load(dir.join("routerbench_arc_mbpp_winogrande.jsonl.gz"), Format::RouterBench)?;
        (all.in_split(SplitKind::RouterDc, "train"), Prices::load(dir.join("models.json.gz"), "routerbench")?)
    } else {
        let all = Dataset::load(dir.join("routellm_mmlu_gsm8k.jsonl.gz"), Format::RouteLlm)?;
        (all.of_task(&train).without_contaminated(), Prices::load(dir.join("models.json.gz"), "routellm")?)
    };
    let grid = value_grid(&rows, 301)?;
    let t = Instant::now();
    let mut described = String::new();
    let fit_and_sweep = |fit: &Dataset, test: &Dataset, described: &mut String| -> Result<Vec<Run>> {
        let found = audit(fit, DEFAULT_MIN_Z)?;
        let kept;
        let fit = if drop_reversed {
            kept = fit.filter(|r| !found.flags(r));
            &kept
        } else {
            fit
        };
        let model = Trainer::new(cfg.clone()).fit(fit, "develop")?;
        let i = model.info();
        let trust = test.rows().iter().map(|r| model.predict(r.prompt()).trust).sum::<f64>() / test.len() as f64;
        *described = format!(
            "l2 {}, residual {}, held-out log loss {}, dense features {}, mean trust {trust:.2}",
            i.l2,
            i.residual,
            i.validation_loss.map_or_else(|| "-".to_owned(), |l| format!("{l:.5}")),
            if i.dense_scale.is_empty() { "as computed" } else { "standardised" }
        );
        if drop_reversed {
            described.push_str(&format!("; trained without {}", found.flagged().join(", ")));
        }
        let catalog = FittedCatalog::fit(fit, &prices)?;
        let router = RouterBuilder::new()
            .cost_model(LearnedCostModel::new(catalog.catalog()))
            .catalog(catalog.catalog().clone())
            .classifier(LearnedClassifier::new(model), 1.0)
            .build()?;
        cv::sweep_policy(test, &router, &grid, |v| Utility::new().answer_value(v))
    };
    let saving = |s: &switchyard_eval::replay::Summary| s.cost_at(0.95).map_or(f64::NAN, |c| 100.0 * (1.0 - c));
    if dev == "hold-out" {
        // Each task of the training rows held out in turn: a new task, inside the training rows.
        let cost90 = |s: &switchyard_eval::replay::Summary| s.cost_at(0.90).map_or(f64::NAN, |c| 100.0 * c);
        for split in cv::leave_one_task_out(&rows)? {
            let runs = fit_and_sweep(&split.train, &split.test, &mut described)?;
            let report = Report::new(&split.test, &runs)?;
            println!(
                "{train}, {} ({} rows); {described}: router AIQ {:.3} cost@90 {:.1}% saving@95 {:.1}% | zero router \
                 AIQ {:.3} cost@90 {:.1}% saving@95 {:.1}%",
                split.name,
                split.test.len(),
                report.router.aiq.unwrap_or(f64::NAN),
                cost90(&report.router),
                saving(&report.router),
                report.zero_router.aiq.unwrap_or(f64::NAN),
                cost90(&report.zero_router),
                saving(&report.zero_router),
            );
        }
        println!("{:.1} s", t.elapsed().as_secs_f64());
        return Ok(());
    }
    let (report, what) = match dev.as_str() {
        "routerbench" => {
            let test = routerbench_pair(&dir)?;
            let runs = fit_and_sweep(&rows, &test, &mut described)?;
            if let Some(top) = runs.last() {
                println!(
                    "  at the top of the sweep: {:.1}% of rows to {STRONG}",
                    100.0 * top.shares[test.model_index(STRONG).unwrap_or(0)]
                );
            }
            // Each task of the target on its own.
            for task in ["arc-challenge", "mbpp", "winogrande"] {
                let part = test.of_task(task);
                let at: Vec<usize> = (0..test.len()).filter(|&i| test.rows()[i].task() == task).collect();
                let part_runs = runs
                    .iter()
                    .map(|r| Run::from_choices(&part, r.knob, at.iter().map(|&i| r.choices[i]).collect()))
                    .collect::<Result<Vec<_>>>()?;
                let r = Report::new(&part, &part_runs)?;
                println!(
                    "  {task} ({} rows): router saving@95 {:.1}% APGR {:.3} | zero router saving@95 {:.1}%",
                    part.len(),
                    saving(&r.router),
                    r.router.apgr.unwrap_or(f64::NAN),
                    saving(&r.zero_router),
                );
            }
            (
                Report::new(&test, &runs)?,
                format!("trained on every {train} row, reported on routerbench (gpt-4, mixtral)"),
            )
        }
        "folds" => {
            let splits = k_fold(&rows, 5)?;
            let runs = cross_validate(&rows, &splits, |s| fit_and_sweep(&s.train, &s.test, &mut described))?;
            (Report::new(&rows, &runs)?, format!("{train}, 5-fold cross-validation inside the training rows"))
        }
        other => return Err(usage(&format!("unknown dev protocol `{other}`"))),
    };
    println!("{what}; {described}; {:.1} s", t.elapsed().as_secs_f64());
    println!(
        "router AIQ {:.3} saving@95 {:.1}% APGR {:.3} | zero router AIQ {:.3} saving@95 {:.1}%",
        report.router.aiq.unwrap_or(f64::NAN),
        saving(&report.router),
        report.router.apgr.unwrap_or(f64::NAN),
        report.zero_router.aiq.unwrap_or(f64::NAN),
        saving(&report.zero_router),
    );
    Ok(())
}
