//! Port creates per second through the reference control plane alone: REST in, goal states
//! computed, pushed over gRPC to a fleet with cost model `none`, answered after every affected
//! host replied (Alcor's behaviour). 1,000 ports into one subnet, round-robin over the hosts,
//! 32 concurrent clients, for 10, 100 and 1,000 hosts in both fan-out modes.
//!
//! Run: `cargo bench -p benches --bench cp_throughput` (optionally `-- 10 100` for host counts).
//! Everything runs in this process on this machine's 2 cores: clients, control plane, agents.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use control_plane::{ControlPlane, ControlPlaneConfig, FanoutMode, PushConfig};
use fake_agent::{AgentConfig, Fleet, FleetConfig};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PORTS: usize = 1_000;
const CONCURRENCY: usize = 32;

async fn post(http: &reqwest::Client, url: String, body: Value) -> Value {
    let resp = http.post(url).json(&body).send().await.expect("control plane answers");
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.expect("json")
}

async fn run(hosts: usize, mode: FanoutMode, base: Ipv4Addr) {
    let fleet_cfg = FleetConfig {
        count: hosts,
        base_ip: base,
        port: 50001,
        connections_per_agent: 2,
        ..Default::default()
    };
    let fleet = Fleet::start(&fleet_cfg, AgentConfig::default()).await.expect("fleet");
    let cfg = ControlPlaneConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        fanout: mode,
        push: PushConfig {
            agent_port: 50001,
            ..Default::default()
        },
        ..Default::default()
    };
    let cp = ControlPlane::start(cfg).await.expect("control plane");
    let base_url = cp.base_url();
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let nodes: Vec<Value> = fleet
        .agents()
        .iter()
        .map(|a| json!({ "node_name": format!("host-{}", a.index()), "local_ip": a.ip().to_string() }))
        .collect();
    post(&http, format!("{base_url}/nodes/bulk"), json!({ "host_infos": nodes })).await;
    let vpc = post(&http, format!("{base_url}/project/p/vpcs"), json!({ "network": {} })).await;
    let vpc = vpc["network"]["id"].as_str().unwrap().to_owned();
    post(
        &http,
        format!("{base_url}/project/p/subnets"),
        json!({ "subnet": { "network_id": vpc, "cidr": "10.0.0.0/16" } }),
    )
    .await;

    let before = fleet.stats();
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(PORTS);
    for i in 0..PORTS {
        let permit = limit.clone().acquire_owned().await.unwrap();
        let (http, url, vpc) = (http.clone(), format!("{base_url}/project/p/ports"), vpc.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let body = json!({ "port": { "network_id": vpc, "binding:host_id": format!("host-{}", i % hosts),
                               "device_id": "vm", "device_owner": "compute:nova" } });
            let out = post(&http, url, body).await;
            assert_eq!(out["port"]["status"], "ACTIVE");
            drop(permit);
            t.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(PORTS);
    for t in tasks {
        latencies.push(t.await.unwrap());
    }
    let wall = started.elapsed();
    latencies.sort();
    let after = fleet.stats();
    let messages = (after.messages - after.empty_messages) - (before.messages - before.empty_messages);
    let bytes = after.bytes - before.bytes;
    let neighbors = after.neighbor_states - before.neighbor_states;
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{hosts:>5} hosts | {mode:<11} | {:>7.0} creates/s | p50 {:>8.2?} p99 {:>8.2?} | per create: {:>6.1} msgs {:>9.0} B {:>7.0} neighbor states",
        PORTS as f64 / wall.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        messages as f64 / PORTS as f64,
        bytes as f64 / PORTS as f64,
        neighbors as f64 / PORTS as f64,
    );
    cp.shutdown(Duration::from_secs(2)).await;
    fleet.shutdown(Duration::from_secs(2)).await;
}

fn main() {
    let mut hosts: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    if hosts.is_empty() {
        hosts = vec![10, 100, 1000];
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("{PORTS} port creates into one subnet, {CONCURRENCY} concurrent clients, agents with cost model none");
    for (i, h) in hosts.into_iter().enumerate() {
        for (j, mode) in [FanoutMode::Alcor, FanoutMode::Incremental].into_iter().enumerate() {
            let base = Ipv4Addr::new(127, 60 + (i * 2 + j) as u8, 0, 1);
            rt.block_on(run(h, mode, base));
        }
    }
}
