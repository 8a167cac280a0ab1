//! A standalone fleet exports its events as JSON lines over TCP on loopback.

mod common;

use std::time::Duration;

use fake_agent::AgentConfig;
use fake_agent::sample::{self, JoinIds};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

#[tokio::test]
async fn events_arrive_as_json_lines_with_an_aligned_clock() {
    let mut fleet = common::fleet([127, 2, 30, 1], 2, AgentConfig::default()).await;
    let addr = fleet.export_events("127.0.0.1:0".parse().unwrap(), 1024).await.unwrap();
    assert!(
        fleet.export_events("10.1.2.3:0".parse().unwrap(), 1024).await.is_err(),
        "loopback only"
    );

    let mut lines = BufReader::new(TcpStream::connect(addr).await.unwrap()).lines();
    let hello: serde_json::Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["agents"], 2);
    let epoch_ns = hello["epoch_monotonic_ns"].as_u64().unwrap();
    assert!(epoch_ns <= fake_agent::clock::monotonic_ns());

    let agent = &fleet.agents()[1];
    let mut c = common::client(agent.addr()).await;
    let before = fake_agent::clock::monotonic_ns();
    common::push_v2(&mut c, sample::port_joining_subnet(agent.ip(), 5, 2, 1))
        .await
        .unwrap();
    let after = fake_agent::clock::monotonic_ns();

    let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let e: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(e["type"], "event");
    assert_eq!(e["agent"], 1);
    assert_eq!(e["host_ip"], agent.ip().to_string());
    assert_eq!(e["rpc"], "PushGoalStatesStream");
    assert_eq!(e["port_ids"][0], JoinIds::new().port);
    assert_eq!(e["neighbor_ids"].as_array().unwrap().len(), 5);
    assert_eq!(e["counts"]["neighbor"], 5);
    // Mapped onto this process's monotonic clock, the arrival lies within the push.
    let arrived_ns = epoch_ns + e["arrived_us"].as_u64().unwrap() * 1000;
    assert!(
        arrived_ns + 1000 >= before && arrived_ns <= after,
        "{before} <= {arrived_ns} <= {after}"
    );
    assert!(e["completed_us"].as_u64() >= e["arrived_us"].as_u64());
}

/// A client that stops reading costs the fleet at most its buffer: the rest is dropped, and
/// once the client reads again it is told how many.
#[tokio::test]
async fn a_client_that_stops_reading_is_told_what_it_missed() {
    let mut fleet = common::fleet([127, 2, 31, 1], 1, AgentConfig::default()).await;
    let addr = fleet.export_events("127.0.0.1:0".parse().unwrap(), 2).await.unwrap();
    // A small receive window, so that the socket holds little of what is not read.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut lines = BufReader::new(stream).lines();
    assert!(lines.next_line().await.unwrap().unwrap().contains("hello"));
    // 40 events of 10,000 neighbor ids (about 400 kB of JSON each), none read meanwhile.
    let agent = &fleet.agents()[0];
    let mut c = common::client(agent.addr()).await;
    let pushes = 40;
    for _ in 0..pushes {
        common::push_v2(&mut c, sample::port_joining_subnet(agent.ip(), 10_000, 2, 1))
            .await
            .unwrap();
    }
    let (mut events, mut dropped) = (0u64, 0u64);
    while events + dropped < pushes {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("a line within 10 s")
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        match v["type"].as_str() {
            Some("event") => events += 1,
            Some("dropped") => dropped = v["count"].as_u64().unwrap(),
            other => panic!("unexpected line type {other:?}"),
        }
    }
    assert!(dropped > 0, "{events} events, none dropped");
    assert_eq!(events + dropped, pushes);
}

/// The harness's client: it learns the fleet's hosts from the hello, estimates the clock
/// offset within the bound it states (checked against the exact offset, which two processes on
/// one host can read from their shared monotonic clock), hands back events on its own clock,
/// and says when the fleet goes away.
#[tokio::test]
async fn a_remote_client_aligns_clocks_and_reads_events_back() {
    use fake_agent::remote::{ClockOptions, FleetMessage, RemoteFleet};
    let mut fleet = common::fleet([127, 2, 31, 1], 3, AgentConfig::default()).await;
    let addr = fleet.export_events("127.0.0.1:0".parse().unwrap(), 1024).await.unwrap();
    let anchor = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let opts = ClockOptions {
        initial_probes: 8,
        every: Duration::from_millis(50),
    };
    let mut remote = RemoteFleet::connect(addr, anchor, opts, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(remote.hello.schema, 2);
    assert_eq!(remote.hello.port, Some(fleet.agents()[0].addr().port()));
    assert_eq!(
        remote.hello.hosts,
        fleet.agents().iter().map(|a| a.ip()).collect::<Vec<_>>()
    );
    let clock = remote.clock();
    let exact = remote.same_host_offset_us();
    assert_eq!(clock.probes, 8);
    assert!(
        clock.uncertainty_us > 0.0 && clock.uncertainty_us < 50_000.0,
        "{clock:?}"
    );
    // The fleet started before the anchor: its epoch lies at a negative offset.
    assert!(exact < 0.0, "{exact}");
    assert!(
        (clock.offset_us - exact).abs() <= clock.uncertainty_us + 1.0,
        "estimate {} ± {} against exact {exact}",
        clock.offset_us,
        clock.uncertainty_us
    );

    let agent = &fleet.agents()[2];
    let mut c = common::client(agent.addr()).await;
    let before = std::time::Instant::now();
    common::push_v2(&mut c, sample::port_joining_subnet(agent.ip(), 5, 2, 1))
        .await
        .unwrap();
    let after = std::time::Instant::now();
    let e = loop {
        match tokio::time::timeout(Duration::from_secs(5), remote.messages.recv())
            .await
            .unwrap()
        {
            Some(FleetMessage::Event(e)) if !e.is_empty() => break e,
            Some(FleetMessage::Event(_)) => continue,
            other => panic!("expected an event, got {other:?}"),
        }
    };
    assert_eq!((e.agent, e.host_ip), (2, agent.ip()));
    assert_eq!(e.port_ids.iter().next(), Some(JoinIds::new().port.as_str()));
    assert_eq!(e.neighbor_ids.len(), 5);
    let slack = Duration::from_micros(clock.uncertainty_us as u64 + 1_000);
    assert!(
        e.arrived + slack >= before && e.arrived <= after + slack,
        "arrived {:?} after the push began, which took {:?}",
        e.arrived.saturating_duration_since(before),
        after - before
    );
    // Probes go on during the run.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(remote.clock().probes > 8, "{:?}", remote.clock());

    fleet.shutdown(Duration::from_secs(1)).await;
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match remote.messages.recv().await {
                Some(FleetMessage::Closed(why)) => return why,
                Some(_) => continue,
                None => panic!("the stream ended without saying so"),
            }
        }
    })
    .await
    .unwrap();
    assert!(end.is_none(), "{end:?}");
}
