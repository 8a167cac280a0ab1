//! Rendering `report.html` for a 1-hour run: 3,600 one-second intervals of every metric, 100,000
//! agent samples, 1,000 hosts. The run folder is synthesized with the `reports` writers (values
//! drawn from a fixed-seed generator) around the summary of the checked-in ci-smoke fixture,
//! stretched to an hour. Prints the median render time of 5 and the size of the page.
//!
//!     cargo bench -p benches --bench report_render

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use reports::hlog::HlogWriter;
use reports::samples::{AgentSample, HostRow, SampleWriter};
use reports::summary::Summary;

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn synthesize(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/tests/fixtures/smoke");
    let mut s = Summary::read(&fixture).unwrap();
    s.duration_s = 3600.0;
    let n = s.phases.len() as f64;
    for (i, p) in s.phases.iter_mut().enumerate() {
        p.started_s = 3600.0 * i as f64 / n;
        p.duration_s = 3600.0 / n;
    }
    s.write(dir).unwrap();
    let mut rng = Lcg(42);
    let mut log = HlogWriter::create(&dir.join(reports::files::INTERVALS), SystemTime::now(), "synthetic").unwrap();
    let metrics = [
        "agent_processing",
        "api",
        "api.create",
        "errors",
        "goal_state_bytes",
        "goal_state_neighbors",
        "issued",
        "neighbor_converged",
        "port_programmed",
    ];
    for sec in 0..3600u64 {
        for m in metrics {
            let mut h = Histogram::<u64>::new(3).unwrap();
            for _ in 0..200 {
                h.record(1 + rng.next() % 200_000).unwrap();
            }
            log.write(m, Duration::from_secs(sec), Duration::from_secs(1), &h)
                .unwrap();
        }
    }
    log.flush().unwrap();
    let mut w = SampleWriter::create(&dir.join(reports::files::AGENT_SAMPLES)).unwrap();
    for i in 0..100_000u64 {
        let neighbors = 1 + rng.next() % 100_000;
        w.write(&AgentSample {
            t_s: i as f64 * 0.036,
            host: Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 1)) + (i % 1000) as u32),
            bytes: neighbors * 250,
            neighbors,
            ports: 1,
            processing_us: 20 + neighbors * 3 / 4 + rng.next() % 500,
            decode_us: neighbors / 4,
            apply_us: neighbors / 2,
            cpu_us: Some(neighbors * 3 / 4),
        })
        .unwrap();
    }
    w.flush().unwrap();
    let hosts: Vec<HostRow> = (0..1000u32)
        .map(|i| HostRow {
            host: Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 1)) + i),
            messages: 100 + rng.next() % 50,
            bytes: 1_000_000 + rng.next() % 100_000,
            neighbors: 5_000,
            lag_max: None,
            waited_max_us: None,
        })
        .collect();
    reports::samples::write_hosts(&dir.join(reports::files::HOSTS), &hosts).unwrap();
}

fn main() {
    let dir = std::env::temp_dir().join("alcor-scale-report-1h");
    let _ = std::fs::remove_dir_all(&dir);
    let t = Instant::now();
    synthesize(&dir);
    println!("synthesized a 1-hour run folder in {:.1} s", t.elapsed().as_secs_f64());
    for _ in 0..2 {
        let t = Instant::now();
        let run = reports::rundata::RunData::load(&dir).unwrap();
        let loaded = t.elapsed();
        let t = Instant::now();
        let page = reports::html::page(&run);
        println!(
            "load {:.3} s, page {:.3} s ({} bytes)",
            loaded.as_secs_f64(),
            t.elapsed().as_secs_f64(),
            page.len()
        );
    }
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let path = reports::render(&dir).unwrap();
        times.push(t.elapsed());
        assert!(path.is_file());
    }
    times.sort();
    let size = std::fs::metadata(dir.join(reports::files::REPORT)).unwrap().len();
    println!(
        "render: median {:.3} s (min {:.3}, max {:.3}); report.html {:.2} MB",
        times[2].as_secs_f64(),
        times[0].as_secs_f64(),
        times[4].as_secs_f64(),
        size as f64 / 1e6
    );
}
