//! One run, start to end: agents, target, topology, setup, measured phases, teardown, then the
//! run folder. Whatever stops it (Ctrl-C, a failing component) it still writes what it
//! measured, marked partial.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow};
use control_plane::{ControlPlane, ControlPlaneConfig, Ncm, Publisher, PushConfig, Southbound, SouthboundKind};
use fake_agent::{AgentConfig, Fleet, FleetConfig};
use reports::summary::{
    Errors, PhaseSummary, ScenarioInfo, SloResult, SloStatus, StepSearch, Summary, Throughput, metric,
};
use tokio_util::sync::CancellationToken;

use crate::correlate::{Correlator, Source};
use crate::driver::closed::{self, ClosedParams};
use crate::driver::{Ctx, Work, open, step};
use crate::record::{PhaseKind, PhaseRecord, Recorder};
use crate::scenario::{HostsSpec, Loaded, ModelKind, PhaseSpec, Scenario, TargetKind};
use crate::slo::Check;
use crate::target::{HttpClient, NeutronTarget, RestTarget, ServiceUrls, SouthboundTarget, Target, active, neutron};
use crate::topology::{Model, Op, PortPlan, Topology};

/// How long cleaning up what a run made in Neutron may take (about 10 deletes a second there).
const NEUTRON_CLEANUP_LIMIT: Duration = Duration::from_secs(600);

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The run folder (default `runs/<scenario>-<UTC timestamp>`).
    pub out: Option<PathBuf>,
    /// Show the live progress line.
    pub progress: bool,
    /// How many times to run the measured phases (0 and 1: once).
    pub repeat: u32,
}

/// How a run ended, as the exit code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every SLO held (exit 0).
    Pass,
    /// An SLO failed (exit 1).
    SloFailed,
    /// The run itself failed or was interrupted (exit 3).
    Failed,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct RunOutcome {
    /// Where it was written.
    pub dir: PathBuf,
    /// Its summary.
    pub summary: Summary,
    /// Its verdict.
    pub verdict: Verdict,
}

/// The default run folder of a scenario.
pub fn default_dir(name: &str) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(':', "")
        .trim_end_matches('Z')
        .to_owned();
    PathBuf::from("runs").join(format!("{name}-{stamp}"))
}

/// How recovery after a fault is judged: the scenario's check on the first stage
/// (`port_programmed.p99 < 5s`: 99 % within 5 s), else 99 % within 1 s.
fn recovery_rule(s: &Scenario) -> crate::ledger::RecoveryRule {
    let from_slo = s.slo.iter().filter_map(|c| Check::parse(c).ok()).find_map(|c| {
        let metric = c.metric().to_owned();
        if metric != metric::PORT_PROGRAMMED && metric != metric::PORT_ACTIVE {
            return None;
        }
        let share = match c.key.strip_prefix(&format!("{metric}."))? {
            "p50" | "mean" => 0.5,
            "p90" => 0.9,
            "p99" => 0.99,
            "p999" | "p99.9" => 0.999,
            "max" => 1.0,
            _ => return None,
        };
        Some(crate::ledger::RecoveryRule {
            within: Duration::from_micros(c.threshold.max(0.0) as u64),
            share,
        })
    });
    from_slo.unwrap_or_default()
}

/// Hosts listed by name in the ledger's failures by host.
const LEDGER_HOSTS: usize = 20;

/// What the run holds while it goes.
struct Running {
    fleet: Option<Fleet>,
    cp: Option<Arc<ControlPlane>>,
    /// The fault timeline, while it runs.
    timeline: Option<crate::faults::Timeline>,
    /// Forwards agent events to the correlator (and so to the samples file).
    events: Option<tokio::task::JoinHandle<()>>,
    /// Rotates intervals and shows progress.
    ticker: Option<tokio::task::JoinHandle<()>>,
    /// The live progress display the ticker updates.
    display: Option<Arc<crate::progress::Display>>,
    /// Records the embedded control plane's own timings.
    cp_records: Option<tokio::task::JoinHandle<()>>,
    ctx: Option<Arc<Ctx>>,
    step: Option<StepSearch>,
    target_kind: TargetKind,
    /// A Neutron target, to clean up after the run.
    neutron: Option<Arc<NeutronTarget>>,
    /// Polls Neutron's port status (`port_active`), with its own stop: it must outlive the
    /// run's stop token until the last ports have settled.
    poller: Option<(tokio::task::JoinHandle<()>, CancellationToken)>,
    /// What the reader must know beyond the verdict (the summary's `warnings`).
    warnings: Vec<String>,
    /// A real Alcor's nodes this run created, removed at its end.
    nodes: Option<(Arc<RestTarget>, Vec<String>)>,
    /// Fleets run apart, connected but not yet read.
    remote: Option<crate::fleets::Remote>,
    /// Fleets run apart, while their events are read.
    following: Option<crate::fleets::Following>,
    /// The MQ southbound's broker: what it is, and the local server the run started for it.
    broker: Option<RunBroker>,
}

/// The broker of a run on the MQ southbound.
struct RunBroker {
    config: broker::BrokerConfig,
    /// Started by the run, with the folder of its store (removed at the end).
    local: Option<(broker::server::LocalNats, PathBuf)>,
}

/// Runs a loaded scenario and writes its folder.
pub async fn run(loaded: Loaded, opts: RunOptions, stop: CancellationToken) -> anyhow::Result<RunOutcome> {
    let mut s = loaded.scenario.clone();
    let dir = opts.out.clone().unwrap_or_else(|| default_dir(&s.name));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating run folder {}", dir.display()))?;
    std::fs::write(dir.join(reports::files::SCENARIO), &loaded.text)
        .with_context(|| format!("writing {}", dir.join(reports::files::SCENARIO).display()))?;
    let wall = SystemTime::now();
    let start = Instant::now();
    let rec = Arc::new(Recorder::new(start, wall, Some(&dir))?);
    let partial: Arc<Mutex<Option<String>>> = Arc::default();
    let mut running = Running {
        fleet: None,
        cp: None,
        timeline: None,
        events: None,
        ticker: None,
        display: None,
        cp_records: None,
        ctx: None,
        step: None,
        target_kind: s.target.kind,
        neutron: None,
        poller: None,
        warnings: Vec::new(),
        nodes: None,
        remote: None,
        following: None,
        broker: None,
    };
    // Fleets run apart: their hosts are the run's hosts.
    if !s.agents.remote.is_empty() {
        let r = crate::fleets::Remote::connect(&s.agents.remote, s.agents.remote_expect, start).await?;
        s.agents.count = r.hosts().len();
        running.remote = Some(r);
    }
    // Ctrl-C or SIGTERM: stop, and say so.
    let signal = {
        let (stop, partial) = (stop.clone(), partial.clone());
        tokio::spawn(async move {
            crate::signal::shutdown_signal().await;
            partial
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(|| "interrupted (Ctrl-C or SIGTERM)".into());
            stop.cancel();
        })
    };
    let result = drive(&s, &rec, &stop, &mut running, &opts).await;
    signal.abort();
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "run failed");
        partial
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| format!("{e:#}"));
    }
    if stop.is_cancelled() {
        partial
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| "stopped".into());
    }
    let partial_reason = partial.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // Every fault in force is undone before anything else ends.
    let faults = match running.timeline.take() {
        Some(t) => t.finish().await,
        None => Vec::new(),
    };
    // Finish correlation: ports still waiting get their chance, then count as failures.
    if let Some(ctx) = &running.ctx {
        let limit = if partial_reason.is_some() {
            Duration::from_secs(2)
        } else {
            s.measure.correlation_timeout
        };
        // The run's stop token may be cancelled already: this wait ends only by time or by all
        // ports settling.
        ctx.corr.settle(limit, &CancellationToken::new()).await;
        let failed = ctx.corr.fail_all();
        if failed > 0 {
            tracing::warn!(failed, "ports never programmed or converged");
        }
        ctx.corr.close();
    }
    // Remote fleets: every port has settled or failed, so their ledgers are complete (the
    // fleets are not ours to stop).
    let fleets = match running.following.take() {
        Some(f) => f.finish().await,
        None => Vec::new(),
    };
    running.warnings.extend(crate::fleets::warnings(&fleets));
    if let Some((task, poll_stop)) = running.poller.take() {
        poll_stop.cancel();
        let _ = task.await;
    }
    if let (Some(n), Some(ctx)) = (running.neutron.take(), &running.ctx) {
        running.warnings.extend(n.binding_warning());
        let left = n.clean(&mut ctx.http.connection(), NEUTRON_CLEANUP_LIMIT).await;
        if !left.is_empty() {
            let file = dir.join("neutron-leftovers.txt");
            let _ = std::fs::write(&file, left.join("\n") + "\n");
            let w = format!(
                "{} resource(s) the run made in Neutron could not be deleted (listed in {}), e.g. {}",
                left.len(),
                file.display(),
                left.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            );
            tracing::warn!("{w}");
            running.warnings.push(w);
        }
    }
    if let (Some((r, created)), Some(ctx)) = (running.nodes.take(), &running.ctx) {
        let left = r.unregister(&mut ctx.http.connection(), &created).await;
        if !left.is_empty() {
            running.warnings.push(format!(
                "{} node(s) the run registered could not be removed: {}",
                left.len(),
                left.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            ));
        }
    }
    if let Some(ncm) = running.cp.as_ref().and_then(|cp| cp.ncm())
        && ncm.reconnects() > 0
    {
        running.warnings.push(format!(
            "the control plane reopened push channels {} time(s): its pool holds {} hosts at once (target.max_connected_hosts), fewer than the run kept busy; reconnects and warm-ups are in the latencies",
            ncm.reconnects(),
            ncm.max_connected_hosts()
        ));
    }
    for w in &running.warnings {
        tracing::warn!("{w}");
    }
    // Every producer stops before anything reads the folder: the ticker, the control plane's
    // pushes, the agents, and the events still on their way to the recorder.
    if let Some(t) = running.ticker.take() {
        t.abort();
        let _ = t.await;
    }
    if let Some(cp) = running.cp.take() {
        cp.shutdown(Duration::from_secs(2)).await;
    }
    if let Some(mut t) = running.cp_records.take()
        && tokio::time::timeout(Duration::from_secs(2), &mut t).await.is_err()
    {
        t.abort();
    }
    if let Some(f) = running.fleet.take() {
        f.shutdown(Duration::from_secs(2)).await;
    }
    // The broker last: agents have stopped consuming.
    let broker_cpu = match running.broker.as_mut().and_then(|b| b.local.take()) {
        Some((local, store)) => {
            let cpu = local.pid().and_then(|pid| crate::usage::cpu_seconds(Some(pid)));
            local.stop(Duration::from_secs(5)).await;
            let _ = std::fs::remove_dir_all(&store);
            cpu
        }
        None => None,
    };
    if let Some(mut t) = running.events.take()
        && tokio::time::timeout(Duration::from_secs(2), &mut t).await.is_err()
    {
        t.abort();
    }
    rec.end_phase();
    if let Err(e) = rec.finish(&dir, wall) {
        tracing::warn!(error = %e, "the phase histograms could not be written");
    }
    if let Some(d) = running.display.take() {
        d.finish();
    }
    let mut summary = summarize(
        &loaded,
        &s,
        &rec,
        wall,
        start,
        partial_reason,
        std::mem::take(&mut running.warnings),
        running.step.take(),
        running.target_kind,
        opts.repeat.max(1),
    );
    summary.fleets = fleets;
    if !summary.fleets.is_empty() {
        // Events a fleet dropped are ports the run could not follow: a fidelity failure.
        let dropped: u64 = summary.fleets.iter().map(|f| f.dropped).sum();
        let status = match (summary.partial, dropped) {
            (true, _) => SloStatus::NotEvaluated,
            (false, 0) => SloStatus::Pass,
            (false, _) => SloStatus::Fail,
        };
        summary.slo.push(SloResult {
            check: reports::summary::EVENTS_CHECK.into(),
            actual: Some(dropped as f64),
            threshold: 1.0,
            op: "<".into(),
            pass: status == SloStatus::Pass,
            status,
            margin: None,
        });
    }
    summary.agent_samples_seen = rec.samples_seen();
    if let Some(b) = &running.broker {
        let q = rec.queue();
        // The furthest behind of every host's largest lag (the lowest address among equals).
        let (rows, _) = rec.hosts();
        let max_lag = rows.iter().filter_map(|r| r.lag_max.map(|l| (l, r.host))).fold(
            None,
            |best: Option<(u64, std::net::Ipv4Addr)>, (l, h)| match best {
                Some((b, _)) if b >= l => best,
                _ => Some((l, h)),
            },
        );
        summary.broker = Some(reports::summary::BrokerSummary {
            kind: broker::nats::KIND.to_owned(),
            embedded: b.config.url.is_none(),
            grouping: b.config.grouping.to_string(),
            consumed: q.consumed,
            redelivered: q.redelivered,
            max_lag: max_lag.map_or(0, |(lag, _)| lag),
            max_lag_host: max_lag.map(|(_, h)| h.to_string()),
            cpu_s: broker_cpu,
            harness_cpu_s: crate::usage::cpu_seconds(None),
        });
    }
    if let Some(ctx) = &running.ctx {
        let measured: Vec<bool> = rec.with_phases(|ps| ps.iter().map(|p| p.kind == PhaseKind::Load).collect());
        summary.ledger = ctx
            .corr
            .ledger()
            .summary(|i| measured.get(i).copied().unwrap_or(false), LEDGER_HOSTS);
        if summary.ledger.double_counted > 0 {
            summary.warnings.push(format!(
                "{} operation outcome(s) were recorded twice: the ledger is wrong (a defect of alcor-scale)",
                summary.ledger.double_counted
            ));
        }
        summary.faults = crate::faults::summarize(&faults, &rec, &ctx.corr, rec.elapsed().as_secs_f64());
        for (i, f) in s.faults.iter().enumerate() {
            if !faults.iter().any(|r| r.spec_index == i) {
                summary.warnings.push(format!(
                    "faults[{i}] ({} at {}) never began: the run ended before its time",
                    f.kind.name(),
                    humantime::format_duration(f.at)
                ));
            }
        }
        let path = dir.join(reports::files::FAILURES);
        if let Err(e) = reports::failures::write(&path, &ctx.corr.ledger().failures_per_second()) {
            tracing::warn!(error = %e, "the failures file could not be written");
        }
    }
    let (rows, _) = rec.hosts();
    reports::samples::write_hosts(&dir.join(reports::files::HOSTS), &rows)?;
    summary.write(&dir)?;
    if let Err(e) = reports::render(&dir) {
        tracing::error!(error = %e, "the HTML report could not be rendered; `alcor-scale report` retries");
    }
    if let Some(e) = rec.write_error() {
        tracing::warn!(error = %e, "a run-folder file could not be written completely");
    }
    let verdict = if summary.partial {
        Verdict::Failed
    } else if summary.slo.iter().all(|r| r.pass) {
        Verdict::Pass
    } else {
        Verdict::SloFailed
    };
    Ok(RunOutcome { dir, summary, verdict })
}

/// Starts the pieces and drives every phase.
async fn drive(
    s: &Scenario,
    rec: &Arc<Recorder>,
    stop: &CancellationToken,
    running: &mut Running,
    opts: &RunOptions,
) -> anyhow::Result<()> {
    let progress = opts.progress;
    let t = &s.target;
    let external = t
        .agent
        .as_ref()
        .map(|a| a.parse::<std::net::SocketAddr>())
        .transpose()?;
    let mut http = HttpClient::new(t.request_timeout).with_headers(headers(&t.headers)?);
    if t.uses_tls() {
        http = http.with_tls(t.tls().client_config()?);
    }
    // Neutron: its hosts are those its agents report (or the scenario lists); no fleet runs,
    // the simulated agents would receive nothing.
    let neutron_hosts = if t.kind == TargetKind::Neutron {
        let url = t.url.as_deref().ok_or_else(|| anyhow!("target.url is required"))?;
        let api = neutron::Api::new(url)?;
        let alive = neutron::discover_hosts(&api, &mut http.connection())
            .await
            .with_context(|| format!("asking Neutron at {url} for its hosts"))?;
        let hosts = match &t.hosts {
            Some(HostsSpec::List(given)) => {
                running.warnings.extend(neutron::check_hosts(given, &alive));
                given.clone()
            }
            _ => alive,
        };
        if hosts.is_empty() {
            return Err(neutron::no_hosts(url));
        }
        tracing::info!(hosts = hosts.len(), "Neutron hosts");
        Some((api, hosts))
    } else {
        None
    };
    // The MQ southbound's broker: the one given, or a local nats-server for this run.
    let broker_cfg = if t.southbound == SouthboundKind::Mq {
        let mut cfg = t.broker.clone();
        let mut local = None;
        if cfg.url.is_none() {
            let store = std::env::temp_dir().join(format!(
                "alcor-scale-nats-{}-{}",
                std::process::id(),
                SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_nanos()
            ));
            let server = broker::server::LocalNats::start(&store)
                .await
                .context("starting a local nats-server for target.southbound = \"mq\" (or give target.broker.url)")?;
            cfg.url = Some(server.url().to_owned());
            local = Some((server, store));
        }
        running.broker = Some(RunBroker {
            config: t.broker.clone(),
            local,
        });
        Some(cfg)
    } else {
        None
    };
    let connect_broker = |cfg: &broker::BrokerConfig| {
        let cfg = cfg.clone();
        async move {
            broker::connect(&cfg)
                .await
                .with_context(|| format!("connecting to the broker at {}", cfg.url.as_deref().unwrap_or("")))
        }
    };
    // Agents.
    let hosts = if let Some((_, names)) = &neutron_hosts {
        // Addresses only label the hosts in the harness's model; nothing is sent to them.
        fake_agent::fleet::host_ips(s.agents.base_ip, names.len())?
    } else if external.is_some() {
        fake_agent::fleet::host_ips(s.agents.base_ip, s.agents.count)?
    } else if let Some(r) = &running.remote {
        r.hosts()
    } else {
        let fleet = Fleet::start(
            &FleetConfig {
                count: s.agents.count,
                base_ip: s.agents.base_ip,
                port: s.agents.port,
                connections_per_agent: t.channels_per_host as u64 + 1,
                listen: s.agents.listen,
            },
            AgentConfig {
                mode: s.agents.validation,
                cost_model: s.agents.cost_model,
                ..Default::default()
            },
        )
        .await
        .context("starting the agent fleet")?;
        let mut fleet = fleet;
        if let Some(cfg) = &broker_cfg {
            // One connection for the fleet's consumers, apart from the control plane's.
            fleet.consume(connect_broker(cfg).await?);
        }
        let hosts = fleet.agents().iter().map(|a| a.ip()).collect();
        running.fleet = Some(fleet);
        hosts
    };
    let tag = match t.kind {
        // A real Alcor (or Neutron) keeps what earlier runs created: make ids unique per run.
        TargetKind::Alcor | TargetKind::Neutron => {
            (s.seed as u32) ^ (SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs() as u32)
        }
        _ => s.seed as u32,
    };
    let mut topo = Topology::build(s, hosts.clone(), tag);
    if let Some((_, names)) = &neutron_hosts {
        topo.host_names = names.clone();
    }
    if t.kind == TargetKind::Alcor {
        // Node names carry the run's tag: a control plane keeps the nodes of earlier runs.
        for (i, n) in topo.host_names.iter_mut().enumerate() {
            *n = format!("as-{tag:08x}-host-{i:05}");
        }
    }
    let topo = Arc::new(topo);
    let agent_port = external
        .map(|a| a.port())
        .or_else(|| running.remote.as_ref().and_then(|r| r.port()))
        .unwrap_or(s.agents.port);
    let push = PushConfig {
        protocol: t.protocol,
        channels_per_host: t.channels_per_host,
        max_connected_hosts: t.max_connected_hosts,
        agent_port,
        ..Default::default()
    };
    let mut watch = None;
    let (target, base_url) = match t.kind {
        TargetKind::Embedded => {
            let cp = ControlPlane::start(ControlPlaneConfig {
                listen: "127.0.0.1:0".parse()?,
                fanout: t.fanout,
                sg_mode: t.sg_mode,
                push,
                async_push: t.async_push,
                // Agents back from a crash ask it for their state.
                ncm_listen: Some("127.0.0.1:0".parse()?),
                southbound: t.southbound,
                broker: broker_cfg.clone().unwrap_or_default(),
                ..Default::default()
            })
            .await
            .context("starting the embedded control plane")?;
            if let (Some(f), Some(ncm)) = (&running.fleet, cp.ncm_addr()) {
                f.set_resync(ncm);
            }
            let base = cp.base_url();
            // The control plane's own timing of each request: goal-state computation,
            // encoding and push, as run metrics.
            let mut records = cp.subscribe();
            let rec = rec.clone();
            running.cp_records = Some(tokio::spawn(async move {
                use reports::summary::metric;
                while let Some(r) = records.recv().await {
                    // A resync is the control plane's own doing, not a request's.
                    if r.hosts.is_empty() || r.op == "resync" {
                        continue;
                    }
                    for (m, d) in [
                        (metric::CP_COMPUTE, r.compute),
                        (metric::CP_ENCODE, r.encode),
                        (metric::CP_PUSH, r.push),
                    ] {
                        rec.sample_at(r.started, m, d.as_micros() as u64);
                    }
                }
            }));
            running.cp = Some(Arc::new(cp));
            let urls = ServiceUrls::new(&base, &Default::default())?;
            (
                Target::Rest(Arc::new(RestTarget::new(urls, topo.clone(), agent_port))),
                base,
            )
        }
        TargetKind::Alcor => {
            let base = t
                .url
                .clone()
                .or_else(|| t.urls.values().next().cloned())
                .ok_or_else(|| anyhow!("target.url is required"))?;
            let urls = ServiceUrls::new(&base, &t.urls)?;
            (
                Target::Rest(Arc::new(RestTarget::new(urls, topo.clone(), agent_port))),
                base,
            )
        }
        TargetKind::Southbound => {
            let addrs = match external {
                Some(a) => match a.ip() {
                    std::net::IpAddr::V4(ip) => vec![ip; hosts.len()],
                    std::net::IpAddr::V6(_) => anyhow::bail!("target.agent: only IPv4 loopback agents are supported"),
                },
                None => hosts.clone(),
            };
            let southbound = match &broker_cfg {
                Some(cfg) => Southbound::Mq(Arc::new(Publisher::new(connect_broker(cfg).await?))),
                None => Southbound::Grpc(Ncm::new(push)),
            };
            let sb = SouthboundTarget::new(southbound, topo.clone(), addrs);
            (Target::Southbound(Arc::new(sb)), "http://127.0.0.1".to_owned())
        }
        TargetKind::Neutron => {
            let (api, _) = neutron_hosts
                .clone()
                .ok_or_else(|| anyhow!("Neutron's hosts are unknown"))?;
            let tx = if t.wait_active {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                watch = Some(rx);
                Some(tx)
            } else {
                None
            };
            let n = Arc::new(NeutronTarget::new(api, topo.clone(), tx));
            running.neutron = Some(n.clone());
            (Target::Neutron(n), t.url.clone().unwrap_or_default())
        }
    };
    let source = if t.kind == TargetKind::Neutron {
        Source::Status
    } else {
        Source::Agents
    };
    let ledger = Arc::new(crate::ledger::Ledger::new(rec.start(), recovery_rule(s)));
    let corr =
        Arc::new(Correlator::with_source(rec.clone(), s.measure.correlation_timeout, source).with_ledger(ledger));
    let ctx = Arc::new(Ctx {
        rec: rec.clone(),
        corr: corr.clone(),
        model: Mutex::new(Model::new(topo.clone(), s)),
        target: target.clone(),
        http: http.clone(),
        stop: stop.clone(),
        correlate: external.is_none() && (t.kind != TargetKind::Neutron || t.wait_active),
    });
    running.ctx = Some(ctx.clone());
    if !s.faults.is_empty() {
        let expected: crate::faults::Expected = {
            let ctx = ctx.clone();
            Arc::new(move |h| ctx.model.lock().unwrap_or_else(|e| e.into_inner()).held_by(h))
        };
        let anchor: crate::faults::Anchor = {
            let rec = rec.clone();
            Arc::new(move |phase| rec.phase_start(phase))
        };
        running.timeline = Some(crate::faults::Timeline::start(
            s.faults.clone(),
            s.seed,
            anchor,
            crate::faults::Targets {
                fleet: running.fleet.as_ref().map(Fleet::injector),
                cp: running.cp.clone(),
                corr: Some(corr.clone()),
                expected: Some(expected),
            },
            stop.clone(),
        ));
    }
    if let (Some(rx), Some(n)) = (watch, &running.neutron) {
        let poll_stop = CancellationToken::new();
        let cfg = active::PollConfig {
            interval: t.poll_interval,
            batch: t.poll_batch,
            rate: t.poll_rate,
            give_up: s.measure.correlation_timeout,
        };
        let task = tokio::spawn(active::run(
            n.clone(),
            http.connection(),
            rx,
            corr.clone(),
            rec.clone(),
            cfg,
            poll_stop.clone(),
        ));
        running.poller = Some((task, poll_stop));
    }
    // Agent events to the correlator.
    if let Some(f) = &running.fleet {
        let mut events = f.subscribe();
        let corr = corr.clone();
        running.events = Some(tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                corr.on_event(&ev);
            }
        }));
    }
    if let Some(r) = running.remote.take() {
        running.following = Some(r.follow(corr.clone(), rec.clone()));
    }
    // Intervals, timeouts and the progress line.
    {
        let (rec, corr, stop) = (rec.clone(), corr.clone(), stop.clone());
        let every = s.measure.interval;
        running.display = progress.then(|| Arc::new(crate::progress::Display::start()));
        let display = running.display.clone();
        running.ticker = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => return,
                }
                rec.rotate();
                corr.sweep();
                if let Some(d) = &display {
                    let mut p = rec.progress();
                    p.pending = corr.pending();
                    d.show(&p);
                }
            }
        }));
    }
    // Everything but ports.
    match &target {
        Target::Rest(r) => {
            let mut conn = http.connection();
            let reg = r
                .register(&mut conn, s.agents.register)
                .await
                .context("registering the agents as nodes")?;
            if t.kind == TargetKind::Alcor {
                running.nodes = Some((r.clone(), reg.created));
            }
            for c in r.setup_calls() {
                if stop.is_cancelled() {
                    return Ok(());
                }
                conn.must(&c).await.context("building the topology")?;
            }
        }
        Target::Neutron(n) => {
            let mut conn = http.connection();
            tokio::select! {
                r = n.build(&mut conn) => r.context("building the topology in Neutron")?,
                _ = stop.cancelled() => return Ok(()),
            }
        }
        Target::Southbound(_) => {}
    }
    let grace = Duration::from_secs(5);
    let sizes = s.topology_sizes();
    let growing = sizes.len() > 1;
    let mut built = 0u64;
    for (k, &size) in sizes.iter().enumerate() {
        if stop.is_cancelled() {
            break;
        }
        // Setup (or growth): the ports up to this size.
        let add = size.saturating_sub(built);
        built = size;
        if add > 0 {
            let mut spec = s.setup.clone();
            if spec.name.is_empty() {
                spec.name = "setup".into();
            }
            if k > 0 {
                spec.name = format!("grow@{size}");
            }
            spec.requests = Some(add);
            let switch = s.target.setup_fanout.filter(|m| *m != s.target.fanout);
            if let (Some(mode), Some(cp)) = (switch, &running.cp) {
                cp.set_fanout(mode);
            }
            if let Some(bulk) = s.topology.bulk {
                let phase = rec.begin_phase(
                    &spec.name,
                    PhaseKind::Setup,
                    format!("bulk: {bulk} ports per request"),
                    None,
                );
                bulk_setup(&ctx, phase, add, bulk as usize).await;
            } else {
                run_phase(
                    &ctx,
                    s,
                    &spec,
                    PhaseKind::Setup,
                    Work::Create,
                    &base_url,
                    grace,
                    running,
                    None,
                )
                .await?;
            }
            // Let setup's fan-out finish so that measured phases start on a quiet system.
            corr.settle(s.measure.correlation_timeout, stop).await;
            corr.sweep();
            if let (Some(_), Some(cp)) = (switch, &running.cp) {
                cp.set_fanout(s.target.fanout);
            }
        }
        // The measured phases, `repeat` times: each repeat's figures stay apart (phase names
        // get `#k`), so a comparison can weigh run-to-run spread; with `grow_to`, once per size
        // (`@SIZE`).
        let repeats = opts.repeat.max(1);
        for r in 1..=repeats {
            for (i, ph) in s.phases.iter().enumerate() {
                if stop.is_cancelled() {
                    break;
                }
                let mut spec = ph.clone();
                if spec.name.is_empty() {
                    spec.name = format!("phase-{}", i + 1);
                }
                if growing {
                    spec.name = format!("{}@{size}", spec.name);
                }
                if repeats > 1 {
                    spec.name = format!("{}#{r}", spec.name);
                }
                // A phase in another fan-out starts and ends on a quiet system, so that no
                // message of one mode is timed in the other.
                let switch = spec.fanout.filter(|m| *m != s.target.fanout);
                let sg_switch = spec.sg_mode.filter(|m| *m != s.target.sg_mode);
                if let Some(cp) = &running.cp
                    && (switch.is_some() || sg_switch.is_some())
                {
                    corr.settle(s.measure.correlation_timeout, stop).await;
                    if let Some(mode) = switch {
                        cp.set_fanout(mode);
                    }
                    if let Some(mode) = sg_switch {
                        cp.set_sg_mode(mode);
                    }
                }
                let kind = if spec.contrast {
                    PhaseKind::Contrast
                } else {
                    PhaseKind::Load
                };
                let ran = run_phase(
                    &ctx,
                    s,
                    &spec,
                    kind,
                    Work::Mix(spec.mix),
                    &base_url,
                    grace,
                    running,
                    Some(r),
                )
                .await;
                if let Some(cp) = &running.cp
                    && (switch.is_some() || sg_switch.is_some())
                {
                    corr.settle(s.measure.correlation_timeout, stop).await;
                    cp.set_fanout(s.target.fanout);
                    cp.set_sg_mode(s.target.sg_mode);
                }
                ran?;
                if growing {
                    rec.set_topology_ports(size);
                }
            }
            if (r < repeats || k + 1 < sizes.len()) && !stop.is_cancelled() {
                // Each repeat (and the next growth) starts on a quiet system, as the first did.
                corr.settle(s.measure.correlation_timeout, stop).await;
                corr.sweep();
            }
        }
    }
    if let Some(td) = &s.teardown
        && !stop.is_cancelled()
    {
        let mut spec = td.clone();
        if spec.name.is_empty() {
            spec.name = "teardown".into();
        }
        let left = ctx.model.lock().unwrap_or_else(|e| e.into_inner()).settled_count() as u64;
        spec.requests = Some(spec.requests.map_or(left, |r| r.min(left)));
        run_phase(
            &ctx,
            s,
            &spec,
            PhaseKind::Teardown,
            Work::Delete,
            &base_url,
            grace,
            running,
            None,
        )
        .await?;
    }
    Ok(())
}

/// Creates `n` ports in bulk requests of `per` ports, one request after the other.
async fn bulk_setup(ctx: &Arc<Ctx>, phase: usize, n: u64, per: usize) {
    let mut left = n as usize;
    let mut conn = ctx.http.connection();
    while left > 0 && !ctx.stop.is_cancelled() {
        let take = left.min(per);
        left -= take;
        let planned: Vec<_> = (0..take).filter_map(|_| ctx.plan(Work::Create)).collect();
        // One request per project: a bulk body belongs to one project.
        let mut by_project: std::collections::BTreeMap<usize, Vec<(_, PortPlan)>> = Default::default();
        for p in planned {
            if let Some(port) = p.subject.port().cloned() {
                by_project.entry(port.project).or_default().push((p, port));
            }
        }
        for (_, group) in by_project {
            let start = Instant::now();
            ctx.rec.issued(phase, None);
            for (p, _) in &group {
                ctx.expect(phase, p, start, false);
            }
            let ports: Vec<PortPlan> = group.iter().map(|(_, port)| port.clone()).collect();
            let result = match ctx.target.create_bulk(&ports) {
                None => Err("no_call".to_owned()),
                Some(Err(e)) => Err(e),
                Some(Ok(call)) => match conn.send_for_body(&call).await {
                    Ok(body) => ctx.target.answered_bulk(&ports, &body),
                    Err(e) => Err(e),
                },
            };
            // One answer for the whole body: its latency is recorded once, as the request it was.
            ctx.rec.answered(
                phase,
                Op::Create.api_metric(),
                start.elapsed().as_micros() as u64,
                result.as_ref().err().map(String::as_str),
            );
            for (p, _) in &group {
                ctx.settle(phase, p, start, &result);
            }
        }
    }
}

/// Extra request headers, `${NAME}` expanded from the environment.
fn headers(given: &std::collections::BTreeMap<String, String>) -> anyhow::Result<crate::target::Headers> {
    given
        .iter()
        .map(|(k, v)| {
            let value = crate::scenario::expand_env(v).map_err(|e| anyhow!("target.headers.{k}: {e}"))?;
            Ok((
                http::HeaderName::from_bytes(k.as_bytes()).with_context(|| format!("target.headers.{k}"))?,
                http::HeaderValue::from_str(&value)
                    .with_context(|| format!("target.headers.{k}: not a valid header value"))?,
            ))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn run_phase(
    ctx: &Arc<Ctx>,
    s: &Scenario,
    spec: &PhaseSpec,
    kind: PhaseKind,
    work: Work,
    base_url: &str,
    grace: Duration,
    running: &mut Running,
    repeat: Option<u32>,
) -> anyhow::Result<()> {
    match spec.model {
        ModelKind::Open => {
            let phase = ctx.rec.begin_phase(&spec.name, kind, spec.describe(), repeat);
            let stages = spec.open_stages();
            // A phase with a duration (or stages) ends on time; one given only a request budget
            // issues its budget at the rate, however long that takes.
            let hard_end = !spec.stages.is_empty() || spec.duration.is_some();
            ctx.rec.set_plan(
                phase,
                crate::record::Plan {
                    stages: stages.iter().map(|s| (s.rate, s.duration)).collect(),
                    length: hard_end.then(|| stages.iter().map(|s| s.duration).sum()),
                    requests: spec.requests,
                },
            );
            open::run(
                ctx,
                phase,
                &stages,
                spec.requests,
                work,
                spec.max_in_flight,
                grace,
                hard_end,
            )
            .await;
        }
        ModelKind::Closed => {
            let phase = ctx.rec.begin_phase(&spec.name, kind, spec.describe(), repeat);
            ctx.rec.set_plan(
                phase,
                crate::record::Plan {
                    stages: Vec::new(),
                    length: spec.duration.map(|d| d + spec.ramp.unwrap_or_default()),
                    requests: spec.requests,
                },
            );
            let params = ClosedParams {
                users: spec.users.unwrap_or(if kind == PhaseKind::Load { 1 } else { 8 }),
                ramp: spec.ramp.unwrap_or_default(),
                duration: spec.duration,
                budget: spec.requests,
                correlation_timeout: s.measure.correlation_timeout,
                request_timeout: s.target.request_timeout,
            };
            let r = closed::run(ctx, phase, work, &params, base_url).await;
            if let Some(e) = r.error {
                return Err(anyhow!("phase {}: {e}", spec.name));
            }
        }
        ModelKind::Step => {
            let texts = if spec.checks.is_empty() { &s.slo } else { &spec.checks };
            let checks: Vec<Check> = texts
                .iter()
                .filter_map(|c| Check::parse(c).ok())
                .filter(|c| !c.is_run_level())
                .collect();
            let settle = s.measure.correlation_timeout.min(Duration::from_secs(10));
            running.step = Some(step::run(ctx, spec, &checks, work, settle, grace, repeat).await);
        }
    }
    ctx.rec.end_phase();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    loaded: &Loaded,
    s: &Scenario,
    rec: &Recorder,
    wall: SystemTime,
    start: Instant,
    partial_reason: Option<String>,
    warnings: Vec<String>,
    step_search: Option<StepSearch>,
    target: TargetKind,
    repeats: u32,
) -> Summary {
    let now = rec.elapsed();
    let environment = crate::environment::capture();
    let cores = environment.cores;
    let (phases, throughput, errors, generator) = rec.with_health(|ps, rows| {
        let phases: Vec<PhaseSummary> = ps
            .iter()
            .map(|p| PhaseSummary {
                name: p.name.clone(),
                kind: p.kind.name().into(),
                model: p.model.clone(),
                started_s: p.started.as_secs_f64(),
                duration_s: p.length(now).as_secs_f64(),
                requests: p.requests,
                errors: p.errors,
                throughput_rps: p.succeeded as f64 / p.length(now).as_secs_f64().max(1e-9),
                offered_rps: p.plan.offered_rps(),
                due: p.due,
                unsent: p.unsent,
                repeat: p.repeat,
                topology_ports: p.topology_ports,
                stages: p.plan.rate_stages(p.started),
                metrics: p.stats(),
            })
            .collect();
        let load: Vec<_> = ps.iter().filter(|p| p.kind == PhaseKind::Load).collect();
        let secs: f64 = load.iter().map(|p| p.length(now).as_secs_f64()).sum::<f64>().max(1e-9);
        let sum = |f: fn(&PhaseRecord) -> u64| load.iter().map(|p| f(p)).sum::<u64>();
        let requests = sum(|p| p.requests);
        let failed = sum(|p| p.errors);
        let nc = sum(|p| p.not_converged);
        let mut by_kind = std::collections::BTreeMap::new();
        let mut failures = std::collections::BTreeMap::new();
        for p in &load {
            for (k, v) in &p.errors_by_kind {
                *by_kind.entry(k.clone()).or_default() += v;
            }
            for (k, v) in &p.failures {
                *failures.entry((*k).to_owned()).or_default() += v;
            }
        }
        // The offered rate of the phases that offer one, weighted by their lengths.
        let offering: Vec<_> = load.iter().filter_map(|p| Some((p, p.plan.offered_rps()?))).collect();
        let offered_secs: f64 = offering.iter().map(|(p, _)| p.length(now).as_secs_f64()).sum();
        let offered_rps = (offered_secs > 0.0).then(|| {
            offering
                .iter()
                .map(|(p, rps)| rps * p.length(now).as_secs_f64())
                .sum::<f64>()
                / offered_secs
        });
        let messages = sum(|p| p.messages);
        let throughput = Throughput {
            requests,
            completed: sum(|p| p.completed),
            succeeded: sum(|p| p.succeeded),
            requests_per_s: sum(|p| p.succeeded) as f64 / secs,
            offered_rps,
            messages,
            messages_per_s: messages as f64 / secs,
            bytes: sum(|p| p.bytes),
        };
        let errors = Errors {
            requests_failed: failed,
            by_kind,
            not_programmed: sum(|p| p.not_programmed),
            not_converged: nc,
            agent_errors: sum(|p| p.agent_errors),
            error_rate: Errors::rate(failed, nc, requests),
            failures,
        };
        let generator = crate::generator::assess(ps, rows, now, cores);
        (phases, throughput, errors, generator)
    });
    let (_, hosts) = rec.hosts();
    let mut summary = Summary {
        schema_version: reports::summary::SCHEMA_VERSION,
        tool: format!("alcor-scale {}", env!("CARGO_PKG_VERSION")),
        scenario: ScenarioInfo {
            name: s.name.clone(),
            description: s.description.clone(),
            file: loaded.path.display().to_string(),
            seed: s.seed,
            overrides: loaded.overrides.clone(),
            toml: loaded.text.clone(),
            hash: scenario_hash(&loaded.text),
            hash_apart_from_southbound: scenario_hash_apart_from_southbound(&loaded.text),
            agents: s.agents.count as u64,
        },
        environment,
        target: target.to_string(),
        started_at: humantime::format_rfc3339_seconds(wall).to_string(),
        duration_s: start.elapsed().as_secs_f64(),
        partial: partial_reason.is_some(),
        partial_reason,
        warnings,
        phases,
        metrics: rec.merged(|p| p.kind == PhaseKind::Load),
        throughput,
        errors,
        hosts,
        slo: Vec::new(),
        step_search,
        generator,
        repeats,
        fleets: Vec::new(),
        ledger: Default::default(),
        agent_samples_seen: 0,
        faults: Vec::new(),
        broker: None,
    };
    summary.slo = judge(s, &summary);
    summary
}

/// The run's checks. A run that stopped early judges nothing: every check is `not evaluated`.
/// A step search is judged by whether it found its knee (its stages were judged by their own
/// checks); the scenario's other checks judge the measured figures, which leave out the stage
/// past the knee.
fn judge(s: &Scenario, summary: &Summary) -> Vec<SloResult> {
    let checks: Vec<Check> = s.slo.iter().filter_map(|c| Check::parse(c).ok()).collect();
    let mut results: Vec<SloResult> = if summary.partial {
        checks.iter().map(Check::not_evaluated).collect()
    } else {
        checks.iter().map(|c| c.evaluate_summary(summary)).collect()
    };
    if s.phases.iter().any(|p| p.model == ModelKind::Step) {
        let found = summary.step_search.as_ref().and_then(|st| st.knee_rps);
        let status = match (summary.partial, found) {
            (true, _) => SloStatus::NotEvaluated,
            (false, Some(_)) => SloStatus::Pass,
            (false, None) => SloStatus::Fail,
        };
        results.insert(
            0,
            SloResult {
                check: reports::summary::KNEE_CHECK.into(),
                actual: found,
                threshold: 0.0,
                op: ">".into(),
                pass: status == SloStatus::Pass,
                status,
                margin: None,
            },
        );
    }
    results
}

/// SHA-256 of the scenario as run, hex: what `compare` checks to refuse unlike runs.
pub fn scenario_hash(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// [`scenario_hash`] of the text without `target.southbound` and `target.broker`: the same for
/// a gRPC run and an MQ run of one scenario (empty if the text does not parse).
pub fn scenario_hash_apart_from_southbound(text: &str) -> String {
    let Ok(mut doc) = text.parse::<toml_edit::DocumentMut>() else {
        return String::new();
    };
    if let Some(t) = doc.get_mut("target").and_then(|t| t.as_table_like_mut()) {
        t.remove("southbound");
        t.remove("broker");
    }
    scenario_hash(&doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_hashes_alike_on_either_southbound_and_apart_otherwise() {
        let mq = "name = 'x'\n[target]\nsouthbound = 'mq'\n[target.broker]\ngrouping = 'host'\n[[phases]]\nrate = 5\n";
        let grpc = "name = 'x'\n[target]\nsouthbound = 'grpc'\n[[phases]]\nrate = 5\n";
        let plain = "name = 'x'\n[target]\n[[phases]]\nrate = 5\n";
        let faster = "name = 'x'\n[target]\nsouthbound = 'grpc'\n[[phases]]\nrate = 6\n";
        let h = scenario_hash_apart_from_southbound;
        assert_ne!(scenario_hash(mq), scenario_hash(grpc));
        assert_eq!(h(mq), h(grpc));
        assert_eq!(h(grpc), h(plain));
        assert_ne!(h(grpc), h(faster));
        assert_eq!(h("not = = toml"), "");
    }
}
