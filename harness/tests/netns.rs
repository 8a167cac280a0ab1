//! Agents on real addresses, reached from another host: two network namespaces made by the test
//! stand in for two machines, joined by a veth pair and addressed from 198.18.0.0/15 (the range
//! reserved for network benchmarks). `alcor-scale net up` gives the agents' namespace a block of
//! addresses, a fleet listens on them and registers with the reference control plane in the other
//! namespace (listening on its 198.18 address), and a port create there is pushed across the
//! link to the agent that hosts it. `net down` then removes exactly the block. Every namespace
//! (and with it the link) is removed at the end, also on failure. Root only: it says it skipped
//! otherwise.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Both namespaces and the processes started in them; removed on drop.
struct Lab {
    cp: String,
    agents: String,
    children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.cp, &self.agents] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn sh(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .expect("ip netns exec runs")
}

fn ok(ns: &str, args: &[&str]) -> String {
    let o = sh(ns, args);
    assert!(o.status.success(), "{ns}: {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn post(ns: &str, url: &str, body: &str) -> serde_json::Value {
    let out = ok(
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
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n");
    let tools = Command::new("ip").arg("-V").output().is_ok() && Command::new("curl").arg("-V").output().is_ok();
    if !root || !tools {
        eprintln!("skipped: needs root and the ip and curl commands to make network namespaces");
        return;
    }
    let _serial = serial();
    let id = std::process::id();
    let mut lab = Lab {
        cp: format!("alcor-scale-cp-{id}"),
        agents: format!("alcor-scale-ag-{id}"),
        children: Vec::new(),
    };
    let (vc, va) = (format!("asc{id}"), format!("asa{id}"));
    for ns in [&lab.cp, &lab.agents] {
        assert!(
            Command::new("ip")
                .args(["netns", "add", ns])
                .status()
                .unwrap()
                .success()
        );
        ok(ns, &["ip", "link", "set", "lo", "up"]);
    }
    ok(
        &lab.cp,
        &[
            "ip",
            "link",
            "add",
            &vc,
            "type",
            "veth",
            "peer",
            "name",
            &va,
            "netns",
            &lab.agents,
        ],
    );
    ok(&lab.cp, &["ip", "addr", "add", "198.18.1.1/24", "dev", &vc]);
    ok(&lab.cp, &["ip", "link", "set", &vc, "up"]);
    ok(&lab.cp, &["ip", "route", "add", "198.18.0.0/28", "dev", &vc]);
    ok(&lab.agents, &["ip", "link", "set", &va, "up"]);
    ok(&lab.agents, &["ip", "route", "add", "198.18.1.0/24", "dev", &va]);

    // The block, through netlink.
    let up = ok(
        &lab.agents,
        &[bin(), "net", "up", "--cidr", "198.18.0.0/28", "--dev", &va],
    );
    assert!(up.contains("14 address(es)"), "{up}");
    let addrs = ok(&lab.agents, &["ip", "-br", "addr", "show", "dev", &va]);
    assert!(
        addrs.contains("198.18.0.1/32") && addrs.contains("198.18.0.14/32"),
        "{addrs}"
    );
    // A second `up` on the same interface is refused: `down` could not tell the blocks apart.
    let again = sh(
        &lab.agents,
        &[bin(), "net", "up", "--cidr", "198.18.0.0/28", "--dev", &va],
    );
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
        &lab.cp,
        &["control-plane", "--listen", "198.18.1.1:9009", "--duration", "60s"],
    ));
    std::thread::sleep(Duration::from_millis(500));
    let fleet = Command::new("ip")
        .args(["netns", "exec", &lab.agents, bin()])
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
    let vpc = post(&lab.cp, &format!("{base}/vpcs"), r#"{"network":{}}"#);
    let net = vpc["network"]["id"].as_str().unwrap().to_owned();
    let subnet = post(
        &lab.cp,
        &format!("{base}/subnets"),
        &format!(r#"{{"subnet":{{"network_id":"{net}","cidr":"10.0.0.0/24","ip_version":4}}}}"#),
    );
    let sid = subnet["subnet"]["id"].as_str().unwrap().to_owned();
    let port = post(
        &lab.cp,
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
    let down = ok(&lab.agents, &[bin(), "net", "down", "--dev", &va]);
    assert!(down.contains("14 address(es) removed"), "{down}");
    let addrs = ok(&lab.agents, &["ip", "-br", "addr", "show", "dev", &va]);
    assert!(!addrs.contains("198.18.0."), "{addrs}");
    let link = ok(&lab.agents, &["ip", "-br", "link", "show", "dev", &va]);
    assert!(link.contains(&va), "the interface was the user's: it stays: {link}");
}
