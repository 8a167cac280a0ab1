//! The fault timeline (`[[faults]]`): faults declared in the scenario, seeded, time-boxed and
//! always undone, as Chaos Mesh or toxiproxy users expect.
//!
//! ```toml
//! [[faults]]
//! kind = "slow"            # slow, error, blackhole, reset, partition, crash: on agents
//! at = "5s"                # from the start of `phase` (default: the first measured phase)
//! duration = "10s"
//! hosts = 0.1              # a share of the hosts (seeded), or a list: ["127.5.0.3", …]
//! delay = { median = "5ms", p99 = "200ms" }
//!
//! [[faults]]
//! kind = "restart"         # the embedded control plane, restarted in place
//! at = "20s"
//! duration = "2s"          # how long it is down
//! state = "keep"           # or "drop"
//!
//! [[faults]]
//! kind = "command"         # any target: the user's own restart or kill
//! at = "30s"
//! run = "systemctl restart alcor-dpm"
//! duration = "60s"         # its time limit (default 60 s); it is killed past it
//! ```
//!
//! Agent faults act on the fleet this process runs (see [`fake_agent::fault`] for what each
//! does on the wire); a fleet run apart takes the same entries from `alcor-scale agents
//! --faults FILE`. Each fault's window is recorded with the hosts it hit, and after the run its
//! recovery is measured from the ledger ([`crate::ledger::Ledger::recovery`]) and, for crashes,
//! the time each host took to hold its full state again.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control_plane::{ControlPlane, RestartState};
use fake_agent::{AgentFault, Delay, ErrorReply, Injector};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use reports::summary::{FaultSummary, ResyncSummary};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::correlate::Correlator;
use crate::record::Recorder;

/// A command fault's time limit when it gives no `duration`.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// Recovery after a fault is judged up to this long before the next fault begins.
const NEXT_FAULT_GUARD_S: f64 = 0.5;
/// Hosts listed by name in a fault's summary.
const LISTED_HOSTS: usize = 20;

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Agents take longer per message (`delay`).
    Slow,
    /// Agents fail a `share` of messages (`reply` = status or grpc).
    Error,
    /// Agents accept messages and answer none while it lasts.
    Blackhole,
    /// Agents' connections are reset.
    Reset,
    /// Nothing passes between the control plane and the agents while it lasts.
    Partition,
    /// Agents go down and come back empty.
    Crash,
    /// The embedded control plane restarts in place (`state` = keep or drop).
    Restart,
    /// A command runs (`run`).
    Command,
}

impl FaultKind {
    /// Whether it acts on agents (and so needs `hosts` and a fleet in this process).
    pub fn on_agents(self) -> bool {
        !matches!(self, Self::Restart | Self::Command)
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Slow => "slow",
            Self::Error => "error",
            Self::Blackhole => "blackhole",
            Self::Reset => "reset",
            Self::Partition => "partition",
            Self::Crash => "crash",
            Self::Restart => "restart",
            Self::Command => "command",
        }
    }
}

/// Which hosts a fault hits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HostSelection {
    /// A share of all hosts (0 < share ≤ 1; at least one host), drawn with the fault's seed.
    Share(f64),
    /// These hosts, by address.
    List(Vec<Ipv4Addr>),
}

/// One `[[faults]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// What it does.
    pub kind: FaultKind,
    /// When it begins, from the start of `phase`.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// How long it lasts (a restart: how long the control plane is down; a command: its time
    /// limit). Required for agent faults.
    #[serde(default, with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// The measured phase `at` counts from (default: the first).
    #[serde(default)]
    pub phase: Option<String>,
    /// Agent faults: which hosts.
    #[serde(default)]
    pub hosts: Option<HostSelection>,
    /// Seed of the host draw and of each agent's draws (default: from the scenario's seed).
    #[serde(default)]
    pub seed: Option<u64>,
    /// `slow`: the extra time per message.
    #[serde(default)]
    pub delay: Option<Delay>,
    /// `error`: the share of messages that fail (default 1).
    #[serde(default)]
    pub share: Option<f64>,
    /// `error`: how they fail (default `status`).
    #[serde(default)]
    pub reply: Option<ErrorReply>,
    /// `restart`: keep or drop the control plane's state (default keep).
    #[serde(default)]
    pub state: Option<RestartState>,
    /// `command`: run with `sh -c`.
    #[serde(default)]
    pub run: Option<String>,
}

impl FaultSpec {
    /// The agent fault it sets, for agent kinds.
    pub fn agent_fault(&self) -> Option<AgentFault> {
        Some(match self.kind {
            FaultKind::Slow => AgentFault::Slow(self.delay?),
            FaultKind::Error => AgentFault::Error {
                share: self.share.unwrap_or(1.0),
                reply: self.reply.unwrap_or_default(),
            },
            FaultKind::Blackhole => AgentFault::Blackhole,
            FaultKind::Reset => AgentFault::Reset,
            FaultKind::Partition => AgentFault::Partition,
            FaultKind::Crash => AgentFault::Crash,
            FaultKind::Restart | FaultKind::Command => return None,
        })
    }

    /// What exactly, in words, for the report.
    pub fn detail(&self) -> String {
        match self.kind {
            FaultKind::Slow => match self.delay {
                Some(Delay::Fixed(d)) => format!("+{}", fmt_d(d)),
                Some(Delay::Uniform { min, max }) => format!("+{}…{} uniform", fmt_d(min), fmt_d(max)),
                Some(Delay::LongTail { median, p99 }) => format!("+{} median, {} p99", fmt_d(median), fmt_d(p99)),
                None => String::new(),
            },
            FaultKind::Error => format!(
                "{:.0}% of messages, as {}",
                self.share.unwrap_or(1.0) * 100.0,
                match self.reply.unwrap_or_default() {
                    ErrorReply::Status => "FAILURE statuses",
                    ErrorReply::Grpc => "gRPC INTERNAL",
                }
            ),
            FaultKind::Restart => format!(
                "{} state, down {}",
                match self.state.unwrap_or_default() {
                    RestartState::Keep => "kept",
                    RestartState::Drop => "dropped",
                },
                fmt_d(self.duration.unwrap_or_default())
            ),
            FaultKind::Command => self.run.clone().unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Every problem of this entry, as (field under `prefix`, message).
    pub fn problems(&self, prefix: &str) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let mut bad = |f: &str, m: String| p.push((format!("{prefix}.{f}"), m));
        let agents = self.kind.on_agents();
        if agents && self.duration.is_none_or(|d| d.is_zero()) {
            bad(
                "duration",
                "required for a fault on agents: faults are time-boxed".into(),
            );
        }
        if !agents && self.hosts.is_some() {
            bad("hosts", format!("a `{}` fault does not act on hosts", self.kind.name()));
        }
        match &self.hosts {
            None if agents => bad(
                "hosts",
                "required: a share of the hosts (0.1) or a list of addresses".into(),
            ),
            Some(HostSelection::Share(s)) if !(*s > 0.0 && *s <= 1.0) => {
                bad("hosts", format!("a share must be in (0, 1], got {s}"));
            }
            Some(HostSelection::List(l)) if l.is_empty() => bad("hosts", "the list is empty".into()),
            _ => {}
        }
        let only = |field: &str, present: bool, kinds: &[FaultKind], bad: &mut dyn FnMut(&str, String)| {
            if present && !kinds.contains(&self.kind) {
                bad(field, format!("not used by a `{}` fault", self.kind.name()));
            }
        };
        only("delay", self.delay.is_some(), &[FaultKind::Slow], &mut bad);
        only("share", self.share.is_some(), &[FaultKind::Error], &mut bad);
        only("reply", self.reply.is_some(), &[FaultKind::Error], &mut bad);
        only("state", self.state.is_some(), &[FaultKind::Restart], &mut bad);
        only("run", self.run.is_some(), &[FaultKind::Command], &mut bad);
        match self.kind {
            FaultKind::Slow => match &self.delay {
                None => bad("delay", "required: \"50ms\", { min, max } or { median, p99 }".into()),
                Some(d) => {
                    if let Err(e) = d.check() {
                        bad("delay", e);
                    }
                }
            },
            FaultKind::Error => {
                if let Some(s) = self.share
                    && !(s > 0.0 && s <= 1.0)
                {
                    bad("share", format!("must be in (0, 1], got {s}"));
                }
            }
            FaultKind::Command if self.run.as_deref().is_none_or(|r| r.trim().is_empty()) => {
                bad("run", "required: the command to run".into());
            }
            _ => {}
        }
        p
    }
}

fn fmt_d(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A faults file for a fleet run apart (`alcor-scale agents --faults FILE`): the same
/// `[[faults]]` entries as a scenario's, agent kinds only, `at` counted from the fleet's start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsFile {
    /// Seed of the draws of entries that give none.
    #[serde(default)]
    pub seed: u64,
    /// The faults.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

impl FaultsFile {
    /// Reads and checks `path`; every error names the file, the field and its line.
    pub fn read(path: &std::path::Path) -> Result<Self, crate::scenario::ScenarioErrors> {
        use crate::scenario::{ScenarioErrors, Source};
        let source = Source::read(path).map_err(|e| ScenarioErrors(vec![e]))?;
        let file: Self = source.deserialize().map_err(|e| ScenarioErrors(vec![e]))?;
        // Kinds that are not the fleet's are refused below, once: `problems` is asked as if the
        // control plane were embedded, so that it does not refuse `restart` a second time.
        let mut problems = problems(&file.faults, &[], true, true);
        for (i, f) in file.faults.iter().enumerate() {
            if !f.kind.on_agents() {
                problems.push((
                    format!("faults[{i}].kind"),
                    format!("`{}` is not a fault of agents; run it from the scenario", f.kind.name()),
                ));
            }
            if f.phase.is_some() {
                problems.push((
                    format!("faults[{i}].phase"),
                    "a fleet has no phases: `at` counts from its start".into(),
                ));
            }
        }
        if problems.is_empty() {
            Ok(file)
        } else {
            Err(ScenarioErrors(
                problems.into_iter().map(|(f, m)| source.error_at(&f, m)).collect(),
            ))
        }
    }
}

/// Problems of a whole timeline against the phases it names and the hosts it can reach.
pub fn problems(faults: &[FaultSpec], phases: &[String], agents_here: bool, embedded: bool) -> Vec<(String, String)> {
    let mut p = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        let prefix = format!("faults[{i}]");
        p.extend(f.problems(&prefix));
        if let Some(ph) = &f.phase
            && !phases.is_empty()
            && !phases.contains(ph)
        {
            p.push((format!("{prefix}.phase"), format!("no measured phase is named `{ph}`")));
        }
        if f.kind.on_agents() && !agents_here {
            p.push((
                format!("{prefix}.kind"),
                "agent faults need the fleet this run starts; give a fleet run apart its faults with \
                 `alcor-scale agents --faults FILE`"
                    .into(),
            ));
        }
        if f.kind == FaultKind::Restart && !embedded {
            p.push((
                format!("{prefix}.kind"),
                "`restart` restarts the embedded control plane; for another, use kind = \"command\" with \
                 your own restart"
                    .into(),
            ));
        }
    }
    p
}

/// The hosts (fleet indices) `sel` picks out of `hosts`, drawn with `seed`.
pub fn select(sel: &HostSelection, hosts: &[Ipv4Addr], seed: u64) -> Result<Vec<usize>, String> {
    match sel {
        HostSelection::Share(s) => {
            let n = ((hosts.len() as f64 * s).round() as usize).clamp(1, hosts.len());
            let mut idx: Vec<usize> = (0..hosts.len()).collect();
            idx.shuffle(&mut StdRng::seed_from_u64(seed));
            idx.truncate(n);
            idx.sort_unstable();
            Ok(idx)
        }
        HostSelection::List(l) => l
            .iter()
            .map(|ip| {
                hosts
                    .iter()
                    .position(|h| h == ip)
                    .ok_or_else(|| format!("{ip} is not one of the run's hosts"))
            })
            .collect(),
    }
}

/// When the phase a fault counts from began (`None`: the first measured phase); `None` until
/// it has.
pub type Anchor = Arc<dyn Fn(Option<&str>) -> Option<Instant> + Send + Sync>;

/// The port ids a host (by fleet index) should hold now.
pub type Expected = Arc<dyn Fn(usize) -> Vec<Arc<str>> + Send + Sync>;

/// What the timeline acts on.
#[derive(Clone)]
pub struct Targets {
    /// The fleet this process runs, if any.
    pub fleet: Option<Injector>,
    /// The embedded control plane, if any.
    pub cp: Option<Arc<ControlPlane>>,
    /// The correlator, told what crashed hosts must hold again.
    pub corr: Option<Arc<Correlator>>,
    /// What each host should hold now (port ids, own and as neighbor), for resync tracking.
    pub expected: Option<Expected>,
}

/// A fault's recorded window.
#[derive(Debug, Clone)]
struct Window {
    spec_index: usize,
    kind: FaultKind,
    detail: String,
    hosts: Vec<Ipv4Addr>,
    start: Instant,
    end: Option<Instant>,
    note: Option<String>,
}

/// The running timeline: its task and the windows it recorded.
pub struct Timeline {
    windows: Arc<Mutex<Vec<Window>>>,
    task: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
}

impl Timeline {
    /// Starts every fault of `specs` at its time: `anchor(phase)` gives the instant a phase
    /// started (polled until it has), `None` the first measured phase. `stop` ends the timeline
    /// early; every fault in force is then undone.
    pub fn start(
        specs: Vec<FaultSpec>,
        base_seed: u64,
        anchor: Anchor,
        targets: Targets,
        stop: CancellationToken,
    ) -> Self {
        let windows = Arc::new(Mutex::new(Vec::new()));
        let own_stop = stop.child_token();
        let mut set = tokio::task::JoinSet::new();
        for (i, spec) in specs.into_iter().enumerate() {
            let (windows, anchor, targets, stop) = (windows.clone(), anchor.clone(), targets.clone(), own_stop.clone());
            set.spawn(async move {
                let seed = spec.seed.unwrap_or(base_seed ^ (0x5eed_0000 + i as u64));
                let Some(anchor) = wait_phase(&anchor, spec.phase.as_deref(), &stop).await else {
                    return;
                };
                let begin = anchor + spec.at;
                tokio::select! {
                    _ = tokio::time::sleep_until(begin.into()) => {}
                    _ = stop.cancelled() => return,
                }
                run_one(i, spec, seed, &windows, &targets, &stop).await;
            });
        }
        let task = tokio::spawn(async move { while set.join_next().await.is_some() {} });
        Self {
            windows,
            task,
            stop: own_stop,
        }
    }

    /// Ends the timeline (undoing whatever is in force) and waits for it.
    pub async fn finish(self) -> Vec<RecordedFault> {
        self.stop.cancel();
        let _ = self.task.await;
        let w = self.windows.lock().unwrap_or_else(|e| e.into_inner()).clone();
        w.into_iter()
            .map(|w| RecordedFault {
                spec_index: w.spec_index,
                kind: w.kind,
                detail: w.detail,
                hosts: w.hosts,
                start: w.start,
                end: w.end,
                note: w.note,
            })
            .collect()
    }
}

/// A fault as it happened.
#[derive(Debug, Clone)]
pub struct RecordedFault {
    /// Its entry in `[[faults]]`.
    pub spec_index: usize,
    /// Its kind.
    pub kind: FaultKind,
    /// What exactly.
    pub detail: String,
    /// Hosts it hit.
    pub hosts: Vec<Ipv4Addr>,
    /// When it began.
    pub start: Instant,
    /// When it was undone.
    pub end: Option<Instant>,
    /// Anything a reader must know.
    pub note: Option<String>,
}

/// The instant `phase` (or the first measured phase) started, once it has.
async fn wait_phase(anchor: &Anchor, phase: Option<&str>, stop: &CancellationToken) -> Option<Instant> {
    loop {
        if let Some(at) = anchor(phase) {
            return Some(at);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            _ = stop.cancelled() => return None,
        }
    }
}

fn push_window(windows: &Mutex<Vec<Window>>, w: Window) -> usize {
    let mut g = windows.lock().unwrap_or_else(|e| e.into_inner());
    g.push(w);
    g.len() - 1
}

fn end_window(windows: &Mutex<Vec<Window>>, i: usize, note: Option<String>) -> Instant {
    let now = Instant::now();
    let mut g = windows.lock().unwrap_or_else(|e| e.into_inner());
    g[i].end = Some(now);
    if note.is_some() {
        g[i].note = note;
    }
    now
}

async fn run_one(
    index: usize,
    spec: FaultSpec,
    seed: u64,
    windows: &Mutex<Vec<Window>>,
    targets: &Targets,
    stop: &CancellationToken,
) {
    let detail = spec.detail();
    let window = |hosts: Vec<Ipv4Addr>| Window {
        spec_index: index,
        kind: spec.kind,
        detail: detail.clone(),
        hosts,
        start: Instant::now(),
        end: None,
        note: None,
    };
    match spec.kind {
        FaultKind::Restart => {
            let Some(cp) = &targets.cp else { return };
            let w = push_window(windows, window(Vec::new()));
            // Not cut short by a stop: a control plane left down would not be undone.
            let r = cp
                .restart(
                    spec.state.unwrap_or_default(),
                    spec.duration.unwrap_or_default(),
                    Duration::from_secs(2),
                )
                .await;
            end_window(windows, w, r.err().map(|e| format!("it could not serve again: {e}")));
        }
        FaultKind::Command => {
            let run = spec.run.clone().unwrap_or_default();
            let limit = spec.duration.unwrap_or(COMMAND_LIMIT);
            let w = push_window(windows, window(Vec::new()));
            let note = run_command(&run, limit, stop).await;
            end_window(windows, w, Some(note));
        }
        _ => {
            let (Some(fleet), Some(fault), Some(sel)) = (&targets.fleet, spec.agent_fault(), &spec.hosts) else {
                return;
            };
            let hosts = fleet.hosts();
            let idx = match select(sel, &hosts, seed) {
                Ok(i) => i,
                Err(e) => {
                    let w = push_window(windows, window(Vec::new()));
                    end_window(windows, w, Some(format!("not injected: {e}")));
                    return;
                }
            };
            let picked: Vec<Ipv4Addr> = idx.iter().map(|&i| hosts[i]).collect();
            let w = push_window(windows, window(picked.clone()));
            let handle = fleet.inject(&idx, fault, seed);
            let duration = spec.duration.unwrap_or_default();
            let cut = tokio::select! {
                _ = tokio::time::sleep(duration) => false,
                _ = stop.cancelled() => true,
            };
            // What each crashed host must hold again, as of its return.
            if fault == AgentFault::Crash
                && let (Some(corr), Some(expected)) = (&targets.corr, &targets.expected)
            {
                let back = Instant::now();
                for (&i, &ip) in idx.iter().zip(&picked) {
                    corr.expect_resync(index, ip, back, expected(i).into_iter().collect());
                }
            }
            handle.clear();
            end_window(windows, w, cut.then(|| "undone early: the run stopped".to_owned()));
        }
    }
}

/// Runs `cmd` with `sh -c`, killing it past `limit` or on `stop`; says how it ended.
async fn run_command(cmd: &str, limit: Duration, stop: &CancellationToken) -> String {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return format!("could not start: {e}"),
    };
    tokio::select! {
        r = child.wait() => match r {
            Ok(s) if s.success() => "exited 0".to_owned(),
            Ok(s) => format!("failed: {s}"),
            Err(e) => format!("failed: {e}"),
        },
        _ = tokio::time::sleep(limit) => {
            let _ = child.kill().await;
            format!("killed after its limit of {}", fmt_d(limit))
        }
        _ = stop.cancelled() => {
            let _ = child.kill().await;
            "killed: the run stopped".to_owned()
        }
    }
}

/// The summaries of `faults`: windows in run time, recovery from the ledger, resyncs from the
/// correlator. `run_end` is the end of the judged time (s).
pub fn summarize(faults: &[RecordedFault], rec: &Recorder, corr: &Correlator, run_end: f64) -> Vec<FaultSummary> {
    let ledger = corr.ledger();
    let rule = ledger.rule();
    let rule_text = format!(
        "{:.0}% of each 100 ms of new ports programmed within {} and none failed",
        rule.share * 100.0,
        fmt_d(rule.within)
    );
    let mut sorted: Vec<&RecordedFault> = faults.iter().collect();
    sorted.sort_by_key(|f| f.start);
    let starts: Vec<f64> = sorted.iter().map(|f| rec.since_start(f.start).as_secs_f64()).collect();
    sorted
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let start_s = starts[i];
            let end_s = f.end.map(|e| rec.since_start(e).as_secs_f64());
            // Judged until shortly before the next fault begins (after this one ended: ports
            // started just before it are still in flight when it hits), or the run's end.
            let until = starts
                .iter()
                .skip(i + 1)
                .copied()
                .find(|s| end_s.is_some_and(|e| *s >= e))
                .map(|next| end_s.map_or(next, |e| (next - NEXT_FAULT_GUARD_S).max(e)))
                .unwrap_or(run_end);
            let recovery_s = end_s.and_then(|e| ledger.recovery(e, until));
            let resync = (f.kind == FaultKind::Crash).then(|| {
                let rs = corr.resync_results(f.spec_index);
                let mut took: Vec<f64> = rs.iter().filter_map(|r| r.took).map(|d| d.as_secs_f64()).collect();
                took.sort_by(f64::total_cmp);
                ResyncSummary {
                    hosts: rs.len() as u64,
                    complete: took.len() as u64,
                    expected: rs.iter().map(|r| r.expected as u64).sum(),
                    missing: rs.iter().map(|r| r.missing as u64).sum(),
                    p50_s: (!took.is_empty()).then(|| took[took.len() / 2]),
                    max_s: took.last().copied(),
                }
            });
            FaultSummary {
                kind: f.kind.name().to_owned(),
                detail: f.detail.clone(),
                hosts: f.hosts.len() as u64,
                host_list: f.hosts.iter().take(LISTED_HOSTS).copied().collect(),
                start_s,
                end_s,
                recovery_s,
                recovery_rule: rule_text.clone(),
                resync,
                note: f.note.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> FaultSpec {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn entries_are_checked_per_kind() {
        let ok = spec("kind = \"slow\"\nat = \"1s\"\nduration = \"2s\"\nhosts = 0.5\ndelay = \"5ms\"");
        assert!(ok.problems("f").is_empty(), "{:?}", ok.problems("f"));
        let p = spec("kind = \"slow\"\nat = \"1s\"\nhosts = 2.0\nshare = 0.5").problems("f");
        let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["f.duration", "f.hosts", "f.share", "f.delay"], "{p:?}");
        let p = spec("kind = \"command\"\nat = \"1s\"\nhosts = 0.5").problems("f");
        let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["f.hosts", "f.run"], "{p:?}");
        assert!(toml::from_str::<FaultSpec>("kind = \"melt\"\nat = \"1s\"").is_err());
        assert!(toml::from_str::<FaultSpec>("kind = \"crash\"\nat = \"1s\"\nwhen = 2").is_err());
    }

    #[test]
    fn a_share_of_hosts_is_seeded_and_a_list_must_name_run_hosts() {
        let hosts: Vec<Ipv4Addr> = (1..=20).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
        let a = select(&HostSelection::Share(0.25), &hosts, 7).unwrap();
        assert_eq!(a.len(), 5);
        assert_eq!(a, select(&HostSelection::Share(0.25), &hosts, 7).unwrap());
        assert_ne!(a, select(&HostSelection::Share(0.25), &hosts, 8).unwrap());
        assert_eq!(select(&HostSelection::Share(0.001), &hosts, 7).unwrap().len(), 1);
        assert_eq!(select(&HostSelection::List(vec![hosts[3]]), &hosts, 0).unwrap(), [3]);
        assert!(select(&HostSelection::List(vec![Ipv4Addr::new(10, 0, 0, 1)]), &hosts, 0).is_err());
    }
}
