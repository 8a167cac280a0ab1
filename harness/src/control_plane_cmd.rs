//! `alcor-scale control-plane`: runs the reference control plane alone, for a fleet started with
//! `alcor-scale agents` or any agents on loopback.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use control_plane::{ControlPlane, ControlPlaneConfig, FanoutMode, PushConfig, PushProtocol, SgMode, SouthboundKind};

/// Options of `alcor-scale control-plane`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  alcor-scale control-plane
  alcor-scale control-plane --per-service-ports --fanout incremental
  alcor-scale agents --count 50 --register-with http://127.0.0.1:9009 &   # then drive the REST API")]
pub struct ControlPlaneArgs {
    /// REST listen address (any address; the default stays on loopback).
    #[arg(long, default_value = "127.0.0.1:9009")]
    listen: SocketAddr,
    /// Listen on Alcor's per-service ports (9001 … 9009) of --listen's address instead.
    #[arg(long)]
    per_service_ports: bool,
    /// Neighbor fan-out: alcor (as Alcor V2) or incremental (only what each host lacks).
    #[arg(long, default_value = "alcor")]
    fanout: FanoutMode,
    /// Remote-group rules: address-set (members as a set on each host, changed by difference)
    /// or expand (one rule per member address, the whole group re-sent on every member change).
    #[arg(long, default_value = "address-set")]
    sg_mode: SgMode,
    /// Southbound RPC: v2 (PushGoalStatesStream) or v1 (PushNetworkResourceStates).
    #[arg(long, default_value = "v2")]
    push: PushProtocol,
    /// gRPC channels per host.
    #[arg(long, default_value_t = 2)]
    channels_per_host: usize,
    /// Hosts with open push channels at once; the least recently pushed host's are closed for
    /// room. Default: what the open-files limit allows.
    #[arg(long)]
    max_connected_hosts: Option<usize>,
    /// Port the agents listen on.
    #[arg(long, default_value_t = alcor_schema::AGENT_GRPC_PORT)]
    agent_port: u16,
    /// How long one host may take to reply (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    host_timeout: Duration,
    /// Coalesce messages to one host arriving within this window (e.g. 2ms; 0 = off). Default:
    /// 2ms with --fanout incremental, off with alcor.
    #[arg(long, value_parser = humantime::parse_duration)]
    coalesce: Option<Duration>,
    /// Answer port requests before the push ends.
    #[arg(long = "async")]
    async_push: bool,
    /// Serve the NCM's gRPC endpoint for agents here (Alcor's NCM uses 9016): agents back from
    /// a crash (`agents --resync ADDR`) ask it for their state.
    #[arg(long, value_name = "ADDR")]
    ncm_listen: Option<SocketAddr>,
    /// Publish goal states to this NATS JetStream broker (nats://host:port) instead of pushing
    /// them to each host: the MQ southbound (agents consume with `agents --broker`).
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// With --broker: topics per `vpc` (keyed by host, as Alcor) or per `host`.
    #[arg(long, default_value = "vpc", requires = "broker")]
    broker_grouping: broker::Grouping,
    /// Stop after this long instead of waiting for Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
}

/// Runs the control plane until Ctrl-C (or `--duration`).
pub async fn run(args: ControlPlaneArgs) -> anyhow::Result<()> {
    let cfg = ControlPlaneConfig {
        listen: args.listen,
        per_service_ports: args.per_service_ports,
        fanout: args.fanout,
        sg_mode: args.sg_mode,
        push: PushConfig {
            protocol: args.push,
            channels_per_host: args.channels_per_host.max(1),
            agent_port: args.agent_port,
            host_timeout: args.host_timeout,
            coalesce_window: args.coalesce,
            max_connected_hosts: args.max_connected_hosts,
            ..PushConfig::default()
        },
        async_push: args.async_push,
        ncm_listen: args.ncm_listen,
        southbound: if args.broker.is_some() {
            SouthboundKind::Mq
        } else {
            SouthboundKind::Grpc
        },
        broker: broker::BrokerConfig {
            url: args.broker.clone(),
            grouping: args.broker_grouping,
            ..Default::default()
        },
    };
    let started = Instant::now();
    let cp = ControlPlane::start(cfg).await.context("starting the control plane")?;
    let addrs: Vec<String> = cp.addrs().iter().map(|a| format!("http://{a}")).collect();
    println!(
        "control plane listening on {} (fan-out {}, sg mode {}, {}){}",
        addrs.join(", "),
        args.fanout,
        args.sg_mode,
        match &args.broker {
            Some(url) => format!("goal states published to {url}, topics per {}", args.broker_grouping),
            None => format!("push {:?}", args.push),
        },
        cp.ncm_addr()
            .map(|a| format!("; NCM endpoint for agents on {a}"))
            .unwrap_or_default()
    );
    crate::signal::stop(args.duration).await;
    let (neighbors, remote) = cp.metrics().neighbor_totals();
    cp.shutdown(Duration::from_secs(5)).await;
    println!(
        "stopped after {:.1?}: {neighbors} neighbor states pushed ({remote} for remote-group rules)",
        started.elapsed()
    );
    Ok(())
}
