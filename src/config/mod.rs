//! Configuration: one `Config` value that the rest of ringside receives.
//!
//! Sources are layered defaults < TOML file < `RINGSIDE_*` environment < CLI
//! flags. Parsing is strict (`deny_unknown_fields`) and validation is a second
//! pass over plain strings, so every error can name the key it is about in one
//! line. The CLI and environment layers come from clap (`cli.rs`), the file
//! layer from serde (`file.rs`); `merge.rs` merges them and validates each
//! value with the checks of `value.rs`. `effective.rs` writes the result
//! back in the file's shape for `--check`. Every timeout, whichever table
//! its key sits in, is a field of `Timeouts` (`timeouts.rs`).
//!
//! This folder is ground: it imports nothing else of ringside's, and the
//! defaults the rest relies on live here.

mod cli;
mod demo;
mod dns;
mod effective;
mod endpoint;
mod file;
mod identity;
mod inbound_policy;
mod iptables;
mod limits;
pub mod linkerd;
mod merge;
mod mesh_peers;
mod route;
mod stat;
mod timeouts;
mod transparent;
mod value;

pub use cli::{Args, Command, IdentityAction, IdentityArgs};
pub use demo::DemoArgs;
pub use dns::{DnsConfig, DEFAULT_MAX_TTL, DEFAULT_MIN_TTL};
pub use endpoint::{Endpoint, EndpointSet, ProtocolHint, Upstream};
pub use identity::IdentityConfig;
pub use inbound_policy::{Authorize, IdentityMatch, InboundPolicy};
pub use iptables::{
    Cidr, IptablesAction, IptablesArgs, IptablesConfig, IptablesMode, OwnPorts, PortRange,
};
pub use limits::Http2Config;
pub use linkerd::{ControlAddr, ControlHost, LinkerdConfig, LinkerdIdentity};
pub use mesh_peers::{MeshPeer, DEFAULT_PEER_PORT};
pub use route::{Direction, Protocol, Route, RouteSpec};
pub use stat::{OutputFormat, SortBy, StatArgs, TopArgs};
pub use timeouts::{Timeouts, MESH_HANDSHAKE_TIMEOUT};
pub use transparent::{ForwardTo, Transparent, DEFAULT_INBOUND_LISTEN, DEFAULT_OUTBOUND_LISTEN};

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Exit code for a configuration that cannot be used (EX_USAGE-like: 64).
pub const EXIT_BAD_CONFIG: i32 = 64;

/// The default admin address, as in Linkerd.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:4191";

/// Everything ringside needs to run, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where `/metrics`, `/ready`, `/live` and `/shards` are served.
    pub admin_addr: SocketAddr,
    /// Whether `POST /shutdown` (from loopback) starts the drain; Linkerd's
    /// injector turns it off (`LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED`).
    pub admin_shutdown: bool,
    /// Number of proxy shards, one executor each, when set
    /// (`runtime.shards`). Unset, the runtime derives it from the CPUs the
    /// process may use and its cgroup CPU quota: only it can look.
    pub shards: Option<usize>,
    /// Whether shards are pinned to CPUs; the runtime resolves `Auto`.
    pub pin: Pin,
    /// Text for people, JSON for log pipelines.
    pub log_format: LogFormat,
    /// The listeners and where their connections go.
    pub routes: Vec<Route>,
    /// The transparent listeners configured: outbound, then inbound.
    pub transparent: Vec<Transparent>,
    /// Listen backlog of every route listener.
    pub backlog: u32,
    /// How opaque bytes are moved: splice through the kernel, or a copy loop.
    pub forward_mode: ForwardMode,
    /// Requested capacity of each splice pipe; the kernel may grant less.
    pub pipe_size_bytes: usize,
    /// How protocols are detected on `Protocol::Detect` routes.
    pub detect: DetectConfig,
    /// Most client connections open at once, process-wide, when set
    /// (`proxy.max_connections`). Unset, the runtime derives it from the
    /// open-files limit, which it raises first.
    pub max_connections: Option<usize>,
    /// What one client HTTP/2 connection may hold or cost.
    pub http2: Http2Config,
    /// Every timeout, with its key and default (`timeouts.rs`).
    pub timeouts: Timeouts,
    /// Most upstream connections one shard holds open for connections
    /// still detecting or still sending their first request head (see
    /// `proxy.max_speculative_connections` in the README).
    pub max_speculative_connections: usize,
    /// Destinations reached over mTLS to their own proxy
    /// (`[[mesh.peer]]`).
    pub mesh_peers: Vec<MeshPeer>,
    /// Who may connect to each inbound port.
    pub inbound_policy: InboundPolicy,
    /// The workload identity for mTLS between ringside proxies, when
    /// configured (`[identity]`).
    pub identity: Option<IdentityConfig>,
    /// How upstream names are resolved and re-resolved (`[dns]`).
    pub dns: DnsConfig,
    /// Linkerd's control plane, in Linkerd mode (`linkerd/mod.rs`): the
    /// identity comes from its identity service instead of files.
    pub linkerd: Option<LinkerdConfig>,
}

/// Protocol detection settings, shared by every route; its two timeouts
/// are in `Timeouts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectConfig {
    /// Upstream ports whose routes are opaque unless they say otherwise.
    pub opaque_ports: Vec<u16>,
    /// The most bytes peeked for a verdict; a full buffer without one is
    /// treated as unknown.
    pub peek_bytes: usize,
    /// How long an upstream that spoke first is remembered, so that later
    /// connections to it skip detection; zero disables the memory.
    pub server_first_memory: Duration,
}

/// How many bytes are peeked for a detection verdict (`detect.peek_bytes`)
/// before detection gives up and takes the final verdict on what it has.
/// Large enough for any HTTP request line worth proxying as HTTP and for the
/// ClientHello of most clients (OpenSSL and rustls send 200-600 bytes);
/// browsers with post-quantum key shares send ~1.8 KiB, and for those the SNI
/// is reported only if its extension fits (see the detector's
/// `ClientHelloInfo::is_complete`).
pub const DEFAULT_PEEK_BYTES: usize = 1024;

/// Linkerd's default opaque ports: SMTP, MySQL, Galera, PostgreSQL, Redis,
/// Elasticsearch and memcached, which speak first or are never HTTP.
pub const DEFAULT_OPAQUE_PORTS: [u16; 8] = [25, 587, 3306, 4444, 5432, 6379, 9300, 11211];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardMode {
    Splice,
    Copy,
}

/// `runtime.pin`: a sidecar shares its cores with the application, and a
/// pinned shard on a shared core got only 0.62-0.98 of it (measured), since
/// the scheduler cannot move it off a core the application is busy on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// Pin on dedicated cores (as many shards as allowed CPUs and no CPU
    /// quota), otherwise leave the shards to the scheduler.
    Auto,
    /// One shard per allowed CPU, spread across NUMA nodes, packages and
    /// cores.
    Cores,
    /// Never pin.
    Off,
}

impl Pin {
    pub fn as_str(self) -> &'static str {
        match self {
            Pin::Auto => "auto",
            Pin::Cores => "cores",
            Pin::Off => "off",
        }
    }
}

/// A configuration that cannot be used, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl fmt::Display) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.to_string(),
        }
    }
}

impl Config {
    /// Merges the file named by `--config` (if any) under the CLI and
    /// environment values in `args`, then validates the result.
    pub fn load(args: &Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => file::FileConfig::read(path)?,
            None => file::FileConfig::default(),
        };
        Self::merge(args, file)
    }

    /// Every host name the routes' upstreams hold, for the resolver.
    pub fn upstream_names(&self) -> BTreeSet<String> {
        let upstreams = self.routes.iter().flat_map(|route| &route.upstreams);
        upstreams
            .filter_map(|upstream| upstream.host())
            .map(str::to_string)
            .collect()
    }

    /// The same configuration with other routes (`ringside demo` builds its
    /// own route to the origin it starts).
    pub fn with_routes(mut self, routes: Vec<Route>) -> Config {
        self.routes = routes;
        self
    }
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| {
        ConfigError::invalid(key, format!("{value:?} is not an IP:port socket address"))
    })
}

/// Reads a whole file into a string, naming it in the error.
fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|err| ConfigError::File {
        path: path.display().to_string(),
        message: err.to_string(),
    })
}

#[cfg(test)]
mod tests;
