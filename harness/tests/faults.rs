//! Every fault kind in a real run (the binary, the embedded control plane, a fleet on
//! loopback): whatever the fault, every operation ends in exactly one outcome and the outcomes
//! add up to the operations; each fault is recorded, undone, and leaves the evidence it should.

mod common;

use common::*;
use serde_json::Value;

/// Runs a short scenario whose one fault is `fault` (TOML lines of a `[[faults]]` entry);
/// returns the summary.
fn run_with(name: &str, base_ip: &str, fault: &str) -> Value {
    let _g = serial();
    let dir = tmp(&format!("faults-{name}"));
    let file = dir.join("s.toml");
    std::fs::write(
        &file,
        format!(
            r#"name = "fault-{name}"
seed = 3
slo = ["port_programmed.p99 < 200ms"]

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
correlation_timeout = "4s"

[[faults]]
at = "1s"
{fault}
"#
        ),
    )
    .unwrap();
    let (out, s) = run_file(&file, &dir.join("run"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{name}: the run must end with a verdict: {stderr}"
    );
    let s = s.unwrap_or_else(|| panic!("{name}: no summary: {stderr}"));
    assert!(dir.join("run/report.html").exists());
    let report = std::fs::read_to_string(dir.join("run/report.html")).unwrap();
    assert!(
        report.contains("id=\"faults\"") && report.contains("id=\"outcomes\""),
        "{name}"
    );

    // The ledger: one outcome per operation, adding up to what was sent and what was due.
    let l = &s["ledger"];
    let ops = outcomes_add_up(&s);
    assert_eq!(l["settled"].as_u64().unwrap(), ops, "{name}: {l}");
    assert_eq!(l["open"], 0, "{name}");
    assert_eq!(l["double_counted"], 0, "{name}");
    let requests = s["throughput"]["requests"].as_u64().unwrap();
    let unsent = s["generator"]["unsent"].as_u64().unwrap();
    assert_eq!(
        ops,
        requests + unsent,
        "{name}: operations are the requests sent and those due"
    );
    assert!(ops >= 100, "{name}: {ops} operations");
    // The fault was recorded with its window, and undone.
    let f = &s["faults"][0];
    let (start, end) = (f["start_s"].as_f64().unwrap(), f["end_s"].as_f64().unwrap());
    assert!(end >= start, "{name}: {f}");
    s
}

fn outcome(s: &Value, k: &str) -> u64 {
    s["ledger"]["outcomes"][k].as_u64().unwrap_or(0)
}

fn max_ms(s: &Value, metric: &str) -> f64 {
    s["metrics"][metric]["max"].as_f64().unwrap_or(0.0) / 1000.0
}

#[test]
fn a_slow_host_delays_its_ports_and_recovery_is_measured() {
    let s = run_with(
        "slow",
        "127.7.1.1",
        "kind = \"slow\"\nduration = \"1500ms\"\nhosts = 0.25\ndelay = \"300ms\"",
    );
    assert!(max_ms(&s, "port_programmed") >= 300.0, "{}", s["metrics"]);
    assert_eq!(s["faults"][0]["hosts"], 2);
    assert!(s["faults"][0]["recovery_s"].is_number(), "{}", s["faults"][0]);
}

#[test]
fn failing_hosts_fail_their_ports_as_agent_errors_at_those_hosts() {
    let s = run_with(
        "error",
        "127.7.2.1",
        "kind = \"error\"\nduration = \"1500ms\"\nhosts = 0.25\nshare = 1.0",
    );
    assert!(outcome(&s, "agent_error") > 0, "{}", s["ledger"]);
    let failing: Vec<String> = s["faults"][0]["host_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect();
    // Agent errors are charged to the hosts in the fault.
    for h in s["ledger"]["by_host"].as_array().unwrap() {
        if h["by_reason"]["agent_error"].as_u64().unwrap_or(0) > 0 {
            assert!(failing.contains(&h["host"].as_str().unwrap().to_owned()), "{h}");
        }
    }
}

#[test]
fn blackholed_and_partitioned_hosts_hold_messages_until_the_fault_ends() {
    for (name, ip) in [("blackhole", "127.7.3.1"), ("partition", "127.7.4.1")] {
        let s = run_with(
            name,
            ip,
            &format!("kind = \"{name}\"\nduration = \"1500ms\"\nhosts = 0.25"),
        );
        // Held messages either arrive late or never: either way it shows.
        let late = max_ms(&s, "neighbor_converged") >= 1000.0 || max_ms(&s, "api") >= 1000.0;
        let failed = outcome(&s, "ok") < s["ledger"]["operations"].as_u64().unwrap();
        assert!(late || failed, "{name}: {} {}", s["metrics"], s["ledger"]);
    }
}

#[test]
fn reset_connections_are_survived_and_accounted() {
    let s = run_with(
        "reset",
        "127.7.5.1",
        "kind = \"reset\"\nduration = \"1500ms\"\nhosts = 0.25",
    );
    assert!(outcome(&s, "ok") > 0);
}

#[test]
fn a_crashed_host_is_sent_its_state_again_when_it_returns() {
    let s = run_with(
        "crash",
        "127.7.6.1",
        "kind = \"crash\"\nduration = \"1500ms\"\nhosts = 0.25",
    );
    let r = &s["faults"][0]["resync"];
    assert_eq!(r["hosts"], 2, "{r}");
    assert_eq!(r["complete"], 2, "every crashed host held its full state again: {r}");
    assert_eq!(r["missing"], 0);
    assert!(r["expected"].as_u64().unwrap() > 0);
    assert!(r["max_s"].as_f64().unwrap() < 4.0, "{r}");
}

#[test]
fn a_control_plane_restart_and_a_command_are_recorded() {
    let s = run_with(
        "restart",
        "127.7.7.1",
        "kind = \"restart\"\nduration = \"1s\"\nstate = \"keep\"",
    );
    // Requests while it was down found nothing listening.
    assert!(outcome(&s, "api_transport") > 0, "{}", s["ledger"]);
    assert!(s["faults"][0]["end_s"].as_f64().unwrap() - s["faults"][0]["start_s"].as_f64().unwrap() >= 1.0);
    let s = run_with("command", "127.7.8.1", "kind = \"command\"\nrun = \"exit 3\"");
    assert_eq!(s["faults"][0]["note"], "failed: exit status: 3", "{}", s["faults"][0]);
}

#[test]
fn bad_fault_entries_are_refused_naming_the_field() {
    let dir = tmp("faults-bad");
    let file = dir.join("s.toml");
    std::fs::write(
        &file,
        "name = \"bad\"\n[[phases]]\nname = \"p\"\nrate = 1\nduration = \"1s\"\n\n[[faults]]\nkind = \"slow\"\nat = \"1s\"\nduration = \"1s\"\nhosts = 0.5\n",
    )
    .unwrap();
    rejects(&["validate", file.to_str().unwrap()], "faults[0].delay");
    std::fs::write(
        &file,
        "name = \"bad\"\n[target]\nkind = \"alcor\"\nurl = \"http://127.0.0.1:1\"\n[[phases]]\nname = \"p\"\nrate = 1\nduration = \"1s\"\n\n[[faults]]\nkind = \"restart\"\nat = \"1s\"\n",
    )
    .unwrap();
    rejects(&["validate", file.to_str().unwrap()], "embedded control plane");
}

#[cfg(unix)]
#[test]
fn ctrl_c_during_a_fault_undoes_it_and_keeps_the_ledger() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let _g = serial();
    let dir = tmp("faults-ctrlc");
    let out = dir.join("run");
    let file = dir.join("s.toml");
    std::fs::write(
        &file,
        "name = \"ctrlc\"\n[agents]\ncount = 6\nbase_ip = \"127.7.9.1\"\n[topology]\nports = 60\n[setup]\nmodel = \"open\"\nrate = 400\n\
         [[phases]]\nname = \"load\"\nmodel = \"open\"\nrate = 25\nduration = \"60s\"\n[measure]\ncorrelation_timeout = \"3s\"\n\
         [[faults]]\nkind = \"crash\"\nat = \"1s\"\nduration = \"50s\"\nhosts = [\"127.7.9.2\"]\n",
    )
    .unwrap();
    let mut child = Command::new(bin())
        .args(["run", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The host comes up, then crashes: it refuses connections.
    let t = Instant::now();
    let up = || std::net::TcpStream::connect("127.7.9.2:50001").is_ok();
    while !up() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    while up() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(child.wait().unwrap().code(), Some(3));
    let s: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["partial"], true);
    let f = &s["faults"][0];
    assert_eq!(f["note"], "undone early: the run stopped", "{f}");
    assert!(f["end_s"].as_f64().unwrap() < 20.0, "{f}");
    assert!(outcomes_add_up(&s) > 0);
    assert!(out.join("report.html").exists());
}
