//! The V1 southbound path: unary PushNetworkResourceStates with list-based goal states.

use std::net::Ipv4Addr;

use alcor_schema::NeighborType;
use control_plane::{ControlPlane, ControlPlaneConfig, PushConfig, PushProtocol};
use fake_agent::{AgentConfig, Fleet, FleetConfig, Rpc, ValidationMode};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_pushes_program_strict_agents() {
    let fleet_cfg = FleetConfig {
        count: 2,
        base_ip: Ipv4Addr::new(127, 4, 40, 1),
        port: 50001,
        connections_per_agent: 4,
    };
    let fleet = Fleet::start(
        &fleet_cfg,
        AgentConfig {
            mode: ValidationMode::Strict,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut events = fleet.subscribe();
    let cfg = ControlPlaneConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        push: PushConfig {
            protocol: PushProtocol::V1,
            agent_port: 50001,
            ..Default::default()
        },
        ..Default::default()
    };
    let cp = ControlPlane::start(cfg).await.unwrap();
    let mut records = cp.subscribe();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |path: &str, body: Value| {
        let req = http.post(format!("{}{path}", cp.base_url())).json(&body);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    post(
        "/nodes/bulk",
        json!({ "host_infos": [
        { "node_name": "a", "local_ip": "127.4.40.1" }, { "node_name": "b", "local_ip": "127.4.40.2" } ] }),
    )
    .await;
    let vpc = post("/project/p/vpcs", json!({ "network": {} })).await["network"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    post(
        "/project/p/subnets",
        json!({ "subnet": { "network_id": vpc, "cidr": "10.0.0.0/24" } }),
    )
    .await;
    let mut ids = Vec::new();
    for host in ["a", "b"] {
        let out = post(
            "/project/p/ports",
            json!({ "port": { "network_id": vpc, "binding:host_id": host,
                        "device_id": "vm", "device_owner": "compute:nova" } }),
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
    assert!(r.hosts[0].ok && r.push > std::time::Duration::ZERO && r.encode > std::time::Duration::ZERO);
    let r = records.recv().await.unwrap();
    assert_eq!(
        r.hosts.len(),
        2,
        "the second port's host, and the first host for the new neighbor"
    );
    let e = events.recv().await.unwrap();
    assert_eq!(e.rpc, Rpc::PushNetworkResourceStates);
    assert_eq!(fleet.stats().invalid, 0);
    let a = fleet.agents()[0].state();
    assert_eq!(a.port_ids().collect::<Vec<_>>(), [ids[0].as_str()]);
    assert!(a.neighbor(NeighborType::L2, &ids[1]).is_some());
    let b = fleet.agents()[1].state();
    assert!(b.neighbor(NeighborType::L2, &ids[0]).is_some());
}
