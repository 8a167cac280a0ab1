//! The NCM's gRPC endpoint for agents (Alcor's NCM listens on 9016): `RequestGoalStates`.
//!
//! A request of type `AGENT_RESTARTED` (the host's IP in `source_ip`, else the caller's address)
//! is answered SUCCESS at once, and the host is then sent everything it should hold
//! ([`crate::Dpm::resync`]) over the usual push, as Alcor's NCM answers an on-demand request
//! and pushes the goal state apart. `ON_DEMAND` requests (a punted packet) are not served: they
//! are answered FAILURE ("not routable"). The push RPCs are the agents' and answer UNIMPLEMENTED.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use alcor_schema::goal_state_provisioner_server::GoalStateProvisioner;
use alcor_schema::host_request_reply::HostRequestOperationStatus;
use alcor_schema::{
    GoalState, GoalStateOperationReply, GoalStateV2, HostRequest, HostRequestReply, NeighborRulesRequest,
    OperationStatus, RequestType,
};
use tonic::{Request, Response, Status, Streaming};

use crate::api::{AppState, Stages};

/// Serves `RequestGoalStates` for the control plane whose state it holds.
#[derive(Debug, Clone)]
pub struct ResyncService {
    pub(crate) state: AppState,
}

impl ResyncService {
    /// Computes and pushes `host`'s whole state; false when it has no bound port.
    async fn resync(&self, host: Ipv4Addr) -> bool {
        let started = Instant::now();
        let (message, compute) = {
            let mut inner = self.state.lock();
            let inner = &mut *inner;
            let t = Instant::now();
            (inner.dpm.resync(&inner.store, host), t.elapsed())
        };
        let Some(message) = message else { return false };
        tracing::info!(%host, neighbors = message.counts.neighbors, ports = message.counts.ports, "resync of a restarted host");
        let stages = Stages {
            store: Default::default(),
            compute,
            encode: Default::default(),
        };
        self.state
            .push("resync", Vec::new(), started, stages, vec![message])
            .await;
        true
    }
}

#[tonic::async_trait]
impl GoalStateProvisioner for ResyncService {
    async fn push_network_resource_states(
        &self,
        _: Request<GoalState>,
    ) -> Result<Response<GoalStateOperationReply>, Status> {
        Err(Status::unimplemented(
            "the control plane pushes goal states; it takes none",
        ))
    }

    type PushGoalStatesStreamStream = tokio_stream::Empty<Result<GoalStateOperationReply, Status>>;

    async fn push_goal_states_stream(
        &self,
        _: Request<Streaming<GoalStateV2>>,
    ) -> Result<Response<Self::PushGoalStatesStreamStream>, Status> {
        Err(Status::unimplemented(
            "the control plane pushes goal states; it takes none",
        ))
    }

    async fn request_goal_states(&self, request: Request<HostRequest>) -> Result<Response<HostRequestReply>, Status> {
        let peer = match request.remote_addr().map(|a| a.ip()) {
            Some(IpAddr::V4(ip)) => Some(ip),
            _ => None,
        };
        let mut statuses = Vec::new();
        let mut hosts = Vec::new();
        for r in &request.get_ref().state_requests {
            let status = if r.request_type == RequestType::AgentRestarted as i32 {
                match r.source_ip.parse::<Ipv4Addr>().ok().or(peer) {
                    Some(host) => {
                        if !hosts.contains(&host) {
                            hosts.push(host);
                        }
                        OperationStatus::Success
                    }
                    None => OperationStatus::InvalidArg,
                }
            } else {
                OperationStatus::Failure
            };
            statuses.push(HostRequestOperationStatus {
                request_id: r.request_id.clone(),
                operation_status: status as i32,
            });
        }
        for host in hosts {
            let this = self.clone();
            tokio::spawn(async move {
                this.resync(host).await;
            });
        }
        Ok(Response::new(HostRequestReply {
            format_version: 1,
            operation_statuses: statuses,
            total_operation_time: 0,
        }))
    }

    async fn push_goalstates(
        &self,
        _: Request<NeighborRulesRequest>,
    ) -> Result<Response<GoalStateOperationReply>, Status> {
        Err(Status::unimplemented("PushGoalstates is Arion's"))
    }
}
