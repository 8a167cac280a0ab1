//! The run folder of an alcor-scale run, and what is made from it.
//!
//! `alcor-scale run` writes a folder; this crate owns its format ([`summary`], [`hlog`],
//! [`samples`]) so that the harness writes exactly what reports can read and reports never
//! depends on the harness. A run folder holds:
//!
//! | file | what |
//! |---|---|
//! | `summary.json` | [`summary::Summary`]: every figure of the run, versioned ([`summary::SCHEMA_VERSION`]) |
//! | `intervals.hlog` | per-metric histograms per 1 s interval, HdrHistogram interval-log format, tagged by metric |
//! | `agent-samples.csv` | one row per goal-state message an agent processed ([`samples::AgentSample`]) |
//! | `hosts.csv` | messages and bytes per host, and on the MQ southbound its largest lag and longest wait ([`samples::HostRow`]) |
//! | `generator.csv` | the load generator's health per interval ([`health::HealthRow`]) |
//! | `phases.hlog` | each phase's own histogram of every metric, tagged `PHASE/metric`: what the tables and percentile charts are drawn from |
//! | `scenario.toml` | the scenario as run, after `--set` overrides |
//!
//! Not here: running anything. This crate reads and writes files.

pub mod bootstrap;
pub mod charts;
pub mod compare;
mod csvfile;
pub mod failures;
pub mod health;
pub mod hlog;
pub mod html;
pub mod junit;
pub mod rundata;
pub mod samples;
pub mod summary;
#[doc(hidden)]
pub mod testing;
pub mod units;
pub mod verdict;

pub use html::render;

use std::path::{Path, PathBuf};

/// File names inside a run folder.
pub mod files {
    /// The summary.
    pub const SUMMARY: &str = "summary.json";
    /// Interval histograms.
    pub const INTERVALS: &str = "intervals.hlog";
    /// Per-message agent samples.
    pub const AGENT_SAMPLES: &str = "agent-samples.csv";
    /// Per-host load.
    pub const HOSTS: &str = "hosts.csv";
    /// The scenario as run.
    pub const SCENARIO: &str = "scenario.toml";
    /// Generator health per interval.
    pub const GENERATOR: &str = "generator.csv";
    /// Each phase's histograms.
    pub const PHASES: &str = "phases.hlog";
    /// The HTML report.
    pub const REPORT: &str = "report.html";
    /// Failed operations per second by reason (the ledger's).
    pub const FAILURES: &str = "failures.csv";
}

/// Why a run folder could not be read or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not in the expected format.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, with a line number where there is one.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn format(path: &Path, message: impl Into<String>) -> Self {
        Self::Format {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}
