//! VPCs (`{"network":…}`), subnets and routers (§3.4, §3.5, §3.8).

use std::net::Ipv4Addr;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ipnet::Ipv4Net;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Stages, parse, project};
use crate::error::ApiError;
use crate::model::ipam::default_gateway;
use crate::model::{Ipam, Router, Store, Subnet, Vpc};

#[derive(Debug, Deserialize)]
pub(crate) struct VpcReq {
    id: Option<String>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    name: Option<String>,
    cidr: Option<String>,
    #[serde(rename = "provider:segmentation_id")]
    segmentation_id: Option<u32>,
    #[serde(rename = "provider:network_type")]
    network_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VpcOne {
    network: VpcReq,
}

#[derive(Debug, Deserialize)]
struct VpcBulk {
    #[serde(alias = "networks")]
    vpcs: Vec<VpcReq>,
}

fn vpc_json(v: &Vpc) -> Value {
    json!({
        "id": v.id, "name": v.name, "project_id": v.project_id, "tenant_id": v.project_id,
        "cidr": v.cidr.map(|c| c.to_string()), "admin_state_up": true, "status": "ACTIVE",
        "provider:segmentation_id": v.segmentation_id, "provider:network_type": v.network_type,
        "subnets": v.subnets, "availability_zones": ["nova"], "router:external": false, "shared": false,
    })
}

fn new_vpc(store: &mut Store, pid: &str, req: VpcReq, field: &str, batch: &[Vpc]) -> Result<Vpc, ApiError> {
    let id = req.id.filter(|i| !i.is_empty()).unwrap_or_else(|| store.new_id(0x01));
    if store.vpcs.contains_key(&id) || batch.iter().any(|v| v.id == id) {
        return Err(ApiError::conflict(
            format!("{field}.id"),
            format!("network {id} exists"),
        ));
    }
    let cidr = req
        .cidr
        .as_deref()
        .map(|c| {
            c.parse::<Ipv4Net>()
                .map_err(|_| ApiError::bad(format!("{field}.cidr"), format!("`{c}` is not an IPv4 CIDR")))
        })
        .transpose()?;
    let network_type = req.network_type.unwrap_or_else(|| "vxlan".into());
    if !matches!(network_type.as_str(), "vxlan" | "vlan" | "gre" | "geneve") {
        return Err(ApiError::bad(
            format!("{field}.provider:network_type"),
            "expected vxlan, vlan, gre or geneve",
        ));
    }
    let wanted = req.segmentation_id;
    if let Some(w) = wanted
        && batch.iter().any(|v| v.segmentation_id == w)
    {
        return Err(ApiError::conflict(
            format!("{field}.provider:segmentation_id"),
            format!("{w} is in use"),
        ));
    }
    let segmentation_id = store.segment(wanted).map_err(|e| match e {
        ApiError::BadRequest { message, .. } => ApiError::bad(format!("{field}.provider:segmentation_id"), message),
        ApiError::Conflict { message, .. } => ApiError::conflict(format!("{field}.provider:segmentation_id"), message),
        other => other,
    })?;
    Ok(Vpc {
        id,
        project_id: project(&req.project_id, &req.tenant_id, pid),
        name: req.name.unwrap_or_default(),
        cidr,
        segmentation_id,
        network_type,
        subnets: Vec::new(),
    })
}

pub(crate) async fn create_vpc(
    State(s): State<AppState>,
    Path(pid): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: VpcOne = parse(&body)?;
    let mut inner = s.lock();
    let vpc = new_vpc(&mut inner.store, &pid, req.network, "network", &[])?;
    let out = vpc_json(&vpc);
    inner.store.vpcs.insert(vpc.id.clone(), vpc);
    Ok((StatusCode::CREATED, Json(json!({ "network": out }))))
}

pub(crate) async fn create_vpcs_bulk(
    State(s): State<AppState>,
    Path(pid): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: VpcBulk = parse(&body)?;
    let mut inner = s.lock();
    let mut vpcs = Vec::new();
    for (i, v) in req.vpcs.into_iter().enumerate() {
        let vpc = new_vpc(&mut inner.store, &pid, v, &format!("networks[{i}]"), &vpcs)?;
        vpcs.push(vpc);
    }
    let out: Vec<Value> = vpcs.iter().map(vpc_json).collect();
    for v in vpcs {
        inner.store.vpcs.insert(v.id.clone(), v);
    }
    Ok((StatusCode::CREATED, Json(json!({ "networks": out }))))
}

pub(crate) async fn list_vpcs(State(s): State<AppState>) -> Json<Value> {
    let inner = s.lock();
    Json(json!({ "networks": inner.store.vpcs.values().map(vpc_json).collect::<Vec<_>>() }))
}

pub(crate) async fn get_vpc(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let inner = s.lock();
    let v = inner
        .store
        .vpcs
        .get(&id)
        .ok_or_else(|| ApiError::not_found("network_id", "network", &id))?;
    Ok(Json(json!({ "network": vpc_json(v) })))
}

pub(crate) async fn delete_vpc(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut inner = s.lock();
    let v = inner
        .store
        .vpcs
        .get(&id)
        .ok_or_else(|| ApiError::not_found("network_id", "network", &id))?;
    if !v.subnets.is_empty() {
        return Err(ApiError::conflict(
            "network_id",
            format!("network {id} has {} subnet(s)", v.subnets.len()),
        ));
    }
    inner.store.vpcs.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(crate) struct SubnetReq {
    id: Option<String>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    network_id: Option<String>,
    name: Option<String>,
    cidr: Option<String>,
    ip_version: Option<u8>,
    gateway_ip: Option<String>,
    enable_dhcp: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct SubnetOne {
    subnet: SubnetReq,
}

#[derive(Debug, Deserialize)]
struct SubnetBulk {
    subnets: Vec<SubnetReq>,
}

fn subnet_json(s: &Subnet) -> Value {
    let net = s.cidr;
    let first = Ipv4Addr::from(u32::from(net.network()) + 2);
    let last = Ipv4Addr::from(u32::from(net.broadcast()).saturating_sub(1));
    json!({
        "id": s.id, "name": s.name, "project_id": s.project_id, "tenant_id": s.project_id,
        "network_id": s.vpc_id, "cidr": s.cidr.to_string(), "ip_version": 4,
        "gateway_ip": s.gateway_ip.to_string(), "enable_dhcp": s.enable_dhcp,
        "allocation_pools": [{ "start": first.to_string(), "end": last.to_string() }],
        "gateway_port_detail": { "gateway_macAddress": s.gateway_mac, "gateway_port_id": s.gateway_port_id },
        "attached_router_id": s.router_id,
    })
}

fn new_subnet(store: &mut Store, pid: &str, req: SubnetReq, field: &str, batch: &[Subnet]) -> Result<Subnet, ApiError> {
    let vpc_id = req
        .network_id
        .ok_or_else(|| ApiError::bad(format!("{field}.network_id"), "required"))?;
    if !store.vpcs.contains_key(&vpc_id) {
        return Err(ApiError::not_found(format!("{field}.network_id"), "network", &vpc_id));
    }
    if let Some(v) = req.ip_version
        && v != 4
    {
        return Err(ApiError::bad(
            format!("{field}.ip_version"),
            "only IPv4 (4) is supported",
        ));
    }
    let cidr_s = req
        .cidr
        .ok_or_else(|| ApiError::bad(format!("{field}.cidr"), "required"))?;
    let cidr: Ipv4Net = cidr_s
        .parse()
        .map_err(|_| ApiError::bad(format!("{field}.cidr"), format!("`{cidr_s}` is not an IPv4 CIDR")))?;
    if cidr.prefix_len() > 30 {
        return Err(ApiError::bad(
            format!("{field}.cidr"),
            "prefix longer than /30 leaves no port addresses",
        ));
    }
    let cidr = cidr.trunc();
    let id = req.id.filter(|i| !i.is_empty()).unwrap_or_else(|| store.new_id(0x02));
    if store.subnets.contains_key(&id) || batch.iter().any(|s| s.id == id) {
        return Err(ApiError::conflict(format!("{field}.id"), format!("subnet {id} exists")));
    }
    let overlapping = store
        .subnets
        .values()
        .chain(batch.iter())
        .find(|s| s.vpc_id == vpc_id && (s.cidr.contains(&cidr.network()) || cidr.contains(&s.cidr.network())));
    if let Some(o) = overlapping {
        return Err(ApiError::conflict(
            format!("{field}.cidr"),
            format!("{cidr} overlaps subnet {} ({})", o.id, o.cidr),
        ));
    }
    let gateway_ip = match req.gateway_ip.as_deref().filter(|g| !g.is_empty()) {
        None => default_gateway(cidr),
        Some(g) => {
            let ip: Ipv4Addr = g
                .parse()
                .map_err(|_| ApiError::bad(format!("{field}.gateway_ip"), format!("`{g}` is not an IPv4 address")))?;
            if !cidr.contains(&ip) || ip == cidr.network() || ip == cidr.broadcast() {
                return Err(ApiError::bad(
                    format!("{field}.gateway_ip"),
                    format!("{ip} is not a host address of {cidr}"),
                ));
            }
            ip
        }
    };
    let project_id = project(&req.project_id, &req.tenant_id, pid);
    Ok(Subnet {
        gateway_port_id: store.new_id(0x0b),
        gateway_mac: store.new_mac(),
        id,
        project_id,
        vpc_id,
        name: req.name.unwrap_or_default(),
        cidr,
        gateway_ip,
        enable_dhcp: req.enable_dhcp.unwrap_or(true),
        router_id: None,
        ipam: Ipam::new(cidr, gateway_ip),
    })
}

fn insert_subnet(store: &mut Store, s: Subnet) {
    if let Some(v) = store.vpcs.get_mut(&s.vpc_id) {
        v.subnets.push(s.id.clone());
    }
    store.subnets.insert(s.id.clone(), s);
}

pub(crate) async fn create_subnet(
    State(s): State<AppState>,
    Path(pid): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: SubnetOne = parse(&body)?;
    let mut inner = s.lock();
    let subnet = new_subnet(&mut inner.store, &pid, req.subnet, "subnet", &[])?;
    let out = subnet_json(&subnet);
    insert_subnet(&mut inner.store, subnet);
    Ok((StatusCode::CREATED, Json(json!({ "subnet": out }))))
}

pub(crate) async fn create_subnets_bulk(
    State(s): State<AppState>,
    Path(pid): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: SubnetBulk = parse(&body)?;
    let mut inner = s.lock();
    let mut subnets = Vec::new();
    for (i, r) in req.subnets.into_iter().enumerate() {
        let subnet = new_subnet(&mut inner.store, &pid, r, &format!("subnets[{i}]"), &subnets)?;
        subnets.push(subnet);
    }
    let out: Vec<Value> = subnets.iter().map(subnet_json).collect();
    for sn in subnets {
        insert_subnet(&mut inner.store, sn);
    }
    Ok((StatusCode::CREATED, Json(json!({ "subnets": out }))))
}

pub(crate) async fn list_subnets(State(s): State<AppState>) -> Json<Value> {
    let inner = s.lock();
    Json(json!({ "subnets": inner.store.subnets.values().map(subnet_json).collect::<Vec<_>>() }))
}

pub(crate) async fn get_subnet(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let inner = s.lock();
    let sn = inner
        .store
        .subnets
        .get(&id)
        .ok_or_else(|| ApiError::not_found("subnet_id", "subnet", &id))?;
    Ok(Json(json!({ "subnet": subnet_json(sn) })))
}

pub(crate) async fn delete_subnet(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut inner = s.lock();
    let store = &mut inner.store;
    let sn = store
        .subnets
        .get(&id)
        .ok_or_else(|| ApiError::not_found("subnet_id", "subnet", &id))?;
    if sn.ipam.used() > 0 {
        return Err(ApiError::conflict(
            "subnet_id",
            format!("subnet {id} has {} port(s)", sn.ipam.used()),
        ));
    }
    if let Some(r) = &sn.router_id {
        return Err(ApiError::conflict(
            "subnet_id",
            format!("subnet {id} is attached to router {r}"),
        ));
    }
    let vpc_id = sn.vpc_id.clone();
    store.subnets.remove(&id);
    if let Some(v) = store.vpcs.get_mut(&vpc_id) {
        v.subnets.retain(|s| s != &id);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(crate) struct RouterReq {
    id: Option<String>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RouterOne {
    router: RouterReq,
}

#[derive(Debug, Deserialize)]
struct InterfaceReq {
    subnet_id: Option<String>,
}

fn router_json(r: &Router) -> Value {
    json!({
        "id": r.id, "name": r.name, "project_id": r.project_id, "tenant_id": r.project_id,
        "status": "ACTIVE", "admin_state_up": true, "subnets": r.subnets,
    })
}

pub(crate) async fn create_router(
    State(s): State<AppState>,
    Path(pid): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = parse::<RouterOne>(&body)?.router;
    let mut inner = s.lock();
    let store = &mut inner.store;
    let id = req
        .id
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| store.new_id(0x06));
    if store.routers.contains_key(&id) {
        return Err(ApiError::conflict("router.id", format!("router {id} exists")));
    }
    let router = Router {
        id: id.clone(),
        project_id: project(&req.project_id, &req.tenant_id, &pid),
        name: req.name.clone().unwrap_or_default(),
        subnets: Vec::new(),
    };
    let out = router_json(&router);
    store.routers.insert(id, router);
    Ok((StatusCode::CREATED, Json(json!({ "router": out }))))
}

pub(crate) async fn list_routers(State(s): State<AppState>) -> Json<Value> {
    let inner = s.lock();
    Json(json!({ "routers": inner.store.routers.values().map(router_json).collect::<Vec<_>>() }))
}

pub(crate) async fn get_router(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let inner = s.lock();
    let r = inner
        .store
        .routers
        .get(&id)
        .ok_or_else(|| ApiError::not_found("router_id", "router", &id))?;
    Ok(Json(json!({ "router": router_json(r) })))
}

pub(crate) async fn delete_router(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut inner = s.lock();
    let r = inner
        .store
        .routers
        .get(&id)
        .ok_or_else(|| ApiError::not_found("router_id", "router", &id))?;
    if !r.subnets.is_empty() {
        return Err(ApiError::conflict(
            "router_id",
            format!("router {id} has {} interface(s)", r.subnets.len()),
        ));
    }
    inner.store.routers.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// Attaches a subnet; every host with ports on the router's subnets learns the router and the
/// L3 neighbors across them.
pub(crate) async fn add_router_interface(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let req: InterfaceReq = parse(&body)?;
    let subnet_id = req.subnet_id.ok_or_else(|| ApiError::bad("subnet_id", "required"))?;
    let (out, messages, stages) = {
        let mut guard = s.lock();
        let inner = &mut *guard;
        let store = &mut inner.store;
        if !store.routers.contains_key(&id) {
            return Err(ApiError::not_found("router_id", "router", &id));
        }
        let sn = store
            .subnets
            .get_mut(&subnet_id)
            .ok_or_else(|| ApiError::not_found("subnet_id", "subnet", &subnet_id))?;
        if let Some(other) = &sn.router_id {
            return Err(ApiError::conflict(
                "subnet_id",
                format!("subnet {subnet_id} is attached to router {other}"),
            ));
        }
        sn.router_id = Some(id.clone());
        let out = json!({
            "id": id, "subnet_id": subnet_id, "port_id": sn.gateway_port_id,
            "project_id": sn.project_id, "tenant_id": sn.project_id, "subnet_ids": [subnet_id.clone()],
        });
        if let Some(r) = store.routers.get_mut(&id) {
            r.subnets.push(subnet_id.clone());
        }
        let store_t = started.elapsed();
        let messages = inner.dpm.router_attached(&inner.store, &id);
        (out, messages, Stages::after(started, store_t, &inner.dpm))
    };
    let hosts = s.push("router_interface", Vec::new(), started, stages, messages).await;
    let mut out = out;
    out["dataplane"] = json!({ "results": hosts });
    Ok(Json(out))
}

/// Detaches a subnet from its router. Hosts keep the L3 neighbors they were sent (as Alcor's
/// agents do); nothing is pushed.
pub(crate) async fn remove_router_interface(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: InterfaceReq = parse(&body)?;
    let subnet_id = req.subnet_id.ok_or_else(|| ApiError::bad("subnet_id", "required"))?;
    let mut inner = s.lock();
    let store = &mut inner.store;
    let r = store
        .routers
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found("router_id", "router", &id))?;
    let Some(i) = r.subnets.iter().position(|s| s == &subnet_id) else {
        return Err(ApiError::not_found("subnet_id", "router interface", &subnet_id));
    };
    r.subnets.remove(i);
    if let Some(sn) = store.subnets.get_mut(&subnet_id) {
        sn.router_id = None;
    }
    Ok(Json(json!({ "id": id, "subnet_id": subnet_id })))
}
