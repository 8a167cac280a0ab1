//! Exports a fleet's events to a harness in another process.
//!
//! Transport: TCP on a loopback address, one JSON object per line (NDJSON), so any language or
//! `nc` can read it. Each client first gets a `hello` line:
//!
//! ```json
//! {"type":"hello","schema":1,"agents":3,"first_agent":"127.1.0.1:50001",
//!  "epoch_monotonic_ns":123456789,"epoch_unix_us":1764000000000000}
//! ```
//!
//! then one `event` line per processed message (fields of [`WireEvent`](crate::WireEvent)),
//! with `arrived_us` and `completed_us` in µs since the fleet's epoch.
//!
//! Clock alignment: on the same host, read `CLOCK_MONOTONIC` (Rust: [`crate::clock::monotonic_ns`];
//! `Instant` uses the same clock on Linux) and map an event time `t` to your clock as
//! `epoch_monotonic_ns + t * 1000`. This is exact, since every process on a host shares that clock.
//! From another host, use `epoch_unix_us + t`, which is as accurate as the hosts' clock sync.
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
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::clock::Epoch;
use crate::event::EventBus;

/// Version of the export format.
pub const SCHEMA_VERSION: u32 = 1;

/// The first line a client receives.
#[derive(Debug, Clone, Serialize)]
pub struct Hello {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: u32,
    agents: usize,
    first_agent: String,
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
    let (mut rx, dropped) = bus.subscribe_bounded(buffer);
    let mut told = 0;
    let mut out = BufWriter::new(stream);
    write_line(&mut out, hello).await?;
    out.flush().await?;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
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

/// Tells a client how many events it has missed so far.
#[derive(Serialize)]
struct Dropped {
    #[serde(rename = "type")]
    kind: &'static str,
    count: u64,
}

async fn write_line<T: Serialize>(out: &mut BufWriter<TcpStream>, value: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line).await
}
