//! Helpers shared by the fleet integration tests: start fleets, dial agents, send raw bytes.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};

use alcor_schema::GoalStateOperationReply;
use alcor_schema::codec::RawClientCodec;
use alcor_schema::goal_state_provisioner_client::GoalStateProvisionerClient;
use bytes::Bytes;
use fake_agent::{AgentConfig, Fleet, FleetConfig};
use tonic::Status;
use tonic::transport::Channel;

/// Starts `count` agents from `base` on free ports (tests run in parallel; each uses its own
/// base address).
pub async fn fleet(base: [u8; 4], count: usize, cfg: AgentConfig) -> Fleet {
    let fleet_cfg = FleetConfig {
        count,
        base_ip: Ipv4Addr::from(base),
        port: 0,
        connections_per_agent: 2,
        ..Default::default()
    };
    Fleet::start(&fleet_cfg, cfg).await.expect("fleet starts")
}

/// A channel to `addr`.
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("agent accepts connections")
}

/// A generated client to `addr` that may send messages of any size.
pub async fn client(addr: SocketAddr) -> GoalStateProvisionerClient<Channel> {
    GoalStateProvisionerClient::new(channel(addr).await).max_encoding_message_size(usize::MAX)
}

/// Pushes one GoalStateV2 the way NCM does: a new stream, one message, half-close, one reply.
pub async fn push_v2(
    client: &mut GoalStateProvisionerClient<Channel>,
    gs: alcor_schema::GoalStateV2,
) -> Result<GoalStateOperationReply, Status> {
    let mut replies = client
        .push_goal_states_stream(tokio_stream::iter([gs]))
        .await?
        .into_inner();
    let reply = replies.message().await?.ok_or_else(|| Status::internal("no reply"))?;
    assert!(replies.message().await?.is_none(), "exactly one reply per stream");
    Ok(reply)
}

/// Sends `bytes` on `path` as a unary call (`stream` false) or as the one message of a stream.
pub async fn send_raw(
    addr: SocketAddr,
    path: &'static str,
    bytes: Bytes,
    stream: bool,
) -> Result<GoalStateOperationReply, Status> {
    let mut grpc = tonic::client::Grpc::new(channel(addr).await);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    if stream {
        let req = tonic::Request::new(tokio_stream::iter([bytes]));
        let mut replies = grpc.streaming(req, path, RawClientCodec).await?.into_inner();
        replies.message().await?.ok_or_else(|| Status::internal("no reply"))
    } else {
        Ok(grpc
            .unary(tonic::Request::new(bytes), path, RawClientCodec)
            .await?
            .into_inner())
    }
}

pub const PATH_V1: &str = "/alcor.schema.GoalStateProvisioner/PushNetworkResourceStates";
pub const PATH_V2: &str = "/alcor.schema.GoalStateProvisioner/PushGoalStatesStream";
