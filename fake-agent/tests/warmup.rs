//! NCM warms channels up with empty GoalStateV2 messages on streams it never half-closes, and a
//! caller may open a stream and send nothing. Neither may leave tasks behind in the agents.

mod common;

use std::time::{Duration, Instant};

use alcor_schema::GoalStateV2;
use alcor_schema::goal_state_provisioner_client::GoalStateProvisionerClient;
use fake_agent::{AgentConfig, Fleet};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

/// The fleet runs in a runtime of its own so that its task count is the agents' alone.
fn fleet_runtime(base: [u8; 4], cfg: AgentConfig) -> (tokio::runtime::Runtime, Fleet) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fleet = rt.block_on(common::fleet(base, 1, cfg));
    (rt, fleet)
}

/// Waits until the task count stops changing (tasks end shortly after their stream does).
async fn settled_tasks(rt: &tokio::runtime::Handle) -> usize {
    let mut last = rt.metrics().num_alive_tasks();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = rt.metrics().num_alive_tasks();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// One warm-up: a stream with one empty message that the caller keeps open. Returns the sender,
/// which the caller must keep alive so that the stream is never half-closed.
async fn warm_up(client: &mut GoalStateProvisionerClient<tonic::transport::Channel>) -> mpsc::Sender<GoalStateV2> {
    let (tx, rx) = mpsc::channel(1);
    tx.send(GoalStateV2::default()).await.unwrap();
    let mut replies = client
        .push_goal_states_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().expect("a reply to the warm-up");
    assert!(reply.operation_statuses.is_empty());
    assert!(
        replies.message().await.unwrap().is_none(),
        "the agent finishes the stream itself"
    );
    tx
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_thousand_unclosed_warm_ups_leave_no_tasks() {
    let (rt, fleet) = fleet_runtime([127, 2, 20, 1], AgentConfig::default());
    client_runtime().block_on(async {
        let mut client = common::client(fleet.agents()[0].addr()).await;
        let mut open = Vec::new();
        for _ in 0..100 {
            open.push(warm_up(&mut client).await);
        }
        let after_100 = settled_tasks(rt.handle()).await;
        for _ in 0..900 {
            open.push(warm_up(&mut client).await);
        }
        let after_1000 = settled_tasks(rt.handle()).await;
        assert_eq!(
            open.len(),
            1000,
            "every sender is still open: no stream was half-closed"
        );
        assert!(
            after_1000 <= after_100 + 5,
            "tasks grew from {after_100} to {after_1000}"
        );
        assert_eq!(fleet.in_flight(), 0);
        let stats = fleet.stats();
        assert_eq!((stats.messages, stats.empty_messages), (1000, 1000));
        drop(open);
    });
    rt.block_on(async move { fleet.shutdown(Duration::from_secs(2)).await });
}

#[test]
fn a_stream_without_a_message_ends_after_the_timeout() {
    let cfg = AgentConfig {
        first_message_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let (rt, fleet) = fleet_runtime([127, 2, 21, 1], cfg);
    client_runtime().block_on(async {
        let mut client = common::client(fleet.agents()[0].addr()).await;
        let (_tx, rx) = mpsc::channel::<GoalStateV2>(1);
        let started = Instant::now();
        let mut replies = client
            .push_goal_states_stream(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let e = replies.message().await.unwrap_err();
        assert_eq!(e.code(), Code::DeadlineExceeded);
        assert!(started.elapsed() >= Duration::from_millis(300));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(fleet.in_flight(), 0);
    });
    rt.block_on(async move { fleet.shutdown(Duration::from_secs(2)).await });
}
