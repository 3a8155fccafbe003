//! One pass over a request's text that every built-in classifier reads from.
//!
//! The router computes [`TextStats`] once per request, before any classifier runs, so the heuristic
//! token counter, the difficulty and the intent classifiers share a single scan of the bytes. The scan
//! classifies bytes through a table and takes ASCII words eight bytes at a time (a SWAR test for
//! letters); it hashes each word of up to 14 letters, lower-cased, from its packed bytes and looks the
//! hash up in a small open-addressing table of cue words built at compile time, and the hash of the
//! word pair it ends when the previous word can start a cue pair. It allocates nothing.

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
                    b'=' | b'+' | b'^' | b'<' | b'>' | b'*' | b'/' => self.math_symbols += 1,
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

const ALPHA: u8 = 1;
const DIGIT: u8 = 2;
const SPACE: u8 = 4;
const PUNCT: u8 = 8;

/// The class of each ASCII byte (non-ASCII bytes are 0).
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

/// The high bit of every byte of a `u64`.
const HIGH: u64 = 0x8080_8080_8080_8080;
/// `0x20` in every byte: OR-ing it lower-cases ASCII letters.
const LOWER: u64 = 0x2020_2020_2020_2020;

/// Eight bytes from `i`, little-endian, zero-padded past the end of the text.
#[inline(always)]
fn chunk(bytes: &[u8], i: usize) -> u64 {
    match bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        Some(c) => u64::from_le_bytes(*c),
        None => {
            let rest = bytes.get(i..).unwrap_or_default();
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(buf)
        }
    }
}

/// A run of ASCII letters: its length, its capitals, and its first 16 bytes lower-cased, packed
/// little-endian and zero-padded (the cue hash input; meaningful for words of up to 16 letters).
struct Word {
    len: usize,
    capitals: u32,
    lo: u64,
    hi: u64,
}

impl Word {
    /// The run of letters that starts at `i` (a letter), eight bytes at a time.
    #[inline(always)]
    fn at(bytes: &[u8], i: usize) -> Self {
        let x = chunk(bytes, i);
        let (run, keep, capitals) = letter_run(x);
        if run < 8 {
            return Word { len: run, capitals, lo: (x | LOWER) & keep, hi: 0 };
        }
        let y = chunk(bytes, i + 8);
        let (run2, keep2, capitals2) = letter_run(y);
        let mut w = Word { len: 8 + run2, capitals: capitals + capitals2, lo: x | LOWER, hi: (y | LOWER) & keep2 };
        if run2 == 8 {
            loop {
                let (run, _, capitals) = letter_run(chunk(bytes, i + w.len));
                w.len += run;
                w.capitals += capitals;
                if run < 8 {
                    break;
                }
            }
        }
        w
    }
}

/// For eight bytes of text: the letters before the first byte that is not one (8 when all are), the
/// mask of those bytes, and the capitals among them.
#[inline(always)]
fn letter_run(x: u64) -> (usize, u64, u32) {
    let letters = letter_mask(x);
    let run = ((!letters & HIGH).trailing_zeros() / 8) as usize;
    let keep = low_bytes(run);
    // A letter is a capital iff its 0x20 bit is clear; `x << 2` moves that bit to the high bit.
    (run, keep, count_high(letters & !(x << 2) & keep))
}

/// The high bit of each byte of `x` (eight bytes of text, little-endian) that is an ASCII letter.
#[inline(always)]
const fn letter_mask(x: u64) -> u64 {
    // Lower-case and drop the high bit, so that the additions below cannot carry between bytes; a
    // byte is a letter iff it was ASCII and its lower-case form lies in 0x61..=0x7A.
    let y = (x | LOWER) & !HIGH;
    let at_least_a = y.wrapping_add(0x1F1F_1F1F_1F1F_1F1F); // high bit iff y >= 0x61
    let above_z = y.wrapping_add(0x0505_0505_0505_0505); // high bit iff y >= 0x7B
    at_least_a & !above_z & !x & HIGH
}

/// The number of high bits set in `m` (a mask with only high bits).
#[inline(always)]
const fn count_high(m: u64) -> u32 {
    ((m >> 7).wrapping_mul(0x0101_0101_0101_0101) >> 56) as u32
}

/// A mask of the low `len` bytes (`len` at most 8); a table, as shifts by a variable are slow.
#[inline(always)]
fn low_bytes(len: usize) -> u64 {
    const MASKS: [u64; 9] = {
        let mut m = [u64::MAX; 9];
        let mut k = 0;
        while k < 8 {
            m[k] = (1u64 << (8 * k)) - 1;
            k += 1;
        }
        m
    };
    MASKS[len.min(8)]
}

/// The word's hash from its lower-cased bytes packed little-endian into two words (zero-padded, so
/// the pair determines the word), with one or two multiplications. Never 0, which marks empty table
/// slots and "no previous word".
#[inline(always)]
const fn mix(lo: u64, hi: u64) -> u64 {
    (lo ^ hi.wrapping_mul(0xC2B2_AE3D_27D4_EB4F).rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// The hash of a cue word written in lower case, computed at compile time as `scan` does.
const fn cue_hash(word: &str) -> u64 {
    let b = word.as_bytes();
    assert!(!b.is_empty() && b.len() <= MAX_CUE_LEN, "cue words have 1 to 14 letters");
    let mut lo = 0u64;
    let mut hi = 0u64;
    let mut k = 0;
    while k < b.len() {
        assert!(b[k].is_ascii_lowercase(), "cue words are lower-case ASCII letters");
        if k < 8 {
            lo |= (b[k] as u64) << (8 * k);
        } else {
            hi |= (b[k] as u64) << (8 * (k - 8));
        }
        k += 1;
    }
    mix(lo, hi)
}

const MAX_CUE_LEN: usize = 14;
/// Cue words are looked up only in the first and last `CUE_WINDOW` bytes of each text part: that is
/// where instructions sit, while the middle of a long text is content (an article to summarise, a
/// contract, few-shot examples) whose words would mislead intent and difficulty. Structure counts
/// (code fences, symbols, list items) and token counts still cover the whole text.
pub(crate) const CUE_WINDOW: usize = 1024;

#[inline(always)]
const fn pair(a: u64, b: u64) -> u64 {
    (a.rotate_left(23) ^ b).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

use cue::*;

/// Single cue words. A word may carry several categories.
#[rustfmt::skip]
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
#[rustfmt::skip]
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
        t = insert(t, cue_hash(WORDS[i].0), WORDS[i].1);
        i += 1;
    }
    let mut i = 0;
    while i < PAIRS.len() {
        t = insert(t, pair(cue_hash(PAIRS[i].0), cue_hash(PAIRS[i].1)), PAIRS[i].2);
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

/// A one-bit-per-slot prefilter over every key of [`TABLE`]: most words miss it and skip the probe.
const FILTER_BITS: u32 = 14;
const FILTER_WORDS: usize = 1 << (FILTER_BITS - 6);
const FILTER: [u64; FILTER_WORDS] = {
    let mut f = [0u64; FILTER_WORDS];
    let mut slot = 0;
    while slot < TABLE_SIZE {
        if TABLE[slot].0 != 0 {
            let bit = filter_bit(TABLE[slot].0);
            f[bit >> 6] |= 1 << (bit & 63);
        }
        slot += 1;
    }
    f
};

/// The same kind of filter over the first words of the cue pairs: only after such a word is a pair
/// looked up.
const PAIR_HEADS: [u64; FILTER_WORDS] = {
    let mut f = [0u64; FILTER_WORDS];
    let mut i = 0;
    while i < PAIRS.len() {
        let bit = filter_bit(cue_hash(PAIRS[i].0));
        f[bit >> 6] |= 1 << (bit & 63);
        i += 1;
    }
    f
};

#[inline(always)]
fn maybe_pair_head(hash: u64) -> bool {
    let bit = filter_bit(hash);
    PAIR_HEADS[bit >> 6] & (1 << (bit & 63)) != 0
}

#[inline(always)]
const fn filter_bit(hash: u64) -> usize {
    // The high bits of a product are the well-mixed ones.
    (hash >> (64 - FILTER_BITS)) as usize
}

/// Whether `hash` may be a key of [`TABLE`] (false positives about 2% of the time).
#[inline(always)]
fn maybe_cue(hash: u64) -> bool {
    let bit = filter_bit(hash);
    FILTER[bit >> 6] & (1 << (bit & 63)) != 0
}

/// The flags of `hash` and its slot in [`TABLE`] (flags 0 when absent).
#[inline(always)]
fn lookup(hash: u64) -> (u16, usize) {
    let mut slot = (hash >> (64 - TABLE_BITS)) as usize;
    loop {
        let (h, flags) = TABLE[slot];
        if h == hash {
            return (flags, slot);
        }
        if h == 0 {
            return (0, slot);
        }
        slot = (slot + 1) & (TABLE_SIZE - 1);
    }
}

/// Cue words already counted in this text part, by table slot: a cue counts once however often it
/// repeats, so that a document that says "percent" ten times is not ten times as mathematical.
struct Seen([u64; TABLE_SIZE / 64]);

impl Seen {
    #[inline(always)]
    fn first(&mut self, flags: u16, slot: usize) -> u16 {
        let (word, bit) = (slot >> 6, 1u64 << (slot & 63));
        let fresh = self.0[word] & bit == 0;
        self.0[word] |= bit;
        if fresh { flags } else { 0 }
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
    fn long_texts_count_cues_only_near_their_ends() {
        let filler = "lorem ipsum 42 dolor sit amet, ".repeat(100);
        let text = format!("Why prove it step by step? {filler} how many {filler} at least, into French.");
        assert_eq!(TextStats::of_text(&text), reference(&text));
        let s = TextStats::of_text(&text);
        assert_eq!(s.math_cues, 1, "{s:?}"); // prove; "how many" sits in the middle
        assert_eq!(s.constraint_cues, 1);
        assert_eq!(s.translate_cues, 1);
    }

    #[test]
    fn table_has_room() {
        assert!(WORDS.len() + PAIRS.len() < TABLE_SIZE / 2);
    }

    #[test]
    fn counts_token_features() {
        let s = TextStats::of_text("The NASA report -- costs $ 42 and 7... Ok?");
        assert_eq!(s.capitals, 6); // T, N, A, S, A, O
        assert_eq!(s.spaced_digits, 2); // " 42" (its first digit), " 7"
        assert_eq!(s.digits, 3);
        assert_eq!(s.repeated_punct, 3); // the second `-`, the second and third `.`
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

    #[test]
    fn scanning_arbitrary_bytes_never_panics() {
        // Truncated multi-byte sequence at the end of a string cannot happen in `str`, but a lead byte
        // followed by fewer bytes than its width at the end of the slice must not index out of range.
        for s in ["\u{10FFFF}", "a\u{800}", "`", "``", "```", "1.", "1. ", "-", "\\", "\\a"] {
            let _ = TextStats::of_text(s);
        }
    }
}
