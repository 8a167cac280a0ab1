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

/// A chart being drawn, with its axes' coordinate types.
type Chart<'a, X, Y> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>;

/// A chart with a linear f64 x axis (time, or an offered rate), any y axis.
type LinearX<'a, Y> = Chart<'a, plotters::coord::types::RangedCoordf64, Y>;

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

/// A threshold drawn across a chart: an SLO check's limit, in the chart's y unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// Legend label (`SLO port_programmed.p99 < 5 s`).
    pub label: String,
    /// Where it lies on the y axis.
    pub value: f64,
}

/// The latency checks of `slo` whose figure is one of `metrics` (`port_programmed.p99 < 5s`
/// for `port_programmed`), as limits in ms.
pub fn latency_limits(slo: &[crate::summary::SloResult], metrics: &[&str]) -> Vec<Limit> {
    slo.iter()
        .filter(|r| {
            let key = r.key();
            metrics.iter().any(|m| {
                key.strip_prefix(m)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|stat| stat == "max" || stat.starts_with('p'))
            }) && crate::summary::metric::is_latency(key.split('.').next().unwrap_or(""))
        })
        .map(|r| Limit {
            label: format!("SLO {} {} {}", r.key(), r.op, crate::units::duration_us(r.threshold)),
            value: r.threshold / 1e3,
        })
        .collect()
}

/// Draws each limit as a dashed line across the chart.
fn draw_limits<'a, Y: Ranged<ValueType = f64>>(chart: &mut LinearX<'a, Y>, limits: &[Limit]) -> Result<()> {
    let (x0, x1) = {
        let r = chart.x_range();
        (r.start, r.end)
    };
    for l in limits {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x0, l.value), (x1, l.value)],
                8,
                5,
                ALERT.stroke_width(2),
            ))
            .map_err(err)?;
    }
    Ok(())
}

/// How far beyond the data (as a factor) a limit is still drawn: further, it would squeeze the
/// data into a corner of the chart, and the legend says where it is instead.
const LIMIT_REACH: f64 = 10.0;

/// The limits to draw on data spanning `y`, the legend entries of every limit (those too far
/// to draw say so), and `y` widened to hold the ones drawn.
fn place_limits(y: (f64, f64), limits: &[Limit]) -> (Vec<Limit>, Vec<Key>, (f64, f64)) {
    let mut drawn = Vec::new();
    let mut keys = Vec::new();
    let mut range = y;
    for l in limits {
        if l.value > y.1 * LIMIT_REACH {
            keys.push(Key::new(
                format!("{}: far above the data, not drawn", l.label),
                ALERT,
                Mark::Dashed,
            ));
        } else if l.value < y.0 / LIMIT_REACH {
            keys.push(Key::new(
                format!("{}: far below the data, not drawn", l.label),
                ALERT,
                Mark::Dashed,
            ));
        } else {
            keys.push(Key::new(l.label.clone(), ALERT, Mark::Dashed));
            range = (range.0.min(l.value), range.1.max(l.value));
            drawn.push(l.clone());
        }
    }
    (drawn, keys, range)
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
    draw_chart_sized(title, keys, SIZE.1, f)
}

/// [`draw_chart`] with a plot `height` of its own (a chart of named rows needs room for each).
fn draw_chart_sized(
    title: &str,
    keys: &[Key],
    height: u32,
    f: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>,
) -> String {
    let mut out = String::new();
    let layout = key_layout(keys);
    let rows = layout.last().map_or(0, |(r, _)| r + 1);
    let r = {
        let root = SVGBackend::with_string(&mut out, (SIZE.0, height + rows * KEY_ROW)).into_drawing_area();
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
        Ok(()) => annotate(&out, keys),
        Err(e) => format!("<p class=\"note\">chart not drawn: {}</p>", crate::html::escape(&e)),
    }
}

/// What plotters cannot write into its SVG: a tooltip (`<title>`) on every element of a series,
/// found by its colour (lines by stroke, dots and bars by fill; keys that share a colour share
/// the tooltip), and `class="key"` on the legend's texts, so that a test in a browser can tell
/// them from the data they must not cover.
fn annotate(svg: &str, keys: &[Key]) -> String {
    let hex = |c: RGBColor| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
    let mut lines: Vec<(String, Vec<&str>)> = Vec::new();
    let mut fills: Vec<(String, Vec<&str>)> = Vec::new();
    for k in keys {
        let table = if matches!(k.mark, Mark::Dot | Mark::Bar) {
            &mut fills
        } else {
            &mut lines
        };
        let color = hex(k.color);
        match table.iter_mut().find(|(c, _)| *c == color) {
            Some((_, labels)) => labels.push(&k.label),
            None => table.push((color, vec![&k.label])),
        }
    }
    let tip = |element: &str| -> Option<String> {
        let (table, attr) = if element.starts_with("<polyline") {
            (&lines, "stroke=\"")
        } else if element.starts_with("<circle") || element.starts_with("<rect") {
            (&fills, "fill=\"")
        } else {
            return None;
        };
        let at = element.find(attr)? + attr.len();
        let color = element.get(at..at + 7)?;
        table
            .iter()
            .find(|(c, _)| c == color)
            .map(|(_, labels)| crate::html::escape(&labels.join("; ")))
    };
    let mut out = String::with_capacity(svg.len() + svg.len() / 8);
    let mut rest = svg;
    // The title's text comes first, then one text per key.
    let mut texts = 0usize;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find('>').map_or(rest.len(), |e| e + 1);
        let element = &rest[..end];
        if let Some(attrs) = element.strip_prefix("<text") {
            texts += 1;
            if texts > 1 && texts <= keys.len() + 1 {
                out.push_str("<text class=\"key\"");
                out.push_str(attrs);
            } else {
                out.push_str(element);
            }
        } else if let (Some(t), Some(open)) = (tip(element), element.strip_suffix("/>")) {
            let name = &element[1..element.find(' ').unwrap_or(element.len() - 2)];
            out.push_str(&format!("{open}><title>{t}</title></{name}>"));
        } else {
            out.push_str(element);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
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

/// Red bands over the time each fault held, and its kind written at the top of each, `top`
/// pixels down.
fn draw_faults<'a, Y: Ranged<ValueType = f64>>(
    chart: &mut LinearX<'a, Y>,
    faults: &[FaultSummary],
    lo: f64,
    hi: f64,
    top: i32,
) -> Result<()> {
    let red = ALERT;
    chart
        .draw_series(faults.iter().map(|f| {
            // A command or restart that took no time still gets a visible sliver.
            let end = f.end_s.unwrap_or(f.start_s).max(f.start_s + 0.2);
            Rectangle::new([(f.start_s, lo), (end, hi)], red.mix(0.13).filled())
        }))
        .map_err(err)?;
    chart
        .draw_series(
            faults.iter().map(|f| {
                EmptyElement::at((f.start_s, hi)) + Text::new(f.kind.clone(), (4, top), label_font().color(&red))
            }),
        )
        .map_err(err)?;
    Ok(())
}

/// What every time chart shows behind its lines: the phases shaded and named, and the faults.
fn draw_backdrop<'a, Y: Ranged<ValueType = f64>>(
    chart: &mut LinearX<'a, Y>,
    phases: &[PhaseSummary],
    faults: &[FaultSummary],
    lo: f64,
    hi: f64,
) -> Result<()> {
    chart.draw_series(bands(phases, lo, hi)).map_err(err)?;
    draw_phase_names(chart, phases, hi)?;
    draw_rate_stages(chart, phases, lo, hi)?;
    // Fault kinds go under the phase names, and under the stages' rates where a phase has
    // stages: a fault that starts with a stage would otherwise be written over its rate.
    let top = if phases.iter().any(|p| p.stages.len() > 1) {
        44
    } else {
        24
    };
    draw_faults(chart, faults, lo, hi, top)
}

/// Where a phase's rate stages change: a dotted line at each stage's start after the first,
/// and every stage's rate written under the phase's name.
fn draw_rate_stages<'a, Y: Ranged<ValueType = f64>>(
    chart: &mut LinearX<'a, Y>,
    phases: &[PhaseSummary],
    lo: f64,
    hi: f64,
) -> Result<()> {
    let grey = RGBColor(90, 90, 90);
    for p in phases.iter().filter(|p| p.stages.len() > 1) {
        for st in p.stages.iter().skip(1) {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(st.started_s, lo), (st.started_s, hi)],
                    2,
                    4,
                    grey.stroke_width(1),
                ))
                .map_err(err)?;
        }
        chart
            .draw_series(p.stages.iter().map(|st| {
                EmptyElement::at((st.started_s, hi))
                    + Text::new(crate::units::per_s(st.rate_per_s), (4, 24), label_font().color(&grey))
            }))
            .map_err(err)?;
    }
    Ok(())
}

/// Each phase's name at the top of its band, so that a reader need not match shades to a table.
fn draw_phase_names<'a, Y: Ranged<ValueType = f64>>(
    chart: &mut LinearX<'a, Y>,
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

/// Latency lines over time on a log y axis (ms), with phases shaded, fault windows marked and
/// the SLO's `limits` drawn across.
pub fn latency_lines(
    title: &str,
    series: &[Series],
    limits: &[Limit],
    phases: &[PhaseSummary],
    faults: &[FaultSummary],
) -> String {
    let (x, y) = bounds(series);
    let (limits, limit_keys, y) = place_limits(y, limits);
    let mut keys = line_keys(series);
    keys.extend(limit_keys);
    draw_chart(title, &keys, |root| {
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
        draw_lines(&mut chart, series)?;
        draw_limits(&mut chart, &limits)
    })
}

/// A cost against a size, both on log axes: one line per series, a dot at each size measured;
/// series whose labels start alike (up to ` (`: the same change kind under each strategy) share
/// a colour, told apart by `dashed`. `y_label` writes a y tick in its unit.
pub fn cost_vs_size(title: &str, series: &[Series], x_desc: &str, y_desc: &str, y_label: fn(f64) -> String) -> String {
    let (x, y) = bounds(series);
    let mut groups: Vec<&str> = Vec::new();
    let colors: Vec<RGBColor> = series
        .iter()
        .map(|s| {
            let g = s.label.split(" (").next().unwrap_or(&s.label);
            let i = groups.iter().position(|x| *x == g).unwrap_or_else(|| {
                groups.push(g);
                groups.len() - 1
            });
            PALETTE[i % PALETTE.len()]
        })
        .collect();
    let keys: Vec<Key> = series
        .iter()
        .zip(&colors)
        .map(|(s, c)| Key {
            label: s.label.clone(),
            color: *c,
            width: 2,
            mark: if s.dashed { Mark::Dashed } else { Mark::Line },
        })
        .collect();
    draw_chart(title, &keys, |root| {
        let (xlo, xhi) = (x.0.max(1.0) / 1.5, x.1.max(1.0) * 1.5);
        let (lo, hi) = log_range(y);
        let mut chart = frame(root)
            .build_cartesian_2d(
                (xlo..xhi).log_scale().with_key_points(log_points(xlo, xhi)),
                (lo..hi).log_scale().with_key_points(log_points(lo, hi)),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .styled()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|v| format_count(*v))
            .y_label_formatter(&|v| y_label(*v))
            .draw()
            .map_err(err)?;
        for (s, c) in series.iter().zip(&colors) {
            draw_line(&mut chart, s, c.stroke_width(2))?;
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(err)?;
        }
        Ok(())
    })
}

fn draw_lines<'a, X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    chart: &mut Chart<'a, X, Y>,
    series: &[Series],
) -> Result<()> {
    for (i, s) in series.iter().enumerate() {
        let (c, width) = line_style(i, series.len(), s);
        draw_line(chart, s, c.stroke_width(width))?;
    }
    Ok(())
}

/// One series as a line in `style`, dashed when it says so.
fn draw_line<'a, X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    chart: &mut Chart<'a, X, Y>,
    s: &Series,
    style: ShapeStyle,
) -> Result<()> {
    if s.dashed {
        chart
            .draw_series(DashedLineSeries::new(s.points.iter().copied(), 6, 4, style))
            .map_err(err)?;
    } else {
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))
            .map_err(err)?;
    }
    Ok(())
}

/// A latency tick given in ms, in the report's one unit style: `500 µs`, `10 ms`, `1 s`.
pub fn format_ms(v: f64) -> String {
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

/// The percentile axis is `1 / (1 - p)` on a log scale, from the median (2) to 99.99 %
/// (10,000): below the median the distribution says little of the tail and would take a third
/// of the width.
const PERCENTILE_TICKS: [f64; 5] = [2.0, 10.0, 100.0, 1_000.0, 10_000.0];

/// The points of a distribution on that axis: 200, evenly spaced in log `1 / (1 - p)`.
fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let (lo, hi) = (PERCENTILE_TICKS[0].log10(), 4.0);
    (0..=200)
        .map(|k| {
            let x = 10f64.powf(lo + (hi - lo) * f64::from(k) / 200.0);
            (x, h.value_at_quantile(1.0 - 1.0 / x) as f64 / 1e3)
        })
        .collect()
}

/// The percentile at axis position `x` (`1 / (1 - p)`), as the axis labels it.
fn percentile_label(x: f64) -> String {
    let p = (1.0 - 1.0 / x) * 100.0;
    // 99.99 %, 99.9 %, 99 %, 90 %, 50 %: as many decimals as the nines need.
    let decimals = (x.log10().round() as i32 - 2).max(0) as usize;
    format!("{p:.decimals$} %")
}

/// Percentile distributions, HdrHistogram style: x is the percentile on a `1/(1-p)` log scale
/// (50 %, 90 %, 99 %, 99.9 %, 99.99 %), y the latency (log), one line per stage.
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
            .build_cartesian_2d(
                (PERCENTILE_TICKS[0]..PERCENTILE_TICKS[4])
                    .log_scale()
                    .with_key_points(PERCENTILE_TICKS.to_vec()),
                (lo..hi).log_scale().with_key_points(log_points(lo, hi)),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .styled()
            .x_label_formatter(&|x| percentile_label(*x))
            .x_desc("percentile (log 1/(1-p))")
            .y_desc("latency (log)")
            .y_label_formatter(&|v| format_ms(*v))
            .draw()
            .map_err(err)?;
        draw_lines(&mut chart, &series)
    })
}

/// A cost model fitted to agent messages: `time = fixed + per_unit × size`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostFit {
    /// Time a message costs whatever its size, µs.
    pub fixed_us: f64,
    /// Time each unit of size (a neighbor state, a byte) adds, µs.
    pub per_unit_us: f64,
    /// How well it fits on the chart's log axes: R² of log time against the log of the fit.
    pub r2_log: f64,
    /// Messages it was fitted on.
    pub n: usize,
}

impl CostFit {
    /// The fitted time of a message of `size`, µs.
    pub fn at(&self, size: f64) -> f64 {
        self.fixed_us + self.per_unit_us * size
    }

    /// `1.19 µs per neighbor + 3.72 µs fixed, R² 0.93 (log)`.
    pub fn describe(&self, unit: &str) -> String {
        format!(
            "{} per {unit} + {} fixed, R² {:.2} (log)",
            crate::units::duration_us(self.per_unit_us),
            crate::units::duration_us(self.fixed_us),
            self.r2_log
        )
    }
}

/// Fits `time = fixed + per_unit × size` to (size, µs) points by least squares on relative
/// error (each point weighted 1/time²), or None with fewer than two distinct sizes.
///
/// Ordinary least squares over sizes spanning decades is decided by the largest messages alone
/// and can miss the small ones by a multiple (or give a negative fixed cost); weighting by
/// relative error makes a 1-neighbor message count as much as a 10,000-neighbor one, which is
/// what a log–log chart shows. A negative coefficient is no cost: it is held at 0 and the other
/// refitted. Written here: statrs has no weighted regression, and this is a few sums.
pub fn fit_cost(points: &[(f64, f64)]) -> Option<CostFit> {
    let pts: Vec<(f64, f64)> = points.iter().copied().filter(|&(x, y)| x >= 0.0 && y > 0.0).collect();
    let (mut w, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(x, y) in &pts {
        let k = 1.0 / (y * y);
        w += k;
        sx += k * x;
        sy += k * y;
        sxx += k * x * x;
        sxy += k * x * y;
    }
    let det = w * sxx - sx * sx;
    if pts.len() < 2 || det <= 1e-12 * w * sxx {
        return None;
    }
    let mut b = (w * sxy - sx * sy) / det;
    let mut a = (sy - b * sx) / w;
    if a < 0.0 {
        a = 0.0;
        b = sxy / sxx;
    }
    if b < 0.0 {
        b = 0.0;
        a = sy / w;
    }
    let logs: Vec<(f64, f64)> = pts.iter().map(|&(x, y)| (y.ln(), (a + b * x).max(1e-9).ln())).collect();
    let mean = logs.iter().map(|l| l.0).sum::<f64>() / logs.len() as f64;
    let total: f64 = logs.iter().map(|l| (l.0 - mean).powi(2)).sum();
    let residual: f64 = logs.iter().map(|l| (l.0 - l.1).powi(2)).sum();
    Some(CostFit {
        fixed_us: a,
        per_unit_us: b,
        r2_log: if total > 0.0 { 1.0 - residual / total } else { 1.0 },
        n: pts.len(),
    })
}

/// Every `n`th item so that at most `max` remain, and whether anything was left out.
pub fn downsample<T: Copy>(items: &[T], max: usize) -> (Vec<T>, bool) {
    if items.len() <= max {
        return (items.to_vec(), false);
    }
    let step = items.len().div_ceil(max);
    (items.iter().step_by(step).copied().collect(), true)
}

/// Goal-state size (neighbors) vs agent processing time, log axes, with `line`, the cost fitted
/// per neighbor over every sample.
pub fn size_vs_time(samples: &[AgentSample], caption: &str, line: Option<CostFit>) -> String {
    let pts: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| ((s.neighbors.max(1)) as f64, (s.processing_us.max(1)) as f64 / 1e3))
        .collect();
    let (shown, _) = downsample(&pts, MAX_SCATTER);
    let c = PALETTE[0];
    let red = ALERT;
    let mut keys = vec![Key::new("message", c, Mark::Dot)];
    if let Some(f) = line {
        keys.push(Key::new(
            format!(
                "fit over {} messages: {}",
                crate::units::thousands(f.n as i64),
                f.describe("neighbor")
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
        if let Some(f) = line {
            let n = 60;
            let line_pts: Vec<(f64, f64)> = (0..=n)
                .map(|k| {
                    let x = (xr.start.ln() + (xr.end.ln() - xr.start.ln()) * f64::from(k) / f64::from(n)).exp();
                    (x, f.at(x) / 1e3)
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

/// Hosts the busiest-hosts chart names.
pub const TOP_HOSTS: usize = 20;

/// The busiest hosts by goal-state messages, each named, with its bytes written at the bar's end.
pub fn busiest_hosts(rows: &[HostRow]) -> String {
    let mut top: Vec<&HostRow> = rows.iter().collect();
    top.sort_by_key(|r| (std::cmp::Reverse(r.messages), r.host));
    top.truncate(TOP_HOSTS);
    let c = PALETTE[0];
    let title = if rows.len() > top.len() {
        format!("The {} busiest of {} hosts", top.len(), format_count(rows.len() as f64))
    } else {
        format!("Messages per host ({} hosts)", top.len())
    };
    let keys = [Key::new("goal-state messages (bytes at the bar's end)", c, Mark::Bar)];
    // 24 units a row, beside the title, the axis and the margins.
    let height = 130 + 24 * top.len().max(1) as u32;
    draw_chart_sized(&title, &keys, height, |root| {
        let n = top.len().max(1) as u32;
        let max = top.first().map_or(1, |r| r.messages.max(1)) as f64;
        // Room on the right for the bytes.
        let mut chart = frame(root)
            .y_label_area_size(130)
            .build_cartesian_2d(0.0..max * 1.25, (0..n).into_segmented())
            .map_err(err)?;
        let names: Vec<String> = top.iter().map(|r| r.host.to_string()).collect();
        chart
            .configure_mesh()
            .styled()
            .disable_y_mesh()
            .y_labels(names.len())
            // Row 0 at the bottom of the axis is the last host: the busiest reads first, on top.
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if *i < n => names.get((n - 1 - *i) as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc("messages")
            .x_label_formatter(&|v| format_count(*v))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(top.iter().enumerate().map(|(i, r)| {
                let i = n - 1 - i as u32;
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (r.messages as f64, SegmentValue::Exact(i + 1)),
                    ],
                    c.mix(0.8).filled(),
                );
                bar.set_margin(2, 2, 0, 0);
                bar
            }))
            .map_err(err)?;
        // Small print beside each bar: as many rows as 20 at 16 pt do not fit.
        let small = ("sans-serif", LABEL_PT - 2).into_font().color(&RGBColor(60, 60, 60));
        chart
            .draw_series(top.iter().enumerate().map(|(i, r)| {
                EmptyElement::at((r.messages as f64, SegmentValue::CenterOf(n - 1 - i as u32)))
                    + Text::new(
                        format!(" {}", bytesize::ByteSize(r.bytes).display().si()),
                        (4, -7),
                        small.clone(),
                    )
            }))
            .map_err(err)?;
        Ok(())
    })
}

/// How goal-state messages spread over all hosts: how many hosts got how many messages, the
/// median and the busiest marked. For fleets too large to name host by host.
pub fn host_distribution(rows: &[HostRow]) -> String {
    let mut v: Vec<u64> = rows.iter().map(|r| r.messages).collect();
    v.sort_unstable();
    let c = PALETTE[2];
    let (lo, hi) = (v.first().copied().unwrap_or(0), v.last().copied().unwrap_or(0));
    let median = v.get(v.len() / 2).copied().unwrap_or(0);
    let keys = [
        Key::new("hosts", c, Mark::Bar),
        Key::new(
            format!("median {}", format_count(median as f64)),
            PALETTE[5],
            Mark::Dashed,
        ),
        Key::new(format!("busiest {}", format_count(hi as f64)), ALERT, Mark::Dashed),
    ];
    let title = format!("Messages per host over all {} hosts", format_count(v.len() as f64));
    draw_chart(&title, &keys, |root| {
        // 40 bins of whole messages from the least to the most loaded host.
        let bins = 40u64;
        let width = ((hi - lo) / bins + 1).max(1);
        let mut counts = vec![0u64; bins as usize + 1];
        for m in &v {
            counts[((m - lo) / width) as usize] += 1;
        }
        let x0 = lo as f64;
        let x1 = (lo + width * (bins + 1)) as f64;
        let ytop = (*counts.iter().max().unwrap_or(&1) as f64 * 1.1).max(1.0);
        let mut chart = frame(root).build_cartesian_2d(x0..x1, 0.0..ytop).map_err(err)?;
        chart
            .configure_mesh()
            .styled()
            .x_desc("goal-state messages a host received")
            .y_desc("hosts")
            .x_label_formatter(&|v| format_count(*v))
            .y_label_formatter(&|v| format_count(*v))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| {
                let a = x0 + (i as u64 * width) as f64;
                Rectangle::new([(a, 0.0), (a + width as f64, *n as f64)], c.mix(0.8).filled())
            }))
            .map_err(err)?;
        for (x, color) in [(median, PALETTE[5]), (hi, ALERT)] {
            let x = x as f64 + width as f64 / 2.0;
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x, 0.0), (x, ytop)],
                    6,
                    4,
                    color.stroke_width(2),
                ))
                .map_err(err)?;
        }
        Ok(())
    })
}

/// Step search: p99 latencies against the offered rate, the SLO's `limits` across and the knee
/// marked.
pub fn step_search(s: &StepSearch, limits: &[Limit]) -> String {
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
    let (x, y) = bounds(&series);
    let (limits, limit_keys, y) = place_limits(y, limits);
    keys.extend(limit_keys);
    if let Some(k) = s.knee_rps {
        keys.push(Key::new(
            format!("knee: {} requests/s", format_count(k)),
            red,
            Mark::Line,
        ));
    }
    draw_chart("Latency vs offered rate (step search)", &keys, |root| {
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
        draw_limits(&mut chart, &limits)?;
        if let Some(k) = s.knee_rps {
            // Solid, unlike the limits: the knee is a rate, they are latencies.
            chart
                .draw_series(LineSeries::new(vec![(k, lo), (k, hi)], red.stroke_width(2)))
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
        let f = fit_cost(&pts).unwrap();
        assert!(
            (f.fixed_us - 5.0).abs() < 1e-6 && (f.per_unit_us - 2.0).abs() < 1e-6,
            "{f:?}"
        );
        assert!(f.r2_log > 0.999_999 && f.n == 100);
        assert!(fit_cost(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
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
        let svg = latency_lines("api latency", &s, &[], &[], &[]);
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        for text in ["api latency", "time since start (s)", "latency (log)", "p99"] {
            assert!(svg.contains(text), "{text} missing");
        }
    }

    /// Every text of every kind of time chart reads at 12 px or more where the page draws it
    /// (976 px for 900 units), its ticks in one unit style, and the phases named on the chart.
    /// Many small messages and a few huge ones, ±30 % noise: the fit must hold at both ends,
    /// where ordinary least squares, ruled by the huge ones, misses the small by a multiple.
    #[test]
    fn the_cost_fit_holds_across_decades() {
        let mut pts = Vec::new();
        for i in 0..1_000 {
            let noise = 1.0 + 0.3 * ((i % 7) as f64 / 3.0 - 1.0);
            pts.push((1.0, 10.0 * noise));
            if i % 50 == 0 {
                pts.push((10_000.0, (10.0 + 1.0 * 10_000.0) * noise));
            }
        }
        let f = fit_cost(&pts).unwrap();
        assert!((f.at(1.0) / 11.0 - 1.0).abs() < 0.3, "small messages: {f:?}");
        assert!((f.at(10_000.0) / 10_010.0 - 1.0).abs() < 0.3, "large messages: {f:?}");
        assert!(f.r2_log > 0.95, "{f:?}");
        assert_eq!(f.describe("neighbor").split(" per ").count(), 2);
        // No negative costs: times that fall with size are a fixed cost and nothing per unit.
        let f = fit_cost(&[(1.0, 10.0), (100.0, 5.0)]).unwrap();
        assert!(f.per_unit_us == 0.0 && f.fixed_us > 5.0, "{f:?}");
    }

    #[test]
    fn every_series_has_a_tooltip_and_the_legend_is_marked() {
        let series = vec![
            Series {
                label: "p50".into(),
                points: vec![(0.5, 1.0), (1.5, 2.0)],
                dashed: false,
            },
            Series {
                label: "p99 <late>".into(),
                points: vec![(0.5, 3.0), (1.5, 4.0)],
                dashed: true,
            },
        ];
        let limits = [Limit {
            label: "SLO api.p99 < 10 ms".into(),
            value: 10.0,
        }];
        let svg = latency_lines("api", &series, &limits, &[], &[]);
        for tip in [
            "<title>p50</title>",
            "<title>p99 &lt;late&gt;</title>",
            "<title>SLO api.p99 &lt; 10 ms</title>",
        ] {
            // The legend's mark and the series' lines (a dashed one in pieces) carry it.
            assert!(svg.matches(tip).count() >= 2, "{tip}: {svg}");
        }
        assert_eq!(svg.matches("<text class=\"key\"").count(), 3);
        let first_key = svg.find("<text class=\"key\"").unwrap();
        assert!(
            svg[first_key..]
                .split("</text>")
                .next()
                .unwrap()
                .trim_end()
                .ends_with("p50"),
            "in key order"
        );
        assert!(!svg.contains("/><title>"), "well-formed");
    }

    /// The text of every `<text>` element of an SVG.
    fn texts(svg: &str) -> Vec<&str> {
        svg.split("</text>")
            .filter_map(|t| t.rsplit('>').next())
            .map(str::trim)
            .collect()
    }

    #[test]
    fn the_percentile_axis_runs_from_the_median_to_four_nines() {
        let labels: Vec<String> = PERCENTILE_TICKS.into_iter().map(percentile_label).collect();
        assert_eq!(labels, ["50 %", "90 %", "99 %", "99.9 %", "99.99 %"]);
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let pts = percentile_points(&h);
        assert!((pts[0].1 - 5_000.0).abs() < 10.0, "starts at the median: {:?}", pts[0]);
        assert!((pts[200].1 - 9_999.0).abs() < 10.0, "ends at 99.99 %: {:?}", pts[200]);
        let svg = percentiles("latency", &[("api".into(), &h, false)]);
        let t = texts(&svg);
        assert!(
            t.contains(&"50 %") && t.contains(&"99.99 %") && !t.contains(&"0 %"),
            "{t:?}"
        );
    }

    #[test]
    fn slo_latency_checks_become_limits_on_their_stage_only() {
        let check = |c: &str, threshold: f64| crate::summary::SloResult {
            check: c.into(),
            actual: Some(1.0),
            threshold,
            op: "<".into(),
            pass: true,
            status: crate::summary::SloStatus::Pass,
            margin: None,
        };
        let slo = [
            check("port_programmed.p99 < 5s", 5e6),
            check("api.p50 < 20ms", 20_000.0),
            check("error_rate < 1%", 0.01),
        ];
        let l = latency_limits(&slo, &["port_programmed"]);
        assert_eq!(
            l,
            [Limit {
                label: "SLO port_programmed.p99 < 5 s".into(),
                value: 5_000.0
            }]
        );
        assert_eq!(latency_limits(&slo, &["api", "port_programmed"]).len(), 2);
        assert!(latency_limits(&slo, &["neighbor_converged"]).is_empty());
        let series = [Series {
            label: "p99".into(),
            points: vec![(0.5, 2.0), (1.5, 3.0)],
            dashed: false,
        }];
        let svg = latency_lines("port_programmed", &series, &l, &[], &[]);
        let t = texts(&svg);
        assert!(
            t.contains(&"SLO port_programmed.p99 &lt; 5 s: far above the data, not drawn"),
            "a limit 1,000 times above the data squeezes nothing: {t:?}"
        );
        assert!(!t.contains(&"5 s"), "{t:?}");
        let near = [Limit {
            label: "SLO port_programmed.p99 < 20 ms".into(),
            value: 20.0,
        }];
        let t2 = latency_lines("port_programmed", &series, &near, &[], &[]);
        let t = texts(&t2);
        assert!(t.contains(&"SLO port_programmed.p99 &lt; 20 ms"), "{t:?}");
        assert!(t.contains(&"20 ms"), "the axis reaches a limit near the data: {t:?}");
    }

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
            stages: vec![
                crate::summary::RateStage {
                    rate_per_s: 100.0,
                    started_s: 0.0,
                    duration_s: 10.0,
                },
                crate::summary::RateStage {
                    rate_per_s: 2500.0,
                    started_s: 10.0,
                    duration_s: 10.0,
                },
            ],
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
            latency_lines("latency", &lat, &[], &phases, &[]),
            time_lines("load", "requests per second", &rate, &phases, &[]),
            goal_state_traffic(&msgs, &mb, &phases, &[]),
        ] {
            assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(300)]);
            assert!(svg.contains("ramp-200"), "the phase is named on the chart");
            let t = texts(&svg);
            assert!(
                t.contains(&"100/s") && t.contains(&"2,500/s"),
                "and its rate stages: {t:?}"
            );
            let mut sizes = 0;
            for part in svg.split("font-size=\"").skip(1) {
                let px: f64 = part.split('"').next().unwrap().parse().unwrap();
                assert!(px * 976.0 / 900.0 >= 12.0, "text of {px} units reads under 12 px");
                sizes += 1;
            }
            assert!(sizes > 5);
            assert!(!svg.contains(".0\n<") && !svg.contains("10000"), "plain ticks");
        }
        let lat = latency_lines("latency", &lat, &[], &phases, &[]);
        let texts = texts(&lat);
        assert!(texts.contains(&"1 ms") && texts.contains(&"1 s"), "{texts:?}");
        assert!(time_lines("load", "requests per second", &rate, &phases, &[]).contains("12,000"));
        // A fault that begins with a stage is written under that stage's rate, not over it.
        let crash = FaultSummary {
            kind: "crash".into(),
            start_s: 10.0,
            end_s: Some(15.0),
            ..FaultSummary::default()
        };
        let svg = time_lines("load", "requests per second", &rate, &phases, &[crash]);
        let y_of = |label: &str| -> f64 {
            let end = svg.find(&format!(">\n{label}\n</text>")).expect(label);
            let start = svg[..end].rfind("<text").unwrap();
            let y = svg[start..].split(" y=\"").nth(1).unwrap();
            y.split('"').next().unwrap().parse().unwrap()
        };
        let (fault, stage) = (y_of("crash"), y_of("2,500/s"));
        assert!(
            fault - stage >= 16.0,
            "the fault's kind at y {fault}, the stage's rate at y {stage}"
        );
    }
}
