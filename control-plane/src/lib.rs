//! A reference control plane that behaves as Alcor does on the wire: Alcor's northbound REST
//! API, goal-state computation (the DPM role) and the southbound gRPC push (the NCM role), in
//! one process and fast enough that it is never the bottleneck when agents are measured.
//!
//! Data flows one way: [`api`] (REST handlers) → [`model`] (resources, IPAM) → [`dpm`] (goal
//! states per host, `alcor` or `incremental` fan-out) → [`ncm`] (push to agents) →
//! [`metrics`] (stage timings, Prometheus, request records).
//!
//! Agents that restarted ask [`resync`] (the NCM's gRPC endpoint) for their state. A control
//! plane can be restarted in place ([`ControlPlane::restart`]), keeping or dropping its state.
//!
//! Goal states travel over gRPC ([`ncm`]) or, with `southbound = mq`, through a message broker
//! ([`southbound`], [`broker`]): the same messages either way.
//!
//! Not here: Alcor's microservice split, its databases, or on-demand requests.

pub mod api;
pub mod dpm;
pub mod error;
pub mod metrics;
pub mod model;
pub mod ncm;
pub mod resync;
pub mod southbound;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use dpm::{Dpm, FanoutMode, HostMessage, MessageCounts, SgMode};
pub use error::ApiError;
pub use metrics::{Metrics, RequestRecord};
pub use ncm::{HostResult, Ncm, PushConfig, PushProtocol};
pub use resync::ResyncService;
pub use southbound::{Publisher, Southbound, SouthboundKind};

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
    /// How remote-group rules reach hosts.
    pub sg_mode: SgMode,
    /// Southbound push.
    pub push: PushConfig,
    /// Answer port requests before the push ends (default: after every host replied, as Alcor).
    pub async_push: bool,
    /// Where the NCM's gRPC endpoint for agents (`RequestGoalStates`: restarted agents asking
    /// for their state) listens; none: not served.
    pub ncm_listen: Option<SocketAddr>,
    /// gRPC push to each host (default) or publish to a broker.
    pub southbound: SouthboundKind,
    /// The broker, when `southbound` is `mq` (its `url` is required).
    pub broker: broker::BrokerConfig,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9009)),
            per_service_ports: false,
            fanout: FanoutMode::Alcor,
            sg_mode: SgMode::AddressSet,
            push: PushConfig::default(),
            async_push: false,
            ncm_listen: None,
            southbound: SouthboundKind::Grpc,
            broker: Default::default(),
        }
    }
}

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    addrs: Vec<SocketAddr>,
    ncm_addr: Option<SocketAddr>,
    state: api::AppState,
    serving: tokio::sync::Mutex<Serving>,
    /// Cancelled by `Drop`: the listeners of whatever generation is serving.
    dropped: CancellationToken,
}

/// The listeners of one life of the control plane (a restart ends one and starts another).
#[derive(Debug)]
struct Serving {
    token: CancellationToken,
    tasks: JoinSet<()>,
}

impl Serving {
    /// Closes the listeners; requests in flight get `grace`, then are aborted.
    async fn stop(&mut self, grace: Duration) {
        self.token.cancel();
        if tokio::time::timeout(grace, async { while self.tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            self.tasks.shutdown().await;
        }
    }
}

/// Whether a control plane restarted in place keeps what it held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartState {
    /// Resources and goal-state caches survive (a process restart over an intact database).
    #[default]
    Keep,
    /// Everything is forgotten: nodes, networks, ports (a restart over an empty database).
    Drop,
}

async fn bind_all(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for a in addrs {
        let l = TcpListener::bind(a)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("control plane cannot listen on {a}: {e}")))?;
        listeners.push(l);
    }
    Ok(listeners)
}

/// Serves the REST API on `rest` and, when given, the NCM endpoint on `ncm`, until `token`.
fn serve(
    state: &api::AppState,
    rest: Vec<TcpListener>,
    ncm: Option<TcpListener>,
    token: &CancellationToken,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for l in rest {
        let app = api::router(state.clone());
        let stop = token.clone();
        tasks.spawn(async move {
            let served = axum::serve(l, app).with_graceful_shutdown(stop.cancelled_owned()).await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "control plane listener ended with an error");
            }
        });
    }
    if let Some(l) = ncm {
        let service =
            alcor_schema::goal_state_provisioner_server::GoalStateProvisionerServer::new(resync::ResyncService {
                state: state.clone(),
            });
        let stop = token.clone().cancelled_owned();
        tasks.spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, stop)
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "NCM endpoint ended with an error");
            }
        });
    }
    tasks
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
        let listeners = bind_all(&addrs).await?;
        let ncm = match config.ncm_listen {
            Some(a) => Some(bind_all(&[a]).await?.remove(0)),
            None => None,
        };
        let ncm_addr = ncm.as_ref().map(|l| l.local_addr()).transpose()?;
        let southbound = match config.southbound {
            SouthboundKind::Grpc => Southbound::Grpc(Ncm::new(config.push.clone())),
            SouthboundKind::Mq => {
                let b = broker::connect(&config.broker).await.map_err(std::io::Error::other)?;
                Southbound::Mq(Arc::new(Publisher::new(b)))
            }
        };
        let state = api::AppState {
            inner: Arc::new(Mutex::new(api::Inner {
                store: Default::default(),
                dpm: {
                    let mut d = Dpm::new(config.fanout);
                    d.set_sg_mode(config.sg_mode);
                    d
                },
            })),
            southbound,
            metrics: Arc::new(Metrics::default()),
            config: Arc::new(config),
        };
        let bound = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<std::io::Result<Vec<_>>>()?;
        let dropped = CancellationToken::new();
        let token = dropped.child_token();
        let tasks = serve(&state, listeners, ncm, &token);
        tracing::info!(addrs = ?bound, ncm = ?ncm_addr, fanout = %state.config.fanout, southbound = %state.southbound.kind(), "control plane listening");
        Ok(Self {
            addrs: bound,
            ncm_addr,
            state,
            serving: tokio::sync::Mutex::new(Serving { token, tasks }),
            dropped,
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

    /// Where the NCM endpoint for agents listens, if it is served.
    pub fn ncm_addr(&self) -> Option<SocketAddr> {
        self.ncm_addr
    }

    /// `http://addr` of the first listener.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The gRPC pusher (its channel pool's figures), when goal states go that way.
    pub fn ncm(&self) -> Option<&Ncm> {
        self.state.southbound.ncm()
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

    /// Changes how remote-group rules reach hosts for the requests that follow. Hosts keep what
    /// the other strategy sent them.
    pub fn set_sg_mode(&self, mode: SgMode) {
        let mut inner = self.state.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.dpm.set_sg_mode(mode);
    }

    /// Restarts in place, as a process restart would: the listeners close (requests in flight
    /// get `grace`), connections to agents are dropped, nothing is served for `down`, then the
    /// same addresses are served again, with the state kept or dropped.
    pub async fn restart(&self, state: RestartState, down: Duration, grace: Duration) -> std::io::Result<()> {
        let mut serving = self.serving.lock().await;
        serving.stop(grace).await;
        self.state.southbound.disconnect_all();
        if state == RestartState::Drop {
            let mut inner = self.state.lock();
            let (mode, sg_mode) = (inner.dpm.mode(), inner.dpm.sg_mode());
            inner.store = Default::default();
            inner.dpm = Dpm::new(mode);
            inner.dpm.set_sg_mode(sg_mode);
        }
        tracing::info!(?state, ?down, "control plane restarting");
        tokio::time::sleep(down).await;
        let listeners = bind_all(&self.addrs).await?;
        let ncm = match self.ncm_addr {
            Some(a) => Some(bind_all(&[a]).await?.remove(0)),
            None => None,
        };
        let token = self.dropped.child_token();
        serving.tasks = serve(&self.state, listeners, ncm, &token);
        serving.token = token;
        tracing::info!("control plane serving again");
        Ok(())
    }

    /// Stops serving; in-flight requests get `grace` to finish.
    pub async fn shutdown(&self, grace: Duration) {
        self.serving.lock().await.stop(grace).await;
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.dropped.cancel();
        self.serving.get_mut().token.cancel();
    }
}
