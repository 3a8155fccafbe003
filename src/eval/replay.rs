//! Replaying a [`Dataset`] through a [`Router`]'s decision, and sweeping a policy's cost–quality
//! knob into a [`Report`].
//!
//! 1. Every row's prompt is routed with [`Router::route`] (pure, no providers: a router built
//!    without providers is route-only). Follow-up turns are not sent; rows are routed on their first
//!    prompt, with no key (so [`uniform`](crate::uniform) comes from the router's seed alone).
//! 2. The chosen model's **actual** score and cost on that row, from the data set, make the run's
//!    [`OperatingPoint`] ([`metrics::operating_point`]). The router's own cost estimates (from the
//!    catalog's prices) only drive the decision; they are never summed.
//! 3. [`sweep`] repeats this at several values of a knob (for [`Utility`](crate::Utility), its `λ`;
//!    see [`log_grid`]), and [`Report::new`] compares the points with the single models, the zero
//!    router and the oracle on the same rows, with the functions of [`metrics`].
//!
//! ```
//! use switchyard::eval::data::{Dataset, Row};
//! use switchyard::eval::replay::{log_grid, sweep, Report};
//! use switchyard::{Catalog, ModelProfile, Pricing, Router, Utility};
//!
//! # fn run() -> switchyard::Result<()> {
//! let mut b = Dataset::builder(["cheap", "dear"]);
//! b.push(Row::new("2+2?"), &[1.0, 1.0], Some(&[0.001, 0.01]))?;
//! b.push(Row::new("Prove it"), &[0.0, 1.0], Some(&[0.001, 0.01]))?;
//! let data = b.build()?;
//! let catalog = Catalog::new([
//!     ModelProfile::new("cheap", "p").with_pricing(Pricing::per_mtok(0.1, 0.1)),
//!     ModelProfile::new("dear", "p").with_pricing(Pricing::per_mtok(10.0, 10.0)),
//! ])?;
//! let sweep = sweep(&data, &log_grid(1e-2, 1e2, 9), |lambda| {
//!     Router::builder().catalog(catalog.clone()).policy(Utility::new().cost_weight(lambda)).build()
//! })?;
//! let report = Report::new(&data, &sweep)?;
//! assert_eq!(report.points.len(), 9);
//! # Ok(()) }
//! # run().unwrap();
//! ```

use serde::Serialize;

use super::data::Dataset;
use super::metrics::{self, OperatingPoint, Outcomes};
use crate::error::{Error, Result};
use crate::request::{ContentPart, Message, Request};
use crate::router::Router;

/// One replay of a data set through a router: where each row went, and what that cost and scored.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Run {
    /// The knob value the router was built with (`NaN` for a single [`replay`]).
    pub knob: f64,
    /// Total actual cost and mean score of the chosen models.
    pub point: OperatingPoint,
    /// Each data set model's share of calls, in the order of [`Dataset::models`].
    pub shares: Vec<f64>,
    /// The data set model index chosen for each row.
    #[serde(skip)]
    pub choices: Vec<usize>,
}

/// Routes rows through one router, reusing one request and one map between calls.
struct Replayer<'a> {
    data: &'a Dataset,
    outcomes: Outcomes<'a>,
    request: Request,
    /// Catalog index → data set model index.
    map: Vec<usize>,
}

impl<'a> Replayer<'a> {
    fn new(data: &'a Dataset) -> Result<Self> {
        let outcomes = data.outcomes()?;
        let longest = data.rows().iter().map(|r| r.prompt().len()).max().unwrap_or(0);
        let request = Request::from_messages(vec![Message::user(String::with_capacity(longest))]);
        Ok(Self { data, outcomes, request, map: Vec::new() })
    }

    fn run(&mut self, router: &Router, knob: f64) -> Result<Run> {
        self.map.clear();
        for m in router.catalog().models() {
            let idx = self.data.model_index(m.id.as_str()).ok_or_else(|| {
                Error::config(format!("catalog model `{}` is not in data set `{}`", m.id, self.data.name()))
            })?;
            self.map.push(idx);
        }
        let mut choices = Vec::with_capacity(self.data.len());
        for (r, row) in self.data.rows().iter().enumerate() {
            if let Some(ContentPart::Text { text }) =
                self.request.messages.first_mut().and_then(|m| m.content.first_mut())
            {
                text.clear();
                text.push_str(row.prompt());
            }
            let decision = router.route(&self.request).map_err(|e| {
                Error::new(e.kind(), format!("row {r} (`{}`) of `{}`: {e}", row.id(), self.data.name()))
            })?;
            choices.push(self.map[decision.model_index()]);
        }
        let point = metrics::operating_point(self.outcomes, &choices)?;
        let shares = metrics::call_shares(&choices, self.outcomes.models())?;
        Ok(Run { knob, point, shares, choices })
    }
}

/// Routes every row of `data` with `router` and measures the run with the data set's actual costs
/// and scores (see the [module docs](self)).
///
/// # Errors
/// [`ErrorKind::Config`](crate::ErrorKind::Config) if the data set has no costs or the router's catalog
/// has a model the data set lacks (the data set may have more); the router's error, with the row, if
/// routing a row fails.
pub fn replay(router: &Router, data: &Dataset) -> Result<Run> {
    Replayer::new(data)?.run(router, f64::NAN)
}

/// Builds a router at each knob value with `build` and replays `data` through it, in order.
///
/// For [`Utility`](crate::Utility) the knob is `λ`, the weight of cost relative to the dearest
/// candidate: `|λ| Router::builder()...policy(Utility::new().cost_weight(λ)).build()` on a
/// [`log_grid`] from `1e-3` (almost always the most likely model to succeed) to `1e3` (almost always
/// the cheapest) covers the whole curve. One request buffer is reused for every row of every point.
///
/// # Errors
/// [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) if `knobs` is empty; `build`'s
/// error; as [`replay`].
pub fn sweep<F>(data: &Dataset, knobs: &[f64], build: F) -> Result<Vec<Run>>
where
    F: Fn(f64) -> Result<Router>,
{
    if knobs.is_empty() {
        return Err(Error::invalid_request("a sweep needs at least one knob value"));
    }
    let mut replayer = Replayer::new(data)?;
    knobs.iter().map(|&k| replayer.run(&build(k)?, k)).collect()
}

/// `n` values from `lo` to `hi`, evenly spaced on a log scale (both ends included; `[lo]` if `n` is 1,
/// empty if `n` is 0). Both ends must be finite and `> 0`, or the result is empty.
pub fn log_grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > 0.0) {
        return Vec::new();
    }
    if n == 1 {
        return vec![lo];
    }
    let (a, b) = (lo.ln(), hi.ln());
    (0..n).map(|i| (a + (b - a) * i as f64 / (n - 1) as f64).exp()).collect()
}

/// A set of operating points summarised: AIQ and the cost at fractions of the best single model's
/// quality.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// [`metrics::aiq`] of the points' hull, with the report's `x_max`; `None` if undefined.
    pub aiq: Option<f64>,
    /// [`metrics::cost_at_quality`] at each of [`Report::QUALITY_TARGETS`]: the cost, as a fraction of
    /// the best single model's, to reach that fraction of its quality; `None` if never reached.
    pub cost_at_quality: Vec<CostAt>,
}

/// The cost of reaching a fraction of the best single model's quality.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CostAt {
    /// The fraction of the best single model's quality (`0.95` for 95%).
    pub quality_fraction: f64,
    /// The cost as a fraction of the best single model's; `None` if never reached.
    pub cost_fraction: Option<f64>,
}

impl Summary {
    fn of(points: &[OperatingPoint], x_max: f64, best: OperatingPoint) -> Self {
        Self {
            aiq: metrics::aiq(points, x_max),
            cost_at_quality: Report::QUALITY_TARGETS
                .iter()
                .map(|&q| CostAt { quality_fraction: q, cost_fraction: metrics::cost_at_quality(points, q, best) })
                .collect(),
        }
    }

    /// The cost fraction at quality fraction `q`, if `q` is one of the targets and was reached.
    pub fn cost_at(&self, q: f64) -> Option<f64> {
        self.cost_at_quality.iter().find(|c| (c.quality_fraction - q).abs() < 1e-12).and_then(|c| c.cost_fraction)
    }
}

/// One single model's run: every row sent to it.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Single {
    /// The model.
    pub model: String,
    /// Its total cost and mean score.
    pub point: OperatingPoint,
}

/// A sweep compared with the single models, the zero router and the oracle on the same rows.
/// Serializes to the JSON that `examples/evaluate.rs --json` writes.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The data set's name.
    pub data: String,
    /// Rows replayed.
    pub rows: usize,
    /// The data set's models; [`Run::shares`] follow this order.
    pub models: Vec<String>,
    /// The most expensive single model's total cost: AIQ's `x_max`.
    pub x_max: f64,
    /// The most accurate single model (the cheaper of equals).
    pub best_single: Single,
    /// Every single model.
    pub singles: Vec<Single>,
    /// The router's points, summarised.
    pub router: Summary,
    /// The zero router (the hull of the single models), summarised.
    pub zero_router: Summary,
    /// The oracle's point: per row, the cheapest model with the row's best score.
    pub oracle: OperatingPoint,
    /// The oracle's cost as a fraction of the best single model's.
    pub oracle_cost_fraction: f64,
    /// The router's points, one per knob value, in sweep order.
    pub points: Vec<Run>,
}

impl Report {
    /// The fractions of the best single model's quality at which costs are reported.
    pub const QUALITY_TARGETS: [f64; 3] = [0.90, 0.95, 0.99];

    /// Compares `runs` (from [`sweep`] or [`replay`] on `data`) with the references on `data`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) if the data set has no costs;
    /// [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) if `runs` is empty or a run has
    /// not one share per model of `data`.
    pub fn new(data: &Dataset, runs: &[Run]) -> Result<Self> {
        let outcomes = data.outcomes()?;
        if runs.is_empty() {
            return Err(Error::invalid_request("a report needs at least one run"));
        }
        if runs.iter().any(|r| r.shares.len() != outcomes.models()) {
            return Err(Error::invalid_request(format!(
                "every run needs one share per model of `{}` ({})",
                data.name(),
                outcomes.models()
            )));
        }
        let models: Vec<String> = data.models().iter().map(|m| m.as_str().to_owned()).collect();
        let singles_pts = metrics::single_model_points(outcomes);
        let best = metrics::best_single(&singles_pts).unwrap_or(0);
        let best_pt = singles_pts[best];
        let x_max = metrics::max_cost(&singles_pts).unwrap_or(0.0);
        let points: Vec<OperatingPoint> = runs.iter().map(|r| r.point).collect();
        let oracle = metrics::oracle_point(outcomes);
        Ok(Self {
            data: data.name().to_owned(),
            rows: outcomes.rows(),
            x_max,
            best_single: Single { model: models[best].clone(), point: best_pt },
            singles: models.iter().zip(&singles_pts).map(|(m, p)| Single { model: m.clone(), point: *p }).collect(),
            router: Summary::of(&points, x_max, best_pt),
            zero_router: Summary::of(&metrics::zero_router(outcomes), x_max, best_pt),
            oracle,
            oracle_cost_fraction: if best_pt.cost > 0.0 { oracle.cost / best_pt.cost } else { f64::NAN },
            points: runs.to_vec(),
            models,
        })
    }
}
