//! One pass over a request's text that every built-in classifier reads from.
//!
//! The router computes [`TextStats`] once per request, before any classifier runs, so the heuristic
//! token counter, the difficulty and the intent classifiers share a single scan of the bytes. The scan
//! classifies bytes through a table and takes ASCII words eight bytes at a time (a SWAR test for
//! letters); it hashes each word of up to 14 letters, lower-cased, from its packed bytes and looks the
//! hash up in a small open-addressing table of cue words built at compile time, and the hash of the
//! word pair it ends when the previous word can start a cue pair. It allocates nothing.

mod bytes;
mod cues;
mod scan;

use crate::request::{ContentPart, ImageDetail, Request};

/// Cue categories a word can belong to (bit flags).
pub(crate) mod cue {
    pub(crate) const REASON: u16 = 1;
    pub(crate) const CONSTRAINT: u16 = 1 << 1;
    pub(crate) const CODE: u16 = 1 << 2;
    pub(crate) const MATH: u16 = 1 << 3;
    pub(crate) const CREATIVE: u16 = 1 << 4;
    pub(crate) const EXTRACT: u16 = 1 << 5;
    pub(crate) const TRANSLATE: u16 = 1 << 6;
    pub(crate) const CHAT: u16 = 1 << 7;
    pub(crate) const QUESTION: u16 = 1 << 8;
    pub(crate) const STEP: u16 = 1 << 9;
    pub(crate) const LANGUAGE: u16 = 1 << 10;
}

/// Cue words are looked up only in the first and last `CUE_WINDOW` bytes of each text part: that is
/// where instructions sit, while the middle of a long text is content (an article to summarise, a
/// contract, few-shot examples) whose words would mislead intent and difficulty. Structure counts
/// (code fences, symbols, list items) and token counts still cover the whole text.
pub(crate) const CUE_WINDOW: usize = 1024;

/// Counts from one scan of a request's text.
///
/// All fields count over every text part of every message (and tool definitions for the byte and word
/// counts). Cue counts are numbers of words or word pairs from the built-in cue lists: reasoning
/// ("prove", "why", "step by step"), constraints ("must", "at least", "exactly"), code, math, creative
/// writing, extraction and summaries, translation, small talk, wh-questions and sequencing words,
/// looked up in the first and last KiB of each text part only (instructions sit there; the middle of a
/// long document is content).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TextStats {
    /// Bytes of text.
    pub bytes: u32,
    /// Unicode scalar values that are not ASCII.
    pub non_ascii_chars: u32,
    /// Non-ASCII characters of three or more bytes (CJK and most symbols): about one token each.
    pub wide_chars: u32,
    /// Runs of ASCII letters.
    pub words: u32,
    /// Words longer than eight letters (usually more than one token).
    pub long_words: u32,
    /// ASCII capital letters (rare capitalised words, acronyms and identifiers split into more tokens).
    pub capitals: u32,
    /// ASCII digits.
    pub digits: u32,
    /// Digits right after a space or a tab: byte-level BPE pre-tokenizers (Qwen3, GPT-4o) make that
    /// space a token of its own.
    pub spaced_digits: u32,
    /// ASCII punctuation and symbols.
    pub punct: u32,
    /// Punctuation bytes equal to the byte before (`---`, `...`, `___`): such runs merge into few tokens.
    pub repeated_punct: u32,
    /// Line breaks.
    pub newlines: u32,
    /// Blank lines (paragraph or example separators).
    pub blank_lines: u32,
    /// Question marks.
    pub questions: u32,
    /// Lines that start a list item (`- `, `* `, `1.`, `2)`).
    pub list_items: u32,
    /// Code fences (```).
    pub code_fences: u32,
    /// Braces, brackets and semicolons.
    pub code_symbols: u32,
    /// Arithmetic operators, `=`, `^`, LaTeX commands and mathematical symbols.
    pub math_symbols: u32,
    /// Numbers: runs of digits, a decimal or thousands separator between digits continuing one
    /// (`1,240.00` is one number).
    pub numbers: u32,
    /// Arithmetic between numbers: `+`, `*`, `^` or `=` with a digit on both sides (one space
    /// allowed on each), `-` and `/` with a space and a digit on both sides (`5 - 3`, `6 / 3`; not a
    /// date or a reading such as `120/80`), and `%` right after a digit.
    pub arithmetic: u32,
    /// Reasoning cues.
    pub reason_cues: u32,
    /// Constraint cues.
    pub constraint_cues: u32,
    /// Programming cues.
    pub code_cues: u32,
    /// Mathematics cues.
    pub math_cues: u32,
    /// Creative-writing cues.
    pub creative_cues: u32,
    /// Extraction and summary cues.
    pub extract_cues: u32,
    /// Translation cues.
    pub translate_cues: u32,
    /// Language names (strengthen translation cues).
    pub language_cues: u32,
    /// Small-talk cues.
    pub chat_cues: u32,
    /// Wh-question words.
    pub wh_words: u32,
    /// Sequencing words ("first", "then", "finally").
    pub step_cues: u32,
    /// Messages in the conversation.
    pub messages: u32,
    /// Image parts.
    pub images: u32,
    /// Image parts with high or automatic detail.
    pub images_high_detail: u32,
    /// Tool definitions.
    pub tools: u32,
}

impl TextStats {
    /// Scans every text part, tool definition and stop sequence of `request`.
    pub fn of_request(request: &Request) -> Self {
        let mut s = Self::default();
        for m in &request.messages {
            s.messages += 1;
            for part in &m.content {
                match part {
                    ContentPart::Text { text } => s.scan(text),
                    ContentPart::Image { detail, .. } => {
                        s.images += 1;
                        if *detail != ImageDetail::Low {
                            s.images_high_detail += 1;
                        }
                    }
                }
            }
            for call in &m.tool_calls {
                s.scan_plain(&call.name);
                s.scan_plain(&call.arguments);
            }
        }
        for t in &request.tools {
            s.tools += 1;
            s.scan_plain(&t.name);
            s.scan_plain(&t.description);
            s.scan_plain(&t.parameters);
        }
        s
    }

    /// Scans one string.
    pub fn of_text(text: &str) -> Self {
        let mut s = Self::default();
        s.scan(text);
        s
    }

    /// Counts text that carries no cues (tool schemas, arguments): only bytes, words and symbols.
    fn scan_plain(&mut self, text: &str) {
        let saved = (self.reason_cues, self.constraint_cues, self.code_cues, self.math_cues);
        let saved2 = (self.creative_cues, self.extract_cues, self.translate_cues, self.language_cues);
        let saved3 = (self.chat_cues, self.wh_words, self.step_cues, self.questions, self.list_items);
        self.scan(text);
        (self.reason_cues, self.constraint_cues, self.code_cues, self.math_cues) = saved;
        (self.creative_cues, self.extract_cues, self.translate_cues, self.language_cues) = saved2;
        (self.chat_cues, self.wh_words, self.step_cues, self.questions, self.list_items) = saved3;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_basic_structure() {
        let s = TextStats::of_text(
            "Why is the sky blue? Explain step by step.\n\n1. First point\n- item\n```rust\nfn main() {}\n```",
        );
        assert_eq!(s.questions, 1);
        assert!(s.reason_cues >= 3, "{s:?}"); // why, explain, step-by-step
        assert_eq!(s.blank_lines, 1);
        assert_eq!(s.list_items, 2);
        assert_eq!(s.code_fences, 2);
        assert!(s.code_cues >= 1);
        assert_eq!(s.digits, 1);
    }

    #[test]
    fn cues_are_case_insensitive_and_pairs_work() {
        let s = TextStats::of_text("TRANSLATE this into French, at least twice");
        assert_eq!(s.translate_cues, 2); // translate, into french
        assert_eq!(s.constraint_cues, 1); // at least
        assert_eq!(s.language_cues, 1);
    }

    #[test]
    fn non_ascii_counts_characters_not_bytes() {
        let s = TextStats::of_text("日本語のテキスト ∑ é");
        assert_eq!(s.non_ascii_chars, 10);
        assert_eq!(s.wide_chars, 9);
        assert_eq!(s.math_symbols, 1);
    }

    #[test]
    fn counts_token_features() {
        let s = TextStats::of_text("The NASA report -- costs $ 42 and 7... Ok?");
        assert_eq!(s.capitals, 6); // T, N, A, S, A, O
        assert_eq!(s.spaced_digits, 2); // " 42" (its first digit), " 7"
        assert_eq!(s.digits, 3);
        assert_eq!(s.repeated_punct, 3); // the second `-`, the second and third `.`
    }

    #[test]
    fn scanning_arbitrary_bytes_never_panics() {
        // Truncated multi-byte sequence at the end of a string cannot happen in `str`, but a lead byte
        // followed by fewer bytes than its width at the end of the slice must not index out of range.
        for s in ["\u{10FFFF}", "a\u{800}", "`", "``", "```", "1.", "1. ", "-", "\\", "\\a"] {
            let _ = TextStats::of_text(s);
        }
    }
}
