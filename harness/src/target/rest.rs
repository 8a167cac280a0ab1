//! Alcor's northbound REST API: the calls that build a topology and create, move and delete
//! ports, as [`HttpCall`]s that either engine sends.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use http::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::http::{Endpoint, HttpCall, Origin};
use crate::register::NodeInfo;
use crate::topology::{GroupPlan, PortPlan, Rule, RulePlan, Topology};

/// A port create's body, serialized straight from borrowed fields: this runs once per request,
/// and a `serde_json::Value` tree would allocate every key and value first. Alcor takes the
/// harness's id; Neutron refuses one (`id` absent).
#[derive(Serialize)]
pub(super) struct PortBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<&'a str>,
    pub(super) project_id: &'a str,
    pub(super) network_id: &'a str,
    pub(super) name: Prefixed<'a>,
    pub(super) fixed_ips: [FixedIp<'a>; 1],
    #[serde(rename = "binding:host_id")]
    pub(super) host_id: &'a str,
    pub(super) device_id: Prefixed<'a>,
    pub(super) device_owner: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) security_groups: Vec<&'a str>,
}

/// `prefix` and `rest` as one JSON string, written without building it first.
pub(super) struct Prefixed<'a>(pub(super) &'static str, pub(super) &'a str);

impl Serialize for Prefixed<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}{}", self.0, self.1))
    }
}

#[derive(Serialize)]
pub(super) struct FixedIp<'a> {
    pub(super) subnet_id: &'a str,
}

#[derive(Serialize)]
pub(super) struct One<T> {
    pub(super) port: T,
}

#[derive(Serialize)]
pub(super) struct Many<T> {
    pub(super) ports: Vec<T>,
}

#[derive(Serialize)]
pub(super) struct HostOnly<'a> {
    #[serde(rename = "binding:host_id")]
    pub(super) host_id: &'a str,
}

/// A port update of its security groups alone (join, leave).
#[derive(Serialize)]
pub(super) struct GroupsOnly<'a> {
    pub(super) security_groups: Vec<&'a str>,
}

pub(super) fn json_bytes<T: Serialize>(v: &T) -> Bytes {
    // Room for a port body at once rather than growing from a few bytes by doubling.
    let mut out = Vec::with_capacity(512);
    // Serializing these types cannot fail: no maps with non-string keys, no failing Serialize.
    let _ = serde_json::to_writer(&mut out, v);
    Bytes::from(out)
}

/// A security-group rule's fields as Alcor's and Neutron's APIs both take them, naming its
/// group and remote group by the ids the target knows them by.
pub(super) fn rule_json(r: &Rule, group: &str, remote_group: Option<&str>) -> Value {
    let mut rule = json!({ "security_group_id": group, "direction": r.direction, "ethertype": "IPv4" });
    if r.protocol != "any" {
        rule["protocol"] = json!(r.protocol);
    }
    if let Some([lo, hi]) = r.ports {
        rule["port_range_min"] = json!(lo);
        rule["port_range_max"] = json!(hi);
    }
    if let Some(rg) = remote_group {
        rule["remote_group_id"] = json!(rg);
    }
    if let Some(p) = &r.remote_ip_prefix {
        rule["remote_ip_prefix"] = json!(p);
    }
    rule
}

/// The body of a run's own rule (`sg_rule_add`): ingress TCP to the rule's own port, from the
/// remote group's members when it names one; `id` where the target takes the client's.
pub(super) fn added_rule_json(r: &RulePlan, id: Option<&str>, group: &str, remote_group: Option<&str>) -> Value {
    let mut rule = json!({ "security_group_id": group, "direction": "ingress", "ethertype": "IPv4",
                           "protocol": "tcp", "port_range_min": r.port, "port_range_max": r.port });
    if let Some(rg) = remote_group {
        rule["remote_group_id"] = json!(rg);
    }
    if let Some(id) = id {
        rule["id"] = json!(id);
    }
    json!({ "security_group_rule": rule })
}

/// Base URLs per Alcor service.
#[derive(Debug, Clone)]
pub struct ServiceUrls {
    by_service: BTreeMap<String, Base>,
    default: Base,
}

/// A service's base URL, split once: where to connect, and the path prefix of every call.
#[derive(Debug, Clone)]
struct Base {
    origin: Origin,
    prefix: String,
}

impl Base {
    fn parse(raw: &str) -> anyhow::Result<Self> {
        let url = crate::register::target_url(raw)?;
        Ok(Self {
            origin: Origin::of(&url)?,
            prefix: url.path().trim_end_matches('/').to_owned(),
        })
    }
}

impl ServiceUrls {
    /// One URL for every service, with per-service overrides.
    pub fn new(default: &str, overrides: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let default = Base::parse(default)?;
        let mut by_service = BTreeMap::new();
        for (k, v) in overrides {
            by_service.insert(k.clone(), Base::parse(v)?);
        }
        Ok(Self { by_service, default })
    }

    fn url(&self, service: &str, path: &str) -> Endpoint {
        let base = self.by_service.get(service).unwrap_or(&self.default);
        Endpoint::new(base.origin.clone(), format!("{}{}", base.prefix, path))
    }
}

/// Alcor's REST API.
#[derive(Debug, Clone)]
pub struct RestTarget {
    urls: ServiceUrls,
    topo: Arc<Topology>,
    /// The node names ports are bound to, once registered (a reused node keeps its own name).
    names: std::sync::OnceLock<Vec<String>>,
    agent_port: u16,
    /// Each project's port-create endpoint, built once: it is the same for every create.
    creates: Vec<Endpoint>,
}

fn call(method: Method, to: Endpoint, body: Option<Value>) -> HttpCall {
    HttpCall {
        method,
        to,
        body: body.as_ref().map(json_bytes),
    }
}

impl RestTarget {
    /// A target at `urls` for `topo`.
    pub fn new(urls: ServiceUrls, topo: Arc<Topology>, agent_port: u16) -> Self {
        let creates = topo
            .projects
            .iter()
            .map(|p| urls.url("port", &format!("/project/{}/ports", p.id)))
            .collect();
        Self {
            urls,
            topo,
            names: std::sync::OnceLock::new(),
            agent_port,
            creates,
        }
    }

    fn pid(&self, project: usize) -> &str {
        &self.topo.projects[project].id
    }

    /// The node name of host `h`.
    fn host_name(&self, h: usize) -> &str {
        self.names.get().map_or(&self.topo.host_names[h], |n| &n[h])
    }

    /// Registers the hosts as nodes (see [`register_nodes`]); ports are then bound to the names
    /// registered.
    pub async fn register(&self, conn: &mut super::Connection, mode: RegisterMode) -> anyhow::Result<Registered> {
        let t = &self.topo;
        let nodes: Vec<NodeInfo> = t
            .hosts
            .iter()
            .zip(&t.host_names)
            .map(|(ip, name)| NodeInfo::named(name.clone(), *ip, self.agent_port))
            .collect();
        let r = register_nodes(&self.urls, conn, &nodes, mode).await?;
        let _ = self.names.set(r.names.clone());
        Ok(r)
    }

    /// Removes the nodes a run created.
    pub async fn unregister(&self, conn: &mut super::Connection, created: &[String]) -> Vec<String> {
        unregister_nodes(&self.urls, conn, created).await
    }

    fn port_body<'a>(&'a self, p: &'a PortPlan) -> PortBody<'a> {
        let t = &self.topo;
        let subnet = &t.subnets[p.subnet];
        PortBody {
            id: Some(&p.id),
            project_id: self.pid(p.project),
            network_id: &t.vpcs[subnet.vpc].id,
            name: Prefixed("port-", &p.id),
            fixed_ips: [FixedIp { subnet_id: &subnet.id }],
            host_id: self.host_name(p.host),
            device_id: Prefixed("vm-", &p.id),
            device_owner: "compute:nova",
            security_groups: p.groups.iter().map(|g| t.groups[*g].id.as_str()).collect(),
        }
    }

    /// The call that creates `p`.
    pub fn create(&self, p: &PortPlan) -> HttpCall {
        HttpCall {
            method: Method::POST,
            to: self.creates[p.project].clone(),
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
            to: self.urls.url("port", &path),
            body: Some(json_bytes(&body)),
        }
    }

    /// The call that moves `p` to its (new) host.
    pub fn update(&self, p: &PortPlan) -> HttpCall {
        let path = format!("/project/{}/ports/{}", self.pid(p.project), p.id);
        HttpCall {
            method: Method::PUT,
            to: self.urls.url("port", &path),
            body: Some(json_bytes(&One {
                port: HostOnly {
                    host_id: self.host_name(p.host),
                },
            })),
        }
    }

    /// The call that deletes `p`.
    pub fn delete(&self, p: &PortPlan) -> HttpCall {
        let path = format!("/project/{}/ports/{}", self.pid(p.project), p.id);
        call(Method::DELETE, self.urls.url("port", &path), None)
    }

    /// The call that sets `p`'s security groups to its plan's (a join or a leave).
    pub fn set_groups(&self, p: &PortPlan) -> HttpCall {
        let path = format!("/project/{}/ports/{}", self.pid(p.project), p.id);
        HttpCall {
            method: Method::PUT,
            to: self.urls.url("port", &path),
            body: Some(json_bytes(&One {
                port: GroupsOnly {
                    security_groups: p.groups.iter().map(|g| self.topo.groups[*g].id.as_str()).collect(),
                },
            })),
        }
    }

    /// The call that adds rule `r`.
    pub fn add_rule(&self, r: &RulePlan) -> HttpCall {
        let t = &self.topo;
        let path = format!("/project/{}/security-group-rules", self.pid(r.project));
        let body = added_rule_json(
            r,
            Some(&r.id),
            &t.groups[r.group].id,
            r.remote_group.map(|g| t.groups[g].id.as_str()),
        );
        call(Method::POST, self.urls.url("security_group", &path), Some(body))
    }

    /// The call that creates empty group `g`.
    pub fn create_group(&self, g: &GroupPlan) -> HttpCall {
        let pid = self.pid(g.project);
        call(
            Method::POST,
            self.urls
                .url("security_group", &format!("/project/{pid}/security-groups")),
            Some(json!({ "security_group": { "id": g.id, "project_id": pid, "name": format!("group-{}", g.seq) } })),
        )
    }

    /// The call that deletes group `g`.
    pub fn delete_group(&self, g: &GroupPlan) -> HttpCall {
        let path = format!("/project/{}/security-groups/{}", self.pid(g.project), g.id);
        call(Method::DELETE, self.urls.url("security_group", &path), None)
    }

    /// The call that deletes rule `r`.
    pub fn delete_rule(&self, r: &RulePlan) -> HttpCall {
        let path = format!("/project/{}/security-group-rules/{}", self.pid(r.project), r.id);
        call(Method::DELETE, self.urls.url("security_group", &path), None)
    }

    /// The calls that build everything but nodes and ports, in order: VPCs, subnets, routers and
    /// their interfaces, security groups and rules (nodes: [`register_nodes`]).
    pub fn setup_calls(&self) -> Vec<HttpCall> {
        let t = &self.topo;
        let mut out = Vec::new();
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
                let mut rule = rule_json(r, &g.id, r.remote_group.map(|rg| t.groups[rg].id.as_str()));
                rule["id"] = json!(r.id);
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

/// What a run does with nodes its control plane already has (`[agents] register`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegisterMode {
    /// Delete a node that exists (by id) and register it anew.
    #[default]
    Replace,
    /// Keep a node that exists when it is the same agent (address and port), binding ports to
    /// it under its existing name.
    Reuse,
    /// Stop the run.
    Fail,
}

/// Nodes a run registered: what its end removes again.
#[derive(Debug, Clone, Default)]
pub struct Registered {
    /// The name to bind each host's ports to, by host index.
    pub names: Vec<String>,
    /// Ids of the nodes this run created (reused ones are not its to remove).
    pub created: Vec<String>,
}

/// Registers `nodes` with the control plane's node manager (Alcor's default segment table
/// first, then `/nodes/bulk` in batches), handling nodes that exist as `mode` says.
pub async fn register_nodes(
    urls: &ServiceUrls,
    conn: &mut super::Connection,
    nodes: &[NodeInfo],
    mode: RegisterMode,
) -> anyhow::Result<Registered> {
    conn.must(&call(
        Method::POST,
        urls.url("node", "/segments/createDefaultTable"),
        Some(json!({})),
    ))
    .await?;
    let mut out = Registered::default();
    for chunk in nodes.chunks(500) {
        let bulk = call(
            Method::POST,
            urls.url("node", "/nodes/bulk"),
            Some(json!({ "host_infos": chunk })),
        );
        match conn.send(&bulk).await {
            Ok(()) => {
                out.names.extend(chunk.iter().map(|n| n.node_name.clone()));
                out.created.extend(chunk.iter().map(|n| n.node_id.clone()));
                continue;
            }
            Err(e) if e == "http_409" => {}
            Err(_) => {
                conn.must(&bulk).await?;
            }
        }
        match mode {
            RegisterMode::Fail => {
                // Says what exists, in the control plane's words.
                let e = conn.must(&bulk).await.err();
                anyhow::bail!(
                    "{}; [agents] register = \"replace\" replaces nodes that exist, \"reuse\" keeps them",
                    e.map(|e| format!("{e:#}")).unwrap_or_else(|| "nodes exist".into())
                );
            }
            RegisterMode::Replace => {
                for n in chunk {
                    let del = call(Method::DELETE, urls.url("node", &format!("/nodes/{}", n.node_id)), None);
                    match conn.send(&del).await {
                        Ok(()) => {}
                        Err(e) if e == "http_404" => {}
                        Err(e) => anyhow::bail!("replacing node {}: DELETE answered {e}", n.node_id),
                    }
                }
                conn.must(&bulk).await?;
                out.names.extend(chunk.iter().map(|n| n.node_name.clone()));
                out.created.extend(chunk.iter().map(|n| n.node_id.clone()));
            }
            RegisterMode::Reuse => {
                for n in chunk {
                    let one = call(
                        Method::POST,
                        urls.url("node", "/nodes"),
                        Some(json!({ "host_info": n })),
                    );
                    match conn.send(&one).await {
                        Ok(()) => {
                            out.names.push(n.node_name.clone());
                            out.created.push(n.node_id.clone());
                        }
                        Err(e) if e == "http_409" => {
                            let get = call(Method::GET, urls.url("node", &format!("/nodes/{}", n.node_id)), None);
                            let body = conn.must(&get).await.with_context(|| {
                                format!(
                                    "node {} conflicts with one of another id or name, which cannot be reused",
                                    n.node_id
                                )
                            })?;
                            let v: Value = serde_json::from_slice(&body).context("GET /nodes/{id}: not JSON")?;
                            let have = &v["host_info"];
                            if have["local_ip"] != json!(n.local_ip) || have["server_port"] != json!(n.server_port) {
                                anyhow::bail!(
                                    "node {} exists at {}:{}, not at this agent's {}:{}: it cannot be reused",
                                    n.node_id,
                                    have["local_ip"],
                                    have["server_port"],
                                    n.local_ip,
                                    n.server_port
                                );
                            }
                            out.names
                                .push(have["node_name"].as_str().unwrap_or(&n.node_name).to_owned());
                        }
                        Err(e) => anyhow::bail!("registering node {}: {e}", n.node_id),
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Removes the nodes a run created; returns those that could not be removed, with why.
pub async fn unregister_nodes(urls: &ServiceUrls, conn: &mut super::Connection, ids: &[String]) -> Vec<String> {
    let mut left = Vec::new();
    for id in ids {
        let del = call(Method::DELETE, urls.url("node", &format!("/nodes/{id}")), None);
        match conn.send(&del).await {
            Ok(()) => {}
            Err(e) if e == "http_404" => {}
            Err(e) => left.push(format!("node {id} ({e})")),
        }
    }
    left
}
