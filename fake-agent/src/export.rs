//! Exports a fleet's events to a harness in another process.
//!
//! Transport: TCP on a loopback address, one JSON object per line (NDJSON), so any language or
//! `nc` can read it. Each client first gets a `hello` line:
//!
//! ```json
//! {"type":"hello","schema":2,"agents":3,"first_agent":"127.1.0.1:50001","port":50001,
//!  "hosts":["127.1.0.1","127.1.0.2","127.1.0.3"],
//!  "epoch_monotonic_ns":123456789,"epoch_unix_us":1764000000000000}
//! ```
//!
//! then one `event` line per processed message (fields of [`WireEvent`](crate::WireEvent)),
//! with `arrived_us` and `completed_us` in µs since the fleet's epoch.
//!
//! Clock alignment: on the same host, read `CLOCK_MONOTONIC` (Rust: [`crate::clock::monotonic_ns`];
//! `Instant` uses the same clock on Linux) and map an event time `t` to your clock as
//! `epoch_monotonic_ns + t * 1000`. This is exact, since every process on a host shares that clock.
//! From another host, ask the fleet's clock over the connection, as NTP does: send a line
//!
//! ```json
//! {"type":"ping","id":1,"t0_us":5000}
//! ```
//!
//! (`t0_us` on your clock) and the fleet answers, ahead of the events it has not yet written,
//!
//! ```json
//! {"type":"pong","id":1,"t0_us":5000,"t1_us":812,"t2_us":815}
//! ```
//!
//! with `t1_us`/`t2_us` the fleet's clock (µs since its epoch) when the ping arrived and when the
//! pong left. With `t3` your clock on receipt, the fleet's epoch lies at
//! `((t0 - t1) + (t3 - t2)) / 2` on your clock, within ± half the round trip
//! `(t3 - t0) - (t2 - t1)`. [`crate::remote`] is a client that does this.
//!
//! A client receives the events from its connection on. Up to a buffer of events (the
//! `buffer` given to [`Fleet::export_events`](crate::Fleet::export_events)) wait for a slow
//! client; past it, events are dropped rather than held, and the client gets a line
//!
//! ```json
//! {"type":"dropped","count":1234}
//! ```
//!
//! with the total dropped for it so far, as soon as it has caught up. A client that sees one
//! has an incomplete record of the run.

use std::io;
use std::sync::Arc;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::clock::Epoch;
use crate::event::EventBus;

/// Version of the export format. 2 added `port`, `hosts` and ping/pong; a version 1 reader
/// still reads it (it ignores what it does not know).
pub const SCHEMA_VERSION: u32 = 2;

/// The first line a client receives.
#[derive(Debug, Clone, Serialize)]
pub struct Hello {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: u32,
    agents: usize,
    first_agent: String,
    port: u16,
    hosts: Vec<std::net::Ipv4Addr>,
    epoch_monotonic_ns: u64,
    epoch_unix_us: u64,
}

impl Hello {
    pub(crate) fn new(epoch: &Epoch, agents: &[Arc<Agent>]) -> Self {
        Self {
            kind: "hello",
            schema: SCHEMA_VERSION,
            agents: agents.len(),
            first_agent: agents.first().map(|a| a.addr().to_string()).unwrap_or_default(),
            port: agents.first().map(|a| a.addr().port()).unwrap_or_default(),
            hosts: agents.iter().map(|a| a.ip()).collect(),
            epoch_monotonic_ns: epoch.monotonic_ns,
            epoch_unix_us: epoch.unix_us,
        }
    }
}

pub(crate) async fn serve(
    listener: TcpListener,
    bus: Arc<EventBus>,
    epoch: Epoch,
    hello: Hello,
    buffer: usize,
    stop: CancellationToken,
) {
    loop {
        let conn = tokio::select! {
            _ = stop.cancelled() => return,
            conn = listener.accept() => conn,
        };
        match conn {
            Ok((stream, peer)) => {
                let (bus, hello, stop) = (bus.clone(), hello.clone(), stop.clone());
                tokio::spawn(async move {
                    if let Err(e) = stream_to(stream, &bus, epoch, &hello, buffer, stop).await {
                        tracing::debug!(%peer, error = %e, "event client left");
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "accepting an event client failed"),
        }
    }
}

async fn stream_to(
    stream: TcpStream,
    bus: &EventBus,
    epoch: Epoch,
    hello: &Hello,
    buffer: usize,
    stop: CancellationToken,
) -> io::Result<()> {
    let (rx_half, tx_half) = stream.into_split();
    let (mut rx, dropped) = bus.subscribe_bounded(buffer);
    // Pings are read on their own task so that one is stamped the moment it arrives, however
    // busy the writer is.
    let (ping_tx, mut pings) = tokio::sync::mpsc::channel::<(Ping, u64)>(16);
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::new(rx_half).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let t1 = epoch.micros(std::time::Instant::now());
            match serde_json::from_str::<Ping>(&line) {
                Ok(p) if p.kind == "ping" => {
                    if ping_tx.send((p, t1)).await.is_err() {
                        return;
                    }
                }
                _ => {
                    tracing::debug!(line = %line.chars().take(80).collect::<String>(), "event client sent an unknown line")
                }
            }
        }
    });
    let _reader = AbortOnDrop(reader);
    let mut told = 0;
    let mut out = BufWriter::new(tx_half);
    write_line(&mut out, hello).await?;
    out.flush().await?;
    let mut pings_open = true;
    loop {
        let event = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            p = pings.recv(), if pings_open => match p {
                Some((p, t1)) => {
                    let pong = Pong { kind: "pong", id: p.id, t0_us: p.t0_us, t1_us: t1, t2_us: epoch.micros(std::time::Instant::now()) };
                    write_line(&mut out, &pong).await?;
                    out.flush().await?;
                    continue;
                }
                None => { pings_open = false; continue; }
            },
            e = rx.recv() => match e { Some(e) => e, None => break },
        };
        write_line(&mut out, &event.to_wire(&epoch)).await?;
        // Batch what is already queued, then flush once.
        while let Ok(e) = rx.try_recv() {
            write_line(&mut out, &e.to_wire(&epoch)).await?;
        }
        let count = dropped.load(std::sync::atomic::Ordering::Relaxed);
        if count > told {
            told = count;
            write_line(&mut out, &Dropped { kind: "dropped", count }).await?;
        }
        out.flush().await?;
    }
    out.flush().await
}

/// Aborts the ping reader when the client's stream ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A client's clock probe.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Ping {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: u64,
    t0_us: u64,
}

/// The answer to a [`Ping`]: the fleet's clock on its arrival and on the answer's departure.
#[derive(Debug, Serialize)]
struct Pong {
    #[serde(rename = "type")]
    kind: &'static str,
    id: u64,
    t0_us: u64,
    t1_us: u64,
    t2_us: u64,
}

/// Tells a client how many events it has missed so far.
#[derive(Serialize)]
struct Dropped {
    #[serde(rename = "type")]
    kind: &'static str,
    count: u64,
}

async fn write_line<T: Serialize>(out: &mut BufWriter<OwnedWriteHalf>, value: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line).await
}
