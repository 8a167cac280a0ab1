//! The `alcor.schema.GoalStateProvisioner` service of one agent, routed by hand over
//! [`RawRequestCodec`]: tonic's generated server decodes before the handler runs, and an agent
//! must report each message's size and time its own decoding.
//!
//! - `PushGoalStatesStream`: reads exactly one GoalStateV2, replies once and finishes the stream
//!   with OK, as the real agent does. A stream the caller leaves open (NCM's warm-up) ends with
//!   the reply; one that never sends a message ends after `first_message_timeout`.
//! - `PushNetworkResourceStates`: one GoalState in, one reply out.
//! - `RequestGoalStates`, `PushGoalstates` and anything else: UNIMPLEMENTED, as on the real agent.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use alcor_schema::GoalStateOperationReply;
use alcor_schema::codec::RawRequestCodec;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use tonic::codegen::{BoxFuture, StdError, http};
use tonic::server::{Grpc, NamedService, StreamingService, UnaryService};
use tonic::{Request, Response, Status, Streaming};

use crate::agent::{Agent, InFlight};
use crate::event::Rpc;

const PATH_V1: &str = "/alcor.schema.GoalStateProvisioner/PushNetworkResourceStates";
const PATH_V2: &str = "/alcor.schema.GoalStateProvisioner/PushGoalStatesStream";

fn grpc(agent: &Agent) -> Grpc<RawRequestCodec> {
    Grpc::new(RawRequestCodec).apply_max_message_size_config(Some(agent.config().max_message_size), None)
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<GoalStateOperationReply, Status>> + Send>>;

struct Unary(Arc<Agent>);

impl UnaryService<Bytes> for Unary {
    type Response = GoalStateOperationReply;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let agent = self.0.clone();
        Box::pin(async move {
            let _guard = InFlight::enter(&agent.shared.in_flight);
            agent
                .handle(Rpc::PushNetworkResourceStates, request.into_inner(), None)
                .await
                .map(Response::new)
        })
    }
}

struct Streamed(Arc<Agent>);

impl StreamingService<Bytes> for Streamed {
    type Response = GoalStateOperationReply;
    type ResponseStream = ReplyStream;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<Bytes>>) -> Self::Future {
        let agent = self.0.clone();
        let mut inbound = request.into_inner();
        let one = async move {
            let _guard = InFlight::enter(&agent.shared.in_flight);
            let wait = agent.config().first_message_timeout;
            let first = match tokio::time::timeout(wait, inbound.message()).await {
                Err(_) => return Some(Err(Status::deadline_exceeded(format!("no goal state within {wait:?}")))),
                Ok(Err(status)) => return Some(Err(status)),
                // The caller half-closed without sending anything: finish with OK and no reply.
                Ok(Ok(None)) => return None,
                Ok(Ok(Some(bytes))) => bytes,
            };
            // Further messages on this stream are not read, as on the real agent; the stream ends
            // with the reply whether or not the caller half-closes.
            Some(agent.handle(Rpc::PushGoalStatesStream, first, None).await)
        };
        let out: ReplyStream = Box::pin(stream::once(one).filter_map(std::future::ready));
        Box::pin(async move { Ok(Response::new(out)) })
    }
}

/// One request to `agent`.
fn serve<B>(agent: Arc<Agent>, req: http::Request<B>) -> BoxFuture<http::Response<tonic::body::Body>, Infallible>
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    let mut grpc = grpc(&agent);
    match req.uri().path() {
        PATH_V1 => Box::pin(async move { Ok(grpc.unary(Unary(agent), req).await) }),
        PATH_V2 => Box::pin(async move { Ok(grpc.streaming(Streamed(agent), req).await) }),
        _ => Box::pin(async move { Ok(status_only(tonic::Code::Unimplemented)) }),
    }
}

/// A response that is a gRPC status alone.
fn status_only(code: tonic::Code) -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::default());
    let headers = response.headers_mut();
    headers.insert(Status::GRPC_STATUS, (code as i32).into());
    headers.insert(http::header::CONTENT_TYPE, tonic::metadata::GRPC_CONTENT_TYPE);
    response
}

/// The `alcor.schema.GoalStateProvisioner` service a fleet's listener serves: one agent (its
/// own listener), or every agent behind one wildcard listener, each request going to the agent
/// whose address its connection was made to.
#[derive(Debug, Clone)]
pub enum FleetRoute {
    /// One agent.
    One(Arc<Agent>),
    /// Agents sorted by address.
    Many(Arc<Vec<Arc<Agent>>>),
}

impl NamedService for FleetRoute {
    const NAME: &'static str = alcor_schema::GOAL_STATE_PROVISIONER;
}

impl<B> tonic::codegen::Service<http::Request<B>> for FleetRoute
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match self {
            Self::One(a) => serve(a.clone(), req),
            Self::Many(agents) => {
                let local = req
                    .extensions()
                    .get::<tonic::transport::server::TcpConnectInfo>()
                    .and_then(|c| c.local_addr());
                let agent = match local.map(|a| a.ip()) {
                    Some(std::net::IpAddr::V4(ip)) => agents
                        .binary_search_by_key(&ip, |a| a.ip())
                        .ok()
                        .map(|i| agents[i].clone()),
                    _ => None,
                };
                match agent {
                    Some(a) => serve(a, req),
                    // Connected to an address of the host that no agent has.
                    None => Box::pin(async move { Ok(status_only(tonic::Code::Unavailable)) }),
                }
            }
        }
    }
}
