//! Generates the `alcor.schema` messages and the GoalStateProvisioner client/server.
//!
//! Uses `$PROTOC` when set, otherwise the protoc shipped by `protoc-bin-vendored`, so a fresh
//! machine needs nothing outside Cargo.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "common.proto",
    "vpc.proto",
    "subnet.proto",
    "port.proto",
    "neighbor.proto",
    "securitygroup.proto",
    "dhcp.proto",
    "router.proto",
    "gateway.proto",
    "goalstate.proto",
    "goalstateprovisioner.proto",
    "subscribeinfoprovisioner.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
        unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    }
    let dir = PathBuf::from("proto");
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| dir.join(p)).collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&files, &[dir])?;
    Ok(())
}
