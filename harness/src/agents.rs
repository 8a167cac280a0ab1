//! `alcor-scale agents`: runs a fleet of simulated agents until Ctrl-C (or `--duration`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytesize::ByteSize;
use clap::Args;
use fake_agent::{AgentConfig, AgentStats, CostModel, Fleet, FleetConfig, FleetError, ListenMode, ValidationMode};

use crate::UsageError;
use crate::register::{NodeInfo, register_nodes, target_url};

/// Prints a line to stdout. A reader that went away (a closed pipe) must not stop the fleet:
/// `println!` would panic there.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// Options of `alcor-scale agents`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  alcor-scale agents --count 1000
  alcor-scale agents --count 50 --cost-model aca-2021 --mode strict
  alcor-scale agents --count 200 --register-with http://127.0.0.1:9007
  alcor-scale agents --count 10 --cost-model linear:port_us=500,neighbor_us=13 --duration 60s
  alcor-scale agents --count 10000 --listen shared
  alcor-scale net up --cidr 198.18.0.0/20 && alcor-scale agents --count 4000 --base-ip 198.18.0.1")]
pub struct AgentsArgs {
    /// Number of agents.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Address of the first agent; the others follow. 127.0.0.0/8, or a block the host has
    /// (`alcor-scale net up`).
    #[arg(long, default_value = "127.1.0.1")]
    base_ip: Ipv4Addr,
    /// gRPC port of every agent (Alcor dials 50001).
    #[arg(long, default_value_t = alcor_schema::AGENT_GRPC_PORT)]
    port: u16,
    /// Simulated programming cost: none, aca-2020, aca-2021, or
    /// linear:port_us=N,neighbor_us=N,sg_rule_us=N,message_us=N.
    #[arg(long, default_value = "none")]
    cost_model: CostModel,
    /// Validation: lenient, or strict (INVALID_ARG for what the real agent rejects).
    #[arg(long, default_value = "lenient")]
    mode: ValidationMode,
    /// Largest goal-state message accepted.
    #[arg(long, default_value = "256MiB")]
    max_message_size: ByteSize,
    /// Register every agent as a node with this Alcor node manager (POST {URL}/nodes/bulk).
    #[arg(long, value_name = "URL")]
    register_with: Option<String>,
    /// Node names are this prefix plus the zero-padded agent index.
    #[arg(long, default_value = "host-")]
    name_prefix: String,
    /// Stream events as JSON lines to clients of this loopback address (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:50100")]
    events: SocketAddr,
    /// Do not export events.
    #[arg(long)]
    no_events: bool,
    /// Unread events held for each event client; past it events are dropped, counted, and the
    /// client is sent a `dropped` line (the fleet's memory stays bounded if a client stops
    /// reading).
    #[arg(long, default_value_t = 65_536)]
    events_buffer: usize,
    /// Stop after this long (e.g. 30s, 5m) instead of waiting for Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// `per-address` (a listener per agent) or `shared` (one wildcard listener on the port for
    /// the whole fleet, routing by the address each connection was made to: idle agents cost no
    /// descriptor, so one process holds tens of thousands).
    #[arg(long, default_value = "per-address")]
    listen: ListenMode,
    /// Connections each agent may hold at once, for the open-files budget.
    #[arg(long, default_value_t = 2)]
    connections_per_agent: u64,
    /// Faults to inject, as `[[faults]]` entries of agent kinds (slow, error, blackhole, reset,
    /// partition, crash) with `at` counted from the fleet's start; each window is logged.
    #[arg(long, value_name = "FILE")]
    faults: Option<std::path::PathBuf>,
    /// The control plane's NCM endpoint (`control-plane --ncm-listen`) that agents back from a
    /// crash ask for their state with RequestGoalStates(AGENT_RESTARTED).
    #[arg(long, value_name = "ADDR")]
    resync: Option<SocketAddr>,
    /// Consume goal states from this NATS JetStream broker (nats://host:port) as well: the MQ
    /// southbound (`control-plane --broker`, or a run's `target.broker.url`).
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// With --broker: topics per `vpc` (keyed by host, as Alcor) or per `host`; as the
    /// publisher's.
    #[arg(long, default_value = "vpc", requires = "broker")]
    broker_grouping: broker::Grouping,
}

/// Runs the fleet; returns once it has stopped and its summary is printed.
pub async fn run(args: AgentsArgs) -> anyhow::Result<()> {
    let register_url = args
        .register_with
        .as_deref()
        .map(target_url)
        .transpose()
        .map_err(UsageError)?;
    let fleet_cfg = FleetConfig {
        count: args.count,
        base_ip: args.base_ip,
        port: args.port,
        connections_per_agent: args.connections_per_agent,
        listen: args.listen,
    };
    let agent_cfg = AgentConfig {
        mode: args.mode,
        cost_model: args.cost_model,
        max_message_size: usize::try_from(args.max_message_size.as_u64()).unwrap_or(usize::MAX),
        resync: args.resync,
        ..AgentConfig::default()
    };
    let faults = match &args.faults {
        Some(path) => Some(harness::faults::FaultsFile::read(path).map_err(|e| UsageError(e.into()))?),
        None => None,
    };
    let started = Instant::now();
    let mut fleet = match Fleet::start(&fleet_cfg, agent_cfg).await {
        Ok(f) => f,
        Err(e @ (FleetError::NotUnicast(_) | FleetError::RangeExhausted { .. } | FleetError::NotLocal { .. })) => {
            return Err(UsageError(anyhow::Error::new(e).context("--base-ip/--count")).into());
        }
        Err(e) => return Err(anyhow::Error::new(e).context("starting the fleet")),
    };
    let first = fleet.agents().first().map(|a| a.addr());
    let last = fleet.agents().last().map(|a| a.addr());
    say!(
        "{} agents listening on {} … {} (cost model {}, {} validation, started in {:.2?})",
        fleet.len(),
        first.map(|a| a.to_string()).unwrap_or_default(),
        last.map(|a| a.to_string()).unwrap_or_default(),
        args.cost_model,
        args.mode,
        started.elapsed()
    );
    if let Some(url) = &args.broker {
        let cfg = broker::BrokerConfig {
            url: Some(url.clone()),
            grouping: args.broker_grouping,
            ..Default::default()
        };
        if let Some((field, why)) = cfg.problems().into_iter().next() {
            return Err(UsageError(anyhow::anyhow!("--broker: {field}: {why}")).into());
        }
        let b = broker::connect(&cfg).await.context("--broker")?;
        fleet.consume(b);
        say!("consuming goal states from {url} (topics per {})", args.broker_grouping);
    }
    if !args.no_events {
        let bound = fleet
            .export_events(args.events, args.events_buffer)
            .await
            .with_context(|| format!("exporting events on {}", args.events))?;
        say!("events: JSON lines on {bound}");
    }
    if let Some(url) = &register_url {
        let nodes: Vec<NodeInfo> = fleet
            .agents()
            .iter()
            .map(|a| NodeInfo::for_agent(&args.name_prefix, a.index() as usize, a.ip(), a.addr().port()))
            .collect();
        let n = register_nodes(url, &nodes)
            .await
            .context("registering agents with the node manager")?;
        say!("registered {n} nodes with {url}");
    }

    let timeline = faults.map(|f| {
        say!(
            "{} fault(s) from {}",
            f.faults.len(),
            args.faults
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        let anchor: harness::faults::Anchor = Arc::new(move |_| Some(started));
        harness::faults::Timeline::start(
            f.faults,
            f.seed,
            anchor,
            harness::faults::Targets {
                fleet: Some(fleet.injector()),
                cp: None,
                corr: None,
                expected: None,
            },
            tokio_util::sync::CancellationToken::new(),
        )
    });

    // Ctrl-C stops the fleet with or without --duration, and always prints the summary.
    let stop = crate::signal::stop(args.duration);
    tokio::pin!(stop);
    let mut ticker = tokio::time::interval(Duration::from_secs(10));
    ticker.tick().await;
    let mut last_stats = AgentStats::default();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = ticker.tick() => {
                let s = fleet.stats();
                if s != last_stats {
                    tracing::info!(messages = s.messages, bytes = s.bytes, neighbor_states = s.neighbor_states, in_flight = fleet.in_flight(), "fleet progress");
                    last_stats = s;
                }
            }
        }
    }
    // Faults still in force are undone before the fleet stops; each window is said.
    if let Some(t) = timeline {
        for f in t.finish().await {
            let at = |i: Instant| i.saturating_duration_since(started).as_secs_f64();
            say!(
                "fault {} {} on {} host(s): {:.1}–{} s{}",
                f.kind.name(),
                f.detail,
                f.hosts.len(),
                at(f.start),
                f.end.map(|e| format!("{:.1}", at(e))).unwrap_or_else(|| "-".into()),
                f.note.map(|n| format!(" ({n})")).unwrap_or_default()
            );
        }
    }
    let stats = fleet.stats();
    let uptime = started.elapsed();
    fleet.shutdown(Duration::from_secs(5)).await;
    print_summary(&stats, uptime);
    Ok(())
}

fn print_summary(s: &AgentStats, uptime: Duration) {
    say!(
        "stopped after {:.1?}: {} messages ({} empty warm-ups, {} undecodable), {}, {} port states, {} neighbor states, {} invalid, {:.1} s simulated programming",
        uptime,
        s.messages,
        s.empty_messages,
        s.decode_errors,
        ByteSize(s.bytes),
        s.port_states,
        s.neighbor_states,
        s.invalid,
        s.simulated_us as f64 / 1e6
    );
}
