//! HAProxy with a generated config: `mode tcp` with kernel splicing for the
//! TCP scenarios, `mode http` with keep-alive and `http-reuse always` for
//! HTTP/1, and h2c on both sides (`proto h2`) for HTTP/2. `nbthread` matches
//! ringside's shards. Run in the foreground (`-db`), so one process holds
//! all threads and its /proc/PID/stat counts them all.

use super::process::ProxyProcess;
use super::{free_port, ProxyMode, RunningTarget, TargetOptions};
use crate::workdir::WorkDir;
use std::net::SocketAddr;
use std::process::Command;

fn config(
    options: &TargetOptions,
    listen: SocketAddr,
    origin: SocketAddr,
    mode: ProxyMode,
) -> String {
    let threads = options.shards;
    let maxconn = options.max_connections;
    // HAProxy reserves 2 fds per connection and 2 per splice pipe (maxpipes
    // defaults to maxconn/4) and refuses to start beyond the fd limit.
    let spare_fds = options.fd_limit.saturating_sub(2 * maxconn + 256);
    let maxpipes = (maxconn / 4).min(spare_fds / 2).max(16);
    let section = match mode {
        ProxyMode::Tcp => format!(
            "listen bench\n    mode tcp\n    option splice-request\n    option splice-response\n    \
             bind {listen}\n    server origin {origin}\n"
        ),
        ProxyMode::Http1 => format!(
            "listen bench\n    mode http\n    option http-keep-alive\n    http-reuse always\n    \
             bind {listen}\n    server origin {origin}\n"
        ),
        ProxyMode::H2 => format!(
            "listen bench\n    mode http\n    http-reuse always\n    \
             bind {listen} proto h2\n    server origin {origin} proto h2\n"
        ),
    };
    format!(
        "global\n    nbthread {threads}\n    maxconn {maxconn}\n    maxpipes {maxpipes}\n\n\
         defaults\n    timeout connect 5s\n    timeout client 10m\n    timeout server 10m\n    \
         timeout http-keep-alive 10m\n    maxconn {maxconn}\n\n{section}"
    )
}

pub(super) fn start(
    options: &TargetOptions,
    origin: SocketAddr,
    mode: ProxyMode,
) -> anyhow::Result<RunningTarget> {
    let listen = free_port()?;
    let workdir = WorkDir::new("haproxy")?;
    let config_path = workdir.write("haproxy.cfg", &config(options, listen, origin, mode))?;
    let mut command = Command::new(&options.haproxy_bin);
    command.arg("-db").arg("-f").arg(&config_path);
    let process = ProxyProcess::spawn("haproxy", command, workdir)?;
    RunningTarget::ready(process, listen, |p| p.wait_accepting(listen))
}
