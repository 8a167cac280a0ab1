//! `report.html`: one self-contained file (inline CSS and SVG, no script, nothing fetched) that
//! reads at a glance on a laptop or a phone. Written with maud: the markup is checked when this
//! crate compiles and every interpolated text is escaped.

use std::path::{Path, PathBuf};

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::charts::{self, Series};
use crate::rundata::RunData;
use crate::summary::{PhaseSummary, SloResult, Stats, Summary, format_value, metric};
use crate::units::{self, duration_us, per_s, percent, thousands};
use crate::{Error, files};

/// Stages shown first, in this order.
pub const STAGES: [&str; 4] = [
    metric::API,
    metric::PORT_ACTIVE,
    metric::PORT_PROGRAMMED,
    metric::NEIGHBOR_CONVERGED,
];

/// HTML-escapes text (for what is written outside a template: chart notes and tooltips).
pub fn escape(s: &str) -> String {
    html! { (s) }.into_string()
}

/// The page's style, shared with the comparison page.
pub(crate) const STYLE: &str = "
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
.glance td{text-align:left;white-space:normal}.wrap td{white-space:normal}
";

/// `-` for what was not measured.
fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

/// A chart with its caption.
pub(crate) fn figure(id: &str, svg: &str, note: &str) -> Markup {
    html! {
        figure id=(id) {
            (PreEscaped(svg))
            @if !note.is_empty() {
                figcaption.note { (note) }
            }
        }
    }
}

/// The metrics table: a row per metric, the stages first.
fn metric_table(s: &Summary, id: &str, metrics: &std::collections::BTreeMap<String, Stats>) -> Markup {
    let errors = |m: &str| match m {
        metric::API => Some(s.errors.requests_failed),
        metric::PORT_PROGRAMMED | metric::PORT_ACTIVE => Some(s.errors.not_programmed),
        metric::NEIGHBOR_CONVERGED => Some(s.errors.not_converged),
        metric::AGENT_PROCESSING => Some(s.errors.agent_errors),
        _ => None,
    };
    let mut names: Vec<&String> = metrics.keys().collect();
    names.sort_by_key(|n| (STAGES.iter().position(|s| s == n).unwrap_or(STAGES.len()), (*n).clone()));
    html! {
        div.scroll { table id=(id) {
            tr { th { "metric" } th { "count" } th { "p50" } th { "p90" } th { "p99" } th { "p99.9" } th { "max" } th { "mean" } th { "errors" } }
            @for n in names {
                @let st = &metrics[n];
                @let latency = metric::is_latency(n);
                @let f = |v: f64| if latency { duration_us(v) } else { format!("{v:.0}") };
                tr data-metric=(n) {
                    td { (n) } td { (st.count) }
                    td { (f(st.p50 as f64)) } td { (f(st.p90 as f64)) } td { (f(st.p99 as f64)) }
                    td { (f(st.p999 as f64)) } td { (f(st.max as f64)) } td { (f(st.mean)) }
                    td { (errors(n).map(|e| e.to_string()).unwrap_or_default()) }
                }
            }
        } }
    }
}

/// Every check with its actual value, threshold and margin.
fn slo_table(slo: &[SloResult]) -> Markup {
    html! {
        @if slo.is_empty() {
            p.note { "The scenario sets no SLO." }
        } @else {
            div.scroll { table #slo {
                tr { th { "check" } th { "actual" } th { "threshold" } th { "margin" } th { "result" } }
                @for r in slo {
                    tr {
                        td { (r.check) }
                        td { (r.shown()) }
                        td { (r.op) " " (format_value(r.key(), r.threshold)) }
                        td { (r.margin.map(|m| format!("{:+.1} %", m * 100.0)).unwrap_or_default()) }
                        td class=(if r.pass { "pass" } else { "fail" }) { (r.status.label()) }
                    }
                }
            } }
        }
    }
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
fn growth_table(s: &Summary) -> Markup {
    let rows: Vec<_> = s
        .phases
        .iter()
        .filter(|p| p.kind == "load" && p.topology_ports.is_some())
        .collect();
    if rows.is_empty() {
        return html! {};
    }
    html! {
        h2 { "Goal-state size" }
        p.note { "Each measured phase at the topology size it ran at: the largest goal state a host received, the control plane's median compute, encode and push (first push to last reply) per request, the agent's longest processing (decode + apply + simulated programming), and the create's median end to end (" code { "port_programmed" } "). The last column is Alcor's own agent (ACA, 2021) processing a goal state of one port plus that many neighbors, programming OVS, as published." }
        div.scroll { table #growth {
            tr { th { "phase" } th { "ports" } th { "neighbors" } th { "bytes" } th { "compute" } th { "encode" } th { "push" } th { "agent" } th { "port_programmed" } th { "ACA 2021" } }
            @for p in rows {
                @let st = |m: &str, f: fn(&Stats) -> u64| p.metrics.get(m).filter(|x| x.count > 0).map(f);
                @let dur = |v: Option<u64>| or_dash(v.map(|v| duration_us(v as f64)));
                @let neighbors = st(metric::GOAL_STATE_NEIGHBORS, |x| x.max);
                // The published point of the nearest size, within a factor of two.
                @let aca = neighbors.and_then(|n| {
                    ACA_2021
                        .iter()
                        .find(|(k, _)| n as f64 / *k as f64 > 0.5 && (n as f64 / *k as f64) < 2.0)
                        .map(|(_, us)| duration_us(*us))
                });
                tr {
                    td { (p.name) }
                    td { (thousands(p.topology_ports.unwrap_or(0) as i64)) }
                    td { (or_dash(neighbors.map(|n| thousands(n as i64)))) }
                    td { (or_dash(st(metric::GOAL_STATE_BYTES, |x| x.max).map(|b| format!("{:.1} MB", b as f64 / 1e6)))) }
                    td { (dur(st(metric::CP_COMPUTE, |x| x.p50))) }
                    td { (dur(st(metric::CP_ENCODE, |x| x.p50))) }
                    td { (dur(st(metric::CP_PUSH, |x| x.p50))) }
                    td { (dur(st(metric::AGENT_PROCESSING, |x| x.max))) }
                    td { (dur(st(metric::PORT_PROGRAMMED, |x| x.p50))) }
                    td { (or_dash(aca)) }
                }
            }
        } }
    }
}

/// The security-group change kinds, by the suffix of their `sg_programmed.KIND` metric.
const SG_KINDS: [&str; 4] = ["rule_add", "rule_delete", "join", "leave"];

/// For a run with security-group changes (`sg_rule_add`, `sg_join`, … in a mix): what each
/// change cost per measured phase (and so per size and strategy, in `sg-scale`), and a chart
/// of the time until every enforcing host applied it against the topology's size.
fn sg_section(s: &Summary) -> Markup {
    let sg = |p: &PhaseSummary| {
        SG_KINDS
            .iter()
            .any(|k| p.metrics.contains_key(&format!("{}.{k}", metric::SG_PROGRAMMED)))
    };
    let rows: Vec<&PhaseSummary> = s.phases.iter().filter(|p| p.kind != "setup" && sg(p)).collect();
    if rows.is_empty() {
        return html! {};
    }
    // One line per change kind and phase (its name before `@SIZE`): the same change under one
    // strategy, across sizes.
    // A kind's first phase is drawn solid, its others (the other strategy) dashed, in its colour.
    let mut lines: Vec<Series> = Vec::new();
    let mut bytes: Vec<Series> = Vec::new();
    let add = |to: &mut Vec<Series>, label: String, point: (f64, f64)| match to.iter_mut().find(|l| l.label == label) {
        Some(l) => l.points.push(point),
        None => {
            let kind = label.split(" (").next().unwrap_or(&label).to_owned();
            let dashed = to.iter().any(|l| l.label.split(" (").next() == Some(kind.as_str()));
            to.push(Series {
                label,
                points: vec![point],
                dashed,
            });
        }
    };
    for p in &rows {
        let base = p.name.split('@').next().unwrap_or(&p.name);
        let size = p.topology_ports.map_or(0.0, |n| n as f64);
        let kinds: Vec<&str> = SG_KINDS
            .iter()
            .copied()
            .filter(|k| p.metrics.contains_key(&format!("{}.{k}", metric::SG_PROGRAMMED)))
            .collect();
        for k in &kinds {
            if let Some(st) = p
                .metrics
                .get(&format!("{}.{k}", metric::SG_PROGRAMMED))
                .filter(|x| x.count > 0)
            {
                add(&mut lines, format!("{k} ({base})"), (size, st.p50 as f64 / 1e3));
            }
        }
        if let Some(b) = p.metrics.get(metric::GOAL_STATE_BYTES).filter(|_| p.requests > 0) {
            let per = b.mean * b.count as f64 / p.requests as f64;
            add(&mut bytes, format!("{} ({base})", kinds.join(" + ")), (size, per));
        }
    }
    let sized = rows.iter().any(|p| p.topology_ports.is_some());
    html! {
        h2 #sg { "Security-group changes" }
        p.note { "Each measured phase with security-group changes: what one change cost on average (every goal-state message agents received in the phase, over its requests: messages, bytes, rules and neighbor entries), the time until every host that must enforce it had applied it (" code { "sg_programmed" } ", p50 / p99 per kind), and the agents' longest processing. With " code { "sg_mode" } " per phase, the same changes under each strategy: " code { "address-set" } " sends a remote group's members once and changes them by one entry per host, " code { "expand" } " makes each a rule of its own on every enforcing host." }
        @if sized && lines.iter().any(|l| l.points.len() > 1) {
            (figure("chart-sg-cost", &charts::cost_vs_size("Time until every enforcing host applied a change (p50)", &lines, "ports in the topology (log)", "sg_programmed p50 (log)", charts::format_ms), ""))
            (figure("chart-sg-bytes", &charts::cost_vs_size("Goal-state bytes pushed per change", &bytes, "ports in the topology (log)", "bytes per change (log)", units::bytes), ""))
        }
        div.scroll { table #sg-changes {
            tr { th { "phase" } th { "ports" } th { "changes" } th { "messages / change" } th { "bytes / change" } th { "rules / change" } th { "neighbors / change" }
                 @for k in SG_KINDS { th { (k) } } th { "agent max" } }
            @for p in &rows {
                @let per = |m: &str| p.metrics.get(m).filter(|_| p.requests > 0).map(|x| x.mean * x.count as f64 / p.requests as f64);
                @let msgs = p.metrics.get(metric::GOAL_STATE_BYTES).filter(|_| p.requests > 0).map(|x| x.count as f64 / p.requests as f64);
                tr {
                    td { (p.name) }
                    td { (or_dash(p.topology_ports.map(|n| thousands(n as i64)))) }
                    td { (p.requests) }
                    td { (or_dash(msgs.map(|v| format!("{v:.0}")))) }
                    td { (or_dash(per(metric::GOAL_STATE_BYTES).map(units::bytes))) }
                    td { (or_dash(per(metric::GOAL_STATE_SG_RULES).map(|v| thousands(v.round() as i64)))) }
                    td { (or_dash(per(metric::GOAL_STATE_NEIGHBORS).map(|v| thousands(v.round() as i64)))) }
                    @for k in SG_KINDS {
                        td { (or_dash(p.metrics.get(&format!("{}.{k}", metric::SG_PROGRAMMED)).filter(|x| x.count > 0).map(|x| format!("{} / {}", duration_us(x.p50 as f64), duration_us(x.p99 as f64))))) }
                    }
                    td { (or_dash(p.metrics.get(metric::AGENT_PROCESSING).filter(|x| x.count > 0).map(|x| duration_us(x.max as f64)))) }
                }
            }
        } }
    }
}

/// For a run with contrast phases (`contrast = true`): every measured phase side by side, the
/// ones the scenario is about (`load`, judged) and the ones measured for contrast (another
/// fan-out, say), on the figures that tell them apart.
fn side_by_side_table(s: &Summary) -> Markup {
    if !s.phases.iter().any(|p| p.kind == "contrast") {
        return html! {};
    }
    let rows: Vec<_> = s
        .phases
        .iter()
        .filter(|p| p.kind == "load" || p.kind == "contrast")
        .collect();
    html! {
        h2 { "Side by side" }
        p.note { "The phases the scenario is about (" code { "load" } ": in the headline figures, judged by the SLO) beside the ones measured for contrast (" code { "contrast" } ": neither), the figures that tell them apart first. Latencies p50 / p99; goal-state messages per request counts every message an agent received during the phase." }
        div.scroll { table #side-by-side {
            tr { th { "phase" } th { "kind" } th { "achieved" } th { "errors" } th { "neighbor_converged" } th { "port_programmed" } th { "api" } th { "push" } th { "messages per request" } th { "largest goal state" } th { "model" } }
            @for p in rows {
                @let st = |m: &str| p.metrics.get(m).filter(|x| x.count > 0);
                @let pair = |m: &str| or_dash(st(m).map(|x| format!("{} / {}", duration_us(x.p50 as f64), duration_us(x.p99 as f64))));
                @let per_request = or_dash(st(metric::AGENT_PROCESSING).filter(|_| p.requests > 0).map(|x| format!("{:.0}", x.count as f64 / p.requests as f64)));
                @let largest = or_dash(st(metric::GOAL_STATE_NEIGHBORS).map(|x| {
                    let n = thousands(x.max as i64);
                    if x.max == 1 { format!("{n} neighbor") } else { format!("{n} neighbors") }
                }));
                tr {
                    td { (p.name) } td { (p.kind) } td { (per_s(p.throughput_rps)) }
                    td { (if p.requests > 0 { percent(p.errors as f64 / p.requests as f64) } else { "-".into() }) }
                    td { (pair(metric::NEIGHBOR_CONVERGED)) } td { (pair(metric::PORT_PROGRAMMED)) }
                    td { (pair(metric::API)) } td { (pair(metric::CP_PUSH)) }
                    td { (per_request) } td { (largest) } td { (p.model) }
                }
            }
        } }
    }
}

/// The verdict and the handful of figures that answer "does it scale?": each measured phase's
/// offered against achieved rate, p50/p99 of each stage, failures by reason, whether the
/// generator kept up; then every check with its value.
fn verdict_block(s: &Summary) -> Markup {
    let v = crate::verdict::of(s);
    let failures: Vec<String> = s
        .errors
        .failures
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {}", thousands(*n as i64)))
        .collect();
    let generator = crate::verdict::generator_line(s);
    html! {
        section #verdict class=(format!("verdict v-{}", v.word.class())) {
            p.word id=[s.partial.then_some("partial")] { (v.word.label()) ": " (v.headline) }
            @if !v.reasons.is_empty() {
                ul { @for r in &v.reasons { li { (r) } } }
            }
            div.scroll { table.glance #glance {
                tr { th { "target" } td { (s.target) ", started " (s.started_at) ", " (duration_us(s.duration_s * 1e6)) } }
                @for p in s.phases.iter().filter(|p| matches!(p.kind.as_str(), "load" | "overload" | "contrast")) {
                    tr {
                        th { (p.name) " (" (p.kind) ")" }
                        td {
                            @if let Some(o) = p.offered_rps { "offered " (per_s(o)) ", " }
                            "achieved " b { (per_s(p.throughput_rps)) } "; "
                            (thousands(p.requests as i64)) " requests, " (thousands(p.errors as i64)) " failed"
                            @if p.unsent > 0 { ", " span.fail { (thousands(p.unsent as i64)) " never sent" } }
                        }
                    }
                }
                @for st in STAGES {
                    @if let Some(x) = s.metrics.get(st).filter(|x| x.count > 0) {
                        tr {
                            th { (st) }
                            td {
                                "p50 " b { (duration_us(x.p50 as f64)) } ", p99 " b { (duration_us(x.p99 as f64)) }
                                ", max " (duration_us(x.max as f64)) " (" (thousands(x.count as i64)) " samples)"
                            }
                        }
                    }
                }
                tr {
                    th { "failures" }
                    td {
                        @if failures.is_empty() { "none" }
                        @else { span.fail { (failures.join(", ")) } " (error rate " (percent(s.errors.error_rate)) ")" }
                    }
                }
                tr {
                    th { "generator" }
                    td {
                        @if generator.0 { (generator.1) } @else { span.fail { (generator.1) } }
                    }
                }
                @if let Some(step) = &s.step_search {
                    tr {
                        th { "knee" }
                        td {
                            @if let Some(k) = step.knee_rps { b { (per_s(k)) } " held every check" }
                            @else { "none: the first stage already broke a check" }
                        }
                    }
                }
            } }
            (slo_table(&s.slo))
        }
    }
}

/// Fleets read over their events connection, with the clock alignment their latencies carry.
fn fleets_table(fleets: &[crate::summary::FleetSummary]) -> Markup {
    if fleets.is_empty() {
        return html! {};
    }
    let worst = fleets.iter().map(|f| f.clock_max_uncertainty_us).fold(0.0, f64::max);
    html! {
        h2 { "Fleets" }
        p.note { "Agents run apart from the harness. Their event times are mapped onto the run's clock by probes over the events connection (NTP's method: the offset is known within half the shortest recent round trip), so every " code { "port_programmed" } " and " code { "neighbor_converged" } " latency measured on them carries up to ±" (duration_us(worst)) " of clock uncertainty." }
        div.scroll { table #fleets {
            tr { th { "fleet" } th { "agents" } th { "messages" } th { "dropped" } th { "clock offset" } th { "± now" } th { "± worst" } th { "drift" } th { "probes" } th { "disconnected" } }
            @for f in fleets {
                tr {
                    td { (f.endpoint) } td { (f.agents) } td { (f.events) }
                    td class=[(f.dropped > 0).then_some("fail")] { (f.dropped) }
                    td { (signed_us(f.clock_offset_us)) }
                    td { (duration_us(f.clock_uncertainty_us)) }
                    td { (duration_us(f.clock_max_uncertainty_us)) }
                    td { (signed_us(f.clock_drift_us)) }
                    td { (f.clock_probes) }
                    td {
                        @match f.disconnected_at_s {
                            Some(t) => span.fail { "at " (format!("{t:.1}")) " s (" (f.disconnect_reason.as_deref().unwrap_or("closed")) "); " (f.ports_unaccounted) " port(s) failed on its hosts" },
                            None => "no",
                        }
                    }
                }
            }
        } }
    }
}

/// The MQ southbound's broker: what carried the goal states, how long they waited in it, how far
/// agents fell behind, and the CPU it took.
fn broker_section(run: &RunData) -> Markup {
    let s = &run.summary;
    let Some(b) = &s.broker else { return html! {} };
    let cpu = |v: Option<f64>| or_dash(v.map(|c| format!("{c:.1} s")));
    // The hosts furthest behind: lag first, then the longest wait.
    let mut behind: Vec<&crate::samples::HostRow> = run.hosts.iter().filter(|h| h.lag_max.is_some()).collect();
    behind.sort_by_key(|h| std::cmp::Reverse((h.lag_max, h.waited_max_us)));
    let waited = charts::interval_quantiles(run.series(metric::MQ_WAITED));
    // Lag is a count: its quantiles per interval as they are, not as ms.
    let lag = charts::interval_quantiles_per(run.series(metric::MQ_LAG), 1.0);
    html! {
        h2 { "Broker" }
        p.note { "Goal states went through a message broker, each host's agent consuming its own (topics per " (b.grouping) "). The control plane was done with a message once the broker held it; " code { "mq_waited" } " is the time from the broker taking a message to its agent receiving it, " code { "mq_lag" } " the messages still waiting for that agent then (up to the subscription's " code { "max_ack_pending" } " more may be on their way to it)." }
        div.scroll { table #broker {
            tr { th { "broker" } th { "consumed" } th { "measured msgs/s" } th { "per create" } th { "redelivered" } th { "max lag" } th { "broker CPU" } th { "this process's CPU" } th { "broker's share" } }
            tr {
                td { (b.kind) @if b.embedded { " (local, started by the run)" } }
                td { (b.consumed) }
                td { (format!("{:.0}", s.throughput.messages_per_s)) }
                td { (or_dash(s.per_create().map(|(m, by)| format!("{m:.1} messages, {}", bytesize::ByteSize(by as u64))))) }
                td { (b.redelivered) }
                td { (b.max_lag) @if let Some(h) = &b.max_lag_host { " at " (h) } }
                td { (cpu(b.cpu_s)) }
                td { (cpu(b.harness_cpu_s)) }
                td { (or_dash(b.cpu_share().map(percent))) }
            }
        } }
        @if !behind.is_empty() {
            div.scroll { table #broker-hosts {
                tr { th { "host (furthest behind first)" } th { "max lag (messages)" } th { "longest wait" } th { "messages" } }
                @for h in behind.iter().take(10) {
                    tr { td { (h.host) } td { (h.lag_max.unwrap_or(0)) } td { (duration_us(h.waited_max_us.unwrap_or(0) as f64)) } td { (h.messages) } }
                }
            } }
            p.note { (behind.len().min(10)) " of " (behind.len()) " hosts shown; every host's in hosts.csv." }
        }
        @if waited.iter().any(|s| !s.points.is_empty()) {
            (figure("chart-mq-waited", &charts::latency_lines(
                "mq_waited: time in the broker per interval",
                &waited,
                &charts::latency_limits(&s.slo, &[metric::MQ_WAITED]),
                &s.phases,
                &s.faults,
            ), ""))
        }
        @if lag.iter().any(|s| s.points.iter().any(|p| p.1 > 0.0)) {
            (figure("chart-mq-lag", &charts::time_lines(
                "mq_lag: messages waiting for an agent",
                "messages",
                &lag,
                &s.phases,
                &s.faults,
            ), ""))
        }
    }
}

/// Failed operations per second by reason, over the fault windows; nothing when none failed.
fn failures_chart(run: &RunData) -> Markup {
    let s = &run.summary;
    if run.failures.is_empty() {
        return html! {};
    }
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
        "chart-failures",
        &charts::time_lines(
            "Failed operations by reason",
            "operations per second",
            &series,
            &s.phases,
            &s.faults,
        ),
        "By the second each operation started; red: fault windows.",
    )
}

/// Every operation's outcome (the ledger), the faults with their recovery and the hosts that
/// failed most.
fn outcomes_section(run: &RunData) -> Markup {
    let s = &run.summary;
    let l = &s.ledger;
    if l.operations == 0 && s.faults.is_empty() {
        return html! {};
    }
    let rule = s.faults.first().map(|f| f.recovery_rule.clone()).unwrap_or_default();
    html! {
        h2 { "Outcomes" }
        p.note {
            "Every operation of the measured phases (a port created, moved or deleted; a bulk request counts its ports) ends in exactly one outcome. "
            (l.operations) " operations, " (l.settled) " settled"
            @if l.balanced() { ": they add up" }
            @else { "; " span.fail { (l.open) " open, " (l.double_counted) " counted twice: the ledger does not add up" } }
            "."
        }
        div.scroll { table #outcomes {
            tr { th { "outcome" } th { "operations" } th { "share" } }
            @for (k, v) in &l.outcomes {
                tr {
                    td class=[(k != "ok").then_some("fail")] { (k) }
                    td { (v) }
                    td { (percent(*v as f64 / l.operations.max(1) as f64)) }
                }
            }
        } }
        @if !s.faults.is_empty() {
            h2 { "Faults" }
            p.note { "Recovery: time from the end of a fault until new ports were healthy again and stayed so until the next fault (" (rule) "). Resync: how long crashed hosts took, once back, to hold every port and neighbor they should." }
            div.scroll { table #faults {
                tr { th { "fault" } th { "from (s)" } th { "to (s)" } th { "recovery" } th { "resync" } th { "hosts" } th { "what" } th { "note" } }
                @for f in &s.faults {
                    @let hosts = if f.hosts == 0 {
                        "-".to_owned()
                    } else {
                        let listed: Vec<String> = f.host_list.iter().map(ToString::to_string).collect();
                        let more = if f.hosts as usize > listed.len() { ", …" } else { "" };
                        format!("{} ({}{more})", f.hosts, listed.join(", "))
                    };
                    tr {
                        td { (f.kind) }
                        td { (format!("{:.1}", f.start_s)) }
                        td { (or_dash(f.end_s.map(|e| format!("{e:.1}")))) }
                        td {
                            @match (f.end_s, f.recovery_s) {
                                (_, Some(r)) if r <= 0.0 => "at once",
                                (_, Some(r)) => (duration_us(r * 1e6)),
                                (None, None) => "-",
                                (Some(_), None) => span.fail { "not within the run" },
                            }
                        }
                        td {
                            @match &f.resync {
                                None => "-",
                                Some(r) if r.complete == r.hosts => {
                                    (r.hosts) " host(s), " (r.expected) " entries: p50 "
                                    (r.p50_s.map(|v| duration_us(v * 1e6)).unwrap_or_default())
                                    ", max " (r.max_s.map(|v| duration_us(v * 1e6)).unwrap_or_default())
                                }
                                Some(r) => span.fail { (r.complete) " of " (r.hosts) " host(s) complete; " (r.missing) " of " (r.expected) " entries missing" },
                            }
                        }
                        td { (hosts) }
                        td { (f.detail) }
                        td { (f.note.as_deref().unwrap_or("")) }
                    }
                }
            } }
        }
        @if !l.by_host.is_empty() {
            h3 { "Failures by host" }
            p.note { (l.hosts_failing) " host(s) had failed operations (as a port's own host, or as a host that was to learn it); the " (l.by_host.len()) " with the most:" }
            div.scroll { table #failures-by-host {
                tr { th { "host" } th { "failed" } th { "by reason" } }
                @for h in &l.by_host {
                    @let reasons: Vec<String> = h.by_reason.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    tr { td { (h.host) } td { (h.failed) } td { (reasons.join(", ")) } }
                }
            } }
        }
    }
}

fn signed_us(us: f64) -> String {
    let sign = if us < 0.0 { "−" } else { "+" };
    format!("{sign}{}", duration_us(us.abs()))
}

/// Load: requests offered, achieved and failed; goal-state traffic; failures by reason.
fn load_section(run: &RunData) -> Markup {
    let s = &run.summary;
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
    let messages = charts::interval_rate("messages/s", run.series(metric::AGENT_PROCESSING));
    html! {
        h2 { "Load" }
        (figure(
            "chart-throughput",
            &charts::time_lines("Requests: offered and achieved", "requests per second", &load, &s.phases, &s.faults),
            "Offered: what the schedule made due (closed phases: what was sent); achieved: answered with success. A gap between the two is the target (or the generator) falling behind. Shaded: phases, named at the top (grey: not in the headline figures: setup, teardown, contrast, past the knee); dotted: where a phase's rate stage changes.",
        ))
        @if !messages.points.is_empty() {
            @let mb = charts::interval_mb_rate("MB/s", run.series(metric::GOAL_STATE_BYTES));
            (figure(
                "chart-goal-states",
                &charts::goal_state_traffic(&messages, &mb, &s.phases, &s.faults),
                "Goal-state messages the agents processed per second (left axis) and their bytes (right axis, dashed).",
            ))
        }
        (failures_chart(run))
    }
}

/// Latency per interval of each stage, with the SLO's limits; then the distribution.
fn latency_section(run: &RunData) -> Markup {
    let s = &run.summary;
    let refs: Vec<(String, &hdrhistogram::Histogram<u64>, bool)> = STAGES
        .iter()
        .filter_map(|st| run.measured_histogram(st).map(|h| ((*st).to_owned(), h, false)))
        .collect();
    html! {
        h2 { "Latency over time" }
        @for st in STAGES {
            @let series = charts::interval_quantiles(run.series(st));
            @if series.iter().all(|s| s.points.is_empty()) {
                // A stage this target does not have (port_active beside agents, or agent stages
                // beside Neutron) is left out; one it has but never reached is said.
                @if s.metrics.contains_key(st) || s.phases.iter().any(|p| p.metrics.contains_key(st)) {
                    p.note { "No " (st) " samples." }
                }
            } @else {
                (figure(
                    &format!("chart-latency-{st}"),
                    &charts::latency_lines(
                        &format!("{st}: latency per interval"),
                        &series,
                        &charts::latency_limits(&s.slo, &[st]),
                        &s.phases,
                        &s.faults,
                    ),
                    "",
                ))
            }
        }
        h2 { "Percentile distribution (measured phases)" }
        (figure("chart-percentiles", &charts::percentiles("Latency by percentile", &refs), ""))
    }
}

/// Agent processing against goal-state size, and load per host.
fn agents_section(run: &RunData) -> Markup {
    let s = &run.summary;
    if run.samples.is_empty() {
        // A target that pushes nothing to the simulated agents (Neutron), or a run that sent
        // nothing: no empty charts.
        return html! {
            h2 { "Agents" }
            p.note #no-agent-messages {
                "No goal-state message reached the simulated agents"
                @if s.target == "neutron" { ": Neutron pushes none to them; its ports are followed by their status instead (port_active)" }
                "."
            }
        };
    }
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
    let seen = s.agent_samples_seen;
    let mut note = if seen as usize > run.samples.len() {
        format!(
            "{} messages, of which the run folder keeps a uniform sample of {}.",
            thousands(seen as i64),
            thousands(run.samples.len() as i64)
        )
    } else {
        format!("{} messages.", thousands(run.samples.len() as i64))
    };
    if run.samples.len() > charts::MAX_SCATTER {
        note.push_str(&format!(
            " Showing an even sample of at most {} points; the fits use all of them.",
            thousands(charts::MAX_SCATTER as i64)
        ));
    }
    if let Some(f) = fit_n {
        note.push_str(&format!(
            " Fitted on every message kept, by least squares on relative error (a small message counts as much as a large one): {}",
            f.describe("neighbor state")
        ));
    }
    if let Some(f) = fit_b {
        let per_kb = charts::CostFit {
            per_unit_us: f.per_unit_us * 1000.0,
            ..f
        };
        note.push_str(&format!("; by size, {}.", per_kb.describe("KB")));
    }
    html! {
        h2 { "Goal-state size vs agent processing time" }
        (figure(
            "chart-size-vs-time",
            &charts::size_vs_time(&run.samples, "Agent processing time by goal-state size", fit_n),
            &note,
        ))
        h2 { "Per-host load" }
        p.note {
            (s.hosts.hosts) " hosts; messages per host p50 " (s.hosts.messages.p50) " / max " (s.hosts.messages.max)
            "; bytes per host p50 " (s.hosts.bytes.p50) " / max " (s.hosts.bytes.max) "."
        }
        (figure("chart-hosts-top", &charts::busiest_hosts(&run.hosts), ""))
        @if run.hosts.len() > charts::TOP_HOSTS {
            (figure(
                "chart-hosts-distribution",
                &charts::host_distribution(&run.hosts),
                "Every host's messages: an even fan-out is one narrow peak; a wide spread or a long right tail is hosts doing more than their share. hosts.csv has every host.",
            ))
        }
    }
}

/// The step search: the knee, each stage's figures against the SLO, and the stages.
fn step_section(s: &Summary) -> Markup {
    let Some(step) = &s.step_search else { return html! {} };
    html! {
        h2 { "Step search" }
        p #knee {
            "Knee: "
            b {
                @match step.knee_rps {
                    Some(k) => { (k) " requests/s" }
                    None => { "none (the first stage failed)" }
                }
            }
        }
        (figure("chart-step", &charts::step_search(
            step,
            &charts::latency_limits(&s.slo, &[metric::API, metric::PORT_PROGRAMMED, metric::NEIGHBOR_CONVERGED]),
        ), ""))
        div.scroll { table #step {
            tr { th { "offered/s" } th { "achieved/s" } th { "port_programmed p99" } th { "result" } }
            @for st in &step.stages {
                tr {
                    td { (st.offered_rps) }
                    td { (format!("{:.1}", st.achieved_rps)) }
                    td { (st.metrics.get(metric::PORT_PROGRAMMED).map(|m| duration_us(m.p99 as f64)).unwrap_or_default()) }
                    td class=(if st.pass { "pass" } else { "fail" }) { (if st.pass { "pass" } else { "FAIL" }) }
                }
            }
        } }
    }
}

/// The phases as they ran, the scenario as run and where it ran.
fn run_tables(run: &RunData) -> Markup {
    let s = &run.summary;
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
    html! {
        h2 { "Phases" }
        div.scroll { table #phases {
            tr { th { "phase" } th { "kind" } th { "model" } th { "start (s)" } th { "length (s)" } th { "requests" } th { "errors" } th { "completed/s" } }
            @for p in &s.phases {
                tr {
                    td { (p.name) } td { (p.kind) } td { (p.model) }
                    td { (format!("{:.1}", p.started_s)) } td { (format!("{:.1}", p.duration_s)) }
                    td { (p.requests) } td { (p.errors) } td { (format!("{:.1}", p.throughput_rps)) }
                }
            }
        } }
        h2 { "Scenario as run" }
        @if !s.scenario.overrides.is_empty() {
            p { "Overrides: " code { (s.scenario.overrides.join(" ")) } }
        }
        p.note { (s.scenario.file) " (seed " (s.scenario.seed) ")" }
        pre { (s.scenario.toml) }
        h2 { "Environment" }
        div.scroll { table.kv #environment {
            @for (k, v) in kv { tr { td { (k) } td { (v) } } }
        } }
        p.note { "Written by " (s.tool) " from " code { (run.dir.display().to_string()) } "." }
    }
}

/// A whole self-contained page: the report's style, `title`, `body`.
pub(crate) fn document(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
    .into_string()
        + "\n"
}

/// The whole page for one run: the verdict and its figures, then the charts, then the tables.
pub fn page(run: &RunData) -> String {
    let s = &run.summary;
    let g = &s.generator;
    let body = html! {
        h1 { (s.scenario.name) }
        p { (s.scenario.description) }
        (verdict_block(s))
        @for log in &run.cut_logs {
            p.banner #cut-log { (log) " was cut mid-write (the run was stopped while writing it): its last, partial line is left out of these charts." }
        }
        @for w in &s.warnings {
            p.banner data-warning { (w) }
        }
        @if g.fell_behind || g.saturated {
            p.banner #generator {
                "The load generator " (if g.fell_behind { "fell behind" } else { "ran on a saturated host" })
                ": " (g.reasons.join("; ")) ". The figures describe less load, or more of the generator's own queueing, than the scenario asked for."
            }
        }
        (load_section(run))
        (latency_section(run))
        (agents_section(run))
        (growth_table(s))
        (sg_section(s))
        (step_section(s))
        h2 { "Summary per stage (measured phases)" }
        (metric_table(s, "stages", &s.metrics))
        (fleets_table(&s.fleets))
        (side_by_side_table(s))
        (outcomes_section(run))
        (broker_section(run))
        (run_tables(run))
    };
    document(&format!("alcor-scale: {}", s.scenario.name), body)
}

/// Renders `report.html` into a run folder; returns its path.
pub fn render(dir: &Path) -> Result<PathBuf, Error> {
    let run = RunData::load(dir)?;
    let path = dir.join(files::REPORT);
    std::fs::write(&path, page(&run)).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}
