//! Security groups and rules (§3.6). A new group gets two egress rules (IPv4, IPv6) as in
//! Alcor; a project's `default` group is created on first need with two ingress rules. A rule
//! added or removed is pushed, as a delta, to every host enforcing its group.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{Value, json};

use std::time::Instant;

use alcor_schema::OperationType;

use super::{AppState, Inner, Stages, dataplane_json, parse, project};
use crate::dpm::HostMessage;
use crate::error::ApiError;
use crate::model::{Direction, Rule, SecurityGroup, Store};

#[derive(Debug, Deserialize)]
pub(crate) struct SgReq {
    id: Option<String>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    name: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SgOne {
    security_group: SgReq,
}

#[derive(Debug, Deserialize)]
struct SgBulk {
    security_groups: Vec<SgReq>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RuleReq {
    id: Option<String>,
    security_group_id: Option<String>,
    direction: Option<String>,
    ethertype: Option<String>,
    protocol: Option<String>,
    port_range_min: Option<u32>,
    port_range_max: Option<u32>,
    remote_ip_prefix: Option<String>,
    remote_group_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RuleOne {
    security_group_rule: RuleReq,
}

#[derive(Debug, Deserialize)]
struct RuleBulk {
    security_group_rules: Vec<RuleReq>,
}

fn rule_json(r: &Rule) -> Value {
    json!({
        "id": r.id, "security_group_id": r.security_group_id, "direction": r.direction,
        "ethertype": r.ethertype, "protocol": r.protocol, "port_range_min": r.port_range_min,
        "port_range_max": r.port_range_max, "remote_ip_prefix": r.remote_ip_prefix,
        "remote_group_id": r.remote_group_id,
    })
}

fn sg_json(sg: &SecurityGroup) -> Value {
    json!({
        "id": sg.id, "name": sg.name, "description": sg.description, "project_id": sg.project_id,
        "tenant_id": sg.project_id, "security_group_rules": sg.rules.iter().map(rule_json).collect::<Vec<_>>(),
    })
}

fn default_rule(store: &mut Store, sg: &str, direction: Direction, ethertype: &str) -> Rule {
    Rule {
        id: store.new_id(0x05),
        security_group_id: sg.to_owned(),
        direction,
        ethertype: ethertype.to_owned(),
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: None,
    }
}

/// The project's `default` group, created on first use.
pub(crate) fn default_group(store: &mut Store, project_id: &str) -> String {
    if let Some(id) = store.default_sg.get(project_id) {
        return id.clone();
    }
    let id = store.new_id(0x04);
    let rules = vec![
        default_rule(store, &id, Direction::Ingress, "IPv4"),
        default_rule(store, &id, Direction::Ingress, "IPv6"),
    ];
    let sg = SecurityGroup {
        id: id.clone(),
        project_id: project_id.to_owned(),
        name: "default".into(),
        description: "Default security group".into(),
        rules,
    };
    store.security_groups.insert(id.clone(), sg);
    store.default_sg.insert(project_id.to_owned(), id.clone());
    id
}

fn new_sg(
    store: &mut Store,
    pid: &str,
    req: SgReq,
    field: &str,
    batch: &[SecurityGroup],
) -> Result<SecurityGroup, ApiError> {
    let id = req.id.filter(|i| !i.is_empty()).unwrap_or_else(|| store.new_id(0x04));
    if store.security_groups.contains_key(&id) || batch.iter().any(|g| g.id == id) {
        return Err(ApiError::conflict(
            format!("{field}.id"),
            format!("security group {id} exists"),
        ));
    }
    let rules = vec![
        default_rule(store, &id, Direction::Egress, "IPv4"),
        default_rule(store, &id, Direction::Egress, "IPv6"),
    ];
    Ok(SecurityGroup {
        id,
        project_id: project(&req.project_id, &req.tenant_id, pid),
        name: req.name.unwrap_or_default(),
        description: req.description.unwrap_or_default(),
        rules,
    })
}

pub(crate) async fn create(
    State(s): State<AppState>,
    Path(pid): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: SgOne = parse(&body)?;
    let mut inner = s.lock();
    let sg = new_sg(&mut inner.store, &pid, req.security_group, "security_group", &[])?;
    let out = sg_json(&sg);
    inner.store.security_groups.insert(sg.id.clone(), sg);
    Ok((StatusCode::CREATED, Json(json!({ "security_group": out }))))
}

pub(crate) async fn create_bulk(
    State(s): State<AppState>,
    Path(pid): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: SgBulk = parse(&body)?;
    let mut inner = s.lock();
    let mut groups = Vec::new();
    for (i, g) in req.security_groups.into_iter().enumerate() {
        let sg = new_sg(&mut inner.store, &pid, g, &format!("security_groups[{i}]"), &groups)?;
        groups.push(sg);
    }
    let out: Vec<Value> = groups.iter().map(sg_json).collect();
    for g in groups {
        inner.store.security_groups.insert(g.id.clone(), g);
    }
    Ok((StatusCode::CREATED, Json(json!({ "security_groups": out }))))
}

pub(crate) async fn list(State(s): State<AppState>) -> Json<Value> {
    let inner = s.lock();
    Json(json!({ "security_groups": inner.store.security_groups.values().map(sg_json).collect::<Vec<_>>() }))
}

pub(crate) async fn get_one(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let inner = s.lock();
    let sg = inner
        .store
        .security_groups
        .get(&id)
        .ok_or_else(|| ApiError::not_found("security_group_id", "security group", &id))?;
    Ok(Json(json!({ "security_group": sg_json(sg) })))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut inner = s.lock();
    let store = &mut inner.store;
    if !store.security_groups.contains_key(&id) {
        return Err(ApiError::not_found("security_group_id", "security group", &id));
    }
    if store.ports.values().any(|p| p.security_groups.contains(&id)) {
        return Err(ApiError::conflict(
            "security_group_id",
            format!("security group {id} is in use by ports"),
        ));
    }
    if store
        .security_groups
        .values()
        .any(|g| g.id != id && g.rules.iter().any(|r| r.remote_group_id.as_deref() == Some(&id)))
    {
        return Err(ApiError::conflict(
            "security_group_id",
            format!("security group {id} is a remote group of other rules"),
        ));
    }
    store.security_groups.remove(&id);
    store.default_sg.retain(|_, g| g != &id);
    Ok(StatusCode::NO_CONTENT)
}

fn new_rule(store: &mut Store, req: RuleReq, field: &str, batch: &[Rule]) -> Result<Rule, ApiError> {
    let f = |k: &str| format!("{field}.{k}");
    let sg = req
        .security_group_id
        .ok_or_else(|| ApiError::bad(f("security_group_id"), "required"))?;
    if !store.security_groups.contains_key(&sg) {
        return Err(ApiError::not_found(f("security_group_id"), "security group", &sg));
    }
    let direction = match req.direction.as_deref() {
        Some("ingress") => Direction::Ingress,
        Some("egress") => Direction::Egress,
        Some(other) => {
            return Err(ApiError::bad(
                f("direction"),
                format!("`{other}`: expected ingress or egress"),
            ));
        }
        None => return Err(ApiError::bad(f("direction"), "required")),
    };
    let ethertype = req.ethertype.unwrap_or_else(|| "IPv4".into());
    if ethertype != "IPv4" && ethertype != "IPv6" {
        return Err(ApiError::bad(
            f("ethertype"),
            format!("`{ethertype}`: expected IPv4 or IPv6"),
        ));
    }
    if let Some(p) = &req.protocol
        && !matches!(p.as_str(), "tcp" | "udp" | "icmp" | "http")
    {
        return Err(ApiError::bad(
            f("protocol"),
            format!("`{p}`: expected tcp, udp, icmp or none"),
        ));
    }
    for (k, v) in [
        ("port_range_min", req.port_range_min),
        ("port_range_max", req.port_range_max),
    ] {
        if let Some(v) = v
            && !(1..=65535).contains(&v)
        {
            return Err(ApiError::bad(f(k), format!("{v} is not a port (1..65535)")));
        }
    }
    if let (Some(lo), Some(hi)) = (req.port_range_min, req.port_range_max)
        && lo > hi
    {
        return Err(ApiError::bad(
            f("port_range_min"),
            format!("{lo} is above port_range_max {hi}"),
        ));
    }
    if let Some(p) = &req.remote_ip_prefix
        && p.parse::<IpNet>().is_err()
    {
        return Err(ApiError::bad(f("remote_ip_prefix"), format!("`{p}` is not a CIDR")));
    }
    if let Some(g) = &req.remote_group_id
        && !store.security_groups.contains_key(g)
    {
        return Err(ApiError::not_found(f("remote_group_id"), "security group", g));
    }
    let id = req.id.filter(|i| !i.is_empty()).unwrap_or_else(|| store.new_id(0x05));
    let exists = store
        .security_groups
        .values()
        .any(|g| g.rules.iter().any(|r| r.id == id))
        || batch.iter().any(|r| r.id == id);
    if exists {
        return Err(ApiError::conflict(f("id"), format!("rule {id} exists")));
    }
    Ok(Rule {
        id,
        security_group_id: sg,
        direction,
        ethertype,
        protocol: req.protocol,
        port_range_min: req.port_range_min,
        port_range_max: req.port_range_max,
        remote_ip_prefix: req.remote_ip_prefix,
        remote_group_id: req.remote_group_id,
    })
}

fn insert_rule(store: &mut Store, r: Rule) {
    if let Some(g) = store.security_groups.get_mut(&r.security_group_id) {
        g.rules.push(r);
    }
}

/// Stores `rules` (added, or already removed) and computes what the hosts enforcing them get,
/// under the lock the caller validated them in.
fn changed(inner: &mut Inner, started: Instant, rules: Vec<Rule>, op: OperationType) -> (Vec<HostMessage>, Stages) {
    let Inner { store, dpm } = inner;
    if op == OperationType::Create {
        for r in &rules {
            insert_rule(store, r.clone());
        }
    }
    let stored = started.elapsed();
    let messages = dpm.rules_changed(store, &rules, op);
    (messages, Stages::after(started, stored, dpm))
}

pub(crate) async fn create_rule(State(s): State<AppState>, body: Bytes) -> Result<(StatusCode, Json<Value>), ApiError> {
    let started = Instant::now();
    let req: RuleOne = parse(&body)?;
    let (out, messages, stages) = {
        let mut inner = s.lock();
        let rule = new_rule(&mut inner.store, req.security_group_rule, "security_group_rule", &[])?;
        let out = rule_json(&rule);
        let (messages, stages) = changed(&mut inner, started, vec![rule], OperationType::Create);
        (out, messages, stages)
    };
    let hosts = s.push("sg_rule_create", Vec::new(), started, stages, messages).await;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "security_group_rule": out, "dataplane": dataplane_json(&hosts, s.config.async_push) })),
    ))
}

pub(crate) async fn create_rules_bulk(
    State(s): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let started = Instant::now();
    let req: RuleBulk = parse(&body)?;
    let (out, messages, stages) = {
        let mut inner = s.lock();
        let mut rules = Vec::new();
        for (i, r) in req.security_group_rules.into_iter().enumerate() {
            let rule = new_rule(&mut inner.store, r, &format!("security_group_rules[{i}]"), &rules)?;
            rules.push(rule);
        }
        let out: Vec<Value> = rules.iter().map(rule_json).collect();
        let (messages, stages) = changed(&mut inner, started, rules, OperationType::Create);
        (out, messages, stages)
    };
    let hosts = s
        .push("sg_rule_bulk_create", Vec::new(), started, stages, messages)
        .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "security_group_rules": out, "dataplane": dataplane_json(&hosts, s.config.async_push) })),
    ))
}

pub(crate) async fn delete_rule(
    State(s): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let started = Instant::now();
    let (messages, stages) = {
        let mut inner = s.lock();
        let removed = inner
            .store
            .security_groups
            .values_mut()
            .find_map(|g| g.rules.iter().position(|r| r.id == id).map(|i| g.rules.remove(i)));
        let Some(rule) = removed else {
            return Err(ApiError::not_found(
                "security_group_rule_id",
                "security group rule",
                &id,
            ));
        };
        changed(&mut inner, started, vec![rule], OperationType::Delete)
    };
    s.push("sg_rule_delete", Vec::new(), started, stages, messages).await;
    Ok(StatusCode::NO_CONTENT)
}
