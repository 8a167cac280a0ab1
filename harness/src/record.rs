//! The recorder: µs HdrHistograms per metric for each phase and for each interval, request and
//! error counts, per-host load, and the streamed files of the run folder (interval log and
//! agent samples), so that what was measured is on disk even if the run is cut short.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reports::health::{HealthRow, HealthWriter};
use reports::hlog::HlogWriter;
use reports::samples::{AgentSample, HostRow, SampleWriter};
use reports::summary::{HostLoad, Stats, failure, metric};
use rustc_hash::FxHashMap;

use crate::usage::{Usage, UsageSampler};

/// Kind of phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseKind {
    /// Building the topology; not in the headline figures.
    Setup,
    /// Measured.
    Load,
    /// Deleting what is left; not in the headline figures.
    Teardown,
    /// A step-search stage past the knee: it broke a check by design; shown, not in the
    /// headline figures.
    Overload,
    /// Measured for contrast (`contrast = true`): shown beside the load phases, not in the
    /// headline figures, not judged.
    Contrast,
}

impl PhaseKind {
    /// `setup`, `load`, `teardown`, `overload`, `contrast`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Load => "load",
            Self::Teardown => "teardown",
            Self::Overload => "overload",
            Self::Contrast => "contrast",
        }
    }
}

type Metrics = FxHashMap<&'static str, Histogram<u64>>;

/// Interval-log tag counting requests issued (zero-valued samples; only counts matter).
pub const ISSUED: &str = "issued";
/// Interval-log tag counting failed requests (zero-valued samples).
pub const ERRORS: &str = "errors";

fn new_histogram() -> Histogram<u64> {
    // Auto-resizing, 3 significant digits: µs from 1 to hours without a configured bound.
    Histogram::new(3).expect("3 significant digits is valid")
}

fn record_into(m: &mut Metrics, metric: &'static str, v: u64) {
    // Auto-resize means record only fails on u64 overflow, which µs cannot reach.
    let _ = m.entry(metric).or_insert_with(new_histogram).record(v);
}

fn stats_of(m: &Metrics) -> BTreeMap<String, Stats> {
    m.iter().map(|(k, h)| ((*k).to_owned(), Stats::of(h))).collect()
}

/// What a phase was asked to do: its rate stages, its length, its request budget. The progress
/// display tells from it the stage running and the time left.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Open-model stages: rate per second and length, in order.
    pub stages: Vec<(f64, Duration)>,
    /// The phase ends at this length.
    pub length: Option<Duration>,
    /// The phase ends after this many requests.
    pub requests: Option<u64>,
}

/// What the recorder knows of one phase.
#[derive(Debug)]
pub struct PhaseRecord {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: PhaseKind,
    /// Model description.
    pub model: String,
    /// Start, since the run started.
    pub started: Duration,
    /// End, since the run started.
    pub ended: Option<Duration>,
    /// Repeat number under `run --repeat` (measured phases only).
    pub repeat: Option<u32>,
    /// Ports in the topology when the phase ran, for scenarios that grow it.
    pub topology_ports: Option<u64>,
    /// Requests issued (sent).
    pub requests: u64,
    /// Requests answered (success or not).
    pub completed: u64,
    /// Requests that succeeded.
    pub succeeded: u64,
    /// Requests failed.
    pub errors: u64,
    /// Open model: requests whose intended time fell in the phase.
    pub due: u64,
    /// Open model: requests due and never sent.
    pub unsent: u64,
    /// Every failure by kind ([`failure`]), each counted once.
    pub failures: BTreeMap<&'static str, u64>,
    /// Created ports never programmed in time.
    pub not_programmed: u64,
    /// Created ports never converged in time.
    pub not_converged: u64,
    /// Agent messages processed, and their bytes.
    pub messages: u64,
    /// Bytes of those messages.
    pub bytes: u64,
    /// Agent messages that failed to decode.
    pub agent_errors: u64,
    /// What the phase was asked to do: its offered rate, its stages and time left.
    pub plan: Plan,
    /// Failed requests by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    metrics: Metrics,
}

impl PhaseRecord {
    /// The phase's metrics.
    pub fn stats(&self) -> BTreeMap<String, Stats> {
        stats_of(&self.metrics)
    }

    /// One metric's histogram, if it has one.
    pub fn histogram(&self, metric: &str) -> Option<&Histogram<u64>> {
        self.metrics.get(metric)
    }

    /// Length so far.
    pub fn length(&self, now: Duration) -> Duration {
        self.ended.unwrap_or(now).saturating_sub(self.started)
    }
}

/// A snapshot for the live progress line: counts so far in the phase, rates and latencies of
/// the last interval (a cumulative p99 hides a stage that is failing now behind the ones before).
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Current phase name.
    pub phase: String,
    /// Its load model as the scenario asked for it (`open: 200/s for 60s`).
    pub model: String,
    /// Time since the phase began.
    pub elapsed: Duration,
    /// Requests issued in it.
    pub requests: u64,
    /// Requests due (open model) or sent (closed) per second over the last interval.
    pub offered: f64,
    /// Requests answered per second over the last interval.
    pub rate: f64,
    /// p99 of `api` over the last interval, µs; `None` without samples.
    pub api_p99_us: Option<u64>,
    /// p99 of `port_programmed` (or `port_active`) over the last interval, µs.
    pub programmed_p99_us: Option<u64>,
    /// Failed requests so far in the phase.
    pub failed: u64,
    /// Created ports not converged in time so far in the phase.
    pub not_converged: u64,
    /// Due requests never sent so far in the phase.
    pub unsent: u64,
    /// Ports awaiting correlation.
    pub pending: usize,
    /// Where the phase stands against its plan.
    pub position: Position,
}

/// The open-model stage running.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// Its number, from 1.
    pub number: usize,
    /// How many stages the phase has.
    pub of: usize,
    /// Its rate per second.
    pub rate: f64,
}

/// Where a phase stands against its [`Plan`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Position {
    /// The open-model stage running.
    pub stage: Option<Stage>,
    /// How far through the phase, 0 to 1, when its length or budget is known.
    pub done: Option<f64>,
    /// Time left in the phase: by its length, or its budget at the last interval's rate.
    pub left: Option<Duration>,
}

impl Plan {
    /// The rate asked for over the whole phase (its stages weighted by their lengths), for
    /// open-model phases; whatever was achieved.
    pub fn offered_rps(&self) -> Option<f64> {
        if self.stages.is_empty() {
            return None;
        }
        let secs: f64 = self.stages.iter().map(|(_, d)| d.as_secs_f64()).sum();
        let asked: f64 = self.stages.iter().map(|(r, d)| r * d.as_secs_f64()).sum();
        Some(if secs > 0.0 { asked / secs } else { 0.0 })
    }

    /// The stages as they ran for a phase that began at `started` (since the run's start), for
    /// the summary; none for a phase of one stage.
    pub fn rate_stages(&self, started: Duration) -> Vec<reports::summary::RateStage> {
        if self.stages.len() < 2 {
            return Vec::new();
        }
        self.stages
            .iter()
            .scan(started, |at, &(rate, d)| {
                let stage = reports::summary::RateStage {
                    rate_per_s: rate,
                    started_s: at.as_secs_f64(),
                    duration_s: d.as_secs_f64(),
                };
                *at += d;
                Some(stage)
            })
            .collect()
    }

    /// The stage, the share done and the time left of a phase `elapsed` into it, having sent
    /// `requests` and answering `rate` per second.
    pub fn position(&self, elapsed: Duration, requests: u64, rate: f64) -> Position {
        let mut stage = None;
        let mut end = Duration::ZERO;
        for (i, &(r, d)) in self.stages.iter().enumerate() {
            end += d;
            if elapsed < end || i + 1 == self.stages.len() {
                stage = Some(Stage {
                    number: i + 1,
                    of: self.stages.len(),
                    rate: r,
                });
                break;
            }
        }
        if let Some(len) = self.length.filter(|l| !l.is_zero()) {
            let done = (elapsed.as_secs_f64() / len.as_secs_f64()).min(1.0);
            return Position {
                stage,
                done: Some(done),
                left: Some(len.saturating_sub(elapsed)),
            };
        }
        if let Some(n) = self.requests.filter(|n| *n > 0) {
            let done = (requests as f64 / n as f64).min(1.0);
            let left = (rate > 0.0).then(|| Duration::from_secs_f64(n.saturating_sub(requests) as f64 / rate));
            return Position {
                stage,
                done: Some(done),
                left,
            };
        }
        Position {
            stage,
            ..Position::default()
        }
    }
}

/// Counts of the current interval, for `generator.csv`.
#[derive(Default)]
struct IntervalCounts {
    due: u64,
    sent: u64,
    completed: u64,
    failed: u64,
}

struct Inner {
    phases: Vec<PhaseRecord>,
    interval: Metrics,
    interval_start: Duration,
    counts: IntervalCounts,
    /// The last whole interval's api / programmed p99 (µs), for the progress line (its rates
    /// are the last health row's).
    last_p99: (Option<u64>, Option<u64>),
    usage: UsageSampler,
    health: Vec<HealthRow>,
    health_out: Option<HealthWriter>,
    hlog: Option<HlogWriter>,
    samples: Option<SampleWriter>,
    hosts: FxHashMap<Ipv4Addr, HostRow>,
    write_error: Option<String>,
    queue: QueueCounts,
}

/// What agents on the MQ southbound saw of the broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Messages consumed.
    pub consumed: u64,
    /// Of which delivered more than once.
    pub redelivered: u64,
}

impl Inner {
    fn sample(&mut self, phase: usize, metric: &'static str, value: u64) {
        if let Some(p) = self.phases.get_mut(phase) {
            record_into(&mut p.metrics, metric, value);
        }
        record_into(&mut self.interval, metric, value);
    }
}

/// Shared by the drivers and the correlator.
pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder whose clock starts at `start`, streaming to files in `dir` when given.
    pub fn new(start: Instant, wall_start: std::time::SystemTime, dir: Option<&Path>) -> Result<Self, reports::Error> {
        let (hlog, samples, health_out) = match dir {
            Some(d) => (
                Some(HlogWriter::create(
                    &d.join(reports::files::INTERVALS),
                    wall_start,
                    "alcor-scale interval histograms",
                )?),
                Some(SampleWriter::create(&d.join(reports::files::AGENT_SAMPLES))?),
                Some(HealthWriter::create(&d.join(reports::files::GENERATOR))?),
            ),
            None => (None, None, None),
        };
        Ok(Self {
            start,
            inner: Mutex::new(Inner {
                phases: Vec::new(),
                interval: Metrics::default(),
                interval_start: Duration::ZERO,
                counts: IntervalCounts::default(),
                last_p99: (None, None),
                usage: UsageSampler::new(),
                health: Vec::new(),
                health_out,
                hlog,
                samples,
                hosts: FxHashMap::default(),
                write_error: None,
                queue: QueueCounts::default(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// `at` as time since the run started.
    pub fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.start)
    }

    /// Starts a phase (ending the previous one); returns its index. The current interval closes
    /// first, so that no interval spans two phases.
    pub fn begin_phase(&self, name: &str, kind: PhaseKind, model: String, repeat: Option<u32>) -> usize {
        self.rotate();
        let now = self.elapsed();
        let mut g = self.lock();
        if let Some(last) = g.phases.last_mut()
            && last.ended.is_none()
        {
            last.ended = Some(now);
        }
        g.phases.push(PhaseRecord {
            name: name.to_owned(),
            kind,
            model,
            started: now,
            ended: None,
            repeat,
            topology_ports: None,
            requests: 0,
            completed: 0,
            succeeded: 0,
            errors: 0,
            due: 0,
            unsent: 0,
            failures: BTreeMap::new(),
            not_programmed: 0,
            not_converged: 0,
            messages: 0,
            bytes: 0,
            agent_errors: 0,
            plan: Plan::default(),
            errors_by_kind: BTreeMap::new(),
            metrics: Metrics::default(),
        });
        g.phases.len() - 1
    }

    /// Ends the current phase.
    pub fn end_phase(&self) {
        let now = self.elapsed();
        if let Some(p) = self.lock().phases.last_mut()
            && p.ended.is_none()
        {
            p.ended = Some(now);
        }
    }

    /// Notes the topology's size on the last phase (a scenario that grows it).
    pub fn set_topology_ports(&self, ports: u64) {
        if let Some(p) = self.lock().phases.last_mut() {
            p.topology_ports = Some(ports);
        }
    }

    /// A sample of `metric` for the phase that was running at `at`: figures the target reports
    /// of itself carry no phase, only when their request arrived, and may reach the recorder
    /// after the next phase began.
    pub fn sample_at(&self, at: Instant, metric: &'static str, value: u64) {
        let t = self.since_start(at);
        let mut g = self.lock();
        let phase = g.phases.iter().rposition(|p| p.started <= t).unwrap_or(0);
        g.sample(phase, metric, value);
    }

    /// Changes a phase's kind (a step stage found past the knee).
    pub fn set_kind(&self, phase: usize, kind: PhaseKind) {
        if let Some(p) = self.lock().phases.get_mut(phase) {
            p.kind = kind;
        }
    }

    /// Sets what a phase was asked to do (its stages, length, budget).
    pub fn set_plan(&self, phase: usize, plan: Plan) {
        if let Some(p) = self.lock().phases.get_mut(phase) {
            p.plan = plan;
        }
    }

    /// A request was issued; `lag_us` is how late the open model sent it against its intended
    /// time (None for models without intended times).
    pub fn issued(&self, phase: usize, lag_us: Option<u64>) {
        let mut g = self.lock();
        let Inner {
            phases,
            interval,
            counts,
            ..
        } = &mut *g;
        counts.sent += 1;
        // One zero-valued sample per request: interval counts of `issued` give the issue rate.
        record_into(interval, ISSUED, 0);
        if let Some(lag) = lag_us {
            record_into(interval, metric::SEND_LAG, lag);
        }
        if let Some(p) = phases.get_mut(phase) {
            p.requests += 1;
            if let Some(lag) = lag_us {
                record_into(&mut p.metrics, metric::SEND_LAG, lag);
            }
        }
    }

    /// `n` open-model requests fell due (sent or not).
    pub fn due(&self, phase: usize, n: u64) {
        let mut g = self.lock();
        g.counts.due += n;
        if let Some(p) = g.phases.get_mut(phase) {
            p.due += n;
        }
    }

    /// `n` due requests were never sent: the phase's time ran out first.
    pub fn unsent(&self, phase: usize, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(p) = self.lock().phases.get_mut(phase) {
            p.unsent += n;
            *p.failures.entry(failure::UNSENT).or_default() += n;
        }
    }

    /// A request was answered: its latency under `api` and `api.<op>`, or its failure.
    pub fn answered(&self, phase: usize, op_metric: &'static str, latency_us: u64, error: Option<&str>) {
        let mut g = self.lock();
        let Inner {
            phases,
            interval,
            counts,
            ..
        } = &mut *g;
        counts.completed += 1;
        let Some(p) = phases.get_mut(phase) else { return };
        p.completed += 1;
        match error {
            None => {
                p.succeeded += 1;
                for m in [metric::API, op_metric] {
                    record_into(&mut p.metrics, m, latency_us);
                    record_into(interval, m, latency_us);
                }
            }
            Some(kind) => {
                counts.failed += 1;
                record_into(interval, ERRORS, 0);
                p.errors += 1;
                *p.errors_by_kind.entry(kind.to_owned()).or_default() += 1;
                *p.failures.entry(failure::of_request(kind)).or_default() += 1;
            }
        }
    }

    /// A latency or size sample of `metric` for a request of `phase`.
    pub fn sample(&self, phase: usize, metric: &'static str, value: u64) {
        self.lock().sample(phase, metric, value);
    }

    /// Created ports that never programmed / converged in time (`not_converged` counts every
    /// such port, `not_programmed` those of them whose own host never applied it either).
    pub fn correlation_failures(&self, phase: usize, not_programmed: u64, not_converged: u64) {
        if let Some(p) = self.lock().phases.get_mut(phase) {
            p.not_programmed += not_programmed;
            p.not_converged += not_converged;
            // Each port once, under the first thing it missed.
            for (kind, n) in [
                (failure::NOT_PROGRAMMED, not_programmed),
                (failure::NOT_CONVERGED, not_converged.saturating_sub(not_programmed)),
            ] {
                if n > 0 {
                    *p.failures.entry(kind).or_default() += n;
                }
            }
        }
    }

    /// One message an agent processed, carrying `sg_rules` security-group rules; `queued` when
    /// it was consumed from a broker (how long it waited there and how many were behind it).
    pub fn agent_message(&self, sample: AgentSample, sg_rules: u64, failed: bool, queued: Option<fake_agent::Queued>) {
        let mut g = self.lock();
        let phase = g.phases.len().saturating_sub(1);
        let Inner {
            phases,
            interval,
            samples,
            hosts,
            write_error,
            queue,
            ..
        } = &mut *g;
        if let Some(p) = phases.get_mut(phase) {
            p.messages += 1;
            p.bytes += sample.bytes;
            p.agent_errors += u64::from(failed);
            if failed {
                *p.failures.entry(failure::AGENT_ERROR).or_default() += 1;
            }
            for (m, v) in [
                (metric::AGENT_PROCESSING, sample.processing_us),
                (metric::GOAL_STATE_BYTES, sample.bytes),
                (metric::GOAL_STATE_NEIGHBORS, sample.neighbors),
            ] {
                record_into(&mut p.metrics, m, v);
                record_into(interval, m, v);
            }
            // Only where there are any: a run without security-group changes shows no such row.
            if sg_rules > 0 {
                record_into(&mut p.metrics, metric::GOAL_STATE_SG_RULES, sg_rules);
            }
        }
        let row = hosts.entry(sample.host).or_insert(HostRow {
            host: sample.host,
            messages: 0,
            bytes: 0,
            neighbors: 0,
            lag_max: None,
            waited_max_us: None,
        });
        row.messages += 1;
        row.bytes += sample.bytes;
        row.neighbors += sample.neighbors;
        if let Some(q) = queued {
            for (m, v) in [(metric::MQ_WAITED, q.waited_us), (metric::MQ_LAG, q.pending)] {
                if let Some(p) = phases.get_mut(phase) {
                    record_into(&mut p.metrics, m, v);
                }
                record_into(interval, m, v);
            }
            row.lag_max = Some(row.lag_max.unwrap_or(0).max(q.pending));
            row.waited_max_us = Some(row.waited_max_us.unwrap_or(0).max(q.waited_us));
            queue.consumed += 1;
            queue.redelivered += u64::from(q.attempt > 1);
        }
        if let Some(w) = samples
            && let Err(e) = w.write(&sample)
        {
            write_error.get_or_insert(e.to_string());
        }
    }

    /// Closes the current interval: writes each metric's histogram to the log and the
    /// generator's health to `generator.csv`, and starts anew.
    pub fn rotate(&self) {
        let now = self.elapsed();
        let mut g = self.lock();
        let Inner {
            interval,
            interval_start,
            counts,
            last_p99,
            usage,
            health,
            health_out,
            hlog,
            samples,
            write_error,
            ..
        } = &mut *g;
        let length = now.saturating_sub(*interval_start);
        if length.is_zero() {
            return;
        }
        let p99 = |m: &str| {
            interval
                .get(m)
                .filter(|h| !h.is_empty())
                .map(|h| h.value_at_quantile(0.99))
        };
        *last_p99 = (
            p99(metric::API),
            // Whichever stage tells this target's ports are in place (agents, or Neutron's status).
            p99(metric::PORT_PROGRAMMED).or_else(|| p99(metric::PORT_ACTIVE)),
        );
        let Usage {
            process_cpu,
            load1,
            steal,
        } = usage.sample();
        let row = HealthRow {
            start_s: interval_start.as_secs_f64(),
            length_s: length.as_secs_f64(),
            due: counts.due,
            sent: counts.sent,
            completed: counts.completed,
            failed: counts.failed,
            send_lag_p99_us: interval
                .get(metric::SEND_LAG)
                .filter(|h| !h.is_empty())
                .map_or(0, |h| h.value_at_quantile(0.99)),
            process_cpu,
            load1,
            steal,
        };
        health.push(row);
        if let Some(w) = health_out
            && let Err(e) = w.write(&row)
        {
            write_error.get_or_insert(e.to_string());
        }
        *counts = IntervalCounts::default();
        let mut names: Vec<&&'static str> = interval.keys().collect();
        names.sort();
        if let Some(w) = hlog {
            for name in names {
                let h = &interval[*name];
                if !h.is_empty()
                    && let Err(e) = w.write(name, *interval_start, length, h)
                {
                    write_error.get_or_insert(e.to_string());
                }
            }
            if let Err(e) = w.flush() {
                write_error.get_or_insert(e.to_string());
            }
        }
        if let Some(s) = samples
            && let Err(e) = s.flush()
        {
            write_error.get_or_insert(e.to_string());
        }
        for h in interval.values_mut() {
            h.reset();
        }
        *interval_start = now;
    }

    /// The live progress snapshot.
    pub fn progress(&self) -> Progress {
        let g = self.lock();
        let Some(p) = g.phases.last() else {
            return Progress::default();
        };
        let elapsed = self.start.elapsed().saturating_sub(p.started);
        let rate = g.health.last().map_or(0.0, HealthRow::completed_per_s);
        let position = p.plan.position(elapsed, p.requests, rate);
        Progress {
            phase: p.name.clone(),
            model: p.model.clone(),
            elapsed,
            requests: p.requests,
            offered: g.health.last().map_or(0.0, HealthRow::offered_per_s),
            rate,
            position,
            api_p99_us: g.last_p99.0,
            programmed_p99_us: g.last_p99.1,
            failed: p.errors,
            not_converged: p.not_converged,
            unsent: p.unsent,
            pending: 0,
        }
    }

    /// Runs `f` over the phases.
    /// When the phase named `name` began (its first run), or with `None` the first measured
    /// phase; `None` until it has.
    pub fn phase_start(&self, name: Option<&str>) -> Option<Instant> {
        let g = self.lock();
        g.phases
            .iter()
            .find(|p| match name {
                // Repeats and sizes suffix the name (`churn#2`, `churn@10000`).
                Some(n) => p.name.strip_prefix(n).is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with('@') || rest.starts_with('#') || rest.starts_with(' ')
                }),
                None => p.kind != PhaseKind::Setup,
            })
            .map(|p| self.start + p.started)
    }

    /// The instant the run's clock counts from.
    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn with_phases<T>(&self, f: impl FnOnce(&[PhaseRecord]) -> T) -> T {
        f(&self.lock().phases)
    }

    /// Runs `f` over the phases and the generator's health rows so far.
    pub fn with_health<T>(&self, f: impl FnOnce(&[PhaseRecord], &[HealthRow]) -> T) -> T {
        let g = self.lock();
        f(&g.phases, &g.health)
    }

    /// Closes the last interval and writes each phase's own histograms to `phases.hlog`, tagged
    /// `INDEX:metric`: the exact figures of every phase, from which the report draws its
    /// percentile charts. Called once, when nothing records any more.
    pub fn finish(&self, dir: &Path, wall_start: std::time::SystemTime) -> Result<(), reports::Error> {
        self.rotate();
        let mut g = self.lock();
        if let Some(s) = &mut g.samples {
            s.finish()?;
        }
        let mut w = HlogWriter::create(
            &dir.join(reports::files::PHASES),
            wall_start,
            "alcor-scale phase histograms; Tag = PHASE-INDEX:metric",
        )?;
        for (i, p) in g.phases.iter().enumerate() {
            let mut names: Vec<&&'static str> = p.metrics.keys().collect();
            names.sort();
            let end = p.ended.unwrap_or(self.elapsed());
            for name in names {
                let h = &p.metrics[*name];
                if !h.is_empty() {
                    w.write(&format!("{i}:{name}"), p.started, end.saturating_sub(p.started), h)?;
                }
            }
        }
        w.flush()
    }

    /// Agent messages offered to `agent-samples.csv` (it keeps a bounded sample of them).
    pub fn samples_seen(&self) -> u64 {
        self.lock().samples.as_ref().map_or(0, SampleWriter::seen)
    }

    /// What agents saw of the broker so far.
    pub fn queue(&self) -> QueueCounts {
        self.lock().queue
    }

    /// Per-host rows (sorted by address) and their distribution.
    pub fn hosts(&self) -> (Vec<HostRow>, HostLoad) {
        let g = self.lock();
        let mut rows: Vec<HostRow> = g.hosts.values().copied().collect();
        rows.sort_by_key(|r| r.host);
        let mut m = new_histogram();
        let mut b = new_histogram();
        for r in &rows {
            let _ = m.record(r.messages);
            let _ = b.record(r.bytes);
        }
        let load = HostLoad {
            hosts: rows.len() as u64,
            messages: Stats::of(&m),
            bytes: Stats::of(&b),
        };
        (rows, load)
    }

    /// The first error writing a file, if any.
    pub fn write_error(&self) -> Option<String> {
        self.lock().write_error.clone()
    }

    /// Merges the named metric over the phases `keep` selects.
    pub fn merged(&self, keep: impl Fn(&PhaseRecord) -> bool) -> BTreeMap<String, Stats> {
        let g = self.lock();
        let mut all = Metrics::default();
        for p in g.phases.iter().filter(|p| keep(p)) {
            for (k, h) in &p.metrics {
                let _ = all.entry(k).or_insert_with(new_histogram).add(h);
            }
        }
        stats_of(&all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_their_phase_and_intervals_reach_the_log() {
        let dir = std::env::temp_dir().join(format!("rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = Recorder::new(Instant::now(), std::time::SystemTime::now(), Some(&dir)).unwrap();
        let a = r.begin_phase("a", PhaseKind::Load, "open".into(), None);
        r.issued(a, None);
        r.answered(a, "api.create", 100, None);
        let b = r.begin_phase("b", PhaseKind::Load, "open".into(), None);
        r.issued(b, Some(250));
        r.answered(b, "api.create", 0, Some("http_500"));
        // A late sample of phase a, after b began.
        r.sample(a, "port_programmed", 900);
        std::thread::sleep(Duration::from_millis(5));
        r.rotate();
        r.with_phases(|p| {
            assert_eq!((p[0].requests, p[0].completed, p[0].errors), (1, 1, 0));
            assert_eq!(p[0].stats()["port_programmed"].count, 1);
            assert_eq!((p[1].errors, p[1].errors_by_kind["http_500"]), (1, 1));
            assert!(!p[1].stats().contains_key("api"), "failures have no latency");
            assert_eq!((p[0].succeeded, p[1].succeeded), (1, 0));
            assert_eq!(p[1].failures[failure::HTTP_5XX], 1);
            assert_eq!(p[1].stats()["send_lag"].max, 250);
        });
        // A sample timed before phase b began belongs to phase a, however late it arrives.
        let t0 = r.start;
        r.sample_at(t0, "cp_compute", 7);
        r.with_phases(|p| assert_eq!(p[0].stats()["cp_compute"].count, 1));
        r.with_health(|_, rows| {
            assert_eq!(rows.iter().map(|r| r.sent).sum::<u64>(), 2);
            assert_eq!(rows.iter().map(|r| r.failed).sum::<u64>(), 1);
        });
        assert_eq!(
            reports::health::read(&dir.join(reports::files::GENERATOR))
                .unwrap()
                .len(),
            r.with_health(|_, h| h.len())
        );
        let log = reports::hlog::read(&dir.join(reports::files::INTERVALS)).unwrap();
        let tags: Vec<&str> = log.iter().map(|i| i.metric.as_str()).collect();
        // Phase b began at a rotation: the first interval holds phase a's request alone.
        assert!(
            tags.contains(&"send_lag") && tags.contains(&"port_programmed"),
            "{tags:?}"
        );
        r.finish(&dir, std::time::SystemTime::now()).unwrap();
        let phases = reports::hlog::read(&dir.join(reports::files::PHASES)).unwrap();
        let tags: Vec<&str> = phases.iter().map(|i| i.metric.as_str()).collect();
        assert_eq!(
            tags,
            [
                "0:api",
                "0:api.create",
                "0:cp_compute",
                "0:port_programmed",
                "1:send_lag"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
