//! Agents on the MQ southbound: each consumes its host's goal states from a broker through a
//! durable subscription and applies them exactly as a pushed message (same host state, cost
//! model and events, `rpc` = `Broker`). No reply goes back, as on Alcor's MQ path: the events
//! say what each message did and how long it waited in the broker.
//!
//! What is acknowledged: a message applied (or failed by an `error` fault: consumed, as the real
//! agent acknowledges whatever it processed), and one that does not decode (rejected, never to
//! come again). A blackholed agent holds its message and asks for it again when the fault
//! ends. A crashed agent stops consuming (its goal states wait in the broker) and acknowledges
//! nothing it was applying: the broker delivers that again after its `ack_wait`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use broker::{Broker, Settle};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::event::{Queued, Rpc};

/// Consumes `agent`'s goal states from `broker` until `stop`.
pub(crate) async fn consume(agent: Arc<Agent>, broker: Arc<dyn Broker>, stop: CancellationToken) {
    let mut changes = agent.fault_changes();
    let mut backoff = Duration::from_millis(100);
    'subscribe: loop {
        // Down: nothing consumed; the broker keeps the host's goal states.
        while agent.is_down() {
            tokio::select! {
                _ = stop.cancelled() => return,
                r = changes.changed() => if r.is_err() { return },
            }
        }
        let subscribed = tokio::select! {
            _ = stop.cancelled() => return,
            r = broker.subscribe(agent.ip()) => r,
        };
        let mut deliveries = match subscribed {
            Ok(d) => {
                backoff = Duration::from_millis(100);
                d
            }
            Err(e) => {
                tracing::warn!(agent = %agent.ip(), error = %e, "cannot subscribe; trying again");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                r = changes.changed() => {
                    if r.is_err() {
                        return;
                    }
                    if agent.is_down() {
                        // The subscription goes with the host: nothing more is fetched.
                        continue 'subscribe;
                    }
                    continue;
                }
                d = deliveries.next() => d,
            };
            let d = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    tracing::warn!(agent = %agent.ip(), error = %e, "subscription broke; subscribing again");
                    continue 'subscribe;
                }
                None => continue 'subscribe,
            };
            let queued = Queued {
                waited_us: d
                    .published
                    .and_then(|p| SystemTime::now().duration_since(p).ok())
                    .map_or(0, |w| w.as_micros() as u64),
                pending: d.pending,
                attempt: d.attempt,
            };
            let boot = agent.boot();
            let result = agent.handle(Rpc::Broker, d.payload.clone(), Some(queued)).await;
            let how = match result {
                // Crashed while applying: never acknowledged.
                _ if agent.boot() != boot => None,
                Ok(_) => Some(Settle::Ack),
                Err(s) if s.code() == tonic::Code::InvalidArgument => Some(Settle::Reject),
                // Held by a blackhole until it ended: not processed, wanted again.
                Err(s) if s.code() == tonic::Code::Unavailable => Some(Settle::Retry),
                // An injected failure: consumed, and failed.
                Err(_) => Some(Settle::Ack),
            };
            if let Some(how) = how
                && let Err(e) = d.settle(how).await
            {
                tracing::warn!(agent = %agent.ip(), error = %e, "acknowledgement lost; the message will come again");
            }
        }
    }
}
