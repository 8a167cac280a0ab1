//! Simulated Alcor Control Agents: a [`Fleet`] of many agents in one process, each a real
//! `alcor.schema.GoalStateProvisioner` gRPC server on its own loopback address, so that the host
//! IPs in goal states are addresses a controller can dial.
//!
//! Each agent decodes the goal states it receives, applies them to its [`HostState`] as the real
//! agent does (optionally validating as strictly, see [`ValidationMode`]), waits a simulated
//! data-plane programming time from a [`CostModel`], and replies with per-operation timings.
//! Every message produces an [`AgentEvent`]; a harness subscribes in-process
//! ([`Fleet::subscribe`]) or over TCP from another process ([`Fleet::export_events`]).
//!
//! Not here: the control plane that computes goal states, and the metrics built from events.

pub mod agent;
pub mod apply;
pub mod clock;
pub mod consume;
pub mod cost;
pub mod event;
pub mod export;
pub mod fault;
pub mod fleet;
pub mod ids;
pub mod neighbor_ref;
pub mod remote;
pub mod resync;
pub mod sample;
pub mod service;
pub mod state;
pub mod validate;
pub mod wire;

pub use agent::{Agent, AgentConfig, AgentStats};
pub use apply::{Applied, ApplyOptions, ValidationMode, apply_decoded_v2, apply_v1, apply_v2};
pub use clock::Epoch;
pub use cost::{CostModel, Profile, Work};
pub use event::{AgentEvent, EventBus, Queued, Rpc, WireEvent};
pub use fault::{AgentFault, Delay, ErrorReply, FaultHandle};
pub use fleet::{Fleet, FleetConfig, FleetError, Injector, ListenMode};
pub use ids::IdList;
pub use state::{HostState, Neighbor, StateCounts};
