//! How busy this process and the host are: the load generator's own CPU use, the host's load
//! average and CPU steal, sampled once per interval from `/proc` (through the procfs crate).
//! A generator that is starved of CPU measures its own queueing, not the target's; these
//! figures let a run say so.

use std::time::Instant;

use procfs::{Current, CurrentSI, KernelStats, LoadAverage};

/// CPU use between two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// This process, in cores (1.0 = one core busy all the time).
    pub process_cpu: f64,
    /// The host's 1-minute load average now.
    pub load1: f64,
    /// The host's CPU steal, as a fraction of its CPU time.
    pub steal: f64,
}

/// Takes [`Usage`] samples; each covers the time since the one before.
#[derive(Debug)]
pub struct UsageSampler {
    at: Instant,
    process_ticks: Option<u64>,
    host: Option<(u64, u64)>,
}

/// CPU ticks (user and system, every thread) process `p` has used so far.
fn ticks_of(p: &procfs::process::Process) -> Option<u64> {
    let s = p.stat().ok()?;
    Some(s.utime + s.stime)
}

fn process_ticks() -> Option<u64> {
    ticks_of(&procfs::process::Process::myself().ok()?)
}

/// CPU time process `pid` (this one when none) has used so far, s.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let p = match pid {
        Some(pid) => procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?,
        None => procfs::process::Process::myself().ok()?,
    };
    Some(ticks_of(&p)? as f64 / procfs::ticks_per_second() as f64)
}

/// (total, steal) CPU ticks of the host.
fn host_ticks() -> Option<(u64, u64)> {
    let t = KernelStats::current().ok()?.total;
    let steal = t.steal.unwrap_or(0);
    let total = t.user
        + t.nice
        + t.system
        + t.idle
        + t.iowait.unwrap_or(0)
        + t.irq.unwrap_or(0)
        + t.softirq.unwrap_or(0)
        + steal;
    Some((total, steal))
}

impl Default for UsageSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl UsageSampler {
    /// Starts counting from now.
    pub fn new() -> Self {
        Self {
            at: Instant::now(),
            process_ticks: process_ticks(),
            host: host_ticks(),
        }
    }

    /// Usage since the last sample (zeros where `/proc` cannot be read, as off Linux).
    pub fn sample(&mut self) -> Usage {
        let now = Instant::now();
        let secs = now.duration_since(self.at).as_secs_f64();
        let ticks = process_ticks();
        let host = host_ticks();
        let per_s = procfs::ticks_per_second() as f64;
        let process_cpu = match (self.process_ticks, ticks) {
            (Some(a), Some(b)) if secs > 0.0 && per_s > 0.0 => (b.saturating_sub(a)) as f64 / per_s / secs,
            _ => 0.0,
        };
        let steal = match (self.host, host) {
            (Some((t0, s0)), Some((t1, s1))) if t1 > t0 => s1.saturating_sub(s0) as f64 / (t1 - t0) as f64,
            _ => 0.0,
        };
        let load1 = LoadAverage::current().map(|l| f64::from(l.one)).unwrap_or(0.0);
        self.at = now;
        self.process_ticks = ticks;
        self.host = host;
        Usage {
            process_cpu,
            load1,
            steal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_thread_shows_as_process_cpu() {
        let mut s = UsageSampler::new();
        // Spin one thread for 300 ms: this process used about one core meanwhile.
        let end = Instant::now() + std::time::Duration::from_millis(300);
        let mut x = 0u64;
        while Instant::now() < end {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let u = s.sample();
        assert!(u.process_cpu > 0.3, "{u:?}");
        assert!((0.0..=1.0).contains(&u.steal), "{u:?}");
        assert!(u.load1 >= 0.0, "{u:?}");
    }
}
