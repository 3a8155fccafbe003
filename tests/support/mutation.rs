//! Edits of seed inputs for the stable fuzzing harnesses (`tests/fuzz_inputs.rs`, and
//! `crates/eval/tests/fuzz_inputs.rs`, which includes this file): bit flips, overwritten bytes,
//! cuts, removals, inserted tokens and copied runs.

#![allow(dead_code, reason = "each harness uses a part")]

use std::path::Path;

use proptest::prelude::*;
use proptest::sample::select;

/// One edit of a seed; positions are taken modulo the input's length.
#[derive(Clone, Debug)]
pub(crate) enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, value: u8 },
    Truncate { at: usize },
    Remove { at: usize, len: usize },
    Insert { at: usize, token: &'static [u8] },
    Copy { from: usize, to: usize, len: usize },
}

/// Any edit, inserting one of `tokens` (pieces of the format under test).
pub(crate) fn mutation(tokens: &'static [&'static [u8]]) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        2 => (any::<usize>(), 1usize..32).prop_map(|(at, len)| Mutation::Remove { at, len }),
        4 => (any::<usize>(), select(tokens)).prop_map(|(at, token)| Mutation::Insert { at, token }),
        1 => (any::<usize>(), any::<usize>(), 1usize..128).prop_map(|(from, to, len)| Mutation::Copy { from, to, len }),
    ]
}

/// Applies `m` to `bytes`.
pub(crate) fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    match *m {
        Mutation::Flip { at, bit } if n > 0 => bytes[at % n] ^= 1 << bit,
        Mutation::Set { at, value } if n > 0 => bytes[at % n] = value,
        Mutation::Truncate { at } => bytes.truncate(at % (n + 1)),
        Mutation::Remove { at, len } if n > 0 => {
            let at = at % n;
            bytes.drain(at..(at + len).min(n));
        }
        Mutation::Insert { at, token } => {
            let at = at % (n + 1);
            bytes.splice(at..at, token.iter().copied());
        }
        Mutation::Copy { from, to, len } if n > 0 => {
            let from = from % n;
            let piece = bytes[from..(from + len).min(n)].to_vec();
            let to = to % (n + 1);
            bytes.splice(to..to, piece);
        }
        _ => {}
    }
}

/// The seed corpus of one fuzz target (`fuzz/seeds/<target>` under `root`, the repository), in
/// file-name order.
pub(crate) fn seeds_in(root: &Path, target: &str) -> Vec<Vec<u8>> {
    let dir = root.join("fuzz/seeds").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!seeds.is_empty(), "no seeds in `{}`", dir.display());
    seeds
}
