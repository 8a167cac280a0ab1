//! A control plane restarted in place: down for a while, then serving the same addresses with
//! its state kept or dropped, and reaching its agents again.

mod common;

use std::time::Duration;

use common::*;
use control_plane::{FanoutMode, RestartState};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_refuses_while_down_then_serves_with_state_kept_or_dropped() {
    let env = start([127, 4, 40, 1], 2, FanoutMode::Alcor).await;
    let (vpc, _) = env.vpc_with_subnet("10.0.0.0/24").await;
    let path = format!("/project/{PID}/ports");
    let port = |i: usize| {
        json!({ "port": { "id": format!("p{i}"), "network_id": vpc, "binding:host_id": format!("host-{}", i % 2),
                          "device_id": "vm", "device_owner": "compute:nova" } })
    };
    env.post(&path, port(0)).await;
    assert_eq!(env.fleet.agents()[0].state().counts().ports, 1);

    let restart = env
        .cp
        .restart(RestartState::Keep, Duration::from_millis(500), Duration::from_secs(1));
    let probe = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        env.http.get(env.url(&path)).send().await
    };
    let (restarted, while_down) = tokio::join!(restart, probe);
    restarted.unwrap();
    assert!(while_down.unwrap_err().is_connect(), "nothing listens while it is down");
    // Kept: the port is there, and pushes reach the agents over new connections.
    let (_, list) = env.send(reqwest::Method::GET, &path, None).await;
    assert_eq!(list["ports"].as_array().unwrap().len(), 1);
    let created = env.post(&path, port(1)).await;
    assert_eq!(created["port"]["status"], "ACTIVE", "{created}");
    assert_eq!(env.fleet.agents()[1].state().counts().ports, 1);

    // Dropped: nothing is left, not even the nodes, so a create for a host fails.
    env.cp
        .restart(RestartState::Drop, Duration::ZERO, Duration::from_secs(1))
        .await
        .unwrap();
    let (_, list) = env.send(reqwest::Method::GET, &path, None).await;
    assert_eq!(list["ports"].as_array().unwrap().len(), 0);
    let (status, _) = env.send(reqwest::Method::POST, &path, Some(port(2))).await;
    assert!(status.is_client_error(), "{status}");
}
