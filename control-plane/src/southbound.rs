//! Where goal states go after the DPM computed them: pushed to each host over gRPC (the NCM
//! role, [`Ncm`]) or published to a message broker that each host's agent consumes
//! ([`Publisher`], Alcor's MQ path). Both answer one [`HostResult`] per message, so the API,
//! the metrics and a resync do not know which carried them.

use std::sync::Arc;
use std::time::Instant;

use broker::Broker;
use serde::{Deserialize, Serialize};

use crate::dpm::HostMessage;
use crate::ncm::{HostResult, Ncm};

/// Which way goal states travel to agents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SouthboundKind {
    /// A gRPC push to each host (Alcor's default).
    #[default]
    Grpc,
    /// Through a message broker (Alcor's `path.mode=MQ`).
    Mq,
}

impl std::str::FromStr for SouthboundKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "grpc" => Ok(Self::Grpc),
            "mq" => Ok(Self::Mq),
            _ => Err(format!("invalid southbound `{s}` (expected grpc or mq)")),
        }
    }
}

impl std::fmt::Display for SouthboundKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Grpc => "grpc",
            Self::Mq => "mq",
        })
    }
}

/// Publishes goal states to a broker: a message is done when the broker holds it, whatever its
/// host is doing (the controller does not wait on slow hosts; the broker buffers for them).
#[derive(Debug)]
pub struct Publisher {
    broker: Arc<dyn Broker>,
}

impl Publisher {
    /// Publishes through `broker`.
    pub fn new(broker: Arc<dyn Broker>) -> Self {
        Self { broker }
    }

    /// Publishes one message: `ok` once the broker acknowledged it, `elapsed_us` until then.
    pub async fn publish(&self, m: HostMessage) -> HostResult {
        let t = Instant::now();
        let r = self.broker.publish(m.vpc.as_deref(), m.host, m.bytes).await;
        HostResult {
            host: m.host,
            ok: r.is_ok(),
            error: r.err().map(|e| e.to_string()),
            elapsed_us: t.elapsed().as_micros() as u64,
            agent_total_us: None,
            counts: m.counts,
            merged: 1,
        }
    }
}

/// The southbound a control plane (or the southbound target) sends through.
#[derive(Debug, Clone)]
pub enum Southbound {
    /// gRPC push.
    Grpc(Arc<Ncm>),
    /// Broker.
    Mq(Arc<Publisher>),
}

impl Southbound {
    /// Sends every message concurrently and returns one result per message.
    pub async fn push_all(&self, messages: Vec<HostMessage>) -> Vec<HostResult> {
        match self {
            Self::Grpc(ncm) => ncm.push_all(messages).await,
            Self::Mq(p) => futures_util::future::join_all(messages.into_iter().map(|m| p.publish(m))).await,
        }
    }

    /// Which way.
    pub fn kind(&self) -> SouthboundKind {
        match self {
            Self::Grpc(_) => SouthboundKind::Grpc,
            Self::Mq(_) => SouthboundKind::Mq,
        }
    }

    /// The gRPC pusher, when goal states go that way.
    pub fn ncm(&self) -> Option<&Ncm> {
        match self {
            Self::Grpc(n) => Some(n),
            Self::Mq(_) => None,
        }
    }

    /// Forgets connections to agents, as a restarted process has none (the broker keeps its
    /// own connection: agents are not connected to the control plane on that path).
    pub fn disconnect_all(&self) {
        if let Self::Grpc(n) = self {
            n.disconnect_all();
        }
    }
}
