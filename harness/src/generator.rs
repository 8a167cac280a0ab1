//! Judging the load generator itself: did it send what was due, on time, on a host with CPU to
//! spare? A generator that fell behind offered less load than the scenario claims, and one on a
//! saturated host measures its own queueing; either way the run's figures say less than they
//! seem to, and the run says so (and fails under `--strict-generator`).

use reports::health::HealthRow;
use reports::summary::{GeneratorHealth, Stats};

use crate::record::{PhaseKind, PhaseRecord};

/// Share of due requests left unsent above which the generator fell behind. Small: a scheduler
/// a tick late at the very end of a phase leaves a few requests of a high rate unsent.
pub const MAX_UNSENT: f64 = 0.01;
/// 99th-percentile send lag above which the generator fell behind, µs.
pub const MAX_SEND_LAG_US: u64 = 100_000;
/// Load average per CPU above which the host was saturated.
pub const MAX_LOAD_PER_CPU: f64 = 1.5;
/// Share of the host's CPUs this process may use before the host counts as saturated.
pub const MAX_PROCESS_CPU: f64 = 0.9;
/// CPU steal above which the host was saturated (a busy hypervisor).
pub const MAX_STEAL: f64 = 0.1;

/// Judges the measured phases (`Load` kind) and the health rows that fall in them.
pub fn assess(phases: &[PhaseRecord], rows: &[HealthRow], now: std::time::Duration, cores: usize) -> GeneratorHealth {
    let load: Vec<&PhaseRecord> = phases.iter().filter(|p| p.kind == PhaseKind::Load).collect();
    let due: u64 = load.iter().map(|p| p.due).sum();
    let sent: u64 = load.iter().map(|p| p.requests).sum();
    let unsent: u64 = load.iter().map(|p| p.unsent).sum();
    let mut lag = hdrhistogram::Histogram::<u64>::new(3).expect("3 significant digits is valid");
    for p in &load {
        if let Some(h) = p.histogram(reports::summary::metric::SEND_LAG) {
            let _ = lag.add(h);
        }
    }
    let send_lag = Stats::of(&lag);
    let spans: Vec<(f64, f64)> = load
        .iter()
        .map(|p| (p.started.as_secs_f64(), (p.started + p.length(now)).as_secs_f64()))
        .collect();
    let measured: Vec<&HealthRow> = rows
        .iter()
        .filter(|r| {
            let mid = r.start_s + r.length_s / 2.0;
            spans.iter().any(|(a, b)| mid >= *a && mid <= *b)
        })
        .collect();
    let secs: f64 = measured.iter().map(|r| r.length_s).sum();
    let weighted = |f: fn(&HealthRow) -> f64| {
        if secs > 0.0 {
            measured.iter().map(|r| f(r) * r.length_s).sum::<f64>() / secs
        } else {
            0.0
        }
    };
    let process_cpu = weighted(|r| r.process_cpu);
    let load_avg = weighted(|r| r.load1);
    let steal = weighted(|r| r.steal);
    let cores = cores.max(1);
    let mut reasons = Vec::new();
    let sent_by_deadline = due.saturating_sub(unsent);
    let fell_behind_unsent = due > 0 && unsent as f64 > due as f64 * MAX_UNSENT;
    let fell_behind_lag = send_lag.count > 0 && send_lag.p99 > MAX_SEND_LAG_US;
    if fell_behind_unsent {
        // What the open phases asked for, beside what they sent by their deadlines.
        let open: Vec<&&PhaseRecord> = load.iter().filter(|p| p.due > 0).collect();
        let secs: f64 = open.iter().map(|p| p.length(now).as_secs_f64()).sum::<f64>().max(1e-9);
        let offered_rps: f64 = open
            .iter()
            .map(|p| p.plan.offered_rps().unwrap_or(0.0) * p.length(now).as_secs_f64())
            .sum::<f64>()
            / secs;
        let sent_rps = sent_by_deadline as f64 / secs;
        reasons.push(format!(
            "offered {}, sent {}: the generator fell behind ({} of {} due requests never sent)",
            reports::units::per_s(offered_rps),
            reports::units::per_s(sent_rps),
            reports::units::thousands(unsent as i64),
            reports::units::thousands(due as i64)
        ));
    }
    if fell_behind_lag {
        reasons.push(format!(
            "requests were sent late: send lag p99 {} (more than {})",
            reports::units::duration_us(send_lag.p99 as f64),
            reports::units::duration_us(MAX_SEND_LAG_US as f64)
        ));
    }
    let mut saturated = false;
    if load_avg > MAX_LOAD_PER_CPU * cores as f64 {
        saturated = true;
        reasons.push(format!("host load {load_avg:.1} on {cores} CPUs"));
    }
    if process_cpu > MAX_PROCESS_CPU * cores as f64 {
        saturated = true;
        reasons.push(format!(
            "this process used {:.0} % of the host's {cores} CPUs",
            process_cpu / cores as f64 * 100.0
        ));
    }
    if steal > MAX_STEAL {
        saturated = true;
        reasons.push(format!("CPU steal {:.0} %", steal * 100.0));
    }
    GeneratorHealth {
        due,
        sent,
        unsent,
        send_lag,
        process_cpu,
        load: load_avg,
        steal,
        cores,
        fell_behind: fell_behind_unsent || fell_behind_lag,
        saturated,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::record::Recorder;

    fn row(start_s: f64, cpu: f64, load1: f64, steal: f64) -> HealthRow {
        HealthRow {
            start_s,
            length_s: 0.01,
            process_cpu: cpu,
            load1,
            steal,
            ..Default::default()
        }
    }

    /// A recorder with one ended load phase: `due` requests due, `sent` sent `lag_us` late
    /// each, `unsent` never sent. Returns it with the time the phase was assessed at.
    fn recorded(due: u64, sent: u64, lag_us: u64, unsent: u64) -> (Recorder, Duration) {
        let r = Recorder::new(std::time::Instant::now(), std::time::SystemTime::now(), None).unwrap();
        let p = r.begin_phase("load", PhaseKind::Load, "open".into(), None);
        r.due(p, due);
        for _ in 0..sent {
            r.issued(p, Some(lag_us));
        }
        r.unsent(p, unsent);
        std::thread::sleep(Duration::from_millis(20));
        r.end_phase();
        let now = r.elapsed();
        (r, now)
    }

    #[test]
    fn unsent_requests_and_a_busy_host_are_named_with_their_numbers() {
        let (r, now) = recorded(1000, 600, 1_000, 400);
        let h = r.with_phases(|ps| {
            let end = ps[0].length(now).as_secs_f64();
            assess(ps, &[row(0.0, 0.5, 7.1, 0.0), row(end + 5.0, 0.1, 0.1, 0.0)], now, 2)
        });
        assert!(h.fell_behind && h.saturated, "{h:?}");
        assert_eq!((h.due, h.sent, h.unsent), (1000, 600, 400));
        assert!(h.reasons[0].contains("the generator fell behind"), "{:?}", h.reasons);
        assert!(
            h.reasons.iter().any(|r| r == "host load 7.1 on 2 CPUs"),
            "{:?}",
            h.reasons
        );
    }

    #[test]
    fn a_generator_that_kept_up_on_a_quiet_host_is_healthy() {
        let (r, now) = recorded(1000, 1000, 2_000, 3);
        let h = r.with_phases(|ps| assess(ps, &[row(0.0, 0.7, 1.2, 0.01)], now, 2));
        assert!(!h.fell_behind && !h.saturated, "{h:?}");
        assert!(h.reasons.is_empty());
        assert_eq!(h.send_lag.count, 1000);
    }
}
