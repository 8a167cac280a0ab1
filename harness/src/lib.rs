//! alcor-scale's harness: scenario files in, a run folder out.
//!
//! Data flows one way: [`scenario`] (parse, override, validate) → [`topology`] (ids, placement,
//! the expected fan-out) → [`driver`] (open, closed on goose, step search) → [`target`] (the
//! embedded control plane or a real Alcor over REST, or agents directly) → agents →
//! [`correlate`] (requests ↔ agent messages, every operation's outcome in the [`ledger`]) →
//! [`record`] (µs histograms, intervals) →
//! [`run`] (orchestration, the run folder via the `reports` crate) and [`slo`] (the verdict).
//! [`faults`] runs the scenario's fault timeline beside the phases.
//!
//! The `alcor-scale` binary is a thin command line over this library.

pub mod console;
pub mod correlate;
pub mod driver;
pub mod environment;
pub mod faults;
pub mod fleets;
pub mod generator;
pub mod ledger;
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
