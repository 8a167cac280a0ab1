//! What the driver talks to. REST targets (the embedded reference control plane, or a real
//! Alcor by URL) get Alcor's northbound calls as [`HttpCall`]s, which either engine sends;
//! the southbound target has no REST API: the harness builds Alcor-shaped goal states itself
//! and pushes them to agents over gRPC, as Alcor's own test controller did.

mod http;
mod rest;
mod southbound;

use std::net::Ipv4Addr;
use std::sync::Arc;

pub use http::{Connection, Endpoint, HttpCall, HttpClient, Origin, outcome};
pub use rest::{RestTarget, ServiceUrls};
pub use southbound::SouthboundTarget;

use crate::topology::{Op, PortPlan};

/// The target of a run.
#[derive(Debug, Clone)]
pub enum Target {
    /// Alcor's REST API (embedded or real).
    Rest(Arc<RestTarget>),
    /// Goal states pushed by the harness.
    Southbound(Arc<SouthboundTarget>),
}

/// Sends one planned operation to a target over the sender's own connection; the latency is
/// the caller's to measure. `neighbors` are the hosts that must learn the port (southbound sends
/// to exactly those).
pub async fn send_op(
    target: &Target,
    conn: &mut Connection,
    op: Op,
    p: &PortPlan,
    neighbors: &[Ipv4Addr],
) -> Result<(), String> {
    match target {
        Target::Rest(r) => {
            let c = match op {
                Op::Create => r.create(p),
                Op::Update => r.update(p),
                Op::Delete => r.delete(p),
            };
            conn.send(&c).await
        }
        Target::Southbound(s) => s.apply(op, p, neighbors).await,
    }
}
