//! The push path measured against its own ceiling. Hosts are trivial GoalStateProvisioner
//! servers on loopback that answer at once, so nothing but gRPC is measured:
//!
//! - `unary ceiling`: a plain tonic client calling `PushNetworkResourceStates` (empty goal
//!   state) with a fixed number of calls in flight, spread over the hosts;
//! - `stream ceiling`: the same with `PushGoalStatesStream`, one message per stream, as NCM uses;
//! - `ncm push`: the reference control plane's pusher ([`control_plane::Ncm`]) pushing one
//!   message to every host per "create", as a port create in `alcor` fan-out does, with as many
//!   calls in flight. Its RPC/s is stated as a fraction of the stream ceiling.
//!
//! Each figure is the median of three 4 s rounds; all three run in the same round, in turn.
//!
//! Run: `cargo bench -p benches --bench push_ceiling` (optionally `-- 100 1000` for host counts).

use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alcor_schema::goal_state_provisioner_client::GoalStateProvisionerClient;
use alcor_schema::goal_state_provisioner_server::{GoalStateProvisioner, GoalStateProvisionerServer};
use alcor_schema::{
    GoalState, GoalStateOperationReply, GoalStateV2, HostRequest, HostRequestReply, NeighborRulesRequest,
};
use control_plane::{HostMessage, MessageCounts, Ncm, PushConfig};
use futures_util::Stream;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status, Streaming};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Calls in flight, for every client alike.
const IN_FLIGHT: usize = 256;
const ROUND: Duration = Duration::from_secs(4);
const ROUNDS: usize = 3;

/// A host that answers every push at once.
struct Trivial;

type Replies = Pin<Box<dyn Stream<Item = Result<GoalStateOperationReply, Status>> + Send>>;

#[tonic::async_trait]
impl GoalStateProvisioner for Trivial {
    async fn push_network_resource_states(
        &self,
        _: Request<GoalState>,
    ) -> Result<Response<GoalStateOperationReply>, Status> {
        Ok(Response::new(GoalStateOperationReply::default()))
    }

    type PushGoalStatesStreamStream = Replies;

    async fn push_goal_states_stream(
        &self,
        request: Request<Streaming<GoalStateV2>>,
    ) -> Result<Response<Replies>, Status> {
        let mut inbound = request.into_inner();
        // Read the one message, answer it, end the stream: what an agent does.
        let reply = futures_util::stream::once(async move {
            inbound.message().await?;
            Ok(GoalStateOperationReply::default())
        });
        Ok(Response::new(Box::pin(reply)))
    }

    async fn request_goal_states(&self, _: Request<HostRequest>) -> Result<Response<HostRequestReply>, Status> {
        Err(Status::unimplemented("not a controller"))
    }

    async fn push_goalstates(
        &self,
        _: Request<NeighborRulesRequest>,
    ) -> Result<Response<GoalStateOperationReply>, Status> {
        Err(Status::unimplemented("not an Arion master"))
    }
}

async fn serve(hosts: &[Ipv4Addr]) {
    for ip in hosts {
        let addr = SocketAddr::from((*ip, 50001));
        let listener = tokio::net::TcpListener::bind(addr).await.expect("listen");
        tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = Server::builder()
                .add_service(GoalStateProvisionerServer::new(Trivial))
                .serve_with_incoming(incoming)
                .await;
        });
    }
}

/// Runs `loops` loops of `call` (given the loop's running count) for one round; returns what
/// the calls returned, summed, per second.
async fn rate<F, Fut>(loops: usize, call: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let call = Arc::new(call);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..loops {
        let (call, done, stop) = (call.clone(), done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = k;
            while !stop.load(Ordering::Relaxed) {
                done.fetch_add(call(i).await, Ordering::Relaxed);
                i += loops;
            }
        }));
    }
    tokio::time::sleep(ROUND).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    n as f64 / secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn measure(hosts: usize, base: Ipv4Addr) {
    let ips = fake_agent::fleet::host_ips(base, hosts).expect("loopback range");
    serve(&ips).await;
    // Two channels per host, as NCM opens by default.
    let mut clients = Vec::new();
    for ip in &ips {
        for _ in 0..2 {
            let ch = Channel::from_shared(format!("http://{ip}:50001"))
                .expect("uri")
                .connect()
                .await
                .expect("connect");
            clients.push(GoalStateProvisionerClient::new(ch));
        }
    }
    let clients = Arc::new(clients);
    let ncm = Ncm::new(PushConfig {
        agent_port: 50001,
        max_concurrent_pushes: IN_FLIGHT,
        ..Default::default()
    });
    let message = |ip: Ipv4Addr| HostMessage {
        host: ip,
        bytes: bytes::Bytes::new(),
        counts: MessageCounts::default(),
        vpc: None,
    };
    // Warm every path once.
    ncm.push_all(ips.iter().map(|ip| message(*ip)).collect()).await;
    let (mut unary, mut stream, mut pushed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let c = clients.clone();
        unary.push(
            rate(IN_FLIGHT, move |i| {
                let mut client = c[i % c.len()].clone();
                async move { u64::from(client.push_network_resource_states(GoalState::default()).await.is_ok()) }
            })
            .await,
        );
        let c = clients.clone();
        stream.push(
            rate(IN_FLIGHT, move |i| {
                let mut client = c[i % c.len()].clone();
                async move {
                    let Ok(r) = client
                        .push_goal_states_stream(futures_util::stream::iter([GoalStateV2::default()]))
                        .await
                    else {
                        return 0;
                    };
                    u64::from(r.into_inner().message().await.is_ok_and(|m| m.is_some()))
                }
            })
            .await,
        );
        // NCM: each loop is one create's push to every host, so IN_FLIGHT / hosts loops keep
        // about IN_FLIGHT calls in flight (at least one create at a time).
        let creates = (IN_FLIGHT / hosts).max(1);
        let (ncm, ips) = (ncm.clone(), Arc::new(ips.clone()));
        pushed.push(
            rate(creates, move |_| {
                let (ncm, msgs) = (ncm.clone(), ips.iter().map(|ip| message(*ip)).collect());
                async move { ncm.push_all(msgs).await.iter().filter(|r| r.ok).count() as u64 }
            })
            .await,
        );
    }
    let (u, s, p) = (median(unary), median(stream), median(pushed));
    println!(
        "{hosts:>5} hosts | unary ceiling {u:>8.0} RPC/s | stream ceiling {s:>8.0} RPC/s | ncm push {p:>8.0} RPC/s = {:.0} % of the stream ceiling ({:.1} creates/s in alcor fan-out)",
        p / s * 100.0,
        p / hosts as f64
    );
}

fn main() {
    let hosts: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let hosts = if hosts.is_empty() { vec![100, 1000] } else { hosts };
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("in flight: {IN_FLIGHT} calls; {ROUNDS} rounds of {ROUND:?}, medians");
    for (k, h) in hosts.iter().enumerate() {
        let base = Ipv4Addr::new(127, 40 + k as u8, 0, 1);
        rt.block_on(measure(*h, base));
    }
}
