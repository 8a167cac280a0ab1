//! The open model keeps its rate while the target stalls, and the stall shows in the latency
//! (measured from each request's intended time), not as a lower rate.
//!
//! The target is a stand-in for Alcor on loopback that answers everything at once, except that
//! port creates arriving in the second second of the phase are held until that second ends.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use reports::summary::Summary;

#[derive(Default)]
struct Seen {
    first: Option<Instant>,
    arrivals: Vec<Duration>,
}

async fn handler(seen: Arc<Mutex<Seen>>, method: Method, uri: Uri) -> (StatusCode, &'static str) {
    if method == Method::POST && uri.path().ends_with("/ports") {
        let hold = {
            let mut s = seen.lock().unwrap();
            let now = Instant::now();
            let first = *s.first.get_or_insert(now);
            let t = now - first;
            s.arrivals.push(t);
            (Duration::from_secs(1)..Duration::from_secs(2))
                .contains(&t)
                .then(|| Duration::from_secs(2) - t)
        };
        if let Some(d) = hold {
            tokio::time::sleep(d).await;
        }
    }
    (StatusCode::CREATED, "{}")
}

/// Starts the stand-in and writes a scenario of one open phase at 200/s for `secs` against it.
/// `base_ip` is the agents' first address: each test its own, as the tests run at once.
async fn stand_in(tag: &str, secs: u32, base_ip: &str) -> (Arc<Mutex<Seen>>, std::path::PathBuf, std::path::PathBuf) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = Router::new().fallback({
        let seen = seen.clone();
        move |m: Method, u: Uri| handler(seen.clone(), m, u)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = std::env::temp_dir().join(format!("alcor-scale-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("stall.toml");
    std::fs::write(
        &scenario,
        format!(
            "name = \"stall\"\n\
             [target]\nkind = \"alcor\"\nurl = \"http://{addr}\"\n\
             [agents]\ncount = 2\nbase_ip = \"{base_ip}\"\n\
             [[phases]]\nname = \"open\"\nmodel = \"open\"\nrate = 200\nduration = \"{secs}s\"\n\
             [measure]\ncorrelation_timeout = \"1s\"\n"
        ),
    )
    .unwrap();
    (seen, dir, scenario)
}

fn command(scenario: &std::path::Path, out: &std::path::Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_alcor-scale"));
    c.args([
        "run",
        scenario.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ])
    .env("RUST_LOG", "warn");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_holds_its_rate_through_a_stall_and_shows_it_as_latency() {
    let (seen, dir, scenario) = stand_in("stall", 4, "127.5.4.1").await;
    let out = dir.join("run");
    let o = command(&scenario, &out).output().await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));

    let arrivals = seen.lock().unwrap().arrivals.clone();
    let in_window = |a: f64, b: f64| arrivals.iter().filter(|t| (a..b).contains(&t.as_secs_f64())).count() as f64;
    // 800 requests in 4 s, and 200 of them during the stall: the rate did not drop.
    assert!(
        (760.0..=840.0).contains(&(arrivals.len() as f64)),
        "{} requests",
        arrivals.len()
    );
    let during = in_window(1.0, 2.0);
    assert!(
        (190.0..=210.0).contains(&during),
        "{during} requests arrived during the stalled second"
    );
    let last = arrivals.iter().max().unwrap().as_secs_f64();
    assert!(last < 4.2, "the last request was due before 4 s, sent at {last:.2} s");

    let s = Summary::read(&out).unwrap();
    let api = &s.metrics["api"];
    assert_eq!(api.count, arrivals.len() as u64);
    // The request due at 1.0 s waited until 2.0 s: about a second of latency. Roughly a quarter
    // of the requests were held, so p90 shows the stall while p50 does not.
    assert!(api.max >= 900_000, "max {} µs", api.max);
    assert!(api.p90 >= 200_000, "p90 {} µs", api.p90);
    assert!(api.p50 < 100_000, "p50 {} µs", api.p50);
    // No agent behind the stand-in: every port counts as not programmed, none is dropped.
    assert_eq!(s.errors.not_programmed, arrivals.len() as u64);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The workers (and connections) a stall made the pool grow are retired once it is over,
/// instead of being held for the rest of the phase.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_pool_shrinks_after_a_stall() {
    let (seen, dir, scenario) = stand_in("shrink", 8, "127.5.30.1").await;
    let out = dir.join("run");
    let mut child = command(&scenario, &out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let fds = format!("/proc/{}/fd", child.id().unwrap());
    let count = || std::fs::read_dir(&fds).map(|d| d.count()).unwrap_or(0);
    // Sample the harness's open descriptors while the phase runs.
    let mut samples = Vec::new();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(30) {
        let t = seen.lock().unwrap().first.map(|f| f.elapsed().as_secs_f64());
        if let Some(t) = t {
            samples.push((t, count()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
    let during = samples
        .iter()
        .filter(|(t, _)| (1.5..2.0).contains(t))
        .map(|s| s.1)
        .max()
        .unwrap();
    let late = samples
        .iter()
        .filter(|(t, _)| (7.0..7.8).contains(t))
        .map(|s| s.1)
        .min()
        .unwrap();
    // About 200 requests were held in the stall, each on a worker with its own connection.
    eprintln!("descriptors: {during} during the stall, {late} five seconds after it");
    assert!(during >= 150, "{during} descriptors during the stall");
    assert!(
        late + 100 < during,
        "{during} descriptors during the stall, still {late} five seconds after it"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
