//! Load drivers. Every engine plans operations from the same [`Model`], registers them with the
//! same [`Correlator`] and records into the same [`Recorder`]: one set of figures whichever
//! engine ran.
//!
//! - [`open`]: the harness's own tokio scheduler; requests at intended times, latency from the
//!   intended time (coordinated omission corrected, as wrk2 does).
//! - [`closed`]: goose users, each a tenant issuing its next request when the last is done.
//! - [`step`]: open-model stages at rising rates until a check fails (the knee).

pub mod closed;
pub mod open;
pub mod step;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::correlate::{Correlator, Outcome, Source};
use crate::record::Recorder;
use crate::scenario::Mix;
use crate::target::{Connection, HttpClient, Target};
use crate::topology::{Model, Op, PortPlan};

/// Everything a driver needs, shared by its tasks.
#[derive(Debug)]
pub struct Ctx {
    /// Metrics.
    pub rec: Arc<Recorder>,
    /// Request ↔ agent-message matching.
    pub corr: Arc<Correlator>,
    /// Where ports live.
    pub model: Mutex<Model>,
    /// What is driven.
    pub target: Target,
    /// Makes the harness's own HTTP connections.
    pub http: HttpClient,
    /// Cancelled on Ctrl-C or when a component fails.
    pub stop: CancellationToken,
    /// False when nothing can tell that a port is done (a real agent outside the fleet, or a
    /// Neutron run with `wait_active = false`).
    pub correlate: bool,
}

/// What a phase issues.
#[derive(Debug, Clone, Copy)]
pub enum Work {
    /// Operations drawn from a mix.
    Mix(Mix),
    /// Creates only (setup).
    Create,
    /// Deletes of settled ports only (teardown).
    Delete,
}

/// One planned operation.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The operation.
    pub op: Op,
    /// The port after it.
    pub port: PortPlan,
    /// For a move, the port before it (to undo a move that was never sent).
    pub prev: Option<PortPlan>,
    /// Hosts that must learn it (creates and moves).
    pub neighbors: Vec<Ipv4Addr>,
    /// The address of the port's own host.
    pub own: Ipv4Addr,
}

impl Ctx {
    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Plans the next operation; `None` when there is nothing left to delete.
    pub fn plan(&self, work: Work) -> Option<Planned> {
        let mut m = self.model();
        let op = match work {
            Work::Mix(mix) => m.pick(&mix),
            Work::Create => Op::Create,
            Work::Delete => Op::Delete,
        };
        let (port, prev) = match op {
            Op::Create => (m.plan_create(), None),
            Op::Update => {
                let (old, new) = m.plan_update()?;
                (new, Some(old))
            }
            Op::Delete => (m.plan_delete()?, None),
        };
        let neighbors = m.neighbor_hosts(&port);
        let own = m.topology().hosts[port.host];
        Some(Planned {
            op,
            port,
            prev,
            neighbors,
            own,
        })
    }

    /// `n` operations of `phase` were due and never sent.
    pub fn unsent(&self, phase: usize, n: u64) {
        self.rec.unsent(phase, n);
        self.corr.ledger().unsent(phase, n);
    }

    /// Undoes a planned operation that was never sent.
    pub fn unplan(&self, p: &Planned) {
        self.model().revert(p.op, &p.port, p.prev.as_ref());
    }

    /// Counts the request and, for creates and moves, expects its programming, timed from
    /// `start` (the intended time in the open model; `lag_us` is how late it is sent).
    pub fn begin(
        &self,
        phase: usize,
        p: &Planned,
        start: Instant,
        lag_us: Option<u64>,
        wait: bool,
    ) -> Option<oneshot::Receiver<Outcome>> {
        self.rec.issued(phase, lag_us);
        self.expect(phase, p, start, wait)
    }

    /// Whether the run can tell when `op` is done on the hosts (else its answer is its outcome).
    fn correlated(&self, op: Op) -> bool {
        // A control plane's status says nothing new after a rebind (the port may still read
        // ACTIVE from before), so only creates are correlated by status.
        let wanted = match op {
            Op::Create => true,
            Op::Update => self.corr.source() == Source::Agents,
            Op::Delete => false,
        };
        self.correlate && wanted
    }

    /// Opens the operation in the ledger and expects the programming of a create or move,
    /// without counting a request (a bulk body is one request for many ports).
    pub fn expect(&self, phase: usize, p: &Planned, start: Instant, wait: bool) -> Option<oneshot::Receiver<Outcome>> {
        self.corr.ledger().open(phase, 1);
        if self.correlated(p.op) {
            self.corr
                .expect(&p.port.id, phase, p.op, start, p.own, p.neighbors.clone(), wait)
        } else {
            None
        }
    }

    /// Records the answer and settles the model.
    pub fn finish(&self, phase: usize, p: &Planned, start: Instant, result: &Result<(), String>) {
        self.rec.answered(
            phase,
            p.op.api_metric(),
            start.elapsed().as_micros() as u64,
            result.as_ref().err().map(String::as_str),
        );
        self.settle(phase, p, start, result);
    }

    /// After the answer: the ledger learns the operation's outcome (now, or when its
    /// programming is known), a failed request expects nothing more, and the model learns
    /// whether the port exists.
    pub fn settle(&self, phase: usize, p: &Planned, start: Instant, result: &Result<(), String>) {
        let ok = result.is_ok();
        match (self.correlated(p.op), result) {
            (true, Ok(())) => self.corr.answered(&p.port.id),
            (true, Err(kind)) => self.corr.cancel(&p.port.id, kind),
            (false, Ok(())) => self
                .corr
                .ledger()
                .settle(phase, start, crate::ledger::outcome::OK, &[], None),
            (false, Err(kind)) => {
                self.corr
                    .ledger()
                    .settle(phase, start, crate::ledger::outcome::of_request(kind), &[p.own], None)
            }
        }
        let mut m = self.model();
        match p.op {
            Op::Create => m.create_done(p.port.seq, ok),
            Op::Update => m.update_done(p.port.seq),
            Op::Delete => {}
        }
    }

    /// Sends a planned operation over `conn` and records it, timed from its intended time `due`.
    pub async fn execute(&self, conn: &mut Connection, phase: usize, p: Planned, due: Instant) {
        let lag = Instant::now().saturating_duration_since(due).as_micros() as u64;
        self.begin(phase, &p, due, Some(lag), false);
        let start = due;
        let r = crate::target::send_op(&self.target, conn, p.op, &p.port, &p.neighbors).await;
        self.finish(phase, &p, start, &r);
    }
}
