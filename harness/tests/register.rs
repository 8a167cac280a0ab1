//! Runs against a control plane that outlives them (a real Alcor is one): nodes of the same
//! agents already exist, and `[agents] register` decides what happens; what a run registered is
//! removed at its end.

mod common;

use common::*;
use control_plane::{ControlPlane, ControlPlaneConfig};
use harness::register::NodeInfo;
use reports::summary::Summary;

/// The nodes ci-smoke's 20 agents at `base` would be, under other names (an earlier run's).
fn earlier_nodes(base: [u8; 4]) -> Vec<NodeInfo> {
    fake_agent::fleet::host_ips(base.into(), 20)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, ip)| NodeInfo::named(format!("earlier-run-{i}"), ip, 50001))
        .collect()
}

#[test]
fn nodes_that_exist_are_replaced_reused_or_refused_and_a_run_removes_its_own() {
    let _serial = serial();
    let dir = tmp("register");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cp = rt
        .block_on(ControlPlane::start(ControlPlaneConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        }))
        .unwrap();
    let base = cp.base_url().trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let nodes = |path: &str| -> serde_json::Value {
        rt.block_on(async {
            client
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    };
    let count = || nodes("/nodes")["nodeInfos"].as_array().map_or(0, Vec::len);
    let seed = |ip: [u8; 4]| {
        let body = serde_json::json!({ "host_infos": earlier_nodes(ip) });
        let st = rt.block_on(async {
            client
                .post(format!("{base}/nodes/bulk"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        });
        assert!(st.is_success(), "{st}");
    };
    let url = format!("target.url={base}");
    let run = |name: &str, ip: &str, mode: &str| {
        let out = dir.join(name);
        let reg = format!("agents.register=\"{mode}\"");
        let o = smoke(ip, &["target.kind=alcor", &url, &reg], &out, &[]);
        (o, out)
    };

    // fail: the run stops and says how to go on.
    seed([127, 5, 50, 1]);
    let (o, out) = run("fail", "127.5.50.1", "fail");
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let why = Summary::read(&out).unwrap().partial_reason.unwrap_or_default();
    assert!(
        why.contains("exists") && why.contains("register = \"replace\""),
        "{why}"
    );

    // reuse: the same agents' nodes are kept under their names; ports are bound to them, and the
    // run leaves them, since it did not make them.
    let (o, _) = run("reuse", "127.5.50.1", "reuse");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(count(), 20);
    assert_eq!(
        nodes("/nodes/00000000-0000-4000-8000-00007f053201")["host_info"]["node_name"],
        "earlier-run-0"
    );

    // replace (the default): the earlier nodes go, the run's own come and go with it.
    let (o, _) = run("replace", "127.5.50.1", "replace");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(count(), 0, "the run removed the nodes it registered");

    // Two runs in a row need nothing: the first removed its nodes.
    let (o, _) = run("again", "127.5.50.1", "fail");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(count(), 0);
    rt.block_on(cp.shutdown(std::time::Duration::from_secs(2)));
    std::fs::remove_dir_all(&dir).unwrap();
}
