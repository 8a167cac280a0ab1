//! JUnit XML: each SLO check and each gated comparison as a test case, so CI systems show them
//! as tests.

use std::path::Path;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::Error;
use crate::compare::Comparison;
use crate::summary::{SloStatus, Summary, format_value};

/// One test case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Suite-local name.
    pub name: String,
    /// Group (`slo`, `regression`).
    pub classname: String,
    /// Why it failed, if it did.
    pub failure: Option<String>,
}

/// A case per SLO check of a run.
pub fn slo_cases(s: &Summary) -> Vec<Case> {
    s.slo
        .iter()
        .map(|r| Case {
            name: r.check.clone(),
            classname: format!("alcor-scale.{}.slo", s.scenario.name),
            failure: (!r.pass).then(|| {
                let key = r.key();
                match (r.status, r.actual) {
                    (SloStatus::NotEvaluated, _) => format!(
                        "not evaluated: {}",
                        s.partial_reason.as_deref().unwrap_or("the run stopped early")
                    ),
                    (_, None) => "no samples: nothing was measured for this figure".into(),
                    (_, Some(a)) => format!(
                        "{key} {} against {} {}",
                        format_value(key, a),
                        r.op,
                        format_value(key, r.threshold)
                    ),
                }
            }),
        })
        .collect()
}

/// A case per gated figure of a comparison.
pub fn regression_cases(c: &Comparison) -> Vec<Case> {
    c.deltas
        .iter()
        .filter(|d| d.gated)
        .map(|d| Case {
            name: format!("{} no worse than baseline", d.key),
            classname: "alcor-scale.regression".into(),
            failure: d.regressed.then(|| d.sentence(c.options.confidence)),
        })
        .collect()
}

/// The XML of one suite, written by quick-junit (escaping, counts and the schema CI systems
/// read are its business).
pub fn xml(suite: &str, cases: &[Case]) -> String {
    let mut ts = TestSuite::new(suite);
    ts.add_test_cases(cases.iter().map(|c| {
        let status = match &c.failure {
            Some(f) => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(f.as_str());
                st
            }
            None => TestCaseStatus::success(),
        };
        let mut tc = TestCase::new(c.name.as_str(), status);
        tc.set_classname(c.classname.as_str());
        tc
    }));
    let mut report = Report::new(suite);
    report.add_test_suite(ts);
    // Serializing owned strings into memory cannot fail.
    report.to_string().unwrap_or_default()
}

/// Writes a suite to `path`.
pub fn write(path: &Path, suite: &str, cases: &[Case]) -> Result<(), Error> {
    std::fs::write(path, xml(suite, cases)).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_and_escaped() {
        let x = xml(
            "s",
            &[
                Case {
                    name: "p99 < 2ms".into(),
                    classname: "c".into(),
                    failure: Some("actual 3 > 2".into()),
                },
                Case {
                    name: "ok".into(),
                    classname: "c".into(),
                    failure: None,
                },
            ],
        );
        assert!(x.contains("tests=\"2\" failures=\"1\""), "{x}");
        assert!(x.contains("name=\"p99 &lt; 2ms\""), "{x}");
        assert!(x.contains("<failure message=\"actual 3 &gt; 2\""), "{x}");
    }
}
