//! The live progress display: phase, its load model and the stage running, a bar with the time
//! in it and the time left, offered and achieved rates and the p99s of the last interval,
//! failures and ports still pending. Kept apart from measuring; it only reads snapshots.
//!
//! Drawn by indicatif on standard error, and only at a terminal (the caller decides). Log
//! lines written while it is shown go through [`LogWriter`], which lifts the display, writes
//! the line and draws it again, so that nothing is spliced into it.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reports::units;

use crate::record::Progress;

/// The display being shown, if any, for [`LogWriter`].
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// `m:ss`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// The heading: phase, its model or the stage running, time in it and time left.
pub fn heading(p: &Progress) -> String {
    let what = match p.position.stage {
        Some(s) if s.of > 1 => format!("stage {}/{} at {}", s.number, s.of, units::per_s(s.rate)),
        _ => p.model.clone(),
    };
    let left = match p.position.left {
        Some(l) => format!(", {} left", clock(l)),
        None => String::new(),
    };
    format!("{} · {what} · {}{left}", p.phase, clock(p.elapsed))
}

/// The figures, on two lines that fit a terminal of 80 columns: rates and the last interval's
/// p99s, then counts. Each failure kind is named apart, with its share of the requests sent.
pub fn figures(p: &Progress) -> String {
    let share = |n: u64| {
        if p.requests > 0 {
            units::percent(n as f64 / p.requests as f64)
        } else {
            "-".into()
        }
    };
    let p99 = |v: Option<u64>| v.map_or_else(|| "-".into(), |us| units::duration_us(us as f64));
    let mut out = format!(
        "offered {}  achieved {}  last p99: api {}  programmed {}\nsent {}  failed {} ({})  not converged {} ({})",
        units::per_s(p.offered),
        units::per_s(p.rate),
        p99(p.api_p99_us),
        p99(p.programmed_p99_us),
        units::thousands(p.requests as i64),
        p.failed,
        share(p.failed),
        p.not_converged,
        share(p.not_converged),
    );
    if p.unsent > 0 {
        out.push_str(&format!("  unsent {}", p.unsent));
    }
    out.push_str(&format!("  pending {}", p.pending));
    out
}

/// The progress display: one bar that the run's ticker updates each interval.
#[derive(Debug)]
pub struct Display {
    bar: ProgressBar,
}

/// Positions of the bar: the share done, in thousandths.
const STEPS: u64 = 1000;

impl Display {
    /// Starts showing the display on standard error.
    pub fn start() -> Self {
        let bar = ProgressBar::with_draw_target(Some(STEPS), ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {wide_bar}\n{msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        *SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        Self { bar }
    }

    /// Shows a new snapshot.
    pub fn show(&self, p: &Progress) {
        self.bar.set_prefix(heading(p));
        // A phase with no length or budget (a drain, a bulk setup) has no bar to fill.
        self.bar
            .set_position(p.position.done.map_or(0, |d| (d * STEPS as f64).round() as u64));
        let lines: Vec<String> = figures(p).lines().map(|l| format!("  {l}")).collect();
        self.bar.set_message(lines.join("\n"));
    }

    /// Leaves the last snapshot on screen and stops drawing.
    pub fn finish(&self) {
        SHOWN.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.bar.abandon();
    }
}

/// A `tracing` writer for standard error that lifts the progress display, if one is shown,
/// around each log line. Written here: tracing-indicatif ties its bars to spans, and this
/// display belongs to the run, not to a span.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

/// One log line on its way to standard error.
#[derive(Debug, Default)]
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let write = || {
            let _ = std::io::stderr().lock().write_all(&self.0);
        };
        let shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match shown {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Plan, Position, Stage};

    fn progress() -> Progress {
        Progress {
            phase: "teardown".into(),
            model: "open: 50/s".into(),
            elapsed: Duration::from_secs(75),
            requests: 400,
            offered: 50.0,
            rate: 48.5,
            api_p99_us: Some(26_800),
            programmed_p99_us: None,
            failed: 4,
            not_converged: 0,
            unsent: 0,
            pending: 3,
            ..Progress::default()
        }
    }

    #[test]
    fn the_display_names_the_stage_and_shows_only_what_was_measured_lately() {
        let p = progress();
        assert_eq!(heading(&p), "teardown · open: 50/s · 1:15");
        let f = figures(&p);
        assert!(f.starts_with("offered 50/s  achieved 48.5/s"), "{f}");
        assert!(
            f.contains("last p99: api 26.8 ms  programmed -"),
            "no samples is not 0: {f}"
        );
        assert!(f.lines().all(|l| l.chars().count() <= 80), "{f}");
        assert!(f.contains("failed 4 (1 %)") && f.ends_with("pending 3"), "{f}");
        assert!(!f.contains('\x1b') && !heading(&p).contains('\x1b'));
    }

    #[test]
    fn the_stage_and_the_time_left_come_from_the_plan() {
        let plan = Plan {
            stages: vec![(100.0, Duration::from_secs(30)), (200.0, Duration::from_secs(30))],
            length: Some(Duration::from_secs(60)),
            requests: None,
        };
        let at = plan.position(Duration::from_secs(45), 6000, 200.0);
        assert_eq!(
            at,
            Position {
                stage: Some(Stage {
                    number: 2,
                    of: 2,
                    rate: 200.0
                }),
                done: Some(0.75),
                left: Some(Duration::from_secs(15))
            }
        );
        let mut p = progress();
        p.position = at;
        p.elapsed = Duration::from_secs(45);
        assert_eq!(heading(&p), "teardown · stage 2/2 at 200/s · 0:45, 0:15 left");
        // A budget: the time left at the rate of the last interval.
        let budget = Plan {
            requests: Some(1000),
            ..Plan::default()
        };
        let at = budget.position(Duration::from_secs(5), 400, 100.0);
        assert_eq!((at.done, at.left), (Some(0.4), Some(Duration::from_secs(6))));
        assert_eq!(
            Plan::default().position(Duration::from_secs(5), 1, 1.0),
            Position::default()
        );
    }
}
