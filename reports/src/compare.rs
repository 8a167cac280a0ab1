//! Comparing a candidate run with a baseline: per metric the ratio candidate / baseline,
//! flagged where worse beyond a threshold; a markdown table for a pull-request comment; a
//! report with both runs overlaid.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::charts::{self, Series};
use crate::html::{STAGES, escape, ms};
use crate::rundata::RunData;
use crate::summary::{Summary, metric};

/// One compared figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    /// `port_programmed.p99`, `throughput` …
    pub key: String,
    /// Baseline value.
    pub base: Option<f64>,
    /// Candidate value.
    pub candidate: Option<f64>,
    /// candidate / baseline.
    pub ratio: Option<f64>,
    /// Whether a higher value is worse (latency) or better (throughput).
    pub higher_is_worse: bool,
    /// Whether this figure can fail the comparison (maxima are shown, not gated: one sample).
    pub gated: bool,
    /// Worse than the threshold allows.
    pub regressed: bool,
}

/// A whole comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Baseline name and folder.
    pub base: String,
    /// Candidate name and folder.
    pub candidate: String,
    /// Allowed worsening, as a fraction (0.1 = 10 %).
    pub threshold: f64,
    /// Every figure.
    pub deltas: Vec<Delta>,
}

fn keys() -> Vec<(String, bool, bool)> {
    let mut k = Vec::new();
    for st in STAGES.iter().chain(std::iter::once(&metric::AGENT_PROCESSING)) {
        for (stat, gated) in [("p50", true), ("p90", true), ("p99", true), ("max", false)] {
            k.push((format!("{st}.{stat}"), true, gated));
        }
    }
    k.push(("throughput".into(), false, true));
    k.push(("error_rate".into(), true, false));
    k
}

impl Comparison {
    /// Compares two summaries.
    pub fn new(base: &Summary, base_dir: &Path, cand: &Summary, cand_dir: &Path, threshold: f64) -> Self {
        let deltas = keys()
            .into_iter()
            .map(|(key, higher_is_worse, gated)| {
                let (b, c) = (base.value(&key), cand.value(&key));
                let ratio = match (b, c) {
                    (Some(b), Some(c)) if b > 0.0 => Some(c / b),
                    _ => None,
                };
                let regressed = gated
                    && ratio.is_some_and(|r| {
                        if higher_is_worse {
                            r > 1.0 + threshold
                        } else {
                            r < 1.0 / (1.0 + threshold)
                        }
                    });
                Delta {
                    key,
                    base: b,
                    candidate: c,
                    ratio,
                    higher_is_worse,
                    gated,
                    regressed,
                }
            })
            .collect();
        Self {
            base: format!("{} ({})", base.scenario.name, base_dir.display()),
            candidate: format!("{} ({})", cand.scenario.name, cand_dir.display()),
            threshold,
            deltas,
        }
    }

    /// Whether any gated figure got worse beyond the threshold.
    pub fn regressed(&self) -> bool {
        self.deltas.iter().any(|d| d.regressed)
    }

    fn fmt(key: &str, v: Option<f64>) -> String {
        match v {
            None => "n/a".into(),
            Some(v) if key == "error_rate" => format!("{:.3} %", v * 100.0),
            Some(v) if key == "throughput" => format!("{v:.1}/s"),
            Some(v) => ms(v),
        }
    }

    /// The comparison as a markdown table (for a pull-request comment).
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### alcor-scale: {} vs baseline\n\nBaseline: {}  \nCandidate: {}  \nThreshold: {:.0} % worse\n\n| metric | baseline | candidate | ratio | |\n|---|---:|---:|---:|---|\n",
            if self.regressed() {
                "**regression**"
            } else {
                "no regression"
            },
            self.base,
            self.candidate,
            self.threshold * 100.0
        );
        for d in &self.deltas {
            let flag = if d.regressed {
                "❌ worse"
            } else if !d.gated {
                "(not gated)"
            } else {
                "✅"
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                d.key,
                Self::fmt(&d.key, d.base),
                Self::fmt(&d.key, d.candidate),
                d.ratio.map(|r| format!("{r:.3}")).unwrap_or_else(|| "n/a".into()),
                flag
            );
        }
        out
    }
}

/// The comparison page: the table, then both runs overlaid (baseline dashed).
pub fn page(base: &RunData, cand: &RunData, cmp: &Comparison) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>alcor-scale comparison</title><style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:0 auto;padding:12px}}table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}.fail{{color:#b00020;font-weight:600}}svg{{max-width:100%;height:auto}}.scroll{{overflow-x:auto}}</style></head><body><h1>Comparison: {}</h1><p>Baseline: {}<br>Candidate: {}<br>Threshold: {:.0} % worse</p>",
        if cmp.regressed() {
            "<span class=\"fail\">regression</span>"
        } else {
            "no regression"
        },
        escape(&cmp.base),
        escape(&cmp.candidate),
        cmp.threshold * 100.0
    );
    out.push_str("<div class=\"scroll\"><table id=\"compare\"><tr><th>metric</th><th>baseline</th><th>candidate</th><th>ratio</th><th></th></tr>");
    for d in &cmp.deltas {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            escape(&d.key),
            Comparison::fmt(&d.key, d.base),
            Comparison::fmt(&d.key, d.candidate),
            d.ratio.map(|r| format!("{r:.3}")).unwrap_or_else(|| "n/a".into()),
            if d.regressed { "fail" } else { "" },
            if d.regressed {
                "worse"
            } else if d.gated {
                "ok"
            } else {
                "not gated"
            }
        );
    }
    out.push_str("</table></div>");
    for st in STAGES {
        let p99 = |r: &RunData, label: &str, dashed: bool| Series {
            label: format!("{label} p99"),
            points: charts::interval_quantiles(r.series(st))[2].points.clone(),
            dashed,
        };
        let series = vec![p99(base, "baseline", true), p99(cand, "candidate", false)];
        if series.iter().all(|s| s.points.is_empty()) {
            continue;
        }
        let _ = write!(
            out,
            "<h2>{st}</h2><figure id=\"compare-latency-{st}\">{}</figure>",
            charts::latency_lines(&format!("{st}: p99 per interval"), &series, &cand.summary.phases)
        );
        let hb = base.measured_histogram(st);
        let hc = cand.measured_histogram(st);
        let mut hs = Vec::new();
        if let Some(h) = hb {
            hs.push(("baseline".to_owned(), h, true));
        }
        if let Some(h) = hc {
            hs.push(("candidate".to_owned(), h, false));
        }
        let _ = write!(
            out,
            "<figure id=\"compare-percentiles-{st}\">{}</figure>",
            charts::percentiles(&format!("{st}: by percentile"), &hs)
        );
    }
    out.push_str("</body></html>\n");
    out
}

/// Compares two run folders and writes the comparison page to `out`.
pub fn compare(base_dir: &Path, cand_dir: &Path, threshold: f64, out: &Path) -> Result<(Comparison, PathBuf), Error> {
    let base = RunData::load(base_dir)?;
    let cand = RunData::load(cand_dir)?;
    let cmp = Comparison::new(&base.summary, base_dir, &cand.summary, cand_dir, threshold);
    std::fs::write(out, page(&base, &cand, &cmp)).map_err(|e| Error::io(out, e))?;
    Ok((cmp, out.to_owned()))
}
