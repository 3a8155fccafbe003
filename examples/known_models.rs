//! Turns a price file in the shape of LiteLLM's `model_prices_and_context_window.json` into
//! `[[models]]` entries for a config, or into rows of the known-models price table.
//!
//! The file is one you supply (download it yourself, or keep your own in that shape): neither this
//! command nor the crate fetches anything.
//!
//! ```text
//! cargo run --example known_models -- --from model_prices_and_context_window.json \
//!     --provider openai --provider anthropic --out catalog.toml
//! cargo run --example known_models -- --from prices.json --model gpt-4o-mini --model gemini/gemini-2.5-pro
//! cargo run --example known_models -- --from prices.json --provider openai --rust
//! ```
//!
//! - `--from FILE` (required): the price file.
//! - `--provider NAME` (repeatable): keep models of these providers only (`openai`, `anthropic`,
//!   `google` for LiteLLM's `gemini`, `mistral`, `deepseek`, `groq`, …).
//! - `--model NAME` (repeatable): keep these entries only, by their name in the file.
//! - `--out FILE`: write the TOML there instead of to standard output.
//! - `--rust`: print rows for `src/catalog/known_prices.rs` instead of TOML, with source index
//!   `SOURCE` for you to replace by the file's entry in `SOURCES`, and the capabilities as the
//!   table's constant with the same vision and reasoning (check tools and JSON by hand).
//!
//! The TOML holds complete entries (no `known`), so a config can use them as they are: paste them
//! into its `[[models]]`, or load them with `RouterConfig::from_file` after adding the rest.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use serde::Serialize;
use switchyard::ModelProfile;
use switchyard::catalog::from_litellm_json;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Default)]
pub(crate) struct Args {
    pub(crate) from: Option<PathBuf>,
    pub(crate) providers: Vec<String>,
    pub(crate) models: Vec<String>,
    pub(crate) out: Option<PathBuf>,
    pub(crate) rust: bool,
}

pub(crate) fn parse_args(mut args: impl Iterator<Item = String>) -> BoxResult<Args> {
    let mut parsed = Args::default();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--from" => parsed.from = Some(value()?.into()),
            "--provider" => parsed.providers.push(value()?),
            "--model" => parsed.models.push(value()?),
            "--out" => parsed.out = Some(value()?.into()),
            "--rust" => parsed.rust = true,
            other => return Err(format!("unknown argument `{other}`; see the example's docs").into()),
        }
    }
    Ok(parsed)
}

fn main() {
    if let Err(e) = try_main() {
        eprintln!("known_models: {e}");
        std::process::exit(1);
    }
}

fn try_main() -> BoxResult<()> {
    let args = parse_args(std::env::args().skip(1))?;
    let from = args.from.ok_or("`--from FILE` is required")?;
    let text = std::fs::read_to_string(&from).map_err(|e| format!("cannot read `{}`: {e}", from.display()))?;
    let models: Vec<ModelProfile> = from_litellm_json(&text)?
        .into_iter()
        .filter(|m| args.providers.is_empty() || args.providers.iter().any(|p| p == m.provider.as_str()))
        .filter(|m| args.models.is_empty() || args.models.iter().any(|n| n == m.id.as_str()))
        .collect();
    if models.is_empty() {
        return Err("no chat model of the file passed the filters".into());
    }
    let output = if args.rust { rust_rows(&models) } else { toml_entries(&models)? };
    match args.out {
        Some(path) => {
            std::fs::write(&path, output).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
            eprintln!("known_models: wrote {} models to `{}`", models.len(), path.display());
        }
        None => print!("{output}"),
    }
    Ok(())
}

pub(crate) fn toml_entries(models: &[ModelProfile]) -> BoxResult<String> {
    #[derive(Serialize)]
    struct Entries<'a> {
        models: &'a [ModelProfile],
    }
    Ok(toml::to_string(&Entries { models })?)
}

/// One `row(…)` per model, in the form of `src/catalog/known_prices.rs`.
pub(crate) fn rust_rows(models: &[ModelProfile]) -> String {
    let mut out = String::new();
    for m in models {
        let p = &m.pricing;
        let cached = p.cached_input_per_mtok.map_or("None".to_owned(), |c| format!("Some({c:?})"));
        let caps = match (
            m.capabilities.contains(switchyard::Capabilities::VISION),
            m.capabilities.contains(switchyard::Capabilities::REASONING),
        ) {
            (true, true) => "TVJSR",
            (true, false) => "TVJS",
            (false, true) => "TJSR",
            (false, false) => "TJS",
        };
        out.push_str(&format!(
            "    row({:?}, {:?}, {:?}, &[], ({:?}, {}, {:?}), ({}, {}), {caps}, &[SOURCE])",
            m.provider.as_str(),
            m.id.as_str(),
            m.api_name(),
            p.input_per_mtok,
            cached,
            p.output_per_mtok,
            m.context_window,
            m.max_output_tokens,
        ));
        if let Some(lc) = &p.long_context {
            out.push_str(&format!(
                "\n        .above({}, {:?}, {:?})",
                lc.above_input_tokens, lc.input_multiplier, lc.output_multiplier
            ));
        }
        out.push_str(",\n");
    }
    out
}
