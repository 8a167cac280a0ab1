//! Applies one decoded goal state to a [`HostState`], in the real agent's order (routers, ports,
//! neighbors, DHCP; VPC, subnet, security-group and gateway states are context and stored last),
//! and says what was done: per-resource statuses, the work for the cost model, counts and ids.
//!
//! Pure and synchronous, so it can be benchmarked and tested without a server.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use alcor_schema::{
    DhcpState, GatewayState, GoalState, GoalStateV2, NeighborState, NeighborType, OperationStatus, OperationType,
    PortState, ResourceType, RouterState, SecurityGroupState, SubnetState, UpdateType, VpcState,
};
use serde::{Deserialize, Serialize};

use crate::cost::Work;
use crate::ids::IdList;
use crate::neighbor_ref::NeighborRef;
use crate::state::HostState;
use crate::validate::{self, MessageSubnets, parse_ipv4};
use crate::wire::{DecodedV2, GoalStateV2View, WireNeighbor};

/// How an agent treats input that the real agent would reject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValidationMode {
    /// Apply what can be applied; never answer INVALID_ARG for content.
    #[default]
    Lenient,
    /// Check every state as the real agent does (protocol reference §1.10) and answer INVALID_ARG,
    /// leaving state untouched, for what it would reject.
    Strict,
}

impl std::fmt::Display for ValidationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Lenient => "lenient",
            Self::Strict => "strict",
        })
    }
}

impl std::str::FromStr for ValidationMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lenient" => Ok(Self::Lenient),
            "strict" => Ok(Self::Strict),
            _ => Err(format!("invalid validation mode `{s}` (expected lenient or strict)")),
        }
    }
}

/// What the caller wants besides the state change.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Validation mode.
    pub mode: ValidationMode,
    /// The host's own IP: neighbors that live here are skipped, as the real agent does.
    pub local_ip: Option<Ipv4Addr>,
    /// Collect the port and neighbor ids the message carried (costs an allocation per id).
    pub collect_ids: bool,
}

/// Which per-resource share of the simulated cost a status carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Not charged (INFO/GET, invalid, skipped, or a resource the cost model does not price).
    None,
    /// Charged one port's share.
    Port,
    /// Charged one neighbor's share.
    Neighbor,
}

/// The outcome for one resource that the reply reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceStatus {
    /// Resource id (port, neighbor, DHCP or router id).
    pub id: String,
    /// Resource type.
    pub resource_type: ResourceType,
    /// The state's operation type, echoed.
    pub operation_type: i32,
    /// What happened.
    pub status: OperationStatus,
    /// Measured apply time of this resource.
    pub measured: Duration,
    /// Which simulated share it is charged.
    pub charge: Charge,
}

/// States per resource type in one message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceCounts {
    /// VPC states.
    pub vpc: u64,
    /// Subnet states.
    pub subnet: u64,
    /// Port states.
    pub port: u64,
    /// Neighbor states.
    pub neighbor: u64,
    /// Security-group states.
    pub security_group: u64,
    /// Rules inside the security-group states.
    pub sg_rule: u64,
    /// DHCP states.
    pub dhcp: u64,
    /// Router states.
    pub router: u64,
    /// Gateway states.
    pub gateway: u64,
}

impl ResourceCounts {
    /// Total resource states (rules not counted separately).
    pub fn total(&self) -> u64 {
        self.vpc
            + self.subnet
            + self.port
            + self.neighbor
            + self.security_group
            + self.dhcp
            + self.router
            + self.gateway
    }
}

/// States per operation type in one message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    /// INFO.
    pub info: u64,
    /// CREATE.
    pub create: u64,
    /// UPDATE.
    pub update: u64,
    /// GET.
    pub get: u64,
    /// DELETE.
    pub delete: u64,
    /// A number that is no OperationType.
    pub unknown: u64,
}

impl OpCounts {
    fn add(&mut self, op: Result<OperationType, prost::UnknownEnumValue>) {
        match op {
            Ok(OperationType::Info) => self.info += 1,
            Ok(OperationType::Create) => self.create += 1,
            Ok(OperationType::Update) => self.update += 1,
            Ok(OperationType::Get) => self.get += 1,
            Ok(OperationType::Delete) => self.delete += 1,
            Err(_) => self.unknown += 1,
        }
    }
}

/// Outcomes of ports, neighbors, DHCP and routers in one message (neighbors included even where
/// the V2 reply carries no neighbor status).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// SUCCESS.
    pub success: u64,
    /// FAILURE.
    pub failure: u64,
    /// INVALID_ARG.
    pub invalid_arg: u64,
    /// PENDING.
    pub pending: u64,
}

impl StatusCounts {
    fn add(&mut self, s: OperationStatus) {
        match s {
            OperationStatus::Success => self.success += 1,
            OperationStatus::Failure | OperationStatus::OutOfOrder => self.failure += 1,
            OperationStatus::InvalidArg => self.invalid_arg += 1,
            OperationStatus::Pending => self.pending += 1,
        }
    }
}

/// What applying one message did.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Statuses the reply reports, in processing order.
    pub statuses: Vec<ResourceStatus>,
    /// Work for the cost model.
    pub work: Work,
    /// States per resource type.
    pub counts: ResourceCounts,
    /// States per operation type.
    pub ops: OpCounts,
    /// Outcomes of ports, neighbors, DHCP and routers.
    pub outcomes: StatusCounts,
    /// Ids of the port states (when collected).
    pub port_ids: IdList,
    /// Port ids of the neighbor states (when collected).
    pub neighbor_ids: IdList,
    /// Ids of the security-group rules carried, whatever their operation (when collected): what
    /// tells the harness a rule change reached this host.
    pub sg_rule_ids: IdList,
    /// Neighbors skipped because they live on this host.
    pub skipped_local_neighbors: u64,
    /// The first rejection, for logs: (resource id, reason).
    pub first_invalid: Option<(String, &'static str)>,
}

struct Applier<'a> {
    state: &'a mut HostState,
    opts: ApplyOptions,
    /// The V1 reply reports neighbor statuses; the V2 reply does not.
    report_neighbors: bool,
    out: Applied,
}

/// Applies a V2 goal state (the streaming RPC). The reply reports PORT, ROUTER and DHCP.
pub fn apply_v2(state: &mut HostState, msg: GoalStateV2, opts: ApplyOptions) -> Applied {
    let decoded = DecodedV2 {
        neighbors: msg.neighbor_states.into_values().map(WireNeighbor::Decoded).collect(),
        view: GoalStateV2View {
            format_version: msg.format_version,
            // Not used in applying (see GoalStateV2View::host_resources).
            host_resources: Vec::new(),
            vpc_states: msg.vpc_states,
            subnet_states: msg.subnet_states,
            port_states: msg.port_states,
            dhcp_states: msg.dhcp_states,
            neighbor_states: Vec::new(),
            security_group_states: msg.security_group_states,
            router_states: msg.router_states,
            gateway_states: msg.gateway_states,
        },
    };
    apply_decoded_v2(state, decoded, opts)
}

/// Applies a V2 goal state decoded by [`wire::decode_v2`](crate::wire::decode_v2), the agent's
/// own path.
pub fn apply_decoded_v2(state: &mut HostState, msg: DecodedV2, opts: ApplyOptions) -> Applied {
    let DecodedV2 { view, neighbors } = msg;
    let subnets = view.subnet_states;
    let mut a = Applier::new(state, opts, false);
    if opts.collect_ids {
        // Room for UUID-length ids, the usual kind.
        a.out.neighbor_ids = IdList::with_capacity(neighbors.len(), 36);
    }
    a.state.reserve_neighbors(NeighborType::L2, neighbors.len());
    view.router_states.into_values().for_each(|s| a.router(s));
    view.port_states.into_values().for_each(|s| a.port(s, &subnets));
    for n in neighbors {
        match n {
            WireNeighbor::Checked(entry) if !a.strict() => {
                // Checked by decode_v2, so it parses; an empty state would count as invalid.
                a.neighbor_in_place(&NeighborRef::parse(&entry).unwrap_or_default())
            }
            n @ WireNeighbor::Checked(_) => a.neighbor(n.to_state(), &subnets),
            WireNeighbor::Decoded(s) => a.neighbor(s, &subnets),
        }
    }
    view.dhcp_states.into_values().for_each(|s| a.dhcp(s));
    a.context(
        view.vpc_states.into_values(),
        subnets.into_values(),
        view.security_group_states.into_values(),
        view.gateway_states.into_values(),
    );
    a.out
}

/// Applies a V1 goal state (the unary RPC). The reply reports PORT, NEIGHBOR, ROUTER and DHCP.
pub fn apply_v1(state: &mut HostState, msg: GoalState, opts: ApplyOptions) -> Applied {
    let subnets: MessageSubnets = msg
        .subnet_states
        .into_iter()
        .map(|s| (s.configuration.as_ref().map(|c| c.id.clone()).unwrap_or_default(), s))
        .collect();
    let mut a = Applier::new(state, opts, true);
    msg.router_states.into_iter().for_each(|s| a.router(s));
    msg.port_states.into_iter().for_each(|s| a.port(s, &subnets));
    msg.neighbor_states.into_iter().for_each(|s| a.neighbor(s, &subnets));
    msg.dhcp_states.into_iter().for_each(|s| a.dhcp(s));
    a.context(
        msg.vpc_states.into_iter(),
        subnets.into_values(),
        msg.security_group_states.into_iter(),
        msg.gateway_states.into_iter(),
    );
    a.out
}

impl<'a> Applier<'a> {
    fn new(state: &'a mut HostState, opts: ApplyOptions, report_neighbors: bool) -> Self {
        Self {
            state,
            opts,
            report_neighbors,
            out: Applied::default(),
        }
    }

    fn strict(&self) -> bool {
        self.opts.mode == ValidationMode::Strict
    }

    /// Runs a validation in strict mode only: lenient mode applies whatever it can, so the
    /// checks (address parsing, a subnet lookup per neighbor) would be work thrown away.
    fn check(&self, validate: impl FnOnce() -> Result<(), validate::Invalid>) -> Result<(), validate::Invalid> {
        if self.strict() { validate() } else { Ok(()) }
    }

    /// Records an outcome; `report` adds it to the reply.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        report: bool,
        id: String,
        resource_type: ResourceType,
        operation_type: i32,
        status: OperationStatus,
        started: Option<Instant>,
        charge: Charge,
    ) {
        self.out.outcomes.add(status);
        if report {
            let measured = started.map(|t| t.elapsed()).unwrap_or_default();
            self.out.statuses.push(ResourceStatus {
                id,
                resource_type,
                operation_type,
                status,
                measured,
                charge,
            });
        }
    }

    fn reject(&mut self, id: &str, reason: &'static str) -> OperationStatus {
        if self.out.first_invalid.is_none() {
            self.out.first_invalid = Some((id.to_owned(), reason));
        }
        OperationStatus::InvalidArg
    }

    fn router(&mut self, s: RouterState) {
        let started = Instant::now();
        let op = OperationType::try_from(s.operation_type);
        self.out.ops.add(op);
        self.out.counts.router += 1;
        let cfg = s.configuration.unwrap_or_default();
        let id = cfg.id.clone();
        let status = match op {
            Err(_) => self.reject(&id, "unknown operation_type"),
            Ok(OperationType::Create | OperationType::Update) => {
                self.state.routers.insert(cfg.id.clone(), cfg);
                OperationStatus::Success
            }
            Ok(OperationType::Delete) => {
                self.state.routers.remove(&cfg.id);
                OperationStatus::Success
            }
            Ok(OperationType::Info | OperationType::Get) => OperationStatus::Success,
        };
        self.record(
            true,
            id,
            ResourceType::Router,
            s.operation_type,
            status,
            Some(started),
            Charge::None,
        );
    }

    fn port(&mut self, s: PortState, subnets: &MessageSubnets) {
        let started = Instant::now();
        let op = OperationType::try_from(s.operation_type);
        self.out.ops.add(op);
        self.out.counts.port += 1;
        let cfg = s.configuration.unwrap_or_default();
        let id = cfg.id.clone();
        if self.opts.collect_ids {
            self.out.port_ids.push(&id);
        }
        let mut charge = Charge::None;
        let status = match op {
            Err(_) => self.reject(&id, "unknown operation_type"),
            Ok(op) => match self.check(|| validate::port(op, &cfg, subnets)) {
                Err(reason) => self.reject(&id, reason),
                _ => {
                    let as_delete = op == OperationType::Delete
                        || (op == OperationType::Update && cfg.device_id.is_empty() && cfg.device_owner.is_empty());
                    match op {
                        OperationType::Info | OperationType::Get => {}
                        _ if as_delete => {
                            self.state.ports.remove(&cfg.id);
                        }
                        _ => {
                            self.state.ports.insert(cfg.id.clone(), cfg);
                        }
                    }
                    if !matches!(op, OperationType::Info | OperationType::Get) {
                        self.out.work.ports += 1;
                        charge = Charge::Port;
                    }
                    OperationStatus::Success
                }
            },
        };
        self.record(
            true,
            id,
            ResourceType::Port,
            s.operation_type,
            status,
            Some(started),
            charge,
        );
    }

    /// A neighbor decoded by prost: the V1 path, strict validation, and entries the in-place
    /// reader left to prost.
    fn neighbor(&mut self, s: NeighborState, subnets: &MessageSubnets) {
        // Per-neighbor timing only where the reply reports it: reading the clock twice per
        // neighbor is a measurable share of a 100k-neighbor message.
        let started = self.report_neighbors.then(Instant::now);
        let cfg = s.configuration.unwrap_or_default();
        let n = NeighborRef::from_decoded(s.operation_type, &cfg);
        let op = OperationType::try_from(s.operation_type);
        let invalid = match op {
            Ok(op) => self.check(|| validate::neighbor(op, &cfg, subnets)).err(),
            Err(_) => None,
        };
        let (status, charge) = self.apply_neighbor(&n, invalid);
        let report_id = if self.report_neighbors {
            cfg.id.clone()
        } else {
            String::new()
        };
        let report = self.report_neighbors;
        self.record(
            report,
            report_id,
            ResourceType::Neighbor,
            s.operation_type,
            status,
            started,
            charge,
        );
    }

    /// A neighbor read in place (V2, lenient): nothing allocated but a new entry's key. V2
    /// replies carry no neighbor statuses, so only the outcome is counted.
    fn neighbor_in_place(&mut self, n: &NeighborRef<'_>) {
        let (status, _) = self.apply_neighbor(n, None);
        self.out.outcomes.add(status);
    }

    /// Counts, collects and applies one neighbor; `invalid` is strict validation's verdict.
    fn apply_neighbor(&mut self, n: &NeighborRef<'_>, invalid: Option<validate::Invalid>) -> (OperationStatus, Charge) {
        let op = OperationType::try_from(n.operation_type);
        self.out.ops.add(op);
        self.out.counts.neighbor += 1;
        if self.opts.collect_ids {
            self.out.neighbor_ids.push(n.id);
        }
        let op = match (op, invalid) {
            (Err(_), _) => return (self.reject(n.id, "unknown operation_type"), Charge::None),
            (_, Some(reason)) => return (self.reject(n.id, reason), Charge::None),
            (Ok(op), None) => op,
        };
        let kind = n.kind();
        let host_ip = parse_ipv4(n.host_ip_address);
        let local = host_ip.is_some() && host_ip == self.opts.local_ip;
        let charge = match op {
            OperationType::Info | OperationType::Get => Charge::None,
            _ if local => {
                self.out.skipped_local_neighbors += 1;
                Charge::None
            }
            OperationType::Delete => {
                self.state.remove_neighbor(kind, n.id);
                self.out.work.neighbors += 1;
                Charge::Neighbor
            }
            _ => {
                self.state.put_neighbor(kind, n, host_ip);
                self.out.work.neighbors += 1;
                Charge::Neighbor
            }
        };
        (OperationStatus::Success, charge)
    }

    fn dhcp(&mut self, s: DhcpState) {
        let started = Instant::now();
        let op = OperationType::try_from(s.operation_type);
        self.out.ops.add(op);
        self.out.counts.dhcp += 1;
        let cfg = s.configuration.unwrap_or_default();
        let id = cfg.id.clone();
        let status = match op {
            Err(_) => self.reject(&id, "unknown operation_type"),
            Ok(op) => match self.check(|| validate::dhcp(op, &cfg.mac_address, &cfg.ipv4_address)) {
                Err(reason) => self.reject(&id, reason),
                _ => {
                    match op {
                        OperationType::Create | OperationType::Update => {
                            self.state.dhcp.insert(cfg.id.clone(), cfg);
                        }
                        OperationType::Delete => {
                            self.state.dhcp.remove(&cfg.id);
                        }
                        OperationType::Info | OperationType::Get => {}
                    }
                    OperationStatus::Success
                }
            },
        };
        self.record(
            true,
            id,
            ResourceType::Dhcp,
            s.operation_type,
            status,
            Some(started),
            Charge::None,
        );
    }

    /// Stores the context states: VPCs, subnets, security groups and gateways.
    fn context(
        &mut self,
        vpcs: impl Iterator<Item = VpcState>,
        subnets: impl Iterator<Item = SubnetState>,
        sgs: impl Iterator<Item = SecurityGroupState>,
        gateways: impl Iterator<Item = GatewayState>,
    ) {
        for s in vpcs {
            let op = OperationType::try_from(s.operation_type);
            self.out.ops.add(op);
            self.out.counts.vpc += 1;
            let cfg = s.configuration.unwrap_or_default();
            upsert_or_remove(&mut self.state.vpcs, op, cfg.id.clone(), cfg);
        }
        for s in subnets {
            let op = OperationType::try_from(s.operation_type);
            self.out.ops.add(op);
            self.out.counts.subnet += 1;
            let cfg = s.configuration.unwrap_or_default();
            upsert_or_remove(&mut self.state.subnets, op, cfg.id.clone(), cfg);
        }
        for s in gateways {
            let op = OperationType::try_from(s.operation_type);
            self.out.ops.add(op);
            self.out.counts.gateway += 1;
            let cfg = s.configuration.unwrap_or_default();
            upsert_or_remove(&mut self.state.gateways, op, cfg.id.clone(), cfg);
        }
        for s in sgs {
            let op = OperationType::try_from(s.operation_type);
            self.out.ops.add(op);
            self.out.counts.security_group += 1;
            let cfg = s.configuration.unwrap_or_default();
            let rules = cfg.security_group_rules.len() as u64;
            self.out.counts.sg_rule += rules;
            if self.opts.collect_ids {
                for r in &cfg.security_group_rules {
                    self.out.sg_rule_ids.push(&r.id);
                }
            }
            if matches!(op, Ok(OperationType::Create | OperationType::Update)) {
                self.out.work.sg_rules += rules;
            }
            match op {
                // A DELTA update carries only the changed rules, each with its own operation.
                Ok(OperationType::Update) if cfg.update_type == UpdateType::Delta as i32 => {
                    let existing = self.state.security_groups.entry(cfg.id.clone()).or_insert_with(|| {
                        alcor_schema::SecurityGroupConfiguration {
                            security_group_rules: Vec::new(),
                            ..cfg.clone()
                        }
                    });
                    // One pass over the group however many rules change: an expanded remote-group
                    // rule brings one rule per member, and a retain per rule was quadratic.
                    let changed: std::collections::HashSet<&str> =
                        cfg.security_group_rules.iter().map(|r| r.id.as_str()).collect();
                    existing
                        .security_group_rules
                        .retain(|r| !changed.contains(r.id.as_str()));
                    drop(changed);
                    existing.security_group_rules.extend(
                        cfg.security_group_rules
                            .into_iter()
                            .filter(|r| r.operation_type != OperationType::Delete as i32),
                    );
                }
                _ => {
                    let mut cfg = cfg;
                    // A whole group may list rules it no longer has, marked deleted.
                    cfg.security_group_rules
                        .retain(|r| r.operation_type != OperationType::Delete as i32);
                    upsert_or_remove(&mut self.state.security_groups, op, cfg.id.clone(), cfg)
                }
            }
        }
    }
}

/// Context states: INFO, CREATE and UPDATE store the configuration; DELETE removes it.
fn upsert_or_remove<V>(
    map: &mut std::collections::HashMap<String, V>,
    op: Result<OperationType, prost::UnknownEnumValue>,
    id: String,
    value: V,
) {
    match op {
        Ok(OperationType::Delete) => {
            map.remove(&id);
        }
        Ok(OperationType::Get) | Err(_) => {}
        Ok(_) => {
            map.insert(id, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use alcor_schema::SecurityGroupConfiguration;
    use alcor_schema::security_group_configuration::SecurityGroupRule;

    use super::*;

    /// A DELTA update of a group: one rule added, one removed.
    fn delta(add: &str, remove: &str) -> GoalStateV2 {
        let rule = |id: &str, op: OperationType| SecurityGroupRule {
            operation_type: op as i32,
            security_group_id: "web".into(),
            id: id.into(),
            ..Default::default()
        };
        let mut gs = GoalStateV2::default();
        gs.security_group_states.insert(
            "web".into(),
            SecurityGroupState {
                operation_type: OperationType::Update as i32,
                configuration: Some(SecurityGroupConfiguration {
                    id: "web".into(),
                    update_type: UpdateType::Delta as i32,
                    security_group_rules: vec![rule(add, OperationType::Create), rule(remove, OperationType::Delete)],
                    ..Default::default()
                }),
            },
        );
        gs
    }

    #[test]
    fn a_rule_change_is_applied_and_its_rules_named_for_the_harness() {
        let mut state = HostState::default();
        let opts = |collect_ids| ApplyOptions {
            mode: ValidationMode::Strict,
            local_ip: None,
            collect_ids,
        };
        let a = apply_v2(&mut state, delta("r1", "none"), opts(true));
        assert_eq!(a.sg_rule_ids.iter().collect::<Vec<_>>(), ["r1", "none"]);
        let a = apply_v2(&mut state, delta("r2", "r1"), opts(false));
        assert!(a.sg_rule_ids.is_empty(), "ids only when asked for");
        let held: Vec<&str> = state
            .security_group("web")
            .unwrap()
            .security_group_rules
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(held, ["r2"], "the delta added r2 and removed r1");
    }
}
