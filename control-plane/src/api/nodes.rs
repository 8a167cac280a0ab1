//! Host registration (Alcor's node manager, §3.3): `POST /nodes`, `POST /nodes/bulk`,
//! `GET /nodes[?node_name=…]`, `GET|DELETE /nodes/{id}`.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, parse};
use crate::error::ApiError;
use crate::model::{Node, Store};

#[derive(Debug, Deserialize)]
pub(crate) struct NodeReq {
    node_id: Option<String>,
    node_name: Option<String>,
    local_ip: Option<String>,
    mac_address: Option<String>,
    veth: Option<String>,
    server_port: Option<u16>,
    host_dvr_mac: Option<String>,
    #[serde(rename = "data-path-ip")]
    data_path_ip: Option<String>,
}

#[derive(Debug, Deserialize)]
struct One {
    host_info: NodeReq,
}

#[derive(Debug, Deserialize)]
struct Bulk {
    host_infos: Vec<NodeReq>,
}

fn ip(field: String, v: &Option<String>) -> Result<Option<Ipv4Addr>, ApiError> {
    v.as_deref()
        .map(|s| {
            s.parse()
                .map_err(|_| ApiError::bad(field, format!("`{s}` is not an IPv4 address")))
        })
        .transpose()
}

/// Checks a node against the store and the nodes of the same request.
fn validate(store: &mut Store, req: NodeReq, field: &str, batch: &[Node]) -> Result<Node, ApiError> {
    let name = req
        .node_name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad(format!("{field}.node_name"), "required"))?;
    let local_ip = ip(format!("{field}.local_ip"), &req.local_ip)?
        .ok_or_else(|| ApiError::bad(format!("{field}.local_ip"), "required"))?;
    let data_path_ip = ip(format!("{field}.data-path-ip"), &req.data_path_ip)?.unwrap_or(local_ip);
    let mac = req.mac_address.unwrap_or_default();
    if !mac.is_empty() && !is_mac(&mac) {
        return Err(ApiError::bad(
            format!("{field}.mac_address"),
            format!("`{mac}` is not a MAC address"),
        ));
    }
    let node_id = match req.node_id.filter(|i| !i.is_empty()) {
        Some(id) => id,
        None => store.new_id(0x0d),
    };
    if store.nodes.contains_key(&node_id) || batch.iter().any(|n| n.node_id == node_id) {
        return Err(ApiError::conflict(
            format!("{field}.node_id"),
            format!("node {node_id} exists"),
        ));
    }
    if store.node_names.contains_key(&name) || batch.iter().any(|n| n.node_name == name) {
        return Err(ApiError::conflict(
            format!("{field}.node_name"),
            format!("a node is named {name}"),
        ));
    }
    Ok(Node {
        node_id,
        node_name: name,
        local_ip,
        mac_address: mac,
        veth: req.veth.unwrap_or_else(|| "eth0".into()),
        server_port: req.server_port.unwrap_or(alcor_schema::AGENT_GRPC_PORT),
        host_dvr_mac: req.host_dvr_mac.unwrap_or_default(),
        data_path_ip,
    })
}

/// `xx:xx:xx:xx:xx:xx` or with dashes.
pub(crate) fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn insert(store: &mut Store, node: Node) {
    store.node_names.insert(node.node_name.clone(), node.node_id.clone());
    store.nodes.insert(node.node_id.clone(), node);
}

pub(crate) async fn create(State(s): State<AppState>, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: One = parse(&body)?;
    let mut inner = s.lock();
    let node = validate(&mut inner.store, req.host_info, "host_info", &[])?;
    insert(&mut inner.store, node.clone());
    Ok((StatusCode::CREATED, Json(json!({ "host_info": node }))))
}

pub(crate) async fn create_bulk(State(s): State<AppState>, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: Bulk = parse(&body)?;
    let mut inner = s.lock();
    let mut nodes = Vec::with_capacity(req.host_infos.len());
    for (i, n) in req.host_infos.into_iter().enumerate() {
        let node = validate(&mut inner.store, n, &format!("host_infos[{i}]"), &nodes)?;
        nodes.push(node);
    }
    for n in &nodes {
        insert(&mut inner.store, n.clone());
    }
    Ok((StatusCode::CREATED, Json(json!({ "host_infos": nodes }))))
}

pub(crate) async fn list(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let inner = s.lock();
    let mut nodes: Vec<&Node> = inner
        .store
        .nodes
        .values()
        .filter(|n| q.get("node_name").is_none_or(|v| &n.node_name == v))
        .filter(|n| q.get("node_id").is_none_or(|v| &n.node_id == v))
        .filter(|n| q.get("local_ip").is_none_or(|v| &n.local_ip.to_string() == v))
        .filter(|n| q.get("mac_address").is_none_or(|v| &n.mac_address == v))
        .collect();
    nodes.sort_by(|a, b| a.node_name.cmp(&b.node_name));
    Json(json!({ "nodeInfos": nodes }))
}

pub(crate) async fn get_one(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let inner = s.lock();
    let node = inner
        .store
        .nodes
        .get(&id)
        .ok_or_else(|| ApiError::not_found("node_id", "node", &id))?;
    Ok(Json(json!({ "host_info": node })))
}

pub(crate) async fn delete(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let mut inner = s.lock();
    let store = &mut inner.store;
    let node = store
        .nodes
        .get(&id)
        .ok_or_else(|| ApiError::not_found("node_id", "node", &id))?;
    if store
        .ports
        .values()
        .any(|p| p.host_id.as_deref() == Some(node.node_name.as_str()))
    {
        return Err(ApiError::conflict("node_id", format!("node {id} has bound ports")));
    }
    let name = node.node_name.clone();
    store.node_names.remove(&name);
    store.nodes.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}
