//! IPv4 address management for one subnet.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The addresses of one subnet: the network, broadcast and gateway addresses are never handed
/// out; others are allocated lowest-first, and freed ones are reused.
#[derive(Debug, Clone)]
pub struct Ipam {
    net: Ipv4Net,
    gateway: Ipv4Addr,
    /// Next never-used host address (as u32).
    next: u32,
    /// Freed addresses below `next`.
    free: BTreeSet<u32>,
    /// Addresses in use.
    used: BTreeSet<u32>,
}

impl Ipam {
    /// Management of `net` with `gateway` reserved.
    pub fn new(net: Ipv4Net, gateway: Ipv4Addr) -> Self {
        let first = u32::from(net.network()) + u32::from(net.prefix_len() < 31);
        Self {
            net,
            gateway,
            next: first,
            free: BTreeSet::new(),
            used: BTreeSet::new(),
        }
    }

    fn last(&self) -> u32 {
        let b = u32::from(self.net.broadcast());
        if self.net.prefix_len() < 31 { b - 1 } else { b }
    }

    /// The subnet.
    pub fn net(&self) -> Ipv4Net {
        self.net
    }

    /// Whether `ip` is a host address of this subnet that may be assigned to a port.
    pub fn assignable(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        let first = u32::from(self.net.network()) + u32::from(self.net.prefix_len() < 31);
        self.net.contains(&ip) && v >= first && v <= self.last() && ip != self.gateway
    }

    /// Whether `ip` is taken.
    pub fn in_use(&self, ip: Ipv4Addr) -> bool {
        self.used.contains(&u32::from(ip))
    }

    /// The next free address, without taking it.
    pub fn peek(&self) -> Option<Ipv4Addr> {
        self.peek_excluding(&[])
    }

    /// The next free address that is not in `skip` (addresses already picked for a request but
    /// not taken yet), without taking it.
    pub fn peek_excluding(&self, skip: &[Ipv4Addr]) -> Option<Ipv4Addr> {
        let skipped = |v: u32| skip.contains(&Ipv4Addr::from(v));
        if let Some(&f) = self.free.iter().find(|&&f| !skipped(f)) {
            return Some(Ipv4Addr::from(f));
        }
        let mut n = self.next;
        while n <= self.last() {
            let ip = Ipv4Addr::from(n);
            if ip != self.gateway && !self.used.contains(&n) && !skipped(n) {
                return Some(ip);
            }
            n += 1;
        }
        None
    }

    /// Takes `ip` (which must be assignable and free).
    pub fn take(&mut self, ip: Ipv4Addr) {
        let v = u32::from(ip);
        self.free.remove(&v);
        self.used.insert(v);
        while self.next <= self.last() && (self.used.contains(&self.next) || Ipv4Addr::from(self.next) == self.gateway)
        {
            self.next += 1;
        }
    }

    /// Gives `ip` back.
    pub fn release(&mut self, ip: Ipv4Addr) {
        let v = u32::from(ip);
        if self.used.remove(&v) && v < self.next {
            self.free.insert(v);
        }
    }

    /// Addresses in use.
    pub fn used(&self) -> usize {
        self.used.len()
    }
}

/// The default gateway of a subnet: its first host address.
pub fn default_gateway(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_skipping_network_gateway_and_broadcast_and_reuses_freed() {
        let net: Ipv4Net = "10.0.0.0/29".parse().unwrap();
        let mut ipam = Ipam::new(net, default_gateway(net));
        let mut got = Vec::new();
        while let Some(ip) = ipam.peek() {
            ipam.take(ip);
            got.push(ip.to_string());
        }
        assert_eq!(got, ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
        assert!(!ipam.assignable("10.0.0.7".parse().unwrap()), "broadcast");
        assert!(!ipam.assignable("10.0.0.1".parse().unwrap()), "gateway");
        ipam.release("10.0.0.4".parse().unwrap());
        assert_eq!(ipam.peek(), Some("10.0.0.4".parse().unwrap()));
        assert_eq!(ipam.used(), 4);
    }

    #[test]
    fn explicit_addresses_are_skipped_by_allocation() {
        let net: Ipv4Net = "10.0.0.0/24".parse().unwrap();
        let mut ipam = Ipam::new(net, default_gateway(net));
        ipam.take("10.0.0.2".parse().unwrap());
        ipam.take("10.0.0.3".parse().unwrap());
        assert_eq!(ipam.peek(), Some("10.0.0.4".parse().unwrap()));
        assert!(ipam.in_use("10.0.0.3".parse().unwrap()));
    }

    #[test]
    fn peek_excluding_skips_picked_addresses_free_or_fresh() {
        let net: Ipv4Net = "10.0.0.0/29".parse().unwrap();
        let mut ipam = Ipam::new(net, default_gateway(net));
        for ip in ["10.0.0.2", "10.0.0.3", "10.0.0.4"] {
            ipam.take(ip.parse().unwrap());
        }
        ipam.release("10.0.0.3".parse().unwrap());
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(ipam.peek_excluding(&[]), Some(ip("10.0.0.3")));
        assert_eq!(ipam.peek_excluding(&[ip("10.0.0.3")]), Some(ip("10.0.0.5")));
        assert_eq!(
            ipam.peek_excluding(&[ip("10.0.0.3"), ip("10.0.0.5")]),
            Some(ip("10.0.0.6"))
        );
        assert_eq!(
            ipam.peek_excluding(&[ip("10.0.0.3"), ip("10.0.0.5"), ip("10.0.0.6")]),
            None
        );
    }
}
