//! Goal-state build + encode by the reference control plane: one port joining a subnet that
//! already holds N bound ports spread over 100 hosts, in `alcor` fan-out (the port's host gets
//! every port of the subnet). The result is every host message, encoded and ready to push.
//!
//! `fresh_prost` builds and encodes the same-shaped message from scratch with prost types, as a
//! controller without a per-port cache would (fake_agent::sample), for comparison.
//!
//! `dpm_sg_rule_add`: a rule naming a remote group of N members added to a group with a member
//! on each of 100 hosts: every one of those hosts gets the rule and the N members.
//!
//! Run: `cargo bench -p benches --bench dpm_build`

use std::hint::black_box;
use std::net::Ipv4Addr;

use control_plane::model::{FixedIp, Ipam, Node, Port, Store, Subnet, Vpc};
use control_plane::{Dpm, FanoutMode};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ipnet::Ipv4Net;
use prost::Message;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const HOSTS: u32 = 100;

fn port(store: &mut Store, i: usize, host: u32) -> Port {
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 2)) + i as u32);
    store.subnets.get_mut("subnet").unwrap().ipam.take(ip);
    Port {
        id: format!("00000003-0000-4000-8000-{i:012x}"),
        project_id: "p".into(),
        vpc_id: "vpc".into(),
        name: String::new(),
        mac: format!(
            "fa:16:3e:{:02x}:{:02x}:{:02x}",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        ),
        fixed_ips: vec![FixedIp {
            subnet_id: "subnet".into(),
            ip,
        }],
        security_groups: Vec::new(),
        device_id: "vm".into(),
        device_owner: "compute:nova".into(),
        host_id: Some(format!("host-{host}")),
        admin_state_up: true,
        allowed_address_pairs: Vec::new(),
        status: "ACTIVE".into(),
    }
}

/// A store and DPM with `n` bound ports, and the id of one more port, stored but not yet bound.
fn setup(n: usize) -> (Store, Dpm, String) {
    setup_with(n, |_| Vec::new())
}

/// As [`setup`], port `i` in the security groups `groups(i)`.
fn setup_with(n: usize, groups: impl Fn(usize) -> Vec<String>) -> (Store, Dpm, String) {
    let mut store = Store::default();
    for h in 0..HOSTS {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 1)) + h);
        let name = format!("host-{h}");
        store.node_names.insert(name.clone(), name.clone());
        store.nodes.insert(
            name.clone(),
            Node {
                node_id: name.clone(),
                node_name: name,
                local_ip: ip,
                mac_address: "02:00:00:00:00:01".into(),
                veth: "eth0".into(),
                server_port: 50001,
                host_dvr_mac: String::new(),
                data_path_ip: ip,
            },
        );
    }
    let net: Ipv4Net = "10.0.0.0/8".parse().unwrap();
    store.vpcs.insert(
        "vpc".into(),
        Vpc {
            id: "vpc".into(),
            project_id: "p".into(),
            name: "vpc".into(),
            cidr: Some(net),
            segmentation_id: 1001,
            network_type: "vxlan".into(),
            subnets: vec!["subnet".into()],
        },
    );
    store.subnets.insert(
        "subnet".into(),
        Subnet {
            id: "subnet".into(),
            project_id: "p".into(),
            vpc_id: "vpc".into(),
            name: "s".into(),
            cidr: net,
            gateway_ip: Ipv4Addr::new(10, 0, 0, 1),
            gateway_mac: "fa:16:3e:ff:ff:ff".into(),
            gateway_port_id: "gw".into(),
            enable_dhcp: true,
            router_id: None,
            ipam: Ipam::new(net, Ipv4Addr::new(10, 0, 0, 1)),
        },
    );
    let mut dpm = Dpm::new(FanoutMode::Alcor);
    let ids: Vec<String> = (0..n)
        .map(|i| {
            let mut p = port(&mut store, i, i as u32 % HOSTS);
            p.security_groups = groups(i);
            let id = p.id.clone();
            store.ports.insert(id.clone(), p);
            id
        })
        .collect();
    dpm.preload(&store, &ids);
    let new = port(&mut store, n, 0);
    let id = new.id.clone();
    store.ports.insert(id.clone(), new);
    (store, dpm, id)
}

fn build_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("dpm_port_join");
    group.sample_size(20);
    for n in SIZES {
        let (store, dpm, id) = setup(n);
        let sizes: Vec<u64> = dpm
            .clone()
            .bind(&store, std::slice::from_ref(&id))
            .iter()
            .map(|m| m.counts.bytes)
            .collect();
        eprintln!(
            "{n} ports: {} messages, port host's message {} bytes",
            sizes.len(),
            sizes.iter().max().unwrap()
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("cached_entries", n), &n, |b, _| {
            b.iter_batched(
                || dpm.clone(),
                // The clone's drop is not timed: it goes back with the messages.
                |mut d| {
                    let messages = black_box(d.bind(&store, std::slice::from_ref(&id)));
                    (d, messages)
                },
                BatchSize::LargeInput,
            )
        });
        group.bench_with_input(BenchmarkId::new("fresh_prost", n), &n, |b, &n| {
            b.iter(|| {
                let gs = fake_agent::sample::port_joining_subnet(Ipv4Addr::new(127, 1, 0, 1), n, HOSTS, 0);
                black_box(gs.encode_to_vec())
            })
        });
    }
    group.finish();
}

/// Remote-group sizes of the rule-change benchmark.
const MEMBERS: [usize; 4] = [10, 100, 1_000, 10_000];

/// A rule added to group `web` (one member on each of the 100 hosts) that names group `db`
/// (N members) as its remote group: every web host gets the rule and db's N members, the
/// remote group's addresses as neighbors (the address-set way, one entry per member per host).
fn sg_rule_add(c: &mut Criterion) {
    use control_plane::model::{Direction, Rule, SecurityGroup};
    let mut group = c.benchmark_group("dpm_sg_rule_add");
    group.sample_size(20);
    for n in MEMBERS {
        let web = HOSTS as usize;
        let (mut store, dpm, _) = setup_with(web + n, |i| {
            vec![if i < web { "web".to_owned() } else { "db".to_owned() }]
        });
        for g in ["web", "db"] {
            store.security_groups.insert(
                g.into(),
                SecurityGroup {
                    id: g.into(),
                    project_id: "p".into(),
                    name: g.into(),
                    description: String::new(),
                    rules: Vec::new(),
                },
            );
        }
        let rule = Rule {
            id: "from-db".into(),
            security_group_id: "web".into(),
            direction: Direction::Ingress,
            ethertype: "IPv4".into(),
            protocol: Some("tcp".into()),
            port_range_min: Some(5432),
            port_range_max: Some(5432),
            remote_ip_prefix: None,
            remote_group_id: Some("db".into()),
        };
        store.security_groups.get_mut("web").unwrap().rules.push(rule.clone());
        let messages =
            dpm.clone()
                .rules_changed(&store, std::slice::from_ref(&rule), alcor_schema::OperationType::Create);
        let bytes: u64 = messages.iter().map(|m| m.counts.bytes).sum();
        let entries: u64 = messages.iter().map(|m| m.counts.neighbors).sum();
        eprintln!(
            "remote group of {n}: {} messages, {entries} neighbor entries, {bytes} bytes in all ({} per host)",
            messages.len(),
            bytes / messages.len().max(1) as u64
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("address_set_neighbors", n), &n, |b, _| {
            b.iter_batched(
                || dpm.clone(),
                |mut d| {
                    let messages = black_box(d.rules_changed(
                        &store,
                        std::slice::from_ref(&rule),
                        alcor_schema::OperationType::Create,
                    ));
                    (d, messages)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, build_encode, sg_rule_add);
criterion_main!(benches);
