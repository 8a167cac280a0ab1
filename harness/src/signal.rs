//! Stopping long-running commands: Ctrl-C or SIGTERM, or an optional time limit.

use std::time::Duration;

/// Ctrl-C, or SIGTERM where there is one.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Whichever comes first: a signal, or `limit` when given.
pub async fn stop(limit: Option<Duration>) {
    match limit {
        Some(d) => tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = shutdown_signal() => {}
        },
        None => shutdown_signal().await,
    }
}
