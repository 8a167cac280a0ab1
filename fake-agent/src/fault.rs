//! Faults an agent can be put in for a while: what a host that is slow, failing, unreachable or
//! rebooting does to its control plane. A fault is set on chosen agents ([`Fleet::inject`]) and
//! always taken off again ([`Fleet::clear`], or dropping the [`FaultHandle`]); when, for how long
//! and on which hosts is the caller's timeline (the harness's `[[faults]]`).
//!
//! Where each fault acts:
//! - [`AgentFault::Slow`] and [`AgentFault::Error`] act on each message, in the handler;
//! - [`AgentFault::Blackhole`] holds each message unanswered until the fault ends, then fails it;
//! - [`AgentFault::Reset`] resets every connection of the host as soon as it is used (new ones
//!   too), as toxiproxy's `reset_peer` does;
//! - [`AgentFault::Partition`] stalls every byte both ways until the fault ends, then lets the
//!   buffered bytes through, as TCP does when a partition heals: the agent-side equivalent of
//!   dropping packets (new connections are accepted by the kernel, then stall);
//! - [`AgentFault::Crash`] drops the host state, resets every connection, and stops listening
//!   (a per-address agent closes its listener, so that connects are refused; behind a shared
//!   listener its connections are reset instead). When it ends, the agent listens again with
//!   empty state and, when given a control plane to ask ([`AgentConfig::resync`]), asks it for
//!   its goal states with `RequestGoalStates(AGENT_RESTARTED)`.
//!
//! [`Fleet::inject`]: crate::Fleet::inject
//! [`Fleet::clear`]: crate::Fleet::clear
//! [`AgentConfig::resync`]: crate::AgentConfig::resync

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::agent::Agent;

/// z of the 99th percentile of the standard normal distribution.
const Z_P99: f64 = 2.326_347_874;

/// A long-tail delay is capped at this many times its p99, so that one draw cannot hold a
/// message for hours.
const TAIL_CAP: f64 = 10.0;

/// Extra processing time of a slow host.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Delay {
    /// Always the same: `delay = "50ms"`.
    Fixed(#[serde(with = "humantime_serde")] Duration),
    /// Uniform between two bounds: `delay = { min = "10ms", max = "100ms" }`.
    Uniform {
        /// Lower bound.
        #[serde(with = "humantime_serde")]
        min: Duration,
        /// Upper bound.
        #[serde(with = "humantime_serde")]
        max: Duration,
    },
    /// Log-normal, given by its median and 99th percentile (capped at 10 × the p99):
    /// `delay = { median = "5ms", p99 = "500ms" }`.
    LongTail {
        /// Median.
        #[serde(with = "humantime_serde")]
        median: Duration,
        /// 99th percentile.
        #[serde(with = "humantime_serde")]
        p99: Duration,
    },
}

impl Delay {
    /// Why the delay cannot be drawn from, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            Self::Fixed(_) => Ok(()),
            Self::Uniform { min, max } if min > max => Err(format!("min {min:?} is above max {max:?}")),
            Self::Uniform { .. } => Ok(()),
            Self::LongTail { median, p99 } if median.is_zero() || p99 < median => Err(format!(
                "a long tail needs 0 < median ≤ p99 (median {median:?}, p99 {p99:?})"
            )),
            Self::LongTail { .. } => Ok(()),
        }
    }

    /// One draw.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            Self::Fixed(d) => d,
            Self::Uniform { min, max } if min == max => min,
            Self::Uniform { min, max } => rng.random_range(min..=max),
            Self::LongTail { median, p99 } => {
                let m = median.as_secs_f64();
                let sigma = (p99.as_secs_f64() / m).ln() / Z_P99;
                match LogNormal::new(m.ln(), sigma) {
                    Ok(d) => Duration::from_secs_f64(d.sample(rng).min(p99.as_secs_f64() * TAIL_CAP)),
                    Err(_) => median,
                }
            }
        }
    }
}

/// How a failing host answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorReply {
    /// A reply whose every resource status is FAILURE, as the real agent reports a failed
    /// programming; nothing is applied.
    #[default]
    Status,
    /// A gRPC error (`INTERNAL`) instead of a reply.
    Grpc,
}

/// A fault one agent is in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentFault {
    /// Each message takes this much longer.
    Slow(Delay),
    /// This share of messages (0..=1) fail, answered as `ErrorReply` says.
    Error {
        /// Share of messages that fail.
        share: f64,
        /// How they fail.
        reply: ErrorReply,
    },
    /// Messages are accepted and never answered while the fault lasts; then they fail.
    Blackhole,
    /// Connections are reset.
    Reset,
    /// Nothing gets through either way until the fault ends.
    Partition,
    /// The host is down; it comes back with empty state.
    Crash,
}

impl AgentFault {
    /// Its name in scenarios and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Slow(_) => "slow",
            Self::Error { .. } => "error",
            Self::Blackhole => "blackhole",
            Self::Reset => "reset",
            Self::Partition => "partition",
            Self::Crash => "crash",
        }
    }
}

/// The name of a fault as [`AgentFault::name`] gives it, for names read back from another
/// process.
pub fn static_name(name: &str) -> Option<&'static str> {
    ["slow", "error", "blackhole", "reset", "partition", "crash"]
        .into_iter()
        .find(|n| *n == name)
}

/// A fault set on an agent: what it is, its draws, and a token cancelled when it is taken off.
#[derive(Debug)]
pub(crate) struct Active {
    pub(crate) fault: AgentFault,
    pub(crate) id: u64,
    rng: Mutex<StdRng>,
    pub(crate) ended: CancellationToken,
}

impl Active {
    pub(crate) fn new(fault: AgentFault, id: u64, seed: u64) -> Self {
        Self {
            fault,
            id,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            ended: CancellationToken::new(),
        }
    }

    /// Extra time for one message of a slow host.
    pub(crate) fn extra_delay(&self) -> Duration {
        match &self.fault {
            AgentFault::Slow(d) => d.sample(&mut *self.rng.lock().unwrap_or_else(|e| e.into_inner())),
            _ => Duration::ZERO,
        }
    }

    /// Whether this message fails, and how.
    pub(crate) fn fails(&self) -> Option<ErrorReply> {
        match self.fault {
            AgentFault::Error { share, reply } => {
                let draw: f64 = self.rng.lock().unwrap_or_else(|e| e.into_inner()).random();
                (draw < share).then_some(reply)
            }
            _ => None,
        }
    }
}

/// A fault set on some agents by [`Fleet::inject`](crate::Fleet::inject). Dropping it takes the
/// fault off, so that a timeline that ends early (Ctrl-C, an error) leaves no agent faulty.
#[derive(Debug)]
pub struct FaultHandle {
    pub(crate) agents: Vec<Arc<Agent>>,
    pub(crate) id: u64,
    pub(crate) cleared: bool,
}

impl FaultHandle {
    /// Takes the fault off every agent still in it. Crashed agents come back with empty state.
    pub fn clear(mut self) {
        self.clear_now();
    }

    fn clear_now(&mut self) {
        if !self.cleared {
            self.cleared = true;
            for a in &self.agents {
                a.clear_fault(self.id);
            }
        }
    }
}

impl Drop for FaultHandle {
    fn drop(&mut self) {
        self.clear_now();
    }
}

/// An accepted connection of an agent, which resets or stalls while the agent is faulty.
pub struct FaultIo {
    inner: TcpStream,
    agent: Option<Arc<Agent>>,
    /// The agent's boot (crash count) when the connection was made: a connection from before
    /// a crash is reset, as the rebooted host knows nothing of it.
    boot: u64,
    stalled: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    reset: bool,
}

impl std::fmt::Debug for FaultIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultIo")
            .field("peer", &self.inner.peer_addr().ok())
            .finish()
    }
}

impl FaultIo {
    /// Wraps a connection made to `agent` (none: to an address no agent has).
    pub(crate) fn new(inner: TcpStream, agent: Option<Arc<Agent>>) -> Self {
        let boot = agent.as_ref().map_or(0, |a| a.boot());
        Self {
            inner,
            agent,
            boot,
            stalled: None,
            reset: false,
        }
    }

    /// Ready when the connection may carry bytes; an error when it is reset.
    fn gate(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(agent) = &self.agent else {
            return Poll::Ready(Ok(()));
        };
        if self.reset {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        if let Some(wait) = &mut self.stalled {
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.stalled = None;
        }
        let fault = agent.fault();
        let kind = fault.as_ref().map(|f| f.fault);
        if agent.boot() != self.boot || matches!(kind, Some(AgentFault::Reset | AgentFault::Crash)) {
            // RST rather than FIN, so that the peer sees a reset connection at once.
            let _ = self.inner.set_zero_linger();
            self.reset = true;
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        if let (Some(f), Some(AgentFault::Partition)) = (fault, kind) {
            let mut wait = Box::pin(f.ended.clone().cancelled_owned());
            if wait.as_mut().poll(cx).is_pending() {
                self.stalled = Some(wait);
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Connected for FaultIo {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for FaultIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.gate(cx))?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.gate(cx))?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.gate(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.gate(cx))?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_draw_within_their_bounds() {
        let mut rng = StdRng::seed_from_u64(1);
        let ms = Duration::from_millis;
        let u = Delay::Uniform {
            min: ms(10),
            max: ms(20),
        };
        for _ in 0..1000 {
            let d = u.sample(&mut rng);
            assert!(d >= ms(10) && d <= ms(20), "{d:?}");
        }
        let tail = Delay::LongTail {
            median: ms(5),
            p99: ms(500),
        };
        let mut draws: Vec<Duration> = (0..20_000).map(|_| tail.sample(&mut rng)).collect();
        draws.sort();
        let median = draws[draws.len() / 2];
        let p99 = draws[draws.len() * 99 / 100];
        // Within sampling noise of what was asked, and never past the cap.
        assert!(median > ms(4) && median < ms(6), "median {median:?}");
        assert!(p99 > ms(350) && p99 < ms(700), "p99 {p99:?}");
        assert!(*draws.last().unwrap() <= ms(5000));
        assert!(
            Delay::LongTail {
                median: ms(5),
                p99: ms(1)
            }
            .check()
            .is_err()
        );
        assert!(Delay::Uniform { min: ms(2), max: ms(1) }.check().is_err());
    }

    #[test]
    fn an_error_share_fails_that_share_of_messages() {
        let a = Active::new(
            AgentFault::Error {
                share: 0.25,
                reply: ErrorReply::Status,
            },
            1,
            9,
        );
        let failed = (0..10_000).filter(|_| a.fails().is_some()).count();
        assert!((2_300..2_700).contains(&failed), "{failed}");
        let none = Active::new(AgentFault::Blackhole, 2, 9);
        assert!(none.fails().is_none());
        assert_eq!(none.extra_delay(), Duration::ZERO);
    }

    #[test]
    fn delays_read_from_toml_in_each_form() {
        #[derive(Deserialize)]
        struct D {
            delay: Delay,
        }
        let ms = Duration::from_millis;
        let read = |s: &str| toml::from_str::<D>(s).map(|d| d.delay);
        assert_eq!(read("delay = \"50ms\"").unwrap(), Delay::Fixed(ms(50)));
        assert_eq!(
            read("delay = { min = \"1ms\", max = \"2ms\" }").unwrap(),
            Delay::Uniform { min: ms(1), max: ms(2) }
        );
        assert_eq!(
            read("delay = { median = \"1ms\", p99 = \"9ms\" }").unwrap(),
            Delay::LongTail {
                median: ms(1),
                p99: ms(9)
            }
        );
        assert!(read("delay = { median = \"1ms\" }").is_err());
    }
}
