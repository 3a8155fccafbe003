//! Hashed text features for the learned classifier: word 1–2 grams of the whole prompt, word 1–2
//! grams and character n-grams of its last block, and dense structural features.
//!
//! The extractor streams: it hands each feature's bucket to a [`Sink`] as it finds it, without
//! collecting n-grams, sorting them or allocating. Training collects them ([`Collect`]); inference
//! multiplies them straight into the weights.
//!
//! Text is read as lower-cased bytes. Words are runs of ASCII letters and digits and of non-ASCII
//! bytes, with every digit read as `0` (numbers differ between prompts of one kind) unless
//! [`FeatureConfig::digits`]. The last block
//! is the text after the last blank line: few-shot prompts put their examples first and the real
//! question last, and the shared examples would otherwise drown it. Character n-grams are read from
//! the end of the last block only (at most [`FeatureConfig::char_window`] bytes), with runs of
//! whitespace read as one space.
//!
//! The hash (FNV-1a, then a 64-bit finaliser) is fixed: a model file trained by one build predicts
//! the same with every other build.

use serde::{Deserialize, Serialize};

use crate::classify::TextStats;
use crate::error::{Error, Result};

/// Feature namespaces: the same n-gram in two namespaces lands in two unrelated buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// Word 1–2 grams of the whole prompt.
    Words = 0,
    /// Word 1–2 grams of the last block.
    LastWords = 1,
    /// Character n-grams of the end of the last block.
    LastChars = 2,
}

pub(crate) const NAMESPACES: usize = 3;

/// Names of the dense structural features, in order (the model file records them).
pub const DENSE: [&str; 16] = [
    "log_bytes",
    "log_last_block_bytes",
    "blocks",
    "digit_share",
    "questions",
    "code_symbol_share",
    "math_symbol_share",
    "list_items",
    "code_fences",
    "reason_cues",
    "constraint_cues",
    "code_cues",
    "math_cues",
    "wh_words",
    "creative_or_extract_cues",
    "long_word_share",
];

/// How text becomes features. Stored in the model file: a model predicts with the configuration it
/// was trained with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct FeatureConfig {
    /// Buckets are `2^hash_bits` (10 to 24). More buckets mean fewer collisions and a larger model.
    pub hash_bits: u8,
    /// Word n-grams up to this length (1 or 2).
    pub word_ngrams: u8,
    /// The length of character n-grams (3 to 8); `0` turns them off.
    pub char_ngram: u8,
    /// Character n-grams are read from at most this many bytes at the end of the last block.
    pub char_window: u32,
    /// Word n-grams are read from at most this many bytes at the start of the prompt and this many at
    /// its end (a 100 KB document costs no more than an 8 KB one).
    pub word_window: u32,
    /// TF-IDF weighting: an n-gram seen `tf` times in a prompt weighs `(1 + ln tf) · idf`, with
    /// `idf = 1 + ln((1 + n) / (1 + df))` over the `n` training rows, `df` of which have its
    /// bucket (the table is stored in the model file). Off, every occurrence weighs 1 (model files
    /// before version 4). Each namespace is scaled to unit length either way.
    pub tf_idf: bool,
    /// Digits read as written, in word and character n-grams (`12` and `98` differ). Off (the
    /// default), every digit reads as `0`: numbers differ between prompts of one kind. On the
    /// development protocols it helped models trained on GSM8K and cost models trained on MMLU, so it
    /// is opt-in (docs/learned-routing.md, "Digits as written"). Files without the field read `false`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub digits: bool,
    /// How the 16 dense structural features enter the regressions ([`Standardize`]; default
    /// [`Auto`](Standardize::Auto)). A model file's `features` say the form its model reads them in:
    /// a file without the field (written before it) reads [`Off`](Standardize::Off) and predicts as
    /// it did.
    pub standardize: Standardize,
}

/// How a model reads the dense structural features ([`FeatureConfig::standardize`]).
///
/// Computed, each lies roughly within `[0, 1]` (`ln(1 + bytes) / 8`, shares, `ln(1 + count) / 3`),
/// so the regressions' L2 penalty weighs on them unevenly: one that varies little across the
/// training rows needs a large weight to matter and is penalised for it. Standardised, a feature is
/// shifted by its training mean, divided by its training standard deviation and clipped to `±5`.
/// Only the features non-zero on at least half of the training rows are standardised (which ones
/// depends on the rows: on GSM8K the two lengths, the share of digits, question marks, math cues,
/// wh- words and long words); those most training rows lack (there: blocks, symbols, lists, code
/// fences and the other cues) keep their computed values, since a few standard deviations of a rare feature put a
/// prompt of another kind far out.
/// [`Auto`](Self::Auto), the default, was chosen on the development protocols; the idea of
/// standardising came from comparing an outside prototype on reported rows
/// (`docs/learned-routing.md`, "Standardised structural features").
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standardize {
    /// As computed (as in model files written before the field).
    Off,
    /// Standardised on the training rows; the shifts and scales are kept in the model file
    /// ([`ModelInfo::dense_scale`](super::ModelInfo::dense_scale)).
    On,
    /// Training fits both and keeps the one with the lower held-out log loss of the inner
    /// cross-validation that chooses `l2` (the computed form when it is not lower, or when nothing
    /// is held out); the model file's `features` record the outcome, its `training` this choice.
    /// Training fits the model twice, the two forms side by side on two threads.
    Auto,
}

/// The bound, in training standard deviations, of a standardised dense feature
/// ([`FeatureConfig::standardize`]).
pub(crate) const DENSE_CLIP: f32 = 5.0;

/// A dense feature's value as the model reads it: standardised by `(mean, 1/sd)` and clipped to
/// `±5`, or as it is when the model keeps no scale for it, or `(0, 1)`.
#[inline]
pub fn scale_dense(value: f32, scale: Option<&(f32, f32)>) -> f32 {
    let value = if value.is_nan() { 0.0 } else { value };
    match scale {
        Some(&(mean, inv_sd)) if (mean, inv_sd) != (0.0, 1.0) => {
            ((value - mean) * inv_sd).clamp(-DENSE_CLIP, DENSE_CLIP)
        }
        _ => value,
    }
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            hash_bits: 14,
            word_ngrams: 2,
            char_ngram: 4,
            char_window: 128,
            word_window: 4096,
            tf_idf: true,
            digits: false,
            standardize: Standardize::Auto,
        }
    }
}

impl FeatureConfig {
    /// Checks the ranges documented on each field.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the field.
    pub(crate) fn validate(&self) -> Result<()> {
        if !(10..=24).contains(&self.hash_bits) {
            return Err(Error::config(format!("features `hash_bits` must be within 10..=24, got {}", self.hash_bits)));
        }
        if !(1..=2).contains(&self.word_ngrams) {
            return Err(Error::config(format!("features `word_ngrams` must be 1 or 2, got {}", self.word_ngrams)));
        }
        if self.char_ngram != 0 && !(3..=8).contains(&self.char_ngram) {
            return Err(Error::config(format!(
                "features `char_ngram` must be within 3..=8, or 0 for none, got {}",
                self.char_ngram
            )));
        }
        Ok(())
    }

    /// The number of hashed buckets.
    pub(crate) fn buckets(&self) -> usize {
        1 << self.hash_bits
    }

    /// Hashed buckets plus the dense features.
    pub(crate) fn dim(&self) -> usize {
        self.buckets() + DENSE.len()
    }
}

/// Receives features as the extractor finds them.
pub trait Sink {
    /// One occurrence of hashed bucket `index` in namespace `ns`. For the word pairs of the question
    /// (the last block of a few-shot prompt, the whole prompt otherwise), `pair` is the pair's full
    /// hash: familiarity is measured on word pairs, which tell kinds of prompts apart better than
    /// single words, with fewer collisions than the weights' buckets.
    fn hashed(&mut self, ns: Namespace, index: u32, pair: Option<u64>);
    /// The full hash of one of the prompt's first `OPENING_PAIRS` word pairs, in order (after
    /// [`hashed`](Self::hashed) received the pair). Benchmarks and applications open their prompts
    /// with their own template ("Please answer with the letter…", a fixed few-shot example, a
    /// system-style preamble): an opening no training prompt had marks a kind of prompt the model
    /// never saw, even when its words are ordinary English.
    fn opening(&mut self, key: u64) {
        let _ = key;
    }
    /// Dense feature `i` (an index into `DENSE`) with its value.
    fn dense(&mut self, i: usize, value: f32);
}

use crate::hash::{FNV_OFFSET, FNV_PRIME, GOLDEN, fnv1a_step as fnv};

/// A 64-bit finaliser (from MurmurHash3) so that the top bits, which pick the bucket, mix every input bit.
#[inline]
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Each byte normalised (lower case, digits as `0` unless `digits`), or 0 for a byte that is not
/// part of a word.
const fn word_table(digits: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_digit() {
            if digits { c } else { b'0' }
        } else if c.is_ascii_alphabetic() {
            c.to_ascii_lowercase()
        } else if c >= 0x80 {
            c
        } else {
            0
        };
        b += 1;
    }
    t
}

/// Word bytes with every digit read as `0` (the default).
static WORD: [u8; 256] = word_table(false);
/// Word bytes with digits as written ([`FeatureConfig::digits`]).
static WORD_DIGITS: [u8; 256] = word_table(true);

/// A byte of a character n-gram: its word form, or the byte itself.
#[inline]
fn norm_byte(table: &[u8; 256], b: u8) -> u8 {
    match table[usize::from(b)] {
        0 => b,
        w => w,
    }
}

/// Streams one text's features into a sink.
pub struct Extractor<'c> {
    config: &'c FeatureConfig,
    shift: u32,
    word: &'static [u8; 256],
}

impl<'c> Extractor<'c> {
    /// An extractor for `config`.
    pub fn new(config: &'c FeatureConfig) -> Self {
        let word = if config.digits { &WORD_DIGITS } else { &WORD };
        Self { config, shift: 64 - u32::from(config.hash_bits), word }
    }

    /// Hands the bucket of an n-gram's running hash to `sink`, and its full hash when `pair`;
    /// returns the full hash.
    #[inline]
    fn emit(&self, sink: &mut impl Sink, ns: Namespace, h: u64, pair: bool) -> u64 {
        let key = finish(h);
        // `shift` is at least 40, so the bucket fits in 24 bits.
        sink.hashed(ns, (key >> self.shift) as u32, pair.then_some(key));
        key
    }

    /// An upper bound on the number of hashed features [`extract`](Self::extract) emits for `text`
    /// (a text of `L` bytes has at most `L + 1` word 1–2 grams): the size of a [`TermCounts`] table
    /// that never fills.
    pub fn max_terms(&self, text: &str) -> usize {
        let bytes = text.as_bytes();
        let window = self.config.word_window as usize;
        let last = last_block(bytes).len();
        let mut n = bytes.len().min(2 * window) + 2;
        if last < bytes.len() {
            n += last.min(window) + 1;
        }
        if self.config.char_ngram > 0 {
            n += last.min(self.config.char_window as usize);
        }
        n
    }

    /// Emits every feature of `text` (one prompt) into `sink`; `stats` are the router's statistics of
    /// the whole request.
    pub fn extract(&self, text: &str, stats: &TextStats, sink: &mut impl Sink) {
        let bytes = text.as_bytes();
        let last = last_block(bytes);
        let window = self.config.word_window as usize;
        // Familiarity is read from the word pairs of the question: in a few-shot prompt, the
        // examples before it are the same for every prompt of a benchmark and would make any new
        // question that shares them look familiar.
        let few_shot = last.len() < bytes.len();
        if bytes.len() <= 2 * window {
            self.words(bytes, Namespace::Words, !few_shot, OPENING_PAIRS, sink);
        } else {
            self.words(&bytes[..window], Namespace::Words, !few_shot, OPENING_PAIRS, sink);
            self.words(&bytes[bytes.len() - window..], Namespace::Words, !few_shot, 0, sink);
        }
        if few_shot {
            // A few-shot prompt: its question, apart from the examples.
            let last_words = if last.len() <= window { last } else { &last[last.len() - window..] };
            self.words(last_words, Namespace::LastWords, true, 0, sink);
        }
        if self.config.char_ngram > 0 {
            let w = self.config.char_window as usize;
            let tail = if last.len() <= w { last } else { &last[last.len() - w..] };
            self.chars(tail, sink);
        }
        dense(bytes.len(), last.len(), blocks(text), stats, sink);
    }

    /// Word 1–2 grams of `bytes`; the first `opening` pairs also go to [`Sink::opening`].
    fn words(&self, bytes: &[u8], ns: Namespace, familiar: bool, mut opening: usize, sink: &mut impl Sink) {
        let seed = FNV_OFFSET ^ (ns as u64).wrapping_mul(GOLDEN);
        let bigrams = self.config.word_ngrams >= 2;
        let mut prev: Option<u64> = None;
        let mut i = 0;
        let n = bytes.len();
        let table = self.word;
        while i < n {
            while i < n && table[usize::from(bytes[i])] == 0 {
                i += 1;
            }
            if i == n {
                break;
            }
            let mut h = seed;
            while i < n {
                let w = table[usize::from(bytes[i])];
                if w == 0 {
                    break;
                }
                h = fnv(h, w);
                i += 1;
            }
            self.emit(sink, ns, h, false);
            if bigrams {
                if let Some(p) = prev {
                    let key =
                        self.emit(sink, ns, p.rotate_left(23) ^ h.wrapping_mul(FNV_PRIME) ^ 0x5bd1_e995, familiar);
                    if opening > 0 {
                        sink.opening(key);
                        opening -= 1;
                    }
                }
                prev = Some(h);
            }
        }
    }

    fn chars(&self, bytes: &[u8], sink: &mut impl Sink) {
        let n = u32::from(self.config.char_ngram);
        // The last `n` normalised bytes (lower case, digits as `0`, whitespace runs as one space),
        // packed into a shift register: each n-gram is one multiply-and-mix away from its bucket.
        let mask = if n >= 8 { u64::MAX } else { (1u64 << (8 * n)) - 1 };
        let seed = (Namespace::LastChars as u64 + 1).wrapping_mul(GOLDEN) ^ u64::from(n);
        let mut window = 0u64;
        let mut len = 0u32;
        let mut last_space = true;
        for &b in bytes {
            let c = if b.is_ascii_whitespace() {
                if last_space {
                    continue;
                }
                last_space = true;
                b' '
            } else {
                last_space = false;
                norm_byte(self.word, b)
            };
            window = ((window << 8) | u64::from(c)) & mask;
            len += 1;
            if len >= n {
                self.emit(sink, Namespace::LastChars, window ^ seed, false);
            }
        }
    }
}

/// The last block: the text after the last blank line, or the whole text when there is none (or when
/// it ends in blank lines).
pub(crate) fn last_block(bytes: &[u8]) -> &[u8] {
    let trimmed = trim_end(bytes);
    let mut i = trimmed.len();
    while i > 0 {
        i -= 1;
        if trimmed[i] == b'\n' {
            // A blank line: this newline follows another one, with only spaces between.
            let mut j = i;
            while j > 0 && matches!(trimmed[j - 1], b' ' | b'\t' | b'\r') {
                j -= 1;
            }
            if j > 0 && trimmed[j - 1] == b'\n' {
                return &trimmed[i + 1..];
            }
        }
    }
    trimmed
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let mut end = bytes.len();
    while end > 0 && bytes[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    &bytes[..end]
}

/// Blocks separated by blank lines (1 for a prompt without any): runs of lines that hold more than
/// spaces, tabs and carriage returns. Lines are found with `str::split`'s word-at-a-time search.
fn blocks(text: &str) -> u32 {
    let mut blocks = 0u32;
    let mut in_block = false;
    for line in text.trim_ascii_end().split('\n') {
        let blank = line.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r'));
        blocks += u32::from(!blank && !in_block);
        in_block = !blank;
    }
    blocks.max(1)
}

fn dense(bytes: usize, last: usize, blocks: u32, s: &TextStats, sink: &mut impl Sink) {
    let b = bytes.max(1) as f32;
    let share = |x: u32| (x as f32 / b).min(1.0);
    let count = |x: u32| (1.0 + x as f32).ln() / 3.0;
    let words = s.words.max(1) as f32;
    let values: [f32; 16] = [
        (1.0 + bytes as f32).ln() / 8.0,
        (1.0 + last as f32).ln() / 8.0,
        count(blocks.saturating_sub(1)),
        4.0 * share(s.digits),
        count(s.questions),
        8.0 * share(s.code_symbols),
        8.0 * share(s.math_symbols),
        count(s.list_items),
        count(s.code_fences),
        count(s.reason_cues),
        count(s.constraint_cues),
        count(s.code_cues),
        count(s.math_cues),
        count(s.wh_words),
        count(s.creative_cues + s.extract_cues),
        (s.long_words as f32 / words).min(1.0),
    ];
    for (i, v) in values.into_iter().enumerate() {
        sink.dense(i, v);
    }
}

/// Bits of the familiarity set: `2^FAMILIARITY_BITS` (128 KiB), so that even a large training set
/// fills only a small share of it.
pub const FAMILIARITY_BITS: u32 = 20;

/// The familiarity-set position of an n-gram's full hash.
#[inline]
pub(crate) fn familiarity_key(key: u64) -> u32 {
    (key >> (64 - FAMILIARITY_BITS)) as u32
}

/// How many of a prompt's first word pairs make its opening (see [`Sink::opening`]).
pub(crate) const OPENING_PAIRS: usize = 4;

/// Marks a collected familiarity key as an opening pair ([`Sink::opening`]).
pub const OPENING_FLAG: u32 = 1 << 31;

/// Marks a collected feature as a character n-gram (the task head reads word n-grams and dense
/// features only).
pub const CHAR_FLAG: u32 = 1 << 31;

/// How many times each n-gram of one prompt has been seen so far, for sublinear term frequency
/// ([`FeatureConfig::tf_idf`]): an open-addressing table over a caller's buffer (on the stack at
/// prediction), each slot holding a namespace and bucket (plus one, so that 0 is empty) in its high
/// 26 bits and a count, saturating at 63, in its low 6.
pub struct TermCounts<'b> {
    slots: &'b mut [u32],
    mask: usize,
}

impl<'b> TermCounts<'b> {
    /// A table over `slots`, which must be zeros, as many as a power of two above the number of
    /// distinct n-grams to count ([`Extractor::max_terms`]).
    pub fn new(slots: &'b mut [u32]) -> Self {
        debug_assert!(slots.len().is_power_of_two() && slots.iter().all(|&s| s == 0));
        let mask = slots.len().saturating_sub(1);
        Self { slots, mask }
    }

    /// Counts one more occurrence of `index` in `ns`; returns its count so far (1 the first time).
    /// A full table (a buffer smaller than documented) counts every occurrence as a first one.
    #[inline]
    pub fn bump(&mut self, ns: Namespace, index: u32) -> u32 {
        let key = ((ns as u32) << 24 | index) + 1;
        let mut i = (key.wrapping_mul(0x9e37_79b9) >> 7) as usize & self.mask;
        for _ in 0..self.slots.len() {
            let slot = self.slots[i];
            if slot == 0 {
                self.slots[i] = key << 6 | 1;
                return 1;
            }
            if slot >> 6 == key {
                let count = (slot & 63) + u32::from(slot & 63 < 63);
                self.slots[i] = key << 6 | count;
                return count;
            }
            i = (i + 1) & self.mask;
        }
        1
    }
}

/// The weight an n-gram's `k`-th occurrence adds under sublinear term frequency, `g(k) − g(k − 1)`
/// with `g(k) = 1 + ln k` and `g(0) = 0`, and what it adds to the squared norm, `g(k)² − g(k − 1)²`.
#[inline]
pub fn tf_step(k: u32) -> (f32, f32) {
    if k <= 1 {
        return (1.0, 1.0);
    }
    let (g, h) = (1.0 + (k as f32).ln(), 1.0 + ((k - 1) as f32).ln());
    (g - h, g * g - h * h)
}

/// `1 + ln((1 + n) / (1 + df))`: the inverse document frequency of a bucket `df` of `n` rows have.
pub fn idf(n: usize, df: u32) -> f32 {
    1.0 + ((1.0 + n as f64) / (1.0 + f64::from(df))).ln() as f32
}

/// Collects features as `(index, value)` pairs, one per occurrence, each namespace scaled to unit
/// length; dense features sit after the hashed buckets; character n-grams carry [`CHAR_FLAG`]. With
/// [`FeatureConfig::tf_idf`], an occurrence's value is its [`tf_step`] times the bucket's IDF, so
/// that the occurrences of one n-gram add up to its TF-IDF weight (prediction computes the same
/// sums); without, every occurrence weighs 1.
pub struct Collect<'v> {
    out: &'v mut Vec<(u32, f32)>,
    keys: &'v mut Vec<u32>,
    start: usize,
    /// Where each run of one namespace starts (extraction emits namespaces one after another).
    runs: Vec<(usize, Namespace)>,
    norm2: [f32; NAMESPACES],
    buckets: u32,
    idf: &'v [f32],
    terms: Option<Vec<u32>>,
}

impl<'v> Collect<'v> {
    /// Collects into `out`, and the familiarity keys of word n-grams ([`familiarity_key`]) into `keys`,
    /// those of opening pairs marked with [`OPENING_FLAG`]. `idf` is the IDF of each bucket, used
    /// with [`FeatureConfig::tf_idf`] (empty: 1 for every bucket); `max_terms` bounds the hashed
    /// features of the text ([`Extractor::max_terms`]).
    pub fn new(
        out: &'v mut Vec<(u32, f32)>,
        keys: &'v mut Vec<u32>,
        config: &FeatureConfig,
        idf: &'v [f32],
        max_terms: usize,
    ) -> Self {
        let start = out.len();
        let terms = config.tf_idf.then(|| vec![0u32; (max_terms + 1).next_power_of_two()]);
        Self {
            out,
            keys,
            start,
            runs: Vec::new(),
            norm2: [0.0; NAMESPACES],
            buckets: config.buckets() as u32,
            idf,
            terms,
        }
    }

    /// Scales the hashed features; returns how many the row has.
    pub fn finish(self) -> usize {
        let scale: [f32; NAMESPACES] = self.norm2.map(|c| if c > 0.0 { 1.0 / c.sqrt() } else { 0.0 });
        let end = self.runs.iter().skip(1).map(|r| r.0).chain([self.out.len()]);
        for (&(from, ns), to) in self.runs.iter().zip(end) {
            for (idx, v) in &mut self.out[from..to] {
                if ((*idx & !CHAR_FLAG) as usize) < self.buckets as usize {
                    *v *= scale[ns as usize];
                }
            }
        }
        self.out.len() - self.start
    }
}

impl Sink for Collect<'_> {
    fn hashed(&mut self, ns: Namespace, index: u32, pair: Option<u64>) {
        if self.runs.last().is_none_or(|r| r.1 != ns) {
            self.runs.push((self.out.len(), ns));
        }
        let v = match &mut self.terms {
            Some(slots) => {
                let (d, d2) = tf_step(TermCounts { mask: slots.len() - 1, slots }.bump(ns, index));
                let idf = self.idf.get(index as usize).copied().unwrap_or(1.0);
                self.norm2[ns as usize] += d2 * idf * idf;
                d * idf
            }
            None => {
                self.norm2[ns as usize] += 1.0;
                1.0
            }
        };
        if let Some(key) = pair {
            self.keys.push(familiarity_key(key));
        }
        let flag = if ns == Namespace::LastChars { CHAR_FLAG } else { 0 };
        self.out.push((index | flag, v));
    }

    fn opening(&mut self, key: u64) {
        self.keys.push(familiarity_key(key) | OPENING_FLAG);
    }

    fn dense(&mut self, i: usize, value: f32) {
        // Dense values are finite by construction.
        self.out.push((self.buckets + i as u32, if value.is_nan() { 0.0 } else { value }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Count(Vec<(Namespace, u32)>, Vec<f32>);
    impl Sink for Count {
        fn hashed(&mut self, ns: Namespace, index: u32, _: Option<u64>) {
            self.0.push((ns, index));
        }
        fn dense(&mut self, _: usize, value: f32) {
            self.1.push(value);
        }
    }

    fn features(text: &str, config: &FeatureConfig) -> Count {
        let mut c = Count(Vec::new(), Vec::new());
        Extractor::new(config).extract(text, &TextStats::of_text(text), &mut c);
        c
    }

    #[test]
    fn last_block_is_after_the_last_blank_line() {
        assert_eq!(last_block(b"a\n\nb c\n"), b"b c");
        assert_eq!(last_block(b"a\n  \nb"), b"b");
        assert_eq!(last_block(b"one block\nwith lines"), b"one block\nwith lines");
        assert_eq!(last_block(b"x\n\n\n"), b"x");
        assert_eq!(last_block(b""), b"");
        assert_eq!(blocks("a\n\nb\n\n\nc"), 3);
        assert_eq!(blocks("a\nb"), 1);
    }

    /// Records the opening pairs and the familiarity keys of the word pairs, in order.
    #[derive(Default)]
    struct Openings(Vec<u64>, Vec<u64>);
    impl Sink for Openings {
        fn hashed(&mut self, ns: Namespace, _: u32, pair: Option<u64>) {
            if ns == Namespace::Words {
                self.1.extend(pair);
            }
        }
        fn opening(&mut self, key: u64) {
            self.0.push(key);
        }
        fn dense(&mut self, _: usize, _: f32) {}
    }

    fn openings(text: &str) -> Openings {
        let mut o = Openings::default();
        Extractor::new(&FeatureConfig::default()).extract(text, &TextStats::of_text(text), &mut o);
        o
    }

    #[test]
    fn the_first_word_pairs_make_the_opening() {
        let long = openings("Please answer with the letter of the correct answer: A or B?");
        assert_eq!(long.0.len(), OPENING_PAIRS);
        // The opening pairs are the prompt's first word pairs, hashed as everywhere else.
        assert_eq!(long.0[..], long.1[..OPENING_PAIRS]);
        assert_eq!(openings("two words").0.len(), 1);
        assert!(openings("one").0.is_empty() && openings("").0.is_empty());
        // Case, digits and spacing do not change an opening; the words after it do not either.
        assert_eq!(openings("Add   the NUMBERS 4 and 17").0, openings("add the numbers 9 and 3 with carry").0);
        assert_ne!(openings("add the numbers 4 and 17").0, openings("subtract the numbers 4 and 17").0);
        // A few-shot prompt opens with its first example.
        let few = openings("Q: one two\nA: three\n\nQ: four five six seven");
        assert_eq!(few.0, openings("Q: one two\nA: three, eight").0);
    }

    /// The byte-at-a-time state machine `blocks` replaced.
    fn reference_blocks(bytes: &[u8]) -> u32 {
        let mut blocks = 1u32;
        let mut newline = false;
        let mut seen = false;
        for &b in trim_end(bytes) {
            match b {
                b'\n' if newline && seen => {
                    blocks += 1;
                    newline = false;
                    seen = false;
                }
                b'\n' => newline = true,
                b' ' | b'\t' | b'\r' => {}
                _ => {
                    if !newline || !seen {
                        seen = true;
                    }
                    newline = false;
                }
            }
        }
        blocks
    }

    proptest::proptest! {
        #[test]
        fn blocks_match_the_state_machine(
            parts in proptest::collection::vec(proptest::sample::select(&["a", "é", " ", "\t", "\r", "\n", "\x0c", "\n\n", " \n"][..]), 0..40)
        ) {
            let text = parts.concat();
            proptest::prop_assert_eq!(blocks(&text), reference_blocks(text.as_bytes()), "{:?}", text);
        }
    }

    #[test]
    fn counts_words_bigrams_and_char_ngrams() {
        let cfg = FeatureConfig { char_ngram: 4, ..FeatureConfig::default() };
        let c = features("Hello big world", &cfg);
        let ns = |c: &Count, n| c.0.iter().filter(|(x, _)| *x == n).count();
        // 3 words + 2 bigrams; one block, so no separate last-block words.
        assert_eq!(ns(&c, Namespace::Words), 5);
        assert_eq!(ns(&c, Namespace::LastWords), 0);
        // 15 bytes: 12 four-grams.
        assert_eq!(ns(&c, Namespace::LastChars), 12);
        assert_eq!(c.1.len(), DENSE.len());
        assert!(c.1.iter().all(|v| v.is_finite()));

        // A few-shot prompt: the last block's words count on their own too.
        let c = features("Q: one\nA: two\n\nQ: three  four", &cfg);
        assert_eq!(ns(&c, Namespace::Words), 7 + 6);
        assert_eq!(ns(&c, Namespace::LastWords), 3 + 2);
        // "q: three four": 13 bytes, 10 four-grams.
        assert_eq!(ns(&c, Namespace::LastChars), 10);
    }

    #[test]
    fn case_digits_and_spacing_do_not_matter() {
        let cfg = FeatureConfig::default();
        let a = features("What is 12 plus  7?", &cfg);
        let b = features("what IS 98 PLUS 3?", &cfg);
        let hashed = |c: &Count| c.0.clone();
        assert_eq!(hashed(&a), hashed(&b));
    }

    #[test]
    fn digits_as_written_tell_numbers_apart() {
        let cfg = FeatureConfig { digits: true, ..FeatureConfig::default() };
        let (a, b) = (features("What is 12 plus 7?", &cfg), features("what IS 98 PLUS 3?", &cfg));
        assert_ne!(a.0, b.0);
        assert_eq!(a.0, features("WHAT is 12 plus  7?", &cfg).0);
        // The words without digits land where they do by default.
        let words = |c: &Count| c.0.first().copied();
        assert_eq!(words(&a), words(&features("What", &FeatureConfig::default())));
        // Written only when set, so that older files, which lack it, read `false`.
        let json = serde_json::to_string(&FeatureConfig::default()).unwrap();
        assert!(!json.contains("digits"), "{json}");
        let on: FeatureConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert!(on.digits);
        let old: FeatureConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(old, FeatureConfig::default());
    }

    #[test]
    fn namespaces_and_buckets_are_stable() {
        let cfg = FeatureConfig { hash_bits: 16, ..FeatureConfig::default() };
        let c = features("route me", &cfg);
        // Pinned: model files depend on these buckets never changing.
        let words: Vec<u32> = c.0.iter().filter(|(n, _)| *n == Namespace::Words).map(|(_, i)| *i).collect();
        let chars: Vec<u32> = c.0.iter().filter(|(n, _)| *n == Namespace::LastChars).map(|(_, i)| *i).collect();
        assert_eq!(words.len(), 3);
        assert_eq!(chars, PINNED_CHARS);
        assert!(words.iter().all(|&i| (i as usize) < cfg.buckets()));
        assert_eq!(words, PINNED_ROUTE_ME);
    }

    const PINNED_ROUTE_ME: [u32; 3] = [12952, 60728, 57142];
    const PINNED_CHARS: [u32; 5] = [23147, 28659, 29057, 38896, 41280];

    #[test]
    fn long_prompts_read_bounded_windows() {
        let cfg = FeatureConfig::default();
        let long = "word ".repeat(100_000);
        let c = features(&long, &cfg);
        let words = c.0.iter().filter(|(n, _)| *n == Namespace::Words).count();
        // Two 4 KiB windows of 5-byte words, unigrams and bigrams.
        assert!(words < 2 * 2 * 4096 / 5 + 4, "{words}");
        let chars = c.0.iter().filter(|(n, _)| *n == Namespace::LastChars).count();
        assert!(chars <= 128, "{chars}");
    }

    #[test]
    fn validates_ranges() {
        assert!(FeatureConfig::default().validate().is_ok());
        for bad in [
            FeatureConfig { hash_bits: 9, ..FeatureConfig::default() },
            FeatureConfig { hash_bits: 25, ..FeatureConfig::default() },
            FeatureConfig { word_ngrams: 3, ..FeatureConfig::default() },
            FeatureConfig { char_ngram: 2, ..FeatureConfig::default() },
            FeatureConfig { char_ngram: 9, ..FeatureConfig::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sublinear_term_frequency_adds_up_to_one_plus_log_tf() {
        assert_eq!(tf_step(1), (1.0, 1.0));
        let (mut g, mut g2) = (0.0f32, 0.0f32);
        for k in 1..=5 {
            let (d, d2) = tf_step(k);
            g += d;
            g2 += d2;
        }
        assert!((g - (1.0 + 5f32.ln())).abs() < 1e-5, "{g}");
        assert!((g2 - (1.0 + 5f32.ln()).powi(2)).abs() < 1e-4, "{g2}");
        // Counts are per namespace and bucket, and saturate at 63.
        let mut slots = [0u32; 8];
        let mut t = TermCounts::new(&mut slots);
        assert_eq!(
            [t.bump(Namespace::Words, 7), t.bump(Namespace::Words, 7), t.bump(Namespace::LastWords, 7)],
            [1, 2, 1]
        );
        let last = (0..100).map(|_| t.bump(Namespace::LastChars, 1)).last();
        assert_eq!(last, Some(63));
        // IDF: a bucket every row has weighs 1, a rarer one more.
        assert_eq!(idf(10, 10), 1.0 + (11.0f64 / 11.0).ln() as f32);
        assert!(idf(10, 1) > idf(10, 5) && idf(10, 5) > idf(10, 10));
    }

    #[test]
    fn tf_idf_features_sum_to_the_weight_and_have_unit_length() {
        let cfg = FeatureConfig { char_ngram: 0, ..FeatureConfig::default() };
        assert!(cfg.tf_idf);
        let text = "spam spam spam eggs";
        let extractor = Extractor::new(&cfg);
        let buckets = cfg.buckets();
        // Every bucket's IDF is 2, except the one "eggs" lands in, 3.
        let mut c = Count(Vec::new(), Vec::new());
        extractor.extract("eggs", &TextStats::of_text("eggs"), &mut c);
        let eggs = c.0[0].1;
        let mut idf = vec![2.0f32; buckets];
        idf[eggs as usize] = 3.0;
        let (mut out, mut keys) = (Vec::new(), Vec::new());
        let mut sink = Collect::new(&mut out, &mut keys, &cfg, &idf, extractor.max_terms(text));
        extractor.extract(text, &TextStats::of_text(text), &mut sink);
        sink.finish();
        let mut sums = std::collections::BTreeMap::new();
        for &(i, v) in out.iter().filter(|(i, _)| (*i as usize) < buckets) {
            *sums.entry(i).or_insert(0.0f32) += v;
        }
        // "spam" three times, "eggs" once, the pairs "spam spam" twice and "spam eggs" once.
        let raw = [(1.0 + 3f32.ln()) * 2.0, 3.0, (1.0 + 2f32.ln()) * 2.0, 2.0];
        let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert_eq!(sums.len(), 4, "{sums:?}");
        assert!((sums[&eggs] - 3.0 / norm).abs() < 1e-5, "{sums:?}");
        let sq: f32 = sums.values().map(|v| v * v).sum();
        assert!((sq - 1.0).abs() < 1e-5, "{sq}");
        // Without TF-IDF, every occurrence weighs the same.
        let counts = FeatureConfig { tf_idf: false, ..cfg };
        let (mut out, mut keys) = (Vec::new(), Vec::new());
        let mut sink = Collect::new(&mut out, &mut keys, &counts, &idf, extractor.max_terms(text));
        extractor.extract(text, &TextStats::of_text(text), &mut sink);
        sink.finish();
        let hashed: Vec<f32> = out.iter().filter(|(i, _)| (*i as usize) < buckets).map(|x| x.1).collect();
        assert!(hashed.iter().all(|&v| (v - 1.0 / 7f32.sqrt()).abs() < 1e-6), "{hashed:?}");
    }

    #[test]
    fn collect_scales_each_namespace_to_unit_length() {
        let cfg = FeatureConfig { char_ngram: 0, ..FeatureConfig::default() };
        let (mut out, mut keys) = (Vec::new(), Vec::new());
        let text = "alpha beta\n\ngamma";
        let mut sink = Collect::new(&mut out, &mut keys, &cfg, &[], Extractor::new(&cfg).max_terms(text));
        Extractor::new(&cfg).extract(text, &TextStats::of_text(text), &mut sink);
        let n = sink.finish();
        assert_eq!(n, out.len());
        let hashed: Vec<f32> =
            out.iter().filter(|(i, _)| ((*i & !CHAR_FLAG) as usize) < cfg.buckets()).map(|(_, v)| *v).collect();
        // Two namespaces (5 and 1 features), each scaled to unit length.
        assert_eq!(hashed.len(), 6);
        // Familiarity reads the question of a few-shot prompt only: the one-word last block has no
        // word pairs, and the examples' pairs do not count. The opening's pairs do.
        assert_eq!(keys.iter().filter(|&&k| k & OPENING_FLAG == 0).count(), 0);
        assert_eq!(keys.iter().filter(|&&k| k & OPENING_FLAG != 0).count(), 2);
        let (mut out, mut keys) = (Vec::new(), Vec::new());
        let text = "alpha beta gamma";
        let mut sink = Collect::new(&mut out, &mut keys, &cfg, &[], Extractor::new(&cfg).max_terms(text));
        Extractor::new(&cfg).extract(text, &TextStats::of_text(text), &mut sink);
        sink.finish();
        assert_eq!(keys.len(), 2 + 2);
        let sq: f32 = hashed.iter().map(|v| v * v).sum();
        assert!((sq - 2.0).abs() < 1e-5, "{sq}");
    }
}
