//! Verdicts a CI can trust, end to end: a run that measured nothing fails, a run that did not
//! start judges nothing, an overloaded generator says so, absurd scenarios are refused before
//! they start, and stdout carries the verdict alone.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reports::summary::{SloStatus, Summary};

#[test]
fn a_run_that_sent_nothing_fails_its_checks_as_no_samples() {
    let _serial = serial();
    let dir = tmp("nothing");
    let out = dir.join("run");
    let o = smoke(
        "127.5.10.1",
        &[
            "phases[0].requests=0",
            "phases[1].requests=0",
            "slo=[\"error_rate < 1%\", \"requests >= 1\", \"not_converged < 1\", \"api.p99 < 10s\"]",
        ],
        &out,
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s = Summary::read(&out).unwrap();
    assert_eq!(s.throughput.requests, 0);
    for r in &s.slo {
        assert_eq!((r.pass, r.status), (false, SloStatus::NoSamples), "{r:?}");
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("FAIL") && stdout.contains("✗ error_rate < 1%") && stdout.contains("no samples"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_whose_fleet_cannot_start_judges_nothing_and_exits_3() {
    let _serial = serial();
    let dir = tmp("nostart");
    let out = dir.join("run");
    // The first agent's address is taken.
    let _held = std::net::TcpListener::bind("127.5.11.1:50001").unwrap();
    let o = smoke("127.5.11.1", &[], &out, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let s = Summary::read(&out).unwrap();
    assert!(
        s.partial && s.partial_reason.as_deref().unwrap().contains("agent fleet"),
        "{:?}",
        s.partial_reason
    );
    assert!(!s.slo.is_empty());
    for r in &s.slo {
        assert_eq!(
            (r.pass, r.status, r.actual),
            (false, SloStatus::NotEvaluated, None),
            "{r:?}"
        );
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.starts_with("ci-smoke: NOT EVALUATED: starting the agent fleet"),
        "{stdout}"
    );
    assert!(!stdout.contains("✓"), "{stdout}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("NOT EVALUATED: starting the agent fleet"),
        "the report leads with why"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_overloaded_open_phase_ends_on_time_counts_what_it_could_not_send_and_says_so() {
    let _serial = serial();
    let dir = tmp("overload");
    let out = dir.join("run");
    let t = Instant::now();
    // Each create waits 20 ms at its agent, so two in flight hold about 100/s, not 3,000/s.
    let o = smoke(
        "127.5.12.1",
        &[
            "agents.cost_model=\"linear:port_us=20000\"",
            "phases[0].rate=3000",
            "phases[0].duration=\"2s\"",
            "phases[0].max_in_flight=2",
            "phases[0].mix={create=1}",
            "phases[1].requests=10",
        ],
        &out,
        &["--strict-generator"],
    );
    assert!(t.elapsed() < Duration::from_secs(60), "the phase did not end on time");
    assert_eq!(
        o.status.code(),
        Some(3),
        "--strict-generator fails the run: {}",
        text(&o)
    );
    let s = Summary::read(&out).unwrap();
    let open = s.phases.iter().find(|p| p.name == "open").unwrap();
    assert_eq!(open.offered_rps, Some(3000.0), "offered is what was asked for");
    assert!(
        open.duration_s < 4.0,
        "the phase stops issuing at its duration: {}",
        open.duration_s
    );
    assert_eq!(open.due, 6000);
    assert_eq!(open.unsent + open.requests, open.due, "{open:?}");
    assert!(open.unsent > 3000, "{open:?}");
    assert_eq!(s.errors.failures.get("unsent"), Some(&open.unsent));
    assert!(s.generator.fell_behind, "{:?}", s.generator);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.starts_with("ci-smoke: PARTIAL: 4 checks held, but the generator fell behind"),
        "{stdout}"
    );
    assert!(
        stdout.contains("offered 3,000/s, sent") && stdout.contains("the generator fell behind"),
        "{stdout}"
    );
    // The model forgot the creates never sent: teardown deletes exactly what exists.
    let teardown = s.phases.iter().find(|p| p.kind == "teardown").unwrap();
    assert_eq!(teardown.errors, 0, "{teardown:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn absurd_scenarios_are_refused_before_they_start_naming_the_limit() {
    let smoke = scenario("ci-smoke");
    let smoke = smoke.to_str().unwrap();
    rejects(
        &["validate", smoke, "--set", "phases[0].rate=1e12"],
        "phases[0].rate: 1000000000000 requests/s is above what the open model can schedule",
    );
    rejects(
        &["validate", smoke, "--set", "phases[1].users=10000000"],
        "phases[1].users: 10000000 users need 10000000 connections",
    );
    rejects(
        &["validate", smoke, "--set", "slo=[\"api.p99 < -1ms\"]"],
        "can never hold",
    );
    rejects(
        &["validate", smoke, "--set", "slo=[\"error_rate < 200%\"]"],
        "always holds",
    );
    // A missing baseline is refused before the run, not after it.
    let t = Instant::now();
    rejects(
        &["run", smoke, "--baseline", "/nonexistent/base"],
        "--baseline: /nonexistent/base",
    );
    // So is a baseline of another scenario (the fixture ran ci-smoke with other overrides).
    let base = reports_fixture("smoke");
    rejects(
        &["run", smoke, "--baseline", base.to_str().unwrap()],
        "is not comparable with this run (use --force to compare anyway):\n  scenario text differs",
    );
    assert!(t.elapsed() < Duration::from_secs(5), "refused before the run started");
}

#[test]
fn stdout_carries_the_verdict_alone_and_the_charts_agree_with_the_tables() {
    let _serial = serial();
    let dir = tmp("stdout");
    let out = dir.join("run");
    let o = smoke("127.5.13.1", &[], &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.starts_with("ci-smoke: PASS") || stdout.starts_with("ci-smoke: PARTIAL"),
        "checks held (PARTIAL on a saturated host): {stdout}"
    );
    assert!(!stdout.contains("launched"), "goose's lines go to stderr: {stdout}");
    assert!(!stdout.contains(out.to_str().unwrap()), "paths go to stderr: {stdout}");
    assert!(stdout.contains("✓ port_programmed.p99 < 5s"), "{stdout}");
    // The percentile charts are drawn from the measured phases' own histograms: their maxima
    // are the table's.
    let s = Summary::read(&out).unwrap();
    let run = reports::rundata::RunData::load(&out).unwrap();
    for m in ["api", "port_programmed", "neighbor_converged", "agent_processing"] {
        let h = run.measured_histogram(m).unwrap();
        assert_eq!(h.max(), s.metrics[m].max, "{m}");
        assert_eq!(h.len(), s.metrics[m].count, "{m}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_step_search_that_found_its_knee_passes_and_leaves_the_broken_stage_out() {
    let _serial = serial();
    let dir = tmp("knee");
    let out = dir.join("run");
    let o = run(&[
        "run",
        scenario("knee-search").to_str().unwrap(),
        "--set",
        "agents.base_ip=127.5.14.1",
        "--set",
        "agents.count=10",
        "--set",
        "topology.ports=100",
        "--set",
        "phases[0].step_duration=\"1s\"",
        "--set",
        "phases[0].start_rate=50",
        "--set",
        "phases[0].step_rate=50",
        "--set",
        "phases[0].max_rate=150",
        // The second stage breaks by design: 10 ms per create at 100/s needs more than one
        // request in flight, which max_in_flight=1 cannot give, so requests pile up unsent.
        "--set",
        "agents.cost_model=\"linear:port_us=10000\"",
        "--set",
        "phases[0].max_in_flight=1",
        "--set",
        "slo=[\"api.p99 < 1s\", \"knee >= 50\"]",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let s = Summary::read(&out).unwrap();
    let step = s.step_search.as_ref().unwrap();
    assert!(step.knee_rps.is_some(), "{}", text(&o));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s.slo[0].check, "step search found a knee");
    assert!(s.slo.iter().all(|r| r.pass), "{:?}", s.slo);
    assert_eq!(step.knee_rps, Some(50.0), "{:?}", step.stages);
    // The stage that broke is past the knee, shown but not in the headline figures.
    let broken = step.stages.iter().find(|st| !st.pass).unwrap();
    assert!(
        broken
            .checks
            .iter()
            .any(|c| c.check.contains("due requests") && !c.pass),
        "{broken:?}"
    );
    let p = s.phases.iter().find(|p| p.started_s == broken.started_s).unwrap();
    assert_eq!(p.kind, "overload");
    let held = s.phases.iter().find(|p| p.kind == "load").unwrap();
    assert_eq!(s.throughput.requests, held.requests, "only stages up to the knee count");
    std::fs::remove_dir_all(&dir).unwrap();
}
