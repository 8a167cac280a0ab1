//! A fleet: N agents in one process, each a real gRPC server on its own loopback address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::agent::{Agent, AgentConfig, AgentStats, Shared};
use crate::clock::Epoch;
use crate::event::{AgentEvent, EventBus};
use crate::export;
use crate::fault::{Active, AgentFault, FaultHandle, FaultIo};
use crate::service::FleetRoute;

/// Descriptors kept free for everything that is not an agent (logs, the control plane, clients).
/// Descriptors kept spare beside the agents (logs, files, the harness's own connections).
pub const FD_RESERVE: u64 = 256;

/// Where and how many agents to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// Number of agents.
    pub count: usize,
    /// Address of the first agent; the others follow (x.y.z.0 and x.y.z.255 are skipped):
    /// 127.0.0.0/8, or a block the host has.
    pub base_ip: Ipv4Addr,
    /// Port every agent listens on (Alcor dials 50001); 0 picks a free port per agent.
    pub port: u16,
    /// Connections each agent is expected to hold at once, for the open-files budget (a
    /// controller pools up to 10 channels per host).
    pub connections_per_agent: u64,
    /// One listener per agent, or one for the whole fleet.
    pub listen: ListenMode,
}

/// How a fleet listens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenMode {
    /// Each agent its own listener on its own address: costs a descriptor per agent, and shares
    /// the port with whatever else listens on other addresses of the host.
    #[default]
    PerAddress,
    /// One wildcard listener (`0.0.0.0:port`) for the whole fleet; each connection goes to the
    /// agent whose address it was made to, and one to an address no agent has is refused. Idle
    /// agents cost no descriptor, so one process holds tens of thousands; the port is then the
    /// fleet's on every address of the host.
    Shared,
}

impl std::str::FromStr for ListenMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "per-address" => Ok(Self::PerAddress),
            "shared" => Ok(Self::Shared),
            _ => Err(format!("`{s}`: per-address or shared")),
        }
    }
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            count: 1,
            base_ip: Ipv4Addr::new(127, 1, 0, 1),
            port: alcor_schema::AGENT_GRPC_PORT,
            connections_per_agent: 2,
            listen: ListenMode::PerAddress,
        }
    }
}

/// Why a fleet could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// An address no host can listen on (unspecified, broadcast, multicast).
    #[error("agent address {0} cannot be an agent's: give a unicast address of this host")]
    NotUnicast(Ipv4Addr),
    /// An agent address this host does not have.
    #[error(
        "agent {index} cannot listen on {addr}: the address is not on this host. Agents listen on \
         127.0.0.0/8 as they are, or on addresses the host has: `alcor-scale net up --cidr BLOCK` adds \
         a block to a dummy interface (needs CAP_NET_ADMIN)"
    )]
    NotLocal {
        /// Agent index.
        index: usize,
        /// Address.
        addr: SocketAddr,
    },
    /// Not enough addresses after the base address.
    #[error("{count} agents starting at {base} run past the end of {}", if base.is_loopback() { "127.0.0.0/8" } else { "the address space" })]
    RangeExhausted {
        /// Requested count.
        count: usize,
        /// Base address.
        base: Ipv4Addr,
    },
    /// The open-files limit is too low for this many agents.
    #[error(
        "open-files limit is {limit} and cannot be raised further; {count} agents need about {needed} \
         descriptors ({per_agent} per agent + {reserve} spare), so at most {fit} agents fit. \
         Raise the hard limit (`ulimit -Hn`, LimitNOFILE) or run fewer agents"
    )]
    FdLimit {
        /// Current soft limit after trying to raise it.
        limit: u64,
        /// Requested agents.
        count: usize,
        /// Descriptors needed.
        needed: u64,
        /// Descriptors per agent.
        per_agent: u64,
        /// Spare descriptors kept.
        reserve: u64,
        /// Agents that fit.
        fit: u64,
    },
    /// Binding an agent's listener failed.
    #[error("agent {index} cannot listen on {addr}: {source}")]
    Bind {
        /// Agent index.
        index: usize,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Any other I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The addresses of `count` agents from `base`, skipping x.y.z.0 and x.y.z.255. Loopback
/// fleets stay in 127.0.0.0/8; others may use any unicast block the host has (see
/// `alcor-scale net up`).
pub fn host_ips(base: Ipv4Addr, count: usize) -> Result<Vec<Ipv4Addr>, FleetError> {
    if base.is_unspecified() || base.is_broadcast() || base.is_multicast() {
        return Err(FleetError::NotUnicast(base));
    }
    let mut out = Vec::with_capacity(count);
    let mut next = u32::from(base);
    while out.len() < count {
        let ip = Ipv4Addr::from(next);
        if ip.is_loopback() != base.is_loopback() || ip.is_multicast() || ip.is_broadcast() {
            return Err(FleetError::RangeExhausted { count, base });
        }
        // .0 and .255 are skipped in a range, but a base given as such is taken as it is: a
        // pod's own address (one agent per pod) may well end in either.
        if next == u32::from(base) || !matches!(ip.octets()[3], 0 | 255) {
            out.push(ip);
        }
        next = next.checked_add(1).ok_or(FleetError::RangeExhausted { count, base })?;
    }
    Ok(out)
}

/// Raises the open-files limit as far as allowed and checks that `count` agents fit, each with
/// its own listener and `connections_per_agent` connections. Returns the limit in force.
pub fn ensure_fd_budget(count: usize, connections_per_agent: u64) -> Result<u64, FleetError> {
    let per_agent = 1 + connections_per_agent;
    let needed = count as u64 * per_agent + FD_RESERVE;
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    if hard < needed {
        // Raising the hard limit needs privilege (root, CAP_SYS_RESOURCE); without it this fails
        // and the soft limit goes as far as the hard one allows.
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, needed, needed);
    }
    let limit = rlimit::increase_nofile_limit(u64::MAX)?;
    if limit < needed {
        return Err(FleetError::FdLimit {
            limit,
            count,
            needed,
            per_agent,
            reserve: FD_RESERVE,
            fit: limit.saturating_sub(FD_RESERVE) / per_agent,
        });
    }
    Ok(limit)
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Pause after a failed accept (out of descriptors, say), so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(5);

/// The connections of one agent's own listener. The listener is closed while the agent is
/// crashed (connects are refused, as to a host that is down) and bound again when it is back.
fn agent_incoming(
    listener: TcpListener,
    agent: Arc<Agent>,
) -> impl futures_util::Stream<Item = std::io::Result<FaultIo>> + Send {
    let changes = agent.fault_changes();
    futures_util::stream::unfold(
        (Some(listener), agent, changes),
        |(mut listener, agent, mut changes)| async move {
            loop {
                if agent.is_down() {
                    listener = None;
                    // Ends when the crash does, or when the fleet stops (the sender is gone).
                    if changes.changed().await.is_err() {
                        return None;
                    }
                    continue;
                }
                let Some(l) = &listener else {
                    match listen(agent.addr()) {
                        Ok(l) => listener = Some(l),
                        Err(e) => {
                            tracing::warn!(addr = %agent.addr(), error = %e, "agent cannot listen again after its crash; retrying");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    continue;
                };
                tokio::select! {
                    accepted = l.accept() => {
                        let item = match accepted {
                            Ok((stream, _)) => {
                                let _ = stream.set_nodelay(true);
                                Ok(FaultIo::new(stream, Some(agent.clone())))
                            }
                            Err(e) => {
                                tokio::time::sleep(ACCEPT_BACKOFF).await;
                                Err(e)
                            }
                        };
                        return Some((item, (listener, agent, changes)));
                    }
                    changed = changes.changed() => if changed.is_err() { return None },
                }
            }
        },
    )
}

/// The connections of a shared listener, each handed to the agent whose address it was made to.
fn shared_incoming(
    listener: TcpListener,
    agents: Arc<Vec<Arc<Agent>>>,
) -> impl futures_util::Stream<Item = std::io::Result<FaultIo>> + Send {
    futures_util::stream::unfold((listener, agents), |(listener, agents)| async move {
        let item = match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let agent = match stream.local_addr().map(|a| a.ip()) {
                    Ok(IpAddr::V4(ip)) => agents
                        .binary_search_by_key(&ip, |a| a.ip())
                        .ok()
                        .map(|i| agents[i].clone()),
                    _ => None,
                };
                Ok(FaultIo::new(stream, agent))
            }
            Err(e) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                Err(e)
            }
        };
        Some((item, (listener, agents)))
    })
}

/// Running agents. Dropping a fleet stops its servers; [`Fleet::shutdown`] waits for them.
#[derive(Debug)]
pub struct Fleet {
    agents: Vec<Arc<Agent>>,
    shared: Arc<Shared>,
    token: CancellationToken,
    tasks: JoinSet<()>,
    /// Ids of the faults set so far.
    faults: Arc<AtomicU64>,
}

/// Sets faults on a fleet's agents ([`Fleet::injector`]).
#[derive(Debug, Clone)]
pub struct Injector {
    agents: Vec<Arc<Agent>>,
    ids: Arc<AtomicU64>,
}

impl Injector {
    /// As [`Fleet::inject`].
    pub fn inject(&self, indices: &[usize], fault: AgentFault, seed: u64) -> FaultHandle {
        let id = self.ids.fetch_add(1, Ordering::Relaxed) + 1;
        let agents: Vec<Arc<Agent>> = indices.iter().filter_map(|&i| self.agents.get(i).cloned()).collect();
        for a in &agents {
            let draws = seed ^ (u64::from(a.index()) << 32) ^ id;
            a.set_fault(Arc::new(Active::new(fault, id, draws)));
        }
        FaultHandle {
            agents,
            id,
            cleared: false,
        }
    }

    /// The agents' addresses, in index order.
    pub fn hosts(&self) -> Vec<Ipv4Addr> {
        self.agents.iter().map(|a| a.ip()).collect()
    }
}

impl Fleet {
    /// Starts `fleet.count` agents, each a gRPC server on its own address. Every listener is
    /// bound before this returns, so agents accept connections at once.
    pub async fn start(fleet: &FleetConfig, agent: AgentConfig) -> Result<Self, FleetError> {
        let ips = host_ips(fleet.base_ip, fleet.count)?;
        match fleet.listen {
            ListenMode::PerAddress => {
                ensure_fd_budget(fleet.count, fleet.connections_per_agent)?;
            }
            ListenMode::Shared => {
                // Idle agents cost nothing; each open connection costs one descriptor.
                let limit = rlimit::increase_nofile_limit(u64::MAX)?;
                let expected = fleet.count as u64 * fleet.connections_per_agent;
                if limit < expected + FD_RESERVE {
                    tracing::warn!(
                        limit,
                        expected,
                        "open-files limit below one descriptor per expected connection: connections past it are refused"
                    );
                }
            }
        }
        let shared = Arc::new(Shared {
            bus: Arc::new(EventBus::default()),
            epoch: Epoch::now(),
            in_flight: AtomicUsize::new(0),
            resync: Default::default(),
        });
        let config = Arc::new(agent);
        let token = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut agents = Vec::with_capacity(ips.len());
        let serve = |tasks: &mut JoinSet<()>,
                     incoming: std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<FaultIo>> + Send>>,
                     service: FleetRoute,
                     label: String| {
            let stop = token.clone().cancelled_owned();
            tasks.spawn(async move {
                // Large windows: goal states of 10k+ neighbors are megabytes.
                let served = Server::builder()
                    .initial_stream_window_size(Some(2 << 20))
                    .initial_connection_window_size(Some(8 << 20))
                    .add_service(service)
                    .serve_with_incoming_shutdown(incoming, stop)
                    .await;
                if let Err(e) = served {
                    tracing::warn!(addr = %label, error = %e, "agent server ended with an error");
                }
            });
        };
        match fleet.listen {
            ListenMode::PerAddress => {
                for (index, ip) in ips.into_iter().enumerate() {
                    let addr = SocketAddr::new(IpAddr::V4(ip), fleet.port);
                    let listener = listen(addr).map_err(|source| match source.kind() {
                        std::io::ErrorKind::AddrNotAvailable => FleetError::NotLocal { index, addr },
                        _ => FleetError::Bind { index, addr, source },
                    })?;
                    let addr = listener.local_addr()?;
                    let agent = Arc::new(Agent::new(index as u32, addr, config.clone(), shared.clone()));
                    let incoming = Box::pin(agent_incoming(listener, agent.clone()));
                    serve(&mut tasks, incoming, FleetRoute::One(agent.clone()), addr.to_string());
                    agents.push(agent);
                }
            }
            ListenMode::Shared => {
                let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), fleet.port);
                let listener = listen(any).map_err(|source| FleetError::Bind {
                    index: 0,
                    addr: any,
                    source,
                })?;
                let port = listener.local_addr()?.port();
                // Each address must be the host's: a wildcard listener would accept for addresses
                // the host lacks only in the sense that nothing can ever reach them.
                for (index, ip) in ips.iter().enumerate().filter(|(_, ip)| !ip.is_loopback()) {
                    let addr = SocketAddr::new(IpAddr::V4(*ip), 0);
                    if let Err(e) = std::net::UdpSocket::bind(addr) {
                        return Err(match e.kind() {
                            std::io::ErrorKind::AddrNotAvailable => FleetError::NotLocal {
                                index,
                                addr: SocketAddr::new(IpAddr::V4(*ip), port),
                            },
                            _ => FleetError::Io(e),
                        });
                    }
                }
                for (index, ip) in ips.into_iter().enumerate() {
                    let addr = SocketAddr::new(IpAddr::V4(ip), port);
                    agents.push(Arc::new(Agent::new(index as u32, addr, config.clone(), shared.clone())));
                }
                let agents_by_ip = Arc::new(agents.clone());
                let incoming = Box::pin(shared_incoming(listener, agents_by_ip.clone()));
                serve(&mut tasks, incoming, FleetRoute::Many(agents_by_ip), any.to_string());
            }
        }
        tracing::info!(count = agents.len(), first = %agents.first().map(|a| a.addr().to_string()).unwrap_or_default(), "fleet listening");
        Ok(Self {
            agents,
            shared,
            token,
            tasks,
            faults: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Every agent consumes its host's goal states from `broker` as well (the MQ southbound),
    /// until the fleet stops.
    pub fn consume(&mut self, broker: Arc<dyn broker::Broker>) {
        for a in &self.agents {
            let task = crate::consume::consume(a.clone(), broker.clone(), self.token.clone());
            self.tasks.spawn(task);
        }
    }

    /// Puts the agents at `indices` in `fault` until the handle is cleared or dropped; each
    /// agent's draws (delays, which messages fail) come from `seed` and its index. An agent in
    /// another fault leaves it for this one.
    pub fn inject(&self, indices: &[usize], fault: AgentFault, seed: u64) -> FaultHandle {
        self.injector().inject(indices, fault, seed)
    }

    /// The control plane agents ask for their state after a crash, when their configuration
    /// names none (set once; later calls are ignored).
    pub fn set_resync(&self, cp: SocketAddr) {
        let _ = self.shared.resync.set(cp);
    }

    /// What sets faults on this fleet's agents, for a task that does not own the fleet (a
    /// timeline). Its handles outlive nothing: drop them before shutting the fleet down.
    pub fn injector(&self) -> Injector {
        Injector {
            agents: self.agents.clone(),
            ids: self.faults.clone(),
        }
    }

    /// The agents, in index order.
    pub fn agents(&self) -> &[Arc<Agent>] {
        &self.agents
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// True for a fleet of no agents.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// The agent listening on `ip`, if any.
    pub fn agent_by_ip(&self, ip: Ipv4Addr) -> Option<&Arc<Agent>> {
        // Addresses are consecutive except for skipped .0/.255, so a binary search works.
        self.agents
            .binary_search_by_key(&ip, |a| a.ip())
            .ok()
            .map(|i| &self.agents[i])
    }

    /// Receives every event from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Arc<AgentEvent>> {
        self.shared.bus.subscribe()
    }

    /// The time base of the fleet's events.
    pub fn epoch(&self) -> Epoch {
        self.shared.epoch
    }

    /// Message handlers running now (a gauge: it must return to 0 when the fleet is idle).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// Counters summed over all agents.
    pub fn stats(&self) -> AgentStats {
        let mut total = AgentStats::default();
        for a in &self.agents {
            total += a.stats();
        }
        total
    }

    /// Streams events as JSON lines to every client that connects to `addr` (any address: a
    /// harness on another machine reads it),
    /// holding at most `buffer` unread events per client (see [`export`] for the format and
    /// what happens past it). Returns the bound address.
    pub async fn export_events(&mut self, addr: SocketAddr, buffer: usize) -> Result<SocketAddr, FleetError> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let hello = export::Hello::new(&self.shared.epoch, &self.agents);
        self.tasks.spawn(export::serve(
            listener,
            self.shared.bus.clone(),
            self.shared.epoch,
            hello,
            buffer,
            self.token.clone(),
        ));
        Ok(bound)
    }

    /// Stops every agent: no new connections, in-flight messages finish (up to `grace`), then
    /// whatever remains is aborted.
    pub async fn shutdown(mut self, grace: Duration) {
        self.token.cancel();
        let drained = tokio::time::timeout(grace, async { while self.tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(
                remaining = self.tasks.len(),
                "agents still busy after {grace:?}; aborting them"
            );
            self.tasks.shutdown().await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ips_skip_network_and_broadcast_octets() {
        let ips = host_ips(Ipv4Addr::new(127, 1, 0, 253), 4).unwrap();
        assert_eq!(
            ips,
            [
                Ipv4Addr::new(127, 1, 0, 253),
                Ipv4Addr::new(127, 1, 0, 254),
                Ipv4Addr::new(127, 1, 1, 1),
                Ipv4Addr::new(127, 1, 1, 2)
            ]
        );
        // A base ending in .0 or .255 is taken as given (a pod's own address may).
        assert_eq!(
            host_ips(Ipv4Addr::new(10, 244, 3, 0), 2).unwrap(),
            [Ipv4Addr::new(10, 244, 3, 0), Ipv4Addr::new(10, 244, 3, 1)]
        );
        assert_eq!(
            host_ips(Ipv4Addr::new(10, 244, 2, 255), 1).unwrap(),
            [Ipv4Addr::new(10, 244, 2, 255)]
        );
        // Any unicast block, staying out of loopback when it starts outside it.
        assert_eq!(
            host_ips(Ipv4Addr::new(198, 18, 0, 254), 2).unwrap(),
            [Ipv4Addr::new(198, 18, 0, 254), Ipv4Addr::new(198, 18, 1, 1)]
        );
        assert!(matches!(
            host_ips(Ipv4Addr::new(126, 255, 255, 254), 2),
            Err(FleetError::RangeExhausted { .. })
        ));
        assert!(matches!(
            host_ips(Ipv4Addr::new(224, 0, 0, 1), 1),
            Err(FleetError::NotUnicast(_))
        ));
        assert!(matches!(
            host_ips(Ipv4Addr::new(127, 255, 255, 250), 10),
            Err(FleetError::RangeExhausted { .. })
        ));
    }

    #[test]
    fn fd_budget_names_how_many_fit() {
        // More than the kernel allows any process, so that not even root can raise it that far.
        let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
        let too_many = (nr_open / 3) as usize + 10;
        match ensure_fd_budget(too_many, 2) {
            Err(e @ FleetError::FdLimit { fit, .. }) => {
                assert!(fit < too_many as u64);
                assert!(e.to_string().contains(&format!("at most {fit} agents fit")), "{e}");
            }
            other => panic!("expected FdLimit, got {other:?}"),
        }
        assert!(ensure_fd_budget(10, 2).is_ok());
    }
}
