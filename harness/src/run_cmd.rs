//! `alcor-scale run`, `validate` and `list`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use harness::console::{self, Console};
use harness::run::{RunOptions, Verdict};
use harness::scenario::{self, HostsSpec, TargetKind};
use tokio_util::sync::CancellationToken;

use crate::UsageError;

/// `run` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  alcor-scale run scenarios/quickstart.toml
  alcor-scale run ci-smoke --set agents.count=20 --set 'phases[0].rate=100'
  alcor-scale run scenarios/knee-search.toml --out runs/knee --quiet

  alcor-scale run ci-smoke --baseline runs/main-ci-smoke --markdown compare.md --junit slo.xml
  alcor-scale run ci-smoke --repeat 3 --strict-generator

Exit codes: 0 every SLO held, 1 an SLO failed (or, with --baseline, a regression), 2 bad scenario
or usage (a missing baseline too, before the run starts), 3 the run failed, was interrupted, or
(with --strict-generator) its generator fell behind or its host was saturated.

stdout carries the verdict, the summary and the comparison; logs, progress and paths go to stderr.")]
pub struct RunArgs {
    /// Scenario file, or the name of a bundled scenario (`quickstart`).
    pub scenario: PathBuf,
    /// Override a field: `--set agents.count=100`, `--set 'phases[0].rate=300'`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Run folder to write (default runs/<scenario>-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Compare with this baseline run folder at the end; a regression exits 1. Checked before
    /// the run starts.
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
    #[command(flatten)]
    pub gate: crate::report_cmd::GateArgs,
    /// Run the measured phases this many times, keeping each repeat's figures apart, so that a
    /// comparison can weigh run-to-run spread.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// Exit 3 when the generator fell behind (due requests unsent or sent late) or the host was
    /// saturated: the run then measured less than it claims to.
    #[arg(long)]
    pub strict_generator: bool,
    /// Write every SLO (and regression) check as JUnit XML to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

/// `validate` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  alcor-scale validate scenarios/port-churn.toml --set agents.count=500")]
pub struct ValidateArgs {
    /// Scenario file, or the name of a bundled scenario.
    pub scenario: PathBuf,
    /// Override a field, as for `run`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Where bundled scenarios are: `./scenarios`, else the source tree's.
fn scenarios_dir() -> PathBuf {
    let local = PathBuf::from("scenarios");
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// A path as given, or a bundled scenario by name.
fn resolve(p: &Path) -> PathBuf {
    if p.exists() || p.components().count() > 1 {
        return p.to_owned();
    }
    let name = p.to_string_lossy();
    let candidate = scenarios_dir().join(format!("{}.toml", name.trim_end_matches(".toml")));
    if candidate.exists() { candidate } else { p.to_owned() }
}

fn load(path: &Path, set: &[String]) -> anyhow::Result<scenario::Loaded> {
    scenario::load(&resolve(path), set).map_err(|e| UsageError(anyhow::anyhow!("invalid scenario:\n{e}")).into())
}

/// Runs a scenario; returns the exit code.
pub async fn run(args: RunArgs) -> anyhow::Result<u8> {
    let loaded = load(&args.scenario, &args.set)?;
    // A baseline that cannot be read, or is of another scenario, is a usage error now, not
    // after a run of many minutes.
    if let Some(base) = &args.baseline {
        let b = reports::summary::Summary::read(base).map_err(|e| UsageError(anyhow::anyhow!("--baseline: {e}")))?;
        let s = &loaded.scenario;
        let this = reports::compare::Identity {
            name: s.name.clone(),
            hash: harness::run::scenario_hash(&loaded.text),
            overrides: loaded.overrides.clone(),
            agents: s.agents.count as u64,
            target: s.target.kind.to_string(),
            southbound: s.target.southbound.to_string(),
            hash_apart: harness::run::scenario_hash_apart_from_southbound(&loaded.text),
        };
        let differences = reports::compare::Identity::of(&b).differences(&this);
        if !differences.is_empty() && !args.gate.force {
            return Err(UsageError(anyhow::anyhow!(
                "--baseline {} is not comparable with this run (use --force to compare anyway):\n  {}",
                base.display(),
                differences.join("\n  ")
            ))
            .into());
        }
    }
    let progress = !args.quiet && std::io::stderr().is_terminal();
    // With a live progress line on stderr, goose's stdout lines would be spliced into it.
    let mut console = if progress {
        Console::claim_quietly()
    } else {
        Console::claim()
    };
    let outcome = harness::run::run(
        loaded,
        RunOptions {
            out: args.out,
            progress,
            repeat: args.repeat,
        },
        CancellationToken::new(),
    )
    .await
    .context("the run could not write its folder")?;
    let s = &outcome.summary;
    for l in console::summary_lines(s) {
        console.line(&l);
    }
    eprintln!("run folder: {}", outcome.dir.display());
    let slo_cases = reports::junit::slo_cases(s);
    let mut regressed = false;
    match &args.baseline {
        Some(base) => {
            let (_, code) = crate::report_cmd::compare(
                &mut console,
                base,
                &outcome.dir,
                &args.gate,
                None,
                args.junit.as_deref().map(|p| (p, &slo_cases[..])),
            )?;
            regressed = code != 0;
        }
        None => {
            if let Some(p) = &args.junit {
                reports::junit::write(p, "alcor-scale", &slo_cases)?;
            }
        }
    }
    let g = &s.generator;
    let generator_failed = args.strict_generator && (g.fell_behind || g.saturated);
    if generator_failed {
        console.line("  --strict-generator: the generator fell behind or its host was saturated");
    }
    Ok(match outcome.verdict {
        Verdict::Failed => 3,
        _ if generator_failed => 3,
        Verdict::SloFailed => 1,
        Verdict::Pass if regressed => 1,
        Verdict::Pass => 0,
    })
}

/// Validates a scenario.
pub fn validate(args: ValidateArgs) -> anyhow::Result<u8> {
    let l = load(&args.scenario, &args.set)?;
    let s = &l.scenario;
    let hosts = match (&s.target.kind, &s.target.hosts) {
        (TargetKind::Neutron, Some(HostsSpec::List(l))) => format!("{} listed hosts", l.len()),
        (TargetKind::Neutron, _) => "hosts discovered from Neutron".to_owned(),
        _ if !s.agents.remote.is_empty() => format!(
            "agents of the fleets at {}{}",
            s.agents.remote.join(", "),
            s.agents
                .remote_expect
                .map(|n| format!(" ({n} expected)"))
                .unwrap_or_default()
        ),
        _ => format!("{} agents", s.agents.count),
    };
    let faults = if s.faults.is_empty() {
        String::new()
    } else {
        format!(", {} fault(s)", s.faults.len())
    };
    println!(
        "{}: valid ({} target, {hosts}, {} measured phase(s), {} SLO check(s){faults})",
        l.path.display(),
        s.target.kind,
        s.phases.len(),
        s.slo.len()
    );
    Ok(0)
}

/// Lists bundled scenarios with their descriptions.
pub fn list() -> anyhow::Result<u8> {
    let dir = scenarios_dir();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let desc = match scenario::load(&p, &[]) {
            Ok(l) => l.scenario.description,
            Err(e) => format!("(invalid: {})", e.0.first().map(|x| x.to_string()).unwrap_or_default()),
        };
        println!("{name:<22} {desc}");
    }
    Ok(0)
}
