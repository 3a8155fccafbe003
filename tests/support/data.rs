//! The repository's `data/` (gzip-compressed; see `data/README.md`) for the tests that read real
//! files. A missing file fails the test and names the file: no test passes without its data.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The path of `rel` under the repository's `data/`.
///
/// # Panics
/// If the file is missing, naming it.
#[track_caller]
pub(crate) fn file(rel: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(rel);
    assert!(path.is_file(), "missing `{}`: the repository's data/ should hold it (see data/README.md)", path.display());
    path
}

/// The decompressed bytes of `rel` (a `.gz` file) under the repository's `data/`.
///
/// # Panics
/// If the file is missing or not valid gzip, naming it.
#[track_caller]
pub(crate) fn read_gz(rel: &str) -> Vec<u8> {
    let path = file(rel);
    let gz = std::fs::File::open(&path).unwrap_or_else(|e| panic!("cannot open `{}`: {e}", path.display()));
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("cannot decompress `{}`: {e}", path.display()));
    bytes
}
