//! Measures routing offline on public data: fits a catalog (and, for the learned router, trains a
//! [`LearnedModel`](switchyard::classify::LearnedModel)) on the training rows, sweeps [`Utility`]'s
//! answer value `V` over the reported rows, and compares the operating points with the single models, the zero
//! router and the oracle.
//!
//! ```text
//! cargo run --release --example evaluate -- [--data routerbench|mmlu|gsm8k|mmlu-to-gsm8k|gsm8k-to-mmlu|routellm-to-mt-bench]
//!     [--router learned|heuristic] [--model FILE.swlm] [--split test] [--cv 5] [--hold-out TASK]
//!     [--points 301] [--weak MODEL] [--json out.json] [--svg out.svg] [--data-dir DIR]
//!     [--calibrate quality=0.95|share=0.2|spend=0.3] [--config-out router.toml] [--bootstrap 1000]
//!     [--set JSON] [--drop-reversed]
//! ```
//!
//! - `--router learned` (the default): a [`LearnedClassifier`] trained on the training rows (or
//!   loaded from `--model`, which must have been trained on the same rows: `examples/train.rs`);
//!   `heuristic`: the built-in difficulty and intent classifiers with abilities fitted on the
//!   training rows.
//! - `--cv K`: K-fold cross-validation over every row (row `i` in fold `i % K`); each fold's rows
//!   are routed by a router trained on the other folds, and the pooled choices are reported.
//! - `--hold-out TASK` (RouterBench): train on the other tasks, report on `TASK`.
//! - `mmlu-to-gsm8k`: train on MMLU, report on GSM8K; `gsm8k-to-mmlu`: train on GSM8K, report on MMLU;
//!   `routellm-to-mt-bench`: train on every MMLU and GSM8K row, report on MT-Bench's questions
//!   (`routellm_mt_bench.jsonl`, first turns, judge scores divided by 10), all without
//!   contaminated rows.
//!
//! - `routerbench`: `routerbench_arc_mbpp_winogrande.jsonl`, trained on `split_routerdc == train`,
//!   reported on `split_routerdc == <split>` (default `test`, 947 rows).
//! - `mmlu`, `gsm8k`: that benchmark of `routellm_mmlu_gsm8k.jsonl` without contaminated rows; no
//!   published split, so rows `i % 5 == 0` (fold 0 of 5) are reported and the rest trained on
//!   (`--split` is ignored).
//! - `--weak`: the weak model of APGR and CPT (default: the cheapest single model other than the best).
//! - `--svg`: the cost–quality plot; needs the `plot` feature (`--features plot`).
//! - `--calibrate`: carves a calibration slice out of the training rows (every 5th, `j % 5 == 0`),
//!   fits the catalog on the other training rows, finds the `V` that meets the target on the slice
//!   and reports the reported rows' operating point at that `V`; `--config-out` writes the router
//!   config (TOML) with that `V`.
//! - `--bootstrap N`: 95% percentile intervals of AIQ and the saving at 95% (router, zero router,
//!   difference) and of the calibrated point, over `N` resamples of the reported rows with the
//!   router's choices held fixed ([`switchyard_eval::bootstrap`]); default 1000, 0 turns them off.
//! - `--set`: a JSON object merged into the default `TrainConfig` of the learned router
//!   (`{"min_trust": 1}`), as `examples/develop.rs` takes it.
//! - `--drop-reversed`: leaves out of the training rows every task (subject, where every row has
//!   one) on which [`audit`](switchyard_eval::audit) finds a model that is stronger overall clearly
//!   weaker ([`DEFAULT_MIN_Z`]). Without it the audit's findings are printed and nothing is dropped.
//!
//! `V` is swept over `--points` values of [`value_grid`]'s range (ten decades around the dearest
//! model's mean cost per training row), and `--calibrate` searches the same range of the calibration
//! rows. Costs are the data set's actual per-row costs of the chosen model (RouteLLM: its price per call).
//! The data sets are the repository's `data/` (gzip-compressed), or `--data-dir DIR`; a missing file
//! is an error that names it.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use switchyard::classify::{LearnedClassifier, LearnedModel};
use switchyard::config::{ClassifierConfig, PolicyConfig, RouterConfig};
use switchyard::cost::LearnedCostModel;
use switchyard::{Error, ErrorKind, Result, Router, RouterBuilder, Utility};
use switchyard_eval::audit::{DEFAULT_MIN_Z, audit};
use switchyard_eval::bootstrap::{
    BootstrapOptions, CurveIntervals, Interval, PointIntervals, bootstrap, bootstrap_point,
};
use switchyard_eval::calibrate::{Calibration, Search, Target, calibrate_with};
use switchyard_eval::catalog::{FittedCatalog, Prices};
use switchyard_eval::cv::{self, cross_validate, k_fold};
use switchyard_eval::data::{Dataset, Format, SplitKind};
use switchyard_eval::replay::{Report, ReportOptions, Run, Summary, replay, sweep, value_grid, value_range};
use switchyard_eval::train::patched_config;
use switchyard_eval::{TrainConfig, Trainer};

const USAGE: &str = "usage: evaluate [--data routerbench|mmlu|gsm8k|mmlu-to-gsm8k|gsm8k-to-mmlu|routellm-to-mt-bench] [--router learned|heuristic] \
                     [--model FILE.swlm] [--split test] [--cv K] [--hold-out TASK] [--points 301] [--weak MODEL] \
                     [--json out.json] [--svg out.svg] [--calibrate quality=F|share=F|spend=F] [--config-out router.toml] \
                     [--bootstrap N] [--set JSON] [--drop-reversed] [--data-dir DIR]";

struct Args {
    data: String,
    learned: bool,
    model: Option<PathBuf>,
    cv: Option<usize>,
    hold_out: Option<String>,
    split: String,
    points: usize,
    weak: Option<String>,
    json: Option<PathBuf>,
    svg: Option<PathBuf>,
    calibrate: Option<Target>,
    config_out: Option<PathBuf>,
    bootstrap: usize,
    /// `--set`: the learned router's training configuration, when given.
    train_config: Option<TrainConfig>,
    /// `--drop-reversed`: train without the tasks the label audit flags.
    drop_reversed: bool,
    data_dir: PathBuf,
}

fn usage(msg: &str) -> Error {
    Error::new(ErrorKind::Config, format!("{msg}\n{USAGE}"))
}

fn args() -> Result<Args> {
    let mut a = Args {
        data: "routerbench".into(),
        learned: true,
        model: None,
        cv: None,
        hold_out: None,
        split: "test".into(),
        points: 301,
        weak: None,
        json: None,
        svg: None,
        calibrate: None,
        config_out: None,
        bootstrap: BootstrapOptions::DEFAULT_RESAMPLES,
        train_config: None,
        drop_reversed: false,
        data_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| usage(&format!("`{flag}` needs a value")));
        match flag.as_str() {
            "--data" => a.data = value()?,
            "--data-dir" => a.data_dir = value()?.into(),
            "--router" => {
                a.learned = match value()?.as_str() {
                    "learned" => true,
                    "heuristic" => false,
                    other => return Err(usage(&format!("unknown router `{other}`"))),
                }
            }
            "--model" => a.model = Some(value()?.into()),
            "--cv" => {
                let k: usize = value()?.parse().map_err(|_| usage("`--cv` needs an integer >= 2"))?;
                a.cv = Some(k);
            }
            "--hold-out" => a.hold_out = Some(value()?),
            "--split" => a.split = value()?,
            "--points" => {
                a.points = value()?.parse().map_err(|_| usage("`--points` needs an integer of at least 2"))?;
                if a.points < 2 {
                    // One point would be the cheapest end of the range alone, without the strongest model.
                    return Err(usage("`--points` needs an integer of at least 2"));
                }
            }
            "--weak" => a.weak = Some(value()?),
            "--json" => a.json = Some(value()?.into()),
            "--svg" => a.svg = Some(value()?.into()),
            "--calibrate" => a.calibrate = Some(value()?.parse().map_err(|e: Error| usage(&e.to_string()))?),
            "--config-out" => a.config_out = Some(value()?.into()),
            "--bootstrap" => {
                a.bootstrap = value()?.parse().map_err(|_| usage("`--bootstrap` needs an integer >= 0"))?;
            }
            "--set" => {
                a.train_config = Some(patched_config(&value()?).map_err(|e| usage(&format!("`--set`: {e}")))?);
            }
            "--drop-reversed" => a.drop_reversed = true,
            "-h" | "--help" => return Err(usage("")),
            other => return Err(usage(&format!("unknown argument `{other}`"))),
        }
    }
    if a.model.is_some() && a.drop_reversed {
        return Err(usage("`--model` was trained elsewhere: `--drop-reversed` applies to models trained here"));
    }
    if a.model.is_some() && !a.learned {
        return Err(usage("`--model` is a learned model: drop `--router heuristic`"));
    }
    if a.train_config.is_some() && (!a.learned || a.model.is_some()) {
        return Err(usage("`--set` configures the learned router's training: no `--router heuristic` or `--model`"));
    }
    if a.data == MT_BENCH && (a.cv.is_some() || a.hold_out.is_some() || a.calibrate.is_some()) {
        return Err(usage(&format!(
            "`--data {MT_BENCH}` trains on every MMLU and GSM8K row: no `--cv`, `--hold-out` or `--calibrate`"
        )));
    }
    if (a.cv.is_some() || a.hold_out.is_some()) && (a.calibrate.is_some() || a.model.is_some()) {
        return Err(usage("`--cv` and `--hold-out` train one router per split: no `--calibrate` or `--model`"));
    }
    if a.config_out.is_some() && a.calibrate.is_none() {
        return Err(usage("`--config-out` writes a calibrated config: give `--calibrate` too"));
    }
    if a.svg.is_some() && !cfg!(feature = "plot") {
        return Err(usage(
            "`--svg` needs the `plot` feature: cargo run --release --example evaluate --features plot -- --svg out.svg",
        ));
    }
    Ok(a)
}

fn main() {
    if let Err(e) = try_main() {
        eprintln!("evaluate: {e}");
        std::process::exit(1);
    }
}

/// A data set's rows, split, with a description of each part.
struct Split {
    train: Dataset,
    train_desc: String,
    test: Dataset,
    test_desc: String,
    /// The calibration slice carved out of the training rows, when calibrating.
    calibration: Option<(Dataset, String)>,
}

/// Trained on every MMLU and GSM8K row, reported on MT-Bench.
const MT_BENCH: &str = "routellm-to-mt-bench";

/// The benchmark trained on and the one reported on, for `mmlu-to-gsm8k` and `gsm8k-to-mmlu`.
fn cross_benchmark(data: &str) -> Option<(&'static str, &'static str)> {
    match data {
        "mmlu-to-gsm8k" => Some(("mmlu", "gsm8k")),
        "gsm8k-to-mmlu" => Some(("gsm8k", "mmlu")),
        _ => None,
    }
}

/// Rows `i % 5 == 0` of `rows`, and the others.
fn fold0(rows: &Dataset) -> Result<(Dataset, Dataset)> {
    let (held, rest): (Vec<usize>, Vec<usize>) = (0..rows.len()).partition(|i| i % 5 == 0);
    Ok((rows.subset(&held)?, rows.subset(&rest)?))
}

fn split(args: &Args, all: &Dataset, format: Format) -> Result<Split> {
    let (train, test, train_desc, test_desc) = if let Some(task) = &args.hold_out {
        let rows = if format == Format::RouterBench { all.filter(|_| true) } else { all.without_contaminated() };
        (
            rows.filter(|r| r.task() != task),
            rows.of_task(task),
            format!("every task but {task}"),
            format!("{task} (held out)"),
        )
    } else if let Some((from, to)) = cross_benchmark(&args.data) {
        let rows = all.without_contaminated();
        (
            rows.of_task(from),
            rows.of_task(to),
            format!("{from} without contaminated rows"),
            format!("{to} without contaminated rows (a benchmark never trained on)"),
        )
    } else if format == Format::RouterBench {
        (
            all.in_split(SplitKind::RouterDc, "train"),
            all.in_split(SplitKind::RouterDc, &args.split),
            "split_routerdc == train".to_owned(),
            format!("split_routerdc == {}", args.split),
        )
    } else {
        let rows = all.of_task(&args.data).without_contaminated();
        let (test, train) = fold0(&rows)?;
        (
            train,
            test,
            format!("{} without contaminated rows, rows i % 5 != 0", args.data),
            format!("{} without contaminated rows, rows i % 5 == 0", args.data),
        )
    };
    if test.is_empty() {
        return Err(usage(&format!("no rows in `{test_desc}`")));
    }
    if args.calibrate.is_none() {
        return Ok(Split { train, train_desc, test, test_desc, calibration: None });
    }
    let (cal, fit) = fold0(&train)?;
    Ok(Split {
        train: fit,
        train_desc: format!("{train_desc}, less every 5th of those rows (j % 5 == 0)"),
        test,
        test_desc,
        calibration: Some((cal, format!("{train_desc}, every 5th of those rows (j % 5 == 0; never reported)"))),
    })
}

/// What `--json` writes: the settings, the report, the calibration and the timings.
#[derive(Serialize)]
struct Output<'a> {
    data: &'a str,
    trained_on: &'a str,
    train_rows: usize,
    reported_on: &'a str,
    policy: &'static str,
    router: String,
    value_grid: &'a [f64],
    report: &'a Report,
    calibration: Option<CalibrationOutput<'a>>,
    /// `--bootstrap`: intervals of the curve figures; `None` with `--bootstrap 0`.
    bootstrap: Option<CurveIntervals>,
    seconds: Timings,
}

/// A calibration and what its knob does on the reported rows.
#[derive(Serialize)]
struct CalibrationOutput<'a> {
    calibrated_on: &'a str,
    calibration: &'a Calibration,
    reported: &'a Run,
    reported_strong_share: f64,
    reported_quality_fraction: f64,
    reported_cost_fraction: f64,
    /// `--bootstrap`: intervals of the reported quality and cost fractions.
    reported_bootstrap: Option<PointIntervals>,
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
    let dir = &args.data_dir;
    let (file, format, section) = match args.data.as_str() {
        "routerbench" => ("routerbench_arc_mbpp_winogrande.jsonl.gz", Format::RouterBench, "routerbench"),
        "mmlu" | "gsm8k" | "mmlu-to-gsm8k" | "gsm8k-to-mmlu" | MT_BENCH => {
            ("routellm_mmlu_gsm8k.jsonl.gz", Format::RouteLlm, "routellm")
        }
        other => return Err(usage(&format!("unknown data set `{other}`"))),
    };

    let t = Instant::now();
    let all = Dataset::load(dir.join(file), format)?;
    let prices = Prices::load(dir.join("models.json.gz"), section)?;
    let load = t.elapsed().as_secs_f64();
    if let Some(k) = args.cv {
        return cross_validation(&args, &all, format, &prices, k, load);
    }
    let s = if args.data == MT_BENCH {
        let mt = Dataset::load(dir.join("routellm_mt_bench.jsonl.gz"), Format::MtBench)?.without_contaminated();
        Split {
            train: all.without_contaminated(),
            train_desc: "mmlu and gsm8k without contaminated rows".to_owned(),
            test: mt,
            test_desc: "mt-bench without contaminated rows, first turns (a benchmark never trained on)".to_owned(),
            calibration: None,
        }
    } else {
        split(&args, &all, format)?
    };
    if args.split == "train" && format == Format::RouterBench && args.hold_out.is_none() {
        println!("warning: reporting on the training rows the router was fitted on\n");
    }

    let t = Instant::now();
    let fitted = Fitted::new(&args, &s.train, &s.train_desc, &prices)?;
    let fit = t.elapsed().as_secs_f64();
    let build = |value: f64| fitted.build(value);

    let t = Instant::now();
    let grid = value_grid(&s.train, args.points)?;
    let runs = fitted.sweep(&s.test, &grid)?;
    let sweep_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let report = Report::with_options(&s.test, &runs, &report_options(&args))?;
    let report_secs = t.elapsed().as_secs_f64();
    let timings = Timings { load, fit, sweep: sweep_secs, report: report_secs };

    let desc = Described {
        router: fitted.describe(),
        train: &s.train_desc,
        train_rows: s.train.len(),
        test: &s.test_desc,
        values: ends(&grid),
    };
    print_report(&args, &report, &desc, timings);
    fitted.print_reading(&s.test, &report.best_single.model);
    let intervals = print_bootstrap(&args, &s.test, &runs)?;

    let calibrated = match (&s.calibration, args.calibrate) {
        (Some((rows, desc)), Some(target)) => Some(calibrate_and_replay(rows, desc, target, &s.test, &report, build)?),
        _ => None,
    };
    let calibrated_intervals = match &calibrated {
        Some((_, run)) => print_point_bootstrap(&args, &s.test, run, &report.best_single.model)?,
        None => None,
    };
    if let (Some((c, _)), Some(out)) = (&calibrated, &args.config_out) {
        let mut config = fitted.config(out)?;
        c.apply(&mut config)?;
        write(out, &config.to_toml_string()?)?;
        println!("wrote {} (Utility, answer_value_usd = {:.6e}; add providers when loading it)", out.display(), c.knob);
    }

    if let Some(out) = &args.svg {
        write_svg(&report, &s.test_desc, out)?;
        println!("wrote {}", out.display());
    }
    if let Some(out) = &args.json {
        let calibration = match (&calibrated, &s.calibration) {
            (Some((c, run)), Some((_, desc))) => Some(CalibrationOutput {
                calibrated_on: desc,
                calibration: c,
                reported: run,
                reported_strong_share: run.shares[report.gap_models.as_ref().map_or(0, |g| g.strong_index)],
                reported_quality_fraction: run.point.quality / report.best_single.point.quality,
                reported_cost_fraction: run.point.cost / report.best_single.point.cost,
                reported_bootstrap: calibrated_intervals,
            }),
            _ => None,
        };
        let output = Output {
            data: &args.data,
            trained_on: &s.train_desc,
            train_rows: s.train.len(),
            reported_on: &s.test_desc,
            policy: "utility (V·p − c, the answer value V swept)",
            router: fitted.describe(),
            value_grid: &grid,
            report: &report,
            calibration,
            bootstrap: intervals,
            seconds: timings,
        };
        let text = serde_json::to_string_pretty(&output)
            .map_err(|e| Error::new(ErrorKind::Config, format!("cannot serialize the report: {e}")))?;
        write(out, &text)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .map_err(|e| Error::new(ErrorKind::Config, format!("cannot write `{}`: {e}", path.display())).with_source(e))
}

#[cfg(feature = "plot")]
fn write_svg(report: &Report, reported_on: &str, out: &Path) -> Result<()> {
    use switchyard_eval::plot::{self, PlotOptions};
    let file = report.data.rsplit('/').next().unwrap_or(&report.data);
    let title = format!("{file}: {reported_on}, {} rows", report.rows);
    plot::write_svg(report, &PlotOptions::new().title(title), out)
}

#[cfg(not(feature = "plot"))]
fn write_svg(_: &Report, _: &str, _: &Path) -> Result<()> {
    Err(usage("`--svg` needs the `plot` feature"))
}

/// Calibrates `V` on the calibration rows, prints it, and replays the reported rows at it.
fn calibrate_and_replay(
    rows: &Dataset,
    desc: &str,
    target: Target,
    test: &Dataset,
    report: &Report,
    build: impl Fn(f64) -> Result<Router>,
) -> Result<(Calibration, Run)> {
    let t = Instant::now();
    let (lo, hi) = value_range(rows)?;
    let c = calibrate_with(rows, target, &Search::new().range(lo, hi), &build)?;
    let run = replay(&build(c.knob)?, test)?;
    let best = report.best_single.point;
    let strong = report.gap_models.as_ref().map_or(0, |g| g.strong_index);
    println!("\ncalibration ({target}) on {desc}: {} rows", c.rows);
    println!(
        "  V = ${:.6e} ({} replays, {:.3} s): quality {:.3} = {:.1}% of {}'s, cost {:.1}% of its cost, {:.1}% of calls to it",
        c.knob,
        c.evaluations,
        t.elapsed().as_secs_f64(),
        c.point.quality,
        100.0 * c.quality_fraction,
        short(&c.strong_model),
        100.0 * c.cost_fraction,
        100.0 * c.strong_share
    );
    println!(
        "  on the reported rows at that V: quality {:.3} = {:.1}% of {}'s, cost {:.1}% of its cost, {:.1}% of calls to it",
        run.point.quality,
        100.0 * run.point.quality / best.quality,
        short(&report.best_single.model),
        100.0 * run.point.cost / best.cost,
        100.0 * run.shares[strong]
    );
    Ok((c, run))
}

/// `--bootstrap N`: prints the intervals of the curve figures over `N` resamples of `rows`.
fn print_bootstrap(args: &Args, rows: &Dataset, runs: &[Run]) -> Result<Option<CurveIntervals>> {
    if args.bootstrap == 0 {
        return Ok(None);
    }
    let t = Instant::now();
    let ci = bootstrap(rows, runs, &BootstrapOptions::new().resamples(args.bootstrap))?;
    let level = 100.0 * ci.level;
    println!(
        "\n{level:.0}% bootstrap intervals ({} resamples of the reported rows, the router's choices held fixed; {:.2} s):",
        ci.resamples,
        t.elapsed().as_secs_f64()
    );
    let target = 100.0 * ci.quality_target;
    let line = |name: &str, aiq: Option<Interval>, saving: Option<Interval>| {
        println!("  {name:<12} AIQ {}, saving at {target:.0}% {}", ci_num(aiq), ci_pct(saving));
    };
    let saving = |c: Option<Interval>| c.map(|c| c.map(|c| 1.0 - c));
    line("router:", ci.router.aiq, saving(ci.router.cost_at_quality));
    line("zero router:", ci.zero_router.aiq, saving(ci.zero_router.cost_at_quality));
    // The saving's difference is the zero router's cost fraction minus the router's.
    line("difference:", ci.difference.aiq, ci.difference.cost_at_quality.map(|d| d.map(|d| -d)));
    Ok(Some(ci))
}

/// `--bootstrap N` with `--calibrate`: prints the intervals of the calibrated point on `rows`.
fn print_point_bootstrap(args: &Args, rows: &Dataset, run: &Run, best: &str) -> Result<Option<PointIntervals>> {
    if args.bootstrap == 0 {
        return Ok(None);
    }
    let ci = bootstrap_point(rows, run, &BootstrapOptions::new().resamples(args.bootstrap))?;
    println!(
        "  {:.0}% bootstrap intervals ({} resamples of the reported rows): quality {} of {}'s, cost {} of its cost",
        100.0 * ci.level,
        ci.resamples,
        ci_pct(ci.quality_fraction),
        short(best),
        ci_pct(ci.cost_fraction)
    );
    Ok(Some(ci))
}

/// An interval's undefined resamples, if any, for the printout.
fn undefined(i: &Interval) -> String {
    if i.undefined == 0 { String::new() } else { format!(" ({} resamples undefined)", i.undefined) }
}

fn ci_num(i: Option<Interval>) -> String {
    i.map_or_else(|| "—".to_owned(), |i| format!("{:.3} [{:.3}, {:.3}]{}", i.estimate, i.lower, i.upper, undefined(&i)))
}

fn ci_pct(i: Option<Interval>) -> String {
    i.map_or_else(
        || "—".to_owned(),
        |i| format!("{:.1}% [{:.1}%, {:.1}%]{}", 100.0 * i.estimate, 100.0 * i.lower, 100.0 * i.upper, undefined(&i)),
    )
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

fn summary_row(name: &str, s: &Summary) {
    println!(
        "{:<14}{:>8}{:>11}{:>11}{:>11}{:>8}{:>9}{:>9}",
        name,
        num(s.aiq),
        pct(s.cost_at(0.90)),
        pct(s.cost_at(0.95)),
        pct(s.cost_at(0.99)),
        num(s.apgr),
        pct(s.cpt_at(0.5)),
        pct(s.cpt_at(0.8))
    );
}

/// The first and last values of a grid.
fn ends(grid: &[f64]) -> (f64, f64) {
    (grid.first().copied().unwrap_or(f64::NAN), grid.last().copied().unwrap_or(f64::NAN))
}

/// What was trained on what, for the printout.
struct Described<'a> {
    router: String,
    train: &'a str,
    train_rows: usize,
    test: &'a str,
    /// The answer values swept: the grid's ends.
    values: (f64, f64),
}

fn print_report(args: &Args, r: &Report, d: &Described<'_>, t: Timings) {
    let best = &r.best_single;
    println!("data: {} ({} models)", r.data, r.models.len());
    println!("trained on:  {} ({} rows)", d.train, d.train_rows);
    println!("reported on: {} ({} rows)", d.test, r.rows);
    println!(
        "router: Utility, V on a log grid {:.3e}..{:.3e} (the dearest model's mean cost per training row \
         times 2e-5..2e5), {} points; {}",
        d.values.0, d.values.1, args.points, d.router
    );
    println!(
        "best single model: {} (quality {:.3}, cost {:.4}); costs below are fractions of its cost",
        best.model, best.point.quality, best.point.cost
    );
    if let Some(g) = &r.gap_models {
        println!(
            "APGR and CPT: share of calls to {} (strong, {:.3}) against {} (weak, {:.3}{})\n",
            short(&g.strong.model),
            g.strong.point.quality,
            short(&g.weak.model),
            g.weak.point.quality,
            if args.weak.is_some() { ", --weak" } else { ", the cheapest other model" }
        );
    }

    println!(
        "{:<14}{:>8}{:>11}{:>11}{:>11}{:>8}{:>9}{:>9}",
        "", "AIQ", "cost@90%", "cost@95%", "cost@99%", "APGR", "CPT50%", "CPT80%"
    );
    summary_row("router", &r.router);
    summary_row("zero router", &r.zero_router);
    println!(
        "oracle: quality {:.3} at {:.1}% of the best model's cost",
        r.oracle.quality,
        100.0 * r.oracle_cost_fraction
    );
    if let Some(o) = &r.oracle_curve {
        let cpt = |i: usize| pct(o.cpt.get(i).and_then(|c| c.strong_share));
        println!(
            "two-model oracle (weak or strong only): APGR {}, CPT(50%) {}, CPT(80%) {}",
            num(o.apgr),
            cpt(0),
            cpt(1)
        );
    }
    match args.data.as_str() {
        _ if args.hold_out.is_some() => {}
        "mmlu-to-gsm8k" => println!(
            "reference (data/PROTOTYPE.md): a per-model regression trained on MMLU saved 26.7% on GSM8K; random 19.2%"
        ),
        MT_BENCH => println!(
            "reference (data/README.md, all MT-Bench questions): zero router saves 51% at 95% of GPT-4, oracle 92%; RouteLLM published 85%"
        ),
        "gsm8k-to-mmlu" => println!(
            "reference (../shared/data/PROTOTYPE.md): a per-model regression trained on GSM8K saved 47.7% on MMLU; random 31.9%"
        ),
        "routerbench" => println!(
            "reference (data/README.md, RouterDC test split): zero router AIQ 0.810, 59.0% at 95%; oracle 0.976 at 4.2%"
        ),
        "mmlu" => println!(
            "reference (data/README.md, all MMLU rows): zero router saves 32% at 95% of GPT-4, oracle 91%; RouteLLM published 45%"
        ),
        _ => println!(
            "reference (data/README.md, all GSM8K rows): zero router saves 19% at 95% of GPT-4, oracle 82%; RouteLLM published 35%"
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
    print_points(r);
    println!(
        "\ntime: load {:.3} s, fit {:.3} s, sweep {:.3} s ({} × {} routes), report {:.4} s",
        t.load, t.fit, t.sweep, args.points, r.rows, t.report
    );
}

fn print_points(r: &Report) {
    let best = &r.best_single;
    println!("\noperating points (consecutive repeats collapsed; shares of calls ≥ 1%):");
    println!("  {:>10}{:>9}{:>9}  shares", "V (USD)", "cost", "quality");
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
            "  {:>10.3e}{:>8.1}%{:>9.3}  {}",
            run.knob,
            100.0 * run.point.cost / best.point.cost,
            run.point.quality,
            shares.join(", ")
        );
    }
}

fn report_options(args: &Args) -> ReportOptions {
    let mut options = ReportOptions::new();
    if let Some(w) = &args.weak {
        options = options.weak_model(w.clone());
    }
    options
}

/// A router's parts, fitted on one set of training rows: the catalog, and the learned model.
struct Fitted {
    catalog: FittedCatalog,
    learned: Option<(LearnedClassifier, Option<PathBuf>)>,
    /// `--drop-reversed`: the tasks left out of the training rows, and how many rows they had.
    dropped: Option<(Vec<String>, usize)>,
}

impl Fitted {
    fn new(args: &Args, train: &Dataset, train_desc: &str, prices: &Prices) -> Result<Self> {
        // The label audit of the training rows: printed, and acted on with `--drop-reversed`.
        let found = audit(train, DEFAULT_MIN_Z)?;
        for r in &found.reversals {
            println!("label audit: {r}");
        }
        let mut dropped = None;
        let kept;
        let (train, train_desc) = if args.drop_reversed && !found.reversals.is_empty() {
            kept = train.filter(|r| !found.flags(r));
            let labels: Vec<String> = found.flagged().into_iter().map(str::to_owned).collect();
            let desc = format!("{train_desc}, less the audit's reversed tasks ({})", labels.join(", "));
            dropped = Some((labels, train.len() - kept.len()));
            (&kept, desc)
        } else {
            (train, train_desc.to_owned())
        };
        let train_desc = train_desc.as_str();
        let catalog = FittedCatalog::fit(train, prices)?;
        if !args.learned {
            return Ok(Self { catalog, learned: None, dropped });
        }
        let model = match &args.model {
            Some(path) => {
                let model = LearnedModel::load(path)?;
                if model.info().trained_on != train_desc {
                    println!(
                        "warning: `{}` was trained on `{}`, not on `{train_desc}`\n",
                        path.display(),
                        model.info().trained_on
                    );
                }
                model
            }
            None => Trainer::new(args.train_config.clone().unwrap_or_default()).fit(train, train_desc)?,
        };
        let learned = LearnedClassifier::new(model);
        learned.check_catalog(catalog.catalog())?;
        Ok(Self { catalog, learned: Some((learned, args.model.clone())), dropped })
    }

    fn builder(&self) -> RouterBuilder {
        match &self.learned {
            Some((l, _)) => RouterBuilder::new()
                .cost_model(LearnedCostModel::new(self.catalog.catalog()))
                .catalog(self.catalog.catalog().clone())
                .classifier(l.clone(), 1.0),
            None => self.catalog.builder(),
        }
    }

    fn build(&self, value: f64) -> Result<Router> {
        self.builder().policy(Utility::new().answer_value(value)).build()
    }

    /// The sweep: the learned router classifies each row once and re-ranks at every `V`.
    fn sweep(&self, test: &Dataset, grid: &[f64]) -> Result<Vec<Run>> {
        match &self.learned {
            Some(_) => cv::sweep_policy(test, &self.builder().build()?, grid, |v| Utility::new().answer_value(v)),
            None => sweep(test, grid, |l| self.build(l)),
        }
    }

    /// How the learned model reads the reported rows: their most likely tasks, their trust, and
    /// how often it expects the best single model to do worse than another.
    fn print_reading(&self, test: &Dataset, best: &str) {
        let Some((l, _)) = &self.learned else { return };
        let (model, n) = (l.model(), test.len().max(1) as f64);
        let info = model.info();
        let Some(b) = info.models.iter().position(|m| m.as_str() == best) else { return };
        let mut tasks = vec![0usize; info.tasks.len()];
        let (mut trust, mut below) = (0.0, 0usize);
        for row in test.rows() {
            let p = model.predict(row.prompt());
            if let Some((t, _)) = p.task {
                tasks[t] += 1;
            }
            trust += p.trust;
            below += usize::from(p.logits.iter().any(|&z| z > p.logits[b]));
        }
        let mut top: Vec<(usize, usize)> = tasks.into_iter().enumerate().filter(|&(_, c)| c > 0).collect();
        top.sort_by_key(|&(_, c)| std::cmp::Reverse(c));
        let top: Vec<String> =
            top.iter().take(3).map(|&(t, c)| format!("{} {:.1}%", info.tasks[t], 100.0 * c as f64 / n)).collect();
        println!(
            "
how the learned model reads the reported rows: mean trust {:.2}; {} predicted less likely than \
             another model on {:.1}% of them{}",
            trust / n,
            short(best),
            100.0 * below as f64 / n,
            if top.is_empty() { String::new() } else { format!("; most likely task: {}", top.join(", ")) },
        );
    }

    fn describe(&self) -> String {
        let router = self.describe_router();
        match &self.dropped {
            Some((labels, rows)) => format!("{router}; trained without {} ({rows} rows)", labels.join(", ")),
            None => router,
        }
    }

    fn describe_router(&self) -> String {
        match &self.learned {
            Some((l, _)) => {
                let i = l.model().info();
                let residual = if i.residual { "" } else { ", residuals left out" };
                let dense = if i.dense_scale.is_empty() { "" } else { ", dense features standardised" };
                format!("learned classifier ({} task labels, l2 {}{residual}{dense})", i.tasks.len(), i.l2)
            }
            None => format!("difficulty (offset {:+.3}) + intent classifiers", self.catalog.difficulty_offset()),
        }
    }

    /// The router config; a learned model is saved next to `config_path` when it was not loaded.
    fn config(&self, config_path: &Path) -> Result<RouterConfig> {
        let Some((learned, path)) = &self.learned else {
            return Ok(self.catalog.config(PolicyConfig::default()));
        };
        let model = match path {
            Some(p) => p.clone(),
            None => {
                let p = config_path.with_extension("swlm");
                learned.model().save(&p)?;
                println!("wrote {}", p.display());
                p
            }
        };
        Ok(RouterConfig::new(self.catalog.catalog().models().to_vec())
            .with_classifiers(vec![ClassifierConfig::Learned { weight: 1.0, model }]))
    }
}

/// `--cv K`: every row reported, each by a router trained on the other folds.
fn cross_validation(args: &Args, all: &Dataset, format: Format, prices: &Prices, k: usize, load: f64) -> Result<()> {
    let (rows, desc) = match format {
        Format::RouterBench => (all.filter(|_| true), "every row".to_owned()),
        _ => {
            let task = cross_benchmark(&args.data).map_or(args.data.as_str(), |(from, _)| from);
            (all.of_task(task).without_contaminated(), format!("{task} without contaminated rows"))
        }
    };
    let grid = value_grid(&rows, args.points)?;
    let t = Instant::now();
    let splits = k_fold(&rows, k)?;
    let mut router = String::new();
    let runs = cross_validate(&rows, &splits, |split| {
        let fitted = Fitted::new(args, &split.train, &split.name, prices)?;
        router = fitted.describe();
        println!(
            "{}: trained on {} rows, reporting {} ({:.1} s; {})",
            split.name,
            split.train.len(),
            split.test.len(),
            t.elapsed().as_secs_f64(),
            router
        );
        fitted.sweep(&split.test, &grid)
    })?;
    let fit_and_sweep = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let report = Report::with_options(&rows, &runs, &report_options(args))?;
    let timings = Timings { load, fit: fit_and_sweep, sweep: 0.0, report: t.elapsed().as_secs_f64() };
    let train = format!("{desc}, the other {} folds of each row's", k - 1);
    let test = format!("{desc}, {k}-fold cross-validation (row i in fold i % {k}), pooled");
    println!();
    print_report(
        args,
        &report,
        &Described { router, train: &train, train_rows: rows.len() * (k - 1) / k, test: &test, values: ends(&grid) },
        timings,
    );
    print_bootstrap(args, &rows, &runs)?;
    if let Some(out) = &args.svg {
        write_svg(&report, &test, out)?;
        println!("wrote {}", out.display());
    }
    if let Some(out) = &args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::new(ErrorKind::Config, format!("cannot serialize the report: {e}")))?;
        write(out, &text)?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
