//! Correlation: which agent message finished which port's programming and fan-out.
//!
//! The driver registers every create (and move) *before* sending it, with the port's own host
//! and the hosts that must learn it ([`crate::topology::Model::neighbor_hosts`]). Agents report
//! every message they processed, with the port ids and neighbor ids it carried and when they
//! finished it; both sides use one monotonic clock (`Instant`), since the fleet runs in this
//! process. A port is *programmed* when its own host has applied a message carrying it, and
//! *converged* when, in addition, every expected neighbor host has applied a message carrying
//! it as a neighbor. Ports not done within the timeout are counted as failures, never dropped.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_agent::AgentEvent;
use reports::samples::AgentSample;
use reports::summary::metric;
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::record::Recorder;
use crate::topology::Op;

/// What became of one port, for a waiting closed-model user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Request to own host programmed.
    pub programmed: Option<Duration>,
    /// Request to every host done.
    pub converged: Option<Duration>,
}

#[derive(Debug)]
struct Pending {
    phase: usize,
    op: Op,
    start: Instant,
    own: Ipv4Addr,
    programmed: Option<Instant>,
    remaining: FxHashSet<Ipv4Addr>,
    last: Option<Instant>,
    waiter: Option<oneshot::Sender<Outcome>>,
}

impl Pending {
    fn done(&self) -> bool {
        self.programmed.is_some() && self.remaining.is_empty()
    }
}

fn stage_metric(op: Op, converged: bool) -> &'static str {
    match (op, converged) {
        (Op::Update, false) => "port_programmed.update",
        (Op::Update, true) => "neighbor_converged.update",
        (_, false) => metric::PORT_PROGRAMMED,
        (_, true) => metric::NEIGHBOR_CONVERGED,
    }
}

/// Matches requests with agent messages.
#[derive(Debug)]
pub struct Correlator {
    rec: Arc<Recorder>,
    pending: Mutex<FxHashMap<String, Pending>>,
    timeout: Duration,
}

impl Correlator {
    /// A correlator recording into `rec`; ports not done within `timeout` fail.
    pub fn new(rec: Arc<Recorder>, timeout: Duration) -> Self {
        Self {
            rec,
            pending: Mutex::new(FxHashMap::default()),
            timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FxHashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Expects `port` to be programmed on `own` and learned by `neighbors`, timed from
    /// `start`. With `wait`, the returned receiver gets the outcome.
    #[allow(clippy::too_many_arguments)]
    pub fn expect(
        &self,
        port: &str,
        phase: usize,
        op: Op,
        start: Instant,
        own: Ipv4Addr,
        neighbors: Vec<Ipv4Addr>,
        wait: bool,
    ) -> Option<oneshot::Receiver<Outcome>> {
        let (tx, rx) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let p = Pending {
            phase,
            op,
            start,
            own,
            programmed: None,
            remaining: neighbors.into_iter().collect(),
            last: None,
            waiter: tx,
        };
        // A port being moved while its create is still converging: the older expectation ends
        // here, as a failure of what it waited for.
        if let Some(old) = self.lock().insert(port.to_owned(), p) {
            self.fail(old);
        }
        rx
    }

    /// The request failed: nothing will be programmed, and the request's failure is already
    /// counted.
    pub fn cancel(&self, port: &str) {
        self.lock().remove(port);
    }

    /// Ports waiting.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    /// Waits until no port is waiting, `limit` has passed, or `stop` is cancelled.
    pub async fn settle(&self, limit: Duration, stop: &CancellationToken) {
        let until = Instant::now() + limit;
        while self.pending() > 0 && Instant::now() < until && !stop.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Records one agent message and whatever it completes.
    pub fn on_event(&self, ev: &AgentEvent) {
        if ev.is_empty() {
            return;
        }
        self.rec.agent_message(
            AgentSample {
                t_s: self.rec.since_start(ev.completed).as_secs_f64(),
                host: ev.host_ip,
                bytes: ev.bytes,
                neighbors: ev.counts.neighbor,
                ports: ev.counts.port,
                processing_us: ev.total_us,
                decode_us: ev.decode_us,
                apply_us: ev.apply_us,
            },
            ev.error.is_some(),
        );
        if ev.error.is_some() {
            return;
        }
        let mut finished = Vec::new();
        {
            let mut pending = self.lock();
            if pending.is_empty() {
                return;
            }
            for id in &ev.port_ids {
                if let Some(p) = pending.get_mut(id)
                    && p.own == ev.host_ip
                    && p.programmed.is_none()
                {
                    p.programmed = Some(ev.completed);
                    p.last = p.last.max(Some(ev.completed));
                    if p.done() {
                        finished.push(id.clone());
                    }
                }
            }
            for id in &ev.neighbor_ids {
                if let Some(p) = pending.get_mut(id)
                    && p.remaining.remove(&ev.host_ip)
                {
                    p.last = p.last.max(Some(ev.completed));
                    if p.done() {
                        finished.push(id.clone());
                    }
                }
            }
            let done: Vec<Pending> = finished.iter().filter_map(|id| pending.remove(id)).collect();
            drop(pending);
            for p in done {
                self.succeed(p);
            }
        }
    }

    fn succeed(&self, mut p: Pending) {
        let programmed = p.programmed.map(|t| t.saturating_duration_since(p.start));
        let converged = p.last.map(|t| t.saturating_duration_since(p.start));
        if let Some(d) = programmed {
            self.rec
                .sample(p.phase, stage_metric(p.op, false), d.as_micros() as u64);
        }
        if let Some(d) = converged {
            self.rec.sample(p.phase, stage_metric(p.op, true), d.as_micros() as u64);
        }
        if let Some(w) = p.waiter.take() {
            let _ = w.send(Outcome { programmed, converged });
        }
    }

    fn fail(&self, mut p: Pending) {
        let (np, nc) = if p.programmed.is_none() { (1, 1) } else { (0, 1) };
        // A port programmed but never converged still has a programmed time.
        let programmed = p.programmed.map(|t| t.saturating_duration_since(p.start));
        if let Some(d) = programmed {
            self.rec
                .sample(p.phase, stage_metric(p.op, false), d.as_micros() as u64);
        }
        self.rec.correlation_failures(p.phase, np, nc);
        if let Some(w) = p.waiter.take() {
            let _ = w.send(Outcome {
                programmed,
                converged: None,
            });
        }
    }

    /// Fails every port older than the timeout; returns how many.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let expired: Vec<Pending> = self
            .lock()
            .extract_if(|_, p| now.saturating_duration_since(p.start) > self.timeout)
            .map(|(_, p)| p)
            .collect();
        let n = expired.len();
        for p in expired {
            self.fail(p);
        }
        n
    }

    /// Fails every port still waiting (the run is ending).
    pub fn fail_all(&self) -> usize {
        let all: Vec<Pending> = self.lock().drain().map(|(_, p)| p).collect();
        let n = all.len();
        for p in all {
            self.fail(p);
        }
        n
    }
}
