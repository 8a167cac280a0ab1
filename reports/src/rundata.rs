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
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
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
    /// Each metric over the measured phases, merged from its intervals.
    pub measured: BTreeMap<String, Histogram<u64>>,
    /// `agent-samples.csv`.
    pub samples: Vec<AgentSample>,
    /// `hosts.csv`.
    pub hosts: Vec<HostRow>,
}

impl RunData {
    /// Reads a run folder; a missing or corrupt file is an error naming it.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        if !dir.is_dir() {
            return Err(Error::format(dir, "not a run folder (no such directory)"));
        }
        let summary = Summary::read(dir)?;
        let spans: Vec<(f64, f64)> = summary
            .phases
            .iter()
            .filter(|p| p.kind == "load")
            .map(|p| (p.started_s, p.started_s + p.duration_s))
            .collect();
        let mut intervals: BTreeMap<String, Vec<IntervalStats>> = BTreeMap::new();
        let mut measured: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
        hlog::for_each(&dir.join(files::INTERVALS), |i| {
            let h = &i.histogram;
            intervals.entry(i.metric.clone()).or_default().push(IntervalStats {
                start_s: i.start_s,
                length_s: i.length_s,
                count: h.len(),
                p50: h.value_at_quantile(0.5),
                p90: h.value_at_quantile(0.9),
                p99: h.value_at_quantile(0.99),
                max: h.max(),
            });
            // An interval counts for the measured phases when its middle falls in one.
            let mid = i.start_s + i.length_s / 2.0;
            if spans.iter().any(|(a, b)| mid >= *a && mid <= *b + 1.0) {
                match measured.get_mut(&i.metric) {
                    Some(m) => {
                        let _ = m.add(h);
                    }
                    None => {
                        let mut m = i.histogram.clone();
                        m.auto(true);
                        measured.insert(i.metric.clone(), m);
                    }
                }
            }
        })?;
        for v in intervals.values_mut() {
            v.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        }
        Ok(Self {
            summary,
            intervals,
            measured,
            samples: samples::read_agent_samples(&dir.join(files::AGENT_SAMPLES))?,
            hosts: samples::read_hosts(&dir.join(files::HOSTS))?,
            dir: dir.to_owned(),
        })
    }

    /// The intervals of `metric` (empty when it has none).
    pub fn series(&self, metric: &str) -> &[IntervalStats] {
        self.intervals.get(metric).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `metric` over the measured phases, merged from its intervals.
    pub fn measured_histogram(&self, metric: &str) -> Option<&Histogram<u64>> {
        self.measured.get(metric)
    }
}
