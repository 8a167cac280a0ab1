//! A reference control plane that behaves as Alcor does on the wire: Alcor's northbound REST
//! API, goal-state computation (the DPM role) and the southbound gRPC push (the NCM role), in
//! one process and fast enough that it is never the bottleneck when agents are measured.
//!
//! Data flows one way: [`api`] (REST handlers) → [`model`] (resources, IPAM) → [`dpm`] (goal
//! states per host, `alcor` or `incremental` fan-out) → [`ncm`] (push to agents) →
//! [`metrics`] (stage timings, Prometheus, request records).
//!
//! Not here: Alcor's microservice split, its databases, the MQ path, or on-demand requests.

pub mod api;
pub mod dpm;
pub mod error;
pub mod metrics;
pub mod model;
pub mod ncm;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use dpm::{Dpm, FanoutMode, HostMessage, MessageCounts};
pub use error::ApiError;
pub use metrics::{Metrics, RequestRecord};
pub use ncm::{HostResult, Ncm, PushConfig, PushProtocol};

/// How long `incremental` fan-out waits to merge messages bound for the same host.
pub const INCREMENTAL_COALESCE_WINDOW: Duration = Duration::from_millis(2);

/// Alcor's per-service REST ports (VPC, subnet, route, port, node, security group, API gateway).
pub const SERVICE_PORTS: [u16; 7] = [9001, 9002, 9003, 9006, 9007, 9008, 9009];

/// How the control plane runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlPlaneConfig {
    /// Where the REST API listens (any address; the command line defaults to loopback).
    pub listen: SocketAddr,
    /// Listen on Alcor's per-service ports (9001 VPC … 9009 gateway) of `listen`'s address
    /// instead, every route on each, so that a driver configured for a real Alcor works.
    pub per_service_ports: bool,
    /// Neighbor fan-out.
    pub fanout: FanoutMode,
    /// Southbound push.
    pub push: PushConfig,
    /// Answer port requests before the push ends (default: after every host replied, as Alcor).
    pub async_push: bool,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9009)),
            per_service_ports: false,
            fanout: FanoutMode::Alcor,
            push: PushConfig::default(),
            async_push: false,
        }
    }
}

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    addrs: Vec<SocketAddr>,
    state: api::AppState,
    token: CancellationToken,
    tasks: JoinSet<()>,
}

impl ControlPlane {
    /// Binds every listener and starts serving.
    pub async fn start(mut config: ControlPlaneConfig) -> std::io::Result<Self> {
        if config.push.coalesce_window.is_none() {
            config.push.coalesce_window = Some(match config.fanout {
                FanoutMode::Incremental => INCREMENTAL_COALESCE_WINDOW,
                FanoutMode::Alcor => Duration::ZERO,
            });
        }
        let addrs: Vec<SocketAddr> = if config.per_service_ports {
            SERVICE_PORTS
                .iter()
                .map(|p| SocketAddr::new(config.listen.ip(), *p))
                .collect()
        } else {
            vec![config.listen]
        };
        let mut listeners = Vec::new();
        for a in &addrs {
            let l = TcpListener::bind(a)
                .await
                .map_err(|e| std::io::Error::new(e.kind(), format!("control plane cannot listen on {a}: {e}")))?;
            listeners.push(l);
        }
        let state = api::AppState {
            inner: Arc::new(Mutex::new(api::Inner {
                store: Default::default(),
                dpm: Dpm::new(config.fanout),
            })),
            ncm: Ncm::new(config.push.clone()),
            metrics: Arc::new(Metrics::default()),
            config: Arc::new(config),
        };
        let token = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut bound = Vec::new();
        for l in listeners {
            bound.push(l.local_addr()?);
            let app = api::router(state.clone());
            let stop = token.clone();
            tasks.spawn(async move {
                let served = axum::serve(l, app).with_graceful_shutdown(stop.cancelled_owned()).await;
                if let Err(e) = served {
                    tracing::warn!(error = %e, "control plane listener ended with an error");
                }
            });
        }
        tracing::info!(addrs = ?bound, fanout = %state.config.fanout, "control plane listening");
        Ok(Self {
            addrs: bound,
            state,
            token,
            tasks,
        })
    }

    /// The first listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every listen address.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// `http://addr` of the first listener.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The southbound pusher (its channel pool's figures).
    pub fn ncm(&self) -> &Ncm {
        &self.state.ncm
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// Receives a record of every request from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<RequestRecord> {
        self.state.metrics.subscribe()
    }

    /// Changes the neighbor fan-out of the requests that follow, as [`Dpm::set_mode`] does. A
    /// load test builds a large topology in `incremental` (each new port once to each host,
    /// linear in the ports) and then measures in `alcor` (the whole subnet to a new port's
    /// host): building a million-port subnet in `alcor` would push every host the whole subnet
    /// once per request.
    pub fn set_fanout(&self, mode: FanoutMode) {
        let mut inner = self.state.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.dpm.set_mode(mode);
    }

    /// Stops serving; in-flight requests get `grace` to finish.
    pub async fn shutdown(mut self, grace: Duration) {
        self.token.cancel();
        if tokio::time::timeout(grace, async { while self.tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            self.tasks.shutdown().await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
