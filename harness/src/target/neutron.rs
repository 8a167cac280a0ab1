//! OpenStack Neutron's v2.0 API (`target.kind = "neutron"`).
//!
//! Unlike Alcor's API as the harness drives it, Neutron chooses every id: the harness builds the
//! topology one call after the other, keeping each id from its create answer, and maps each
//! planned port (by its sequence number) to the id Neutron gave it, for rebinds, deletes and
//! status polls. Hosts are the ones Neutron's L2 agents report; nothing is registered. What the
//! run made is deleted at its end, in dependency order ([`NeutronTarget::clean`]).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use http::Method;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::http::{Connection, Endpoint, HttpCall, Origin};
use super::rest::{
    FixedIp, GroupsOnly, HostOnly, Many, One, PortBody, Prefixed, added_rule_json, json_bytes, rule_json,
};
use crate::topology::{GroupPlan, PortPlan, RulePlan, Topology};

/// Agent types whose hosts bind ports (L2 agents); DHCP, L3 and metadata agents do not.
const L2_AGENT_TYPES: [&str; 5] = [
    "Open vSwitch agent",
    "OVN Controller agent",
    "OVN Controller Gateway agent",
    "Linux bridge agent",
    "Macvtap agent",
];

/// A port whose create answered, to watch until Neutron reports it `ACTIVE`.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Neutron's id.
    pub id: Arc<str>,
    /// The harness's own id of the planned port (the correlator's key).
    pub planned: Arc<str>,
    /// When its create was answered: the earliest it can have been seen down.
    pub since: Instant,
}

/// Ids of what the run made, in the order made.
#[derive(Debug, Default)]
struct Made {
    /// By VPC index.
    networks: Vec<String>,
    /// By subnet index.
    subnets: Vec<String>,
    /// By VPC index, for VPCs with a router.
    routers: Vec<(usize, String)>,
    /// (router id, subnet id).
    interfaces: Vec<(String, String)>,
    /// By group index.
    groups: Vec<String>,
    /// Whether every resource but ports was made.
    complete: bool,
}

/// What the harness reads of a created port.
#[derive(Deserialize)]
struct CreatedPort {
    id: String,
    #[serde(rename = "binding:vif_type", default)]
    vif_type: Option<String>,
}

#[derive(Deserialize)]
struct CreatedOne {
    port: CreatedPort,
}

#[derive(Deserialize)]
struct CreatedMany {
    ports: Vec<CreatedPort>,
}

/// The id in a create's answer `{kind: {"id": …}}`; `bad_answer` without one.
fn answered_id(body: &[u8], kind: &str) -> Result<String, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "bad_answer".to_owned())?;
    v[kind]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "bad_answer".to_owned())
}

/// Where Neutron's v2.0 API is.
#[derive(Debug, Clone)]
pub struct Api {
    origin: Origin,
    /// `/v2.0` under the URL's own path.
    prefix: String,
}

impl Api {
    /// The API under `url`, its root (`http://127.0.0.1:9696`); `/v2.0` is added.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let url = crate::register::target_url(url)?;
        Ok(Self {
            origin: Origin::of(&url)?,
            prefix: format!("{}/v2.0", url.path().trim_end_matches('/')),
        })
    }

    /// `path` under `/v2.0`.
    pub fn endpoint(&self, path: &str) -> Endpoint {
        Endpoint::new(self.origin.clone(), format!("{}{path}", self.prefix))
    }
}

/// The hosts of Neutron's alive L2 agents, sorted: the hosts ports can be bound to.
pub async fn discover_hosts(api: &Api, conn: &mut Connection) -> anyhow::Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Agent {
        host: String,
        agent_type: String,
        #[serde(default)]
        alive: bool,
        #[serde(default = "yes")]
        admin_state_up: bool,
    }
    fn yes() -> bool {
        true
    }
    #[derive(Deserialize)]
    struct Agents {
        agents: Vec<Agent>,
    }
    let call = HttpCall {
        method: Method::GET,
        to: api.endpoint("/agents"),
        body: None,
    };
    let body = conn.must(&call).await?;
    let agents: Agents = serde_json::from_slice(&body).context("GET /v2.0/agents: unexpected answer")?;
    let hosts: BTreeSet<String> = agents
        .agents
        .into_iter()
        .filter(|a| a.alive && a.admin_state_up && L2_AGENT_TYPES.contains(&a.agent_type.as_str()))
        .map(|a| a.host)
        .collect();
    Ok(hosts.into_iter().collect())
}

/// Neutron's API.
#[derive(Debug)]
pub struct NeutronTarget {
    api: Api,
    topo: Arc<Topology>,
    made: RwLock<Made>,
    /// Neutron's id of every port the run created and has not deleted, by sequence number.
    ports: Mutex<FxHashMap<u64, Arc<str>>>,
    /// Neutron's id of every rule the run added (`sg_rule_add`) and has not deleted, by
    /// sequence number. Left ones go with their groups at the end.
    rules: Mutex<FxHashMap<u64, String>>,
    /// Neutron's id of every group the run created in its load (`sg_group_create`) and has not
    /// deleted, by sequence number; deleted at the end with the topology's.
    groups: Mutex<FxHashMap<u64, String>>,
    watch: Option<mpsc::UnboundedSender<Watch>>,
    /// Ports Neutron could not bind (no alive agent serves their host), with their hosts.
    binding_failed: AtomicU64,
    unbound_hosts: Mutex<BTreeSet<usize>>,
}

impl NeutronTarget {
    /// A target at `url` (the API root; `/v2.0` is added) for `topo`. Created ports go to
    /// `watch`, when given, to be polled until `ACTIVE`.
    pub fn new(api: Api, topo: Arc<Topology>, watch: Option<mpsc::UnboundedSender<Watch>>) -> Self {
        Self {
            api,
            topo,
            made: RwLock::default(),
            ports: Mutex::default(),
            rules: Mutex::default(),
            groups: Mutex::default(),
            watch,
            binding_failed: AtomicU64::new(0),
            unbound_hosts: Mutex::default(),
        }
    }

    /// `path` under `/v2.0`.
    pub fn endpoint(&self, path: &str) -> Endpoint {
        self.api.endpoint(path)
    }

    fn call(&self, method: Method, path: &str, body: Option<Value>) -> HttpCall {
        HttpCall {
            method,
            to: self.endpoint(path),
            body: body.as_ref().map(json_bytes),
        }
    }

    fn made(&self) -> std::sync::RwLockReadGuard<'_, Made> {
        self.made.read().unwrap_or_else(|e| e.into_inner())
    }

    fn ports(&self) -> std::sync::MutexGuard<'_, FxHashMap<u64, Arc<str>>> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates everything but ports, in order, keeping Neutron's ids: networks (one per VPC),
    /// subnets, routers and their interfaces, security groups and their rules. What was made
    /// before a failure is still cleaned up by [`clean`](Self::clean).
    pub async fn build(&self, conn: &mut Connection) -> anyhow::Result<()> {
        let t = self.topo.clone();
        let made = || self.made.write().unwrap_or_else(|e| e.into_inner());
        for (v, vpc) in t.vpcs.iter().enumerate() {
            let pid = &t.projects[vpc.project].id;
            let net = self
                .create_one(
                    conn,
                    "networks",
                    "network",
                    json!({ "name": format!("alcor-scale-vpc-{v}"), "project_id": pid }),
                )
                .await?;
            made().networks.push(net.clone());
            for &s in &vpc.subnets {
                let body = json!({ "network_id": net, "project_id": pid, "cidr": t.subnets[s].cidr,
                                   "ip_version": 4, "name": format!("alcor-scale-subnet-{s}") });
                let id = self.create_one(conn, "subnets", "subnet", body).await?;
                made().subnets.push(id);
            }
            if vpc.router.is_some() {
                let body = json!({ "name": format!("alcor-scale-router-{v}"), "project_id": pid });
                let router = self.create_one(conn, "routers", "router", body).await?;
                made().routers.push((v, router.clone()));
                for &s in &vpc.subnets {
                    let subnet = self.made().subnets[s].clone();
                    conn.must(&self.call(
                        Method::PUT,
                        &format!("/routers/{router}/add_router_interface"),
                        Some(json!({ "subnet_id": subnet })),
                    ))
                    .await?;
                    made().interfaces.push((router.clone(), subnet));
                }
            }
        }
        for g in &t.groups {
            let body = json!({ "name": format!("alcor-scale-{}", g.name), "project_id": t.projects[g.project].id });
            let id = self.create_one(conn, "security-groups", "security_group", body).await?;
            made().groups.push(id);
        }
        for (gi, g) in t.groups.iter().enumerate() {
            for r in &g.rules {
                let c = {
                    let made = self.made();
                    let mut rule = rule_json(r, &made.groups[gi], r.remote_group.map(|rg| made.groups[rg].as_str()));
                    rule["project_id"] = json!(t.projects[g.project].id);
                    self.call(
                        Method::POST,
                        "/security-group-rules",
                        Some(json!({ "security_group_rule": rule })),
                    )
                };
                conn.must(&c).await?;
            }
        }
        made().complete = true;
        Ok(())
    }

    /// `POST /v2.0/{path}` with `{kind: fields}`; the id Neutron gave it.
    async fn create_one(&self, conn: &mut Connection, path: &str, kind: &str, fields: Value) -> anyhow::Result<String> {
        let body = conn
            .must(&self.call(Method::POST, &format!("/{path}"), Some(json!({ kind: fields }))))
            .await?;
        let v: Value = serde_json::from_slice(&body).with_context(|| format!("creating a {kind}: not JSON"))?;
        v[kind]["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("creating a {kind}: the answer has no {kind}.id"))
    }

    fn port_body<'a>(&'a self, made: &'a Made, p: &'a PortPlan) -> Result<PortBody<'a>, String> {
        let topo = &*self.topo;
        let subnet = &topo.subnets[p.subnet];
        let (Some(network), Some(subnet_id)) = (made.networks.get(subnet.vpc), made.subnets.get(p.subnet)) else {
            return Err("not_built".into());
        };
        Ok(PortBody {
            id: None,
            project_id: &topo.projects[p.project].id,
            network_id: network,
            name: Prefixed("port-", &p.id),
            fixed_ips: [FixedIp { subnet_id }],
            host_id: &topo.host_names[p.host],
            device_id: Prefixed("vm-", &p.id),
            device_owner: "compute:nova",
            security_groups: p
                .groups
                .iter()
                .filter_map(|g| made.groups.get(*g).map(String::as_str))
                .collect(),
        })
    }

    /// The call that creates `p`.
    pub fn create(&self, p: &PortPlan) -> Result<HttpCall, String> {
        let made = self.made();
        let body = json_bytes(&One {
            port: self.port_body(&made, p)?,
        });
        Ok(HttpCall {
            method: Method::POST,
            to: self.endpoint("/ports"),
            body: Some(body),
        })
    }

    /// One call creating several ports (Neutron's bulk create: the same path, a list body).
    pub fn create_bulk(&self, ports: &[PortPlan]) -> Result<HttpCall, String> {
        let made = self.made();
        let body = Many {
            ports: ports
                .iter()
                .map(|p| self.port_body(&made, p))
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(HttpCall {
            method: Method::POST,
            to: self.endpoint("/ports"),
            body: Some(json_bytes(&body)),
        })
    }

    fn port_id(&self, p: &PortPlan) -> Result<Arc<str>, String> {
        // A port whose create failed has no id; the model never picks it, but a rebind or delete
        // of a port made by an earlier run's map would land here.
        self.ports().get(&p.seq).cloned().ok_or_else(|| "no_id".to_owned())
    }

    /// The call that rebinds `p` to its (new) host.
    pub fn update(&self, p: &PortPlan) -> Result<HttpCall, String> {
        let id = self.port_id(p)?;
        Ok(HttpCall {
            method: Method::PUT,
            to: self.endpoint(&format!("/ports/{id}")),
            body: Some(json_bytes(&One {
                port: HostOnly {
                    host_id: &self.topo.host_names[p.host],
                },
            })),
        })
    }

    /// The call that deletes `p`.
    pub fn delete(&self, p: &PortPlan) -> Result<HttpCall, String> {
        let id = self.port_id(p)?;
        Ok(self.call(Method::DELETE, &format!("/ports/{id}"), None))
    }

    /// The call that sets `p`'s security groups to its plan's (a join or a leave).
    pub fn set_groups(&self, p: &PortPlan) -> Result<HttpCall, String> {
        let id = self.port_id(p)?;
        let made = self.made();
        let body = json_bytes(&One {
            port: GroupsOnly {
                security_groups: p
                    .groups
                    .iter()
                    .filter_map(|g| made.groups.get(*g).map(String::as_str))
                    .collect(),
            },
        });
        Ok(HttpCall {
            method: Method::PUT,
            to: self.endpoint(&format!("/ports/{id}")),
            body: Some(body),
        })
    }

    /// The call that adds rule `r` (Neutron chooses its id: [`Self::answered_rule`]).
    pub fn add_rule(&self, r: &RulePlan) -> Result<HttpCall, String> {
        let made = self.made();
        let group = made.groups.get(r.group).ok_or("not_built")?;
        let remote = match r.remote_group {
            Some(g) => Some(made.groups.get(g).ok_or("not_built")?.as_str()),
            None => None,
        };
        Ok(self.call(
            Method::POST,
            "/security-group-rules",
            Some(added_rule_json(r, None, group, remote)),
        ))
    }

    /// Learns the id Neutron gave an added rule.
    pub fn answered_rule(&self, r: &RulePlan, body: &[u8]) -> Result<(), String> {
        let id = answered_id(body, "security_group_rule")?;
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).insert(r.seq, id);
        Ok(())
    }

    /// The call that deletes added rule `r`.
    pub fn delete_rule(&self, r: &RulePlan) -> Result<HttpCall, String> {
        let rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let id = rules.get(&r.seq).ok_or("no_id")?;
        Ok(self.call(Method::DELETE, &format!("/security-group-rules/{id}"), None))
    }

    /// The call that creates empty group `g` (Neutron chooses its id).
    pub fn create_group(&self, g: &GroupPlan) -> HttpCall {
        let project = &self.topo.projects[g.project].id;
        self.call(
            Method::POST,
            "/security-groups",
            Some(json!({ "security_group": { "name": format!("group-{}", g.seq), "project_id": project } })),
        )
    }

    /// Learns the id Neutron gave a created group.
    pub fn answered_group(&self, g: &GroupPlan, body: &[u8]) -> Result<(), String> {
        let id = answered_id(body, "security_group")?;
        self.groups.lock().unwrap_or_else(|e| e.into_inner()).insert(g.seq, id);
        Ok(())
    }

    /// The call that deletes created group `g`.
    pub fn delete_group(&self, g: &GroupPlan) -> Result<HttpCall, String> {
        let groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let id = groups.get(&g.seq).ok_or("no_id")?;
        Ok(self.call(Method::DELETE, &format!("/security-groups/{id}"), None))
    }

    /// A created group's delete succeeded.
    pub fn group_deleted(&self, g: &GroupPlan) {
        self.groups.lock().unwrap_or_else(|e| e.into_inner()).remove(&g.seq);
    }

    /// An added rule's delete succeeded.
    pub fn rule_deleted(&self, r: &RulePlan) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).remove(&r.seq);
    }

    fn created(&self, p: &PortPlan, port: CreatedPort, answered: Instant) {
        if port.vif_type.as_deref() == Some("binding_failed") {
            self.binding_failed.fetch_add(1, Ordering::Relaxed);
            self.unbound_hosts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(p.host);
        }
        let id: Arc<str> = port.id.into();
        self.ports().insert(p.seq, id.clone());
        if let Some(w) = &self.watch {
            let _ = w.send(Watch {
                id,
                planned: p.id.as_str().into(),
                since: answered,
            });
        }
    }

    /// Learns from a successful create's answer the id Neutron gave the port; a rebind's
    /// answer says nothing new, a delete forgets the id. `Err` names an answer without an id.
    pub fn answered_create(&self, p: &PortPlan, body: &[u8]) -> Result<(), String> {
        let c: CreatedOne = serde_json::from_slice(body).map_err(|_| "bad_answer".to_owned())?;
        self.created(p, c.port, Instant::now());
        Ok(())
    }

    /// A delete succeeded.
    pub fn deleted(&self, p: &PortPlan) {
        self.ports().remove(&p.seq);
    }

    /// Learns the ids of a bulk create, which Neutron answers in the order asked.
    pub fn answered_bulk(&self, ports: &[PortPlan], body: &[u8]) -> Result<(), String> {
        let c: CreatedMany = serde_json::from_slice(body).map_err(|_| "bad_answer".to_owned())?;
        if c.ports.len() != ports.len() {
            return Err("bad_answer".into());
        }
        let now = Instant::now();
        for (p, made) in ports.iter().zip(c.ports) {
            self.created(p, made, now);
        }
        Ok(())
    }

    /// Ports Neutron could not bind, and the hosts they were meant for: a warning for the run.
    pub fn binding_warning(&self) -> Option<String> {
        let n = self.binding_failed.load(Ordering::Relaxed);
        if n == 0 {
            return None;
        }
        let hosts = self.unbound_hosts.lock().unwrap_or_else(|e| e.into_inner());
        let names: Vec<&str> = hosts
            .iter()
            .take(5)
            .map(|h| self.topo.host_names[*h].as_str())
            .collect();
        Some(format!(
            "Neutron failed to bind {n} port(s) (binding:vif_type = binding_failed) on {} host(s), e.g. {}: no alive agent \
             serves them, so Neutron retried each binding before answering. Use target.hosts = \"discover\" or start agents \
             on those hosts.",
            hosts.len(),
            names.join(", ")
        ))
    }

    /// Deletes whatever the run made, in dependency order: ports left, router interfaces,
    /// routers, security groups (their rules go with them), subnets, networks, then the default
    /// security group Neutron made for each project the run used. Returns what could not be
    /// deleted, each with why. Bounded by `limit`.
    pub async fn clean(&self, conn: &mut Connection, limit: Duration) -> Vec<String> {
        let until = Instant::now() + limit;
        let mut left = Vec::new();
        let del = async |conn: &mut Connection, what: String, c: HttpCall, left: &mut Vec<String>| {
            if Instant::now() >= until {
                left.push(format!("{what} (cleanup ran out of time)"));
                return;
            }
            match conn.send(&c).await {
                Ok(()) => {}
                // Already gone: as good as deleted.
                Err(e) if e == "http_404" => {}
                Err(e) => left.push(format!("{what} ({e})")),
            }
        };
        let ports: Vec<Arc<str>> = self.ports().drain().map(|(_, id)| id).collect();
        if !ports.is_empty() {
            tracing::info!(ports = ports.len(), "deleting the ports the run left in Neutron");
        }
        for id in ports {
            let c = self.call(Method::DELETE, &format!("/ports/{id}"), None);
            del(conn, format!("port {id}"), c, &mut left).await;
        }
        let made = std::mem::take(&mut *self.made.write().unwrap_or_else(|e| e.into_inner()));
        for (router, subnet) in &made.interfaces {
            let c = self.call(
                Method::PUT,
                &format!("/routers/{router}/remove_router_interface"),
                Some(json!({ "subnet_id": subnet })),
            );
            del(
                conn,
                format!("interface of router {router} on subnet {subnet}"),
                c,
                &mut left,
            )
            .await;
        }
        for (_, router) in &made.routers {
            let c = self.call(Method::DELETE, &format!("/routers/{router}"), None);
            del(conn, format!("router {router}"), c, &mut left).await;
        }
        // The topology's groups, and those the load created and did not delete.
        let created: Vec<String> = self
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, id)| id)
            .collect();
        for g in made.groups.iter().chain(&created) {
            let c = self.call(Method::DELETE, &format!("/security-groups/{g}"), None);
            del(conn, format!("security group {g}"), c, &mut left).await;
        }
        for s in &made.subnets {
            let c = self.call(Method::DELETE, &format!("/subnets/{s}"), None);
            del(conn, format!("subnet {s}"), c, &mut left).await;
        }
        for n in &made.networks {
            let c = self.call(Method::DELETE, &format!("/networks/{n}"), None);
            del(conn, format!("network {n}"), c, &mut left).await;
        }
        // Neutron makes a project's default group on its first request; the run's projects are
        // its own (their ids carry the run's tag), so their default groups go too.
        for p in &self.topo.projects {
            let list = self.call(
                Method::GET,
                &format!("/security-groups?project_id={}&name=default&fields=id", p.id),
                None,
            );
            let Ok(body) = conn.send_for_body(&list).await else {
                continue;
            };
            let ids: Vec<String> = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| {
                    v["security_groups"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|g| g["id"].as_str().map(str::to_owned)).collect())
                })
                .unwrap_or_default();
            for g in ids {
                let c = self.call(Method::DELETE, &format!("/security-groups/{g}"), None);
                del(conn, format!("default security group {g} of {}", p.id), c, &mut left).await;
            }
        }
        left
    }

    /// Whether every resource but ports was made.
    pub fn built(&self) -> bool {
        self.made().complete
    }
}

/// The error of a run against a Neutron with no host to bind ports to.
pub fn no_hosts(url: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "Neutron at {url} reports no alive L2 agent (GET /v2.0/agents): no host can bind a port. Start agents \
         (scripts/neutron-up.sh --agents N registers simulated ones) or list hosts in target.hosts"
    )
}

/// Checks a host list given in the scenario against what Neutron reports, warning about hosts
/// no agent serves (their ports would fail binding, slowly).
pub fn check_hosts(given: &[String], alive: &[String]) -> Option<String> {
    let missing: Vec<&String> = given.iter().filter(|h| !alive.contains(h)).collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "{} of the {} hosts in target.hosts have no alive L2 agent in Neutron (e.g. {}): ports bound there will fail binding",
        missing.len(),
        given.len(),
        missing
            .iter()
            .take(3)
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_no_agent_serves_are_named() {
        let alive = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(check_hosts(&["a".into(), "b".into()], &alive), None);
        let w = check_hosts(&["a".into(), "ghost".into()], &alive).unwrap();
        assert!(w.starts_with("1 of the 2 hosts") && w.contains("ghost"), "{w}");
    }
}
