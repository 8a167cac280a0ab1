//! Goal states carry exactly what they should: every host's message holds each neighbor once
//! per kind, and the set is the one the topology implies, for single creates, bulk creates,
//! ports in two subnets, routers and remote security groups.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use prost::Message;

use super::*;
use crate::model::{FixedIp, Ipam, Node, Router, Rule, SecurityGroup, Subnet, Vpc};

const HOSTS: u32 = 10;

/// One planned port: its subnets (one or two), host and groups.
#[derive(Clone)]
struct P {
    id: String,
    subnets: Vec<&'static str>,
    host: u32,
    groups: Vec<&'static str>,
}

/// Field 7 of a GoalStateV2 read as a list, so that a repeated key shows as a repeat (a map
/// decode would keep the last one).
#[derive(Clone, PartialEq, Message)]
struct Records {
    #[prost(message, repeated, tag = "7")]
    neighbors: Vec<Entry>,
}

#[derive(Clone, PartialEq, Message)]
struct Entry {
    #[prost(string, tag = "1")]
    key: String,
}

/// The neighbor keys of a message, in wire order, repeats kept.
fn keys(m: &HostMessage) -> Vec<String> {
    Records::decode(m.bytes.clone())
        .unwrap()
        .neighbors
        .into_iter()
        .map(|e| e.key)
        .collect()
}

fn ip(h: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 1)) + h)
}

/// Three subnets: `a` and `b` on one router, `c` alone; group `web` whose rule names group `db`.
fn store() -> Store {
    let mut s = Store::default();
    for h in 0..HOSTS {
        let name = format!("host-{h}");
        s.node_names.insert(name.clone(), name.clone());
        s.nodes.insert(
            name.clone(),
            Node {
                node_id: name.clone(),
                node_name: name,
                local_ip: ip(h),
                mac_address: "02:00:00:00:00:01".into(),
                veth: "eth0".into(),
                server_port: 50001,
                host_dvr_mac: String::new(),
                data_path_ip: ip(h),
            },
        );
    }
    s.vpcs.insert(
        "vpc".into(),
        Vpc {
            id: "vpc".into(),
            project_id: "p".into(),
            name: "vpc".into(),
            cidr: Some("10.0.0.0/8".parse().unwrap()),
            segmentation_id: 1001,
            network_type: "vxlan".into(),
            subnets: vec!["a".into(), "b".into(), "c".into()],
        },
    );
    for (k, id) in ["a", "b", "c"].iter().enumerate() {
        let net: Ipv4Net = format!("10.{k}.0.0/16").parse().unwrap();
        let gw = Ipv4Addr::new(10, k as u8, 0, 1);
        s.subnets.insert(
            (*id).into(),
            Subnet {
                id: (*id).into(),
                project_id: "p".into(),
                vpc_id: "vpc".into(),
                name: (*id).into(),
                cidr: net,
                gateway_ip: gw,
                gateway_mac: "fa:16:3e:ff:ff:ff".into(),
                gateway_port_id: format!("gw-{id}"),
                enable_dhcp: true,
                router_id: (*id != "c").then(|| "r".into()),
                ipam: Ipam::new(net, gw),
            },
        );
    }
    s.routers.insert(
        "r".into(),
        Router {
            id: "r".into(),
            project_id: "p".into(),
            name: "r".into(),
            subnets: vec!["a".into(), "b".into()],
        },
    );
    for (g, remote) in [("web", Some("db")), ("db", None)] {
        s.security_groups.insert(
            g.into(),
            SecurityGroup {
                id: g.into(),
                project_id: "p".into(),
                name: g.into(),
                description: String::new(),
                rules: vec![Rule {
                    id: format!("rule-{g}"),
                    security_group_id: g.into(),
                    direction: Direction::Ingress,
                    ethertype: "IPv4".into(),
                    protocol: Some("tcp".into()),
                    port_range_min: None,
                    port_range_max: None,
                    remote_ip_prefix: None,
                    remote_group_id: remote.map(Into::into),
                }],
            },
        );
    }
    s
}

fn add(store: &mut Store, p: &P, n: usize) {
    let fixed_ips = p
        .subnets
        .iter()
        .map(|sub| {
            let k = ["a", "b", "c"].iter().position(|x| x == sub).unwrap() as u8;
            let ip = Ipv4Addr::new(10, k, (n / 200) as u8, (n % 200) as u8 + 2);
            store.subnets.get_mut(*sub).unwrap().ipam.take(ip);
            FixedIp {
                subnet_id: (*sub).into(),
                ip,
            }
        })
        .collect();
    store.ports.insert(
        p.id.clone(),
        Port {
            id: p.id.clone(),
            project_id: "p".into(),
            vpc_id: "vpc".into(),
            name: String::new(),
            mac: format!("fa:16:3e:00:{:02x}:{:02x}", n / 256, n % 256),
            fixed_ips,
            security_groups: p.groups.iter().map(|g| (*g).into()).collect(),
            device_id: "vm".into(),
            device_owner: "compute:nova".into(),
            host_id: Some(format!("host-{}", p.host)),
            admin_state_up: true,
            allowed_address_pairs: Vec::new(),
            status: "ACTIVE".into(),
        },
    );
}

fn peers(subnet: &str) -> &'static [&'static str] {
    match subnet {
        "a" => &["b"],
        "b" => &["a"],
        _ => &[],
    }
}

/// The neighbor keys each host must get when `batch` binds with `bound` (batch included)
/// already bound, in Alcor's fan-out: a host with new ports gets every bound port of their
/// subnets (L2), of the router's other subnets (L3) and of the remote groups their groups' rules
/// name (L3); every other host that holds ports of a new port's subnet, of a router peer of it,
/// or of a group whose rules name one of its groups, gets the new port (L2 or L3).
fn expected(bound: &[P], batch: &[P]) -> BTreeMap<Ipv4Addr, BTreeSet<String>> {
    let mut out: BTreeMap<Ipv4Addr, BTreeSet<String>> = BTreeMap::new();
    let holds = |h: u32, subnet: &str| bound.iter().any(|p| p.host == h && p.subnets.contains(&subnet));
    let in_group = |h: u32, g: &str| bound.iter().any(|p| p.host == h && p.groups.contains(&g));
    for n in batch {
        let mine = out.entry(ip(n.host)).or_default();
        for s in &n.subnets {
            for p in bound.iter().filter(|p| p.subnets.contains(s)) {
                mine.insert(neighbor_key(NeighborType::L2, &p.id));
            }
            for peer in peers(s) {
                for p in bound.iter().filter(|p| p.subnets.contains(peer)) {
                    mine.insert(neighbor_key(NeighborType::L3, &p.id));
                }
            }
        }
        if n.groups.contains(&"web") {
            for p in bound.iter().filter(|p| p.groups.contains(&"db") && p.id != n.id) {
                mine.insert(neighbor_key(NeighborType::L3, &p.id));
            }
        }
        for h in (0..HOSTS).filter(|h| *h != n.host) {
            let theirs = out.entry(ip(h)).or_default();
            for s in &n.subnets {
                if holds(h, s) {
                    theirs.insert(neighbor_key(NeighborType::L2, &n.id));
                }
                if peers(s).iter().any(|peer| holds(h, peer)) {
                    theirs.insert(neighbor_key(NeighborType::L3, &n.id));
                }
            }
            if n.groups.contains(&"db") && in_group(h, "web") {
                theirs.insert(neighbor_key(NeighborType::L3, &n.id));
            }
        }
    }
    out.retain(|_, v| !v.is_empty());
    out
}

/// Binds `batches` in turn and checks every message of every batch.
fn check(ports: &[P], batches: &[std::ops::Range<usize>]) {
    let mut store = store();
    for (n, p) in ports.iter().enumerate() {
        add(&mut store, p, n);
    }
    let mut dpm = Dpm::new(FanoutMode::Alcor);
    for r in batches {
        let ids: Vec<String> = ports[r.clone()].iter().map(|p| p.id.clone()).collect();
        let messages = dpm.bind(&store, &ids);
        let want = expected(&ports[..r.end], &ports[r.clone()]);
        let mut got: BTreeMap<Ipv4Addr, BTreeSet<String>> = BTreeMap::new();
        for m in &messages {
            let keys = keys(m);
            let distinct: BTreeSet<String> = keys.iter().cloned().collect();
            assert_eq!(
                keys.len(),
                distinct.len(),
                "batch {r:?}: host {} got {} neighbor records for {} neighbors",
                m.host,
                keys.len(),
                distinct.len()
            );
            assert_eq!(m.counts.neighbors, keys.len() as u64);
            if !distinct.is_empty() {
                got.insert(m.host, distinct);
            }
        }
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "batch {r:?}: hosts"
        );
        for (h, w) in &want {
            let g = &got[h];
            assert!(
                g == w,
                "batch {r:?}, host {h}: missing {:?}, extra {:?}",
                w.difference(g).take(5).collect::<Vec<_>>(),
                g.difference(w).take(5).collect::<Vec<_>>()
            );
        }
    }
}

/// `n` ports over the hosts round-robin in subnets chosen by `subnets(i)`, every third in `web`
/// and every fifth in `db`.
fn ports(n: usize, subnets: impl Fn(usize) -> Vec<&'static str>) -> Vec<P> {
    (0..n)
        .map(|i| P {
            id: format!("port-{i:05}"),
            subnets: subnets(i),
            host: i as u32 % HOSTS,
            groups: [(i % 3 == 0).then_some("web"), (i % 5 == 0).then_some("db")]
                .into_iter()
                .flatten()
                .collect(),
        })
        .collect()
}

#[test]
fn a_bulk_in_one_subnet_gives_each_host_each_neighbor_once() {
    // 300 ports in one request, 30 per host: each host's message lists the subnet once.
    let all = std::iter::once(0..300).collect::<Vec<_>>();
    check(&ports(300, |_| vec!["c"]), &all);
}

#[test]
fn single_creates_one_after_another_are_exact() {
    let ps = ports(60, |i| vec![["a", "b", "c"][i % 3]]);
    let batches: Vec<_> = (0..60).map(|i| i..i + 1).collect();
    check(&ps, &batches);
}

#[test]
fn bulks_across_routed_subnets_groups_and_two_subnet_ports_are_exact() {
    // Subnets a and b share a router; some ports are in both; remote groups add L3 neighbors.
    let ps = ports(400, |i| match i % 4 {
        0 => vec!["a"],
        1 => vec!["b"],
        2 => vec!["a", "b"],
        _ => vec!["c"],
    });
    check(&ps, &[0..100, 100..101, 101..350, 350..400]);
}

#[test]
fn switching_to_incremental_sends_only_what_hosts_lack() {
    // 40 ports bound in Alcor's fan-out (4 per host), then one more after the switch; no
    // groups, so that every neighbor is L2.
    let mut all = ports(41, |_| vec!["c"]);
    all.iter_mut().for_each(|p| p.groups.clear());
    let mut store = store();
    for (n, p) in all.iter().enumerate() {
        add(&mut store, p, n);
    }
    let mut dpm = Dpm::new(FanoutMode::Alcor);
    let ids: Vec<String> = all[..40].iter().map(|p| p.id.clone()).collect();
    dpm.bind(&store, &ids);
    dpm.set_mode(FanoutMode::Incremental);
    let last = &all[40];
    let messages = dpm.bind(&store, std::slice::from_ref(&last.id));
    let key = neighbor_key(NeighborType::L2, &last.id);
    for m in &messages {
        let keys = keys(m);
        if m.host == ip(last.host) {
            // Its host already holds the subnet: the port alone, no neighbors.
            assert!(keys.is_empty(), "own host got {} neighbors", keys.len());
        } else {
            assert_eq!(keys, std::slice::from_ref(&key), "host {}", m.host);
        }
    }
    assert_eq!(messages.len(), HOSTS as usize);
}

/// A rule added to a group reaches exactly the hosts with bound members of it, as a delta of
/// that rule alone; naming a remote group brings that group's members as L3 neighbors; a rule
/// removed reaches the same hosts as a delete of that rule.
#[test]
fn a_rule_change_reaches_exactly_the_hosts_enforcing_its_group() {
    // web members on hosts 0-2, db members on hosts 5-6, a port in neither on host 9.
    let mut all = Vec::new();
    for (i, (host, group)) in [(0, "web"), (1, "web"), (2, "web"), (5, "db"), (6, "db"), (9, "")]
        .into_iter()
        .enumerate()
    {
        all.push(P {
            id: format!("p{i}"),
            subnets: vec!["c"],
            host,
            groups: if group.is_empty() { Vec::new() } else { vec![group] },
        });
    }
    let mut store = store();
    for (n, p) in all.iter().enumerate() {
        add(&mut store, p, n);
    }
    let mut dpm = Dpm::new(FanoutMode::Alcor);
    dpm.bind(&store, &all.iter().map(|p| p.id.clone()).collect::<Vec<_>>());
    let rule = |id: &str, remote: Option<&str>| Rule {
        id: id.into(),
        security_group_id: "web".into(),
        direction: Direction::Ingress,
        ethertype: "IPv4".into(),
        protocol: Some("tcp".into()),
        port_range_min: Some(443),
        port_range_max: Some(443),
        remote_ip_prefix: None,
        remote_group_id: remote.map(Into::into),
    };
    let rules_of = |m: &HostMessage| -> Vec<(String, i32, i32)> {
        let gs = GoalStateV2::decode(m.bytes.clone()).unwrap();
        let sg = &gs.security_group_states["web"];
        let c = sg.configuration.as_ref().unwrap();
        assert_eq!(c.update_type, UpdateType::Delta as i32, "a delta, not the whole group");
        c.security_group_rules
            .iter()
            .map(|r| (r.id.clone(), r.operation_type, r.port_range_min as i32))
            .collect()
    };
    let hosts = |ms: &[HostMessage]| ms.iter().map(|m| m.host).collect::<Vec<_>>();

    let plain = rule("https", None);
    store.security_groups.get_mut("web").unwrap().rules.push(plain.clone());
    let ms = dpm.rules_changed(&store, std::slice::from_ref(&plain), OperationType::Create);
    assert_eq!(hosts(&ms), vec![ip(0), ip(1), ip(2)], "web's hosts, no other");
    for m in &ms {
        assert_eq!(rules_of(m), vec![("https".into(), OperationType::Create as i32, 443)]);
        assert!(keys(m).is_empty(), "a plain rule brings no neighbor");
        assert!(
            m.counts.bytes < 400,
            "a rule is a few hundred bytes: {}",
            m.counts.bytes
        );
    }

    let remote = rule("from-db", Some("db"));
    store.security_groups.get_mut("web").unwrap().rules.push(remote.clone());
    let ms = dpm.rules_changed(&store, std::slice::from_ref(&remote), OperationType::Create);
    assert_eq!(hosts(&ms), vec![ip(0), ip(1), ip(2)]);
    for m in &ms {
        let mut k = keys(m);
        k.sort();
        let want: Vec<String> = ["p3", "p4"].iter().map(|p| neighbor_key(NeighborType::L3, p)).collect();
        assert_eq!(k, want, "db's members, as L3 neighbors, once each");
        assert_eq!(m.counts.remote_group_neighbors, 2);
    }

    store
        .security_groups
        .get_mut("web")
        .unwrap()
        .rules
        .retain(|r| r.id != "https");
    let ms = dpm.rules_changed(&store, std::slice::from_ref(&plain), OperationType::Delete);
    assert_eq!(hosts(&ms), vec![ip(0), ip(1), ip(2)]);
    for m in &ms {
        assert_eq!(rules_of(m), vec![("https".into(), OperationType::Delete as i32, 443)]);
    }
    // A group nobody is in: nothing to push.
    let lonely = Rule {
        security_group_id: "nobody".into(),
        ..rule("x", None)
    };
    assert!(dpm.rules_changed(&store, &[lonely], OperationType::Create).is_empty());
}

/// `expand`: a remote-group rule reaches each enforcing host as one rule per bound member of
/// the remote group (`RULE#PORT`, the member's address as its remote prefix) and brings no
/// remote member as a neighbor; a member joining or leaving re-sends each enforcing host the
/// whole group, expanded anew, a member that left listed as deleted.
#[test]
fn expand_makes_a_rule_per_remote_member_and_resends_the_group_when_members_change() {
    // web members on hosts 0-2 (subnet a), db members on hosts 5-6 (subnet c): no subnet is
    // shared, so every message between them is the groups' doing.
    let ports = [
        (0, "web", "a"),
        (1, "web", "a"),
        (2, "web", "a"),
        (5, "db", "c"),
        (6, "db", "c"),
    ];
    let mut all: Vec<P> = ports
        .iter()
        .enumerate()
        .map(|(i, (host, group, subnet))| P {
            id: format!("p{i}"),
            subnets: vec![subnet],
            host: *host,
            groups: vec![group],
        })
        .collect();
    let mut store = store();
    for (n, p) in all.iter().enumerate() {
        add(&mut store, p, n);
    }
    let mut dpm = Dpm::new(FanoutMode::Alcor);
    dpm.set_sg_mode(SgMode::Expand);
    let web_rules = |m: &HostMessage| -> Vec<(String, i32, String)> {
        let gs = GoalStateV2::decode(m.bytes.clone()).unwrap();
        let Some(sg) = gs.security_group_states.get("web") else {
            return Vec::new();
        };
        let mut r: Vec<_> = sg
            .configuration
            .as_ref()
            .unwrap()
            .security_group_rules
            .iter()
            .map(|r| (r.id.clone(), r.operation_type, r.remote_ip_prefix.clone()))
            .collect();
        r.sort();
        r
    };
    let addr = |store: &Store, p: &str| format!("{}/32", store.ports[p].fixed_ips[0].ip);
    let update = OperationType::Update as i32;

    let ms = dpm.bind(&store, &all.iter().map(|p| p.id.clone()).collect::<Vec<_>>());
    let web0 = ms.iter().find(|m| m.host == ip(0)).unwrap();
    // (Created or updated: in one batch the members' binding re-sends the group too.)
    assert_eq!(
        web_rules(web0).into_iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(),
        vec![
            ("rule-web#p3".to_owned(), addr(&store, "p3")),
            ("rule-web#p4".to_owned(), addr(&store, "p4"))
        ],
        "web's rule naming db, once per db member"
    );
    assert!(
        keys(web0).iter().all(|k| !k.contains("p3") && !k.contains("p4")),
        "no db member as a neighbor: {:?}",
        keys(web0)
    );

    // A db member joins on host 7: each web host gets web again, with it.
    let joined = P {
        id: "p5".into(),
        subnets: vec!["c"],
        host: 7,
        groups: vec!["db"],
    };
    add(&mut store, &joined, 5);
    all.push(joined);
    let ms = dpm.bind(&store, &["p5".to_owned()]);
    let web_hosts: Vec<Ipv4Addr> = ms.iter().filter(|m| !web_rules(m).is_empty()).map(|m| m.host).collect();
    assert_eq!(web_hosts, vec![ip(0), ip(1), ip(2)]);
    for m in ms.iter().filter(|m| !web_rules(m).is_empty()) {
        let ids: Vec<String> = web_rules(m).into_iter().map(|r| r.0).collect();
        assert_eq!(ids, ["rule-web#p3", "rule-web#p4", "rule-web#p5"]);
    }

    // One leaves (deleted): web again without it, and it listed as deleted.
    let gone = store.ports["p3"].clone();
    let ms = dpm.unbind(&store, std::slice::from_ref(&gone));
    for m in ms.iter().filter(|m| [ip(0), ip(1), ip(2)].contains(&m.host)) {
        let r = web_rules(m);
        assert_eq!(
            r.iter().map(|r| (r.0.as_str(), r.1)).collect::<Vec<_>>(),
            vec![
                ("rule-web#p3", OperationType::Delete as i32),
                ("rule-web#p4", update),
                ("rule-web#p5", update)
            ]
        );
    }
    assert_eq!(ms.iter().filter(|m| !web_rules(m).is_empty()).count(), 3);
}
