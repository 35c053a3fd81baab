//! Merging the layers into one `Config`. Each key takes the first value it
//! finds in: the flag (clap has already put a `RINGSIDE_*` variable there
//! when the flag is absent), the TOML file, the default; it is then
//! validated under the key's name, whichever layer it came from. A layer that
//! gives a value hides the layers below it, so a bad file value under a good
//! flag is never looked at.
//!
//! `merge` reads as the list of keys, one small function or helper call each,
//! in a fixed order: with several mistakes, the first one reported is always
//! the same.

use std::net::SocketAddr;
use std::time::Duration;

use super::dns::dns;
use super::file::{
    AdminTable, DetectTable, FileConfig, LogTable, ProxyTable, RouteTable, RuntimeTable,
};
use super::identity;
use super::inbound_policy::inbound_policy;
use super::limits;
use super::mesh_peers;
use super::route::{parse_route_flag, RouteSpec};
use super::timeouts::timeouts;
use super::transparent;
use super::value::{duration_key, layered, one_of, within};
use super::{parse_addr, Args, Config, ConfigError, DetectConfig, ForwardMode, LogFormat, Pin};
use super::{DEFAULT_ADMIN_ADDR, DEFAULT_OPAQUE_PORTS, DEFAULT_PEEK_BYTES};

impl Config {
    /// The CLI and environment values in `args` over the file's, over the
    /// defaults, validated.
    pub(super) fn merge(args: &Args, file: FileConfig) -> Result<Config, ConfigError> {
        let admin_addr = admin_addr(args, &file.admin)?;
        let shards = shards(args, &file.runtime)?;
        let pin = pin(args, &file.runtime)?;
        let log_format = log_format(args, &file.log)?;
        let timeouts = timeouts(args, &file)?;
        let detect = detect(args, &file.detect)?;
        let routes = routes(args, &file.route)?;
        let outbound = transparent::outbound(args, &file.outbound)?;
        let inbound = transparent::inbound(args, &file.inbound)?;
        let backlog = backlog(args, &file.runtime)?;
        let forward_mode = forward_mode(args, &file.proxy)?;
        let pipe_size_bytes = pipe_size_bytes(&file.proxy)?;
        let routes: Vec<_> = routes
            .into_iter()
            .map(|spec| spec.resolve(&detect.opaque_ports, timeouts.response))
            .collect();
        let transparent: Vec<_> = outbound.into_iter().chain(inbound).collect();
        transparent::check_listens(&routes, &transparent)?;
        let max_speculative_connections = max_speculative_connections(args, &file.proxy)?;
        let max_connections = limits::max_connections(args, file.proxy.max_connections)?;
        let http2 = limits::http2(args, &file.http2)?;
        let mesh_peers = mesh_peers::peers(args, &file.mesh)?;
        let identity = identity::identity(args, &file.identity.unwrap_or_default())?;
        let dns = dns(args, &file.dns)?;
        let inbound_policy = inbound_policy(
            args,
            file.inbound.as_ref().and_then(|t| t.authorize.as_ref()),
            file.inbound
                .as_ref()
                .map_or(&[], |t| t.authorize_port.as_slice()),
            identity.is_some(),
        )?;
        Ok(Config {
            admin_addr,
            admin_shutdown: true,
            shards,
            pin,
            log_format,
            routes,
            transparent,
            backlog,
            forward_mode,
            pipe_size_bytes,
            detect,
            timeouts,
            max_speculative_connections,
            max_connections,
            http2,
            mesh_peers,
            inbound_policy,
            identity,
            dns,
            linkerd: None,
        })
    }
}

// [admin] and [log]

fn admin_addr(args: &Args, admin: &AdminTable) -> Result<SocketAddr, ConfigError> {
    match &args.admin_addr {
        Some(addr) => parse_addr("--admin-addr", addr),
        None => {
            let addr = admin.listen.as_deref().unwrap_or(DEFAULT_ADMIN_ADDR);
            parse_addr("admin.listen", addr)
        }
    }
}

fn log_format(args: &Args, log: &LogTable) -> Result<LogFormat, ConfigError> {
    let value = layered(&args.log_format, &log.format);
    let choices = [("text", LogFormat::Text), ("json", LogFormat::Json)];
    one_of("log.format", value, choices)
}

// [runtime]

/// Unset stays unset: the runtime derives the count from the host.
fn shards(args: &Args, runtime: &RuntimeTable) -> Result<Option<usize>, ConfigError> {
    args.shards
        .or(runtime.shards)
        .map(|shards| {
            within(
                "runtime.shards",
                shards,
                1..=usize::MAX,
                "must be at least 1",
            )
        })
        .transpose()
}

fn pin(args: &Args, runtime: &RuntimeTable) -> Result<Pin, ConfigError> {
    let value = layered(&args.pin, &runtime.pin);
    let choices = [Pin::Auto, Pin::Cores, Pin::Off].map(|pin| (pin.as_str(), pin));
    one_of("runtime.pin", value, choices)
}

fn backlog(args: &Args, runtime: &RuntimeTable) -> Result<u32, ConfigError> {
    let backlog = args.backlog.or(runtime.backlog).unwrap_or(4096);
    within(
        "runtime.backlog",
        backlog,
        1..=u32::MAX,
        "must be at least 1",
    )
}

// [proxy]

fn forward_mode(args: &Args, proxy: &ProxyTable) -> Result<ForwardMode, ConfigError> {
    let value = layered(&args.forward_mode, &proxy.forward_mode);
    let choices = [("splice", ForwardMode::Splice), ("copy", ForwardMode::Copy)];
    one_of("proxy.forward_mode", value, choices)
}

/// 256 per shard: as many as the pool keeps idle per endpoint
/// (`http::pool`), so speculation never holds more of an application's
/// connections than pooling may; past it a new connection detects first
/// and connects after, which costs only a server-first protocol its early
/// switch.
fn max_speculative_connections(args: &Args, proxy: &ProxyTable) -> Result<usize, ConfigError> {
    let max = args
        .max_speculative_connections
        .or(proxy.max_speculative_connections)
        .unwrap_or(256);
    Ok(max)
}

fn pipe_size_bytes(proxy: &ProxyTable) -> Result<usize, ConfigError> {
    let size = proxy.pipe_size_bytes.unwrap_or(1 << 20);
    let rule = "must be between 4096 and 67108864";
    within("proxy.pipe_size_bytes", size, 4096..=(64 << 20), rule)
}

// [detect]

fn detect(args: &Args, table: &DetectTable) -> Result<DetectConfig, ConfigError> {
    let opaque_ports = opaque_ports(args, table)?;
    let peek_bytes = table.peek_bytes.unwrap_or(DEFAULT_PEEK_BYTES);
    let rule = "must be between 64 and 16384";
    let peek_bytes = within("detect.peek_bytes", peek_bytes, 64..=16 * 1024, rule)?;
    let memory = table.server_first_memory.as_deref();
    let server_first_memory = duration_key(
        "detect.server_first_memory",
        memory,
        Duration::from_secs(600),
    )?;
    Ok(DetectConfig {
        opaque_ports,
        peek_bytes,
        server_first_memory,
    })
}

fn opaque_ports(args: &Args, table: &DetectTable) -> Result<Vec<u16>, ConfigError> {
    match (&args.opaque_ports, &table.opaque_ports) {
        (Some(list), _) => parse_port_list("--opaque-ports", list),
        (None, Some(ports)) => match ports.iter().position(|p| *p == 0) {
            Some(i) => Err(ConfigError::invalid(
                format!("detect.opaque_ports[{i}]"),
                "0 is not a port",
            )),
            None => Ok(ports.clone()),
        },
        (None, None) => Ok(DEFAULT_OPAQUE_PORTS.to_vec()),
    }
}

/// `25,587,3306`; an empty list means no opaque ports.
pub(super) fn parse_port_list(key: &str, list: &str) -> Result<Vec<u16>, ConfigError> {
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

// [[route]]

/// `--route` flags replace the file's routes as a whole; no two routes may
/// listen on the same address. The opaque ports and the response timeout
/// are resolved once they are known.
fn routes(args: &Args, file_routes: &[RouteTable]) -> Result<Vec<RouteSpec>, ConfigError> {
    let specs = if args.route.is_empty() {
        file_routes
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
    for (i, spec) in specs.iter().enumerate() {
        let listen = spec.route.listen;
        if specs[..i].iter().any(|other| other.route.listen == listen) {
            return Err(ConfigError::invalid(
                format!("route[{i}].listen"),
                format!("{listen} is used by another route"),
            ));
        }
    }
    Ok(specs)
}
