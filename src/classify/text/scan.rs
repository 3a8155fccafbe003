//! The scan itself: one pass over the bytes of a text, words eight bytes at a time, cue words and
//! pairs looked up near the ends of the text.

use super::bytes::{ALPHA, CLASS, DIGIT, PUNCT, SPACE, Word};
use super::cues::{MAX_CUE_LEN, Seen, TABLE_SIZE, lookup, maybe_cue, maybe_pair_head, mix, pair};
use super::{CUE_WINDOW, TextStats, cue};

impl TextStats {
    /// Adds the counts of `text`.
    pub(crate) fn scan(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let n = bytes.len();
        self.bytes = self.bytes.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        // Hot counters live in locals and are added to `self` at the end.
        // Words in the low half, long words in the high half: one addition per word.
        let mut words_and_long: u64 = 0;
        let mut capitals = 0u32;
        // The hash of the previous word when it can start a cue pair, else 0. Spaces and digits keep
        // it; punctuation, line breaks, non-ASCII characters and words too long for a cue reset it.
        let mut pair_head: u64 = 0;
        // No byte but spaces since the start of the line (or of the text).
        let mut fresh_line = true;
        // Backticks in the current run (letters do not end a run; any other byte does).
        let mut backticks = 0u32;
        // Cue words count only near the ends of the text (see `CUE_WINDOW`).
        let (head_end, tail_start) = (CUE_WINDOW.min(n), n.saturating_sub(CUE_WINDOW));
        let mut seen = Seen([0; TABLE_SIZE / 64]);
        let mut i = 0;
        while i < n {
            let b = bytes[i];
            let class = CLASS[b as usize];
            if class & ALPHA != 0 {
                fresh_line = false;
                // Words separated by single spaces, one per iteration.
                loop {
                    let w = Word::at(bytes, i);
                    words_and_long += 1 | (u64::from(w.len > 8) << 32);
                    capitals += w.capitals;
                    i += w.len;
                    if w.len > MAX_CUE_LEN || (i > head_end && i <= tail_start) {
                        pair_head = 0;
                    } else {
                        let hash = mix(w.lo, w.hi);
                        let mut flags = 0;
                        if maybe_cue(hash) {
                            let (f, slot) = lookup(hash);
                            if f != 0 {
                                flags = seen.first(f, slot);
                            }
                        }
                        // Pairs exist only after a pair head (about one word in ten).
                        if pair_head != 0 {
                            let pair = pair(pair_head, hash);
                            if maybe_cue(pair) {
                                let (f, slot) = lookup(pair);
                                if f != 0 {
                                    flags |= seen.first(f, slot);
                                }
                            }
                        }
                        // From the filter, not the table, so that the next word does not wait for the
                        // lookup (a false positive only costs a pair lookup that misses).
                        pair_head = if maybe_pair_head(hash) { hash } else { 0 };
                        if flags != 0 {
                            self.add_cues(flags);
                        }
                    }
                    // A single space before the next word changes nothing else.
                    if backticks == 0
                        && matches!(bytes.get(i..i + 2), Some(&[b' ', c]) if CLASS[c as usize] & ALPHA != 0)
                    {
                        i += 1;
                        continue;
                    }
                    break;
                }
                continue;
            }
            if b != b'`' {
                if backticks >= 3 {
                    self.code_fences += 1;
                }
                backticks = 0;
            }
            if class & SPACE != 0 {
                if b == b'\n' {
                    self.newlines += 1;
                    if fresh_line && i > 0 {
                        self.blank_lines += 1;
                    }
                    fresh_line = true;
                    pair_head = 0;
                }
                i += 1;
                continue;
            }
            let at_line_start = fresh_line;
            fresh_line = false;
            if class & DIGIT != 0 {
                self.digits += 1;
                // After a digit (most digits) the number continues without a look further back.
                if i == 0 || !bytes[i - 1].is_ascii_digit() {
                    self.numbers += u32::from(!continues_number(bytes, i));
                }
                if i > 0 && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
                    self.spaced_digits += 1;
                }
                if at_line_start {
                    // `12.` or `3)` opens a numbered list item.
                    let mut j = i + 1;
                    while j < n && bytes[j].is_ascii_digit() {
                        j += 1;
                    }
                    if j < n && (bytes[j] == b'.' || bytes[j] == b')') && j + 1 < n && bytes[j + 1] == b' ' {
                        self.list_items += 1;
                    }
                }
                i += 1;
                continue;
            }
            if class & PUNCT != 0 {
                self.punct += 1;
                if i > 0 && bytes[i - 1] == b {
                    self.repeated_punct += 1;
                }
                pair_head = 0;
                match b {
                    b'?' => self.questions += 1,
                    b'{' | b'}' | b'[' | b']' | b';' => self.code_symbols += 1,
                    b'=' | b'+' | b'^' | b'*' | b'/' => {
                        self.math_symbols += 1;
                        self.arithmetic += u32::from(is_arithmetic(bytes, i));
                    }
                    b'<' | b'>' => self.math_symbols += 1,
                    b'-' | b'%' => self.arithmetic += u32::from(is_arithmetic(bytes, i)),
                    b'\\' if i + 1 < n && bytes[i + 1].is_ascii_alphabetic() => self.math_symbols += 1,
                    b'`' => backticks += 1,
                    _ => {}
                }
                if at_line_start && (b == b'-' || b == b'*') && i + 1 < n && bytes[i + 1] == b' ' {
                    self.list_items += 1;
                }
                i += 1;
                continue;
            }
            // Non-ASCII: a lead byte starts a character; continuation bytes are skipped with it.
            let width = if b >= 0xF0 {
                4
            } else if b >= 0xE0 {
                3
            } else {
                2
            };
            self.non_ascii_chars += 1;
            if width >= 3 {
                self.wide_chars += 1;
                // U+2200..U+22FF mathematical operators.
                if b == 0xE2 && i + 1 < n && (0x88..=0x8B).contains(&bytes[i + 1]) {
                    self.math_symbols += 1;
                }
                // Full-width question mark U+FF1F.
                if b == 0xEF && i + 2 < n && bytes[i + 1] == 0xBC && bytes[i + 2] == 0x9F {
                    self.questions += 1;
                }
            }
            pair_head = 0;
            i += width.min(n - i);
        }
        if backticks >= 3 {
            self.code_fences += 1;
        }
        self.words += words_and_long as u32;
        self.long_words += (words_and_long >> 32) as u32;
        self.capitals += capitals;
    }

    // Out of line: about one word in ten is a cue, and inlined, its eleven counters would occupy
    // registers across the scan loop.
    #[inline(never)]
    fn add_cues(&mut self, flags: u16) {
        let bump = |field: &mut u32, bit: u16| *field += u32::from(flags & bit != 0);
        bump(&mut self.reason_cues, cue::REASON);
        bump(&mut self.constraint_cues, cue::CONSTRAINT);
        bump(&mut self.code_cues, cue::CODE);
        bump(&mut self.math_cues, cue::MATH);
        bump(&mut self.creative_cues, cue::CREATIVE);
        bump(&mut self.extract_cues, cue::EXTRACT);
        bump(&mut self.translate_cues, cue::TRANSLATE);
        bump(&mut self.chat_cues, cue::CHAT);
        bump(&mut self.wh_words, cue::QUESTION);
        bump(&mut self.step_cues, cue::STEP);
        bump(&mut self.language_cues, cue::LANGUAGE);
    }
}

/// Whether the digit at `i` continues a number: after a digit, or after a `.` or `,` that follows one.
#[inline(always)]
fn continues_number(bytes: &[u8], i: usize) -> bool {
    let before = |k: usize| i >= k && bytes[i - k].is_ascii_digit();
    before(1) || (i >= 2 && matches!(bytes[i - 1], b'.' | b',') && before(2))
}

/// Whether the operator at `i` stands between numbers (see [`TextStats::arithmetic`]).
#[inline(always)]
fn is_arithmetic(bytes: &[u8], i: usize) -> bool {
    let digit = |k: Option<usize>| k.and_then(|k| bytes.get(k)).is_some_and(u8::is_ascii_digit);
    let space = |k: Option<usize>| k.and_then(|k| bytes.get(k)) == Some(&b' ');
    // The operand positions, one space skipped.
    let left = if space(i.checked_sub(1)) { i.checked_sub(2) } else { i.checked_sub(1) };
    let right = if space(Some(i + 1)) { i + 2 } else { i + 1 };
    match bytes[i] {
        b'+' | b'*' | b'^' | b'=' => digit(left) && digit(Some(right)),
        b'-' | b'/' => space(i.checked_sub(1)) && space(Some(i + 1)) && digit(left) && digit(Some(right)),
        b'%' => digit(i.checked_sub(1)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::text::cues::{PAIRS, WORDS};

    #[test]
    fn long_texts_count_cues_only_near_their_ends() {
        let filler = "lorem ipsum 42 dolor sit amet, ".repeat(100);
        let text = format!("Why prove it step by step? {filler} how many {filler} at least, into French.");
        assert_eq!(TextStats::of_text(&text), reference(&text));
        let s = TextStats::of_text(&text);
        assert_eq!(s.math_cues, 1, "{s:?}"); // prove; "how many" sits in the middle
        assert_eq!(s.constraint_cues, 1);
        assert_eq!(s.translate_cues, 1);
    }

    /// The scan as a plain byte-at-a-time state machine, with cue words found by comparing strings:
    /// the optimised scan must agree with it on every field.
    fn reference(text: &str) -> TextStats {
        let mut s = TextStats::default();
        let bytes = text.as_bytes();
        s.bytes = bytes.len() as u32;
        let mut word = String::new();
        let mut prev_word: Option<String> = None;
        let (mut at_line_start, mut line_empty, mut backticks) = (true, true, 0u32);
        let (head_end, tail_start) = (CUE_WINDOW.min(bytes.len()), bytes.len().saturating_sub(CUE_WINDOW));
        let mut seen = std::collections::HashSet::new();
        let mut end_word = |s: &mut TextStats, word: &mut String, prev: &mut Option<String>, end: usize| {
            s.words += 1;
            s.long_words += u32::from(word.len() > 8);
            if word.len() > MAX_CUE_LEN || (end > head_end && end <= tail_start) {
                *prev = None;
                word.clear();
                return;
            }
            let mut flags = WORDS.iter().filter(|(w, _)| *w == word.as_str()).fold(0, |f, (_, x)| f | x);
            if flags != 0 && !seen.insert(format!("w:{word}")) {
                flags = 0;
            }
            if let Some(p) = prev.as_deref() {
                let pf = PAIRS.iter().filter(|(a, b, _)| *a == p && *b == word.as_str()).fold(0, |f, (_, _, x)| f | x);
                if pf != 0 && seen.insert(format!("p:{p} {word}")) {
                    flags |= pf;
                }
            }
            if flags != 0 {
                s.add_cues(flags);
            }
            *prev = Some(std::mem::take(word));
        };
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii_alphabetic() {
                word.push(b.to_ascii_lowercase() as char);
                s.capitals += u32::from(b.is_ascii_uppercase());
                at_line_start = false;
                line_empty = false;
                i += 1;
                continue;
            }
            if !word.is_empty() {
                end_word(&mut s, &mut word, &mut prev_word, i);
            }
            if b != b'`' {
                s.code_fences += u32::from(backticks >= 3);
                backticks = 0;
            }
            if b < 0x80 && !b.is_ascii_digit() && !b.is_ascii_punctuation() {
                if b == b'\n' {
                    s.newlines += 1;
                    s.blank_lines += u32::from(line_empty && i > 0);
                    (at_line_start, line_empty, prev_word) = (true, true, None);
                }
                i += 1;
                continue;
            }
            line_empty = false;
            if b.is_ascii_digit() {
                s.digits += 1;
                let prev = |k: usize| if i >= k { bytes[i - k] } else { b'a' };
                let continues =
                    prev(1).is_ascii_digit() || (matches!(prev(1), b'.' | b',') && prev(2).is_ascii_digit());
                s.numbers += u32::from(!continues);
                s.spaced_digits += u32::from(i > 0 && matches!(bytes[i - 1], b' ' | b'\t'));
                if at_line_start {
                    let rest = &text[i..];
                    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                    let after = &rest.as_bytes()[digits..];
                    s.list_items +=
                        u32::from(after.len() >= 2 && (after[0] == b'.' || after[0] == b')') && after[1] == b' ');
                }
                at_line_start = false;
                i += 1;
                continue;
            }
            if b.is_ascii_punctuation() {
                s.punct += 1;
                s.repeated_punct += u32::from(i > 0 && bytes[i - 1] == b);
                prev_word = None;
                match b {
                    b'?' => s.questions += 1,
                    b'{' | b'}' | b'[' | b']' | b';' => s.code_symbols += 1,
                    b'=' | b'+' | b'^' | b'<' | b'>' | b'*' | b'/' => s.math_symbols += 1,
                    b'\\' if bytes.get(i + 1).is_some_and(u8::is_ascii_alphabetic) => s.math_symbols += 1,
                    b'`' => backticks += 1,
                    _ => {}
                }
                // The operands around an operator, with at most one space between.
                let before = text[..i].strip_suffix(' ').unwrap_or(&text[..i]);
                let after = text[i + 1..].strip_prefix(' ').unwrap_or(&text[i + 1..]);
                let (l, r) =
                    (before.ends_with(|c: char| c.is_ascii_digit()), after.starts_with(|c: char| c.is_ascii_digit()));
                s.arithmetic += u32::from(match b {
                    b'+' | b'*' | b'^' | b'=' => l && r,
                    b'-' | b'/' => text[..i].ends_with(' ') && text[i + 1..].starts_with(' ') && l && r,
                    b'%' => text[..i].ends_with(|c: char| c.is_ascii_digit()),
                    _ => false,
                });
                s.list_items += u32::from(at_line_start && (b == b'-' || b == b'*') && bytes.get(i + 1) == Some(&b' '));
                at_line_start = false;
                i += 1;
                continue;
            }
            at_line_start = false;
            prev_word = None;
            let c = text[i..].chars().next().unwrap();
            s.non_ascii_chars += 1;
            if c.len_utf8() >= 3 {
                s.wide_chars += 1;
                s.math_symbols += u32::from(('\u{2200}'..='\u{22FF}').contains(&c));
                s.questions += u32::from(c == '\u{FF1F}');
            }
            i += c.len_utf8();
        }
        if !word.is_empty() {
            end_word(&mut s, &mut word, &mut prev_word, bytes.len());
        }
        s.code_fences += u32::from(backticks >= 3);
        s
    }

    const FRAGMENTS: &[&str] = &[
        " ",
        " ",
        " ",
        "  ",
        "\n",
        "\n\n",
        "\t",
        "\r\n",
        "a",
        "I",
        "the",
        "The",
        "NASA",
        "Step",
        "by",
        "step",
        "how",
        "many",
        "how",
        "at",
        "least",
        "into",
        "French",
        "write",
        "a",
        "poem",
        "why",
        "PROVE",
        "function",
        "counterexample",
        "counterexamples",
        "internationalization",
        "x",
        "Zebra",
        "camelCaseWord",
        "0",
        "12",
        "1,240.00",
        "3.5",
        "%",
        " + ",
        " - ",
        "*",
        "1",
        "3.",
        "2)",
        "-",
        "*",
        "- ",
        "* ",
        ".",
        "...",
        ",",
        "?",
        "??",
        "`",
        "```",
        "``",
        "{",
        "}",
        ";",
        "=",
        "+",
        "^",
        "\\",
        "\\frac",
        "/",
        "'",
        "\"",
        "(",
        ")",
        "é",
        "日本",
        "∑",
        "？",
        "😀",
        "\u{a0}",
        "—",
        "\u{7f}",
        "\u{1}",
        "abcdefgh",
        "abcdefghi",
        "abcdefghijklmn",
        "abcdefghijklmno",
    ];

    #[test]
    fn counts_numbers_and_arithmetic() {
        let s = TextStats::of_text("What is 17 * 23? And 15% of 1,240.50, or 5 - 3 = 2 on 2025-03-03 at 9:40, i+1");
        assert_eq!(s.numbers, 13, "{s:?}"); // 17 23 15 1,240.50 5 3 2 2025 03 03 9 40 1
        assert_eq!(s.arithmetic, 4, "{s:?}"); // `*`, `%`, ` - `, `=`
        assert_eq!(TextStats::of_text("Implement it in Rust: v[0] + x, n-1, 4k+3").arithmetic, 0);
    }

    #[test]
    fn fast_scan_matches_the_reference() {
        for text in [
            "",
            "Why is the sky blue? Explain step by step.\n\n1. First point\n- item\n```rust\nfn main() {}\n```",
            "TRANSLATE this into French, at least twice",
            "``a` code",
            "how 3 many; how\nmany",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz @[`{ 0123456789",
        ] {
            assert_eq!(TextStats::of_text(text), reference(text), "{text:?}");
        }
    }

    #[test]
    fn fast_scan_matches_the_reference_at_every_block_offset() {
        // Words, pairs, fences and line starts at every alignment of the 8-byte loads.
        let text = "Each of the parents has eight arms. How many arms?\n- step by step\n12. at least\n\
                    ```rust\n``a` b\n  3) how  much é, into French; why? internationalization how many";
        for pad in 0..130 {
            for fill in [" ", "\n", "x", "7", "é"] {
                let padded = format!("{}{text}", fill.repeat(pad));
                assert_eq!(TextStats::of_text(&padded), reference(&padded), "{padded:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_scan_matches_the_reference_on_random_text(
            parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..400)
        ) {
            let text = parts.concat();
            proptest::prop_assert_eq!(TextStats::of_text(&text), reference(&text), "{:?}", text);
        }

        #[test]
        fn fast_scan_matches_the_reference_on_long_text(
            parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 400..1600)
        ) {
            // Two to eight KiB: separate cue windows, words across their edges, a middle without cues.
            let text = parts.concat();
            proptest::prop_assert_eq!(TextStats::of_text(&text), reference(&text), "{:?}", text);
        }

        #[test]
        fn fast_scan_matches_the_reference_on_any_string(text in "\\PC{0,200}") {
            proptest::prop_assert_eq!(TextStats::of_text(&text), reference(&text), "{:?}", text);
        }
    }
}
