//! Fleets run apart from the harness (`[agents] remote`): two `alcor-scale agents` processes,
//! one `run` that learns their hosts from their hellos, has the embedded control plane push to
//! them, and correlates their events on its own clock.

mod common;

use common::*;
use reports::summary::Summary;

fn remote_set(fleets: &[&FleetProcess]) -> String {
    let list: Vec<String> = fleets.iter().map(|f| format!("\"{}\"", f.events)).collect();
    format!("agents.remote=[{}]", list.join(","))
}

#[test]
fn a_run_drives_two_fleets_in_other_processes() {
    let _serial = serial();
    let dir = tmp("remote-fleets");
    let a = spawn_fleet(&[
        "--count",
        "12",
        "--base-ip",
        "127.6.0.1",
        "--port",
        "50211",
        "--duration",
        "120s",
    ]);
    let b = spawn_fleet(&[
        "--count",
        "8",
        "--base-ip",
        "127.6.1.1",
        "--port",
        "50211",
        "--duration",
        "120s",
    ]);
    let out = dir.join("run");
    let set = remote_set(&[&a, &b]);
    let o = run(&[
        "run",
        scenario("ci-smoke").to_str().unwrap(),
        "--set",
        &set,
        // What is asserted is below; latency checks would judge a debug build on a busy machine
        // (three processes in CI), not the remote path.
        "--set",
        "slo=[\"error_rate < 1%\", \"setup_errors < 1\"]",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let s = Summary::read(&out).unwrap();
    assert_eq!(s.scenario.agents, 20, "the hosts are the fleets' 12 + 8");
    assert_eq!(s.fleets.len(), 2, "{:?}", s.fleets);
    for (f, agents) in s.fleets.iter().zip([12, 8]) {
        assert_eq!(f.agents, agents, "{f:?}");
        assert!(f.events > 0, "{f:?}");
        assert_eq!((f.dropped, f.disconnected_at_s), (0, None), "{f:?}");
        assert!(f.clock_probes >= 8, "{f:?}");
        // Same host, loopback: the offset is known to well under a millisecond.
        assert!(
            f.clock_uncertainty_us > 0.0 && f.clock_uncertainty_us < 1_000.0,
            "{f:?}"
        );
    }
    // Every create was programmed on its host and converged on its neighbors, over both fleets.
    assert_eq!(s.errors.requests_failed, 0, "{:?}", s.errors);
    assert_eq!(
        (s.errors.not_programmed, s.errors.not_converged),
        (0, 0),
        "{:?}",
        s.errors
    );
    assert!(s.metrics["port_programmed"].count > 0);
    assert!(s.metrics["neighbor_converged"].count > 0);
    assert_eq!(s.hosts.hosts, 20, "every host of both fleets got goal states");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("id=\"fleets\""), "the report lists the fleets");
}

#[test]
fn a_fleet_that_leaves_mid_run_is_reported_with_what_it_left_waiting() {
    let _serial = serial();
    let dir = tmp("remote-fleet-leaves");
    let stays = spawn_fleet(&[
        "--count",
        "10",
        "--base-ip",
        "127.6.2.1",
        "--port",
        "50212",
        "--duration",
        "120s",
    ]);
    // Gone about four seconds in: during the open phase.
    let leaves = spawn_fleet(&[
        "--count",
        "10",
        "--base-ip",
        "127.6.3.1",
        "--port",
        "50212",
        "--duration",
        "4s",
    ]);
    let out = dir.join("run");
    let set = remote_set(&[&stays, &leaves]);
    let o = run(&[
        "run",
        scenario("ci-smoke").to_str().unwrap(),
        "--set",
        &set,
        "--set",
        "measure.correlation_timeout=3s",
        // Closed users wait out the timeout for each port on the gone hosts: keep them few.
        "--set",
        "phases[1].requests=24",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(!o.status.success(), "ports on the gone hosts fail: {}", text(&o));
    let s = Summary::read(&out).unwrap();
    let gone = &s.fleets[1];
    assert!(gone.disconnected_at_s.is_some_and(|t| t > 1.0), "{gone:?}");
    // Every port that failed on the gone hosts is in its ledger, and nothing else failed.
    assert!(gone.ports_unaccounted > 0, "{gone:?}");
    assert_eq!(
        gone.ports_unaccounted, s.errors.not_converged,
        "{gone:?} {:?}",
        s.errors
    );
    assert!(s.fleets[0].disconnected_at_s.is_none(), "{:?}", s.fleets[0]);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains(&leaves.events) && w.contains("disconnected")),
        "{:?}",
        s.warnings
    );
    assert!(
        s.errors.requests_failed + s.errors.not_programmed + s.errors.not_converged > 0,
        "{:?}",
        s.errors
    );
}
