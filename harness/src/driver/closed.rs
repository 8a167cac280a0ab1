//! The closed model on goose: N users, each a tenant that issues its next port operation when
//! the last one is answered, started at `users / ramp` per second.
//!
//! Each request goes through goose's HTTP client; a user issues its next request once its port
//! is programmed and converged (or failed). Latency figures in the run folder come from the
//! harness's µs histograms, like every other engine's, and the run's own report covers closed
//! phases. Goose's HTML report is not written: it loads its charts from a CDN (blank offline)
//! and its totals would count every stage as a request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType};
use goose::prelude::*;

use super::{Ctx, Work};
use crate::target::Target;

/// The run goose's users serve. Goose transactions are plain functions with no context
/// argument, so the context of the phase running now is reached through this slot; phases
/// run one at a time.
static CURRENT: Mutex<Option<Arc<Phase>>> = Mutex::new(None);

struct Phase {
    ctx: Arc<Ctx>,
    phase: usize,
    work: Work,
    /// Requests left to issue (u64::MAX: no budget).
    budget: AtomicU64,
    correlation_timeout: Duration,
}

fn current() -> Option<Arc<Phase>> {
    CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// What a closed phase did.
#[derive(Debug, Clone, Default)]
pub struct ClosedResult {
    /// Whether goose ended because it was cancelled.
    pub cancelled: bool,
    /// Goose's error, if it failed to run.
    pub error: Option<String>,
}

/// Parameters of a closed phase.
#[derive(Debug, Clone)]
pub struct ClosedParams {
    /// Users.
    pub users: u32,
    /// Time to start them all.
    pub ramp: Duration,
    /// Run time (whole seconds for goose; rounded up).
    pub duration: Option<Duration>,
    /// Requests at most.
    pub budget: Option<u64>,
    /// How long a user waits for its port to converge.
    pub correlation_timeout: Duration,
    /// REST request timeout.
    pub request_timeout: Duration,
}

/// Each user's first step: for an `https://` target, a client that verifies certificates as the
/// harness's own does (the scenario's CA file, or none with `insecure`).
async fn user_client(user: &mut GooseUser) -> TransactionResult {
    let Some(run) = current() else { return Ok(()) };
    if let Some(tls) = run.ctx.http.tls() {
        let builder = reqwest::Client::builder()
            .use_preconfigured_tls((**tls).clone())
            .timeout(run.ctx.http.timeout());
        user.set_client_builder(builder).await?;
    }
    Ok(())
}

async fn user_op(user: &mut GooseUser) -> TransactionResult {
    let Some(run) = current() else { return Ok(()) };
    if run.ctx.stop.is_cancelled() {
        return Ok(());
    }
    if run
        .budget
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| match b {
            0 => None,
            u64::MAX => Some(u64::MAX),
            b => Some(b - 1),
        })
        .is_err()
    {
        // Budget spent: idle briefly so the remaining iterations do not spin.
        tokio::time::sleep(Duration::from_millis(5)).await;
        return Ok(());
    }
    let Some(p) = run.ctx.plan(run.work) else {
        tokio::time::sleep(Duration::from_millis(5)).await;
        return Ok(());
    };
    let start = Instant::now();
    let waiter = run.ctx.begin(run.phase, &p, start, None, true);
    let result = match &run.ctx.target {
        Target::Southbound(s) => match p.subject.port() {
            Some(port) => s.apply(p.op, port, &p.neighbors).await,
            None => Err("no_call".into()),
        },
        rest => match rest.call(p.op, &p.subject) {
            None => Err("no_call".into()),
            Some(Err(e)) => Err(e),
            Some(Ok(call)) => {
                let method = match call.method {
                    http::Method::POST => GooseMethod::Post,
                    http::Method::DELETE => GooseMethod::Delete,
                    _ => GooseMethod::Put,
                };
                let mut rb = user.get_request_builder(&method, &call.to.url())?;
                for (k, v) in run.ctx.http.headers().iter() {
                    rb = rb.header(k, v);
                }
                if let Some(b) = &call.body {
                    rb = rb
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(b.clone());
                }
                let req = GooseRequest::builder()
                    .method(method)
                    .name(p.op.name())
                    .set_request_builder(rb)
                    .build();
                match user.request(req).await {
                    Ok(resp) => match crate::target::outcome(resp.response).await {
                        Ok(body) => rest.answered(p.op, &p.subject, &body),
                        Err(e) => Err(e),
                    },
                    Err(_) => Err("transport".into()),
                }
            }
        },
    };
    run.ctx.finish(run.phase, &p, start, &result);
    if result.is_ok()
        && let Some(w) = waiter
    {
        // The user's next request waits for this one's programming, whatever its outcome (the
        // correlator records it).
        // A stop does not wait for it: the correlator fails what is left at the end.
        tokio::select! {
            _ = tokio::time::timeout(run.correlation_timeout + Duration::from_secs(1), w) => {}
            _ = run.ctx.stop.cancelled() => {}
        }
    }
    Ok(())
}

fn set<T>(attack: GooseAttack, key: GooseDefault, v: T) -> Result<GooseAttack, String>
where
    GooseAttack: GooseDefaultType<T>,
{
    attack
        .set_default(key, v)
        .map(|b| *b)
        .map_err(|e| format!("goose: {e:?}"))
}

/// Runs one closed phase on goose.
pub async fn run(ctx: &Arc<Ctx>, phase: usize, work: Work, params: &ClosedParams, base_url: &str) -> ClosedResult {
    let users = params.users.max(1) as usize;
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Phase {
        ctx: ctx.clone(),
        phase,
        work,
        budget: AtomicU64::new(params.budget.unwrap_or(u64::MAX)),
        correlation_timeout: params.correlation_timeout,
    }));
    // Our stop token drives goose's killswitch, and goose's Ctrl-C handler (which replaces
    // ours once goose has run) drives our token.
    goose::reset_killswitch();
    let bridge = {
        let stop = ctx.stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => { goose::trigger_killswitch("alcor-scale is stopping"); return; }
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {
                        if goose::is_killswitch_triggered() { stop.cancel(); return; }
                    }
                }
            }
        })
    };
    let result = async {
        let attack =
            GooseAttack::initialize_with_config(GooseConfiguration::default()).map_err(|e| format!("goose: {e:?}"))?;
        let ramp_s = params.ramp.as_secs_f64();
        let rate = if ramp_s > 0.0 {
            users as f64 / ramp_s
        } else {
            users as f64
        };
        let mut attack = set(attack, GooseDefault::Host, base_url)?;
        attack = set(attack, GooseDefault::Users, users)?;
        attack = set(attack, GooseDefault::IncreaseRate, format!("{rate:.3}").as_str())?;
        attack = set(attack, GooseDefault::Quiet, 1usize)?;
        attack = set(attack, GooseDefault::NoPrintMetrics, true)?;
        attack = set(attack, GooseDefault::NoTelnet, true)?;
        attack = set(attack, GooseDefault::NoErrorSummary, true)?;
        attack = set(
            attack,
            GooseDefault::Timeout,
            format!("{}", params.request_timeout.as_secs().max(1)).as_str(),
        )?;
        if let Some(d) = params.duration {
            attack = set(attack, GooseDefault::RunTime, d.as_secs_f64().ceil() as usize)?;
        }
        if let Some(b) = params.budget {
            // Every user runs until the shared budget is spent; this bounds the idle iterations.
            attack = set(attack, GooseDefault::Iterations, (b as usize).div_ceil(users) + 1)?;
        }
        let attack = attack.register_scenario(
            scenario!("tenant")
                .register_transaction(transaction!(user_client).set_on_start())
                .register_transaction(transaction!(user_op).set_name("port_op")),
        );
        attack.execute().await.map_err(|e| format!("goose: {e:?}"))
    }
    .await;
    bridge.abort();
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let cancelled = ctx.stop.is_cancelled();
    goose::reset_killswitch();
    match result {
        Ok(_) => ClosedResult { cancelled, error: None },
        Err(e) => ClosedResult {
            cancelled,
            error: Some(e),
        },
    }
}
