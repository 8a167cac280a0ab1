//! The live progress line: phase, its load model and time in it, offered and achieved rates
//! and the p99s of the last interval, failures and ports still pending. Kept apart from
//! measuring; it only reads snapshots.

use std::io::Write;

use reports::units;

use crate::record::Progress;

/// One line of progress. Each failure kind is named apart, with its share of the requests sent.
pub fn line(p: &Progress) -> String {
    let share = |n: u64| {
        if p.requests > 0 {
            units::percent(n as f64 / p.requests as f64)
        } else {
            "-".into()
        }
    };
    let p99 = |v: Option<u64>| v.map_or_else(|| "-".into(), |us| units::duration_us(us as f64));
    let secs = p.elapsed.as_secs();
    let mut out = format!(
        "[{} · {} · {}:{:02}] offered {}  achieved {}  p99 of the last interval: api {}  programmed {}  sent {}  failed {} ({})  not converged {} ({})",
        p.phase,
        p.model,
        secs / 60,
        secs % 60,
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

/// Rewrites the progress line in place on stderr.
pub fn show(p: &Progress) {
    let mut e = std::io::stderr().lock();
    let _ = write!(e, "\r\x1b[2K{}", line(p));
    let _ = e.flush();
}

/// Ends the progress line.
pub fn finish() {
    let _ = writeln!(std::io::stderr());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_line_names_the_stage_and_shows_only_what_was_measured_lately() {
        let p = Progress {
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
        };
        let l = line(&p);
        assert!(
            l.starts_with("[teardown · open: 50/s · 1:15] offered 50/s  achieved 48.5/s"),
            "{l}"
        );
        assert!(l.contains("api 26.8 ms  programmed -"), "no samples is not 0: {l}");
        assert!(l.contains("failed 4 (1 %)") && l.ends_with("pending 3"), "{l}");
        assert!(!l.contains('\x1b'), "escape codes only in show()");
    }
}
