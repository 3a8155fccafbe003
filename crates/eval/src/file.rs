//! Opening data files, plain or gzip-compressed.
//!
//! A file is taken as gzip when it starts with gzip's magic bytes (`1f 8b`), whatever its name: a
//! `.jsonl` that was compressed in place reads as well as a `.jsonl.gz`, and a plain file named
//! `.gz` is not mistaken for one. Concatenated gzip members (`cat a.gz b.gz`) read as one stream, as
//! `gzip -d` reads them. Decompression is streamed: nothing is inflated ahead of what the caller
//! reads, so a file's memory is bounded by what the caller keeps (and the caller bounds its reads).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;
use switchyard::Result;

/// The first two bytes of every gzip member (RFC 1952, section 2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The buffer in front of the file, and in front of the decompressor.
const BUFFER: usize = 1 << 16;

/// Opens `path` for reading, decompressing it if it is gzip.
///
/// # Errors
/// [`ErrorKind::Config`](switchyard::ErrorKind::Config) naming the file if it cannot be opened or
/// its first bytes cannot be read. Corrupt or truncated gzip data surfaces later, as an
/// [`io::Error`] of kind [`InvalidData`](io::ErrorKind::InvalidData) from the reader, whose
/// message starts with "corrupt gzip data".
pub(crate) fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let cannot_read =
        |e: io::Error| crate::config_error(format!("cannot read `{}`: {e}", path.display())).with_source(e);
    let mut file = File::open(path).map_err(cannot_read)?;
    // Read the first two bytes and put them back in front of the rest: this works for any file a
    // path can name (a pipe cannot seek back) and whatever sizes the reads return.
    let mut head = [0u8; 2];
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(cannot_read(e)),
        }
    }
    let gzip = head[..n] == GZIP_MAGIC;
    let reader = BufReader::with_capacity(BUFFER, io::Cursor::new(head).take(n as u64).chain(file));
    if gzip {
        Ok(Box::new(BufReader::with_capacity(BUFFER, Gunzip(MultiGzDecoder::new(reader)))))
    } else {
        Ok(Box::new(reader))
    }
}

/// The decompressor, with its errors marked as coming from the gzip data rather than the disk.
struct Gunzip<R>(MultiGzDecoder<R>);

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            let kind = if e.kind() == io::ErrorKind::UnexpectedEof { e.kind() } else { io::ErrorKind::InvalidData };
            io::Error::new(kind, format!("corrupt gzip data: {e}"))
        })
    }
}

/// Reads all of `path` (decompressed if it is gzip) as UTF-8, refusing more than `limit` bytes.
///
/// # Errors
/// [`ErrorKind::Config`](switchyard::ErrorKind::Config) naming the file if it cannot be read, is not
/// valid gzip or UTF-8, or holds more than `limit` bytes.
pub(crate) fn read_to_string(path: &Path, limit: u64) -> Result<String> {
    let cannot_read =
        |e: io::Error| crate::config_error(format!("cannot read `{}`: {e}", path.display())).with_source(e);
    let mut text = String::new();
    open(path)?.take(limit.saturating_add(1)).read_to_string(&mut text).map_err(cannot_read)?;
    if text.len() as u64 > limit {
        return Err(crate::config_error(format!("`{}` holds more than {limit} bytes", path.display())));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use switchyard::ErrorKind;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// A file in the temporary directory, removed when dropped.
    struct Temp(std::path::PathBuf);

    impl Temp {
        fn new(name: &str, bytes: &[u8]) -> Self {
            let path = std::env::temp_dir().join(format!("switchyard-eval-file-{}-{name}", std::process::id()));
            std::fs::write(&path, bytes).unwrap();
            Self(path)
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn read_all(path: &Path) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        open(path).map_err(|e| io::Error::other(e.to_string()))?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn plain_and_gzip_read_the_same_whatever_the_name() {
        let text = b"{\"a\": 1}\n{\"a\": 2}\n".repeat(1000);
        let plain = Temp::new("plain.jsonl", &text);
        let gz = Temp::new("data.jsonl.gz", &gzip(&text));
        let gz_unnamed = Temp::new("compressed-in-place.jsonl", &gzip(&text));
        let plain_named_gz = Temp::new("not-really.gz", &text);
        for t in [&plain, &gz, &gz_unnamed, &plain_named_gz] {
            assert_eq!(read_all(&t.0).unwrap(), text, "{}", t.0.display());
        }
        let mut two = gzip(b"first\n");
        two.extend_from_slice(&gzip(b"second\n"));
        let members = Temp::new("members.gz", &two);
        assert_eq!(read_all(&members.0).unwrap(), b"first\nsecond\n");
        for empty in [Temp::new("empty", b""), Temp::new("one-byte", b"\x1f")] {
            assert_eq!(read_all(&empty.0).unwrap().len(), std::fs::metadata(&empty.0).unwrap().len() as usize);
        }
    }

    #[test]
    fn corrupt_and_truncated_gzip_are_errors_not_panics() {
        let good = gzip(&b"{\"a\": 1}\n".repeat(5000));
        let truncated = Temp::new("truncated.gz", &good[..good.len() / 2]);
        let e = read_all(&truncated.0).unwrap_err();
        assert!(e.to_string().starts_with("corrupt gzip data"), "{e}");
        let mut flipped = good.clone();
        for b in &mut flipped[20..60] {
            *b ^= 0x5a;
        }
        let corrupt = Temp::new("corrupt.gz", &flipped);
        let e = read_all(&corrupt.0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(e.to_string().starts_with("corrupt gzip data"), "{e}");
        let header_only = Temp::new("header-only.gz", &good[..4]);
        assert!(read_all(&header_only.0).is_err());
    }

    #[test]
    fn read_to_string_is_bounded_and_names_the_file() {
        let big = Temp::new("big.json.gz", &gzip(&[b' '; 4096]));
        assert_eq!(read_to_string(&big.0, 4096).unwrap().len(), 4096);
        let e = read_to_string(&big.0, 4095).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().ends_with("holds more than 4095 bytes"), "{e}");
        let e = read_to_string(Path::new("/nonexistent/models.json.gz"), 10).unwrap_err();
        assert!(e.to_string().starts_with("cannot read `/nonexistent/models.json.gz`"), "{e}");
        let bad = Temp::new("bad.json.gz", &gzip(&[0xff, 0xfe, 0x00]));
        let e = read_to_string(&bad.0, 10).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
    }
}
