//! The checks the real agent applies to goal states (protocol reference §1.10), used in
//! [`ValidationMode::Strict`](crate::ValidationMode::Strict).
//!
//! Each check returns the reason a state is rejected; the caller answers INVALID_ARG and leaves
//! the host's state untouched for that resource.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use alcor_schema::{NeighborConfiguration, NetworkType, OperationType, PortConfiguration, SubnetState, UpdateType};

/// Subnets carried by the message, by id (V2: the map key, which Alcor sets to the id).
pub type MessageSubnets = HashMap<String, SubnetState>;

/// Why a state was rejected.
pub type Invalid = &'static str;

/// Parses a MAC written `xx:xx:xx:xx:xx:xx` or `xx-xx-xx-xx-xx-xx`, as the agent accepts.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let b = s.as_bytes();
    if b.len() != 17 {
        return None;
    }
    let sep = b[2];
    if sep != b':' && sep != b'-' {
        return None;
    }
    let mut out = [0u8; 6];
    for (i, o) in out.iter_mut().enumerate() {
        let at = i * 3;
        if i < 5 && b[at + 2] != sep {
            return None;
        }
        let hex = |c: u8| (c as char).to_digit(16);
        *o = (hex(b[at])? * 16 + hex(b[at + 1])?) as u8;
    }
    Some(out)
}

/// Parses a dotted IPv4 address.
pub fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

/// The subnet a port or neighbor refers to must be in the same message, with a usable tunnel id
/// for its network type and a prefix length in its CIDR.
fn check_subnet(subnets: &MessageSubnets, subnet_id: &str) -> Result<(), Invalid> {
    let subnet = subnets
        .get(subnet_id)
        .and_then(|s| s.configuration.as_ref())
        .ok_or("subnet of fixed_ips[0] is not in the message")?;
    let range = match NetworkType::try_from(subnet.network_type) {
        Ok(NetworkType::Vlan) => 1..=4094,
        Ok(NetworkType::Vxlan | NetworkType::Gre | NetworkType::Geneve) => 1..=16_777_215,
        _ => return Err("subnet network_type is not supported"),
    };
    if !range.contains(&subnet.tunnel_id) {
        return Err("subnet tunnel_id is out of range for its network type");
    }
    if !subnet.cidr.contains('/') {
        return Err("subnet cidr has no prefix length");
    }
    Ok(())
}

/// Checks a port state as the agent does.
pub fn port(op: OperationType, cfg: &PortConfiguration, subnets: &MessageSubnets) -> Result<(), Invalid> {
    if matches!(op, OperationType::Info | OperationType::Get) {
        return Ok(());
    }
    if cfg.id.is_empty() {
        return Err("port id is empty");
    }
    if op != OperationType::Delete {
        // C asserts in the agent; active in its debug builds.
        if cfg.revision_number == 0 {
            return Err("port revision_number is 0");
        }
        if !cfg.admin_state_up {
            return Err("port admin_state_up is false");
        }
    }
    if op == OperationType::Create && cfg.update_type != UpdateType::Full as i32 {
        return Err("port CREATE needs update_type FULL");
    }
    if op == OperationType::Update && !(cfg.device_id.is_empty() && cfg.device_owner.is_empty()) {
        return Err("port UPDATE is accepted only as a delete (device_id and device_owner empty)");
    }
    let first = cfg.fixed_ips.first().ok_or("port fixed_ips is empty")?;
    if cfg.fixed_ips.iter().any(|f| parse_ipv4(&f.ip_address).is_none()) {
        return Err("port fixed IP is not a dotted IPv4 address");
    }
    if parse_mac(&cfg.mac_address).is_none() {
        return Err("port mac_address is not a MAC");
    }
    check_subnet(subnets, &first.subnet_id)
}

/// Checks a neighbor state as the agent does.
pub fn neighbor(op: OperationType, cfg: &NeighborConfiguration, subnets: &MessageSubnets) -> Result<(), Invalid> {
    if matches!(op, OperationType::Info | OperationType::Get) {
        return Ok(());
    }
    if cfg.id.is_empty() {
        return Err("neighbor id is empty");
    }
    if parse_ipv4(&cfg.host_ip_address).is_none() {
        return Err("neighbor host_ip_address is not a dotted IPv4 address");
    }
    let first = cfg.fixed_ips.first().ok_or("neighbor fixed_ips is empty")?;
    if cfg.fixed_ips.iter().any(|f| parse_ipv4(&f.ip_address).is_none()) {
        return Err("neighbor fixed IP is not a dotted IPv4 address");
    }
    if parse_mac(&cfg.mac_address).is_none() {
        return Err("neighbor mac_address is not a MAC");
    }
    check_subnet(subnets, &first.subnet_id)
}

/// Checks a DHCP entry: a MAC and an IPv4 address to hand out.
pub fn dhcp(op: OperationType, mac: &str, ipv4: &str) -> Result<(), Invalid> {
    if matches!(op, OperationType::Info | OperationType::Get | OperationType::Delete) {
        return Ok(());
    }
    if parse_mac(mac).is_none() {
        return Err("dhcp mac_address is not a MAC");
    }
    if parse_ipv4(ipv4).is_none() {
        return Err("dhcp ipv4_address is not a dotted IPv4 address");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(parse_mac("fa:16:3e:00:0A:ff"), Some([0xfa, 0x16, 0x3e, 0, 0x0a, 0xff]));
        assert_eq!(parse_mac("fa-16-3e-00-0a-ff"), Some([0xfa, 0x16, 0x3e, 0, 0x0a, 0xff]));
        for bad in [
            "",
            "fa:16:3e:00:0a",
            "fa:16-3e:00:0a:ff",
            "fa:16:3e:00:0a:fg",
            "fa:16:3e:00:0a:fff",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
