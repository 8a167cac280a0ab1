//! Resident memory of a fleet of idle agents, and of the same fleet once every agent holds one
//! controller connection that has pushed one warm-up message (as NCM does on first contact).
//!
//! Run: `cargo bench -p benches --bench fleet_density` (optionally with counts: `-- 1000 10000`).
//!
//! An idle agent needs one open file (its listener). A connected agent needs two more here: the
//! server and the client end of its connection both live in this process, so the connected step
//! covers only as many agents as the open-files limit leaves room for (`CONNECTED_MAX`), and its
//! memory includes the client side: an upper bound for the agents alone.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use alcor_schema::GoalStateV2;
use alcor_schema::goal_state_provisioner_client::GoalStateProvisionerClient;
use fake_agent::{AgentConfig, Fleet, FleetConfig};

/// Agents connected in the second step: 3 descriptors each must fit beside the idle fleet
/// under this machine's 20,000 limit.
const CONNECTED_MAX: usize = 3_000;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

async fn measure(count: usize) {
    let base = rss_bytes();
    let started = Instant::now();
    let cfg = FleetConfig {
        count,
        base_ip: Ipv4Addr::new(127, 50, 0, 1),
        port: 50001,
        connections_per_agent: 0,
        ..Default::default()
    };
    let fleet = Fleet::start(&cfg, AgentConfig::default()).await.expect("fleet starts");
    let start_time = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_bytes() - base;

    let started = Instant::now();
    let connect = count.min(CONNECTED_MAX);
    let mut clients = Vec::with_capacity(connect);
    for agent in &fleet.agents()[..connect] {
        let mut c = GoalStateProvisionerClient::connect(format!("http://{}", agent.addr()))
            .await
            .expect("connect");
        let mut replies = c
            .push_goal_states_stream(tokio_stream::iter([GoalStateV2::default()]))
            .await
            .expect("push")
            .into_inner();
        replies.message().await.expect("reply");
        clients.push(c);
    }
    let connect_time = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_connection = (rss_bytes() - base).saturating_sub(idle) as f64 / connect as f64;
    println!(
        "{count:>6} agents | start {start_time:>8.1?} | idle {:>7.1} MiB ({:>5.1} KiB/agent) | \
         +{:>5.1} KiB per connected+warmed agent ({connect} connected in {connect_time:.1?}) | \
         projected all connected: {:>7.1} MiB",
        mib(idle),
        idle as f64 / 1024.0 / count as f64,
        per_connection / 1024.0,
        mib(idle + (per_connection * count as f64) as u64),
    );
    drop(clients);
    fleet.shutdown(Duration::from_secs(5)).await;
}

fn main() {
    // `cargo bench` passes `--bench`; anything numeric is a fleet size.
    let mut counts: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    if counts.is_empty() {
        counts = vec![1_000, 10_000];
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for count in counts {
        // A fresh process state would be cleaner; measuring deltas on one process keeps it simple
        // and each fleet is shut down before the next.
        rt.block_on(measure(count));
    }
}
