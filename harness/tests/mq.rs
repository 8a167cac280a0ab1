//! The MQ southbound in real runs: the binary, the embedded control plane publishing to a real
//! nats-server (started by the run), a fleet consuming from it. Goal states are measured as on
//! the gRPC path, the controller does not wait for slow hosts, and a host that crashes misses
//! nothing. Without nats-server the tests say they skipped, unless ALCOR_SCALE_REQUIRE_NATS=1
//! (as `.ci/run` sets).

mod common;

use common::*;
use serde_json::Value;

fn have_nats() -> bool {
    if broker::server::binary().is_some() {
        return true;
    }
    if std::env::var("ALCOR_SCALE_REQUIRE_NATS").as_deref() == Ok("1") {
        panic!("ALCOR_SCALE_REQUIRE_NATS=1, but nats-server is not installed (Debian: nats-server)");
    }
    eprintln!("skipped: nats-server is not installed (Debian: nats-server)");
    false
}

/// Local brokers' store folders made since `since` and left behind.
fn stores_left(since: std::time::SystemTime) -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("alcor-scale-nats-"))
        .filter(|e| e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= since))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Runs a short MQ scenario with `extra` TOML appended; returns the summary, the exit code and
/// the run folder.
fn run_mq(name: &str, base_ip: &str, extra: &str) -> (Value, Option<i32>, std::path::PathBuf) {
    let dir = tmp(&format!("mq-{name}"));
    let file = dir.join("s.toml");
    std::fs::write(
        &file,
        format!(
            r#"name = "mq-{name}"
seed = 9
slo = ["neighbor_converged.p99 < 3s", "error_rate < 1%"]

[agents]
count = 8
base_ip = "{base_ip}"

[topology]
ports = 80

[setup]
model = "open"
rate = 400

[[phases]]
name = "load"
model = "open"
rate = 25
duration = "5s"
mix = {{ create = 8, update = 1, delete = 1 }}

[measure]
correlation_timeout = "10s"

[target]
southbound = "mq"

[target.broker]
ack_wait = "1s"
storage = "memory"
{extra}
"#
        ),
    )
    .unwrap();
    let (out, s) = run_file(&file, &dir.join("run"));
    let s = s.unwrap_or_else(|| panic!("{name}: no summary: {}", text(&out)));
    assert!(s["broker"].is_object(), "{name}: {}", text(&out));
    // Every operation one outcome, the outcomes adding up.
    outcomes_add_up(&s);
    (s, out.status.code(), dir.join("run"))
}

fn stat(s: &Value, metric: &str, k: &str) -> f64 {
    s["metrics"][metric][k].as_f64().unwrap_or(0.0)
}

#[test]
fn goal_states_through_a_real_broker_are_measured_as_pushed_ones_are() {
    let _g = serial();
    if !have_nats() {
        return;
    }
    let started = std::time::SystemTime::now();
    let (s, code, run_dir) = run_mq("plain", "127.7.8.1", "grouping = \"host\"");
    assert_eq!(code, Some(0), "{}", s["slo"]);
    let b = &s["broker"];
    assert_eq!(
        (b["kind"].as_str(), b["embedded"].as_bool()),
        (Some("nats-jetstream"), Some(true))
    );
    assert_eq!(b["grouping"], "host");
    assert!(b["consumed"].as_u64().unwrap() > 100, "{b}");
    assert!(
        b["cpu_s"].as_f64().unwrap() > 0.0,
        "the local broker's CPU is measured: {b}"
    );
    // Correlation unchanged: every create programmed at its own host and converged.
    let creates = stat(&s, "api.create", "count");
    assert!(creates > 50.0);
    assert_eq!(stat(&s, "port_programmed", "count"), creates, "{}", s["metrics"]);
    assert_eq!(stat(&s, "neighbor_converged", "count"), creates);
    // Each consumed message's wait in the broker.
    assert!(stat(&s, "mq_waited", "count") > 0.0 && stat(&s, "mq_waited", "p50") > 0.0);
    assert!(s["metrics"]["mq_lag"].is_object());
    let ops = s["ledger"]["operations"].as_u64().unwrap();
    assert_eq!(s["ledger"]["outcomes"]["ok"].as_u64(), Some(ops), "{}", s["ledger"]);
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(html.contains("id=\"broker\""), "the report has a broker section");
    assert!(html.contains("id=\"broker-hosts\""), "and the hosts furthest behind");
    // Every host's lag and longest wait, per host.
    let hosts = std::fs::read_to_string(run_dir.join("hosts.csv")).unwrap();
    assert!(hosts.starts_with("host,messages,bytes,neighbors,lag_max,waited_max_us\n"));
    assert!(
        hosts.lines().skip(1).all(|l| l
            .split(',')
            .nth(5)
            .is_some_and(|w| w.parse::<u64>().is_ok_and(|w| w > 0))),
        "{hosts}"
    );
    // The run's broker was stopped and its store removed.
    assert!(run_dir.join("summary.json").exists());
    let left = stores_left(started);
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_host_that_crashes_misses_no_goal_state_it_was_sent_while_down() {
    let _g = serial();
    if !have_nats() {
        return;
    }
    let (s, code, _) = run_mq(
        "crash",
        "127.7.9.1",
        "\n[[faults]]\nat = \"1s\"\nkind = \"crash\"\nduration = \"1500ms\"\nhosts = 0.25\n",
    );
    assert_eq!(code, Some(0), "{}", s["slo"]);
    // On the gRPC path these hosts' ports fail (tests/faults.rs); here the broker held their
    // goal states until they were back.
    let ops = s["ledger"]["operations"].as_u64().unwrap();
    assert_eq!(s["ledger"]["outcomes"]["ok"].as_u64(), Some(ops), "{}", s["ledger"]);
    assert_eq!(s["faults"][0]["hosts"], 2);
    // Some port waited for its host to come back: at least most of the crash.
    assert!(
        stat(&s, "port_programmed", "max") >= 1_000_000.0,
        "{}",
        s["metrics"]["port_programmed"]
    );
    assert!(
        stat(&s, "mq_waited", "max") >= 1_000_000.0,
        "{}",
        s["metrics"]["mq_waited"]
    );
}

#[test]
fn slow_hosts_lag_behind_without_holding_back_the_api() {
    let _g = serial();
    if !have_nats() {
        return;
    }
    let (s, code, _) = run_mq(
        "slow",
        "127.7.10.1",
        "max_ack_pending = 2\n\n[[faults]]\nat = \"1s\"\nkind = \"slow\"\nduration = \"2s\"\nhosts = 0.25\ndelay = \"500ms\"\n",
    );
    assert_eq!(code, Some(0), "{}", s["slo"]);
    let ops = s["ledger"]["operations"].as_u64().unwrap();
    assert_eq!(s["ledger"]["outcomes"]["ok"].as_u64(), Some(ops), "{}", s["ledger"]);
    // Messages piled up in the broker for the slow hosts...
    let b = &s["broker"];
    assert!(b["max_lag"].as_u64().unwrap() > 0, "{b}");
    let slow: Vec<&str> = s["faults"][0]["host_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert!(slow.contains(&b["max_lag_host"].as_str().unwrap()), "{b} {slow:?}");
    // ...and ports on them were late, while the control plane answered without waiting.
    let programmed = stat(&s, "port_programmed", "max");
    assert!(programmed >= 500_000.0, "{}", s["metrics"]["port_programmed"]);
    assert!(stat(&s, "api", "max") < programmed / 2.0, "{}", s["metrics"]["api"]);
}

#[test]
fn bad_broker_settings_are_named_before_anything_runs() {
    let file = scenario("mq-fanout");
    let f = file.to_str().unwrap();
    for (set, needle) in [
        (
            "target.broker.url=\"pulsar://127.0.0.1:6650\"",
            "target.broker.url: `pulsar://127.0.0.1:6650`: only nats://",
        ),
        ("target.broker.stream=\"a.b\"", "target.broker.stream"),
        ("target.broker.max_bytes=10", "target.broker.max_bytes: at least 1 MiB"),
        ("target.broker.nope=1", "nope"),
        ("target.broker.grouping=\"subnet\"", "grouping"),
        (
            "agents.remote=[\"127.0.0.1:50100\"]",
            "target.broker.url: fleets run apart",
        ),
    ] {
        rejects(&["validate", f, "--set", set], needle);
    }
    rejects(
        &[
            "validate",
            f,
            "--set",
            "target.kind=\"alcor\"",
            "--set",
            "target.url=\"http://127.0.0.1:9009\"",
        ],
        "target.southbound: `mq` is for kind",
    );
}

#[test]
fn a_fleet_run_apart_consumes_from_the_broker_the_run_publishes_to() {
    let _g = serial();
    if !have_nats() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tmp("mq-remote");
    let nats = rt
        .block_on(broker::server::LocalNats::start(&dir.join("broker")))
        .unwrap();
    let fleet = spawn_fleet(&[
        "--count",
        "6",
        "--base-ip",
        "127.7.11.1",
        "--port",
        "50212",
        "--duration",
        "120s",
        "--broker",
        nats.url(),
        "--broker-grouping",
        "host",
    ]);
    let file = scenario("mq-fanout");
    let (remote, url) = (
        format!("agents.remote=[\"{}\"]", fleet.events),
        format!("target.broker.url=\"{}\"", nats.url()),
    );
    let out = dir.join("run");
    let o = run(&[
        "run",
        file.to_str().unwrap(),
        "--set",
        &remote,
        "--set",
        &url,
        "--set",
        "target.broker.grouping=\"host\"",
        "--set",
        "phases[0].duration=\"3s\"",
        "--set",
        "slo=[\"error_rate < 1%\"]",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let s: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    // The broker was the user's: not started, not measured, not stopped by the run.
    assert_eq!(s["broker"]["embedded"], false, "{}", s["broker"]);
    assert!(s["broker"]["cpu_s"].is_null());
    assert!(
        s["broker"]["consumed"].as_u64().unwrap() > 0,
        "the fleet's events carry the broker's waits"
    );
    let creates = stat(&s, "api.create", "count");
    assert!(
        creates > 0.0 && stat(&s, "neighbor_converged", "count") == creates,
        "{}",
        s["metrics"]
    );
    assert!(
        rt.block_on(tokio::net::TcpStream::connect(nats.url().trim_start_matches("nats://")))
            .is_ok()
    );
    drop(fleet);
    rt.block_on(nats.stop(std::time::Duration::from_secs(5)));
}
