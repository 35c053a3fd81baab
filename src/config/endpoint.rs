//! What a route's connections are balanced over: its upstreams as written
//! (`Upstream`: an address, or a host name and port that a resolver turns
//! into addresses), and the endpoints they become (`Endpoint`: one address
//! with what is known of it).
//!
//! An endpoint set is published whole, as an immutable `EndpointSet`, by
//! whoever learns it: the start-up configuration for addresses, the DNS
//! resolver for names, and later a control plane. So an endpoint carries
//! the metadata such a source knows of it (the identity its proxy proves,
//! the protocol it speaks, labels, the port of its proxy); the
//! `[[mesh.peer]]` list is the other source of an identity, looked up where
//! the endpoint is used, for endpoints no control plane described.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use super::ConfigError;

/// One of `Route.upstreams`: `"10.0.0.7:5432"` or `"db.internal:5432"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Upstream {
    Addr(SocketAddr),
    /// A host name, resolved in the background (never on a connection's
    /// path); until its addresses arrive it adds no endpoint.
    Name {
        host: String,
        port: u16,
    },
}

impl Upstream {
    pub fn port(&self) -> u16 {
        match self {
            Upstream::Addr(addr) => addr.port(),
            Upstream::Name { port, .. } => *port,
        }
    }

    /// The host name to resolve, if this upstream is one.
    pub fn host(&self) -> Option<&str> {
        match self {
            Upstream::Addr(_) => None,
            Upstream::Name { host, .. } => Some(host),
        }
    }

    /// `IP:port`, `[IPv6]:port` or `name:port`, `key` naming it in the error.
    pub(super) fn parse(key: &str, value: &str) -> Result<Upstream, ConfigError> {
        let value = value.trim();
        if let Ok(addr) = value.parse::<SocketAddr>() {
            return Ok(Upstream::Addr(addr));
        }
        let bad = |why: &str| ConfigError::invalid(key, format!("{value:?} {why}"));
        let (host, port) = value
            .rsplit_once(':')
            .ok_or_else(|| bad("is neither IP:port nor NAME:port"))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|&port| port != 0)
            .ok_or_else(|| bad("has no port (1-65535) after the last ':'"))?;
        if !is_host_name(host) {
            return Err(bad("is neither IP:port nor NAME:port"));
        }
        Ok(Upstream::Name {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Addr(addr) => addr.fmt(f),
            Upstream::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// A DNS host name (RFC 1123 labels, an optional final dot), not an IP
/// address gone wrong: at least one label must not be all digits.
fn is_host_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    host.len() <= 253
        && host.split('.').all(label_ok)
        && !host
            .split('.')
            .all(|label| label.bytes().all(|b| b.is_ascii_digit()))
}

/// One address a route balances over, and what its source knows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The identity the endpoint's proxy proves over mTLS, when its source
    /// says so (a control plane's destination answer).
    pub identity: Option<String>,
    /// The protocol the endpoint is known to speak, when its source says so.
    pub protocol: Option<ProtocolHint>,
    /// The source's labels, kept for metrics and logs.
    pub labels: Vec<(String, String)>,
    /// The port where the endpoint's proxy takes its connections behind a
    /// transport header naming `addr`'s port (Linkerd's
    /// `opaque_transport.inbound_port`); `None`: connect to `addr` itself.
    pub tagged_port: Option<u16>,
}

impl Endpoint {
    /// An address and nothing else known of it.
    pub fn plain(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            identity: None,
            protocol: None,
            labels: Vec::new(),
            tagged_port: None,
        }
    }
}

/// What a source of endpoints may say an endpoint speaks (a control
/// plane's protocol hint), which spares it detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolHint {
    Http1,
    Http2,
    Opaque,
}

/// A route's endpoints as published to every shard: immutable and shared,
/// so a shard swaps its copy in whole and never sees one half-changed.
pub type EndpointSet = Arc<[Endpoint]>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_addresses_or_names_and_bad_ones_name_the_key() {
        let addr = Upstream::parse("k", "10.0.0.7:5432").unwrap();
        assert_eq!(addr, Upstream::Addr("10.0.0.7:5432".parse().unwrap()));
        let v6 = Upstream::parse("k", "[::1]:80").unwrap();
        assert_eq!(v6.port(), 80);
        let name = Upstream::parse("k", "DB.internal:5432").unwrap();
        assert_eq!(name.host(), Some("db.internal"));
        assert_eq!(name.to_string(), "db.internal:5432");
        for bad in [
            "x", "db:0", "db:", ":80", "1.2.3:80", "a b:80", "-x:80", "db:99999",
        ] {
            let err = Upstream::parse("route[0].upstreams[0]", bad).unwrap_err();
            assert!(
                err.to_string().starts_with("route[0].upstreams[0]: "),
                "{bad}: {err}"
            );
        }
    }
}
