//! The crate's one home for hashing and seeded randomness: stable across processes, platforms and
//! Rust releases, never `std`'s `RandomState` or `DefaultHasher`.
//!
//! - [`uniform`]: the router's number in `[0, 1)` for a request key and the router's seed, which
//!   policies that sample read as `PolicyInput::uniform`.
//! - [`assignment_unit`]: an experiment's position in `[0, 1)` for a key under the experiment's salt.
//! - FNV-1a (in-process map keys, file checksums, feature hashing), the SplitMix64 finaliser, and
//!   [`Rng`], a SplitMix64 generator with the variates policies and training sample from.
//!
//! # The assignment hash
//!
//! `h = FNV-1a-64(salt ‖ 0xFF ‖ key)`, then the SplitMix64 finaliser (Steele, Lea and Flood, 2014)
//! so that keys differing in one byte land far apart, and the top 53 bits of the result divided by
//! `2^53` give a number in `[0, 1)`. The `0xFF` byte never occurs in UTF-8, so `("ab", "c")` and
//! `("a", "bc")` hash differently. The constants are fixed here, not taken from `std`'s
//! `RandomState` or `DefaultHasher`, whose algorithm may change between releases; the test vectors
//! below pin them.

mod rng;

pub use self::rng::Rng;

/// FNV-1a's offset basis.
pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a's prime.
pub(crate) const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// SplitMix64's increment (2^64 / φ).
pub(crate) const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// One byte of FNV-1a.
#[inline]
pub(crate) fn fnv1a_step(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
}

/// FNV-1a-64 of `bytes`.
#[inline]
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| fnv1a_step(h, b))
}

/// SplitMix64's output for state `z`: the finaliser of `z + GOLDEN`.
#[inline]
pub(crate) fn splitmix64(z: u64) -> u64 {
    mix64(z.wrapping_add(GOLDEN))
}

/// A number in `[0, 1)` from a key and a seed: FNV-1a over the key, mixed with the seed by SplitMix64.
/// Stable across releases and platforms.
pub fn uniform(key: Option<&str>, seed: u64) -> f64 {
    let h = fnv1a(key.unwrap_or("").as_bytes());
    to_unit(mix64(h ^ seed.wrapping_mul(GOLDEN)))
}

/// FNV-1a as a [`std::hash::Hasher`], for the in-process maps of counter names and lease ids: short
/// keys that callers do not choose freely (tenant names at most), hashed on every admission.
#[derive(Clone, Copy, Default)]
pub(crate) struct FastHash;

/// The hasher of [`FastHash`].
pub(crate) struct Fnv(pub(crate) u64);

impl std::hash::BuildHasher for FastHash {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(FNV_OFFSET)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = fnv1a_step(self.0, b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Lease ids: one multiply-xorshift round spreads consecutive ids.
        let x = (self.0 ^ n).wrapping_mul(GOLDEN);
        self.0 = x ^ (x >> 29);
    }
}

/// The SplitMix64 finaliser: a bijection on `u64` with full avalanche.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 64-bit assignment hash of `key` under `salt`.
pub fn assignment_hash(salt: &str, key: &str) -> u64 {
    let h = salt.bytes().chain(std::iter::once(0xFF)).chain(key.bytes()).fold(FNV_OFFSET, fnv1a_step);
    mix64(h)
}

/// `key`'s position in `[0, 1)` under `salt`: [`assignment_hash`] scaled. Experiments assign a key
/// to the arm whose share of `[0, 1)` contains this number.
pub fn assignment_unit(salt: &str, key: &str) -> f64 {
    to_unit(assignment_hash(salt, key))
}

/// The top 53 bits of `x` as a number in `[0, 1)`.
pub(crate) fn to_unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_test_vectors() {
        // These values must never change: they decide which users see which arm, and a change would
        // reshuffle every running experiment. They were computed by an independent implementation
        // of the formula in the module docs (a few lines of Python).
        for (salt, key, hash, unit) in [
            ("", "", 0x4f2d_b50f_1240_40cd_u64, 0.309_291_187_457_575_67),
            ("exp", "user-1", 0xb4eb_2f1e_1184_b9d8, 0.706_713_623_848_844_2),
            ("exp", "user-2", 0x7893_41a2_dba4_4e65, 0.470_996_954_212_425_16),
            ("checkout-2026", "alice", 0x63f7_f8aa_6d2d_d92d, 0.390_502_492_530_849),
            ("a", "bc", 0x54cb_1647_adbe_0435, 0.331_223_862_170_865_86),
            ("ab", "c", 0x0a52_c632_fce1_f7d1, 0.040_325_534_294_318_066),
        ] {
            assert_eq!(assignment_hash(salt, key), hash, "{salt:?} {key:?}");
            assert_eq!(assignment_unit(salt, key), unit, "{salt:?} {key:?}");
        }
    }

    #[test]
    fn uniform_is_pinned() {
        // These values must not change either: a policy that samples reads them for every keyed
        // request. Computed by an independent implementation of the formula on `uniform`.
        for (key, seed, want) in [
            (None, 0, 0.957_673_425_242_056_1),
            (Some("user-1"), 0, 0.767_970_441_061_272_3),
            (Some("user-1"), 42, 0.989_113_666_200_748_7),
            (Some("alice"), 7, 0.089_877_921_899_000_79),
        ] {
            assert_eq!(uniform(key, seed), want, "{key:?} {seed}");
        }
    }
}
