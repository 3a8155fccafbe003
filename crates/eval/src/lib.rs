//! Offline evaluation of routing on labelled data: load a data set where every prompt was answered by
//! every model ([`data`]), and measure cost against quality as RouterBench and RouteLLM do
//! ([`metrics`]); replay a router and sweep its knob into a [`Report`] ([`replay`](mod@replay)), find the knob
//! that meets a target and store it in the config ([`calibrate`]), put bootstrap intervals on the
//! report's figures ([`bootstrap`](mod@bootstrap)), and, with the `plot` feature, draw the report's
//! cost–quality curve as SVG (`plot`); measure how well the core's built-in signals rank prompts
//! within a task, and fit the difficulty's constants ([`signals`]); and check a data set's labels
//! for tasks on which the strongest model is clearly weaker than another ([`audit`](mod@audit)).
//!
//! ```no_run
//! use switchyard_eval::data::{Dataset, Format, SplitKind};
//! use switchyard_eval::metrics;
//!
//! # fn run() -> switchyard::Result<()> {
//! let data = Dataset::load("data/routerbench_arc_mbpp_winogrande.jsonl.gz", Format::RouterBench)?
//!     .in_split(SplitKind::RouterDc, "test");
//! let outcomes = data.outcomes()?;
//! let singles = metrics::single_model_points(outcomes);
//! let best = singles[metrics::best_single(&singles).unwrap_or(0)];
//! let x_max = metrics::max_cost(&singles).unwrap_or(0.0);
//! let zero = metrics::zero_router(outcomes);
//! let oracle = metrics::oracle_point(outcomes);
//! println!("zero router: AIQ {:.3}", metrics::aiq(&zero, x_max).unwrap_or(0.0));
//! println!("cost at 95%: {:.1}%", 100.0 * metrics::cost_at_quality(&zero, 0.95, best).unwrap_or(f64::NAN));
//! println!("oracle: {:.3} at {:.1}%", oracle.quality, 100.0 * oracle.cost / best.cost);
//! # Ok(()) }
//! # let _ = run();
//! ```
//!
//! # Data sets
//!
//! Every format is JSON Lines (one object per line; blank lines skipped), read line by line, plain
//! or gzip-compressed (`Dataset::load` tells by the file's first bytes). The repository keeps the
//! public data sets below in its `data/` directory as `.jsonl.gz` (not in the published package).
//! The first row fixes the models (sorted by name); every later row must score exactly those models.
//! Scores are in `[0, 1]` (1 = correct); costs are in USD and `>= 0`. Errors name the file, the line
//! and the field, and never quote prompt text. Unknown fields are ignored in the public data sets'
//! formats and rejected in ours (a typo such as `cost_usd` would otherwise go unnoticed).
//!
//! | [`Format`] | file | costs |
//! |---|---|---|
//! | `RouterBench` | `routerbench_arc_mbpp_winogrande.jsonl` (3,164 rows, 11 models) | actual USD per prompt |
//! | `RouteLlm` | `routellm_mmlu_gsm8k.jsonl` (15,361 rows, GPT-4 vs Mixtral) | per call: $24.7 vs $0.24 per 1M tokens |
//! | `MtBench` | `routellm_mt_bench.jsonl` (80 two-turn questions) | as `RouteLlm`; judge scores 1–10 divided by 10 |
//! | `Jsonl` | your logs (below) | `costs_usd`, or prices via [`with_cost_per_call`](data::Dataset::with_cost_per_call) |
//!
//! RouteLLM gives no per-prompt costs: it assumes every call uses the same number of tokens, so a
//! run's cost is proportional to its share of strong calls. Its loaders charge each call the model's
//! price per 1M tokens ([`ROUTELLM_USD_PER_MTOK`](data::ROUTELLM_USD_PER_MTOK)); only ratios of
//! those totals are meaningful, and every cost metric here is a ratio.
//!
//! ## Our own format for logs
//!
//! One JSON object per line, for prompts that every model of a portfolio answered (offline replays,
//! shadow traffic) and that were graded:
//!
//! ```json
//! {"id": "req-1", "prompt": "Summarise this ticket ...", "scores": {"mini": 1.0, "frontier": 1.0}, "costs_usd": {"mini": 0.00012, "frontier": 0.0031}, "task": "support", "split": "test"}
//! {"id": "req-2", "turns": ["Write a haiku", "Now in French"], "scores": {"mini": 0.4, "frontier": 0.9}, "costs_usd": {"mini": 0.00003, "frontier": 0.0008}, "task": "creative", "meta": {"tenant": "acme"}}
//! ```
//!
//! | field | required | meaning |
//! |---|---|---|
//! | `prompt` or `turns` | one of them | the prompt text, or the turns of a conversation (routed on the first) |
//! | `scores` | yes | `{model: score}`, every model of the data set, each in `[0, 1]` (grade graded answers into this range) |
//! | `costs_usd` | on every row or on none | `{model: USD}` actually spent on this prompt, every model |
//! | `id` | no | an id (default: the line number) |
//! | `task` | no | a category to filter and report by (default empty) |
//! | `subject` | no | a finer category |
//! | `split` | no | a label such as `train` or `test` ([`SplitKind::Own`](data::SplitKind::Own)) |
//! | `contaminated` | no | `true` to exclude the row with [`without_contaminated`](data::Dataset::without_contaminated) |
//! | `imputed` | no | models whose score was filled in rather than measured |
//! | `meta` | no | anything; ignored |
//!
//! Without `costs_usd`, give each model a price per call:
//!
//! ```
//! use switchyard_eval::data::{Dataset, Format};
//!
//! # fn run() -> switchyard::Result<()> {
//! let logs = r#"{"prompt": "2+2?", "scores": {"mini": 1, "frontier": 1}}
//! {"prompt": "Prove Fermat's last theorem", "scores": {"mini": 0, "frontier": 0.5}}"#;
//! let data = Dataset::read(logs.as_bytes(), Format::Jsonl, "logs.jsonl")?
//!     .with_cost_per_call([("mini", 0.0002), ("frontier", 0.004)])?;
//! assert_eq!(data.models().len(), 2);
//! assert_eq!(data.len(), 2);
//! # Ok(()) }
//! # run().unwrap();
//! ```
//!
//! # Metrics
//!
//! [`metrics`] lists each metric with its formula. Conventions that decide the numbers, each checked
//! against the repository's `data/baselines.json.gz` to 3 decimals by `tests/eval.rs`:
//!
//! - the hull starts at the cheapest point, and AIQ integrates from there (not from cost 0);
//! - cost at q% is read off the hull, interpolating between vertices;
//! - the best single model is the most accurate, the cheaper of two equally accurate;
//! - the oracle takes the cheapest model with the row's best score, so it pays for the cheapest
//!   call on rows no model gets right;
//! - RouteLLM's oracle curve sends the strong model the rows where it gains most, rows where it loses
//!   last.

pub mod audit;
pub mod bootstrap;
pub mod calibrate;
pub mod catalog;
pub mod cv;
pub mod data;
mod file;
pub mod metrics;
#[cfg(feature = "plot")]
#[cfg_attr(docsrs, doc(cfg(feature = "plot")))]
pub mod plot;
pub mod replay;
pub mod signals;
pub mod train;

pub use bootstrap::{BootstrapOptions, CurveIntervals, Interval, PointIntervals, bootstrap, bootstrap_point};
pub use catalog::{FittedCatalog, Prices};
pub use data::{Dataset, Format, Row};
pub use metrics::{OperatingPoint, Outcomes};
pub use replay::{Report, ReportOptions, Run, replay, sweep};
pub use switchyard::classify::learned::{Fallback, Residuals, Selection, Standardize, TaskLabels, TrainConfig};
pub use train::{Progress, Stage, Trainer};

/// An [`ErrorKind::Config`](switchyard::ErrorKind::Config) error: a bad setting or a bad data file.
pub(crate) fn config_error(message: impl Into<String>) -> switchyard::Error {
    switchyard::Error::new(switchyard::ErrorKind::Config, message)
}

/// An [`ErrorKind::InvalidRequest`](switchyard::ErrorKind::InvalidRequest) error: an argument out of
/// its range.
pub(crate) fn invalid_input(message: impl Into<String>) -> switchyard::Error {
    switchyard::Error::new(switchyard::ErrorKind::InvalidRequest, message)
}
