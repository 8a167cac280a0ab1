//! alcor-scale's harness: scenario files in, a run folder out.
//!
//! Data flows one way: [`scenario`] (parse, override, validate) → [`topology`] (ids, placement,
//! the expected fan-out) → [`driver`] (open, closed on goose, step search) → [`target`] (the
//! embedded control plane or a real Alcor over REST, or agents directly) → agents →
//! [`correlate`] (requests ↔ agent messages) → [`record`] (µs histograms, intervals) →
//! [`run`] (orchestration, the run folder via the `reports` crate) and [`slo`] (the verdict).
//!
//! The `alcor-scale` binary is a thin command line over this library.

pub mod console;
pub mod correlate;
pub mod driver;
pub mod environment;
pub mod fleets;
pub mod generator;
pub mod net;
pub mod progress;
pub mod record;
pub mod register;
pub mod run;
pub mod scenario;
pub mod signal;
pub mod slo;
pub mod target;
pub mod topology;
pub mod usage;
