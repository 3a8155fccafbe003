//! Measures routing offline on public data: fits a catalog on the training rows, sweeps
//! [`Utility`]'s `λ` with the built-in difficulty and intent classifiers over the reported rows, and
//! compares the operating points with the single models, the zero router and the oracle.
//!
//! ```text
//! cargo run --release --example evaluate -- [--data routerbench|mmlu|gsm8k] [--split test] [--points 50] [--json out.json]
//! ```
//!
//! - `routerbench`: `routerbench_arc_mbpp_winogrande.jsonl`, trained on `split_routerdc == train`,
//!   reported on `split_routerdc == <split>` (default `test`, 947 rows).
//! - `mmlu`, `gsm8k`: that benchmark of `routellm_mmlu_gsm8k.jsonl` without contaminated rows; no
//!   published split, so rows `i % 5 == 0` (fold 0 of 5) are reported and the rest trained on
//!   (`--split` is ignored).
//!
//! Costs are the data set's actual per-row costs of the chosen model (RouteLLM: its price per call).
//! The data sets live in `../shared/data/` next to the checkout; without them the example says how
//! to get them and exits.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use switchyard::eval::catalog::{FittedCatalog, Prices};
use switchyard::eval::data::{Dataset, Format, SplitKind};
use switchyard::eval::replay::{Report, Run, log_grid, sweep};
use switchyard::{Error, ErrorKind, Result, Utility};

const LAMBDA_MIN: f64 = 1e-3;
const LAMBDA_MAX: f64 = 1e3;

struct Args {
    data: String,
    split: String,
    points: usize,
    json: Option<PathBuf>,
}

fn usage(msg: &str) -> Error {
    Error::new(
        ErrorKind::Config,
        format!(
            "{msg}\nusage: evaluate [--data routerbench|mmlu|gsm8k] [--split test] [--points 50] [--json out.json]"
        ),
    )
}

fn args() -> Result<Args> {
    let mut a = Args { data: "routerbench".into(), split: "test".into(), points: 50, json: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| usage(&format!("`{flag}` needs a value")));
        match flag.as_str() {
            "--data" => a.data = value()?,
            "--split" => a.split = value()?,
            "--points" => {
                a.points = value()?.parse().map_err(|_| usage("`--points` needs a positive integer"))?;
                if a.points == 0 {
                    return Err(usage("`--points` needs a positive integer"));
                }
            }
            "--json" => a.json = Some(value()?.into()),
            "-h" | "--help" => return Err(usage("")),
            other => return Err(usage(&format!("unknown argument `{other}`"))),
        }
    }
    Ok(a)
}

fn main() {
    if let Err(e) = try_main() {
        eprintln!("evaluate: {e}");
        std::process::exit(1);
    }
}

/// What `--json` writes: the settings, the report and the timings.
#[derive(Serialize)]
struct Output<'a> {
    data: &'a str,
    trained_on: String,
    train_rows: usize,
    reported_on: String,
    policy: &'static str,
    classifiers: [&'static str; 2],
    lambda_grid: &'a [f64],
    report: &'a Report,
    seconds: Timings,
}

#[derive(Clone, Copy, Serialize)]
struct Timings {
    load: f64,
    fit: f64,
    sweep: f64,
    report: f64,
}

fn try_main() -> Result<()> {
    let args = args()?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let (file, format, section) = match args.data.as_str() {
        "routerbench" => ("routerbench_arc_mbpp_winogrande.jsonl", Format::RouterBench, "routerbench"),
        "mmlu" | "gsm8k" => ("routellm_mmlu_gsm8k.jsonl", Format::RouteLlm, "routellm"),
        other => return Err(usage(&format!("unknown data set `{other}`"))),
    };
    let path = dir.join(file);
    if !path.is_file() || !dir.join("models.json").is_file() {
        println!("no data at {}: it needs `{file}` and `models.json`.", dir.display());
        println!("Put the shared routing data sets (see issue 5 and `docs/evaluation.md`) in `../shared/data/`,");
        println!("next to this checkout, and run again.");
        return Ok(());
    }

    let t = Instant::now();
    let all = Dataset::load(&path, format)?;
    let prices = Prices::load(dir.join("models.json"), section)?;
    let (train, test, trained_on, reported_on) = if format == Format::RouterBench {
        (
            all.in_split(SplitKind::RouterDc, "train"),
            all.in_split(SplitKind::RouterDc, &args.split),
            "split_routerdc == train".to_owned(),
            format!("split_routerdc == {}", args.split),
        )
    } else {
        let rows = all.of_task(&args.data).without_contaminated();
        let (mut tr, mut te) = (Vec::new(), Vec::new());
        for i in 0..rows.len() {
            if i % 5 == 0 { te.push(i) } else { tr.push(i) }
        }
        (
            rows.subset(&tr)?,
            rows.subset(&te)?,
            format!("{} without contaminated rows, rows i % 5 != 0", args.data),
            format!("{} without contaminated rows, rows i % 5 == 0", args.data),
        )
    };
    if test.is_empty() {
        return Err(usage(&format!("no rows in `{reported_on}`")));
    }
    if args.split == "train" && format == Format::RouterBench {
        println!("warning: reporting on the training rows the catalog was fitted on\n");
    }
    let load = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let fitted = FittedCatalog::fit(&train, &prices)?;
    let fit = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let grid = log_grid(LAMBDA_MIN, LAMBDA_MAX, args.points);
    let runs = sweep(&test, &grid, |lambda| fitted.builder().policy(Utility::new().cost_weight(lambda)).build())?;
    let sweep_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let report = Report::new(&test, &runs)?;
    let report_secs = t.elapsed().as_secs_f64();
    let timings = Timings { load, fit, sweep: sweep_secs, report: report_secs };

    print_report(&args, &report, &fitted, &train, &trained_on, &reported_on, timings);

    if let Some(out) = &args.json {
        let output = Output {
            data: &args.data,
            trained_on,
            train_rows: train.len(),
            reported_on,
            policy: "utility (cost relative to the dearest candidate)",
            classifiers: ["difficulty", "intent"],
            lambda_grid: &grid,
            report: &report,
            seconds: timings,
        };
        let text = serde_json::to_string_pretty(&output)
            .map_err(|e| Error::new(ErrorKind::Config, format!("cannot serialize the report: {e}")))?;
        std::fs::write(out, text).map_err(|e| {
            Error::new(ErrorKind::Config, format!("cannot write `{}`: {e}", out.display())).with_source(e)
        })?;
        println!("\nwrote {}", out.display());
    }
    Ok(())
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_owned(), |x| format!("{:.1}%", 100.0 * x))
}

fn num(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_owned(), |x| format!("{x:.3}"))
}

fn short(model: &str) -> &str {
    model.rsplit('/').next().unwrap_or(model)
}

fn print_report(
    args: &Args,
    r: &Report,
    fitted: &FittedCatalog,
    train: &Dataset,
    trained_on: &str,
    reported_on: &str,
    t: Timings,
) {
    let best = &r.best_single;
    println!("data: {} ({} models)", r.data, r.models.len());
    println!("catalog fitted on: {trained_on} ({} rows)", train.len());
    println!("reported on:       {reported_on} ({} rows)", r.rows);
    println!(
        "router: Utility, λ on a log grid {LAMBDA_MIN:e}..{LAMBDA_MAX:e}, {} points; difficulty (offset {:+.3}) + intent classifiers",
        args.points,
        fitted.difficulty_offset()
    );
    println!(
        "best single model: {} (quality {:.3}, cost {:.4}); costs below are fractions of its cost\n",
        best.model, best.point.quality, best.point.cost
    );

    println!("{:<14}{:>8}{:>11}{:>11}{:>11}", "", "AIQ", "cost@90%", "cost@95%", "cost@99%");
    for (name, s) in [("router", &r.router), ("zero router", &r.zero_router)] {
        println!(
            "{:<14}{:>8}{:>11}{:>11}{:>11}",
            name,
            num(s.aiq),
            pct(s.cost_at(0.90)),
            pct(s.cost_at(0.95)),
            pct(s.cost_at(0.99))
        );
    }
    println!(
        "oracle: quality {:.3} at {:.1}% of the best model's cost",
        r.oracle.quality,
        100.0 * r.oracle_cost_fraction
    );
    match args.data.as_str() {
        "routerbench" => println!(
            "reference (../shared/data/README.md, RouterDC test split): zero router AIQ 0.810, 59.0% at 95%; oracle 0.976 at 4.2%"
        ),
        "mmlu" => println!(
            "reference (../shared/data/README.md, all MMLU rows): zero router saves 32% at 95% of GPT-4, oracle 91%; RouteLLM published 45%"
        ),
        _ => println!(
            "reference (../shared/data/README.md, all GSM8K rows): zero router saves 19% at 95% of GPT-4, oracle 82%; RouteLLM published 35%"
        ),
    }

    println!("\nsingle models:");
    for s in &r.singles {
        println!(
            "  {:<36} quality {:.3}  cost {:>6.1}%",
            short(&s.model),
            s.point.quality,
            100.0 * s.point.cost / best.point.cost
        );
    }

    println!("\noperating points (consecutive repeats collapsed; shares of calls ≥ 1%):");
    println!("  {:>10}{:>9}{:>9}  shares", "λ", "cost", "quality");
    let mut last: Option<&Run> = None;
    for run in &r.points {
        if last.is_some_and(|l| l.point == run.point) {
            continue;
        }
        last = Some(run);
        let mut shares: Vec<(usize, f64)> =
            run.shares.iter().copied().enumerate().filter(|(_, s)| *s >= 0.01).collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        let shares: Vec<String> =
            shares.iter().map(|(m, s)| format!("{} {:.0}%", short(&r.models[*m]), 100.0 * s)).collect();
        println!(
            "  {:>10.4}{:>8.1}%{:>9.3}  {}",
            run.knob,
            100.0 * run.point.cost / best.point.cost,
            run.point.quality,
            shares.join(", ")
        );
    }
    println!(
        "\ntime: load {:.3} s, fit {:.3} s, sweep {:.3} s ({} × {} routes), report {:.4} s",
        t.load, t.fit, t.sweep, args.points, r.rows, t.report
    );
}
