//! The harness's end of [`export`](crate::export): connects to a fleet in another process or on
//! another machine, learns its hosts from the hello, aligns the two clocks, and turns the fleet's
//! event lines back into [`AgentEvent`]s on this process's clock.
//!
//! Clock alignment is NTP's: a ping carries this side's clock, the pong the fleet's on arrival and
//! on departure, and the round trip bounds the error. Of the last [`FILTER`] probes the one with
//! the shortest round trip gives the estimate (NTP's clock filter: queueing behind events only
//! ever lengthens a round trip, so the shortest is the least skewed). Probes go on through the run,
//! so a drifting clock is followed and its drift reported.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use crate::apply::{OpCounts, ResourceCounts, StatusCounts};
use crate::event::{AgentEvent, Rpc};
use crate::ids::IdList;

/// Probes the estimate is chosen from.
pub const FILTER: usize = 8;

/// A fleet's first line.
#[derive(Debug, Clone, Deserialize)]
pub struct Hello {
    /// Export format version.
    pub schema: u32,
    /// Agents in the fleet.
    pub agents: usize,
    /// The first agent's address.
    pub first_agent: String,
    /// The port every agent listens on (schema 2).
    #[serde(default)]
    pub port: Option<u16>,
    /// Every agent's address, in index order (schema 2).
    #[serde(default)]
    pub hosts: Vec<Ipv4Addr>,
    /// `CLOCK_MONOTONIC` at the fleet's epoch, ns.
    pub epoch_monotonic_ns: u64,
    /// Wall clock at the fleet's epoch, µs since the Unix epoch.
    pub epoch_unix_us: u64,
}

/// Where the fleet's clock lies on ours, as far as it is known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ClockEstimate {
    /// The fleet's epoch on this side's clock, µs after the anchor (negative: before it).
    pub offset_us: f64,
    /// Half the round trip of the probe the estimate comes from: the true offset lies within
    /// `offset_us ± uncertainty_us`.
    pub uncertainty_us: f64,
    /// Probes answered so far.
    pub probes: u64,
    /// The estimate after the first probes, for drift.
    pub first_offset_us: f64,
    /// The largest uncertainty an estimate in use had: what the run's latencies carry.
    pub max_uncertainty_us: f64,
}

impl ClockEstimate {
    /// How far the estimate has moved since the first probes (the clocks' drift plus noise).
    pub fn drift_us(&self) -> f64 {
        self.offset_us - self.first_offset_us
    }
}

/// One answered probe.
#[derive(Debug, Clone, Copy)]
struct Probe {
    offset_us: f64,
    delay_us: f64,
}

impl Probe {
    /// NTP's offset and delay from the four timestamps (t0, t3 ours; t1, t2 the fleet's).
    fn new(t0: f64, t1: f64, t2: f64, t3: f64) -> Self {
        Self {
            offset_us: ((t0 - t1) + (t3 - t2)) / 2.0,
            delay_us: ((t3 - t0) - (t2 - t1)).max(0.0),
        }
    }
}

#[derive(Debug, Default)]
struct Clock {
    recent: VecDeque<Probe>,
    estimate: Option<ClockEstimate>,
}

impl Clock {
    fn add(&mut self, p: Probe) {
        if self.recent.len() == FILTER {
            self.recent.pop_front();
        }
        self.recent.push_back(p);
        let best = self
            .recent
            .iter()
            .min_by(|a, b| a.delay_us.total_cmp(&b.delay_us))
            .copied()
            .unwrap_or(p);
        let prev = self.estimate.unwrap_or(ClockEstimate {
            first_offset_us: best.offset_us,
            ..Default::default()
        });
        let uncertainty_us = best.delay_us / 2.0;
        self.estimate = Some(ClockEstimate {
            offset_us: best.offset_us,
            uncertainty_us,
            probes: prev.probes + 1,
            first_offset_us: prev.first_offset_us,
            max_uncertainty_us: prev.max_uncertainty_us.max(uncertainty_us),
        });
    }

    /// Marks the first estimate as the baseline for drift (after the initial probes).
    fn settle(&mut self) {
        if let Some(e) = &mut self.estimate {
            e.first_offset_us = e.offset_us;
            e.max_uncertainty_us = e.uncertainty_us;
        }
    }
}

/// What a fleet sends, on this side's clock.
#[derive(Debug)]
pub enum FleetMessage {
    /// A processed message.
    Event(Box<AgentEvent>),
    /// The fleet dropped events for this client: the total so far.
    Dropped(u64),
    /// The connection ended: why, if it was not a clean close.
    Closed(Option<String>),
}

/// How the clock is probed.
#[derive(Debug, Clone, Copy)]
pub struct ClockOptions {
    /// Probes before events are handed out.
    pub initial_probes: usize,
    /// A probe this often during the run.
    pub every: Duration,
}

impl Default for ClockOptions {
    fn default() -> Self {
        Self {
            initial_probes: FILTER,
            every: Duration::from_secs(2),
        }
    }
}

/// A fleet in another process, connected.
#[derive(Debug)]
pub struct RemoteFleet {
    /// The events endpoint.
    pub addr: SocketAddr,
    /// What the fleet said of itself.
    pub hello: Hello,
    /// The fleet's events, in order, then one `Closed`.
    pub messages: mpsc::UnboundedReceiver<FleetMessage>,
    clock: Arc<Mutex<Clock>>,
    anchor: Instant,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RemoteFleet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RemoteFleet {
    /// Connects to a fleet's events endpoint, reads its hello and aligns clocks; `anchor` is
    /// the instant this side's times count from. Fails if nothing answers within `timeout` or
    /// what answers is not a fleet.
    pub async fn connect(addr: SocketAddr, anchor: Instant, opts: ClockOptions, timeout: Duration) -> io::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {timeout:?}")))??;
        stream.set_nodelay(true)?;
        let (rx, mut tx) = stream.into_split();
        let mut lines = BufReader::new(rx).lines();
        let first = tokio::time::timeout(timeout, lines.next_line())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no hello"))??
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed before its hello"))?;
        let hello: Hello = match serde_json::from_str::<Line>(&first) {
            Ok(Line::Hello(h)) => h,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "not an `agents --events` endpoint: its first line is `{}`",
                        first.chars().take(80).collect::<String>()
                    ),
                ));
            }
        };
        let clock = Arc::new(Mutex::new(Clock::default()));
        // The first probes, one at a time; events that come meanwhile wait for an estimate.
        let mut early = Vec::new();
        for id in 0..opts.initial_probes.max(1) as u64 {
            ping(&mut tx, id, anchor).await?;
            loop {
                let line = tokio::time::timeout(timeout, lines.next_line())
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer to a clock probe"))??
                    .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed during clock probes"))?;
                let t3 = micros(anchor);
                match serde_json::from_str::<Line>(&line) {
                    Ok(Line::Pong {
                        id: got,
                        t0_us,
                        t1_us,
                        t2_us,
                    }) if got == id => {
                        lock(&clock).add(Probe::new(t0_us as f64, t1_us as f64, t2_us as f64, t3));
                        break;
                    }
                    _ => early.push(line),
                }
            }
        }
        lock(&clock).settle();
        let (out, messages) = mpsc::unbounded_channel();
        for line in early {
            handle(&line, &clock, anchor, &out, None);
        }
        let task = tokio::spawn(follow(
            lines,
            tx,
            clock.clone(),
            anchor,
            opts.every,
            opts.initial_probes as u64,
            out,
        ));
        Ok(Self {
            addr,
            hello,
            messages,
            clock,
            anchor,
            task,
        })
    }

    /// The clock estimate in use.
    pub fn clock(&self) -> ClockEstimate {
        lock(&self.clock).estimate.unwrap_or_default()
    }

    /// The offset a fleet on this very host has, read exactly from the shared monotonic clock
    /// (for checking the estimate; meaningless across machines).
    pub fn same_host_offset_us(&self) -> f64 {
        let now_ns = crate::clock::monotonic_ns();
        let anchor_ns = now_ns.saturating_sub(self.anchor.elapsed().as_nanos() as u64);
        (self.hello.epoch_monotonic_ns as f64 - anchor_ns as f64) / 1000.0
    }
}

fn lock(c: &Mutex<Clock>) -> std::sync::MutexGuard<'_, Clock> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

fn micros(anchor: Instant) -> f64 {
    anchor.elapsed().as_nanos() as f64 / 1000.0
}

async fn ping(tx: &mut OwnedWriteHalf, id: u64, anchor: Instant) -> io::Result<()> {
    let line = format!(
        "{{\"type\":\"ping\",\"id\":{id},\"t0_us\":{}}}\n",
        micros(anchor).round() as u64
    );
    tx.write_all(line.as_bytes()).await
}

async fn follow(
    mut lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    mut tx: OwnedWriteHalf,
    clock: Arc<Mutex<Clock>>,
    anchor: Instant,
    every: Duration,
    mut next_id: u64,
    out: mpsc::UnboundedSender<FleetMessage>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let reason = loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => handle(&line, &clock, anchor, &out, Some(micros(anchor))),
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            },
            _ = tick.tick() => {
                if let Err(e) = ping(&mut tx, next_id, anchor).await {
                    break Some(e.to_string());
                }
                next_id += 1;
            }
        }
    };
    let _ = out.send(FleetMessage::Closed(reason));
}

fn handle(
    line: &str,
    clock: &Mutex<Clock>,
    anchor: Instant,
    out: &mpsc::UnboundedSender<FleetMessage>,
    t3: Option<f64>,
) {
    match serde_json::from_str::<Line>(line) {
        Ok(Line::Event(e)) => {
            let offset = lock(clock).estimate.map(|e| e.offset_us).unwrap_or(0.0);
            let _ = out.send(FleetMessage::Event(Box::new(e.into_event(anchor, offset))));
        }
        Ok(Line::Dropped { count }) => {
            let _ = out.send(FleetMessage::Dropped(count));
        }
        Ok(Line::Pong {
            t0_us, t1_us, t2_us, ..
        }) => {
            if let Some(t3) = t3 {
                lock(clock).add(Probe::new(t0_us as f64, t1_us as f64, t2_us as f64, t3));
            }
        }
        Ok(Line::Hello(_)) => {}
        Err(e) => tracing::warn!(error = %e, "a fleet sent a line that is not an event"),
    }
}

/// The lines a fleet sends.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Line {
    Hello(Hello),
    Event(Box<OwnedEvent>),
    Dropped {
        count: u64,
    },
    Pong {
        id: u64,
        t0_us: u64,
        t1_us: u64,
        t2_us: u64,
    },
}

/// A [`crate::WireEvent`] as read back.
#[derive(Deserialize)]
struct OwnedEvent {
    agent: u32,
    host_ip: Ipv4Addr,
    rpc: Rpc,
    arrived_us: u64,
    completed_us: u64,
    bytes: u64,
    counts: ResourceCounts,
    ops: OpCounts,
    outcomes: StatusCounts,
    port_ids: IdList,
    neighbor_ids: IdList,
    /// Absent from exports before it existed.
    #[serde(default)]
    sg_rule_ids: IdList,
    skipped_local_neighbors: u64,
    decode_us: u64,
    apply_us: u64,
    cpu_us: u64,
    simulated_us: u64,
    total_us: u64,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    fault: Option<String>,
    #[serde(default)]
    queued: Option<crate::event::Queued>,
}

impl OwnedEvent {
    fn into_event(self, anchor: Instant, offset_us: f64) -> AgentEvent {
        let at = |t: u64| {
            let local = t as f64 + offset_us;
            anchor + Duration::from_nanos((local.max(0.0) * 1000.0) as u64)
        };
        AgentEvent {
            agent: self.agent,
            host_ip: self.host_ip,
            rpc: self.rpc,
            arrived: at(self.arrived_us),
            completed: at(self.completed_us),
            bytes: self.bytes,
            counts: self.counts,
            ops: self.ops,
            outcomes: self.outcomes,
            port_ids: self.port_ids,
            neighbor_ids: self.neighbor_ids,
            sg_rule_ids: self.sg_rule_ids,
            skipped_local_neighbors: self.skipped_local_neighbors,
            decode_us: self.decode_us,
            apply_us: self.apply_us,
            cpu_us: self.cpu_us,
            simulated_us: self.simulated_us,
            total_us: self.total_us,
            error: self.error,
            fault: self.fault.as_deref().and_then(crate::fault::static_name),
            queued: self.queued,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_offset_and_delay() {
        // Fleet epoch 1,000 µs after ours; 40 µs each way; 10 µs inside the fleet.
        let (t0, t3) = (5_000.0, 5_090.0);
        let (t1, t2) = (t0 + 40.0 - 1_000.0, t0 + 50.0 - 1_000.0);
        let p = Probe::new(t0, t1, t2, t3);
        assert!((p.offset_us - 1_000.0).abs() < 1e-9, "{p:?}");
        assert!((p.delay_us - 80.0).abs() < 1e-9, "{p:?}");
        // Asymmetric (10 µs out, 70 µs back): the error stays within half the round trip.
        let (t1, t2) = (t0 + 10.0 - 1_000.0, t0 + 20.0 - 1_000.0);
        let p = Probe::new(t0, t1, t2, t3);
        assert!((p.offset_us - 1_000.0).abs() <= p.delay_us / 2.0, "{p:?}");
    }

    #[test]
    fn the_shortest_round_trip_of_the_recent_probes_wins() {
        let mut c = Clock::default();
        c.add(Probe {
            offset_us: 100.0,
            delay_us: 50.0,
        });
        c.add(Probe {
            offset_us: 140.0,
            delay_us: 400.0,
        });
        c.settle();
        let e = c.estimate.unwrap();
        assert_eq!((e.offset_us, e.uncertainty_us, e.probes), (100.0, 25.0, 2));
        // Past the filter's length the old best is forgotten.
        for _ in 0..FILTER {
            c.add(Probe {
                offset_us: 130.0,
                delay_us: 80.0,
            });
        }
        let e = c.estimate.unwrap();
        assert_eq!((e.offset_us, e.uncertainty_us), (130.0, 40.0));
        assert_eq!(e.drift_us(), 30.0);
        assert_eq!(e.max_uncertainty_us, 40.0);
    }
}
