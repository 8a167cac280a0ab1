//! A run folder read back whole, for rendering and comparing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use crate::hlog::{self, Interval};
use crate::samples::{self, AgentSample, HostRow};
use crate::summary::Summary;
use crate::{Error, files};

/// Everything in a run folder.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The folder.
    pub dir: PathBuf,
    /// `summary.json`.
    pub summary: Summary,
    /// `intervals.hlog`, by metric, in time order.
    pub intervals: BTreeMap<String, Vec<Interval>>,
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
        let mut intervals: BTreeMap<String, Vec<Interval>> = BTreeMap::new();
        for i in hlog::read(&dir.join(files::INTERVALS))? {
            intervals.entry(i.metric.clone()).or_default().push(i);
        }
        for v in intervals.values_mut() {
            v.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        }
        Ok(Self {
            summary,
            intervals,
            samples: samples::read_agent_samples(&dir.join(files::AGENT_SAMPLES))?,
            hosts: samples::read_hosts(&dir.join(files::HOSTS))?,
            dir: dir.to_owned(),
        })
    }

    /// The intervals of `metric` (empty when it has none).
    pub fn series(&self, metric: &str) -> &[Interval] {
        self.intervals.get(metric).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `metric` over the measured phases, merged from its intervals.
    pub fn measured_histogram(&self, metric: &str) -> Option<Histogram<u64>> {
        let spans: Vec<(f64, f64)> = self
            .summary
            .phases
            .iter()
            .filter(|p| p.kind == "load")
            .map(|p| (p.started_s, p.started_s + p.duration_s))
            .collect();
        let mut out: Option<Histogram<u64>> = None;
        for i in self.series(metric) {
            let mid = i.start_s + i.length_s / 2.0;
            if spans.iter().any(|(a, b)| mid >= *a && mid <= *b + 1.0) {
                match &mut out {
                    Some(h) => {
                        let _ = h.add(&i.histogram);
                    }
                    None => {
                        let mut h = i.histogram.clone();
                        h.auto(true);
                        out = Some(h);
                    }
                }
            }
        }
        out
    }
}
