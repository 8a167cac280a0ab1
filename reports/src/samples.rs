//! The CSV files of a run folder: one row per agent message (`agent-samples.csv`) and one per
//! host (`hosts.csv`). Plain CSV with a header line, numbers only besides the host address,
//! so that a spreadsheet or pandas reads them as they are.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::Error;
use crate::csvfile::{CsvWriter, field, read_rows};

/// One goal-state message as an agent processed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentSample {
    /// When the agent finished it, s since the run started.
    pub t_s: f64,
    /// The agent's host.
    pub host: Ipv4Addr,
    /// Encoded size.
    pub bytes: u64,
    /// Neighbor states carried.
    pub neighbors: u64,
    /// Port states carried.
    pub ports: u64,
    /// The agent's own total time (decode + apply + simulated programming), µs.
    pub processing_us: u64,
    /// Of which decoding, µs.
    pub decode_us: u64,
    /// Of which applying to host state, µs.
    pub apply_us: u64,
    /// The agent thread's CPU time over decode + apply, µs: below `decode_us + apply_us` by the
    /// time the thread waited for a core. `None` in run folders written before it was recorded.
    pub cpu_us: Option<u64>,
}

/// Header of `agent-samples.csv`.
pub const AGENT_SAMPLES_HEADER: &str = "t_s,host,bytes,neighbors,ports,processing_us,decode_us,apply_us,cpu_us";

/// The header before `cpu_us` was added; such files are still read.
const AGENT_SAMPLES_HEADER_V1: &str = "t_s,host,bytes,neighbors,ports,processing_us,decode_us,apply_us";

/// Per-host totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRow {
    /// The host.
    pub host: Ipv4Addr,
    /// Messages it processed.
    pub messages: u64,
    /// Bytes it received.
    pub bytes: u64,
    /// Neighbor states it received.
    pub neighbors: u64,
}

/// Header of `hosts.csv`.
pub const HOSTS_HEADER: &str = "host,messages,bytes,neighbors";

/// Streams agent samples to CSV.
#[derive(Debug)]
pub struct SampleWriter(CsvWriter);

impl SampleWriter {
    /// Creates the file with its header.
    pub fn create(path: &Path) -> Result<Self, Error> {
        CsvWriter::create(path, AGENT_SAMPLES_HEADER).map(Self)
    }

    /// Appends one row.
    pub fn write(&mut self, s: &AgentSample) -> Result<(), Error> {
        self.0.line(format_args!(
            "{:.6},{},{},{},{},{},{},{},{}",
            s.t_s,
            s.host,
            s.bytes,
            s.neighbors,
            s.ports,
            s.processing_us,
            s.decode_us,
            s.apply_us,
            s.cpu_us.map(|c| c.to_string()).unwrap_or_default()
        ))
    }

    /// Flushes.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.0.flush()
    }
}

/// Writes `hosts.csv`.
pub fn write_hosts(path: &Path, rows: &[HostRow]) -> Result<(), Error> {
    let mut out = CsvWriter::create(path, HOSTS_HEADER)?;
    for r in rows {
        out.line(format_args!("{},{},{},{}", r.host, r.messages, r.bytes, r.neighbors))?;
    }
    out.flush()
}

fn host(path: &Path, line: usize, v: &str) -> Result<Ipv4Addr, Error> {
    v.parse()
        .map_err(|_| Error::format(path, format!("line {line}: host `{v}` is not an IPv4 address")))
}

/// Reads `agent-samples.csv`.
pub fn read_agent_samples(path: &Path) -> Result<Vec<AgentSample>, Error> {
    let (version, rows) = read_rows(path, &[AGENT_SAMPLES_HEADER, AGENT_SAMPLES_HEADER_V1])?;
    rows.into_iter()
        .map(|(n, f)| {
            Ok(AgentSample {
                t_s: field(path, n, "t_s", &f[0])?,
                host: host(path, n, &f[1])?,
                bytes: field(path, n, "bytes", &f[2])?,
                neighbors: field(path, n, "neighbors", &f[3])?,
                ports: field(path, n, "ports", &f[4])?,
                processing_us: field(path, n, "processing_us", &f[5])?,
                decode_us: field(path, n, "decode_us", &f[6])?,
                apply_us: field(path, n, "apply_us", &f[7])?,
                cpu_us: match f.get(8).filter(|_| version == 0) {
                    Some(v) if !v.is_empty() => Some(field(path, n, "cpu_us", v)?),
                    _ => None,
                },
            })
        })
        .collect()
}

/// Reads `hosts.csv`.
pub fn read_hosts(path: &Path) -> Result<Vec<HostRow>, Error> {
    read_rows(path, &[HOSTS_HEADER])?
        .1
        .into_iter()
        .map(|(n, f)| {
            Ok(HostRow {
                host: host(path, n, &f[0])?,
                messages: field(path, n, "messages", &f[1])?,
                bytes: field(path, n, "bytes", &f[2])?,
                neighbors: field(path, n, "neighbors", &f[3])?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_hosts_round_trip_and_bad_lines_are_named() {
        let dir = std::env::temp_dir().join(format!("samples-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.csv");
        let s = AgentSample {
            t_s: 1.5,
            host: Ipv4Addr::new(127, 1, 0, 2),
            bytes: 1000,
            neighbors: 3,
            ports: 1,
            processing_us: 120,
            decode_us: 20,
            apply_us: 30,
            cpu_us: Some(45),
        };
        let mut w = SampleWriter::create(&p).unwrap();
        w.write(&s).unwrap();
        w.flush().unwrap();
        drop(w);
        assert_eq!(read_agent_samples(&p).unwrap(), vec![s]);
        let h = dir.join("h.csv");
        let rows = [HostRow {
            host: Ipv4Addr::new(127, 1, 0, 9),
            messages: 4,
            bytes: 5,
            neighbors: 6,
        }];
        write_hosts(&h, &rows).unwrap();
        assert_eq!(read_hosts(&h).unwrap(), rows);
        std::fs::write(&h, format!("{HOSTS_HEADER}\n127.0.0.1,1,x,3\n")).unwrap();
        let e = read_hosts(&h).unwrap_err().to_string();
        assert!(
            e.contains("h.csv") && e.contains("line 2") && e.contains("bytes"),
            "{e}"
        );
        // A folder written before `cpu_us` existed still reads, without it.
        std::fs::write(
            &p,
            format!("{AGENT_SAMPLES_HEADER_V1}\n1.5,127.1.0.2,1000,3,1,120,20,30\n"),
        )
        .unwrap();
        assert_eq!(read_agent_samples(&p).unwrap(), vec![AgentSample { cpu_us: None, ..s }]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
