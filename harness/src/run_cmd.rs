//! `alcor-scale run`, `validate` and `list`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use harness::run::{RunOptions, Verdict};
use harness::scenario;
use tokio_util::sync::CancellationToken;

use crate::UsageError;

/// `run` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  alcor-scale run scenarios/quickstart.toml
  alcor-scale run ci-smoke --set agents.count=20 --set 'phases[0].rate=100'
  alcor-scale run scenarios/knee-search.toml --out runs/knee --quiet

  alcor-scale run ci-smoke --baseline runs/main-ci-smoke --max-regression 10% --junit slo.xml

Exit codes: 0 every SLO held, 1 an SLO failed (or, with --baseline, a regression), 2 bad scenario
or usage, 3 the run failed or was interrupted.")]
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
    /// Compare with this baseline run folder at the end; a regression exits 1.
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
    /// With --baseline: how much worse a figure may get.
    #[arg(long, default_value = "10%", value_parser = crate::report_cmd::parse_fraction)]
    pub max_regression: f64,
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
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let outcome = harness::run::run(
        loaded,
        RunOptions {
            out: args.out,
            progress,
        },
        CancellationToken::new(),
    )
    .await
    .context("the run could not write its folder")?;
    let s = &outcome.summary;
    let ms = |m: &str, stat: &str| {
        s.value(&format!("{m}.{stat}"))
            .map(|v| format!("{:.2} ms", v / 1e3))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "{}: {} requests, {:.0}/s, errors {} ({:.3} %), not programmed {}, not converged {}",
        s.scenario.name,
        s.throughput.requests,
        s.throughput.requests_per_s,
        s.errors.requests_failed,
        s.errors.error_rate * 100.0,
        s.errors.not_programmed,
        s.errors.not_converged
    );
    for m in ["api", "port_programmed", "neighbor_converged"] {
        println!(
            "  {m:<20} p50 {:>10}  p99 {:>10}  max {:>10}",
            ms(m, "p50"),
            ms(m, "p99"),
            ms(m, "max")
        );
    }
    if let Some(step) = &s.step_search {
        match step.knee_rps {
            Some(k) => println!("  knee: {k} requests/s held every check"),
            None => println!("  knee: the first stage already broke a check"),
        }
    }
    for r in &s.slo {
        println!("  SLO {:<40} {}", r.check, if r.pass { "pass" } else { "FAIL" });
    }
    if let Some(reason) = &s.partial_reason {
        println!("  partial: {reason}");
    }
    println!("run folder: {}", outcome.dir.display());
    let slo_cases = reports::junit::slo_cases(s);
    let mut regressed = false;
    match &args.baseline {
        Some(base) => {
            let (_, code) = crate::report_cmd::compare(
                base,
                &outcome.dir,
                args.max_regression,
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
    Ok(match outcome.verdict {
        Verdict::Failed => 3,
        Verdict::SloFailed => 1,
        Verdict::Pass if regressed => 1,
        Verdict::Pass => 0,
    })
}

/// Validates a scenario.
pub fn validate(args: ValidateArgs) -> anyhow::Result<u8> {
    let l = load(&args.scenario, &args.set)?;
    let s = &l.scenario;
    println!(
        "{}: valid ({} target, {} agents, {} measured phase(s), {} SLO check(s))",
        l.path.display(),
        s.target.kind,
        s.agents.count,
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
