//! Replaying a [`Dataset`] through a [`Router`]'s decision, and sweeping a policy's cost–quality
//! knob into a [`Report`].
//!
//! 1. Every row's prompt is routed with [`Router::route`] (pure, no providers: a router built
//!    without providers is route-only). Follow-up turns are not sent; rows are routed on their first
//!    prompt, with no key (so [`uniform`](switchyard::uniform) comes from the router's seed alone).
//! 2. The chosen model's **actual** score and cost on that row, from the data set, make the run's
//!    [`OperatingPoint`] ([`metrics::operating_point`]). The router's own cost estimates (from the
//!    catalog's prices) only drive the decision; they are never summed.
//! 3. [`sweep`] repeats this at several values of a knob (for [`Utility`](switchyard::Utility), its answer value;
//!    see [`log_grid`]), and [`Report::new`] compares the points with the single models, the zero
//!    router and the oracle on the same rows, with the functions of [`metrics`].
//!
//! ```
//! use switchyard_eval::data::{Dataset, Row};
//! use switchyard_eval::replay::{log_grid, sweep, Report};
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
//! let sweep = sweep(&data, &log_grid(1e-7, 1e3, 11), |value| {
//!     Router::builder().catalog(catalog.clone()).policy(Utility::new().answer_value(value)).build()
//! })?;
//! let report = Report::new(&data, &sweep)?;
//! assert_eq!(report.points.len(), 11);
//! # Ok(()) }
//! # run().unwrap();
//! ```

use serde::Serialize;

use super::data::Dataset;
use super::metrics::{self, OperatingPoint, Outcomes, SharePoint};
use switchyard::Router;
use switchyard::{ContentPart, Message, Request};
use switchyard::{Error, Result};

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

impl Run {
    /// A run from the data set model index chosen for each row of `data` (for routers replayed
    /// outside [`replay`], or choices pooled across splits).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if `data` has no costs, or `choices` has the
    /// wrong length or names a model `data` lacks.
    pub fn from_choices(data: &Dataset, knob: f64, choices: Vec<usize>) -> Result<Self> {
        let outcomes = data.outcomes()?;
        let point = metrics::operating_point(outcomes, &choices)?;
        let shares = metrics::call_shares(&choices, outcomes.models())?;
        Ok(Self { knob, point, shares, choices })
    }
}

/// Routes rows through one router, reusing one request and one map between calls.
pub(super) struct Replayer<'a> {
    data: &'a Dataset,
    outcomes: Outcomes<'a>,
    request: Request,
    /// Catalog index → data set model index.
    map: Vec<usize>,
}

impl<'a> Replayer<'a> {
    pub(super) fn new(data: &'a Dataset) -> Result<Self> {
        let outcomes = data.outcomes()?;
        let longest = data.rows().iter().map(|r| r.prompt().len()).max().unwrap_or(0);
        let request = Request::from_messages(vec![Message::user(String::with_capacity(longest))]);
        Ok(Self { data, outcomes, request, map: Vec::new() })
    }

    pub(super) fn run(&mut self, router: &Router, knob: f64) -> Result<Run> {
        self.map.clear();
        for m in router.catalog().models() {
            let idx = self.data.model_index(m.id.as_str()).ok_or_else(|| {
                crate::config_error(format!("catalog model `{}` is not in data set `{}`", m.id, self.data.name()))
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
/// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if the data set has no costs or the router's catalog
/// has a model the data set lacks (the data set may have more); the router's error, with the row, if
/// routing a row fails.
pub fn replay(router: &Router, data: &Dataset) -> Result<Run> {
    Replayer::new(data)?.run(router, f64::NAN)
}

/// Builds a router at each knob value with `build` and replays `data` through it, in order.
///
/// For [`Utility`](switchyard::Utility) the knob is `V`, the value of an acceptable answer in USD:
/// `|v| Router::builder()...policy(Utility::new().answer_value(v)).build()` on a [`log_grid`] from
/// `1e-7` (almost always the cheapest model) to `1e3` (almost always the most likely to succeed)
/// covers the whole curve for per-request costs between about a micro-dollar and a dollar;
/// [`value_grid`] scales the range to a data set's own costs. One request buffer is reused for every row of every point.
///
/// # Errors
/// [`ErrorKind::InvalidRequest`](switchyard::ErrorKind::InvalidRequest) if `knobs` is empty; `build`'s
/// error; as [`replay`].
pub fn sweep<F>(data: &Dataset, knobs: &[f64], build: F) -> Result<Vec<Run>>
where
    F: Fn(f64) -> Result<Router>,
{
    if knobs.is_empty() {
        return Err(crate::invalid_input("a sweep needs at least one knob value"));
    }
    let mut replayer = Replayer::new(data)?;
    knobs.iter().map(|&k| replayer.run(&build(k)?, k)).collect()
}

/// The answer values, as multiples of the dearest model's mean cost per row, that
/// [`value_range`] spans: ten decades around it. Where an answer is worth `2·10⁻⁵` of that cost,
/// `Utility` takes the cheapest model unless the next one costs almost the same; where it is worth
/// `2·10⁵` of it, it takes the model it expects most likely to succeed unless that model's edge over a
/// cheaper one is below about `5·10⁻⁶` (for the dearest model against a much cheaper one).
pub const VALUE_SPAN: (f64, f64) = (2e-5, 2e5);

/// The range of [`Utility`](switchyard::Utility)'s answer value `V` that covers the whole curve on
/// `data`: [`VALUE_SPAN`] times the largest mean cost per row of any model (in the data set's cost
/// unit, USD or a price per call). A fixed range in USD does not: RouteLLM's data sets price a GPT-4
/// call at 24.7, so at `V = 10³` a router still sends a prompt to the cheaper model when it expects
/// GPT-4 to be less than 2.5 points likelier to succeed, and the curve stops short of the strongest
/// model. On RouterBench (GPT-4 about $0.005 per row) the range is about `1e-7..1e3` USD.
///
/// # Errors
/// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if `data` has no costs, no rows, or no
/// model with a positive mean cost.
pub fn value_range(data: &Dataset) -> Result<(f64, f64)> {
    let rows = data.len() as f64;
    let dearest = metrics::single_model_points(data.outcomes()?).iter().map(|p| p.cost / rows).fold(0.0_f64, f64::max);
    if !(dearest.is_finite() && dearest > 0.0) {
        return Err(crate::config_error(format!(
            "data set `{}` has no rows, or no model with a positive mean cost, to scale a knob by",
            data.name()
        )));
    }
    Ok((VALUE_SPAN.0 * dearest, VALUE_SPAN.1 * dearest))
}

/// `n` answer values on a log grid over [`value_range`]`(data)`.
///
/// # Errors
/// As [`value_range`].
pub fn value_grid(data: &Dataset, n: usize) -> Result<Vec<f64>> {
    let (lo, hi) = value_range(data)?;
    Ok(log_grid(lo, hi, n))
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
/// quality, and RouteLLM's APGR and CPT over the share of calls to the strong model (see
/// [`Report`] for the strong and weak models).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// [`metrics::aiq`] of the points' hull, with the report's `x_max`; `None` if undefined.
    pub aiq: Option<f64>,
    /// [`metrics::cost_at_quality`] at each of [`Report::QUALITY_TARGETS`]: the cost, as a fraction of
    /// the best single model's, to reach that fraction of its quality; `None` if never reached.
    pub cost_at_quality: Vec<CostAt>,
    /// [`metrics::apgr`] of the curve over the strong-call share; `None` without a weak model or
    /// unless the strong model is more accurate than the weak one.
    pub apgr: Option<f64>,
    /// [`metrics::cpt`] at each of [`Report::CPT_TARGETS`].
    pub cpt: Vec<CptAt>,
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

/// The share of calls to the strong model needed to recover a fraction of the gap between the weak
/// and the strong model (RouteLLM's CPT).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CptAt {
    /// The fraction of the gap recovered (`0.5` for CPT(50%)).
    pub gap_fraction: f64,
    /// The smallest share of calls to the strong model that recovers it; `None` if never reached.
    pub strong_share: Option<f64>,
}

/// APGR and CPT at [`Report::CPT_TARGETS`] of a curve; all `None` without a gap.
fn gap_metrics(curve: &[SharePoint], gap: Option<&GapModels>) -> (Option<f64>, Vec<CptAt>) {
    let (weak, strong) = gap.map_or((f64::NAN, f64::NAN), |g| (g.weak.point.quality, g.strong.point.quality));
    let apgr = metrics::apgr(curve, weak, strong);
    let cpt = Report::CPT_TARGETS
        .iter()
        .map(|&x| CptAt { gap_fraction: x, strong_share: metrics::cpt(curve, weak, strong, x) })
        .collect();
    (apgr, cpt)
}

fn find_at<T>(items: &[T], x: f64, key: impl Fn(&T) -> f64, value: impl Fn(&T) -> Option<f64>) -> Option<f64> {
    items.iter().find(|c| (key(c) - x).abs() < 1e-12).and_then(value)
}

impl Summary {
    fn of(
        points: &[OperatingPoint],
        curve: &[SharePoint],
        x_max: f64,
        best: OperatingPoint,
        gap: Option<&GapModels>,
    ) -> Self {
        let (apgr, cpt) = gap_metrics(curve, gap);
        Self {
            aiq: metrics::aiq(points, x_max),
            cost_at_quality: Report::QUALITY_TARGETS
                .iter()
                .map(|&q| CostAt { quality_fraction: q, cost_fraction: metrics::cost_at_quality(points, q, best) })
                .collect(),
            apgr,
            cpt,
        }
    }

    /// The cost fraction at quality fraction `q`, if `q` is one of the targets and was reached.
    pub fn cost_at(&self, q: f64) -> Option<f64> {
        find_at(&self.cost_at_quality, q, |c| c.quality_fraction, |c| c.cost_fraction)
    }

    /// CPT(`x`): the strong-call share that recovers a fraction `x` of the gap, if `x` is one of
    /// [`Report::CPT_TARGETS`] and the curve gets there.
    pub fn cpt_at(&self, x: f64) -> Option<f64> {
        find_at(&self.cpt, x, |c| c.gap_fraction, |c| c.strong_share)
    }
}

/// The two models that APGR and CPT measure the gap between.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GapModels {
    /// The strong model: the best single model.
    pub strong: Single,
    /// The weak model: [`ReportOptions::weak_model`], or by default the cheapest other single model
    /// ([`metrics::cheapest_other`]; with two models, the other one).
    pub weak: Single,
    /// The index of the strong model in [`Report::models`].
    pub strong_index: usize,
    /// The index of the weak model in [`Report::models`].
    pub weak_index: usize,
}

/// RouteLLM's two-model oracle between the weak and the strong model ([`metrics::oracle_curve`]):
/// the best any router that only chooses between those two can do at each strong-call share.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OracleCurve {
    /// The curve: `(share of calls to strong, quality)`.
    pub curve: Vec<SharePoint>,
    /// Its APGR.
    pub apgr: Option<f64>,
    /// Its CPT at [`Report::CPT_TARGETS`].
    pub cpt: Vec<CptAt>,
}

/// How [`Report::with_options`] picks the weak model of APGR and CPT.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportOptions {
    /// The weak model's id; `None` for the cheapest single model other than the strong one.
    pub weak_model: Option<String>,
}

impl ReportOptions {
    /// The defaults: the weak model is the cheapest other single model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Measures the gap from this model (an id of the data set) to the strong one.
    #[must_use]
    pub fn weak_model(mut self, id: impl Into<String>) -> Self {
        self.weak_model = Some(id.into());
        self
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
///
/// # APGR and CPT with more than two models
///
/// RouteLLM defines the performance gap recovered for two models, a weak and a strong one, over the
/// share `s` of calls sent to the strong model. Here:
///
/// 1. **strong** is the best single model ([`best_single`](Self::best_single)); **weak** is
///    [`ReportOptions::weak_model`] or, by default, the cheapest single model other than the strong
///    one (with two models, the other one). Both are in [`gap_models`](Self::gap_models).
/// 2. The **router's curve** is its operating points as `(s, quality)`, `s` being the run's share of
///    calls to the strong model; at a share reached by several points the best quality counts
///    ([`metrics::best_at_each_share`]); linear in between; `(0, weak)` and `(1, strong)` are added
///    if no point has share 0 (resp. 1).
/// 3. The **zero router's curve** is its hull (random mixtures of single models) in the same terms
///    ([`metrics::zero_router_shares`]): from the hull vertex before the strong model at share 0 to
///    the strong model at share 1. With two models it is RouteLLM's random router (APGR 0.5).
/// 4. `APGR = (∫₀¹ quality(s) ds − weak) / (strong − weak)` and CPT(x) the smallest `s` with
///    `quality(s) ≥ weak + x · (strong − weak)` ([`metrics::apgr`], [`metrics::cpt`]).
///
/// With more than two models the share of strong calls is not the spend: a configuration that sends
/// everything to the second-best model has share 0 and may cost nearly as much as the strong one.
/// APGR and CPT then measure how few strong calls a router needs for its quality, and can exceed
/// the zero router's while AIQ and cost at q% (which count every call's cost) say otherwise; read
/// them together.
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
    /// The strong and weak models of APGR and CPT; `None` with a single model.
    pub gap_models: Option<GapModels>,
    /// The router's points, summarised.
    pub router: Summary,
    /// The zero router (the hull of the single models), summarised.
    pub zero_router: Summary,
    /// The oracle's point: per row, the cheapest model with the row's best score.
    pub oracle: OperatingPoint,
    /// The oracle's cost as a fraction of the best single model's.
    pub oracle_cost_fraction: f64,
    /// The two-model oracle between the weak and the strong model; `None` with a single model.
    pub oracle_curve: Option<OracleCurve>,
    /// The router's points, one per knob value, in sweep order.
    pub points: Vec<Run>,
}

impl Report {
    /// The fractions of the best single model's quality at which costs are reported.
    pub const QUALITY_TARGETS: [f64; 3] = [0.90, 0.95, 0.99];

    /// The fractions of the gap at which CPT is reported: CPT(50%) and CPT(80%).
    pub const CPT_TARGETS: [f64; 2] = [0.5, 0.8];

    /// Compares `runs` (from [`sweep`] or [`replay`] on `data`) with the references on `data`, with
    /// the default [`ReportOptions`].
    ///
    /// # Errors
    /// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if the data set has no costs;
    /// [`ErrorKind::InvalidRequest`](switchyard::ErrorKind::InvalidRequest) if `runs` is empty or a run has
    /// not one share per model of `data`.
    pub fn new(data: &Dataset, runs: &[Run]) -> Result<Self> {
        Self::with_options(data, runs, &ReportOptions::default())
    }

    /// As [`new`](Self::new), with the weak model of APGR and CPT chosen by `options`.
    ///
    /// # Errors
    /// As [`new`](Self::new); [`ErrorKind::Config`](switchyard::ErrorKind::Config) if the weak model is not
    /// a model of `data` or is the strong (best single) model.
    pub fn with_options(data: &Dataset, runs: &[Run], options: &ReportOptions) -> Result<Self> {
        let outcomes = data.outcomes()?;
        if runs.is_empty() {
            return Err(crate::invalid_input("a report needs at least one run"));
        }
        if runs.iter().any(|r| r.shares.len() != outcomes.models()) {
            return Err(crate::invalid_input(format!(
                "every run needs one share per model of `{}` ({})",
                data.name(),
                outcomes.models()
            )));
        }
        let models: Vec<String> = data.models().iter().map(|m| m.as_str().to_owned()).collect();
        let singles_pts = metrics::single_model_points(outcomes);
        let best = metrics::best_single(&singles_pts).unwrap_or(0);
        let best_pt = singles_pts[best];
        let single = |i: usize| Single { model: models[i].clone(), point: singles_pts[i] };
        let weak = match &options.weak_model {
            Some(id) => {
                let i = data.model_index(id).ok_or_else(|| {
                    crate::config_error(format!("weak model `{id}` is not a model of `{}`", data.name()))
                })?;
                if i == best {
                    return Err(crate::config_error(format!(
                        "weak model `{id}` is the strong model (the best single model of `{}`)",
                        data.name()
                    )));
                }
                Some(i)
            }
            None => metrics::cheapest_other(&singles_pts, best),
        };
        let gap = weak.map(|w| GapModels { strong: single(best), weak: single(w), strong_index: best, weak_index: w });
        let x_max = metrics::max_cost(&singles_pts).unwrap_or(0.0);
        let points: Vec<OperatingPoint> = runs.iter().map(|r| r.point).collect();
        let curve = share_curve(runs, best);
        let zero_curve = metrics::zero_router_shares(&singles_pts, best);
        let oracle_curve = match &gap {
            Some(g) => {
                let curve = metrics::oracle_curve(outcomes, g.weak_index, g.strong_index)?;
                let (apgr, cpt) = gap_metrics(&curve, Some(g));
                Some(OracleCurve { curve, apgr, cpt })
            }
            None => None,
        };
        let oracle = metrics::oracle_point(outcomes);
        Ok(Self {
            data: data.name().to_owned(),
            rows: outcomes.rows(),
            x_max,
            best_single: single(best),
            singles: (0..models.len()).map(single).collect(),
            router: Summary::of(&points, &curve, x_max, best_pt, gap.as_ref()),
            zero_router: Summary::of(&metrics::zero_router(outcomes), &zero_curve, x_max, best_pt, gap.as_ref()),
            gap_models: gap,
            oracle,
            oracle_cost_fraction: if best_pt.cost > 0.0 { oracle.cost / best_pt.cost } else { f64::NAN },
            oracle_curve,
            points: runs.to_vec(),
            models,
        })
    }

    /// The router's curve over the share of calls to the strong model, as APGR and CPT read it: one
    /// point per share, the best quality there ([`metrics::best_at_each_share`]). Empty with a single
    /// model.
    pub fn router_share_curve(&self) -> Vec<SharePoint> {
        self.gap_models.as_ref().map_or_else(Vec::new, |g| share_curve(&self.points, g.strong_index))
    }
}

fn share_curve(runs: &[Run], strong: usize) -> Vec<SharePoint> {
    let raw: Vec<SharePoint> =
        runs.iter().filter_map(|r| r.shares.get(strong).map(|&s| SharePoint::new(s, r.point.quality))).collect();
    metrics::best_at_each_share(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Row;
    use switchyard::ErrorKind;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    /// A data set with the given models, scores and per-row costs (row-major), and the runs that
    /// send row `r` to `choices[r]`.
    fn fixture(models: &[&str], scores: &[&[f64]], costs: &[f64], choices: &[&[usize]]) -> (Dataset, Vec<Run>) {
        let mut b = Dataset::builder(models.iter().copied()).name("hand");
        for (r, s) in scores.iter().enumerate() {
            b.push(Row::new(format!("row {r}")), s, Some(costs)).unwrap();
        }
        let data = b.build().unwrap();
        let outcomes = data.outcomes().unwrap();
        let runs = choices
            .iter()
            .enumerate()
            .map(|(k, c)| Run {
                knob: k as f64,
                point: metrics::operating_point(outcomes, c).unwrap(),
                shares: metrics::call_shares(c, models.len()).unwrap(),
                choices: c.to_vec(),
            })
            .collect();
        (data, runs)
    }

    #[test]
    fn two_models_apgr_and_cpt_by_hand() {
        // Weak w: 1, 0, 0, 1 (0.5), cost 1 a row; strong s: 1, 1, 1, 0 (0.75), cost 10 a row.
        let scores: [&[f64]; 4] = [&[1.0, 1.0], &[0.0, 1.0], &[0.0, 1.0], &[1.0, 0.0]];
        let (data, runs) =
            fixture(&["w", "s"], &scores, &[1.0, 10.0], &[&[0, 0, 0, 0], &[0, 1, 0, 0], &[0, 1, 1, 0], &[1, 1, 1, 1]]);
        let r = Report::new(&data, &runs).unwrap();
        let g = r.gap_models.as_ref().unwrap();
        assert_eq!((g.strong.model.as_str(), g.weak.model.as_str()), ("s", "w"));
        // Curve (0, .5), (.25, .75), (.5, 1), (1, .75): area .15625 + .21875 + .4375 = .8125.
        assert!(close(r.router.apgr, (0.8125 - 0.5) / 0.25));
        // 50% of the gap is .625, 80% is .7: on the first segment, slope 1.
        assert!(close(r.router.cpt_at(0.5), 0.125));
        assert!(close(r.router.cpt_at(0.8), 0.2));
        assert_eq!(r.router.cpt_at(0.3), None);
        // Two models: the zero router is the random router.
        assert!(close(r.zero_router.apgr, 0.5));
        assert!(close(r.zero_router.cpt_at(0.5), 0.5));
        assert!(close(r.zero_router.cpt_at(0.8), 0.8));
        // Oracle gains 1, 1, 0, −1: (0, .5), (.5, 1), (.75, 1), (1, .75); area .84375.
        let o = r.oracle_curve.as_ref().unwrap();
        assert!(close(o.apgr, (0.84375 - 0.5) / 0.25));
        assert!(close(o.cpt.first().and_then(|c| c.strong_share), 0.125));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["gap_models"]["weak"]["model"], "w");
        assert_eq!(json["router"]["cpt"][1]["gap_fraction"], 0.8);
        assert!(json["router"]["apgr"].as_f64().is_some());
        assert_eq!(json["oracle_curve"]["curve"].as_array().map(Vec::len), Some(4));
    }

    #[test]
    fn multi_model_apgr_and_cpt_by_hand() {
        // a: .25 at 1 a row; b: .5 at 2; c: .75 at 10 (the strong model).
        let scores: [&[f64]; 4] = [&[1.0, 1.0, 1.0], &[0.0, 1.0, 1.0], &[0.0, 0.0, 1.0], &[0.0, 0.0, 0.0]];
        let choices: [&[usize]; 3] = [&[0, 1, 2, 0], &[1, 1, 1, 1], &[0, 0, 0, 0]];
        let (data, runs) = fixture(&["a", "b", "c"], &scores, &[1.0, 2.0, 10.0], &choices);
        let r = Report::new(&data, &runs).unwrap();
        let g = r.gap_models.as_ref().unwrap();
        assert_eq!((g.strong.model.as_str(), g.weak.model.as_str()), ("c", "a"));
        // Router: share 0 reaches .5 (all to b) and .25 (all to a): the best, .5, counts; then
        // (.25, .75) and the strong model's (1, .75). Area .15625 + .5625 = .71875; gap .25 → .75.
        assert_eq!(r.router_share_curve(), vec![SharePoint::new(0.0, 0.5), SharePoint::new(0.25, 0.75)]);
        assert!(close(r.router.apgr, (0.71875 - 0.25) / 0.5));
        assert!(close(r.router.cpt_at(0.5), 0.0));
        // 80% of the gap is .65: (.65 − .5) / (.75 − .5) · .25.
        assert!(close(r.router.cpt_at(0.8), 0.15));
        // Zero router: hull a, b, c; b is the vertex before c: (0, .5) to (1, .75); area .625.
        assert!(close(r.zero_router.apgr, (0.625 - 0.25) / 0.5));
        assert!(close(r.zero_router.cpt_at(0.8), 0.6));
        // Oracle between a and c: gains 0, 1, 1, 0 → (0, .25), (.5, .75), (1, .75); area .625.
        assert!(close(r.oracle_curve.as_ref().unwrap().apgr, (0.625 - 0.25) / 0.5));

        // The weak model overridden: b. Gap .5 → .75.
        let r = Report::with_options(&data, &runs, &ReportOptions::new().weak_model("b")).unwrap();
        assert_eq!(r.gap_models.as_ref().unwrap().weak.model, "b");
        assert!(close(r.router.apgr, (0.71875 - 0.5) / 0.25));
        assert!(close(r.zero_router.apgr, 0.5));
        for bad in ["nope", "c"] {
            let e = Report::with_options(&data, &runs, &ReportOptions::new().weak_model(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn one_model_has_no_gap() {
        let scores: [&[f64]; 2] = [&[1.0], &[0.0]];
        let (data, runs) = fixture(&["only"], &scores, &[1.0], &[&[0, 0]]);
        let r = Report::new(&data, &runs).unwrap();
        assert!(r.gap_models.is_none() && r.oracle_curve.is_none());
        assert_eq!((r.router.apgr, r.router.cpt_at(0.5)), (None, None));
        assert!(r.router_share_curve().is_empty());
    }
}
