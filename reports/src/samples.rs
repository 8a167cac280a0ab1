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
    /// MQ southbound: the most messages waiting in the broker behind one it received.
    pub lag_max: Option<u64>,
    /// MQ southbound: the longest a message waited in the broker for it, µs.
    pub waited_max_us: Option<u64>,
}

/// Header of `hosts.csv`.
pub const HOSTS_HEADER: &str = "host,messages,bytes,neighbors,lag_max,waited_max_us";

/// The header before the MQ columns were added; such files are still read.
pub const HOSTS_HEADER_V1: &str = "host,messages,bytes,neighbors";

/// Most agent samples a run folder keeps: a uniform sample of this many messages, whatever
/// the run's length (a long churn produced ~4.6 MB of samples a minute when every one was
/// kept). The histograms of every metric stay complete in the interval logs.
pub const MAX_AGENT_SAMPLES: usize = 100_000;

/// How often the kept samples are written out while a run goes: a run cut short loses at
/// most this much of them (never any histogram).
const REWRITE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Keeps a uniform random sample of at most `cap` agent samples (reservoir sampling, Vitter's
/// algorithm R, seeded so that a run's sample is reproducible) and writes it to CSV, sorted by
/// time, every [`REWRITE_EVERY`] and at the end. Written here: the algorithm is a dozen lines,
/// and the crates that offer it sample iterators, not a stream that is also written out.
#[derive(Debug)]
pub struct SampleWriter {
    path: std::path::PathBuf,
    cap: usize,
    seen: u64,
    kept: Vec<AgentSample>,
    rng: rand::rngs::StdRng,
    dirty: bool,
    written: std::time::Instant,
}

impl SampleWriter {
    /// Creates the file with its header, keeping at most [`MAX_AGENT_SAMPLES`].
    pub fn create(path: &Path) -> Result<Self, Error> {
        Self::with_cap(path, MAX_AGENT_SAMPLES)
    }

    /// As [`SampleWriter::create`], keeping at most `cap`.
    pub fn with_cap(path: &Path, cap: usize) -> Result<Self, Error> {
        use rand::SeedableRng;
        CsvWriter::create(path, AGENT_SAMPLES_HEADER)?.flush()?;
        Ok(Self {
            path: path.to_owned(),
            cap: cap.max(1),
            seen: 0,
            kept: Vec::new(),
            rng: rand::rngs::StdRng::seed_from_u64(0x5a3b1e5),
            dirty: false,
            written: std::time::Instant::now(),
        })
    }

    /// Offers one sample: kept while there is room, then in place of a random kept one with
    /// probability cap / seen.
    pub fn write(&mut self, s: &AgentSample) -> Result<(), Error> {
        use rand::Rng;
        self.seen += 1;
        if self.kept.len() < self.cap {
            self.kept.push(*s);
            self.dirty = true;
        } else {
            let j = self.rng.random_range(0..self.seen);
            if (j as usize) < self.cap {
                self.kept[j as usize] = *s;
                self.dirty = true;
            }
        }
        Ok(())
    }

    /// Samples offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Writes the kept samples out if they changed and the last write is old enough.
    pub fn flush(&mut self) -> Result<(), Error> {
        if self.dirty && self.written.elapsed() >= REWRITE_EVERY {
            self.write_out()?;
        }
        Ok(())
    }

    /// Writes the kept samples out now (at the end of a run).
    pub fn finish(&mut self) -> Result<(), Error> {
        if self.dirty {
            self.write_out()?;
        }
        Ok(())
    }

    /// Replaces the file at once (written aside, then renamed), so that a reader never sees
    /// half of it.
    fn write_out(&mut self) -> Result<(), Error> {
        let mut rows = self.kept.clone();
        rows.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        let tmp = self.path.with_extension("csv.tmp");
        let mut w = CsvWriter::create(&tmp, AGENT_SAMPLES_HEADER)?;
        for s in &rows {
            w.record([
                format!("{:.6}", s.t_s),
                s.host.to_string(),
                s.bytes.to_string(),
                s.neighbors.to_string(),
                s.ports.to_string(),
                s.processing_us.to_string(),
                s.decode_us.to_string(),
                s.apply_us.to_string(),
                s.cpu_us.map(|c| c.to_string()).unwrap_or_default(),
            ])?;
        }
        w.flush()?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        self.dirty = false;
        self.written = std::time::Instant::now();
        Ok(())
    }
}

/// Writes `hosts.csv`.
pub fn write_hosts(path: &Path, rows: &[HostRow]) -> Result<(), Error> {
    let mut out = CsvWriter::create(path, HOSTS_HEADER)?;
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        out.record([
            r.host.to_string(),
            r.messages.to_string(),
            r.bytes.to_string(),
            r.neighbors.to_string(),
            opt(r.lag_max),
            opt(r.waited_max_us),
        ])?;
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
    let (version, rows) = read_rows(path, &[HOSTS_HEADER, HOSTS_HEADER_V1])?;
    let opt = |n: usize, name: &str, f: Option<&String>| match f.filter(|v| !v.is_empty() && version == 0) {
        Some(v) => field(path, n, name, v).map(Some),
        None => Ok(None),
    };
    rows.into_iter()
        .map(|(n, f)| {
            Ok(HostRow {
                host: host(path, n, &f[0])?,
                messages: field(path, n, "messages", &f[1])?,
                bytes: field(path, n, "bytes", &f[2])?,
                neighbors: field(path, n, "neighbors", &f[3])?,
                lag_max: opt(n, "lag_max", f.get(4))?,
                waited_max_us: opt(n, "waited_max_us", f.get(5))?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_samples_are_bounded_and_uniform_over_the_run() {
        let dir = std::env::temp_dir().join(format!("reservoir-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.csv");
        let mut w = SampleWriter::with_cap(&p, 1000).unwrap();
        let n = 100_000;
        for i in 0..n {
            w.write(&AgentSample {
                t_s: i as f64,
                host: Ipv4Addr::LOCALHOST,
                bytes: i,
                neighbors: 0,
                ports: 1,
                processing_us: 1,
                decode_us: 0,
                apply_us: 0,
                cpu_us: None,
            })
            .unwrap();
        }
        // Nothing written before its time; all of it at the end.
        assert!(read_agent_samples(&p).unwrap().is_empty());
        w.finish().unwrap();
        let kept = read_agent_samples(&p).unwrap();
        assert_eq!((kept.len(), w.seen()), (1000, n));
        assert!(kept.windows(2).all(|p| p[0].t_s < p[1].t_s), "sorted by time");
        // Uniform: each tenth of the run holds about a tenth of the kept samples.
        for tenth in 0..10 {
            let lo = (tenth * n / 10) as f64;
            let in_tenth = kept
                .iter()
                .filter(|s| s.t_s >= lo && s.t_s < lo + n as f64 / 10.0)
                .count();
            assert!((60..=140).contains(&in_tenth), "tenth {tenth}: {in_tenth}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

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
        w.finish().unwrap();
        drop(w);
        assert_eq!(read_agent_samples(&p).unwrap(), vec![s]);
        let h = dir.join("h.csv");
        let rows = [
            HostRow {
                host: Ipv4Addr::new(127, 1, 0, 9),
                messages: 4,
                bytes: 5,
                neighbors: 6,
                lag_max: None,
                waited_max_us: None,
            },
            HostRow {
                host: Ipv4Addr::new(127, 1, 0, 10),
                messages: 4,
                bytes: 5,
                neighbors: 6,
                lag_max: Some(7),
                waited_max_us: Some(8),
            },
        ];
        write_hosts(&h, &rows).unwrap();
        assert_eq!(read_hosts(&h).unwrap(), rows);
        // A file from before the MQ columns.
        std::fs::write(&h, format!("{HOSTS_HEADER_V1}\n127.0.0.1,1,2,3\n")).unwrap();
        assert_eq!(read_hosts(&h).unwrap()[0].lag_max, None);
        std::fs::write(&h, format!("{HOSTS_HEADER}\n127.0.0.1,1,x,3,,\n")).unwrap();
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
