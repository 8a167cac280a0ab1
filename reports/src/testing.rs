//! Helpers for tests and calibration scripts that need a run folder changed in a known way
//! (a baseline made faster, a candidate made slower). Not for production runs.

use std::path::Path;

use hdrhistogram::Histogram;

use crate::summary::{Summary, metric};
use crate::{Error, files, hlog};

/// Makes a run folder `factor` times slower: every latency figure of its summary and of its
/// interval log, and its throughput `factor` times lower (a factor below 1 makes it faster).
pub fn scale_latencies(dir: &Path, factor: f64) -> Result<(), Error> {
    let mut s = Summary::read(dir)?;
    let scale = |st: &mut crate::summary::Stats| {
        for v in [
            &mut st.min,
            &mut st.p50,
            &mut st.p90,
            &mut st.p99,
            &mut st.p999,
            &mut st.max,
        ] {
            *v = (*v as f64 * factor).round() as u64;
        }
        st.mean *= factor;
    };
    for (name, st) in s.metrics.iter_mut() {
        if metric::is_latency(name) {
            scale(st);
        }
    }
    for p in s.phases.iter_mut() {
        for (name, st) in p.metrics.iter_mut() {
            if metric::is_latency(name) {
                scale(st);
            }
        }
    }
    s.throughput.requests_per_s /= factor;
    s.write(dir)?;
    for (file, tag_metric) in [(files::INTERVALS, false), (files::PHASES, true)] {
        let path = dir.join(file);
        if !path.is_file() {
            continue;
        }
        let intervals = hlog::read(&path)?;
        let mut w = hlog::HlogWriter::create(&path, std::time::SystemTime::now(), "scaled")?;
        for i in intervals {
            let name = if tag_metric {
                i.metric.split_once(':').map_or(i.metric.as_str(), |m| m.1)
            } else {
                i.metric.as_str()
            };
            let latency = metric::is_latency(name);
            let mut h = Histogram::<u64>::new(3).expect("3 significant digits is valid");
            for v in i.histogram.iter_recorded() {
                let x = if latency {
                    (v.value_iterated_to() as f64 * factor) as u64
                } else {
                    v.value_iterated_to()
                };
                // Throughput is `api` samples per second: keep 1/factor of them.
                let n = if name == metric::API && !tag_metric {
                    (v.count_at_value() as f64 / factor).round() as u64
                } else {
                    v.count_at_value()
                };
                if n > 0 {
                    let _ = h.record_n(x, n);
                }
            }
            w.write(
                &i.metric,
                std::time::Duration::from_secs_f64(i.start_s),
                std::time::Duration::from_secs_f64(i.length_s),
                &h,
            )?;
        }
        w.flush()?;
    }
    Ok(())
}
