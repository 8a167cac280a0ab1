//! `report.html`: one self-contained file (inline CSS and SVG, no script, nothing fetched) that
//! reads at a glance on a laptop or a phone.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::charts::{self, Series};
use crate::rundata::RunData;
use crate::summary::{SloResult, Stats, Summary, format_value, metric};
use crate::{Error, files};

/// Stages shown first, in this order.
pub const STAGES: [&str; 4] = [
    metric::API,
    metric::PORT_ACTIVE,
    metric::PORT_PROGRAMMED,
    metric::NEIGHBOR_CONVERGED,
];

/// HTML-escapes text.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A latency in ms, two decimals (the report's one format for latencies).
pub fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1e3)
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1000px;padding:12px;color:#222}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
.banner{background:#fff3cd;border:1px solid #e0b400;padding:8px 12px;border-radius:4px;font-weight:600}
.pass{color:#186a1e;font-weight:600}.fail{color:#b00020;font-weight:600}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}svg{width:100%;height:auto;display:block}
.note{color:#666;font-size:.9em}pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:.85em}
.kv td{text-align:left}
.verdict{border-left:10px solid #777;background:#f2f2f2;padding:6px 14px;margin:1em 0;border-radius:4px}
.verdict .word{font-size:1.6em;font-weight:700;margin:.2em 0}.verdict ul{margin:.3em 0}
.v-pass{border-color:#186a1e;background:#eef7ee}.v-fail{border-color:#b00020;background:#fdecee}
.v-partial{border-color:#e0b400;background:#fff8e1}.v-unjudged{border-color:#777;background:#f2f2f2}
.glance td{text-align:left;white-space:normal}
";

fn stats_row(out: &mut String, name: &str, s: &Stats, errors: Option<u64>) {
    let latency = metric::is_latency(name);
    let f = |v: f64| if latency { ms(v) } else { format!("{v:.0}") };
    let _ = write!(
        out,
        "<tr data-metric=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        escape(name),
        escape(name),
        s.count,
        f(s.p50 as f64),
        f(s.p90 as f64),
        f(s.p99 as f64),
        f(s.p999 as f64),
        f(s.max as f64),
        f(s.mean),
        errors.map(|e| e.to_string()).unwrap_or_default()
    );
}

fn metric_table(out: &mut String, s: &Summary, id: &str, metrics: &std::collections::BTreeMap<String, Stats>) {
    let _ = write!(
        out,
        "<div class=\"scroll\"><table id=\"{id}\"><tr><th>metric</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th><th>errors</th></tr>"
    );
    let errors = |m: &str| match m {
        metric::API => Some(s.errors.requests_failed),
        metric::PORT_PROGRAMMED | metric::PORT_ACTIVE => Some(s.errors.not_programmed),
        metric::NEIGHBOR_CONVERGED => Some(s.errors.not_converged),
        metric::AGENT_PROCESSING => Some(s.errors.agent_errors),
        _ => None,
    };
    let mut names: Vec<&String> = metrics.keys().collect();
    names.sort_by_key(|n| (STAGES.iter().position(|s| s == n).unwrap_or(STAGES.len()), (*n).clone()));
    for n in names {
        stats_row(out, n, &metrics[n], errors(n));
    }
    out.push_str("</table></div>");
}

fn slo_table(out: &mut String, slo: &[SloResult]) {
    if slo.is_empty() {
        out.push_str("<p class=\"note\">The scenario sets no SLO.</p>");
        return;
    }
    out.push_str("<div class=\"scroll\"><table id=\"slo\"><tr><th>check</th><th>actual</th><th>threshold</th><th>margin</th><th>result</th></tr>");
    for r in slo {
        let fmt = |v: f64| format_value(r.key(), v);
        let actual = r.shown();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            escape(&r.check),
            escape(&actual),
            escape(&r.op),
            escape(&fmt(r.threshold)),
            r.margin.map(|m| format!("{:+.1} %", m * 100.0)).unwrap_or_default(),
            if r.pass { "pass" } else { "fail" },
            r.status.label()
        );
    }
    out.push_str("</table></div>");
}

/// Alcor's published processing time of a goal state of one port plus N neighbors by its agent
/// (ACA, September 2021, after the OVS-driver refactor), µs: ../shared/alcor-performance.md §1.2.
const ACA_2021: [(u64, f64); 4] = [
    (1_000, 112_000.0),
    (10_000, 534_000.0),
    (100_000, 5_200_000.0),
    (1_000_000, 55_369_000.0),
];

/// For a run that grew its topology (`topology.grow_to`): each measured phase's size, its
/// largest goal state, where the time of a port create went (control plane compute, encode,
/// push to the last reply, the agent's own processing) and end to end, beside the real agent's
/// published time for a goal state of that size.
fn growth_table(out: &mut String, s: &Summary) {
    let rows: Vec<_> = s
        .phases
        .iter()
        .filter(|p| p.kind == "load" && p.topology_ports.is_some())
        .collect();
    if rows.is_empty() {
        return;
    }
    out.push_str("<h2>Goal-state size</h2><p class=\"note\">Each measured phase at the topology size it ran at: the largest goal state a host received, the control plane's median compute, encode and push (first push to last reply) per request, the agent's longest processing (decode + apply + simulated programming), and the create's median end to end (<code>port_programmed</code>). The last column is Alcor's own agent (ACA, 2021) processing a goal state of one port plus that many neighbors, programming OVS, as published.</p>");
    out.push_str("<div class=\"scroll\"><table id=\"growth\"><tr><th>phase</th><th>ports</th><th>neighbors</th><th>bytes</th><th>compute</th><th>encode</th><th>push</th><th>agent</th><th>port_programmed</th><th>ACA 2021</th></tr>");
    for p in rows {
        let st = |m: &str, f: fn(&Stats) -> u64| p.metrics.get(m).filter(|x| x.count > 0).map(f);
        let dur = |v: Option<u64>| {
            v.map(|v| crate::units::duration_us(v as f64))
                .unwrap_or_else(|| "-".into())
        };
        let neighbors = st(metric::GOAL_STATE_NEIGHBORS, |x| x.max);
        // The published point of the nearest size, within a factor of two.
        let aca = neighbors.and_then(|n| {
            ACA_2021
                .iter()
                .find(|(k, _)| n as f64 / *k as f64 > 0.5 && (n as f64 / *k as f64) < 2.0)
                .map(|(_, us)| crate::units::duration_us(*us))
        });
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&p.name),
            crate::units::thousands(p.topology_ports.unwrap_or(0) as i64),
            neighbors
                .map(|n| crate::units::thousands(n as i64))
                .unwrap_or_else(|| "-".into()),
            st(metric::GOAL_STATE_BYTES, |x| x.max)
                .map(|b| format!("{:.1} MB", b as f64 / 1e6))
                .unwrap_or_else(|| "-".into()),
            dur(st(metric::CP_COMPUTE, |x| x.p50)),
            dur(st(metric::CP_ENCODE, |x| x.p50)),
            dur(st(metric::CP_PUSH, |x| x.p50)),
            dur(st(metric::AGENT_PROCESSING, |x| x.max)),
            dur(st(metric::PORT_PROGRAMMED, |x| x.p50)),
            aca.unwrap_or_else(|| "-".into()),
        );
    }
    out.push_str("</table></div>");
}

/// For a run with contrast phases (`contrast = true`): every measured phase side by side, the
/// ones the scenario is about (`load`, judged) and the ones measured for contrast (another
/// fan-out, say), on the figures that tell them apart.
fn side_by_side_table(out: &mut String, s: &Summary) {
    if !s.phases.iter().any(|p| p.kind == "contrast") {
        return;
    }
    let rows: Vec<_> = s
        .phases
        .iter()
        .filter(|p| p.kind == "load" || p.kind == "contrast")
        .collect();
    out.push_str("<h2>Side by side</h2><p class=\"note\">The phases the scenario is about (<code>load</code>: in the headline figures, judged by the SLO) beside the ones measured for contrast (<code>contrast</code>: neither), the figures that tell them apart first. Latencies p50 / p99; goal-state messages per request counts every message an agent received during the phase.</p>");
    out.push_str("<div class=\"scroll\"><table id=\"side-by-side\"><tr><th>phase</th><th>kind</th><th>achieved</th><th>errors</th><th>neighbor_converged</th><th>port_programmed</th><th>api</th><th>push</th><th>messages per request</th><th>largest goal state</th><th>model</th></tr>");
    for p in rows {
        let st = |m: &str| p.metrics.get(m).filter(|x| x.count > 0);
        let pair = |m: &str| {
            st(m)
                .map(|x| {
                    format!(
                        "{} / {}",
                        crate::units::duration_us(x.p50 as f64),
                        crate::units::duration_us(x.p99 as f64)
                    )
                })
                .unwrap_or_else(|| "-".into())
        };
        let per_request = st(metric::AGENT_PROCESSING)
            .filter(|_| p.requests > 0)
            .map(|x| format!("{:.0}", x.count as f64 / p.requests as f64))
            .unwrap_or_else(|| "-".into());
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&p.name),
            escape(&p.kind),
            crate::units::per_s(p.throughput_rps),
            if p.requests > 0 {
                crate::units::percent(p.errors as f64 / p.requests as f64)
            } else {
                "-".into()
            },
            pair(metric::NEIGHBOR_CONVERGED),
            pair(metric::PORT_PROGRAMMED),
            pair(metric::API),
            pair(metric::CP_PUSH),
            per_request,
            st(metric::GOAL_STATE_NEIGHBORS)
                .map(|x| {
                    let n = crate::units::thousands(x.max as i64);
                    if x.max == 1 {
                        format!("{n} neighbor")
                    } else {
                        format!("{n} neighbors")
                    }
                })
                .unwrap_or_else(|| "-".into()),
            escape(&p.model),
        );
    }
    out.push_str("</table></div>");
}

fn figure(out: &mut String, id: &str, svg: &str, note: &str) {
    let _ = write!(out, "<figure id=\"{id}\">{svg}");
    if !note.is_empty() {
        let _ = write!(out, "<figcaption class=\"note\">{}</figcaption>", escape(note));
    }
    out.push_str("</figure>");
}

/// The verdict and the handful of figures that answer "does it scale?": each measured phase's
/// offered against achieved rate, p50/p99 of each stage, failures by reason, whether the
/// generator kept up; then every check with its value.
fn verdict_block(out: &mut String, s: &Summary) {
    let v = crate::verdict::of(s);
    let _ = write!(
        out,
        "<section id=\"verdict\" class=\"verdict v-{}\"><p class=\"word\"{}>{}: {}</p>",
        v.word.class(),
        if s.partial { " id=\"partial\"" } else { "" },
        v.word.label(),
        escape(&v.headline)
    );
    if !v.reasons.is_empty() {
        out.push_str("<ul>");
        for r in &v.reasons {
            let _ = write!(out, "<li>{}</li>", escape(r));
        }
        out.push_str("</ul>");
    }
    out.push_str("<div class=\"scroll\"><table class=\"glance\" id=\"glance\">");
    let row = |out: &mut String, k: &str, v: &str| {
        let _ = write!(out, "<tr><th>{}</th><td>{v}</td></tr>", escape(k));
    };
    row(
        out,
        "target",
        &format!(
            "{}, started {}, {}",
            escape(&s.target),
            escape(&s.started_at),
            crate::units::duration_us(s.duration_s * 1e6)
        ),
    );
    for p in s
        .phases
        .iter()
        .filter(|p| matches!(p.kind.as_str(), "load" | "overload" | "contrast"))
    {
        let offered = p
            .offered_rps
            .map(|o| format!("offered {}, ", crate::units::per_s(o)))
            .unwrap_or_default();
        let unsent = if p.unsent > 0 {
            format!(
                ", <span class=\"fail\">{} never sent</span>",
                crate::units::thousands(p.unsent as i64)
            )
        } else {
            String::new()
        };
        row(
            out,
            &format!("{} ({})", p.name, p.kind),
            &format!(
                "{offered}achieved <b>{}</b>; {} requests, {} failed{unsent}",
                crate::units::per_s(p.throughput_rps),
                crate::units::thousands(p.requests as i64),
                crate::units::thousands(p.errors as i64),
            ),
        );
    }
    for st in STAGES {
        if let Some(x) = s.metrics.get(st).filter(|x| x.count > 0) {
            row(
                out,
                st,
                &format!(
                    "p50 <b>{}</b>, p99 <b>{}</b>, max {} ({} samples)",
                    crate::units::duration_us(x.p50 as f64),
                    crate::units::duration_us(x.p99 as f64),
                    crate::units::duration_us(x.max as f64),
                    crate::units::thousands(x.count as i64)
                ),
            );
        }
    }
    let failures: Vec<String> = s
        .errors
        .failures
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{} {}", escape(k), crate::units::thousands(*n as i64)))
        .collect();
    row(
        out,
        "failures",
        &if failures.is_empty() {
            "none".to_owned()
        } else {
            format!(
                "<span class=\"fail\">{}</span> (error rate {})",
                failures.join(", "),
                crate::units::percent(s.errors.error_rate)
            )
        },
    );
    let g = &s.generator;
    row(
        out,
        "generator",
        &if s.throughput.requests == 0 {
            "<span class=\"fail\">sent nothing in the measured phases</span>".to_owned()
        } else if g.fell_behind || g.saturated {
            format!("<span class=\"fail\">{}</span>", escape(&g.reasons.join("; ")))
        } else {
            format!(
                "kept up: send lag p99 {}, {:.1} of {} CPUs, host load {:.1}",
                if g.send_lag.count > 0 {
                    crate::units::duration_us(g.send_lag.p99 as f64)
                } else {
                    "-".into()
                },
                g.process_cpu,
                g.cores,
                g.load
            )
        },
    );
    if let Some(step) = &s.step_search {
        row(
            out,
            "knee",
            &step
                .knee_rps
                .map(|k| format!("<b>{}</b> held every check", crate::units::per_s(k)))
                .unwrap_or_else(|| "none: the first stage already broke a check".into()),
        );
    }
    out.push_str("</table></div>");
    slo_table(out, &s.slo);
    out.push_str("</section>");
}

/// Fleets read over their events connection, with the clock alignment their latencies carry.
fn fleets_table(out: &mut String, fleets: &[crate::summary::FleetSummary]) {
    if fleets.is_empty() {
        return;
    }
    let worst = fleets.iter().map(|f| f.clock_max_uncertainty_us).fold(0.0, f64::max);
    let _ = write!(
        out,
        "<h2>Fleets</h2><p class=\"note\">Agents run apart from the harness. Their event times are mapped onto the run's clock by probes over the events connection (NTP's method: the offset is known within half the shortest recent round trip), so every <code>port_programmed</code> and <code>neighbor_converged</code> latency measured on them carries up to ±{} of clock uncertainty.</p><div class=\"scroll\"><table id=\"fleets\"><tr><th>fleet</th><th>agents</th><th>messages</th><th>dropped</th><th>clock offset</th><th>± now</th><th>± worst</th><th>drift</th><th>probes</th><th>disconnected</th></tr>",
        crate::units::duration_us(worst)
    );
    for f in fleets {
        let gone = match f.disconnected_at_s {
            Some(t) => format!(
                "<span class=\"fail\">at {t:.1} s ({}); {} port(s) failed on its hosts</span>",
                escape(f.disconnect_reason.as_deref().unwrap_or("closed")),
                f.ports_unaccounted
            ),
            None => "no".into(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&f.endpoint),
            f.agents,
            f.events,
            if f.dropped > 0 { " class=\"fail\"" } else { "" },
            f.dropped,
            signed_us(f.clock_offset_us),
            crate::units::duration_us(f.clock_uncertainty_us),
            crate::units::duration_us(f.clock_max_uncertainty_us),
            signed_us(f.clock_drift_us),
            f.clock_probes,
            gone
        );
    }
    out.push_str("</table></div>");
}

/// The MQ southbound's broker: what carried the goal states, how long they waited in it, how far
/// agents fell behind, and the CPU it took.
fn broker_section(out: &mut String, run: &RunData) {
    let s = &run.summary;
    let Some(b) = &s.broker else { return };
    let cpu = |v: Option<f64>| v.map(|c| format!("{c:.1} s")).unwrap_or_else(|| "-".into());
    let _ = write!(
        out,
        "<h2>Broker</h2><p class=\"note\">Goal states went through a message broker, each host's agent consuming its own (topics per {}). The control plane was done with a message once the broker held it; <code>mq_waited</code> is the time from the broker taking a message to its agent receiving it, <code>mq_lag</code> the messages still waiting for that agent then (up to the subscription's <code>max_ack_pending</code> more may be on their way to it).</p>",
        escape(&b.grouping)
    );
    let _ = write!(
        out,
        "<div class=\"scroll\"><table id=\"broker\"><tr><th>broker</th><th>consumed</th><th>measured msgs/s</th><th>per create</th><th>redelivered</th><th>max lag</th><th>broker CPU</th><th>this process's CPU</th><th>broker's share</th></tr>\
         <tr><td>{}{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table></div>",
        escape(&b.kind),
        if b.embedded { " (local, started by the run)" } else { "" },
        b.consumed,
        s.throughput.messages_per_s,
        s.per_create()
            .map(|(m, by)| format!("{m:.1} messages, {}", bytesize::ByteSize(by as u64)))
            .unwrap_or_else(|| "-".into()),
        b.redelivered,
        b.max_lag,
        b.max_lag_host
            .as_deref()
            .map(|h| format!(" at {}", escape(h)))
            .unwrap_or_default(),
        cpu(b.cpu_s),
        cpu(b.harness_cpu_s),
        b.cpu_share().map(crate::units::percent).unwrap_or_else(|| "-".into()),
    );
    // The hosts furthest behind: lag first, then the longest wait.
    let mut behind: Vec<&crate::samples::HostRow> = run.hosts.iter().filter(|h| h.lag_max.is_some()).collect();
    behind.sort_by_key(|h| std::cmp::Reverse((h.lag_max, h.waited_max_us)));
    if !behind.is_empty() {
        out.push_str("<div class=\"scroll\"><table id=\"broker-hosts\"><tr><th>host (furthest behind first)</th><th>max lag (messages)</th><th>longest wait</th><th>messages</th></tr>");
        for h in behind.iter().take(10) {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                h.host,
                h.lag_max.unwrap_or(0),
                crate::units::duration_us(h.waited_max_us.unwrap_or(0) as f64),
                h.messages
            );
        }
        let _ = write!(
            out,
            "</table></div><p class=\"note\">{} of {} hosts shown; every host's in hosts.csv.</p>",
            behind.len().min(10),
            behind.len()
        );
    }
    let waited = charts::interval_quantiles(run.series(metric::MQ_WAITED));
    if waited.iter().any(|s| !s.points.is_empty()) {
        figure(
            out,
            "chart-mq-waited",
            &charts::latency_lines(
                "mq_waited: time in the broker per interval",
                &waited,
                &charts::latency_limits(&s.slo, &[metric::MQ_WAITED]),
                &s.phases,
                &s.faults,
            ),
            "",
        );
    }
    // Lag is a count: its quantiles per interval as they are, not as ms.
    let lag = charts::interval_quantiles_per(run.series(metric::MQ_LAG), 1.0);
    if lag.iter().any(|s| s.points.iter().any(|p| p.1 > 0.0)) {
        figure(
            out,
            "chart-mq-lag",
            &charts::time_lines(
                "mq_lag: messages waiting for an agent",
                "messages",
                &lag,
                &s.phases,
                &s.faults,
            ),
            "",
        );
    }
}

/// Failed operations per second by reason, over the fault windows; nothing when none failed.
fn failures_chart(out: &mut String, run: &RunData) {
    let s = &run.summary;
    if !run.failures.is_empty() {
        let mut by_reason: std::collections::BTreeMap<&str, Vec<(f64, f64)>> = Default::default();
        let last = run.failures.iter().map(|r| r.second).max().unwrap_or(0);
        for r in &run.failures {
            by_reason.entry(r.reason.as_str()).or_default();
        }
        for (reason, pts) in by_reason.iter_mut() {
            // Every second, zeros included, so that lines drop back to 0 between bursts.
            let counts: std::collections::HashMap<u64, u64> = run
                .failures
                .iter()
                .filter(|r| r.reason == *reason)
                .map(|r| (r.second, r.count))
                .collect();
            *pts = (0..=last)
                .map(|sec| (sec as f64, counts.get(&sec).copied().unwrap_or(0) as f64))
                .collect();
        }
        let series: Vec<Series> = by_reason
            .into_iter()
            .map(|(label, points)| Series {
                label: label.to_owned(),
                points,
                dashed: false,
            })
            .collect();
        figure(
            out,
            "chart-failures",
            &charts::time_lines(
                "Failed operations by reason",
                "operations per second",
                &series,
                &s.phases,
                &s.faults,
            ),
            "By the second each operation started; red: fault windows.",
        );
    }
}

/// Every operation's outcome (the ledger), the faults with their recovery and the hosts that
/// failed most.
fn outcomes_section(out: &mut String, run: &RunData) {
    let s = &run.summary;
    let l = &s.ledger;
    if l.operations == 0 && s.faults.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<h2>Outcomes</h2><p class=\"note\">Every operation of the measured phases (a port created, moved or deleted; a bulk request counts its ports) ends in exactly one outcome. {} operations, {} settled{}.</p>",
        l.operations,
        l.settled,
        if l.balanced() {
            ": they add up".to_owned()
        } else {
            format!(
                "; <span class=\"fail\">{} open, {} counted twice: the ledger does not add up</span>",
                l.open, l.double_counted
            )
        }
    );
    out.push_str(
        "<div class=\"scroll\"><table id=\"outcomes\"><tr><th>outcome</th><th>operations</th><th>share</th></tr>",
    );
    for (k, v) in &l.outcomes {
        let _ = write!(
            out,
            "<tr><td{}>{}</td><td>{}</td><td>{}</td></tr>",
            if k == "ok" { "" } else { " class=\"fail\"" },
            escape(k),
            v,
            crate::units::percent(*v as f64 / l.operations.max(1) as f64)
        );
    }
    out.push_str("</table></div>");
    if !s.faults.is_empty() {
        let rule = s.faults.first().map(|f| f.recovery_rule.clone()).unwrap_or_default();
        let _ = write!(
            out,
            "<h2>Faults</h2><p class=\"note\">Recovery: time from the end of a fault until new ports were healthy again and stayed so until the next fault ({}). Resync: how long crashed hosts took, once back, to hold every port and neighbor they should.</p>",
            escape(&rule)
        );
        out.push_str("<div class=\"scroll\"><table id=\"faults\"><tr><th>fault</th><th>from (s)</th><th>to (s)</th><th>recovery</th><th>resync</th><th>hosts</th><th>what</th><th>note</th></tr>");
        for f in &s.faults {
            let hosts = if f.hosts == 0 {
                "-".to_owned()
            } else {
                let listed: Vec<String> = f.host_list.iter().map(ToString::to_string).collect();
                let more = if f.hosts as usize > listed.len() { ", …" } else { "" };
                format!("{} ({}{more})", f.hosts, listed.join(", "))
            };
            let recovery = match (f.end_s, f.recovery_s) {
                (_, Some(r)) if r <= 0.0 => "at once".into(),
                (_, Some(r)) => crate::units::duration_us(r * 1e6),
                (None, None) => "-".into(),
                (Some(_), None) => "<span class=\"fail\">not within the run</span>".into(),
            };
            let resync = match &f.resync {
                None => "-".into(),
                Some(r) if r.complete == r.hosts => format!(
                    "{} host(s), {} entries: p50 {}, max {}",
                    r.hosts,
                    r.expected,
                    r.p50_s.map(|v| crate::units::duration_us(v * 1e6)).unwrap_or_default(),
                    r.max_s.map(|v| crate::units::duration_us(v * 1e6)).unwrap_or_default()
                ),
                Some(r) => format!(
                    "<span class=\"fail\">{} of {} host(s) complete; {} of {} entries missing</span>",
                    r.complete, r.hosts, r.missing, r.expected
                ),
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&f.kind),
                f.start_s,
                f.end_s.map(|e| format!("{e:.1}")).unwrap_or_else(|| "-".into()),
                recovery,
                resync,
                escape(&hosts),
                escape(&f.detail),
                escape(f.note.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</table></div>");
    }
    if !l.by_host.is_empty() {
        let _ = write!(
            out,
            "<h3>Failures by host</h3><p class=\"note\">{} host(s) had failed operations (as a port's own host, or as a host that was to learn it); the {} with the most:</p>",
            l.hosts_failing,
            l.by_host.len()
        );
        out.push_str("<div class=\"scroll\"><table id=\"failures-by-host\"><tr><th>host</th><th>failed</th><th>by reason</th></tr>");
        for h in &l.by_host {
            let reasons: Vec<String> = h.by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                h.host,
                h.failed,
                escape(&reasons.join(", "))
            );
        }
        out.push_str("</table></div>");
    }
}

fn signed_us(us: f64) -> String {
    let sign = if us < 0.0 { "−" } else { "+" };
    format!("{sign}{}", crate::units::duration_us(us.abs()))
}

/// The whole page for one run: the verdict and its figures, then the charts, then the tables.
pub fn page(run: &RunData) -> String {
    let s = &run.summary;
    let mut out = String::with_capacity(1 << 20);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>alcor-scale: {}</title><style>{STYLE}</style></head><body>",
        escape(&s.scenario.name)
    );
    let _ = write!(
        out,
        "<h1>{}</h1><p>{}</p>",
        escape(&s.scenario.name),
        escape(&s.scenario.description)
    );
    verdict_block(&mut out, s);
    for log in &run.cut_logs {
        let _ = write!(
            out,
            "<p class=\"banner\" id=\"cut-log\">{} was cut mid-write (the run was stopped while writing it): its last, partial line is left out of these charts.</p>",
            escape(log)
        );
    }
    for w in &s.warnings {
        let _ = write!(out, "<p class=\"banner\" data-warning>{}</p>", escape(w));
    }
    let g = &s.generator;
    if g.fell_behind || g.saturated {
        let _ = write!(
            out,
            "<p class=\"banner\" id=\"generator\">The load generator {}: {}. The figures describe less load, or more of the generator's own queueing, than the scenario asked for.</p>",
            if g.fell_behind {
                "fell behind"
            } else {
                "ran on a saturated host"
            },
            escape(&g.reasons.join("; "))
        );
    }

    out.push_str("<h2>Load</h2>");
    let load = if run.health.is_empty() {
        // Folders written before generator.csv: what the histogram logs can tell.
        vec![
            charts::interval_rate("issued/s", run.series("issued")),
            charts::interval_rate("completed/s", run.series(metric::API)),
        ]
    } else {
        charts::load_series(&run.health)
    };
    let load: Vec<Series> = load.into_iter().filter(|s| !s.points.is_empty()).collect();
    figure(
        &mut out,
        "chart-throughput",
        &charts::time_lines(
            "Requests: offered and achieved",
            "requests per second",
            &load,
            &s.phases,
            &s.faults,
        ),
        "Offered: what the schedule made due (closed phases: what was sent); achieved: answered with success. A gap between the two is the target (or the generator) falling behind. Shaded: phases, named at the top (grey: not in the headline figures: setup, teardown, contrast, past the knee).",
    );
    let messages = charts::interval_rate("messages/s", run.series(metric::AGENT_PROCESSING));
    if !messages.points.is_empty() {
        let mb = charts::interval_mb_rate("MB/s", run.series(metric::GOAL_STATE_BYTES));
        figure(
            &mut out,
            "chart-goal-states",
            &charts::goal_state_traffic(&messages, &mb, &s.phases, &s.faults),
            "Goal-state messages the agents processed per second (left axis) and their bytes (right axis, dashed).",
        );
    }
    failures_chart(&mut out, run);

    out.push_str("<h2>Latency over time</h2>");
    for st in STAGES {
        let series = charts::interval_quantiles(run.series(st));
        if series.iter().all(|s| s.points.is_empty()) {
            // A stage this target does not have (port_active beside agents, or agent stages
            // beside Neutron) is left out; one it has but never reached is said.
            if s.metrics.contains_key(st) || s.phases.iter().any(|p| p.metrics.contains_key(st)) {
                let _ = write!(out, "<p class=\"note\">No {st} samples.</p>");
            }
            continue;
        }
        figure(
            &mut out,
            &format!("chart-latency-{st}"),
            &charts::latency_lines(
                &format!("{st}: latency per interval"),
                &series,
                &charts::latency_limits(&s.slo, &[st]),
                &s.phases,
                &s.faults,
            ),
            "",
        );
    }

    out.push_str("<h2>Percentile distribution (measured phases)</h2>");
    let refs: Vec<(String, &hdrhistogram::Histogram<u64>, bool)> = STAGES
        .iter()
        .filter_map(|st| run.measured_histogram(st).map(|h| ((*st).to_owned(), h, false)))
        .collect();
    figure(
        &mut out,
        "chart-percentiles",
        &charts::percentiles("Latency by percentile", &refs),
        "",
    );

    if run.samples.is_empty() {
        // A target that pushes nothing to the simulated agents (Neutron), or a run that sent
        // nothing: no empty charts.
        let _ = write!(
            out,
            "<h2>Agents</h2><p class=\"note\" id=\"no-agent-messages\">No goal-state message reached the simulated agents{}.</p>",
            if s.target == "neutron" {
                ": Neutron pushes none to them; its ports are followed by their status instead (port_active)"
            } else {
                ""
            }
        );
    } else {
        out.push_str("<h2>Goal-state size vs agent processing time</h2>");
        let dropped = run.samples.len() > charts::MAX_SCATTER;
        let fit_n = charts::fit_cost(
            &run.samples
                .iter()
                .map(|s| (s.neighbors as f64, s.processing_us as f64))
                .collect::<Vec<_>>(),
        );
        let fit_b = charts::fit_cost(
            &run.samples
                .iter()
                .map(|s| (s.bytes as f64, s.processing_us as f64))
                .collect::<Vec<_>>(),
        );
        let seen = run.summary.agent_samples_seen;
        let mut note = if seen as usize > run.samples.len() {
            format!(
                "{} messages, of which the run folder keeps a uniform sample of {}.",
                crate::units::thousands(seen as i64),
                crate::units::thousands(run.samples.len() as i64)
            )
        } else {
            format!("{} messages.", crate::units::thousands(run.samples.len() as i64))
        };
        if dropped {
            let _ = write!(
                note,
                " Showing an even sample of at most {} points; the fits use all of them.",
                crate::units::thousands(charts::MAX_SCATTER as i64)
            );
        }
        if let Some(f) = fit_n {
            let _ = write!(
                note,
                " Fitted on every message kept, by least squares on relative error (a small message counts as much as a large one): {}",
                f.describe("neighbor state")
            );
        }
        if let Some(f) = fit_b {
            let per_kb = charts::CostFit {
                per_unit_us: f.per_unit_us * 1000.0,
                ..f
            };
            let _ = write!(note, "; by size, {}.", per_kb.describe("KB"));
        }
        figure(
            &mut out,
            "chart-size-vs-time",
            &charts::size_vs_time(&run.samples, "Agent processing time by goal-state size", fit_n),
            &note,
        );

        out.push_str("<h2>Per-host load</h2>");
        let _ = write!(
            out,
            "<p class=\"note\">{} hosts; messages per host p50 {} / max {}; bytes per host p50 {} / max {}.</p>",
            s.hosts.hosts, s.hosts.messages.p50, s.hosts.messages.max, s.hosts.bytes.p50, s.hosts.bytes.max
        );
        figure(&mut out, "chart-hosts-top", &charts::busiest_hosts(&run.hosts), "");
        if run.hosts.len() > charts::TOP_HOSTS {
            figure(
                &mut out,
                "chart-hosts-distribution",
                &charts::host_distribution(&run.hosts),
                "Every host's messages: an even fan-out is one narrow peak; a wide spread or a long right tail is hosts doing more than their share. hosts.csv has every host.",
            );
        }
    }

    growth_table(&mut out, s);

    if let Some(step) = &s.step_search {
        out.push_str("<h2>Step search</h2>");
        let _ = write!(
            out,
            "<p id=\"knee\">Knee: <b>{}</b></p>",
            step.knee_rps
                .map(|k| format!("{k} requests/s"))
                .unwrap_or_else(|| "none (the first stage failed)".into())
        );
        figure(
            &mut out,
            "chart-step",
            &charts::step_search(
                step,
                &charts::latency_limits(
                    &s.slo,
                    &[metric::API, metric::PORT_PROGRAMMED, metric::NEIGHBOR_CONVERGED],
                ),
            ),
            "",
        );
        out.push_str("<div class=\"scroll\"><table id=\"step\"><tr><th>offered/s</th><th>achieved/s</th><th>port_programmed p99</th><th>result</th></tr>");
        for st in &step.stages {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{:.1}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                st.offered_rps,
                st.achieved_rps,
                st.metrics
                    .get(metric::PORT_PROGRAMMED)
                    .map(|m| ms(m.p99 as f64))
                    .unwrap_or_default(),
                if st.pass { "pass" } else { "fail" },
                if st.pass { "pass" } else { "FAIL" }
            );
        }
        out.push_str("</table></div>");
    }

    out.push_str("<h2>Summary per stage (measured phases)</h2>");
    metric_table(&mut out, s, "stages", &s.metrics);
    fleets_table(&mut out, &s.fleets);
    side_by_side_table(&mut out, s);
    outcomes_section(&mut out, run);
    broker_section(&mut out, run);

    out.push_str("<h2>Phases</h2><div class=\"scroll\"><table id=\"phases\"><tr><th>phase</th><th>kind</th><th>model</th><th>start (s)</th><th>length (s)</th><th>requests</th><th>errors</th><th>completed/s</th></tr>");
    for p in &s.phases {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
            escape(&p.name),
            escape(&p.kind),
            escape(&p.model),
            p.started_s,
            p.duration_s,
            p.requests,
            p.errors,
            p.throughput_rps
        );
    }
    out.push_str("</table></div>");

    out.push_str("<h2>Scenario as run</h2>");
    if !s.scenario.overrides.is_empty() {
        let _ = write!(
            out,
            "<p>Overrides: <code>{}</code></p>",
            escape(&s.scenario.overrides.join(" "))
        );
    }
    let _ = write!(
        out,
        "<p class=\"note\">{} (seed {})</p><pre>{}</pre>",
        escape(&s.scenario.file),
        s.scenario.seed,
        escape(&s.scenario.toml)
    );
    out.push_str("<h2>Environment</h2><div class=\"scroll\"><table class=\"kv\" id=\"environment\">");
    let e = &s.environment;
    let mut kv = vec![
        ("tool".to_owned(), s.tool.clone()),
        (
            "git revision".into(),
            e.git_revision.clone().unwrap_or_else(|| "unknown".into()),
        ),
        ("CPU".into(), e.cpu.clone()),
        ("cores".into(), e.cores.to_string()),
        ("OS".into(), e.os.clone()),
    ];
    kv.extend(e.versions.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (k, v) in kv {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", escape(&k), escape(&v));
    }
    out.push_str("</table></div>");
    let _ = writeln!(
        out,
        "<p class=\"note\">Written by {} from <code>{}</code>.</p></body></html>",
        escape(&s.tool),
        escape(&run.dir.display().to_string())
    );
    out
}

/// Renders `report.html` into a run folder; returns its path.
pub fn render(dir: &Path) -> Result<PathBuf, Error> {
    let run = RunData::load(dir)?;
    let path = dir.join(files::REPORT);
    std::fs::write(&path, page(&run)).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}
