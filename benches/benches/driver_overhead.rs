//! Driver overhead: how many requests per second the harness's open model sustains when the
//! target answers at once, against what wrk and oha reach on the same endpoint in the same run.
//!
//! The target is an axum server on loopback answering every request `201 {}`, in a process of
//! its own as a real control plane is (this bench started again), standing in for Alcor
//! (`target.kind = "alcor"`), so the whole harness path runs: planning, correlation
//! registration, the HTTP request, recording. (With the server inside the harness's runtime,
//! one run in three was 20 % slower than the rest: tasks of a request and of its answer landed
//! on different threads. In a process of its own that mode is gone, for the tools as well.) One agent runs (the fleet is part of every run);
//! nothing is pushed to it, so ports are counted as not programmed, which costs what a real
//! run's correlation costs.
//!
//! 1. The schedule table: the harness at each of `RATES` for 5 s: where it holds its schedule
//!    (achieved equal to offered, nothing left late) and at what latency.
//! 2. Rounds (the machine is shared and noisy, so the comparison is made round by round and
//!    its median quoted). In each: the harness's throughput when offered more than it can do
//!    (150,000/s: every worker busy all the time, as wrk and oha run), then wrk and oha at 16,
//!    64 and 256 connections, and the ratio of the harness's throughput to the best of those
//!    six.
//!
//! Run with nothing else on the machine:
//!
//!     cargo bench -p benches --bench driver_overhead
//!
//! `OHA=/path/to/oha` when oha is not on PATH; `ALCOR_SCALE_RATES=40000,60000` for other rates
//! in the table; `ALCOR_SCALE_ROUNDS=N` (default 5, 0 for none); `ALCOR_SCALE_IN_FLIGHT=N` for
//! the phase's `max_in_flight` (default 64); `ALCOR_SCALE_SECONDS=N` for each load's length
//! (default 5).

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use tokio_util::sync::CancellationToken;

// As in the alcor-scale binary.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RATES: [u32; 5] = [20_000, 40_000, 60_000, 70_000, 80_000];
/// Seconds per load (`ALCOR_SCALE_SECONDS` overrides).
fn seconds() -> u32 {
    env_or("ALCOR_SCALE_SECONDS", 5)
}
const IN_FLIGHT: u32 = 64;
const ROUNDS: usize = 5;
/// Offered in the rounds: more than the harness can do on 2 cores.
const SATURATE: u32 = 150_000;
const CONNECTIONS: [u32; 3] = [16, 64, 256];

/// Set in the server process: this bench runs itself again as the target.
const SERVER_ENV: &str = "ALCOR_SCALE_NULL_SERVER";

/// The target in a process of its own, as a real control plane is, so that neither the
/// harness nor wrk or oha shares a runtime with it. Killed when dropped.
struct Server {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Server {
    fn start() -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .env(SERVER_ENV, "1")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().parse().unwrap();
        Self { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server process: answers every request `201 {}` at once, until killed.
fn serve() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = Router::new().fallback(|| async { (StatusCode::CREATED, "{}") });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", l.local_addr().unwrap());
        axum::serve(l, app).await.unwrap();
    });
}

fn wrk(addr: std::net::SocketAddr, connections: u32) -> Option<f64> {
    let dir = std::env::temp_dir().join("alcor-scale-wrk");
    std::fs::create_dir_all(&dir).ok()?;
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.body = '{\"port\":{\"id\":\"x\",\"network_id\":\"n\"}}'\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n",
    )
    .ok()?;
    let out = std::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{}s", seconds()),
            "-s",
            script.to_str()?,
            &format!("http://{addr}/project/p/ports"),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// oha (`cargo install oha`; `$OHA` or on PATH) at `connections`, requests/s.
fn oha(addr: std::net::SocketAddr, connections: u32) -> Option<f64> {
    let bin = std::env::var("OHA").unwrap_or_else(|_| "oha".into());
    let out = std::process::Command::new(bin)
        .args([
            "-z",
            &format!("{}s", seconds()),
            "-c",
            &connections.to_string(),
            "--no-tui",
            "--output-format",
            "json",
            "-m",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            "{\"port\":{\"id\":\"x\",\"network_id\":\"n\"}}",
            &format!("http://{addr}/project/p/ports"),
        ])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["summary"]["requestsPerSec"].as_f64()
}

/// One harness phase's figures.
struct Phase {
    achieved: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// How long the phase ran past its schedule, s.
    late: f64,
}

/// The harness's open model at `rate` for [`seconds`] against `addr`.
fn harness_at(rt: &tokio::runtime::Runtime, addr: std::net::SocketAddr, rate: u32, in_flight: u32) -> Phase {
    let dir = std::env::temp_dir().join(format!("alcor-scale-overhead-{rate}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.toml");
    let secs = seconds();
    std::fs::write(
        &path,
        format!(
            "name = \"overhead\"\n[target]\nkind = \"alcor\"\nurl = \"http://{addr}\"\n\
             [agents]\ncount = 1\nbase_ip = \"127.61.0.1\"\n\
             [[phases]]\nname = \"open\"\nmodel = \"open\"\nrate = {rate}\nduration = \"{secs}s\"\n\
             max_in_flight = {in_flight}\n[measure]\ncorrelation_timeout = \"1s\"\n"
        ),
    )
    .unwrap();
    let loaded = harness::scenario::load(&path, &[]).unwrap();
    let outcome = rt
        .block_on(harness::run::run(
            loaded,
            harness::run::RunOptions {
                out: Some(dir.join("run")),
                progress: false,
                repeat: 1,
            },
            CancellationToken::new(),
        ))
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let p = &outcome.summary.phases[0];
    let api = &p.metrics["api"];
    // Let the server's connections close before the next load.
    std::thread::sleep(Duration::from_millis(500));
    Phase {
        achieved: p.requests as f64 / p.duration_s,
        p50_ms: api.p50 as f64 / 1e3,
        p99_ms: api.p99 as f64 / 1e3,
        // The phase lasts until its last request is answered: past its duration means the driver (or
        // the target) fell behind the schedule.
        late: p.duration_s - f64::from(secs),
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::var_os(SERVER_ENV).is_some() {
        return serve();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = Server::start();
    let addr = server.addr;
    let in_flight = env_or("ALCOR_SCALE_IN_FLIGHT", IN_FLIGHT);
    let rounds = env_or("ALCOR_SCALE_ROUNDS", ROUNDS);
    let rates: Vec<u32> = std::env::var("ALCOR_SCALE_RATES")
        .ok()
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| RATES.to_vec());
    println!("target: {addr} (another process, answers 201 at once); max_in_flight = {in_flight}");
    println!(
        "{:>10} {:>12} {:>10} {:>10} {:>10}",
        "offered/s", "achieved/s", "api p50", "api p99", "late s"
    );
    for rate in rates {
        let p = harness_at(&rt, addr, rate, in_flight);
        println!(
            "{rate:>10} {:>12.0} {:>8.2}ms {:>8.2}ms {:>10.2}",
            p.achieved, p.p50_ms, p.p99_ms, p.late
        );
    }
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let p = harness_at(&rt, addr, SATURATE, in_flight);
        println!(
            "round {round}: harness offered {SATURATE}/s: {:.0} requests/s (p50 {:.0} ms from the intended times)",
            p.achieved, p.p50_ms
        );
        let mut best: Option<(String, f64)> = None;
        for c in CONNECTIONS {
            for (name, rps) in [
                (format!("wrk -t1 -c{c}"), wrk(addr, c)),
                (format!("oha -c {c}"), oha(addr, c)),
            ] {
                match rps {
                    Some(rps) => {
                        println!("round {round}: {name}: {rps:.0} requests/s");
                        if best.as_ref().is_none_or(|(_, b)| rps > *b) {
                            best = Some((name, rps));
                        }
                    }
                    None => println!(
                        "round {round}: {name} not found or failed (apt-get install wrk; cargo install oha, or OHA=path)"
                    ),
                }
            }
        }
        if let Some((name, rps)) = best {
            let ratio = p.achieved / rps;
            println!(
                "round {round}: the harness does {:.0} % of the best tool's rate ({name}, {rps:.0}/s)",
                ratio * 100.0
            );
            ratios.push(ratio);
        }
    }
    if !ratios.is_empty() {
        let shown: Vec<String> = ratios.iter().map(|r| format!("{:.0} %", r * 100.0)).collect();
        println!(
            "median over {} rounds: the harness does {:.0} % of the best tool's rate ({})",
            ratios.len(),
            median(ratios.clone()) * 100.0,
            shown.join(", ")
        );
    }
}
