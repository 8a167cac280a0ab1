//! The live progress line: phase, requests, current rate, p99 so far, errors. Kept apart from
//! measuring; it only reads snapshots.

use std::io::Write;

use crate::record::Progress;

fn ms(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else {
        format!("{:.1}ms", us as f64 / 1e3)
    }
}

/// One line of progress.
pub fn line(p: &Progress) -> String {
    format!(
        "[{}] {} req  {:.0}/s  api p99 {}  programmed p99 {}  errors {}  pending {}",
        p.phase,
        p.requests,
        p.rate,
        ms(p.api_p99_us),
        ms(p.programmed_p99_us),
        p.errors,
        p.pending
    )
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
