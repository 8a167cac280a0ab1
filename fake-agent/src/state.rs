//! `HostState`: what one simulated agent has been told to program on its host.
//!
//! Ports, VPCs, subnets, security groups, DHCP entries, routers and gateways are kept as their
//! configurations (a host has few). Neighbors can number hundreds of thousands per host and
//! millions per fleet, so they are kept compact: parsed addresses and interned subnet/VPC ids.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use alcor_schema::{
    DhcpConfiguration, GatewayConfiguration, NeighborType, PortConfiguration, RouterConfiguration,
    SecurityGroupConfiguration, SubnetConfiguration, VpcConfiguration,
};
use rustc_hash::FxHashMap;

use crate::neighbor_ref::NeighborRef;
use crate::validate::{parse_ipv4, parse_mac};

/// An interned id (subnet or VPC) inside one host's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sym(u32);

/// Interns the few distinct subnet and VPC ids that millions of neighbors refer to.
#[derive(Debug, Default)]
struct Interner {
    ids: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> Sym {
        if let Some(&i) = self.ids.get(s) {
            return Sym(i);
        }
        let i = self.names.len() as u32;
        self.names.push(s.into());
        self.ids.insert(s.into(), i);
        Sym(i)
    }

    fn name(&self, s: Sym) -> &str {
        &self.names[s.0 as usize]
    }
}

/// One fixed IP of a neighbor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborIp {
    /// Subnet of the address (resolve with [`HostState::name`]).
    pub subnet: Sym,
    /// The address; `None` when it did not parse (lenient mode).
    pub ip: Option<Ipv4Addr>,
    /// VNI carried with the neighbor, when set.
    pub tunnel_id: u32,
}

/// Where a remote port lives: what the agent needs to tunnel traffic to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    /// VPC of the port.
    pub vpc: Sym,
    /// The port's MAC; `None` when it did not parse (lenient mode).
    pub mac: Option<[u8; 6]>,
    /// IP of the host the port lives on (the tunnel endpoint).
    pub host_ip: Option<Ipv4Addr>,
    /// MAC of the host the port lives on.
    pub host_mac: Option<[u8; 6]>,
    /// The port's addresses.
    pub fixed_ips: Box<[NeighborIp]>,
}

/// Counts of what a host holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StateCounts {
    /// VPCs known.
    pub vpcs: usize,
    /// Subnets known.
    pub subnets: usize,
    /// Local ports.
    pub ports: usize,
    /// L2 neighbors.
    pub l2_neighbors: usize,
    /// L3 neighbors.
    pub l3_neighbors: usize,
    /// Security groups.
    pub security_groups: usize,
    /// DHCP entries.
    pub dhcp: usize,
    /// Routers.
    pub routers: usize,
    /// Gateways.
    pub gateways: usize,
}

/// Everything one simulated host has been told to program.
#[derive(Debug, Default)]
pub struct HostState {
    pub(crate) vpcs: HashMap<String, VpcConfiguration>,
    pub(crate) subnets: HashMap<String, SubnetConfiguration>,
    pub(crate) ports: HashMap<String, PortConfiguration>,
    pub(crate) l2: FxHashMap<String, Neighbor>,
    pub(crate) l3: FxHashMap<String, Neighbor>,
    pub(crate) security_groups: HashMap<String, SecurityGroupConfiguration>,
    pub(crate) dhcp: HashMap<String, DhcpConfiguration>,
    pub(crate) routers: HashMap<String, RouterConfiguration>,
    pub(crate) gateways: HashMap<String, GatewayConfiguration>,
    interner: Interner,
}

impl HostState {
    /// How many of each resource this host holds.
    pub fn counts(&self) -> StateCounts {
        StateCounts {
            vpcs: self.vpcs.len(),
            subnets: self.subnets.len(),
            ports: self.ports.len(),
            l2_neighbors: self.l2.len(),
            l3_neighbors: self.l3.len(),
            security_groups: self.security_groups.len(),
            dhcp: self.dhcp.len(),
            routers: self.routers.len(),
            gateways: self.gateways.len(),
        }
    }

    /// A local port by id.
    pub fn port(&self, id: &str) -> Option<&PortConfiguration> {
        self.ports.get(id)
    }

    /// Ids of the local ports.
    pub fn port_ids(&self) -> impl Iterator<Item = &str> {
        self.ports.keys().map(String::as_str)
    }

    /// A neighbor entry by kind and port id.
    pub fn neighbor(&self, kind: NeighborType, port_id: &str) -> Option<&Neighbor> {
        self.neighbors(kind).get(port_id)
    }

    /// Port ids of the neighbors of one kind.
    pub fn neighbor_ids(&self, kind: NeighborType) -> impl Iterator<Item = &str> {
        self.neighbors(kind).keys().map(String::as_str)
    }

    /// The name behind an interned id.
    pub fn name(&self, s: Sym) -> &str {
        self.interner.name(s)
    }

    /// A VPC by id.
    pub fn vpc(&self, id: &str) -> Option<&VpcConfiguration> {
        self.vpcs.get(id)
    }

    /// A subnet by id.
    pub fn subnet(&self, id: &str) -> Option<&SubnetConfiguration> {
        self.subnets.get(id)
    }

    /// A security group by id.
    pub fn security_group(&self, id: &str) -> Option<&SecurityGroupConfiguration> {
        self.security_groups.get(id)
    }

    /// A DHCP entry by id.
    pub fn dhcp(&self, id: &str) -> Option<&DhcpConfiguration> {
        self.dhcp.get(id)
    }

    /// A router by id.
    pub fn router(&self, id: &str) -> Option<&RouterConfiguration> {
        self.routers.get(id)
    }

    /// A gateway by id.
    pub fn gateway(&self, id: &str) -> Option<&GatewayConfiguration> {
        self.gateways.get(id)
    }

    fn neighbors(&self, kind: NeighborType) -> &FxHashMap<String, Neighbor> {
        match kind {
            NeighborType::L2 => &self.l2,
            NeighborType::L3 => &self.l3,
        }
    }

    fn neighbors_mut(&mut self, kind: NeighborType) -> &mut FxHashMap<String, Neighbor> {
        match kind {
            NeighborType::L2 => &mut self.l2,
            NeighborType::L3 => &mut self.l3,
        }
    }

    /// Stores (creates or replaces) a neighbor, keyed by its port id. `host_ip` is the
    /// already-parsed `host_ip_address`.
    pub(crate) fn put_neighbor(&mut self, kind: NeighborType, n: &NeighborRef<'_>, host_ip: Option<Ipv4Addr>) {
        let interner = &mut self.interner;
        let neighbor = Neighbor {
            vpc: interner.intern(n.vpc_id),
            mac: parse_mac(n.mac_address),
            host_ip,
            host_mac: parse_mac(n.host_mac_address),
            fixed_ips: n
                .fixed_ips()
                .map(|f| NeighborIp {
                    subnet: interner.intern(f.subnet_id),
                    ip: parse_ipv4(f.ip_address),
                    tunnel_id: f.tunnel_id,
                })
                .collect(),
        };
        let map = self.neighbors_mut(kind);
        // Look up before inserting: a port joining a subnet the host knows repeats every
        // neighbor it holds, and a replacement in place needs no key of its own.
        match map.get_mut(n.id) {
            Some(slot) => *slot = neighbor,
            None => {
                map.insert(n.id.to_owned(), neighbor);
            }
        }
    }

    /// Makes room for a message of `n` neighbors of one kind. A message that lists a whole
    /// subnet mostly repeats what the host holds, so only the part beyond the current size is
    /// reserved: reserving all `n` on top of a large map would rehash it (and fault in a table
    /// twice the size) for entries that are already there.
    pub(crate) fn reserve_neighbors(&mut self, kind: NeighborType, n: usize) {
        let map = self.neighbors_mut(kind);
        map.reserve(n.saturating_sub(map.len()));
    }

    /// Removes a neighbor; true when it was there.
    pub(crate) fn remove_neighbor(&mut self, kind: NeighborType, id: &str) -> bool {
        let map = self.neighbors_mut(kind);
        map.remove(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alcor_schema::NeighborConfiguration;

    fn neighbor(i: usize) -> NeighborConfiguration {
        NeighborConfiguration {
            id: format!("port-{i}"),
            host_ip_address: "127.0.0.2".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_message_repeating_known_neighbors_does_not_grow_the_table() {
        let mut state = HostState::default();
        state.reserve_neighbors(NeighborType::L2, 10_000);
        for i in 0..10_000 {
            let cfg = neighbor(i);
            state.put_neighbor(NeighborType::L2, &NeighborRef::from_decoded(0, &cfg), None);
        }
        let capacity = state.l2.capacity();
        // The same 10,000 and one new: room for what goes beyond the current size only.
        state.reserve_neighbors(NeighborType::L2, 10_001);
        for i in 0..10_001 {
            let cfg = neighbor(i);
            state.put_neighbor(NeighborType::L2, &NeighborRef::from_decoded(0, &cfg), None);
        }
        assert_eq!(state.l2.len(), 10_001);
        assert_eq!(state.l2.capacity(), capacity);
        // A fresh host reserves the whole message.
        let mut fresh = HostState::default();
        fresh.reserve_neighbors(NeighborType::L2, 10_000);
        assert!(fresh.l2.capacity() >= 10_000);
    }
}
