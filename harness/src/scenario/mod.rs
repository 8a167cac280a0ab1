//! Scenario files: what to build, how to load it, and what must hold (reference:
//! `scenarios/README.md`).
//!
//! Loading is three steps: [`source`] reads the TOML keeping positions and applies `--set`
//! overrides, serde turns it into a [`Scenario`] (type errors carry the line), and
//! [`validate`] checks what types cannot say; every error names the file, line and field.

pub mod limits;
pub mod source;
pub mod validate;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use control_plane::{FanoutMode, PushProtocol, SouthboundKind};
use fake_agent::fleet::ListenMode;
use fake_agent::{CostModel, ValidationMode};
use serde::{Deserialize, Serialize};

pub use source::Source;

/// A bad scenario: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {field}{}{message}", line.map(|l| format!(":{l}")).unwrap_or_default(), if field.is_empty() { "" } else { ": " })]
pub struct ScenarioError {
    /// The scenario file.
    pub file: String,
    /// 1-based line, when the field is written in the file.
    pub line: Option<usize>,
    /// Dotted path of the field (`phases[1].rate`), empty for the file as a whole.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Several problems at once, so that a user fixes them in one go.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ScenarioErrors(pub Vec<ScenarioError>);

/// A whole scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name; names the run folder.
    pub name: String,
    /// One line on what it measures (shown by `alcor-scale list`).
    #[serde(default)]
    pub description: String,
    /// Seed of topology, placement and operation choice: same seed, same run.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// What is measured.
    #[serde(default)]
    pub target: TargetSpec,
    /// The simulated host agents (one per host).
    #[serde(default)]
    pub agents: AgentsSpec,
    /// Projects, VPCs, subnets, routers, security groups and pre-existing ports.
    #[serde(default)]
    pub topology: TopologySpec,
    /// Creating the pre-existing ports.
    #[serde(default)]
    pub setup: PhaseSpec,
    /// The measured phases, in order.
    #[serde(default)]
    pub phases: Vec<PhaseSpec>,
    /// Deleting every port left at the end (absent: ports are left).
    #[serde(default)]
    pub teardown: Option<PhaseSpec>,
    /// Checks on the measured phases (`port_programmed.p99 < 200ms`, `error_rate < 0.1%`).
    #[serde(default)]
    pub slo: Vec<String>,
    /// Measurement settings.
    #[serde(default)]
    pub measure: MeasureSpec,
    /// Faults injected while the measured phases run (see [`crate::faults`]).
    #[serde(default)]
    pub faults: Vec<crate::faults::FaultSpec>,
}

fn default_seed() -> u64 {
    1
}

impl Scenario {
    /// The topology sizes the run measures at, in ports: what setup creates, then each of
    /// `topology.grow_to`. Never empty; the last is the largest the topology reaches.
    pub fn topology_sizes(&self) -> Vec<u64> {
        let t = &self.topology;
        let first = t.ports.unwrap_or(0) + t.ports_per_host.unwrap_or(0) * self.agents.count as u64;
        std::iter::once(first).chain(t.grow_to.iter().copied()).collect()
    }
}

/// Which control plane, or none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The reference control plane, in-process.
    #[default]
    Embedded,
    /// A real Alcor (or compatible) on loopback, by URL.
    Alcor,
    /// No REST: goal states pushed straight to agents.
    Southbound,
    /// A real OpenStack Neutron by URL (its `/v2.0` API): server-assigned ids, hosts that
    /// Neutron's agents report, and `port_active` (status polled) instead of agent messages.
    Neutron,
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Embedded => "embedded",
            Self::Alcor => "alcor",
            Self::Southbound => "southbound",
            Self::Neutron => "neutron",
        })
    }
}

/// `[target]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetSpec {
    /// `embedded` (default), `alcor` or `southbound`.
    pub kind: TargetKind,
    /// Embedded: neighbor fan-out, `alcor` (as Alcor) or `incremental`.
    pub fanout: FanoutMode,
    /// Embedded: the fan-out while setup (and `topology.grow_to`) builds the topology, when it
    /// differs from `fanout`: `incremental` builds a million-port subnet in linear time, then the
    /// measured phases run in `fanout`.
    pub setup_fanout: Option<FanoutMode>,
    /// Embedded: how remote-group rules reach hosts, `address-set` (default: the remote group's
    /// members as a set on each host, changed by difference) or `expand` (one rule per member
    /// address; every member change re-sends the expanded group).
    pub sg_mode: control_plane::SgMode,
    /// Embedded: answer port requests before the push ends.
    pub async_push: bool,
    /// Embedded and southbound: `v2` (stream) or `v1` (unary).
    pub protocol: PushProtocol,
    /// Embedded and southbound: gRPC channels per host.
    pub channels_per_host: usize,
    /// Embedded and southbound: how goal states reach agents, `grpc` (a push to each host,
    /// default) or `mq` (through a message broker each agent consumes from, [`Self::broker`]).
    pub southbound: SouthboundKind,
    /// `southbound = "mq"`: the broker. Without `url` the run starts a local nats-server.
    pub broker: broker::BrokerConfig,
    /// Embedded and southbound: hosts with open push channels at once (least recently pushed
    /// closed first). Unset: what the open-files limit allows.
    pub max_connected_hosts: Option<usize>,
    /// Alcor: base URL of every service (an API gateway), e.g. `http://127.0.0.1:9009`; Neutron:
    /// the API root. `http://` or `https://`, on any host.
    pub url: Option<String>,
    /// Alcor: base URL per service (`vpc`, `subnet`, `port`, `node`, `security_group`,
    /// `route`), overriding `url` for that service.
    pub urls: BTreeMap<String, String>,
    /// Southbound: one real agent at `host:port` instead of the fleet.
    pub agent: Option<String>,
    /// How long one REST request may take before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// `https://` targets: a PEM file of the CA certificates to trust instead of the platform's
    /// (a test cluster's own CA).
    pub ca_file: Option<PathBuf>,
    /// `https://` targets: accept any certificate, unverified (self-signed test clusters).
    pub insecure: bool,
    /// REST targets: extra headers on every request; `${NAME}` is replaced by the environment
    /// variable NAME when the run starts, so that tokens stay out of scenario files
    /// (`headers = { "X-Auth-Token" = "${OS_TOKEN}" }`).
    pub headers: BTreeMap<String, String>,
    /// Neutron: the hosts ports are bound to: `"discover"` (default: the hosts of the alive L2
    /// agents in `GET /v2.0/agents`) or a list of host names.
    pub hosts: Option<HostsSpec>,
    /// Neutron: wait for each created port to become `ACTIVE` (`port_active`); off when nothing
    /// on the hosts plugs ports (the API is then all that is measured).
    pub wait_active: bool,
    /// Neutron: how often the ports waiting to become `ACTIVE` are polled.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Neutron: port ids per status poll (`GET /v2.0/ports?id=…&id=…`).
    pub poll_batch: usize,
    /// Neutron: status polls per second at most, so that polling does not become the load.
    pub poll_rate: f64,
}

impl TargetSpec {
    /// How `https://` URLs are verified.
    pub fn tls(&self) -> crate::target::tls::TlsOptions {
        crate::target::tls::TlsOptions {
            ca_file: self.ca_file.clone(),
            insecure: self.insecure,
        }
    }

    /// Whether any URL of the target is `https://`.
    pub fn uses_tls(&self) -> bool {
        self.url
            .iter()
            .chain(self.urls.values())
            .any(|u| u.starts_with("https://"))
    }
}

/// `target.hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HostsSpec {
    /// `"discover"`.
    Named(String),
    /// Host names as the control plane knows them.
    List(Vec<String>),
}

impl Default for TargetSpec {
    fn default() -> Self {
        Self {
            kind: TargetKind::Embedded,
            fanout: FanoutMode::Alcor,
            setup_fanout: None,
            sg_mode: control_plane::SgMode::AddressSet,
            async_push: false,
            protocol: PushProtocol::V2,
            channels_per_host: 2,
            southbound: SouthboundKind::Grpc,
            broker: Default::default(),
            max_connected_hosts: None,
            url: None,
            urls: BTreeMap::new(),
            agent: None,
            request_timeout: Duration::from_secs(30),
            ca_file: None,
            insecure: false,
            headers: BTreeMap::new(),
            hosts: None,
            wait_active: true,
            poll_interval: Duration::from_millis(250),
            poll_batch: 100,
            poll_rate: 20.0,
        }
    }
}

/// `[agents]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsSpec {
    /// How many hosts, each a simulated agent.
    pub count: usize,
    /// Address of the first agent (127.0.0.0/8); the others follow.
    pub base_ip: Ipv4Addr,
    /// Port every agent listens on (Alcor dials 50001).
    pub port: u16,
    /// Simulated programming cost: `none`, `aca-2020`, `aca-2021`, or `linear:…`.
    pub cost_model: CostModel,
    /// `lenient` or `strict` checking of what agents receive.
    pub validation: ValidationMode,
    /// `per-address` (a listener per agent) or `shared` (one wildcard listener for the fleet).
    pub listen: ListenMode,
    /// REST targets: nodes the control plane already has: `replace`, `reuse` or `fail`.
    pub register: crate::target::RegisterMode,
    /// Fleets run apart (`alcor-scale agents --events ADDR`), as `HOST:PORT` of their events
    /// endpoints, instead of a fleet in this process: their hosts make the topology's hosts
    /// (`count` and `base_ip` are then theirs). A name resolving to several addresses (a
    /// headless Service) is a fleet per address.
    pub remote: Vec<String>,
    /// Fleets to wait for: names are resolved again (every 2 s, for up to 5 minutes) until
    /// they give this many addresses, as a headless Service does once every fleet pod is ready.
    pub remote_expect: Option<usize>,
}

impl Default for AgentsSpec {
    fn default() -> Self {
        Self {
            count: 10,
            base_ip: Ipv4Addr::new(127, 1, 0, 1),
            port: alcor_schema::AGENT_GRPC_PORT,
            cost_model: CostModel::None,
            validation: ValidationMode::Lenient,
            listen: ListenMode::PerAddress,
            register: crate::target::RegisterMode::Replace,
            remote: Vec::new(),
            remote_expect: None,
        }
    }
}

/// How ports are spread over hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Port i on host i mod hosts.
    #[default]
    RoundRobin,
    /// A host drawn at random (seeded).
    Random,
    /// Fill host 0 up to `host_capacity` ports, then host 1, …
    Packed,
}

/// `[topology]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologySpec {
    /// Projects (tenants).
    pub projects: u32,
    /// VPCs per project.
    pub vpcs_per_project: u32,
    /// Subnets per VPC; all are carved from 10.0.0.0/8 in order.
    pub subnets_per_vpc: u32,
    /// Prefix length of every subnet (16: 65,533 ports each).
    pub subnet_prefix: u8,
    /// One router per VPC with every subnet of the VPC attached (L3 neighbors).
    pub routers: bool,
    /// Ports created in setup, in total.
    pub ports: Option<u64>,
    /// Ports created in setup, per host (instead of `ports`).
    pub ports_per_host: Option<u64>,
    /// Ports per setup request through `/ports/bulk` (absent: one request per port).
    pub bulk: Option<u32>,
    /// Larger sizes to grow to, in order: after the measured phases ran at `ports`, setup adds
    /// ports up to the next size and the measured phases run again (named `PHASE@SIZE`), so one
    /// run measures the same operations at every size.
    pub grow_to: Vec<u64>,
    /// Where ports go.
    pub placement: Placement,
    /// Ports per host before `packed` moves on to the next host.
    pub host_capacity: Option<u64>,
    /// Security groups in every project.
    pub security_groups: Vec<SecurityGroupSpec>,
    /// Which groups the mix's security-group operations change.
    pub sg_changes: SgChanges,
}

/// `[topology.sg_changes]`: the groups that `sg_rule_add`, `sg_rule_delete`, `sg_join` and
/// `sg_leave` change, by name, in every project (each operation takes the next project in turn).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SgChanges {
    /// The group rules are added to and deleted from (default: the first group).
    pub rules_in: Option<String>,
    /// The remote group the added rules name (absent: rules on a port range only, no remote
    /// side): every host enforcing `rules_in` then needs every member of it.
    pub remote_group: Option<String>,
    /// The group ports join and leave (default: `remote_group`, else `rules_in`).
    pub members_of: Option<String>,
}

impl Default for TopologySpec {
    fn default() -> Self {
        Self {
            projects: 1,
            vpcs_per_project: 1,
            subnets_per_vpc: 1,
            subnet_prefix: 16,
            routers: false,
            ports: None,
            ports_per_host: None,
            bulk: None,
            grow_to: Vec::new(),
            placement: Placement::RoundRobin,
            host_capacity: None,
            security_groups: Vec::new(),
            sg_changes: SgChanges::default(),
        }
    }
}

/// `[[topology.security_groups]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupSpec {
    /// Name, unique in the scenario; rules refer to it by `remote_group`.
    pub name: String,
    /// Fraction of ports that are members (seeded); ports in no group get the default group.
    #[serde(default = "one")]
    pub share: f64,
    /// Its rules.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

fn one() -> f64 {
    1.0
}

/// A security-group rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// `ingress` or `egress`.
    #[serde(default = "ingress")]
    pub direction: String,
    /// `tcp`, `udp`, `icmp` or `any`.
    #[serde(default = "tcp")]
    pub protocol: String,
    /// `[min, max]` port range (absent: all).
    pub ports: Option<[u32; 2]>,
    /// Members of this group are the rule's remote side: every host with a port of the rule's
    /// group then needs every member of the remote group (the known scaling trap).
    pub remote_group: Option<String>,
    /// A CIDR as the remote side instead.
    pub remote_ip_prefix: Option<String>,
}

fn ingress() -> String {
    "ingress".into()
}

fn tcp() -> String {
    "tcp".into()
}

/// The load model of a phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Requests at intended times, at a rate or a list of rates; latency from the intended time.
    Open,
    /// N users, each issuing its next request when the last is done (runs on goose).
    #[default]
    Closed,
    /// Open-model stages at rising rates until a check fails; reports the knee.
    Step,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Step => "step",
        })
    }
}

/// One rate stage of the open model.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateStage {
    /// Requests per second.
    pub rate: f64,
    /// How long.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
}

impl RateStage {
    /// Requests the stage issues on schedule.
    pub fn requests(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).round() as u64
    }
}

/// Operation weights. A phase without `mix` creates only; a `mix` given weighs what it names
/// and nothing else (`{ sg_rule_add = 1 }` adds rules only).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Create a port.
    #[serde(default)]
    pub create: u32,
    /// Move a port to another host (a rebind: goal states to the old and new host).
    #[serde(default)]
    pub update: u32,
    /// Delete a port.
    #[serde(default)]
    pub delete: u32,
    /// Add a rule to a security group (`topology.sg_changes.rules_in`).
    #[serde(default)]
    pub sg_rule_add: u32,
    /// Delete a rule an earlier `sg_rule_add` added.
    #[serde(default)]
    pub sg_rule_delete: u32,
    /// A port joins a security group (`topology.sg_changes.members_of`): a port update of its
    /// `security_groups`.
    #[serde(default)]
    pub sg_join: u32,
    /// A port leaves that group.
    #[serde(default)]
    pub sg_leave: u32,
    /// Create an empty security group (no host holds it: timed by `api` alone).
    #[serde(default)]
    pub sg_group_create: u32,
    /// Delete a group an earlier `sg_group_create` made.
    #[serde(default)]
    pub sg_group_delete: u32,
}

impl Mix {
    /// The weights in [`crate::topology::Op::ALL`]'s order.
    pub fn weights(&self) -> [u32; 9] {
        [
            self.create,
            self.update,
            self.delete,
            self.sg_rule_add,
            self.sg_rule_delete,
            self.sg_join,
            self.sg_leave,
            self.sg_group_create,
            self.sg_group_delete,
        ]
    }

    /// Whether it has a security-group operation.
    pub fn has_sg(&self) -> bool {
        self.weights()[3..].iter().any(|w| *w > 0)
    }

    /// Whether it changes the topology's groups (rules, members): all but group create and
    /// delete, which make groups of their own.
    pub fn changes_groups(&self) -> bool {
        self.weights()[3..7].iter().any(|w| *w > 0)
    }
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            create: 1,
            update: 0,
            delete: 0,
            sg_rule_add: 0,
            sg_rule_delete: 0,
            sg_join: 0,
            sg_leave: 0,
            sg_group_create: 0,
            sg_group_delete: 0,
        }
    }
}

/// `[setup]`, `[[phases]]` and `[teardown]`: what to issue and under which load model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhaseSpec {
    /// Name (reports, progress).
    pub name: String,
    /// Operation mix (setup always creates, teardown always deletes).
    pub mix: Mix,
    /// `open`, `closed` or `step`.
    pub model: ModelKind,
    /// Open: constant rate, requests/s.
    pub rate: Option<f64>,
    /// Open: rate stages, in order (instead of `rate` + `duration`).
    pub stages: Vec<RateStage>,
    /// How long (open with `rate`, closed); with `requests`, whichever ends first.
    #[serde(with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// How many requests at most.
    pub requests: Option<u64>,
    /// Closed: concurrent users.
    pub users: Option<u32>,
    /// Closed: time to start every user (goose's increase rate = users / ramp).
    #[serde(with = "humantime_serde")]
    pub ramp: Option<Duration>,
    /// Step: first rate.
    pub start_rate: Option<f64>,
    /// Step: added per stage.
    pub step_rate: Option<f64>,
    /// Step: stop after this rate even if every check holds.
    pub max_rate: Option<f64>,
    /// Step: length of each stage.
    #[serde(with = "humantime_serde")]
    pub step_duration: Option<Duration>,
    /// Step: the checks a stage must pass (default: the scenario's `slo`).
    pub checks: Vec<String>,
    /// Open and step: requests in flight at most; beyond it requests wait (and their latency,
    /// measured from the intended time, shows the wait).
    pub max_in_flight: usize,
    /// The embedded control plane's fan-out for this phase (default: `target.fanout`).
    pub fanout: Option<FanoutMode>,
    /// The embedded control plane's remote-group strategy for this phase (default:
    /// `target.sg_mode`): one run can measure both side by side. Hosts keep what the other
    /// strategy sent them.
    pub sg_mode: Option<control_plane::SgMode>,
    /// Measured for contrast, beside the phases the scenario is about: shown in the report's
    /// side-by-side table and on the console, but neither in the headline figures nor judged
    /// by the SLO.
    pub contrast: bool,
}

impl Default for PhaseSpec {
    fn default() -> Self {
        Self {
            name: String::new(),
            mix: Mix::default(),
            model: ModelKind::Closed,
            rate: None,
            stages: Vec::new(),
            duration: None,
            requests: None,
            users: None,
            ramp: None,
            start_rate: None,
            step_rate: None,
            max_rate: None,
            step_duration: None,
            checks: Vec::new(),
            max_in_flight: 10_000,
            fanout: None,
            sg_mode: None,
            contrast: false,
        }
    }
}

impl PhaseSpec {
    /// The open model's stages: `stages`, or `rate` for `duration`.
    pub fn open_stages(&self) -> Vec<RateStage> {
        if !self.stages.is_empty() {
            return self.stages.clone();
        }
        match (self.rate, self.duration) {
            (Some(rate), Some(duration)) => vec![RateStage { rate, duration }],
            // With only a request budget: long enough to issue it at this rate, with room.
            (Some(rate), None) => vec![RateStage {
                rate,
                duration: Duration::from_secs_f64(self.requests.unwrap_or(0) as f64 / rate.max(1e-9) * 2.0 + 1.0),
            }],
            _ => Vec::new(),
        }
    }

    /// A one-line description of the model with its parameters.
    pub fn describe(&self) -> String {
        let model = self.describe_model();
        match self.fanout {
            Some(f) => format!("{model}, fan-out {f}"),
            None => model,
        }
    }

    fn describe_model(&self) -> String {
        match self.model {
            ModelKind::Open => {
                let stages: Vec<String> = self
                    .open_stages()
                    .iter()
                    .map(|s| format!("{}/s for {}", s.rate, humantime::format_duration(s.duration)))
                    .collect();
                format!("open: {}", stages.join(", "))
            }
            ModelKind::Closed => format!(
                "closed (goose): {} users, ramp {}{}",
                self.users.unwrap_or(1),
                humantime::format_duration(self.ramp.unwrap_or_default()),
                self.duration
                    .map(|d| format!(", {}", humantime::format_duration(d)))
                    .unwrap_or_default()
            ),
            ModelKind::Step => format!(
                "step: {}/s +{}/s per {} up to {}/s",
                self.start_rate.unwrap_or(0.0),
                self.step_rate.unwrap_or(0.0),
                humantime::format_duration(self.step_duration.unwrap_or_default()),
                self.max_rate.unwrap_or(0.0)
            ),
        }
    }
}

/// `[measure]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeasureSpec {
    /// A created port not programmed (or not converged) this long after its request is a
    /// failure.
    #[serde(with = "humantime_serde")]
    pub correlation_timeout: Duration,
    /// Length of an interval histogram.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for MeasureSpec {
    fn default() -> Self {
        Self {
            correlation_timeout: Duration::from_secs(30),
            interval: Duration::from_secs(1),
        }
    }
}

/// A scenario with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The scenario.
    pub scenario: Scenario,
    /// The file.
    pub path: PathBuf,
    /// The text after overrides (what is run, and saved in the run folder).
    pub text: String,
    /// `--set` overrides as given.
    pub overrides: Vec<String>,
}

/// Reads, overrides, parses and validates a scenario file.
pub fn load(path: &Path, overrides: &[String]) -> Result<Loaded, ScenarioErrors> {
    let source = Source::read(path).map_err(|e| ScenarioErrors(vec![e]))?;
    load_source(path, source, overrides)
}

/// As [`load`], for scenario text that came from `path` (a file not read from disk).
pub fn load_text(path: &Path, text: String, overrides: &[String]) -> Result<Loaded, ScenarioErrors> {
    let source = Source::parse(path.display().to_string(), text).map_err(|e| ScenarioErrors(vec![e]))?;
    load_source(path, source, overrides)
}

fn load_source(path: &Path, source: Source, overrides: &[String]) -> Result<Loaded, ScenarioErrors> {
    let source = source.with_overrides(overrides).map_err(|e| ScenarioErrors(vec![e]))?;
    let scenario: Scenario = source.deserialize().map_err(|e| ScenarioErrors(vec![e]))?;
    let problems = validate::validate(&scenario);
    if !problems.is_empty() {
        return Err(ScenarioErrors(
            problems
                .into_iter()
                .map(|(field, msg)| source.error_at(&field, msg))
                .collect(),
        ));
    }
    Ok(Loaded {
        scenario,
        path: path.to_owned(),
        text: source.text().to_owned(),
        overrides: overrides.to_vec(),
    })
}

/// Checks `${NAME}` references in `text` without reading the environment (at load time).
pub fn expand_env_syntax(text: &str) -> Result<(), String> {
    expand_with(text, |_| Some(String::new())).map(drop)
}

/// `text` with every `${NAME}` replaced by the environment variable NAME; an unset variable is
/// an error naming it. Written here rather than taken from a crate: one pattern, no defaults,
/// no shell semantics, which is all a header value needs.
pub fn expand_env(text: &str) -> Result<String, String> {
    expand_with(text, |name| std::env::var(name).ok())
}

fn expand_with(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{text}`: `${{` without a closing `}}`"))?;
        let name = &after[..end];
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("`${{{name}}}`: not an environment variable name"));
        }
        out.push_str(&lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod env_tests {
    use super::*;

    #[test]
    fn references_are_expanded_and_bad_ones_named() {
        let look = |n: &str| (n == "OS_TOKEN").then(|| "tok".to_owned());
        assert_eq!(expand_with("Bearer ${OS_TOKEN}!", look).unwrap(), "Bearer tok!");
        assert_eq!(expand_with("plain", look).unwrap(), "plain");
        assert!(
            expand_with("${MISSING}", look)
                .unwrap_err()
                .contains("MISSING is not set")
        );
        assert!(
            expand_with("${OS_TOKEN", look)
                .unwrap_err()
                .contains("without a closing")
        );
        assert!(expand_with("${1X}", look).unwrap_err().contains("not an environment"));
        assert!(expand_env_syntax("${ANY_NAME}").is_ok());
    }
}
