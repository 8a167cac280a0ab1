//! `alcor-scale agents` as a user runs it: a real process, real gRPC, real HTTP.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alcor_schema::goal_state_provisioner_client::GoalStateProvisionerClient;
use axum::routing::post;
use axum::{Json, Router};
use fake_agent::sample;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_alcor-scale");

/// A stand-in node manager on loopback that keeps every `/nodes/bulk` body it receives.
async fn node_manager() -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    let app = Router::new().route(
        "/nodes/bulk",
        post(move |Json(body): Json<Value>| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(body.clone());
                (axum::http::StatusCode::CREATED, Json(body))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn line_with(lines: &mut Lines<BufReader<ChildStdout>>, needle: &str) -> String {
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("stdout ended before a line with `{needle}`");
    });
    found
        .await
        .unwrap_or_else(|_| panic!("no line with `{needle}` within 30 s"))
}

fn spawn(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("alcor-scale starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_register_serve_export_and_stop_on_ctrl_c() {
    let (url, seen) = node_manager().await;
    let mut child = spawn(&[
        "agents",
        "--count",
        "3",
        "--base-ip",
        "127.3.0.1",
        "--cost-model",
        "aca-2021",
        "--register-with",
        &url,
        "--events",
        "127.0.0.1:0",
        "--duration",
        "60s",
    ]);
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = line_with(&mut out, "agents listening").await;
    assert!(
        listening.contains("3 agents listening on 127.3.0.1:50001 … 127.3.0.3:50001"),
        "{listening}"
    );
    assert!(listening.contains("aca-2021"), "{listening}");
    let events_line = line_with(&mut out, "events: JSON lines on ").await;
    let events_addr = events_line.rsplit(' ').next().unwrap().to_owned();
    line_with(&mut out, "registered 3 nodes").await;

    let bodies = seen.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let nodes = bodies[0]["host_infos"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[2]["node_name"], "host-00002");
    assert_eq!(nodes[2]["local_ip"], "127.3.0.3");
    assert_eq!(nodes[2]["data-path-ip"], "127.3.0.3");
    assert_eq!(nodes[2]["server_port"], 50001);

    let mut events = BufReader::new(TcpStream::connect(&events_addr).await.unwrap()).lines();
    let hello: Value = serde_json::from_str(&events.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(hello["agents"], 3);

    // Push as a controller would, to the second agent's registered address.
    let mut client = GoalStateProvisionerClient::connect("http://127.3.0.2:50001")
        .await
        .unwrap();
    let gs = sample::port_joining_subnet("127.3.0.2".parse().unwrap(), 200, 3, 2);
    let mut replies = client
        .push_goal_states_stream(tokio_stream::iter([gs]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    // aca-2021 for 1 port + 200 neighbors: about 13 ms (the curve's first point is 14 ms at 220).
    assert!(
        (10_000..20_000).contains(&reply.message_total_operation_time),
        "{reply:?}"
    );
    let event: Value = serde_json::from_str(&events.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(event["host_ip"], "127.3.0.2");
    assert_eq!(event["counts"]["neighbor"], 200);

    // Ctrl-C: a clean stop with a summary.
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let summary = line_with(&mut out, "stopped after").await;
    assert!(summary.contains(": 1 messages"), "{summary}");
    assert!(summary.contains("200 neighbor states"), "{summary}");
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn bad_usage_exits_2_and_says_why() {
    for (args, expect) in [
        (
            // 192.0.2.0/24 is documentation-only: no host has it.
            vec!["agents", "--base-ip", "192.0.2.1", "--duration", "1s"],
            "not on this host",
        ),
        (
            vec!["agents", "--register-with", "ftp://127.0.0.1:9007", "--duration", "1s"],
            "only http:// and https://",
        ),
        (vec!["agents", "--cost-model", "linear:port=3"], "unknown key `port`"),
        (vec!["agents", "--mode", "picky"], "invalid validation mode `picky`"),
    ] {
        let out = Command::new(BIN).args(&args).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_failing_node_manager_is_reported() {
    let app = Router::new().route(
        "/nodes/bulk",
        post(|| async { (axum::http::StatusCode::BAD_REQUEST, "node_name missing") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let out = Command::new(BIN)
        .args([
            "agents",
            "--count",
            "2",
            "--base-ip",
            "127.3.1.1",
            "--no-events",
            "--register-with",
            &url,
            "--duration",
            "30s",
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("400 Bad Request") && stderr.contains("node_name missing"),
        "{stderr}"
    );
}

/// A fleet whose stdout reader went away (a closed pipe) still runs to its end and exits 0:
/// its closing summary must not kill it.
#[test]
fn agents_run_on_when_their_stdout_reader_leaves() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(BIN)
        .args([
            "agents",
            "--count",
            "2",
            "--base-ip",
            "127.3.9.1",
            "--events",
            "127.0.0.1:0",
            "--duration",
            "2s",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("events: JSON lines") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "stdout ended early");
    }
    drop(out);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_fleet_run_apart_injects_its_faults_file_and_says_each_window() {
    let dir = std::env::temp_dir().join(format!("agents-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("faults.toml");
    std::fs::write(
        &file,
        "seed = 5\n\n[[faults]]\nkind = \"crash\"\nat = \"300ms\"\nduration = \"700ms\"\nhosts = [\"127.6.40.2\"]\n\n[[faults]]\nkind = \"slow\"\nat = \"200ms\"\nduration = \"500ms\"\nhosts = 0.5\ndelay = \"20ms\"\n",
    )
    .unwrap();
    let mut child = spawn(&[
        "agents",
        "--count",
        "4",
        "--base-ip",
        "127.6.40.1",
        "--port",
        "50001",
        "--no-events",
        "--faults",
        file.to_str().unwrap(),
        "--duration",
        "2s",
    ]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // While crashed, the host refuses connections; its neighbors do not.
    line_with(&mut lines, "agents listening").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        TcpStream::connect("127.6.40.2:50001").await.is_err(),
        "a crashed host refuses"
    );
    assert!(TcpStream::connect("127.6.40.1:50001").await.is_ok());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        TcpStream::connect("127.6.40.2:50001").await.is_ok(),
        "the crashed host is back"
    );
    // The windows are said when the fleet stops.
    let mut said = String::new();
    while let Ok(Some(l)) = lines.next_line().await {
        said.push_str(&l);
        said.push('\n');
    }
    assert!(said.contains("fault crash  on 1 host(s): 0.3–1.0 s"), "{said}");
    assert!(said.contains("fault slow +20ms on 2 host(s): 0.2–0.7 s"), "{said}");
    assert!(child.wait().await.unwrap().success());

    // A fault that is not the fleet's is refused, naming the file, field and line.
    std::fs::write(&file, "[[faults]]\nkind = \"restart\"\nat = \"1s\"\n").unwrap();
    let out = Command::new(BIN)
        .args([
            "agents",
            "--count",
            "1",
            "--no-events",
            "--faults",
            file.to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("faults.toml:2: faults[0].kind"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
