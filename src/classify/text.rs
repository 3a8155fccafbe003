//! One pass over a request's text that every built-in classifier reads from.
//!
//! The router computes [`TextStats`] once per request, before any classifier runs, so the heuristic
//! token counter, the difficulty and the intent classifiers share a single scan of the bytes. The scan
//! classifies each byte through a table, hashes each ASCII word (lower-cased on the fly) with FNV-1a
//! and looks the hash, and the hash of the word pair it ends, up in a small open-addressing table of
//! cue words built at compile time. It allocates nothing.

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

/// Counts from one scan of a request's text.
///
/// All fields count over every text part of every message (and tool definitions for the byte and word
/// counts). Cue counts are numbers of words or word pairs from the built-in cue lists: reasoning
/// ("prove", "why", "step by step"), constraints ("must", "at least", "exactly"), code, math, creative
/// writing, extraction and summaries, translation, small talk, wh-questions and sequencing words.
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
    /// ASCII digits.
    pub digits: u32,
    /// ASCII punctuation and symbols.
    pub punct: u32,
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

    /// Adds the counts of `text`.
    pub fn scan(&mut self, text: &str) {
        let bytes = text.as_bytes();
        self.bytes = self.bytes.saturating_add(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        let mut word_hash = FNV_OFFSET;
        let mut word_len = 0usize;
        let mut prev_word: u64 = 0;
        let mut at_line_start = true;
        let mut line_empty = true;
        let mut backticks = 0u32;
        let n = bytes.len();
        let mut i = 0;
        while i < n {
            let b = bytes[i];
            let class = CLASS[b as usize];
            if class & ALPHA != 0 {
                word_hash = (word_hash ^ u64::from(b | 0x20)).wrapping_mul(FNV_PRIME);
                word_len += 1;
                at_line_start = false;
                line_empty = false;
                i += 1;
                continue;
            }
            if word_len > 0 {
                prev_word = self.end_word(word_hash, word_len, prev_word);
                word_hash = FNV_OFFSET;
                word_len = 0;
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
                    if line_empty && i > 0 {
                        self.blank_lines += 1;
                    }
                    at_line_start = true;
                    line_empty = true;
                    prev_word = 0;
                }
                i += 1;
                continue;
            }
            line_empty = false;
            if class & DIGIT != 0 {
                self.digits += 1;
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
                at_line_start = false;
                i += 1;
                continue;
            }
            if class & PUNCT != 0 {
                self.punct += 1;
                prev_word = 0;
                match b {
                    b'?' => self.questions += 1,
                    b'{' | b'}' | b'[' | b']' | b';' => self.code_symbols += 1,
                    b'=' | b'+' | b'^' | b'<' | b'>' | b'*' | b'/' => self.math_symbols += 1,
                    b'\\' if i + 1 < n && bytes[i + 1].is_ascii_alphabetic() => self.math_symbols += 1,
                    b'`' => backticks += 1,
                    _ => {}
                }
                if at_line_start && (b == b'-' || b == b'*') && i + 1 < n && bytes[i + 1] == b' ' {
                    self.list_items += 1;
                }
                at_line_start = false;
                i += 1;
                continue;
            }
            // Non-ASCII: a lead byte starts a character; continuation bytes are skipped with it.
            at_line_start = false;
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
                // U+2200..U+22FF mathematical operators, U+00B2/B3 superscripts are two-byte.
                if b == 0xE2 && i + 1 < n && (0x88..=0x8B).contains(&bytes[i + 1]) {
                    self.math_symbols += 1;
                }
                // Full-width question mark U+FF1F.
                if b == 0xEF && i + 2 < n && bytes[i + 1] == 0xBC && bytes[i + 2] == 0x9F {
                    self.questions += 1;
                }
            }
            prev_word = 0;
            i += width.min(n - i);
        }
        if word_len > 0 {
            self.end_word(word_hash, word_len, prev_word);
        }
        if backticks >= 3 {
            self.code_fences += 1;
        }
    }

    #[inline]
    fn end_word(&mut self, hash: u64, len: usize, prev: u64) -> u64 {
        self.words += 1;
        if len > 8 {
            self.long_words += 1;
        }
        if len > MAX_CUE_LEN {
            return 0;
        }
        let mut flags = lookup(hash);
        if prev != 0 {
            flags |= lookup(pair(prev, hash));
        }
        if flags != 0 {
            self.add_cues(flags);
        }
        hash
    }

    #[inline]
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

const ALPHA: u8 = 1;
const DIGIT: u8 = 2;
const SPACE: u8 = 4;
const PUNCT: u8 = 8;

const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 128 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphabetic() {
            ALPHA
        } else if c.is_ascii_digit() {
            DIGIT
        } else if c == b' ' || c == b'\n' || c == b'\t' || c == b'\r' || c == 0x0B || c == 0x0C {
            SPACE
        } else if c.is_ascii_punctuation() {
            PUNCT
        } else {
            SPACE // other control characters separate words and count as nothing
        };
        b += 1;
    }
    t
};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const MAX_CUE_LEN: usize = 14;

const fn fnv(word: &str) -> u64 {
    let b = word.as_bytes();
    let mut h = FNV_OFFSET;
    let mut i = 0;
    while i < b.len() {
        h = (h ^ b[i] as u64).wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

#[inline]
const fn pair(a: u64, b: u64) -> u64 {
    (a.rotate_left(23) ^ b).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

use cue::*;

/// Single cue words. A word may carry several categories.
const WORDS: &[(&str, u16)] = &[
    // reasoning
    ("why", REASON | QUESTION), ("explain", REASON), ("prove", REASON | MATH), ("proof", REASON | MATH),
    ("derive", REASON | MATH), ("analyze", REASON), ("analyse", REASON), ("analysis", REASON),
    ("compare", REASON), ("contrast", REASON), ("evaluate", REASON), ("justify", REASON), ("reason", REASON),
    ("reasoning", REASON), ("tradeoffs", REASON), ("implications", REASON), ("critique", REASON),
    ("argue", REASON), ("infer", REASON), ("deduce", REASON), ("hypothesis", REASON), ("rigorous", REASON),
    ("rigorously", REASON), ("optimal", REASON), ("optimize", REASON | CODE), ("design", REASON),
    ("architecture", REASON | CODE), ("strategy", REASON), ("plan", REASON), ("consequences", REASON),
    ("assess", REASON), ("formally", REASON | MATH), ("counterexample", REASON | MATH),
    // constraints
    ("must", CONSTRAINT), ("should", CONSTRAINT), ("exactly", CONSTRAINT), ("without", CONSTRAINT),
    ("only", CONSTRAINT), ("ensure", CONSTRAINT), ("never", CONSTRAINT), ("always", CONSTRAINT),
    ("require", CONSTRAINT), ("requires", CONSTRAINT), ("requirements", CONSTRAINT), ("within", CONSTRAINT),
    ("limit", CONSTRAINT), ("constraint", CONSTRAINT), ("constraints", CONSTRAINT), ("format", CONSTRAINT),
    ("maximum", CONSTRAINT), ("minimum", CONSTRAINT), ("avoid", CONSTRAINT), ("include", CONSTRAINT),
    ("handle", CONSTRAINT), ("edge", CONSTRAINT), ("words", CONSTRAINT), ("sentences", CONSTRAINT),
    // code
    ("code", CODE), ("function", CODE), ("python", CODE | LANGUAGE), ("rust", CODE), ("javascript", CODE),
    ("typescript", CODE), ("java", CODE), ("golang", CODE), ("sql", CODE), ("bug", CODE), ("debug", CODE),
    ("compile", CODE), ("compiler", CODE), ("exception", CODE), ("stack", CODE), ("class", CODE),
    ("def", CODE), ("fn", CODE), ("impl", CODE), ("struct", CODE), ("return", CODE), ("implement", CODE),
    ("api", CODE), ("regex", CODE), ("script", CODE), ("program", CODE), ("algorithm", CODE | REASON),
    ("refactor", CODE), ("async", CODE), ("thread", CODE), ("import", CODE), ("const", CODE), ("let", CODE),
    ("var", CODE), ("int", CODE), ("println", CODE), ("print", CODE), ("lambda", CODE), ("json", CODE | EXTRACT),
    ("html", CODE), ("css", CODE), ("query", CODE), ("database", CODE), ("endpoint", CODE), ("unittest", CODE),
    ("list", CODE), ("array", CODE), ("string", CODE), ("integer", CODE | MATH), ("recursion", CODE),
    ("complexity", CODE | REASON), ("docker", CODE), ("kubernetes", CODE), ("bash", CODE), ("cpp", CODE),
    // math
    ("solve", MATH), ("equation", MATH), ("equations", MATH), ("integral", MATH), ("derivative", MATH),
    ("probability", MATH), ("calculate", MATH), ("compute", MATH), ("sum", MATH), ("matrix", MATH),
    ("prime", MATH), ("theorem", MATH | REASON), ("lemma", MATH | REASON), ("polynomial", MATH),
    ("sqrt", MATH), ("log", MATH), ("sin", MATH), ("cos", MATH), ("limit", MATH), ("geometry", MATH),
    ("triangle", MATH), ("algebra", MATH), ("modulo", MATH), ("divisible", MATH), ("factorial", MATH),
    ("percent", MATH), ("percentage", MATH), ("average", MATH), ("total", MATH), ("dollars", MATH),
    ("cost", MATH), ("ratio", MATH), ("fraction", MATH), ("digits", MATH), ("vector", MATH),
    ("eigenvalue", MATH), ("eigenvalues", MATH), ("convergence", MATH), ("infinitely", MATH),
    ("real", MATH), ("number", MATH), ("numbers", MATH),
    // creative
    ("poem", CREATIVE), ("story", CREATIVE), ("haiku", CREATIVE), ("lyrics", CREATIVE), ("song", CREATIVE),
    ("limerick", CREATIVE), ("sonnet", CREATIVE), ("fiction", CREATIVE), ("imagine", CREATIVE),
    ("creative", CREATIVE), ("slogan", CREATIVE), ("tagline", CREATIVE), ("novel", CREATIVE),
    ("character", CREATIVE), ("plot", CREATIVE), ("rhyme", CREATIVE), ("verse", CREATIVE), ("tale", CREATIVE),
    ("essay", CREATIVE), ("blog", CREATIVE), ("narrative", CREATIVE), ("screenplay", CREATIVE),
    ("brainstorm", CREATIVE), ("funny", CREATIVE | CHAT),
    // extraction and summaries
    ("summarize", EXTRACT), ("summarise", EXTRACT), ("summary", EXTRACT), ("extract", EXTRACT),
    ("tldr", EXTRACT), ("bullet", EXTRACT), ("bullets", EXTRACT), ("parse", EXTRACT | CODE),
    ("classify", EXTRACT), ("categorize", EXTRACT), ("fields", EXTRACT), ("entities", EXTRACT),
    ("outline", EXTRACT), ("condense", EXTRACT), ("shorten", EXTRACT), ("headline", EXTRACT),
    ("keywords", EXTRACT), ("table", EXTRACT), ("csv", EXTRACT | CODE), ("invoice", EXTRACT),
    ("document", EXTRACT), ("article", EXTRACT), ("transcript", EXTRACT), ("report", EXTRACT),
    // translation
    ("translate", TRANSLATE), ("translation", TRANSLATE), ("translated", TRANSLATE), ("translating", TRANSLATE),
    ("english", LANGUAGE), ("french", LANGUAGE), ("spanish", LANGUAGE), ("german", LANGUAGE),
    ("italian", LANGUAGE), ("portuguese", LANGUAGE), ("chinese", LANGUAGE), ("mandarin", LANGUAGE),
    ("japanese", LANGUAGE), ("korean", LANGUAGE), ("russian", LANGUAGE), ("arabic", LANGUAGE),
    ("hindi", LANGUAGE), ("dutch", LANGUAGE), ("polish", LANGUAGE), ("turkish", LANGUAGE),
    // small talk
    ("hi", CHAT), ("hello", CHAT), ("hey", CHAT), ("thanks", CHAT), ("thank", CHAT), ("joke", CHAT | CREATIVE),
    ("chat", CHAT), ("lol", CHAT), ("morning", CHAT), ("recommend", CHAT), ("favorite", CHAT),
    ("feel", CHAT), ("weekend", CHAT), ("advice", CHAT), ("suggest", CHAT), ("weather", CHAT),
    // questions and sequencing
    ("what", QUESTION), ("who", QUESTION), ("when", QUESTION), ("where", QUESTION), ("which", QUESTION),
    ("how", QUESTION), ("first", STEP), ("then", STEP), ("finally", STEP), ("next", STEP), ("also", STEP),
    ("additionally", STEP), ("afterwards", STEP), ("second", STEP), ("third", STEP), ("lastly", STEP),
];

/// Word pairs (the second word ends the pair).
const PAIRS: &[(&str, &str, u16)] = &[
    ("by", "step", REASON | STEP), ("think", "carefully", REASON), ("show", "your", REASON),
    ("your", "work", REASON), ("at", "least", CONSTRAINT), ("at", "most", CONSTRAINT),
    ("no", "more", CONSTRAINT), ("less", "than", CONSTRAINT), ("make", "sure", CONSTRAINT),
    ("how", "many", MATH), ("how", "much", MATH), ("key", "points", EXTRACT), ("tl", "dr", EXTRACT),
    ("main", "points", EXTRACT), ("in", "english", TRANSLATE), ("into", "english", TRANSLATE),
    ("into", "french", TRANSLATE), ("into", "spanish", TRANSLATE), ("into", "german", TRANSLATE),
    ("into", "chinese", TRANSLATE), ("into", "japanese", TRANSLATE), ("to", "english", TRANSLATE),
    ("to", "french", TRANSLATE), ("to", "spanish", TRANSLATE), ("to", "german", TRANSLATE),
    ("how", "are", CHAT), ("are", "you", CHAT), ("write", "a", CREATIVE), ("once", "upon", CREATIVE),
    ("unit", "tests", CODE), ("unit", "test", CODE), ("pull", "request", CODE), ("time", "complexity", CODE),
    ("big", "o", CODE), ("edge", "cases", CONSTRAINT), ("step", "by", STEP),
];

const TABLE_BITS: u32 = 10;
const TABLE_SIZE: usize = 1 << TABLE_BITS;

const TABLE: [(u64, u16); TABLE_SIZE] = {
    let mut t = [(0u64, 0u16); TABLE_SIZE];
    let mut i = 0;
    while i < WORDS.len() {
        t = insert(t, fnv(WORDS[i].0), WORDS[i].1);
        i += 1;
    }
    let mut i = 0;
    while i < PAIRS.len() {
        t = insert(t, pair(fnv(PAIRS[i].0), fnv(PAIRS[i].1)), PAIRS[i].2);
        i += 1;
    }
    t
};

const fn insert(mut t: [(u64, u16); TABLE_SIZE], hash: u64, flags: u16) -> [(u64, u16); TABLE_SIZE] {
    let mut slot = (hash >> (64 - TABLE_BITS)) as usize;
    loop {
        if t[slot].0 == 0 {
            t[slot] = (hash, flags);
            return t;
        }
        if t[slot].0 == hash {
            t[slot].1 |= flags;
            return t;
        }
        slot = (slot + 1) & (TABLE_SIZE - 1);
    }
}

#[inline]
fn lookup(hash: u64) -> u16 {
    let mut slot = (hash >> (64 - TABLE_BITS)) as usize;
    loop {
        let (h, flags) = TABLE[slot];
        if h == hash {
            return flags;
        }
        if h == 0 {
            return 0;
        }
        slot = (slot + 1) & (TABLE_SIZE - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_basic_structure() {
        let s = TextStats::of_text("Why is the sky blue? Explain step by step.\n\n1. First point\n- item\n```rust\nfn main() {}\n```");
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
    fn table_has_room() {
        assert!(WORDS.len() + PAIRS.len() < TABLE_SIZE / 2);
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
