//! Comparing a candidate run with a baseline, as a CI gate that knows the noise.
//!
//! Every gated figure gets an estimate of its change and a 95 % confidence interval from a
//! bootstrap over both runs' measured intervals ([`crate::bootstrap`]). A figure regressed only
//! when the change is significant *and* beyond the threshold (the whole interval lies past it)
//! *and* larger than an absolute floor: a p50 of 0.01 ms that becomes 0.012 ms is no regression.
//! Error rates and failure kinds are gated in absolute terms (percentage points). Runs of
//! different scenarios are not compared at all unless asked to ([`Identity`]).

use std::fmt::Write as _;

use maud::html;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::bootstrap::{self, Resampler, Statistic};
use crate::charts::{self, Series};
use crate::html::{STAGES, figure};
use crate::rundata::RunData;
use crate::summary::{Summary, metric};
use crate::units;

/// How strict the gate is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateOptions {
    /// Allowed worsening, as a fraction (0.1 = 10 %): the confidence interval must lie beyond it.
    pub threshold: f64,
    /// Latency changes smaller than this, µs, are never regressions.
    pub floor_us: f64,
    /// Allowed increase of the error rate and of each failure kind's rate, as a fraction of
    /// requests (0.005 = half a percentage point).
    pub max_error_increase: f64,
    /// Confidence level of the intervals.
    pub confidence: f64,
}

impl Default for GateOptions {
    fn default() -> Self {
        Self {
            threshold: 0.1,
            floor_us: 1000.0,
            max_error_increase: 0.005,
            confidence: 0.95,
        }
    }
}

/// What kind of figure a row is, for its unit and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// µs; higher is worse.
    Latency,
    /// Requests per second; lower is worse.
    Throughput,
    /// A fraction of requests; higher is worse, gated in absolute terms.
    Rate,
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    /// `port_programmed.p99`, `throughput`, `error_rate`, `failures.timeout` …
    pub key: String,
    /// Its kind.
    pub kind: Kind,
    /// Baseline value.
    pub base: Option<f64>,
    /// Candidate value.
    pub candidate: Option<f64>,
    /// How much worse the candidate is, as a fraction for latencies (+0.18 = 18 % slower) and
    /// throughput (+0.18 = the baseline did 18 % more), in absolute terms for rates.
    pub change: Option<f64>,
    /// Confidence interval of `change`, when it could be estimated.
    pub ci: Option<(f64, f64)>,
    /// Whether this figure can fail the comparison (maxima are shown, not gated: one sample).
    pub gated: bool,
    /// Worse beyond the threshold, significantly, and beyond the floor.
    pub regressed: bool,
    /// Why it is or is not a regression, in a few words.
    pub note: String,
}

impl Delta {
    /// The value in its unit.
    pub fn fmt_value(&self, v: Option<f64>) -> String {
        match v {
            None => "no samples".into(),
            Some(v) => match self.kind {
                Kind::Latency => units::duration_us(v),
                Kind::Throughput => units::per_s(v),
                Kind::Rate => units::percent(v),
            },
        }
    }

    /// The change with its interval: `+17.8 % (95 % CI +9…+26 %)`, or in points for rates.
    /// Shown as the candidate's change against the baseline, whichever way is worse: a
    /// throughput that fell reads as a minus, though `change` counts it as worse.
    pub fn fmt_change(&self, confidence: f64) -> String {
        let Some(c) = self.change else {
            return "n/a".into();
        };
        // `change` of throughput is base / cand - 1; shown, cand / base - 1, which runs the
        // other way, so the interval's ends swap.
        let shown = |w: f64| {
            if self.kind == Kind::Throughput {
                1.0 / (1.0 + w) - 1.0
            } else {
                w
            }
        };
        let (c, ci) = match (self.kind, self.ci) {
            (Kind::Throughput, Some((lo, hi))) => (shown(c), Some((shown(hi), shown(lo)))),
            (_, ci) => (shown(c), ci),
        };
        // Relative changes in percent, rates in percentage points.
        let unit = if self.kind == Kind::Rate { " pp" } else { " %" };
        let pct = |x: f64| format!("{:+.1}", x * 100.0);
        match ci {
            Some((lo, hi)) => format!(
                "{}{unit} ({:.0} % CI {}…{}{unit})",
                pct(c),
                confidence * 100.0,
                pct(lo),
                pct(hi)
            ),
            None => format!("{}{unit}", pct(c)),
        }
    }

    /// One line for a CI log or a JUnit failure:
    /// `port_programmed.p99 4.72 ms vs 4.01 ms (+17.8 %, 95 % CI +9…+26 %)`.
    pub fn sentence(&self, confidence: f64) -> String {
        let change = self.fmt_change(confidence).replacen(" (", ", ", 1);
        format!(
            "{} {} vs {} ({}){}",
            self.key,
            self.fmt_value(self.candidate),
            self.fmt_value(self.base),
            change.trim_end_matches(')'),
            if self.note.is_empty() {
                String::new()
            } else {
                format!(": {}", self.note)
            }
        )
    }
}

/// A whole comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Baseline name and folder.
    pub base: String,
    /// Candidate name and folder.
    pub candidate: String,
    /// The gate's settings.
    pub options: GateOptions,
    /// Every figure.
    pub deltas: Vec<Delta>,
    /// Differences between the runs' scenarios that were overridden by `--force`.
    pub forced: Vec<String>,
    /// What the comparison is of, when the runs differ on purpose (the southbound).
    pub notes: Vec<String>,
}

/// What makes two runs comparable: the same scenario (name and text, so the same hash), the
/// same number of agents and the same target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Scenario name.
    pub name: String,
    /// SHA-256 of the scenario text as run (empty for summaries written before it was kept).
    pub hash: String,
    /// `--set` overrides, shown when the texts differ.
    pub overrides: Vec<String>,
    /// Simulated hosts (0: unknown).
    pub agents: u64,
    /// `embedded`, `alcor` or `southbound`.
    pub target: String,
    /// How goal states travelled: `grpc` or `mq`.
    pub southbound: String,
    /// The scenario's hash apart from its southbound (empty for older summaries).
    pub hash_apart: String,
}

impl Identity {
    /// A run's identity, from its summary.
    pub fn of(s: &Summary) -> Self {
        Self {
            name: s.scenario.name.clone(),
            hash: s.scenario.hash.clone(),
            overrides: s.scenario.overrides.clone(),
            agents: s.scenario.agents,
            target: s.target.clone(),
            southbound: if s.broker.is_some() { "mq" } else { "grpc" }.into(),
            hash_apart: s.scenario.hash_apart_from_southbound.clone(),
        }
    }

    /// What two comparable runs differ in on purpose, in words.
    pub fn notes(&self, other: &Self) -> Vec<String> {
        if self.southbound == other.southbound {
            return Vec::new();
        }
        vec![format!(
            "southbound: {} (baseline) vs {} (candidate), the same scenario otherwise: where each way of carrying goal states wins",
            self.southbound, other.southbound
        )]
    }

    /// Every difference between two identities, in words (empty: comparable).
    pub fn differences(&self, other: &Self) -> Vec<String> {
        let mut d = Vec::new();
        if self.name != other.name {
            d.push(format!("scenario: `{}` vs `{}`", self.name, other.name));
        }
        let southbound_only = !self.hash_apart.is_empty() && self.hash_apart == other.hash_apart;
        if !self.hash.is_empty() && !other.hash.is_empty() && self.hash != other.hash && !southbound_only {
            d.push(format!(
                "scenario text differs (hash {} vs {}; overrides {:?} vs {:?})",
                &self.hash[..12.min(self.hash.len())],
                &other.hash[..12.min(other.hash.len())],
                self.overrides,
                other.overrides
            ));
        }
        if self.agents != 0 && other.agents != 0 && self.agents != other.agents {
            d.push(format!("agents: {} vs {}", self.agents, other.agents));
        }
        if self.target != other.target {
            d.push(format!("target: {} vs {}", self.target, other.target));
        }
        d
    }
}

/// The latency figures compared: (metric, stat, gated).
fn latency_keys() -> Vec<(&'static str, &'static str, bool)> {
    let mut k = Vec::new();
    for st in STAGES.iter().chain(std::iter::once(&metric::AGENT_PROCESSING)) {
        for (stat, gated) in [("p50", true), ("p90", true), ("p99", true), ("max", false)] {
            k.push((*st, stat, gated));
        }
    }
    k
}

fn quantile_of(stat: &str) -> Option<f64> {
    match stat {
        "p50" => Some(0.5),
        "p90" => Some(0.9),
        "p99" => Some(0.99),
        _ => None,
    }
}

/// Resampled values per statistic of one run, and how many intervals they came from, if it had
/// enough intervals.
type Resamples = Option<(Vec<Vec<f64>>, usize)>;

/// Bootstrapped values of `stats` of `metric` in one run (None: too few intervals).
fn resampled(run: &RunData, metric: &str, stats: &[Statistic]) -> Resamples {
    let r = Resampler::new(run.measured_intervals.get(metric)?)?;
    Some((
        r.resample(stats, bootstrap::RESAMPLES, &mut bootstrap::rng()),
        r.units(),
    ))
}

/// The interval of the change `estimate`: the spread of `worse(b*, c*)` over paired resamples,
/// placed around the estimate. The estimate comes from the summaries' exact figures; the
/// intervals only say how much they move, so the interval always contains the estimate.
/// The interval is widened for the smaller run's number of intervals
/// ([`bootstrap::small_sample_factor`]).
fn ci_of(
    estimate: Option<f64>,
    b: &[f64],
    c: &[f64],
    units: usize,
    worse: impl Fn(f64, f64) -> Option<f64>,
    level: f64,
) -> Option<(f64, f64)> {
    let estimate = estimate?;
    let mut xs: Vec<f64> = b.iter().zip(c).filter_map(|(&b, &c)| worse(b, c)).collect();
    // Resamples where the change is undefined (a zero) are too many to trust the rest.
    if xs.len() < b.len() * 9 / 10 {
        return None;
    }
    let (lo, hi) = bootstrap::interval(&mut xs, level)?;
    let median = xs[xs.len() / 2];
    let widen = bootstrap::small_sample_factor(units, level);
    Some((
        estimate + (lo - median).min(0.0) * widen,
        estimate + (hi - median).max(0.0) * widen,
    ))
}

impl Comparison {
    /// Compares two runs. Refuses (Err with every difference) runs of different scenarios
    /// unless `force`.
    pub fn new(base: &RunData, cand: &RunData, options: GateOptions, force: bool) -> Result<Self, Vec<String>> {
        let (bi, ci) = (Identity::of(&base.summary), Identity::of(&cand.summary));
        let differences = bi.differences(&ci);
        if !differences.is_empty() && !force {
            return Err(differences);
        }
        let (bs, cs) = (&base.summary, &cand.summary);
        let mut deltas = Vec::new();
        let level = options.confidence;
        let relative = |b: f64, c: f64| (b > 0.0).then(|| c / b - 1.0);
        // Latencies: all stats of a metric from one set of resamples.
        let mut last_metric = "";
        let mut boot: (Resamples, Resamples) = (None, None);
        let qs = [
            Statistic::Quantile(0.5),
            Statistic::Quantile(0.9),
            Statistic::Quantile(0.99),
        ];
        for (m, stat, gated) in latency_keys() {
            if m != last_metric {
                boot = (resampled(base, m, &qs), resampled(cand, m, &qs));
                last_metric = m;
            }
            let key = format!("{m}.{stat}");
            let (b, c) = (bs.value(&key), cs.value(&key));
            let change = match (b, c) {
                (Some(b), Some(c)) => relative(b, c),
                _ => None,
            };
            let ci = match (&boot, quantile_of(stat)) {
                ((Some((bb, bn)), Some((cb, cn))), Some(q)) => {
                    let i = [0.5, 0.9, 0.99].iter().position(|x| *x == q).unwrap_or(0);
                    ci_of(change, &bb[i], &cb[i], (*bn).min(*cn), relative, level)
                }
                _ => None,
            };
            let mut d = Delta {
                key,
                kind: Kind::Latency,
                base: b,
                candidate: c,
                change,
                ci,
                gated,
                regressed: false,
                note: String::new(),
            };
            if gated {
                judge_relative(&mut d, &options, c.zip(b).map(|(c, b)| c - b));
            }
            deltas.push(d);
        }
        // Throughput: successful requests per second, resampled as a rate of `api` samples.
        {
            let (b, c) = (bs.value("throughput"), cs.value("throughput"));
            let worse = |b: f64, c: f64| (c > 0.0).then(|| b / c - 1.0);
            let change = b.zip(c).and_then(|(b, c)| worse(b, c));
            let ci = match (
                resampled(base, metric::API, &[Statistic::Rate]),
                resampled(cand, metric::API, &[Statistic::Rate]),
            ) {
                (Some((bb, bn)), Some((cb, cn))) => ci_of(change, &bb[0], &cb[0], bn.min(cn), worse, level),
                _ => None,
            };
            let mut d = Delta {
                key: "throughput".into(),
                kind: Kind::Throughput,
                base: b,
                candidate: c,
                change,
                ci,
                gated: true,
                regressed: false,
                note: String::new(),
            };
            judge_relative(&mut d, &options, None);
            deltas.push(d);
        }
        // Error rate and each failure kind, in absolute terms.
        let rate_of = |s: &Summary, kind: Option<&str>| -> Option<f64> {
            let requests = s.throughput.requests;
            (requests > 0).then(|| match kind {
                None => s.errors.error_rate,
                Some(k) => s.errors.failures.get(k).copied().unwrap_or(0) as f64 / requests as f64,
            })
        };
        let mut kinds: Vec<&String> = bs.errors.failures.keys().chain(cs.errors.failures.keys()).collect();
        kinds.sort();
        kinds.dedup();
        let rows = std::iter::once(("error_rate".to_owned(), None))
            .chain(kinds.into_iter().map(|k| (format!("failures.{k}"), Some(k.as_str()))));
        for (key, kind) in rows {
            let (b, c) = (rate_of(bs, kind), rate_of(cs, kind));
            let change = b.zip(c).map(|(b, c)| c - b);
            let mut d = Delta {
                key,
                kind: Kind::Rate,
                base: b,
                candidate: c,
                change,
                ci: None,
                gated: true,
                regressed: false,
                note: String::new(),
            };
            match (b, c, change) {
                (_, None, _) => {
                    d.regressed = b.is_some();
                    d.note = if d.regressed {
                        "the candidate sent no requests".into()
                    } else {
                        "neither run sent requests".into()
                    };
                }
                (_, _, Some(ch)) if ch > options.max_error_increase => {
                    d.regressed = true;
                    d.note = format!(
                        "up more than {} points",
                        units::percent(options.max_error_increase).trim_end_matches(" %")
                    );
                }
                _ => {}
            }
            deltas.push(d);
        }
        Ok(Self {
            base: format!("{} ({})", bs.scenario.name, base.dir.display()),
            candidate: format!("{} ({})", cs.scenario.name, cand.dir.display()),
            options,
            deltas,
            forced: differences,
            notes: bi.notes(&ci),
        })
    }

    /// Whether any gated figure regressed.
    pub fn regressed(&self) -> bool {
        self.deltas.iter().any(|d| d.regressed)
    }

    /// The comparison as a markdown table (for a pull-request comment).
    pub fn markdown(&self) -> String {
        let o = &self.options;
        let mut out = format!(
            "### alcor-scale: {} vs baseline\n\nBaseline: {}  \nCandidate: {}  \nGate: worse by more than {} with {:.0} % confidence, and by more than {} for latencies; error and failure rates up by more than {} points\n\n",
            if self.regressed() {
                "**regression**"
            } else {
                "no regression"
            },
            self.base,
            self.candidate,
            units::percent(o.threshold),
            o.confidence * 100.0,
            units::duration_us(o.floor_us),
            units::percent(o.max_error_increase).trim_end_matches(" %"),
        );
        for n in &self.notes {
            let _ = writeln!(out, "**A/B:** {n}\n");
        }
        if !self.forced.is_empty() {
            let _ = writeln!(out, "**Compared with --force although:** {}\n", self.forced.join("; "));
        }
        out.push_str("| metric | baseline | candidate | change | |\n|---|---:|---:|---:|---|\n");
        for d in &self.deltas {
            let flag = if d.regressed {
                "❌ worse".to_owned()
            } else if !d.gated {
                "(not gated)".to_owned()
            } else {
                "✅".to_owned()
            };
            let note = if d.note.is_empty() {
                String::new()
            } else {
                format!(" {}", d.note)
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {flag}{note} |",
                d.key,
                d.fmt_value(d.base),
                d.fmt_value(d.candidate),
                d.fmt_change(o.confidence),
            );
        }
        out
    }
}

/// Judges a latency or throughput row: regressed when the candidate has no samples where the
/// baseline had some, or when the whole confidence interval lies beyond the threshold and the
/// absolute change (`abs`, µs, for latencies) is beyond the floor.
fn judge_relative(d: &mut Delta, o: &GateOptions, abs: Option<f64>) {
    match (d.base, d.candidate, d.change) {
        (Some(_), None, _) => {
            d.regressed = true;
            d.note = "no samples in the candidate".into();
        }
        (None, _, _) => d.note = "no samples in the baseline".into(),
        (_, _, None) => d.note = "baseline is zero".into(),
        (_, _, Some(ch)) => {
            let Some((lo, _)) = d.ci else {
                // Too few intervals to know the noise: judged on the estimate alone.
                d.regressed = ch > o.threshold && abs.is_none_or(|a| a > o.floor_us);
                d.note = "too few intervals for a confidence interval".into();
                return;
            };
            let beyond = lo > o.threshold;
            let above_floor = abs.is_none_or(|a| a > o.floor_us);
            d.regressed = beyond && above_floor;
            if ch > o.threshold && !beyond {
                d.note = "within noise".into();
            } else if beyond && !above_floor {
                d.note = format!("below the {} floor", units::duration_us(o.floor_us));
            }
        }
    }
}

/// The comparison page: the table, then both runs overlaid (baseline dashed), in the report's
/// style.
pub fn page(base: &RunData, cand: &RunData, cmp: &Comparison) -> String {
    let p99 = |r: &RunData, st: &str, label: &str, dashed: bool| Series {
        label: format!("{label} p99"),
        points: charts::interval_quantiles(r.series(st))[2].points.clone(),
        dashed,
    };
    let body = html! {
        h1 {
            "Comparison: "
            @if cmp.regressed() { span.fail { "regression" } } @else { "no regression" }
        }
        p {
            "Baseline: " (cmp.base) br;
            "Candidate: " (cmp.candidate) br;
            "Gate: worse by more than " (units::percent(cmp.options.threshold)) " with "
            (format!("{:.0}", cmp.options.confidence * 100.0)) " % confidence, and by more than "
            (units::duration_us(cmp.options.floor_us)) " for latencies"
        }
        @for n in cmp.notes.iter().chain(cmp.forced.iter()) {
            p.note { (n) }
        }
        div.scroll { table.wrap #compare {
            tr { th { "metric" } th { "baseline" } th { "candidate" } th { "change" } th {} }
            @for d in &cmp.deltas {
                tr {
                    td { (d.key) }
                    td { (d.fmt_value(d.base)) }
                    td { (d.fmt_value(d.candidate)) }
                    td { (d.fmt_change(cmp.options.confidence)) }
                    td class=(if d.regressed { "fail" } else { "" }) {
                        @if d.regressed { "worse " (d.note) }
                        @else if d.gated { "ok " (d.note) }
                        @else { "not gated" }
                    }
                }
            }
        } }
        @for st in STAGES {
            @let series = vec![p99(base, st, "baseline", true), p99(cand, st, "candidate", false)];
            @if series.iter().any(|s| !s.points.is_empty()) {
                @let hs: Vec<_> = [("baseline", base.measured_histogram(st), true), ("candidate", cand.measured_histogram(st), false)]
                    .into_iter()
                    .filter_map(|(l, h, dashed)| h.map(|h| (l.to_owned(), h, dashed)))
                    .collect();
                h2 { (st) }
                (figure(
                    &format!("compare-latency-{st}"),
                    &charts::latency_lines(
                        &format!("{st}: p99 per interval"),
                        &series,
                        &charts::latency_limits(&cand.summary.slo, &[st]),
                        &cand.summary.phases,
                        &cand.summary.faults,
                    ),
                    "",
                ))
                (figure(&format!("compare-percentiles-{st}"), &charts::percentiles(&format!("{st}: by percentile"), &hs), ""))
            }
        }
    };
    crate::html::document("alcor-scale comparison", body)
}

/// Why two folders were not compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A folder could not be read.
    #[error(transparent)]
    Read(#[from] Error),
    /// The runs are of different scenarios.
    #[error("the runs are not comparable (use --force to compare them anyway):\n  {}", .0.join("\n  "))]
    Unlike(Vec<String>),
}

/// Compares two run folders and writes the comparison page to `out`.
pub fn compare(
    base_dir: &Path,
    cand_dir: &Path,
    options: GateOptions,
    force: bool,
    out: &Path,
) -> Result<(Comparison, PathBuf), CompareError> {
    let base = RunData::load(base_dir)?;
    let cand = RunData::load(cand_dir)?;
    let cmp = Comparison::new(&base, &cand, options, force).map_err(CompareError::Unlike)?;
    std::fs::write(out, page(&base, &cand, &cmp)).map_err(|e| Error::io(out, e))?;
    Ok((cmp, out.to_owned()))
}
