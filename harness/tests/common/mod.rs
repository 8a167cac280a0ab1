//! What the end-to-end tests share: the binary, bundled scenarios, private folders, and running
//! `alcor-scale` as a user does.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `alcor-scale` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_alcor-scale")
}

/// A bundled scenario's file.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"))
}

/// A fresh private folder for one test.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("alcor-scale-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs share two cores: one at a time keeps their latencies (and SLOs) meaningful.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`SERIAL`] for the rest of a test.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `alcor-scale ARGS`, logs at warn.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("alcor-scale runs")
}

/// Runs ci-smoke with its agents at `ip`, the `--set` overrides `sets`, into `out`, quietly,
/// with `extra` arguments.
pub fn smoke(ip: &str, sets: &[&str], out: &Path, extra: &[&str]) -> Output {
    let base = format!("agents.base_ip={ip}");
    let scenario = scenario("ci-smoke");
    let mut args = vec!["run", scenario.to_str().unwrap(), "--set", &base];
    for s in sets {
        args.extend(["--set", s]);
    }
    args.extend(["--out", out.to_str().unwrap(), "--quiet"]);
    args.extend(extra);
    run(&args)
}

/// Asserts that `alcor-scale ARGS` exits 2 with `needle` in its error output.
pub fn rejects(args: &[&str], needle: &str) {
    let o = run(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(needle),
        "{args:?}: expected `{needle}` in\n{}",
        text(&o)
    );
}

/// stdout and stderr of a finished command, for failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A run folder written by a real run, kept with the reports crate's tests.
pub fn reports_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../reports/tests/fixtures")
        .join(name)
}

/// Copies a fixture run folder to `to`.
pub fn copy_fixture(name: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(reports_fixture(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// An `alcor-scale agents` process, killed when dropped.
pub struct FleetProcess {
    pub child: std::process::Child,
    /// Its events endpoint.
    pub events: String,
}

impl Drop for FleetProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `alcor-scale agents ARGS --events 127.0.0.1:0` and waits for its events endpoint.
pub fn spawn_fleet(args: &[&str]) -> FleetProcess {
    spawn_fleet_with(Command::new(bin()), args)
}

/// As [`spawn_fleet`], from a prepared command (`ip netns exec … alcor-scale`); `args` must
/// include `--events`.
pub fn spawn_fleet_with(mut cmd: Command, args: &[&str]) -> FleetProcess {
    use std::io::BufRead;
    let mut full: Vec<&str> = vec!["agents"];
    full.extend(args);
    if !args.contains(&"--events") {
        full.extend(["--events", "127.0.0.1:0"]);
    }
    let mut child = cmd
        .args(&full)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("alcor-scale agents starts");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut events = None;
    for line in out.by_ref() {
        let line = line.unwrap();
        if let Some(addr) = line.strip_prefix("events: JSON lines on ") {
            events = Some(addr.trim().to_owned());
            break;
        }
    }
    // Its closing summary must find a reader.
    std::thread::spawn(move || out.for_each(drop));
    let events = events.unwrap_or_else(|| panic!("{full:?} printed no events endpoint"));
    FleetProcess { child, events }
}

/// Whether this test may make network namespaces (root, and `ip` and `curl` at hand); says it
/// skipped when not.
pub fn can_make_namespaces() -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n");
    let tools = Command::new("ip").arg("-V").output().is_ok() && Command::new("curl").arg("-V").output().is_ok();
    if !root || !tools {
        eprintln!("skipped: needs root and the ip and curl commands to make network namespaces");
    }
    root && tools
}

/// `ARGS` run inside network namespace `ns`.
pub fn in_netns(ns: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .expect("ip netns exec runs")
}

/// As [`in_netns`], which must succeed; its stdout.
pub fn in_netns_ok(ns: &str, args: &[&str]) -> String {
    let o = in_netns(ns, args);
    assert!(o.status.success(), "{ns}: {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The namespaces and the processes in them; all removed on drop.
#[derive(Default)]
pub struct NetnsLab {
    pub namespaces: Vec<String>,
    /// Namespaces whose `eth0` got a block from `net up`.
    pub blocks: Vec<String>,
    pub children: Vec<std::process::Child>,
}

impl Drop for NetnsLab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // `net down` also forgets its record of the block (kept outside the namespace).
        for ns in &self.blocks {
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, bin(), "net", "down", "--dev", "eth0"])
                .output();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
        }
    }
}

impl NetnsLab {
    /// A new namespace, `lo` up.
    pub fn ns(&mut self, name: String) -> String {
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name}");
        self.namespaces.push(name.clone());
        in_netns_ok(&name, &["ip", "link", "set", "lo", "up"]);
        name
    }

    /// Starts `alcor-scale ARGS` inside `ns`, quietly.
    pub fn spawn(&mut self, ns: &str, args: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, bin()])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }
}

/// A run in which every port settled: `hosts` hosts, every one of them sent goal states, no
/// request failed, and every create was programmed on its host and converged on its neighbors.
pub fn assert_every_port_settled(s: &reports::summary::Summary, hosts: u64) {
    assert_eq!(
        (s.scenario.agents, s.hosts.hosts),
        (hosts, hosts),
        "hosts, and hosts that got goal states"
    );
    assert_eq!(s.errors.requests_failed, 0, "{:?}", s.errors);
    assert_eq!(
        (s.errors.not_programmed, s.errors.not_converged),
        (0, 0),
        "{:?}",
        s.errors
    );
    assert!(s.metrics["port_programmed"].count > 0);
    assert!(s.metrics["neighbor_converged"].count > 0);
}

/// Every remote fleet of a run, with `agents` agents each in order, reported messages, dropped
/// none, stayed connected, and had its clock probed, with an uncertainty stated and no larger
/// than the worst it reports. How small it is depends on how busy the machine is (CI's debug
/// build measured 3 ms on loopback, 24 ms with the cores saturated), so it is not bounded here:
/// that the estimate lies within its uncertainty of the true offset is checked exactly in
/// fake-agent's export test.
pub fn assert_fleets_stayed(s: &reports::summary::Summary, agents: &[u64]) {
    assert_eq!(s.fleets.len(), agents.len(), "{:?}", s.fleets);
    for (f, &n) in s.fleets.iter().zip(agents) {
        assert_eq!(f.agents, n, "{f:?}");
        assert!(f.events > 0, "{f:?}");
        assert_eq!((f.dropped, f.disconnected_at_s), (0, None), "{f:?}");
        assert!(f.clock_probes >= 8, "{f:?}");
        assert!(
            f.clock_uncertainty_us > 0.0 && f.clock_uncertainty_us <= f.clock_max_uncertainty_us,
            "{f:?}"
        );
    }
}

/// Runs the scenario `file` quietly into `out`; the command's output and the summary it wrote,
/// if it wrote one.
pub fn run_file(file: &Path, out: &Path) -> (Output, Option<serde_json::Value>) {
    let o = run(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    let s = std::fs::read(out.join("summary.json"))
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("summary.json parses"));
    (o, s)
}

/// Asserts that a summary's ledger adds up (its outcomes sum to its operations, none counted
/// twice); returns the operations.
pub fn outcomes_add_up(s: &serde_json::Value) -> u64 {
    let l = &s["ledger"];
    let sum: u64 = l["outcomes"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let ops = l["operations"].as_u64().unwrap();
    assert_eq!(sum, ops, "{l}");
    assert_eq!(l["double_counted"], 0, "{l}");
    ops
}
