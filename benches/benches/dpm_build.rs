//! Goal-state build + encode by the reference control plane: one port joining a subnet that
//! already holds N bound ports spread over 100 hosts, in `alcor` fan-out (the port's host gets
//! every port of the subnet). The result is every host message, encoded and ready to push.
//!
//! `fresh_prost` builds and encodes the same-shaped message from scratch with prost types, as a
//! controller without a per-port cache would (fake_agent::sample), for comparison.
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
            let p = port(&mut store, i, i as u32 % HOSTS);
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

criterion_group!(benches, build_encode);
criterion_main!(benches);
