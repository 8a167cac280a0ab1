//! docs/CI.md's `Run ci-smoke` step, run as written: it must fail when the candidate regressed
//! (here, against a baseline made three times faster than any real run) and pass without a
//! baseline.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The shell lines between `# ci-gate: begin` and `# ci-gate: end` in docs/CI.md, with the
/// release binary's path replaced by the one under test.
fn documented_step() -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CI.md")).unwrap();
    let begin = doc.find("# ci-gate: begin").expect("docs/CI.md marks the gate step");
    let end = doc
        .find("# ci-gate: end")
        .expect("docs/CI.md marks the gate step's end");
    let step: Vec<&str> = doc[begin..end].lines().skip(1).map(str::trim).collect();
    let script = step.join("\n");
    assert!(
        script.contains("./target/release/alcor-scale run ci-smoke --repeat 3"),
        "{script}"
    );
    script.replace("./target/release/alcor-scale", bin())
}

fn bash(script: &str, dir: &Path) -> std::process::Output {
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn the_documented_ci_step_fails_on_a_regression_and_passes_without_a_baseline() {
    let _serial = serial();
    let dir = tmp("ci-recipe");
    let script = documented_step();
    // Main's first push: no baseline yet, the step passes and keeps its run folder.
    let o = bash(&script, &dir);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!dir.join("comparison.md").exists());
    let summary = std::fs::read_to_string(dir.join("summary.txt")).unwrap();
    // PARTIAL (checks held on a saturated host) also exits 0: CI machines are often busy.
    assert!(
        summary.starts_with("ci-smoke: PASS") || summary.starts_with("ci-smoke: PARTIAL"),
        "{summary}"
    );
    // That run becomes the baseline, three times faster than this machine can be.
    std::fs::rename(dir.join("run"), dir.join("baseline")).unwrap();
    reports::testing::scale_latencies(&dir.join("baseline"), 1.0 / 3.0).unwrap();
    let o = bash(&script, &dir);
    assert_eq!(o.status.code(), Some(1), "a regression fails the step: {}", text(&o));
    let md = std::fs::read_to_string(dir.join("comparison.md")).unwrap();
    assert!(md.contains("**regression**") && md.contains("❌ worse"), "{md}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("comparison: REGRESSION") && stdout.contains("95 % CI"),
        "{stdout}"
    );
    assert!(!stdout.contains("| metric |"), "the table went to the file: {stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}
