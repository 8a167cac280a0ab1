//! `alcor-scale net up|down`: a block of addresses on a dummy interface, so that thousands of
//! agents on one machine each have an address a control plane elsewhere can reach at
//! `<ip>:50001`, as Alcor requires. Through netlink (rtnetlink), not by running `ip`.
//!
//! `up` records what it added (the interface if it made it, and each address) in a file of its
//! own per network namespace and interface; `down` removes exactly that and nothing else, so
//! addresses a user had put on the same interface stay.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::{Context, bail};
use futures::TryStreamExt;
use rtnetlink::{Handle, LinkDummy, LinkUnspec};
use serde::{Deserialize, Serialize};

/// The default interface name.
pub const DEFAULT_DEV: &str = "alcor-scale0";

/// Larger blocks are refused: 65,534 addresses are more agents than any fleet here holds.
const MIN_PREFIX: u8 = 16;

/// An IPv4 block, `a.b.c.d/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Its first address.
    pub base: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
}

impl std::str::FromStr for Block {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: expected a.b.c.d/len"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("`{ip}` is not an IPv4 address"))?;
        let prefix: u8 = len.parse().map_err(|_| format!("`{len}` is not a prefix length"))?;
        if !(MIN_PREFIX..=32).contains(&prefix) {
            return Err(format!("/{prefix}: give a block from /{MIN_PREFIX} to /32"));
        }
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        if u32::from(ip) & !mask != 0 {
            return Err(format!(
                "`{s}` has host bits set: the block is {}/{prefix}",
                Ipv4Addr::from(u32::from(ip) & mask)
            ));
        }
        if ip.is_loopback() || ip.is_multicast() || ip.is_unspecified() {
            return Err(format!(
                "`{s}`: loopback needs no addresses added; give a unicast block"
            ));
        }
        Ok(Self { base: ip, prefix })
    }
}

impl Block {
    /// Its host addresses: all but the network and broadcast addresses (for /31 and /32, all).
    pub fn hosts(&self) -> Vec<Ipv4Addr> {
        let first = u32::from(self.base);
        let size = 1u64 << (32 - u32::from(self.prefix));
        let (lo, hi) = if size <= 2 { (0, size) } else { (1, size - 1) };
        (lo..hi).map(|i| Ipv4Addr::from(first + i as u32)).collect()
    }
}

/// What `up` added, and so what `down` removes.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Added {
    /// The interface.
    pub dev: String,
    /// Whether `up` created it (then `down` deletes it).
    pub created: bool,
    /// Each address added, as /32.
    pub addresses: Vec<Ipv4Addr>,
}

/// Where `up` records what it added: one file per network namespace and interface, so that
/// namespaces sharing a filesystem (tests) keep apart.
fn record_path(dev: &str) -> anyhow::Result<PathBuf> {
    let ns = std::fs::read_link("/proc/self/ns/net").context("reading this process's network namespace")?;
    let ns: String = ns.to_string_lossy().chars().filter(char::is_ascii_digit).collect();
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir)
        .join("alcor-scale-net");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir.join(format!("{ns}-{dev}.json")))
}

/// Names the capability when the kernel refuses.
fn netlink_error(what: &str, e: rtnetlink::Error) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("Operation not permitted") || text.contains("EPERM") || text.contains("code: Some(-1)") {
        anyhow::anyhow!(
            "{what}: not permitted; `net up` and `net down` need CAP_NET_ADMIN (run as root, or `setcap cap_net_admin+ep` the binary)"
        )
    } else {
        anyhow::anyhow!("{what}: {text}")
    }
}

fn connect() -> anyhow::Result<Handle> {
    let (connection, handle, _) = rtnetlink::new_connection().context("opening a netlink socket")?;
    tokio::spawn(connection);
    Ok(handle)
}

async fn link_index(h: &Handle, dev: &str) -> anyhow::Result<Option<u32>> {
    let mut links = h.link().get().match_name(dev.to_owned()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(Some(l.header.index)),
        Ok(None) => Ok(None),
        // No such device.
        Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -19 => Ok(None),
        Err(e) => Err(netlink_error(&format!("looking up {dev}"), e)),
    }
}

/// Adds every host address of `block` to `dev` (a dummy interface, created if absent) and brings
/// it up. Addresses already there are left as they are and not recorded as added.
pub async fn up(block: Block, dev: &str) -> anyhow::Result<Added> {
    let path = record_path(dev)?;
    if path.exists() {
        bail!(
            "{dev} already holds a block added by `net up` ({}): `alcor-scale net down --dev {dev}` first",
            path.display()
        );
    }
    let h = connect()?;
    let mut added = Added {
        dev: dev.to_owned(),
        ..Default::default()
    };
    let index = match link_index(&h, dev).await? {
        Some(i) => i,
        None => {
            h.link()
                .add(LinkDummy::new(dev).build())
                .execute()
                .await
                .map_err(|e| match e.to_string() {
                    t if t.contains("not supported") => anyhow::anyhow!(
                        "creating the dummy interface {dev}: this kernel has no dummy interfaces (module `dummy`). \
                         Give an interface that exists with --dev: the one a control plane reaches this host by, \
                         or `lo` for a control plane on this host"
                    ),
                    _ => netlink_error(&format!("creating the dummy interface {dev}"), e),
                })?;
            added.created = true;
            link_index(&h, dev)
                .await?
                .with_context(|| format!("{dev} vanished after it was created"))?
        }
    };
    // Record as we go: an interruption still leaves `down` a complete list.
    let save = |a: &Added| -> anyhow::Result<()> {
        std::fs::write(&path, serde_json::to_vec_pretty(a)?).with_context(|| format!("writing {}", path.display()))
    };
    save(&added)?;
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| netlink_error(&format!("bringing {dev} up"), e))?;
    let present: std::collections::HashSet<IpAddr> = existing(&h, index).await?.into_iter().collect();
    for ip in block.hosts() {
        if present.contains(&IpAddr::V4(ip)) {
            continue;
        }
        let r = h.address().add(index, IpAddr::V4(ip), 32).execute().await;
        if let Err(e) = r {
            save(&added)?;
            return Err(netlink_error(&format!("adding {ip} to {dev}"), e));
        }
        added.addresses.push(ip);
        if added.addresses.len().is_multiple_of(1024) {
            save(&added)?;
        }
    }
    save(&added)?;
    Ok(added)
}

async fn existing(h: &Handle, index: u32) -> anyhow::Result<Vec<IpAddr>> {
    use rtnetlink::packet_route::address::AddressAttribute;
    let mut out = Vec::new();
    let mut list = h.address().get().set_link_index_filter(index).execute();
    while let Some(m) = list
        .try_next()
        .await
        .map_err(|e| netlink_error("listing addresses", e))?
    {
        for a in &m.attributes {
            if let AddressAttribute::Address(ip) = a {
                out.push(*ip);
            }
        }
    }
    Ok(out)
}

/// Removes what `up` added to `dev`: its addresses, and the interface if `up` created it.
pub async fn down(dev: &str) -> anyhow::Result<Added> {
    let path = record_path(dev)?;
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "nothing recorded for {dev} in this network namespace ({}): `net up` did not add a block there",
            path.display()
        )
    })?;
    let added: Added = serde_json::from_slice(&text).with_context(|| format!("reading {}", path.display()))?;
    let h = connect()?;
    if let Some(index) = link_index(&h, dev).await? {
        if added.created {
            h.link()
                .del(index)
                .execute()
                .await
                .map_err(|e| netlink_error(&format!("deleting {dev}"), e))?;
        } else {
            let ours: std::collections::HashSet<Ipv4Addr> = added.addresses.iter().copied().collect();
            use rtnetlink::packet_route::address::AddressAttribute;
            let mut list = h.address().get().set_link_index_filter(index).execute();
            let mut doomed = Vec::new();
            while let Some(m) = list
                .try_next()
                .await
                .map_err(|e| netlink_error("listing addresses", e))?
            {
                let mine = m
                    .attributes
                    .iter()
                    .any(|a| matches!(a, AddressAttribute::Address(IpAddr::V4(ip)) if ours.contains(ip)))
                    && m.header.prefix_len == 32;
                if mine {
                    doomed.push(m);
                }
            }
            for m in doomed {
                h.address()
                    .del(m)
                    .execute()
                    .await
                    .map_err(|e| netlink_error(&format!("removing an address from {dev}"), e))?;
            }
        }
    }
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse_and_list_their_hosts() {
        let b: Block = "198.18.0.0/29".parse().unwrap();
        assert_eq!(b.hosts().len(), 6);
        assert_eq!(b.hosts()[0], Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(*b.hosts().last().unwrap(), Ipv4Addr::new(198, 18, 0, 6));
        let one: Block = "198.18.0.9/32".parse().unwrap();
        assert_eq!(one.hosts(), [Ipv4Addr::new(198, 18, 0, 9)]);
        for (bad, why) in [
            ("198.18.0.1/24", "host bits"),
            ("10.0.0.0/8", "/16 to /32"),
            ("127.5.0.0/24", "loopback"),
            ("198.18.0.0", "a.b.c.d/len"),
        ] {
            let e = bad.parse::<Block>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
