//! `alcor-scale`: scalability and load tests for Alcor-style network control planes.
//!
//! A thin command line over the workspace's libraries.

mod agents;
mod control_plane_cmd;
mod net_cmd;
mod report_cmd;
mod run_cmd;

use harness::{register, signal};

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Agents allocate several strings per neighbor state; mimalloc decodes and applies goal states
// about 30 % faster than the system allocator (docs/PERFORMANCE.md). Feature `system-allocator`
// keeps the system's, for profilers that watch malloc (heaptrack, valgrind's massif).
#[cfg(not(feature = "system-allocator"))]
type Allocator = mimalloc::MiMalloc;
#[cfg(not(feature = "system-allocator"))]
const ALLOCATOR: Allocator = mimalloc::MiMalloc;
#[cfg(feature = "system-allocator")]
type Allocator = std::alloc::System;
#[cfg(feature = "system-allocator")]
const ALLOCATOR: Allocator = std::alloc::System;

#[cfg(not(feature = "heap-stats"))]
#[global_allocator]
static ALLOC: Allocator = ALLOCATOR;

// The same allocator, counted: what the heap holds, told from what the allocator keeps (RSS).
#[cfg(feature = "heap-stats")]
#[global_allocator]
static ALLOC: cap::Cap<Allocator> = cap::Cap::new(ALLOCATOR, usize::MAX);

/// With feature `heap-stats` and ALCOR_SCALE_HEAP_FILE set, writes the bytes live on the heap,
/// in MB, to that file every 2 s (replaced whole, so a reader never sees half a number) for as
/// long as the process lives. `scripts/soak.sh` samples it beside the RSS.
#[cfg(feature = "heap-stats")]
fn report_heap() {
    let Some(path) = std::env::var_os("ALCOR_SCALE_HEAP_FILE").map(std::path::PathBuf::from) else {
        return;
    };
    let tmp = path.with_extension("tmp");
    std::thread::spawn(move || {
        loop {
            let mb = ALLOC.allocated() as f64 / (1024.0 * 1024.0);
            if std::fs::write(&tmp, format!("{mb:.1}\n")).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
    });
}

/// A mistake in what the user asked for: exit code 2, like clap's own usage errors.
#[derive(Debug)]
pub struct UsageError(pub anyhow::Error);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for UsageError {}

/// Exit codes, shared by every command.
mod exit {
    /// The command ran and what it checked held.
    pub const OK: u8 = 0;
    // 1: an SLO failed (returned by `run` itself).
    /// Bad usage or input.
    pub const USAGE: u8 = 2;
    /// The run itself failed.
    pub const FAILED: u8 = 3;
}

/// Scalability and load tests for Alcor-style cloud network control planes.
#[derive(Debug, Parser)]
#[command(
    name = "alcor-scale",
    version,
    about = "Scalability and load tests for Alcor-style cloud network control planes",
    after_help = "Start with:\n  alcor-scale list\n  alcor-scale run scenarios/quickstart.toml\n  alcor-scale report runs/<folder>",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a fleet of simulated host agents (real gRPC GoalStateProvisioner servers on loopback).
    Agents(agents::AgentsArgs),
    /// Run the reference control plane alone (Alcor's REST API, goal states, gRPC push).
    ControlPlane(control_plane_cmd::ControlPlaneArgs),
    /// Run a scenario and write its run folder (summary.json, interval logs, samples).
    Run(run_cmd::RunArgs),
    /// Check a scenario file without running it.
    Validate(run_cmd::ValidateArgs),
    /// List the bundled scenarios.
    List,
    /// Render a run folder's HTML report again.
    Report(report_cmd::ReportArgs),
    /// Compare a candidate run with a baseline; exit 1 on regression.
    Compare(report_cmd::CompareArgs),
    /// Add or remove a block of addresses for agents on real addresses (needs CAP_NET_ADMIN).
    Net(net_cmd::NetArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "heap-stats")]
    report_heap();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        // Through the progress display, which each log line lifts and draws again.
        .with_writer(harness::progress::LogWriter)
        // Colours only for a person at a terminal who has not asked for none (no-color.org).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Agents(args) => agents::run(args).await.map(|()| exit::OK),
            Command::ControlPlane(args) => control_plane_cmd::run(args).await.map(|()| exit::OK),
            Command::Run(args) => run_cmd::run(args).await,
            Command::Validate(args) => run_cmd::validate(args),
            Command::List => run_cmd::list(),
            Command::Report(args) => report_cmd::report(args),
            Command::Compare(args) => report_cmd::compare_cmd(args),
            Command::Net(args) => net_cmd::run(args).await.map(|()| exit::OK),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(exit::USAGE)
            } else {
                ExitCode::from(exit::FAILED)
            }
        }
    }
}
