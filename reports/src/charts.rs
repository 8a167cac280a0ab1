//! The report's charts, drawn with plotters as SVG strings that the page inlines.
//!
//! Every chart has axis descriptions with units and a legend where it has more than one series.
//! Charts never fail a report: a chart that cannot be drawn becomes a note saying why.

use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;

use crate::rundata::IntervalStats;
use crate::samples::{AgentSample, HostRow};
use crate::summary::{FaultSummary, PhaseSummary, StepSearch};

/// Width and height of every chart, in SVG units (scaled to the page by CSS).
pub const SIZE: (u32, u32) = (900, 360);

/// Most points a scatter draws; beyond, it draws an even sample and says so.
pub const MAX_SCATTER: usize = 5_000;

/// Font sizes in plotters' points: its SVG writes 0.806 px per point and the page draws the
/// 900-unit chart about 976 px wide, so 16 points read as 14 px and the caption as 19 px.
const CAPTION_PT: u32 = 22;
const LABEL_PT: u32 = 16;

/// The font of tick labels, axis descriptions and legends.
fn label_font() -> TextStyle<'static> {
    ("sans-serif", LABEL_PT).into_font().into()
}

/// Colors of series in order: Okabe and Ito's colour-blind-safe palette, without its
/// vermillion, which is kept for what needs attention ([`ALERT`]).
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// Failures, fault windows, fits and the knee: Okabe and Ito's vermillion.
const ALERT: RGBColor = RGBColor(213, 94, 0);

type Result<T> = std::result::Result<T, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// A named line.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
    /// Dashed (the baseline in comparisons).
    pub dashed: bool,
}

/// How a legend entry shows its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Line,
    Dashed,
    Dot,
    Bar,
}

/// One legend entry.
#[derive(Debug, Clone)]
struct Key {
    label: String,
    color: RGBColor,
    width: u32,
    mark: Mark,
}

impl Key {
    fn new(label: impl Into<String>, color: RGBColor, mark: Mark) -> Self {
        Self {
            label: label.into(),
            color,
            width: 2,
            mark,
        }
    }
}

/// Height of one row of legend entries, in SVG units.
const KEY_ROW: u32 = 24;
/// Left edge of the legend, in line with the plot (past the y label area and margin).
const KEY_LEFT: i32 = 98;

/// Legend entries laid out left to right from [`KEY_LEFT`], wrapping at the chart's width:
/// each entry's (row, x). Text width is estimated (plotters' SVG backend cannot measure it):
/// 0.5 em per character of a 16-point font.
fn key_layout(keys: &[Key]) -> Vec<(u32, i32)> {
    let per_char = f64::from(LABEL_PT) * 0.806 * 0.55;
    let mut out = Vec::with_capacity(keys.len());
    let (mut row, mut x) = (0u32, KEY_LEFT);
    for k in keys {
        let w = 34 + (k.label.chars().count() as f64 * per_char).ceil() as i32 + 22;
        if x > KEY_LEFT && x + w > SIZE.0 as i32 - 10 {
            row += 1;
            x = KEY_LEFT;
        }
        out.push((row, x));
        x += w;
    }
    out
}

/// Draws a chart: the title on top, the legend under it (outside the data, so that it hides
/// no line or bar), then what `f` draws in the rest. A chart that cannot be drawn becomes a
/// note saying why.
fn draw_chart(title: &str, keys: &[Key], f: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> String {
    let mut out = String::new();
    let layout = key_layout(keys);
    let rows = layout.last().map_or(0, |(r, _)| r + 1);
    let r = {
        let root = SVGBackend::with_string(&mut out, (SIZE.0, SIZE.1 + rows * KEY_ROW)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(err)
            .and_then(|()| {
                let body = root
                    .titled(title, ("sans-serif", CAPTION_PT).into_font())
                    .map_err(err)?;
                let (strip, plot) = body.split_vertically(rows * KEY_ROW);
                for (k, &(row, x)) in keys.iter().zip(&layout) {
                    let y = (row * KEY_ROW + KEY_ROW / 2) as i32;
                    let style = k.color.stroke_width(k.width);
                    match k.mark {
                        Mark::Line => strip.draw(&PathElement::new(vec![(x, y), (x + 26, y)], style)),
                        Mark::Dashed => {
                            strip
                                .draw(&PathElement::new(vec![(x, y), (x + 10, y)], style))
                                .map_err(err)?;
                            strip.draw(&PathElement::new(vec![(x + 16, y), (x + 26, y)], style))
                        }
                        Mark::Dot => strip.draw(&Circle::new((x + 13, y), 4, k.color.filled())),
                        Mark::Bar => strip.draw(&Rectangle::new([(x + 4, y - 6), (x + 22, y + 6)], k.color.filled())),
                    }
                    .map_err(err)?;
                    strip
                        .draw(&Text::new(
                            k.label.clone(),
                            (x + 34, y),
                            label_font().pos(plotters::style::text_anchor::Pos::new(
                                plotters::style::text_anchor::HPos::Left,
                                plotters::style::text_anchor::VPos::Center,
                            )),
                        ))
                        .map_err(err)?;
                }
                f(&plot)
            })
            .and_then(|()| root.present().map_err(err))
    };
    match r {
        Ok(()) => out,
        Err(e) => format!("<p class=\"note\">chart not drawn: {}</p>", crate::html::escape(&e)),
    }
}

/// The colour and width of line `i` of `n`. Earlier lines are drawn wider, so that where two
/// coincide (programmed and converged, p99 and max) the later one shows inside the earlier one.
fn line_style(i: usize, n: usize, s: &Series) -> (RGBColor, u32) {
    // Failures are always drawn in the alert colour, wherever they come in the list.
    let c = if s.label.starts_with("failed") {
        ALERT
    } else {
        PALETTE[i % PALETTE.len()]
    };
    (c, if i + 1 < n { 3 } else { 2 })
}

/// The legend entries of [`draw_lines`]' series.
fn line_keys(series: &[Series]) -> Vec<Key> {
    series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (color, width) = line_style(i, series.len(), s);
            Key {
                label: s.label.clone(),
                color,
                width,
                mark: if s.dashed { Mark::Dashed } else { Mark::Line },
            }
        })
        .collect()
}

/// Shaded bands behind time charts, one per phase (measured phases tinted, others grey).
fn bands(phases: &[PhaseSummary], lo: f64, hi: f64) -> Vec<Rectangle<(f64, f64)>> {
    phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let shade = if p.kind != "load" {
                RGBColor(200, 200, 200).mix(0.25)
            } else if i % 2 == 0 {
                RGBColor(31, 119, 180).mix(0.07)
            } else {
                RGBColor(44, 160, 44).mix(0.07)
            };
            Rectangle::new([(p.started_s, lo), (p.started_s + p.duration_s, hi)], shade.filled())
        })
        .collect()
}

/// Red bands over the time each fault held, and its kind written at the top of each.
fn draw_faults<'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    faults: &[FaultSummary],
    lo: f64,
    hi: f64,
) -> Result<()> {
    let red = ALERT;
    chart
        .draw_series(faults.iter().map(|f| {
            // A command or restart that took no time still gets a visible sliver.
            let end = f.end_s.unwrap_or(f.start_s).max(f.start_s + 0.2);
            Rectangle::new([(f.start_s, lo), (end, hi)], red.mix(0.13).filled())
        }))
        .map_err(err)?;
    // Under the phase names, so that neither covers the other.
    chart
        .draw_series(
            faults.iter().map(|f| {
                EmptyElement::at((f.start_s, hi)) + Text::new(f.kind.clone(), (4, 24), label_font().color(&red))
            }),
        )
        .map_err(err)?;
    Ok(())
}

/// What every time chart shows behind its lines: the phases shaded and named, and the faults.
fn draw_backdrop<'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    phases: &[PhaseSummary],
    faults: &[FaultSummary],
    lo: f64,
    hi: f64,
) -> Result<()> {
    chart.draw_series(bands(phases, lo, hi)).map_err(err)?;
    draw_phase_names(chart, phases, hi)?;
    draw_faults(chart, faults, lo, hi)
}

/// Each phase's name at the top of its band, so that a reader need not match shades to a table.
fn draw_phase_names<'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    phases: &[PhaseSummary],
    hi: f64,
) -> Result<()> {
    let grey = RGBColor(90, 90, 90);
    // A name goes where its band has room for it (estimated as in `key_layout`), so that names
    // of short phases do not run into each other.
    let (x0, x1) = {
        let r = chart.x_range();
        (r.start, r.end)
    };
    let px_per_s = f64::from(chart.plotting_area().dim_in_pixel().0) / (x1 - x0).max(1e-9);
    let per_char = f64::from(LABEL_PT) * 0.806 * 0.55;
    chart
        .draw_series(
            phases
                .iter()
                .filter(|p| p.duration_s * px_per_s >= p.name.chars().count() as f64 * per_char + 8.0)
                .map(|p| {
                    EmptyElement::at((p.started_s, hi)) + Text::new(p.name.clone(), (4, 4), label_font().color(&grey))
                }),
        )
        .map_err(err)?;
    Ok(())
}

/// The report's mesh: no light grid lines (they crowd log axes), its label fonts.
trait Styled {
    fn styled(&mut self) -> &mut Self;
}

impl<X: Ranged, Y: Ranged, DB: DrawingBackend> Styled for plotters::chart::MeshStyle<'_, '_, X, Y, DB> {
    fn styled(&mut self) -> &mut Self {
        self.light_line_style(TRANSPARENT)
            .label_style(label_font())
            .axis_desc_style(label_font())
    }
}

/// A chart frame with the report's margins and label areas (the title and legend are above it).
fn frame<'a, 'b>(root: &'a DrawingArea<SVGBackend<'b>, Shift>) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.margin(14).x_label_area_size(46).y_label_area_size(84);
    b
}

/// A log axis range around `y` (ms): half the lowest to twice the highest, a decade at least.
fn log_range(y: (f64, f64)) -> (f64, f64) {
    let lo = (y.0.max(0.001) / 2.0).max(0.001);
    (lo, (y.1 * 2.0).max(lo * 10.0))
}

/// The time axis: from 0 to the end of the last phase or series.
fn time_range(x: (f64, f64), phases: &[PhaseSummary]) -> (f64, f64) {
    let end = phases.last().map_or(x.1, |p| x.1.max(p.started_s + p.duration_s));
    (x.0.min(0.0), end)
}

fn bounds(series: &[Series]) -> ((f64, f64), (f64, f64)) {
    let mut x = (f64::MAX, f64::MIN);
    let mut y = (f64::MAX, f64::MIN);
    for s in series {
        for &(a, b) in &s.points {
            x = (x.0.min(a), x.1.max(a));
            y = (y.0.min(b), y.1.max(b));
        }
    }
    if x.0 > x.1 {
        x = (0.0, 1.0);
    }
    if y.0 > y.1 {
        y = (0.0, 1.0);
    }
    if x.1 <= x.0 {
        x.1 = x.0 + 1.0;
    }
    (x, y)
}

/// Lines over time (s) on a linear y axis, with phases shaded and fault windows marked.
pub fn time_lines(
    title: &str,
    y_desc: &str,
    series: &[Series],
    phases: &[PhaseSummary],
    faults: &[FaultSummary],
) -> String {
    draw_chart(title, &line_keys(series), |root| {
        let (x, y) = bounds(series);
        let x = time_range(x, phases);
        let ytop = (y.1 * 1.1).max(1.0);
        let mut chart = frame(root).build_cartesian_2d(x.0..x.1, 0.0..ytop).map_err(err)?;
        chart
            .configure_mesh()
            .styled()
            .x_desc("time since start (s)")
            .y_desc(y_desc)
            .x_label_formatter(&|v| format_count(*v))
            .y_label_formatter(&|v| format_count(*v))
            .draw()
            .map_err(err)?;
        draw_backdrop(&mut chart, phases, faults, 0.0, ytop)?;
        draw_lines(&mut chart, series)
    })
}

/// Goal-state traffic over time: messages/s on the left axis and MB/s on the right, as the two
/// differ by orders of magnitude and neither belongs beside request rates.
pub fn goal_state_traffic(messages: &Series, mb: &Series, phases: &[PhaseSummary], faults: &[FaultSummary]) -> String {
    let (c0, c1) = (PALETTE[0], PALETTE[1]);
    let keys = [
        Key::new(format!("{} (left axis)", messages.label), c0, Mark::Line),
        Key::new(format!("{} (right axis)", mb.label), c1, Mark::Dashed),
    ];
    draw_chart("Goal-state traffic to agents", &keys, |root| {
        let (x, y) = bounds(std::slice::from_ref(messages));
        let (_, y2) = bounds(std::slice::from_ref(mb));
        let x = time_range(x, phases);
        let ytop = (y.1 * 1.1).max(1.0);
        let y2top = (y2.1 * 1.1).max(0.001);
        let mut chart = frame(root)
            .right_y_label_area_size(84)
            .build_cartesian_2d(x.0..x.1, 0.0..ytop)
            .map_err(err)?
            .set_secondary_coord(x.0..x.1, 0.0..y2top);
        chart
            .configure_mesh()
            .styled()
            .x_desc("time since start (s)")
            .y_desc("messages per second")
            .x_label_formatter(&|v| format_count(*v))
            .y_label_formatter(&|v| format_count(*v))
            .draw()
            .map_err(err)?;
        chart
            .configure_secondary_axes()
            .label_style(label_font())
            .axis_desc_style(label_font())
            .y_desc("MB per second")
            .y_label_formatter(&|v| format_count(*v))
            .draw()
            .map_err(err)?;
        draw_backdrop(&mut chart, phases, faults, 0.0, ytop)?;
        chart
            .draw_series(LineSeries::new(messages.points.iter().copied(), c0.stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_secondary_series(DashedLineSeries::new(
                mb.points.iter().copied(),
                6,
                4,
                c1.stroke_width(2),
            ))
            .map_err(err)?;
        Ok(())
    })
}

/// Latency lines over time on a log y axis (ms), with phases shaded and fault windows marked.
pub fn latency_lines(title: &str, series: &[Series], phases: &[PhaseSummary], faults: &[FaultSummary]) -> String {
    draw_chart(title, &line_keys(series), |root| {
        let (x, y) = bounds(series);
        let x = time_range(x, phases);
        let (lo, hi) = log_range(y);
        let mut chart = frame(root)
            .build_cartesian_2d(x.0..x.1, (lo..hi).log_scale().with_key_points(log_points(lo, hi)))
            .map_err(err)?;
        chart
            .configure_mesh()
            .styled()
            .x_desc("time since start (s)")
            .y_desc("latency (log)")
            .x_label_formatter(&|v| format_count(*v))
            .y_label_formatter(&|v| format_ms(*v))
            .draw()
            .map_err(err)?;
        draw_backdrop(&mut chart, phases, faults, lo, hi)?;
        draw_lines(&mut chart, series)
    })
}

fn draw_lines<'a, X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    series: &[Series],
) -> Result<()> {
    for (i, s) in series.iter().enumerate() {
        let (c, width) = line_style(i, series.len(), s);
        let style = c.stroke_width(width);
        if s.dashed {
            chart
                .draw_series(DashedLineSeries::new(s.points.iter().copied(), 6, 4, style))
                .map_err(err)?;
        } else {
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// A latency tick given in ms, in the report's one unit style: `500 µs`, `10 ms`, `1 s`.
fn format_ms(v: f64) -> String {
    crate::units::duration_us(v * 1e3)
}

/// The ticks of a log axis over `lo..hi`: 1, 2 and 5 of every decade. Plotters' own choice
/// labels every 1..9 of a decade, whose upper half runs together, or a single tick.
fn log_points(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.max(1e-12).log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = m * decade;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// A count or rate tick: `0`, `2.5`, `200`, `12,000`, never `10000.0`.
fn format_count(v: f64) -> String {
    if v.abs() >= 1000.0 {
        crate::units::thousands(v.round() as i64)
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// p50/p90/p99/max of a latency metric per interval, in ms, at the interval's middle.
pub fn interval_quantiles(intervals: &[IntervalStats]) -> Vec<Series> {
    interval_quantiles_per(intervals, 1e3)
}

/// p50/p90/p99/max of a metric per interval, each recorded value divided by `unit` (1e3: µs as
/// ms; 1: a count as it is), at the interval's middle.
pub fn interval_quantiles_per(intervals: &[IntervalStats], unit: f64) -> Vec<Series> {
    let mut out: Vec<Series> = ["p50", "p90", "p99", "max"]
        .iter()
        .map(|l| Series {
            label: (*l).to_owned(),
            points: Vec::with_capacity(intervals.len()),
            dashed: false,
        })
        .collect();
    for i in intervals {
        if i.count == 0 {
            continue;
        }
        let t = i.start_s + i.length_s / 2.0;
        for (k, v) in [i.p50, i.p90, i.p99, i.max].into_iter().enumerate() {
            out[k].points.push((t, v as f64 / unit));
        }
    }
    out
}

/// Events per second per interval (the interval's count over its length).
pub fn interval_rate(label: &str, intervals: &[IntervalStats]) -> Series {
    Series {
        label: label.to_owned(),
        points: intervals
            .iter()
            .map(|i| (i.start_s + i.length_s / 2.0, i.count as f64 / i.length_s.max(1e-9)))
            .collect(),
        dashed: false,
    }
}

/// Bytes per second per interval, in MB/s, from a size metric's sums.
pub fn interval_mb_rate(label: &str, intervals: &[IntervalStats]) -> Series {
    Series {
        label: label.to_owned(),
        points: intervals
            .iter()
            .map(|i| (i.start_s + i.length_s / 2.0, i.sum / 1e6 / i.length_s.max(1e-9)))
            .collect(),
        dashed: false,
    }
}

/// Offered, achieved and failed requests per second from the generator's own rows: offered is
/// what the schedule made due (or, in closed phases, what was sent), achieved what succeeded.
pub fn load_series(rows: &[crate::health::HealthRow]) -> Vec<Series> {
    let mut offered = Vec::with_capacity(rows.len());
    let mut achieved = Vec::with_capacity(rows.len());
    let mut failed = Vec::with_capacity(rows.len());
    for r in rows {
        let len = r.length_s.max(1e-9);
        let t = r.start_s + r.length_s / 2.0;
        offered.push((t, r.offered_per_s()));
        achieved.push((t, r.completed.saturating_sub(r.failed) as f64 / len));
        failed.push((t, r.failed as f64 / len));
    }
    let s = |label: &str, points, dashed| Series {
        label: label.to_owned(),
        points,
        dashed,
    };
    let mut out = vec![
        s("offered/s", offered, true),
        s("achieved (succeeded)/s", achieved, false),
    ];
    if failed.iter().any(|p| p.1 > 0.0) {
        out.push(s("failed/s", failed, false));
    }
    out
}

/// The percentile positions drawn, as `1 / (1 - p)` on a log axis: 0 % to 99.99 %.
fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut pts = Vec::new();
    // 200 points evenly spaced on log10(1/(1-p)) from 0 (p = 0) to 4 (p = 99.99 %).
    for k in 0..=200 {
        let x = 4.0 * f64::from(k) / 200.0;
        let p = 1.0 - 10f64.powf(-x);
        pts.push((x, h.value_at_quantile(p) as f64 / 1e3));
    }
    pts
}

/// Percentile distributions, HdrHistogram style: x is the percentile on a `1/(1-p)` log scale
/// (0 %, 90 %, 99 %, 99.9 %, 99.99 %), y the latency in ms (log).
pub fn percentiles(title: &str, hists: &[(String, &Histogram<u64>, bool)]) -> String {
    let series: Vec<Series> = hists
        .iter()
        .filter(|(_, h, _)| !h.is_empty())
        .map(|(l, h, dashed)| Series {
            label: l.clone(),
            points: percentile_points(h),
            dashed: *dashed,
        })
        .collect();
    draw_chart(title, &line_keys(&series), |root| {
        let (lo, hi) = log_range(bounds(&series).1);
        let mut chart = frame(root)
            // Room for the last tick's label, centred on the right edge.
            .margin_right(40)
            .build_cartesian_2d(0.0..4.0, (lo..hi).log_scale().with_key_points(log_points(lo, hi)))
            .map_err(err)?;
        chart
            .configure_mesh()
            .styled()
            .x_labels(5)
            .x_label_formatter(&|x: &f64| match x.round() as i32 {
                0 => "0 %".into(),
                1 => "90 %".into(),
                2 => "99 %".into(),
                3 => "99.9 %".into(),
                _ => "99.99 %".into(),
            })
            .x_desc("percentile (log 1/(1-p))")
            .y_desc("latency (log)")
            .y_label_formatter(&|v| format_ms(*v))
            .draw()
            .map_err(err)?;
        draw_lines(&mut chart, &series)
    })
}

/// Least-squares `time = a + b * x`, or None with fewer than two distinct x.
pub fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (sxx, sxy) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx).powi(2), b + (x - mx) * (y - my))
    });
    if sxx <= 0.0 {
        return None;
    }
    let b = sxy / sxx;
    Some((my - b * mx, b))
}

/// Every `n`th item so that at most `max` remain, and whether anything was left out.
pub fn downsample<T: Copy>(items: &[T], max: usize) -> (Vec<T>, bool) {
    if items.len() <= max {
        return (items.to_vec(), false);
    }
    let step = items.len().div_ceil(max);
    (items.iter().step_by(step).copied().collect(), true)
}

/// Goal-state size (neighbors) vs agent processing time, log axes, with `line`, the fitted
/// `µs = a + b * neighbors` over every sample.
pub fn size_vs_time(samples: &[AgentSample], caption: &str, line: Option<(f64, f64)>) -> String {
    let pts: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| ((s.neighbors.max(1)) as f64, (s.processing_us.max(1)) as f64 / 1e3))
        .collect();
    let (shown, _) = downsample(&pts, MAX_SCATTER);
    let c = PALETTE[0];
    let red = ALERT;
    let mut keys = vec![Key::new("message", c, Mark::Dot)];
    if let Some((a, b)) = line {
        keys.push(Key::new(
            format!(
                "least-squares fit over every message: {} per neighbor + {} fixed",
                crate::units::duration_us(b),
                crate::units::duration_us(a)
            ),
            red,
            Mark::Line,
        ));
    }
    draw_chart(caption, &keys, |root| {
        let (x, y) = bounds(&[Series {
            label: String::new(),
            points: pts.clone(),
            dashed: false,
        }]);
        let xr = (x.0.max(1.0) / 1.5)..(x.1 * 1.5).max(10.0);
        let yr = (y.0.max(0.001) / 1.5)..(y.1 * 1.5).max(0.01);
        let mut chart = frame(root)
            .build_cartesian_2d(
                xr.clone().log_scale().with_key_points(log_points(xr.start, xr.end)),
                yr.clone().log_scale().with_key_points(log_points(yr.start, yr.end)),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .styled()
            .x_desc("neighbor states in the message (log)")
            .y_desc("agent processing (log)")
            .x_label_formatter(&|v| format_count(*v))
            .y_label_formatter(&|v| format_ms(*v))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(shown.iter().map(|&(x, y)| Circle::new((x, y), 2, c.mix(0.5).filled())))
            .map_err(err)?;
        if let Some((a, b)) = line {
            let n = 60;
            let line_pts: Vec<(f64, f64)> = (0..=n)
                .map(|k| {
                    let x = (xr.start.ln() + (xr.end.ln() - xr.start.ln()) * f64::from(k) / f64::from(n)).exp();
                    (x, (a + b * x) / 1e3)
                })
                .filter(|&(_, y)| y >= yr.start && y <= yr.end)
                .collect();
            chart
                .draw_series(LineSeries::new(line_pts, red.stroke_width(2)))
                .map_err(err)?;
        }
        Ok(())
    })
}

/// Per-host load sorted from the busiest host down.
pub fn host_load(rows: &[HostRow], bytes: bool) -> String {
    let mut v: Vec<f64> = rows
        .iter()
        .map(|r| if bytes { r.bytes as f64 / 1e6 } else { r.messages as f64 })
        .collect();
    v.sort_by(|a, b| b.total_cmp(a));
    let series = [Series {
        label: if bytes { "MB received".into() } else { "messages".into() },
        points: v.iter().enumerate().map(|(i, y)| (i as f64 + 1.0, *y)).collect(),
        dashed: false,
    }];
    let title = if bytes {
        "Bytes per host, busiest first"
    } else {
        "Messages per host, busiest first"
    };
    let c = PALETTE[if bytes { 1 } else { 0 }];
    let keys = [Key::new(series[0].label.clone(), c, Mark::Bar)];
    draw_chart(title, &keys, |root| {
        let (x, y) = bounds(&series);
        let mut chart = frame(root)
            .build_cartesian_2d(0.0..x.1 + 1.0, 0.0..(y.1 * 1.1).max(1.0))
            .map_err(err)?;
        chart
            .configure_mesh()
            .styled()
            .x_desc("host rank (1: busiest)")
            .y_desc(if bytes { "MB" } else { "messages" })
            .x_label_formatter(&|v| format_count(v.round()))
            .y_label_formatter(&|v| format_count(*v))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                series[0]
                    .points
                    .iter()
                    .map(|&(x, y)| Rectangle::new([(x - 0.4, 0.0), (x + 0.4, y)], c.mix(0.8).filled())),
            )
            .map_err(err)?;
        Ok(())
    })
}

/// Step search: p99 latencies against the offered rate, the knee marked.
pub fn step_search(s: &StepSearch) -> String {
    let metrics = ["api", "port_programmed", "neighbor_converged"];
    let series: Vec<Series> = metrics
        .iter()
        .map(|m| Series {
            label: format!("{m} p99"),
            points: s
                .stages
                .iter()
                .filter_map(|st| {
                    st.metrics
                        .get(*m)
                        .filter(|x| x.count > 0)
                        .map(|x| (st.offered_rps, x.p99 as f64 / 1e3))
                })
                .collect(),
            dashed: false,
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let red = ALERT;
    let mut keys: Vec<Key> = series
        .iter()
        .enumerate()
        .map(|(i, s)| Key::new(s.label.clone(), PALETTE[i % PALETTE.len()], Mark::Line))
        .collect();
    if let Some(k) = s.knee_rps {
        keys.push(Key::new(
            format!("knee: {} requests/s", format_count(k)),
            red,
            Mark::Dashed,
        ));
    }
    draw_chart("Latency vs offered rate (step search)", &keys, |root| {
        let (x, y) = bounds(&series);
        let (lo, hi) = log_range(y);
        let mut chart = frame(root)
            .build_cartesian_2d(
                (x.0 * 0.9)..(x.1 * 1.1),
                (lo..hi).log_scale().with_key_points(log_points(lo, hi)),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .styled()
            .x_desc("offered rate (requests/s)")
            .y_desc("p99 latency (log)")
            .x_label_formatter(&|v| format_count(*v))
            .y_label_formatter(&|v| format_ms(*v))
            .draw()
            .map_err(err)?;
        for (i, s) in series.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                .map_err(err)?;
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(err)?;
        }
        if let Some(k) = s.knee_rps {
            chart
                .draw_series(DashedLineSeries::new(vec![(k, lo), (k, hi)], 5, 4, red.stroke_width(2)))
                .map_err(err)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_a_line_and_downsample_says_when_it_drops() {
        let pts: Vec<(f64, f64)> = (0..100).map(|x| (x as f64, 5.0 + 2.0 * x as f64)).collect();
        let (a, b) = fit(&pts).unwrap();
        assert!((a - 5.0).abs() < 1e-9 && (b - 2.0).abs() < 1e-9);
        assert!(fit(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
        let (v, dropped) = downsample(&(0..10_000).collect::<Vec<_>>(), 5_000);
        assert!(dropped && v.len() <= 5_000 && v.len() >= 4_999);
        assert!(!downsample(&[1, 2, 3], 5).1);
    }

    #[test]
    fn a_chart_is_an_svg_with_its_title_axes_and_legend() {
        let s = vec![Series {
            label: "p99".into(),
            points: vec![(0.5, 1.0), (1.5, 3.0)],
            dashed: false,
        }];
        let svg = latency_lines("api latency", &s, &[], &[]);
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        for text in ["api latency", "time since start (s)", "latency (log)", "p99"] {
            assert!(svg.contains(text), "{text} missing");
        }
    }

    /// Every text of every kind of time chart reads at 12 px or more where the page draws it
    /// (976 px for 900 units), its ticks in one unit style, and the phases named on the chart.
    #[test]
    fn log_axes_tick_at_one_two_and_five() {
        assert_eq!(log_points(0.3, 25.0), vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0]);
        assert_eq!(log_points(2.6, 26.0), vec![5.0, 10.0, 20.0]);
    }

    #[test]
    fn chart_text_is_readable_and_ticks_are_plain() {
        let phases = vec![PhaseSummary {
            name: "ramp-200".into(),
            kind: "load".into(),
            started_s: 0.0,
            duration_s: 20.0,
            ..PhaseSummary::default()
        }];
        let lat = vec![Series {
            label: "p99".into(),
            points: vec![(0.5, 0.8), (10.0, 30.0), (19.5, 1500.0)],
            dashed: false,
        }];
        let rate = vec![Series {
            label: "offered/s".into(),
            points: vec![(0.5, 9000.0), (19.5, 12000.0)],
            dashed: true,
        }];
        let msgs = Series {
            label: "messages/s".into(),
            points: vec![(0.5, 5000.0), (19.5, 8000.0)],
            dashed: false,
        };
        let mb = Series {
            label: "MB/s".into(),
            points: vec![(0.5, 2.0), (19.5, 3.5)],
            dashed: false,
        };
        for svg in [
            latency_lines("latency", &lat, &phases, &[]),
            time_lines("load", "requests per second", &rate, &phases, &[]),
            goal_state_traffic(&msgs, &mb, &phases, &[]),
        ] {
            assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(300)]);
            assert!(svg.contains("ramp-200"), "the phase is named on the chart");
            let mut sizes = 0;
            for part in svg.split("font-size=\"").skip(1) {
                let px: f64 = part.split('"').next().unwrap().parse().unwrap();
                assert!(px * 976.0 / 900.0 >= 12.0, "text of {px} units reads under 12 px");
                sizes += 1;
            }
            assert!(sizes > 5);
            assert!(!svg.contains(".0\n<") && !svg.contains("10000"), "plain ticks");
        }
        let lat = latency_lines("latency", &lat, &phases, &[]);
        let texts: Vec<&str> = lat
            .split("</text>")
            .filter_map(|t| t.rsplit('>').next())
            .map(str::trim)
            .collect();
        assert!(texts.contains(&"1 ms") && texts.contains(&"1 s"), "{texts:?}");
        assert!(time_lines("load", "requests per second", &rate, &phases, &[]).contains("12,000"));
    }
}
