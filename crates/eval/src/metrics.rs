//! Cost–quality metrics of routing runs, as RouterBench and RouteLLM define them.
//!
//! Everything here is a pure function over slices. A run is summarised by an [`OperatingPoint`]
//! (total cost, mean quality); a router swept over its cost–quality knob gives a set of points, and
//! the metrics compare those points with the single models, the zero router and the oracle.
//!
//! | metric | function | definition |
//! |---|---|---|
//! | operating point | [`operating_point`], [`operating_point_mixed`] | `(Σᵣ c[r, m(r)], (1/n) Σᵣ s[r, m(r)])` |
//! | share of calls | [`call_shares`], [`mixture_shares`] | fraction of rows sent to each model |
//! | non-decreasing convex hull | [`hull`] | the best quality any mixture of the points reaches for a cost |
//! | zero router | [`zero_router`] | the hull of the single models' points (random mixtures of them) |
//! | oracle | [`oracle_choices`], [`oracle_point`] | per row, the cheapest model with the row's best score |
//! | AIQ | [`aiq`] | `(1/x_max) ∫ hull(x) dx`, hull extended flat to `x_max` |
//! | cost at q% of best | [`cost_at_quality`] | `min {c : hull(c) ≥ q · best.quality} / best.cost` |
//! | PGR, APGR, CPT | [`pgr`], [`apgr`], [`cpt`] | RouteLLM's two-model metrics over the strong-call share |
//! | more than two models | [`cheapest_other`], [`best_at_each_share`], [`zero_router_shares`] | the weak model, and curves over the share of calls to the strong model |
//!
//! Costs are whatever the [`Outcomes`] hold: USD actually spent, or a price per call
//! ([`CostKind`](super::data::CostKind)). Ratios of costs (AIQ, cost at q%) do not depend on the unit.
//!
//! Functions that take a set of points ignore points whose cost or quality is not finite, and
//! points with a negative cost; none of them panics on any input.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use switchyard::Result;

/// Every model's score and cost on every row, borrowed, row-major: row `r`, model `m` at
/// `r * models + m`. Made by [`Dataset::outcomes`](super::data::Dataset::outcomes) or [`Outcomes::new`].
///
/// Always has at least one row and one model; scores and costs are finite, costs `>= 0`.
#[derive(Clone, Copy)]
pub struct Outcomes<'a> {
    models: usize,
    scores: &'a [f64],
    costs: &'a [f64],
}

impl fmt::Debug for Outcomes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outcomes").field("rows", &self.rows()).field("models", &self.models).finish()
    }
}

impl<'a> Outcomes<'a> {
    /// Wraps two row-major slices of `rows × models` values.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidRequest`](switchyard::ErrorKind::InvalidRequest) if `models` is 0, the slices
    /// are empty or differ in length, their length is not a multiple of `models`, a score is not finite
    /// or a cost is negative or not finite.
    pub fn new(models: usize, scores: &'a [f64], costs: &'a [f64]) -> Result<Self> {
        if models == 0 || scores.is_empty() {
            return Err(crate::invalid_input("outcomes need at least one row and one model"));
        }
        if scores.len() != costs.len() || !scores.len().is_multiple_of(models) {
            return Err(crate::invalid_input(format!(
                "{} scores and {} costs do not make rows of {models} models",
                scores.len(),
                costs.len()
            )));
        }
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            return Err(crate::invalid_input(format!(
                "score of row {}, model {} is not finite",
                i / models,
                i % models
            )));
        }
        if let Some(i) = costs.iter().position(|c| !(c.is_finite() && *c >= 0.0)) {
            return Err(crate::invalid_input(format!(
                "cost of row {}, model {} is negative or not finite",
                i / models,
                i % models
            )));
        }
        Ok(Self { models, scores, costs })
    }

    /// The number of models.
    pub fn models(&self) -> usize {
        self.models
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.scores.len() / self.models
    }

    /// Every model's score on one row.
    ///
    /// # Panics
    /// If `row >= self.rows()`, like slice indexing.
    pub fn scores(&self, row: usize) -> &'a [f64] {
        &self.scores[row * self.models..(row + 1) * self.models]
    }

    /// Every model's cost on one row.
    ///
    /// # Panics
    /// If `row >= self.rows()`, like slice indexing.
    pub fn costs(&self, row: usize) -> &'a [f64] {
        &self.costs[row * self.models..(row + 1) * self.models]
    }

    /// All scores, row-major.
    pub fn all_scores(&self) -> &'a [f64] {
        self.scores
    }

    /// All costs, row-major.
    pub fn all_costs(&self) -> &'a [f64] {
        self.costs
    }

    fn rows_iter(&self) -> impl Iterator<Item = (&'a [f64], &'a [f64])> + use<'a> {
        self.scores.chunks_exact(self.models).zip(self.costs.chunks_exact(self.models))
    }
}

/// What a router run over a set of rows costs and achieves: total cost, and mean quality (the mean
/// score, i.e. accuracy for 0/1 scores).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// Total cost over the rows (USD, or the data set's cost unit).
    pub cost: f64,
    /// Mean score over the rows, in `[0, 1]`.
    pub quality: f64,
}

impl OperatingPoint {
    /// A point.
    pub fn new(cost: f64, quality: f64) -> Self {
        Self { cost, quality }
    }

    fn is_valid(&self) -> bool {
        self.cost.is_finite() && self.cost >= 0.0 && self.quality.is_finite()
    }
}

/// The operating point of sending row `r` to model `choices[r]`:
/// `cost = Σᵣ c[r, choices[r]]`, `quality = (1/n) Σᵣ s[r, choices[r]]`.
///
/// # Errors
/// [`ErrorKind::InvalidRequest`](switchyard::ErrorKind::InvalidRequest) if there is not one choice per row
/// or a choice is not a model index.
pub fn operating_point(outcomes: Outcomes<'_>, choices: &[usize]) -> Result<OperatingPoint> {
    check_choices(outcomes.rows(), outcomes.models, choices)?;
    let (mut cost, mut score) = (0.0, 0.0);
    for ((scores, costs), &m) in outcomes.rows_iter().zip(choices) {
        cost += costs[m];
        score += scores[m];
    }
    Ok(OperatingPoint::new(cost, score / choices.len() as f64))
}

/// The operating point of a stochastic router that sends row `r` to model `m` with probability
/// `weights[r * models + m]`: the expected cost `Σᵣ Σₘ w[r, m] c[r, m]` and quality
/// `(1/n) Σᵣ Σₘ w[r, m] s[r, m]`.
///
/// # Errors
/// [`ErrorKind::InvalidRequest`](switchyard::ErrorKind::InvalidRequest) if `weights` does not have one
/// value per row and model, or a row's weights are negative, not finite, or do not sum to 1 (±1e-6).
pub fn operating_point_mixed(outcomes: Outcomes<'_>, weights: &[f64]) -> Result<OperatingPoint> {
    check_weights(outcomes.rows(), outcomes.models, weights)?;
    let (mut cost, mut score) = (0.0, 0.0);
    for ((scores, costs), w) in outcomes.rows_iter().zip(weights.chunks_exact(outcomes.models)) {
        for ((s, c), w) in scores.iter().zip(costs).zip(w) {
            cost += w * c;
            score += w * s;
        }
    }
    Ok(OperatingPoint::new(cost, score / outcomes.rows() as f64))
}

/// Each model's share of calls when row `r` goes to `choices[r]`; the shares sum to 1.
///
/// # Errors
/// [`ErrorKind::InvalidRequest`](switchyard::ErrorKind::InvalidRequest) if `choices` is empty or a choice is
/// `>= models`.
pub fn call_shares(choices: &[usize], models: usize) -> Result<Vec<f64>> {
    check_choices(choices.len(), models, choices)?;
    let mut counts = vec![0usize; models];
    for &m in choices {
        counts[m] += 1;
    }
    Ok(counts.into_iter().map(|c| c as f64 / choices.len() as f64).collect())
}

/// Each model's expected share of calls under per-row mixtures (see [`operating_point_mixed`]).
///
/// # Errors
/// As [`operating_point_mixed`], and if `weights` is empty.
pub fn mixture_shares(weights: &[f64], models: usize) -> Result<Vec<f64>> {
    if models == 0 || !weights.len().is_multiple_of(models) {
        return Err(crate::invalid_input(format!("{} weights do not make rows of {models} models", weights.len())));
    }
    let rows = weights.len() / models;
    check_weights(rows, models, weights)?;
    let mut shares = vec![0.0; models];
    for w in weights.chunks_exact(models) {
        for (s, w) in shares.iter_mut().zip(w) {
            *s += w;
        }
    }
    shares.iter_mut().for_each(|s| *s /= rows as f64);
    Ok(shares)
}

fn check_choices(rows: usize, models: usize, choices: &[usize]) -> Result<()> {
    if choices.is_empty() || choices.len() != rows {
        return Err(crate::invalid_input(format!("{} choices for {rows} rows", choices.len())));
    }
    if let Some((r, m)) = choices.iter().enumerate().find(|(_, m)| **m >= models) {
        return Err(crate::invalid_input(format!("row {r} chose model {m}, but there are {models} models")));
    }
    Ok(())
}

fn check_weights(rows: usize, models: usize, weights: &[f64]) -> Result<()> {
    if rows == 0 || weights.len() != rows * models {
        return Err(crate::invalid_input(format!("{} weights for {rows} rows of {models} models", weights.len())));
    }
    for (r, w) in weights.chunks_exact(models).enumerate() {
        let sum: f64 = w.iter().sum();
        if w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) || (sum - 1.0).abs() > 1e-6 {
            return Err(crate::invalid_input(format!("the weights of row {r} are not a probability distribution")));
        }
    }
    Ok(())
}

/// Each single model's operating point (the run that sends every row to it), in model order.
pub fn single_model_points(outcomes: Outcomes<'_>) -> Vec<OperatingPoint> {
    let m = outcomes.models;
    let mut cost = vec![0.0; m];
    let mut score = vec![0.0; m];
    for (s, c) in outcomes.rows_iter() {
        for i in 0..m {
            cost[i] += c[i];
            score[i] += s[i];
        }
    }
    let n = outcomes.rows() as f64;
    cost.into_iter().zip(score).map(|(c, s)| OperatingPoint::new(c, s / n)).collect()
}

/// The index of the best point: the highest quality, the lowest cost among equals, the first among
/// exact ties. `None` if no point is valid.
///
/// On the RouterDC test split of MBPP, GPT-3.5 and GPT-4 tie at 0.6875: the best single model is
/// GPT-3.5, the cheaper one (as in `baselines.json`).
pub fn best_single(points: &[OperatingPoint]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, p) in points.iter().enumerate() {
        if !p.is_valid() {
            continue;
        }
        match best {
            Some(b) if points[b].quality > p.quality => {}
            Some(b) if points[b].quality == p.quality && points[b].cost <= p.cost => {}
            _ => best = Some(i),
        }
    }
    best
}

/// The largest cost among the points: RouterBench's `x_max` when given the single models.
pub fn max_cost(points: &[OperatingPoint]) -> Option<f64> {
    points.iter().filter(|p| p.is_valid()).map(|p| p.cost).max_by(f64::total_cmp)
}

/// The oracle's choice on one row: among the models with the row's highest score, the cheapest on
/// that row; among those, the first.
fn oracle_pick(scores: &[f64], costs: &[f64]) -> usize {
    let mut best = 0;
    for m in 1..scores.len() {
        if scores[m] > scores[best] || (scores[m] == scores[best] && costs[m] < costs[best]) {
            best = m;
        }
    }
    best
}

/// The oracle's choice for every row: **the cheapest model among those with the row's highest
/// score** (by the row's own costs; the first model in order among equal costs).
///
/// For 0/1 scores this is "the cheapest correct model", and on a row no model gets right, the
/// cheapest model: the oracle still pays for a call. This reproduces `baselines.json` (RouterBench
/// subset: 0.976 accuracy at 4.2% of GPT-4's cost on the RouterDC test split). For graded scores
/// (MT-Bench) it takes the best answer, and the cheaper model when two answers score the same.
pub fn oracle_choices(outcomes: Outcomes<'_>) -> Vec<usize> {
    outcomes.rows_iter().map(|(s, c)| oracle_pick(s, c)).collect()
}

/// The oracle's operating point (see [`oracle_choices`]), without allocating.
pub fn oracle_point(outcomes: Outcomes<'_>) -> OperatingPoint {
    let (mut cost, mut score) = (0.0, 0.0);
    for (s, c) in outcomes.rows_iter() {
        let m = oracle_pick(s, c);
        cost += c[m];
        score += s[m];
    }
    OperatingPoint::new(cost, score / outcomes.rows() as f64)
}

/// The non-decreasing convex hull of a set of points: the vertices, by increasing cost and strictly
/// increasing quality, of the best quality that a mixture of the points reaches for a given cost.
///
/// It starts at the cheapest point (the best one among equally cheap points) and ends at the
/// cheapest point of highest quality. Between vertices the hull is linear: a router that runs the
/// two neighbouring configurations on a random share of requests reaches every point of the
/// segment (RouterBench's argument for comparing hulls). Points of equal quality at a higher cost,
/// and points under a segment, are not vertices. `O(k log k)` for `k` points.
pub fn hull(points: &[OperatingPoint]) -> Vec<OperatingPoint> {
    let mut sorted: Vec<OperatingPoint> = points.iter().copied().filter(OperatingPoint::is_valid).collect();
    sorted.sort_by(|a, b| a.cost.total_cmp(&b.cost).then_with(|| b.quality.total_cmp(&a.quality)));
    let mut out: Vec<OperatingPoint> = Vec::with_capacity(sorted.len().min(16));
    for p in sorted {
        if out.last().is_some_and(|last| p.quality <= last.quality) {
            continue;
        }
        while let [.., a, b] = out[..] {
            // Drop `b` if it lies on or under the segment from `a` to `p`.
            if (b.quality - a.quality) * (p.cost - a.cost) <= (p.quality - a.quality) * (b.cost - a.cost) {
                out.pop();
            } else {
                break;
            }
        }
        out.push(p);
    }
    out
}

/// The zero router: the non-decreasing convex hull of the single models' points, i.e. what random
/// mixtures of single models reach with no knowledge of the prompt (RouterBench).
pub fn zero_router(outcomes: Outcomes<'_>) -> Vec<OperatingPoint> {
    hull(&single_model_points(outcomes))
}

/// The hull's quality at a cost: linear between vertices, flat after the last one. `None` below the
/// cheapest point (no mixture costs less) or if there are no valid points.
pub fn quality_at_cost(points: &[OperatingPoint], cost: f64) -> Option<f64> {
    let h = hull(points);
    let first = h.first()?;
    if cost.is_nan() || cost < first.cost {
        return None;
    }
    for w in h.windows(2) {
        let (a, b) = (w[0], w[1]);
        if cost <= b.cost {
            return Some(a.quality + (b.quality - a.quality) * (cost - a.cost) / (b.cost - a.cost));
        }
    }
    h.last().map(|p| p.quality)
}

/// RouterBench's **AIQ** (average improvement in quality): the area under the non-decreasing convex
/// hull of the points, extended flat to `x_max`, divided by `x_max`:
///
/// ```text
/// AIQ = (1 / x_max) ∫_{c₀}^{x_max} hull(x) dx
/// ```
///
/// where `c₀` is the cost of the cheapest point: the area starts there, not at 0 (no mixture costs
/// less). `x_max` is the total cost of the most expensive single model on the same rows
/// ([`max_cost`] of [`single_model_points`]). Hull segments past `x_max` are cut at `x_max`.
/// This reproduces `baselines.json`: the zero router's AIQ is 0.810 on the RouterDC test split, and
/// a single point `(c, q)` scores `q · (x_max − c) / x_max`.
///
/// With qualities in `[0, 1]` the result is in `[0, 1]`; adding a point never lowers it.
/// `None` if there is no valid point or `x_max` is not finite and `> 0`.
pub fn aiq(points: &[OperatingPoint], x_max: f64) -> Option<f64> {
    if !(x_max.is_finite() && x_max > 0.0) {
        return None;
    }
    let h = hull(points);
    let last = *h.last()?;
    let mut area = 0.0;
    for w in h.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.cost >= x_max {
            return Some(area / x_max);
        }
        if b.cost > x_max {
            let at_max = a.quality + (b.quality - a.quality) * (x_max - a.cost) / (b.cost - a.cost);
            area += (x_max - a.cost) * (a.quality + at_max) / 2.0;
            return Some(area / x_max);
        }
        area += (b.cost - a.cost) * (a.quality + b.quality) / 2.0;
    }
    if last.cost < x_max {
        area += (x_max - last.cost) * last.quality;
    }
    Some(area / x_max)
}

/// The lowest cost at which the points' hull reaches `quality`: the cheapest point's cost if it
/// already does, interpolated between hull vertices otherwise. `None` if no point reaches it.
pub fn min_cost_for_quality(points: &[OperatingPoint], quality: f64) -> Option<f64> {
    let h = hull(points);
    let first = h.first()?;
    if first.quality >= quality {
        return Some(first.cost);
    }
    for w in h.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b.quality >= quality {
            return Some(a.cost + (b.cost - a.cost) * (quality - a.quality) / (b.quality - a.quality));
        }
    }
    None
}

/// **Cost at q% of the best single model's quality**, as a fraction of that model's cost:
///
/// ```text
/// cost_at_quality = min { c : hull(c) ≥ q · best.quality } / best.cost
/// ```
///
/// `q` is a fraction (`0.95` for 95%) and `best` the best single model's point ([`best_single`] of
/// [`single_model_points`]). The minimum is taken on the **hull** of the points, interpolating
/// between vertices (a random mixture of two configurations), and is the cheapest point's cost when
/// that already reaches the target; this reproduces every `zero_router_cost_fraction_at_*` of
/// `baselines.json` (59.0% at 95% on the RouterDC test split; only actual points would give 100%).
/// The saving is `1 −` this. `None` if no point reaches the target or `best.cost` is not `> 0`.
pub fn cost_at_quality(points: &[OperatingPoint], q: f64, best: OperatingPoint) -> Option<f64> {
    if !(best.cost.is_finite() && best.cost > 0.0) {
        return None;
    }
    min_cost_for_quality(points, q * best.quality).map(|c| c / best.cost)
}

// ---------------------------------------------------------------------------------------------------
// Two models (RouteLLM)

/// A two-model router's operating point in RouteLLM's terms: the share of calls sent to the strong
/// model, in `[0, 1]`, and the mean quality.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharePoint {
    /// Share of calls sent to the strong model.
    pub strong_share: f64,
    /// Mean quality.
    pub quality: f64,
}

impl SharePoint {
    /// A point.
    pub fn new(strong_share: f64, quality: f64) -> Self {
        Self { strong_share, quality }
    }

    /// The operating point when every call to a model costs the same (RouteLLM's equal-tokens
    /// assumption): `cost = weak.cost + share · (strong.cost − weak.cost)`, where `weak` and `strong`
    /// are the single models' points on the same rows.
    pub fn operating_point(self, weak: OperatingPoint, strong: OperatingPoint) -> OperatingPoint {
        OperatingPoint::new(weak.cost + self.strong_share * (strong.cost - weak.cost), self.quality)
    }
}

/// RouteLLM's **performance gap recovered**: `PGR = (quality − weak) / (strong − weak)`, where `weak`
/// and `strong` are the two models' own qualities. `None` unless `strong > weak` (all finite).
pub fn pgr(quality: f64, weak: f64, strong: f64) -> Option<f64> {
    let gap = strong - weak;
    (gap > 0.0 && gap.is_finite() && quality.is_finite()).then(|| (quality - weak) / gap)
}

/// The curve sorted by share and anchored at `(0, weak)` and `(1, strong)` when it does not reach
/// those shares (every threshold router does, at its extreme thresholds).
fn share_curve(curve: &[SharePoint], weak: f64, strong: f64) -> Vec<SharePoint> {
    let mut c: Vec<SharePoint> =
        curve.iter().copied().filter(|p| p.quality.is_finite() && (0.0..=1.0).contains(&p.strong_share)).collect();
    c.sort_by(|a, b| a.strong_share.total_cmp(&b.strong_share));
    if c.first().is_none_or(|p| p.strong_share > 0.0) {
        c.insert(0, SharePoint::new(0.0, weak));
    }
    if c.last().is_none_or(|p| p.strong_share < 1.0) {
        c.push(SharePoint::new(1.0, strong));
    }
    c
}

/// RouteLLM's **APGR**: the average performance gap recovered over strong-call shares from 0 to 1,
///
/// ```text
/// APGR = ∫₀¹ PGR(s) ds = (∫₀¹ quality(s) ds − weak) / (strong − weak)
/// ```
///
/// with the curve linear between its points (RouteLLM's trapezoid rule over its threshold sweep).
/// Points are sorted by share; points with a share outside `[0, 1]` or a non-finite quality are
/// ignored; `(0, weak)` and `(1, strong)` are added when no point has share 0 (resp. 1). A random
/// router scores 0.5; the oracle ([`oracle_curve`]) 1.285 on MMLU. `None` unless `strong > weak`.
pub fn apgr(curve: &[SharePoint], weak: f64, strong: f64) -> Option<f64> {
    pgr(weak, weak, strong)?;
    let c = share_curve(curve, weak, strong);
    let area: f64 =
        c.windows(2).map(|w| (w[1].strong_share - w[0].strong_share) * (w[0].quality + w[1].quality) / 2.0).sum();
    pgr(area, weak, strong)
}

/// RouteLLM's **CPT(x)** (call-performance threshold): the smallest strong-call share at which the
/// curve recovers a fraction `x` of the gap, i.e. reaches `weak + x · (strong − weak)`; linear
/// between points, on the curve as [`apgr`] completes it. `x = 0.5` for CPT(50%). A random router
/// needs `s = x`.
///
/// This is exact; `baselines.json` lists the oracle's CPT on a grid of 0.001 (rounded up), so
/// `0.0625` there reads `0.063`. `None` if the curve never gets there or unless `strong > weak`.
pub fn cpt(curve: &[SharePoint], weak: f64, strong: f64, x: f64) -> Option<f64> {
    pgr(weak, weak, strong)?;
    if !x.is_finite() {
        return None;
    }
    let target = weak + x * (strong - weak);
    let c = share_curve(curve, weak, strong);
    let mut prev: Option<SharePoint> = None;
    for p in c {
        if p.quality >= target {
            return Some(match prev {
                None => p.strong_share,
                Some(a) => {
                    a.strong_share + (p.strong_share - a.strong_share) * (target - a.quality) / (p.quality - a.quality)
                }
            });
        }
        prev = Some(p);
    }
    None
}

/// The random router's curve: a straight line from `(0, weak)` to `(1, strong)` (APGR 0.5, CPT(x) = x).
pub fn random_curve(weak: f64, strong: f64) -> [SharePoint; 2] {
    [SharePoint::new(0.0, weak), SharePoint::new(1.0, strong)]
}

/// One point per strong-call share: the points sorted by share, and of several points at the same
/// share the best quality (a user who can reach two qualities for the same number of strong calls
/// takes the better). Points with a share outside `[0, 1]` or a non-finite quality are dropped.
///
/// A sweep over a multi-model portfolio often has several points at one share: every
/// configuration that never calls the strong model has share 0, whatever else it spends.
pub fn best_at_each_share(curve: &[SharePoint]) -> Vec<SharePoint> {
    let mut c: Vec<SharePoint> =
        curve.iter().copied().filter(|p| p.quality.is_finite() && (0.0..=1.0).contains(&p.strong_share)).collect();
    c.sort_by(|a, b| a.strong_share.total_cmp(&b.strong_share).then_with(|| b.quality.total_cmp(&a.quality)));
    c.dedup_by(|later, kept| later.strong_share == kept.strong_share);
    c
}

/// The weak model of a multi-model gap, by default: **the cheapest single model other than
/// `strong`** (lowest total cost; the more accurate of equally cheap ones; the first of equals). With
/// two models this is the other one, as in RouteLLM. `None` if there is no other valid point.
pub fn cheapest_other(singles: &[OperatingPoint], strong: usize) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, p) in singles.iter().enumerate() {
        if i == strong || !p.is_valid() {
            continue;
        }
        match best {
            Some(b) if singles[b].cost < p.cost => {}
            Some(b) if singles[b].cost == p.cost && singles[b].quality >= p.quality => {}
            _ => best = Some(i),
        }
    }
    best
}

/// The zero router's curve in RouteLLM's terms: the vertices of [`zero_router`] (the hull of the
/// single models' points) as `(share of calls to strong, quality)`, one point per share as in
/// [`best_at_each_share`].
///
/// A random mixture of single models calls the strong model only as often as it picks it, so a
/// vertex that is the strong model's point has share 1 and every other vertex share 0; a mixture of
/// two vertices lies on the straight line between their images. With the strong model the best
/// single model (the hull's last vertex), the curve is the line from `(0, q)`, where `q` is the
/// quality of the hull vertex before it, to `(1, strong)`; with two models, RouteLLM's random router.
/// Empty if `strong` is not an index of `singles`.
pub fn zero_router_shares(singles: &[OperatingPoint], strong: usize) -> Vec<SharePoint> {
    let Some(s) = singles.get(strong).copied() else { return Vec::new() };
    let mapped: Vec<SharePoint> =
        hull(singles).into_iter().map(|v| SharePoint::new(if v == s { 1.0 } else { 0.0 }, v.quality)).collect();
    best_at_each_share(&mapped)
}

/// The two-model oracle's curve: for each strong-call share `s`, the best quality a router reaches
/// with `s · n` strong calls, sending to the strong model the rows where it gains most
/// (`s[r, strong] − s[r, weak]`, largest first).
///
/// Rows where the strong model is worse come last, so the curve rises to the oracle's quality
/// and then falls to the strong model's at share 1: this is the oracle RouteLLM's APGR of 1.285
/// (MMLU) in `baselines.json` measures. (RouteLLM's `get_optimal_accuracy` plots an upper bound that
/// stays at the oracle's quality up to share 1.) Points are at the ends of groups of equal gain; the
/// curve is linear in between, so a few points suffice for 0/1 scores. `O(n log n)`.
///
/// # Errors
/// [`ErrorKind::InvalidRequest`](switchyard::ErrorKind::InvalidRequest) if `weak` or `strong` is not a model
/// index, or they are equal.
pub fn oracle_curve(outcomes: Outcomes<'_>, weak: usize, strong: usize) -> Result<Vec<SharePoint>> {
    let m = outcomes.models;
    if weak >= m || strong >= m || weak == strong {
        return Err(crate::invalid_input(format!(
            "weak model {weak} and strong model {strong} must be two different indices below {m}"
        )));
    }
    let mut gains: Vec<f64> = outcomes.rows_iter().map(|(s, _)| s[strong] - s[weak]).collect();
    gains.sort_by(|a, b| b.total_cmp(a));
    let n = gains.len() as f64;
    let weak_total: f64 = outcomes.rows_iter().map(|(s, _)| s[weak]).sum();
    let mut curve = vec![SharePoint::new(0.0, weak_total / n)];
    let (mut i, mut gained) = (0, 0.0);
    while i < gains.len() {
        let g = gains[i];
        let mut j = i;
        while j < gains.len() && gains[j].total_cmp(&g) == Ordering::Equal {
            gained += gains[j];
            j += 1;
        }
        curve.push(SharePoint::new(j as f64 / n, (weak_total + gained) / n));
        i = j;
    }
    Ok(curve)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::ErrorKind;

    fn p(cost: f64, quality: f64) -> OperatingPoint {
        OperatingPoint::new(cost, quality)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hull_keeps_the_upper_non_decreasing_envelope() {
        let pts = [p(4.0, 0.9), p(1.0, 0.5), p(2.0, 0.6), p(3.0, 0.85), p(5.0, 0.9), p(1.0, 0.4), p(6.0, 0.2)];
        // (2, 0.6) is under the segment (1, 0.5)–(3, 0.85); (5, 0.9) is no better than (4, 0.9).
        assert_eq!(hull(&pts), vec![p(1.0, 0.5), p(3.0, 0.85), p(4.0, 0.9)]);
        assert_eq!(hull(&[]), vec![]);
        assert_eq!(hull(&[p(f64::NAN, 1.0), p(-1.0, 1.0)]), vec![]);
        // Collinear middle points are dropped.
        assert_eq!(hull(&[p(0.0, 0.0), p(1.0, 0.5), p(2.0, 1.0)]), vec![p(0.0, 0.0), p(2.0, 1.0)]);
    }

    #[test]
    fn aiq_by_hand() {
        // Hull (1, 0.5)–(3, 0.9), flat to 5: area 2·0.7 + 2·0.9 = 3.2 over x_max 5.
        let pts = [p(1.0, 0.5), p(3.0, 0.9)];
        assert!(close(aiq(&pts, 5.0).unwrap(), 3.2 / 5.0));
        // One point: q · (x_max − c) / x_max.
        assert!(close(aiq(&[p(1.0, 0.8)], 4.0).unwrap(), 0.8 * 3.0 / 4.0));
        // Cut at x_max inside a segment: (1, 0.5)–(3, 0.9) cut at 2 (quality 0.7): 1 · 0.6 / 2.
        assert!(close(aiq(&pts, 2.0).unwrap(), 0.3));
        // Entirely past x_max.
        assert_eq!(aiq(&[p(3.0, 0.9)], 2.0), Some(0.0));
        assert_eq!(aiq(&pts, 0.0), None);
        assert_eq!(aiq(&[], 1.0), None);
    }

    #[test]
    fn cost_at_quality_interpolates_on_the_hull() {
        let pts = [p(1.0, 0.5), p(3.0, 0.9), p(10.0, 1.0)];
        let best = p(10.0, 1.0);
        // 0.7 is halfway from 0.5 to 0.9: cost 2.
        assert!(close(cost_at_quality(&pts, 0.7, best).unwrap(), 0.2));
        // Below the cheapest point: its cost.
        assert!(close(cost_at_quality(&pts, 0.3, best).unwrap(), 0.1));
        assert!(close(cost_at_quality(&pts, 1.0, best).unwrap(), 1.0));
        assert_eq!(cost_at_quality(&pts, 1.01, best), None);
        assert_eq!(cost_at_quality(&pts, 0.5, p(0.0, 1.0)), None);
        assert_eq!(quality_at_cost(&pts, 2.0), Some(0.7));
        assert_eq!(quality_at_cost(&pts, 0.5), None);
        assert_eq!(quality_at_cost(&pts, 20.0), Some(1.0));
    }

    #[test]
    fn apgr_and_cpt_by_hand() {
        let (weak, strong) = (0.6, 0.8);
        let random = random_curve(weak, strong);
        assert!(close(apgr(&random, weak, strong).unwrap(), 0.5));
        assert!(close(cpt(&random, weak, strong, 0.5).unwrap(), 0.5));
        assert!(close(cpt(&random, weak, strong, 0.8).unwrap(), 0.8));
        // Recovers the whole gap with 20% of strong calls, then flat.
        let knee = [SharePoint::new(0.2, strong)];
        // Area: 0.2 · 0.7 + 0.8 · 0.8 = 0.78; APGR (0.78 − 0.6) / 0.2 = 0.9.
        assert!(close(apgr(&knee, weak, strong).unwrap(), 0.9));
        assert!(close(cpt(&knee, weak, strong, 0.5).unwrap(), 0.1));
        assert_eq!(cpt(&knee, weak, strong, 1.5), None);
        assert_eq!(cpt(&knee, weak, strong, 0.0), Some(0.0));
        assert_eq!(apgr(&knee, 0.8, 0.8), None);
        assert_eq!(pgr(0.7, weak, strong).map(|x| (x * 1e9).round()), Some(0.5e9));
    }

    fn outcomes<'a>(scores: &'a [f64], costs: &'a [f64], models: usize) -> Outcomes<'a> {
        Outcomes::new(models, scores, costs).unwrap()
    }

    #[test]
    fn oracle_takes_the_cheapest_best_model() {
        // Models: cheap, mid, dear. Row 0: mid and dear correct; row 1: none; row 2: all, mid cheapest here.
        let scores = [0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let costs = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 0.5, 3.0];
        let o = outcomes(&scores, &costs, 3);
        assert_eq!(oracle_choices(o), vec![1, 0, 1]);
        let op = oracle_point(o);
        assert!(close(op.cost, 3.5) && close(op.quality, 2.0 / 3.0));
        assert_eq!(operating_point(o, &[1, 0, 1]).unwrap(), op);
        assert_eq!(call_shares(&[1, 0, 1], 3).unwrap(), vec![1.0 / 3.0, 2.0 / 3.0, 0.0]);
        let singles = single_model_points(o);
        assert_eq!(singles, vec![p(3.0, 1.0 / 3.0), p(4.5, 2.0 / 3.0), p(9.0, 2.0 / 3.0)]);
        assert_eq!(best_single(&singles), Some(1));
        assert_eq!(max_cost(&singles), Some(9.0));
        assert_eq!(zero_router(o), vec![p(3.0, 1.0 / 3.0), p(4.5, 2.0 / 3.0)]);
    }

    #[test]
    fn mixtures() {
        let scores = [0.0, 1.0, 1.0, 1.0];
        let costs = [1.0, 3.0, 1.0, 3.0];
        let o = outcomes(&scores, &costs, 2);
        let mixed = operating_point_mixed(o, &[0.5, 0.5, 1.0, 0.0]).unwrap();
        assert!(close(mixed.cost, 3.0) && close(mixed.quality, 0.75));
        assert_eq!(mixture_shares(&[0.5, 0.5, 1.0, 0.0], 2).unwrap(), vec![0.75, 0.25]);
        assert_eq!(operating_point_mixed(o, &[0.5, 0.6, 1.0, 0.0]).unwrap_err().kind(), ErrorKind::InvalidRequest);
        assert_eq!(operating_point(o, &[0, 2]).unwrap_err().kind(), ErrorKind::InvalidRequest);
        assert_eq!(operating_point(o, &[0]).unwrap_err().kind(), ErrorKind::InvalidRequest);
        assert!(Outcomes::new(2, &[0.0, f64::NAN], &[1.0, 1.0]).is_err());
        assert!(Outcomes::new(2, &[0.0, 1.0], &[1.0, -1.0]).is_err());
        assert!(Outcomes::new(2, &[0.0, 1.0, 1.0], &[1.0, 1.0, 1.0]).is_err());
        assert!(Outcomes::new(0, &[], &[]).is_err());
    }

    #[test]
    fn multi_model_shares_by_hand() {
        // Three models: cheap (1, 0.5), mid (2, 0.7), strong (10, 0.9); a dominated one (3, 0.6).
        let singles = [p(1.0, 0.5), p(2.0, 0.7), p(10.0, 0.9), p(3.0, 0.6)];
        assert_eq!(cheapest_other(&singles, 2), Some(0));
        assert_eq!(cheapest_other(&singles, 0), Some(1));
        assert_eq!(cheapest_other(&[p(1.0, 0.5), p(1.0, 0.6), p(5.0, 0.9)], 2), Some(1));
        assert_eq!(cheapest_other(&[p(1.0, 0.5)], 0), None);
        // Hull: cheap, mid, strong. Cheap and mid both have share 0; mid is the better of them.
        let zero = zero_router_shares(&singles, 2);
        assert_eq!(zero, vec![SharePoint::new(0.0, 0.7), SharePoint::new(1.0, 0.9)]);
        // Weak = cheap (0.5), strong 0.9: area (0.7 + 0.9) / 2 = 0.8, APGR (0.8 − 0.5) / 0.4 = 0.75.
        assert!(close(apgr(&zero, 0.5, 0.9).unwrap(), 0.75));
        // PGR 0.5 is quality 0.7: already at share 0. PGR 0.8 is 0.82: (0.82 − 0.7) / 0.2 = 0.6.
        assert_eq!(cpt(&zero, 0.5, 0.9, 0.5), Some(0.0));
        assert!(close(cpt(&zero, 0.5, 0.9, 0.8).unwrap(), 0.6));
        assert!(zero_router_shares(&singles, 7).is_empty());
        // Several points per share: the best counts; out-of-range shares and NaN go.
        let raw = [
            SharePoint::new(0.5, 0.6),
            SharePoint::new(0.0, 0.55),
            SharePoint::new(0.5, 0.8),
            SharePoint::new(0.0, 0.5),
            SharePoint::new(1.2, 1.0),
            SharePoint::new(0.2, f64::NAN),
        ];
        assert_eq!(best_at_each_share(&raw), vec![SharePoint::new(0.0, 0.55), SharePoint::new(0.5, 0.8)]);
    }

    #[test]
    fn oracle_curve_rises_then_falls() {
        // Model 0 weak, 1 strong. Gains: +1, +1, 0, −1.
        let scores = [0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0];
        let costs = [1.0; 8];
        let o = outcomes(&scores, &costs, 2);
        let c = oracle_curve(o, 0, 1).unwrap();
        assert_eq!(
            c,
            vec![
                SharePoint::new(0.0, 0.5),
                SharePoint::new(0.5, 1.0),
                SharePoint::new(0.75, 1.0),
                SharePoint::new(1.0, 0.75)
            ]
        );
        // Area 0.5·0.75 + 0.25·1 + 0.25·0.875 = 0.84375; APGR (0.84375 − 0.5) / 0.25.
        assert!(close(apgr(&c, 0.5, 0.75).unwrap(), (0.84375 - 0.5) / 0.25));
        assert!(close(cpt(&c, 0.5, 0.75, 1.0).unwrap(), 0.25));
        assert!(oracle_curve(o, 1, 1).is_err());
        assert!(oracle_curve(o, 0, 2).is_err());
        let at = SharePoint::new(0.5, 1.0).operating_point(p(4.0, 0.5), p(8.0, 0.75));
        assert_eq!(at, p(6.0, 1.0));
    }
}
