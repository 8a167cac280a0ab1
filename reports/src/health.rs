//! `generator.csv`: the load generator's own health, one row per interval: how many requests
//! were due, sent and answered, how late the open model sent them, and how busy this process
//! and the host were. A run whose generator fell behind measured less than it offered; this
//! file is where that shows, interval by interval.

use std::path::Path;

use crate::Error;
use crate::csvfile::{CsvWriter, field, read_rows};

/// One interval of generator health.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HealthRow {
    /// Start, s since the run started.
    pub start_s: f64,
    /// Length, s.
    pub length_s: f64,
    /// Open-model requests whose intended time fell in the interval.
    pub due: u64,
    /// Requests sent.
    pub sent: u64,
    /// Requests answered (success or failure).
    pub completed: u64,
    /// Requests that failed.
    pub failed: u64,
    /// 99th percentile of the open model's send lag, µs (0 without open-model sends).
    pub send_lag_p99_us: u64,
    /// CPU this process used, in cores (1.0 = one core busy for the whole interval).
    pub process_cpu: f64,
    /// The host's 1-minute load average at the interval's end.
    pub load1: f64,
    /// The host's CPU steal over the interval, as a fraction of its CPU time.
    pub steal: f64,
}

impl HealthRow {
    /// Requests offered per second: due by the open model's schedule, or, in closed phases
    /// (nothing due), sent.
    pub fn offered_per_s(&self) -> f64 {
        let asked = if self.due > 0 { self.due } else { self.sent };
        asked as f64 / self.length_s.max(1e-9)
    }

    /// Requests answered (success or failure) per second.
    pub fn completed_per_s(&self) -> f64 {
        self.completed as f64 / self.length_s.max(1e-9)
    }
}

/// Header of `generator.csv`.
pub const HEADER: &str = "start_s,length_s,due,sent,completed,failed,send_lag_p99_us,process_cpu,load1,steal";

/// Streams rows to `generator.csv`.
#[derive(Debug)]
pub struct HealthWriter(CsvWriter);

impl HealthWriter {
    /// Creates the file with its header.
    pub fn create(path: &Path) -> Result<Self, Error> {
        CsvWriter::create(path, HEADER).map(Self)
    }

    /// Appends one row and flushes: rows come once per interval, and a run cut short keeps them.
    pub fn write(&mut self, r: &HealthRow) -> Result<(), Error> {
        self.0.record([
            format!("{:.3}", r.start_s),
            format!("{:.3}", r.length_s),
            r.due.to_string(),
            r.sent.to_string(),
            r.completed.to_string(),
            r.failed.to_string(),
            r.send_lag_p99_us.to_string(),
            format!("{:.3}", r.process_cpu),
            format!("{:.2}", r.load1),
            format!("{:.4}", r.steal),
        ])?;
        self.0.flush()
    }
}

/// Reads `generator.csv`; a missing file (a run folder from before it existed) reads as empty.
pub fn read(path: &Path) -> Result<Vec<HealthRow>, Error> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        _ => {}
    }
    read_rows(path, &[HEADER])?
        .1
        .into_iter()
        .map(|(n, f)| {
            Ok(HealthRow {
                start_s: field(path, n, "start_s", &f[0])?,
                length_s: field(path, n, "length_s", &f[1])?,
                due: field(path, n, "due", &f[2])?,
                sent: field(path, n, "sent", &f[3])?,
                completed: field(path, n, "completed", &f[4])?,
                failed: field(path, n, "failed", &f[5])?,
                send_lag_p99_us: field(path, n, "send_lag_p99_us", &f[6])?,
                process_cpu: field(path, n, "process_cpu", &f[7])?,
                load1: field(path, n, "load1", &f[8])?,
                steal: field(path, n, "steal", &f[9])?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_a_bad_line_is_named() {
        let dir = std::env::temp_dir().join(format!("health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("generator.csv");
        let row = HealthRow {
            start_s: 1.0,
            length_s: 1.0,
            due: 100,
            sent: 90,
            completed: 88,
            failed: 2,
            send_lag_p99_us: 1500,
            process_cpu: 0.75,
            load1: 1.5,
            steal: 0.01,
        };
        let mut w = HealthWriter::create(&path).unwrap();
        w.write(&row).unwrap();
        assert_eq!(read(&path).unwrap(), vec![row]);
        assert!(read(&dir.join("none.csv")).unwrap().is_empty());
        std::fs::write(&path, format!("{HEADER}\n1,2,3\n")).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("3 fields"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
