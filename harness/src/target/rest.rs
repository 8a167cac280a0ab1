//! Alcor's northbound REST API: the calls that build a topology and create, move and delete
//! ports, as [`HttpCall`]s that either engine sends.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use serde::Serialize;
use serde_json::{Value, json};

use super::http::{Endpoint, HttpCall, Origin};
use crate::register::NodeInfo;
use crate::topology::{PortPlan, Rule, Topology};

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
            agent_port,
            creates,
        }
    }

    fn pid(&self, project: usize) -> &str {
        &self.topo.projects[project].id
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
            host_id: &t.host_names[p.host],
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
