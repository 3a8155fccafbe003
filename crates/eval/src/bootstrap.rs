//! Bootstrap intervals for a [`Report`](crate::replay::Report)'s curve figures and for one operating
//! point.
//!
//! The figures of an evaluation are measured on a few hundred rows; another sample of rows from the
//! same source would give other figures. The bootstrap estimates how much by resampling the rows:
//!
//! 1. Draw `n` of the `n` reported rows **with replacement** (row `r` drawn `w[r]` times, `Σ w = n`),
//!    `B` times ([`BootstrapOptions::resamples`], default 1,000), from a seeded
//!    [`switchyard::hash::Rng`]: the same seed gives the same intervals.
//! 2. On each resample, recompute every figure exactly as [`Report::new`](crate::replay::Report::new)
//!    does on the rows, with the functions of [`metrics`]: each run's operating point
//!    `(Σ w[r]·c[r, m(r)], Σ w[r]·s[r, m(r)] / n)` from its per-row choices, each single model's point,
//!    the best single model **chosen again on the resample** ([`metrics::best_single`]), `x_max`
//!    ([`metrics::max_cost`]), the router's [`metrics::aiq`] and [`metrics::cost_at_quality`] at
//!    [`BootstrapOptions::quality_target`] (default 95%), the zero router's same two figures on the
//!    hull of the single models ([`metrics::hull`]), and the router-minus-zero differences.
//! 3. Report each figure's **percentile interval**: the `(1 − level)/2` and `(1 + level)/2` quantiles
//!    of its `B` values (linear interpolation between order statistics; level 0.95 by default),
//!    next to the estimate on the rows themselves (every `w[r] = 1`), which equals the report's
//!    figure.
//!
//! # What is held fixed
//!
//! The router's choice on each row is **held fixed**: the runs are not replayed, and no router is
//! trained again. The interval therefore covers the variation from **which rows were sampled**,
//! not the variation from training (another training split, another seed of the trainer), which
//! only retraining on resampled training rows would measure. The knob grid, the scores and the
//! costs of each row are fixed too.
//!
//! A figure may be undefined on a resample (the router never reaches the target quality there, for
//! instance); the quantiles are then taken over the resamples where it is defined, and
//! [`Interval::undefined`] counts the others. The percentile interval is not symmetric around the
//! estimate and need not contain it (it usually does). Percentile intervals commute with monotone
//! maps ([`Interval::map`]): the interval of the saving `1 − cost` is `[1 − upper, 1 − lower]`.
//!
//! # Cost
//!
//! Each run's chosen score and cost on each row are gathered once; a resample then costs
//! `O(rows × (runs + models))` multiply-adds and a few hulls, with no allocation per row: 1,000
//! resamples of 301 runs on 947 rows take about 0.4 s in a release build.
//!
//! ```
//! use switchyard_eval::bootstrap::{BootstrapOptions, bootstrap};
//! use switchyard_eval::data::{Dataset, Row};
//! use switchyard_eval::replay::Run;
//!
//! # fn run() -> switchyard::Result<()> {
//! let mut b = Dataset::builder(["cheap", "dear"]);
//! for r in 0..40 {
//!     let hard = r % 4 == 0;
//!     b.push(Row::new(format!("q{r}")), &[if hard { 0.0 } else { 1.0 }, 1.0], Some(&[0.001, 0.01]))?;
//! }
//! let data = b.build()?;
//! // A router that sends the hard rows (and only those) to the dear model, and one that never does.
//! let smart = Run::from_choices(&data, 1.0, (0..40).map(|r| usize::from(r % 4 == 0)).collect())?;
//! let cheap = Run::from_choices(&data, 0.0, vec![0; 40])?;
//! let ci = bootstrap(&data, &[cheap, smart], &BootstrapOptions::new().resamples(200))?;
//! let aiq = ci.router.aiq.expect("defined");
//! assert!(aiq.lower <= aiq.estimate && aiq.estimate <= aiq.upper);
//! # Ok(()) }
//! # run().unwrap();
//! ```

use serde::Serialize;

use super::data::Dataset;
use super::metrics::{self, OperatingPoint, Outcomes};
use super::replay::Run;
use switchyard::Result;
use switchyard::hash::Rng;

/// How many resamples, from which seed, at which level, and the quality target of the cost figure.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BootstrapOptions {
    /// Resamples of the rows, `B` (default [`DEFAULT_RESAMPLES`](Self::DEFAULT_RESAMPLES)).
    pub resamples: usize,
    /// The generator's seed (default [`DEFAULT_SEED`](Self::DEFAULT_SEED)).
    pub seed: u64,
    /// The intervals' coverage, in `(0, 1)` (default 0.95: the 2.5% and 97.5% quantiles).
    pub level: f64,
    /// The fraction of the best single model's quality at which the cost is measured (default 0.95).
    pub quality_target: f64,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        Self { resamples: Self::DEFAULT_RESAMPLES, seed: Self::DEFAULT_SEED, level: 0.95, quality_target: 0.95 }
    }
}

impl BootstrapOptions {
    /// The default number of resamples.
    pub const DEFAULT_RESAMPLES: usize = 1_000;
    /// The default seed.
    pub const DEFAULT_SEED: u64 = 0x5eed;

    /// The defaults: 1,000 resamples, 95% intervals, cost at 95% of the best single model's quality.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the number of resamples (`> 0` when computing).
    #[must_use]
    pub fn resamples(mut self, resamples: usize) -> Self {
        self.resamples = resamples;
        self
    }

    /// Sets the seed.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the coverage of the intervals (in `(0, 1)` when computing).
    #[must_use]
    pub fn level(mut self, level: f64) -> Self {
        self.level = level;
        self
    }

    /// Sets the quality target of the cost figure (finite and `> 0` when computing).
    #[must_use]
    pub fn quality_target(mut self, quality_target: f64) -> Self {
        self.quality_target = quality_target;
        self
    }

    fn check(&self) -> Result<()> {
        if self.resamples == 0 {
            return Err(crate::invalid_input("a bootstrap needs at least one resample"));
        }
        if !(self.level > 0.0 && self.level < 1.0) {
            return Err(crate::invalid_input(format!("bootstrap level {} is not in (0, 1)", self.level)));
        }
        if !(self.quality_target.is_finite() && self.quality_target > 0.0) {
            return Err(crate::invalid_input(format!("quality target {} is not finite and > 0", self.quality_target)));
        }
        Ok(())
    }
}

/// A figure on the rows and its bootstrap percentile interval.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Interval {
    /// The figure on the rows themselves (the identity resample).
    pub estimate: f64,
    /// The `(1 − level)/2` quantile of the figure over the resamples.
    pub lower: f64,
    /// The `(1 + level)/2` quantile of the figure over the resamples.
    pub upper: f64,
    /// Resamples on which the figure was undefined, left out of the quantiles.
    pub undefined: usize,
}

impl Interval {
    /// The interval of `f(figure)` for a monotone `f` (increasing or decreasing): percentile
    /// intervals commute with such maps. `map(|c| 1.0 - c)` turns a cost fraction into a saving.
    #[must_use]
    pub fn map(self, f: impl Fn(f64) -> f64) -> Self {
        let (a, b) = (f(self.lower), f(self.upper));
        Self { estimate: f(self.estimate), lower: a.min(b), upper: a.max(b), undefined: self.undefined }
    }

    /// The width, `upper − lower`.
    pub fn width(&self) -> f64 {
        self.upper - self.lower
    }

    /// Whether `x` lies in `[lower, upper]`.
    pub fn contains(&self, x: f64) -> bool {
        self.lower <= x && x <= self.upper
    }
}

/// The two curve figures of one router (or of a difference), each `None` if undefined on the rows
/// themselves or on every resample.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CurveFigures {
    /// [`metrics::aiq`], with the resample's `x_max`.
    pub aiq: Option<Interval>,
    /// [`metrics::cost_at_quality`] at [`CurveIntervals::quality_target`], as a fraction of the
    /// resample's best single model's cost.
    pub cost_at_quality: Option<Interval>,
}

/// Bootstrap intervals of a sweep's curve figures: see the [module docs](self).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CurveIntervals {
    /// Rows resampled.
    pub rows: usize,
    /// Resamples drawn.
    pub resamples: usize,
    /// The seed.
    pub seed: u64,
    /// The intervals' coverage.
    pub level: f64,
    /// The quality target of the cost figures (a fraction of the best single model's quality).
    pub quality_target: f64,
    /// The router: the hull of the runs' points.
    pub router: CurveFigures,
    /// The zero router: the hull of the single models' points.
    pub zero_router: CurveFigures,
    /// Router minus zero router, resample by resample (a positive AIQ difference and a negative
    /// cost difference favour the router).
    pub difference: CurveFigures,
}

/// Bootstrap intervals of one run's operating point relative to the best single model.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointIntervals {
    /// Rows resampled.
    pub rows: usize,
    /// Resamples drawn.
    pub resamples: usize,
    /// The seed.
    pub seed: u64,
    /// The intervals' coverage.
    pub level: f64,
    /// The run's mean quality over the resample's best single model's.
    pub quality_fraction: Option<Interval>,
    /// The run's cost over the resample's best single model's.
    pub cost_fraction: Option<Interval>,
}

/// The bootstrap intervals of the router's and the zero router's AIQ and cost at
/// [`BootstrapOptions::quality_target`], and of their differences, for `runs` (a sweep replayed on
/// `data`); see the [module docs](self).
///
/// # Errors
/// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if `data` has no costs (a data set without
/// rows has none); [`ErrorKind::InvalidRequest`](switchyard::ErrorKind::InvalidRequest) if `runs` is
/// empty, a run has not one choice per row of `data` or chooses a model `data` lacks, or the options
/// are out of range (no resamples, a level outside `(0, 1)`).
pub fn bootstrap(data: &Dataset, runs: &[Run], options: &BootstrapOptions) -> Result<CurveIntervals> {
    options.check()?;
    if runs.is_empty() {
        return Err(crate::invalid_input("a bootstrap needs at least one run"));
    }
    let mut r = Resampler::new(data.outcomes()?, runs)?;
    let q = options.quality_target;
    let figures = |r: &mut Resampler<'_>, w: &[f64]| {
        let s = r.evaluate(w);
        let x_max = metrics::max_cost(s.singles).unwrap_or(0.0);
        let best = s.singles[metrics::best_single(s.singles).unwrap_or(0)];
        let zero = metrics::hull(s.singles);
        let router = [metrics::aiq(s.points, x_max), metrics::cost_at_quality(s.points, q, best)];
        let zero = [metrics::aiq(&zero, x_max), metrics::cost_at_quality(&zero, q, best)];
        let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        [router[0], router[1], zero[0], zero[1], diff(router[0], zero[0]), diff(router[1], zero[1])]
    };
    let v = r.run(options, figures);
    let pair = |i: usize| CurveFigures { aiq: v[i], cost_at_quality: v[i + 1] };
    Ok(CurveIntervals {
        rows: r.rows,
        resamples: options.resamples,
        seed: options.seed,
        level: options.level,
        quality_target: q,
        router: pair(0),
        zero_router: pair(2),
        difference: pair(4),
    })
}

/// The bootstrap intervals of one run's quality and cost as fractions of the best single model's
/// (chosen again on each resample): for a calibrated router's run on the reported rows.
///
/// # Errors
/// As [`bootstrap`].
pub fn bootstrap_point(data: &Dataset, run: &Run, options: &BootstrapOptions) -> Result<PointIntervals> {
    options.check()?;
    let mut r = Resampler::new(data.outcomes()?, std::slice::from_ref(run))?;
    let v = r.run(options, |r, w| {
        let s = r.evaluate(w);
        let best = s.singles[metrics::best_single(s.singles).unwrap_or(0)];
        let p = s.points[0];
        let ratio = |a: f64, b: f64| (b > 0.0 && b.is_finite()).then(|| a / b);
        [ratio(p.quality, best.quality), ratio(p.cost, best.cost)]
    });
    let [quality_fraction, cost_fraction] = v;
    Ok(PointIntervals {
        rows: r.rows,
        resamples: options.resamples,
        seed: options.seed,
        level: options.level,
        quality_fraction,
        cost_fraction,
    })
}

/// The runs' chosen scores and costs gathered per run, and buffers for one resample's points.
struct Resampler<'a> {
    outcomes: Outcomes<'a>,
    rows: usize,
    /// `scores[k * rows + r]`: the score of the model run `k` chose on row `r`.
    scores: Vec<f64>,
    /// As `scores`, for costs.
    costs: Vec<f64>,
    points: Vec<OperatingPoint>,
    singles: Vec<OperatingPoint>,
    single_sums: Vec<(f64, f64)>,
}

/// One resample's operating points, borrowed from the [`Resampler`]'s buffers.
struct Sample<'s> {
    points: &'s [OperatingPoint],
    singles: &'s [OperatingPoint],
}

impl<'a> Resampler<'a> {
    fn new(outcomes: Outcomes<'a>, runs: &[Run]) -> Result<Self> {
        let rows = outcomes.rows();
        let mut scores = Vec::with_capacity(runs.len() * rows);
        let mut costs = Vec::with_capacity(runs.len() * rows);
        for (k, run) in runs.iter().enumerate() {
            // Checks one choice per row, each a model index.
            metrics::operating_point(outcomes, &run.choices)
                .map_err(|e| crate::invalid_input(format!("run {k} (knob {}): {e}", run.knob)))?;
            for (r, &m) in run.choices.iter().enumerate() {
                scores.push(outcomes.scores(r)[m]);
                costs.push(outcomes.costs(r)[m]);
            }
        }
        let models = outcomes.models();
        Ok(Self {
            outcomes,
            rows,
            scores,
            costs,
            points: vec![OperatingPoint::new(0.0, 0.0); runs.len()],
            singles: vec![OperatingPoint::new(0.0, 0.0); models],
            single_sums: vec![(0.0, 0.0); models],
        })
    }

    /// Every run's and every single model's operating point on the resample that draws row `r`
    /// `w[r]` times. With every weight 1 the sums are those of [`metrics::operating_point`] and
    /// [`metrics::single_model_points`], term by term in the same order, so the points are equal.
    fn evaluate(&mut self, w: &[f64]) -> Sample<'_> {
        let n = self.rows as f64;
        for ((p, s), c) in
            self.points.iter_mut().zip(self.scores.chunks_exact(self.rows)).zip(self.costs.chunks_exact(self.rows))
        {
            let (mut cost, mut score) = (0.0, 0.0);
            for ((w, s), c) in w.iter().zip(s).zip(c) {
                cost += w * c;
                score += w * s;
            }
            *p = OperatingPoint::new(cost, score / n);
        }
        self.single_sums.fill((0.0, 0.0));
        let (all_s, all_c) = (self.outcomes.all_scores(), self.outcomes.all_costs());
        let m = self.single_sums.len();
        for ((w, s), c) in w.iter().zip(all_s.chunks_exact(m)).zip(all_c.chunks_exact(m)) {
            for ((acc, s), c) in self.single_sums.iter_mut().zip(s).zip(c) {
                acc.0 += w * c;
                acc.1 += w * s;
            }
        }
        for (p, &(cost, score)) in self.singles.iter_mut().zip(&self.single_sums) {
            *p = OperatingPoint::new(cost, score / n);
        }
        Sample { points: &self.points, singles: &self.singles }
    }

    /// The estimate of each of `K` figures on the rows and its percentile interval over
    /// `options.resamples` resamples.
    fn run<const K: usize>(
        &mut self,
        options: &BootstrapOptions,
        mut figures: impl FnMut(&mut Self, &[f64]) -> [Option<f64>; K],
    ) -> [Option<Interval>; K] {
        let n = self.rows;
        let mut w = vec![1.0; n];
        let estimates = figures(self, &w);
        let mut values: [Vec<f64>; K] = std::array::from_fn(|_| Vec::with_capacity(options.resamples));
        let mut rng = Rng::new(options.seed);
        for _ in 0..options.resamples {
            w.fill(0.0);
            for _ in 0..n {
                w[rng.below(n)] += 1.0;
            }
            for (v, x) in values.iter_mut().zip(figures(self, &w)) {
                v.extend(x);
            }
        }
        let tail = (1.0 - options.level) / 2.0;
        std::array::from_fn(|i| {
            let estimate = estimates[i]?;
            let v = &mut values[i];
            v.sort_by(f64::total_cmp);
            Some(Interval {
                estimate,
                lower: quantile(v, tail)?,
                upper: quantile(v, 1.0 - tail)?,
                undefined: options.resamples - v.len(),
            })
        })
    }
}

/// The `p` quantile of sorted values, interpolating linearly between order statistics (Hyndman and
/// Fan's type 7, numpy's default). `None` if there are no values.
fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let h = last as f64 * p.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(last);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Row;
    use crate::replay::Report;
    use switchyard::ErrorKind;

    /// Three models; dearer ones right more often; costs vary by row.
    fn synthetic(rows: usize) -> Dataset {
        let mut b = Dataset::builder(["cheap", "mid", "dear"]).name("synthetic");
        for r in 0..rows {
            let scores = [f64::from(r % 3 == 0), f64::from(r % 5 != 0), f64::from(r % 11 != 0)];
            let k = 1.0 + (r % 7) as f64;
            b.push(Row::new(format!("row {r}")), &scores, Some(&[0.001 * k, 0.01 * k, 0.1 * k])).unwrap();
        }
        b.build().unwrap()
    }

    /// A sweep-like family of runs: run `k` sends to the dearest model that is right a row the
    /// cheap model misses, on the first `k / steps` of the rows, and to the cheap model elsewhere.
    fn runs(data: &Dataset, steps: usize) -> Vec<Run> {
        let o = data.outcomes().unwrap();
        (0..=steps)
            .map(|k| {
                let upto = data.len() * k / steps;
                let choices = (0..data.len())
                    .map(|r| {
                        let s = o.scores(r);
                        if r >= upto || s[0] >= 1.0 {
                            0
                        } else if s[1] >= 1.0 {
                            1
                        } else {
                            2
                        }
                    })
                    .collect();
                Run::from_choices(data, k as f64, choices).unwrap()
            })
            .collect()
    }

    #[test]
    fn the_identity_resample_gives_the_reports_figures() {
        let data = synthetic(97);
        let runs = runs(&data, 12);
        let report = Report::new(&data, &runs).unwrap();
        let ci = bootstrap(&data, &runs, &BootstrapOptions::new().resamples(50)).unwrap();
        let est = |i: Option<Interval>| i.map(|i| i.estimate);
        assert_eq!(est(ci.router.aiq), report.router.aiq);
        assert_eq!(est(ci.router.cost_at_quality), report.router.cost_at(0.95));
        assert_eq!(est(ci.zero_router.aiq), report.zero_router.aiq);
        assert_eq!(est(ci.zero_router.cost_at_quality), report.zero_router.cost_at(0.95));
        assert!(report.router.aiq.is_some() && report.router.cost_at(0.95).is_some());
        let d = ci.difference.aiq.unwrap().estimate;
        assert_eq!(d, report.router.aiq.unwrap() - report.zero_router.aiq.unwrap());
        for q in Report::QUALITY_TARGETS {
            let ci = bootstrap(&data, &runs, &BootstrapOptions::new().resamples(1).quality_target(q)).unwrap();
            assert_eq!(est(ci.router.cost_at_quality), report.router.cost_at(q), "{q}");
            assert_eq!(est(ci.zero_router.cost_at_quality), report.zero_router.cost_at(q), "{q}");
        }

        let run = &runs[5];
        let p = bootstrap_point(&data, run, &BootstrapOptions::new().resamples(50)).unwrap();
        let best = report.best_single.point;
        assert_eq!(p.quality_fraction.unwrap().estimate, run.point.quality / best.quality);
        assert_eq!(p.cost_fraction.unwrap().estimate, run.point.cost / best.cost);
    }

    #[test]
    fn intervals_contain_the_estimate_and_are_ordered() {
        let data = synthetic(120);
        let runs = runs(&data, 20);
        let ci = bootstrap(&data, &runs, &BootstrapOptions::new().resamples(400)).unwrap();
        let all = [ci.router, ci.zero_router, ci.difference];
        for (i, f) in all.iter().enumerate() {
            for x in [f.aiq, f.cost_at_quality] {
                let x = x.unwrap();
                assert!(x.contains(x.estimate), "{i}: {x:?}");
                assert!(x.width() > 0.0, "{i}: {x:?}");
            }
        }
        // A narrower level gives a narrower interval inside the wider one.
        let narrow = bootstrap(&data, &runs, &BootstrapOptions::new().resamples(400).level(0.5)).unwrap();
        let (w, n) = (ci.router.aiq.unwrap(), narrow.router.aiq.unwrap());
        assert!(w.lower <= n.lower && n.upper <= w.upper, "{w:?} {n:?}");
        let p = bootstrap_point(&data, &runs[10], &BootstrapOptions::new().resamples(400)).unwrap();
        for x in [p.quality_fraction.unwrap(), p.cost_fraction.unwrap()] {
            assert!(x.contains(x.estimate) && x.width() > 0.0, "{x:?}");
        }
        let saving = ci.router.cost_at_quality.unwrap().map(|c| 1.0 - c);
        let cost = ci.router.cost_at_quality.unwrap();
        assert_eq!((saving.lower, saving.upper), (1.0 - cost.upper, 1.0 - cost.lower));
    }

    #[test]
    fn the_same_seed_gives_the_same_intervals() {
        let data = synthetic(60);
        let runs = runs(&data, 6);
        let o = BootstrapOptions::new().resamples(100).seed(7);
        let a = bootstrap(&data, &runs, &o).unwrap();
        assert_eq!(a, bootstrap(&data, &runs, &o).unwrap());
        let b = bootstrap(&data, &runs, &o.seed(8)).unwrap();
        assert_ne!(a.router.aiq, b.router.aiq);
        assert_eq!(a.router.aiq.map(|i| i.estimate), b.router.aiq.map(|i| i.estimate));
    }

    #[test]
    fn identical_rows_give_zero_width_intervals() {
        let mut b = Dataset::builder(["cheap", "dear"]);
        for r in 0..30 {
            b.push(Row::new(format!("same {r}")), &[0.0, 1.0], Some(&[0.25, 1.0])).unwrap();
        }
        let data = b.build().unwrap();
        let runs = vec![
            Run::from_choices(&data, 0.0, vec![0; 30]).unwrap(),
            Run::from_choices(&data, 1.0, vec![1; 30]).unwrap(),
        ];
        let ci = bootstrap(&data, &runs, &BootstrapOptions::new().resamples(100)).unwrap();
        for f in [ci.router, ci.zero_router, ci.difference] {
            for x in [f.aiq, f.cost_at_quality] {
                let x = x.unwrap();
                assert!(x.width().abs() < 1e-12 && (x.lower - x.estimate).abs() < 1e-12, "{x:?}");
                assert_eq!(x.undefined, 0);
            }
        }
        let p = bootstrap_point(&data, &runs[0], &BootstrapOptions::new().resamples(100)).unwrap();
        assert!(p.cost_fraction.unwrap().width().abs() < 1e-12);
        assert_eq!(p.quality_fraction.unwrap().estimate, 0.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        let data = synthetic(20);
        let runs = runs(&data, 2);
        let o = BootstrapOptions::new().resamples(10);
        let kind = |r: Result<CurveIntervals>| r.unwrap_err().kind();
        assert_eq!(kind(bootstrap(&data, &runs, &o.resamples(0))), ErrorKind::InvalidRequest);
        assert_eq!(kind(bootstrap(&data, &runs, &o.level(1.0))), ErrorKind::InvalidRequest);
        assert_eq!(kind(bootstrap(&data, &runs, &o.level(f64::NAN))), ErrorKind::InvalidRequest);
        assert_eq!(kind(bootstrap(&data, &runs, &o.quality_target(0.0))), ErrorKind::InvalidRequest);
        assert_eq!(kind(bootstrap(&data, &[], &o)), ErrorKind::InvalidRequest);
        // Runs of another data set: one choice too few, or a model index too many.
        let other = synthetic(19);
        assert_eq!(kind(bootstrap(&other, &runs, &o)), ErrorKind::InvalidRequest);
        let mut bad = runs[0].clone();
        bad.choices[3] = 3;
        let e = bootstrap(&data, &[runs[1].clone(), bad.clone()], &o).unwrap_err();
        assert!(e.to_string().contains("run 1"), "{e}");
        assert!(bootstrap_point(&data, &bad, &o).is_err());
        // No rows (and so no costs), or no costs.
        let empty = Dataset::builder(["a", "b"]).build().unwrap();
        assert!(bootstrap(&empty, &runs, &o).is_err());
        let mut b = Dataset::builder(["a"]);
        b.push(Row::new("x"), &[1.0], None).unwrap();
        assert_eq!(kind(bootstrap(&b.build().unwrap(), &runs, &o)), ErrorKind::Config);
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 1.0), Some(5.0));
        assert_eq!(quantile(&v, 0.5), Some(3.0));
        assert_eq!(quantile(&v, 0.125), Some(1.5));
        assert_eq!(quantile(&[7.0], 0.3), Some(7.0));
        assert_eq!(quantile(&[], 0.3), None);
    }
}
