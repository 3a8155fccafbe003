//! How far the heuristic token estimate is from an exact tokenizer, and where its coefficients come from.
//!
//! [`HeuristicCounter`] estimates tokens from the counts of one scan ([`TextStats`]) with a linear
//! model. This example counts every prompt of the repository's routing data sets exactly with the Qwen3
//! tokenizer and compares:
//!
//! ```text
//! cargo run --release --example token_accuracy --features tokenizers
//! ```
//!
//! prints, per data set and pooled, the number of texts, the mean, median, 90th and 99th percentile
//! absolute percentage error, the mean signed error (bias) and the ratio of total estimated to total
//! exact tokens.
//!
//! ```text
//! cargo run --release --example token_accuracy --features tokenizers -- --fit
//! ```
//!
//! refits the coefficients: weighted least squares of the relative error on the training sets
//! (RouterBench's ARC, MBPP and Winogrande prompts and MMLU, each set weighted equally), reports the
//! fitted model on the training and the held-out sets (GSM8K, MT-Bench turns and the 4 KB English
//! sample), and prints the `Default` to paste into `src/classify/tokens.rs`.
//!
//! Data is read at run time from the repository's `data/` (`--data-dir DIR` to change it), each file
//! gzip-compressed: `routerbench_arc_mbpp_winogrande.jsonl.gz`, `routellm_mmlu_gsm8k.jsonl.gz`,
//! `routellm_mt_bench.jsonl.gz`, `tokenizers/sample-english-4k.txt.gz` and
//! `tokenizers/qwen3-tokenizer.json.gz`.

use std::error::Error;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::exit;

use switchyard::classify::{HeuristicCounter, HfTokenizer, TextStats, TokenCounter};

type BoxResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

fn main() {
    if let Err(e) = try_main() {
        eprintln!("error: {e}");
        exit(1);
    }
}

/// Sets the coefficients are fitted on; the others are held out.
const TRAIN: [&str; 4] = ["arc-challenge", "mbpp", "winogrande", "mmlu"];
/// Report order.
const SETS: [&str; 7] = ["arc-challenge", "mbpp", "winogrande", "mmlu", "gsm8k", "mt-bench", "sample-4k"];

/// A named count from the scan.
type Feature = (&'static str, fn(&TextStats) -> f64);

/// The model's features, in the order of [`HeuristicCounter`]'s coefficients.
const FEATURES: [Feature; 11] = [
    ("per_word", |s| f64::from(s.words)),
    ("per_long_word", |s| f64::from(s.long_words)),
    ("per_capital", |s| f64::from(s.capitals)),
    ("per_digit", |s| f64::from(s.digits)),
    ("per_spaced_digit", |s| f64::from(s.spaced_digits)),
    ("per_punct", |s| f64::from(s.punct)),
    ("per_repeated_punct", |s| f64::from(s.repeated_punct)),
    ("per_newline", |s| f64::from(s.newlines)),
    ("per_blank_line", |s| f64::from(s.blank_lines)),
    ("per_wide_char", |s| f64::from(s.wide_chars)),
    ("per_other_non_ascii", |s| f64::from(s.non_ascii_chars - s.wide_chars)),
];

struct Sample {
    set: &'static str,
    text: String,
    exact: usize,
    features: [f64; FEATURES.len()],
}

fn try_main() -> BoxResult<()> {
    let mut fit = false;
    let mut data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--fit" => fit = true,
            "--data-dir" => data = PathBuf::from(args.next().ok_or("`--data-dir` needs a directory")?),
            other => return Err(format!("unknown argument `{other}` (expected `--fit` or `--data-dir DIR`)").into()),
        }
    }

    let qwen = HfTokenizer::from_bytes("qwen3", &gunzip(&data.join("tokenizers/qwen3-tokenizer.json.gz"))?)?;
    let texts = load(&data)?;
    let exact = count_exact(&qwen, &texts)?;
    let samples: Vec<Sample> = texts
        .into_iter()
        .zip(exact)
        .map(|((set, text), exact)| {
            let stats = TextStats::of_text(&text);
            Sample { set, features: FEATURES.map(|(_, f)| f(&stats)), text, exact }
        })
        .collect();

    let mut out = std::io::stdout().lock();
    if fit {
        let beta = fit_coefficients(&samples)?;
        // Round as they will be written in the source, and report what the source will do.
        let beta = beta.map(|b| (b * 1000.0).round() / 1000.0);
        let estimate = |s: &Sample| -> BoxResult<usize> {
            let e: f64 = s.features.iter().zip(&beta).map(|(x, b)| x * b).sum();
            Ok(e.max(0.0).round() as usize)
        };
        writeln!(out, "Fitted on {} (each set weighted equally), relative squared error:\n", TRAIN.join(", "))?;
        report(&mut out, &samples, estimate)?;
        writeln!(out, "\nimpl Default for HeuristicCounter {{\n    fn default() -> Self {{\n        Self {{")?;
        for ((name, _), b) in FEATURES.iter().zip(&beta) {
            writeln!(out, "            {name}: {b:.3},")?;
        }
        writeln!(out, "        }}\n    }}\n}}")?;
        let default = HeuristicCounter::default();
        let mut differ = 0;
        for s in &samples {
            differ += usize::from(default.count(&s.text)? != estimate(s)?);
        }
        if differ == 0 {
            writeln!(out, "\n`HeuristicCounter::default()` uses these coefficients.")?;
        } else {
            writeln!(out, "\n`HeuristicCounter::default()` differs on {differ} texts: paste the coefficients above.")?;
        }
    } else {
        let counter = HeuristicCounter::default();
        writeln!(out, "HeuristicCounter::default() against Qwen3 (absolute percentage error per text):\n")?;
        report(&mut out, &samples, |s| Ok(counter.count(&s.text)?))?;
    }
    Ok(())
}

/// Every text with its data set: RouterBench prompts by task, RouteLLM prompts by benchmark, each
/// MT-Bench turn, and the English sample.
fn load(data: &Path) -> BoxResult<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    for row in read_jsonl(&data.join("routerbench_arc_mbpp_winogrande.jsonl.gz"))? {
        let set = match row["eval_name"].as_str() {
            Some("arc-challenge") => "arc-challenge",
            Some("mbpp") => "mbpp",
            Some("winogrande") => "winogrande",
            other => return Err(format!("RouterBench row with unknown `eval_name` {other:?}").into()),
        };
        out.push((set, string(&row["prompt"], "RouterBench `prompt`")?));
    }
    for row in read_jsonl(&data.join("routellm_mmlu_gsm8k.jsonl.gz"))? {
        let set = match row["benchmark"].as_str() {
            Some("mmlu") => "mmlu",
            Some("gsm8k") => "gsm8k",
            other => return Err(format!("RouteLLM row with unknown `benchmark` {other:?}").into()),
        };
        out.push((set, string(&row["prompt"], "RouteLLM `prompt`")?));
    }
    for row in read_jsonl(&data.join("routellm_mt_bench.jsonl.gz"))? {
        let turns = row["turns"].as_array().ok_or("MT-Bench row without a `turns` list")?;
        for turn in turns {
            out.push(("mt-bench", string(turn, "MT-Bench turn")?));
        }
    }
    let path = data.join("tokenizers/sample-english-4k.txt.gz");
    let sample = String::from_utf8(gunzip(&path)?).map_err(|e| format!("`{}`: {e}", path.display()))?;
    out.push(("sample-4k", sample));
    Ok(out)
}

/// The decompressed bytes of a gzip file.
fn gunzip(path: &Path) -> BoxResult<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot decompress `{}`: {e}", path.display()))?;
    Ok(bytes)
}

fn read_jsonl(path: &Path) -> BoxResult<Vec<serde_json::Value>> {
    let text = String::from_utf8(gunzip(path)?).map_err(|e| format!("`{}`: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        rows.push(serde_json::from_str(line).map_err(|e| format!("`{}` line {}: {e}", path.display(), i + 1))?);
    }
    Ok(rows)
}

fn string(value: &serde_json::Value, what: &str) -> BoxResult<String> {
    Ok(value.as_str().ok_or_else(|| format!("{what} is not a string"))?.to_owned())
}

/// Exact Qwen3 counts, on every core.
fn count_exact(qwen: &HfTokenizer, texts: &[(&'static str, String)]) -> BoxResult<Vec<usize>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = texts.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = texts
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().map(|(_, t)| qwen.count(t)).collect::<Result<Vec<_>, _>>()))
            .collect();
        let mut counts = Vec::with_capacity(texts.len());
        for h in handles {
            counts.extend(h.join().map_err(|_| "a counting thread panicked")??);
        }
        Ok(counts)
    })
}

/// Weighted least squares: minimises `Σ w_set · ((x·β − y) / y)²` with every training set weighing
/// the same in total, by the normal equations.
fn fit_coefficients(samples: &[Sample]) -> BoxResult<[f64; FEATURES.len()]> {
    const K: usize = FEATURES.len();
    let mut ata = [[0.0f64; K]; K];
    let mut aty = [0.0f64; K];
    for set in TRAIN {
        let members: Vec<&Sample> = samples.iter().filter(|s| s.set == set && s.exact > 0).collect();
        if members.is_empty() {
            return Err(format!("no texts in training set `{set}`").into());
        }
        let set_weight = 1.0 / members.len() as f64;
        for s in members {
            let y = s.exact as f64;
            let w = set_weight / (y * y);
            for ((row, rhs), xi) in ata.iter_mut().zip(&mut aty).zip(&s.features) {
                *rhs += w * xi * y;
                for (cell, xj) in row.iter_mut().zip(&s.features) {
                    *cell += w * xi * xj;
                }
            }
        }
    }
    solve(ata, aty)
        .ok_or_else(|| "the normal equations are singular: a feature never occurs in the training sets".into())
}

/// Gaussian elimination with partial pivoting.
fn solve<const K: usize>(mut a: [[f64; K]; K], mut y: [f64; K]) -> Option<[f64; K]> {
    for col in 0..K {
        let pivot = (col..K).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        y.swap(col, pivot);
        let (upper, lower) = a.split_at_mut(col + 1);
        let pivot_row = &upper[col];
        for (offset, row) in lower.iter_mut().enumerate() {
            let f = row[col] / pivot_row[col];
            for (cell, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *cell -= f * p;
            }
            y[col + 1 + offset] -= f * y[col];
        }
    }
    let mut x = [0.0; K];
    for row in (0..K).rev() {
        let tail: f64 = (row + 1..K).map(|c| a[row][c] * x[c]).sum();
        x[row] = (y[row] - tail) / a[row][row];
    }
    Some(x)
}

/// Prints one line per data set and for the pooled groups. `> 25%` is the share of texts whose error
/// is above [`ContextLength`](switchyard::classify::ContextLength)'s default margin.
fn report(out: &mut impl Write, samples: &[Sample], estimate: impl Fn(&Sample) -> BoxResult<usize>) -> BoxResult<()> {
    let mut rows: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut all = Vec::new();
    for s in samples.iter().filter(|s| s.exact > 0) {
        all.push((s, estimate(s)? as f64, s.exact as f64));
    }
    let group = |name: &str, keep: &dyn Fn(&Sample) -> bool| -> (String, Vec<(f64, f64)>) {
        (name.to_owned(), all.iter().filter(|(s, _, _)| keep(s)).map(|(_, e, y)| (*e, *y)).collect())
    };
    for set in SETS {
        rows.push(group(set, &|s| s.set == set));
    }
    rows.push(group("train", &|s| TRAIN.contains(&s.set)));
    rows.push(group("held out", &|s| !TRAIN.contains(&s.set)));
    rows.push(group("all", &|_| true));
    rows.push(group("all, >= 256 tokens", &|s| s.exact >= 256));

    writeln!(out, "| set | texts | exact tokens | mean abs % err | median | p90 | p99 | > 25% | bias | total ratio |")?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for (name, pairs) in rows {
        if pairs.is_empty() {
            continue;
        }
        let n = pairs.len() as f64;
        let mut abs: Vec<f64> = pairs.iter().map(|(e, y)| (e - y).abs() / y * 100.0).collect();
        abs.sort_by(f64::total_cmp);
        let bias = pairs.iter().map(|(e, y)| (e - y) / y * 100.0).sum::<f64>() / n;
        let (sum_e, sum_y) = pairs.iter().fold((0.0, 0.0), |(a, b), (e, y)| (a + e, b + y));
        writeln!(
            out,
            "| {name} | {} | {sum_y:.0} | {:.2}% | {:.2}% | {:.2}% | {:.2}% | {:.2}% | {bias:+.2}% | {:.4} |",
            pairs.len(),
            abs.iter().sum::<f64>() / n,
            percentile(&abs, 0.50),
            percentile(&abs, 0.90),
            percentile(&abs, 0.99),
            abs.iter().filter(|&&e| e > 25.0).count() as f64 / n * 100.0,
            sum_e / sum_y,
        )?;
    }
    Ok(())
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
