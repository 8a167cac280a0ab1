//! Property tests of the REST bodies: arbitrary and mutated JSON to every create and update
//! route answers 2xx or a 4xx naming what is wrong — never a 5xx, never a panic — and leaves a
//! store the next request can use. `PROPTEST_CASES` sets the cases (`scripts/props.sh` runs a
//! million).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use proptest::prelude::*;
use tower::ServiceExt;

use super::{AppState, Inner, router};
use crate::{ControlPlaneConfig, Dpm, FanoutMode, Metrics, Ncm, PushConfig};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A control plane with a VPC, a subnet and a node, whose pushes go nowhere fast (port 9 of
/// a loopback address nothing listens on).
fn state() -> AppState {
    let config = ControlPlaneConfig {
        push: PushConfig {
            agent_port: 9,
            host_timeout: Duration::from_millis(200),
            warmup: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = AppState {
        inner: Arc::new(Mutex::new(Inner {
            store: Default::default(),
            dpm: Dpm::new(FanoutMode::Alcor),
        })),
        southbound: crate::Southbound::Grpc(Ncm::new(config.push.clone())),
        metrics: Arc::new(Metrics::default()),
        config: Arc::new(config),
    };
    for (path, body) in [
        ("/project/p/vpcs", r#"{"network":{"id":"v1","cidr":"10.0.0.0/16"}}"#),
        (
            "/project/p/subnets",
            r#"{"subnet":{"id":"s1","network_id":"v1","cidr":"10.0.1.0/24"}}"#,
        ),
        ("/project/p/security-groups", r#"{"security_group":{"id":"g1"}}"#),
        (
            "/nodes",
            r#"{"host_info":{"node_id":"n1","node_name":"h1","local_ip":"127.9.9.9","mac_address":"02:00:00:00:00:01"}}"#,
        ),
    ] {
        let status = send(&s, Method::POST, path, body.as_bytes().to_vec()).0;
        assert!(status.is_success(), "{path}: {status}");
    }
    s
}

fn send(s: &AppState, method: Method, path: &str, body: Vec<u8>) -> (axum::http::StatusCode, Vec<u8>) {
    runtime().block_on(async {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = router(s.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
        (status, bytes.to_vec())
    })
}

/// Valid bodies of each route, to mutate.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "/project/p/ports",
        r#"{"port":{"id":"p1","network_id":"v1","fixed_ips":[{"subnet_id":"s1","ip_address":"10.0.1.5"}],"binding:host_id":"h1","security_groups":["g1"],"device_id":"vm","device_owner":"compute:nova","mac_address":"aa:bb:cc:dd:ee:ff"}}"#,
    ),
    (
        "/project/p/ports/bulk",
        r#"{"ports":[{"network_id":"v1","binding:host_id":"h1"},{"network_id":"v1"}]}"#,
    ),
    (
        "/project/p/vpcs",
        r#"{"network":{"id":"v2","cidr":"10.1.0.0/16","name":"n"}}"#,
    ),
    (
        "/project/p/subnets",
        r#"{"subnet":{"network_id":"v1","cidr":"10.0.2.0/24","gateway_ip":"10.0.2.1"}}"#,
    ),
    (
        "/project/p/security-groups",
        r#"{"security_group":{"name":"web","security_group_rules":[]}}"#,
    ),
    (
        "/project/p/security-group-rules",
        r#"{"security_group_rule":{"security_group_id":"g1","direction":"ingress","protocol":"tcp","port_range_min":80,"port_range_max":81,"remote_group_id":"g1"}}"#,
    ),
    ("/project/p/routers", r#"{"router":{"id":"r1"}}"#),
    (
        "/nodes/bulk",
        r#"{"host_infos":[{"node_id":"n2","node_name":"h2","local_ip":"127.9.9.10","mac_address":"02:00:00:00:00:02"}]}"#,
    ),
];

fn json_char() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(b"{}[]\":,0123456789-.eE tfnul\\".to_vec()),
        any::<u8>(),
    ]
}

fn check(status: axum::http::StatusCode, body: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(!status.is_server_error(), "{status}: {}", String::from_utf8_lossy(body));
    if status.is_client_error() {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(
            v.to_string().contains("field") || v.to_string().contains("message"),
            "{v}"
        );
    }
    Ok(())
}

proptest! {
    // A case that runs past 10 s is a hang: the test runs in a child process that is killed then.
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, timeout: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn props_mutated_bodies_answer_2xx_or_a_4xx_naming_the_field(
        which in 0..TEMPLATES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, json_char()), 1..6),
        put in any::<bool>(),
    ) {
        let s = state();
        let (path, body) = TEMPLATES[which];
        let mut b = body.as_bytes().to_vec();
        for (at, op, c) in &edits {
            if b.is_empty() { break; }
            let i = at.index(b.len());
            match op { 0 => b[i] = *c, 1 => { b.remove(i); } _ => b.insert(i, *c) }
        }
        let (status, out) = send(&s, Method::POST, path, b.clone());
        check(status, &out)?;
        if put {
            // The same body as an update of an existing port.
            send(&s, Method::POST, "/project/p/ports", TEMPLATES[0].1.as_bytes().to_vec());
            let (status, out) = send(&s, Method::PUT, "/project/p/ports/p1", b);
            check(status, &out)?;
        }
        // Whatever happened, the store still serves.
        let (status, _) = send(&s, Method::GET, "/project/p/ports", Vec::new());
        prop_assert!(status.is_success());
    }

    #[test]
    fn props_arbitrary_bodies_answer_2xx_or_4xx(
        which in 0..TEMPLATES.len(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let s = state();
        let (status, out) = send(&s, Method::POST, TEMPLATES[which].0, body);
        check(status, &out)?;
    }
}
