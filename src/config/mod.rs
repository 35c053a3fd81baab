//! Configuration: one `Config` value that the rest of ringside receives.
//!
//! Sources are layered defaults < TOML file < `RINGSIDE_*` environment < CLI
//! flags. Parsing is strict (`deny_unknown_fields`) and validation is a second
//! pass over plain strings, so every error can name the key it is about in one
//! line. The CLI and environment layers come from clap (`cli.rs`), the file
//! layer from serde (`file.rs`); this module merges and validates them.

mod cli;
mod file;
mod route;

pub use cli::{Args, Command};
pub use route::{Direction, Protocol, Route};

use route::parse_route_flag;

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
    /// Number of proxy shards, one pinned executor each.
    pub shards: usize,
    /// Text for people, JSON for log pipelines.
    pub log_format: LogFormat,
    /// The listeners and where their connections go.
    pub routes: Vec<Route>,
    /// Listen backlog of every route listener.
    pub backlog: u32,
    /// How long an upstream connect may take before another endpoint is tried.
    pub connect_timeout: Duration,
    /// How long open connections may run after SIGTERM before they are cut.
    pub shutdown_grace: Duration,
    /// How opaque bytes are moved: splice through the kernel, or a copy loop.
    pub forward_mode: ForwardMode,
    /// Requested capacity of each splice pipe; the kernel may grant less.
    pub pipe_size_bytes: usize,
    /// How long an idle pooled HTTP/1 upstream connection is kept.
    pub pool_idle_timeout: Duration,
    /// How protocols are detected on `Protocol::Detect` routes.
    pub detect: DetectConfig,
}

/// Protocol detection settings, shared by every route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectConfig {
    /// How long to wait for the client's first bytes before failing open to
    /// opaque TCP.
    pub timeout: Duration,
    /// Upstream ports whose routes are opaque unless they say otherwise.
    pub opaque_ports: Vec<u16>,
    /// The most bytes peeked for a verdict; a full buffer without one is
    /// treated as unknown.
    pub peek_bytes: usize,
    /// How long an upstream that spoke first is remembered, so that later
    /// connections to it skip detection; zero disables the memory.
    pub server_first_memory: Duration,
}

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

    fn merge(args: &Args, file: file::FileConfig) -> Result<Config, ConfigError> {
        let admin_addr = match &args.admin_addr {
            Some(addr) => parse_addr("--admin-addr", addr)?,
            None => match &file.admin.listen {
                Some(addr) => parse_addr("admin.listen", addr)?,
                None => parse_addr("admin.listen", DEFAULT_ADMIN_ADDR)?,
            },
        };

        let shards = match args.shards.or(file.runtime.shards) {
            Some(0) => return Err(ConfigError::invalid("runtime.shards", "must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };

        let log_format = match args.log_format.as_deref().or(file.log.format.as_deref()) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "log.format",
                    format!("expected \"text\" or \"json\", got {other:?}"),
                ))
            }
        };

        let detect = detect_config(args, &file)?;
        let routes = if args.route.is_empty() {
            file.route
                .iter()
                .enumerate()
                .map(|(i, route)| route.validate(i))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            args.route
                .iter()
                .map(|spec| parse_route_flag(spec))
                .collect::<Result<Vec<_>, _>>()?
        };
        let routes: Vec<Route> = routes
            .into_iter()
            .map(|spec| spec.resolve(&detect.opaque_ports))
            .collect();
        for (i, route) in routes.iter().enumerate() {
            if routes[..i].iter().any(|other| other.listen == route.listen) {
                return Err(ConfigError::invalid(
                    format!("route[{i}].listen"),
                    format!("{} is used by another route", route.listen),
                ));
            }
        }

        let backlog = args.backlog.or(file.runtime.backlog).unwrap_or(4096);
        if backlog == 0 {
            return Err(ConfigError::invalid(
                "runtime.backlog",
                "must be at least 1",
            ));
        }

        let connect_timeout = duration_key(
            "proxy.connect_timeout",
            args.connect_timeout
                .as_deref()
                .or(file.proxy.connect_timeout.as_deref()),
            Duration::from_secs(1),
        )?;
        if connect_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "proxy.connect_timeout",
                "must be above 0",
            ));
        }
        let shutdown_grace = duration_key(
            "runtime.shutdown_grace",
            args.shutdown_grace
                .as_deref()
                .or(file.runtime.shutdown_grace.as_deref()),
            Duration::from_secs(30),
        )?;

        let forward_mode = match args
            .forward_mode
            .as_deref()
            .or(file.proxy.forward_mode.as_deref())
        {
            None | Some("splice") => ForwardMode::Splice,
            Some("copy") => ForwardMode::Copy,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "proxy.forward_mode",
                    format!("expected \"splice\" or \"copy\", got {other:?}"),
                ))
            }
        };

        let pool_idle_timeout = duration_key(
            "proxy.pool_idle_timeout",
            file.proxy.pool_idle_timeout.as_deref(),
            Duration::from_secs(3),
        )?;
        let pipe_size_bytes = file.proxy.pipe_size_bytes.unwrap_or(1 << 20);
        if !(4096..=(64 << 20)).contains(&pipe_size_bytes) {
            return Err(ConfigError::invalid(
                "proxy.pipe_size_bytes",
                "must be between 4096 and 67108864",
            ));
        }

        Ok(Config {
            admin_addr,
            shards,
            log_format,
            routes,
            backlog,
            connect_timeout,
            shutdown_grace,
            forward_mode,
            pipe_size_bytes,
            pool_idle_timeout,
            detect,
        })
    }

    /// The same configuration with other routes (`ringside demo` builds its
    /// own route to the origin it starts).
    pub fn with_routes(mut self, routes: Vec<Route>) -> Config {
        self.routes = routes;
        self
    }
}

impl fmt::Display for Config {
    /// The effective configuration, in the TOML shape a user would write.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[admin]\nlisten = \"{}\"\n", self.admin_addr)?;
        writeln!(
            f,
            "[log]\nformat = \"{}\"\n",
            match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
        )?;
        writeln!(
            f,
            "[runtime]\nshards = {}\nbacklog = {}\nshutdown_grace = \"{}\"\n",
            self.shards,
            self.backlog,
            humantime::format_duration(self.shutdown_grace)
        )?;
        writeln!(
            f,
            "[proxy]\nconnect_timeout = \"{}\"\nforward_mode = \"{}\"\npipe_size_bytes = {}\npool_idle_timeout = \"{}\"",
            humantime::format_duration(self.connect_timeout),
            match self.forward_mode {
                ForwardMode::Splice => "splice",
                ForwardMode::Copy => "copy",
            },
            self.pipe_size_bytes,
            humantime::format_duration(self.pool_idle_timeout)
        )?;
        let ports: Vec<String> = self
            .detect
            .opaque_ports
            .iter()
            .map(u16::to_string)
            .collect();
        writeln!(
            f,
            "\n[detect]\ntimeout = \"{}\"\nopaque_ports = [{}]\npeek_bytes = {}\nserver_first_memory = \"{}\"",
            humantime::format_duration(self.detect.timeout),
            ports.join(", "),
            self.detect.peek_bytes,
            humantime::format_duration(self.detect.server_first_memory)
        )?;
        for route in &self.routes {
            let upstreams: Vec<String> =
                route.upstreams.iter().map(|u| format!("\"{u}\"")).collect();
            write!(
                f,
                "\n[[route]]\nlisten = \"{}\"\nupstreams = [{}]\ndirection = \"{}\"\nprotocol = \"{}\"\n",
                route.listen,
                upstreams.join(", "),
                route.direction.as_str(),
                route.protocol.as_str()
            )?;
        }
        Ok(())
    }
}

fn detect_config(args: &Args, file: &file::FileConfig) -> Result<DetectConfig, ConfigError> {
    let timeout = duration_key(
        "detect.timeout",
        args.detect_timeout
            .as_deref()
            .or(file.detect.timeout.as_deref()),
        Duration::from_secs(10),
    )?;
    if timeout.is_zero() {
        return Err(ConfigError::invalid("detect.timeout", "must be above 0"));
    }
    let opaque_ports = match (&args.opaque_ports, &file.detect.opaque_ports) {
        (Some(list), _) => parse_port_list("--opaque-ports", list)?,
        (None, Some(ports)) => {
            if let Some(i) = ports.iter().position(|p| *p == 0) {
                return Err(ConfigError::invalid(
                    format!("detect.opaque_ports[{i}]"),
                    "0 is not a port",
                ));
            }
            ports.clone()
        }
        (None, None) => DEFAULT_OPAQUE_PORTS.to_vec(),
    };
    let peek_bytes = file
        .detect
        .peek_bytes
        .unwrap_or(crate::detect::PEEK_CAPACITY_BYTES);
    if !(64..=16 * 1024).contains(&peek_bytes) {
        return Err(ConfigError::invalid(
            "detect.peek_bytes",
            "must be between 64 and 16384",
        ));
    }
    let server_first_memory = duration_key(
        "detect.server_first_memory",
        file.detect.server_first_memory.as_deref(),
        Duration::from_secs(600),
    )?;
    Ok(DetectConfig {
        timeout,
        opaque_ports,
        peek_bytes,
        server_first_memory,
    })
}

/// `25,587,3306`; an empty list means no opaque ports.
fn parse_port_list(key: &str, list: &str) -> Result<Vec<u16>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(ConfigError::invalid(
                key,
                format!("{p:?} is not a port number"),
            )),
        })
        .collect()
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| {
        ConfigError::invalid(key, format!("{value:?} is not an IP:port socket address"))
    })
}

fn duration_key(
    key: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => humantime::parse_duration(text.trim()).map_err(|err| {
            ConfigError::invalid(
                key,
                format!("{text:?} is not a duration like \"10s\": {err}"),
            )
        }),
    }
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
