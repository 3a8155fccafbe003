//! Abilities of widely used models, derived from published benchmark scores.
//!
//! Each row quotes the scores its sources publish (MMLU, GPQA Diamond and MATH accuracies, in
//! percent) and the ability is computed from them by one mapping, so that every number can be
//! checked against its source and the mapping changed in one place:
//!
//! 1. `x_MMLU = logit(MMLU)`, `x_GPQA = logit(GPQA) + Δ_GPQA`, where `Δ_GPQA` is the mean of
//!    `logit(MMLU) − logit(GPQA)` over the rows that quote both (GPQA is harder; the shift puts it
//!    on MMLU's scale). `x` is the mean of the terms a row has.
//! 2. `θ = x + c`, where the anchor [`ANCHOR`] (`c`) makes the mean of `θ_fitted − θ` zero over
//!    the models of the shared RouterBench data that have a row, with `θ_fitted` the
//!    `switchyard-eval` `FittedCatalog` abilities on the RouterDC training split
//!    (`crates/eval/tests/known_abilities.rs` checks it).
//! 3. Math: `θ_math = logit(MATH) + Δ_MATH + c` for rows that quote MATH, with `Δ_MATH` the mean of
//!    `x − logit(MATH)` over those rows, so that math abilities average to overall ones.
//!
//! `docs/known-models.md` lists the table with its sources.

use super::{Ability, Origin};
use crate::types::Intent;

/// The date the sources were read.
pub(crate) const CHECKED: &str = "2026-12-06";

/// `c`: the offset that anchors the table to abilities fitted on the RouterBench training split.
pub(crate) const ANCHOR: f64 = -0.043;

/// A public source of scores.
#[cfg_attr(
    not(test),
    allow(dead_code, reason = "the citations are checked by the tests and listed in docs/known-models.md")
)]
pub(crate) struct Source {
    pub(crate) url: &'static str,
    /// What it gives, and its own date where known.
    pub(crate) what: &'static str,
}

/// The sources rows refer to, by index.
#[cfg_attr(
    not(test),
    allow(dead_code, reason = "the citations are checked by the tests and listed in docs/known-models.md")
)]
pub(crate) const SOURCES: &[Source] = &[
    // 0
    Source {
        url: "https://github.com/openai/simple-evals (README.md, commit 0f2cf33303b9f20bc2db18f04a2fefdf69bb0dd8)",
        what: "OpenAI simple-evals table: MMLU, GPQA, MATH (MATH-500 for o1 and later), zero-shot chain of thought; rows under \"Other Models (Reported)\" are the developers' numbers",
    },
    // 1
    Source {
        url: "https://huggingface.co/deepseek-ai/DeepSeek-R1 (evaluation table, as quoted in https://huggingface.co/calcuis/deepseek-r1)",
        what: "DeepSeek-R1 model card: MMLU (pass@1), GPQA-Diamond (pass@1) for DeepSeek V3 and R1 (January 2025)",
    },
    // 2
    Source {
        url: "https://aigender.net/index.php/2023/12/05/chatbot-arena-leaderboard/ (copy of https://huggingface.co/spaces/lmsys/chatbot-arena-leaderboard)",
        what: "LMSYS Chatbot Arena leaderboard, MMLU column (5-shot, mostly InstructEval), last updated November 2023",
    },
    // 3
    Source {
        url: "https://datatunnel.io/product/mixtral-8x7b (table of the Mixtral paper, arXiv:2401.04088)",
        what: "Mixtral of Experts: MMLU 5-shot of the base model (December 2023)",
    },
    // 4
    Source {
        url: "https://openlm.ai/chatbot-arena/ (snapshot attributed to LMSYS, May 20, 2024)",
        what: "Chatbot Arena leaderboard copy, MMLU column",
    },
    // 5
    Source {
        url: "https://techwavearena.com/claude-3-5-sonnetnew-vs-claude-3-5-haiku-vs-gemini-1-5-pro-vs-gpt-4o-vs-gpt-4o-mini-vs-gemini-1-5-flash-ai-model-comparison-guide-2024-benchmark-results-analysis",
        what: "Anthropic's October 2024 launch numbers for Claude 3.5 Haiku: GPQA Diamond",
    },
    // 6
    Source {
        url: "https://traictory.com/model/gemini-2.0-flash",
        what: "Gemini 2.0 Flash, GPQA, self-reported by Google (December 2024)",
    },
    // 7
    Source {
        url: "https://www.modelcards.net/documents/18",
        what: "Gemini 2.5 Flash model card summary: GPQA Diamond of the Preview 09-2025 thinking variant (card updated December 2025)",
    },
    // 8
    Source {
        url: "https://ciyuan.website/events/gemini-2-5-pro-2025/",
        what: "Gemini 2.5 Pro launch numbers (March 25, 2025): GPQA Diamond",
    },
    // 9
    Source {
        url: "https://codeswap.net/benchmark/mmlu/",
        what: "MMLU from the Mistral Large 2 release announcement (2024-07-24)",
    },
];

/// One model of the table: the scores its sources publish, in percent.
pub(crate) struct Known {
    /// The canonical name.
    pub(crate) name: &'static str,
    /// Other names: API names, snapshots, names in data sets. Provider prefixes, case, `.` versus
    /// `-` and trailing dates are ignored when matching.
    pub(crate) aliases: &'static [&'static str],
    pub(crate) mmlu: Option<f64>,
    pub(crate) gpqa: Option<f64>,
    pub(crate) math: Option<f64>,
    /// Indices into [`SOURCES`].
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "the citations are checked by the tests and listed in docs/known-models.md")
    )]
    pub(crate) sources: &'static [usize],
}

const fn row(
    name: &'static str,
    aliases: &'static [&'static str],
    mmlu: Option<f64>,
    gpqa: Option<f64>,
    math: Option<f64>,
    sources: &'static [usize],
) -> Known {
    Known { name, aliases, mmlu, gpqa, math, sources }
}

/// The table. Models whose scores could not be found in a public source are left out.
pub(crate) const TABLE: &[Known] = &[
    // OpenAI: simple-evals.
    row("o3", &["o3-2025-04-16"], Some(92.9), Some(82.8), Some(97.8), &[0]),
    row("o4-mini", &["o4-mini-2025-04-16"], Some(90.0), Some(77.6), Some(97.5), &[0]),
    row("gpt-4.1", &["gpt-4.1-2025-04-14"], Some(90.2), Some(66.3), Some(82.1), &[0]),
    row("gpt-4.1-mini", &["gpt-4.1-mini-2025-04-14"], Some(87.5), Some(65.0), Some(81.4), &[0]),
    row("gpt-4.1-nano", &["gpt-4.1-nano-2025-04-14"], Some(80.1), Some(50.3), Some(62.3), &[0]),
    row("gpt-4o", &["gpt-4o-2024-08-06", "chatgpt-4o-latest"], Some(88.7), Some(53.1), Some(75.9), &[0]),
    row("gpt-4o-mini", &["gpt-4o-mini-2024-07-18"], Some(82.0), Some(40.2), Some(70.2), &[0]),
    row("gpt-4-turbo", &["gpt-4-turbo-2024-04-09"], Some(86.7), Some(49.3), Some(73.4), &[0]),
    row("gpt-4-0125-preview", &["gpt-4-turbo-preview"], Some(85.4), Some(41.4), Some(64.5), &[0]),
    row("gpt-4-1106-preview", &[], Some(84.7), Some(42.5), Some(64.3), &[0]),
    // OpenAI: the Chatbot Arena leaderboard's MMLU column.
    row("gpt-4", &["gpt-4-0613", "gpt-4-0314"], Some(86.4), None, None, &[2]),
    row("gpt-3.5-turbo", &["gpt-3.5-turbo-1106", "gpt-3.5-turbo-0125"], Some(70.0), None, None, &[2]),
    // Anthropic.
    row(
        "claude-3.5-sonnet",
        &["claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet-latest"],
        Some(88.3),
        Some(59.4),
        Some(71.1),
        &[0],
    ),
    row("claude-3-opus", &["claude-3-opus-20240229", "claude-3-opus-latest"], Some(86.8), Some(50.4), Some(60.1), &[0]),
    row("claude-3.5-haiku", &["claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"], None, Some(41.6), None, &[5]),
    row("claude-3-haiku", &["claude-3-haiku-20240307"], Some(75.2), None, None, &[4]),
    row("claude-2", &["claude-2.0", "claude-v2"], Some(78.5), None, None, &[2]),
    row("claude-1", &["claude-v1"], Some(77.0), None, None, &[2]),
    row("claude-instant-1", &["claude-instant-v1", "claude-instant-1.2"], Some(73.4), None, None, &[2]),
    // Google.
    row("gemini-2.5-pro", &[], None, Some(84.0), None, &[8]),
    row("gemini-2.5-flash", &[], None, Some(80.8), None, &[7]),
    row("gemini-2.0-flash", &["gemini-2.0-flash-001"], None, Some(62.1), None, &[6]),
    row("gemini-1.5-pro", &[], Some(81.9), None, Some(58.5), &[0]),
    row("gemini-1.5-flash", &[], Some(77.9), Some(38.6), Some(40.9), &[0]),
    // Meta.
    row(
        "llama-3.1-405b",
        &["llama-3.1-405b-instruct", "meta-llama-3.1-405b-instruct"],
        Some(88.6),
        Some(50.7),
        Some(73.8),
        &[0],
    ),
    row(
        "llama-3.1-70b",
        &["llama-3.1-70b-instruct", "meta-llama-3.1-70b-instruct", "llama-3.1-70b-versatile"],
        Some(82.0),
        Some(41.7),
        Some(68.0),
        &[0],
    ),
    row(
        "llama-3.1-8b",
        &["llama-3.1-8b-instruct", "meta-llama-3.1-8b-instruct", "llama-3.1-8b-instant"],
        Some(68.4),
        Some(30.4),
        Some(51.9),
        &[0],
    ),
    row("llama-2-70b-chat", &["llama-2-70b-chat-hf"], Some(63.0), None, None, &[2]),
    row(
        "codellama-34b-instruct",
        &["code-llama-instruct-34b-chat", "codellama-34b-instruct-hf"],
        Some(53.7),
        None,
        None,
        &[2],
    ),
    // Mistral.
    row("mistral-large", &["mistral-large-2407", "mistral-large-2"], Some(84.0), None, None, &[9]),
    row(
        "mixtral-8x7b",
        &["mixtral-8x7b-instruct", "mixtral-8x7b-instruct-v0.1", "mixtral-8x7b-chat", "open-mixtral-8x7b"],
        Some(70.6),
        None,
        None,
        &[3],
    ),
    row(
        "mistral-7b-instruct-v0.1",
        &["mistral-7b-chat", "mistral-7b-instruct", "open-mistral-7b"],
        Some(55.4),
        None,
        None,
        &[2],
    ),
    // DeepSeek.
    row("deepseek-r1", &["deepseek-reasoner"], Some(90.8), Some(71.5), None, &[1]),
    row("deepseek-v3", &["deepseek-chat"], Some(88.5), Some(59.1), None, &[1]),
    // Others in the shared data sets.
    row("wizardlm-13b-v1.2", &[], Some(52.7), None, None, &[2]),
];

fn logit(percent: f64) -> f64 {
    let p = percent / 100.0;
    (p / (1.0 - p)).ln()
}

/// `Δ_GPQA`: the mean of `logit(MMLU) − logit(GPQA)` over rows with both.
fn gpqa_shift() -> f64 {
    mean(TABLE.iter().filter_map(|k| Some(logit(k.mmlu?) - logit(k.gpqa?))))
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / f64::from(n) }
}

impl Known {
    /// `x`, step 1 of the mapping.
    fn x(&self, gpqa_shift: f64) -> f64 {
        mean(self.mmlu.map(logit).into_iter().chain(self.gpqa.map(|g| logit(g) + gpqa_shift)))
    }

    /// The ability of this row.
    pub(crate) fn ability(&self) -> Ability {
        let shift = gpqa_shift();
        let math_shift = mean(TABLE.iter().filter_map(|k| k.math.map(|m| k.x(shift) - logit(m))));
        let mut by_intent = std::collections::BTreeMap::new();
        if let Some(m) = self.math {
            by_intent.insert(Intent::Math, logit(m) + math_shift + ANCHOR);
        }
        Ability { overall: self.x(shift) + ANCHOR, by_intent, origin: Origin::Known(self.name) }
    }
}

/// Lower case, provider prefix (`openai/`, `models/`) and version tag after `:` removed, `.`, `_`
/// and spaces as `-`.
pub(super) fn normalize(name: &str) -> String {
    let name = name.rsplit('/').next().unwrap_or(name);
    let name = name.split(':').next().unwrap_or(name);
    name.trim()
        .chars()
        .map(|c| match c {
            '.' | '_' | ' ' | '@' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Strips one trailing snapshot marker: `-latest`, `-preview`, `-exp`, a date (`-2024-08-06`,
/// `-20241022`, `-0613`, `-06-05`) or a three-digit version (`-002`).
pub(super) fn strip_suffix(name: &str) -> Option<&str> {
    for word in ["-latest", "-preview", "-exp"] {
        if let Some(rest) = name.strip_suffix(word) {
            return Some(rest);
        }
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (rest, last) = name.rsplit_once('-')?;
    if !(digits(last) && matches!(last.len(), 2..=4 | 8)) {
        return None;
    }
    // `-2024-08-06` and `-06-05`: drop the whole date.
    let mut rest = rest;
    if last.len() == 2 {
        for _ in 0..2 {
            match rest.rsplit_once('-') {
                Some((r, part)) if digits(part) && matches!(part.len(), 2 | 4) => rest = r,
                _ => break,
            }
        }
    }
    Some(rest)
}

/// The row for `name`: an exact (normalized) match of the name or an alias, else the same after
/// removing trailing snapshot markers one at a time.
pub(crate) fn lookup(name: &str) -> Option<&'static Known> {
    let find = |n: &str| TABLE.iter().find(|k| normalize(k.name) == n || k.aliases.iter().any(|a| normalize(a) == n));
    find_stripped(name, |candidate, _| find(candidate))
}

/// The first `find` hit for the normalized `name`, else for it with trailing snapshot markers
/// removed one at a time; `find` also learns whether it sees `name` whole (nothing removed).
pub(super) fn find_stripped<T>(name: &str, find: impl Fn(&str, bool) -> Option<T>) -> Option<T> {
    let normalized = normalize(name);
    let mut candidate = normalized.as_str();
    loop {
        if candidate.is_empty() {
            return None;
        }
        if let Some(hit) = find(candidate, candidate == normalized) {
            return Some(hit);
        }
        candidate = strip_suffix(candidate)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn theta(name: &str) -> f64 {
        lookup(name).unwrap_or_else(|| panic!("`{name}` is not in the table")).ability().overall
    }

    #[test]
    fn every_row_has_a_score_a_source_and_finite_abilities() {
        assert_eq!(CHECKED.len(), 10);
        for k in TABLE {
            assert!(k.mmlu.is_some() || k.gpqa.is_some(), "`{}` has no score", k.name);
            assert!(!k.sources.is_empty(), "`{}` has no source", k.name);
            for &s in k.sources {
                assert!(s < SOURCES.len(), "`{}` names source {s}", k.name);
            }
            for score in [k.mmlu, k.gpqa, k.math].into_iter().flatten() {
                assert!(score > 0.0 && score < 100.0, "`{}`: {score}", k.name);
            }
            let a = k.ability();
            assert!(a.overall.is_finite() && a.by_intent.values().all(|v| v.is_finite()), "`{}`", k.name);
            assert_eq!(a.origin, Origin::Known(k.name));
        }
        for s in SOURCES {
            assert!(s.url.starts_with("https://") && !s.what.is_empty());
        }
    }

    #[test]
    fn names_are_unique() {
        let mut all: Vec<String> = TABLE
            .iter()
            .flat_map(|k| std::iter::once(k.name).chain(k.aliases.iter().copied()))
            .map(normalize)
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a name or alias appears twice");
    }

    #[test]
    fn orders_pairs_that_benchmarks_order_unambiguously() {
        for (weaker, stronger) in [
            ("gpt-4o-mini", "gpt-4o"),
            ("gpt-4.1-nano", "gpt-4.1-mini"),
            ("gpt-4.1-mini", "gpt-4.1"),
            ("gpt-3.5-turbo", "gpt-4"),
            ("gpt-4o", "o3"),
            ("claude-3-haiku", "claude-3.5-sonnet"),
            ("claude-3-haiku", "claude-3-opus"),
            ("gemini-1.5-flash", "gemini-1.5-pro"),
            ("gemini-2.5-flash", "gemini-2.5-pro"),
            ("llama-3.1-8b", "llama-3.1-70b"),
            ("llama-3.1-70b", "llama-3.1-405b"),
            ("llama-2-70b-chat", "llama-3.1-70b"),
            ("mistral-7b-instruct-v0.1", "mixtral-8x7b"),
            ("deepseek-v3", "deepseek-r1"),
        ] {
            assert!(theta(weaker) < theta(stronger), "{weaker} {} >= {stronger} {}", theta(weaker), theta(stronger));
        }
    }

    #[test]
    fn matching_tolerates_case_prefixes_dates_and_dots() {
        for (query, name) in [
            ("gpt-4o", "gpt-4o"),
            ("GPT-4o", "gpt-4o"),
            ("openai/gpt-4o", "gpt-4o"),
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("gpt-4o-2024-11-20", "gpt-4o"),
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("claude-3-5-sonnet-20241022", "claude-3.5-sonnet"),
            ("anthropic/claude-3.5-sonnet", "claude-3.5-sonnet"),
            ("claude-3-5-haiku-latest", "claude-3.5-haiku"),
            ("models/gemini-1.5-pro-002", "gemini-1.5-pro"),
            ("gemini-2.5-pro-preview-06-05", "gemini-2.5-pro"),
            ("meta-llama/Meta-Llama-3.1-70B-Instruct", "llama-3.1-70b"),
            ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b"),
            ("mistralai/mixtral-8x7b-chat", "mixtral-8x7b"),
            ("gpt-3.5-turbo-1106", "gpt-3.5-turbo"),
            ("gpt-4-1106-preview", "gpt-4-1106-preview"),
            ("gpt-4-0613", "gpt-4"),
            ("o3-2025-04-16", "o3"),
            ("WizardLM/WizardLM-13B-V1.2", "wizardlm-13b-v1.2"),
            ("meta/code-llama-instruct-34b-chat", "codellama-34b-instruct"),
            ("deepseek-ai/DeepSeek-R1", "deepseek-r1"),
        ] {
            assert_eq!(lookup(query).map(|k| k.name), Some(name), "{query}");
        }
        for unknown in ["", "gpt", "gpt-5", "my-model", "llama-3.1", "claude", "2024-08-06"] {
            assert!(lookup(unknown).is_none(), "{unknown}");
        }
    }
}
