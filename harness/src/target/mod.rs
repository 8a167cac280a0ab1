//! What the driver talks to. REST targets (the embedded reference control plane, or a real
//! Alcor by URL) get Alcor's northbound calls as [`HttpCall`]s, which either engine sends;
//! a real Neutron gets its own v2.0 calls and answers with the ids it chose; the southbound
//! target has no REST API: the harness builds Alcor-shaped goal states itself and pushes them
//! to agents over gRPC, as Alcor's own test controller did.

pub mod active;
mod http;
pub mod neutron;
mod rest;
mod southbound;
pub mod tls;

use std::net::Ipv4Addr;
use std::sync::Arc;

pub use http::{Connection, Endpoint, Headers, HttpCall, HttpClient, Origin, outcome};
pub use neutron::NeutronTarget;
pub use rest::{RegisterMode, Registered, RestTarget, ServiceUrls};
pub use southbound::SouthboundTarget;

use crate::topology::{Op, PortPlan};

/// The target of a run.
#[derive(Debug, Clone)]
pub enum Target {
    /// Alcor's REST API (embedded or real).
    Rest(Arc<RestTarget>),
    /// OpenStack Neutron's v2.0 API.
    Neutron(Arc<NeutronTarget>),
    /// Goal states pushed by the harness.
    Southbound(Arc<SouthboundTarget>),
}

impl Target {
    /// The REST call of `op` on `p`; `None` for the southbound target, which has no REST API.
    /// `Err` is a failure kind: the call cannot be made (a port Neutron gave no id).
    pub fn call(&self, op: Op, p: &PortPlan) -> Option<Result<HttpCall, String>> {
        match self {
            Self::Rest(r) => Some(Ok(match op {
                Op::Create => r.create(p),
                Op::Update => r.update(p),
                Op::Delete => r.delete(p),
            })),
            Self::Neutron(n) => Some(match op {
                Op::Create => n.create(p),
                Op::Update => n.update(p),
                Op::Delete => n.delete(p),
            }),
            Self::Southbound(_) => None,
        }
    }

    /// A successful answer to `op` on `p`: a target that chooses ids learns them here. `Err`
    /// is a failure kind (an answer without the id it must carry).
    pub fn answered(&self, op: Op, p: &PortPlan, body: &[u8]) -> Result<(), String> {
        match (self, op) {
            (Self::Neutron(n), Op::Create) => n.answered_create(p, body),
            (Self::Neutron(n), Op::Delete) => {
                n.deleted(p);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// One call creating `ports` (of one project), where the target has one.
    pub fn create_bulk(&self, ports: &[PortPlan]) -> Option<Result<HttpCall, String>> {
        match self {
            Self::Rest(r) => Some(Ok(r.create_bulk(ports))),
            Self::Neutron(n) => Some(n.create_bulk(ports)),
            Self::Southbound(_) => None,
        }
    }

    /// A bulk create's successful answer.
    pub fn answered_bulk(&self, ports: &[PortPlan], body: &[u8]) -> Result<(), String> {
        match self {
            Self::Neutron(n) => n.answered_bulk(ports, body),
            _ => Ok(()),
        }
    }
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
    if let Target::Southbound(s) = target {
        return s.apply(op, p, neighbors).await;
    }
    let call = target.call(op, p).ok_or("no_call")??;
    let body = conn.send_for_body(&call).await?;
    target.answered(op, p, &body)
}
