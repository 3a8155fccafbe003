//! The training rows' features: a sparse matrix, the IDF table over the rows, and the dense
//! features' standardisation.

use switchyard::classify::TextStats;
use switchyard::classify::learned::__training::{DENSE, Extractor, Namespace, Sink, idf, scale_dense};
use switchyard::classify::learned::TrainConfig;

use crate::data::Dataset;

/// Sparse features of every row.
pub(super) struct Matrix {
    pub(super) entries: Vec<(u32, f32)>,
    pub(super) offsets: Vec<usize>,
}

impl Matrix {
    pub(super) fn row(&self, i: usize) -> &[(u32, f32)] {
        &self.entries[self.offsets[i]..self.offsets[i + 1]]
    }
}

/// Standardises in place, on every row, the dense features that are non-zero on at least half of
/// the rows ([`Standardize::On`]), and returns each dense feature's shift and scale as
/// the model file keeps them: the rows' mean and inverse standard deviation (0 for a feature
/// constant on them), or 0 and 1 for a feature left as computed. Every row carries every dense
/// feature.
pub(super) fn standardize_dense(matrix: &mut Matrix, buckets: usize) -> Vec<(f32, f32)> {
    let dense = |idx: u32| (idx as usize).checked_sub(buckets).filter(|&i| i < DENSE.len());
    // Per feature: the sum, the sum of squares, and the rows where it is not zero.
    let mut sums = [(0.0f64, 0.0f64, 0usize); DENSE.len()];
    for &(idx, v) in &matrix.entries {
        if let Some(i) = dense(idx) {
            sums[i].0 += f64::from(v);
            sums[i].1 += f64::from(v) * f64::from(v);
            sums[i].2 += usize::from(v != 0.0);
        }
    }
    let rows = matrix.offsets.len() - 1;
    let n = rows.max(1) as f64;
    let scale: Vec<(f32, f32)> = sums
        .iter()
        .map(|&(s, s2, nonzero)| {
            if 2 * nonzero < rows {
                return (0.0, 1.0);
            }
            let mean = s / n;
            let sd = (s2 / n - mean * mean).max(0.0).sqrt();
            (mean as f32, if sd > 1e-6 { (1.0 / sd) as f32 } else { 0.0 })
        })
        .collect();
    for (idx, v) in &mut matrix.entries {
        if let Some(i) = dense(*idx) {
            *v = scale_dense(*v, scale.get(i));
        }
    }
    scale
}

/// The IDF of each hashed bucket over `data`'s rows ([`idf`]): a bucket counts once per row,
/// whichever namespaces have it.
pub(super) fn document_frequencies(extractor: &Extractor<'_>, data: &Dataset, cfg: &TrainConfig) -> Vec<f32> {
    struct Rows<'d> {
        df: &'d mut [u32],
        last: &'d mut [u32],
        row: u32,
    }
    impl Sink for Rows<'_> {
        fn hashed(&mut self, _: Namespace, index: u32, _: Option<u64>) {
            let i = index as usize;
            if self.last[i] != self.row {
                self.last[i] = self.row;
                self.df[i] += 1;
            }
        }
        fn dense(&mut self, _: usize, _: f32) {}
    }
    let buckets = 1usize << cfg.features.hash_bits;
    let (mut df, mut last) = (vec![0u32; buckets], vec![0u32; buckets]);
    for (i, row) in data.rows().iter().enumerate() {
        let text = row.prompt();
        let mut sink = Rows { df: &mut df, last: &mut last, row: i as u32 + 1 };
        extractor.extract(text, &TextStats::of_text(text), &mut sink);
    }
    df.into_iter().map(|d| idf(data.len(), d)).collect()
}
