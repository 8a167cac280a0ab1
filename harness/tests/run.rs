//! `alcor-scale run` end to end, as a user runs it: a real process, real agents on loopback,
//! the embedded control plane (or a stalling stand-in), and the run folder read back.
//!
//! Each test moves the agents to its own loopback range so the tests can run in parallel.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reports::summary::Summary;

#[test]
fn ci_smoke_writes_a_complete_consistent_run_folder() {
    let _serial = serial();
    let dir = tmp("smoke");
    let out = dir.join("run");
    let o = smoke("127.5.1.1", &[], &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for f in [
        "summary.json",
        "intervals.hlog",
        "agent-samples.csv",
        "hosts.csv",
        "scenario.toml",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let s = Summary::read(&out).unwrap();
    assert!(!s.partial);
    assert_eq!(s.target, "embedded");
    // Phases: setup, two measured, teardown; counts add up.
    let kinds: Vec<&str> = s.phases.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(kinds, ["setup", "load", "load", "teardown"]);
    assert_eq!(s.phases[0].requests, 400, "setup creates the topology's ports");
    assert_eq!(s.phases[2].requests, 200, "the closed phase spends its request budget");
    let measured: u64 = s.phases.iter().filter(|p| p.kind == "load").map(|p| p.requests).sum();
    assert_eq!(s.throughput.requests, measured);
    assert_eq!(s.throughput.completed, measured);
    assert_eq!(s.errors.requests_failed, 0);
    // Every created (or moved) port programmed and converged.
    assert_eq!((s.errors.not_programmed, s.errors.not_converged), (0, 0));
    let created = s.metrics["api.create"].count + s.metrics.get("api.update").map_or(0, |m| m.count);
    let programmed =
        s.metrics["port_programmed"].count + s.metrics.get("port_programmed.update").map_or(0, |m| m.count);
    let converged =
        s.metrics["neighbor_converged"].count + s.metrics.get("neighbor_converged.update").map_or(0, |m| m.count);
    assert_eq!(programmed, created);
    assert_eq!(converged, created);
    let api = &s.metrics["api"];
    assert_eq!(api.count, measured);
    for m in s.metrics.values() {
        assert!(m.min <= m.p50 && m.p50 <= m.p90 && m.p90 <= m.p99 && m.p99 <= m.p999 && m.p999 <= m.max);
    }
    // Converged never before programmed.
    assert!(s.metrics["neighbor_converged"].max >= s.metrics["port_programmed"].max);
    // Teardown deleted every port that was left.
    let teardown = &s.phases[3];
    let deletes_before: u64 = s.phases[1].metrics.get("api.delete").map_or(0, |m| m.count);
    assert_eq!(
        teardown.requests,
        400 + s.metrics["api.create"].count - deletes_before,
        "teardown deletes what setup and the load created, minus what the load deleted"
    );
    // Agent samples and hosts agree with the summary; the interval log is readable and its
    // api intervals hold every answered measured request plus setup and teardown.
    let samples = reports::samples::read_agent_samples(&out.join("agent-samples.csv")).unwrap();
    let hosts = reports::samples::read_hosts(&out.join("hosts.csv")).unwrap();
    assert_eq!(hosts.len(), 20);
    assert_eq!(hosts.iter().map(|h| h.messages).sum::<u64>(), samples.len() as u64);
    let intervals = reports::hlog::read(&out.join("intervals.hlog")).unwrap();
    let api_in_log: u64 = intervals
        .iter()
        .filter(|i| i.metric == "api")
        .map(|i| i.histogram.len())
        .sum();
    let api_all: u64 = s
        .phases
        .iter()
        .map(|p| p.metrics.get("api").map_or(0, |m| m.count))
        .sum();
    assert_eq!(api_in_log, api_all);
    assert!(s.slo.iter().all(|r| r.pass), "{:?}", s.slo);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failing_slo_exits_1_and_says_which() {
    let _serial = serial();
    let dir = tmp("slo");
    let out = dir.join("run");
    let junit = dir.join("slo.xml");
    let o = smoke(
        "127.5.2.1",
        &[
            "slo=[\"port_programmed.p99 < 1us\", \"error_rate < 1%\"]",
            "phases[1].requests=20",
        ],
        &out,
        &["--junit", junit.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let junit = std::fs::read_to_string(&junit).unwrap();
    assert!(junit.contains("tests=\"2\" failures=\"1\""), "{junit}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("port_programmed.p99 < 1us"));
    let s = Summary::read(&out).unwrap();
    assert!(!s.slo[0].pass && s.slo[0].margin.unwrap() < 0.0);
    assert!(s.slo[1].pass);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_invalid_scenario_exits_2_naming_file_line_and_field() {
    let dir = tmp("invalid");
    let f = dir.join("bad.toml");
    std::fs::write(
        &f,
        "name = \"bad\"\n\n[agents]\ncount = 3\n\n[[phases]]\nmodel = \"open\"\nrate = -5\nduration = \"2s\"\n",
    )
    .unwrap();
    let f = f.to_str().unwrap();
    rejects(&["run", f], "bad.toml:8: phases[0].rate: must be more than 0");
    // A type error, an unknown field, and bad overrides are named too.
    std::fs::write(f, "name = \"bad\"\n[agents]\ncount = \"many\"\n").unwrap();
    rejects(&["validate", f], "bad.toml:3: agents.count");
    std::fs::write(f, "name = \"bad\"\n[agents]\ncuont = 3\n").unwrap();
    rejects(&["validate", f], "bad.toml:3: agents.cuont: unknown field");
    let smoke = scenario("ci-smoke");
    let smoke = smoke.to_str().unwrap();
    rejects(
        &["validate", smoke, "--set", "topology.placement=packed"],
        "topology.host_capacity",
    );
    rejects(
        &["validate", smoke, "--set", "agents.count=0"],
        "(from --set agents.count=0)",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_bundled_scenario_validates() {
    let o = run(&["list"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    for name in [
        "quickstart",
        "ci-smoke",
        "big-goalstate",
        "port-churn",
        "fanout-1k-hosts",
        "sg-remote-group",
        "knee-search",
        "alcor-rally-ports",
        "closed-vs-open",
        "neutron-smoke",
        "neutron-rally",
        "neutron-knee",
    ] {
        assert!(listed.contains(name), "{name} not listed:\n{listed}");
        assert!(!listed.contains("(invalid"), "{listed}");
        let o = run(&["validate", scenario(name).to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o));
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_leaves_a_partial_readable_summary() {
    let _serial = serial();
    let dir = tmp("ctrlc");
    let out = dir.join("run");
    let mut child = Command::new(bin())
        .args([
            "run",
            scenario("ci-smoke").to_str().unwrap(),
            "--set",
            "agents.base_ip=127.5.3.1",
            "--set",
            "phases[0].duration=\"60s\"",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the measured open phase has produced interval data, then interrupt.
    let t = Instant::now();
    loop {
        let log = std::fs::read_to_string(out.join("intervals.hlog")).unwrap_or_default();
        if log.contains("Tag=api.update") || t.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "an interrupted run is not a pass");
    let s = Summary::read(&out).unwrap();
    assert!(s.partial);
    assert!(
        s.partial_reason.as_deref().unwrap().contains("interrupted"),
        "{:?}",
        s.partial_reason
    );
    let open = s
        .phases
        .iter()
        .find(|p| p.name == "open")
        .expect("the interrupted phase is in the summary");
    assert!(open.requests > 0 && open.duration_s < 50.0);
    assert!(s.metrics["api"].count > 0, "what was measured is kept");
    assert!(
        !s.phases.iter().any(|p| p.name == "closed"),
        "nothing ran after the interrupt"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn report_and_compare_commands_gate_and_write_junit() {
    let dir = tmp("compare");
    let (base, cand) = (dir.join("base"), dir.join("cand"));
    copy_fixture("smoke", &base);
    copy_fixture("smoke", &cand);
    let o = run(&["report", base.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(base.join("report.html").is_file());
    // Identical runs pass.
    let junit = dir.join("junit.xml");
    let o = run(&[
        "compare",
        base.to_str().unwrap(),
        cand.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no regression"));
    assert!(std::fs::read_to_string(&junit).unwrap().contains("failures=\"0\""));
    // 20 % slower: fails at 10 %, passes at 25 %.
    let mut s = Summary::read(&cand).unwrap();
    for m in s.metrics.values_mut() {
        m.p50 = m.p50 * 6 / 5;
        m.p90 = m.p90 * 6 / 5;
        m.p99 = m.p99 * 6 / 5;
    }
    s.write(&cand).unwrap();
    let o = run(&[
        "compare",
        base.to_str().unwrap(),
        cand.to_str().unwrap(),
        "--max-regression",
        "10%",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("**regression**"));
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(
        x.contains("<failure") && x.contains("port_programmed.p99 no worse than baseline"),
        "{x}"
    );
    let o = run(&[
        "compare",
        base.to_str().unwrap(),
        cand.to_str().unwrap(),
        "--max-regression",
        "25%",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(cand.join("compare.html").is_file());
    // A missing run folder is a usage error naming it.
    let o = run(&["compare", base.to_str().unwrap(), "/nonexistent/run"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/nonexistent/run"),
        "{}",
        text(&o)
    );
    let o = run(&["report", dir.join("nothing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn southbound_pushes_goal_states_straight_to_agents_and_correlates_them() {
    let _serial = serial();
    let dir = tmp("southbound");
    let out = dir.join("run");
    let o = smoke(
        "127.5.5.1",
        &["target.kind=southbound", "phases[1].requests=50"],
        &out,
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = Summary::read(&out).unwrap();
    assert_eq!(s.target, "southbound");
    assert_eq!(
        (
            s.errors.requests_failed,
            s.errors.not_programmed,
            s.errors.not_converged
        ),
        (0, 0, 0)
    );
    assert_eq!(s.metrics["port_programmed"].count, s.metrics["api.create"].count);
    // The own host's message carries the subnet's other ports as neighbors (Alcor's shape).
    assert!(
        s.metrics["goal_state_neighbors"].max > 50,
        "{:?}",
        s.metrics["goal_state_neighbors"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
