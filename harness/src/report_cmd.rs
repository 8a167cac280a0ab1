//! `alcor-scale report` and `compare`, and the CI outputs shared with `run` (`--baseline`,
//! `--junit`).

use std::path::{Path, PathBuf};

use clap::Args;
use reports::compare::Comparison;
use reports::junit;

use crate::UsageError;

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

Prints a markdown table (for a pull-request comment); exits 1 when a gated figure (p50/p90/p99 of
api, port_programmed, neighbor_converged, agent_processing, and throughput) is worse than the
baseline by more than --max-regression.")]
pub struct CompareArgs {
    /// The baseline run folder.
    pub baseline: PathBuf,
    /// The candidate run folder.
    pub candidate: PathBuf,
    /// How much worse a figure may get (`10%`, or a fraction like `0.1`).
    #[arg(long, default_value = "10%", value_parser = parse_fraction)]
    pub max_regression: f64,
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

/// Compares a candidate with a baseline; prints markdown; 1 on regression.
pub fn compare(
    base: &Path,
    cand: &Path,
    threshold: f64,
    out: Option<&Path>,
    junit: Option<(&Path, &[junit::Case])>,
) -> anyhow::Result<(Comparison, u8)> {
    let page = out.map(Path::to_owned).unwrap_or_else(|| cand.join("compare.html"));
    let (cmp, written) = reports::compare::compare(base, cand, threshold, &page).map_err(usage)?;
    println!("{}", cmp.markdown());
    println!("comparison page: {}", written.display());
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
    let (_, code) = compare(
        &args.baseline,
        &args.candidate,
        args.max_regression,
        args.out.as_deref(),
        args.junit.as_deref().map(|p| (p, &[][..])),
    )?;
    Ok(code)
}
