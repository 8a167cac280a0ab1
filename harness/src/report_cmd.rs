//! `alcor-scale report` and `compare`, and the CI outputs shared with `run` (`--baseline`,
//! `--junit`).

use std::path::{Path, PathBuf};

use clap::Args;
use harness::console::Console;
use reports::compare::{CompareError, Comparison, GateOptions};
use reports::junit;

use crate::UsageError;

/// How the regression gate judges, shared by `compare` and `run --baseline`.
#[derive(Debug, Clone, Args)]
pub struct GateArgs {
    /// How much worse a figure may get: a regression needs its 95 % confidence interval wholly
    /// beyond this (`10%`, or a fraction like `0.1`).
    #[arg(long, default_value = "10%", value_parser = parse_fraction)]
    pub max_regression: f64,
    /// Latency changes smaller than this are never regressions, however significant.
    #[arg(long, default_value = "1ms", value_parser = parse_duration_us)]
    pub min_change: f64,
    /// How far the error rate, and each failure kind's share of requests, may rise, in
    /// percentage points (`0.5%`).
    #[arg(long, default_value = "0.5%", value_parser = parse_fraction)]
    pub max_error_increase: f64,
    /// Compare runs of different scenarios, agents or targets anyway (the differences are
    /// listed above the table).
    #[arg(long)]
    pub force: bool,
    /// Write the markdown table to this file (for a pull-request comment) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

impl GateArgs {
    /// The gate's options.
    pub fn options(&self) -> GateOptions {
        GateOptions {
            threshold: self.max_regression,
            floor_us: self.min_change,
            max_error_increase: self.max_error_increase,
            ..Default::default()
        }
    }
}

/// `1ms`, `500us`, `0.5s` → µs.
pub fn parse_duration_us(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, scale) = if let Some(v) = t.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = t.strip_suffix("us").or_else(|| t.strip_suffix("µs")) {
        (v, 1.0)
    } else if let Some(v) = t.strip_suffix('s') {
        (v, 1e6)
    } else {
        return Err(format!("`{s}` needs a unit (us, ms, s)"));
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("`{s}` is not a duration"))?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(v * scale)
}

/// `report` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  alcor-scale report runs/quickstart-2026-11-25T090000")]
pub struct ReportArgs {
    /// A run folder written by `alcor-scale run`.
    pub run_dir: PathBuf,
}

/// `compare` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  alcor-scale compare runs/base runs/candidate
  alcor-scale compare runs/base runs/candidate --max-regression 5% --junit compare.xml

Prints a markdown table (for a pull-request comment; --markdown FILE writes it to a file) with each
figure's change and its 95 % confidence interval, from a bootstrap over both runs' measured
intervals. Exits 1 when a gated figure regressed: p50/p90/p99 of api, port_programmed,
neighbor_converged and agent_processing, or throughput, worse with the whole interval beyond
--max-regression (and, for latencies, by more than --min-change); or the error rate or a failure
kind up by more than --max-error-increase points. Runs of different scenarios are refused (exit
2) unless --force.")]
pub struct CompareArgs {
    /// The baseline run folder.
    pub baseline: PathBuf,
    /// The candidate run folder.
    pub candidate: PathBuf,
    #[command(flatten)]
    pub gate: GateArgs,
    /// Write the checks as JUnit XML to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Where to write the comparison page (default CANDIDATE/compare.html).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `10%` → 0.1; `0.1` → 0.1.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("`{s}` is not a percentage (e.g. 10%)"))?;
    if !(0.0..=10.0).contains(&v) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(v)
}

fn usage(e: reports::Error) -> anyhow::Error {
    UsageError(anyhow::anyhow!(e)).into()
}

/// Renders a run folder's report again.
pub fn report(args: ReportArgs) -> anyhow::Result<u8> {
    let path = reports::render(&args.run_dir).map_err(usage)?;
    println!("{}", path.display());
    Ok(0)
}

/// Compares a candidate with a baseline; prints (or writes) the markdown table; 1 on
/// regression.
pub fn compare(
    console: &mut Console,
    base: &Path,
    cand: &Path,
    gate: &GateArgs,
    out: Option<&Path>,
    junit: Option<(&Path, &[junit::Case])>,
) -> anyhow::Result<(Comparison, u8)> {
    let page = out.map(Path::to_owned).unwrap_or_else(|| cand.join("compare.html"));
    let (cmp, written) =
        reports::compare::compare(base, cand, gate.options(), gate.force, &page).map_err(|e| match e {
            CompareError::Read(e) => usage(e),
            e @ CompareError::Unlike(_) => UsageError(anyhow::anyhow!(e)).into(),
        })?;
    let md = cmp.markdown();
    match &gate.markdown {
        Some(path) => {
            std::fs::write(path, &md).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            console.line(&format!(
                "comparison: {}",
                if cmp.regressed() { "REGRESSION" } else { "no regression" }
            ));
            for d in cmp.deltas.iter().filter(|d| d.regressed) {
                console.line(&format!("  ✗ {}", d.sentence(cmp.options.confidence)));
            }
        }
        None => console.line(&md),
    }
    eprintln!("comparison page: {}", written.display());
    if let Some((path, extra)) = junit {
        let mut cases = extra.to_vec();
        cases.extend(junit::regression_cases(&cmp));
        junit::write(path, "alcor-scale", &cases)?;
    }
    let code = u8::from(cmp.regressed());
    Ok((cmp, code))
}

/// `alcor-scale compare`.
pub fn compare_cmd(args: CompareArgs) -> anyhow::Result<u8> {
    let mut console = Console::claim();
    let (_, code) = compare(
        &mut console,
        &args.baseline,
        &args.candidate,
        &args.gate,
        args.out.as_deref(),
        args.junit.as_deref().map(|p| (p, &[][..])),
    )?;
    Ok(code)
}
