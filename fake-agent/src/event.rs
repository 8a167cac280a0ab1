//! The record every processed message produces, and the in-process bus that carries records
//! to subscribers (the harness).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::apply::{OpCounts, ResourceCounts, StatusCounts};
use crate::clock::Epoch;
use crate::ids::IdList;

/// Which RPC carried the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Rpc {
    /// `PushGoalStatesStream` (GoalStateV2).
    PushGoalStatesStream,
    /// `PushNetworkResourceStates` (GoalState, V1).
    PushNetworkResourceStates,
    /// A GoalStateV2 consumed from a message broker (the MQ southbound; no reply is sent).
    Broker,
}

/// How a message consumed from a broker had waited there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Queued {
    /// From the broker taking the message to the agent receiving it (the broker's clock
    /// against the agent's: one machine, or clocks kept in sync), µs.
    pub waited_us: u64,
    /// Messages for the agent still in the broker behind this one: the agent's lag.
    pub pending: u64,
    /// Deliveries of this message so far (more than 1: it came again after a crash or retry).
    pub attempt: u64,
}

/// What one agent did with one message.
#[derive(Debug, Clone)]
pub struct AgentEvent {
    /// Index of the agent in its fleet.
    pub agent: u32,
    /// The agent's host IP (its listen address).
    pub host_ip: Ipv4Addr,
    /// The RPC.
    pub rpc: Rpc,
    /// When the whole message had arrived (before decoding).
    pub arrived: Instant,
    /// When the reply was ready (after the simulated programming wait).
    pub completed: Instant,
    /// Encoded size of the message.
    pub bytes: u64,
    /// States per resource type.
    pub counts: ResourceCounts,
    /// States per operation type.
    pub ops: OpCounts,
    /// Outcomes of ports, neighbors, DHCP and routers.
    pub outcomes: StatusCounts,
    /// Ids of the port states carried.
    pub port_ids: IdList,
    /// Port ids of the neighbor states carried.
    pub neighbor_ids: IdList,
    /// Ids of the security-group rules carried, whatever their operation.
    pub sg_rule_ids: IdList,
    /// Neighbors skipped because they live on this host.
    pub skipped_local_neighbors: u64,
    /// Measured decode time, µs.
    pub decode_us: u64,
    /// Measured apply time, µs.
    pub apply_us: u64,
    /// CPU time of the thread over decode + apply, µs. Below `decode_us + apply_us` when the
    /// thread waited for a core meanwhile (the machine was busy), not when the work was slow.
    pub cpu_us: u64,
    /// Simulated data-plane programming time, µs.
    pub simulated_us: u64,
    /// `message_total_operation_time` replied: decode + apply + simulated, µs.
    pub total_us: u64,
    /// Set when the message failed (it could not be decoded, or a fault made it fail); what
    /// it carried was not applied.
    pub error: Option<String>,
    /// The fault that made it fail (`error`, `crash`, `blackhole`: see [`crate::fault`]).
    pub fault: Option<&'static str>,
    /// Consumed from a broker: how it waited there.
    pub queued: Option<Queued>,
}

impl AgentEvent {
    /// True for an empty message (NCM's channel warm-up).
    pub fn is_empty(&self) -> bool {
        self.counts.total() == 0 && self.error.is_none()
    }

    /// The event with instants as µs since `epoch`, for export.
    pub fn to_wire<'a>(&'a self, epoch: &Epoch) -> WireEvent<'a> {
        WireEvent {
            kind: "event",
            agent: self.agent,
            host_ip: self.host_ip,
            rpc: self.rpc,
            arrived_us: epoch.micros(self.arrived),
            completed_us: epoch.micros(self.completed),
            bytes: self.bytes,
            counts: &self.counts,
            ops: &self.ops,
            outcomes: &self.outcomes,
            port_ids: &self.port_ids,
            neighbor_ids: &self.neighbor_ids,
            sg_rule_ids: &self.sg_rule_ids,
            skipped_local_neighbors: self.skipped_local_neighbors,
            decode_us: self.decode_us,
            apply_us: self.apply_us,
            cpu_us: self.cpu_us,
            simulated_us: self.simulated_us,
            total_us: self.total_us,
            error: self.error.as_deref(),
            fault: self.fault,
            queued: self.queued,
        }
    }
}

/// An [`AgentEvent`] as exported to another process (one JSON object per line).
#[derive(Debug, Serialize)]
#[allow(missing_docs)]
pub struct WireEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub agent: u32,
    pub host_ip: Ipv4Addr,
    pub rpc: Rpc,
    /// µs since the fleet's epoch.
    pub arrived_us: u64,
    /// µs since the fleet's epoch.
    pub completed_us: u64,
    pub bytes: u64,
    pub counts: &'a ResourceCounts,
    pub ops: &'a OpCounts,
    pub outcomes: &'a StatusCounts,
    pub port_ids: &'a IdList,
    pub neighbor_ids: &'a IdList,
    pub sg_rule_ids: &'a IdList,
    pub skipped_local_neighbors: u64,
    pub decode_us: u64,
    pub apply_us: u64,
    pub cpu_us: u64,
    pub simulated_us: u64,
    pub total_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<Queued>,
}

/// Fans events out to subscribers.
///
/// An in-process subscriber (the harness) is unbounded: a measurement tool must not drop
/// records or slow the agents down because a reader lags, and the harness reads as fast as the
/// fleet writes. A subscriber in another process (the TCP export) is bounded: a client that
/// stops reading must not grow the fleet's memory without end, so what does not fit is dropped
/// and counted, and the client is told.
#[derive(Debug, Default)]
pub struct EventBus {
    subscribers: Mutex<Vec<Subscriber>>,
    active: AtomicBool,
}

#[derive(Debug)]
enum Subscriber {
    Unbounded(mpsc::UnboundedSender<Arc<AgentEvent>>),
    Bounded {
        tx: mpsc::Sender<Arc<AgentEvent>>,
        dropped: Arc<AtomicU64>,
    },
}

impl Subscriber {
    /// Delivers (or, bounded and full, drops and counts); false once the receiver is gone.
    fn deliver(&self, event: &Arc<AgentEvent>) -> bool {
        match self {
            Self::Unbounded(tx) => tx.send(event.clone()).is_ok(),
            Self::Bounded { tx, dropped } => match tx.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
        }
    }
}

impl EventBus {
    /// A new receiver of every event from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Arc<AgentEvent>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.add(Subscriber::Unbounded(tx));
        rx
    }

    /// A new receiver of the events from now on that holds at most `capacity` unread ones;
    /// the events that did not fit are counted in the returned counter.
    pub fn subscribe_bounded(&self, capacity: usize) -> (mpsc::Receiver<Arc<AgentEvent>>, Arc<AtomicU64>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        self.add(Subscriber::Bounded {
            tx,
            dropped: dropped.clone(),
        });
        (rx, dropped)
    }

    fn add(&self, s: Subscriber) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subs.push(s);
        self.active.store(true, Ordering::Release);
    }

    /// Whether anyone listens; agents skip collecting ids when nobody does.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Sends an event to every live subscriber and forgets the ones that hung up.
    pub fn publish(&self, event: AgentEvent) {
        let event = Arc::new(event);
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|s| s.deliver(&event));
        if subs.is_empty() {
            self.active.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(agent: u32) -> AgentEvent {
        let now = Instant::now();
        AgentEvent {
            agent,
            host_ip: Ipv4Addr::LOCALHOST,
            rpc: Rpc::PushGoalStatesStream,
            arrived: now,
            completed: now,
            bytes: 0,
            counts: Default::default(),
            ops: Default::default(),
            outcomes: Default::default(),
            port_ids: Default::default(),
            neighbor_ids: Default::default(),
            sg_rule_ids: Default::default(),
            skipped_local_neighbors: 0,
            decode_us: 0,
            apply_us: 0,
            cpu_us: 0,
            simulated_us: 0,
            total_us: 0,
            error: None,
            fault: None,
            queued: None,
        }
    }

    #[test]
    fn a_bounded_subscriber_keeps_what_fits_counts_the_rest_and_goes_when_it_hangs_up() {
        let bus = EventBus::default();
        let mut all = bus.subscribe();
        let (mut some, dropped) = bus.subscribe_bounded(4);
        for i in 0..10 {
            bus.publish(event(i));
        }
        // The unbounded one got everything; the bounded one the first 4, and 6 were counted.
        assert_eq!(
            (0..10).map(|_| all.try_recv().unwrap().agent).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(
            (0..4).map(|_| some.try_recv().unwrap().agent).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert!(some.try_recv().is_err());
        assert_eq!(dropped.load(Ordering::Relaxed), 6);
        // Read, it takes events again.
        bus.publish(event(10));
        assert_eq!(some.try_recv().unwrap().agent, 10);
        // Gone, it is forgotten; with nobody left the bus is inactive.
        drop(some);
        drop(all);
        bus.publish(event(11));
        assert!(!bus.is_active());
    }
}
