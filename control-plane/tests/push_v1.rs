//! The V1 southbound path: unary PushNetworkResourceStates with list-based goal states.

mod common;

use std::time::Duration;

use alcor_schema::NeighborType;
use common::*;
use control_plane::{FanoutMode, PushConfig, PushProtocol};
use fake_agent::Rpc;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_pushes_program_strict_agents() {
    let push = PushConfig {
        protocol: PushProtocol::V1,
        agent_port: 50001,
        ..Default::default()
    };
    let env = start_with([127, 4, 40, 1], 2, push, FanoutMode::Alcor).await;
    let mut events = env.fleet.subscribe();
    let mut records = env.cp.subscribe();
    let (vpc, _) = env.vpc_with_subnet("10.0.0.0/24").await;
    let mut ids = Vec::new();
    for host in ["host-0", "host-1"] {
        let out = env
            .post(
                &format!("/project/{PID}/ports"),
                json!({ "port": { "network_id": vpc, "binding:host_id": host, "device_id": "vm", "device_owner": "compute:nova" } }),
            )
            .await;
        assert_eq!(out["port"]["status"], "ACTIVE", "{out}");
        ids.push(out["port"]["id"].as_str().unwrap().to_owned());
    }
    // The harness's view: one record per request, stage by stage, with every host's result.
    let r = records.recv().await.unwrap();
    assert_eq!(
        (r.op, r.port_ids.as_slice()),
        ("port_create", std::slice::from_ref(&ids[0]))
    );
    assert_eq!(r.hosts.len(), 1);
    assert!(r.hosts[0].ok && r.push > Duration::ZERO && r.encode > Duration::ZERO);
    let r = records.recv().await.unwrap();
    assert_eq!(
        r.hosts.len(),
        2,
        "the second port's host, and the first host for the new neighbor"
    );
    let e = events.recv().await.unwrap();
    assert_eq!(e.rpc, Rpc::PushNetworkResourceStates);
    assert_eq!(env.fleet.stats().invalid, 0);
    let a = env.fleet.agents()[0].state();
    assert_eq!(a.port_ids().collect::<Vec<_>>(), [ids[0].as_str()]);
    assert!(a.neighbor(NeighborType::L2, &ids[1]).is_some());
    let b = env.fleet.agents()[1].state();
    assert!(b.neighbor(NeighborType::L2, &ids[0]).is_some());
}
