//! Faults set on real agents, seen from a controller's side of the connection: what each fault
//! does to a push, and that every fault is undone.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alcor_schema::OperationStatus;
use alcor_schema::goal_state_provisioner_server::{GoalStateProvisioner, GoalStateProvisionerServer};
use alcor_schema::{
    GoalState, GoalStateOperationReply, GoalStateV2, HostRequest, HostRequestReply, NeighborRulesRequest, RequestType,
};
use common::*;
use fake_agent::sample::port_joining_subnet;
use fake_agent::{AgentConfig, AgentFault, Delay, ErrorReply};
use tokio::sync::mpsc;
use tonic::{Code, Request, Response, Status, Streaming};

fn message(host: std::net::Ipv4Addr) -> GoalStateV2 {
    port_joining_subnet(host, 10, 2, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_failing_hosts_answer_as_declared_then_recover() {
    let fleet = fleet([127, 2, 9, 1], 2, AgentConfig::default()).await;
    let a = fleet.agents()[0].clone();
    let mut events = fleet.subscribe();
    let mut c = client(a.addr()).await;

    // Slow: every message takes at least the fixed delay, and says so in its reply.
    let slow = fleet.inject(&[0], AgentFault::Slow(Delay::Fixed(Duration::from_millis(150))), 1);
    let started = Instant::now();
    let reply = push_v2(&mut c, message(a.ip())).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert!(reply.message_total_operation_time >= 150_000, "{reply:?}");
    slow.clear();
    let started = Instant::now();
    push_v2(&mut c, message(a.ip())).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "the delay ends with the fault"
    );

    // Error as a status: every resource FAILURE, nothing applied, the event names the fault.
    let ports_before = a.state().counts().ports;
    let error = fleet.inject(
        &[0],
        AgentFault::Error {
            share: 1.0,
            reply: ErrorReply::Status,
        },
        1,
    );
    let mut gs = message(a.ip());
    gs.port_states.values_mut().for_each(|p| {
        p.configuration.as_mut().unwrap().id = "fresh-port".into();
    });
    let reply = push_v2(&mut c, gs.clone()).await.unwrap();
    assert!(!reply.operation_statuses.is_empty());
    assert!(
        reply
            .operation_statuses
            .iter()
            .all(|s| s.operation_status == OperationStatus::Failure as i32)
    );
    assert_eq!(
        a.state().counts().ports,
        ports_before,
        "a failed message applies nothing"
    );
    let ev = loop {
        let ev = events.recv().await.unwrap();
        if ev.error.is_some() {
            break ev;
        }
    };
    assert_eq!(ev.fault, Some("error"));
    assert_eq!(ev.port_ids.len(), 1, "the failed event still says what it carried");
    drop(error);
    // As a gRPC error.
    let grpc = fleet.inject(
        &[0],
        AgentFault::Error {
            share: 1.0,
            reply: ErrorReply::Grpc,
        },
        1,
    );
    assert_eq!(push_v2(&mut c, gs.clone()).await.unwrap_err().code(), Code::Internal);
    grpc.clear();
    push_v2(&mut c, gs).await.unwrap();
    assert!(a.state().port("fresh-port").is_some(), "applied once the fault is off");
    assert_eq!(a.fault_name(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_host_answers_nothing_until_the_fault_ends_and_a_partition_delivers_late() {
    let fleet = fleet([127, 2, 9, 11], 1, AgentConfig::default()).await;
    let a = fleet.agents()[0].clone();
    let mut c = client(a.addr()).await;
    push_v2(&mut c, message(a.ip())).await.unwrap();

    let hole = fleet.inject(&[0], AgentFault::Blackhole, 1);
    let call = tokio::spawn({
        let mut c = c.clone();
        let ip = a.ip();
        async move { push_v2(&mut c, message(ip)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished(), "no answer while blackholed");
    hole.clear();
    let r = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.unwrap_err().code(),
        Code::Unavailable,
        "held messages fail when it ends"
    );

    let part = fleet.inject(&[0], AgentFault::Partition, 1);
    let call = tokio::spawn({
        let mut c = c.clone();
        let ip = a.ip();
        async move { push_v2(&mut c, message(ip)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished(), "nothing gets through a partition");
    drop(part);
    let r = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .unwrap()
        .unwrap();
    assert!(r.is_ok(), "a healed partition delivers what was held: {r:?}");
}

/// A control plane that records the resync requests it gets.
struct Recorder(mpsc::UnboundedSender<HostRequest>);

#[tonic::async_trait]
impl GoalStateProvisioner for Recorder {
    async fn push_network_resource_states(
        &self,
        _: Request<GoalState>,
    ) -> Result<Response<GoalStateOperationReply>, Status> {
        Err(Status::unimplemented(""))
    }
    type PushGoalStatesStreamStream = tokio_stream::Empty<Result<GoalStateOperationReply, Status>>;
    async fn push_goal_states_stream(
        &self,
        _: Request<Streaming<GoalStateV2>>,
    ) -> Result<Response<Self::PushGoalStatesStreamStream>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn request_goal_states(&self, r: Request<HostRequest>) -> Result<Response<HostRequestReply>, Status> {
        let _ = self.0.send(r.into_inner());
        Ok(Response::new(HostRequestReply::default()))
    }
    async fn push_goalstates(
        &self,
        _: Request<NeighborRulesRequest>,
    ) -> Result<Response<GoalStateOperationReply>, Status> {
        Err(Status::unimplemented(""))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_host_refuses_then_returns_empty_and_asks_for_its_state() {
    let (tx, mut resyncs) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cp: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GoalStateProvisionerServer::new(Recorder(tx)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let fleet = fleet(
        [127, 2, 9, 21],
        2,
        AgentConfig {
            resync: Some(cp),
            ..Default::default()
        },
    )
    .await;
    let (a, b) = (fleet.agents()[0].clone(), fleet.agents()[1].clone());
    let mut c = client(a.addr()).await;
    push_v2(&mut c, message(a.ip())).await.unwrap();
    let mut cb = client(b.addr()).await;
    push_v2(&mut cb, message(b.ip())).await.unwrap();
    assert_eq!(a.state().counts().ports, 1);

    let crash = fleet.inject(&[0], AgentFault::Crash, 1);
    assert_eq!(a.state().counts().ports, 0, "a crash loses the host's state");
    // The open connection is reset; a new one is refused.
    assert!(push_v2(&mut c, message(a.ip())).await.is_err());
    let refused = tokio::net::TcpStream::connect(a.addr()).await;
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused,
        "a crashed host does not listen"
    );
    // Its neighbor is untouched.
    push_v2(&mut cb, message(b.ip())).await.unwrap();
    assert_eq!(b.state().counts().ports, 1);
    crash.clear();

    let asked = tokio::time::timeout(Duration::from_secs(5), resyncs.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(asked.state_requests.len(), 1);
    assert_eq!(asked.state_requests[0].request_type, RequestType::AgentRestarted as i32);
    assert_eq!(asked.state_requests[0].source_ip, a.ip().to_string());
    // Back, empty, and programmable again on a new connection.
    let mut c = client(a.addr()).await;
    push_v2(&mut c, message(a.ip())).await.unwrap();
    assert_eq!(a.state().counts().ports, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_drops_connections_but_keeps_state() {
    let fleet = fleet([127, 2, 9, 31], 1, AgentConfig::default()).await;
    let a = fleet.agents()[0].clone();
    let mut c = client(a.addr()).await;
    push_v2(&mut c, message(a.ip())).await.unwrap();
    let reset = fleet.inject(&[0], AgentFault::Reset, 1);
    let err = push_v2(&mut c, message(a.ip())).await.unwrap_err();
    // The peer's RST reaches a client reading as ECONNRESET and one writing as EPIPE, whichever
    // it was doing when it came (CI, session 9: BrokenPipe).
    let e = format!("{err:?}");
    assert!(e.contains("ConnectionReset") || e.contains("BrokenPipe"), "{err:?}");
    drop(reset);
    assert_eq!(a.state().counts().ports, 1, "a reset keeps what the host holds");
    let mut c = client(a.addr()).await;
    push_v2(&mut c, message(a.ip())).await.unwrap();
}
