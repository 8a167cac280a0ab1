//! Alcor-shaped goal states for tests, benchmarks and smoke checks: the same fields Alcor's DPM
//! fills (protocol reference §2.3), with deterministic ids, MACs and addresses.

use std::net::Ipv4Addr;

use alcor_schema::port_configuration::{FixedIp, SecurityGroupId};
use alcor_schema::security_group_configuration::{Direction, SecurityGroupRule};
use alcor_schema::subnet_configuration::Gateway;
use alcor_schema::{
    DhcpConfiguration, DhcpState, EtherType, GoalStateV2, HostResources, NeighborConfiguration, NeighborState,
    NeighborType, NetworkType, OperationType, PortConfiguration, PortState, Protocol, ResourceIdType, ResourceType,
    SecurityGroupConfiguration, SecurityGroupState, SubnetConfiguration, SubnetState, UpdateType, VpcConfiguration,
    VpcState, neighbor_configuration, neighbor_key,
};

/// A deterministic 36-character UUID-shaped id: `kind` tells resources apart, `n` numbers them.
pub fn uuid(kind: u16, n: u64) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

/// A deterministic port MAC (Alcor/OpenStack style `fa:16:3e:…`).
pub fn mac(n: u64) -> String {
    let b = n.to_be_bytes();
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[5], b[6], b[7])
}

/// The `n`-th host address of `10.0.0.0/8` (skipping .0 and .255 in the last octet).
pub fn ip(n: u64) -> Ipv4Addr {
    let n = n % (1 << 24);
    let hi = n / 254;
    Ipv4Addr::from(0x0a00_0000 + (hi << 8) as u32 + (n % 254) as u32 + 1)
}

/// A VPC state.
pub fn vpc(op: OperationType, id: &str, tunnel_id: u32) -> VpcState {
    VpcState {
        operation_type: op as i32,
        configuration: Some(VpcConfiguration {
            revision_number: 1,
            id: id.into(),
            project_id: uuid(0x9, 1),
            name: format!("vpc-{id}"),
            cidr: "10.0.0.0/8".into(),
            tunnel_id,
            ..Default::default()
        }),
    }
}

/// A VXLAN subnet state.
pub fn subnet(op: OperationType, id: &str, vpc_id: &str, cidr: &str, tunnel_id: u64) -> SubnetState {
    SubnetState {
        operation_type: op as i32,
        configuration: Some(SubnetConfiguration {
            revision_number: 1,
            id: id.into(),
            network_type: NetworkType::Vxlan as i32,
            vpc_id: vpc_id.into(),
            name: format!("subnet-{id}"),
            cidr: cidr.into(),
            tunnel_id,
            gateway: Some(Gateway {
                ip_address: "10.0.0.1".into(),
                mac_address: "fa:16:3e:ff:ff:ff".into(),
            }),
            dhcp_enable: true,
            availability_zone: "nova".into(),
            ..Default::default()
        }),
    }
}

/// A port state as DPM sends it (revision 1, FULL, admin up, bound to a VM).
pub fn port(
    op: OperationType,
    id: &str,
    vpc_id: &str,
    subnet_id: &str,
    ip: Ipv4Addr,
    mac: &str,
    sgs: &[&str],
) -> PortState {
    PortState {
        operation_type: op as i32,
        configuration: Some(PortConfiguration {
            revision_number: 1,
            id: id.into(),
            update_type: UpdateType::Full as i32,
            vpc_id: vpc_id.into(),
            name: format!("port-{id}"),
            device_id: uuid(0x7, 1),
            device_owner: "compute:nova".into(),
            mac_address: mac.into(),
            admin_state_up: true,
            fixed_ips: vec![FixedIp {
                subnet_id: subnet_id.into(),
                ip_address: ip.to_string(),
            }],
            security_group_ids: sgs.iter().map(|s| SecurityGroupId { id: (*s).into() }).collect(),
            ..Default::default()
        }),
    }
}

/// A neighbor state: port `id` with address `ip` lives on the host at `host_ip`.
#[allow(clippy::too_many_arguments)]
pub fn neighbor(
    op: OperationType,
    kind: NeighborType,
    id: &str,
    vpc_id: &str,
    subnet_id: &str,
    ip: Ipv4Addr,
    mac: &str,
    host_ip: Ipv4Addr,
) -> NeighborState {
    let [a, b, c, d] = host_ip.octets();
    NeighborState {
        operation_type: op as i32,
        configuration: Some(NeighborConfiguration {
            revision_number: 1,
            id: id.into(),
            update_type: UpdateType::Full as i32,
            vpc_id: vpc_id.into(),
            mac_address: mac.into(),
            host_mac_address: format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}"),
            host_ip_address: host_ip.to_string(),
            fixed_ips: vec![neighbor_configuration::FixedIp {
                neighbor_type: kind as i32,
                subnet_id: subnet_id.into(),
                ip_address: ip.to_string(),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

/// A security group with `rules` ingress TCP rules; each names `remote_group` when given.
pub fn security_group(
    op: OperationType,
    id: &str,
    vpc_id: &str,
    rules: usize,
    remote_group: Option<&str>,
) -> SecurityGroupState {
    SecurityGroupState {
        operation_type: op as i32,
        configuration: Some(SecurityGroupConfiguration {
            revision_number: 1,
            id: id.into(),
            update_type: UpdateType::Full as i32,
            vpc_id: vpc_id.into(),
            name: format!("sg-{id}"),
            security_group_rules: (0..rules)
                .map(|i| SecurityGroupRule {
                    operation_type: op as i32,
                    security_group_id: id.into(),
                    id: format!("{id}-rule-{i}"),
                    direction: Direction::Ingress as i32,
                    ethertype: EtherType::Ipv4 as i32,
                    protocol: Protocol::Tcp as i32,
                    port_range_min: 1000 + i as u32,
                    port_range_max: 1000 + i as u32,
                    remote_ip_prefix: if remote_group.is_some() {
                        String::new()
                    } else {
                        "0.0.0.0/0".into()
                    },
                    remote_group_id: remote_group.unwrap_or_default().into(),
                })
                .collect(),
            ..Default::default()
        }),
    }
}

/// A DHCP entry for a port address.
pub fn dhcp(op: OperationType, id: &str, subnet_id: &str, mac: &str, ip: Ipv4Addr) -> DhcpState {
    DhcpState {
        operation_type: op as i32,
        configuration: Some(DhcpConfiguration {
            revision_number: 1,
            id: id.into(),
            update_type: UpdateType::Full as i32,
            subnet_id: subnet_id.into(),
            mac_address: mac.into(),
            ipv4_address: ip.to_string(),
            port_host_name: format!("host-{id}"),
            ..Default::default()
        }),
    }
}

/// Ids used by [`port_joining_subnet`].
pub struct JoinIds {
    /// The VPC.
    pub vpc: String,
    /// The subnet.
    pub subnet: String,
    /// The new port.
    pub port: String,
    /// The security group.
    pub sg: String,
}

impl JoinIds {
    /// The ids of the sample topology.
    pub fn new() -> Self {
        Self {
            vpc: uuid(1, 1),
            subnet: uuid(2, 1),
            port: uuid(3, 0),
            sg: uuid(4, 1),
        }
    }
}

impl Default for JoinIds {
    fn default() -> Self {
        Self::new()
    }
}

/// The goal state Alcor's DPM sends to the host of a port that joins a subnet already holding
/// `neighbors` ports spread over `hosts` other hosts: the port, VPC, subnet, security group
/// (with `sg_rules` rules), DHCP, and one L2 neighbor per port of the subnet, with
/// `host_resources` listing everything for `host_ip`.
pub fn port_joining_subnet(host_ip: Ipv4Addr, neighbors: usize, hosts: u32, sg_rules: usize) -> GoalStateV2 {
    let ids = JoinIds::new();
    let mut gs = GoalStateV2::default();
    let mut listed = Vec::with_capacity(neighbors + 5);
    let mut list = |t: ResourceType, id: &str| {
        listed.push(ResourceIdType {
            r#type: t as i32,
            id: id.into(),
        })
    };
    gs.vpc_states
        .insert(ids.vpc.clone(), vpc(OperationType::Info, &ids.vpc, 1001));
    list(ResourceType::Vpc, &ids.vpc);
    gs.subnet_states.insert(
        ids.subnet.clone(),
        subnet(OperationType::Info, &ids.subnet, &ids.vpc, "10.0.0.0/8", 1001),
    );
    list(ResourceType::Subnet, &ids.subnet);
    gs.security_group_states.insert(
        ids.sg.clone(),
        security_group(OperationType::Create, &ids.sg, &ids.vpc, sg_rules, Some(&ids.sg)),
    );
    list(ResourceType::Securitygroup, &ids.sg);
    gs.port_states.insert(
        ids.port.clone(),
        port(
            OperationType::Create,
            &ids.port,
            &ids.vpc,
            &ids.subnet,
            ip(0),
            &mac(0),
            &[&ids.sg],
        ),
    );
    list(ResourceType::Port, &ids.port);
    let dhcp_id = uuid(5, 0);
    gs.dhcp_states.insert(
        dhcp_id.clone(),
        dhcp(OperationType::Create, &dhcp_id, &ids.subnet, &mac(0), ip(0)),
    );
    list(ResourceType::Dhcp, &dhcp_id);
    for n in 1..=neighbors as u64 {
        let id = uuid(3, n);
        let host = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 1)) + (n % hosts.max(1) as u64) as u32);
        let key = neighbor_key(NeighborType::L2, &id);
        list(ResourceType::Neighbor, &key);
        gs.neighbor_states.insert(
            key,
            neighbor(
                OperationType::Create,
                NeighborType::L2,
                &id,
                &ids.vpc,
                &ids.subnet,
                ip(n),
                &mac(n),
                host,
            ),
        );
    }
    gs.host_resources
        .insert(host_ip.to_string(), HostResources { resources: listed });
    gs
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn ids_and_addresses_are_distinct_and_well_formed() {
        assert_eq!(uuid(3, 7).len(), 36);
        assert_ne!(uuid(3, 7), uuid(2, 7));
        assert!(crate::validate::parse_mac(&mac(70_000)).is_some());
        assert_eq!(ip(0), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(ip(254), Ipv4Addr::new(10, 0, 1, 1));
        let all: std::collections::HashSet<_> = (0..10_000).map(ip).collect();
        assert_eq!(all.len(), 10_000);
    }

    #[test]
    fn neighbor_map_entry_is_alcor_sized() {
        // The performance reference derives ~234 B per neighbor map entry plus ~45 B per
        // host_resources listing; ours must be of that order for size figures to transfer.
        let small = port_joining_subnet(Ipv4Addr::new(127, 1, 0, 1), 0, 10, 2).encoded_len();
        let big = port_joining_subnet(Ipv4Addr::new(127, 1, 0, 1), 1000, 10, 2).encoded_len();
        let per = (big - small) as f64 / 1000.0;
        assert!((230.0..330.0).contains(&per), "{per} B per neighbor");
    }
}
