//! The push channels are pooled with a bound: a control plane holds connections to at most
//! `max_connected_hosts` hosts at once, whatever the number of hosts it pushes to, and a host
//! whose channels were closed for room is reached again on its next push.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;
use control_plane::{FanoutMode, PushConfig};
use serde_json::json;

/// Established TCP connections whose local end is an agent of `base` (the fleet's side).
fn agent_side_connections(base: [u8; 4], hosts: u8) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (ip, port) = f[1].split_once(':').unwrap();
            let ip = Ipv4Addr::from(u32::from_str_radix(ip, 16).unwrap().swap_bytes());
            let o = ip.octets();
            f[3] == "01"
                && u16::from_str_radix(port, 16).unwrap() == 50001
                && o[..3] == base[..3]
                && (base[3]..base[3] + hosts).contains(&o[3])
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_stay_within_the_bound_and_closed_hosts_are_reached_again() {
    let base = [127, 4, 40, 1];
    let push = PushConfig {
        agent_port: 50001,
        channels_per_host: 1,
        max_connected_hosts: Some(2),
        ..Default::default()
    };
    let env = start_with(base, 6, push, FanoutMode::Incremental).await;
    let (vpc, _) = env.vpc_with_subnet("10.0.0.0/24").await;
    let path = format!("/project/{PID}/ports");
    // Two rounds over six hosts, one port per host each round: each create reaches its own
    // host and every host already holding a port of the VPC.
    for round in 0..2 {
        for h in 0..6 {
            let body = json!({ "port": { "id": format!("p{round}-{h}"), "network_id": vpc,
                                         "binding:host_id": format!("host-{h}"),
                                         "device_id": "vm", "device_owner": "compute:nova" } });
            let r = env.post(&path, body).await;
            assert_eq!(r["port"]["status"], "ACTIVE", "{r}");
            assert!(env.cp.ncm().unwrap().connected_hosts() <= 2);
        }
    }
    // Every host holds its two ports and knows the other ten as neighbors.
    for a in env.fleet.agents() {
        let c = a.state().counts();
        assert_eq!((c.ports, c.l2_neighbors), (2, 10), "{}: {c:?}", a.ip());
    }
    assert!(
        env.cp.ncm().unwrap().reconnects() > 0,
        "six hosts through a pool of two reconnect"
    );
    // The closed channels are gone on the agents' side too.
    let mut open = usize::MAX;
    for _ in 0..50 {
        open = agent_side_connections(base, 6);
        if open <= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(open <= 2, "{open} connections to the agents");
    assert!(open >= 1, "the pool keeps its recent hosts");
}
