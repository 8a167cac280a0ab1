//! Separate hosts, stood in for by network namespaces: a control plane in one, a fleet in each
//! of two others (each on an address block of its own from `alcor-scale net up`), and `run` in
//! a fourth, all joined by veth pairs to a bridge in a fifth and addressed from 198.18.0.0/15
//! (the range reserved for network benchmarks). The run reaches the control plane and both
//! fleets only over those addresses: every port is programmed and converged, and each fleet's
//! clock offset is reported. Every namespace (and with it every link, address and the bridge)
//! is removed at the end, also on failure. Root only: it says it skipped otherwise.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use reports::summary::Summary;

/// Waits until `addr` accepts TCP connections from inside `ns`.
fn wait_listening(ns: &str, addr: &str) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    for _ in 0..100 {
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{host}/{port}"),
            ])
            .output()
            .unwrap();
        if o.status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on {addr} as seen from {ns}");
}

#[test]
fn a_run_drives_a_control_plane_and_two_fleets_on_separate_hosts() {
    if !can_make_namespaces() {
        return;
    }
    let _serial = serial();
    let id = std::process::id();
    let mut lab = NetnsLab::default();
    let sw = lab.ns(format!("as-sw-{id}"));
    in_netns_ok(&sw, &["ip", "link", "add", "br0", "type", "bridge"]);
    in_netns_ok(&sw, &["ip", "link", "set", "br0", "up"]);
    // One "machine" per role, each with eth0 on the bridge at 198.18.0.K/16.
    let mut hosts = Vec::new();
    for (k, role) in [(1, "cp"), (2, "run"), (3, "fa"), (4, "fb")] {
        let ns = lab.ns(format!("as-{role}-{id}"));
        let port = format!("as{k}-{id}");
        in_netns_ok(
            &sw,
            &[
                "ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        );
        in_netns_ok(&sw, &["ip", "link", "set", &port, "master", "br0", "up"]);
        in_netns_ok(&ns, &["ip", "addr", "add", &format!("198.18.0.{k}/16"), "dev", "eth0"]);
        in_netns_ok(&ns, &["ip", "link", "set", "eth0", "up"]);
        hosts.push(ns);
    }
    let (cp, run_ns, fa, fb) = (
        &hosts[0].clone(),
        &hosts[1].clone(),
        &hosts[2].clone(),
        &hosts[3].clone(),
    );
    // Each fleet host gets a block of agent addresses (inside 198.18.0.0/16: on-link for all).
    for (ns, cidr) in [(fa, "198.18.1.0/28"), (fb, "198.18.2.0/28")] {
        let up = in_netns_ok(ns, &[bin(), "net", "up", "--cidr", cidr, "--dev", "eth0"]);
        lab.blocks.push(ns.clone());
        assert!(up.contains("14 address(es)"), "{up}");
    }

    lab.spawn(
        cp,
        &["control-plane", "--listen", "198.18.0.1:9009", "--duration", "120s"],
    );
    // One fleet per listen mode: a listener per agent, and one shared listener.
    lab.spawn(
        fa,
        &[
            "agents",
            "--count",
            "14",
            "--base-ip",
            "198.18.1.1",
            "--events",
            "198.18.0.3:50100",
            "--duration",
            "120s",
        ],
    );
    lab.spawn(
        fb,
        &[
            "agents",
            "--count",
            "14",
            "--base-ip",
            "198.18.2.1",
            "--listen",
            "shared",
            "--events",
            "198.18.0.4:50100",
            "--duration",
            "120s",
        ],
    );
    // The run finds the fleets by one name with an address per fleet, as a Kubernetes headless
    // Service gives (`ip netns exec` reads /etc/netns/NS/hosts as the namespace's /etc/hosts).
    std::fs::create_dir_all(format!("/etc/netns/{run_ns}")).unwrap();
    std::fs::write(
        format!("/etc/netns/{run_ns}/hosts"),
        "127.0.0.1 localhost\n198.18.0.3 fleets\n198.18.0.4 fleets\n",
    )
    .unwrap();
    for (addr, from) in [
        ("198.18.0.1:9009", run_ns),
        ("198.18.0.3:50100", run_ns),
        ("198.18.0.4:50100", run_ns),
    ] {
        wait_listening(from, addr);
    }
    wait_listening(cp, "198.18.2.14:50001");

    let dir = tmp("netns-hosts");
    std::fs::write(
        dir.join("hosts.toml"),
        r#"name = "netns-hosts"
description = "A control plane and two fleets on separate (namespace) hosts"
seed = 11
slo = ["error_rate < 1%", "setup_errors < 1"]

[agents]
remote = ["fleets:50100"]
remote_expect = 2

[target]
kind = "alcor"
url = "http://198.18.0.1:9009"

[topology]
ports = 56

[setup]
model = "open"
rate = 200

[[phases]]
name = "create"
model = "open"
rate = 20
duration = "2s"
mix = { create = 1 }

[teardown]
model = "open"
rate = 200
"#,
    )
    .unwrap();
    let out = dir.join("run");
    let o = Command::new("ip")
        .args(["netns", "exec", run_ns, bin(), "run"])
        .arg(dir.join("hosts.toml"))
        .args(["--out", out.to_str().unwrap(), "--quiet"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let s = Summary::read(&out).unwrap();
    assert_every_port_settled(&s, 28);
    assert!(s.metrics["port_programmed"].count >= 40);
    assert!(s.metrics["neighbor_converged"].count >= 40);
    assert_fleets_stayed(&s, &[14, 14]);
    assert_eq!(s.fleets[0].endpoint, "198.18.0.3:50100 (fleets:50100)");
    // The run's nodes were removed from the control plane at its end.
    let nodes = in_netns_ok(
        run_ns,
        &["curl", "-sS", "--max-time", "5", "http://198.18.0.1:9009/nodes"],
    );
    let nodes: serde_json::Value = serde_json::from_str(&nodes).unwrap_or_else(|e| panic!("{e}: {nodes}"));
    assert_eq!(nodes["nodeInfos"].as_array().map(Vec::len), Some(0), "{nodes}");
}

/// `scripts/fleet-lab.sh`, as its header documents it: up, a run from the run host over the
/// printed `agents.remote`, down; nothing of it left behind (namespaces, processes, block records).
#[test]
fn the_fleet_lab_script_brings_fleets_up_for_a_run_and_removes_them() {
    if !can_make_namespaces() {
        return;
    }
    let _serial = serial();
    let id = std::process::id();
    let prefix = format!("as-t{id}");
    let state = tmp("fleet-lab");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fleet-lab.sh");
    let lab = |args: &[&str]| {
        Command::new("bash")
            .arg(&script)
            .args(args)
            .env("ALCOR_SCALE_BIN", bin())
            .env("LAB_PREFIX", &prefix)
            .env("LAB_STATE", &state)
            .env("LAB_DURATION", "120s")
            .output()
            .unwrap()
    };
    /// Takes the lab down however the test ends.
    struct Down<F: Fn(&[&str]) -> std::process::Output>(F);
    impl<F: Fn(&[&str]) -> std::process::Output> Drop for Down<F> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down"]);
        }
    }
    let up = lab(&["up", "--fleets", "2", "--agents", "30"]);
    let _down = Down(&lab);
    assert!(up.status.success(), "{}", text(&up));
    let printed = String::from_utf8_lossy(&up.stdout).into_owned();
    let set = printed
        .split('\'')
        .find(|s| s.starts_with("agents.remote="))
        .unwrap_or_else(|| panic!("no agents.remote in {printed}"))
        .to_owned();
    // A second `up` is refused while the first stands.
    let again = lab(&["up"]);
    assert!(
        !again.status.success() && text(&again).contains("down first"),
        "{}",
        text(&again)
    );

    let out = state.join("run");
    let o = Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-run"), bin(), "run"])
        .arg(scenario("ci-smoke"))
        .args([
            "--set",
            &set,
            "--set",
            "agents.port=50001",
            // The script is what is tested: latency checks would judge a debug build on a busy
            // machine (three processes in CI).
            "--set",
            "slo=[\"error_rate < 1%\", \"setup_errors < 1\"]",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let s = Summary::read(&out).unwrap();
    assert_every_port_settled(&s, 60);

    let down = lab(&["down"]);
    assert!(down.status.success(), "{}", text(&down));
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains(&prefix),
        "{}",
        text(&left)
    );
    let pids: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pid"))
        .collect();
    assert!(pids.is_empty(), "{pids:?}");
}
