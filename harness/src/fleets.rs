//! Fleets in other processes or on other machines (`[agents] remote`): found by name, connected
//! over their events endpoint (`alcor-scale agents --events`), their hosts learned from the hello,
//! their events handed to the correlator on the run's clock, and what became of each summarized.
//!
//! A name that resolves to several addresses (a Kubernetes headless Service resolves to every
//! ready pod) is one fleet per address, taken in address order so that host numbering is the same
//! from run to run.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fake_agent::remote::{ClockOptions, FleetMessage, RemoteFleet};
use reports::summary::FleetSummary;
use rustc_hash::FxHashSet;
use tokio_util::sync::CancellationToken;

use crate::correlate::Correlator;
use crate::record::Recorder;

/// How long a fleet may take to answer when the run connects.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `remote_expect` waits for the fleets to appear.
const EXPECT_WAIT: Duration = Duration::from_secs(300);

/// Every fleet address the entries resolve to, labelled, in order and without repeats.
async fn resolve(entries: &[String]) -> anyhow::Result<Vec<(String, SocketAddr)>> {
    let mut found: Vec<(String, SocketAddr)> = Vec::new();
    for entry in entries {
        let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(entry.as_str())
            .await
            .with_context(|| format!("[agents] remote: `{entry}` cannot be resolved"))?
            .collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            bail!("[agents] remote: `{entry}` resolves to no address");
        }
        for a in addrs {
            let label = if entry.parse::<SocketAddr>().is_ok() {
                entry.clone()
            } else {
                format!("{a} ({entry})")
            };
            if !found.iter().any(|(_, b)| *b == a) {
                found.push((label, a));
            }
        }
    }
    Ok(found)
}

/// The remote fleets of a run, connected, before the run reads their events.
#[derive(Debug)]
pub struct Remote {
    fleets: Vec<(String, RemoteFleet)>,
}

impl Remote {
    /// Resolves every entry (`HOST:PORT`) and connects to each fleet found; `anchor` is the
    /// run's start, which event times are mapped to. Fails naming the entry that cannot be
    /// reached, or two fleets that disagree (ports, hosts run twice).
    pub async fn connect(entries: &[String], expect: Option<usize>, anchor: Instant) -> anyhow::Result<Self> {
        let found = match expect {
            None => resolve(entries).await?,
            Some(n) => {
                let until = Instant::now() + EXPECT_WAIT;
                loop {
                    let found = resolve(entries).await.unwrap_or_default();
                    if found.len() >= n {
                        break found;
                    }
                    if Instant::now() >= until {
                        bail!(
                            "[agents] remote_expect = {n}, but after {EXPECT_WAIT:?} the remote entries give {} fleet(s): {}",
                            found.len(),
                            found.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join(", ")
                        );
                    }
                    tracing::info!(found = found.len(), expect = n, "waiting for fleets");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        Self::connect_found(found, anchor).await
    }

    async fn connect_found(found: Vec<(String, SocketAddr)>, anchor: Instant) -> anyhow::Result<Self> {
        let connecting = found.into_iter().map(|(label, addr)| async move {
            let fleet = RemoteFleet::connect(addr, anchor, ClockOptions::default(), CONNECT_TIMEOUT)
                .await
                .with_context(|| {
                    format!(
                        "[agents] remote: the fleet at {label} (is `alcor-scale agents --events {addr}` running there?)"
                    )
                })?;
            anyhow::Ok((label, fleet))
        });
        let fleets = futures::future::try_join_all(connecting).await?;
        let remote = Self { fleets };
        remote.check()?;
        for (label, f) in &remote.fleets {
            let c = f.clock();
            tracing::info!(
                fleet = %label,
                agents = f.hello.hosts.len(),
                offset_us = format!("{:.0}", c.offset_us),
                uncertainty_us = format!("{:.0}", c.uncertainty_us),
                "remote fleet connected"
            );
        }
        Ok(remote)
    }

    fn check(&self) -> anyhow::Result<()> {
        let mut seen: rustc_hash::FxHashMap<Ipv4Addr, &str> = Default::default();
        let mut port: Option<(u16, &str)> = None;
        for (label, f) in &self.fleets {
            let h = &f.hello;
            if h.hosts.len() != h.agents || h.port.is_none() {
                bail!(
                    "[agents] remote: the fleet at {label} speaks events schema {}, which does not list its hosts; run an alcor-scale agents of this version there",
                    h.schema
                );
            }
            let p = h.port.unwrap_or_default();
            match port {
                Some((q, other)) if q != p => bail!(
                    "[agents] remote: the fleets at {other} and {label} listen on ports {q} and {p}; the control plane dials one port on every host (run them on one port, on different addresses)"
                ),
                _ => port = Some((p, label)),
            }
            for ip in &h.hosts {
                if let Some(other) = seen.insert(*ip, label) {
                    bail!(
                        "[agents] remote: the fleets at {other} and {label} both run host {ip}; give them different --base-ip"
                    );
                }
            }
        }
        Ok(())
    }

    /// Every host of every fleet, fleet by fleet.
    pub fn hosts(&self) -> Vec<Ipv4Addr> {
        self.fleets
            .iter()
            .flat_map(|(_, f)| f.hello.hosts.iter().copied())
            .collect()
    }

    /// The port all the fleets' agents listen on.
    pub fn port(&self) -> Option<u16> {
        self.fleets.first().and_then(|(_, f)| f.hello.port)
    }

    /// Starts handing every fleet's events to `corr`.
    pub fn follow(self, corr: Arc<Correlator>, rec: Arc<Recorder>) -> Following {
        let done = CancellationToken::new();
        let tasks = self
            .fleets
            .into_iter()
            .map(|(label, fleet)| tokio::spawn(forward(label, fleet, corr.clone(), rec.clone(), done.clone())))
            .collect();
        Following { tasks, done }
    }
}

/// The remote fleets while the run reads them.
#[derive(Debug)]
pub struct Following {
    tasks: Vec<tokio::task::JoinHandle<FleetSummary>>,
    done: CancellationToken,
}

impl Following {
    /// Stops reading (after what has already arrived) and says what became of each fleet. Call
    /// it once every port has settled or failed.
    pub async fn finish(self) -> Vec<FleetSummary> {
        self.done.cancel();
        let mut out = Vec::new();
        for t in self.tasks {
            match t.await {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!(error = %e, "a fleet's reader failed"),
            }
        }
        out
    }
}

/// What a reader must be told of a fleet, beyond its row in the report.
pub fn warnings(fleets: &[FleetSummary]) -> Vec<String> {
    let mut out = Vec::new();
    for f in fleets {
        if let Some(at) = f.disconnected_at_s {
            out.push(format!(
                "the fleet at {} ({} agents) disconnected at {at:.1} s ({}): {} port(s) failed waiting on its hosts",
                f.endpoint,
                f.agents,
                f.disconnect_reason.as_deref().unwrap_or("closed"),
                f.ports_unaccounted
            ));
        }
        if f.dropped > 0 {
            out.push(format!(
                "the fleet at {} dropped {} event(s) because the run read them too slowly: its hosts' record is incomplete, and ports they programmed may count as failures",
                f.endpoint, f.dropped
            ));
        }
    }
    out
}

async fn forward(
    label: String,
    mut fleet: RemoteFleet,
    corr: Arc<Correlator>,
    rec: Arc<Recorder>,
    done: CancellationToken,
) -> FleetSummary {
    let hosts: FxHashSet<Ipv4Addr> = fleet.hello.hosts.iter().copied().collect();
    let mut sum = FleetSummary {
        endpoint: label,
        agents: hosts.len() as u64,
        ..Default::default()
    };
    let mut hosts = Some(hosts);
    let mut lost = None;
    loop {
        let m = tokio::select! {
            biased;
            m = fleet.messages.recv() => m,
            _ = done.cancelled() => match fleet.messages.try_recv() {
                Ok(m) => Some(m),
                Err(_) => break,
            },
        };
        match m {
            Some(FleetMessage::Event(e)) => {
                if !e.is_empty() {
                    sum.events += 1;
                }
                corr.on_event(&e);
            }
            Some(FleetMessage::Dropped(n)) => sum.dropped = n,
            Some(FleetMessage::Closed(why)) => {
                if !done.is_cancelled() {
                    sum.disconnected_at_s = Some(rec.since_start(Instant::now()).as_secs_f64());
                    sum.disconnect_reason = Some(why.unwrap_or_else(|| "closed by the fleet".into()));
                    lost = hosts.take().map(|h| corr.watch_lost(h));
                    tracing::warn!(fleet = %sum.endpoint, "a remote fleet disconnected");
                }
                break;
            }
            None => break,
        }
    }
    // The ports left waiting on its hosts fail by the end of the run: the caller reads this
    // once the correlation has settled.
    if let Some(lost) = lost {
        done.cancelled().await;
        sum.ports_unaccounted = lost.load(std::sync::atomic::Ordering::Relaxed);
    }
    let c = fleet.clock();
    sum.clock_offset_us = c.offset_us;
    sum.clock_uncertainty_us = c.uncertainty_us;
    sum.clock_max_uncertainty_us = c.max_uncertainty_us;
    sum.clock_drift_us = c.drift_us();
    sum.clock_probes = c.probes;
    sum
}
