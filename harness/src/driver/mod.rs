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
use crate::topology::{Model, Op, PortPlan, Subject};

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
    /// The port after it, or the rule.
    pub subject: Subject,
    /// For a port update (move, join, leave), the port before it (to undo one never sent).
    pub prev: Option<PortPlan>,
    /// Hosts that must learn it besides the port's own: neighbor hosts of a port, the hosts
    /// enforcing a rule's group.
    pub neighbors: Vec<Ipv4Addr>,
    /// The address of the port's own host (none for a rule).
    pub own: Option<Ipv4Addr>,
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
        let (subject, prev) = match op {
            Op::Create => (Subject::Port(m.plan_create()), None),
            Op::Update => {
                let (old, new) = m.plan_update()?;
                (Subject::Port(new), Some(old))
            }
            Op::SgJoin | Op::SgLeave => {
                let (old, new) = m.plan_membership(op == Op::SgJoin)?;
                (Subject::Port(new), Some(old))
            }
            Op::Delete => (Subject::Port(m.plan_delete()?), None),
            Op::SgRuleAdd => (Subject::Rule(m.plan_rule_add()?), None),
            Op::SgRuleDelete => (Subject::Rule(m.plan_rule_delete()?), None),
            Op::SgGroupCreate => (Subject::Group(m.plan_group_create()), None),
            Op::SgGroupDelete => (Subject::Group(m.plan_group_delete()?), None),
        };
        let (neighbors, own) = match &subject {
            Subject::Port(port) => {
                let mut n = m.neighbor_hosts(port);
                // A port leaving a group must leave the hosts that held it as a remote member
                // too (the control plane unbinds and binds it again: both sets hear of it).
                if let Some(old) = prev.as_ref().filter(|_| op == Op::SgLeave) {
                    n.extend(m.neighbor_hosts(old));
                    n.sort_unstable();
                    n.dedup();
                }
                (n, Some(m.topology().hosts[port.host]))
            }
            Subject::Rule(r) => (m.group_hosts(r.group), None),
            // An empty group reaches no host.
            Subject::Group(_) => (Vec::new(), None),
        };
        Some(Planned {
            op,
            subject,
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
        self.model().revert(p.op, &p.subject, p.prev.as_ref());
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

    /// Whether the run can tell when `p` is done on the hosts (else its answer is its outcome).
    fn correlated(&self, p: &Planned) -> bool {
        // A control plane's status says nothing new after a rebind or a rule change (a port may
        // still read ACTIVE from before), so only creates are correlated by status. A rule of a
        // group with no bound member reaches no host: its answer is all there is.
        let wanted = match p.op {
            Op::Create => true,
            Op::Delete => false,
            _ => self.corr.source() == Source::Agents && (p.own.is_some() || !p.neighbors.is_empty()),
        };
        self.correlate && wanted
    }

    /// Opens the operation in the ledger and expects the programming of a create or move,
    /// without counting a request (a bulk body is one request for many ports).
    pub fn expect(&self, phase: usize, p: &Planned, start: Instant, wait: bool) -> Option<oneshot::Receiver<Outcome>> {
        self.corr.ledger().open(phase, 1);
        if self.correlated(p) {
            self.corr
                .expect(p.subject.id(), phase, p.op, start, p.own, p.neighbors.clone(), wait)
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
        let id = p.subject.id();
        match (self.correlated(p), result) {
            (true, Ok(())) => self.corr.answered(id),
            (true, Err(kind)) => self.corr.cancel(id, kind),
            (false, Ok(())) => self
                .corr
                .ledger()
                .settle(phase, start, crate::ledger::outcome::OK, &[], None),
            (false, Err(kind)) => self.corr.ledger().settle(
                phase,
                start,
                crate::ledger::outcome::of_request(kind),
                p.own.as_slice(),
                None,
            ),
        }
        let mut m = self.model();
        match (&p.subject, p.op) {
            (Subject::Port(port), Op::Create) => m.create_done(port.seq, ok),
            (Subject::Port(port), op) if op.is_port_update() => m.update_done(port.seq),
            (Subject::Rule(r), Op::SgRuleAdd) => m.rule_added(r, ok),
            (Subject::Group(g), Op::SgGroupCreate) => m.group_created(g, ok),
            _ => {}
        }
    }

    /// Sends a planned operation over `conn` and records it, timed from its intended time `due`.
    pub async fn execute(&self, conn: &mut Connection, phase: usize, p: Planned, due: Instant) {
        let lag = Instant::now().saturating_duration_since(due).as_micros() as u64;
        self.begin(phase, &p, due, Some(lag), false);
        let start = due;
        let r = crate::target::send_op(&self.target, conn, p.op, &p.subject, &p.neighbors).await;
        self.finish(phase, &p, start, &r);
    }
}
