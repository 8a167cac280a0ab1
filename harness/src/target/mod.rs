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

use crate::topology::{Op, PortPlan, Subject};

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
    /// The REST call of `op` on `s`; `None` for the southbound target, which has no REST API.
    /// `Err` is a failure kind: the call cannot be made (a port Neutron gave no id).
    pub fn call(&self, op: Op, s: &Subject) -> Option<Result<HttpCall, String>> {
        match (self, s) {
            (Self::Rest(r), Subject::Port(p)) => Some(Ok(match op {
                Op::Create => r.create(p),
                Op::Delete => r.delete(p),
                Op::SgJoin | Op::SgLeave => r.set_groups(p),
                _ => r.update(p),
            })),
            (Self::Rest(r), Subject::Rule(rule)) => Some(Ok(match op {
                Op::SgRuleDelete => r.delete_rule(rule),
                _ => r.add_rule(rule),
            })),
            (Self::Neutron(n), Subject::Port(p)) => Some(match op {
                Op::Create => n.create(p),
                Op::Delete => n.delete(p),
                Op::SgJoin | Op::SgLeave => n.set_groups(p),
                _ => n.update(p),
            }),
            (Self::Neutron(n), Subject::Rule(rule)) => Some(match op {
                Op::SgRuleDelete => n.delete_rule(rule),
                _ => n.add_rule(rule),
            }),
            (Self::Rest(r), Subject::Group(g)) => Some(Ok(match op {
                Op::SgGroupDelete => r.delete_group(g),
                _ => r.create_group(g),
            })),
            (Self::Neutron(n), Subject::Group(g)) => Some(match op {
                Op::SgGroupDelete => n.delete_group(g),
                _ => Ok(n.create_group(g)),
            }),
            (Self::Southbound(_), _) => None,
        }
    }

    /// A successful answer to `op` on `s`: a target that chooses ids learns them here. `Err`
    /// is a failure kind (an answer without the id it must carry).
    pub fn answered(&self, op: Op, s: &Subject, body: &[u8]) -> Result<(), String> {
        match (self, op, s) {
            (Self::Neutron(n), Op::Create, Subject::Port(p)) => n.answered_create(p, body),
            (Self::Neutron(n), Op::Delete, Subject::Port(p)) => {
                n.deleted(p);
                Ok(())
            }
            (Self::Neutron(n), Op::SgRuleAdd, Subject::Rule(r)) => n.answered_rule(r, body),
            (Self::Neutron(n), Op::SgRuleDelete, Subject::Rule(r)) => {
                n.rule_deleted(r);
                Ok(())
            }
            (Self::Neutron(n), Op::SgGroupCreate, Subject::Group(g)) => n.answered_group(g, body),
            (Self::Neutron(n), Op::SgGroupDelete, Subject::Group(g)) => {
                n.group_deleted(g);
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
    s: &Subject,
    neighbors: &[Ipv4Addr],
) -> Result<(), String> {
    if let Target::Southbound(sb) = target {
        let p = s.port().ok_or("no_call")?;
        return sb.apply(op, p, neighbors).await;
    }
    let call = target.call(op, s).ok_or("no_call")??;
    let body = conn.send_for_body(&call).await?;
    target.answered(op, s, &body)
}
