//! Rendering, comparison and bad input, from run folders written by real runs
//! (`tests/fixtures/`: ci-smoke, a step search, and a run interrupted by Ctrl-C).

use std::path::{Path, PathBuf};

use reports::compare::Comparison;
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

fn parse_ms(cell: &str) -> f64 {
    cell.trim_end_matches(" ms").parse::<f64>().unwrap() * 1e3
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
        "chart-hosts-messages",
        "chart-hosts-bytes",
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
                let got = parse_ms(&cells[i]);
                assert!((got - v as f64).abs() <= 5.0, "{name} col {i}: {got} vs {v}");
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
    assert!(banner[..200].contains("Partial run: interrupted"), "{}", &banner[..200]);
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
        html.contains(&format!("knee: {knee} requests/s")),
        "the knee is marked on the chart"
    );
    for st in &step.stages {
        let cells = row(&html, "step", &st.offered_rps.to_string()).unwrap();
        assert_eq!(cells[3], if st.pass { "pass" } else { "FAIL" });
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn slower(dir: &Path, factor: f64) {
    let mut s = Summary::read(dir).unwrap();
    for st in s.metrics.values_mut() {
        for v in [
            &mut st.min,
            &mut st.p50,
            &mut st.p90,
            &mut st.p99,
            &mut st.p999,
            &mut st.max,
        ] {
            *v = (*v as f64 * factor).round() as u64;
        }
        st.mean *= factor;
    }
    s.throughput.requests_per_s /= factor;
    s.write(dir).unwrap();
}

#[test]
fn compare_flags_a_20_percent_slower_candidate_at_10_not_at_25() {
    let base = fixture("smoke");
    let cand = copy("smoke", "cand");
    slower(&cand, 1.2);
    let b = Summary::read(&base).unwrap();
    let c = Summary::read(&cand).unwrap();
    let at10 = Comparison::new(&b, &base, &c, &cand, 0.10);
    assert!(at10.regressed());
    let p99 = at10.deltas.iter().find(|d| d.key == "port_programmed.p99").unwrap();
    assert!(p99.regressed && (p99.ratio.unwrap() - 1.2).abs() < 0.01);
    let thr = at10.deltas.iter().find(|d| d.key == "throughput").unwrap();
    assert!(thr.regressed, "lower throughput is worse");
    assert!(!Comparison::new(&b, &base, &c, &cand, 0.25).regressed());
    assert!(
        !Comparison::new(&b, &base, &b, &base, 0.0).regressed(),
        "identical runs pass"
    );
    let md = at10.markdown();
    assert!(md.contains("**regression**") && md.contains("| port_programmed.p99 |"));
    // The page overlays both runs.
    let out = cand.join("compare.html");
    let (cmp, _) = reports::compare::compare(&base, &cand, 0.10, &out).unwrap();
    assert!(cmp.regressed());
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("<figure id=\"compare-percentiles-api\"><svg") && html.contains("baseline p99"));
    std::fs::remove_dir_all(&cand).unwrap();
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
