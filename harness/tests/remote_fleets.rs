//! Fleets run apart from the harness (`[agents] remote`): two `alcor-scale agents` processes,
//! one `run` that learns their hosts from their hellos, has the embedded control plane push to
//! them, and correlates their events on its own clock.

mod common;

use common::*;
use reports::summary::Summary;

/// Runs ci-smoke over `fleets` into `out`, with `sets` overrides besides.
fn smoke_over(fleets: &[&FleetProcess], sets: &[&str], out: &std::path::Path) -> std::process::Output {
    let list: Vec<String> = fleets.iter().map(|f| format!("\"{}\"", f.events)).collect();
    let remote = format!("agents.remote=[{}]", list.join(","));
    let scenario = scenario("ci-smoke");
    let mut args = vec!["run", scenario.to_str().unwrap(), "--set", &remote];
    for s in sets {
        args.extend(["--set", s]);
    }
    args.extend(["--out", out.to_str().unwrap(), "--quiet"]);
    run(&args)
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
    // What is asserted is below; latency checks would judge a debug build on a busy machine
    // (three processes in CI), not the remote path.
    let o = smoke_over(&[&a, &b], &["slo=[\"error_rate < 1%\", \"setup_errors < 1\"]"], &out);
    assert!(o.status.success(), "{}", text(&o));
    let s = Summary::read(&out).unwrap();
    // The hosts are the fleets' 12 + 8, and every create settled over both.
    assert_every_port_settled(&s, 20);
    assert_fleets_stayed(&s, &[12, 8]);
    let events = s
        .slo
        .iter()
        .find(|r| r.check == reports::summary::EVENTS_CHECK)
        .unwrap();
    assert!(events.pass && events.actual == Some(0.0), "{events:?}");
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
    let o = smoke_over(
        &[&stays, &leaves],
        // Closed users wait out the timeout for each port on the gone hosts: keep them few.
        &["measure.correlation_timeout=3s", "phases[1].requests=24"],
        &out,
    );
    assert!(!o.status.success(), "ports on the gone hosts fail: {}", text(&o));
    let s = Summary::read(&out).unwrap();
    let gone = &s.fleets[1];
    assert!(gone.disconnected_at_s.is_some_and(|t| t > 1.0), "{gone:?}");
    // Every port that failed in the measured phases failed waiting on the gone hosts, and no
    // request failed. (On a slow machine the departure can also catch the end of setup: those
    // ports are in the fleet's count, not in the measured figures.)
    assert!(gone.ports_unaccounted > 0, "{gone:?}");
    assert!(
        gone.ports_unaccounted >= s.errors.not_converged,
        "{gone:?} {:?}",
        s.errors
    );
    assert_eq!(s.errors.requests_failed, 0, "{:?}", s.errors);
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

#[test]
fn a_fleet_that_dropped_events_fails_the_run_for_fidelity() {
    let _serial = serial();
    let dir = tmp("remote-fleet-drops");
    // A buffer of one event: the bulk setup's bursts do not fit.
    let fleet = spawn_fleet(&[
        "--count",
        "20",
        "--base-ip",
        "127.6.4.1",
        "--port",
        "50213",
        "--events-buffer",
        "1",
        "--duration",
        "120s",
    ]);
    let out = dir.join("run");
    let o = smoke_over(
        &[&fleet],
        &["measure.correlation_timeout=3s", "phases[1].requests=24"],
        &out,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s = Summary::read(&out).unwrap();
    assert!(s.fleets[0].dropped > 0, "{:?}", s.fleets[0]);
    let events = s
        .slo
        .iter()
        .find(|r| r.check == reports::summary::EVENTS_CHECK)
        .unwrap();
    assert!(
        !events.pass && events.actual == Some(s.fleets[0].dropped as f64),
        "{events:?}"
    );
    assert!(text(&o).contains("no agent event dropped"), "{}", text(&o));
}
