//! Step search: open-model stages at `start_rate`, `start_rate + step_rate`, … each for
//! `step_duration`, until a stage breaks a check or `max_rate` is passed. The knee is the
//! highest offered rate whose stage held every check.
//!
//! Each stage is a phase of its own (`name@RATE/s`) in the recorder, so its figures stay apart;
//! before a stage is judged, the ports it created get up to `settle` to converge. The stage that
//! broke a check is past the knee by design: it is kept as an `Overload` phase, shown in the
//! report but left out of the run's headline figures, so a search that found its knee passes.

use std::sync::Arc;
use std::time::Duration;

use reports::summary::{Errors, Scalars, SloResult, SloStatus, StepSearch, StepStage, lookup};

use super::{Ctx, Work, open};
use crate::record::{PhaseKind, PhaseRecord};
use crate::scenario::{PhaseSpec, RateStage};
use crate::slo::Check;

/// Share of a stage's due requests that must have been sent for it to hold its rate.
pub const RATE_HELD: f64 = 0.99;
/// The check each stage gets besides the scenario's.
pub const RATE_CHECK: &str = "sent >= 99% of due requests";

/// A phase's scalars, defined as for the whole run.
pub fn phase_scalars(p: &PhaseRecord, now: Duration) -> Scalars {
    Scalars {
        error_rate: Errors::rate(p.errors, p.not_converged, p.requests),
        throughput: p.succeeded as f64 / p.length(now).as_secs_f64().max(1e-9),
        requests: p.requests,
        failed: p.errors,
        not_programmed: p.not_programmed,
        not_converged: p.not_converged,
    }
}

/// Runs a step search.
pub async fn run(
    ctx: &Arc<Ctx>,
    spec: &PhaseSpec,
    checks: &[Check],
    work: Work,
    settle: Duration,
    grace: Duration,
    repeat: Option<u32>,
) -> StepSearch {
    let name = spec.name.as_str();
    let start_rate = spec.start_rate.unwrap_or(1.0);
    let step_rate = spec.step_rate.unwrap_or(1.0);
    let max_rate = spec.max_rate.unwrap_or(start_rate);
    let step_duration = spec.step_duration.unwrap_or(Duration::from_secs(5));
    let mut stages = Vec::new();
    let mut knee = None;
    let mut k = 0u32;
    loop {
        let rate = start_rate + step_rate * f64::from(k);
        if rate > max_rate * (1.0 + 1e-9) || ctx.stop.is_cancelled() {
            break;
        }
        k += 1;
        let phase = ctx.rec.begin_phase(
            &format!("{name}@{rate}/s"),
            PhaseKind::Load,
            format!("step stage: open {rate}/s"),
            repeat,
        );
        ctx.rec.set_plan(
            phase,
            crate::record::Plan {
                stages: vec![(rate, step_duration)],
                length: Some(step_duration),
                requests: None,
            },
        );
        open::run(
            ctx,
            phase,
            &[RateStage {
                rate,
                duration: step_duration,
            }],
            None,
            work,
            spec.max_in_flight,
            grace,
            true,
        )
        .await;
        ctx.corr.settle(settle, &ctx.stop).await;
        ctx.corr.sweep();
        ctx.rec.end_phase();
        let now = ctx.rec.elapsed();
        let stage = ctx.rec.with_phases(|phases| {
            let p = &phases[phase];
            let metrics = p.stats();
            let scalars = phase_scalars(p, now);
            let mut results: Vec<_> = checks
                .iter()
                .map(|c| c.evaluate(lookup(&c.key, &metrics, &scalars)))
                .collect();
            // A stage ends on time, and what could not be sent by then is dropped, not sent
            // late: a stage whose requests piled up held neither its rate nor, honestly, its
            // latency checks.
            if p.due > 0 {
                let sent = p.requests as f64 / p.due as f64;
                let pass = sent >= RATE_HELD;
                results.push(SloResult {
                    check: RATE_CHECK.into(),
                    actual: Some(sent),
                    threshold: RATE_HELD,
                    op: ">=".into(),
                    pass,
                    status: if pass { SloStatus::Pass } else { SloStatus::Fail },
                    margin: Some((sent - RATE_HELD) / RATE_HELD),
                });
            }
            let pass = results.iter().all(|r| r.pass);
            StepStage {
                offered_rps: rate,
                achieved_rps: scalars.throughput,
                started_s: p.started.as_secs_f64(),
                duration_s: p.length(now).as_secs_f64(),
                metrics,
                checks: results,
                pass,
            }
        });
        let pass = stage.pass;
        stages.push(stage);
        if !pass {
            ctx.rec.set_kind(phase, PhaseKind::Overload);
            break;
        }
        if ctx.stop.is_cancelled() {
            break;
        }
        knee = Some(rate);
    }
    StepSearch {
        phase: name.to_owned(),
        stages,
        knee_rps: knee,
    }
}
