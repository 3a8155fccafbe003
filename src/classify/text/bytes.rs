//! Byte classes, and runs of ASCII letters read eight bytes at a time (a SWAR test for letters).

pub(super) const ALPHA: u8 = 1;
pub(super) const DIGIT: u8 = 2;
pub(super) const SPACE: u8 = 4;
pub(super) const PUNCT: u8 = 8;

/// The class of each ASCII byte (non-ASCII bytes are 0).
pub(super) const CLASS: [u8; 256] = {
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
pub(super) struct Word {
    pub(super) len: usize,
    pub(super) capitals: u32,
    pub(super) lo: u64,
    pub(super) hi: u64,
}

impl Word {
    /// The run of letters that starts at `i` (a letter), eight bytes at a time.
    #[inline(always)]
    pub(super) fn at(bytes: &[u8], i: usize) -> Self {
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
