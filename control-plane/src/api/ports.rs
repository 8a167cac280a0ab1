//! Ports (§3.7): create (one or bulk), update (binding fields), delete, get, list.
//!
//! A port with `binding:host_id` reaches the data plane: the DPM computes goal states and the
//! NCM pushes them; by default the API answers after every affected host replied (Alcor's
//! behaviour), with the per-host results under `dataplane.results`. A bulk create is all or
//! nothing: ports created before a failing one are removed again before anything is pushed.

use std::net::Ipv4Addr;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::nodes::is_mac;
use super::security_groups::default_group;
use super::{AppState, Inner, Stages, dataplane_json, parse, project};
use crate::error::ApiError;
use crate::model::{FixedIp, Port, Store};
use crate::ncm::HostResult;

#[derive(Debug, Deserialize)]
pub(crate) struct FixedIpReq {
    subnet_id: Option<String>,
    ip_address: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PairReq {
    ip_address: String,
    mac_address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PortReq {
    id: Option<String>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    name: Option<String>,
    network_id: Option<String>,
    admin_state_up: Option<bool>,
    mac_address: Option<String>,
    fixed_ips: Option<Vec<FixedIpReq>>,
    allowed_address_pairs: Option<Vec<PairReq>>,
    security_groups: Option<Vec<String>>,
    device_id: Option<String>,
    device_owner: Option<String>,
    #[serde(rename = "binding:host_id")]
    host_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PortOne {
    port: PortReq,
}

#[derive(Debug, Deserialize)]
struct PortBulk {
    ports: Vec<PortReq>,
}

fn port_json(p: &Port) -> Value {
    json!({
        "id": p.id, "name": p.name, "project_id": p.project_id, "tenant_id": p.project_id,
        "network_id": p.vpc_id, "admin_state_up": p.admin_state_up, "mac_address": p.mac,
        "fixed_ips": p.fixed_ips.iter().map(|f| json!({ "subnet_id": f.subnet_id, "ip_address": f.ip.to_string() })).collect::<Vec<_>>(),
        "allowed_address_pairs": p.allowed_address_pairs.iter().map(|(ip, mac)| json!({ "ip_address": ip, "mac_address": mac })).collect::<Vec<_>>(),
        "security_groups": p.security_groups, "device_id": p.device_id, "device_owner": p.device_owner,
        "binding:host_id": p.host_id.clone().unwrap_or_default(),
        "binding:vif_type": if p.host_id.is_some() { "ovs" } else { "unbound" },
        "status": p.status,
    })
}

/// Validates a new port and takes its addresses; on error nothing is changed.
fn create_port(store: &mut Store, pid: &str, req: PortReq, field: &str) -> Result<Port, ApiError> {
    let f = |k: &str| format!("{field}.{k}");
    let vpc_id = req
        .network_id
        .ok_or_else(|| ApiError::bad(f("network_id"), "required"))?;
    let vpc_subnets = store
        .vpcs
        .get(&vpc_id)
        .ok_or_else(|| ApiError::not_found(f("network_id"), "network", &vpc_id))?
        .subnets
        .clone();
    let id = match req.id.filter(|i| !i.is_empty()) {
        Some(id) => id,
        None => store.new_id(0x03),
    };
    if store.ports.contains_key(&id) {
        return Err(ApiError::conflict(f("id"), format!("port {id} exists")));
    }
    if let Some(m) = &req.mac_address
        && !is_mac(m)
    {
        return Err(ApiError::bad(f("mac_address"), format!("`{m}` is not a MAC address")));
    }
    if let Some(host) = req.host_id.as_deref().filter(|h| !h.is_empty())
        && store.node_by_name(host).is_none()
    {
        return Err(ApiError::not_found(f("binding:host_id"), "node", host));
    }
    if let Some(groups) = &req.security_groups {
        for (i, g) in groups.iter().enumerate() {
            if !store.security_groups.contains_key(g) {
                return Err(ApiError::not_found(
                    format!("{field}.security_groups[{i}]"),
                    "security group",
                    g,
                ));
            }
        }
    }
    let mut pairs = Vec::new();
    for (i, p) in req.allowed_address_pairs.unwrap_or_default().into_iter().enumerate() {
        if p.ip_address.parse::<ipnet::IpNet>().is_err() && p.ip_address.parse::<std::net::IpAddr>().is_err() {
            return Err(ApiError::bad(
                format!("{field}.allowed_address_pairs[{i}].ip_address"),
                "not an address or CIDR",
            ));
        }
        pairs.push((p.ip_address, p.mac_address.unwrap_or_default()));
    }
    // Addresses: explicit ones checked, then the rest allocated; all taken only at the end.
    let wanted = match req.fixed_ips {
        Some(ips) if !ips.is_empty() => ips,
        _ => {
            let first = vpc_subnets
                .first()
                .ok_or_else(|| ApiError::bad(f("network_id"), format!("network {vpc_id} has no subnet")))?;
            vec![FixedIpReq {
                subnet_id: Some(first.clone()),
                ip_address: None,
            }]
        }
    };
    let mut fixed: Vec<FixedIp> = Vec::with_capacity(wanted.len());
    for (i, w) in wanted.iter().enumerate() {
        let ff = |k: &str| format!("{field}.fixed_ips[{i}].{k}");
        let subnet_id = match &w.subnet_id {
            Some(s) => s.clone(),
            None => vpc_subnets
                .first()
                .cloned()
                .ok_or_else(|| ApiError::bad(ff("subnet_id"), "required"))?,
        };
        let subnet = store
            .subnets
            .get(&subnet_id)
            .ok_or_else(|| ApiError::not_found(ff("subnet_id"), "subnet", &subnet_id))?;
        if subnet.vpc_id != vpc_id {
            return Err(ApiError::bad(
                ff("subnet_id"),
                format!("subnet {subnet_id} is not in network {vpc_id}"),
            ));
        }
        let ip = match &w.ip_address {
            Some(a) => {
                let ip: Ipv4Addr = a
                    .parse()
                    .map_err(|_| ApiError::bad(ff("ip_address"), format!("`{a}` is not an IPv4 address")))?;
                if !subnet.ipam.assignable(ip) {
                    return Err(ApiError::bad(
                        ff("ip_address"),
                        format!("{ip} is not an assignable address of {}", subnet.cidr),
                    ));
                }
                if subnet.ipam.in_use(ip) || fixed.iter().any(|x| x.ip == ip && x.subnet_id == subnet_id) {
                    return Err(ApiError::conflict(ff("ip_address"), format!("{ip} is in use")));
                }
                ip
            }
            None => {
                // The lowest free address not already picked for this port, earlier or later in
                // its list (nothing is taken until every address is known).
                let picked: Vec<Ipv4Addr> = fixed
                    .iter()
                    .filter(|x| x.subnet_id == subnet_id)
                    .map(|x| x.ip)
                    .chain(
                        wanted
                            .iter()
                            .skip(i + 1)
                            .filter(|x| x.subnet_id.as_deref() == Some(&subnet_id))
                            .filter_map(|x| x.ip_address.as_deref().and_then(|a| a.parse().ok())),
                    )
                    .collect();
                subnet.ipam.peek_excluding(&picked).ok_or_else(|| {
                    ApiError::conflict(
                        ff("subnet_id"),
                        format!("subnet {subnet_id} ({}) is exhausted", subnet.cidr),
                    )
                })?
            }
        };
        fixed.push(FixedIp { subnet_id, ip });
    }
    let project_id = project(&req.project_id, &req.tenant_id, pid);
    let security_groups = match req.security_groups {
        Some(g) => g,
        None => vec![default_group(store, &project_id)],
    };
    for x in &fixed {
        if let Some(s) = store.subnets.get_mut(&x.subnet_id) {
            s.ipam.take(x.ip);
        }
    }
    let host_id = req.host_id.filter(|h| !h.is_empty());
    let mac = match req.mac_address {
        Some(m) => m,
        None => store.new_mac(),
    };
    let port = Port {
        id: id.clone(),
        project_id,
        vpc_id,
        name: req.name.unwrap_or_default(),
        mac,
        fixed_ips: fixed,
        security_groups,
        device_id: req.device_id.unwrap_or_default(),
        device_owner: req.device_owner.unwrap_or_default(),
        status: if host_id.is_some() {
            "BUILD".into()
        } else {
            "DOWN".into()
        },
        host_id,
        admin_state_up: req.admin_state_up.unwrap_or(true),
        allowed_address_pairs: pairs,
    };
    store.ports.insert(id, port.clone());
    Ok(port)
}

/// Removes a port from the store and gives its addresses back.
fn remove_port(store: &mut Store, id: &str) -> Option<Port> {
    let port = store.ports.remove(id)?;
    for f in &port.fixed_ips {
        if let Some(s) = store.subnets.get_mut(&f.subnet_id) {
            s.ipam.release(f.ip);
        }
    }
    Some(port)
}

/// Marks ports ACTIVE or ERROR from the push results (when the push was waited for).
fn settle(s: &AppState, ids: &[String], hosts: &[HostResult]) {
    if s.config.async_push {
        return;
    }
    let failed: std::collections::HashSet<Ipv4Addr> = hosts.iter().filter(|h| !h.ok).map(|h| h.host).collect();
    let mut inner = s.lock();
    let store = &mut inner.store;
    for id in ids {
        let host_ip = store
            .ports
            .get(id)
            .and_then(|p| p.host_id.as_deref())
            .and_then(|h| store.node_by_name(h))
            .map(|n| n.local_ip);
        if let Some(p) = store.ports.get_mut(id) {
            p.status = match host_ip {
                None => "DOWN".into(),
                Some(ip) if failed.contains(&ip) => "ERROR".into(),
                Some(_) => "ACTIVE".into(),
            };
        }
    }
}

pub(crate) async fn create(
    State(s): State<AppState>,
    Path(pid): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let started = Instant::now();
    let req: PortOne = parse(&body)?;
    let (port, messages, stages) = {
        let mut guard = s.lock();
        let Inner { store, dpm } = &mut *guard;
        let port = create_port(store, &pid, req.port, "port")?;
        let store_t = started.elapsed();
        let messages = if port.is_bound() {
            dpm.bind(store, std::slice::from_ref(&port.id))
        } else {
            Vec::new()
        };
        (port, messages, Stages::after(started, store_t, dpm))
    };
    let ids = vec![port.id.clone()];
    let hosts = s.push("port_create", ids.clone(), started, stages, messages).await;
    settle(&s, &ids, &hosts);
    let out = s
        .lock()
        .store
        .ports
        .get(&port.id)
        .map(port_json)
        .unwrap_or_else(|| port_json(&port));
    Ok((
        StatusCode::CREATED,
        Json(json!({ "port": out, "dataplane": dataplane_json(&hosts, s.config.async_push) })),
    ))
}

pub(crate) async fn create_bulk(
    State(s): State<AppState>,
    Path(pid): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let started = Instant::now();
    let req: PortBulk = parse(&body)?;
    let (ids, messages, stages) = {
        let mut guard = s.lock();
        let Inner { store, dpm } = &mut *guard;
        let mut created: Vec<String> = Vec::with_capacity(req.ports.len());
        let defaults_before: Vec<String> = store.default_sg.keys().cloned().collect();
        for (i, r) in req.ports.into_iter().enumerate() {
            match create_port(store, &pid, r, &format!("ports[{i}]")) {
                Ok(p) => created.push(p.id),
                Err(e) => {
                    // All or nothing: the ports, their addresses, and any default group they made.
                    for id in &created {
                        remove_port(store, id);
                    }
                    let made: Vec<String> = store
                        .default_sg
                        .keys()
                        .filter(|p| !defaults_before.contains(p))
                        .cloned()
                        .collect();
                    for project in made {
                        if let Some(g) = store.default_sg.remove(&project) {
                            store.security_groups.remove(&g);
                        }
                    }
                    return Err(e);
                }
            }
        }
        let store_t = started.elapsed();
        let bound: Vec<String> = created
            .iter()
            .filter(|id| store.ports.get(*id).is_some_and(Port::is_bound))
            .cloned()
            .collect();
        let messages = dpm.bind(store, &bound);
        (created, messages, Stages::after(started, store_t, dpm))
    };
    let hosts = s.push("port_bulk_create", ids.clone(), started, stages, messages).await;
    settle(&s, &ids, &hosts);
    let inner = s.lock();
    let out: Vec<Value> = ids
        .iter()
        .filter_map(|id| inner.store.ports.get(id))
        .map(port_json)
        .collect();
    drop(inner);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "ports": out, "dataplane": dataplane_json(&hosts, s.config.async_push) })),
    ))
}

pub(crate) async fn list(State(s): State<AppState>) -> Json<Value> {
    let inner = s.lock();
    Json(json!({ "ports": inner.store.ports.values().map(port_json).collect::<Vec<_>>() }))
}

pub(crate) async fn get_one(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let inner = s.lock();
    let p = inner
        .store
        .ports
        .get(&id)
        .ok_or_else(|| ApiError::not_found("port_id", "port", &id))?;
    Ok(Json(json!({ "port": port_json(p) })))
}

/// Updates name, admin state, device and binding fields, and security groups. Binding a port
/// (setting `binding:host_id`) creates it on the data plane; clearing the binding, or both
/// `device_id` and `device_owner`, deletes it there; moving it does both.
pub(crate) async fn update(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let req = parse::<PortOne>(&body)?.port;
    let (messages, stages) = {
        let mut guard = s.lock();
        let Inner { store, dpm } = &mut *guard;
        let old = store
            .ports
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("port_id", "port", &id))?;
        if let Some(host) = req.host_id.as_deref().filter(|h| !h.is_empty())
            && store.node_by_name(host).is_none()
        {
            return Err(ApiError::not_found("port.binding:host_id", "node", host));
        }
        if let Some(groups) = &req.security_groups {
            for (i, g) in groups.iter().enumerate() {
                if !store.security_groups.contains_key(g) {
                    return Err(ApiError::not_found(
                        format!("port.security_groups[{i}]"),
                        "security group",
                        g,
                    ));
                }
            }
        }
        if let Some(n) = &req.network_id
            && n != &old.vpc_id
        {
            return Err(ApiError::bad("port.network_id", "a port cannot change network"));
        }
        let mut new = old.clone();
        if let Some(n) = req.name {
            new.name = n;
        }
        if let Some(a) = req.admin_state_up {
            new.admin_state_up = a;
        }
        if let Some(d) = req.device_id {
            new.device_id = d;
        }
        if let Some(d) = req.device_owner {
            new.device_owner = d;
        }
        if let Some(g) = req.security_groups {
            new.security_groups = g;
        }
        if let Some(h) = req.host_id {
            new.host_id = Some(h).filter(|h| !h.is_empty());
        }
        if new.device_id.is_empty() && new.device_owner.is_empty() && req_clears_device(&old, &new) {
            new.host_id = None;
        }
        let rebind = old.host_id != new.host_id || (new.is_bound() && old.security_groups != new.security_groups);
        new.status = match (&new.host_id, rebind) {
            (None, _) => "DOWN".into(),
            (Some(_), true) => "BUILD".into(),
            (Some(_), false) => old.status.clone(),
        };
        store.ports.insert(id.clone(), new.clone());
        let store_t = started.elapsed();
        let mut messages = Vec::new();
        let mut encode = std::time::Duration::ZERO;
        if rebind {
            if old.is_bound() {
                messages.extend(dpm.unbind(store, std::slice::from_ref(&old)));
                encode += dpm.last_encode();
            }
            if new.is_bound() {
                messages.extend(dpm.bind(store, std::slice::from_ref(&id)));
                encode += dpm.last_encode();
            }
        }
        let compute = started.elapsed().saturating_sub(store_t).saturating_sub(encode);
        (
            messages,
            Stages {
                store: store_t,
                compute,
                encode,
            },
        )
    };
    let ids = vec![id.clone()];
    let hosts = s.push("port_update", ids.clone(), started, stages, messages).await;
    settle(&s, &ids, &hosts);
    let out = s.lock().store.ports.get(&id).map(port_json);
    Ok(Json(
        json!({ "port": out, "dataplane": dataplane_json(&hosts, s.config.async_push) }),
    ))
}

/// Alcor's DPM turns an update that empties both device fields into a delete.
fn req_clears_device(old: &Port, new: &Port) -> bool {
    !(old.device_id.is_empty() && old.device_owner.is_empty())
        && new.device_id.is_empty()
        && new.device_owner.is_empty()
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let started = Instant::now();
    let (messages, stages) = {
        let mut guard = s.lock();
        let Inner { store, dpm } = &mut *guard;
        let port = store
            .ports
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("port_id", "port", &id))?;
        let t = started.elapsed();
        let messages = if port.is_bound() {
            dpm.unbind(store, std::slice::from_ref(&port))
        } else {
            Vec::new()
        };
        let stages = Stages::after(started, t, dpm);
        remove_port(store, &id);
        (messages, stages)
    };
    let hosts = s.push("port_delete", vec![id], started, stages, messages).await;
    Ok((
        StatusCode::OK,
        Json(json!({ "dataplane": dataplane_json(&hosts, s.config.async_push) })),
    ))
}
