//! How each `LINKERD2_PROXY_*` value is read, as linkerd2-proxy reads it
//! (`linkerd/app/src/env/types.rs`): its duration syntax (`10s`, `500ms`,
//! `2m`, a bare `0`), comma-separated lists whose empty items are skipped,
//! port ranges `4191,9000-9100`, networks `10.0.0.0/8`, and control-plane
//! addresses `host:port`, where only `localhost.` (absolute) and loopback
//! IPs count as loopback (`linkerd/addr/src/lib.rs`). Each error names the
//! variable, in one line.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::super::iptables::{parse_cidrs, parse_port_ranges, Cidr, PortRange};
use super::super::value::check_name;
use super::super::ConfigError;
use super::{ControlAddr, ControlHost};

/// `\s*(\d+)(ms|s|m|h|d)?\s*`, where only zero may go without a unit.
pub(super) fn duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let bad = || {
        ConfigError::invalid(
            key,
            format!("{text:?} is not a duration like \"10s\", \"500ms\", \"2m\", \"1h\" or \"1d\""),
        )
    };
    let trimmed = text.trim();
    let digits = trimmed.len()
        - trimmed
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .len();
    let (number, unit) = trimmed.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = |factor: u64| number.checked_mul(factor).map(Duration::from_secs);
    let duration = match unit {
        "" if number == 0 => Some(Duration::ZERO),
        "ms" => Some(Duration::from_millis(number)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(60 * 60),
        "d" => seconds(24 * 60 * 60),
        _ => None,
    };
    duration.ok_or_else(bad)
}

pub(super) fn socket_addr(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.trim().parse().map_err(|_| {
        ConfigError::invalid(key, format!("{text:?} is not an IP:port socket address"))
    })
}

/// One or two socket addresses, comma-separated (Linkerd takes no more).
pub(super) fn socket_addrs(key: &str, text: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    let addrs: Vec<&str> = text.split(',').collect();
    if addrs.len() > 2 {
        return Err(ConfigError::invalid(
            key,
            format!("{text:?}: at most two addresses (IPv4 and IPv6)"),
        ));
    }
    addrs.iter().map(|addr| socket_addr(key, addr)).collect()
}

/// `10.0.0.0/8,fd00::/8`: networks; an empty list is none.
pub(super) fn networks(key: &str, text: &str) -> Result<Vec<Cidr>, ConfigError> {
    parse_cidrs(key, text)
}

/// `10.0.0.7,fd00::7`: the pod's own addresses (`status.podIPs`).
pub(super) fn ips(key: &str, text: &str) -> Result<Vec<IpAddr>, ConfigError> {
    let items = text.split(',').map(str::trim).filter(|ip| !ip.is_empty());
    items
        .map(|ip| {
            ip.parse()
                .map_err(|_| ConfigError::invalid(key, format!("{ip:?} is not an IP address")))
        })
        .collect()
}

/// `25,587,9000-9100`: ports and inclusive ranges.
pub(super) fn port_ranges(key: &str, text: &str) -> Result<Vec<PortRange>, ConfigError> {
    parse_port_ranges(key, text)
}

/// A DNS name, as Linkerd's identities and SNI are; lower case.
pub(super) fn dns_name(key: &str, text: &str) -> Result<String, ConfigError> {
    let name = text.trim();
    check_name(key, name)?;
    Ok(name.to_ascii_lowercase())
}

/// `host:port`, the host an IP or a DNS name (`[v6]:port` for IPv6).
pub(super) fn control_host(key: &str, text: &str) -> Result<(ControlHost, u16), ConfigError> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok((ControlHost::Ip(addr.ip()), addr.port()));
    }
    let bad = |why: &str| ConfigError::invalid(key, format!("{text:?} {why}"));
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| bad("is not host:port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| bad("has no port 1-65535 after its last ':'"))?;
    if rustls_pki_types::DnsName::try_from(host.trim_end_matches('.')).is_err() {
        return Err(bad("is not an IP or a DNS name with a port"));
    }
    Ok((ControlHost::Name(host.to_ascii_lowercase()), port))
}

/// `<base>_ADDR` with `<base>_NAME`, as linkerd2-proxy's
/// `parse_control_addr`: a loopback address is reached in plaintext and
/// needs no name; any other needs the name its server presents.
pub(super) fn control_addr(
    base: &str,
    addr: Option<&str>,
    name: Option<&str>,
) -> Result<Option<ControlAddr>, ConfigError> {
    let addr_key = format!("{base}_ADDR");
    let name_key = format!("{base}_NAME");
    let name = name.map(|name| dns_name(&name_key, name)).transpose()?;
    let Some(addr) = addr else {
        return match name {
            None => Ok(None),
            Some(_) => Err(ConfigError::invalid(
                addr_key,
                format!("required with {name_key}"),
            )),
        };
    };
    let (host, port) = control_host(&addr_key, addr)?;
    let loopback = match &host {
        ControlHost::Ip(ip) => ip.is_loopback(),
        ControlHost::Name(name) => name == "localhost.",
    };
    let server_name = match (loopback, name) {
        (true, _) => None,
        (false, Some(name)) => Some(name),
        (false, None) => {
            return Err(ConfigError::invalid(
                name_key,
                format!("required with a {addr_key} that is not loopback (the identity its server presents)"),
            ))
        }
    };
    Ok(Some(ControlAddr {
        host,
        port,
        server_name,
    }))
}

/// `LINKERD2_PROXY_LOG`, e.g. `warn,linkerd=info,[{headers}]=off`: an
/// `EnvFilter` whose `linkerd…` targets are read as ringside's, so that
/// the level the user chose for the proxy applies to this one.
pub(super) fn log_filter(key: &str, text: &str) -> Result<String, ConfigError> {
    let directives: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|directive| {
            let target_end = directive.find(['[', '=']).unwrap_or(directive.len());
            let (target, rest) = directive.split_at(target_end);
            match target.starts_with("linkerd") {
                true => format!("ringside{rest}"),
                false => directive.to_string(),
            }
        })
        .collect();
    let filter = directives.join(",");
    match tracing_subscriber::EnvFilter::try_new(&filter) {
        Ok(_) => Ok(filter),
        Err(err) => Err(ConfigError::invalid(
            key,
            format!("{text:?} is not a log filter: {err}"),
        )),
    }
}

/// `true` or `false`, as Rust's `bool::from_str` (linkerd2-proxy's
/// `parse_bool`).
pub(super) fn boolean(key: &str, text: &str) -> Result<bool, ConfigError> {
    text.trim()
        .parse()
        .map_err(|_| ConfigError::invalid(key, format!("expected true or false, got {text:?}")))
}

/// A positive count.
pub(super) fn count(key: &str, text: &str) -> Result<usize, ConfigError> {
    text.trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ConfigError::invalid(key, format!("{text:?} is not a number above 0")))
}

/// Passed to the policy controller as it is; it must at least be a JSON
/// object, as the injector writes it (`{"ns":"…", "pod":"…"}`).
pub(super) fn json_object(key: &str, text: &str) -> Result<String, ConfigError> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') && trimmed.ends_with('}') {
        Ok(trimmed.to_string())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("{text:?} is not a JSON object like {{\"ns\":\"default\",\"pod\":\"web-0\"}}"),
        ))
    }
}
