//! ringside itself, started from the built binary with one generated route
//! to the origin. Every route is opaque TCP for now, so HTTP scenarios go
//! through it as bytes; once `--config` with `protocol = ...` lands, the
//! HTTP modes should generate a config file instead.

use super::process::ProxyProcess;
use super::{free_port, RunningTarget, TargetOptions};
use crate::workdir::WorkDir;
use std::net::SocketAddr;
use std::process::Command;

pub(super) fn start(options: &TargetOptions, origin: SocketAddr) -> anyhow::Result<RunningTarget> {
    let listen = free_port()?;
    let admin = free_port()?;
    let mut command = Command::new(&options.ringside_bin);
    command
        .arg("--route")
        .arg(format!("{listen}={origin}"))
        .arg("--admin-addr")
        .arg(admin.to_string())
        .arg("--shards")
        .arg(options.shards.to_string());
    if std::env::var_os("RUST_LOG").is_none() {
        // Per-connection logs at info would measure the terminal, not the proxy.
        command.env("RUST_LOG", "warn");
    }
    let mut process = ProxyProcess::spawn("ringside", command, WorkDir::new("ringside")?)?;
    if let Err(error) = process.wait_ready_endpoint(admin) {
        process.stop();
        return Err(error);
    }
    Ok(RunningTarget {
        addr: listen,
        process: Some(process),
    })
}
