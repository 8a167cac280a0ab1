//! Bad input answers 400 naming the field, unknown ids 404, conflicts 409, and changes nothing;
//! unreachable or silent hosts are reported in the result list without hanging the API.

mod common;

use std::time::{Duration, Instant};

use common::*;
use control_plane::{ControlPlane, ControlPlaneConfig, FanoutMode, PushConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn setup(env: &Env) -> (String, String, String) {
    // A /29: five assignable addresses after the gateway.
    let (vpc_id, subnet_id) = env.vpc_with_subnet("10.9.0.0/29").await;
    let sg = env
        .post(
            &format!("/project/{PID}/security-groups"),
            json!({ "security_group": { "name": "g" } }),
        )
        .await;
    (
        vpc_id,
        subnet_id,
        sg["security_group"]["id"].as_str().unwrap().to_owned(),
    )
}

/// Everything that must not change when a request fails.
async fn snapshot(env: &Env) -> Value {
    let mut all = serde_json::Map::new();
    for what in ["ports", "vpcs", "subnets", "security-groups", "routers"] {
        let (_, v) = env.send(Method::GET, &format!("/project/{PID}/{what}"), None).await;
        all.insert(what.into(), v);
    }
    let (_, nodes) = env.send(Method::GET, "/nodes", None).await;
    all.insert("nodes".into(), nodes);
    all.insert("agent_messages".into(), json!(env.fleet.stats().messages));
    Value::Object(all)
}

#[tokio::test]
async fn every_error_has_its_status_names_its_field_and_changes_nothing() {
    let env = start([127, 4, 20, 1], 2, FanoutMode::Alcor).await;
    let (vpc, subnet, sg) = setup(&env).await;
    let ok = env
        .post(
            &format!("/project/{PID}/ports"),
            json!({ "port": { "id": "taken", "network_id": vpc, "binding:host_id": "host-0",
               "device_id": "vm", "device_owner": "compute:nova", "security_groups": [sg],
               "fixed_ips": [{ "subnet_id": subnet, "ip_address": "10.9.0.2" }] } }),
        )
        .await;
    assert_eq!(ok["port"]["status"], "ACTIVE");
    let ports = format!("/project/{PID}/ports");
    let cases: Vec<(Method, String, Value, StatusCode, &str)> = vec![
        (
            Method::POST,
            ports.clone(),
            json!({ "port": { "name": "x" } }),
            StatusCode::BAD_REQUEST,
            "port.network_id",
        ),
        (
            Method::POST,
            ports.clone(),
            json!({ "port": { "network_id": "nope" } }),
            StatusCode::NOT_FOUND,
            "port.network_id",
        ),
        (
            Method::POST,
            ports.clone(),
            json!({ "port": { "network_id": vpc, "admin_state_up": "yes" } }),
            StatusCode::BAD_REQUEST,
            "port.admin_state_up",
        ),
        (
            Method::POST,
            ports.clone(),
            json!({ "port": { "id": "taken", "network_id": vpc } }),
            StatusCode::CONFLICT,
            "port.id",
        ),
        (
            Method::POST,
            ports.clone(),
            json!({ "port": { "network_id": vpc, "fixed_ips": [{ "subnet_id": subnet, "ip_address": "10.9.1.5" }] } }),
            StatusCode::BAD_REQUEST,
            "port.fixed_ips[0].ip_address",
        ),
        (
            Method::POST,
            ports.clone(),
            json!({ "port": { "network_id": vpc, "fixed_ips": [{ "subnet_id": subnet, "ip_address": "10.9.0.2" }] } }),
            StatusCode::CONFLICT,
            "port.fixed_ips[0].ip_address",
        ),
        (
            Method::POST,
            ports.clone(),
            json!({ "port": { "network_id": vpc, "fixed_ips": [{ "subnet_id": subnet, "ip_address": "not-ip" }] } }),
            StatusCode::BAD_REQUEST,
            "port.fixed_ips[0].ip_address",
        ),
        (
            Method::POST,
            ports.clone(),
            json!({ "port": { "network_id": vpc, "fixed_ips": [{ "subnet_id": "nope" }] } }),
            StatusCode::NOT_FOUND,
            "port.fixed_ips[0].subnet_id",
        ),
        (
            Method::POST,
            ports.clone(),
            json!({ "port": { "network_id": vpc, "binding:host_id": "no-such-host" } }),
            StatusCode::NOT_FOUND,
            "port.binding:host_id",
        ),
        (
            Method::POST,
            ports.clone(),
            json!({ "port": { "network_id": vpc, "security_groups": [sg, "nope"] } }),
            StatusCode::NOT_FOUND,
            "port.security_groups[1]",
        ),
        (
            Method::POST,
            ports.clone(),
            json!({ "port": { "network_id": vpc, "mac_address": "zz" } }),
            StatusCode::BAD_REQUEST,
            "port.mac_address",
        ),
        (
            Method::POST,
            format!("{ports}/bulk"),
            json!({ "ports": [{ "network_id": vpc }, { "network_id": vpc }, { "network_id": "nope" }] }),
            StatusCode::NOT_FOUND,
            "ports[2].network_id",
        ),
        (
            Method::DELETE,
            format!("{ports}/unknown"),
            Value::Null,
            StatusCode::NOT_FOUND,
            "port_id",
        ),
        (
            Method::PUT,
            format!("{ports}/taken"),
            json!({ "port": { "binding:host_id": "no-such-host" } }),
            StatusCode::NOT_FOUND,
            "port.binding:host_id",
        ),
        (
            Method::POST,
            format!("/project/{PID}/subnets"),
            json!({ "subnet": { "network_id": vpc, "cidr": "10.9.0.0/24" } }),
            StatusCode::CONFLICT,
            "subnet.cidr",
        ),
        (
            Method::POST,
            format!("/project/{PID}/subnets"),
            json!({ "subnet": { "network_id": vpc, "cidr": "10.300.0.0/24" } }),
            StatusCode::BAD_REQUEST,
            "subnet.cidr",
        ),
        (
            Method::POST,
            format!("/project/{PID}/subnets"),
            json!({ "subnet": { "network_id": vpc, "cidr": "10.8.0.0/24", "ip_version": 6 } }),
            StatusCode::BAD_REQUEST,
            "subnet.ip_version",
        ),
        (
            Method::POST,
            format!("/project/{PID}/subnets"),
            json!({ "subnet": { "cidr": "10.8.0.0/24" } }),
            StatusCode::BAD_REQUEST,
            "subnet.network_id",
        ),
        (
            Method::DELETE,
            format!("/project/{PID}/subnets/{subnet}"),
            Value::Null,
            StatusCode::CONFLICT,
            "subnet_id",
        ),
        (
            Method::DELETE,
            format!("/project/{PID}/vpcs/{vpc}"),
            Value::Null,
            StatusCode::CONFLICT,
            "network_id",
        ),
        (
            Method::POST,
            format!("/project/{PID}/vpcs"),
            json!({ "network": { "provider:segmentation_id": 0 } }),
            StatusCode::BAD_REQUEST,
            "network.provider:segmentation_id",
        ),
        (
            Method::POST,
            format!("/project/{PID}/security-group-rules"),
            json!({ "security_group_rule": { "security_group_id": sg, "direction": "sideways" } }),
            StatusCode::BAD_REQUEST,
            "security_group_rule.direction",
        ),
        (
            Method::POST,
            format!("/project/{PID}/security-group-rules"),
            json!({ "security_group_rule": { "security_group_id": sg, "direction": "ingress", "remote_group_id": "nope" } }),
            StatusCode::NOT_FOUND,
            "security_group_rule.remote_group_id",
        ),
        (
            Method::POST,
            format!("/project/{PID}/security-group-rules"),
            json!({ "security_group_rule": { "security_group_id": sg, "direction": "ingress", "port_range_min": 90, "port_range_max": 80 } }),
            StatusCode::BAD_REQUEST,
            "security_group_rule.port_range_min",
        ),
        (
            Method::DELETE,
            format!("/project/{PID}/security-groups/{sg}"),
            Value::Null,
            StatusCode::CONFLICT,
            "security_group_id",
        ),
        (
            Method::POST,
            "/nodes".into(),
            json!({ "host_info": { "node_name": "host-0", "local_ip": "127.4.20.9" } }),
            StatusCode::CONFLICT,
            "host_info.node_name",
        ),
        (
            Method::POST,
            "/nodes".into(),
            json!({ "host_info": { "node_name": "h9", "local_ip": "300.1.1.1" } }),
            StatusCode::BAD_REQUEST,
            "host_info.local_ip",
        ),
        (
            Method::POST,
            "/nodes/bulk".into(),
            json!({ "host_infos": [{ "node_name": "a", "local_ip": "127.4.20.9" }, { "node_name": "a", "local_ip": "127.4.20.10" }] }),
            StatusCode::CONFLICT,
            "host_infos[1].node_name",
        ),
        (
            Method::DELETE,
            "/nodes/node-0".into(),
            Value::Null,
            StatusCode::CONFLICT,
            "node_id",
        ),
        (
            Method::PUT,
            format!("/project/{PID}/routers/nope/add_router_interface"),
            json!({ "subnet_id": subnet }),
            StatusCode::NOT_FOUND,
            "router_id",
        ),
    ];
    let before = snapshot(&env).await;
    for (method, path, body, status, field) in cases {
        let body = (!body.is_null()).then_some(body);
        let (got, v) = env.send(method.clone(), &path, body).await;
        assert_eq!(got, status, "{method} {path}: {v}");
        assert_eq!(v["error"]["field"], field, "{method} {path}: {v}");
        assert_eq!(snapshot(&env).await, before, "{method} {path} changed state");
    }
    let (got, v) = env.send_raw(Method::POST, &ports, "{\"port\": {").await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{v}");

    // Exhaust the /29: 4 more addresses fit, the fifth is a conflict that takes nothing.
    for _ in 0..4 {
        env.post(&ports, json!({ "port": { "network_id": vpc } })).await;
    }
    let (got, v) = env
        .send(Method::POST, &ports, Some(json!({ "port": { "network_id": vpc } })))
        .await;
    assert_eq!(got, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["field"], "port.fixed_ips[0].subnet_id");
    // Freed addresses are reused.
    let (_, list) = env.send(Method::GET, &ports, None).await;
    let victim = list["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] != "taken")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.send(Method::DELETE, &format!("{ports}/{victim}"), None).await;
    env.post(&ports, json!({ "port": { "network_id": vpc } })).await;
}

#[tokio::test]
async fn unreachable_and_silent_hosts_fail_in_the_result_list_without_hanging() {
    // A listener that accepts and never answers: the per-host timeout must end the wait.
    let silent = std::net::TcpListener::bind("127.4.21.2:50001").unwrap();
    let cfg = ControlPlaneConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        push: PushConfig {
            agent_port: 50001,
            host_timeout: Duration::from_millis(500),
            ..Default::default()
        },
        ..Default::default()
    };
    let cp = ControlPlane::start(cfg).await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = |p: &str| format!("{}{p}", cp.base_url());
    let post = |p: String, b: Value| {
        let http = http.clone();
        async move {
            http.post(p)
                .json(&b)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    post(
        url("/nodes/bulk"),
        json!({ "host_infos": [
        { "node_name": "gone", "local_ip": "127.4.21.1" },
        { "node_name": "mute", "local_ip": "127.4.21.2" } ] }),
    )
    .await;
    let vpc = post(url(&format!("/project/{PID}/vpcs")), json!({ "network": {} })).await;
    let vpc = vpc["network"]["id"].as_str().unwrap().to_owned();
    post(
        url(&format!("/project/{PID}/subnets")),
        json!({ "subnet": { "network_id": vpc, "cidr": "10.0.0.0/24" } }),
    )
    .await;
    for (host, ip, expect) in [
        ("gone", "127.4.21.1", "tcp connect error"),
        ("mute", "127.4.21.2", "no reply within"),
    ] {
        let t = Instant::now();
        let out = post(
            url(&format!("/project/{PID}/ports")),
            json!({ "port": { "network_id": vpc, "binding:host_id": host,
                        "device_id": "vm", "device_owner": "compute:nova" } }),
        )
        .await;
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{host}: the API waited {:?}",
            t.elapsed()
        );
        assert_eq!(out["port"]["status"], "ERROR", "{out}");
        // The port's own host (the other host's neighbor update is in the list too).
        let results = out["dataplane"]["results"].as_array().unwrap();
        let result = results.iter().find(|r| r["host"] == ip).unwrap();
        assert_eq!(result["ok"], false);
        assert!(result["error"].as_str().unwrap().contains(expect), "{host}: {result}");
        assert!(
            out["dataplane"]["failed_hosts"]
                .as_array()
                .unwrap()
                .contains(&json!(ip))
        );
    }
    drop(silent);
}

#[tokio::test]
async fn per_service_ports_serve_alcor_paths_and_async_answers_at_once() {
    let cfg = ControlPlaneConfig {
        listen: "127.4.22.1:0".parse().unwrap(),
        per_service_ports: true,
        async_push: true,
        ..Default::default()
    };
    let cp = ControlPlane::start(cfg).await.unwrap();
    assert_eq!(
        cp.addrs().iter().map(|a| a.port()).collect::<Vec<_>>(),
        control_plane::SERVICE_PORTS
    );
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http
        .post("http://127.4.22.1:9001/segments/createDefaultTable")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = http
        .post("http://127.4.22.1:9007/nodes")
        .json(&json!({ "host_info": { "node_name": "n1", "local_ip": "127.4.22.50" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let vpc: Value = http
        .post("http://127.4.22.1:9001/v4/p/vpcs")
        .json(&json!({ "network": {} }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let vpc = vpc["network"]["id"].as_str().unwrap().to_owned();
    http.post("http://127.4.22.1:9002/project/p/subnets")
        .json(&json!({ "subnet": { "network_id": vpc, "cidr": "10.0.0.0/24" } }))
        .send()
        .await
        .unwrap();
    // Async: answered before the push to the (absent) agent fails.
    let port: Value = http
        .post("http://127.4.22.1:9006/project/p/ports")
        .json(&json!({ "port": { "network_id": vpc, "binding:host_id": "n1", "device_id": "vm", "device_owner": "compute:nova" } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(port["dataplane"]["async"], true);
    assert_eq!(port["port"]["status"], "BUILD");
    assert_eq!(port["port"]["fixed_ips"][0]["ip_address"], "10.0.0.2");
    assert!(port["port"]["mac_address"].as_str().unwrap().starts_with("fa:16:3e:"));
    cp.shutdown(Duration::from_secs(2)).await;
}
