//! The whole stack as separate processes: `alcor-scale control-plane`, then `alcor-scale agents`
//! registering with it, then a port created over REST reaching the agents.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_alcor-scale");

fn spawn(args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("alcor-scale starts");
    let out = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, out)
}

async fn line_with(lines: &mut Lines<BufReader<ChildStdout>>, needle: &str) -> String {
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("stdout ended before `{needle}`");
    })
    .await
    .unwrap_or_else(|_| panic!("no `{needle}` within 30 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_created_over_rest_reaches_agents_in_another_process() {
    let (mut cp, mut cp_out) = spawn(&[
        "control-plane",
        "--listen",
        "127.3.2.1:9009",
        "--fanout",
        "incremental",
        "--duration",
        "60s",
    ]);
    line_with(&mut cp_out, "control plane listening on http://127.3.2.1:9009").await;
    let (mut agents, mut ag_out) = spawn(&[
        "agents",
        "--count",
        "3",
        "--base-ip",
        "127.3.3.1",
        "--mode",
        "strict",
        "--events",
        "127.0.0.1:0",
        "--register-with",
        "http://127.3.2.1:9009",
        "--duration",
        "60s",
    ]);
    let events_line = line_with(&mut ag_out, "events: JSON lines on ").await;
    line_with(&mut ag_out, "registered 3 nodes").await;
    let mut events = BufReader::new(
        TcpStream::connect(events_line.rsplit(' ').next().unwrap())
            .await
            .unwrap(),
    )
    .lines();
    events.next_line().await.unwrap(); // hello

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |path: &str, body: Value| {
        let req = http.post(format!("http://127.3.2.1:9009{path}")).json(&body);
        async move {
            let resp = req.send().await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
            resp.json::<Value>().await.unwrap()
        }
    };
    let vpc = post("/project/demo/vpcs", json!({ "network": { "name": "v" } })).await;
    let vpc = vpc["network"]["id"].as_str().unwrap().to_owned();
    post(
        "/project/demo/subnets",
        json!({ "subnet": { "network_id": vpc, "cidr": "10.0.0.0/24" } }),
    )
    .await;
    let mut ids = Vec::new();
    for host in ["host-00000", "host-00001"] {
        let port = post(
            "/project/demo/ports",
            json!({ "port": { "network_id": vpc, "binding:host_id": host, "device_id": "vm", "device_owner": "compute:nova" } }),
        )
        .await;
        assert_eq!(port["port"]["status"], "ACTIVE", "{port}");
        ids.push(port["port"]["id"].as_str().unwrap().to_owned());
    }
    // Three messages: the first port to its host; the second to its host (with the first as a
    // neighbor); the second as a neighbor to the first port's host. Warm-ups are empty.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(10), events.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let e: Value = serde_json::from_str(&line).unwrap();
        if e["counts"]["port"].as_u64().unwrap() + e["counts"]["neighbor"].as_u64().unwrap() > 0 {
            assert_eq!(
                e["outcomes"]["invalid_arg"], 0,
                "strict agents accept the control plane's states: {e}"
            );
            seen.push(e);
        }
    }
    assert_eq!(seen[0]["host_ip"], "127.3.3.1");
    assert_eq!(seen[0]["port_ids"][0], ids[0]);
    let second: Vec<&Value> = seen[1..].iter().collect();
    assert!(
        second
            .iter()
            .any(|e| e["host_ip"] == "127.3.3.2" && e["port_ids"][0] == ids[1] && e["neighbor_ids"][0] == ids[0])
    );
    assert!(
        second
            .iter()
            .any(|e| e["host_ip"] == "127.3.3.1" && e["neighbor_ids"][0] == ids[1])
    );

    for child in [&mut cp, &mut agents] {
        let pid = child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success());
    }
    assert!(
        line_with(&mut cp_out, "stopped after")
            .await
            .contains("2 neighbor states pushed")
    );
}
