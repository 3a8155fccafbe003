//! Reading the files a router is configured with (config files, learned models) without trusting
//! them: only regular files, and never more than a stated number of bytes.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The bytes of the regular file at `path`, at most `max` of them: a directory, a device (such as
/// `/dev/zero`), a FIFO or a larger file is refused before anything is read, and the read stops at
/// `max` bytes whatever the file does meanwhile.
///
/// # Errors
/// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the file (`what` says what it is for).
pub(crate) fn read_regular_file(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let fail = |msg: String| Error::config(format!("cannot read {what} `{}`: {msg}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()).with_source(e))?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()).with_source(e))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".to_owned()));
    }
    if meta.len() > max {
        return Err(fail(format!("{} bytes is more than the {max} allowed", meta.len())));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max + 1).read_to_end(&mut bytes).map_err(|e| fail(e.to_string()).with_source(e))?;
    if bytes.len() as u64 > max {
        return Err(fail(format!("it grew past the {max} bytes allowed while being read")));
    }
    Ok(bytes)
}
