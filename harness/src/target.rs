//! What the driver talks to. REST targets (the embedded reference control plane, or a real
//! Alcor by URL) get Alcor's northbound calls as [`HttpCall`]s, which either engine sends;
//! the southbound target has no REST API: the harness builds Alcor-shaped goal states itself
//! and pushes them to agents over gRPC, as Alcor's own test controller did.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use alcor_schema::HostResources;
use alcor_schema::{GoalStateV2, NeighborType, OperationType, ResourceIdType, ResourceType, neighbor_key};
use anyhow::{Context, bail};
use bytes::Bytes;
use control_plane::Ncm;
use control_plane::dpm::{HostMessage, MessageCounts};
use fake_agent::sample;
use prost::Message;
use reqwest::{Method, Url};
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::{Value, json};

use crate::register::NodeInfo;
use crate::topology::{Op, PortPlan, Topology};

/// One REST call.
#[derive(Debug, Clone)]
pub struct HttpCall {
    /// Method.
    pub method: Method,
    /// Full URL.
    pub url: String,
    /// JSON body, serialized once when the call is built.
    pub body: Option<Bytes>,
}

/// A port create's body, serialized straight from borrowed fields: this runs once per request,
/// and a `serde_json::Value` tree would allocate every key and value first.
#[derive(Serialize)]
struct PortBody<'a> {
    id: &'a str,
    project_id: &'a str,
    network_id: &'a str,
    name: String,
    fixed_ips: [FixedIp<'a>; 1],
    #[serde(rename = "binding:host_id")]
    host_id: &'a str,
    device_id: String,
    device_owner: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    security_groups: Vec<&'a str>,
}

#[derive(Serialize)]
struct FixedIp<'a> {
    subnet_id: &'a str,
}

#[derive(Serialize)]
struct One<T> {
    port: T,
}

#[derive(Serialize)]
struct Many<T> {
    ports: Vec<T>,
}

#[derive(Serialize)]
struct HostOnly<'a> {
    #[serde(rename = "binding:host_id")]
    host_id: &'a str,
}

fn json_bytes<T: Serialize>(v: &T) -> Bytes {
    // Serializing these types cannot fail: no maps with non-string keys, no failing Serialize.
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// Base URLs per Alcor service.
#[derive(Debug, Clone)]
pub struct ServiceUrls {
    by_service: BTreeMap<String, Url>,
    default: Url,
}

impl ServiceUrls {
    /// One URL for every service, with per-service overrides.
    pub fn new(default: &str, overrides: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let default = crate::register::loopback_url(default)?;
        let mut by_service = BTreeMap::new();
        for (k, v) in overrides {
            by_service.insert(k.clone(), crate::register::loopback_url(v)?);
        }
        Ok(Self { by_service, default })
    }

    fn url(&self, service: &str, path: &str) -> String {
        let base = self.by_service.get(service).unwrap_or(&self.default);
        format!("{}{}", base.as_str().trim_end_matches('/'), path)
    }
}

/// Alcor's REST API.
#[derive(Debug, Clone)]
pub struct RestTarget {
    urls: ServiceUrls,
    topo: Arc<Topology>,
    agent_port: u16,
}

fn call(method: Method, url: String, body: Option<Value>) -> HttpCall {
    HttpCall {
        method,
        url,
        body: body.as_ref().map(json_bytes),
    }
}

impl RestTarget {
    /// A target at `urls` for `topo`.
    pub fn new(urls: ServiceUrls, topo: Arc<Topology>, agent_port: u16) -> Self {
        Self { urls, topo, agent_port }
    }

    fn pid(&self, project: usize) -> &str {
        &self.topo.projects[project].id
    }

    fn port_body<'a>(&'a self, p: &'a PortPlan) -> PortBody<'a> {
        let t = &self.topo;
        let subnet = &t.subnets[p.subnet];
        PortBody {
            id: &p.id,
            project_id: self.pid(p.project),
            network_id: &t.vpcs[subnet.vpc].id,
            name: format!("port-{}", p.id),
            fixed_ips: [FixedIp { subnet_id: &subnet.id }],
            host_id: &t.host_names[p.host],
            device_id: format!("vm-{}", p.id),
            device_owner: "compute:nova",
            security_groups: p.groups.iter().map(|g| t.groups[*g].id.as_str()).collect(),
        }
    }

    /// The call that creates `p`.
    pub fn create(&self, p: &PortPlan) -> HttpCall {
        let path = format!("/project/{}/ports", self.pid(p.project));
        HttpCall {
            method: Method::POST,
            url: self.urls.url("port", &path),
            body: Some(json_bytes(&One {
                port: self.port_body(p),
            })),
        }
    }

    /// One call creating several ports of one project.
    pub fn create_bulk(&self, ports: &[PortPlan]) -> HttpCall {
        let path = format!("/project/{}/ports/bulk", self.pid(ports[0].project));
        let body = Many {
            ports: ports.iter().map(|p| self.port_body(p)).collect(),
        };
        HttpCall {
            method: Method::POST,
            url: self.urls.url("port", &path),
            body: Some(json_bytes(&body)),
        }
    }

    /// The call that moves `p` to its (new) host.
    pub fn update(&self, p: &PortPlan) -> HttpCall {
        let path = format!("/project/{}/ports/{}", self.pid(p.project), p.id);
        HttpCall {
            method: Method::PUT,
            url: self.urls.url("port", &path),
            body: Some(json_bytes(&One {
                port: HostOnly {
                    host_id: &self.topo.host_names[p.host],
                },
            })),
        }
    }

    /// The call that deletes `p`.
    pub fn delete(&self, p: &PortPlan) -> HttpCall {
        let path = format!("/project/{}/ports/{}", self.pid(p.project), p.id);
        call(Method::DELETE, self.urls.url("port", &path), None)
    }

    /// The calls that build everything but ports, in order: nodes, VPCs, subnets, routers and
    /// their interfaces, security groups and rules.
    pub fn setup_calls(&self) -> Vec<HttpCall> {
        let t = &self.topo;
        let mut out = vec![call(
            Method::POST,
            self.urls.url("node", "/segments/createDefaultTable"),
            Some(json!({})),
        )];
        let nodes: Vec<NodeInfo> = t
            .hosts
            .iter()
            .enumerate()
            .map(|(i, ip)| NodeInfo::for_agent(crate::topology::HOST_PREFIX, i, *ip, self.agent_port))
            .collect();
        for chunk in nodes.chunks(500) {
            out.push(call(
                Method::POST,
                self.urls.url("node", "/nodes/bulk"),
                Some(json!({ "host_infos": chunk })),
            ));
        }
        for (v, vpc) in t.vpcs.iter().enumerate() {
            let pid = self.pid(vpc.project);
            out.push(call(
                Method::POST,
                self.urls.url("vpc", &format!("/project/{pid}/vpcs")),
                Some(
                    json!({ "network": { "id": vpc.id, "project_id": pid, "name": format!("vpc-{v}"),
                                          "cidr": "10.0.0.0/8" } }),
                ),
            ));
            for &s in &vpc.subnets {
                let sn = &t.subnets[s];
                out.push(call(
                    Method::POST,
                    self.urls.url("subnet", &format!("/project/{pid}/subnets")),
                    Some(
                        json!({ "subnet": { "id": sn.id, "project_id": pid, "network_id": vpc.id,
                                             "cidr": sn.cidr, "ip_version": 4, "name": format!("subnet-{s}") } }),
                    ),
                ));
            }
            if let Some(r) = &vpc.router {
                out.push(call(
                    Method::POST,
                    self.urls.url("route", &format!("/project/{pid}/routers")),
                    Some(json!({ "router": { "id": r, "project_id": pid, "name": format!("router-{v}") } })),
                ));
                for &s in &vpc.subnets {
                    out.push(call(
                        Method::PUT,
                        self.urls
                            .url("route", &format!("/project/{pid}/routers/{r}/add_router_interface")),
                        Some(json!({ "subnet_id": t.subnets[s].id })),
                    ));
                }
            }
        }
        for g in &t.groups {
            let pid = self.pid(g.project);
            out.push(call(
                Method::POST,
                self.urls
                    .url("security_group", &format!("/project/{pid}/security-groups")),
                Some(json!({ "security_group": { "id": g.id, "project_id": pid, "name": g.name } })),
            ));
        }
        for g in &t.groups {
            let pid = self.pid(g.project);
            for r in &g.rules {
                let mut rule = json!({
                    "id": r.id, "security_group_id": g.id, "direction": r.direction, "ethertype": "IPv4",
                });
                if r.protocol != "any" {
                    rule["protocol"] = json!(r.protocol);
                }
                if let Some([lo, hi]) = r.ports {
                    rule["port_range_min"] = json!(lo);
                    rule["port_range_max"] = json!(hi);
                }
                if let Some(rg) = r.remote_group {
                    rule["remote_group_id"] = json!(t.groups[rg].id);
                }
                if let Some(p) = &r.remote_ip_prefix {
                    rule["remote_ip_prefix"] = json!(p);
                }
                out.push(call(
                    Method::POST,
                    self.urls
                        .url("security_group", &format!("/project/{pid}/security-group-rules")),
                    Some(json!({ "security_group_rule": rule })),
                ));
            }
        }
        out
    }
}

/// A request's outcome as the recorder counts it: `Ok`, or the failure kind (`http_409`,
/// `timeout`, `transport`). Reads the body so the connection goes back to the pool.
pub async fn outcome(resp: Result<reqwest::Response, reqwest::Error>) -> Result<(), String> {
    match resp {
        Ok(resp) => {
            let status = resp.status();
            let _ = resp.bytes().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("http_{}", status.as_u16()))
            }
        }
        Err(e) if e.is_timeout() => Err("timeout".into()),
        Err(_) => Err("transport".into()),
    }
}

/// Sends calls with one reqwest client; used for setup and by the open model.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    /// A client with a per-request timeout and enough idle connections per host for the
    /// driver's concurrency.
    pub fn new(timeout: std::time::Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .pool_max_idle_per_host(4096)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self { client })
    }

    fn request(&self, c: &HttpCall) -> reqwest::RequestBuilder {
        let req = self.client.request(c.method.clone(), &c.url);
        match &c.body {
            Some(b) => req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.clone()),
            None => req,
        }
    }

    /// Sends a call; `Err` carries the failure kind (`http_409`, `timeout`, `transport`).
    pub async fn send(&self, c: &HttpCall) -> Result<(), String> {
        outcome(self.request(c).send().await).await
    }

    /// Sends a setup call; failure is an error naming the call.
    pub async fn must(&self, c: &HttpCall) -> anyhow::Result<()> {
        let resp = self
            .request(c)
            .send()
            .await
            .with_context(|| format!("{} {}", c.method, c.url))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!(
                "{} {}: {status}: {}",
                c.method,
                c.url,
                text.chars().take(300).collect::<String>()
            );
        }
        Ok(())
    }
}

/// Pushes goal states straight to agents.
pub struct SouthboundTarget {
    ncm: Arc<Ncm>,
    topo: Arc<Topology>,
    /// Where every host's messages go: the fleet's addresses, or one real agent.
    host_addr: Vec<Ipv4Addr>,
    /// Members of each subnet: port id → (sequence number, host).
    members: Mutex<Vec<FxHashMap<String, (u64, usize)>>>,
}

impl std::fmt::Debug for SouthboundTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SouthboundTarget").finish_non_exhaustive()
    }
}

fn seq_of(id: &str) -> u64 {
    u64::from_str_radix(id.rsplit('-').next().unwrap_or("0"), 16).unwrap_or(0)
}

impl SouthboundTarget {
    /// Pushes with `ncm`; `host_addr` maps host index to the address pushed to.
    pub fn new(ncm: Arc<Ncm>, topo: Arc<Topology>, host_addr: Vec<Ipv4Addr>) -> Self {
        let n = topo.subnets.len();
        Self {
            ncm,
            topo,
            host_addr,
            members: Mutex::new(vec![FxHashMap::default(); n]),
        }
    }

    fn ip_of(&self, subnet: usize, seq: u64) -> Ipv4Addr {
        let base: Ipv4Addr = self.topo.subnets[subnet]
            .cidr
            .split('/')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(Ipv4Addr::new(10, 0, 0, 0));
        Ipv4Addr::from(u32::from(base) + 2 + (seq / self.topo.subnets.len() as u64) as u32)
    }

    fn message(&self, host: usize, gs: GoalStateV2, listed: Vec<ResourceIdType>, neighbors: u64) -> HostMessage {
        let mut gs = gs;
        gs.host_resources
            .insert(self.host_addr[host].to_string(), HostResources { resources: listed });
        let bytes = Bytes::from(gs.encode_to_vec());
        HostMessage {
            host: self.host_addr[host],
            counts: MessageCounts {
                ports: gs.port_states.len() as u64,
                neighbors,
                bytes: bytes.len() as u64,
                ..Default::default()
            },
            bytes,
        }
    }

    /// Creates (or deletes) `p`: its own host gets the port with every member of its subnet as
    /// neighbors (Alcor's shape), each host in `neighbors` gets the port as a neighbor.
    pub async fn apply(&self, op: Op, p: &PortPlan, neighbors: &[Ipv4Addr]) -> Result<(), String> {
        let t = &self.topo;
        let subnet = &t.subnets[p.subnet];
        let vpc = &t.vpcs[subnet.vpc].id;
        let seq = seq_of(&p.id);
        let ip = self.ip_of(p.subnet, seq);
        let mac = sample::mac(seq);
        let host_ip = t.hosts[p.host];
        let kind = if op == Op::Delete {
            OperationType::Delete
        } else {
            OperationType::Create
        };
        let mut messages = Vec::new();
        // Own host.
        let mut gs = GoalStateV2::default();
        let mut listed = Vec::new();
        let mut list = |t: ResourceType, id: &str| {
            listed.push(ResourceIdType {
                r#type: t as i32,
                id: id.into(),
            })
        };
        gs.vpc_states.insert(
            vpc.clone(),
            sample::vpc(OperationType::Info, vpc, 1000 + subnet.vpc as u32),
        );
        list(ResourceType::Vpc, vpc);
        gs.subnet_states.insert(
            subnet.id.clone(),
            sample::subnet(
                OperationType::Info,
                &subnet.id,
                vpc,
                &subnet.cidr,
                1000 + subnet.vpc as u64,
            ),
        );
        list(ResourceType::Subnet, &subnet.id);
        gs.port_states
            .insert(p.id.clone(), sample::port(kind, &p.id, vpc, &subnet.id, ip, &mac, &[]));
        list(ResourceType::Port, &p.id);
        let mut n_neighbors = 0;
        {
            let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
            let m = &mut members[p.subnet];
            if op == Op::Delete {
                m.remove(&p.id);
            } else {
                for (id, (s, h)) in m.iter() {
                    let key = neighbor_key(NeighborType::L2, id);
                    gs.neighbor_states.insert(
                        key.clone(),
                        sample::neighbor(
                            OperationType::Create,
                            NeighborType::L2,
                            id,
                            vpc,
                            &subnet.id,
                            self.ip_of(p.subnet, *s),
                            &sample::mac(*s),
                            t.hosts[*h],
                        ),
                    );
                    list(ResourceType::Neighbor, &key);
                    n_neighbors += 1;
                }
                m.insert(p.id.clone(), (seq, p.host));
            }
        }
        messages.push(self.message(p.host, gs, listed, n_neighbors));
        // Neighbor hosts.
        let key = neighbor_key(NeighborType::L2, &p.id);
        for n in neighbors {
            let Some(h) = t.hosts.iter().position(|x| x == n) else {
                continue;
            };
            let mut gs = GoalStateV2::default();
            gs.neighbor_states.insert(
                key.clone(),
                sample::neighbor(kind, NeighborType::L2, &p.id, vpc, &subnet.id, ip, &mac, host_ip),
            );
            let listed = vec![ResourceIdType {
                r#type: ResourceType::Neighbor as i32,
                id: key.clone(),
            }];
            messages.push(self.message(h, gs, listed, 1));
        }
        let results = self.ncm.push_all(messages).await;
        match results.iter().find(|r| !r.ok) {
            None => Ok(()),
            Some(r) => Err(if r.error.as_deref().is_some_and(|e| e.contains("timed out")) {
                "timeout".into()
            } else {
                "push_failed".into()
            }),
        }
    }
}

/// The target of a run.
#[derive(Debug, Clone)]
pub enum Target {
    /// Alcor's REST API (embedded or real).
    Rest(Arc<RestTarget>),
    /// Goal states pushed by the harness.
    Southbound(Arc<SouthboundTarget>),
}

/// Sends one planned operation to a target with the harness's own client; the latency is the
/// caller's to measure. `neighbors` are the hosts that must learn the port (southbound sends
/// to exactly those).
pub async fn send_op(
    target: &Target,
    http: &HttpClient,
    op: Op,
    p: &PortPlan,
    neighbors: &[Ipv4Addr],
) -> Result<(), String> {
    match target {
        Target::Rest(r) => {
            let c = match op {
                Op::Create => r.create(p),
                Op::Update => r.update(p),
                Op::Delete => r.delete(p),
            };
            http.send(&c).await
        }
        Target::Southbound(s) => s.apply(op, p, neighbors).await,
    }
}
