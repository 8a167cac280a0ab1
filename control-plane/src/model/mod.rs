//! The resources the control plane knows (nodes, VPCs, subnets, security groups, ports,
//! routers) and their invariants: unique ids, non-overlapping CIDRs, addresses from IPAM.
//! No goal-state concerns: the DPM keeps its own caches, as Alcor's does.

pub mod ipam;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::error::ApiError;
pub use ipam::Ipam;

/// A registered host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Node id.
    pub node_id: String,
    /// Node name: what ports name in `binding:host_id`.
    pub node_name: String,
    /// Where goal states are pushed.
    pub local_ip: Ipv4Addr,
    /// Host MAC (the neighbors' `host_mac_address`).
    pub mac_address: String,
    /// Host interface.
    pub veth: String,
    /// Agent port as registered (pushes go to the configured agent port, as in Alcor).
    pub server_port: u16,
    /// DVR MAC.
    pub host_dvr_mac: String,
    /// Tunnel IP (the neighbors' `host_ip_address`).
    #[serde(rename = "data-path-ip")]
    pub data_path_ip: Ipv4Addr,
}

/// A VPC (a Neutron network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    /// Id.
    pub id: String,
    /// Project.
    pub project_id: String,
    /// Name.
    pub name: String,
    /// CIDR, when given.
    pub cidr: Option<Ipv4Net>,
    /// VXLAN segmentation id (the subnets' tunnel id).
    pub segmentation_id: u32,
    /// Network type (vxlan, vlan, gre).
    pub network_type: String,
    /// Subnet ids.
    pub subnets: Vec<String>,
}

/// A subnet.
#[derive(Debug, Clone)]
pub struct Subnet {
    /// Id.
    pub id: String,
    /// Project.
    pub project_id: String,
    /// VPC.
    pub vpc_id: String,
    /// Name.
    pub name: String,
    /// CIDR.
    pub cidr: Ipv4Net,
    /// Gateway address.
    pub gateway_ip: Ipv4Addr,
    /// Gateway MAC.
    pub gateway_mac: String,
    /// Id of the gateway port.
    pub gateway_port_id: String,
    /// DHCP on.
    pub enable_dhcp: bool,
    /// Router the subnet is attached to.
    pub router_id: Option<String>,
    /// Addresses.
    pub ipam: Ipam,
}

/// Direction of a security-group rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Incoming traffic.
    Ingress,
    /// Outgoing traffic.
    Egress,
}

/// A security-group rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Id.
    pub id: String,
    /// Group it belongs to.
    pub security_group_id: String,
    /// Direction.
    pub direction: Direction,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    /// `tcp`, `udp`, `icmp`, or none for any.
    pub protocol: Option<String>,
    /// Lowest port.
    pub port_range_min: Option<u32>,
    /// Highest port.
    pub port_range_max: Option<u32>,
    /// Remote prefix.
    pub remote_ip_prefix: Option<String>,
    /// Remote group: members of this group are the allowed peers.
    pub remote_group_id: Option<String>,
}

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    /// Id.
    pub id: String,
    /// Project.
    pub project_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Rules.
    pub rules: Vec<Rule>,
}

/// One address of a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedIp {
    /// Subnet.
    pub subnet_id: String,
    /// Address.
    pub ip: Ipv4Addr,
}

/// A port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Id.
    pub id: String,
    /// Project.
    pub project_id: String,
    /// VPC (`network_id`).
    pub vpc_id: String,
    /// Name.
    pub name: String,
    /// MAC.
    pub mac: String,
    /// Addresses.
    pub fixed_ips: Vec<FixedIp>,
    /// Security groups.
    pub security_groups: Vec<String>,
    /// Device (VM) id.
    pub device_id: String,
    /// Device owner (`compute:nova`).
    pub device_owner: String,
    /// Node name the port is bound to.
    pub host_id: Option<String>,
    /// Admin state.
    pub admin_state_up: bool,
    /// Allowed address pairs (ip, mac).
    pub allowed_address_pairs: Vec<(String, String)>,
    /// `ACTIVE` once every affected host programmed it, `DOWN` unbound, `ERROR` on failure.
    pub status: String,
}

impl Port {
    /// Bound to a host with a device: what reaches the data plane.
    pub fn is_bound(&self) -> bool {
        self.host_id.is_some()
    }
}

/// A router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Router {
    /// Id.
    pub id: String,
    /// Project.
    pub project_id: String,
    /// Name.
    pub name: String,
    /// Attached subnets.
    pub subnets: Vec<String>,
}

/// Everything the control plane stores.
#[derive(Debug, Default)]
pub struct Store {
    /// Nodes by id.
    pub nodes: HashMap<String, Node>,
    /// Node id by name.
    pub node_names: HashMap<String, String>,
    /// VPCs.
    pub vpcs: HashMap<String, Vpc>,
    /// Subnets.
    pub subnets: HashMap<String, Subnet>,
    /// Security groups.
    pub security_groups: HashMap<String, SecurityGroup>,
    /// Ports.
    pub ports: HashMap<String, Port>,
    /// Routers.
    pub routers: HashMap<String, Router>,
    /// The default security group of each project.
    pub default_sg: HashMap<String, String>,
    /// Whether `createDefaultTable` was called.
    pub segment_table: bool,
    next_segment: u32,
    next_mac: u64,
    next_id: u64,
}

impl Store {
    /// A fresh UUID-shaped id. Deterministic per store so that runs are repeatable.
    pub fn new_id(&mut self, kind: u16) -> String {
        self.next_id += 1;
        format!("{kind:08x}-5ca1-4000-8000-{:012x}", self.next_id)
    }

    /// A fresh port MAC.
    pub fn new_mac(&mut self) -> String {
        self.next_mac += 1;
        let b = self.next_mac.to_be_bytes();
        format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[5], b[6], b[7])
    }

    /// A free segmentation id, or `wanted` if it is free.
    pub fn segment(&mut self, wanted: Option<u32>) -> Result<u32, ApiError> {
        let field = "network.provider:segmentation_id";
        if let Some(w) = wanted {
            if !(1..=16_777_215).contains(&w) {
                return Err(ApiError::bad(field, "must be 1..16777215"));
            }
            if self.vpcs.values().any(|v| v.segmentation_id == w) {
                return Err(ApiError::conflict(field, format!("segmentation id {w} is in use")));
            }
            return Ok(w);
        }
        loop {
            self.next_segment = self.next_segment.max(1000) + 1;
            let s = self.next_segment;
            if !self.vpcs.values().any(|v| v.segmentation_id == s) {
                return Ok(s);
            }
        }
    }

    /// The node a port binds to.
    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.node_names.get(name).and_then(|id| self.nodes.get(id))
    }
}
