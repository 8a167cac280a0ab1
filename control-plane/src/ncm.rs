//! Southbound push (the NCM role): encoded goal states to agents over gRPC.
//!
//! - V2 (default): one `PushGoalStatesStream` per message, on channels pooled per host
//!   (`channels_per_host`, picked round-robin), each warmed up on first contact with one empty
//!   GoalStateV2, as Alcor's NCM does. V1: unary `PushNetworkResourceStates`.
//! - Concurrency is bounded by a semaphore; every push has a per-host timeout; a FAILURE status
//!   in a reply, an unreachable host or a timeout becomes a failed [`HostResult`], never a hang.
//! - Channels are open to at most `max_connected_hosts` hosts at once (least recently pushed
//!   closed first, and warmed up again on their next push, as NCM does on reconnecting), so a
//!   control plane's descriptors grow with the hosts it is busy with, not with every host it
//!   has ever pushed to. Fan-out to more hosts than that reconnects on every round: measured,
//!   not hidden ([`Ncm::reconnects`]).
//! - Optional coalescing: messages for the same host that arrive within `coalesce_window` are
//!   sent as one. Encoded GoalStateV2s concatenate into a valid merge (maps take every entry,
//!   a repeated key keeps the last), so coalescing is byte concatenation.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alcor_schema::codec::RawClientCodec;
use alcor_schema::{GoalStateOperationReply, OperationStatus};
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, oneshot};
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

use crate::dpm::{HostMessage, MessageCounts};

const PATH_V1: &str = "/alcor.schema.GoalStateProvisioner/PushNetworkResourceStates";
const PATH_V2: &str = "/alcor.schema.GoalStateProvisioner/PushGoalStatesStream";

/// Which RPC carries goal states to agents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushProtocol {
    /// `PushGoalStatesStream`, one stream per message (Alcor's default, version 102).
    #[default]
    V2,
    /// Unary `PushNetworkResourceStates` with a V1 GoalState (version 101).
    V1,
}

impl std::str::FromStr for PushProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "v2" => Ok(Self::V2),
            "v1" => Ok(Self::V1),
            _ => Err(format!("invalid push protocol `{s}` (expected v1 or v2)")),
        }
    }
}

/// How goal states are pushed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// V2 stream or V1 unary.
    pub protocol: PushProtocol,
    /// Channels per host (Alcor ships 10).
    pub channels_per_host: usize,
    /// One empty GoalStateV2 per channel on first contact.
    pub warmup: bool,
    /// Pushes in flight at once, over all hosts.
    pub max_concurrent_pushes: usize,
    /// How long one host may take to reply.
    #[serde(with = "humantime_serde")]
    pub host_timeout: Duration,
    /// The port agents listen on (Alcor dials 50001 whatever the node registered).
    pub agent_port: u16,
    /// Coalesce messages for one host arriving within this window (0: off). Unset: the fan-out
    /// mode decides (`incremental` coalesces within 2 ms, `alcor` does not, as Alcor).
    #[serde(with = "humantime_serde")]
    pub coalesce_window: Option<Duration>,
    /// Hosts with open channels at once. Unset: as many as the open-files limit allows
    /// ([`default_max_connected_hosts`]).
    pub max_connected_hosts: Option<usize>,
}

/// Hosts whose channels fit in half the open-files limit, at least 16. The other half is for
/// everything else in the process: its listeners and clients, channels still closing after
/// their pool was dropped, and, in an embedded run, the agents' own ends of the same
/// connections (a 20,000-host run whose channels took all but 1,024 descriptors ran out).
/// Raises the soft limit to the hard one first (a shell's default soft limit is often 1,024).
pub fn default_max_connected_hosts(channels_per_host: usize) -> usize {
    let soft = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    (soft / 2 / channels_per_host.max(1) as u64).max(16) as usize
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            protocol: PushProtocol::V2,
            channels_per_host: 2,
            warmup: true,
            max_concurrent_pushes: 512,
            host_timeout: Duration::from_secs(30),
            agent_port: alcor_schema::AGENT_GRPC_PORT,
            coalesce_window: None,
            max_connected_hosts: None,
        }
    }
}

/// The outcome of pushing to one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostResult {
    /// The host.
    pub host: Ipv4Addr,
    /// Every resource succeeded (or was pending/invalid: only FAILURE counts, as in Alcor).
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// From sending to the reply, µs.
    pub elapsed_us: u64,
    /// The agent's `message_total_operation_time`, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_total_us: Option<u32>,
    /// What the message carried (summed when coalesced).
    pub counts: MessageCounts,
    /// Messages merged into this push (1 unless coalesced).
    pub merged: u32,
}

#[derive(Debug)]
struct Pool {
    channels: Vec<Channel>,
    next: AtomicUsize,
    warmed: tokio::sync::OnceCell<()>,
}

struct Pending {
    message: HostMessage,
    merged: u32,
    waiters: Vec<oneshot::Sender<HostResult>>,
}

/// Pushes goal states to hosts.
pub struct Ncm {
    cfg: PushConfig,
    pools: Mutex<lru::LruCache<Ipv4Addr, Arc<Pool>>>,
    /// Pools opened after one to the same host had been closed for room.
    reconnects: std::sync::atomic::AtomicU64,
    /// Hosts whose pool was ever opened (to tell a reconnect from a first contact).
    seen: Mutex<rustc_hash::FxHashSet<Ipv4Addr>>,
    limit: Arc<Semaphore>,
    pending: Mutex<HashMap<Ipv4Addr, Pending>>,
}

impl std::fmt::Debug for Ncm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ncm").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Ncm {
    /// A pusher with `cfg`.
    pub fn new(cfg: PushConfig) -> Arc<Self> {
        let limit = Arc::new(Semaphore::new(cfg.max_concurrent_pushes.max(1)));
        let cap = cfg
            .max_connected_hosts
            .unwrap_or_else(|| default_max_connected_hosts(cfg.channels_per_host));
        let cap = std::num::NonZeroUsize::new(cap.max(1)).expect("at least 1");
        Arc::new(Self {
            cfg,
            pools: Mutex::new(lru::LruCache::new(cap)),
            reconnects: Default::default(),
            seen: Mutex::default(),
            limit,
            pending: Mutex::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PushConfig {
        &self.cfg
    }

    /// Hosts that may have open channels at once (the pool's bound).
    pub fn max_connected_hosts(&self) -> usize {
        self.pools.lock().unwrap_or_else(|e| e.into_inner()).cap().get()
    }

    /// Hosts with open channels now.
    pub fn connected_hosts(&self) -> usize {
        self.pools.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Channels reopened to a host whose channels had been closed for room: non-zero means
    /// the bound is below the hosts a workload keeps busy.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Pushes every message concurrently (bounded) and returns one result per push.
    pub async fn push_all(self: &Arc<Self>, messages: Vec<HostMessage>) -> Vec<HostResult> {
        let pushes = messages.into_iter().map(|m| {
            let ncm = self.clone();
            async move { ncm.push(m).await }
        });
        futures_util::future::join_all(pushes).await
    }

    /// Pushes one message, coalesced with others for the same host when configured.
    pub async fn push(self: &Arc<Self>, message: HostMessage) -> HostResult {
        let window = self.cfg.coalesce_window.unwrap_or_default();
        if window.is_zero() {
            return self.send(message, 1).await;
        }
        let host = message.host;
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.get_mut(&host) {
                Some(p) => {
                    let mut buf = BytesMut::with_capacity(p.message.bytes.len() + message.bytes.len());
                    buf.put(p.message.bytes.clone());
                    buf.put(message.bytes);
                    p.message.bytes = buf.freeze();
                    add_counts(&mut p.message.counts, &message.counts);
                    p.message.counts.bytes = p.message.bytes.len() as u64;
                    p.merged += 1;
                    p.waiters.push(tx);
                    false
                }
                None => {
                    pending.insert(
                        host,
                        Pending {
                            message,
                            merged: 1,
                            waiters: vec![tx],
                        },
                    );
                    true
                }
            }
        };
        if first {
            let ncm = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(window).await;
                let p = ncm.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&host);
                if let Some(p) = p {
                    let result = ncm.send(p.message, p.merged).await;
                    for w in p.waiters {
                        let _ = w.send(result.clone());
                    }
                }
            });
        }
        rx.await.unwrap_or_else(|_| HostResult {
            host,
            ok: false,
            error: Some("push task ended without a result".into()),
            elapsed_us: 0,
            agent_total_us: None,
            counts: MessageCounts::default(),
            merged: 0,
        })
    }

    /// Drops every host's channels, as a restarted process has none: the next push to each
    /// host connects (and warms up) again.
    pub fn disconnect_all(&self) {
        let dropped: Vec<_> = {
            let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
            std::iter::from_fn(|| pools.pop_lru()).collect()
        };
        // Reopening these is not the pool's bound at work: not counted as reconnects.
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for (host, _) in &dropped {
            seen.remove(host);
        }
        drop(seen);
        drop(dropped);
    }

    fn pool(&self, host: Ipv4Addr) -> Result<Arc<Pool>, String> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = pools.get(&host) {
            return Ok(p.clone());
        }
        if !self.seen.lock().unwrap_or_else(|e| e.into_inner()).insert(host) {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        let endpoint = Endpoint::from_shared(format!("http://{host}:{}", self.cfg.agent_port))
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true)
            .connect_timeout(self.cfg.host_timeout)
            .initial_stream_window_size(Some(2 << 20))
            .initial_connection_window_size(Some(8 << 20));
        let channels = (0..self.cfg.channels_per_host.max(1))
            .map(|_| endpoint.connect_lazy())
            .collect();
        let pool = Arc::new(Pool {
            channels,
            next: AtomicUsize::new(0),
            warmed: Default::default(),
        });
        // The pushes in flight on an evicted pool keep their channel clones; the connections
        // close when the last of them ends.
        let evicted = pools.push(host, pool.clone());
        drop(pools);
        drop(evicted);
        Ok(pool)
    }

    /// One message over one of `pool`'s channels, warming the pool up first if it is new.
    async fn exchange(&self, pool: &Pool, message: &HostMessage) -> Result<GoalStateOperationReply, Status> {
        if self.cfg.warmup && self.cfg.protocol == PushProtocol::V2 {
            pool.warmed
                .get_or_init(|| async {
                    for ch in &pool.channels {
                        let _ = call_v2(ch.clone(), empty_goal_state()).await;
                    }
                })
                .await;
        }
        let ch = pool.channels[pool.next.fetch_add(1, Ordering::Relaxed) % pool.channels.len()].clone();
        match self.cfg.protocol {
            PushProtocol::V2 => call_v2(ch, message.bytes.clone()).await,
            PushProtocol::V1 => {
                let v1 = message.to_v1().map_err(|e| Status::internal(e.to_string()))?;
                call_v1(ch, v1).await
            }
        }
    }

    /// Drops `host`'s pool if it is still `pool`, so that the next push connects anew.
    fn forget(&self, host: Ipv4Addr, pool: &Arc<Pool>) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if pools.peek(&host).is_some_and(|p| Arc::ptr_eq(p, pool)) {
            pools.pop(&host);
            self.seen.lock().unwrap_or_else(|e| e.into_inner()).remove(&host);
        }
    }

    async fn send(&self, message: HostMessage, merged: u32) -> HostResult {
        let started = Instant::now();
        let host = message.host;
        let counts = message.counts;
        let outcome = async {
            let _permit = self.limit.acquire().await.map_err(|e| e.to_string())?;
            // The timeout covers the warm-up too: a host that accepts connections and never
            // answers must not hold the API.
            let exchange = async {
                let pool = self.pool(host).map_err(Status::internal)?;
                match self.exchange(&pool, &message).await {
                    // A connection that broke while idle (the host restarted, a reset) fails
                    // the first call on it: gRPC clients retry such a call once on a new
                    // connection, since the message never reached the host.
                    Err(status) if is_broken_connection(&status) => {
                        self.forget(host, &pool);
                        let pool = self.pool(host).map_err(Status::internal)?;
                        self.exchange(&pool, &message).await
                    }
                    other => other,
                }
            };
            match tokio::time::timeout(self.cfg.host_timeout, exchange).await {
                Err(_) => Err(format!("no reply within {:?}", self.cfg.host_timeout)),
                Ok(Err(status)) => Err(format!("{}: {}", status.code(), status.message())),
                Ok(Ok(reply)) => Ok(reply),
            }
        }
        .await;
        let elapsed_us = started.elapsed().as_micros() as u64;
        match outcome {
            Ok(reply) => {
                let failed: Vec<&str> = reply
                    .operation_statuses
                    .iter()
                    .filter(|s| s.operation_status() == OperationStatus::Failure)
                    .map(|s| s.resource_id.as_str())
                    .collect();
                HostResult {
                    host,
                    ok: failed.is_empty(),
                    error: (!failed.is_empty())
                        .then(|| format!("FAILURE for {} resource(s): {}", failed.len(), failed.join(", "))),
                    elapsed_us,
                    agent_total_us: Some(reply.message_total_operation_time),
                    counts,
                    merged,
                }
            }
            Err(error) => HostResult {
                host,
                ok: false,
                error: Some(error),
                elapsed_us,
                agent_total_us: None,
                counts,
                merged,
            },
        }
    }
}

/// A call that failed because its connection was gone before it was sent (reset or closed),
/// not because the host answered an error.
fn is_broken_connection(status: &Status) -> bool {
    use std::error::Error as _;
    if !matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown) {
        return false;
    }
    // The transport's own error is the source; a status the host sent has none.
    let mut source = status.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            );
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_closed() || h.is_canceled())
        {
            return true;
        }
        source = e.source();
    }
    false
}

fn add_counts(a: &mut MessageCounts, b: &MessageCounts) {
    a.ports += b.ports;
    a.neighbors += b.neighbors;
    a.remote_group_neighbors += b.remote_group_neighbors;
    a.security_groups += b.security_groups;
}

fn empty_goal_state() -> Bytes {
    Bytes::new()
}

async fn call_v2(ch: Channel, bytes: Bytes) -> Result<GoalStateOperationReply, Status> {
    let mut grpc = tonic::client::Grpc::new(ch).max_decoding_message_size(64 << 20);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(PATH_V2);
    let request = tonic::Request::new(futures_util::stream::iter([bytes]));
    let mut replies = grpc.streaming(request, path, RawClientCodec).await?.into_inner();
    replies
        .message()
        .await?
        .ok_or_else(|| Status::internal("the agent finished the stream without a reply"))
}

async fn call_v1(ch: Channel, bytes: Bytes) -> Result<GoalStateOperationReply, Status> {
    let mut grpc = tonic::client::Grpc::new(ch).max_decoding_message_size(64 << 20);
    grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(PATH_V1);
    Ok(grpc
        .unary(tonic::Request::new(bytes), path, RawClientCodec)
        .await?
        .into_inner())
}
