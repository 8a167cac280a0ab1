//! Goal-state computation (the DPM role): which host gets which states when ports are bound,
//! unbound, or a subnet is attached to a router (protocol reference §2.3).
//!
//! Fan-out modes:
//! - [`FanoutMode::Alcor`] (default) does what Alcor V2 does: the port's host gets the port, VPC,
//!   subnet, security groups, DHCP, routers and an L2 neighbor for **every** bound port of its
//!   subnets (including its own, which the agent skips) plus L3 neighbors across router-attached
//!   subnets; every other host with ports there gets the new neighbor. N sequential creates in a
//!   subnet deliver O(N²) neighbor states.
//! - [`FanoutMode::Incremental`] sends each host only the neighbors it has not been sent yet (and
//!   none that live on it), and deletes exactly to the hosts that hold the neighbor.
//!
//! Remote-group security rules: a host holding a port of group A whose rules name group B needs
//! every member port of B; such members are sent as L3 neighbor entries and counted apart
//! (`remote_group_neighbors`), and a new member of B goes to every host holding a port of A.
//!
//! Speed: every bound port's neighbor entry (the encoded `neighbor_states` map entry, L2 and
//! L3) is encoded once when the port is bound and cached; a goal state for a port joining a
//! subnet of 100k ports is then 100k cached byte strings appended after the few encoded states.
//! On the wire a map is a repeated entry message, so appended entries are a valid GoalStateV2.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alcor_schema::port_configuration::{AllowAddressPair, FixedIp as PortFixedIp, SecurityGroupId};
use alcor_schema::router_configuration::{RoutingRule, SubnetRoutingTable};
use alcor_schema::security_group_configuration::{Direction as SgDirection, SecurityGroupRule};
use alcor_schema::subnet_configuration::Gateway;
use alcor_schema::{
    DhcpConfiguration, DhcpState, EtherType, GoalStateV2, NeighborConfiguration, NeighborState, NeighborType,
    NetworkType, OperationType, PortConfiguration, PortState, Protocol, RouterConfiguration, RouterState,
    SecurityGroupConfiguration, SecurityGroupState, SubnetConfiguration, SubnetState, UpdateType, VpcConfiguration,
    VpcState, neighbor_configuration, neighbor_key,
};
use bytes::{BufMut, Bytes, BytesMut};
use indexmap::IndexSet;
use prost::Message;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::model::{Direction, Port, Rule, Store};

/// How neighbor state is fanned out to hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FanoutMode {
    /// As Alcor V2: every port of the subnet to the port's host, on every create.
    #[default]
    Alcor,
    /// Only what each host does not have yet.
    Incremental,
}

impl std::str::FromStr for FanoutMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "alcor" => Ok(Self::Alcor),
            "incremental" => Ok(Self::Incremental),
            _ => Err(format!("invalid fan-out mode `{s}` (expected alcor or incremental)")),
        }
    }
}

impl std::fmt::Display for FanoutMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Alcor => "alcor",
            Self::Incremental => "incremental",
        })
    }
}

/// How a rule naming a remote group reaches the hosts that enforce it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SgMode {
    /// The remote group's members are a set each enforcing host holds (here: its members as
    /// L3 neighbors, Alcor's design; OVN's address sets): a rule is sent as it is, and a member
    /// joining or leaving changes one entry per host.
    #[default]
    AddressSet,
    /// The rule is expanded into one rule per remote member (its address as the remote prefix,
    /// named `RULE#MEMBER-PORT`), as iptables-style agents without ipset program it: a member
    /// joining or leaving re-sends every enforcing host the whole expanded group.
    Expand,
}

impl std::str::FromStr for SgMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "address-set" => Ok(Self::AddressSet),
            "expand" => Ok(Self::Expand),
            _ => Err(format!("invalid sg mode `{s}` (expected address-set or expand)")),
        }
    }
}

impl std::fmt::Display for SgMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AddressSet => "address-set",
            Self::Expand => "expand",
        })
    }
}

/// What one host message carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MessageCounts {
    /// Port states.
    pub ports: u64,
    /// Neighbor states (L2 + L3, remote-group members included).
    pub neighbors: u64,
    /// Neighbor states sent only because of remote-group rules.
    pub remote_group_neighbors: u64,
    /// Security-group states.
    pub security_groups: u64,
    /// Encoded size.
    pub bytes: u64,
}

/// An encoded goal state for one host.
#[derive(Debug, Clone)]
pub struct HostMessage {
    /// Where to push it (the node's `local_ip`).
    pub host: Ipv4Addr,
    /// The encoded GoalStateV2.
    pub bytes: Bytes,
    /// What it carries.
    pub counts: MessageCounts,
    /// The VPC it is about (the first, when it carries several): its topic on the MQ path.
    pub vpc: Option<Arc<str>>,
}

impl HostMessage {
    /// The message as a V1 GoalState (for the unary RPC): the same states as lists.
    pub fn to_v1(&self) -> Result<Bytes, prost::DecodeError> {
        let v2 = GoalStateV2::decode(self.bytes.clone())?;
        let v1 = alcor_schema::GoalState {
            format_version: v2.format_version,
            vpc_states: v2.vpc_states.into_values().collect(),
            subnet_states: v2.subnet_states.into_values().collect(),
            port_states: v2.port_states.into_values().collect(),
            neighbor_states: v2.neighbor_states.into_values().collect(),
            security_group_states: v2.security_group_states.into_values().collect(),
            dhcp_states: v2.dhcp_states.into_values().collect(),
            router_states: v2.router_states.into_values().collect(),
            gateway_states: v2.gateway_states.into_values().collect(),
        };
        Ok(Bytes::from(v1.encode_to_vec()))
    }
}

/// Port ids of a subnet or group: insertion order for building goal states, and O(1) removal
/// (a delete in a 100k-port subnet must not scan it).
type Members = IndexSet<String, rustc_hash::FxBuildHasher>;

/// A neighbor as tracked per host in incremental mode: its kind and [`PortEntry::key`].
type NeighborRef = (NeighborType, u32);

/// A bound port as the DPM caches it.
#[derive(Debug, Clone)]
struct PortEntry {
    /// A number of its own, for duplicate checks that must not allocate (a message can carry a
    /// million neighbors).
    key: u32,
    /// Push target of its host.
    host: Ipv4Addr,
    /// Encoded `neighbor_states` map entries (field 7 records), CREATE.
    l2: Bytes,
    l3: Bytes,
    subnets: Vec<String>,
    security_groups: Vec<String>,
}

/// The DPM's caches: bound ports per subnet and per security group, hosts per subnet, and in
/// incremental mode what each host has been sent.
#[derive(Debug, Default, Clone)]
pub struct Dpm {
    mode: FanoutMode,
    sg_mode: SgMode,
    entries: FxHashMap<String, PortEntry>,
    /// Bound ports per subnet, in binding order.
    subnet_ports: FxHashMap<String, Members>,
    /// Hosts with bound ports per subnet, with how many.
    subnet_hosts: FxHashMap<String, BTreeMap<Ipv4Addr, u32>>,
    /// Bound ports per security group.
    sg_members: FxHashMap<String, Members>,
    /// Incremental mode: neighbors each host holds.
    known: FxHashMap<Ipv4Addr, FxHashSet<NeighborRef>>,
    /// Incremental mode: subnets whose every bound port a host already holds as L2 neighbors.
    /// Such a host learns the subnet's later ports as they bind (it holds ports there), so its
    /// next port in the subnet need not walk the whole list again.
    synced: FxHashSet<(Ipv4Addr, String)>,
    /// Time the last computation spent encoding its messages.
    last_encode: Duration,
    /// The next [`PortEntry::key`].
    next_key: u32,
}

/// Collects the states bound for one host. Each neighbor goes in once per kind, however many
/// ways lead to it (a bulk of ports in one subnet, several subnets on a router, remote groups).
#[derive(Default)]
struct Builder {
    gs: GoalStateV2,
    records: Vec<Bytes>,
    records_len: usize,
    /// Subnets whose every bound port this message already carries, with the kind.
    listed: Vec<(NeighborType, String)>,
    /// Neighbors added one by one (not through a listed subnet), by kind and port key.
    seen: FxHashSet<(NeighborType, u32)>,
    counts: MessageCounts,
}

impl Builder {
    /// Whether the message already has the whole member list of `subnet` as `kind`.
    fn has_listed(&self, kind: NeighborType, subnet: &str) -> bool {
        self.listed.iter().any(|(k, s)| *k == kind && s == subnet)
    }

    /// Whether `entry` is already in the message as `kind`.
    fn carries(&self, kind: NeighborType, entry: &PortEntry) -> bool {
        entry.subnets.iter().any(|s| self.has_listed(kind, s)) || self.seen.contains(&(kind, entry.key))
    }

    fn record(&mut self, bytes: Bytes) {
        self.records_len += bytes.len();
        self.records.push(bytes);
        self.counts.neighbors += 1;
    }

    fn finish(mut self, host: Ipv4Addr) -> HostMessage {
        let mut buf = BytesMut::with_capacity(self.gs.encoded_len() + self.records_len);
        self.gs.encode(&mut buf).expect("BytesMut grows");
        for r in self.records {
            buf.put(r);
        }
        self.counts.ports = self.gs.port_states.len() as u64;
        self.counts.security_groups = self.gs.security_group_states.len() as u64;
        self.counts.bytes = buf.len() as u64;
        HostMessage {
            host,
            bytes: buf.freeze(),
            counts: self.counts,
            vpc: self.gs.vpc_states.keys().next().map(|k| Arc::from(k.as_str())),
        }
    }
}

/// The encoded field-7 record of one neighbor.
fn neighbor_record(store: &Store, port: &Port, kind: NeighborType, op: OperationType) -> Bytes {
    #[derive(Clone, PartialEq, Message)]
    struct Entry {
        #[prost(string, tag = "1")]
        key: String,
        #[prost(message, optional, tag = "2")]
        value: Option<NeighborState>,
    }
    let node = port.host_id.as_deref().and_then(|h| store.node_by_name(h));
    let tunnel = store
        .vpcs
        .get(&port.vpc_id)
        .map(|v| v.segmentation_id)
        .unwrap_or_default();
    let state = NeighborState {
        operation_type: op as i32,
        configuration: Some(NeighborConfiguration {
            revision_number: 1,
            id: port.id.clone(),
            update_type: UpdateType::Full as i32,
            vpc_id: port.vpc_id.clone(),
            name: port.name.clone(),
            mac_address: port.mac.clone(),
            host_mac_address: node.map(|n| n.mac_address.clone()).unwrap_or_default(),
            host_ip_address: node.map(|n| n.data_path_ip.to_string()).unwrap_or_default(),
            fixed_ips: port
                .fixed_ips
                .iter()
                .map(|f| neighbor_configuration::FixedIp {
                    neighbor_type: kind as i32,
                    subnet_id: f.subnet_id.clone(),
                    ip_address: f.ip.to_string(),
                    tunnel_id: tunnel,
                    ..Default::default()
                })
                .collect(),
            allow_address_pairs: port
                .allowed_address_pairs
                .iter()
                .map(|(ip, mac)| neighbor_configuration::AllowAddressPair {
                    ip_address: ip.clone(),
                    mac_address: mac.clone(),
                })
                .collect(),
            ..Default::default()
        }),
    };
    let entry = Entry {
        key: neighbor_key(kind, &port.id),
        value: Some(state),
    };
    let mut buf = BytesMut::new();
    prost::encoding::message::encode(7, &entry, &mut buf);
    buf.freeze()
}

fn vpc_state(store: &Store, vpc_id: &str) -> Option<VpcState> {
    let v = store.vpcs.get(vpc_id)?;
    Some(VpcState {
        operation_type: OperationType::Info as i32,
        configuration: Some(VpcConfiguration {
            revision_number: 1,
            id: v.id.clone(),
            project_id: v.project_id.clone(),
            name: v.name.clone(),
            cidr: v.cidr.map(|c| c.to_string()).unwrap_or_default(),
            ..Default::default()
        }),
    })
}

fn subnet_state(store: &Store, subnet_id: &str) -> Option<SubnetState> {
    let s = store.subnets.get(subnet_id)?;
    let vpc = store.vpcs.get(&s.vpc_id)?;
    let network_type = match vpc.network_type.as_str() {
        "vlan" => NetworkType::Vlan,
        "gre" => NetworkType::Gre,
        "geneve" => NetworkType::Geneve,
        _ => NetworkType::Vxlan,
    };
    Some(SubnetState {
        operation_type: OperationType::Info as i32,
        configuration: Some(SubnetConfiguration {
            revision_number: 1,
            id: s.id.clone(),
            network_type: network_type as i32,
            vpc_id: s.vpc_id.clone(),
            name: s.name.clone(),
            cidr: s.cidr.to_string(),
            tunnel_id: vpc.segmentation_id as u64,
            gateway: Some(Gateway {
                ip_address: s.gateway_ip.to_string(),
                mac_address: s.gateway_mac.clone(),
            }),
            dhcp_enable: s.enable_dhcp,
            availability_zone: "nova".into(),
            ..Default::default()
        }),
    })
}

/// One rule as the agent gets it, with its own operation.
fn rule_message(r: &Rule, op: OperationType) -> SecurityGroupRule {
    SecurityGroupRule {
        operation_type: op as i32,
        security_group_id: r.security_group_id.clone(),
        id: r.id.clone(),
        direction: match r.direction {
            Direction::Ingress => SgDirection::Ingress,
            Direction::Egress => SgDirection::Egress,
        } as i32,
        ethertype: if r.ethertype == "IPv6" {
            EtherType::Ipv6
        } else {
            EtherType::Ipv4
        } as i32,
        // The schema has no "any protocol"; TCP (0) is what an unset field reads as anyway.
        protocol: match r.protocol.as_deref() {
            Some("udp") => Protocol::Udp,
            Some("icmp") => Protocol::Icmp,
            Some("http") => Protocol::Http,
            _ => Protocol::Tcp,
        } as i32,
        port_range_min: r.port_range_min.unwrap_or_default(),
        port_range_max: r.port_range_max.unwrap_or_default(),
        remote_ip_prefix: r.remote_ip_prefix.clone().unwrap_or_default(),
        remote_group_id: r.remote_group_id.clone().unwrap_or_default(),
    }
}

/// Remote-group rule `base` expanded for `member`: named `RULE#MEMBER`, its remote side the
/// member's `prefix` instead of the group.
fn expanded(base: &SecurityGroupRule, member: &str, prefix: String) -> SecurityGroupRule {
    SecurityGroupRule {
        id: format!("{}#{member}", base.id),
        remote_group_id: String::new(),
        remote_ip_prefix: prefix,
        ..base.clone()
    }
}

fn sg_state(store: &Store, sg_id: &str, op: OperationType) -> Option<SecurityGroupState> {
    let sg = store.security_groups.get(sg_id)?;
    let rules = sg.rules.iter().map(|r| rule_message(r, op)).collect();
    Some(SecurityGroupState {
        operation_type: op as i32,
        configuration: Some(SecurityGroupConfiguration {
            revision_number: 1,
            id: sg.id.clone(),
            update_type: UpdateType::Full as i32,
            name: sg.name.clone(),
            security_group_rules: rules,
            ..Default::default()
        }),
    })
}

fn port_state(port: &Port, op: OperationType) -> PortState {
    PortState {
        operation_type: op as i32,
        configuration: Some(PortConfiguration {
            revision_number: 1,
            id: port.id.clone(),
            update_type: UpdateType::Full as i32,
            vpc_id: port.vpc_id.clone(),
            name: port.name.clone(),
            device_id: port.device_id.clone(),
            device_owner: port.device_owner.clone(),
            mac_address: port.mac.clone(),
            admin_state_up: port.admin_state_up,
            fixed_ips: port
                .fixed_ips
                .iter()
                .map(|f| PortFixedIp {
                    subnet_id: f.subnet_id.clone(),
                    ip_address: f.ip.to_string(),
                })
                .collect(),
            allow_address_pairs: port
                .allowed_address_pairs
                .iter()
                .map(|(ip, mac)| AllowAddressPair {
                    ip_address: ip.clone(),
                    mac_address: mac.clone(),
                })
                .collect(),
            security_group_ids: port
                .security_groups
                .iter()
                .map(|id| SecurityGroupId { id: id.clone() })
                .collect(),
            ..Default::default()
        }),
    }
}

fn dhcp_states(port: &Port, op: OperationType) -> impl Iterator<Item = (String, DhcpState)> + '_ {
    port.fixed_ips.iter().enumerate().map(move |(i, f)| {
        let id = format!("dhcp-{}-{i}", port.id);
        let state = DhcpState {
            operation_type: op as i32,
            configuration: Some(DhcpConfiguration {
                revision_number: 1,
                id: id.clone(),
                update_type: UpdateType::Full as i32,
                subnet_id: f.subnet_id.clone(),
                mac_address: port.mac.clone(),
                ipv4_address: f.ip.to_string(),
                port_host_name: port.name.clone(),
                ..Default::default()
            }),
        };
        (id, state)
    })
}

fn router_state(store: &Store, router_id: &str, host_dvr_mac: &str) -> Option<RouterState> {
    let r = store.routers.get(router_id)?;
    let tables = r
        .subnets
        .iter()
        .filter_map(|sid| store.subnets.get(sid))
        .map(|s| SubnetRoutingTable {
            subnet_id: s.id.clone(),
            routing_rules: vec![RoutingRule {
                operation_type: OperationType::Create as i32,
                id: format!("{}-{}", r.id, s.id),
                destination: s.cidr.to_string(),
                next_hop_ip: s.gateway_ip.to_string(),
                ..Default::default()
            }],
        })
        .collect();
    Some(RouterState {
        operation_type: OperationType::Create as i32,
        configuration: Some(RouterConfiguration {
            revision_number: 1,
            id: r.id.clone(),
            update_type: UpdateType::Full as i32,
            host_dvr_mac_address: host_dvr_mac.to_owned(),
            subnet_routing_tables: tables,
            ..Default::default()
        }),
    })
}

impl Dpm {
    /// A DPM fanning out in `mode`.
    pub fn new(mode: FanoutMode) -> Self {
        Self {
            mode,
            ..Default::default()
        }
    }

    /// The fan-out mode.
    pub fn mode(&self) -> FanoutMode {
        self.mode
    }

    /// Changes the fan-out mode for the computations that follow. From `incremental` to
    /// `alcor`, hosts keep what they were sent. Back to `incremental`, the record of what each
    /// host holds is rebuilt from what both modes guarantee: a host with a bound port in a
    /// subnet has been sent every other bound port of that subnet as an L2 neighbor. (L3
    /// neighbors, through routers and remote groups, are not rebuilt: they are sent once more.)
    /// Without the rebuild, the first create after the switch sent every host its whole subnet.
    pub fn set_mode(&mut self, mode: FanoutMode) {
        if mode == FanoutMode::Incremental && self.mode != mode {
            self.known.clear();
            self.synced.clear();
            for (subnet, hosts) in &self.subnet_hosts {
                let Some(members) = self.subnet_ports.get(subnet) else {
                    continue;
                };
                for &host in hosts.keys() {
                    let known = self.known.entry(host).or_default();
                    for m in members {
                        if let Some(e) = self.entries.get(m)
                            && e.host != host
                        {
                            known.insert((NeighborType::L2, e.key));
                        }
                    }
                    self.synced.insert((host, subnet.clone()));
                }
            }
        }
        self.mode = mode;
    }

    /// How remote-group rules reach hosts, for the computations that follow.
    pub fn set_sg_mode(&mut self, mode: SgMode) {
        self.sg_mode = mode;
    }

    /// How remote-group rules reach hosts.
    pub fn sg_mode(&self) -> SgMode {
        self.sg_mode
    }

    /// `rule` as hosts get it: itself, or (expanded) one rule per bound member of its remote
    /// group, each with the member's address as its remote prefix.
    fn rule_messages(&self, store: &Store, rule: &Rule, op: OperationType) -> Vec<SecurityGroupRule> {
        let remote = rule
            .remote_group_id
            .as_deref()
            .filter(|_| self.sg_mode == SgMode::Expand);
        let Some(remote) = remote else {
            return vec![rule_message(rule, op)];
        };
        let base = rule_message(rule, op);
        self.sg_members
            .get(remote)
            .into_iter()
            .flatten()
            .filter_map(|m| store.ports.get(m)?.fixed_ips.first().map(|f| (m, f.ip)))
            .map(|(m, ip)| expanded(&base, m, format!("{ip}/32")))
            .collect()
    }

    /// Group `sg_id` as a whole (FULL), its rules as [`Self::rule_messages`] gives them.
    fn group_state(&self, store: &Store, sg_id: &str, op: OperationType) -> Option<SecurityGroupState> {
        let mut state = sg_state(store, sg_id, op)?;
        if self.sg_mode == SgMode::Expand
            && let (Some(sg), Some(c)) = (store.security_groups.get(sg_id), state.configuration.as_mut())
        {
            c.security_group_rules = sg.rules.iter().flat_map(|r| self.rule_messages(store, r, op)).collect();
        }
        Some(state)
    }

    /// Expand mode: members of `group` joined, or `left` it, so every host enforcing a group
    /// whose rules name it gets that group again, whole and expanded anew (what an iptables
    /// agent rebuilds). The rules of members that left are listed too, marked deleted, so that
    /// a host can tell what it dropped.
    fn resend_referrers(
        &self,
        store: &Store,
        builders: &mut BTreeMap<Ipv4Addr, Builder>,
        group: &str,
        left: &[String],
    ) {
        for referrer in Self::referrers(store, group) {
            let Some(mut state) = self.group_state(store, &referrer, OperationType::Update) else {
                continue;
            };
            if let (Some(sg), Some(c)) = (store.security_groups.get(&referrer), state.configuration.as_mut()) {
                for rule in sg.rules.iter().filter(|r| r.remote_group_id.as_deref() == Some(group)) {
                    let base = rule_message(rule, OperationType::Delete);
                    c.security_group_rules
                        .extend(left.iter().map(|m| expanded(&base, m, String::new())));
                }
            }
            for host in self.group_hosts(&referrer) {
                builders
                    .entry(host)
                    .or_default()
                    .gs
                    .security_group_states
                    .insert(referrer.clone(), state.clone());
            }
        }
    }

    /// How long the last `bind`, `unbind` or `router_attached` spent encoding (included in its
    /// total time).
    pub fn last_encode(&self) -> Duration {
        self.last_encode
    }

    /// Encodes every non-empty message, timing it.
    fn finish(&mut self, builders: BTreeMap<Ipv4Addr, Builder>) -> Vec<HostMessage> {
        let started = Instant::now();
        let out = builders
            .into_iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(h, b)| b.finish(h))
            .collect();
        self.last_encode = started.elapsed();
        out
    }

    /// Bound ports in a subnet.
    pub fn subnet_port_count(&self, subnet_id: &str) -> usize {
        self.subnet_ports.get(subnet_id).map_or(0, Members::len)
    }

    /// Push target of a port's host, from the store.
    fn host_of(store: &Store, port: &Port) -> Option<Ipv4Addr> {
        store.node_by_name(port.host_id.as_deref()?).map(|n| n.local_ip)
    }

    /// Other subnets attached to the routers of `subnet`.
    fn router_peers<'s>(store: &'s Store, subnet: &str) -> impl Iterator<Item = &'s str> + 's {
        let router = store
            .subnets
            .get(subnet)
            .and_then(|s| s.router_id.as_deref())
            .and_then(|r| store.routers.get(r));
        let subnet = subnet.to_owned();
        router.into_iter().flat_map(move |r| {
            let subnet = subnet.clone();
            r.subnets.iter().filter(move |s| **s != subnet).map(String::as_str)
        })
    }

    /// Security groups whose rules name `group` as remote group.
    fn referrers(store: &Store, group: &str) -> Vec<String> {
        store
            .security_groups
            .values()
            .filter(|sg| sg.rules.iter().any(|r| r.remote_group_id.as_deref() == Some(group)))
            .map(|sg| sg.id.clone())
            .collect()
    }

    /// Hosts holding a bound member of `group`.
    fn group_hosts(&self, group: &str) -> std::collections::BTreeSet<Ipv4Addr> {
        self.sg_members
            .get(group)
            .into_iter()
            .flatten()
            .filter_map(|m| self.entries.get(m))
            .map(|e| e.host)
            .collect()
    }

    /// Adds every bound member of `group` but `skip` to `b` (for `host`) as an L3 neighbor, as
    /// the remote group of a rule that host enforces, counting them apart.
    fn add_remote_members(&mut self, store: &Store, b: &mut Builder, host: Ipv4Addr, group: &str, skip: Option<&str>) {
        // Taken out and put back rather than cloned: a group can hold many thousand ports.
        let members = self.sg_members.remove(group).unwrap_or_default();
        for m in members.iter().filter(|m| Some(m.as_str()) != skip) {
            if self.add_neighbor(b, host, NeighborType::L3, m) {
                b.counts.remote_group_neighbors += 1;
                self.add_subnets_of(store, b, m);
            }
        }
        self.sg_members.insert(group.to_owned(), members);
    }

    fn sent(&mut self, host: Ipv4Addr, kind: NeighborType, key: u32) -> bool {
        self.known.entry(host).or_default().insert((kind, key))
    }

    /// Adds neighbor `port_id` of `kind` to `b` (for `host`), honouring the fan-out mode; false
    /// when it was not added (unknown, already there, or already known to the host).
    fn add_neighbor(&mut self, b: &mut Builder, host: Ipv4Addr, kind: NeighborType, port_id: &str) -> bool {
        let Some(entry) = self.entries.get(port_id) else {
            return false;
        };
        let record = match kind {
            NeighborType::L2 => entry.l2.clone(),
            NeighborType::L3 => entry.l3.clone(),
        };
        if self.mode == FanoutMode::Incremental {
            if entry.host == host {
                return false;
            }
            let key = entry.key;
            if !self.sent(host, kind, key) {
                return false;
            }
        } else if b.carries(kind, entry) || !b.seen.insert((kind, entry.key)) {
            return false;
        }
        b.record(record);
        true
    }

    /// Adds every bound port of `subnet` to `b` as `kind`, once per message: in Alcor's fan-out
    /// a host's message lists the whole subnet, and a second port of the same request on the
    /// same host must not list it again.
    fn add_members(&mut self, b: &mut Builder, host: Ipv4Addr, kind: NeighborType, subnet: &str) {
        if b.has_listed(kind, subnet) {
            return;
        }
        if self.mode == FanoutMode::Incremental
            && kind == NeighborType::L2
            && self.synced.contains(&(host, subnet.to_owned()))
        {
            return;
        }
        // Taken out and put back rather than cloned: the list can hold a million ids.
        let members = self.subnet_ports.remove(subnet).unwrap_or_default();
        match self.mode {
            FanoutMode::Incremental => {
                for m in &members {
                    self.add_neighbor(b, host, kind, m);
                }
                b.listed.push((kind, subnet.to_owned()));
                if kind == NeighborType::L2 {
                    self.synced.insert((host, subnet.to_owned()));
                }
            }
            FanoutMode::Alcor => {
                // Members already carried (added alone, or through another listed subnet) are
                // skipped; the rest need no entry in `seen`: listing the subnet covers them.
                let check = !b.seen.is_empty() || b.listed.iter().any(|(k, _)| *k == kind);
                for m in &members {
                    let Some(entry) = self.entries.get(m) else { continue };
                    if check && b.carries(kind, entry) {
                        continue;
                    }
                    b.record(match kind {
                        NeighborType::L2 => entry.l2.clone(),
                        NeighborType::L3 => entry.l3.clone(),
                    });
                }
                b.listed.push((kind, subnet.to_owned()));
            }
        }
        self.subnet_ports.insert(subnet.to_owned(), members);
    }

    /// Adds bound ports to the caches without computing goal states: for a control plane that
    /// takes over ports its agents already hold (and for benchmarks of a large subnet).
    pub fn preload(&mut self, store: &Store, port_ids: &[String]) {
        self.index(store, port_ids);
    }

    /// Caches bound ports (entries, subnet and group membership); returns them with their hosts.
    fn index<'s>(&mut self, store: &'s Store, port_ids: &[String]) -> Vec<(&'s Port, Ipv4Addr)> {
        let mut new_ports = Vec::with_capacity(port_ids.len());
        for id in port_ids {
            let Some(port) = store.ports.get(id) else { continue };
            let Some(host) = Self::host_of(store, port) else {
                continue;
            };
            let subnets: Vec<String> = port.fixed_ips.iter().map(|f| f.subnet_id.clone()).collect();
            for s in &subnets {
                self.subnet_ports.entry(s.clone()).or_default().insert(id.clone());
                *self.subnet_hosts.entry(s.clone()).or_default().entry(host).or_default() += 1;
            }
            for g in &port.security_groups {
                self.sg_members.entry(g.clone()).or_default().insert(id.clone());
            }
            let key = match self.entries.get(id) {
                Some(e) => e.key,
                None => {
                    self.next_key += 1;
                    self.next_key
                }
            };
            let entry = PortEntry {
                key,
                host,
                l2: neighbor_record(store, port, NeighborType::L2, OperationType::Create),
                l3: neighbor_record(store, port, NeighborType::L3, OperationType::Create),
                subnets,
                security_groups: port.security_groups.clone(),
            };
            self.entries.insert(id.clone(), entry);
            new_ports.push((port, host));
        }
        new_ports
    }

    /// Ports just bound to hosts (created with a binding, or bound by an update): updates the
    /// caches and returns one message per affected host.
    pub fn bind(&mut self, store: &Store, port_ids: &[String]) -> Vec<HostMessage> {
        let mut builders: BTreeMap<Ipv4Addr, Builder> = BTreeMap::new();
        // Expand mode: groups with new members, re-sent once for the whole batch.
        let mut grown = std::collections::BTreeSet::new();
        // Cache first, so that every new port is a neighbor of the others in the same batch.
        let new_ports = self.index(store, port_ids);

        for &(port, host) in &new_ports {
            let mut b = builders.remove(&host).unwrap_or_default();
            self.own_host_states(store, &mut b, port, host);
            builders.insert(host, b);
        }

        // The other hosts learn the new ports: L2 where they hold ports of the same subnet, L3
        // where they hold ports of another subnet on the same router.
        for &(port, host) in &new_ports {
            for f in &port.fixed_ips {
                self.tell_hosts_of(
                    store,
                    &mut builders,
                    &f.subnet_id,
                    host,
                    NeighborType::L2,
                    port,
                    &f.subnet_id,
                );
                for peer in Self::router_peers(store, &f.subnet_id) {
                    self.tell_hosts_of(store, &mut builders, peer, host, NeighborType::L3, port, &f.subnet_id);
                }
            }
            // Hosts holding ports of groups that name one of this port's groups as remote.
            for g in &port.security_groups {
                if self.sg_mode == SgMode::Expand {
                    grown.insert(g.as_str());
                    continue;
                }
                for referrer in Self::referrers(store, g) {
                    for other in self.group_hosts(&referrer).into_iter().filter(|h| *h != host) {
                        let mut b = builders.remove(&other).unwrap_or_default();
                        if self.add_neighbor(&mut b, other, NeighborType::L3, &port.id) {
                            b.counts.remote_group_neighbors += 1;
                            self.add_subnets_of(store, &mut b, &port.id);
                        }
                        builders.insert(other, b);
                    }
                }
            }
        }
        for g in grown {
            self.resend_referrers(store, &mut builders, g, &[]);
        }
        self.finish(builders)
    }

    /// What `port`'s own host `host` gets for it: the port, its VPC, subnets, DHCP entries and
    /// security groups, every bound port of its subnets (L2) and of their routers' other subnets
    /// (L3), and the members of every remote group its groups' rules name.
    fn own_host_states(&mut self, store: &Store, b: &mut Builder, port: &Port, host: Ipv4Addr) {
        let node = port.host_id.as_deref().and_then(|h| store.node_by_name(h));
        let dvr = node.map(|n| n.host_dvr_mac.clone()).unwrap_or_default();
        b.gs.port_states
            .insert(port.id.clone(), port_state(port, OperationType::Create));
        if let Some(v) = vpc_state(store, &port.vpc_id) {
            b.gs.vpc_states.insert(port.vpc_id.clone(), v);
        }
        for (id, d) in dhcp_states(port, OperationType::Create) {
            b.gs.dhcp_states.insert(id, d);
        }
        for f in &port.fixed_ips {
            if let Some(s) = subnet_state(store, &f.subnet_id) {
                b.gs.subnet_states.insert(f.subnet_id.clone(), s);
            }
            // L2: every bound port of the subnet.
            self.add_members(b, host, NeighborType::L2, &f.subnet_id);
            // L3: every bound port of the other subnets on the same router.
            if let Some(router) = store.subnets.get(&f.subnet_id).and_then(|s| s.router_id.clone()) {
                self.add_router_view(store, b, host, &router, &f.subnet_id, &dvr);
            }
        }
        // Security groups, and the members of every remote group their rules name.
        for g in &port.security_groups {
            if let Some(s) = self.group_state(store, g, OperationType::Create) {
                b.gs.security_group_states.insert(g.clone(), s);
            }
            if self.sg_mode == SgMode::Expand {
                // The members' addresses are in the expanded rules.
                continue;
            }
            let remotes: Vec<String> = store
                .security_groups
                .get(g)
                .map(|sg| sg.rules.iter().filter_map(|r| r.remote_group_id.clone()).collect())
                .unwrap_or_default();
            for remote in remotes {
                self.add_remote_members(store, b, host, &remote, Some(&port.id));
            }
        }
    }

    /// Everything `host` should hold, for a host that lost its state (an agent that restarted
    /// and asked with `AGENT_RESTARTED`): its bound ports with all they bring, as if each were
    /// bound again. `None` when no port is bound to it. In incremental mode the record of what
    /// the host holds starts over.
    pub fn resync(&mut self, store: &Store, host: Ipv4Addr) -> Option<HostMessage> {
        self.known.remove(&host);
        self.synced.retain(|(h, _)| *h != host);
        let mut ids: Vec<(u32, &String)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.host == host)
            .map(|(id, e)| (e.key, id))
            .collect();
        // In binding order, so that the message is the same however the map iterates.
        ids.sort_unstable();
        let ids: Vec<String> = ids.into_iter().map(|(_, id)| id.clone()).collect();
        let mut b = Builder::default();
        for id in &ids {
            if let Some(port) = store.ports.get(id) {
                self.own_host_states(store, &mut b, port, host);
            }
        }
        self.finish(BTreeMap::from([(host, b)])).into_iter().next()
    }

    /// What a host with ports in `subnet` needs of its router: the router state, and every bound
    /// port of the router's other subnets as an L3 neighbor, with those subnets' states.
    fn add_router_view(
        &mut self,
        store: &Store,
        b: &mut Builder,
        host: Ipv4Addr,
        router: &str,
        subnet: &str,
        dvr: &str,
    ) {
        if let Some(r) = router_state(store, router, dvr) {
            b.gs.router_states.insert(router.to_owned(), r);
        }
        for peer in Self::router_peers(store, subnet) {
            if let Some(s) = subnet_state(store, peer) {
                b.gs.subnet_states.insert(peer.to_owned(), s);
            }
            self.add_members(b, host, NeighborType::L3, peer);
        }
    }

    /// Adds `port` as a `kind` neighbor, with its subnet's state, to the message of every host
    /// (but `except`) that holds ports in `holders_of`.
    #[allow(clippy::too_many_arguments)]
    fn tell_hosts_of(
        &mut self,
        store: &Store,
        builders: &mut BTreeMap<Ipv4Addr, Builder>,
        holders_of: &str,
        except: Ipv4Addr,
        kind: NeighborType,
        port: &Port,
        port_subnet: &str,
    ) {
        let hosts: Vec<Ipv4Addr> = self
            .subnet_hosts
            .get(holders_of)
            .map(|h| h.keys().copied().collect())
            .unwrap_or_default();
        for other in hosts.into_iter().filter(|h| *h != except) {
            let mut b = builders.remove(&other).unwrap_or_default();
            if self.add_neighbor(&mut b, other, kind, &port.id)
                && let Some(s) = subnet_state(store, port_subnet)
            {
                b.gs.subnet_states.insert(port_subnet.to_owned(), s);
            }
            builders.insert(other, b);
        }
    }

    /// The subnet states a neighbor refers to (the agent looks them up in the same message).
    fn add_subnets_of(&self, store: &Store, b: &mut Builder, port_id: &str) {
        if let Some(e) = self.entries.get(port_id) {
            for s in &e.subnets {
                if !b.gs.subnet_states.contains_key(s)
                    && let Some(st) = subnet_state(store, s)
                {
                    b.gs.subnet_states.insert(s.clone(), st);
                }
            }
        }
    }

    /// Rules added to security groups (`op` Create) or removed from them (Delete, `rules` as
    /// they were): every host holding a bound member of a rule's group gets that rule alone, as
    /// a DELTA update of the group in which the rule carries its own operation (Alcor's design:
    /// ~200 bytes a rule rather than the group's every rule). A remote-group rule added also
    /// brings every bound member of the remote group, as L3 neighbors, to those hosts, as
    /// binding a port of the group does. A rule removed leaves the neighbors where they are:
    /// other rules may name the same group, and neighbors are the L3 view, not the rule's.
    pub fn rules_changed(&mut self, store: &Store, rules: &[Rule], op: OperationType) -> Vec<HostMessage> {
        let mut builders: BTreeMap<Ipv4Addr, Builder> = BTreeMap::new();
        for rule in rules {
            for host in self.group_hosts(&rule.security_group_id) {
                let mut b = builders.remove(&host).unwrap_or_default();
                let group =
                    b.gs.security_group_states
                        .entry(rule.security_group_id.clone())
                        .or_insert_with(|| SecurityGroupState {
                            operation_type: OperationType::Update as i32,
                            configuration: Some(SecurityGroupConfiguration {
                                revision_number: 1,
                                id: rule.security_group_id.clone(),
                                update_type: UpdateType::Delta as i32,
                                name: store
                                    .security_groups
                                    .get(&rule.security_group_id)
                                    .map(|g| g.name.clone())
                                    .unwrap_or_default(),
                                ..Default::default()
                            }),
                        });
                if let Some(c) = group.configuration.as_mut() {
                    c.security_group_rules.extend(self.rule_messages(store, rule, op));
                }
                if op == OperationType::Create
                    && self.sg_mode == SgMode::AddressSet
                    && let Some(remote) = &rule.remote_group_id
                {
                    self.add_remote_members(store, &mut b, host, remote, None);
                }
                builders.insert(host, b);
            }
        }
        self.finish(builders)
    }

    /// Ports about to be unbound or deleted (`ports` as they were while bound): the port's host
    /// deletes the port and its DHCP entries; every host that holds it as a neighbor deletes it.
    pub fn unbind(&mut self, store: &Store, ports: &[Port]) -> Vec<HostMessage> {
        let mut builders: BTreeMap<Ipv4Addr, Builder> = BTreeMap::new();
        // Expand mode: groups that lost members (with them), re-sent once for the whole batch.
        let mut shrunk: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for port in ports {
            let Some(entry) = self.entries.remove(&port.id) else {
                continue;
            };
            let host = entry.host;
            for s in &entry.subnets {
                if let Some(list) = self.subnet_ports.get_mut(s) {
                    list.swap_remove(&port.id);
                }
                if let Some(hosts) = self.subnet_hosts.get_mut(s)
                    && let Some(n) = hosts.get_mut(&host)
                {
                    *n -= 1;
                    if *n == 0 {
                        hosts.remove(&host);
                        // It no longer learns the subnet's new ports: its next port there
                        // walks the list again.
                        self.synced.remove(&(host, s.clone()));
                    }
                }
            }
            for g in &entry.security_groups {
                if let Some(list) = self.sg_members.get_mut(g) {
                    list.swap_remove(&port.id);
                }
            }
            if self.sg_mode == SgMode::Expand {
                for g in &entry.security_groups {
                    shrunk.entry(g.clone()).or_default().push(port.id.clone());
                }
            }

            let b = builders.entry(host).or_default();
            b.gs.port_states
                .insert(port.id.clone(), port_state(port, OperationType::Delete));
            for (id, d) in dhcp_states(port, OperationType::Delete) {
                b.gs.dhcp_states.insert(id, d);
            }
            for s in &entry.subnets {
                if let Some(st) = subnet_state(store, s) {
                    b.gs.subnet_states.insert(s.clone(), st);
                }
            }
            if let Some(v) = vpc_state(store, &port.vpc_id) {
                b.gs.vpc_states.insert(port.vpc_id.clone(), v);
            }

            // Who holds it as a neighbor.
            let targets: Vec<(Ipv4Addr, NeighborType)> = match self.mode {
                FanoutMode::Incremental => {
                    let mut t = Vec::new();
                    for (h, known) in self.known.iter_mut() {
                        for kind in [NeighborType::L2, NeighborType::L3] {
                            if known.remove(&(kind, entry.key)) {
                                t.push((*h, kind));
                            }
                        }
                    }
                    t
                }
                FanoutMode::Alcor => {
                    let mut t = Vec::new();
                    for s in &entry.subnets {
                        for h in self.subnet_hosts.get(s).into_iter().flat_map(|m| m.keys()) {
                            t.push((*h, NeighborType::L2));
                        }
                        for peer in Self::router_peers(store, s) {
                            for h in self.subnet_hosts.get(peer).into_iter().flat_map(|m| m.keys()) {
                                t.push((*h, NeighborType::L3));
                            }
                        }
                    }
                    // Expanded rules carried the address, not a neighbor: resent above.
                    for g in entry
                        .security_groups
                        .iter()
                        .filter(|_| self.sg_mode == SgMode::AddressSet)
                    {
                        for referrer in Self::referrers(store, g) {
                            t.extend(self.group_hosts(&referrer).into_iter().map(|h| (h, NeighborType::L3)));
                        }
                    }
                    t.sort();
                    t.dedup();
                    t
                }
            };
            for (h, kind) in targets {
                if h == host {
                    continue;
                }
                let b = builders.entry(h).or_default();
                if b.seen.insert((kind, entry.key)) {
                    b.record(neighbor_record(store, port, kind, OperationType::Delete));
                    for s in &entry.subnets {
                        if let Some(st) = subnet_state(store, s) {
                            b.gs.subnet_states.insert(s.clone(), st);
                        }
                    }
                }
            }
        }
        for (g, left) in &shrunk {
            self.resend_referrers(store, &mut builders, g, left);
        }
        self.finish(builders)
    }

    /// A subnet was attached to a router: every host with ports on the router's subnets learns
    /// the router and the L3 neighbors across them.
    pub fn router_attached(&mut self, store: &Store, router_id: &str) -> Vec<HostMessage> {
        let Some(router) = store.routers.get(router_id) else {
            return Vec::new();
        };
        let mut builders: BTreeMap<Ipv4Addr, Builder> = BTreeMap::new();
        for subnet in &router.subnets {
            let hosts: Vec<Ipv4Addr> = self
                .subnet_hosts
                .get(subnet)
                .map(|h| h.keys().copied().collect())
                .unwrap_or_default();
            for host in hosts {
                let mut b = builders.remove(&host).unwrap_or_default();
                let dvr = store
                    .nodes
                    .values()
                    .find(|n| n.local_ip == host)
                    .map(|n| n.host_dvr_mac.clone())
                    .unwrap_or_default();
                self.add_router_view(store, &mut b, host, router_id, subnet, &dvr);
                builders.insert(host, b);
            }
        }
        self.finish(builders)
    }
}

impl Builder {
    fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.gs.port_states.is_empty()
            && self.gs.router_states.is_empty()
            && self.gs.dhcp_states.is_empty()
            && self.gs.security_group_states.is_empty()
    }
}

#[cfg(test)]
#[path = "dpm/exact_tests.rs"]
mod exact_tests;
