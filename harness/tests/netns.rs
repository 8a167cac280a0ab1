//! Agents on real addresses, reached from another host: two network namespaces made by the test
//! stand in for two machines, joined by a veth pair and addressed from 198.18.0.0/15 (the range
//! reserved for network benchmarks). `alcor-scale net up` gives the agents' namespace a block of
//! addresses, a fleet listens on them and registers with the reference control plane in the other
//! namespace (listening on its 198.18 address), and a port create there is pushed across the
//! link to the agent that hosts it. `net down` then removes exactly the block. Every namespace
//! (and with it the link) is removed at the end, also on failure. Root only: it says it skipped
//! otherwise.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn post(ns: &str, url: &str, body: &str) -> serde_json::Value {
    let out = in_netns_ok(
        ns,
        &[
            "curl",
            "-sS",
            "--max-time",
            "10",
            "-XPOST",
            url,
            "-H",
            "content-type: application/json",
            "-d",
            body,
        ],
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{url}: {e}: {out}"))
}

#[test]
fn agents_on_a_netns_block_are_reached_across_a_link_and_the_block_is_removed() {
    if !can_make_namespaces() {
        return;
    }
    let _serial = serial();
    let id = std::process::id();
    let mut lab = NetnsLab::default();
    let cp = lab.ns(format!("alcor-scale-cp-{id}"));
    let agents = lab.ns(format!("alcor-scale-ag-{id}"));
    let (vc, va) = (format!("asc{id}"), format!("asa{id}"));
    in_netns_ok(
        &cp,
        &[
            "ip", "link", "add", &vc, "type", "veth", "peer", "name", &va, "netns", &agents,
        ],
    );
    in_netns_ok(&cp, &["ip", "addr", "add", "198.18.1.1/24", "dev", &vc]);
    in_netns_ok(&cp, &["ip", "link", "set", &vc, "up"]);
    in_netns_ok(&cp, &["ip", "route", "add", "198.18.0.0/28", "dev", &vc]);
    in_netns_ok(&agents, &["ip", "link", "set", &va, "up"]);
    in_netns_ok(&agents, &["ip", "route", "add", "198.18.1.0/24", "dev", &va]);

    // The block, through netlink.
    let up = in_netns_ok(&agents, &[bin(), "net", "up", "--cidr", "198.18.0.0/28", "--dev", &va]);
    assert!(up.contains("14 address(es)"), "{up}");
    let addrs = in_netns_ok(&agents, &["ip", "-br", "addr", "show", "dev", &va]);
    assert!(
        addrs.contains("198.18.0.1/32") && addrs.contains("198.18.0.14/32"),
        "{addrs}"
    );
    // A second `up` on the same interface is refused: `down` could not tell the blocks apart.
    let again = in_netns(&agents, &[bin(), "net", "up", "--cidr", "198.18.0.0/28", "--dev", &va]);
    assert!(
        !again.status.success() && text(&again).contains("net down"),
        "{}",
        text(&again)
    );

    // The control plane on its namespace's own address, the fleet on the block.
    let spawn = |ns: &str, args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", ns, bin()])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    lab.children.push(spawn(
        &cp,
        &["control-plane", "--listen", "198.18.1.1:9009", "--duration", "60s"],
    ));
    std::thread::sleep(Duration::from_millis(500));
    let fleet = Command::new("ip")
        .args(["netns", "exec", &agents, bin()])
        .args([
            "agents",
            "--count",
            "8",
            "--base-ip",
            "198.18.0.1",
            "--register-with",
            "http://198.18.1.1:9009",
            "--duration",
            "60s",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    lab.children.push(fleet);
    // Registered when the fleet says so.
    let mut out = lab.children[1].stdout.take().unwrap();
    let registered = std::thread::spawn(move || {
        use std::io::Read;
        let mut seen = String::new();
        let mut buf = [0u8; 512];
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until && !seen.contains("registered 8 nodes") {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        seen
    })
    .join()
    .unwrap();
    assert!(registered.contains("198.18.0.1:50001"), "{registered}");
    assert!(registered.contains("registered 8 nodes"), "{registered}");

    // A port on host 5 (198.18.0.6) is pushed across the link and applied there.
    let base = "http://198.18.1.1:9009/project/demo";
    let vpc = post(&cp, &format!("{base}/vpcs"), r#"{"network":{}}"#);
    let net = vpc["network"]["id"].as_str().unwrap().to_owned();
    let subnet = post(
        &cp,
        &format!("{base}/subnets"),
        &format!(r#"{{"subnet":{{"network_id":"{net}","cidr":"10.0.0.0/24","ip_version":4}}}}"#),
    );
    let sid = subnet["subnet"]["id"].as_str().unwrap().to_owned();
    let port = post(
        &cp,
        &format!("{base}/ports"),
        &format!(
            r#"{{"port":{{"network_id":"{net}","fixed_ips":[{{"subnet_id":"{sid}"}}],"binding:host_id":"host-00005","device_owner":"compute:nova"}}}}"#
        ),
    );
    let results = port["dataplane"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{port}");
    assert_eq!(results[0]["host"], "198.18.0.6", "{port}");
    assert_eq!(results[0]["ok"], true, "{port}");

    // Down removes exactly the block; the link's other state stays.
    let mut fleet = lab.children.pop().unwrap();
    let _ = fleet.kill();
    let _ = fleet.wait();
    let down = in_netns_ok(&agents, &[bin(), "net", "down", "--dev", &va]);
    assert!(down.contains("14 address(es) removed"), "{down}");
    let addrs = in_netns_ok(&agents, &["ip", "-br", "addr", "show", "dev", &va]);
    assert!(!addrs.contains("198.18.0."), "{addrs}");
    let link = in_netns_ok(&agents, &["ip", "-br", "link", "show", "dev", &va]);
    assert!(link.contains(&va), "the interface was the user's: it stays: {link}");
}
