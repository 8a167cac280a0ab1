//! Strict mode: every input the real agent rejects (protocol reference §1.10) gets INVALID_ARG
//! and leaves the host's state untouched; lenient mode applies the same input.

mod common;

use std::net::Ipv4Addr;

use alcor_schema::{
    GoalState, GoalStateV2, NeighborType, NetworkType, OperationStatus, OperationType, PortState, ResourceType,
    SubnetState, UpdateType,
};
use common::*;
use fake_agent::sample::{self, JoinIds};
use fake_agent::{AgentConfig, ValidationMode};

fn strict() -> AgentConfig {
    AgentConfig {
        mode: ValidationMode::Strict,
        ..Default::default()
    }
}

fn good_subnet() -> SubnetState {
    let ids = JoinIds::new();
    sample::subnet(OperationType::Info, &ids.subnet, &ids.vpc, "10.0.0.0/8", 1001)
}

fn good_port(op: OperationType, n: u64) -> PortState {
    let ids = JoinIds::new();
    sample::port(
        op,
        &sample::uuid(3, n),
        &ids.vpc,
        &ids.subnet,
        sample::ip(n),
        &sample::mac(n),
        &[],
    )
}

fn v2(port: PortState, subnet: Option<SubnetState>) -> GoalStateV2 {
    let mut gs = GoalStateV2::default();
    if let Some(s) = subnet {
        gs.subnet_states.insert(JoinIds::new().subnet, s);
    }
    let id = port.configuration.as_ref().unwrap().id.clone();
    gs.port_states
        .insert(if id.is_empty() { "empty".into() } else { id }, port);
    gs
}

type PortCase = (&'static str, Box<dyn Fn(&mut PortState, &mut SubnetState) -> bool>);

/// Each case breaks one rule; the closure returns false when the subnet must be left out.
fn port_cases() -> Vec<PortCase> {
    fn cfg(p: &mut PortState) -> &mut alcor_schema::PortConfiguration {
        p.configuration.as_mut().unwrap()
    }
    fn sub(s: &mut SubnetState) -> &mut alcor_schema::SubnetConfiguration {
        s.configuration.as_mut().unwrap()
    }
    vec![
        (
            "revision 0",
            Box::new(|p, _| {
                cfg(p).revision_number = 0;
                true
            }),
        ),
        (
            "admin down",
            Box::new(|p, _| {
                cfg(p).admin_state_up = false;
                true
            }),
        ),
        (
            "empty id",
            Box::new(|p, _| {
                cfg(p).id.clear();
                true
            }),
        ),
        (
            "no fixed ips",
            Box::new(|p, _| {
                cfg(p).fixed_ips.clear();
                true
            }),
        ),
        (
            "create as delta",
            Box::new(|p, _| {
                cfg(p).update_type = UpdateType::Delta as i32;
                true
            }),
        ),
        (
            "ip out of range",
            Box::new(|p, _| {
                cfg(p).fixed_ips[0].ip_address = "10.0.0.256".into();
                true
            }),
        ),
        (
            "ipv6 fixed ip",
            Box::new(|p, _| {
                cfg(p).fixed_ips[0].ip_address = "fd00::1".into();
                true
            }),
        ),
        (
            "bad mac",
            Box::new(|p, _| {
                cfg(p).mac_address = "zz:16:3e:00:00:01".into();
                true
            }),
        ),
        (
            "short mac",
            Box::new(|p, _| {
                cfg(p).mac_address = "fa:16:3e:00:01".into();
                true
            }),
        ),
        ("subnet not in message", Box::new(|_, _| false)),
        (
            "subnet of another id",
            Box::new(|p, _| {
                cfg(p).fixed_ips[0].subnet_id = "other".into();
                true
            }),
        ),
        (
            "vni 0",
            Box::new(|_, s| {
                sub(s).tunnel_id = 0;
                true
            }),
        ),
        (
            "vni too large",
            Box::new(|_, s| {
                sub(s).tunnel_id = 16_777_216;
                true
            }),
        ),
        (
            "vlan id too large",
            Box::new(|_, s| {
                sub(s).network_type = NetworkType::Vlan as i32;
                sub(s).tunnel_id = 4095;
                true
            }),
        ),
        (
            "cidr without prefix",
            Box::new(|_, s| {
                sub(s).cidr = "10.0.0.0".into();
                true
            }),
        ),
    ]
}

#[tokio::test]
async fn every_invalid_port_gets_invalid_arg_and_no_state() {
    let fleet = fleet([127, 2, 10, 1], 2, strict()).await;
    let lenient = common::fleet([127, 2, 10, 101], 1, AgentConfig::default()).await;
    let agent = &fleet.agents()[0];
    let mut c = client(agent.addr()).await;
    let mut cl = client(lenient.agents()[0].addr()).await;
    // Context first, so that the invalid messages change nothing a valid one would not.
    let mut ctx = GoalStateV2::default();
    ctx.subnet_states.insert(JoinIds::new().subnet, good_subnet());
    push_v2(&mut c, ctx).await.unwrap();
    let before = agent.state().counts();

    for (name, breaks) in port_cases() {
        let (mut port, mut subnet) = (good_port(OperationType::Create, 1), good_subnet());
        let keep_subnet = breaks(&mut port, &mut subnet);
        let msg = v2(port, keep_subnet.then_some(subnet));
        let reply = push_v2(&mut c, msg.clone()).await.unwrap();
        assert_eq!(reply.operation_statuses.len(), 1, "{name}");
        assert_eq!(
            reply.operation_statuses[0].operation_status(),
            OperationStatus::InvalidArg,
            "{name}"
        );
        assert_eq!(agent.state().counts(), before, "{name}: state untouched");
        // Lenient applies it.
        let reply = push_v2(&mut cl, msg).await.unwrap();
        assert_eq!(
            reply.operation_statuses[0].operation_status(),
            OperationStatus::Success,
            "lenient {name}"
        );
    }
    assert_eq!(fleet.stats().invalid, port_cases().len() as u64);

    // The same port, valid, is accepted: the cases failed for their one broken rule.
    let reply = push_v2(&mut c, v2(good_port(OperationType::Create, 1), Some(good_subnet())))
        .await
        .unwrap();
    assert_eq!(reply.operation_statuses[0].operation_status(), OperationStatus::Success);
    assert_eq!(agent.state().counts().ports, 1);
}

#[tokio::test]
async fn port_update_is_accepted_only_as_a_delete() {
    let fleet = fleet([127, 2, 11, 1], 1, strict()).await;
    let agent = &fleet.agents()[0];
    let mut c = client(agent.addr()).await;
    push_v2(&mut c, v2(good_port(OperationType::Create, 1), Some(good_subnet())))
        .await
        .unwrap();
    let stored = agent.state().port(&sample::uuid(3, 1)).cloned().unwrap();

    let mut update = good_port(OperationType::Update, 1);
    update.configuration.as_mut().unwrap().name = "renamed".into();
    let reply = push_v2(&mut c, v2(update, Some(good_subnet()))).await.unwrap();
    assert_eq!(
        reply.operation_statuses[0].operation_status(),
        OperationStatus::InvalidArg
    );
    assert_eq!(agent.state().port(&sample::uuid(3, 1)), Some(&stored), "port unchanged");

    let mut unbind = good_port(OperationType::Update, 1);
    let cfg = unbind.configuration.as_mut().unwrap();
    cfg.device_id.clear();
    cfg.device_owner.clear();
    let reply = push_v2(&mut c, v2(unbind, Some(good_subnet()))).await.unwrap();
    assert_eq!(reply.operation_statuses[0].operation_status(), OperationStatus::Success);
    assert_eq!(
        agent.state().counts().ports,
        0,
        "UPDATE with no device removes the port"
    );
}

#[tokio::test]
async fn every_invalid_neighbor_gets_invalid_arg_and_no_state() {
    let fleet = fleet([127, 2, 12, 1], 1, strict()).await;
    let agent = &fleet.agents()[0];
    let mut c = client(agent.addr()).await;
    let ids = JoinIds::new();
    let neighbor = || {
        sample::neighbor(
            OperationType::Create,
            NeighborType::L2,
            &sample::uuid(3, 9),
            &ids.vpc,
            &ids.subnet,
            sample::ip(9),
            &sample::mac(9),
            Ipv4Addr::new(127, 8, 0, 1),
        )
    };
    type Case = (&'static str, fn(&mut alcor_schema::NeighborConfiguration) -> bool);
    let cases: [Case; 7] = [
        ("host ip not an address", |n| {
            n.host_ip_address = "host-1".into();
            true
        }),
        ("host ip empty", |n| {
            n.host_ip_address.clear();
            true
        }),
        ("fixed ip invalid", |n| {
            n.fixed_ips[0].ip_address = "10.0.0".into();
            true
        }),
        ("no fixed ips", |n| {
            n.fixed_ips.clear();
            true
        }),
        ("bad mac", |n| {
            n.mac_address = "fa:16:3e".into();
            true
        }),
        ("empty id", |n| {
            n.id.clear();
            true
        }),
        ("subnet not in message", |_| false),
    ];
    for (name, breaks) in cases {
        let mut n = neighbor();
        let keep_subnet = breaks(n.configuration.as_mut().unwrap());
        // V1 reports neighbor statuses.
        let gs = GoalState {
            subnet_states: if keep_subnet { vec![good_subnet()] } else { vec![] },
            neighbor_states: vec![n],
            ..Default::default()
        };
        let reply = c.push_network_resource_states(gs).await.unwrap().into_inner();
        assert_eq!(reply.operation_statuses.len(), 1, "{name}");
        assert_eq!(reply.operation_statuses[0].resource_type(), ResourceType::Neighbor);
        assert_eq!(
            reply.operation_statuses[0].operation_status(),
            OperationStatus::InvalidArg,
            "{name}"
        );
        assert_eq!(agent.state().counts().l2_neighbors, 0, "{name}");
    }

    // V2 has no neighbor statuses; the rejection shows in the event and the state.
    let mut events = fleet.subscribe();
    let mut gs = GoalStateV2::default();
    let mut bad = neighbor();
    bad.configuration.as_mut().unwrap().host_ip_address = "nowhere".into();
    gs.neighbor_states.insert("L2/x".into(), bad);
    gs.subnet_states.insert(ids.subnet.clone(), good_subnet());
    let reply = push_v2(&mut c, gs).await.unwrap();
    assert!(reply.operation_statuses.is_empty());
    let e = events.recv().await.unwrap();
    assert_eq!(e.outcomes.invalid_arg, 1);
    assert_eq!(agent.state().counts().l2_neighbors, 0);

    // And a valid one is stored.
    let gs = GoalState {
        subnet_states: vec![good_subnet()],
        neighbor_states: vec![neighbor()],
        ..Default::default()
    };
    let reply = c.push_network_resource_states(gs).await.unwrap().into_inner();
    assert_eq!(reply.operation_statuses[0].operation_status(), OperationStatus::Success);
    assert_eq!(agent.state().counts().l2_neighbors, 1);
}

#[tokio::test]
async fn invalid_dhcp_and_unknown_operations_are_rejected() {
    let fleet = fleet([127, 2, 13, 1], 1, strict()).await;
    let agent = &fleet.agents()[0];
    let mut c = client(agent.addr()).await;
    let ids = JoinIds::new();
    let mut gs = GoalStateV2::default();
    gs.dhcp_states.insert(
        "d1".into(),
        sample::dhcp(OperationType::Create, "d1", &ids.subnet, "nope", sample::ip(1)),
    );
    let mut bad_ip = sample::dhcp(OperationType::Create, "d2", &ids.subnet, &sample::mac(2), sample::ip(2));
    bad_ip.configuration.as_mut().unwrap().ipv4_address = "10.1".into();
    gs.dhcp_states.insert("d2".into(), bad_ip);
    let mut unknown = good_port(OperationType::Create, 3);
    unknown.operation_type = 42;
    gs.port_states.insert("p".into(), unknown);
    gs.subnet_states.insert(ids.subnet.clone(), good_subnet());
    let reply = push_v2(&mut c, gs).await.unwrap();
    assert_eq!(reply.operation_statuses.len(), 3);
    assert!(
        reply
            .operation_statuses
            .iter()
            .all(|s| s.operation_status() == OperationStatus::InvalidArg),
        "{reply:?}"
    );
    let counts = agent.state().counts();
    assert_eq!((counts.dhcp, counts.ports), (0, 0));
}
