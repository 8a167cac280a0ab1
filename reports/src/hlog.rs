//! `intervals.hlog`: one histogram per metric per interval, in the HdrHistogram interval-log
//! format (V2 compressed), so that `HistogramLogProcessor` and other HdrHistogram tools read it.
//!
//! Each histogram carries a `Tag=` of its metric name (`api`, `port_programmed` …); start
//! timestamps are seconds since the run started; latency values are µs (max value divisor 1).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

use crate::Error;

/// Streams interval histograms to a file as they close, so a run that stops early keeps every
/// finished interval.
pub struct HlogWriter {
    path: PathBuf,
    out: BufWriter<File>,
    serializer: V2DeflateSerializer,
}

impl std::fmt::Debug for HlogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlogWriter").field("path", &self.path).finish()
    }
}

impl HlogWriter {
    /// Creates the file and writes the header; `start` is the run's wall-clock start.
    pub fn create(path: &Path, start: std::time::SystemTime, comment: &str) -> Result<Self, Error> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut out = BufWriter::new(file);
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment(comment)
            .add_comment("values in microseconds (latencies) or bytes/counts (goal_state_*); Tag = metric")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut out, &mut serializer)
            .map_err(|e| Error::io(path, e))?;
        writeln!(
            out,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )
        .map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.to_owned(),
            out,
            serializer,
        })
    }

    /// Appends one interval of `metric`, starting `start` after the run began.
    pub fn write(&mut self, metric: &str, start: Duration, length: Duration, h: &Histogram<u64>) -> Result<(), Error> {
        let tag = Tag::new(metric).ok_or_else(|| Error::format(&self.path, format!("bad tag `{metric}`")))?;
        // An empty builder writes no header: this only formats one interval line.
        let mut w = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut self.out, &mut self.serializer)
            .map_err(|e| Error::io(&self.path, e))?;
        w.write_histogram(h, start, length, Some(tag))
            .map_err(|e| Error::format(&self.path, format!("{e}")))
    }

    /// Flushes what was written.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// One interval read back.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Metric (the tag).
    pub metric: String,
    /// Start, s since the run started.
    pub start_s: f64,
    /// Length, s.
    pub length_s: f64,
    /// The histogram.
    pub histogram: Histogram<u64>,
}

/// How a log ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// On a whole line.
    Whole,
    /// In the middle of a line: the writer was stopped while writing it (a killed run, a full
    /// disk). The partial line was left out; everything before it was read.
    Cut,
}

/// Reads every tagged interval of a log.
pub fn read(path: &Path) -> Result<Vec<Interval>, Error> {
    let mut out = Vec::new();
    for_each(path, |i| out.push(i))?;
    Ok(out)
}

/// Calls `f` with each tagged interval of a log in turn, without holding them all: a long run
/// has tens of thousands of histograms. A last line cut mid-write is left out and said
/// ([`Ending::Cut`]); a malformed whole line is an error naming its entry.
pub fn for_each(path: &Path, mut f: impl FnMut(Interval)) -> Result<Ending, Error> {
    let mut bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let ending = if bytes.last().is_some_and(|b| *b != b'\n') {
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        bytes.truncate(whole);
        Ending::Cut
    } else {
        Ending::Whole
    };
    let mut deserializer = Deserializer::new();
    for (i, entry) in IntervalLogIterator::new(&bytes).enumerate() {
        let entry = entry.map_err(|e| Error::format(path, format!("entry {}: {e:?}", i + 1)))?;
        let LogEntry::Interval(ih) = entry else { continue };
        let Some(tag) = ih.tag() else { continue };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(ih.encoded_histogram().trim())
            .map_err(|e| Error::format(path, format!("entry {}: {e}", i + 1)))?;
        let histogram: Histogram<u64> = deserializer
            .deserialize(&mut raw.as_slice())
            .map_err(|e| Error::format(path, format!("entry {}: {e:?}", i + 1)))?;
        f(Interval {
            metric: tag.as_str().to_owned(),
            start_s: ih.start_timestamp().as_secs_f64(),
            length_s: ih.duration().as_secs_f64(),
            histogram,
        });
    }
    Ok(ending)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_trip_with_tags_and_times() {
        let dir = std::env::temp_dir().join(format!("hlog-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.hlog");
        let mut w = HlogWriter::create(&path, std::time::SystemTime::now(), "test").unwrap();
        let mut a = Histogram::<u64>::new(3).unwrap();
        for v in [10, 20, 30_000] {
            a.record(v).unwrap();
        }
        let mut b = Histogram::<u64>::new(3).unwrap();
        b.record(7).unwrap();
        w.write("api", Duration::from_secs(0), Duration::from_secs(1), &a)
            .unwrap();
        w.write("port_programmed", Duration::from_secs(1), Duration::from_secs(1), &b)
            .unwrap();
        w.flush().unwrap();
        drop(w);
        let back = read(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].metric, "api");
        assert_eq!(back[0].histogram.len(), 3);
        assert_eq!(back[0].histogram.max(), a.max());
        assert_eq!(back[1].metric, "port_programmed");
        assert!((back[1].start_s - 1.0).abs() < 1e-6);
        assert_eq!(back[1].histogram.min(), 7);
        assert_eq!(for_each(&path, drop).unwrap(), Ending::Whole);

        // Cut in the middle of a third line: the two whole ones are read, and the cut is said.
        let whole = std::fs::read(&path).unwrap();
        let mut w = HlogWriter::create(&path, std::time::SystemTime::now(), "test").unwrap();
        w.write("api", Duration::from_secs(0), Duration::from_secs(1), &a)
            .unwrap();
        w.flush().unwrap();
        drop(w);
        let one = std::fs::read(&path).unwrap();
        let last_line = &one[one[..one.len() - 1].iter().rposition(|b| *b == b'\n').unwrap() + 1..];
        let mut cut = whole.clone();
        cut.extend_from_slice(&last_line[..last_line.len() / 2]);
        std::fs::write(&path, &cut).unwrap();
        let mut n = 0;
        assert_eq!(for_each(&path, |_| n += 1).unwrap(), Ending::Cut);
        assert_eq!(n, 2);

        // A malformed whole line is still an error, naming its entry.
        let mut bad = whole;
        bad.extend_from_slice(b"Tag=api,0.000,1.000,1.0,notbase64!!\n");
        std::fs::write(&path, &bad).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("x.hlog") && e.contains("entry"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
