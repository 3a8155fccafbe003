//! The cue words and pairs, and the open-addressing table of their hashes that the scan looks words
//! up in (built at compile time).

use super::cue::*;

/// The word's hash from its lower-cased bytes packed little-endian into two words (zero-padded, so
/// the pair determines the word), with one or two multiplications. Never 0, which marks empty table
/// slots and "no previous word".
#[inline(always)]
pub(super) const fn mix(lo: u64, hi: u64) -> u64 {
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

pub(super) const MAX_CUE_LEN: usize = 14;
#[inline(always)]
pub(super) const fn pair(a: u64, b: u64) -> u64 {
    (a.rotate_left(23) ^ b).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// Single cue words. A word may carry several categories.
#[rustfmt::skip]
pub(super) const WORDS: &[(&str, u16)] = &[
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
    ("var", CODE), ("int", CODE), ("println", CODE), ("lambda", CODE), ("json", EXTRACT),
    ("html", CODE), ("css", CODE), ("query", CODE), ("database", CODE), ("endpoint", CODE), ("unittest", CODE),
    ("array", CODE), ("string", CODE), ("integer", CODE | MATH), ("recursion", CODE),
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
    // math word problems: units, rates and operations
    ("miles", MATH), ("km", MATH), ("kilometers", MATH), ("meters", MATH), ("speed", MATH),
    ("altogether", MATH), ("twice", MATH), ("remaining", MATH), ("remainder", MATH),
    ("discount", MATH), ("area", MATH), ("perimeter", MATH), ("radius", MATH),
    ("diameter", MATH), ("multiply", MATH), ("divided", MATH), ("plus", MATH), ("minus", MATH),
    ("quotient", MATH), ("decimal", MATH), ("cents", MATH), ("arithmetic", MATH), ("math", MATH),
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
    ("document", EXTRACT), ("article", EXTRACT), ("transcript", EXTRACT), ("report", EXTRACT), ("receipt", EXTRACT),
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
pub(super) const PAIRS: &[(&str, &str, u16)] = &[
    ("by", "step", REASON | STEP), ("think", "carefully", REASON), ("show", "your", REASON),
    ("your", "work", REASON | MATH), ("at", "least", CONSTRAINT), ("at", "most", CONSTRAINT),
    ("no", "more", CONSTRAINT), ("less", "than", CONSTRAINT), ("make", "sure", CONSTRAINT),
    ("how", "many", MATH), ("how", "much", MATH), ("how", "far", MATH), ("how", "fast", MATH),
    ("how", "old", MATH), ("key", "points", EXTRACT), ("tl", "dr", EXTRACT),
    ("main", "points", EXTRACT), ("in", "english", TRANSLATE), ("into", "english", TRANSLATE),
    ("into", "french", TRANSLATE), ("into", "spanish", TRANSLATE), ("into", "german", TRANSLATE),
    ("into", "chinese", TRANSLATE), ("into", "japanese", TRANSLATE), ("to", "english", TRANSLATE),
    ("to", "french", TRANSLATE), ("to", "spanish", TRANSLATE), ("to", "german", TRANSLATE),
    ("how", "are", CHAT), ("are", "you", CHAT), ("write", "a", CREATIVE), ("once", "upon", CREATIVE),
    ("unit", "tests", CODE), ("unit", "test", CODE), ("pull", "request", CODE), ("time", "complexity", CODE),
    ("big", "o", CODE), ("edge", "cases", CONSTRAINT), ("step", "by", STEP),
];

const TABLE_BITS: u32 = 10;
pub(super) const TABLE_SIZE: usize = 1 << TABLE_BITS;

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
pub(super) fn maybe_pair_head(hash: u64) -> bool {
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
pub(super) fn maybe_cue(hash: u64) -> bool {
    let bit = filter_bit(hash);
    FILTER[bit >> 6] & (1 << (bit & 63)) != 0
}

/// The flags of `hash` and its slot in [`TABLE`] (flags 0 when absent).
#[inline(always)]
pub(super) fn lookup(hash: u64) -> (u16, usize) {
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
pub(super) struct Seen(pub(super) [u64; TABLE_SIZE / 64]);

impl Seen {
    #[inline(always)]
    pub(super) fn first(&mut self, flags: u16, slot: usize) -> u16 {
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
    fn table_has_room() {
        assert!(WORDS.len() + PAIRS.len() < TABLE_SIZE / 2);
    }
}
