//! `port_active` for a control plane that pushes nothing to the simulated agents (Neutron): the
//! status of every created port is polled in batches (`GET /v2.0/ports?id=…&id=…&fields=id&
//! fields=status`) until it reads `ACTIVE`, at a bounded rate, as Rally's and Browbeat's
//! Neutron scenarios wait for their ports.
//!
//! A port is seen `ACTIVE` by a poll's answer; it went `ACTIVE` at some moment after the last
//! poll that saw it otherwise was sent. `port_active` is timed at the answer (an upper bound), and
//! that gap is recorded beside it (`port_active.resolution`), so that a reader knows how coarse
//! the figure is. Each poll's own latency is recorded as `poll`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use reports::summary::metric;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::http::{Connection, HttpCall};
use super::neutron::{NeutronTarget, Watch};
use crate::correlate::Correlator;
use crate::record::Recorder;

/// How to poll.
#[derive(Debug, Clone, Copy)]
pub struct PollConfig {
    /// A port is polled again at most this often.
    pub interval: Duration,
    /// Ids per poll.
    pub batch: usize,
    /// Polls per second at most.
    pub rate: f64,
    /// A port not `ACTIVE` after this long is no longer polled (the correlator fails it).
    pub give_up: Duration,
}

/// A port being watched.
struct Watched {
    w: Watch,
    /// When the last poll that saw it not yet ACTIVE was sent.
    seen_down: Instant,
}

#[derive(Deserialize)]
struct Status {
    id: String,
    status: String,
}

#[derive(Deserialize)]
struct Statuses {
    ports: Vec<Status>,
}

/// Polls until `stop`, reporting each port that reads `ACTIVE` to `corr`. Polls nothing while
/// no port waits.
pub async fn run(
    target: Arc<NeutronTarget>,
    mut conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Watch>,
    corr: Arc<Correlator>,
    rec: Arc<Recorder>,
    cfg: PollConfig,
    stop: CancellationToken,
) {
    let gap = Duration::from_secs_f64(1.0 / cfg.rate.max(1e-3));
    let mut waiting: Vec<Watched> = Vec::new();
    let mut last_poll: Option<Instant> = None;
    loop {
        // New ports; when none waits, sleep until one comes.
        if waiting.is_empty() {
            tokio::select! {
                w = rx.recv() => match w {
                    Some(w) => waiting.push(Watched { seen_down: w.since, w }),
                    None => return,
                },
                _ = stop.cancelled() => return,
            }
        }
        while let Ok(w) = rx.try_recv() {
            waiting.push(Watched { seen_down: w.since, w });
        }
        let cycle = Instant::now();
        // Ports the correlator no longer waits for (timed out, or their phase ended).
        waiting.retain(|x| cycle.saturating_duration_since(x.w.since) <= cfg.give_up && corr.is_pending(&x.w.planned));
        let mut i = 0;
        while i < waiting.len() {
            if stop.is_cancelled() {
                return;
            }
            // The rate bound holds across cycles.
            if let Some(t) = last_poll {
                let next = t + gap;
                if next > Instant::now() {
                    tokio::time::sleep_until(next.into()).await;
                }
            }
            let end = (i + cfg.batch).min(waiting.len());
            let mut path = String::from("/ports?fields=id&fields=status");
            for x in &waiting[i..end] {
                path.push_str("&id=");
                path.push_str(&x.w.id);
            }
            let call = HttpCall {
                method: Method::GET,
                to: target.endpoint(&path),
                body: None,
            };
            let sent = Instant::now();
            last_poll = Some(sent);
            let answer = conn.send_for_body(&call).await;
            let got = Instant::now();
            rec.sample_at(sent, metric::POLL, got.duration_since(sent).as_micros() as u64);
            let Ok(body) = answer else {
                tracing::debug!(error = ?answer.err(), "a status poll failed");
                i = end;
                continue;
            };
            let Ok(st) = serde_json::from_slice::<Statuses>(&body) else {
                i = end;
                continue;
            };
            let active: rustc_hash::FxHashSet<&str> = st
                .ports
                .iter()
                .filter(|p| p.status == "ACTIVE")
                .map(|p| p.id.as_str())
                .collect();
            let listed: rustc_hash::FxHashSet<&str> = st.ports.iter().map(|p| p.id.as_str()).collect();
            // Keep the batch's ports still down; report the active ones; forget the ones Neutron
            // no longer lists (deleted before they came up: the correlator times them out).
            let mut kept = Vec::with_capacity(end - i);
            for mut x in waiting.drain(i..end) {
                if active.contains(&*x.w.id) {
                    corr.reached(&x.w.planned, got, got.duration_since(x.seen_down));
                } else if listed.contains(&*x.w.id) {
                    x.seen_down = sent;
                    kept.push(x);
                }
            }
            let n = kept.len();
            waiting.splice(i..i, kept);
            i += n;
        }
        // Each port at most once per interval.
        let next = cycle + cfg.interval;
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = stop.cancelled() => return,
        }
    }
}
