//! A control plane and a fleet of agents on loopback, driven over REST as a user would.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use control_plane::{ControlPlane, ControlPlaneConfig, FanoutMode, PushConfig};
use fake_agent::{AgentConfig, Fleet, FleetConfig, ValidationMode};
use serde_json::{Value, json};

pub const PID: &str = "p1";

pub struct Env {
    pub cp: ControlPlane,
    pub fleet: Fleet,
    pub http: reqwest::Client,
}

/// `hosts` strict agents from `base` on port 50001, a control plane pushing to them, and every
/// agent registered as node `host-{i}`.
pub async fn start(base: [u8; 4], hosts: usize, fanout: FanoutMode) -> Env {
    start_with(
        base,
        hosts,
        PushConfig {
            agent_port: 50001,
            ..Default::default()
        },
        fanout,
    )
    .await
}

/// As [`start`], pushing with `push` (whose `agent_port` must be 50001).
pub async fn start_with(base: [u8; 4], hosts: usize, push: PushConfig, fanout: FanoutMode) -> Env {
    let cfg = ControlPlaneConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        fanout,
        push,
        ncm_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    };
    let cp = ControlPlane::start(cfg).await.expect("control plane starts");
    let fleet_cfg = FleetConfig {
        count: hosts,
        base_ip: Ipv4Addr::from(base),
        port: 50001,
        connections_per_agent: 4,
        ..Default::default()
    };
    let fleet = Fleet::start(
        &fleet_cfg,
        AgentConfig {
            mode: ValidationMode::Strict,
            // Agents back from a crash ask this control plane for their state.
            resync: cp.ncm_addr(),
            ..Default::default()
        },
    )
    .await
    .expect("fleet starts");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let env = Env { cp, fleet, http };
    env.post("/segments/createDefaultTable", json!({})).await;
    let nodes: Vec<Value> = env
        .fleet
        .agents()
        .iter()
        .map(|a| {
            let ip = a.ip().to_string();
            json!({ "node_id": format!("node-{}", a.index()), "node_name": format!("host-{}", a.index()),
                    "local_ip": ip, "mac_address": "02:00:00:00:00:01", "data-path-ip": ip, "server_port": 50001 })
        })
        .collect();
    env.post("/nodes/bulk", json!({ "host_infos": nodes })).await;
    env
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.cp.base_url(), path)
    }

    /// Creates a VPC with one subnet of `cidr`; returns (network id, subnet id).
    pub async fn vpc_with_subnet(&self, cidr: &str) -> (String, String) {
        let vpc = self
            .post(&format!("/project/{PID}/vpcs"), json!({ "network": {} }))
            .await;
        let vpc = vpc["network"]["id"].as_str().unwrap().to_owned();
        let subnet = self
            .post(
                &format!("/project/{PID}/subnets"),
                json!({ "subnet": { "network_id": vpc, "cidr": cidr } }),
            )
            .await;
        (vpc, subnet["subnet"]["id"].as_str().unwrap().to_owned())
    }

    /// POST expecting success.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.send(reqwest::Method::POST, path, Some(body)).await;
        assert!(status.is_success(), "POST {path}: {status} {v}");
        v
    }

    /// PUT expecting success.
    pub async fn put(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.send(reqwest::Method::PUT, path, Some(body)).await;
        assert!(status.is_success(), "PUT {path}: {status} {v}");
        v
    }

    /// Any request; returns status and JSON (Null for no body).
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (reqwest::StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("control plane answers");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends raw bytes as a JSON body.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &'static str,
    ) -> (reqwest::StatusCode, Value) {
        let resp = self
            .http
            .request(method, self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}
