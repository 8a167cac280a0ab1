//! A local `nats-server` with JetStream for one run or test: on loopback, on a free port, its
//! store in a folder of the caller's, stopped when dropped.
//!
//! The default payload limit (1 MiB) is raised to 64 MiB, NATS's ceiling: a goal state of one
//! port and 100,000 neighbors is several megabytes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Largest message the local server takes.
pub const MAX_PAYLOAD: u64 = 64 << 20;

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No binary.
    #[error(
        "nats-server is not installed (Debian: apt-get install nats-server); looked in PATH, /usr/sbin and /usr/bin"
    )]
    NotInstalled,
    /// It could not be set up or started.
    #[error("nats-server: {0}")]
    Io(#[from] std::io::Error),
    /// It started but never listened.
    #[error("nats-server did not listen on {addr} within {waited:?}; the end of its log ({log}):\n{tail}")]
    NotReady {
        addr: String,
        waited: Duration,
        log: String,
        tail: String,
    },
}

/// A running local nats-server.
#[derive(Debug)]
pub struct LocalNats {
    child: tokio::process::Child,
    url: String,
    log: PathBuf,
}

/// The nats-server binary: on PATH, else where Debian puts it (`/usr/sbin` is not on every
/// user's PATH).
pub fn binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nats-server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin/nats-server".into(), "/usr/bin/nats-server".into()])
        .find(|p| p.is_file())
}

impl LocalNats {
    /// Starts a server keeping its store and log under `dir` (created if missing).
    pub async fn start(dir: &Path) -> Result<Self, ServerError> {
        let bin = binary().ok_or(ServerError::NotInstalled)?;
        std::fs::create_dir_all(dir)?;
        let dir = std::fs::canonicalize(dir)?;
        // A free port, asked of the kernel: another process could take it before the server
        // binds, which then fails to listen and says so.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let store = dir.join("jetstream");
        let conf = dir.join("nats.conf");
        let log = dir.join("nats.log");
        std::fs::write(
            &conf,
            format!(
                "listen: \"{addr}\"\nmax_payload: {MAX_PAYLOAD}\nmax_pending: {}\nwrite_deadline: \"30s\"\n\
                 jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 2GB\n  max_file_store: 20GB\n}}\n",
                4 * MAX_PAYLOAD,
                store.display()
            ),
        )?;
        let out = std::fs::File::create(&log)?;
        let child = tokio::process::Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()?;
        let mut server = Self {
            child,
            url: format!("nats://{addr}"),
            log,
        };
        let waited = Duration::from_secs(10);
        let deadline = Instant::now() + waited;
        loop {
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                tracing::info!(url = %server.url, "nats-server ready");
                return Ok(server);
            }
            let exited = matches!(server.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let text = std::fs::read_to_string(&server.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                return Err(ServerError::NotReady {
                    addr,
                    waited,
                    log: server.log.display().to_string(),
                    tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `nats://127.0.0.1:port`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's process id (to sample its CPU).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Stops it: SIGTERM lets JetStream close its store; killed after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id().and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_binary_or_a_started_server_says_which() {
        let dir = std::env::temp_dir().join(format!("broker-server-{}", std::process::id()));
        match LocalNats::start(&dir).await {
            Err(ServerError::NotInstalled) => eprintln!("skipped: nats-server is not installed"),
            Err(e) => panic!("{e}"),
            Ok(s) => {
                assert!(s.url().starts_with("nats://127.0.0.1:"));
                let conf = std::fs::read_to_string(dir.join("nats.conf")).unwrap();
                assert!(conf.contains("max_payload: 67108864"), "{conf}");
                let addr = s.url().trim_start_matches("nats://").to_owned();
                s.stop(Duration::from_secs(5)).await;
                assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "stopped");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
