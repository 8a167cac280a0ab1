//! A run folder read back whole, for rendering and comparing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use crate::hlog;
use crate::samples::{self, AgentSample, HostRow};
use crate::summary::Summary;
use crate::{Error, files};

/// What the charts need of one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalStats {
    /// Start, s since the run started.
    pub start_s: f64,
    /// Length, s.
    pub length_s: f64,
    /// Samples.
    pub count: u64,
    /// Sum of the values (bytes in the interval, for a size metric).
    pub sum: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

/// One measured interval of one metric, kept for resampling: its recorded values with their
/// counts, in value order.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredInterval {
    /// Repeat of the phase it fell in (1 without `--repeat`).
    pub repeat: u32,
    /// Length, s.
    pub length_s: f64,
    /// (value, count) of every recorded bucket, values ascending.
    pub values: Vec<(u64, u64)>,
}

/// Everything in a run folder.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The folder.
    pub dir: PathBuf,
    /// `summary.json`.
    pub summary: Summary,
    /// `intervals.hlog` condensed, by metric, in time order.
    pub intervals: BTreeMap<String, Vec<IntervalStats>>,
    /// Each metric over the measured phases: the phases' own histograms merged (from
    /// `phases.hlog`), so every chart drawn from it agrees with the summary's tables.
    pub measured: BTreeMap<String, Histogram<u64>>,
    /// Each metric's intervals inside the measured phases, for the comparison's bootstrap.
    pub measured_intervals: BTreeMap<String, Vec<MeasuredInterval>>,
    /// `generator.csv` (empty for folders written before it existed).
    pub health: Vec<crate::health::HealthRow>,
    /// `agent-samples.csv`.
    pub samples: Vec<AgentSample>,
    /// `hosts.csv`.
    pub hosts: Vec<HostRow>,
    /// The histogram logs whose last line was cut mid-write (and left out).
    pub cut_logs: Vec<&'static str>,
    /// `failures.csv` (empty for folders written before it existed).
    pub failures: Vec<crate::failures::FailureRow>,
}

impl RunData {
    /// Reads a run folder; a missing or corrupt file is an error naming it.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        if !dir.is_dir() {
            return Err(Error::format(dir, "not a run folder (no such directory)"));
        }
        let summary = Summary::read(dir)?;
        let spans: Vec<(f64, f64, u32)> = summary
            .phases
            .iter()
            .filter(|p| p.kind == "load")
            .map(|p| (p.started_s, p.started_s + p.duration_s, p.repeat.unwrap_or(1)))
            .collect();
        let mut intervals: BTreeMap<String, Vec<IntervalStats>> = BTreeMap::new();
        let mut measured_intervals: BTreeMap<String, Vec<MeasuredInterval>> = BTreeMap::new();
        // Intervals close at phase boundaries, so an interval lies in one phase at most.
        let span_of = |start_s: f64, length_s: f64| {
            let mid = start_s + length_s / 2.0;
            spans.iter().find(|(a, b, _)| mid >= *a && mid <= *b).map(|s| s.2)
        };
        let mut cut_logs = Vec::new();
        let intervals_ending = hlog::for_each(&dir.join(files::INTERVALS), |i| {
            let h = &i.histogram;
            intervals.entry(i.metric.clone()).or_default().push(IntervalStats {
                start_s: i.start_s,
                length_s: i.length_s,
                count: h.len(),
                sum: h.mean() * h.len() as f64,
                p50: h.value_at_quantile(0.5),
                p90: h.value_at_quantile(0.9),
                p99: h.value_at_quantile(0.99),
                max: h.max(),
            });
            if let Some(repeat) = span_of(i.start_s, i.length_s)
                && !h.is_empty()
            {
                measured_intervals
                    .entry(i.metric.clone())
                    .or_default()
                    .push(MeasuredInterval {
                        repeat,
                        length_s: i.length_s,
                        values: h
                            .iter_recorded()
                            .map(|v| (h.highest_equivalent(v.value_iterated_to()), v.count_at_value()))
                            .collect(),
                    });
            }
        })?;
        if intervals_ending == hlog::Ending::Cut {
            cut_logs.push(files::INTERVALS);
        }
        // The measured phases' own histograms, tagged `INDEX:metric`.
        let load: Vec<usize> = summary
            .phases
            .iter()
            .enumerate()
            .filter(|(_, p)| p.kind == "load")
            .map(|(i, _)| i)
            .collect();
        let mut measured: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
        let phases_log = dir.join(files::PHASES);
        if phases_log.is_file() {
            let phases_ending = hlog::for_each(&phases_log, |i| {
                let Some((idx, metric)) = i.metric.split_once(':') else {
                    return;
                };
                if !idx.parse::<usize>().is_ok_and(|x| load.contains(&x)) {
                    return;
                }
                match measured.get_mut(metric) {
                    Some(m) => {
                        let _ = m.add(&i.histogram);
                    }
                    None => {
                        let mut m = i.histogram;
                        m.auto(true);
                        measured.insert(metric.to_owned(), m);
                    }
                }
            })?;
            if phases_ending == hlog::Ending::Cut {
                cut_logs.push(files::PHASES);
            }
        }
        for v in intervals.values_mut() {
            v.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        }
        Ok(Self {
            summary,
            intervals,
            measured,
            measured_intervals,
            health: crate::health::read(&dir.join(files::GENERATOR))?,
            samples: samples::read_agent_samples(&dir.join(files::AGENT_SAMPLES))?,
            hosts: samples::read_hosts(&dir.join(files::HOSTS))?,
            cut_logs,
            failures: crate::failures::read(&dir.join(files::FAILURES))?,
            dir: dir.to_owned(),
        })
    }

    /// The intervals of `metric` (empty when it has none).
    pub fn series(&self, metric: &str) -> &[IntervalStats] {
        self.intervals.get(metric).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `metric` over the measured phases (the phases' own histograms merged).
    pub fn measured_histogram(&self, metric: &str) -> Option<&Histogram<u64>> {
        self.measured.get(metric)
    }
}
