//! Prices, context windows and capabilities of widely used models, each row with its sources:
//! what [`ModelProfile::known`](super::ModelProfile::known) and `known = "…"` in a config fill a
//! profile from.
//!
//! Prices are list prices in USD per 1M tokens as the sources print them (LiteLLM's per-token
//! figures times 10⁶). A row is in the table only when a source gives its prices; a model without
//! one is left out. `docs/known-models.md` lists the table with its sources; `cargo run --example
//! known_models -- --from FILE` turns a price file in LiteLLM's format into catalog entries or rows
//! of this table.

use super::known::{Source, find_stripped, normalize, strip_suffix};
use super::{LongContextPricing, ModelProfile, Pricing};
use crate::error::{Error, Result};
use crate::types::Capabilities;

/// The date the sources were read.
pub(crate) const CHECKED: &str = "2026-12-06";

/// The sources rows refer to, by index.
#[cfg_attr(
    not(test),
    allow(dead_code, reason = "the citations are checked by the tests and listed in docs/known-models.md")
)]
pub(crate) const SOURCES: &[Source] = &[
    // 0
    Source {
        url: "https://github.com/BerriAI/litellm/blob/19a1f629eb6fafde70968ef4815463eb08143aac/model_prices_and_context_window.json",
        what: "LiteLLM's table of model prices and context windows at that commit (its newest entries are from October 2025): per-token input, cache-read and output prices, prices above 200k input tokens, max input and output tokens, supports_function_calling / vision / response_schema / reasoning",
    },
    // 1
    Source {
        url: "https://docs.anthropic.com/en/docs/about-claude/pricing",
        what: "Anthropic's pricing page (stored copy listing Claude Opus 4.1, so August 2025 or later): base input, cache hits and output per MTok, and the Sonnet 4 long-context prices above 200K input tokens ($6 input, $22.50 output)",
    },
    // 2
    Source {
        url: "https://hex.pm/packages/openai_responses/0.4.1/files/lib/responses/pricing.ex (copy of https://platform.openai.com/docs/pricing)",
        what: "OpenAI's pricing page as copied on 2025-06-03 by the openai_responses package: input, cached input and output per 1M tokens for the GPT-4.1 family and GPT-4o snapshots",
    },
    // 3
    Source {
        url: "https://benchlm.ai/blog/posts/deepseek-api-pricing (copy of https://api-docs.deepseek.com/quick_start/pricing)",
        what: "DeepSeek's pricing page as quoted on 2026-04-13: deepseek-chat and deepseek-reasoner on DeepSeek-V3.2, 128K context, cache hit $0.028, cache miss $0.28, output $0.42 per 1M tokens, max output 8K (chat) and 64K (reasoner), JSON output and tool calls",
    },
    // 4
    Source {
        url: "https://discuss.ai.google.dev/t/question-about-gemini-api-caching-pricing/107349",
        what: "Google AI developers forum, quoting the Gemini API pricing page: Gemini 2.5 Pro context caching $0.125 per 1M tokens for prompts up to 200k tokens, $0.25 above",
    },
    // 5
    Source {
        url: "https://deploybase.ai/articles/gemini-api-pricing",
        what: "Gemini API pricing from Google's pricing page (March 2026): 2.5 Pro $1.25 input and $10 output per 1M tokens up to 200K prompt tokens, $2.50 and $15 above; 2.5 Flash $0.30 and $2.50",
    },
    // 6
    Source {
        url: "https://jangwook.net/en/blog/en/gemini-25-flash-api-cost-optimization-guide/",
        what: "Gemini 2.5 Flash prices as of May 2026: input $0.30, output $2.50, cache read $0.075 per 1M tokens; 2.5 Flash-Lite $0.10 input and $0.40 output",
    },
];

/// One model of the price table.
pub(crate) struct Priced {
    /// The canonical name.
    pub(crate) name: &'static str,
    /// The provider, by the name this crate's docs and examples register it under.
    pub(crate) provider: &'static str,
    /// The name the provider's API knows the model by.
    pub(crate) api_name: &'static str,
    /// Other names: dated snapshots, other spellings. Provider prefixes, case, `.` versus `-` and
    /// trailing dates are ignored when matching.
    pub(crate) aliases: &'static [&'static str],
    /// USD per 1M input tokens.
    pub(crate) input: f64,
    /// USD per 1M input tokens read from the prompt cache, where the provider discounts them.
    pub(crate) cached_input: Option<f64>,
    /// USD per 1M output tokens.
    pub(crate) output: f64,
    /// Prompts longer than `.0` input tokens are billed at `.1` times the input prices and `.2` times
    /// the output price.
    pub(crate) long_context: Option<(u32, f64, f64)>,
    pub(crate) context_window: u32,
    pub(crate) max_output_tokens: u32,
    pub(crate) capabilities: Capabilities,
    /// Indices into [`SOURCES`].
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "the citations are checked by the tests and listed in docs/known-models.md")
    )]
    pub(crate) sources: &'static [usize],
}

/// Tools, vision, JSON output and streaming.
const TVJS: Capabilities =
    Capabilities::TOOLS.union(Capabilities::VISION).union(Capabilities::JSON).union(Capabilities::STREAMING);
/// The same and reasoning tokens.
const TVJSR: Capabilities = TVJS.union(Capabilities::REASONING);
/// Tools, JSON output and streaming (no image input).
const TJS: Capabilities = Capabilities::TOOLS.union(Capabilities::JSON).union(Capabilities::STREAMING);
/// The same and reasoning tokens.
const TJSR: Capabilities = TJS.union(Capabilities::REASONING);

#[allow(clippy::too_many_arguments, reason = "one call per table row reads as the row")]
const fn row(
    provider: &'static str,
    name: &'static str,
    api_name: &'static str,
    aliases: &'static [&'static str],
    (input, cached_input, output): (f64, Option<f64>, f64),
    (context_window, max_output_tokens): (u32, u32),
    capabilities: Capabilities,
    sources: &'static [usize],
) -> Priced {
    Priced {
        name,
        provider,
        api_name,
        aliases,
        input,
        cached_input,
        output,
        long_context: None,
        context_window,
        max_output_tokens,
        capabilities,
        sources,
    }
}

impl Priced {
    /// Adds a long-context tier.
    const fn above(mut self, input_tokens: u32, input_multiplier: f64, output_multiplier: f64) -> Self {
        self.long_context = Some((input_tokens, input_multiplier, output_multiplier));
        self
    }

    /// The row's prices.
    pub(crate) fn pricing(&self) -> Pricing {
        let mut p = Pricing::per_mtok(self.input, self.output);
        p.cached_input_per_mtok = self.cached_input;
        if let Some((above, i, o)) = self.long_context {
            p.long_context = Some(LongContextPricing::new(above, i, o));
        }
        p
    }
}

/// The table. Models whose prices could not be found in a source are left out.
pub(crate) const TABLE: &[Priced] = &[
    // OpenAI.
    row(
        "openai",
        "gpt-4o",
        "gpt-4o",
        &["gpt-4o-2024-08-06", "gpt-4o-2024-11-20"],
        (2.50, Some(1.25), 10.00),
        (128_000, 16_384),
        TVJS,
        &[2, 0],
    ),
    row("openai", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13", &[], (5.00, None, 15.00), (128_000, 4_096), TVJS, &[2, 0]),
    row(
        "openai",
        "gpt-4o-mini",
        "gpt-4o-mini",
        &["gpt-4o-mini-2024-07-18"],
        (0.15, Some(0.075), 0.60),
        (128_000, 16_384),
        TVJS,
        &[0],
    ),
    row(
        "openai",
        "gpt-4.1",
        "gpt-4.1",
        &["gpt-4.1-2025-04-14"],
        (2.00, Some(0.50), 8.00),
        (1_047_576, 32_768),
        TVJS,
        &[2, 0],
    ),
    row(
        "openai",
        "gpt-4.1-mini",
        "gpt-4.1-mini",
        &["gpt-4.1-mini-2025-04-14"],
        (0.40, Some(0.10), 1.60),
        (1_047_576, 32_768),
        TVJS,
        &[2, 0],
    ),
    row(
        "openai",
        "gpt-4.1-nano",
        "gpt-4.1-nano",
        &["gpt-4.1-nano-2025-04-14"],
        (0.10, Some(0.025), 0.40),
        (1_047_576, 32_768),
        TVJS,
        &[2, 0],
    ),
    row("openai", "gpt-5", "gpt-5", &["gpt-5-2025-08-07"], (1.25, Some(0.125), 10.00), (272_000, 128_000), TVJSR, &[0]),
    row(
        "openai",
        "gpt-5-mini",
        "gpt-5-mini",
        &["gpt-5-mini-2025-08-07"],
        (0.25, Some(0.025), 2.00),
        (272_000, 128_000),
        TVJSR,
        &[0],
    ),
    row(
        "openai",
        "gpt-5-nano",
        "gpt-5-nano",
        &["gpt-5-nano-2025-08-07"],
        (0.05, Some(0.005), 0.40),
        (272_000, 128_000),
        TVJSR,
        &[0],
    ),
    row("openai", "o3", "o3", &["o3-2025-04-16"], (2.00, Some(0.50), 8.00), (200_000, 100_000), TVJSR, &[0]),
    row(
        "openai",
        "o3-mini",
        "o3-mini",
        &["o3-mini-2025-01-31"],
        (1.10, Some(0.55), 4.40),
        (200_000, 100_000),
        TJSR,
        &[0],
    ),
    row(
        "openai",
        "o4-mini",
        "o4-mini",
        &["o4-mini-2025-04-16"],
        (1.10, Some(0.275), 4.40),
        (200_000, 100_000),
        TVJSR,
        &[0],
    ),
    // Anthropic. The 1M-token window of Sonnet 4 and 4.5 needs a beta header; the rows keep the
    // default 200K window and carry the long-context prices for a window raised with `with_context`.
    row(
        "anthropic",
        "claude-opus-4-1",
        "claude-opus-4-1-20250805",
        &["claude-opus-4.1"],
        (15.00, Some(1.50), 75.00),
        (200_000, 32_000),
        TVJSR,
        &[1, 0],
    ),
    row(
        "anthropic",
        "claude-opus-4",
        "claude-opus-4-20250514",
        &["claude-4-opus", "claude-4-opus-20250514"],
        (15.00, Some(1.50), 75.00),
        (200_000, 32_000),
        TVJSR,
        &[1, 0],
    ),
    row(
        "anthropic",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5-20250929",
        &["claude-sonnet-4.5", "claude-4-5-sonnet"],
        (3.00, Some(0.30), 15.00),
        (200_000, 64_000),
        TVJSR,
        &[0],
    )
    .above(200_000, 2.0, 1.5),
    row(
        "anthropic",
        "claude-sonnet-4",
        "claude-sonnet-4-20250514",
        &["claude-4-sonnet", "claude-4-sonnet-20250514"],
        (3.00, Some(0.30), 15.00),
        (200_000, 64_000),
        TVJSR,
        &[1, 0],
    )
    .above(200_000, 2.0, 1.5),
    row(
        "anthropic",
        "claude-3-7-sonnet",
        "claude-3-7-sonnet-20250219",
        &["claude-3-7-sonnet-latest"],
        (3.00, Some(0.30), 15.00),
        (200_000, 128_000),
        TVJSR,
        &[1, 0],
    ),
    row(
        "anthropic",
        "claude-haiku-4-5",
        "claude-haiku-4-5-20251001",
        &["claude-haiku-4.5", "claude-4-5-haiku"],
        (1.00, Some(0.10), 5.00),
        (200_000, 64_000),
        TVJSR,
        &[0],
    ),
    row(
        "anthropic",
        "claude-3-5-haiku",
        "claude-3-5-haiku-20241022",
        &[],
        (0.80, Some(0.08), 4.00),
        (200_000, 8_192),
        TVJS,
        &[1, 0],
    ),
    row(
        "anthropic",
        "claude-3-haiku",
        "claude-3-haiku-20240307",
        &[],
        (0.25, Some(0.03), 1.25),
        (200_000, 4_096),
        TVJS,
        &[1, 0],
    ),
    // Google (Gemini API).
    row(
        "google",
        "gemini-2.5-pro",
        "gemini-2.5-pro",
        &[],
        (1.25, Some(0.125), 10.00),
        (1_048_576, 65_535),
        TVJSR,
        &[5, 4, 0],
    )
    .above(200_000, 2.0, 1.5),
    row(
        "google",
        "gemini-2.5-flash",
        "gemini-2.5-flash",
        &[],
        (0.30, Some(0.075), 2.50),
        (1_048_576, 65_535),
        TVJSR,
        &[6, 5, 0],
    ),
    row(
        "google",
        "gemini-2.5-flash-lite",
        "gemini-2.5-flash-lite",
        &[],
        (0.10, Some(0.025), 0.40),
        (1_048_576, 65_535),
        TVJSR,
        &[6, 0],
    ),
    row(
        "google",
        "gemini-2.0-flash",
        "gemini-2.0-flash",
        &["gemini-2.0-flash-001"],
        (0.10, Some(0.025), 0.40),
        (1_048_576, 8_192),
        TVJS,
        &[0],
    ),
    row(
        "google",
        "gemini-2.0-flash-lite",
        "gemini-2.0-flash-lite",
        &["gemini-2.0-flash-lite-001"],
        (0.075, Some(0.01875), 0.30),
        (1_048_576, 8_192),
        TVJS,
        &[0],
    ),
    // Mistral: no discounted cache reads are listed.
    row(
        "mistral",
        "mistral-large",
        "mistral-large-latest",
        &["mistral-large-2411"],
        (2.00, None, 6.00),
        (128_000, 128_000),
        TJS,
        &[0],
    ),
    row(
        "mistral",
        "mistral-medium",
        "mistral-medium-latest",
        &["mistral-medium-2505", "mistral-medium-3"],
        (0.40, None, 2.00),
        (131_072, 8_191),
        TJS,
        &[0],
    ),
    row("mistral", "mistral-small", "mistral-small-latest", &[], (0.10, None, 0.30), (32_000, 8_191), TJS, &[0]),
    row(
        "mistral",
        "magistral-medium",
        "magistral-medium-latest",
        &["magistral-medium-2506"],
        (2.00, None, 5.00),
        (40_000, 40_000),
        TJSR,
        &[0],
    ),
    // DeepSeek: both API names serve DeepSeek-V3.2.
    row(
        "deepseek",
        "deepseek-chat",
        "deepseek-chat",
        &["deepseek-v3.2"],
        (0.28, Some(0.028), 0.42),
        (128_000, 8_192),
        TJS,
        &[3, 0],
    ),
    row(
        "deepseek",
        "deepseek-reasoner",
        "deepseek-reasoner",
        &[],
        (0.28, Some(0.028), 0.42),
        (128_000, 65_536),
        TJSR,
        &[3, 0],
    ),
    // Llama served by Groq.
    row(
        "groq",
        "llama-3.3-70b-versatile",
        "llama-3.3-70b-versatile",
        &[],
        (0.59, None, 0.79),
        (128_000, 32_768),
        TJS,
        &[0],
    ),
    row("groq", "llama-3.1-8b-instant", "llama-3.1-8b-instant", &[], (0.05, None, 0.08), (128_000, 8_192), TJS, &[0]),
    row(
        "groq",
        "llama-4-scout",
        "meta-llama/llama-4-scout-17b-16e-instruct",
        &[],
        (0.11, None, 0.34),
        (131_072, 8_192),
        TJS,
        &[0],
    ),
    row(
        "groq",
        "llama-4-maverick",
        "meta-llama/llama-4-maverick-17b-128e-instruct",
        &[],
        (0.20, None, 0.60),
        (131_072, 8_192),
        TJS,
        &[0],
    ),
];

impl Priced {
    /// The row's names as they are matched: name, API name, aliases.
    fn names(&self) -> impl Iterator<Item = &'static str> {
        [self.name, self.api_name].into_iter().chain(self.aliases.iter().copied())
    }
}

/// A match: the row, and whether the name was the row's own name or API name (rather than a
/// snapshot or alias).
pub(crate) struct Found {
    pub(crate) row: &'static Priced,
    pub(crate) canonical: bool,
}

/// The row for `name`: an exact (normalized) match of a name, API name or alias, else the same
/// after removing trailing snapshot markers one at a time (as [`Ability::known`] matches).
pub(crate) fn lookup(name: &str) -> Option<Found> {
    find_stripped(name, |candidate, whole| {
        let row = TABLE.iter().find(|r| r.names().any(|n| normalize(n) == candidate))?;
        let canonical = whole && (normalize(row.name) == candidate || normalize(row.api_name) == candidate);
        Some(Found { row, canonical })
    })
}

/// Up to five rows whose names are closest to `name`: by edit distance between normalized names
/// (snapshot markers removed), or containing it.
pub(crate) fn suggestions(name: &str) -> Vec<&'static str> {
    let normalized = normalize(name);
    let mut query = normalized.as_str();
    while let Some(shorter) = strip_suffix(query) {
        query = shorter;
    }
    let limit = (query.len() / 3).max(2);
    let mut scored: Vec<(usize, &'static str)> = TABLE
        .iter()
        .filter_map(|r| {
            let (mut best, mut contains) = (usize::MAX, false);
            for n in r.names().map(normalize) {
                best = best.min(edit_distance(query, &n));
                contains |= query.len() >= 4 && (n.contains(query) || (n.len() >= 4 && query.contains(n.as_str())));
            }
            (best <= limit || contains).then_some((best, r.name))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, n)| n).collect()
}

/// Levenshtein distance over bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The error for a name the table does not list.
pub(crate) fn unknown(name: &str) -> Error {
    let close = suggestions(name);
    let hint = if close.is_empty() {
        "; the table is in docs/known-models.md".to_owned()
    } else {
        let list: Vec<String> = close.iter().map(|n| format!("`{n}`")).collect();
        format!("; did you mean {}?", list.join(", "))
    };
    Error::config(format!("the known-models price table (checked {CHECKED}) has no model `{name}`{hint}"))
}

/// The profile [`ModelProfile::known`] builds.
pub(crate) fn profile(name: &str) -> Result<ModelProfile> {
    let Found { row, canonical } = lookup(name).ok_or_else(|| unknown(name))?;
    // A snapshot or alias is sent as written (without a provider prefix), so that the provider
    // serves that snapshot; the row's own name is sent as the provider spells it.
    let api_name = if canonical { row.api_name.to_owned() } else { without_prefix(name).to_owned() };
    let mut profile = ModelProfile::new(name, row.provider)
        .with_api_name(api_name)
        .with_pricing(row.pricing())
        .with_context(row.context_window, row.max_output_tokens)
        .with_capabilities(row.capabilities);
    if let Some(ability) = profile.known_ability() {
        profile.ability = ability;
    }
    Ok(profile)
}

/// `name` without a provider prefix (`openai/gpt-4o` → `gpt-4o`). A `/` inside the API name of a
/// row (`meta-llama/…`) only reaches here for a snapshot of such a row, which keeps its last part.
fn without_prefix(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_a_source_and_sane_numbers() {
        assert_eq!(CHECKED.len(), 10);
        assert!(TABLE.len() >= 25, "{} rows", TABLE.len());
        for r in TABLE {
            assert!(!r.sources.is_empty(), "`{}` has no source", r.name);
            for &s in r.sources {
                assert!(s < SOURCES.len(), "`{}` names source {s}", r.name);
            }
            for price in [r.input, r.output] {
                assert!(price.is_finite() && price > 0.0, "`{}`: {price}", r.name);
            }
            if let Some(cached) = r.cached_input {
                assert!(cached.is_finite() && cached > 0.0 && cached <= r.input, "`{}`: cached {cached}", r.name);
            }
            if let Some((above, i, o)) = r.long_context {
                assert!(above > 0 && i >= 1.0 && o >= 1.0 && i.is_finite() && o.is_finite(), "`{}`", r.name);
            }
            assert!(r.max_output_tokens > 0 && r.context_window >= r.max_output_tokens, "`{}`", r.name);
            assert!(r.capabilities.contains(Capabilities::STREAMING), "`{}`", r.name);
            assert!(!r.provider.is_empty() && !r.api_name.is_empty(), "`{}`", r.name);
            // Every row builds a valid profile.
            let p = profile(r.name).unwrap_or_else(|e| panic!("`{}`: {e}", r.name));
            p.validate().unwrap_or_else(|e| panic!("`{}`: {e}", r.name));
        }
        for s in SOURCES {
            assert!(s.url.starts_with("https://") && !s.what.is_empty());
        }
        // Every source is cited.
        for i in 0..SOURCES.len() {
            assert!(TABLE.iter().any(|r| r.sources.contains(&i)), "source {i} is not cited");
        }
    }

    #[test]
    fn names_are_unique_and_match_their_own_row() {
        let mut all: Vec<(String, &str)> =
            TABLE.iter().flat_map(|r| r.names().map(move |n| (normalize(n), r.name))).collect();
        all.sort();
        all.dedup();
        let mut names: Vec<&String> = all.iter().map(|(n, _)| n).collect();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a name or alias belongs to two rows");
        for r in TABLE {
            for n in r.names() {
                assert_eq!(lookup(n).map(|f| f.row.name), Some(r.name), "{n}");
            }
        }
    }

    #[test]
    fn a_table_ability_reads_back_the_same_from_the_profile() {
        // The catalog fills a table ability from the api name or the id; a profile from `known`
        // must be filled the same way after a round trip.
        for r in TABLE {
            let p = profile(r.name).unwrap();
            let mut bare = p.clone();
            bare.ability = crate::catalog::Ability::default();
            let catalog = crate::catalog::Catalog::new([bare]).unwrap();
            assert_eq!(p.ability.known_as(), catalog.model(0).ability.known_as(), "`{}`", r.name);
        }
        assert_eq!(profile("gpt-4o-mini").unwrap().ability.known_as(), Some("gpt-4o-mini"));
        assert_eq!(profile("deepseek-reasoner").unwrap().ability.known_as(), Some("deepseek-r1"));
        assert!(profile("claude-opus-4-1").unwrap().ability.is_unset());
    }

    #[test]
    fn matching_and_api_names() {
        for (query, row, api) in [
            ("gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini"),
            ("GPT-4o-Mini", "gpt-4o-mini", "gpt-4o-mini"),
            ("openai/gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini"),
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
            ("openai/gpt-4o-2024-11-20", "gpt-4o", "gpt-4o-2024-11-20"),
            ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
            ("claude-sonnet-4", "claude-sonnet-4", "claude-sonnet-4-20250514"),
            ("anthropic/claude-sonnet-4-20250514", "claude-sonnet-4", "claude-sonnet-4-20250514"),
            ("claude-3.5-haiku", "claude-3-5-haiku", "claude-3-5-haiku-20241022"),
            ("claude-sonnet-4.5", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
            ("models/gemini-2.5-pro", "gemini-2.5-pro", "gemini-2.5-pro"),
            ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash", "gemini-2.5-flash-preview-05-20"),
            ("mistral-large-latest", "mistral-large", "mistral-large-latest"),
            ("mistral-large", "mistral-large", "mistral-large-latest"),
            ("groq/llama-4-scout", "llama-4-scout", "meta-llama/llama-4-scout-17b-16e-instruct"),
            (
                "groq/meta-llama/llama-4-scout-17b-16e-instruct",
                "llama-4-scout",
                "meta-llama/llama-4-scout-17b-16e-instruct",
            ),
            ("deepseek/deepseek-chat", "deepseek-chat", "deepseek-chat"),
        ] {
            let p = profile(query).unwrap_or_else(|e| panic!("{query}: {e}"));
            assert_eq!(lookup(query).map(|f| f.row.name), Some(row), "{query}");
            assert_eq!(p.api_name(), api, "{query}");
            assert_eq!(p.id.as_str(), query);
        }
        for unknown in ["", "gpt", "gpt-6", "claude", "my-model", "o5", "gemini-2.5-flash-image", "2024-08-06"] {
            assert!(lookup(unknown).is_none(), "{unknown}");
        }
    }

    #[test]
    fn unknown_names_get_close_matches() {
        assert!(suggestions("gpt-4o-mni").starts_with(&["gpt-4o-mini"]), "{:?}", suggestions("gpt-4o-mni"));
        assert!(suggestions("openai/gpt4.1").contains(&"gpt-4.1"), "{:?}", suggestions("openai/gpt4.1"));
        assert!(suggestions("claude-sonet-4").contains(&"claude-sonnet-4"), "{:?}", suggestions("claude-sonet-4"));
        assert!(suggestions("gemini-2.5").contains(&"gemini-2.5-pro"), "{:?}", suggestions("gemini-2.5"));
        assert!(suggestions("completely-different-thing").is_empty());
        let e = unknown("gpt-4o-mni");
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        assert!(e.to_string().contains("did you mean `gpt-4o-mini`"), "{e}");
        assert!(unknown("zzz").to_string().contains("docs/known-models.md"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
