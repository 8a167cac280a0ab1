//! The live progress line: phase, requests, current rate, p99 so far, errors. Kept apart from
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
    let mut out = format!(
        "[{}] {} sent  {}  api p99 {}  programmed p99 {}  failed {} ({})  not converged {} ({})",
        p.phase,
        units::thousands(p.requests as i64),
        units::per_s(p.rate),
        units::duration_us(p.api_p99_us as f64),
        units::duration_us(p.programmed_p99_us as f64),
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
