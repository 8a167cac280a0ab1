//! A run's verdict in one word and why: what the console's first line, the report's first block
//! and CI read. One definition, so that the three never disagree.

use crate::summary::{SloStatus, Summary};
use crate::units;

/// The verdict's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    /// Every check held at the load the scenario asked for.
    Pass,
    /// A check did not hold, or names a figure that was never measured.
    Fail,
    /// Every check held, but not at the load asked for: the generator fell behind or its host
    /// was saturated, so the figures describe less load (or more of the generator's queueing).
    Partial,
    /// Nothing was judged: the run stopped early, or the scenario sets no check.
    NotEvaluated,
}

impl Word {
    /// `PASS`, `FAIL`, `PARTIAL`, `NOT EVALUATED`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Partial => "PARTIAL",
            Self::NotEvaluated => "NOT EVALUATED",
        }
    }

    /// A CSS class for it.
    pub fn class(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Partial => "partial",
            Self::NotEvaluated => "unjudged",
        }
    }
}

/// The verdict and its reasons, most important first.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The word.
    pub word: Word,
    /// One line of why: the count of checks, the reason for stopping.
    pub headline: String,
    /// Each finding behind it: a failed check with its value, the generator's findings.
    pub reasons: Vec<String>,
}

/// The verdict of a run.
pub fn of(s: &Summary) -> Verdict {
    let g = &s.generator;
    let generator: Vec<String> = if g.fell_behind || g.saturated {
        g.reasons.clone()
    } else {
        Vec::new()
    };
    if s.partial {
        return Verdict {
            word: Word::NotEvaluated,
            headline: s
                .partial_reason
                .clone()
                .unwrap_or_else(|| "the run stopped early".into()),
            reasons: vec!["no check was judged; the figures cover what was measured until the run stopped".into()],
        };
    }
    if s.slo.is_empty() {
        return Verdict {
            word: Word::NotEvaluated,
            headline: "the scenario sets no check".into(),
            reasons: generator,
        };
    }
    let failed: Vec<String> = s
        .slo
        .iter()
        .filter(|r| !r.pass)
        .map(|r| match r.status {
            SloStatus::NoSamples => format!("{}: never measured", r.check),
            _ => format!("{}: {}", r.check, r.shown()),
        })
        .collect();
    if !failed.is_empty() {
        let mut reasons = failed.clone();
        reasons.extend(generator);
        return Verdict {
            word: Word::Fail,
            headline: format!("{} of {} checks failed", failed.len(), s.slo.len()),
            reasons,
        };
    }
    let n = s.slo.len();
    let checks = if n == 1 {
        "1 check".to_owned()
    } else {
        format!("{n} checks")
    };
    if !generator.is_empty() {
        return Verdict {
            word: Word::Partial,
            headline: format!(
                "{checks} held, but {}",
                if g.fell_behind {
                    "the generator fell behind"
                } else {
                    "the generator's host was saturated"
                }
            ),
            reasons: generator,
        };
    }
    let sent = s.throughput.requests;
    Verdict {
        word: Word::Pass,
        headline: format!("{checks} held over {} requests", units::thousands(sent as i64)),
        reasons: Vec::new(),
    }
}

/// How the load generator fared, in the words the console and the report both show: whether
/// it kept up (false also when it sent nothing) and one line of why.
pub fn generator_line(s: &Summary) -> (bool, String) {
    let g = &s.generator;
    if s.throughput.requests == 0 {
        (false, "sent nothing in the measured phases".into())
    } else if g.fell_behind || g.saturated {
        (false, g.reasons.join("; "))
    } else {
        let lag = if g.send_lag.count > 0 {
            units::duration_us(g.send_lag.p99 as f64)
        } else {
            "-".into()
        };
        (
            true,
            format!(
                "kept up: send lag p99 {lag}, this process {:.1} of {} CPUs, host load {:.1}",
                g.process_cpu, g.cores, g.load
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::SloResult;

    fn check(pass: bool, status: SloStatus) -> SloResult {
        SloResult {
            check: "api.p99 < 100ms".into(),
            actual: Some(if pass { 50_000.0 } else { 150_000.0 }),
            threshold: 100_000.0,
            op: "<".into(),
            pass,
            status,
            margin: None,
        }
    }

    #[test]
    fn each_word_has_its_reason() {
        let mut s = Summary::default();
        assert_eq!(of(&s).word, Word::NotEvaluated, "no checks set");
        s.slo = vec![check(true, SloStatus::Pass)];
        s.throughput.requests = 1200;
        let v = of(&s);
        assert_eq!(
            (v.word, v.headline.as_str()),
            (Word::Pass, "1 check held over 1,200 requests")
        );
        s.generator.fell_behind = true;
        s.generator.reasons = vec!["4,000 requests due were never sent".into()];
        let v = of(&s);
        assert_eq!(v.word, Word::Partial);
        assert!(
            v.headline.contains("fell behind") && v.reasons[0].contains("never sent"),
            "{v:?}"
        );
        s.slo.push(check(false, SloStatus::Fail));
        let v = of(&s);
        assert_eq!(v.word, Word::Fail);
        assert_eq!(v.headline, "1 of 2 checks failed");
        assert!(v.reasons[0].starts_with("api.p99 < 100ms: 150"), "{v:?}");
        assert!(v.reasons[1].contains("never sent"), "the generator's findings follow");
        s.partial = true;
        s.partial_reason = Some("interrupted".into());
        assert_eq!(of(&s).word, Word::NotEvaluated);
    }

    #[test]
    fn the_generator_line_says_what_it_did() {
        let mut s = Summary::default();
        assert_eq!(
            generator_line(&s),
            (false, "sent nothing in the measured phases".to_owned())
        );
        s.throughput.requests = 10;
        s.generator.cores = 2;
        s.generator.process_cpu = 0.5;
        s.generator.load = 1.3;
        assert_eq!(
            generator_line(&s),
            (
                true,
                "kept up: send lag p99 -, this process 0.5 of 2 CPUs, host load 1.3".to_owned()
            )
        );
        s.generator.saturated = true;
        s.generator.reasons = vec!["host load 4.0 on 2 CPUs".into(), "steal 12 %".into()];
        assert_eq!(
            generator_line(&s),
            (false, "host load 4.0 on 2 CPUs; steal 12 %".to_owned())
        );
    }
}
