//! [`Broker`] on NATS JetStream.
//!
//! One stream holds every topic (`{prefix}.>`) with work-queue retention: a message is kept
//! until the one agent whose filter it falls under acknowledges it, so the broker's storage is
//! what agents have yet to process. When it is full, publishes are refused (discard `new`):
//! a goal state is never dropped to make room. Each agent has a durable pull consumer named
//! for its host, filtered to its topics, with explicit acknowledgement: an agent that restarts
//! resumes after its last acknowledged message, and one that crashed mid-message gets that
//! message again after `ack_wait`.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, AckKind, consumer, stream};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::Semaphore;

use crate::{Acker, Addressing, Broker, BrokerConfig, BrokerError, Deliveries, Delivery, Published, Settle, Storage};

/// [`Broker::kind`] of this implementation.
pub const KIND: &str = "nats-jetstream";

/// A JetStream connection with the goal-state stream in place.
pub struct JetStream {
    url: String,
    js: jetstream::Context,
    stream: stream::Stream,
    cfg: BrokerConfig,
    addressing: Addressing,
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for JetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStream")
            .field("url", &self.url)
            .field("stream", &self.cfg.stream)
            .finish_non_exhaustive()
    }
}

impl JetStream {
    /// Connects to `url` and creates the stream of `cfg` if it is missing (an existing one is
    /// used as it is).
    pub async fn connect(url: &str, cfg: &BrokerConfig) -> Result<Self, BrokerError> {
        let connect_err = |reason: String| BrokerError::Connect {
            url: url.to_owned(),
            reason,
        };
        let client = async_nats::ConnectOptions::new()
            .name("alcor-scale")
            .connection_timeout(Duration::from_secs(5))
            // Publishes of big goal states and many agents' pulls share the connection.
            .client_capacity(65_536)
            .connect(url)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let mut js = jetstream::new(client);
        js.set_timeout(cfg.publish_timeout);
        let addressing = cfg.addressing();
        let stream = js
            .get_or_create_stream(stream::Config {
                name: cfg.stream.clone(),
                subjects: vec![addressing.all()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: match cfg.storage {
                    Storage::File => stream::StorageType::File,
                    Storage::Memory => stream::StorageType::Memory,
                },
                max_bytes: cfg.max_bytes as i64,
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(|e| BrokerError::Stream {
                stream: cfg.stream.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            url: url.to_owned(),
            js,
            stream,
            addressing,
            in_flight: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
            cfg: cfg.clone(),
        })
    }

    fn consumer_config(&self, host: Ipv4Addr) -> consumer::pull::Config {
        let name = self.addressing.consumer(host);
        consumer::pull::Config {
            durable_name: Some(name),
            filter_subject: self.addressing.filter(host),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.cfg.ack_wait,
            deliver_policy: consumer::DeliverPolicy::All,
            max_ack_pending: self.cfg.max_ack_pending as i64,
            ..Default::default()
        }
    }
}

struct JsAcker(jetstream::Message);

impl Acker for JsAcker {
    fn settle(self: Box<Self>, how: Settle) -> BoxFuture<'static, Result<(), BrokerError>> {
        async move {
            let kind = match how {
                Settle::Ack => AckKind::Ack,
                Settle::Retry => AckKind::Nak(None),
                Settle::Reject => AckKind::Term,
            };
            self.0.ack_with(kind).await.map_err(|e| BrokerError::Ack(e.to_string()))
        }
        .boxed()
    }
}

fn delivery(m: jetstream::Message) -> Delivery {
    let (published, pending, attempt) = match m.info() {
        Ok(i) => (
            Some(SystemTime::from(i.published)),
            i.pending,
            i.delivered.max(1) as u64,
        ),
        Err(_) => (None, 0, 1),
    };
    let payload = m.payload.clone();
    Delivery::new(payload, published, pending, attempt, Box::new(JsAcker(m)))
}

impl Broker for JetStream {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn publish<'a>(
        &'a self,
        vpc: Option<&'a str>,
        host: Ipv4Addr,
        payload: Bytes,
    ) -> BoxFuture<'a, Result<Published, BrokerError>> {
        async move {
            let topic = self.addressing.topic(vpc, host);
            let err = |reason: String| BrokerError::Publish {
                topic: topic.clone(),
                reason,
            };
            let _permit = self.in_flight.acquire().await.map_err(|e| err(e.to_string()))?;
            let ack = self
                .js
                .publish(topic.clone(), payload)
                .await
                .map_err(|e| err(e.to_string()))?;
            let ack = ack.await.map_err(|e| err(e.to_string()))?;
            Ok(Published { sequence: ack.sequence })
        }
        .boxed()
    }

    fn subscribe(&self, host: Ipv4Addr) -> BoxFuture<'_, Result<Deliveries, BrokerError>> {
        async move {
            let config = self.consumer_config(host);
            let name = config.durable_name.clone().unwrap_or_default();
            let err = |reason: String| BrokerError::Subscribe {
                consumer: name.clone(),
                reason,
            };
            let consumer: consumer::PullConsumer = self
                .stream
                .get_or_create_consumer(&name, config.clone())
                .await
                .map_err(|e| err(e.to_string()))?;
            let messages = consumer
                .stream()
                // No more than the agent may hold unacknowledged: the rest wait in the broker,
                // counted as its lag.
                .max_messages_per_batch((self.cfg.max_ack_pending as usize).clamp(1, 64))
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await
                .map_err(|e| err(e.to_string()))?;
            let name = Arc::<str>::from(name.as_str());
            let deliveries = messages.map(move |m| {
                m.map(delivery).map_err(|e| BrokerError::Subscribe {
                    consumer: name.to_string(),
                    reason: e.to_string(),
                })
            });
            Ok(deliveries.boxed())
        }
        .boxed()
    }

    fn pending(&self, host: Ipv4Addr) -> BoxFuture<'_, Result<u64, BrokerError>> {
        async move {
            let name = self.addressing.consumer(host);
            match self.stream.consumer_info(&name).await {
                Ok(i) => Ok(i.num_pending + i.num_ack_pending as u64),
                Err(e) => Err(BrokerError::Subscribe {
                    consumer: name,
                    reason: e.to_string(),
                }),
            }
        }
        .boxed()
    }
}
