//! A fleet of real gRPC agents on loopback, driven by a tonic client as a controller would.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use alcor_schema::{
    GoalState, GoalStateV2, HostRequest, NeighborRulesRequest, NeighborType, OperationStatus, OperationType,
    ResourceType,
};
use common::*;
use fake_agent::sample::{self, JoinIds};
use fake_agent::{AgentConfig, CostModel, Fleet, FleetConfig, ListenMode, Rpc};
use prost::Message;
use tonic::Code;

fn linear() -> CostModel {
    "linear:port_us=200,neighbor_us=2,message_us=100".parse().unwrap()
}

/// The message the other hosts get when a port joins: the subnet and the new neighbor.
fn neighbor_update(op: OperationType, port_host: Ipv4Addr) -> GoalStateV2 {
    let ids = JoinIds::new();
    let mut gs = GoalStateV2::default();
    gs.subnet_states.insert(
        ids.subnet.clone(),
        sample::subnet(OperationType::Info, &ids.subnet, &ids.vpc, "10.0.0.0/8", 1001),
    );
    gs.neighbor_states.insert(
        alcor_schema::neighbor_key(NeighborType::L2, &ids.port),
        sample::neighbor(
            op,
            NeighborType::L2,
            &ids.port,
            &ids.vpc,
            &ids.subnet,
            sample::ip(0),
            &sample::mac(0),
            port_host,
        ),
    );
    gs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_with_1000_neighbors_is_applied_timed_and_deleted() {
    let fleet = fleet(
        [127, 2, 1, 1],
        3,
        AgentConfig {
            cost_model: linear(),
            ..Default::default()
        },
    )
    .await;
    let mut events = fleet.subscribe();
    let agents = fleet.agents();
    let host0 = agents[0].ip();
    let ids = JoinIds::new();

    // The port's host: port, VPC, subnet, SG (2 rules), DHCP, 1,000 neighbors, plus the port
    // itself as a neighbor on this host (the real agent skips local neighbors).
    let mut gs = sample::port_joining_subnet(host0, 1000, 40, 2);
    let own = neighbor_update(OperationType::Create, host0).neighbor_states;
    gs.neighbor_states.extend(own);
    let bytes0 = gs.encoded_len() as u64;
    let mut c0 = client(agents[0].addr()).await;
    let t = Instant::now();
    let reply = push_v2(&mut c0, gs).await.unwrap();
    let round_trip = t.elapsed();

    // V2 replies carry PORT and DHCP statuses, none for neighbors.
    assert_eq!(reply.format_version, 0);
    let types: Vec<_> = reply.operation_statuses.iter().map(|s| s.resource_type()).collect();
    assert_eq!(types, [ResourceType::Port, ResourceType::Dhcp]);
    for s in &reply.operation_statuses {
        assert_eq!(s.operation_status(), OperationStatus::Success);
        assert_eq!(s.operation_type(), OperationType::Create);
        assert!(s.state_elapse_time > 0);
        assert_eq!(s.network_configuration_time, 0);
    }
    let port = &reply.operation_statuses[0];
    assert_eq!(port.resource_id, ids.port);
    assert_eq!(port.dataplane_programming_time, 200);
    assert!(port.state_elapse_time >= 200);
    // 100 per message + 200 for the port + 2 per applied neighbor (the local one is skipped).
    let simulated_us = 100 + 200 + 2 * 1000;
    assert!(
        reply.message_total_operation_time >= simulated_us,
        "{}",
        reply.message_total_operation_time
    );
    assert!(
        round_trip >= Duration::from_micros(simulated_us as u64),
        "the agent really waited: {round_trip:?}"
    );

    // The other hosts learn the new neighbor.
    for a in &agents[1..] {
        let mut c = client(a.addr()).await;
        let reply = push_v2(&mut c, neighbor_update(OperationType::Create, host0))
            .await
            .unwrap();
        assert!(reply.operation_statuses.is_empty(), "no neighbor statuses in V2");
        assert!(reply.message_total_operation_time >= 102);
    }

    {
        let s = agents[0].state();
        let counts = s.counts();
        assert_eq!((counts.ports, counts.l2_neighbors, counts.l3_neighbors), (1, 1000, 0));
        assert_eq!(
            (counts.vpcs, counts.subnets, counts.security_groups, counts.dhcp),
            (1, 1, 1, 1)
        );
        assert_eq!(s.security_group(&ids.sg).unwrap().security_group_rules.len(), 2);
        assert_eq!(s.port(&ids.port).unwrap().mac_address, sample::mac(0));
        assert!(
            s.neighbor(NeighborType::L2, &ids.port).is_none(),
            "local neighbor skipped"
        );
        let n = s.neighbor(NeighborType::L2, &sample::uuid(3, 7)).expect("neighbor 7");
        assert_eq!(n.host_ip, Some(Ipv4Addr::new(127, 1, 0, 1 + 7)));
        assert_eq!(n.fixed_ips[0].ip, Some(sample::ip(7)));
        assert_eq!(s.name(n.fixed_ips[0].subnet), ids.subnet);
    }
    for a in &agents[1..] {
        let s = a.state();
        assert_eq!(s.counts().l2_neighbors, 1);
        assert_eq!(s.neighbor(NeighborType::L2, &ids.port).unwrap().host_ip, Some(host0));
    }

    // Events: one per message, with what it carried.
    let e0 = events.recv().await.unwrap();
    assert_eq!((e0.agent, e0.host_ip, e0.rpc), (0, host0, Rpc::PushGoalStatesStream));
    assert_eq!(e0.bytes, bytes0);
    assert_eq!(e0.port_ids.iter().collect::<Vec<_>>(), [ids.port.as_str()]);
    assert_eq!(e0.neighbor_ids.len(), 1001);
    assert_eq!((e0.counts.neighbor, e0.counts.port, e0.counts.sg_rule), (1001, 1, 2));
    assert_eq!(e0.skipped_local_neighbors, 1);
    assert_eq!(e0.simulated_us, simulated_us as u64);
    assert!(e0.completed >= e0.arrived + Duration::from_micros(simulated_us as u64));
    for i in 1..3 {
        let e = events.recv().await.unwrap();
        assert_eq!(e.agent, i);
        assert_eq!(e.neighbor_ids.iter().collect::<Vec<_>>(), [ids.port.as_str()]);
    }

    // Delete the port everywhere.
    let mut del = GoalStateV2::default();
    del.subnet_states.insert(
        ids.subnet.clone(),
        sample::subnet(OperationType::Info, &ids.subnet, &ids.vpc, "10.0.0.0/8", 1001),
    );
    del.port_states.insert(
        ids.port.clone(),
        sample::port(
            OperationType::Delete,
            &ids.port,
            &ids.vpc,
            &ids.subnet,
            sample::ip(0),
            &sample::mac(0),
            &[],
        ),
    );
    let dhcp_id = sample::uuid(5, 0);
    del.dhcp_states.insert(
        dhcp_id.clone(),
        sample::dhcp(
            OperationType::Delete,
            &dhcp_id,
            &ids.subnet,
            &sample::mac(0),
            sample::ip(0),
        ),
    );
    for n in 1..=1000u64 {
        let id = sample::uuid(3, n);
        del.neighbor_states.insert(
            alcor_schema::neighbor_key(NeighborType::L2, &id),
            sample::neighbor(
                OperationType::Delete,
                NeighborType::L2,
                &id,
                &ids.vpc,
                &ids.subnet,
                sample::ip(n),
                &sample::mac(n),
                Ipv4Addr::new(127, 1, 0, 1),
            ),
        );
    }
    let reply = push_v2(&mut c0, del).await.unwrap();
    assert!(
        reply
            .operation_statuses
            .iter()
            .all(|s| s.operation_type() == OperationType::Delete && s.operation_status() == OperationStatus::Success)
    );
    assert_eq!(reply.operation_statuses.len(), 2);
    for a in &agents[1..] {
        let mut c = client(a.addr()).await;
        push_v2(&mut c, neighbor_update(OperationType::Delete, host0))
            .await
            .unwrap();
    }
    let c = agents[0].state().counts();
    assert_eq!((c.ports, c.l2_neighbors, c.dhcp), (0, 0, 0));
    for a in &agents[1..] {
        assert_eq!(a.state().counts().l2_neighbors, 0);
    }
    let stats = fleet.stats();
    assert_eq!(stats.messages, 6);
    assert_eq!(stats.neighbor_states, 1001 + 1000 + 4);
    assert_eq!(fleet.in_flight(), 0);
}

#[tokio::test]
async fn v1_reply_reports_neighbors_too() {
    let fleet = fleet([127, 2, 2, 1], 1, AgentConfig::default()).await;
    let ids = JoinIds::new();
    let gs = GoalState {
        subnet_states: vec![sample::subnet(
            OperationType::Info,
            &ids.subnet,
            &ids.vpc,
            "10.0.0.0/8",
            7,
        )],
        port_states: vec![sample::port(
            OperationType::Create,
            &ids.port,
            &ids.vpc,
            &ids.subnet,
            sample::ip(0),
            &sample::mac(0),
            &[],
        )],
        neighbor_states: (1..=3u64)
            .map(|n| {
                sample::neighbor(
                    OperationType::Create,
                    NeighborType::L3,
                    &sample::uuid(3, n),
                    &ids.vpc,
                    &ids.subnet,
                    sample::ip(n),
                    &sample::mac(n),
                    Ipv4Addr::new(127, 9, 0, 1),
                )
            })
            .collect(),
        ..Default::default()
    };
    let mut c = client(fleet.agents()[0].addr()).await;
    let reply = c.push_network_resource_states(gs).await.unwrap().into_inner();
    let types: Vec<_> = reply.operation_statuses.iter().map(|s| s.resource_type()).collect();
    assert_eq!(
        types,
        [
            ResourceType::Port,
            ResourceType::Neighbor,
            ResourceType::Neighbor,
            ResourceType::Neighbor
        ]
    );
    assert!(
        reply
            .operation_statuses
            .iter()
            .all(|s| s.operation_status() == OperationStatus::Success)
    );
    let c = fleet.agents()[0].state().counts();
    assert_eq!((c.ports, c.l2_neighbors, c.l3_neighbors), (1, 0, 3));
}

#[tokio::test]
async fn other_rpcs_are_unimplemented() {
    let fleet = fleet([127, 2, 3, 1], 1, AgentConfig::default()).await;
    let mut c = client(fleet.agents()[0].addr()).await;
    let e = c.request_goal_states(HostRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    let e = c.push_goalstates(NeighborRulesRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    // The agent still serves goal states afterwards.
    assert!(push_v2(&mut c, GoalStateV2::default()).await.is_ok());
}

#[tokio::test]
async fn malformed_bytes_get_a_grpc_error_and_the_agent_lives_on() {
    let fleet = fleet([127, 2, 4, 1], 1, AgentConfig::default()).await;
    let addr = fleet.agents()[0].addr();
    let garbage: &[&[u8]] = &[
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        // Field 2 (a map) sent as a varint: the wrong wire type.
        &[0x10, 0x01],
        // A length-delimited field that claims more bytes than follow.
        &[0x1a, 0x7f, 0x01],
    ];
    for bytes in garbage {
        for (path, stream) in [(PATH_V2, true), (PATH_V1, false)] {
            let e = send_raw(addr, path, bytes::Bytes::copy_from_slice(bytes), stream)
                .await
                .unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{path}: {e:?}");
            assert!(e.message().contains("does not decode"), "{e:?}");
        }
    }
    assert_eq!(fleet.stats().decode_errors, 6);
    let mut c = client(addr).await;
    let ok = push_v2(&mut c, sample::port_joining_subnet(fleet.agents()[0].ip(), 3, 1, 0))
        .await
        .unwrap();
    assert_eq!(ok.operation_statuses.len(), 2);
}

#[tokio::test]
async fn oversized_messages_are_refused_and_the_default_limit_is_large() {
    // A 1-port + 1,000,000-neighbor goal state (about 280 MB) fits.
    assert!(AgentConfig::default().max_message_size >= 300 << 20);
    let small = AgentConfig {
        max_message_size: 64 << 10,
        ..Default::default()
    };
    let fleet = fleet([127, 2, 5, 1], 1, small).await;
    let addr = fleet.agents()[0].addr();
    let big = sample::port_joining_subnet(fleet.agents()[0].ip(), 1000, 10, 0);
    assert!(big.encoded_len() > 64 << 10);
    let mut c = client(addr).await;
    let e = push_v2(&mut c, big).await.unwrap_err();
    assert!(matches!(e.code(), Code::OutOfRange | Code::ResourceExhausted), "{e:?}");
    assert_eq!(fleet.agents()[0].state().counts().l2_neighbors, 0);
    assert!(
        push_v2(&mut c, GoalStateV2::default()).await.is_ok(),
        "agent still serves"
    );

    // Over tonic's own 4 MiB default, within ours: 20k neighbors (about 5.6 MB).
    let fleet = common::fleet([127, 2, 5, 101], 1, AgentConfig::default()).await;
    let huge = sample::port_joining_subnet(fleet.agents()[0].ip(), 20_000, 100, 0);
    assert!(huge.encoded_len() > 4 << 20);
    let mut c = client(fleet.agents()[0].addr()).await;
    push_v2(&mut c, huge).await.unwrap();
    assert_eq!(fleet.agents()[0].state().counts().l2_neighbors, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_listener_serves_every_agent_by_its_address_with_no_descriptor_each() {
    let fds = || std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    let before = fds();
    // A port of its own: the wildcard listener holds it on every address of the host.
    let cfg = FleetConfig {
        count: 3000,
        base_ip: Ipv4Addr::new(127, 21, 0, 1),
        port: 50077,
        connections_per_agent: 2,
        listen: ListenMode::Shared,
    };
    let fleet = Fleet::start(&cfg, AgentConfig::default()).await.unwrap();
    // A handful at most, not one per agent (the other tests of this binary open and close
    // connections meanwhile, so the count is not exact).
    assert!(
        fds() <= before + 16,
        "3,000 idle agents hold {} descriptors",
        fds() - before
    );
    let mut events = fleet.subscribe();
    // Three agents far apart each get their own message.
    for i in [0usize, 1499, 2999] {
        let agent = &fleet.agents()[i];
        assert_eq!(agent.addr().port(), 50077);
        let mut c = client(agent.addr()).await;
        push_v2(
            &mut c,
            neighbor_update(OperationType::Create, Ipv4Addr::new(127, 9, 9, 9)),
        )
        .await
        .unwrap();
        let ev = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((ev.agent as usize, ev.host_ip), (i, agent.ip()));
        assert_eq!(fleet.agent_by_ip(agent.ip()).unwrap().stats().messages, 1);
    }
    // An address of the host that no agent has: refused, and no agent counts it.
    let mut c = client("127.21.250.1:50077".parse().unwrap()).await;
    let e = push_v2(
        &mut c,
        neighbor_update(OperationType::Create, Ipv4Addr::new(127, 9, 9, 9)),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e}");
    fleet.shutdown(std::time::Duration::from_secs(2)).await;
}
