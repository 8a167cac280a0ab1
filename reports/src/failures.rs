//! `failures.csv`: failed operations per second of the run by when they started, per reason
//! (the ledger's outcomes other than `ok`), for the report's failures-over-time chart.

use std::path::Path;

use crate::Error;
use crate::csvfile::{CsvWriter, field, read_rows};

const HEADER: &str = "second,reason,count";

/// Failed operations that started in one second, for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRow {
    /// Second since the run's start.
    pub second: u64,
    /// Outcome (`agent_error`, `api_timeout`, …).
    pub reason: String,
    /// Operations.
    pub count: u64,
}

/// Writes `rows` (second, reason, count) to `path`.
pub fn write(path: &Path, rows: &[(u64, &str, u64)]) -> Result<(), Error> {
    let mut w = CsvWriter::create(path, HEADER)?;
    for (second, reason, count) in rows {
        w.record([second.to_string(), (*reason).to_owned(), count.to_string()])?;
    }
    w.flush()
}

/// Reads `path`; a folder written before the file existed has none, and reads as empty.
pub fn read(path: &Path) -> Result<Vec<FailureRow>, Error> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let (_, rows) = read_rows(path, &[HEADER])?;
    rows.into_iter()
        .map(|(line, f)| {
            if f[1].is_empty() || !f[1].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::format(
                    path,
                    format!("line {line}: reason `{}` is not a name", f[1]),
                ));
            }
            Ok(FailureRow {
                second: field(path, line, "second", &f[0])?,
                reason: f[1].clone(),
                count: field(path, line, "count", &f[2])?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_bad_lines_are_named() {
        let dir = std::env::temp_dir().join(format!("failures-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("failures.csv");
        write(&p, &[(3, "agent_error", 7), (4, "api_timeout", 1)]).unwrap();
        let rows = read(&p).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            FailureRow {
                second: 3,
                reason: "agent_error".into(),
                count: 7
            }
        );
        std::fs::write(&p, "second,reason,count\n1,x,y\n").unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("count"), "{e}");
        assert!(read(&dir.join("none.csv")).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
