//! The open model: requests at intended times, whatever the target does.
//!
//! Request *k* of a stage at rate *r* is due at `stage_start + k / r`. The scheduler wakes at
//! tokio's timer resolution (1 ms) and issues every request that is due, so the offered rate
//! holds at any rate. Latency is measured from the intended time, so a stalled target shows as
//! latency, not as a lower rate (coordinated omission corrected, as in wrk2). At most
//! `max_in_flight` requests run at once; beyond that, due requests wait for a slot, and that
//! wait is in their latency too.
//!
//! Requests are run by a pool of worker tasks fed through a channel, grown on demand up to
//! `max_in_flight`: at tens of thousands of requests per second, a task and a semaphore permit
//! per request cost more than the request itself. The pool also shrinks: workers that were
//! never needed at once over a window of [`WORKER_IDLE`] (the fewest idle at any request of the
//! window, less one spare) are retired, each closing its connection as it leaves, so that a
//! latency spike that grew the pool does not hold its tasks and connections for the rest of a
//! long phase. (An idle timeout per worker would not do: the channel hands requests to waiting
//! workers in turn, so at a steady rate every surplus worker keeps getting some.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::task::JoinSet;

use super::{Ctx, Work};
use crate::scenario::RateStage;

/// Planned requests the scheduler keeps queued ahead of the workers at most, whatever the
/// rate: its memory does not grow with the rate.
pub const MAX_BACKLOG: usize = 65_536;

/// The window over which surplus workers are found. Long enough that a steady rate keeps its
/// workers (and their kept-alive connections); short enough that the hundreds a stall spawned
/// are gone seconds after it.
pub const WORKER_IDLE: Duration = Duration::from_secs(2);

/// Takes one retirement, if any is asked for, for a worker that then leaves `live`; the last
/// worker never leaves (and calls off what is asked).
fn retire_one(retire: &AtomicUsize, live: &AtomicUsize) -> bool {
    if retire
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_err()
    {
        return false;
    }
    if live
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n > 1).then(|| n - 1))
        .is_ok()
    {
        return true;
    }
    retire.store(0, Ordering::Release);
    false
}

/// Starts `worker` in `tasks`, first taking out the workers that have ended. A `JoinSet` holds
/// an ended task, its whole future with it, until it is joined; workers retire and are started
/// again all through a long phase, and before this an hour's churn kept every one it ever
/// started (the harness's creep of sessions 8-12: ~17 MB in 6 minutes under load).
fn start_worker<F>(tasks: &mut JoinSet<()>, worker: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    while tasks.try_join_next().is_some() {}
    tasks.spawn(worker);
}

/// Runs `stages` in order; stops after `budget` requests, on `ctx.stop`, or when `work` has
/// nothing left. With `hard_end` the phase ends when its stages' time is up: requests still due
/// then are counted as unsent (`Recorder::unsent`) and their plans undone, never sent late.
/// Waits for every sent request before returning (at most `grace` once stopped).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    ctx: &Arc<Ctx>,
    phase: usize,
    stages: &[RateStage],
    budget: Option<u64>,
    work: Work,
    max_in_flight: usize,
    grace: Duration,
    hard_end: bool,
) {
    let (tx, rx) = async_channel::unbounded::<(super::Planned, Instant)>();
    let idle = Arc::new(AtomicUsize::new(0));
    // Workers alive, and how many the scheduler has asked to leave.
    let live = Arc::new(AtomicUsize::new(0));
    let retire = Arc::new(AtomicUsize::new(0));
    // The fewest idle workers seen at a request since `window` began.
    let (mut window, mut fewest_idle) = (Instant::now(), usize::MAX);
    let mut tasks = JoinSet::new();
    let mut issued = 0u64;
    let phase_start = Instant::now();
    let phase_end = phase_start + stages.iter().map(|s| s.duration).sum::<Duration>();
    // Due requests not yet told to the recorder: told once per scheduler wait, not per request.
    let mut due_untold = 0u64;
    // Requests of the stages that fell due but were never planned (the time ran out first).
    let mut missed = 0u64;
    let mut stage_start = phase_start;
    // Requests of stage `si` from its `k`-th on, and of every later stage.
    let left = |si: usize, k: u64| stages[si..].iter().map(RateStage::requests).sum::<u64>() - k;
    'stages: for (si, stage) in stages.iter().enumerate() {
        let start = stage_start;
        stage_start += stage.duration;
        let interval = Duration::from_secs_f64(1.0 / stage.rate);
        let total = stage.requests();
        // Requests queued beyond this wait in the scheduler, unplanned: see below. 10 ms of the
        // rate, so that a 1 ms tick (which can last 2) never leaves the workers short.
        let backlog = max_in_flight.max((stage.rate / 100.0) as usize).min(MAX_BACKLOG);
        let mut k = 0u64;
        while k < total {
            let due = start + interval.mul_f64(k as f64);
            let now = Instant::now();
            if hard_end && now >= phase_end {
                // Behind schedule at the end: what is left of this stage and every later one
                // was due and will not be sent.
                missed = left(si, k);
                break 'stages;
            }
            if due > now {
                ctx.rec.due(phase, std::mem::take(&mut due_untold));
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = ctx.stop.cancelled() => break 'stages,
                }
            } else if ctx.stop.is_cancelled() {
                break 'stages;
            }
            if budget.is_some_and(|b| issued >= b) {
                break 'stages;
            }
            let Some(p) = ctx.plan(work) else {
                break 'stages;
            };
            issued += 1;
            due_untold += 1;
            k += 1;
            let idle_now = idle.load(Ordering::Acquire);
            fewest_idle = fewest_idle.min(idle_now);
            if now >= window + WORKER_IDLE {
                // Workers idle at every request of the window were never needed: retire them,
                // keeping one spare. Set, not added: the count is of the workers there are now,
                // so it never asks more of them to leave than there are.
                if fewest_idle > 1 && fewest_idle != usize::MAX {
                    retire.store(fewest_idle - 1, Ordering::Release);
                }
                (window, fewest_idle) = (now, usize::MAX);
            }
            if idle_now == 0 && live.load(Ordering::Acquire) < max_in_flight {
                // Demand again: retirements still pending are called off.
                retire.store(0, Ordering::Release);
                live.fetch_add(1, Ordering::AcqRel);
                let (ctx, rx, idle, live, retire) =
                    (ctx.clone(), rx.clone(), idle.clone(), live.clone(), retire.clone());
                start_worker(&mut tasks, async move {
                    let mut conn = ctx.http.connection();
                    loop {
                        if retire_one(&retire, &live) {
                            return;
                        }
                        idle.fetch_add(1, Ordering::AcqRel);
                        // Woken now and then to see whether it is retired, at low rates.
                        let next = tokio::time::timeout(WORKER_IDLE, rx.recv()).await;
                        idle.fetch_sub(1, Ordering::AcqRel);
                        match next {
                            Err(_) => continue,
                            Ok(Err(_)) => {
                                live.fetch_sub(1, Ordering::AcqRel);
                                return;
                            }
                            Ok(Ok((p, due))) => ctx.execute(&mut conn, phase, p, due).await,
                        }
                    }
                });
            }
            // Unbounded and never closed while sending: this cannot fail.
            let _ = tx.try_send((p, due));
            // The workers are behind by more than `backlog`: the scheduler waits a tick rather
            // than plan (and register) a stall's whole backlog in one burst, which kept a thread
            // from the workers and made a brief stall at a high rate snowball. Requests keep
            // their intended times, so the wait still shows in their latency. (A bounded channel
            // would wake the scheduler once per request taken: measured slower.)
            while tx.len() >= backlog {
                ctx.rec.due(phase, std::mem::take(&mut due_untold));
                if hard_end && Instant::now() >= phase_end {
                    missed = left(si, k);
                    break 'stages;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(1)) => {}
                    _ = ctx.stop.cancelled() => break 'stages,
                }
            }
        }
    }
    ctx.rec.due(phase, due_untold + missed);
    // The workers may send what is queued until the phase's time is up.
    if hard_end {
        while !rx.is_empty() && Instant::now() < phase_end && !ctx.stop.is_cancelled() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(1)) => {}
                _ = ctx.stop.cancelled() => {}
            }
        }
    }
    // Planned but still queued when the time ran out (or on a stop): never sent, so undone.
    let mut unsent = missed;
    if hard_end || ctx.stop.is_cancelled() {
        while let Ok((p, _)) = rx.try_recv() {
            ctx.unplan(&p);
            unsent += 1;
        }
    }
    ctx.unsent(phase, unsent);
    // Workers finish what is queued, then see the channel closed.
    drop(tx);
    let drained = async { while tasks.join_next().await.is_some() {} };
    if ctx.stop.is_cancelled() {
        rx.close();
        if tokio::time::timeout(grace, drained).await.is_err() {
            tasks.abort_all();
        }
    } else {
        tokio::select! {
            _ = drained => {}
            _ = ctx.stop.cancelled() => {
                rx.close();
                let _ = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
                tasks.abort_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ended_workers_are_taken_out_as_new_ones_start() {
        let mut tasks = JoinSet::new();
        for _ in 0..1_000 {
            start_worker(&mut tasks, async {});
            // Lets the worker run to its end.
            tokio::task::yield_now().await;
        }
        assert!(tasks.len() <= 2, "{} ended workers held", tasks.len());
        let mut kept = JoinSet::new();
        for _ in 0..1_000 {
            kept.spawn(async {});
            tokio::task::yield_now().await;
        }
        assert_eq!(kept.len(), 1_000, "what a JoinSet does unjoined");
    }

    #[test]
    fn retirements_are_taken_once_each_and_the_last_worker_stays() {
        let (retire, live) = (AtomicUsize::new(5), AtomicUsize::new(3));
        assert!(retire_one(&retire, &live));
        assert!(retire_one(&retire, &live));
        assert!(!retire_one(&retire, &live), "one worker always stays");
        assert_eq!((live.load(Ordering::Relaxed), retire.load(Ordering::Relaxed)), (1, 0));
        let (retire, live) = (AtomicUsize::new(0), AtomicUsize::new(3));
        assert!(!retire_one(&retire, &live), "none asked");
    }
}
