//! Incremental fan-out coalesces concurrent updates for the same host into fewer messages,
//! and every request still gets its own result.

mod common;

use common::*;
use control_plane::FanoutMode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_on_one_host_are_merged_and_all_programmed() {
    let env = start([127, 4, 30, 1], 2, FanoutMode::Incremental).await;
    let (vpc, _) = env.vpc_with_subnet("10.0.0.0/24").await;
    let before = env.fleet.stats().messages;
    let path = format!("/project/{PID}/ports");
    let creates = (0..20).map(|i| {
        let body = json!({ "port": { "id": format!("p{i}"), "network_id": vpc, "binding:host_id": "host-0",
                                     "device_id": "vm", "device_owner": "compute:nova" } });
        env.post(&path, body)
    });
    let results = futures_util::future::join_all(creates).await;
    for r in &results {
        assert_eq!(r["port"]["status"], "ACTIVE", "{r}");
    }
    let merged: u64 = results
        .iter()
        .map(|r| r["dataplane"]["results"][0]["merged"].as_u64().unwrap())
        .max()
        .unwrap();
    let messages = env.fleet.stats().messages - before;
    assert!(
        merged > 1 && messages < 20,
        "{messages} messages for 20 creates, at most {merged} merged"
    );
    let state = env.fleet.agents()[0].state();
    assert_eq!(state.counts().ports, 20);
    assert_eq!(state.counts().dhcp, 20);
}
