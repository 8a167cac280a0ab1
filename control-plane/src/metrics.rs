//! Observability: stage timings per request, messages and bytes per host, exposed as Prometheus
//! text (`GET /metrics`) and as [`RequestRecord`]s that a harness reads in-process.

use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use crate::ncm::HostResult;

/// What one northbound request cost, stage by stage.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// The operation (`port_create`, `port_bulk_create`, `port_update`, `port_delete`,
    /// `router_interface`).
    pub op: &'static str,
    /// Ports it concerned.
    pub port_ids: Vec<String>,
    /// When the request arrived.
    pub started: Instant,
    /// Validation and store update.
    pub store: Duration,
    /// Goal-state computation, encoding excluded.
    pub compute: Duration,
    /// Encoding the goal states.
    pub encode: Duration,
    /// From the first push to the last reply (zero when nothing was pushed or when answered
    /// asynchronously before the push ended).
    pub push: Duration,
    /// One result per host message.
    pub hosts: Vec<HostResult>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    op: &'static str,
    stage: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabels {
    host: String,
}

/// The control plane's metrics.
pub struct Metrics {
    registry: Registry,
    stages: Family<StageLabels, Histogram>,
    host_messages: Family<HostLabels, Counter>,
    host_bytes: Family<HostLabels, Counter>,
    host_failures: Family<HostLabels, Counter>,
    neighbor_states: Counter,
    remote_group_states: Counter,
    subscriber: Mutex<Option<mpsc::UnboundedSender<RequestRecord>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("alcor_cp");
        let stages = Family::<StageLabels, Histogram>::new_with_constructor(|| {
            // 10 µs … about 80 s.
            Histogram::new(exponential_buckets(1e-5, 2.0, 24))
        });
        let host_messages = Family::<HostLabels, Counter>::default();
        let host_bytes = Family::<HostLabels, Counter>::default();
        let host_failures = Family::<HostLabels, Counter>::default();
        let neighbor_states = Counter::default();
        let remote_group_states = Counter::default();
        registry.register("stage_seconds", "Time per request stage", stages.clone());
        registry.register(
            "host_messages",
            "Goal-state messages pushed per host",
            host_messages.clone(),
        );
        registry.register("host_bytes", "Goal-state bytes pushed per host", host_bytes.clone());
        registry.register("host_failures", "Failed pushes per host", host_failures.clone());
        registry.register("neighbor_states", "Neighbor states pushed", neighbor_states.clone());
        registry.register(
            "remote_group_neighbor_states",
            "Neighbor states pushed only because of remote-group rules",
            remote_group_states.clone(),
        );
        Self {
            registry,
            stages,
            host_messages,
            host_bytes,
            host_failures,
            neighbor_states,
            remote_group_states,
            subscriber: Mutex::new(None),
        }
    }
}

impl Metrics {
    /// Records a finished request and hands it to the subscriber, if any.
    pub fn record(&self, r: RequestRecord) {
        for (stage, d) in [
            ("store", r.store),
            ("compute", r.compute),
            ("encode", r.encode),
            ("push", r.push),
        ] {
            self.stages
                .get_or_create(&StageLabels { op: r.op, stage })
                .observe(d.as_secs_f64());
        }
        let total = r.started.elapsed();
        self.stages
            .get_or_create(&StageLabels {
                op: r.op,
                stage: "total",
            })
            .observe(total.as_secs_f64());
        for h in &r.hosts {
            self.count_host(h.host, h);
        }
        let mut sub = self.subscriber.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = sub.as_ref()
            && tx.send(r).is_err()
        {
            *sub = None;
        }
    }

    fn count_host(&self, host: Ipv4Addr, h: &HostResult) {
        let labels = HostLabels { host: host.to_string() };
        self.host_messages.get_or_create(&labels).inc_by(h.merged.max(1) as u64);
        self.host_bytes.get_or_create(&labels).inc_by(h.counts.bytes);
        if !h.ok {
            self.host_failures.get_or_create(&labels).inc();
        }
        self.neighbor_states.inc_by(h.counts.neighbors);
        self.remote_group_states.inc_by(h.counts.remote_group_neighbors);
    }

    /// Sends every request record from now on to the returned receiver (one subscriber).
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<RequestRecord> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.subscriber.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    /// Neighbor states pushed so far, and how many of them only for remote-group rules.
    pub fn neighbor_totals(&self) -> (u64, u64) {
        (self.neighbor_states.get(), self.remote_group_states.get())
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
