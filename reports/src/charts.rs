//! The report's charts, drawn with plotters as SVG strings that the page inlines.
//!
//! Every chart has axis descriptions with units and a legend where it has more than one series.
//! Charts never fail a report: a chart that cannot be drawn becomes a note saying why.

use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::rundata::IntervalStats;
use crate::samples::{AgentSample, HostRow};
use crate::summary::{FaultSummary, PhaseSummary, StepSearch};

/// Width and height of every chart, in SVG units (scaled to the page by CSS).
pub const SIZE: (u32, u32) = (900, 360);

/// Most points a scatter draws; beyond, it draws an even sample and says so.
pub const MAX_SCATTER: usize = 5_000;

/// Colors of series in order.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

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

fn draw_to_string(f: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> String {
    let mut out = String::new();
    let r = {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE)
            .map_err(err)
            .and_then(|()| f(&root))
            .and_then(|()| root.present().map_err(err))
    };
    match r {
        Ok(()) => out,
        Err(e) => format!("<p class=\"note\">chart not drawn: {}</p>", crate::html::escape(&e)),
    }
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
    let red = RGBColor(214, 39, 40);
    chart
        .draw_series(faults.iter().map(|f| {
            // A command or restart that took no time still gets a visible sliver.
            let end = f.end_s.unwrap_or(f.start_s).max(f.start_s + 0.2);
            Rectangle::new([(f.start_s, lo), (end, hi)], red.mix(0.13).filled())
        }))
        .map_err(err)?;
    chart
        .draw_series(faults.iter().map(|f| {
            Text::new(
                f.kind.clone(),
                (f.start_s, hi),
                ("sans-serif", 12).into_font().color(&red),
            )
        }))
        .map_err(err)?;
    Ok(())
}

/// A chart frame with the report's title font, margins and label areas.
fn frame<'a, 'b>(root: &'a DrawingArea<SVGBackend<'b>, Shift>, title: &str) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
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

fn legend<'a, C: CoordTranslate>(chart: &mut ChartContext<'a, SVGBackend<'a>, C>) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)
}

/// Lines over time (s) on a linear y axis, with phases shaded and fault windows marked.
pub fn time_lines(
    title: &str,
    y_desc: &str,
    series: &[Series],
    phases: &[PhaseSummary],
    faults: &[FaultSummary],
) -> String {
    draw_to_string(|root| {
        let (x, y) = bounds(series);
        let x = time_range(x, phases);
        let ytop = (y.1 * 1.1).max(1.0);
        let mut chart = frame(root, title)
            .build_cartesian_2d(x.0..x.1, 0.0..ytop)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time since start (s)")
            .y_desc(y_desc)
            .draw()
            .map_err(err)?;
        chart.draw_series(bands(phases, 0.0, ytop)).map_err(err)?;
        draw_faults(&mut chart, faults, 0.0, ytop)?;
        draw_lines(&mut chart, series)?;
        legend(&mut chart)
    })
}

/// Latency lines over time on a log y axis (ms), with phases shaded and fault windows marked.
pub fn latency_lines(title: &str, series: &[Series], phases: &[PhaseSummary], faults: &[FaultSummary]) -> String {
    draw_to_string(|root| {
        let (x, y) = bounds(series);
        let x = time_range(x, phases);
        let (lo, hi) = log_range(y);
        let mut chart = frame(root, title)
            .build_cartesian_2d(x.0..x.1, (lo..hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time since start (s)")
            .y_desc("latency (ms, log)")
            .y_label_formatter(&|v| format_ms(*v))
            .draw()
            .map_err(err)?;
        chart.draw_series(bands(phases, lo, hi)).map_err(err)?;
        draw_faults(&mut chart, faults, lo, hi)?;
        draw_lines(&mut chart, series)?;
        legend(&mut chart)
    })
}

fn draw_lines<'a, X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    series: &[Series],
) -> Result<()> {
    for (i, s) in series.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        let style = c.stroke_width(if s.dashed { 1 } else { 2 });
        if s.dashed {
            chart
                .draw_series(DashedLineSeries::new(s.points.iter().copied(), 6, 4, style))
                .map_err(err)?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        } else {
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(err)?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
    }
    Ok(())
}

fn format_ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{}s", trim(v / 1000.0))
    } else {
        format!("{}ms", trim(v))
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
    draw_to_string(|root| {
        let (lo, hi) = log_range(bounds(&series).1);
        let mut chart = frame(root, title)
            .build_cartesian_2d(0.0..4.0, (lo..hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(5)
            .x_label_formatter(&|x: &f64| match x.round() as i32 {
                0 => "0%".into(),
                1 => "90%".into(),
                2 => "99%".into(),
                3 => "99.9%".into(),
                _ => "99.99%".into(),
            })
            .x_desc("percentile (log 1/(1-p))")
            .y_desc("latency (ms, log)")
            .y_label_formatter(&|v| format_ms(*v))
            .draw()
            .map_err(err)?;
        draw_lines(&mut chart, &series)?;
        legend(&mut chart)
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
    draw_to_string(|root| {
        let (x, y) = bounds(&[Series {
            label: String::new(),
            points: pts.clone(),
            dashed: false,
        }]);
        let xr = (x.0.max(1.0) / 1.5)..(x.1 * 1.5).max(10.0);
        let yr = (y.0.max(0.001) / 1.5)..(y.1 * 1.5).max(0.01);
        let mut chart = frame(root, caption)
            .build_cartesian_2d(xr.clone().log_scale(), yr.clone().log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("neighbor states in the message (log)")
            .y_desc("agent processing (ms, log)")
            .y_label_formatter(&|v| format_ms(*v))
            .draw()
            .map_err(err)?;
        let c = PALETTE[0];
        chart
            .draw_series(shown.iter().map(|&(x, y)| Circle::new((x, y), 2, c.mix(0.5).filled())))
            .map_err(err)?
            .label("message")
            .legend(move |(x, y)| Circle::new((x + 9, y), 3, c.filled()));
        if let Some((a, b)) = line {
            let red = PALETTE[3];
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
                .map_err(err)?
                .label(format!("fit: {:.1} µs + {:.3} µs per neighbor", a, b))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], red.stroke_width(2)));
        }
        legend(&mut chart)
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
    draw_to_string(|root| {
        let (x, y) = bounds(&series);
        let mut chart = frame(root, title)
            .build_cartesian_2d(0.0..x.1 + 1.0, 0.0..(y.1 * 1.1).max(1.0))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("host rank")
            .y_desc(if bytes { "MB" } else { "messages" })
            .draw()
            .map_err(err)?;
        let c = PALETTE[if bytes { 1 } else { 0 }];
        chart
            .draw_series(
                series[0]
                    .points
                    .iter()
                    .map(|&(x, y)| Rectangle::new([(x - 0.4, 0.0), (x + 0.4, y)], c.mix(0.8).filled())),
            )
            .map_err(err)?
            .label(series[0].label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 12, y + 4)], c.filled()));
        legend(&mut chart)
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
    draw_to_string(|root| {
        let (x, y) = bounds(&series);
        let (lo, hi) = log_range(y);
        let mut chart = frame(root, "Latency vs offered rate (step search)")
            .build_cartesian_2d((x.0 * 0.9)..(x.1 * 1.1), (lo..hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("offered rate (requests/s)")
            .y_desc("p99 latency (ms, log)")
            .y_label_formatter(&|v| format_ms(*v))
            .draw()
            .map_err(err)?;
        for (i, s) in series.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                .map_err(err)?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(err)?;
        }
        if let Some(k) = s.knee_rps {
            let red = PALETTE[3];
            chart
                .draw_series(DashedLineSeries::new(vec![(k, lo), (k, hi)], 5, 4, red.stroke_width(2)))
                .map_err(err)?
                .label(format!("knee: {k} requests/s"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], red.stroke_width(2)));
        }
        legend(&mut chart)
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
        for text in ["api latency", "time since start (s)", "latency (ms, log)", "p99"] {
            assert!(svg.contains(text), "{text} missing");
        }
    }
}
