//! What machine and build a run was on, for the summary.

use std::collections::BTreeMap;

use reports::summary::Environment;

/// Reads the environment: git revision of the working directory (when it is a repository),
/// CPU model, cores, OS, and versions.
pub fn capture() -> Environment {
    let git_revision = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let mut versions = BTreeMap::new();
    versions.insert("alcor-scale".into(), env!("CARGO_PKG_VERSION").into());
    versions.insert("goose".into(), "0.19".into());
    versions.insert(
        "profile".into(),
        if cfg!(debug_assertions) { "debug" } else { "release" }.into(),
    );
    Environment {
        git_revision,
        cpu,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        versions,
    }
}
