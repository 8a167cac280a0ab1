//! Northbound REST API: Alcor's paths and Neutron-style JSON bodies (protocol reference §3).
//!
//! Every resource route is served under both `/project/{pid}/…` and `/v4/{pid}/…`; nodes under
//! `/nodes` and `/v4/nodes`. Bad input answers 400 naming the field, unknown ids 404, conflicts
//! 409; a request that fails changes nothing.

mod networks;
mod nodes;
mod ports;
#[cfg(test)]
mod props;
mod security_groups;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use serde::de::DeserializeOwned;

use crate::ControlPlaneConfig;
use crate::dpm::{Dpm, HostMessage};
use crate::error::ApiError;
use crate::metrics::{Metrics, RequestRecord};
use crate::model::Store;
use crate::ncm::HostResult;
use crate::southbound::Southbound;

/// The store and the DPM's caches, changed together under one lock so that goal states are
/// computed from a consistent view.
#[derive(Debug)]
pub struct Inner {
    /// Resources.
    pub store: Store,
    /// Goal-state caches.
    pub dpm: Dpm,
}

/// Shared by every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Mutex<Inner>>,
    pub(crate) southbound: Southbound,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) config: Arc<ControlPlaneConfig>,
}

impl AppState {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pushes `messages` and records the request. With `async_push` the push runs in the
    /// background and this returns at once with no results.
    pub(crate) async fn push(
        &self,
        op: &'static str,
        port_ids: Vec<String>,
        started: Instant,
        stages: Stages,
        messages: Vec<HostMessage>,
    ) -> Vec<HostResult> {
        let Stages { store, compute, encode } = stages;
        let run = {
            let (southbound, metrics) = (self.southbound.clone(), self.metrics.clone());
            async move {
                let t = Instant::now();
                let hosts = if messages.is_empty() {
                    Vec::new()
                } else {
                    southbound.push_all(messages).await
                };
                let push = t.elapsed();
                metrics.record(RequestRecord {
                    op,
                    port_ids,
                    started,
                    store,
                    compute,
                    encode,
                    push,
                    hosts: hosts.clone(),
                });
                hosts
            }
        };
        if self.config.async_push {
            tokio::spawn(run);
            Vec::new()
        } else {
            run.await
        }
    }
}

/// Time spent before the push: validating and storing, computing goal states, encoding them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stages {
    pub(crate) store: std::time::Duration,
    pub(crate) compute: std::time::Duration,
    pub(crate) encode: std::time::Duration,
}

impl Stages {
    /// Stages of a request that started at `started`, stored by `stored` (elapsed), and whose
    /// goal-state computation (`dpm`'s last one) has just finished.
    pub(crate) fn after(started: Instant, stored: std::time::Duration, dpm: &Dpm) -> Self {
        let encode = dpm.last_encode();
        let compute = started.elapsed().saturating_sub(stored).saturating_sub(encode);
        Self {
            store: stored,
            compute,
            encode,
        }
    }
}

/// The `dataplane` part of an answer: how many hosts a push reached, which failed, and each
/// host's result (for ports and security-group rules alike).
pub(crate) fn dataplane_json(hosts: &[crate::ncm::HostResult], async_push: bool) -> serde_json::Value {
    serde_json::json!({
        "async": async_push,
        "hosts": hosts.len(),
        "failed_hosts": hosts.iter().filter(|h| !h.ok).map(|h| h.host.to_string()).collect::<Vec<_>>(),
        "results": hosts,
    })
}

/// Parses a JSON body; errors name the path of the field at fault (`port.fixed_ips[0]`).
pub(crate) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        ApiError::bad(field, e.into_inner().to_string())
    })
}

/// The project id of a request body, else the path's.
pub(crate) fn project(body_project: &Option<String>, body_tenant: &Option<String>, pid: &str) -> String {
    body_project
        .clone()
        .or_else(|| body_tenant.clone())
        .unwrap_or_else(|| pid.to_owned())
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.encode(),
    )
}

async fn create_default_table(State(s): State<AppState>) -> impl IntoResponse {
    s.lock().store.segment_table = true;
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "segment_table": "created" })),
    )
}

fn project_routes() -> Router<AppState> {
    Router::new()
        .route("/vpcs", post(networks::create_vpc).get(networks::list_vpcs))
        .route("/vpcs/bulk", post(networks::create_vpcs_bulk))
        .route("/vpcs/{id}", get(networks::get_vpc).delete(networks::delete_vpc))
        .route("/subnets", post(networks::create_subnet).get(networks::list_subnets))
        .route("/subnets/bulk", post(networks::create_subnets_bulk))
        .route(
            "/subnets/{id}",
            get(networks::get_subnet).delete(networks::delete_subnet),
        )
        .route("/routers", post(networks::create_router).get(networks::list_routers))
        .route(
            "/routers/{id}",
            get(networks::get_router).delete(networks::delete_router),
        )
        .route(
            "/routers/{id}/add_router_interface",
            put(networks::add_router_interface),
        )
        .route(
            "/routers/{id}/remove_router_interface",
            put(networks::remove_router_interface),
        )
        .route(
            "/security-groups",
            post(security_groups::create).get(security_groups::list),
        )
        .route("/security-groups/bulk", post(security_groups::create_bulk))
        .route(
            "/security-groups/{id}",
            get(security_groups::get_one).delete(security_groups::delete),
        )
        .route("/security-group-rules", post(security_groups::create_rule))
        .route("/security-group-rules/bulk", post(security_groups::create_rules_bulk))
        .route(
            "/security-group-rules/{id}",
            axum::routing::delete(security_groups::delete_rule),
        )
        .route("/ports", post(ports::create).get(ports::list))
        .route("/ports/bulk", post(ports::create_bulk))
        .route(
            "/ports/{id}",
            get(ports::get_one).put(ports::update).delete(ports::delete),
        )
}

fn node_routes() -> Router<AppState> {
    Router::new()
        .route("/", post(nodes::create).get(nodes::list))
        .route("/bulk", post(nodes::create_bulk))
        .route("/{id}", get(nodes::get_one).delete(nodes::delete))
}

/// Every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/segments/createDefaultTable", post(create_default_table))
        .route("/metrics", get(metrics))
        .nest("/nodes", node_routes())
        .nest("/v4/nodes", node_routes())
        .nest("/project/{pid}", project_routes())
        .nest("/v4/{pid}", project_routes())
        .with_state(state)
}
