//! ringside itself, started from the built binary with a generated config:
//! one route to the origin, declared with the scenario's protocol (opaque
//! for TCP scenarios, as an operator would declare a database or broker
//! port; http1 or http2 for the HTTP ones), as HAProxy and nginx are.

use super::process::ProxyProcess;
use super::{free_port, ProxyMode, RunningTarget, TargetOptions};
use crate::workdir::WorkDir;
use std::net::SocketAddr;
use std::process::Command;

pub(super) fn start(
    options: &TargetOptions,
    origin: SocketAddr,
    mode: ProxyMode,
) -> anyhow::Result<RunningTarget> {
    let listen = free_port()?;
    let admin = free_port()?;
    let protocol = match mode {
        ProxyMode::Tcp => "opaque",
        ProxyMode::Http1 => "http1",
        ProxyMode::H2 => "http2",
    };
    let workdir = WorkDir::new("ringside")?;
    let route = format!(
        "[[route]]\nlisten = \"{listen}\"\nupstreams = [\"{origin}\"]\nprotocol = \"{protocol}\"\n"
    );
    let config = workdir.write("ringside.toml", &route)?;
    let mut command = Command::new(&options.ringside_bin);
    command
        .arg("--config")
        .arg(&config)
        .arg("--admin-addr")
        .arg(admin.to_string())
        .arg("--shards")
        .arg(options.shards.to_string())
        // Sized as HAProxy's maxconn is: ringside's default, derived from
        // the fd limit, may be lower than what idle-conns holds.
        .arg("--max-connections")
        .arg(options.max_connections.to_string());
    if std::env::var_os("RUST_LOG").is_none() {
        // Per-connection logs at info would measure the terminal, not the proxy.
        command.env("RUST_LOG", "warn");
    }
    let process = ProxyProcess::spawn("ringside", command, workdir)?;
    RunningTarget::ready(process, listen, |p| p.wait_ready_endpoint(admin))
}
