//! The MQ southbound: goal states reach agents through a message broker instead of a gRPC
//! stream per host.
//!
//! Alcor's design (DPM → Pulsar → ACA): one topic per VPC, the host's IP as the message key,
//! each host's agent consuming its own key; the payload is the serialized GoalStateV2 with no
//! envelope, and no reply flows back. The controller waits for the broker, never for a host, and
//! a host that is slow or down finds its goal states waiting when it comes back.
//!
//! [`Broker`] is that contract, publish for one host, consume one host's messages with
//! explicit acknowledgement, so that the control plane ([`Broker::publish`]) and the agents
//! ([`Broker::subscribe`]) never see which broker carries them. [`nats`] implements it on NATS
//! JetStream (the broker these machines can run: Pulsar has no server in any reachable
//! registry); [`server`] starts a local `nats-server` for a run or a test.
//!
//! Addressing ([`Addressing`]) is shared by both ends: topics per VPC keyed by host (Alcor) or
//! one topic per host.

pub mod nats;
pub mod server;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// How goal states are grouped into topics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    /// A topic per VPC, the host's IP as the key (Alcor's `mq.mode=vpc`): a host's agent reads
    /// its key from every VPC's topic.
    #[default]
    Vpc,
    /// A topic per host: each agent reads one topic whole.
    Host,
}

impl std::str::FromStr for Grouping {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vpc" => Ok(Self::Vpc),
            "host" => Ok(Self::Host),
            _ => Err(format!("invalid grouping `{s}` (expected vpc or host)")),
        }
    }
}

impl std::fmt::Display for Grouping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Vpc => "vpc",
            Self::Host => "host",
        })
    }
}

/// Topic names, shared by publisher and consumers.
///
/// On JetStream a topic is a subject of one stream: `{prefix}.vpc.{vpc}.{host}` or
/// `{prefix}.host.{host}`, the host written with dashes (`127-8-0-1`: dots separate subject
/// tokens). A Pulsar implementation would map `vpc` to a topic per VPC with the host as the
/// message key, and `host` to a topic per host.
#[derive(Debug, Clone)]
pub struct Addressing {
    /// Topic grouping.
    pub grouping: Grouping,
    /// The first subject tokens.
    pub prefix: String,
}

impl Addressing {
    /// The topic of `host`'s goal states in `vpc` (none: the host's own, for a message that
    /// carries no VPC).
    pub fn topic(&self, vpc: Option<&str>, host: Ipv4Addr) -> String {
        let h = host_token(host);
        match self.grouping {
            Grouping::Vpc => format!("{}.vpc.{}.{h}", self.prefix, token(vpc.unwrap_or("none"))),
            Grouping::Host => format!("{}.host.{h}", self.prefix),
        }
    }

    /// What `host`'s agent reads: its key in every VPC's topic, or its own topic.
    pub fn filter(&self, host: Ipv4Addr) -> String {
        let h = host_token(host);
        match self.grouping {
            Grouping::Vpc => format!("{}.vpc.*.{h}", self.prefix),
            Grouping::Host => format!("{}.host.{h}", self.prefix),
        }
    }

    /// Every topic under the prefix.
    pub fn all(&self) -> String {
        format!("{}.>", self.prefix)
    }

    /// The durable subscription of `host`'s agent: the same name after a restart, so that the
    /// agent resumes after its last acknowledged message.
    pub fn consumer(&self, host: Ipv4Addr) -> String {
        format!("agent-{}", host_token(host))
    }
}

fn host_token(host: Ipv4Addr) -> String {
    let [a, b, c, d] = host.octets();
    format!("{a}-{b}-{c}-{d}")
}

/// A subject token: no separators, wildcards or whitespace.
fn token(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Where the broker keeps messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// On disk (what a broker meant not to lose goal states does).
    #[default]
    File,
    /// In memory.
    Memory,
}

/// How to reach the broker and how goal states travel through it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// `nats://host:port`. Unset in a scenario: the harness starts a local nats-server.
    pub url: Option<String>,
    /// Topic per VPC (Alcor) or per host.
    pub grouping: Grouping,
    /// The JetStream stream holding every topic (created when missing).
    pub stream: String,
    /// The first subject tokens of every topic.
    pub prefix: String,
    /// On disk or in memory.
    pub storage: Storage,
    /// What the broker may hold before it refuses new goal states: it never drops old ones.
    pub max_bytes: u64,
    /// A delivered message not acknowledged within this is delivered again (an agent that
    /// crashed while applying it).
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Messages delivered to one agent and not yet acknowledged.
    pub max_ack_pending: u32,
    /// Publishes awaiting the broker's acknowledgement, over all hosts.
    pub max_in_flight: usize,
    /// How long one publish may wait for the broker's acknowledgement.
    #[serde(with = "humantime_serde")]
    pub publish_timeout: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            url: None,
            grouping: Grouping::Vpc,
            stream: "ALCOR_GS".into(),
            prefix: "alcor.gs".into(),
            storage: Storage::File,
            max_bytes: 1 << 30,
            ack_wait: Duration::from_secs(10),
            max_ack_pending: 32,
            max_in_flight: 4096,
            publish_timeout: Duration::from_secs(30),
        }
    }
}

impl BrokerConfig {
    /// The topic names of this configuration.
    pub fn addressing(&self) -> Addressing {
        Addressing {
            grouping: self.grouping,
            prefix: self.prefix.clone(),
        }
    }

    /// What is wrong with the configuration, per field.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if let Some(u) = &self.url
            && !u.starts_with("nats://")
        {
            p.push((
                "url",
                format!("`{u}`: only nats:// brokers are implemented (Pulsar has no broker these machines can run)"),
            ));
        }
        let name_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok(&self.stream) {
            p.push((
                "stream",
                format!("`{}`: letters, digits, `_` and `-` only", self.stream),
            ));
        }
        if self.prefix.is_empty() || self.prefix.split('.').any(|t| !name_ok(t)) {
            p.push((
                "prefix",
                format!(
                    "`{}`: dot-separated tokens of letters, digits, `_` and `-`",
                    self.prefix
                ),
            ));
        }
        if self.max_bytes < 1 << 20 {
            p.push(("max_bytes", "at least 1 MiB".into()));
        }
        if self.ack_wait < Duration::from_millis(100) {
            p.push(("ack_wait", "at least 100 ms".into()));
        }
        if self.max_ack_pending == 0 || self.max_in_flight == 0 {
            p.push((
                "max_ack_pending",
                "max_ack_pending and max_in_flight: at least 1".into(),
            ));
        }
        p
    }
}

/// What went wrong talking to the broker.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// Not reachable.
    #[error("broker at {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The stream could not be created or read.
    #[error("stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    /// A publish was refused or not acknowledged.
    #[error("publish to {topic}: {reason}")]
    Publish { topic: String, reason: String },
    /// A subscription could not be made or broke.
    #[error("subscription {consumer}: {reason}")]
    Subscribe { consumer: String, reason: String },
    /// An acknowledgement did not reach the broker.
    #[error("acknowledging: {0}")]
    Ack(String),
}

/// A publish the broker acknowledged.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    /// Its place in the broker's log.
    pub sequence: u64,
}

/// What an agent does with a delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Done with: never delivered again.
    Ack,
    /// Not processed: deliver it again now.
    Retry,
    /// Cannot ever be processed (it does not decode): never again.
    Reject,
}

/// Settles one delivered message with its broker.
pub trait Acker: Send {
    /// Tells the broker.
    fn settle(self: Box<Self>, how: Settle) -> BoxFuture<'static, Result<(), BrokerError>>;
}

/// One message delivered to an agent.
pub struct Delivery {
    /// The serialized GoalStateV2.
    pub payload: Bytes,
    /// When the broker took it, by the broker's clock.
    pub published: Option<SystemTime>,
    /// Messages for this agent still waiting in the broker after this one: its lag.
    pub pending: u64,
    /// How many times it was delivered (more than 1: redelivered).
    pub attempt: u64,
    acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("bytes", &self.payload.len())
            .field("published", &self.published)
            .field("pending", &self.pending)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A delivery settled through `acker`.
    pub fn new(
        payload: Bytes,
        published: Option<SystemTime>,
        pending: u64,
        attempt: u64,
        acker: Box<dyn Acker>,
    ) -> Self {
        Self {
            payload,
            published,
            pending,
            attempt,
            acker,
        }
    }

    /// Settles the message.
    pub async fn settle(self, how: Settle) -> Result<(), BrokerError> {
        self.acker.settle(how).await
    }
}

/// One agent's messages, in order.
pub type Deliveries = BoxStream<'static, Result<Delivery, BrokerError>>;

/// A broker carrying goal states: what the control plane and the agents need of it.
pub trait Broker: Send + Sync + std::fmt::Debug {
    /// Which broker (`nats-jetstream`).
    fn kind(&self) -> &'static str;

    /// Publishes `host`'s goal state (in `vpc`), done when the broker holds it durably. Never
    /// waits for the host.
    fn publish<'a>(
        &'a self,
        vpc: Option<&'a str>,
        host: Ipv4Addr,
        payload: Bytes,
    ) -> BoxFuture<'a, Result<Published, BrokerError>>;

    /// `host`'s messages from after its last acknowledged one: a durable subscription, the same
    /// after a restart.
    fn subscribe(&self, host: Ipv4Addr) -> BoxFuture<'_, Result<Deliveries, BrokerError>>;

    /// Messages waiting for `host`'s agent, as the broker counts them.
    fn pending(&self, host: Ipv4Addr) -> BoxFuture<'_, Result<u64, BrokerError>>;
}

/// Connects to the broker `cfg.url` names (none is an error: who starts a local broker is the
/// caller's business, not a default address's).
pub async fn connect(cfg: &BrokerConfig) -> Result<Arc<dyn Broker>, BrokerError> {
    let Some(url) = cfg.url.clone() else {
        return Err(BrokerError::Connect {
            url: "(none)".into(),
            reason: "no broker URL given".into(),
        });
    };
    if let Some((_, why)) = cfg.problems().into_iter().next() {
        return Err(BrokerError::Connect { url, reason: why });
    }
    Ok(Arc::new(nats::JetStream::connect(&url, cfg).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_match_their_hosts_filters_and_no_others() {
        let host = Ipv4Addr::new(127, 8, 0, 1);
        let other = Ipv4Addr::new(127, 8, 0, 10);
        for grouping in [Grouping::Vpc, Grouping::Host] {
            let a = Addressing {
                grouping,
                prefix: "alcor.gs".into(),
            };
            let t = a.topic(Some("vpc-1.x"), host);
            assert!(matches(&a.filter(host), &t), "{t} under {}", a.filter(host));
            assert!(!matches(&a.filter(other), &t), "{t} not under {}", a.filter(other));
            assert!(matches(&a.all(), &t));
        }
        let a = Addressing {
            grouping: Grouping::Vpc,
            prefix: "p".into(),
        };
        assert_eq!(a.topic(Some("v.1 *>"), host), "p.vpc.v_1___.127-8-0-1");
        assert_eq!(a.consumer(host), "agent-127-8-0-1");
    }

    /// NATS subject matching: `*` one token, `>` the rest.
    fn matches(filter: &str, subject: &str) -> bool {
        let (f, s): (Vec<_>, Vec<_>) = (filter.split('.').collect(), subject.split('.').collect());
        for (i, ft) in f.iter().enumerate() {
            match *ft {
                ">" => return s.len() > i,
                "*" if i < s.len() => {}
                t if s.get(i) == Some(&t) => {}
                _ => return false,
            }
        }
        f.len() == s.len()
    }

    #[test]
    fn bad_configuration_names_its_field() {
        let c = BrokerConfig {
            url: Some("pulsar://x:6650".into()),
            stream: "a.b".into(),
            prefix: "x..y".into(),
            ..Default::default()
        };
        let fields: Vec<_> = c.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["url", "stream", "prefix"]);
        assert!(BrokerConfig::default().problems().is_empty());
    }
}
