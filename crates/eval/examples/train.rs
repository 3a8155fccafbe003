//! Trains a [`LearnedModel`] on a labelled routing data set and saves it.
//!
//! ```text
//! cargo run --release --example train -- [--data routerbench|mmlu|gsm8k|mmlu+gsm8k|FILE.jsonl] [--out MODEL.swlm]
//!                                        [--split train] [--all-rows] [--l2 3,30,300] [--epochs 10]
//!                                        [--drop-reversed] [--data-dir DIR]
//! ```
//!
//! - `routerbench` (the default): `routerbench_arc_mbpp_winogrande.jsonl.gz`, rows with
//!   `split_routerdc == train` (2,217); `evaluate --router learned` reports on `test`.
//! - `mmlu`, `gsm8k`, `mmlu+gsm8k`: `routellm_mmlu_gsm8k.jsonl.gz` without contaminated rows; rows
//!   `i % 5 != 0` (folds 2 to 5 of `evaluate`'s 5-fold split) unless `--all-rows`.
//! - `FILE.jsonl`: a data set in switchyard's own format (`docs/evaluation.md`), every row.
//!
//! Before training, the label audit ([`switchyard_eval::audit`]) prints every task on which the
//! strongest model is clearly weaker than another; `--drop-reversed` trains without those tasks'
//! rows (nothing is dropped otherwise).
//!
//! The model goes to `--out` (default `target/<data>.swlm`). Data sets are read from the
//! repository's `data/` (gzip-compressed), or from `--data-dir DIR`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use switchyard::{Error, ErrorKind, Result};
use switchyard_eval::audit::{DEFAULT_MIN_Z, audit};
use switchyard_eval::data::{Dataset, Format, SplitKind};
use switchyard_eval::train::{Progress, Stage};
use switchyard_eval::{TrainConfig, Trainer};

const USAGE: &str = "usage: train [--data routerbench|mmlu|gsm8k|mmlu+gsm8k|FILE.jsonl] [--out MODEL.swlm] \
                     [--split train] [--all-rows] [--l2 3,30,300] [--epochs 10] [--drop-reversed] [--data-dir DIR]";

fn usage(msg: &str) -> Error {
    Error::new(ErrorKind::Config, format!("{msg}\n{USAGE}"))
}

struct Args {
    data: String,
    out: Option<PathBuf>,
    split: String,
    all_rows: bool,
    config: TrainConfig,
    drop_reversed: bool,
    data_dir: PathBuf,
}

fn args() -> Result<Args> {
    let mut a = Args {
        data: "routerbench".into(),
        out: None,
        split: "train".into(),
        all_rows: false,
        config: TrainConfig::default(),
        drop_reversed: false,
        data_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| usage(&format!("`{flag}` needs a value")));
        match flag.as_str() {
            "--data" => a.data = value()?,
            "--data-dir" => a.data_dir = value()?.into(),
            "--out" => a.out = Some(value()?.into()),
            "--split" => a.split = value()?,
            "--all-rows" => a.all_rows = true,
            "--l2" => {
                a.config.l2 = value()?
                    .split(',')
                    .map(|v| v.trim().parse::<f64>().map_err(|_| usage(&format!("`--l2`: `{v}` is not a number"))))
                    .collect::<Result<_>>()?;
            }
            "--epochs" => {
                a.config.epochs = value()?.parse().map_err(|_| usage("`--epochs` needs a positive integer"))?;
            }
            "--drop-reversed" => a.drop_reversed = true,
            "-h" | "--help" => return Err(usage("")),
            other => return Err(usage(&format!("unknown argument `{other}`"))),
        }
    }
    Ok(a)
}

/// The training rows and a description of them.
pub fn training_rows(dir: &Path, data: &str, split: &str, all_rows: bool) -> Result<(Dataset, String)> {
    match data {
        "routerbench" => {
            let all = Dataset::load(dir.join("routerbench_arc_mbpp_winogrande.jsonl.gz"), Format::RouterBench)?;
            Ok((all.in_split(SplitKind::RouterDc, split), format!("routerbench, split_routerdc == {split}")))
        }
        "mmlu" | "gsm8k" | "mmlu+gsm8k" => {
            let all = Dataset::load(dir.join("routellm_mmlu_gsm8k.jsonl.gz"), Format::RouteLlm)?.without_contaminated();
            let rows = if data == "mmlu+gsm8k" { all } else { all.of_task(data) };
            if all_rows {
                return Ok((rows, format!("{data} without contaminated rows, every row")));
            }
            let keep: Vec<usize> = (0..rows.len()).filter(|i| i % 5 != 0).collect();
            Ok((rows.subset(&keep)?, format!("{data} without contaminated rows, rows i % 5 != 0")))
        }
        file => Ok((Dataset::load(file, Format::Jsonl)?, format!("{file}, every row"))),
    }
}

fn main() {
    if let Err(e) = try_main() {
        eprintln!("train: {e}");
        std::process::exit(1);
    }
}

fn bar(p: &Progress, started: Instant) {
    let name = match p.stage {
        Stage::Features => "features".to_owned(),
        Stage::TaskFold(f) => format!("task head, fold {}", f + 1),
        Stage::TaskHead => "task head".to_owned(),
        Stage::Validation(k) => format!("choosing l2, candidate {}", k + 1),
        Stage::Residual => "per-model regressions".to_owned(),
        _ => "training".to_owned(),
    };
    let width = 30;
    let filled = (width * p.done).checked_div(p.total).unwrap_or(width).min(width);
    let loss = if p.loss.is_nan() { String::new() } else { format!(" loss {:.4}", p.loss) };
    eprint!(
        "\r{:<34} [{}{}] {:>5}/{:<5}{loss} {:>6.1}s",
        name,
        "#".repeat(filled),
        " ".repeat(width - filled),
        p.done,
        p.total,
        started.elapsed().as_secs_f64()
    );
    if p.done == p.total {
        eprintln!();
    }
    let _ = std::io::stderr().flush();
}

fn try_main() -> Result<()> {
    let args = args()?;
    let dir = &args.data_dir;
    let bundled = matches!(args.data.as_str(), "routerbench" | "mmlu" | "gsm8k" | "mmlu+gsm8k");
    let (mut rows, mut trained_on) = training_rows(dir, &args.data, &args.split, args.all_rows)?;
    if rows.is_empty() {
        return Err(usage(&format!("no training rows in `{trained_on}`")));
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let name = if bundled { args.data.replace('+', "_") } else { "model".to_owned() };
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target").join(format!("{name}.swlm"))
    });
    println!("training on {trained_on}: {} rows, {} models", rows.len(), rows.models().len());
    // Tasks whose labels say the strongest model is clearly weaker: worth a look before routing on them.
    let found = audit(&rows, DEFAULT_MIN_Z)?;
    for r in &found.reversals {
        println!("label audit: {r}");
    }
    if args.drop_reversed && !found.reversals.is_empty() {
        let kept = rows.filter(|r| !found.flags(r));
        trained_on = format!("{trained_on}, less the audit's reversed tasks ({})", found.flagged().join(", "));
        println!(
            "dropped {} rows of {}: training on {}",
            rows.len() - kept.len(),
            found.flagged().join(", "),
            kept.len()
        );
        rows = kept;
    }

    let started = Instant::now();
    let model = Trainer::new(args.config).on_progress(|p| bar(p, started)).fit(&rows, &trained_on)?;
    let secs = started.elapsed().as_secs_f64();
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| usage(&format!("cannot create `{}`: {e}", parent.display())))?;
    }
    model.save(&out)?;
    let info = model.info();
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!(
        "trained in {secs:.1} s: {} task labels, l2 {} (held-out log loss {}), dense features {}{}",
        info.tasks.len(),
        info.l2,
        info.validation_loss.map_or_else(|| "—".to_owned(), |l| format!("{l:.4}")),
        if info.dense_scale.is_empty() { "as computed" } else { "standardised" },
        if info.residual { "" } else { "; residuals left out: the task prior alone did better on held-out rows" }
    );
    println!("wrote {} ({:.1} MB)", out.display(), size as f64 / 1e6);
    Ok(())
}
