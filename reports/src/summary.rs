//! `summary.json`: every figure of a run in one versioned document.
//!
//! Durations are µs (field names end in `_us` or the metric's `unit` says so), rates per second,
//! times since the run started in seconds. Readers check [`Summary::schema_version`]; a change
//! that renames or removes a field bumps [`SCHEMA_VERSION`], adding one does not.

use std::collections::BTreeMap;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Version of the summary format written by this build.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// Tool and version that wrote it (`alcor-scale 0.1.0`).
    pub tool: String,
    /// What was run.
    pub scenario: ScenarioInfo,
    /// Where it ran.
    pub environment: Environment,
    /// `embedded`, `alcor` or `southbound`.
    pub target: String,
    /// Wall-clock start, RFC 3339 (a label only; durations come from a monotonic clock).
    pub started_at: String,
    /// Length of the whole run, s.
    pub duration_s: f64,
    /// True when the run stopped early (Ctrl-C, a failing component); the figures cover what
    /// was measured until then.
    pub partial: bool,
    /// Why the run stopped early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_reason: Option<String>,
    /// What a reader must know to trust the figures, beyond the verdict: ports a control plane
    /// could not bind, resources a run could not clean up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Phases in the order they ran (setup, measured, teardown).
    pub phases: Vec<PhaseSummary>,
    /// Every metric over the measured phases together, by name (see [`metric`]).
    pub metrics: BTreeMap<String, Stats>,
    /// Requests and messages over the measured phases.
    pub throughput: Throughput,
    /// Failures over the measured phases.
    pub errors: Errors,
    /// Load per agent host over the whole run.
    pub hosts: HostLoad,
    /// SLO checks, in the scenario's order.
    pub slo: Vec<SloResult>,
    /// Present for step-search phases: each stage and the knee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_search: Option<StepSearch>,
    /// Whether the load generator kept up, and how busy the host was.
    #[serde(default)]
    pub generator: GeneratorHealth,
    /// How many times the measured phases ran (`run --repeat N`); each repeat's phases carry
    /// their repeat number.
    #[serde(default = "one")]
    pub repeats: u32,
    /// Fleets in other processes or on other machines (`[agents] remote`), with the clock
    /// alignment their latencies carry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fleets: Vec<FleetSummary>,
    /// Every operation's one outcome, over the measured phases.
    #[serde(default)]
    pub ledger: LedgerSummary,
    /// Agent messages the run saw; `agent-samples.csv` keeps a uniform sample of at most
    /// [`crate::samples::MAX_AGENT_SAMPLES`] of them.
    #[serde(default)]
    pub agent_samples_seen: u64,
    /// Faults injected (`[[faults]]`), in the order they began.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultSummary>,
    /// The broker goal states went through (`target.southbound = "mq"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerSummary>,
}

impl Summary {
    /// Goal-state messages and bytes of the measured phases per port they created (none
    /// without creates): what one create costs the southbound.
    pub fn per_create(&self) -> Option<(f64, f64)> {
        let creates = self.metrics.get("api.create")?.count;
        (creates > 0).then(|| {
            (
                self.throughput.messages as f64 / creates as f64,
                self.throughput.bytes as f64 / creates as f64,
            )
        })
    }
}

/// The MQ southbound's broker in a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BrokerSummary {
    /// Which broker (`nats-jetstream`).
    pub kind: String,
    /// Started by the run (a local server) or given by URL.
    pub embedded: bool,
    /// Topics per `vpc` (keyed by host) or per `host`.
    pub grouping: String,
    /// Goal states agents consumed.
    pub consumed: u64,
    /// Of which delivered more than once (after a crash or a retry).
    pub redelivered: u64,
    /// The most messages any agent had waiting behind the one it received.
    pub max_lag: u64,
    /// The host with that lag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag_host: Option<String>,
    /// CPU time of the local broker over the run, s (none for a broker given by URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
    /// CPU time of the harness process (control plane and agents, embedded) over the run, s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness_cpu_s: Option<f64>,
}

impl BrokerSummary {
    /// The broker's share of the CPU the run used (broker and this process), when measured.
    pub fn cpu_share(&self) -> Option<f64> {
        match (self.cpu_s, self.harness_cpu_s) {
            (Some(b), Some(h)) if b + h > 0.0 => Some(b / (b + h)),
            _ => None,
        }
    }
}

/// Every operation's one outcome: the outcomes add up to the operations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerSummary {
    /// Operations issued (ports created, moved, deleted; a bulk request counts its ports),
    /// plus those due and never sent.
    pub operations: u64,
    /// Operations with an outcome; equal to `operations` once the run has ended.
    pub settled: u64,
    /// Operations still without an outcome (only while a run is going).
    pub open: u64,
    /// Outcomes recorded for an operation that already had one: a defect of the harness if
    /// ever above 0.
    pub double_counted: u64,
    /// Operations by outcome (`ok`, `api_timeout`, `agent_error`, `not_programmed`, …).
    pub outcomes: BTreeMap<String, u64>,
    /// Hosts with at least one failed operation.
    pub hosts_failing: u64,
    /// The hosts with the most failed operations, most first.
    pub by_host: Vec<HostOutcomes>,
}

impl LedgerSummary {
    /// True when every operation has exactly one outcome.
    pub fn balanced(&self) -> bool {
        self.settled == self.operations && self.open == 0 && self.double_counted == 0
    }

    /// Operations that did not end `ok`.
    pub fn failed(&self) -> u64 {
        self.outcomes.iter().filter(|(k, _)| *k != "ok").map(|(_, v)| v).sum()
    }
}

/// Failed operations at one host (its own ports, or ports it was to learn).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostOutcomes {
    /// The host.
    pub host: std::net::Ipv4Addr,
    /// Failed operations.
    pub failed: u64,
    /// By outcome.
    pub by_reason: BTreeMap<String, u64>,
}

/// One fault of the run: when it held, where, and what it took to recover.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultSummary {
    /// `slow`, `error`, `blackhole`, `reset`, `partition`, `crash`, `restart`, `command`.
    pub kind: String,
    /// What exactly (the delay, the share, the command).
    pub detail: String,
    /// Hosts in the fault (agent faults).
    pub hosts: u64,
    /// Up to 20 of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_list: Vec<std::net::Ipv4Addr>,
    /// When it began, s since the run's start.
    pub start_s: f64,
    /// When it was undone (or its command ended), s since the run's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_s: Option<f64>,
    /// How long after it ended until ports were programmed within the SLO again (see
    /// `recovery_rule`); none when they never were before the run (or the next fault) went on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_s: Option<f64>,
    /// The rule recovery was judged by.
    #[serde(default)]
    pub recovery_rule: String,
    /// Crashes: how the crashed hosts got their state back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync: Option<ResyncSummary>,
    /// What happened that a reader must know (a command's exit status, a fault cut short).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How crashed hosts got their full state back after they returned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResyncSummary {
    /// Hosts that returned.
    pub hosts: u64,
    /// Of those, hosts that held every port and neighbor they should before the run ended.
    pub complete: u64,
    /// Entries (ports and neighbors) they should hold, summed.
    pub expected: u64,
    /// Entries still missing at the end, summed.
    pub missing: u64,
    /// From return to full state: median over the complete hosts, s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_s: Option<f64>,
    /// The slowest complete host, s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_s: Option<f64>,
}

/// A fleet the run read over its events connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetSummary {
    /// The events endpoint, and the name it was found by when that differs.
    pub endpoint: String,
    /// Agents (hosts) it runs.
    pub agents: u64,
    /// Messages its agents reported.
    pub events: u64,
    /// Events it dropped because the run read too slowly: the record of its hosts is incomplete.
    pub dropped: u64,
    /// Where the fleet's clock lies on the run's, µs (its epoch after the run's start).
    pub clock_offset_us: f64,
    /// The offset is known within ± this, µs (half the shortest probe round trip): every latency
    /// measured between the run and this fleet carries it.
    pub clock_uncertainty_us: f64,
    /// The largest uncertainty of an estimate in use during the run, µs.
    pub clock_max_uncertainty_us: f64,
    /// How far the estimate moved during the run, µs (drift between the two clocks, plus noise).
    pub clock_drift_us: f64,
    /// Clock probes answered.
    pub clock_probes: u64,
    /// When its connection ended before the run did, s since the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_at_s: Option<f64>,
    /// Why it ended, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_reason: Option<String>,
    /// Ports that failed waiting on this fleet's hosts after it disconnected (as their own host
    /// or as a neighbor host): the ledger of what it left unaccounted.
    #[serde(default)]
    pub ports_unaccounted: u64,
}

fn one() -> u32 {
    1
}

/// Metric names.
pub mod metric {
    /// Request sent (or due, in the open model) to response, every operation, µs.
    pub const API: &str = "api";
    /// Port-create request to the port's own host having applied its goal state, µs.
    pub const PORT_PROGRAMMED: &str = "port_programmed";
    /// Port-create request to the last host that must learn the new neighbor having applied it, µs.
    pub const NEIGHBOR_CONVERGED: &str = "neighbor_converged";
    /// Security-group change (`sg_programmed.rule_add`, `.rule_delete`, `.join`, `.leave`):
    /// request to the last host that must enforce it having applied it, µs.
    pub const SG_PROGRAMMED: &str = "sg_programmed";
    /// Security-group rules in one goal-state message, for messages that carry any.
    pub const GOAL_STATE_SG_RULES: &str = "goal_state_sg_rules";
    /// Port-create request to the control plane reporting the port `ACTIVE` (Neutron: its
    /// status, polled), µs. An upper bound: see [`POLL_RESOLUTION`].
    pub const PORT_ACTIVE: &str = "port_active";
    /// How far `port_active` may lie after the moment the port went `ACTIVE`: from the last poll
    /// that saw it not yet `ACTIVE` to the answer of the first that did, µs.
    pub const POLL_RESOLUTION: &str = "port_active.resolution";
    /// One status poll of the control plane (a batched `GET`), request to answer, µs.
    pub const POLL: &str = "poll";
    /// An agent's own time for one message (decode + apply + simulated programming), µs.
    pub const AGENT_PROCESSING: &str = "agent_processing";
    /// How late the open model sent a request against its intended time, µs.
    pub const SEND_LAG: &str = "send_lag";
    /// The embedded control plane's goal-state computation for one request (encoding
    /// excluded), µs.
    pub const CP_COMPUTE: &str = "cp_compute";
    /// The embedded control plane's encoding of one request's goal states, µs.
    pub const CP_ENCODE: &str = "cp_encode";
    /// The embedded control plane's push of one request's goal states, first push to last
    /// reply, µs.
    pub const CP_PUSH: &str = "cp_push";
    /// Size of one goal-state message, bytes.
    pub const GOAL_STATE_BYTES: &str = "goal_state_bytes";
    /// Neighbor states in one goal-state message.
    pub const GOAL_STATE_NEIGHBORS: &str = "goal_state_neighbors";
    /// MQ southbound: a goal state's wait in the broker, from the broker taking it to its
    /// agent receiving it, µs.
    pub const MQ_WAITED: &str = "mq_waited";
    /// MQ southbound: messages still waiting in the broker for an agent when it received one
    /// (its lag), per message received.
    pub const MQ_LAG: &str = "mq_lag";
    /// The metrics whose values are µs.
    pub fn is_latency(name: &str) -> bool {
        let base = name.split('.').next().unwrap_or(name);
        matches!(
            base,
            API | PORT_PROGRAMMED
                | NEIGHBOR_CONVERGED
                | SG_PROGRAMMED
                | PORT_ACTIVE
                | POLL
                | AGENT_PROCESSING
                | SEND_LAG
                | CP_COMPUTE
                | CP_ENCODE
                | CP_PUSH
                | MQ_WAITED
        )
    }
}

/// The scenario as run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// Its name.
    pub name: String,
    /// Its one-line description.
    pub description: String,
    /// The file it came from.
    pub file: String,
    /// Seed of topology and placement.
    pub seed: u64,
    /// `--set` overrides applied, in order.
    pub overrides: Vec<String>,
    /// The scenario text after overrides.
    pub toml: String,
    /// SHA-256 of `toml` (hex): two runs of one scenario share it, whatever the file was called.
    #[serde(default)]
    pub hash: String,
    /// SHA-256 of `toml` without `target.southbound` and `target.broker`: a gRPC run and an MQ
    /// run of one scenario share it, so that `compare` takes them as an A/B of the southbound.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash_apart_from_southbound: String,
    /// Simulated hosts.
    #[serde(default)]
    pub agents: u64,
}

/// The machine and build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// `git rev-parse HEAD` of the working directory, when it is a repository.
    pub git_revision: Option<String>,
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs available.
    pub cores: usize,
    /// Operating system and architecture.
    pub os: String,
    /// Versions of the tool and of what it embeds.
    pub versions: BTreeMap<String, String>,
}

/// One phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseSummary {
    /// Its name.
    pub name: String,
    /// `setup`, `load` or `teardown`; only `load` phases count in the run's headline figures.
    pub kind: String,
    /// The load model (`open`, `closed`, `step`) with its parameters, as text.
    pub model: String,
    /// Start, s since the run started.
    pub started_s: f64,
    /// Length, s.
    pub duration_s: f64,
    /// Requests issued (sent).
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Requests that succeeded per second.
    pub throughput_rps: f64,
    /// The rate the phase asked for, requests/s (open and step models: the stages' rates
    /// weighted by their lengths; none for the closed model, which offers no rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_rps: Option<f64>,
    /// Open model: requests whose intended time fell inside the phase.
    #[serde(default)]
    pub due: u64,
    /// Open model: requests due but never sent, because the phase's time ran out first.
    #[serde(default)]
    pub unsent: u64,
    /// Repeat number (1-based) under `run --repeat`; absent for setup and teardown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
    /// Ports in the topology when the phase ran, for a scenario that grows it
    /// (`topology.grow_to`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_ports: Option<u64>,
    /// Open-model rate stages, where the phase has more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<RateStage>,
    /// This phase's metrics.
    pub metrics: BTreeMap<String, Stats>,
}

/// One rate stage of an open-model phase, as it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RateStage {
    /// Requests per second asked for.
    pub rate_per_s: f64,
    /// Start, s since the run started.
    pub started_s: f64,
    /// Length asked for, s.
    pub duration_s: f64,
}

/// Distribution of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Stats {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Stats {
    /// Figures of a histogram (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min: h.min(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }

    /// A statistic by name (`p99`, `mean`, `count` …).
    pub fn get(&self, stat: &str) -> Option<f64> {
        Some(match stat {
            "count" => self.count as f64,
            "min" => self.min as f64,
            "p50" | "median" => self.p50 as f64,
            "p90" => self.p90 as f64,
            "p99" => self.p99 as f64,
            "p999" | "p99.9" => self.p999 as f64,
            "max" => self.max as f64,
            "mean" => self.mean,
            _ => return None,
        })
    }

    /// Names [`Stats::get`] accepts.
    pub const STATS: [&'static str; 8] = ["count", "min", "p50", "p90", "p99", "p999", "max", "mean"];
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            count: 0,
            min: 0,
            p50: 0,
            p90: 0,
            p99: 0,
            p999: 0,
            max: 0,
            mean: 0.0,
        }
    }
}

/// Requests and messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Requests issued.
    pub requests: u64,
    /// Requests that got a response (success or not).
    pub completed: u64,
    /// Requests that succeeded.
    #[serde(default)]
    pub succeeded: u64,
    /// Succeeded requests per second of measured time: failures do not count as throughput.
    pub requests_per_s: f64,
    /// What the measured phases asked for, requests/s (none when no phase offered a rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_rps: Option<f64>,
    /// Goal-state messages agents processed.
    pub messages: u64,
    /// Messages per second of measured time.
    pub messages_per_s: f64,
    /// Goal-state bytes agents received.
    pub bytes: u64,
}

/// Failures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Errors {
    /// Requests that failed (HTTP error, transport error, timeout).
    pub requests_failed: u64,
    /// Failed requests by kind (`http_409`, `transport`, `timeout` …).
    pub by_kind: BTreeMap<String, u64>,
    /// Created ports whose own host never applied them within the correlation timeout.
    pub not_programmed: u64,
    /// Created ports that some expected neighbor host never learned within the timeout.
    pub not_converged: u64,
    /// Messages agents could not decode or apply.
    pub agent_errors: u64,
    /// [`Errors::rate`] of the measured phases.
    pub error_rate: f64,
    /// Every failure by its kind ([`failure`]), each counted once where it happened.
    #[serde(default)]
    pub failures: BTreeMap<String, u64>,
}

/// Failure kinds, as [`Errors::failures`] names them.
pub mod failure {
    /// No answer within the request timeout.
    pub const TIMEOUT: &str = "timeout";
    /// An HTTP 4xx answer.
    pub const HTTP_4XX: &str = "http_4xx";
    /// An HTTP 5xx answer.
    pub const HTTP_5XX: &str = "http_5xx";
    /// Any other HTTP status that is not a success.
    pub const HTTP_OTHER: &str = "http_other";
    /// The connection failed.
    pub const TRANSPORT: &str = "transport";
    /// A goal-state message an agent could not decode or apply.
    pub const AGENT_ERROR: &str = "agent_error";
    /// A port whose own host never applied it in time.
    pub const NOT_PROGRAMMED: &str = "not_programmed";
    /// A port some neighbor host never learned in time (its own host did).
    pub const NOT_CONVERGED: &str = "not_converged";
    /// An open-model request that was due but not sent before the phase's time ran out.
    pub const UNSENT: &str = "unsent";

    /// The kind of a request failure as the HTTP client names it (`http_409`, `timeout`,
    /// `transport`).
    pub fn of_request(kind: &str) -> &'static str {
        match kind {
            "timeout" => TIMEOUT,
            "transport" => TRANSPORT,
            k if k.starts_with("http_4") => HTTP_4XX,
            k if k.starts_with("http_5") => HTTP_5XX,
            _ => HTTP_OTHER,
        }
    }
}

/// Whether the load generator kept up with what was asked of it, and how busy the host was.
/// A run whose generator fell behind measured less load than it claims to have offered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GeneratorHealth {
    /// Open model: requests due over the measured phases.
    pub due: u64,
    /// Requests sent over the measured phases.
    pub sent: u64,
    /// Open model: requests due but never sent.
    pub unsent: u64,
    /// Send lag of the open model (sent − intended time), µs.
    pub send_lag: Stats,
    /// Mean CPU use of this process over the measured phases, in cores (2.0 = two whole cores).
    pub process_cpu: f64,
    /// Mean 1-minute load average of the host over the measured phases.
    pub load: f64,
    /// Mean CPU steal of the host over the measured phases, as a fraction of its CPU time.
    pub steal: f64,
    /// Logical CPUs of the host.
    pub cores: usize,
    /// The generator did not send what was due, or sent it late (see `reasons`).
    pub fell_behind: bool,
    /// The host ran out of CPU (load, steal, or this process using every core).
    pub saturated: bool,
    /// Each finding in words, with its numbers.
    pub reasons: Vec<String>,
}

/// Load per host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostLoad {
    /// Hosts that got at least one message.
    pub hosts: u64,
    /// Messages per host.
    pub messages: Stats,
    /// Bytes per host.
    pub bytes: Stats,
}

/// One SLO check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloResult {
    /// As written (`port_programmed.p99 < 200ms`).
    pub check: String,
    /// The value compared, in the metric's unit (µs for latencies, a fraction for rates).
    pub actual: Option<f64>,
    /// The threshold, same unit.
    pub threshold: f64,
    /// `<`, `<=`, `>`, `>=`.
    pub op: String,
    /// Whether it held (false when there is no value or it was not evaluated).
    pub pass: bool,
    /// The outcome: pass, fail, no samples, or not evaluated.
    #[serde(default)]
    pub status: SloStatus,
    /// How far from the threshold, as a fraction of it: positive is headroom, negative a breach.
    pub margin: Option<f64>,
}

/// The check a run reading fleets apart gets: none of their events was dropped (`actual` is
/// how many were): a run whose record of its hosts is incomplete cannot pass.
pub const EVENTS_CHECK: &str = "no agent event dropped";

/// The check a run with a step search gets: the search found its knee (`actual` is the knee).
pub const KNEE_CHECK: &str = "step search found a knee";

impl SloResult {
    /// The figure the check names (`port_programmed.p99`, `error_rate`, `knee` …).
    pub fn key(&self) -> &str {
        if self.check == KNEE_CHECK {
            return "knee";
        }
        if self.check == EVENTS_CHECK {
            return "events_dropped";
        }
        self.check.split(['<', '>']).next().unwrap_or("").trim()
    }

    /// The actual value as a person reads it, or why there is none.
    pub fn shown(&self) -> String {
        match (self.status, self.actual) {
            (SloStatus::NotEvaluated, _) => "not evaluated".into(),
            (_, None) if self.check == KNEE_CHECK => "no stage held every check".into(),
            (_, None) => "no samples".into(),
            (_, Some(a)) => format_value(self.key(), a),
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloStatus {
    /// It held.
    #[default]
    Pass,
    /// It did not hold.
    Fail,
    /// The figure it names was never measured: a failure, never a pass.
    NoSamples,
    /// The run did not get far enough to judge it (it did not start, or stopped early).
    NotEvaluated,
}

impl SloStatus {
    /// `pass`, `FAIL`, `no samples`, `not evaluated`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "FAIL",
            Self::NoSamples => "no samples",
            Self::NotEvaluated => "not evaluated",
        }
    }
}

/// A step-search phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSearch {
    /// Name of the phase.
    pub phase: String,
    /// Stages in order.
    pub stages: Vec<StepStage>,
    /// Highest offered rate whose stage met every check; none when the first stage failed.
    pub knee_rps: Option<f64>,
}

/// One stage of a step search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepStage {
    /// Offered rate.
    pub offered_rps: f64,
    /// Completed requests per second.
    pub achieved_rps: f64,
    /// Start, s since the run started.
    pub started_s: f64,
    /// Length, s.
    pub duration_s: f64,
    /// Latency metrics of the stage.
    pub metrics: BTreeMap<String, Stats>,
    /// Checks of the stage.
    pub checks: Vec<SloResult>,
    /// Whether every check held.
    pub pass: bool,
}

impl Summary {
    /// Reads `summary.json` from a run folder.
    pub fn read(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(crate::files::SUMMARY);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let probe: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::format(&path, format!("not JSON (line {}): {e}", e.line())))?;
        match probe.get("schema_version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(Error::format(
                    &path,
                    format!("schema_version {v}; this build reads version {SCHEMA_VERSION}"),
                ));
            }
            None => return Err(Error::format(&path, "no schema_version: not an alcor-scale summary")),
        }
        serde_json::from_value(probe).map_err(|e| Error::format(&path, e.to_string()))
    }

    /// Writes `summary.json` into a run folder (atomically: a reader never sees half a file).
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        let path = dir.join(crate::files::SUMMARY);
        let tmp = dir.join(".summary.json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::format(&path, e.to_string()))?;
        std::fs::write(&tmp, text + "\n").map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    /// A figure for SLOs and comparisons: `port_programmed.p99`, or one of [`SCALARS`]. None
    /// when nothing was measured: a metric without samples, any request scalar when no
    /// request was sent, `knee` without a step search.
    pub fn value(&self, key: &str) -> Option<f64> {
        match key {
            // Every setup phase's (a growing topology has one per size); none without setup.
            "setup_errors" => {
                let setup: Vec<_> = self.phases.iter().filter(|p| p.kind == "setup").collect();
                (!setup.is_empty()).then(|| setup.iter().map(|p| p.errors as f64).sum())
            }
            "knee" => self.step_search.as_ref().and_then(|s| s.knee_rps),
            _ => lookup(key, &self.metrics, &self.scalars()),
        }
    }

    /// The run's request scalars.
    pub fn scalars(&self) -> Scalars {
        Scalars {
            error_rate: self.errors.error_rate,
            throughput: self.throughput.requests_per_s,
            requests: self.throughput.requests,
            failed: self.errors.requests_failed,
            not_programmed: self.errors.not_programmed,
            not_converged: self.errors.not_converged,
        }
    }
}

impl Errors {
    /// The error rate: `(requests_failed + not_converged) / requests`. A port that never
    /// programmed has not converged either, so it counts once.
    pub fn rate(requests_failed: u64, not_converged: u64, requests: u64) -> f64 {
        if requests == 0 {
            0.0
        } else {
            (requests_failed + not_converged) as f64 / requests as f64
        }
    }
}

/// The figures an SLO check or a comparison may name besides `metric.stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scalars {
    /// [`Errors::rate`].
    pub error_rate: f64,
    /// Completed requests per second.
    pub throughput: f64,
    /// Requests issued.
    pub requests: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Created ports never programmed in time.
    pub not_programmed: u64,
    /// Created ports never converged in time.
    pub not_converged: u64,
}

/// A figure of `key` (`api.p99`, `error_rate`, `throughput` …) in its unit, as a person reads it:
/// `26.8 ms`, `0.05 %`, `84/s`, `1,200`.
pub fn format_value(key: &str, v: f64) -> String {
    use crate::units;
    match key {
        "error_rate" => units::percent(v),
        "throughput" | "knee" => units::per_s(v),
        _ => match key.rsplit_once('.') {
            Some((m, stat)) if metric::is_latency(m) && stat != "count" => units::duration_us(v),
            _ if v.fract() == 0.0 => units::thousands(v as i64),
            _ => format!("{v:.2}"),
        },
    }
}

/// The figures a check may name besides `metric.stat`. `setup_errors` and `knee` are the run's
/// (setup's failed requests, a step search's knee); the others are request scalars of the
/// measured phases (or of one step stage).
pub const SCALARS: [&str; 8] = [
    "error_rate",
    "throughput",
    "requests",
    "failed",
    "not_programmed",
    "not_converged",
    "setup_errors",
    "knee",
];

/// A figure by key, for a whole run or one phase: `port_programmed.p99` from `metrics`, or a
/// request scalar. None when there is nothing to judge: a statistic of a metric without
/// samples, or any request scalar over zero requests (`requests >= 0` must not pass a run that
/// sent nothing).
pub fn lookup(key: &str, metrics: &BTreeMap<String, Stats>, s: &Scalars) -> Option<f64> {
    let requests = (s.requests > 0).then_some(());
    match key {
        "error_rate" => requests.map(|_| s.error_rate),
        "throughput" => requests.map(|_| s.throughput),
        "requests" => requests.map(|_| s.requests as f64),
        "failed" => requests.map(|_| s.failed as f64),
        "not_programmed" => requests.map(|_| s.not_programmed as f64),
        "not_converged" => requests.map(|_| s.not_converged as f64),
        _ => {
            let (name, stat) = key.rsplit_once('.')?;
            let m = metrics.get(name).filter(|m| m.count > 0)?;
            m.get(stat)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_shows_its_value_in_its_unit_or_why_it_has_none() {
        let r = |check: &str, actual: Option<f64>, status| SloResult {
            check: check.into(),
            actual,
            threshold: 0.0,
            op: "<".into(),
            pass: status == SloStatus::Pass,
            status,
            margin: None,
        };
        let p99 = r("port_programmed.p99 < 5s", Some(26_800.0), SloStatus::Pass);
        assert_eq!((p99.key(), p99.shown().as_str()), ("port_programmed.p99", "26.8 ms"));
        assert_eq!(r("error_rate < 1%", Some(0.0005), SloStatus::Pass).shown(), "0.05 %");
        assert_eq!(r("requests >= 1", None, SloStatus::NoSamples).shown(), "no samples");
        assert_eq!(
            r("api.p99 < 1s", None, SloStatus::NotEvaluated).shown(),
            "not evaluated"
        );
        let knee = r(KNEE_CHECK, Some(3100.0), SloStatus::Pass);
        assert_eq!((knee.key(), knee.shown().as_str()), ("knee", "3,100/s"));
        assert_eq!(
            r(KNEE_CHECK, None, SloStatus::Fail).shown(),
            "no stage held every check"
        );
    }

    #[test]
    fn durations_are_latencies_and_sizes_are_not() {
        for m in [
            "api",
            "api.create",
            "port_programmed",
            "neighbor_converged.update",
            "agent_processing",
            "send_lag",
            "cp_compute",
            "cp_encode",
            "cp_push",
        ] {
            assert!(metric::is_latency(m), "{m}");
        }
        for m in ["goal_state_bytes", "goal_state_neighbors", "issued"] {
            assert!(!metric::is_latency(m), "{m}");
        }
    }

    #[test]
    fn stats_of_a_histogram_are_ordered_and_exact_at_the_ends() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let s = Stats::of(&h);
        assert_eq!((s.count, s.min), (10_000, 1));
        assert!(s.min <= s.p50 && s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max);
        assert!((4_990..=5_010).contains(&s.p50), "{}", s.p50);
        assert!((9_980..=10_010).contains(&s.max), "{}", s.max);
        assert_eq!(Stats::of(&Histogram::new(3).unwrap()), Stats::default());
    }
}
