//! One time base for a fleet: every event instant is measured against an [`Epoch`] taken at
//! fleet start, which also records the system-wide monotonic clock and the wall clock at that
//! moment so that a harness in another process can align the fleet's times with its own.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The instant a fleet's times are measured from, with the matching clock readings.
#[derive(Debug, Clone, Copy)]
pub struct Epoch {
    /// The epoch as an `Instant` of this process.
    pub instant: Instant,
    /// `CLOCK_MONOTONIC` at the epoch, in ns. On Linux `Instant` reads this same clock, which is
    /// shared by every process on the machine: a harness on the same host aligns exactly by
    /// reading it too.
    pub monotonic_ns: u64,
    /// Wall-clock time at the epoch, µs since the Unix epoch: for a harness on another host
    /// (accurate only as far as the hosts' clocks are synchronised).
    pub unix_us: u64,
}

impl Epoch {
    /// Takes the epoch now.
    pub fn now() -> Self {
        // rustix finds the vDSO on its first clock call, which takes about 10 µs: done before
        // the two readings, it would otherwise put the monotonic reading that much after the
        // `Instant`, and every same-host alignment off by as much.
        let _ = monotonic_ns();
        let instant = Instant::now();
        let monotonic_ns = monotonic_ns();
        let unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Self {
            instant,
            monotonic_ns,
            unix_us,
        }
    }

    /// µs from the epoch to `t` (0 for instants before it).
    pub fn micros(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.instant).as_micros() as u64
    }
}

/// `CLOCK_MONOTONIC` now, in ns: compare with [`Epoch::monotonic_ns`] of a fleet in another
/// process on the same host.
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time the calling thread has used so far. Beside a wall-clock span it tells work from
/// waiting: on a shared machine a thread that is preempted mid-message keeps its wall clock
/// running but not this one.
pub fn thread_cpu() -> std::time::Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
