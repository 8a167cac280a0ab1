//! One simulated agent: its host state, counters, and the processing of one message from raw
//! bytes to reply (decode, apply, simulated programming wait, reply, event).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use alcor_schema::goal_state_operation_reply::GoalStateOperationStatus;
use alcor_schema::{GoalState, GoalStateOperationReply};
use bytes::Bytes;
use prost::Message;
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::apply::{Applied, ApplyOptions, Charge, ValidationMode, apply_decoded_v2, apply_v1};
use crate::clock::Epoch;
use crate::cost::{Cost, CostModel};
use crate::event::{AgentEvent, EventBus, Queued, Rpc};
use crate::fault::{Active, AgentFault, ErrorReply};
use crate::state::HostState;

/// Messages larger than this are decoded and applied on the blocking pool, so that one huge goal
/// state (100k neighbors take tens of ms) does not stall the other agents sharing a worker.
const INLINE_LIMIT: usize = 64 * 1024;

/// How every agent of a fleet behaves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Validation of content (lenient by default).
    pub mode: ValidationMode,
    /// Simulated data-plane programming cost.
    pub cost_model: CostModel,
    /// Largest request message accepted, bytes (the real agent allows INT_MAX).
    pub max_message_size: usize,
    /// How long a stream may stay open without its first message before the agent ends it.
    #[serde(with = "humantime_serde")]
    pub first_message_timeout: Duration,
    /// The control plane's `GoalStateProvisioner` to ask for goal states with
    /// `RequestGoalStates(AGENT_RESTARTED)` when the agent comes back from a crash (none: it
    /// waits to be programmed again by whatever the control plane sends next).
    pub resync: Option<SocketAddr>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            mode: ValidationMode::Lenient,
            cost_model: CostModel::None,
            // Protobuf's own limit (2 GiB - 1): a 1-port + 1,000,000-neighbor goal state is
            // about 280 MB, and the agent should never be what refuses a control plane's message.
            max_message_size: i32::MAX as usize,
            first_message_timeout: Duration::from_secs(60),
            resync: None,
        }
    }
}

/// State shared by the agents of one fleet.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) bus: Arc<EventBus>,
    pub(crate) epoch: Epoch,
    /// Message handlers running now, across the fleet.
    pub(crate) in_flight: AtomicUsize,
    /// The control plane to ask after a crash, when the configuration named none (known only
    /// once the control plane is up: [`crate::Fleet::set_resync`]).
    pub(crate) resync: std::sync::OnceLock<SocketAddr>,
}

/// Counters of one agent.
#[derive(Debug, Default)]
struct Counters {
    messages: AtomicU64,
    empty_messages: AtomicU64,
    bytes: AtomicU64,
    decode_errors: AtomicU64,
    port_states: AtomicU64,
    neighbor_states: AtomicU64,
    invalid: AtomicU64,
    simulated_us: AtomicU64,
    total_us: AtomicU64,
}

/// A snapshot of an agent's (or a fleet's summed) counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AgentStats {
    /// Messages processed (including empty warm-ups and undecodable ones).
    pub messages: u64,
    /// Empty messages (warm-ups).
    pub empty_messages: u64,
    /// Bytes received in messages.
    pub bytes: u64,
    /// Messages that did not decode.
    pub decode_errors: u64,
    /// Port states received.
    pub port_states: u64,
    /// Neighbor states received.
    pub neighbor_states: u64,
    /// Resources answered INVALID_ARG.
    pub invalid: u64,
    /// Simulated programming time, µs.
    pub simulated_us: u64,
    /// Replied total operation time, µs.
    pub total_us: u64,
}

impl std::ops::AddAssign for AgentStats {
    fn add_assign(&mut self, o: Self) {
        self.messages += o.messages;
        self.empty_messages += o.empty_messages;
        self.bytes += o.bytes;
        self.decode_errors += o.decode_errors;
        self.port_states += o.port_states;
        self.neighbor_states += o.neighbor_states;
        self.invalid += o.invalid;
        self.simulated_us += o.simulated_us;
        self.total_us += o.total_us;
    }
}

/// One simulated host agent.
#[derive(Debug)]
pub struct Agent {
    index: u32,
    addr: SocketAddr,
    config: Arc<AgentConfig>,
    state: Mutex<HostState>,
    counters: Counters,
    pub(crate) shared: Arc<Shared>,
    /// The fault the agent is in, if any.
    fault: RwLock<Option<Arc<Active>>>,
    /// Crashes so far: a message or connection from an earlier boot is lost with the crash.
    boot: AtomicU64,
    /// Bumped whenever a fault is set or taken off, for the listener to follow.
    fault_changes: tokio::sync::watch::Sender<u64>,
}

/// Decrements the fleet's in-flight gauge when a handler ends, however it ends.
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    pub(crate) fn enter(gauge: &'a AtomicUsize) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Decoded {
    applied: Applied,
    decode: Duration,
    apply: Duration,
    /// CPU time of the thread over decode + apply.
    cpu: Duration,
}

/// What processing a message took, for its event: the decode and apply, then the simulated
/// programming and the total replied.
#[derive(Default)]
struct Processed {
    done: Decoded,
    simulated: Duration,
    total: Duration,
}

impl Agent {
    pub(crate) fn new(index: u32, addr: SocketAddr, config: Arc<AgentConfig>, shared: Arc<Shared>) -> Self {
        Self {
            index,
            addr,
            config,
            state: Mutex::new(HostState::default()),
            counters: Counters::default(),
            shared,
            fault: RwLock::new(None),
            boot: AtomicU64::new(0),
            fault_changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The fault the agent is in now.
    pub(crate) fn fault(&self) -> Option<Arc<Active>> {
        self.fault.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The name of the fault the agent is in now.
    pub fn fault_name(&self) -> Option<&'static str> {
        self.fault().map(|f| f.fault.name())
    }

    /// Crashes so far.
    pub(crate) fn boot(&self) -> u64 {
        self.boot.load(Ordering::Acquire)
    }

    /// True while crashed: the agent is not listening.
    pub(crate) fn is_down(&self) -> bool {
        self.fault().is_some_and(|f| f.fault == AgentFault::Crash)
    }

    /// Follows faults being set and taken off.
    pub(crate) fn fault_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.fault_changes.subscribe()
    }

    /// Puts the agent in `fault` (replacing any other: the last fault set wins). A crash drops
    /// the host state at once.
    pub(crate) fn set_fault(&self, fault: Arc<Active>) {
        if fault.fault == AgentFault::Crash {
            // Under the state lock, so that no message applies into the new, empty state
            // after having arrived before the crash.
            let mut state = self.state();
            *state = HostState::default();
            self.boot.fetch_add(1, Ordering::AcqRel);
        }
        let old = self.fault.write().unwrap_or_else(|e| e.into_inner()).replace(fault);
        if let Some(old) = old {
            old.ended.cancel();
        }
        self.fault_changes.send_modify(|n| *n += 1);
    }

    /// Takes fault `id` off, if the agent is still in it. After a crash the agent asks its
    /// control plane for its goal states, when it has one to ask.
    pub(crate) fn clear_fault(self: &Arc<Self>, id: u64) {
        let old = {
            let mut f = self.fault.write().unwrap_or_else(|e| e.into_inner());
            if f.as_ref().is_some_and(|a| a.id == id) {
                f.take()
            } else {
                None
            }
        };
        let Some(old) = old else { return };
        old.ended.cancel();
        self.fault_changes.send_modify(|n| *n += 1);
        if old.fault == AgentFault::Crash
            && let Some(cp) = self.config.resync.or_else(|| self.shared.resync.get().copied())
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(crate::resync::request(cp, self.ip()));
        }
    }

    /// Index in the fleet.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The address the agent listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The agent's host IP.
    pub fn ip(&self) -> Ipv4Addr {
        match self.addr.ip() {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        }
    }

    /// The agent's configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The host state, locked. Hold it briefly: the agent applies messages under this lock.
    pub fn state(&self) -> MutexGuard<'_, HostState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counters so far.
    pub fn stats(&self) -> AgentStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        AgentStats {
            messages: get(&c.messages),
            empty_messages: get(&c.empty_messages),
            bytes: get(&c.bytes),
            decode_errors: get(&c.decode_errors),
            port_states: get(&c.port_states),
            neighbor_states: get(&c.neighbor_states),
            invalid: get(&c.invalid),
            simulated_us: get(&c.simulated_us),
            total_us: get(&c.total_us),
        }
    }

    /// Processes one message: decode, apply, wait the simulated programming time, reply. A
    /// fault the agent is in changes that (see [`crate::fault`]).
    pub(crate) async fn handle(
        self: &Arc<Self>,
        rpc: Rpc,
        raw: Bytes,
        queued: Option<Queued>,
    ) -> Result<GoalStateOperationReply, Status> {
        let arrived = Instant::now();
        let bytes = raw.len() as u64;
        let boot = self.boot();
        let fault = self.fault();
        let c = &self.counters;
        if let Some(f) = &fault {
            let refused = match f.fault {
                AgentFault::Blackhole => {
                    // Held, unanswered, while the fault lasts.
                    f.ended.cancelled().await;
                    Some("blackholed: not answered while the fault lasted")
                }
                // A message that got in through a connection made just before the crash.
                AgentFault::Crash => Some("the host is down"),
                _ => None,
            };
            if let Some(msg) = refused {
                c.messages.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(bytes, Ordering::Relaxed);
                let name = f.fault.name();
                self.publish(rpc, queued, arrived, bytes, None, Some((msg.to_owned(), Some(name))));
                return Err(Status::unavailable(msg));
            }
        }
        let failing = fault.as_ref().and_then(|f| f.fails());
        let extra = fault.as_ref().map_or(Duration::ZERO, |f| f.extra_delay());
        let collect_ids = self.shared.bus.is_active();
        let run = {
            let agent = self.clone();
            let dry = failing.is_some();
            move || agent.decode_apply(rpc, raw, collect_ids, boot, dry)
        };
        let result = if bytes as usize > INLINE_LIMIT {
            tokio::task::spawn_blocking(run)
                .await
                .map_err(|e| Status::internal(format!("apply task failed: {e}")))?
        } else {
            run()
        };
        c.messages.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
        let done = match result {
            Ok(Some(done)) => done,
            Ok(None) => {
                let msg = "lost: the host crashed while it arrived";
                self.publish(rpc, queued, arrived, bytes, None, Some((msg.to_owned(), Some("crash"))));
                return Err(Status::unavailable(msg));
            }
            Err(e) => {
                c.decode_errors.fetch_add(1, Ordering::Relaxed);
                let msg = format!("goal state does not decode: {e}");
                self.publish(rpc, queued, arrived, bytes, None, Some((msg.clone(), None)));
                return Err(Status::invalid_argument(msg));
            }
        };
        if let Some((id, reason)) = &done.applied.first_invalid {
            tracing::debug!(agent = %self.ip(), resource = %id, reason, "invalid state");
        }
        let mut cost = self.config.cost_model.cost(&done.applied.work);
        cost.total += extra;
        wait_until(Instant::now() + cost.total).await;

        let a = &done.applied;
        c.port_states.fetch_add(a.counts.port, Ordering::Relaxed);
        c.neighbor_states.fetch_add(a.counts.neighbor, Ordering::Relaxed);
        c.invalid.fetch_add(a.outcomes.invalid_arg, Ordering::Relaxed);
        if a.counts.total() == 0 {
            c.empty_messages.fetch_add(1, Ordering::Relaxed);
        }
        let total = done.decode + done.apply + cost.total;
        c.simulated_us.fetch_add(micros(cost.total) as u64, Ordering::Relaxed);
        c.total_us.fetch_add(micros(total) as u64, Ordering::Relaxed);
        let (mut reply, applied) = build_reply(done.applied, &cost, total);
        // A crash while the programming was simulated loses the reply with the connection.
        let error = if self.boot() != boot {
            Some(("lost: the host crashed before it replied".to_owned(), Some("crash")))
        } else {
            failing.map(|_| ("failed: an injected error".to_owned(), Some("error")))
        };
        let processed = Processed {
            done: Decoded { applied, ..done },
            simulated: cost.total,
            total,
        };
        self.publish(rpc, queued, arrived, bytes, Some(processed), error.clone());
        match (error, failing) {
            (Some((msg, Some("crash"))), _) => Err(Status::unavailable(msg)),
            (_, Some(ErrorReply::Grpc)) => Err(Status::internal("injected failure")),
            (_, Some(ErrorReply::Status)) => {
                for s in &mut reply.operation_statuses {
                    s.operation_status = alcor_schema::OperationStatus::Failure as i32;
                }
                Ok(reply)
            }
            _ => Ok(reply),
        }
    }

    /// Decodes and applies a message; `None` when the host crashed after it arrived (nothing
    /// is applied then). A `dry` apply works on a scratch state: a failing host reports what
    /// it was sent, and keeps none of it.
    fn decode_apply(
        &self,
        rpc: Rpc,
        raw: Bytes,
        collect_ids: bool,
        boot: u64,
        dry: bool,
    ) -> Result<Option<Decoded>, prost::DecodeError> {
        let started = Instant::now();
        let cpu_started = crate::clock::thread_cpu();
        let opts = ApplyOptions {
            mode: self.config.mode,
            local_ip: Some(self.ip()),
            collect_ids,
        };
        let mut scratch = HostState::default();
        let (applied, decoded_at) = match rpc {
            Rpc::PushGoalStatesStream | Rpc::Broker => {
                let msg = crate::wire::decode_v2(raw)?;
                let decoded_at = Instant::now();
                let mut state = self.state();
                if self.boot() != boot {
                    return Ok(None);
                }
                let target = if dry { &mut scratch } else { &mut *state };
                (apply_decoded_v2(target, msg, opts), decoded_at)
            }
            Rpc::PushNetworkResourceStates => {
                let msg = GoalState::decode(raw)?;
                let decoded_at = Instant::now();
                let mut state = self.state();
                if self.boot() != boot {
                    return Ok(None);
                }
                let target = if dry { &mut scratch } else { &mut *state };
                (apply_v1(target, msg, opts), decoded_at)
            }
        };
        let apply = decoded_at.elapsed();
        Ok(Some(Decoded {
            applied,
            decode: decoded_at - started,
            apply,
            cpu: crate::clock::thread_cpu().saturating_sub(cpu_started),
        }))
    }

    /// Publishes the event of a message; `error` is why it failed, with the fault that made it
    /// fail, if one did.
    fn publish(
        &self,
        rpc: Rpc,
        queued: Option<Queued>,
        arrived: Instant,
        bytes: u64,
        done: Option<Processed>,
        error: Option<(String, Option<&'static str>)>,
    ) {
        if !self.shared.bus.is_active() {
            return;
        }
        let Processed {
            done:
                Decoded {
                    applied,
                    decode,
                    apply,
                    cpu,
                },
            simulated,
            total,
        } = done.unwrap_or_default();
        self.shared.bus.publish(AgentEvent {
            agent: self.index,
            host_ip: self.ip(),
            rpc,
            arrived,
            completed: Instant::now(),
            bytes,
            counts: applied.counts,
            ops: applied.ops,
            outcomes: applied.outcomes,
            port_ids: applied.port_ids,
            neighbor_ids: applied.neighbor_ids,
            sg_rule_ids: applied.sg_rule_ids,
            skipped_local_neighbors: applied.skipped_local_neighbors,
            decode_us: micros(decode) as u64,
            apply_us: micros(apply) as u64,
            cpu_us: micros(cpu) as u64,
            simulated_us: micros(simulated) as u64,
            total_us: micros(total) as u64,
            fault: error.as_ref().and_then(|e| e.1),
            error: error.map(|e| e.0),
            queued,
        });
    }
}

/// µs for the reply, rounded up so that work done never reads as 0, and capped at u32.
fn micros(d: Duration) -> u32 {
    d.as_nanos().div_ceil(1_000).min(u32::MAX as u128) as u32
}

/// The reply the real agent sends: one status per reported resource with its measured time plus
/// its simulated share, and the message total. Returns `applied` without its statuses.
fn build_reply(mut applied: Applied, cost: &Cost, total: Duration) -> (GoalStateOperationReply, Applied) {
    let statuses = std::mem::take(&mut applied.statuses);
    let operation_statuses = statuses
        .into_iter()
        .map(|s| {
            let share = match s.charge {
                Charge::Port => cost.per_port,
                Charge::Neighbor => cost.per_neighbor,
                Charge::None => Duration::ZERO,
            };
            GoalStateOperationStatus {
                resource_id: s.id,
                resource_type: s.resource_type as i32,
                operation_type: s.operation_type,
                operation_status: s.status as i32,
                dataplane_programming_time: if share.is_zero() { 0 } else { micros(share) },
                network_configuration_time: 0,
                state_elapse_time: micros(s.measured + share),
            }
        })
        .collect();
    let reply = GoalStateOperationReply {
        format_version: 0,
        operation_statuses,
        message_total_operation_time: micros(total),
    };
    (reply, applied)
}

/// Waits until `deadline` without holding a worker thread. tokio's timer has 1 ms resolution,
/// so the last millisecond is spent yielding to other tasks instead of sleeping: that keeps
/// sub-millisecond costs (a few µs per neighbor) accurate.
async fn wait_until(deadline: Instant) {
    if let Some(coarse) = deadline.checked_sub(Duration::from_millis(1))
        && coarse > Instant::now()
    {
        tokio::time::sleep_until(coarse.into()).await;
    }
    while Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}
