//! Calibration, as RouteLLM's calibrate step: the knob value that meets a target on a calibration
//! set, to store in the router's config.
//!
//! [`calibrate`] takes a data set of calibration rows (never the rows you report), a [`Target`] and
//! the same knob → router closure that [`sweep`](super::replay::sweep) takes, and:
//!
//! 1. replays the rows at every knob of a log grid ([`Search`]: by default 41 values of the answer
//!    value `V` from `1e-7` to `1e3` USD);
//! 2. keeps the grid points that meet the target and picks the best of them: for
//!    [`Target::Quality`] the cheapest (then the more accurate), for [`Target::StrongShare`] and
//!    [`Target::Spend`] the most accurate (then the cheaper);
//! 3. refines by bisection in log space between that point (or the ends of the run of grid points
//!    with the same operating point) and each grid neighbour that misses the target,
//!    [`Search::steps`] times per side, keeping any better point that meets it;
//! 4. returns the best point seen as a [`Calibration`], or an error that names the best the knob
//!    reaches when no point meets the target.
//!
//! **Monotonicity.** Raising [`Utility`](switchyard::Utility)'s answer value `V` never lowers the
//! estimated cost of the model chosen for a request, but the data set's *actual* cost, quality and
//! share of strong calls are only approximately monotone in `V`: a dearer model can be cheaper on a given row, and
//! a cheaper choice can be the correct one. Steps 2 and 3 therefore never assume monotonicity: every
//! evaluated point is checked against the target, the answer is the best checked point, and
//! bisection only narrows a boundary found on the grid. A target met on a narrow island between two
//! grid points that both miss it can be missed; use a finer grid ([`Search::points`]) if that matters.
//!
//! ```
//! use switchyard_eval::calibrate::{Target, calibrate};
//! use switchyard_eval::data::{Dataset, Row};
//! use switchyard::catalog::Ability;
//! use switchyard::classify::DifficultyClassifier;
//! use switchyard::{Catalog, ModelProfile, Pricing, Router, Utility};
//!
//! # fn run() -> switchyard::Result<()> {
//! let mut b = Dataset::builder(["cheap", "dear"]);
//! b.push(Row::new("2+2?"), &[1.0, 1.0], Some(&[0.001, 0.01]))?;
//! b.push(Row::new("Prove it"), &[0.0, 1.0], Some(&[0.001, 0.01]))?;
//! let calibration_rows = b.build()?;
//! let catalog = Catalog::new([
//!     ModelProfile::new("cheap", "p").with_pricing(Pricing::per_mtok(0.1, 0.1)),
//!     ModelProfile::new("dear", "p").with_pricing(Pricing::per_mtok(10.0, 10.0)).with_ability(Ability::new(3.0)),
//! ])?;
//! let target: Target = "quality=0.9".parse()?; // or Target::Quality(0.9)
//! let c = calibrate(&calibration_rows, target, |value| {
//!     Router::builder()
//!         .catalog(catalog.clone())
//!         .classifier(DifficultyClassifier::default(), 1.0)
//!         .policy(Utility::new().answer_value(value))
//!         .build()
//! })?;
//! assert!(c.quality_fraction >= 0.9);
//! // The cheapest way to 90%: the easy prompt to `cheap`, the hard one to `dear`.
//! assert_eq!((c.quality_fraction, c.strong_share), (1.0, 0.5));
//! # Ok(()) }
//! # run().unwrap();
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::data::Dataset;
use super::metrics::{self, OperatingPoint};
use super::replay::{Replayer, Run};
use switchyard::Router;
use switchyard::config::RouterConfig;
use switchyard::{Error, Result};

/// What a calibration aims for. Every value is a fraction in `(0, 1]`.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// Mean quality at least this fraction of the best single model's on the calibration rows, as
    /// cheaply as possible (`0.95` for 95% of the strongest model's quality).
    Quality(f64),
    /// At most this share of calls to the strongest (best single) model, as accurately as possible
    /// (`0.2` for 20% of calls).
    StrongShare(f64),
    /// Total cost at most this fraction of the best single model's, as accurately as possible.
    Spend(f64),
}

impl Target {
    fn value(self) -> f64 {
        match self {
            Self::Quality(v) | Self::StrongShare(v) | Self::Spend(v) => v,
        }
    }

    /// Checks that the value is a fraction in `(0, 1]`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](switchyard::ErrorKind::Config) naming the target if it is NaN, `<= 0` or `> 1`.
    pub fn validate(self) -> Result<()> {
        let v = self.value();
        if v > 0.0 && v <= 1.0 {
            Ok(())
        } else {
            Err(crate::config_error(format!("calibration target `{self}` must be a fraction in (0, 1], got {v}")))
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Quality(v) => write!(f, "quality={v}"),
            Self::StrongShare(v) => write!(f, "share={v}"),
            Self::Spend(v) => write!(f, "spend={v}"),
        }
    }
}

/// Parses `quality=0.95`, `share=0.2` or `spend=0.3`, and checks the value ([`Target::validate`]).
impl FromStr for Target {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || crate::config_error(format!("calibration target `{s}`: expected quality=F, share=F or spend=F"));
        let (kind, value) = s.split_once('=').ok_or_else(bad)?;
        let value: f64 = value.trim().parse().map_err(|_| bad())?;
        let target = match kind.trim() {
            "quality" => Self::Quality(value),
            "share" => Self::StrongShare(value),
            "spend" => Self::Spend(value),
            _ => return Err(bad()),
        };
        target.validate()?;
        Ok(target)
    }
}

/// Where [`calibrate_with`] looks: a log grid of the knob, then bisection.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Search {
    /// The smallest knob value tried (default `1e-7`).
    pub lo: f64,
    /// The largest knob value tried (default `1e3`).
    pub hi: f64,
    /// Grid points, both ends included, evenly spaced in log space (default 41).
    pub points: usize,
    /// Bisection steps on each side of the best grid point (default 12).
    pub steps: usize,
}

impl Default for Search {
    fn default() -> Self {
        Self { lo: 1e-7, hi: 1e3, points: 41, steps: 12 }
    }
}

impl Search {
    /// The default search, over `V` from `1e-7` to `1e3` USD in 41 points (4 per decade).
    pub fn new() -> Self {
        Self::default()
    }

    /// Searches knob values from `lo` to `hi` (for [`CheapestCapable`](switchyard::CheapestCapable)'s
    /// quality floor, for example `0.01..0.99`).
    #[must_use]
    pub fn range(mut self, lo: f64, hi: f64) -> Self {
        self.lo = lo;
        self.hi = hi;
        self
    }

    /// Sets the number of grid points.
    #[must_use]
    pub fn points(mut self, points: usize) -> Self {
        self.points = points;
        self
    }

    /// Sets the bisection steps per side.
    #[must_use]
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }

    fn validate(&self) -> Result<()> {
        if !(self.lo.is_finite() && self.hi.is_finite() && self.lo > 0.0 && self.lo < self.hi) {
            return Err(crate::config_error(format!(
                "calibration range must satisfy 0 < lo < hi, both finite; got {}..{}",
                self.lo, self.hi
            )));
        }
        if self.points < 2 {
            return Err(crate::config_error(format!("calibration grid needs at least 2 points, got {}", self.points)));
        }
        Ok(())
    }
}

/// The knob a calibration found, and what it achieves on the calibration rows.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Calibration {
    /// The knob value (the answer value `V`, in USD, for [`Utility`](switchyard::Utility)).
    pub knob: f64,
    /// The target it meets.
    pub target: Target,
    /// Total cost and mean quality on the calibration rows at that knob.
    pub point: OperatingPoint,
    /// The strongest model: the best single model on the calibration rows.
    pub strong_model: String,
    /// The share of calls to the strong model at that knob.
    pub strong_share: f64,
    /// Quality as a fraction of the strong model's.
    pub quality_fraction: f64,
    /// Cost as a fraction of the strong model's.
    pub cost_fraction: f64,
    /// Calibration rows.
    pub rows: usize,
    /// Knob values replayed (grid and bisection).
    pub evaluations: usize,
}

impl Calibration {
    /// Stores the knob in `config`'s policy ([`PolicyConfig::set_knob`](switchyard::config::PolicyConfig::set_knob)):
    /// [`Utility`](switchyard::Utility)'s `answer_value_usd` or [`CheapestCapable`](switchyard::CheapestCapable)'s
    /// `quality_floor`. Write the config out with [`RouterConfig::to_toml_string`].
    ///
    /// # Errors
    /// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if the knob is not a valid value for that policy.
    pub fn apply(&self, config: &mut RouterConfig) -> Result<()> {
        config.policy.set_knob(self.knob)
    }
}

/// [`calibrate_with`] with the default [`Search`] (`V` from `1e-7` to `1e3` USD).
///
/// # Errors
/// As [`calibrate_with`].
pub fn calibrate<F>(data: &Dataset, target: Target, build: F) -> Result<Calibration>
where
    F: Fn(f64) -> Result<Router>,
{
    calibrate_with(data, target, &Search::default(), build)
}

/// Finds the knob value that meets `target` on `data`, as the [module docs](self) describe.
///
/// # Errors
/// [`ErrorKind::Config`](switchyard::ErrorKind::Config) if `data` is empty or has no costs, the target
/// value is NaN, `<= 0` or `> 1`, the search range is invalid, or no knob value meets the target (the
/// message gives the best the knob reaches); `build`'s error; as
/// [`replay`](super::replay::replay).
pub fn calibrate_with<F>(data: &Dataset, target: Target, search: &Search, build: F) -> Result<Calibration>
where
    F: Fn(f64) -> Result<Router>,
{
    target.validate()?;
    search.validate()?;
    if data.is_empty() {
        return Err(crate::config_error(format!("cannot calibrate on `{}`: no rows", data.name())));
    }
    let outcomes = data.outcomes()?;
    let singles = metrics::single_model_points(outcomes);
    let strong = metrics::best_single(&singles).unwrap_or(0);
    let best = singles[strong];
    let goal = Goal { target, strong, best };

    let mut replayer = Replayer::new(data)?;
    let mut evaluations = 0;
    let mut eval = |knob: f64| -> Result<Run> {
        evaluations += 1;
        replayer.run(&build(knob)?, knob)
    };
    let grid = super::replay::log_grid(search.lo, search.hi, search.points);
    let runs: Vec<Run> = grid.iter().map(|&k| eval(k)).collect::<Result<_>>()?;
    let Some(i) = goal.best_of(runs.iter()) else {
        return Err(goal.unreachable(data, &runs));
    };
    // The plateau of grid points with the same point as the best; bisect outward from its ends.
    let (mut first, mut last) = (i, i);
    while first > 0 && runs[first - 1].point == runs[i].point {
        first -= 1;
    }
    while last + 1 < runs.len() && runs[last + 1].point == runs[i].point {
        last += 1;
    }
    let mut chosen = runs[i].clone();
    for (end, j) in [(first, first.wrapping_sub(1)), (last, last + 1)] {
        let Some(miss) = runs.get(j).filter(|r| !goal.meets(r)) else { continue };
        let (mut good, mut bad) = (runs[end].knob.ln(), miss.knob.ln());
        for _ in 0..search.steps {
            let mid = (good + bad) / 2.0;
            let run = eval(mid.exp())?;
            if goal.meets(&run) {
                good = mid;
                if goal.better(&run, &chosen) {
                    chosen = run;
                }
            } else {
                bad = mid;
            }
        }
    }
    Ok(Calibration {
        knob: chosen.knob,
        target,
        point: chosen.point,
        strong_model: data.models()[strong].as_str().to_owned(),
        strong_share: chosen.shares[strong],
        quality_fraction: fraction(chosen.point.quality, best.quality),
        cost_fraction: fraction(chosen.point.cost, best.cost),
        rows: data.len(),
        evaluations,
    })
}

fn fraction(x: f64, of: f64) -> f64 {
    if of > 0.0 { x / of } else { f64::NAN }
}

/// A target on a data set: the strong model's index and point.
struct Goal {
    target: Target,
    strong: usize,
    best: OperatingPoint,
}

/// Relative slack for comparisons with the target, so that a point exactly at it is not lost to
/// rounding.
const SLACK: f64 = 1e-12;

impl Goal {
    fn meets(&self, run: &Run) -> bool {
        match self.target {
            Target::Quality(f) => run.point.quality >= f * self.best.quality - SLACK,
            Target::StrongShare(s) => run.shares[self.strong] <= s + SLACK,
            Target::Spend(f) => run.point.cost <= f * self.best.cost * (1.0 + SLACK),
        }
    }

    /// Whether `a` is better than `b` (both meeting the target).
    fn better(&self, a: &Run, b: &Run) -> bool {
        let (a, b) = (a.point, b.point);
        match self.target {
            Target::Quality(_) => a.cost < b.cost || (a.cost == b.cost && a.quality > b.quality),
            Target::StrongShare(_) | Target::Spend(_) => {
                a.quality > b.quality || (a.quality == b.quality && a.cost < b.cost)
            }
        }
    }

    fn best_of<'a>(&self, runs: impl Iterator<Item = &'a Run>) -> Option<usize> {
        let runs: Vec<&Run> = runs.collect();
        let mut best: Option<usize> = None;
        for (i, r) in runs.iter().enumerate() {
            if self.meets(r) && best.is_none_or(|b| self.better(r, runs[b])) {
                best = Some(i);
            }
        }
        best
    }

    /// The error when no point meets the target, with the closest the knob came.
    fn unreachable(&self, data: &Dataset, runs: &[Run]) -> Error {
        let by = |key: &dyn Fn(&Run) -> f64, max: bool| {
            runs.iter()
                .max_by(|a, b| if max { key(a).total_cmp(&key(b)) } else { key(b).total_cmp(&key(a)) })
                .map_or((f64::NAN, f64::NAN), |r| (key(r), r.knob))
        };
        let strong = &data.models()[self.strong];
        let what = match self.target {
            Target::Quality(f) => {
                let (q, k) = by(&|r: &Run| r.point.quality, true);
                format!(
                    "quality {:.4} ({f} of `{strong}`'s {:.4}) is out of reach: the best point reaches {q:.4} ({:.1}%), at knob {k:.4e}",
                    f * self.best.quality,
                    self.best.quality,
                    100.0 * fraction(q, self.best.quality)
                )
            }
            Target::StrongShare(s) => {
                let (share, k) = by(&|r: &Run| r.shares[self.strong], false);
                format!(
                    "at most {:.1}% of calls to `{strong}` is out of reach: the fewest are {:.1}%, at knob {k:.4e}",
                    100.0 * s,
                    100.0 * share
                )
            }
            Target::Spend(f) => {
                let (c, k) = by(&|r: &Run| r.point.cost, false);
                format!(
                    "a spend of {:.1}% of `{strong}`'s cost is out of reach: the cheapest point costs {:.1}%, at knob {k:.4e}",
                    100.0 * f,
                    100.0 * fraction(c, self.best.cost)
                )
            }
        };
        crate::config_error(format!("cannot calibrate on `{}`: {what}", data.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Row;
    use switchyard::ContentPart;
    use switchyard::ErrorKind;
    use switchyard::catalog::{Catalog, ModelProfile};
    use switchyard::config::PolicyConfig;
    use switchyard::policy::PolicyInput;
    use switchyard::{Ranking, Request};

    /// Ten rows, prompt `r`; `cheap` (cost 1) is right on rows 0–4, `dear` (cost 10) on all.
    fn data() -> Dataset {
        let mut b = Dataset::builder(["cheap", "dear"]).name("ten");
        for r in 0..10 {
            b.push(Row::new(r.to_string()), &[f64::from(r < 5), 1.0], Some(&[1.0, 10.0])).unwrap();
        }
        b.build().unwrap()
    }

    fn row_of(request: &Request) -> i32 {
        match request.messages.first().and_then(|m| m.content.first()) {
            Some(ContentPart::Text { text }) => text.parse().unwrap_or(0),
            _ => 0,
        }
    }

    /// A router that sends row `r` to `dear` when `dear(r, knob)`.
    fn router(knob: f64, dear: fn(i32, f64) -> bool) -> Result<Router> {
        let catalog = Catalog::new([ModelProfile::new("cheap", "p"), ModelProfile::new("dear", "p")])?;
        let policy = move |input: &PolicyInput<'_>| {
            let want = usize::from(dear(row_of(input.request), knob));
            let mut ranking = Ranking::new();
            for c in input.candidates.iter().filter(|c| c.model == want) {
                ranking.push(c.model, 0.0);
            }
            for c in input.candidates.iter().filter(|c| c.model != want) {
                ranking.push(c.model, 0.0);
            }
            Ok(ranking)
        };
        Router::builder().catalog(catalog).policy(policy).build()
    }

    /// Row `r` goes to `dear` when `2^r >= knob`: above `2^(j−1)`, rows `j..10` do (share
    /// `(10 − j)/10`, cost `100 − 9j`, quality 1 for `j <= 5`, else `(15 − j)/10`).
    fn threshold(r: i32, knob: f64) -> bool {
        2f64.powi(r) >= knob
    }

    /// The grid these tests were written for: 25 points from `1e-3` to `1e3`.
    fn search() -> Search {
        Search::new().range(1e-3, 1e3).points(25)
    }

    fn cal(target: Target) -> Calibration {
        calibrate_with(&data(), target, &search(), |k| router(k, threshold)).unwrap()
    }

    #[test]
    fn meets_each_kind_of_target_at_the_boundary() {
        // 95% of quality 1: j = 5 at most, the cheapest is j = 5: knob in (16, 32].
        let c = cal(Target::Quality(0.95));
        assert_eq!((c.point, c.strong_share), (OperatingPoint::new(55.0, 1.0), 0.5));
        assert!(c.knob > 16.0 && c.knob <= 32.0, "{}", c.knob);
        assert_eq!((c.strong_model.as_str(), c.rows), ("dear", 10));
        assert!((c.cost_fraction - 0.55).abs() < 1e-12 && c.quality_fraction == 1.0);
        // Bisection moved past the grid (25 points, a factor of about 1.78 apart) toward 32.
        assert!(c.evaluations > 25);
        // 80%: j = 7 (quality .8), knob in (64, 128].
        let c = cal(Target::Quality(0.8));
        assert_eq!(c.point, OperatingPoint::new(37.0, 0.8));
        assert!(c.knob > 64.0 && c.knob <= 128.0, "{}", c.knob);
        // At most 20% of calls to dear: j >= 8, the most accurate is j = 8.
        let c = cal(Target::StrongShare(0.2));
        assert_eq!((c.point, c.strong_share), (OperatingPoint::new(28.0, 0.7), 0.2));
        assert!(c.knob > 128.0 && c.knob <= 256.0, "{}", c.knob);
        // Spend at most half of dear's 100: 100 − 9j <= 50, j >= 6; the most accurate is j = 6.
        let c = cal(Target::Spend(0.5));
        assert_eq!(c.point, OperatingPoint::new(46.0, 0.9));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["target"], serde_json::json!({"kind": "spend", "value": 0.5}));
        assert_eq!(json["point"]["cost"], 46.0);
    }

    #[test]
    fn does_not_assume_monotonicity() {
        // All dear below 10, all cheap from 10 to 100, rows 5–9 dear from 100 on.
        fn bumpy(r: i32, knob: f64) -> bool {
            knob < 10.0 || (knob >= 100.0 && r >= 5)
        }
        let c = calibrate_with(&data(), Target::Quality(0.95), &search(), |k| router(k, bumpy)).unwrap();
        assert_eq!(c.point, OperatingPoint::new(55.0, 1.0));
        assert!((100.0..=1000.0).contains(&c.knob), "{}", c.knob);
        // Toward the infeasible side the bisection converges on 100 from above.
        assert!(c.knob < 100.5, "{}", c.knob);
    }

    #[test]
    fn unreachable_targets_say_the_best_achievable() {
        let d = data();
        let low = Search::new().range(1e-3, 1.5);
        let e = calibrate_with(&d, Target::StrongShare(0.5), &low, |k| router(k, threshold)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("the fewest are 90.0%"), "{e}");
        let e = calibrate_with(&d, Target::Spend(0.5), &low, |k| router(k, threshold)).unwrap_err();
        assert!(e.to_string().contains("costs 91.0%"), "{e}");
        let high = Search::new().range(100.0, 1000.0);
        let e = calibrate_with(&d, Target::Quality(0.9), &high, |k| router(k, threshold)).unwrap_err();
        assert!(e.to_string().contains("reaches 0.8000 (80.0%)"), "{e}");
    }

    #[test]
    fn bad_input_is_a_config_error() {
        let d = data();
        for t in [Target::Quality(f64::NAN), Target::Spend(0.0), Target::StrongShare(-0.1), Target::Quality(1.5)] {
            let e = calibrate(&d, t, |k| router(k, threshold)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{t}");
        }
        for s in ["speed=1", "quality", "quality=x", "quality=NaN", "share=0", "spend=2"] {
            assert_eq!(s.parse::<Target>().unwrap_err().kind(), ErrorKind::Config, "{s}");
        }
        assert_eq!("quality=0.95".parse::<Target>().unwrap(), Target::Quality(0.95));
        assert_eq!(" share = 0.2".parse::<Target>().unwrap(), Target::StrongShare(0.2));
        assert_eq!("spend=0.3".parse::<Target>().unwrap().to_string(), "spend=0.3");
        let empty = d.filter(|_| false);
        let e = calibrate(&empty, Target::Quality(0.9), |k| router(k, threshold)).unwrap_err();
        assert!(e.kind() == ErrorKind::Config && e.to_string().contains("no rows"), "{e}");
        for s in [Search::new().range(0.0, 1.0), Search::new().range(2.0, 1.0), Search::new().points(1)] {
            assert_eq!(
                calibrate_with(&d, Target::Quality(0.9), &s, |k| router(k, threshold)).unwrap_err().kind(),
                ErrorKind::Config
            );
        }
        // The builder's error comes back as it is.
        let e = calibrate(&d, Target::Quality(0.9), |_| Err(crate::config_error("no router"))).unwrap_err();
        assert!(e.to_string().contains("no router"), "{e}");
    }

    #[test]
    fn applies_to_a_config() {
        let c = cal(Target::Quality(0.95));
        let mut config = RouterConfig::new(vec![ModelProfile::new("cheap", "p"), ModelProfile::new("dear", "p")]);
        c.apply(&mut config).unwrap();
        assert!(matches!(config.policy, PolicyConfig::Utility { answer_value_usd, .. } if answer_value_usd == c.knob));
        let back = RouterConfig::from_toml_str(&config.to_toml_string().unwrap()).unwrap();
        assert_eq!(back, config);
        // A quality floor must be a fraction: a knob of ~30 is not one.
        config.policy = PolicyConfig::CheapestCapable { quality_floor: 0.5 };
        assert_eq!(c.apply(&mut config).unwrap_err().kind(), ErrorKind::Config);
    }
}
