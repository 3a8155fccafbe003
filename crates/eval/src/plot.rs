//! An SVG plot of a [`Report`]'s cost–quality curve (feature `plot`).
//!
//! [`svg`] draws, on one chart:
//!
//! - the router's operating points (one per knob value) and their non-decreasing convex hull;
//! - the zero router: the hull of the single models' points (dashed);
//! - every single model, labelled with its name (the part after the last `/`);
//! - the oracle's point.
//!
//! The cost axis is the total cost as a fraction of the best single model's, on a log scale (the
//! cheap models of a portfolio often cost 1–10% of the best one, and would sit on top of each other
//! on a linear axis); a point that costs nothing is drawn at the axis' left end. The quality axis is
//! the mean score. Text is SVG `<text>`, laid out with approximate glyph widths (no font files are
//! read); labels of single models are placed so that they do not overlap when there is room.
//!
//! [`lines`] draws line charts (learning curves, cumulative regret: `examples/experiment.rs`).
//!
//! ```no_run
//! # fn run(report: &switchyard_eval::Report) -> switchyard::Result<()> {
//! use switchyard_eval::plot::{PlotOptions, write_svg};
//!
//! write_svg(report, &PlotOptions::new().title("RouterBench, RouterDC test split"), "curve.svg")?;
//! # Ok(()) }
//! # let _ = run;
//! ```

use std::path::Path;

use plotters::chart::MeshStyle;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::metrics::{self, OperatingPoint};
use super::replay::Report;
use switchyard::{Error, Result};

/// Size and title of a plot.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlotOptions {
    /// Width in pixels (default 960, at least 320).
    pub width: u32,
    /// Height in pixels (default 640, at least 240).
    pub height: u32,
    /// The title; by default the data set's name and number of rows.
    pub title: Option<String>,
}

impl Default for PlotOptions {
    fn default() -> Self {
        Self { width: 960, height: 640, title: None }
    }
}

impl PlotOptions {
    /// The defaults: 960 × 640, the data set's name as the title.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the size in pixels.
    #[must_use]
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    /// Sets the title.
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }
}

const ROUTER: RGBColor = RGBColor(31, 119, 180);
const ZERO: RGBColor = RGBColor(110, 110, 110);
const SINGLE: RGBColor = RGBColor(40, 40, 40);
const ORACLE: RGBColor = RGBColor(214, 39, 40);
const FONT: &str = "sans-serif";
/// Font size of the models' labels (`plotters` units).
const LABEL_SIZE: i32 = 15;

fn plot_error(what: &str, e: impl std::fmt::Display) -> Error {
    crate::invalid_input(format!("cannot plot the report: {what}: {e}"))
}

/// A point in plot coordinates: cost as a fraction of the best single model's, and quality.
fn scaled(p: OperatingPoint, best_cost: f64) -> Option<(f64, f64)> {
    let x = p.cost / best_cost;
    (x.is_finite() && x >= 0.0 && p.quality.is_finite()).then_some((x, p.quality))
}

/// The short name of a model: the part after the last `/`.
fn short(model: &str) -> &str {
    model.rsplit('/').next().unwrap_or(model)
}

/// The SVG text of the report's cost–quality plot (see the [module docs](self)).
///
/// # Errors
/// [`ErrorKind::InvalidRequest`](switchyard::ErrorKind::InvalidRequest) if the best single model's cost
/// is not finite and `> 0`, the report has no router point with a finite cost and quality, or the
/// size is below 320 × 240.
pub fn svg(report: &Report, options: &PlotOptions) -> Result<String> {
    check_size(options)?;
    let best_cost = report.best_single.point.cost;
    if !(best_cost.is_finite() && best_cost > 0.0) {
        return Err(crate::invalid_input(format!(
            "cannot plot `{}`: the best single model's cost is {best_cost}, not a positive number",
            report.data
        )));
    }
    let router: Vec<(f64, f64)> = report.points.iter().filter_map(|r| scaled(r.point, best_cost)).collect();
    if router.is_empty() {
        return Err(crate::invalid_input(format!(
            "cannot plot `{}`: the report has no router point with a finite cost and quality",
            report.data
        )));
    }
    let singles: Vec<(&str, (f64, f64))> =
        report.singles.iter().filter_map(|s| Some((short(&s.model), scaled(s.point, best_cost)?))).collect();
    let oracle = scaled(report.oracle, best_cost);
    let x_end = report.x_max / best_cost;
    let single_pts: Vec<OperatingPoint> = report.singles.iter().map(|s| s.point).collect();
    let router_pts: Vec<OperatingPoint> = report.points.iter().map(|r| r.point).collect();
    let zero_hull = hull_line(&single_pts, best_cost, x_end);
    let router_hull = hull_line(&router_pts, best_cost, x_end);

    let all = || router.iter().chain(singles.iter().map(|(_, p)| p)).chain(oracle.iter());
    let positive = all().map(|p| p.0).filter(|x| *x > 0.0);
    let x_lo = positive.clone().fold(f64::INFINITY, f64::min);
    let x_hi = positive.fold(0.0, f64::max).max(x_end);
    let (x_lo, x_hi) = if x_lo.is_finite() && x_hi > 0.0 { (x_lo / 1.6, x_hi * 1.6) } else { (0.01, 2.0) };
    let (q_lo, q_hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let pad = ((q_hi - q_lo) * 0.06).max(0.01);
    let (y_lo, y_hi) = (q_lo - pad, q_hi + pad);
    let clamp = |(x, y): (f64, f64)| (x.max(x_lo), y);

    let title =
        options.title.clone().unwrap_or_else(|| format!("{}: cost vs quality, {} rows", report.data, report.rows));
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (options.width, options.height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error("background", e))?;
        let (upper, strip) = root.split_vertically(options.height.saturating_sub(LEGEND_HEIGHT));
        let mut chart = ChartBuilder::on(&upper)
            .caption(title, (FONT, 24))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((x_lo..x_hi).log_scale().with_key_points(log_ticks(x_lo, x_hi)), y_lo..y_hi)
            .map_err(|e| plot_error("axes", e))?;
        house_style(&mut chart.configure_mesh())
            .x_desc(format!("cost, as a fraction of {}'s (log scale)", short(&report.best_single.model)))
            .y_desc("quality (mean score)")
            .x_label_formatter(&|x| percent(*x))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .draw()
            .map_err(|e| plot_error("mesh", e))?;

        chart
            .draw_series(DashedLineSeries::new(zero_hull.iter().copied().map(clamp), 8, 5, ZERO.stroke_width(2)))
            .map_err(|e| plot_error("zero router", e))?;
        chart
            .draw_series(LineSeries::new(router_hull.iter().copied().map(clamp), ROUTER.stroke_width(2)))
            .map_err(|e| plot_error("router hull", e))?;
        chart
            .draw_series(router.iter().map(|&p| Circle::new(clamp(p), 3, ROUTER.mix(0.55).filled())))
            .map_err(|e| plot_error("router points", e))?;
        chart
            .draw_series(singles.iter().map(|(_, p)| Circle::new(clamp(*p), 5, SINGLE.filled())))
            .map_err(|e| plot_error("single models", e))?;
        if let Some(o) = oracle {
            chart
                .draw_series(std::iter::once(TriangleMarker::new(clamp(o), 8, ORACLE.filled())))
                .map_err(|e| plot_error("oracle", e))?;
        }

        // Labels, placed greedily around their points so that they do not overlap each other, the
        // markers or the plot's edges.
        let area = chart.plotting_area().get_pixel_range();
        let mut placer = Placer::new((area.0.start, area.0.end), (area.1.start, area.1.end));
        let markers: Vec<(i32, i32)> = singles
            .iter()
            .map(|(_, p)| chart.backend_coord(&clamp(*p)))
            .chain(oracle.map(|o| chart.backend_coord(&clamp(o))))
            .collect();
        for m in &markers {
            placer.occupy(Rect { x0: m.0 - 6, y0: m.1 - 6, x1: m.0 + 6, y1: m.1 + 6 });
        }
        for p in zero_hull.iter().chain(&router_hull).chain(&router) {
            let (x, y) = chart.backend_coord(&clamp(*p));
            placer.occupy(Rect { x0: x - 2, y0: y - 2, x1: x + 2, y1: y + 2 });
        }
        let mut labels: Vec<(String, (i32, i32), RGBColor)> =
            singles.iter().map(|(name, p)| ((*name).to_owned(), chart.backend_coord(&clamp(*p)), SINGLE)).collect();
        if let Some(o) = oracle {
            labels.push(("oracle".to_owned(), chart.backend_coord(&clamp(o)), ORACLE));
        }
        // Right-most first: they have the least room.
        labels.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.1.1.cmp(&b.1.1)));
        for (text, at, color) in labels {
            let (w, h) = text_size(&text, LABEL_SIZE);
            let pos = placer.place(at, w, h);
            upper
                .draw(&Text::new(text, pos, (FONT, LABEL_SIZE).into_font().color(&color)))
                .map_err(|e| plot_error("labels", e))?;
        }

        let mut legend = vec![
            (Key::Dashed(ZERO), "zero router (hull of single models)".to_owned()),
            (Key::Line(ROUTER), "router hull".to_owned()),
            (Key::Dot(ROUTER.mix(0.55), 3), format!("router operating points ({})", report.points.len())),
            (Key::Dot(SINGLE.to_rgba(), 5), "single models".to_owned()),
        ];
        if oracle.is_some() {
            legend.push((Key::Triangle(ORACLE), "oracle".to_owned()));
        }
        draw_legend(&strip, &legend)?;
        root.present().map_err(|e| plot_error("output", e))?;
    }
    Ok(out)
}

/// [`svg`], written to `path`.
///
/// # Errors
/// As [`svg`]; [`ErrorKind::Config`](switchyard::ErrorKind::Config) if the file cannot be written.
pub fn write_svg(report: &Report, options: &PlotOptions, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let text = svg(report, options)?;
    std::fs::write(path, text)
        .map_err(|e| crate::config_error(format!("cannot write `{}`: {e}", path.display())).with_source(e))
}

/// One line of a [`lines`] chart: a name for the legend and its points.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend's name of the line.
    pub name: String,
    /// The points, in order of `x`.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A named line through `points`.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { name: name.into(), points }
    }
}

/// Colours of [`lines`]' series, in order (then repeated).
const PALETTE: [RGBColor; 6] =
    [ROUTER, ORACLE, RGBColor(44, 160, 44), RGBColor(255, 127, 14), RGBColor(148, 103, 189), ZERO];

/// The SVG text of a line chart (learning curves, cumulative regret): every series on linear axes
/// labelled `x_desc` and `y_desc`, with a legend under the chart. The title is
/// [`PlotOptions::title`] (empty if unset).
///
/// # Errors
/// [`ErrorKind::InvalidRequest`](switchyard::ErrorKind::InvalidRequest) if no series has a point, a point
/// is not finite, or the size is below 320 × 240.
pub fn lines(series: &[Series], x_desc: &str, y_desc: &str, options: &PlotOptions) -> Result<String> {
    check_size(options)?;
    let all = || series.iter().flat_map(|s| s.points.iter());
    if all().next().is_none() {
        return Err(crate::invalid_input("cannot plot lines: no series has a point"));
    }
    if let Some(s) = series.iter().find(|s| s.points.iter().any(|(x, y)| !(x.is_finite() && y.is_finite()))) {
        return Err(crate::invalid_input(format!("cannot plot line `{}`: a point is not finite", s.name)));
    }
    let (x_lo, x_hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let (y_lo, y_hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let x_hi = if x_hi > x_lo { x_hi } else { x_lo + 1.0 };
    let pad = ((y_hi - y_lo) * 0.06).max(1e-9);
    let (y_lo, y_hi) = (y_lo - pad, y_hi + pad);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (options.width, options.height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error("background", e))?;
        let (upper, strip) = root.split_vertically(options.height.saturating_sub(LEGEND_HEIGHT));
        let mut chart = ChartBuilder::on(&upper)
            .caption(options.title.clone().unwrap_or_default(), (FONT, 24))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
            .map_err(|e| plot_error("axes", e))?;
        house_style(&mut chart.configure_mesh())
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|x| tick(*x))
            .y_label_formatter(&|y| tick(*y))
            .draw()
            .map_err(|e| plot_error("mesh", e))?;
        let mut legend = Vec::with_capacity(series.len());
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
                .map_err(|e| plot_error(&s.name, e))?;
            legend.push((Key::Line(color), s.name.clone()));
        }
        draw_legend(&strip, &legend)?;
        root.present().map_err(|e| plot_error("output", e))?;
    }
    Ok(out)
}

fn check_size(options: &PlotOptions) -> Result<()> {
    if options.width < 320 || options.height < 240 {
        return Err(crate::invalid_input(format!(
            "a plot needs at least 320 × 240 pixels, got {} × {}",
            options.width, options.height
        )));
    }
    Ok(())
}

/// The fonts and grid lines every chart shares.
fn house_style<'m, 'a, 'b, X, Y, DB>(mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>) -> &'m mut MeshStyle<'a, 'b, X, Y, DB>
where
    X: plotters::coord::ranged1d::Ranged,
    Y: plotters::coord::ranged1d::Ranged,
    DB: DrawingBackend,
{
    mesh.axis_desc_style((FONT, 18))
        .label_style((FONT, 15))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
}

/// A tick label: whole numbers from 100 up, fewer decimals the larger the number.
fn tick(x: f64) -> String {
    match x.abs() {
        0.0 => "0".to_owned(),
        a if a >= 100.0 => format!("{x:.0}"),
        a if a >= 1.0 => format!("{x:.1}"),
        _ => format!("{x:.3}"),
    }
}

/// Height of the legend strip under the chart, in pixels.
const LEGEND_HEIGHT: u32 = 40;

/// A legend entry's key.
enum Key {
    Line(RGBColor),
    Dashed(RGBColor),
    Dot(RGBAColor, i32),
    Triangle(RGBColor),
}

/// The legend: one row of entries centred in `strip` (the band under the chart, so that it never
/// covers a point), wrapped into rows when the strip is too narrow.
fn draw_legend<DB: DrawingBackend>(
    strip: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(Key, String)],
) -> Result<()> {
    const KEY: i32 = 22;
    const SPACE: i32 = 22;
    let (width, _) = strip.dim_in_pixel();
    let width = i32::try_from(width).unwrap_or(i32::MAX);
    let widths: Vec<i32> = entries.iter().map(|(_, t)| KEY + 6 + text_size(t, 15).0).collect();
    // Rows: as many entries as fit in the width.
    let mut rows: Vec<(usize, usize, i32)> = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, w) in widths.iter().enumerate() {
        let need = if i == start { *w } else { used + SPACE + w };
        if i > start && need > width - 20 {
            rows.push((start, i, used));
            start = i;
            used = *w;
        } else {
            used = need;
        }
    }
    rows.push((start, entries.len(), used));
    let line = 18;
    let top = (40 - line * i32::try_from(rows.len()).unwrap_or(1)).max(0) / 2 + line / 2;
    for (r, (from, to, used)) in rows.into_iter().enumerate() {
        let y = top + line * i32::try_from(r).unwrap_or(0);
        let mut x = ((width - used) / 2).max(4);
        for ((key, text), w) in entries[from..to].iter().zip(&widths[from..to]) {
            let drawn = match key {
                Key::Line(c) => strip.draw(&PathElement::new(vec![(x, y), (x + KEY, y)], c.stroke_width(2))),
                Key::Dashed(c) => {
                    strip
                        .draw(&PathElement::new(vec![(x, y), (x + 8, y)], c.stroke_width(2)))
                        .map_err(|e| plot_error("legend", e))?;
                    strip.draw(&PathElement::new(vec![(x + 13, y), (x + KEY, y)], c.stroke_width(2)))
                }
                Key::Dot(c, size) => strip.draw(&Circle::new((x + KEY / 2, y), *size, c.filled())),
                Key::Triangle(c) => strip.draw(&TriangleMarker::new((x + KEY / 2, y), 6, c.filled())),
            };
            drawn.map_err(|e| plot_error("legend", e))?;
            let style = (FONT, 15).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
            strip.draw(&Text::new(text.as_str(), (x + KEY + 6, y), style)).map_err(|e| plot_error("legend", e))?;
            x += w + SPACE;
        }
    }
    Ok(())
}

/// The hull of the points in plot coordinates, extended flat to `x_end` (AIQ's `x_max`).
///
/// A hull segment is straight in cost, so on the log axis it is a curve: each segment is drawn
/// through [`SEGMENT_STEPS`] points evenly spaced in cost.
fn hull_line(points: &[OperatingPoint], best_cost: f64, x_end: f64) -> Vec<(f64, f64)> {
    let vertices: Vec<(f64, f64)> = metrics::hull(points).into_iter().filter_map(|p| scaled(p, best_cost)).collect();
    let mut line: Vec<(f64, f64)> = Vec::with_capacity(vertices.len() * SEGMENT_STEPS + 1);
    for w in vertices.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        for i in 0..SEGMENT_STEPS {
            let t = i as f64 / SEGMENT_STEPS as f64;
            line.push((x0 + t * (x1 - x0), y0 + t * (y1 - y0)));
        }
    }
    if let Some(&(x, y)) = vertices.last() {
        line.push((x, y));
        if x_end.is_finite() && x_end > x {
            line.push((x_end, y));
        }
    }
    line
}

/// Points per hull segment.
const SEGMENT_STEPS: usize = 48;

/// Ticks of a log axis: 1, 2 and 5 times the powers of 10 within `lo..=hi`.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    for e in first.max(-12)..=last.min(12) {
        for m in [1.0, 2.0, 5.0] {
            let t = m * 10f64.powi(e);
            if (lo..=hi).contains(&t) {
                ticks.push(t);
            }
        }
    }
    ticks
}

/// A tick label of the cost axis: a percentage with as many decimals as it needs.
fn percent(x: f64) -> String {
    let p = 100.0 * x;
    if p >= 10.0 {
        format!("{p:.0}%")
    } else if p >= 1.0 {
        format!("{p:.1}%").replace(".0%", "%")
    } else {
        format!("{p:.2}%")
    }
}

/// The approximate size of a label in pixels (average glyph width of a sans-serif font).
///
/// `plotters` draws a font of size `s` at `s / 1.24` pixels.
fn text_size(text: &str, size: i32) -> (i32, i32) {
    let px = f64::from(size) / 1.24;
    let w = (text.chars().count() as f64 * px * 0.58).ceil() as i32;
    (w, px.ceil() as i32)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rect {
    x0: i32,
    y0: i32,
    x1: i32,
    y1: i32,
}

impl Rect {
    fn overlap(&self, o: &Rect) -> i64 {
        let w = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0);
        let h = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0);
        i64::from(w) * i64::from(h)
    }
}

/// Greedy label placement: each label takes the first spot around its point that overlaps nothing
/// placed before and stays inside the plot, or the spot with the least overlap.
struct Placer {
    x: (i32, i32),
    y: (i32, i32),
    taken: Vec<Rect>,
}

impl Placer {
    fn new(x: (i32, i32), y: (i32, i32)) -> Self {
        Self { x, y, taken: Vec::new() }
    }

    fn occupy(&mut self, r: Rect) {
        self.taken.push(r);
    }

    /// The top-left corner of the label's text.
    fn place(&mut self, at: (i32, i32), w: i32, h: i32) -> (i32, i32) {
        let (px, py) = at;
        let gap = 8;
        let spots = [
            (px + gap, py - h / 2),
            (px - gap - w, py - h / 2),
            (px - w / 2, py - gap - h),
            (px - w / 2, py + gap),
            (px + gap, py - h - 2),
            (px + gap, py + 2),
            (px - gap - w, py - h - 2),
            (px - gap - w, py + 2),
            (px + gap, py - 2 * h),
            (px + gap, py + h),
            (px - gap - w, py - 2 * h),
            (px - gap - w, py + h),
        ];
        let mut best: Option<(i64, Rect)> = None;
        for (x, y) in spots {
            let r = Rect { x0: x, y0: y, x1: x + w, y1: y + h };
            let outside = i64::from(
                (self.x.0 - r.x0).max(0)
                    + (r.x1 - self.x.1).max(0)
                    + (self.y.0 - r.y0).max(0)
                    + (r.y1 - self.y.1).max(0),
            ) * 1000;
            let cost = outside + self.taken.iter().map(|t| t.overlap(&r)).sum::<i64>();
            if best.is_none_or(|(c, _)| cost < c) {
                best = Some((cost, r));
            }
            if cost == 0 {
                break;
            }
        }
        let r = best.map_or(Rect { x0: px, y0: py, x1: px + w, y1: py + h }, |(_, r)| r);
        self.taken.push(r);
        (r.x0, r.y0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Dataset, Row};
    use crate::replay::Run;
    use switchyard::ErrorKind;

    fn report() -> Report {
        let mut b = Dataset::builder(["org/small", "mid", "large"]).name("dir/plot-test.jsonl");
        let rows: [[f64; 3]; 4] = [[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]];
        for (r, s) in rows.iter().enumerate() {
            b.push(Row::new(format!("row {r}")), s, Some(&[1.0, 2.0, 10.0])).unwrap();
        }
        let data = b.build().unwrap();
        let outcomes = data.outcomes().unwrap();
        let runs: Vec<Run> = [[0, 1, 2, 0], [1, 1, 1, 1], [0, 0, 0, 0], [2, 2, 2, 2]]
            .iter()
            .enumerate()
            .map(|(k, c)| Run {
                knob: k as f64,
                point: metrics::operating_point(outcomes, c).unwrap(),
                shares: metrics::call_shares(c, 3).unwrap(),
                choices: c.to_vec(),
            })
            .collect();
        Report::new(&data, &runs).unwrap()
    }

    #[test]
    fn draws_every_series_and_label() {
        let text = svg(&report(), &PlotOptions::new()).unwrap();
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "{}", &text[..80]);
        // Balanced elements: every `<text` is closed.
        assert_eq!(text.matches("<text").count(), text.matches("</text>").count());
        for label in [
            "small",
            "mid",
            "large",
            "oracle",
            "router hull",
            "zero router",
            "router operating points (4)",
            "single models",
            "plot-test.jsonl: cost vs quality, 4 rows",
            "fraction of large",
        ] {
            assert!(text.contains(label), "missing `{label}`");
        }
        assert!(!text.contains("org/small"), "labels are short names");
        // Four router points (r = 3) and three single models (r = 5), plus the legend's two keys.
        assert_eq!(text.matches(r#"r="3""#).count(), 4 + 1);
        assert_eq!(text.matches(r#"r="5""#).count(), 3 + 1);
        // The zero router's hull is dashed: many short segments.
        assert!(text.matches("<polyline").count() > 10);
        // Ticks on the log axis are percentages: costs run from 10% to 100% of `large`'s.
        for tick in ["20%", "50%", "100%"] {
            assert!(text.contains(&format!("\n{tick}\n")), "missing tick {tick}");
        }
        let titled = svg(&report(), &PlotOptions::new().title("A & B").size(640, 480)).unwrap();
        assert!(titled.contains("A &amp; B") && titled.contains(r#"width="640""#));
    }

    #[test]
    fn bad_reports_are_errors_not_panics() {
        let mut r = report();
        r.best_single.point.cost = 0.0;
        assert_eq!(svg(&r, &PlotOptions::new()).unwrap_err().kind(), ErrorKind::InvalidRequest);
        let mut r = report();
        r.best_single.point.cost = f64::NAN;
        assert!(svg(&r, &PlotOptions::new()).is_err());
        let mut r = report();
        r.points.clear();
        let e = svg(&r, &PlotOptions::new()).unwrap_err();
        assert!(e.to_string().contains("no router point"), "{e}");
        let mut r = report();
        for p in &mut r.points {
            p.point.quality = f64::NAN;
        }
        assert!(svg(&r, &PlotOptions::new()).is_err());
        assert!(svg(&report(), &PlotOptions::new().size(10, 10)).is_err());
        // NaN among valid points, and a free model, are drawn (at the axis' left end), not errors.
        let mut r = report();
        r.points[0].point.cost = f64::NAN;
        r.singles[0].point.cost = 0.0;
        assert!(svg(&r, &PlotOptions::new()).is_ok());
        let dir = std::env::temp_dir().join(format!("switchyard-plot-{}", std::process::id()));
        let e = write_svg(&report(), &PlotOptions::new(), dir.join("missing/dir/x.svg")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
    }

    #[test]
    fn labels_do_not_overlap_when_there_is_room() {
        let mut p = Placer::new((0, 500), (0, 500));
        let a = p.place((100, 100), 60, 12);
        let b = p.place((100, 104), 60, 12);
        let ra = Rect { x0: a.0, y0: a.1, x1: a.0 + 60, y1: a.1 + 12 };
        let rb = Rect { x0: b.0, y0: b.1, x1: b.0 + 60, y1: b.1 + 12 };
        assert_eq!(ra.overlap(&rb), 0, "{a:?} {b:?}");
        // At the right edge the label goes left of its point.
        let c = p.place((495, 300), 60, 12);
        assert!(c.0 + 60 <= 500, "{c:?}");
        assert_eq!(log_ticks(0.015, 1.6), vec![0.02, 0.05, 0.1, 0.2, 0.5, 1.0]);
        assert_eq!(
            (percent(0.05), percent(0.5), percent(0.002), percent(0.015)),
            ("5%".into(), "50%".into(), "0.20%".into(), "1.5%".into())
        );
    }

    #[test]
    fn line_charts_draw_every_series_and_reject_bad_input() {
        let a = Series::new("bandit", vec![(0.0, 0.0), (1.0, 2.0), (2.0, 3.0)]);
        let b = Series::new("fixed", vec![(0.0, 0.0), (2.0, 1.0)]);
        let text =
            lines(&[a.clone(), b], "requests", "cumulative regret", &PlotOptions::new().title("regret")).unwrap();
        assert!(text.starts_with("<svg"), "{}", &text[..40]);
        for label in ["bandit", "fixed", "requests", "cumulative regret", "regret"] {
            assert!(text.contains(label), "missing {label}");
        }
        assert!(text.matches("<polyline").count() >= 2);
        let e = lines(&[], "x", "y", &PlotOptions::new()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        let nan = Series::new("nan", vec![(0.0, f64::NAN)]);
        assert!(lines(&[nan], "x", "y", &PlotOptions::new()).unwrap_err().to_string().contains("`nan`"));
        assert!(lines(&[a], "x", "y", &PlotOptions::new().size(100, 100)).is_err());
    }
}
