//! Rendering, comparison and bad input, from run folders written by real runs
//! (`tests/fixtures/`: ci-smoke, a step search, and a run interrupted by Ctrl-C).

use std::path::{Path, PathBuf};

use reports::compare::{Comparison, GateOptions, Kind};
use reports::rundata::RunData;
use reports::summary::{Summary, metric};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A private copy of a fixture, so tests can write into it.
fn copy(name: &str, tag: &str) -> PathBuf {
    let dst = std::env::temp_dir().join(format!("reports-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(fixture(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

/// The text of every `<td>` of the table row whose first cell is `name` in table `id`.
fn row(html: &str, table: &str, name: &str) -> Option<Vec<String>> {
    let t = &html[html.find(&format!("<table id=\"{table}\""))?..];
    let t = &t[..t.find("</table>")?];
    let start = t
        .find(&format!("<tr data-metric=\"{name}\">"))
        .or_else(|| t.find(&format!("<tr><td>{name}</td>")))?;
    let r = &t[start..];
    let r = &r[..r.find("</tr>")?];
    Some(
        r.split("<td")
            .skip(1)
            .map(|c| {
                let c = &c[c.find('>').unwrap() + 1..];
                c[..c.find("</td>").unwrap()].to_owned()
            })
            .collect(),
    )
}

/// A duration as the report writes it (`26.8 ms`, `84 µs`, `1.49 s`), in µs.
fn parse_duration(cell: &str) -> f64 {
    let (v, unit) = cell.split_once(' ').unwrap_or_else(|| panic!("`{cell}` has no unit"));
    let scale = match unit {
        "ns" => 1e-3,
        "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        u => panic!("unit {u}"),
    };
    v.parse::<f64>().unwrap() * scale
}

#[test]
fn the_report_has_every_chart_and_table_row_with_the_summary_numbers() {
    let dir = copy("smoke", "render");
    let path = reports::render(&dir).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    let s = Summary::read(&dir).unwrap();
    for id in [
        "chart-throughput",
        "chart-latency-api",
        "chart-latency-port_programmed",
        "chart-latency-neighbor_converged",
        "chart-percentiles",
        "chart-size-vs-time",
        "chart-hosts-top",
    ] {
        let at = html
            .find(&format!("<figure id=\"{id}\">"))
            .unwrap_or_else(|| panic!("{id} missing"));
        assert!(
            html[at..].starts_with(&format!("<figure id=\"{id}\"><svg")),
            "{id} is not an SVG"
        );
    }
    assert!(!html.contains("chart not drawn"));
    assert!(!html.contains("id=\"partial\""), "a complete run has no partial banner");
    // The page leads with the verdict and its figures, before any chart or table of detail.
    let verdict = html.find("<section id=\"verdict\"").expect("verdict block");
    let first_figure = html.find("<figure").unwrap();
    assert!(verdict < first_figure && verdict < html.find("id=\"stages\"").unwrap());
    let block = &html[verdict..html[verdict..].find("</section>").unwrap() + verdict];
    let v = reports::verdict::of(&s);
    assert!(
        block.contains(&format!("{}: {}", v.word.label(), v.headline)),
        "{}",
        &block[..300]
    );
    for stage in ["api", "port_programmed", "neighbor_converged", "failures", "generator"] {
        assert!(block.contains(&format!("<th>{stage}</th>")), "{stage} at a glance");
    }
    let api = &s.metrics["api"];
    assert!(block.contains(&format!(
        "p50 <b>{}</b>, p99 <b>{}</b>",
        reports::units::duration_us(api.p50 as f64),
        reports::units::duration_us(api.p99 as f64)
    )));
    assert!(block.contains("id=\"slo\""), "the checks behind the verdict are in it");
    let without_ns = html.replace("http://www.w3.org/2000/svg", "");
    assert!(
        !without_ns.contains("http://") && !without_ns.contains("https://"),
        "nothing is fetched"
    );
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains(" src="));
    // Every metric has its row, and the numbers read back equal summary.json's.
    for (name, st) in &s.metrics {
        let cells = row(&html, "stages", name).unwrap_or_else(|| panic!("row {name} missing"));
        assert_eq!(cells[1].parse::<u64>().unwrap(), st.count, "{name} count");
        if metric::is_latency(name) {
            for (i, v) in [(2, st.p50), (3, st.p90), (4, st.p99), (5, st.p999), (6, st.max)] {
                // Three significant digits: within half a percent.
                let got = parse_duration(&cells[i]);
                assert!(
                    (got - v as f64).abs() <= 0.005 * v as f64 + 0.5,
                    "{name} col {i}: {got} vs {v}"
                );
            }
        } else {
            assert_eq!(cells[2].parse::<f64>().unwrap(), st.p50 as f64, "{name} p50");
        }
    }
    assert_eq!(
        row(&html, "stages", "port_programmed").unwrap()[8],
        s.errors.not_programmed.to_string()
    );
    for r in &s.slo {
        let cells = row(&html, "slo", &r.check.replace('<', "&lt;")).unwrap_or_else(|| panic!("{}", r.check));
        assert_eq!(cells[4], if r.pass { "pass" } else { "FAIL" });
    }
    for p in &s.phases {
        let cells = row(&html, "phases", &p.name).unwrap();
        assert_eq!(cells[5].parse::<u64>().unwrap(), p.requests);
    }
    assert!(html.contains(&s.environment.cpu));
    assert!(
        html.contains("name = &quot;ci-smoke&quot;"),
        "the scenario as run is shown"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_partial_run_renders_with_a_banner() {
    let dir = copy("partial", "partial");
    let html = std::fs::read_to_string(reports::render(&dir).unwrap()).unwrap();
    let banner = &html[html.find("id=\"partial\"").expect("banner")..];
    assert!(
        banner[..200].contains("NOT EVALUATED: interrupted"),
        "the page leads with why nothing was judged: {}",
        &banner[..200]
    );
    let s = Summary::read(&dir).unwrap();
    assert!(
        s.slo
            .iter()
            .all(|r| r.status == reports::summary::SloStatus::NotEvaluated && !r.pass)
    );
    assert!(
        html.contains("<td class=\"fail\">not evaluated</td>"),
        "every check says it was not judged"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_step_search_shows_the_knee_and_every_stage() {
    let dir = copy("step", "step");
    let html = std::fs::read_to_string(reports::render(&dir).unwrap()).unwrap();
    let s = Summary::read(&dir).unwrap();
    let step = s.step_search.as_ref().unwrap();
    assert!(html.contains("<figure id=\"chart-step\"><svg"));
    let knee = step.knee_rps.unwrap();
    assert!(html.contains(&format!("Knee: <b>{knee} requests/s</b>")));
    assert!(
        html.contains(&format!("knee: {} requests/s", reports::units::thousands(knee as i64))),
        "the knee is marked on the chart"
    );
    for st in &step.stages {
        let cells = row(&html, "step", &st.offered_rps.to_string()).unwrap();
        assert_eq!(cells[3], if st.pass { "pass" } else { "FAIL" });
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn slower(dir: &Path, factor: f64) {
    reports::testing::scale_latencies(dir, factor).unwrap();
}

fn gate(threshold: f64) -> GateOptions {
    GateOptions {
        threshold,
        floor_us: 0.0,
        ..Default::default()
    }
}

#[test]
fn compare_flags_a_50_percent_slower_candidate_at_10_not_at_80_and_identical_runs_pass() {
    let base = fixture("smoke");
    let cand = copy("smoke", "cand");
    slower(&cand, 1.5);
    let b = RunData::load(&base).unwrap();
    let c = RunData::load(&cand).unwrap();
    let at10 = Comparison::new(&b, &c, gate(0.10), false).unwrap();
    assert!(at10.regressed(), "{}", at10.markdown());
    let p50 = at10.deltas.iter().find(|d| d.key == "api.p50").unwrap();
    assert!(p50.regressed && (p50.change.unwrap() - 0.5).abs() < 0.01, "{p50:?}");
    let (lo, hi) = p50.ci.unwrap();
    assert!(lo > 0.1 && lo <= 0.5 && hi >= 0.5, "{lo}..{hi}");
    assert!(
        p50.sentence(0.95).starts_with("api.p50 ") && p50.sentence(0.95).contains("95 % CI +"),
        "{}",
        p50.sentence(0.95)
    );
    let thr = at10.deltas.iter().find(|d| d.key == "throughput").unwrap();
    assert!(thr.regressed, "lower throughput is worse: {thr:?}");
    // It reads as the drop it is: 1.5 times slower is a third less throughput.
    let shown = thr.fmt_change(0.95);
    assert!(shown.starts_with("-33."), "{shown}");
    let ci = &shown[shown.find("CI ").unwrap() + 3..];
    assert!(
        ci.starts_with('-') && ci.contains("…-"),
        "the interval is of the drop too: {shown}"
    );
    assert!(!Comparison::new(&b, &c, gate(0.8), false).unwrap().regressed());
    // An absolute floor above every change: nothing is a regression in latency.
    let floored = Comparison::new(
        &b,
        &c,
        GateOptions {
            threshold: 0.1,
            floor_us: 1e9,
            ..Default::default()
        },
        false,
    )
    .unwrap();
    assert!(
        floored
            .deltas
            .iter()
            .filter(|d| d.kind == Kind::Latency)
            .all(|d| !d.regressed)
    );
    assert!(
        !Comparison::new(&b, &b, gate(0.0), false).unwrap().regressed(),
        "identical runs pass"
    );
    let md = at10.markdown();
    assert!(
        md.contains("**regression**") && md.contains("| api.p50 |") && md.contains("95 % CI"),
        "{md}"
    );
    // The page overlays both runs.
    let out = cand.join("compare.html");
    let (cmp, _) = reports::compare::compare(&base, &cand, gate(0.10), false, &out).unwrap();
    assert!(cmp.regressed());
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("<figure id=\"compare-percentiles-api\"><svg") && html.contains("baseline p99"));
    std::fs::remove_dir_all(&cand).unwrap();
}

#[test]
fn compare_fails_a_candidate_that_measured_nothing_or_failed_more() {
    let base = fixture("smoke");
    let b = RunData::load(&base).unwrap();
    // No metrics at all.
    let empty = copy("smoke", "empty");
    let mut s = Summary::read(&empty).unwrap();
    s.metrics.clear();
    s.write(&empty).unwrap();
    let c = RunData::load(&empty).unwrap();
    let cmp = Comparison::new(&b, &c, gate(0.1), false).unwrap();
    assert!(cmp.regressed());
    let p99 = cmp.deltas.iter().find(|d| d.key == "port_programmed.p99").unwrap();
    assert!(p99.regressed && p99.note.contains("no samples"), "{p99:?}");
    // 80 % errors: gated in absolute terms, whatever the latencies of the few successes.
    let errs = copy("smoke", "errors");
    let mut s = Summary::read(&errs).unwrap();
    s.errors.error_rate = 0.808;
    s.errors
        .failures
        .insert("http_5xx".into(), s.throughput.requests * 8 / 10);
    s.write(&errs).unwrap();
    let c = RunData::load(&errs).unwrap();
    let cmp = Comparison::new(&b, &c, gate(0.1), false).unwrap();
    let keys: Vec<&str> = cmp
        .deltas
        .iter()
        .filter(|d| d.regressed)
        .map(|d| d.key.as_str())
        .collect();
    assert!(
        keys.contains(&"error_rate") && keys.contains(&"failures.http_5xx"),
        "{keys:?}"
    );
    // Another scenario: refused with the differences named, unless forced.
    let other = copy("smoke", "other");
    let mut s = Summary::read(&other).unwrap();
    s.scenario.name = "quickstart".into();
    s.scenario.agents += 5;
    s.write(&other).unwrap();
    let c = RunData::load(&other).unwrap();
    let diff = Comparison::new(&b, &c, gate(0.1), false).unwrap_err();
    assert!(
        diff.iter().any(|d| d.contains("quickstart")) && diff.iter().any(|d| d.starts_with("agents:")),
        "{diff:?}"
    );
    let forced = Comparison::new(&b, &c, gate(0.1), true).unwrap();
    assert!(forced.markdown().contains("Compared with --force although"));
    for d in [empty, errs, other] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn bad_run_folders_name_the_file() {
    let missing = reports::render(Path::new("/nonexistent/run")).unwrap_err().to_string();
    assert!(missing.contains("/nonexistent/run"), "{missing}");
    let dir = copy("smoke", "corrupt");
    std::fs::write(dir.join("summary.json"), "{ not json").unwrap();
    let e = reports::render(&dir).unwrap_err().to_string();
    assert!(e.contains("summary.json") && e.contains("not JSON"), "{e}");
    let dir2 = copy("smoke", "corrupt-hlog");
    std::fs::write(dir2.join("intervals.hlog"), "Tag=api,0.000,1.000,5.000,@@@@\n").unwrap();
    let e = reports::render(&dir2).unwrap_err().to_string();
    assert!(e.contains("intervals.hlog"), "{e}");
    std::fs::remove_file(dir2.join("hosts.csv")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

#[test]
fn contrast_phases_are_shown_side_by_side_with_the_judged_ones() {
    let dir = copy("smoke", "contrast");
    let html = std::fs::read_to_string(reports::render(&dir).unwrap()).unwrap();
    assert!(!html.contains("id=\"side-by-side\""), "no contrast, no table");
    // The same run with its measured phase marked a contrast, beside a copy judged as load.
    let path = dir.join("summary.json");
    let mut s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let phases = s["phases"].as_array_mut().unwrap();
    let load = phases.iter().position(|p| p["kind"] == "load").unwrap();
    let mut contrast = phases[load].clone();
    contrast["kind"] = "contrast".into();
    contrast["name"] = "other-mode".into();
    phases.push(contrast);
    std::fs::write(&path, serde_json::to_string(&s).unwrap()).unwrap();
    let html = std::fs::read_to_string(reports::render(&dir).unwrap()).unwrap();
    let judged = row(&html, "side-by-side", s["phases"][load]["name"].as_str().unwrap()).expect("load row");
    let other = row(&html, "side-by-side", "other-mode").expect("contrast row");
    assert_eq!((judged[1].as_str(), other[1].as_str()), ("load", "contrast"));
    // Same figures, since it is the same phase: p50 / p99 of neighbor_converged, which comes
    // first after the rate and the errors.
    assert!(html.contains("<th>errors</th><th>neighbor_converged</th>"));
    assert_eq!(judged[4], other[4]);
    assert!(judged[4].contains(" / "), "{}", judged[4]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_log_cut_mid_write_renders_and_says_so() {
    let dir = copy("smoke", "cut");
    let path = dir.join("intervals.hlog");
    let mut bytes = std::fs::read(&path).unwrap();
    // Drop the last line's second half, as a run killed while writing it leaves the file.
    let last = bytes[..bytes.len() - 1].iter().rposition(|b| *b == b'\n').unwrap() + 1;
    let keep = last + (bytes.len() - last) / 2;
    bytes.truncate(keep);
    std::fs::write(&path, &bytes).unwrap();
    let html = std::fs::read_to_string(reports::render(&dir).unwrap()).unwrap();
    let banner = &html[html.find("id=\"cut-log\"").expect("banner")..];
    assert!(
        banner[..120].contains("intervals.hlog was cut mid-write"),
        "{}",
        &banner[..120]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
