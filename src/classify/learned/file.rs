//! The learned model's file format (version 4), little-endian throughout:
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `SWLM\r\n\x1a\n` (a text-mode transfer or a truncated header shows at once) |
//! | 4 | format version, `u32` |
//! | 4 + n | header length `n`, then the header: [`ModelInfo`] as JSON |
//! | 4·m | residual biases, `f32` |
//! | sparse | residual weights: `u32` row count, then per non-zero row its `u32` index and `m` `f32`s (no rows without residuals) |
//! | 4·t | task-head biases |
//! | sparse | task embeddings, `r` (the header's `task_rank`) per row |
//! | 4·r·t | the task head's output weights |
//! | 4·max(t,1)·m | task rates |
//! | 4·m | overall rates |
//! | 4·m | mean cost per training row (new in version 2) |
//! | 4·max(t,1)·m | mean cost per training row of each task (new in version 2) |
//! | 4·6 | familiarity percentiles 0 to 5 |
//! | 8·16384 | the training rows' word pairs, a bitset of `2^20` bits |
//! | 4·6 | opening familiarity percentiles 0 to 5 (new in version 3) |
//! | 4 + 4·k | the training rows' opening word pairs: `u32` count `k`, then `k` increasing `u32` keys (new in version 3) |
//! | 4 + 4·b | the IDF of each hashed bucket: `u32` count `b` (the buckets with `tf_idf`, 0 without), then `b` `f32`s (new in version 4) |
//! | 8 | FNV-1a 64 checksum of everything before it |
//!
//! Rows of zeros (buckets no training prompt touched) are left out, which keeps files to a few MB.
//! Version 3 files (without the IDF table) still load and weigh every occurrence of an n-gram 1, as
//! they were trained (`tf_idf` off); version 2 files (without the openings) also treat every opening
//! as familiar.

use super::features::{FAMILIARITY_BITS, Standardize};
use super::{FAMILIARITY_PERCENTILES, LearnedModel, ModelInfo, Parts};
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"SWLM\r\n\x1a\n";
/// The format version this build writes and reads.
pub(crate) const VERSION: u32 = 4;
/// The oldest format version this build reads.
const OLDEST: u32 = 2;

fn fnv64(bytes: &[u8]) -> u64 {
    crate::hash::fnv1a(bytes)
}

pub(crate) fn encode(model: &LearnedModel) -> Vec<u8> {
    let info = &model.info;
    let (m, r) = (info.models.len(), info.task_rank);
    let mut out = Vec::with_capacity(1 << 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    // A `ModelInfo` is plain data: serializing it cannot fail.
    let header = serde_json::to_vec(info).unwrap_or_default();
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    let dim = info.features.dim();
    floats(&mut out, &model.bias);
    sparse(&mut out, dim, if info.residual { m } else { 0 }, |f| model.residual_row(f));
    floats(&mut out, &model.task_bias);
    sparse(&mut out, dim, r, |f| model.task_row(f));
    floats(&mut out, model.task_output().0);
    floats(&mut out, &model.rates);
    floats(&mut out, &model.overall);
    floats(&mut out, &model.costs);
    floats(&mut out, &model.task_costs);
    floats(&mut out, &model.familiarity);
    for w in &model.seen {
        out.extend_from_slice(&w.to_le_bytes());
    }
    floats(&mut out, &model.opening);
    out.extend_from_slice(&(model.openings.len() as u32).to_le_bytes());
    for k in &model.openings {
        out.extend_from_slice(&k.to_le_bytes());
    }
    out.extend_from_slice(&(model.idf.len() as u32).to_le_bytes());
    floats(&mut out, &model.idf);
    let sum = fnv64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

fn floats(out: &mut Vec<u8>, v: &[f32]) {
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

fn sparse<'m>(out: &mut Vec<u8>, dim: usize, stride: usize, row: impl Fn(usize) -> &'m [f32]) {
    if stride == 0 {
        out.extend_from_slice(&0u32.to_le_bytes());
        return;
    }
    let rows: Vec<usize> = (0..dim).filter(|&f| row(f).iter().any(|&x| x != 0.0)).collect();
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for f in rows {
        out.extend_from_slice(&(f as u32).to_le_bytes());
        floats(out, row(f));
    }
}

struct Reader<'b> {
    bytes: &'b [u8],
    pos: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'b [u8]> {
        if self.bytes.len() - self.pos < n {
            return Err(Error::config(format!(
                "truncated: {what} needs {n} bytes at byte {}, the file has {} (rewrite the file)",
                self.pos,
                self.bytes.len() + 8
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn floats(&mut self, n: usize, what: &str) -> Result<Vec<f32>> {
        let len = n.checked_mul(4).ok_or_else(|| Error::config(format!("{what}: size overflows")))?;
        let b = self.take(len, what)?;
        Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    fn sparse(&mut self, rows: usize, stride: usize, what: &str) -> Result<Vec<f32>> {
        let k = self.u32(what)? as usize;
        if k > rows || (stride == 0 && k > 0) {
            return Err(Error::config(format!("{what}: {k} rows stored, at most {rows} expected")));
        }
        // Every stored row takes its index and `stride` values: refuse a count the file cannot hold
        // before allocating anything.
        let remaining = self.bytes.len() - self.pos;
        if k.checked_mul(4 * stride + 4).is_none_or(|need| need > remaining) {
            return Err(Error::config(format!(
                "truncated: {what}: {k} rows of {stride} values need more than the {remaining} bytes left"
            )));
        }
        let mut w = vec![0.0f32; super::model::dense_cells(rows, stride, what)?];
        let mut last: Option<usize> = None;
        for _ in 0..k {
            let r = self.u32(what)? as usize;
            if r >= rows || last.is_some_and(|l| r <= l) {
                return Err(Error::config(format!("{what}: row index {r} is out of order or beyond {rows}")));
            }
            last = Some(r);
            let b = self.take(4 * stride, what)?;
            for (x, c) in w[r * stride..(r + 1) * stride].iter_mut().zip(b.chunks_exact(4)) {
                *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Ok(w)
    }
}

pub(crate) fn decode(bytes: &[u8]) -> Result<LearnedModel> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(Error::config("not a switchyard learned model (bad magic bytes)"));
    }
    if bytes.len() < MAGIC.len() + 4 + 8 {
        return Err(Error::config(format!("truncated: {} bytes is shorter than any model file", bytes.len())));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    let mut rd = Reader { bytes: body, pos: MAGIC.len() };
    let version = rd.u32("the version")?;
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(Error::config(format!(
            "format version {version} is not supported (this build reads versions {OLDEST} to {VERSION}; retrain \
             the model with this build: `cargo run --release --example train`)"
        )));
    }
    let stored = u64::from_le_bytes([sum[0], sum[1], sum[2], sum[3], sum[4], sum[5], sum[6], sum[7]]);
    if fnv64(body) != stored {
        return Err(Error::config("checksum mismatch: the file is corrupt or truncated"));
    }
    let n = rd.u32("the header length")? as usize;
    let header = rd.take(n, "the header")?;
    let mut de = serde_json::Deserializer::from_slice(header);
    let mut info: ModelInfo = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| Error::config(format!("header: `{}`: {}", e.path(), e.inner())))?;
    if version < 4 {
        // Trained before TF-IDF weighting: every occurrence weighs 1.
        info.features.tf_idf = false;
        info.training.features.tf_idf = false;
    }
    // Trained before the dense features could be standardised: as computed (a missing field reads
    // as today's default).
    let names =
        |pointer: &str| serde_json::from_slice::<serde_json::Value>(header).is_ok_and(|v| v.pointer(pointer).is_some());
    if !names("/training/features/standardize") {
        info.training.features.standardize = Standardize::Off;
    }
    info.features.validate()?;
    let (m, t, r, dim) = (info.models.len(), info.tasks.len(), info.task_rank, info.features.dim());
    if r > 64 {
        return Err(Error::config(format!("header: `task_rank` {r} is beyond 64")));
    }
    let bias = rd.floats(m, "the residual biases")?;
    let weights = rd.sparse(dim, if info.residual { m } else { 0 }, "the residual weights")?;
    let task_bias = rd.floats(t, "the task biases")?;
    let task_weights = rd.sparse(dim, r, "the task embeddings")?;
    let task_u = rd.floats(r * t, "the task output weights")?;
    let rates = rd.floats(t.max(1) * m, "the task rates")?;
    let overall = rd.floats(m, "the overall rates")?;
    let costs = rd.floats(m, "the mean costs")?;
    let task_costs = rd.floats(t.max(1) * m, "the mean costs per task")?;
    let familiarity = rd.floats(FAMILIARITY_PERCENTILES + 1, "the familiarity percentiles")?;
    let words = 1usize << (FAMILIARITY_BITS - 6);
    let seen = rd
        .take(8 * words, "the familiarity set")?
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    let (opening, openings) = if version >= 3 {
        let opening = rd.floats(FAMILIARITY_PERCENTILES + 1, "the opening familiarity percentiles")?;
        let k = rd.u32("the opening count")? as usize;
        let len = k.checked_mul(4).ok_or_else(|| Error::config("the opening set: size overflows"))?;
        let keys =
            rd.take(len, "the opening set")?.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        (opening, keys.collect())
    } else {
        (vec![0.0; FAMILIARITY_PERCENTILES + 1], Vec::new())
    };
    let idf = if version >= 4 {
        let b = rd.u32("the IDF count")? as usize;
        let expected = if info.features.tf_idf { info.features.buckets() } else { 0 };
        if b != expected {
            return Err(Error::config(format!("the IDF table: {b} values stored, {expected} expected")));
        }
        rd.floats(b, "the IDF table")?
    } else {
        Vec::new()
    };
    if rd.pos != body.len() {
        return Err(Error::config(format!("{} unexpected bytes after the last section", body.len() - rd.pos)));
    }
    let parts = Parts {
        weights,
        bias,
        task_weights,
        task_u,
        task_bias,
        rates,
        overall,
        costs,
        task_costs,
        familiarity,
        seen,
        opening,
        openings,
        idf,
    };
    LearnedModel::from_parts(info, parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file whose header declares `models` models over 2^`bits` buckets, then `biases` zero bytes
    /// and a residual table that says it stores `rows` rows (and stores none), sealed with a valid
    /// checksum: what an attacker can write in a few KB.
    fn crafted(models: usize, bits: u8, rows: u32) -> Vec<u8> {
        let model = LearnedModel::from_bytes(include_bytes!("testdata/planted.swlm")).unwrap();
        let mut info = model.info().clone();
        info.models = (0..models).map(|i| format!("m{i}")).collect();
        info.features.hash_bits = bits;
        info.residual = true;
        let header = serde_json::to_vec(&info).unwrap();
        let mut b = MAGIC.to_vec();
        b.extend(VERSION.to_le_bytes());
        b.extend(u32::try_from(header.len()).unwrap().to_le_bytes());
        b.extend(&header);
        b.extend(vec![0u8; 4 * models]);
        b.extend(rows.to_le_bytes());
        let sum = fnv64(&b);
        b.extend(sum.to_le_bytes());
        b
    }

    #[test]
    fn sizes_from_a_crafted_header_are_refused_before_anything_is_allocated() {
        // 1,000 models over 2^24 buckets: a 67 GB table from a 12 KB file.
        let huge = crafted(1000, 24, 0);
        assert!(huge.len() < 20_000, "{}", huge.len());
        let e = LearnedModel::from_bytes(&huge).unwrap_err().to_string();
        assert!(e.contains("the residual weights") && e.contains("more than"), "{e}");
        // A row count the remaining bytes cannot hold.
        let e = LearnedModel::from_bytes(&crafted(4, 12, 1_000)).unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("1000 rows"), "{e}");
    }

    #[test]
    fn a_header_with_an_invalid_training_configuration_is_refused() {
        let mut model = LearnedModel::from_bytes(include_bytes!("testdata/planted.swlm")).unwrap();
        model.info.training.min_trust = 5.0;
        let e = decode(&encode(&model)).unwrap_err().to_string();
        assert!(e.contains("`min_trust` must be within [0, 1]"), "{e}");
    }

    #[test]
    fn only_a_regular_file_of_bounded_size_is_read() {
        let e = LearnedModel::load("/dev/zero").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = LearnedModel::load(std::env::temp_dir()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let path = std::env::temp_dir().join(format!("switchyard-big-{}.swlm", std::process::id()));
        std::fs::write(&path, vec![0u8; 64]).unwrap();
        let e = crate::fs::read_regular_file(&path, 63, "learned model").unwrap_err().to_string();
        assert!(e.contains("64 bytes is more than the 63 allowed"), "{e}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn version_2_and_3_files_load_with_every_opening_familiar_and_counts() {
        // Trained on "greet user {i}" (both models answer) and "sum {i} and 2" (only the large one)
        // with two epochs and `tf_idf` off, as versions 2 and 3 were trained;
        // `crates/eval/tests/core_fixtures.rs` checks that the trainer still writes it.
        let model = LearnedModel::from_bytes(include_bytes!("testdata/openings.swlm")).unwrap();
        assert!(!model.info.features.tf_idf && model.idf.is_empty());
        let v4 = encode(&model);
        let body = &v4[..v4.len() - 8];
        let reseal = |mut b: Vec<u8>, version: u32| {
            b[8..12].copy_from_slice(&version.to_le_bytes());
            let sum = fnv64(&b);
            b.extend_from_slice(&sum.to_le_bytes());
            b
        };
        // Version 3: no IDF section.
        let v3 = reseal(body[..body.len() - 4].to_vec(), 3);
        assert!(decode(&v3).unwrap() == model);
        // Version 2: no opening section either.
        let openings = 4 * (FAMILIARITY_PERCENTILES + 1) + 4 + 4 * model.openings.len() + 4;
        let old = decode(&reseal(body[..body.len() - openings].to_vec(), 2)).unwrap();
        assert!(old.opening.iter().all(|&q| q == 0.0) && old.openings.is_empty());
        // An unfamiliar opening costs the new model its trust, not the old one; familiar prompts
        // predict alike.
        for text in ["please add the numbers 3 and 4", "sum 4 and 2", "greet user 7", ""] {
            let (new, old) = (model.predict(text), old.predict(text));
            assert!(old.trust >= new.trust, "{text}");
            assert_eq!(old.opening_familiarity, 1.0);
            if new.opening_familiarity == 1.0 {
                assert_eq!(old, new, "{text}");
            }
        }
        assert_eq!(model.predict("please add the numbers 3 and 4").opening_familiarity, 0.0);
        let v5 = reseal(body.to_vec(), 5);
        assert!(decode(&v5).unwrap_err().to_string().contains("versions 2 to 4"));
    }

    #[test]
    fn a_version_3_file_weighs_every_occurrence_one() {
        // `planted.swlm` as version 3 wrote it (before TF-IDF), kept as it was.
        let old = LearnedModel::from_bytes(include_bytes!("testdata/planted_v3.swlm")).unwrap();
        assert!(!old.info.features.tf_idf && !old.info.training.features.tf_idf && old.idf.is_empty());
        // Written before the dense features could be standardised: read as computed, and trained so.
        assert!(old.info.dense_scale.is_empty());
        assert_eq!(old.info.features.standardize, Standardize::Off);
        assert_eq!(old.info.training.features.standardize, Standardize::Off);
        let p = |text: &str, j| old.predict(text).probability(j).unwrap();
        assert!(p("greet the user number 3 warmly", 0) > 0.9);
        assert!(p("add the numbers 4 and 17 with carry", 1) < 0.35);
        // It saves as version 4 and reads back the same.
        assert!(decode(&encode(&old)).unwrap() == old);
    }
}
