//! The control plane against a real fleet: every agent's state must equal what the topology
//! implies, in both fan-out modes, before and after deleting half the ports.

mod common;

use std::collections::BTreeSet;

use alcor_schema::NeighborType;
use common::*;
use control_plane::FanoutMode;
use serde_json::{Value, json};

const HOSTS: usize = 50;
const PORTS: usize = 1000;

#[derive(Debug, Clone)]
struct P {
    id: String,
    host: usize,
    subnet: usize,
    sg: usize,
}

/// Ports as the API created them (sg 1 has an ingress rule whose remote group is sg 0).
struct Topology {
    ports: Vec<P>,
}

async fn build(env: &Env) -> Topology {
    let vpc = env
        .post(
            &format!("/project/{PID}/vpcs"),
            json!({ "network": { "name": "vpc", "cidr": "10.0.0.0/8" } }),
        )
        .await;
    let vpc_id = vpc["network"]["id"].as_str().unwrap().to_owned();
    assert!(vpc["network"]["provider:segmentation_id"].as_u64().unwrap() > 0);
    let mut subnet_ids = Vec::new();
    for cidr in ["10.1.0.0/20", "10.2.0.0/20"] {
        let s = env
            .post(
                &format!("/project/{PID}/subnets"),
                json!({ "subnet": { "network_id": vpc_id, "cidr": cidr, "ip_version": 4 } }),
            )
            .await;
        subnet_ids.push(s["subnet"]["id"].as_str().unwrap().to_owned());
    }
    let r = env
        .post(&format!("/v4/{PID}/routers"), json!({ "router": { "name": "r1" } }))
        .await;
    let router = r["router"]["id"].as_str().unwrap().to_owned();
    for s in &subnet_ids {
        env.put(
            &format!("/project/{PID}/routers/{router}/add_router_interface"),
            json!({ "subnet_id": s }),
        )
        .await;
    }
    let web = env
        .post(
            &format!("/project/{PID}/security-groups"),
            json!({ "security_group": { "name": "web" } }),
        )
        .await;
    let db = env
        .post(
            &format!("/project/{PID}/security-groups"),
            json!({ "security_group": { "name": "db" } }),
        )
        .await;
    let sg_ids = [
        web["security_group"]["id"].as_str().unwrap().to_owned(),
        db["security_group"]["id"].as_str().unwrap().to_owned(),
    ];
    env.post(
        &format!("/project/{PID}/security-group-rules"),
        json!({ "security_group_rule": { "security_group_id": sg_ids[1], "direction": "ingress", "protocol": "tcp",
                 "port_range_min": 5432, "port_range_max": 5432, "remote_group_id": sg_ids[0] } }),
    )
    .await;

    // Port i: host i % 50, subnet (i / 50) % 2, group (i / 100) % 2, so that every host has
    // ports in both subnets and both groups. The first 500 one by one, the rest in bulk
    // requests of 100.
    let spec = |i: usize| P {
        id: format!("port-{i:04}"),
        host: i % HOSTS,
        subnet: (i / 50) % 2,
        sg: (i / 100) % 2,
    };
    let body = |p: &P| {
        json!({ "id": p.id, "network_id": vpc_id, "fixed_ips": [{ "subnet_id": subnet_ids[p.subnet] }],
                "security_groups": [sg_ids[p.sg]], "device_id": format!("vm-{}", p.id), "device_owner": "compute:nova",
                "binding:host_id": format!("host-{}", p.host) })
    };
    let ports: Vec<P> = (0..PORTS).map(spec).collect();
    for p in &ports[..PORTS / 2] {
        let out = env
            .post(&format!("/project/{PID}/ports"), json!({ "port": body(p) }))
            .await;
        assert_eq!(out["port"]["status"], "ACTIVE", "{out}");
        assert!(out["dataplane"]["failed_hosts"].as_array().unwrap().is_empty());
    }
    for chunk in ports[PORTS / 2..].chunks(100) {
        let list: Vec<Value> = chunk.iter().map(body).collect();
        let out = env
            .post(&format!("/project/{PID}/ports/bulk"), json!({ "ports": list }))
            .await;
        assert_eq!(out["ports"].as_array().unwrap().len(), 100);
        assert!(
            out["dataplane"]["failed_hosts"].as_array().unwrap().is_empty(),
            "{}",
            out["dataplane"]
        );
    }
    Topology { ports }
}

/// What host `h` must hold: its ports; L2 neighbors = every other-host port of the subnets it
/// has ports in; L3 = every other-host port of the other router subnet, plus every member of
/// the remote group (web) where it holds a db port.
fn expected(ports: &[P], h: usize) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let mine: Vec<&P> = ports.iter().filter(|p| p.host == h).collect();
    let local: BTreeSet<String> = mine.iter().map(|p| p.id.clone()).collect();
    let subnets: BTreeSet<usize> = mine.iter().map(|p| p.subnet).collect();
    let has_db = mine.iter().any(|p| p.sg == 1);
    let l2 = ports
        .iter()
        .filter(|p| p.host != h && subnets.contains(&p.subnet))
        .map(|p| p.id.clone())
        .collect();
    let l3 = ports
        .iter()
        .filter(|p| p.host != h)
        .filter(|p| subnets.iter().any(|s| *s != p.subnet) || (has_db && p.sg == 0))
        .map(|p| p.id.clone())
        .collect();
    (local, l2, l3)
}

/// Hosts whose expectation is complete: ports in both subnets and both groups.
fn well_defined(ports: &[P], h: usize) -> bool {
    let mine: Vec<&P> = ports.iter().filter(|p| p.host == h).collect();
    (0..2).all(|s| mine.iter().any(|p| p.subnet == s)) && (0..2).all(|g| mine.iter().any(|p| p.sg == g))
}

fn assert_agents(env: &Env, ports: &[P], deleted: &BTreeSet<String>, mode: FanoutMode) {
    let mut checked = 0;
    for a in env.fleet.agents() {
        let h = a.index() as usize;
        let state = a.state();
        let got_ports: BTreeSet<String> = state.port_ids().map(str::to_owned).collect();
        let got_l2: BTreeSet<String> = state.neighbor_ids(NeighborType::L2).map(str::to_owned).collect();
        let got_l3: BTreeSet<String> = state.neighbor_ids(NeighborType::L3).map(str::to_owned).collect();
        let (want_ports, want_l2, want_l3) = expected(ports, h);
        assert_eq!(got_ports, want_ports, "host {h} ports ({mode})");
        if mode == FanoutMode::Incremental {
            // Deletes reach exactly the hosts that hold the neighbor.
            assert!(
                got_l2.is_disjoint(deleted) && got_l3.is_disjoint(deleted),
                "host {h} holds deleted ports"
            );
        }
        if well_defined(ports, h) {
            assert_eq!(got_l2, want_l2, "host {h} L2 ({mode})");
            assert_eq!(got_l3, want_l3, "host {h} L3 ({mode})");
            checked += 1;
        }
        // Neighbor entries point at the right tunnel endpoint.
        if let Some(id) = want_l2.iter().next() {
            let p = ports.iter().find(|p| &p.id == id).unwrap();
            let n = state.neighbor(NeighborType::L2, id).unwrap();
            assert_eq!(n.host_ip, Some(env.fleet.agents()[p.host].ip()));
        }
    }
    assert!(
        checked >= HOSTS * 4 / 5,
        "only {checked} hosts had a complete expectation"
    );
}

/// What a host holds: its ports, L2 and L3 neighbors.
fn held(env: &Env, h: usize) -> [BTreeSet<String>; 3] {
    let state = env.fleet.agents()[h].state();
    [
        state.port_ids().map(str::to_owned).collect(),
        state.neighbor_ids(NeighborType::L2).map(str::to_owned).collect(),
        state.neighbor_ids(NeighborType::L3).map(str::to_owned).collect(),
    ]
}

/// A host that crashes loses everything; back, it asks the control plane with
/// `AGENT_RESTARTED` and is sent exactly what it held (as its ports' own-host messages imply).
async fn crash_and_resync(env: &Env, mode: FanoutMode) {
    let h = 7;
    let before = held(env, h);
    assert!(!before[0].is_empty() && !before[1].is_empty());
    let crash = env.fleet.inject(&[h], fake_agent::AgentFault::Crash, 1);
    assert!(held(env, h).iter().all(BTreeSet::is_empty), "a crash empties the host");
    crash.clear();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while held(env, h) != before && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let after = held(env, h);
    assert_eq!(after[0], before[0], "ports after resync ({mode})");
    assert_eq!(after[1], before[1], "L2 after resync ({mode})");
    if mode == FanoutMode::Alcor {
        assert_eq!(after[2], before[2], "L3 after resync ({mode})");
    } else {
        // Incremental mode had sent L3 neighbors once through several paths; the resync lists
        // each of them again through the host's own ports, which reach the same set.
        assert!(before[2].is_subset(&after[2]), "L3 after resync ({mode})");
    }
}

async fn scenario(base: [u8; 4], mode: FanoutMode) -> (u64, u64) {
    let env = start(base, HOSTS, mode).await;
    let topo = build(&env).await;
    assert_agents(&env, &topo.ports, &BTreeSet::new(), mode);
    assert_eq!(env.fleet.stats().invalid, 0, "strict agents accepted every state");
    crash_and_resync(&env, mode).await;
    let (neighbors, remote) = env.cp.metrics().neighbor_totals();
    if mode == FanoutMode::Alcor {
        // In incremental mode every web port already reached these hosts as an L3 neighbor
        // through the router, so the remote-group rule adds nothing there.
        assert!(remote > 0, "remote-group members were sent");
    }

    // Delete ports 0-199, 400-599, …: half, leaving every host ports in both subnets and groups.
    let (gone, kept): (Vec<P>, Vec<P>) = topo
        .ports
        .iter()
        .cloned()
        .partition(|p| p.id[5..].parse::<usize>().unwrap() / 200 % 2 == 0);
    for p in &gone {
        let (status, v) = env
            .send(reqwest::Method::DELETE, &format!("/project/{PID}/ports/{}", p.id), None)
            .await;
        assert!(status.is_success(), "{v}");
    }
    let deleted: BTreeSet<String> = gone.iter().map(|p| p.id.clone()).collect();
    assert_agents(&env, &kept, &deleted, mode);
    let (_, list) = env
        .send(reqwest::Method::GET, &format!("/project/{PID}/ports"), None)
        .await;
    assert_eq!(list["ports"].as_array().unwrap().len(), kept.len());
    // Metrics are exposed as Prometheus text.
    let metrics = env
        .http
        .get(env.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("alcor_cp_stage_seconds_bucket"),
        "{}",
        &metrics[..metrics.len().min(500)]
    );
    assert!(metrics.contains(&format!(
        "alcor_cp_host_messages_total{{host=\"{}\"}}",
        env.fleet.agents()[0].ip()
    )));
    (neighbors, env.fleet.stats().messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alcor_and_incremental_fanout_program_every_agent_exactly() {
    let (alcor_neighbors, alcor_messages) = scenario([127, 4, 0, 1], FanoutMode::Alcor).await;
    let (inc_neighbors, inc_messages) = scenario([127, 4, 1, 1], FanoutMode::Incremental).await;
    // Same end state, far fewer neighbor states: the point of the incremental mode.
    assert!(
        inc_neighbors * 5 < alcor_neighbors,
        "incremental {inc_neighbors} vs alcor {alcor_neighbors}"
    );
    assert!(inc_messages <= alcor_messages);
}
