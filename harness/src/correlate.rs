//! Correlation: which agent message finished which port's programming and fan-out.
//!
//! The driver registers every create (and move) *before* sending it, with the port's own host
//! and the hosts that must learn it ([`crate::topology::Model::neighbor_hosts`]). Agents report
//! every message they processed, with the port ids and neighbor ids it carried and when they
//! finished it; both sides use one monotonic clock (`Instant`), since the fleet runs in this
//! process. A port is *programmed* when its own host has applied a message carrying it, and
//! *converged* when, in addition, every expected neighbor host has applied a message carrying
//! it as a neighbor. Ports not done within the timeout are counted as failures, never dropped.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_agent::AgentEvent;
use reports::samples::AgentSample;
use reports::summary::metric;
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::ledger::{Ledger, RecoveryRule, outcome};
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
    id: Arc<str>,
    phase: usize,
    op: Op,
    start: Instant,
    /// The port's own host; none for a rule, which only has hosts to reach.
    own: Option<Ipv4Addr>,
    programmed: Option<Instant>,
    remaining: FxHashSet<Ipv4Addr>,
    last: Option<Instant>,
    waiter: Option<oneshot::Sender<Outcome>>,
    /// The API answered OK: the ledger takes the correlation's outcome as the operation's.
    answered: bool,
    /// A host answered it with a failure.
    failed_at: Option<Ipv4Addr>,
}

/// The correlation's outcome of an operation whose API answer has not come yet: the answer
/// decides (a failed request is a failed request, whatever its programming did).
#[derive(Debug)]
struct Held {
    phase: usize,
    start: Instant,
    /// The port's own host, charged with a failed request.
    own: Option<Ipv4Addr>,
    what: &'static str,
    hosts: Vec<Ipv4Addr>,
    programmed: Option<Duration>,
}

/// A host back from a crash, and what it must hold again.
#[derive(Debug)]
struct Resync {
    tag: usize,
    since: Instant,
    expected: usize,
    remaining: FxHashSet<Arc<str>>,
    done: Option<Instant>,
}

/// How one host's resync went: entries expected, entries missing, time to full state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResyncResult {
    /// Ports and neighbors it should hold.
    pub expected: usize,
    /// Of those, still missing.
    pub missing: usize,
    /// From its return to full state.
    pub took: Option<Duration>,
}

impl Pending {
    fn done(&self) -> bool {
        (self.own.is_none() || self.programmed.is_some()) && self.remaining.is_empty()
    }

    /// Still waiting on its own host `h`.
    fn awaits_own(&self, h: Ipv4Addr) -> bool {
        self.programmed.is_none() && self.own == Some(h)
    }
}

/// The rule an agent's rule id stands for, and the member port it was expanded for: a control
/// plane that expands a remote-group rule into a rule per member names each `RULE#MEMBER`.
fn split_rule(id: &str) -> (&str, Option<&str>) {
    match id.split_once('#') {
        Some((rule, member)) => (rule, Some(member)),
        None => (id, None),
    }
}

fn rule_of(id: &str) -> &str {
    split_rule(id).0
}

/// What tells the correlator that a port is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Agent messages: `port_programmed` on the own host, `neighbor_converged` on every host.
    Agents,
    /// The control plane's own word, polled ([`Correlator::reached`]): `port_active`, one stage.
    Status,
}

/// Matches requests with agent messages, or with the status the control plane reports.
#[derive(Debug)]
pub struct Correlator {
    rec: Arc<Recorder>,
    state: Mutex<State>,
    timeout: Duration,
    source: Source,
    /// Hosts that went away, each set with the count of ports that failed waiting on it.
    lost: Mutex<Vec<(FxHashSet<Ipv4Addr>, Arc<AtomicU64>)>>,
    /// Every operation's one outcome.
    ledger: Arc<Ledger>,
    /// Hosts back from a crash, by address.
    resyncs: Mutex<FxHashMap<Ipv4Addr, Vec<Resync>>>,
}

#[derive(Debug, Default)]
struct State {
    /// Ports waiting, by id.
    pending: FxHashMap<Arc<str>, Pending>,
    /// Outcomes waiting for their API answer.
    held: FxHashMap<Arc<str>, Held>,
    /// Answers that came while their port was between `pending` and `held` (its outcome being
    /// decided outside the lock): none for a success, else the failed request's outcome. Taken
    /// by that outcome as it settles, so an answer is never lost to the race.
    early: FxHashMap<Arc<str>, Option<&'static str>>,
    /// Every expectation in the order registered, with its start: the sweep takes expired
    /// ports from the front, a chunk per lock, instead of scanning the whole map under the
    /// lock: with a target that programs nothing the map holds a timeout's worth of requests,
    /// and that scan took 16–35 ms a second at 70,000 requests/s, stalling every sender.
    order: VecDeque<(Instant, Arc<str>)>,
}

/// Ports a sweep takes out per lock, so that senders are never held up for long.
const SWEEP_CHUNK: usize = 2048;

impl Correlator {
    /// A correlator of agent messages recording into `rec`; ports not done within `timeout` fail.
    pub fn new(rec: Arc<Recorder>, timeout: Duration) -> Self {
        Self::with_source(rec, timeout, Source::Agents)
    }

    /// A correlator whose ports are done when `source` says so.
    pub fn with_source(rec: Arc<Recorder>, timeout: Duration, source: Source) -> Self {
        Self {
            rec,
            state: Mutex::new(State::default()),
            timeout,
            source,
            lost: Mutex::default(),
            ledger: Arc::new(Ledger::new(Instant::now(), RecoveryRule::default())),
            resyncs: Mutex::default(),
        }
    }

    /// The correlator, settling operations in `ledger`.
    pub fn with_ledger(mut self, ledger: Arc<Ledger>) -> Self {
        self.ledger = ledger;
        self
    }

    /// The ledger it settles operations in.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// What tells it a port is done.
    pub fn source(&self) -> Source {
        self.source
    }

    /// How long a port may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The metric of a stage: the own host (`converged` false) or every host. A security-group
    /// change has one: every host that must enforce it (`sg_programmed.KIND`).
    fn stage_metric(&self, op: Op, converged: bool) -> Option<&'static str> {
        Some(match (self.source, op, converged) {
            (_, Op::SgRuleAdd, true) => "sg_programmed.rule_add",
            (_, Op::SgRuleDelete, true) => "sg_programmed.rule_delete",
            (_, Op::SgJoin, true) => "sg_programmed.join",
            (_, Op::SgLeave, true) => "sg_programmed.leave",
            (_, op, false) if op.is_sg() => return None,
            (Source::Status, Op::Update, _) => "port_active.update",
            (Source::Status, _, _) => metric::PORT_ACTIVE,
            (Source::Agents, Op::Update, false) => "port_programmed.update",
            (Source::Agents, Op::Update, true) => "neighbor_converged.update",
            (Source::Agents, _, false) => metric::PORT_PROGRAMMED,
            (Source::Agents, _, true) => metric::NEIGHBOR_CONVERGED,
        })
    }

    /// The control plane reports `port` done (ACTIVE) as of `at`, which may be up to
    /// `resolution` after it really was (the polling's resolution, recorded beside it).
    pub fn reached(&self, port: &str, at: Instant, resolution: Duration) {
        let done = {
            let mut s = self.lock();
            match s.pending.get_mut(port) {
                Some(p) if p.programmed.is_none() => {
                    p.programmed = Some(at);
                    p.last = Some(at);
                    p.remaining.clear();
                    s.pending.remove(port)
                }
                _ => None,
            }
        };
        if let Some(p) = done {
            self.rec
                .sample(p.phase, metric::POLL_RESOLUTION, resolution.as_micros() as u64);
            self.succeed(p);
        }
    }

    /// Whether `port` is still waiting.
    pub fn is_pending(&self, port: &str) -> bool {
        self.lock().pending.contains_key(port)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Expects `port` to be programmed on `own` and learned by `neighbors` (a rule: applied by
    /// `neighbors`, the hosts enforcing its group), timed from `start`. With `wait`, the
    /// returned receiver gets the outcome.
    #[allow(clippy::too_many_arguments)]
    pub fn expect(
        &self,
        port: &str,
        phase: usize,
        op: Op,
        start: Instant,
        own: Option<Ipv4Addr>,
        neighbors: Vec<Ipv4Addr>,
        wait: bool,
    ) -> Option<oneshot::Receiver<Outcome>> {
        let (tx, rx) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let id: Arc<str> = port.into();
        let p = Pending {
            id: id.clone(),
            phase,
            op,
            start,
            own,
            programmed: None,
            remaining: neighbors.into_iter().collect(),
            last: None,
            waiter: tx,
            answered: false,
            failed_at: None,
        };
        // A port being moved while its create is still converging: the older expectation ends
        // here, as a failure of what it waited for.
        let old = {
            let mut s = self.lock();
            s.order.push_back((start, id.clone()));
            s.pending.insert(id, p)
        };
        if let Some(mut old) = old {
            // Its request was answered long ago (only settled ports move).
            old.answered = true;
            self.fail([old]);
        }
        rx
    }

    /// The request was answered OK: the port's outcome is its programming's, now or when known.
    pub fn answered(&self, port: &str) {
        let held = {
            let mut s = self.lock();
            if let Some(p) = s.pending.get_mut(port) {
                p.answered = true;
                return;
            }
            let held = s.held.remove(port);
            if held.is_none() {
                s.early.insert(port.into(), None);
            }
            held
        };
        if let Some(h) = held {
            self.ledger.settle(h.phase, h.start, h.what, &h.hosts, h.programmed);
        }
    }

    /// The request failed (`kind` as the HTTP client names it): nothing more is expected, and
    /// the failed request is the operation's outcome.
    pub fn cancel(&self, port: &str, kind: &str) {
        let (phase, start, own) = {
            let mut s = self.lock();
            match (s.pending.remove(port), s.held.remove(port)) {
                (Some(p), _) => (p.phase, p.start, p.own),
                (None, Some(h)) => (h.phase, h.start, h.own),
                (None, None) => {
                    s.early.insert(port.into(), Some(outcome::of_request(kind)));
                    return;
                }
            }
        };
        self.ledger
            .settle(phase, start, outcome::of_request(kind), own.as_slice(), None);
    }

    /// Settles `id`'s outcome in the ledger if its request was answered, else holds it for the
    /// answer.
    fn settle_outcome(
        &self,
        id: &str,
        p: &Pending,
        what: &'static str,
        hosts: Vec<Ipv4Addr>,
        programmed: Option<Duration>,
    ) {
        let early = if p.answered {
            Some(None)
        } else {
            let mut s = self.lock();
            let early = s.early.remove(id);
            if early.is_none() {
                s.held.insert(
                    id.into(),
                    Held {
                        phase: p.phase,
                        start: p.start,
                        own: p.own,
                        what,
                        hosts: hosts.clone(),
                        programmed,
                    },
                );
            }
            early
        };
        match early {
            None => {}
            Some(None) => self.ledger.settle(p.phase, p.start, what, &hosts, programmed),
            // The request failed: that is the operation's outcome, as in `cancel`.
            Some(Some(failed)) => self.ledger.settle(p.phase, p.start, failed, p.own.as_slice(), None),
        }
    }

    /// Ends the run's correlation: outcomes still waiting for an answer that will not come are
    /// settled as they stand.
    pub fn close(&self) {
        let held: Vec<Held> = self.lock().held.drain().map(|(_, h)| h).collect();
        for h in held {
            self.ledger.settle(h.phase, h.start, h.what, &h.hosts, h.programmed);
        }
        self.ledger.close();
    }

    /// From now on, notes when `host` (back from a crash at `since`) holds every one of `ids`
    /// again (its ports and the ports it holds as neighbors), under `tag`.
    pub fn expect_resync(&self, tag: usize, host: Ipv4Addr, since: Instant, ids: FxHashSet<Arc<str>>) {
        let r = Resync {
            tag,
            since,
            expected: ids.len(),
            done: ids.is_empty().then_some(since),
            remaining: ids,
        };
        self.resyncs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(host)
            .or_default()
            .push(r);
    }

    /// How the hosts of resync `tag` fared.
    pub fn resync_results(&self, tag: usize) -> Vec<ResyncResult> {
        self.resyncs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flatten()
            .filter(|r| r.tag == tag)
            .map(|r| ResyncResult {
                expected: r.expected,
                missing: r.remaining.len(),
                took: r.done.map(|d| d.saturating_duration_since(r.since)),
            })
            .collect()
    }

    fn track_resync(&self, ev: &AgentEvent) {
        let mut all = self.resyncs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(rs) = all.get_mut(&ev.host_ip) else { return };
        for r in rs.iter_mut().filter(|r| r.done.is_none() && ev.completed >= r.since) {
            for id in ev.port_ids.iter().chain(&ev.neighbor_ids) {
                r.remaining.remove(id);
            }
            // A remote member may come as an expanded rule (`RULE#PORT`) rather than a neighbor.
            for member in ev.sg_rule_ids.iter().filter_map(|id| split_rule(id).1) {
                r.remaining.remove(member);
            }
            if r.remaining.is_empty() {
                r.done = Some(ev.completed);
            }
        }
    }

    /// Ports waiting.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// From now on, counts the ports that fail while waiting on any of `hosts` (as their own
    /// host, or as a neighbor host still to learn them): what a fleet that went away leaves
    /// unaccounted. Returns the counter.
    pub fn watch_lost(&self, hosts: FxHashSet<Ipv4Addr>) -> Arc<AtomicU64> {
        let n = Arc::new(AtomicU64::new(0));
        self.lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((hosts, n.clone()));
        n
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
                cpu_us: Some(ev.cpu_us),
            },
            ev.counts.sg_rule,
            ev.error.is_some(),
            ev.queued,
        );
        if ev.fault == Some("error") {
            self.agent_failed(ev);
            return;
        }
        if ev.error.is_some() {
            return;
        }
        if !self.resyncs.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            self.track_resync(ev);
        }
        let mut finished = Vec::new();
        {
            let mut state = self.lock();
            let pending = &mut state.pending;
            if pending.is_empty() {
                return;
            }
            for id in &ev.port_ids {
                if let Some(p) = pending.get_mut(id)
                    && p.awaits_own(ev.host_ip)
                {
                    p.programmed = Some(ev.completed);
                    p.last = p.last.max(Some(ev.completed));
                    if p.done() {
                        finished.push(id);
                    }
                }
            }
            // Rules: each host that enforces one. An expanded rule's many entries name it once
            // each, in a row: looked up once.
            let mut last_rule = None;
            for id in &ev.sg_rule_ids {
                let (rule, member) = split_rule(id);
                // An expanded rule tells the host of its member port as a neighbor entry would.
                for id in member.into_iter().chain((last_rule != Some(rule)).then_some(rule)) {
                    if let Some(p) = pending.get_mut(id)
                        && p.remaining.remove(&ev.host_ip)
                    {
                        p.last = p.last.max(Some(ev.completed));
                        if p.done() {
                            finished.push(id);
                        }
                    }
                }
                last_rule = Some(rule);
            }
            for id in &ev.neighbor_ids {
                if let Some(p) = pending.get_mut(id)
                    && p.remaining.remove(&ev.host_ip)
                {
                    p.last = p.last.max(Some(ev.completed));
                    if p.done() {
                        finished.push(id);
                    }
                }
            }
            let done: Vec<Pending> = finished.iter().filter_map(|id| pending.remove(*id)).collect();
            drop(state);
            for p in done {
                self.succeed(p);
            }
        }
    }

    /// A host answered a message with a failure: the ports it was to hold (as their own host)
    /// or learn (as a neighbor host) are marked. Not failed yet: another message may still
    /// bring them there (in Alcor's fan-out every later message to that host lists them again);
    /// a port that times out still waiting on that host fails as an agent error there.
    fn agent_failed(&self, ev: &AgentEvent) {
        let mut state = self.lock();
        let pending = &mut state.pending;
        for id in &ev.port_ids {
            if let Some(p) = pending.get_mut(id)
                && p.awaits_own(ev.host_ip)
            {
                p.failed_at.get_or_insert(ev.host_ip);
            }
        }
        for id in &ev.sg_rule_ids {
            if let Some(p) = pending.get_mut(rule_of(id))
                && p.remaining.contains(&ev.host_ip)
            {
                p.failed_at.get_or_insert(ev.host_ip);
            }
        }
        for id in &ev.neighbor_ids {
            if let Some(p) = pending.get_mut(id)
                && p.remaining.contains(&ev.host_ip)
            {
                p.failed_at.get_or_insert(ev.host_ip);
            }
        }
    }

    fn succeed(&self, mut p: Pending) {
        let programmed = p.programmed.map(|t| t.saturating_duration_since(p.start));
        let converged = p.last.map(|t| t.saturating_duration_since(p.start));
        if let Some(d) = programmed
            && let Some(m) = self.stage_metric(p.op, false)
        {
            self.rec.sample(p.phase, m, d.as_micros() as u64);
        }
        if let Some(d) = converged
            && self.source == Source::Agents
            && let Some(m) = self.stage_metric(p.op, true)
        {
            self.rec.sample(p.phase, m, d.as_micros() as u64);
        }
        if let Some(w) = p.waiter.take() {
            let _ = w.send(Outcome { programmed, converged });
        }
        self.settle_outcome(&p.id.clone(), &p, outcome::OK, Vec::new(), programmed);
    }

    /// Counts `ports` as failures of what they still waited for; returns how many. Recorded
    /// with one recorder call per phase: a sweep can fail a second's worth of ports at once.
    fn fail(&self, ports: impl IntoIterator<Item = Pending>) -> usize {
        // (phase, not programmed, not converged); runs have a handful of phases.
        let mut counts: Vec<(usize, u64, u64)> = Vec::new();
        let mut failed = Vec::new();
        let mut n = 0;
        // Held, not copied: a sweep fails ports every interval, and a gone fleet's set can hold
        // tens of thousands of hosts. Nothing below takes it again.
        let lost = self.lost.lock().unwrap_or_else(|e| e.into_inner());
        for mut p in ports {
            n += 1;
            for (hosts, count) in lost.iter() {
                if p.own.is_some_and(|o| p.awaits_own(o) && hosts.contains(&o))
                    || p.remaining.iter().any(|h| hosts.contains(h))
                {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
            // A port programmed but never converged still has a programmed time.
            let programmed = p.programmed.map(|t| t.saturating_duration_since(p.start));
            if let Some(d) = programmed
                && let Some(m) = self.stage_metric(p.op, false)
            {
                self.rec.sample(p.phase, m, d.as_micros() as u64);
            }
            let np = u64::from(programmed.is_none() && p.own.is_some());
            // With one stage (status), there is no convergence to miss.
            let nc = u64::from(self.source == Source::Agents);
            match counts.iter_mut().find(|c| c.0 == p.phase) {
                Some(c) => {
                    c.1 += np;
                    c.2 += nc;
                }
                None => counts.push((p.phase, np, nc)),
            }
            if let Some(w) = p.waiter.take() {
                let _ = w.send(Outcome {
                    programmed,
                    converged: None,
                });
            }
            // Still waiting on the host that answered with a failure: that failure is why.
            let failed_there = p.failed_at.filter(|h| p.awaits_own(*h) || p.remaining.contains(h));
            let (what, hosts) = match (failed_there, p.own.filter(|o| p.awaits_own(*o))) {
                (Some(h), _) => (outcome::AGENT_ERROR, vec![h]),
                (None, Some(own)) => (outcome::NOT_PROGRAMMED, vec![own]),
                (None, None) => (outcome::NOT_CONVERGED, p.remaining.iter().copied().collect()),
            };
            failed.push((p, what, hosts, programmed));
        }
        // Settled after the lost-hosts lock is let go: holding an outcome takes the state's.
        drop(lost);
        for (p, what, hosts, programmed) in failed {
            self.settle_outcome(&p.id.clone(), &p, what, hosts, programmed);
        }
        for (phase, np, nc) in counts {
            self.rec.correlation_failures(phase, np, nc);
        }
        n
    }

    /// Fails every port older than the timeout; returns how many. Also drops the queue's
    /// entries for ports already done, so that it stays short while the target keeps up.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut n = 0;
        loop {
            let mut expired = Vec::new();
            let mut taken = 0;
            {
                let mut s = self.lock();
                let State { pending, order, .. } = &mut *s;
                while taken < SWEEP_CHUNK
                    && let Some((start, id)) = order.front()
                {
                    let start = *start;
                    if now.saturating_duration_since(start) <= self.timeout {
                        // Not expired; past ports already done, the queue need not keep them.
                        if pending.get(&**id).is_some_and(|p| p.start == start) {
                            break;
                        }
                        order.pop_front();
                    } else {
                        let (_, id) = order.pop_front().expect("front exists");
                        // Still this expectation (not done, not replaced by a later one)?
                        if let Some(p) = pending.remove(&*id) {
                            if p.start == start {
                                expired.push(p);
                            } else {
                                pending.insert(id, p);
                            }
                        }
                    }
                    taken += 1;
                }
            }
            n += self.fail(expired);
            if taken < SWEEP_CHUNK {
                return n;
            }
        }
    }

    /// Fails every port still waiting (the run is ending).
    pub fn fail_all(&self) -> usize {
        let all: Vec<Pending> = {
            let mut s = self.lock();
            s.order.clear();
            s.pending.drain().map(|(_, p)| p).collect()
        };
        self.fail(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::PhaseKind;
    use fake_agent::event::Rpc;

    const OWN: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
    const NEIGHBOR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

    fn setup(timeout: Duration) -> (Arc<Recorder>, Correlator, usize) {
        let rec = Arc::new(Recorder::new(Instant::now(), std::time::SystemTime::now(), None).unwrap());
        let phase = rec.begin_phase("load", PhaseKind::Load, "open".into(), None);
        let corr = Correlator::new(rec.clone(), timeout);
        (rec, corr, phase)
    }

    /// `host` applied a message carrying `ports` as ports and `neighbors` as neighbors.
    fn event(host: Ipv4Addr, ports: &[&str], neighbors: &[&str]) -> AgentEvent {
        let now = Instant::now();
        AgentEvent {
            agent: 0,
            host_ip: host,
            rpc: Rpc::PushGoalStatesStream,
            arrived: now,
            completed: now,
            bytes: 100,
            counts: fake_agent::apply::ResourceCounts {
                port: ports.len() as u64,
                neighbor: neighbors.len() as u64,
                ..Default::default()
            },
            ops: Default::default(),
            outcomes: Default::default(),
            port_ids: ports.iter().collect(),
            neighbor_ids: neighbors.iter().collect(),
            sg_rule_ids: Default::default(),
            skipped_local_neighbors: 0,
            decode_us: 1,
            apply_us: 1,
            cpu_us: 2,
            simulated_us: 0,
            total_us: 2,
            error: None,
            fault: None,
            queued: None,
        }
    }

    fn failures(rec: &Recorder) -> (u64, u64) {
        rec.with_phases(|p| (p[0].not_programmed, p[0].not_converged))
    }

    /// A host back from a crash holds a remote member again when it comes as a neighbor or as
    /// an expanded rule naming it.
    #[test]
    fn a_resync_counts_members_that_come_as_expanded_rules() {
        let (_rec, corr, _) = setup(Duration::from_secs(5));
        let since = Instant::now();
        let ids: FxHashSet<Arc<str>> = ["own", "member"].into_iter().map(Arc::from).collect();
        corr.expect_resync(1, OWN, since, ids);
        let mut e = event(OWN, &["own"], &[]);
        e.counts.security_group = 1;
        e.sg_rule_ids = ["rule#member"].iter().collect();
        corr.on_event(&e);
        let r = corr.resync_results(1);
        assert_eq!((r[0].expected, r[0].missing), (2, 0));
        assert!(r[0].took.is_some());
    }

    /// A rule is done when every host enforcing its group applied it, whether it came as the
    /// rule or expanded into a rule per member (`RULE#MEMBER`); it has no own-host stage, and
    /// one that never reached a host fails as not converged there.
    #[test]
    fn a_rule_is_done_when_every_enforcing_host_applied_it() {
        let (rec, corr, phase) = setup(Duration::from_millis(50));
        let rule_event = |host, ids: &[&str]| {
            let mut e = event(host, &[], &[]);
            e.sg_rule_ids = ids.iter().collect();
            e.counts.security_group = 1;
            e.counts.sg_rule = ids.len() as u64;
            e
        };
        corr.expect(
            "r1",
            phase,
            Op::SgRuleAdd,
            Instant::now(),
            None,
            vec![OWN, NEIGHBOR],
            false,
        );
        corr.answered("r1");
        corr.on_event(&rule_event(OWN, &["r1#10.0.0.1", "r1#10.0.0.2", "other"]));
        assert!(corr.is_pending("r1"), "one of two hosts");
        corr.on_event(&rule_event(NEIGHBOR, &["r1"]));
        assert!(!corr.is_pending("r1"));
        rec.with_phases(|p| {
            let st = p[0].stats();
            assert_eq!(st["sg_programmed.rule_add"].count, 1);
            assert!(
                !st.contains_key(metric::PORT_PROGRAMMED),
                "no own-host stage for a rule"
            );
            assert_eq!(st[metric::GOAL_STATE_SG_RULES].count, 2, "both messages carried rules");
        });
        let old = Instant::now() - Duration::from_millis(100);
        corr.ledger().open(phase, 2);
        corr.expect("r2", phase, Op::SgRuleDelete, old, None, vec![OWN, NEIGHBOR], false);
        corr.answered("r2");
        corr.on_event(&rule_event(OWN, &["r2"]));
        assert_eq!(corr.sweep(), 1);
        assert_eq!(failures(&rec), (0, 1), "not converged, never not programmed");
    }

    #[test]
    fn the_sweep_fails_only_what_is_past_the_timeout_and_still_waiting() {
        let (rec, corr, phase) = setup(Duration::from_millis(50));
        let old = Instant::now() - Duration::from_millis(100);
        // Done before the sweep: never a failure.
        corr.expect("done", phase, Op::Create, old, Some(OWN), vec![NEIGHBOR], false);
        corr.on_event(&event(OWN, &["done"], &[]));
        corr.on_event(&event(NEIGHBOR, &[], &["done"]));
        // Programmed, but its neighbor never learned it.
        corr.expect("half", phase, Op::Create, old, Some(OWN), vec![NEIGHBOR], false);
        corr.on_event(&event(OWN, &["half"], &[]));
        // Nothing arrived.
        corr.expect("none", phase, Op::Create, old, Some(OWN), vec![NEIGHBOR], false);
        // Within the timeout: left waiting.
        corr.expect("young", phase, Op::Create, Instant::now(), Some(OWN), vec![], false);
        assert_eq!(corr.pending(), 3);
        assert_eq!(corr.sweep(), 2);
        assert_eq!(failures(&rec), (1, 2), "one not programmed; both not converged");
        assert_eq!(corr.pending(), 1);
        assert_eq!(corr.sweep(), 0, "a second sweep finds nothing new");
        // The young port completes; the queue forgets it without failing it.
        corr.on_event(&event(OWN, &["young"], &[]));
        assert_eq!((corr.pending(), corr.sweep()), (0, 0));
        assert_eq!(corr.lock().order.len(), 0, "entries of ports done are dropped");
        rec.with_phases(|p| assert_eq!(p[0].stats()[metric::PORT_PROGRAMMED].count, 3));
    }

    #[test]
    fn a_replaced_expectation_fails_once_and_the_new_one_keeps_its_own_deadline() {
        let (rec, corr, phase) = setup(Duration::from_millis(50));
        let old = Instant::now() - Duration::from_millis(100);
        corr.expect("p", phase, Op::Create, old, Some(OWN), vec![], false);
        // Moved while its create was still waiting: the create fails now, once.
        corr.expect("p", phase, Op::Update, Instant::now(), Some(NEIGHBOR), vec![], false);
        assert_eq!(failures(&rec), (1, 1));
        // The create's queue entry is past the timeout, but the port now waits for the move.
        assert_eq!(corr.sweep(), 0);
        assert_eq!(corr.pending(), 1);
        corr.on_event(&event(NEIGHBOR, &["p"], &[]));
        assert_eq!((corr.pending(), failures(&rec)), (0, (1, 1)));
    }

    #[test]
    fn a_sweep_larger_than_a_chunk_takes_everything() {
        let (rec, corr, phase) = setup(Duration::from_millis(10));
        let old = Instant::now() - Duration::from_millis(100);
        let n = 2 * SWEEP_CHUNK + 7;
        for i in 0..n {
            corr.expect(&format!("p{i}"), phase, Op::Create, old, Some(OWN), vec![], false);
        }
        assert_eq!(corr.sweep(), n);
        assert_eq!(failures(&rec), (n as u64, n as u64));
        assert_eq!(corr.pending(), 0);
    }

    #[tokio::test]
    async fn a_waiting_user_hears_of_the_failure() {
        let (_rec, corr, phase) = setup(Duration::from_millis(10));
        let old = Instant::now() - Duration::from_millis(100);
        let rx = corr
            .expect("p", phase, Op::Create, old, Some(OWN), vec![], true)
            .unwrap();
        corr.sweep();
        assert_eq!(rx.await.unwrap(), Outcome::default());
    }

    #[test]
    fn a_status_source_has_one_stage_with_its_resolution() {
        let rec = Arc::new(Recorder::new(Instant::now(), std::time::SystemTime::now(), None).unwrap());
        let phase = rec.begin_phase("load", PhaseKind::Load, "open".into(), None);
        let corr = Correlator::with_source(rec.clone(), Duration::from_millis(50), Source::Status);
        let start = Instant::now() - Duration::from_millis(300);
        corr.expect("up", phase, Op::Create, start, Some(OWN), vec![], false);
        corr.expect("never", phase, Op::Create, start, Some(OWN), vec![], false);
        corr.reached("up", start + Duration::from_millis(200), Duration::from_millis(40));
        corr.reached("unknown", Instant::now(), Duration::ZERO);
        assert!(!corr.is_pending("up") && corr.is_pending("never"));
        assert_eq!(corr.sweep(), 1);
        rec.with_phases(|p| {
            let st = p[0].stats();
            assert_eq!(st[metric::PORT_ACTIVE].count, 1);
            assert!(
                (199_000..=201_000).contains(&st[metric::PORT_ACTIVE].p50),
                "{:?}",
                st[metric::PORT_ACTIVE]
            );
            assert_eq!(st[metric::POLL_RESOLUTION].count, 1);
            assert!(!st.contains_key(metric::PORT_PROGRAMMED) && !st.contains_key(metric::NEIGHBOR_CONVERGED));
            // The port never ACTIVE failed its one stage; there is no convergence to miss.
            assert_eq!((p[0].not_programmed, p[0].not_converged), (1, 0));
        });
    }

    #[test]
    fn an_answer_that_comes_while_the_outcome_is_being_decided_is_not_lost() {
        let (_rec, corr, phase) = setup(Duration::from_secs(10));
        let host = Ipv4Addr::new(127, 0, 0, 9);
        let outcomes = |c: &Correlator| c.ledger().summary(|_| true, 0).outcomes;
        for (port, answer) in [("ok-port", None), ("failed-port", Some("http_500"))] {
            corr.ledger().open(phase, 1);
            corr.expect(port, phase, Op::Create, Instant::now(), Some(host), vec![], false);
            // The port's last host applied it: out of `pending`, its outcome decided outside
            // the lock; the API's answer lands in between.
            let p = corr.lock().pending.remove(port).unwrap();
            match answer {
                None => corr.answered(port),
                Some(kind) => corr.cancel(port, kind),
            }
            corr.settle_outcome(port, &p, outcome::OK, Vec::new(), Some(Duration::from_millis(1)));
            let s = corr.lock();
            assert!(s.held.is_empty() && s.early.is_empty(), "{port}: nothing left waiting");
        }
        let o = outcomes(&corr);
        assert_eq!(o.get(outcome::OK), Some(&1), "{o:?}");
        assert_eq!(
            o.get(outcome::of_request("http_500")),
            Some(&1),
            "the failed request wins: {o:?}"
        );
        // The usual orders still settle once each.
        corr.ledger().open(phase, 2);
        corr.expect("a", phase, Op::Create, Instant::now(), Some(host), vec![], false);
        corr.answered("a");
        corr.on_event(&event(host, &["a"], &[]));
        corr.expect("b", phase, Op::Create, Instant::now(), Some(host), vec![], false);
        corr.on_event(&event(host, &["b"], &[]));
        assert_eq!(corr.lock().held.len(), 1, "b waits for its answer");
        corr.answered("b");
        assert!(corr.lock().held.is_empty() && corr.lock().early.is_empty());
        assert_eq!(outcomes(&corr).get(outcome::OK), Some(&3));
    }
}
