//! Driver overhead: how many requests per second the harness's open model sustains when the
//! target answers at once, and what wrk reaches on the same endpoint in the same session.
//!
//! The target is an axum server on loopback answering every request `201 {}`, standing in for
//! Alcor (`target.kind = "alcor"`), so the whole harness path runs: planning, correlation
//! registration, the HTTP request, recording. One agent runs (the fleet is part of every run);
//! nothing is pushed to it, so ports are counted as not programmed, which costs what a real
//! run's correlation costs. wrk and oha, when installed, then run against the same server.
//! Run with nothing else on the machine:
//!
//!     cargo bench -p benches --bench driver_overhead

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use tokio_util::sync::CancellationToken;

// As in the alcor-scale binary.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RATES: [u32; 6] = [10_000, 20_000, 30_000, 40_000, 50_000, 60_000];
// (ALCOR_SCALE_RATES=40000 picks rates from the environment, for profiling one.)
const SECONDS: u32 = 5;

async fn serve() -> std::net::SocketAddr {
    let app = Router::new().fallback(|| async { (StatusCode::CREATED, "{}") });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
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
            &format!("-d{SECONDS}s"),
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
            &format!("{SECONDS}s"),
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

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = rt.block_on(serve());
    println!("target: {addr} (answers 201 at once)");
    println!(
        "{:>10} {:>12} {:>10} {:>10} {:>10}",
        "offered/s", "achieved/s", "api p50", "api p99", "late s"
    );
    let rates: Vec<u32> = std::env::var("ALCOR_SCALE_RATES")
        .ok()
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| RATES.to_vec());
    for rate in rates {
        let dir = std::env::temp_dir().join(format!("alcor-scale-overhead-{rate}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.toml");
        std::fs::write(
            &path,
            format!(
                "name = \"overhead\"\n[target]\nkind = \"alcor\"\nurl = \"http://{addr}\"\n\
                 [agents]\ncount = 1\nbase_ip = \"127.61.0.1\"\n\
                 [[phases]]\nname = \"open\"\nmodel = \"open\"\nrate = {rate}\nduration = \"{SECONDS}s\"\n\
                 max_in_flight = 64\n[measure]\ncorrelation_timeout = \"1s\"\n"
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
                },
                CancellationToken::new(),
            ))
            .unwrap();
        let p = &outcome.summary.phases[0];
        let api = &p.metrics["api"];
        // The phase lasts until its last request is answered: past 5 s means the driver (or the
        // target) fell behind the schedule.
        println!(
            "{rate:>10} {:>12.0} {:>8.2}ms {:>8.2}ms {:>10.2}",
            p.requests as f64 / p.duration_s,
            api.p50 as f64 / 1e3,
            api.p99 as f64 / 1e3,
            p.duration_s - f64::from(SECONDS)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for c in [16, 64, 256]
        .into_iter()
        .filter(|_| std::env::var_os("ALCOR_SCALE_NO_WRK").is_none())
    {
        match wrk(addr, c) {
            Some(rps) => println!("wrk -t1 -c{c}: {rps:.0} requests/s"),
            None => println!("wrk not found or failed: apt-get install wrk"),
        }
        match oha(addr, c) {
            Some(rps) => println!("oha -c {c}: {rps:.0} requests/s"),
            None => println!("oha not found or failed: cargo install oha (or set OHA=/path/to/oha)"),
        }
    }
}
