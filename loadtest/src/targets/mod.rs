//! Targets: what sits between the load client and the origin. `direct` is
//! nothing at all; the others are proxy processes started per round with a
//! generated route or config, sized to the same number of shards, threads or
//! worker processes, and stopped with SIGTERM when the round ends.

mod direct;
mod haproxy;
mod nginx;
mod process;
mod ringside;

use crate::proc_stats;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use process::ProxyProcess;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum TargetKind {
    Direct,
    Ringside,
    Haproxy,
    Nginx,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Direct => "direct",
            TargetKind::Ringside => "ringside",
            TargetKind::Haproxy => "haproxy",
            TargetKind::Nginx => "nginx",
        }
    }
}

/// How the proxy must treat the traffic of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Opaque TCP (spliced where the proxy can).
    Tcp,
    /// HTTP/1.1 with keep-alive to the client and pooled upstream connections.
    Http1,
    /// h2c with prior knowledge on both sides.
    H2,
}

/// Where each proxy binary is and how big to make it.
#[derive(Clone, Debug)]
pub struct TargetOptions {
    /// ringside's shards; HAProxy's `nbthread` and nginx's `worker_processes` match it.
    pub shards: usize,
    pub ringside_bin: PathBuf,
    pub haproxy_bin: PathBuf,
    pub nginx_bin: PathBuf,
    /// Connections each proxy must be able to hold (idle-conns needs thousands).
    pub max_connections: usize,
    /// The fd limit proxies inherit from this process; their configs must fit in it.
    pub fd_limit: usize,
}

/// A target ready to take traffic for one round.
pub struct RunningTarget {
    /// Where the load client connects.
    pub addr: SocketAddr,
    /// The proxy, or `None` for `direct`.
    pub process: Option<ProxyProcess>,
}

impl RunningTarget {
    /// A started proxy once `wait` says it is ready; stopped if it never is.
    pub(crate) fn ready(
        mut process: ProxyProcess,
        addr: SocketAddr,
        wait: impl FnOnce(&mut ProxyProcess) -> anyhow::Result<()>,
    ) -> anyhow::Result<RunningTarget> {
        if let Err(error) = wait(&mut process) {
            process.stop();
            return Err(error);
        }
        Ok(RunningTarget {
            addr,
            process: Some(process),
        })
    }

    /// Every process whose CPU and memory count as the proxy's.
    pub fn pids(&self) -> Vec<u32> {
        self.process
            .as_ref()
            .map(ProxyProcess::pids)
            .unwrap_or_default()
    }

    pub fn cpu_seconds(&self) -> f64 {
        proc_stats::total_cpu_seconds(&self.pids())
    }

    pub fn stop(self) {
        if let Some(process) = self.process {
            process.stop();
        }
    }
}

/// Why a target cannot be measured at all: reported, never faked.
pub fn unavailable(kind: TargetKind, options: &TargetOptions, mode: ProxyMode) -> Option<String> {
    let binary = match kind {
        TargetKind::Direct => return None,
        TargetKind::Ringside => &options.ringside_bin,
        TargetKind::Haproxy => &options.haproxy_bin,
        TargetKind::Nginx => &options.nginx_bin,
    };
    if !is_executable(binary) {
        return Some(format!("{} not found at {}", kind.name(), binary.display()));
    }
    match (kind, mode) {
        (TargetKind::Nginx, ProxyMode::H2) => nginx::h2_unsupported_reason(),
        (TargetKind::Nginx, ProxyMode::Tcp) => nginx::tcp_unsupported_reason(binary),
        _ => None,
    }
}

/// Starts `kind` in front of `origin` and waits (bounded) until it accepts.
pub fn start(
    kind: TargetKind,
    options: &TargetOptions,
    origin: SocketAddr,
    mode: ProxyMode,
) -> anyhow::Result<RunningTarget> {
    let started = match kind {
        TargetKind::Direct => return Ok(direct::start(origin)),
        TargetKind::Ringside => ringside::start(options, origin, mode)?,
        TargetKind::Haproxy => haproxy::start(options, origin, mode)?,
        TargetKind::Nginx => nginx::start(options, origin, mode)?,
    };
    Ok(started)
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A loopback port nobody listens on right now, for a proxy to bind.
///
/// It is drawn below the kernel's ephemeral range (32768 and up by
/// default), where the load clients' own connections take their local
/// ports: a port from `bind(0)` could be held by one of them when the proxy
/// binds it (a benchmark run lost a scenario so). Another process could
/// still take it first; the proxy then fails to start and says so.
pub(crate) fn free_port() -> std::io::Result<SocketAddr> {
    use std::hash::{BuildHasher, RandomState};
    const LOW: u64 = 20_000;
    const HIGH: u64 = 32_000;
    let random = RandomState::new();
    for attempt in 0..64u64 {
        let port = LOW + random.hash_one(attempt) % (HIGH - LOW);
        if let Ok(socket) = std::net::TcpListener::bind(("127.0.0.1", port as u16)) {
            return socket.local_addr();
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Finds a binary on PATH (and in the sbin folders root has), for defaults.
pub fn find_on_path(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|dir| PathBuf::from(dir).join(name))
        .find(|candidate| is_executable(candidate));
    found.unwrap_or_else(|| PathBuf::from(name))
}
