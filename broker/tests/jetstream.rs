//! Against a real nats-server started on loopback by [`LocalNats`]: what the MQ southbound
//! promises, kept or not. Without nats-server the test says it skipped, unless
//! ALCOR_SCALE_REQUIRE_NATS=1 (as `.ci/run` sets).

use std::net::Ipv4Addr;
use std::time::Duration;

use broker::server::{LocalNats, ServerError};
use broker::{BrokerConfig, Grouping, Settle};
use bytes::Bytes;
use futures_util::StreamExt;

async fn server(name: &str) -> Option<(LocalNats, std::path::PathBuf)> {
    let dir = std::env::temp_dir().join(format!("broker-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    match LocalNats::start(&dir).await {
        Ok(s) => Some((s, dir)),
        Err(ServerError::NotInstalled) if std::env::var("ALCOR_SCALE_REQUIRE_NATS").as_deref() != Ok("1") => {
            eprintln!("skipped: nats-server is not installed (Debian: nats-server)");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

const A: Ipv4Addr = Ipv4Addr::new(127, 8, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(127, 8, 0, 2);

async fn next(d: &mut broker::Deliveries) -> broker::Delivery {
    tokio::time::timeout(Duration::from_secs(10), d.next())
        .await
        .expect("a delivery within 10 s")
        .expect("the stream goes on")
        .expect("no error")
}

#[tokio::test]
async fn each_host_gets_its_own_goal_states_in_order_and_none_is_lost_across_a_restart() {
    let Some((nats, dir)) = server("order").await else {
        return;
    };
    for grouping in [Grouping::Vpc, Grouping::Host] {
        let cfg = BrokerConfig {
            url: Some(nats.url().to_owned()),
            grouping,
            stream: format!("GS_{grouping}"),
            prefix: format!("gs{grouping}"),
            ack_wait: Duration::from_millis(500),
            ..Default::default()
        };
        let b = broker::connect(&cfg).await.unwrap();
        // Published before any agent subscribed: kept for it.
        for (i, vpc) in ["vpc-1", "vpc-2", "vpc-1"].into_iter().enumerate() {
            b.publish(Some(vpc), A, Bytes::from(format!("a{i}"))).await.unwrap();
        }
        b.publish(Some("vpc-1"), B, Bytes::from_static(b"b0")).await.unwrap();
        assert_eq!(b.pending(A).await.ok(), None, "no consumer yet");

        let mut a = b.subscribe(A).await.unwrap();
        let first = next(&mut a).await;
        assert_eq!(first.payload, "a0", "{grouping}");
        assert!(first.published.is_some() && first.attempt == 1);
        assert_eq!(first.pending, 2, "two more wait for A, B's are not A's");
        first.settle(Settle::Ack).await.unwrap();
        let second = next(&mut a).await;
        assert_eq!(second.payload, "a1");
        // The agent "crashes" holding a1: never acknowledged, the subscription dropped.
        drop(second);
        drop(a);

        // Back: a1 comes again (after ack_wait), and a2 (fetched with it, maybe delivered
        // before); nothing of B's.
        let mut a = b.subscribe(A).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            let d = next(&mut a).await;
            got.push((String::from_utf8_lossy(&d.payload).to_string(), d.attempt));
            d.settle(Settle::Ack).await.unwrap();
        }
        got.sort();
        assert_eq!(got[0].0, "a1");
        assert!(got[0].1 >= 2, "redelivered: {got:?}");
        assert_eq!(got[1].0, "a2");
        let mut bs = b.subscribe(B).await.unwrap();
        let d = next(&mut bs).await;
        assert_eq!(d.payload, "b0");
        // Retry: delivered again at once.
        d.settle(Settle::Retry).await.unwrap();
        let d = next(&mut bs).await;
        assert_eq!((d.payload.as_ref(), d.attempt), (&b"b0"[..], 2));
        d.settle(Settle::Ack).await.unwrap();
        // Everything acknowledged: nothing waits (the ack is asynchronous to the count).
        let mut left = u64::MAX;
        for _ in 0..50 {
            left = b.pending(A).await.unwrap() + b.pending(B).await.unwrap();
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(left, 0);
    }
    nats.stop(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_megabytes_goal_state_passes_and_a_full_broker_refuses_rather_than_drops() {
    let Some((nats, dir)) = server("size").await else {
        return;
    };
    let cfg = BrokerConfig {
        url: Some(nats.url().to_owned()),
        max_bytes: 4 << 20,
        storage: broker::Storage::Memory,
        ..Default::default()
    };
    let b = broker::connect(&cfg).await.unwrap();
    let big = Bytes::from(vec![7u8; 3 << 20]);
    b.publish(Some("v"), A, big.clone()).await.unwrap();
    // 3 MiB more does not fit in 4: refused, and the first is still there.
    let e = b.publish(Some("v"), A, big.clone()).await.unwrap_err();
    assert!(e.to_string().contains("publish to alcor.gs.vpc.v.127-8-0-1"), "{e}");
    let mut a = b.subscribe(A).await.unwrap();
    let d = next(&mut a).await;
    assert_eq!(d.payload.len(), 3 << 20);
    d.settle(Settle::Ack).await.unwrap();
    // Acknowledged: room again.
    let mut ok = false;
    for _ in 0..50 {
        if b.publish(Some("v"), A, big.clone()).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "an acknowledged message frees its room");
    // An unreachable broker is named.
    drop(a);
    let url = nats.url().to_owned();
    nats.stop(Duration::from_secs(5)).await;
    let e = broker::connect(&BrokerConfig {
        url: Some(url.clone()),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains(&url), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}
