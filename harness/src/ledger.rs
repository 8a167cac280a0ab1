//! The ledger: every operation the run issued (a port created, moved or deleted) ends in exactly
//! one outcome, so that the outcomes always add up to the operations. Success, or the reason it
//! failed: the API's answer by kind, the agent's error, the host it timed out waiting for,
//! never sent, or no answer before the run ended.
//!
//! Each outcome is also placed in 100 ms bins by when its operation started, which is what
//! recovery after a fault is measured on ([`Ledger::recovery`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reports::summary::{HostOutcomes, LedgerSummary};
use rustc_hash::FxHashMap;

/// Outcome names, as the summary and report show them.
pub mod outcome {
    /// Answered OK and, where the run can tell, programmed on its host and every neighbor host.
    pub const OK: &str = "ok";
    /// The API did not answer within the request timeout.
    pub const API_TIMEOUT: &str = "api_timeout";
    /// The API answered 4xx.
    pub const API_4XX: &str = "api_http_4xx";
    /// The API answered 5xx.
    pub const API_5XX: &str = "api_http_5xx";
    /// The API answered another non-success status.
    pub const API_OTHER: &str = "api_http_other";
    /// The connection to the API failed.
    pub const API_TRANSPORT: &str = "api_transport";
    /// An agent answered the goal state with a failure (its own host or a neighbor host).
    pub const AGENT_ERROR: &str = "agent_error";
    /// Its own host never applied it in time.
    pub const NOT_PROGRAMMED: &str = "not_programmed";
    /// Some neighbor host never learned it in time.
    pub const NOT_CONVERGED: &str = "not_converged";
    /// Due, but never sent before its phase's time ran out.
    pub const UNSENT: &str = "unsent";
    /// Sent, and the run ended before its answer (or its programming) was known.
    pub const UNANSWERED: &str = "unanswered";

    /// Every failure outcome, in the order reports list them.
    pub const FAILURES: [&str; 10] = [
        API_TIMEOUT,
        API_4XX,
        API_5XX,
        API_OTHER,
        API_TRANSPORT,
        AGENT_ERROR,
        NOT_PROGRAMMED,
        NOT_CONVERGED,
        UNSENT,
        UNANSWERED,
    ];

    /// The outcome of a request that failed as the HTTP client names it (`http_409`,
    /// `timeout`, `transport`).
    pub fn of_request(kind: &str) -> &'static str {
        match kind {
            "timeout" => API_TIMEOUT,
            "transport" => API_TRANSPORT,
            k if k.starts_with("http_4") => API_4XX,
            k if k.starts_with("http_5") => API_5XX,
            _ => API_OTHER,
        }
    }
}

/// Width of a recovery bin.
pub const BIN: Duration = Duration::from_millis(100);

/// Outcomes of the operations that started within one bin.
#[derive(Debug, Clone, Copy, Default)]
struct Bin {
    /// Correlated operations (those with a programming time to judge).
    judged: u32,
    /// Of those, programmed within the recovery threshold.
    good: u32,
    /// Operations that failed, by reason ([`outcome::FAILURES`]).
    failed: [u32; outcome::FAILURES.len()],
}

impl Bin {
    fn failed(&self) -> u32 {
        // Operations cut off by the run's end say nothing about the system's health.
        let unanswered = outcome::FAILURES.len() - 1;
        self.failed[..unanswered].iter().sum()
    }
}

#[derive(Debug, Default)]
struct PhaseLedger {
    /// Operations issued (or due and unsent).
    touched: u64,
    /// Operations without an outcome yet.
    open: u64,
    outcomes: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default)]
struct Inner {
    phases: Vec<PhaseLedger>,
    hosts: FxHashMap<Ipv4Addr, BTreeMap<&'static str, u64>>,
    bins: Vec<Bin>,
    /// Outcomes recorded for operations that had none open: a double count, reported.
    overdrawn: u64,
}

/// How a run judges "programmed within the SLO again" after a fault.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryRule {
    /// A port is good when programmed within this.
    pub within: Duration,
    /// A bin is healthy when at least this share of its ports are good and none failed.
    pub share: f64,
}

impl Default for RecoveryRule {
    /// 99 % within 1 s: for a scenario with no check on the first stage.
    fn default() -> Self {
        Self {
            within: Duration::from_secs(1),
            share: 0.99,
        }
    }
}

/// Every operation's one outcome; see the module documentation.
#[derive(Debug)]
pub struct Ledger {
    start: Instant,
    rule: RecoveryRule,
    inner: Mutex<Inner>,
}

impl Ledger {
    /// An empty ledger of a run that started at `start`.
    pub fn new(start: Instant, rule: RecoveryRule) -> Self {
        Self {
            start,
            rule,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rule recovery is judged by.
    pub fn rule(&self) -> RecoveryRule {
        self.rule
    }

    /// An operation of `phase` is issued: it now owes one outcome.
    pub fn open(&self, phase: usize, n: u64) {
        let mut g = self.lock();
        let p = phase_mut(&mut g.phases, phase);
        p.touched += n;
        p.open += n;
    }

    /// `n` operations of `phase` were due and never sent: issued and settled at once.
    pub fn unsent(&self, phase: usize, n: u64) {
        if n == 0 {
            return;
        }
        let mut g = self.lock();
        let p = phase_mut(&mut g.phases, phase);
        p.touched += n;
        *p.outcomes.entry(outcome::UNSENT).or_default() += n;
    }

    /// The one outcome of an operation of `phase` that started at `start`: `what` (see
    /// [`outcome`]), at `hosts` (its own host for most failures, every host still to learn it
    /// for `not_converged`), with its programming time when it has one.
    pub fn settle(
        &self,
        phase: usize,
        start: Instant,
        what: &'static str,
        hosts: &[Ipv4Addr],
        programmed: Option<Duration>,
    ) {
        let bin = (start.saturating_duration_since(self.start).as_millis() / BIN.as_millis()) as usize;
        let mut g = self.lock();
        let p = phase_mut(&mut g.phases, phase);
        if p.open == 0 {
            g.overdrawn += 1;
            return;
        }
        p.open -= 1;
        *p.outcomes.entry(what).or_default() += 1;
        if what != outcome::OK {
            for h in hosts {
                *g.hosts.entry(*h).or_default().entry(what).or_default() += 1;
            }
        }
        if g.bins.len() <= bin {
            g.bins.resize(bin + 1, Bin::default());
        }
        let b = &mut g.bins[bin];
        if what == outcome::OK {
            if let Some(d) = programmed {
                b.judged += 1;
                if d <= self.rule.within {
                    b.good += 1;
                }
            }
        } else if let Some(i) = outcome::FAILURES.iter().position(|f| *f == what) {
            b.failed[i] += 1;
        }
    }

    /// Closes the ledger: whatever is still open had no answer before the run ended.
    pub fn close(&self) {
        let mut g = self.lock();
        for p in &mut g.phases {
            if p.open > 0 {
                *p.outcomes.entry(outcome::UNANSWERED).or_default() += p.open;
                p.open = 0;
            }
        }
    }

    /// Outcomes of the phases `keep` selects (by index), with the hosts that failed most.
    pub fn summary(&self, keep: impl Fn(usize) -> bool, top_hosts: usize) -> LedgerSummary {
        let g = self.lock();
        let mut s = LedgerSummary::default();
        for (_, p) in g.phases.iter().enumerate().filter(|(i, _)| keep(*i)) {
            s.operations += p.touched;
            s.open += p.open;
            for (k, v) in &p.outcomes {
                *s.outcomes.entry((*k).to_owned()).or_default() += v;
            }
        }
        s.settled = s.outcomes.values().sum();
        s.double_counted = g.overdrawn;
        let mut hosts: Vec<(Ipv4Addr, u64, &BTreeMap<&'static str, u64>)> =
            g.hosts.iter().map(|(h, m)| (*h, m.values().sum(), m)).collect();
        s.hosts_failing = hosts.len() as u64;
        hosts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        s.by_host = hosts
            .into_iter()
            .take(top_hosts)
            .map(|(host, failed, m)| HostOutcomes {
                host,
                failed,
                by_reason: m.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            })
            .collect();
        s
    }

    /// Failed operations per second of the run by when they started, per reason: rows of
    /// (second, reason, count), only where the count is not 0.
    pub fn failures_per_second(&self) -> Vec<(u64, &'static str, u64)> {
        let g = self.lock();
        let per = (1000 / BIN.as_millis()) as usize;
        let mut out = Vec::new();
        for (sec, chunk) in g.bins.chunks(per).enumerate() {
            for (i, reason) in outcome::FAILURES.iter().enumerate() {
                let n: u64 = chunk.iter().map(|b| u64::from(b.failed[i])).sum();
                if n > 0 {
                    out.push((sec as u64, *reason, n));
                }
            }
        }
        out
    }

    /// Recovery after a fault that ended at `ended` (s since the run's start), judged until
    /// `until` (s; the next fault's start or the run's end): how long until every operation
    /// started from then on was healthy (none failed, and at least the rule's share of each
    /// bin programmed within its threshold). `None`: never, or nothing started after it.
    pub fn recovery(&self, ended: f64, until: f64) -> Option<f64> {
        let g = self.lock();
        let bin_s = BIN.as_secs_f64();
        let first = (ended / bin_s).floor().max(0.0) as usize;
        let last = ((until / bin_s).ceil() as usize).min(g.bins.len());
        if first >= last {
            return None;
        }
        let healthy =
            |b: &Bin| b.failed() == 0 && (b.judged == 0 || f64::from(b.good) >= self.rule.share * f64::from(b.judged));
        let busy = |b: &Bin| b.judged + b.failed() > 0;
        // The first bin from which every busy bin is healthy, and that is busy itself.
        let mut from = None;
        for i in (first..last).rev() {
            let b = &g.bins[i];
            if !healthy(b) {
                break;
            }
            if busy(b) {
                from = Some(i);
            }
        }
        from.map(|i| (i as f64 * bin_s - ended).max(0.0))
    }
}

fn phase_mut(phases: &mut Vec<PhaseLedger>, phase: usize) -> &mut PhaseLedger {
    if phases.len() <= phase {
        phases.resize_with(phase + 1, PhaseLedger::default);
    }
    &mut phases[phase]
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);

    fn ledger(start: Instant) -> Ledger {
        Ledger::new(
            start,
            RecoveryRule {
                within: Duration::from_millis(50),
                share: 0.99,
            },
        )
    }

    #[test]
    fn outcomes_add_up_and_a_second_outcome_is_caught() {
        let start = Instant::now();
        let l = ledger(start);
        l.open(0, 5);
        l.unsent(0, 2);
        l.settle(0, start, outcome::OK, &[H], Some(Duration::from_millis(1)));
        l.settle(0, start, outcome::AGENT_ERROR, &[H], None);
        l.settle(0, start, outcome::NOT_CONVERGED, &[H, Ipv4Addr::LOCALHOST], None);
        let s = l.summary(|_| true, 10);
        assert_eq!((s.operations, s.settled, s.open), (7, 5, 2));
        l.close();
        let s = l.summary(|_| true, 10);
        assert_eq!(s.operations, s.settled);
        assert_eq!(s.outcomes[outcome::UNANSWERED], 2);
        assert_eq!(s.outcomes[outcome::UNSENT], 2);
        assert_eq!(s.by_host[0].host, H);
        assert_eq!(s.by_host[0].failed, 2);
        assert_eq!(s.hosts_failing, 2);
        // Nothing is open any more: another outcome is a double count, not a new operation.
        l.settle(0, start, outcome::OK, &[H], None);
        let s = l.summary(|_| true, 10);
        assert_eq!((s.settled, s.double_counted), (7, 1));
    }

    #[test]
    fn recovery_is_the_first_bin_after_which_every_bin_is_healthy() {
        let start = Instant::now();
        let l = ledger(start);
        let at = |ms: u64| start + Duration::from_millis(ms);
        let fast = Some(Duration::from_millis(5));
        let slow = Some(Duration::from_millis(500));
        l.open(0, 100);
        // Fault 1.0–2.0 s: failures inside; after it, slow until 2.35 s, then fast.
        for ms in (1000..2000).step_by(100) {
            l.settle(0, at(ms), outcome::NOT_PROGRAMMED, &[H], None);
        }
        for ms in [2000, 2100, 2200, 2300] {
            l.settle(0, at(ms), outcome::OK, &[H], slow);
        }
        for ms in (2400..3000).step_by(100) {
            l.settle(0, at(ms), outcome::OK, &[H], fast);
        }
        let r = l.recovery(2.0, 3.0).unwrap();
        assert!((r - 0.4).abs() < 1e-9, "{r}");
        // A later relapse means it had not recovered before it.
        l.settle(0, at(2950), outcome::API_5XX, &[H], None);
        assert_eq!(l.recovery(2.0, 3.0), None);
        // Nothing started after the window: no figure.
        assert_eq!(l.recovery(5.0, 6.0), None);
    }
}
