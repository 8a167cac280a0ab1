//! What `run` and `compare` print for a person or a CI log, and the one stream they print it
//! on. Goose prints progress lines (`8 users launched.`) straight to the process's standard
//! output; [`Console::claim`] moves standard output to standard error for the rest of the
//! process and keeps the original for the command's own lines, so that stdout carries the
//! verdict and nothing else. While a live progress line is shown on standard error,
//! [`Console::claim_quietly`] sends those library lines nowhere instead, since they would be
//! spliced into it.

use std::fs::File;
use std::io::Write;

use reports::summary::{SloStatus, Summary};
use reports::units;

/// The original standard output.
#[derive(Debug)]
pub struct Console {
    out: Option<File>,
}

impl Console {
    /// Takes the original standard output for this console and points file descriptor 1 at
    /// standard error, so that libraries printing to stdout no longer reach it. Where that is
    /// not possible, prints to stdout as it is.
    pub fn claim() -> Self {
        Self::claim_to(|| rustix::stdio::dup2_stdout(rustix::stdio::stderr()))
    }

    /// As [`Console::claim`], but file descriptor 1 goes to `/dev/null`: for while a live
    /// progress line owns standard error.
    pub fn claim_quietly() -> Self {
        Self::claim_to(|| {
            let null = File::options()
                .write(true)
                .open("/dev/null")
                .map_err(|e| rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO))?;
            rustix::stdio::dup2_stdout(&null)
        })
    }

    fn claim_to(redirect: impl FnOnce() -> rustix::io::Result<()>) -> Self {
        let out = rustix::io::dup(rustix::stdio::stdout())
            .ok()
            .and_then(|fd| redirect().ok().map(|()| File::from(fd)));
        Self { out }
    }

    /// Prints one line.
    pub fn line(&mut self, text: &str) {
        let r = match &mut self.out {
            Some(f) => writeln!(f, "{text}"),
            None => writeln!(std::io::stdout(), "{text}"),
        };
        let _ = r;
    }
}

/// `, {label} p50 … p99 …` of a latency metric that has samples; empty otherwise.
fn p50_p99(metrics: &std::collections::BTreeMap<String, reports::summary::Stats>, metric: &str, label: &str) -> String {
    metrics
        .get(metric)
        .filter(|x| x.count > 0)
        .map(|x| {
            format!(
                ", {label} p50 {} p99 {}",
                units::duration_us(x.p50 as f64),
                units::duration_us(x.p99 as f64)
            )
        })
        .unwrap_or_default()
}

/// The verdict line of a run: its name, PASS / FAIL / PARTIAL / NOT EVALUATED, and why
/// ([`reports::verdict`], the report's definition too).
pub fn verdict_line(s: &Summary) -> String {
    let v = reports::verdict::of(s);
    format!("{}: {}: {}", s.scenario.name, v.word.label(), v.headline)
}

/// The run's summary as lines: verdict, load (offered beside achieved), failures by kind with
/// their rates, setup and teardown, latency per stage, generator health, knee, and each check
/// as k6 prints its thresholds (✓/✗, check, actual value).
pub fn summary_lines(s: &Summary) -> Vec<String> {
    let mut out = vec![verdict_line(s)];
    let t = &s.throughput;
    out.push(format!(
        "  load        {} requests sent, {} succeeded, {} over the measured time{}",
        units::thousands(t.requests as i64),
        units::thousands(t.succeeded as i64),
        units::per_s(t.requests_per_s),
        if s.repeats > 1 {
            format!(" ({} repeats)", s.repeats)
        } else {
            String::new()
        }
    ));
    // Each measured phase: what it asked for beside what it got.
    let contrast = s.phases.iter().any(|p| p.kind == "contrast");
    for p in s
        .phases
        .iter()
        .filter(|p| matches!(p.kind.as_str(), "load" | "overload" | "contrast"))
    {
        let asked = match p.offered_rps {
            Some(o) => format!("offered {:>8}", units::per_s(o)),
            None => format!("{:<16}", p.model.split(':').next().unwrap_or("")),
        };
        out.push(format!(
            "    {:<18} {asked}  achieved {:>8}  {} sent{}{}",
            p.name,
            units::per_s(p.throughput_rps),
            units::thousands(p.requests as i64),
            if p.unsent > 0 {
                format!(", {} never sent", units::thousands(p.unsent as i64))
            } else {
                String::new()
            },
            match p.kind.as_str() {
                "overload" => " (past the knee)".to_owned(),
                // Beside a contrast, each phase's convergence tells the two apart at a glance.
                kind if contrast => {
                    let converged = p50_p99(&p.metrics, reports::summary::metric::NEIGHBOR_CONVERGED, "converged");
                    let note = if kind == "contrast" {
                        " (contrast, not judged)"
                    } else {
                        ""
                    };
                    format!("{converged}{note}")
                }
                _ => String::new(),
            }
        ));
    }
    // Each kind as a share of what it could have happened to: unsent of the requests due,
    // every other kind of the requests sent.
    let rate = |kind: &str, n: u64| {
        let of = if kind == reports::summary::failure::UNSENT {
            s.generator.due.max(t.requests + n)
        } else {
            t.requests
        };
        if of > 0 {
            units::percent(n as f64 / of as f64)
        } else {
            "-".into()
        }
    };
    let total: u64 = s.errors.failures.values().sum();
    if total == 0 {
        out.push("  failures    none".into());
    } else {
        let kinds: Vec<String> = s
            .errors
            .failures
            .iter()
            .map(|(k, n)| {
                if k == reports::summary::failure::AGENT_ERROR {
                    // Counted per goal-state message, not per request: a share of requests
                    // would mislead.
                    let messages = s.throughput.messages.max(*n);
                    format!(
                        "{k} {} of {} agent messages",
                        units::thousands(*n as i64),
                        units::thousands(messages as i64)
                    )
                } else {
                    format!("{k} {} ({})", units::thousands(*n as i64), rate(k, *n))
                }
            })
            .collect();
        out.push(format!("  failures    {}", kinds.join(", ")));
    }
    out.push(format!(
        "  error rate  {} (failed requests and ports not converged, of requests sent)",
        units::percent(s.errors.error_rate)
    ));
    let l = &s.ledger;
    if l.operations > 0 {
        let kinds: Vec<String> = l
            .outcomes
            .iter()
            .map(|(k, n)| format!("{k} {}", units::thousands(*n as i64)))
            .collect();
        out.push(format!(
            "  outcomes    {} operations: {} ({})",
            units::thousands(l.operations as i64),
            kinds.join(", "),
            if l.balanced() {
                "one each, they add up"
            } else {
                "THEY DO NOT ADD UP"
            }
        ));
    }
    if let Some(b) = &s.broker {
        let waited = p50_p99(&s.metrics, reports::summary::metric::MQ_WAITED, "waited");
        out.push(format!(
            "  broker      {}{} (topics per {}): {} consumed, {} measured{}, {} redelivered, max lag {}{}",
            b.kind,
            if b.embedded { ", local" } else { "" },
            b.grouping,
            units::thousands(b.consumed as i64),
            units::per_s(s.throughput.messages_per_s),
            waited,
            units::thousands(b.redelivered as i64),
            b.max_lag,
            b.cpu_share()
                .map(|c| format!(", {} of the run's CPU", units::percent(c)))
                .unwrap_or_default()
        ));
    }
    for f in &s.faults {
        let window = match f.end_s {
            Some(e) => format!("{:.1}–{:.1} s", f.start_s, e),
            None => format!("from {:.1} s", f.start_s),
        };
        let hosts = if f.hosts > 0 {
            format!(", {} host(s)", f.hosts)
        } else {
            String::new()
        };
        let recovery = match (f.end_s, f.recovery_s) {
            (_, Some(r)) if r <= 0.0 => "recovered at once".to_owned(),
            (_, Some(r)) => format!("recovered in {}", units::duration_us(r * 1e6)),
            (Some(_), None) => "not recovered within the run".to_owned(),
            (None, None) => String::new(),
        };
        let resync = f
            .resync
            .as_ref()
            .map(|r| match r.max_s {
                Some(m) if r.complete == r.hosts => {
                    format!(", full state again within {}", units::duration_us(m * 1e6))
                }
                _ => format!(
                    ", {} of {} host(s) without their full state",
                    r.hosts - r.complete,
                    r.hosts
                ),
            })
            .unwrap_or_default();
        let note = f.note.as_deref().map(|n| format!(" [{n}]")).unwrap_or_default();
        out.push(format!(
            "  fault       {:<9} {window}{hosts}: {recovery}{resync}{note}",
            f.kind
        ));
    }
    for p in s.phases.iter().filter(|p| p.kind == "setup" || p.kind == "teardown") {
        let pct = if p.requests > 0 {
            units::percent(p.errors as f64 / p.requests as f64)
        } else {
            "-".into()
        };
        out.push(format!(
            "  {:<11} {} requests, {} failed ({pct}){}",
            p.name,
            units::thousands(p.requests as i64),
            units::thousands(p.errors as i64),
            if p.unsent > 0 {
                format!(", {} never sent", p.unsent)
            } else {
                String::new()
            }
        ));
    }
    // Latency per stage as a table: comfy-table aligns it, without borders or colours.
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(["latency", "p50", "p99", "max", "count"]);
    use reports::summary::metric as m;
    let stages: &[&str] = if s.target == "neutron" {
        &[m::API, m::PORT_ACTIVE, m::POLL_RESOLUTION]
    } else {
        &[m::API, m::PORT_PROGRAMMED, m::NEIGHBOR_CONVERGED]
    };
    let mut unmeasured = Vec::new();
    for &m in stages {
        if s.target == "neutron" && m != m::API && !s.phases.iter().any(|p| p.metrics.contains_key(m)) {
            if m == m::PORT_ACTIVE {
                unmeasured.push(format!(
                    "  {m} not measured (target.wait_active = false: nothing waited for ports to go ACTIVE)"
                ));
            }
            continue;
        }
        let v = |stat: &str| {
            s.value(&format!("{m}.{stat}"))
                .map(units::duration_us)
                .unwrap_or_else(|| "-".into())
        };
        let count = s.metrics.get(m).map_or(0, |x| x.count);
        table.add_row([
            m.to_owned(),
            v("p50"),
            v("p99"),
            v("max"),
            units::thousands(count as i64),
        ]);
    }
    for i in 1..5 {
        if let Some(c) = table.column_mut(i) {
            c.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    out.extend(table.lines().map(|l| format!(" {}", l.trim_end())));
    out.extend(unmeasured);
    let (kept_up, line) = reports::verdict::generator_line(s);
    out.push(format!(
        "  generator   {}{line}",
        if kept_up { "" } else { "WARNING: " }
    ));
    for f in &s.fleets {
        let state = match f.disconnected_at_s {
            Some(t) => format!(
                "DISCONNECTED at {t:.1} s, {} port(s) failed on its hosts",
                f.ports_unaccounted
            ),
            None if f.dropped > 0 => format!("DROPPED {} events", units::thousands(f.dropped as i64)),
            None => "connected throughout".into(),
        };
        out.push(format!(
            "  fleet       {}: {} agents, clock ±{} (worst ±{}), {state}",
            f.endpoint,
            units::thousands(f.agents as i64),
            units::duration_us(f.clock_uncertainty_us),
            units::duration_us(f.clock_max_uncertainty_us),
        ));
    }
    if let Some(step) = &s.step_search {
        match step.knee_rps {
            Some(k) => out.push(format!("  knee        {} held every check", units::per_s(k))),
            None => out.push("  knee        none: the first stage already broke a check".into()),
        }
    }
    if s.slo.is_empty() {
        out.push("  checks      none set".into());
    } else {
        out.push("  checks".into());
        for r in &s.slo {
            let mark = match r.status {
                SloStatus::Pass => "✓",
                SloStatus::Fail | SloStatus::NoSamples => "✗",
                SloStatus::NotEvaluated => "-",
            };
            let actual = r.shown();
            out.push(format!("    {mark} {:<40} {actual}", r.check));
        }
    }
    out
}
