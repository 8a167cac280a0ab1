//! SLO checks: `METRIC.STAT OP VALUE` (`port_programmed.p99 < 200ms`) or `SCALAR OP VALUE`
//! (`error_rate < 0.1%`, `throughput >= 500`, `knee >= 500`), evaluated against a run's summary.
//!
//! A check is judged only on what was measured: a figure without samples fails as `no samples`,
//! never passes, and a run that stopped early judges nothing (`not evaluated`). Checks that
//! could not mean anything (`api.p99 < -1ms`, `error_rate < 200%`) are refused when parsed.

use reports::summary::{SloResult, SloStatus, Stats, Summary, metric};

pub use reports::summary::SCALARS;

/// Metrics a check may name.
pub const METRICS: [&str; 25] = [
    metric::API,
    "api.create",
    "api.update",
    "api.delete",
    "api.sg_rule_add",
    "api.sg_rule_delete",
    "api.sg_join",
    "api.sg_leave",
    "api.sg_group_create",
    "api.sg_group_delete",
    "sg_programmed.rule_add",
    "sg_programmed.rule_delete",
    "sg_programmed.join",
    "sg_programmed.leave",
    metric::GOAL_STATE_SG_RULES,
    metric::PORT_PROGRAMMED,
    metric::NEIGHBOR_CONVERGED,
    metric::PORT_ACTIVE,
    metric::AGENT_PROCESSING,
    metric::GOAL_STATE_BYTES,
    metric::GOAL_STATE_NEIGHBORS,
    metric::SEND_LAG,
    metric::CP_COMPUTE,
    metric::CP_ENCODE,
    metric::CP_PUSH,
];

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }

    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Self::Lt => a < b,
            Self::Le => a <= b,
            Self::Gt => a > b,
            Self::Ge => a >= b,
        }
    }
}

/// A parsed check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// As written.
    pub text: String,
    /// `port_programmed.p99` or a scalar.
    pub key: String,
    /// The comparison.
    pub op: Op,
    /// Threshold in the key's unit: µs for latencies, a fraction for `error_rate`.
    pub threshold: f64,
}

impl Check {
    /// The metric it judges (`port_programmed` of `port_programmed.p99`), or the scalar.
    pub fn metric(&self) -> &str {
        if SCALARS.contains(&self.key.as_str()) {
            return &self.key;
        }
        self.key.rsplit_once('.').map_or(self.key.as_str(), |(m, _)| m)
    }

    /// Parses a check; the error says what is wrong in words a user can act on.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (pos, op) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|o| t.find(o).map(|p| (p, *o)))
            .ok_or_else(|| format!("`{t}`: expected METRIC.STAT < VALUE (or <=, >, >=)"))?;
        let key = t[..pos].trim().to_owned();
        let raw = t[pos + op.len()..].trim();
        let op = match op {
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            _ => Op::Ge,
        };
        let latency = if SCALARS.contains(&key.as_str()) {
            false
        } else {
            let (name, stat) = key.rsplit_once('.').ok_or_else(|| {
                format!("`{key}`: expected METRIC.STAT (e.g. port_programmed.p99) or one of {SCALARS:?}")
            })?;
            if !METRICS.contains(&name) {
                return Err(format!("`{name}`: unknown metric (known: {})", METRICS.join(", ")));
            }
            if !Stats::STATS.contains(&stat) {
                return Err(format!(
                    "`{stat}`: unknown statistic (known: {})",
                    Stats::STATS.join(", ")
                ));
            }
            metric::is_latency(name) && stat != "count"
        };
        let rate = key == "error_rate";
        let threshold = parse_value(raw, latency, rate).map_err(|e| format!("`{raw}`: {e}"))?;
        // Every figure is at least 0, and a rate at most 1: a bound outside that range holds
        // always or never, so the check would say nothing about the run.
        let never = match op {
            Op::Lt => threshold <= 0.0,
            Op::Le => threshold < 0.0,
            Op::Gt => rate && threshold >= 1.0,
            Op::Ge => rate && threshold > 1.0,
        };
        let always = match op {
            Op::Gt => threshold < 0.0,
            Op::Ge => threshold <= 0.0,
            Op::Lt => rate && threshold > 1.0,
            Op::Le => rate && threshold >= 1.0,
        };
        if never {
            return Err(format!(
                "`{t}` can never hold: {key} is {}",
                if rate && threshold > 0.0 {
                    "at most 100 %"
                } else {
                    "never negative"
                }
            ));
        }
        if always {
            return Err(format!(
                "`{t}` always holds: {key} is {}, so it would check nothing",
                if rate && threshold > 0.0 {
                    "at most 100 %"
                } else {
                    "never negative"
                }
            ));
        }
        Ok(Self {
            text: t.to_owned(),
            key,
            op,
            threshold,
        })
    }

    /// Evaluates against a value (None: the figure has no samples, which fails).
    pub fn evaluate(&self, actual: Option<f64>) -> SloResult {
        let pass = actual.is_some_and(|a| self.op.holds(a, self.threshold));
        let status = match actual {
            None => SloStatus::NoSamples,
            Some(_) if pass => SloStatus::Pass,
            Some(_) => SloStatus::Fail,
        };
        let margin = actual.filter(|_| self.threshold != 0.0).map(|a| match self.op {
            Op::Lt | Op::Le => (self.threshold - a) / self.threshold,
            Op::Gt | Op::Ge => (a - self.threshold) / self.threshold,
        });
        SloResult {
            check: self.text.clone(),
            actual,
            threshold: self.threshold,
            op: self.op.as_str().to_owned(),
            pass,
            status,
            margin,
        }
    }

    /// Whether the check judges the run as a whole (`knee`, `setup_errors`), not a phase or a
    /// step stage.
    pub fn is_run_level(&self) -> bool {
        matches!(self.key.as_str(), "knee" | "setup_errors")
    }

    /// The result of a check the run did not get far enough to judge.
    pub fn not_evaluated(&self) -> SloResult {
        SloResult {
            check: self.text.clone(),
            actual: None,
            threshold: self.threshold,
            op: self.op.as_str().to_owned(),
            pass: false,
            status: SloStatus::NotEvaluated,
            margin: None,
        }
    }

    /// Evaluates against a summary.
    pub fn evaluate_summary(&self, s: &Summary) -> SloResult {
        self.evaluate(s.value(&self.key))
    }
}

/// A threshold in the metric's unit: durations to µs, percentages to fractions.
fn parse_value(raw: &str, latency: bool, rate: bool) -> Result<f64, String> {
    let num_end = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(raw.len());
    let (num, unit) = raw.split_at(num_end);
    let n: f64 = num.parse().map_err(|_| "not a number".to_owned())?;
    let unit = unit.trim();
    Ok(match unit {
        "" if latency => return Err("a latency needs a unit (us, ms, s)".into()),
        "" => n,
        "us" | "µs" if latency => n,
        "ms" if latency => n * 1e3,
        "s" if latency => n * 1e6,
        "%" if rate => n / 100.0,
        _ => return Err(format!("unit `{unit}` does not fit this metric")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_parse_with_units_and_evaluate_with_margins() {
        let c = Check::parse("port_programmed.p99 < 200ms").unwrap();
        assert_eq!(
            (c.key.as_str(), c.op, c.threshold),
            ("port_programmed.p99", Op::Lt, 200_000.0)
        );
        let r = c.evaluate(Some(150_000.0));
        assert!(r.pass);
        assert!((r.margin.unwrap() - 0.25).abs() < 1e-9);
        assert!(!c.evaluate(Some(250_000.0)).pass);
        assert!(!c.evaluate(None).pass, "no data must fail");
        let e = Check::parse("error_rate < 0.1%").unwrap();
        assert!((e.threshold - 0.001).abs() < 1e-12);
        assert_eq!(Check::parse("throughput >= 500").unwrap().threshold, 500.0);
        assert_eq!(Check::parse("api.p50 <= 1.5s").unwrap().threshold, 1_500_000.0);
    }

    #[test]
    fn bad_checks_say_why() {
        assert!(Check::parse("port_programmed.p99 < 200").unwrap_err().contains("unit"));
        assert!(Check::parse("bogus.p99 < 2ms").unwrap_err().contains("unknown metric"));
        assert!(Check::parse("api.p98 < 2ms").unwrap_err().contains("unknown statistic"));
        assert!(Check::parse("api.p99 = 2ms").unwrap_err().contains("expected"));
        assert!(Check::parse("error_rate < 2ms").unwrap_err().contains("does not fit"));
    }

    #[test]
    fn checks_that_hold_always_or_never_are_refused() {
        for (text, why) in [
            ("api.p99 < -1ms", "never hold"),
            ("api.p99 < 0ms", "never hold"),
            ("requests >= 0", "always holds"),
            ("throughput > -5", "always holds"),
            ("error_rate < 200%", "always holds"),
            ("error_rate <= 100%", "always holds"),
            ("error_rate > 100%", "never hold"),
            ("not_converged < 0", "never hold"),
        ] {
            let e = Check::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
        for ok in [
            "error_rate < 100%",
            "requests >= 1",
            "api.p99 <= 0ms",
            "knee >= 500",
            "setup_errors < 1",
        ] {
            assert!(Check::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn absent_figures_fail_as_no_samples_and_unjudged_checks_never_pass() {
        let c = Check::parse("requests >= 1").unwrap();
        let r = c.evaluate(None);
        assert_eq!((r.pass, r.status), (false, SloStatus::NoSamples));
        assert_eq!(c.evaluate(Some(3.0)).status, SloStatus::Pass);
        assert_eq!(c.evaluate(Some(0.0)).status, SloStatus::Fail);
        let n = c.not_evaluated();
        assert_eq!((n.pass, n.status, n.actual), (false, SloStatus::NotEvaluated, None));
    }
}
