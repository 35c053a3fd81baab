//! Routes: a listener, the endpoints behind it, and the protocol policy of
//! its connections.

use std::net::SocketAddr;
use std::time::Duration;

use super::endpoint::{Endpoint, Upstream};
use super::{parse_addr, ConfigError};

/// One listener and the endpoints its connections are balanced over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub listen: SocketAddr,
    /// Addresses and names, as written; a name's addresses come from the
    /// resolver and reach the shards as endpoint sets, never through here.
    pub upstreams: Vec<Upstream>,
    /// The `direction` label of this route's metrics, as Linkerd names it.
    pub direction: Direction,
    /// What to do with a new connection's first bytes.
    pub protocol: Protocol,
    /// From a request sent upstream to its response head: the route's own
    /// `response_timeout`, else `proxy.response_timeout`; `None` waits.
    pub response_timeout: Option<Duration>,
    /// How long detection waits for a client's first bytes, when the
    /// route's source names it (a Linkerd policy's `Detect` timeout);
    /// `None`: `timeouts.detect`.
    pub detect_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Route {
    /// The endpoints known without a resolver: the upstreams that are
    /// addresses. A route of names alone has none until they resolve.
    pub fn static_endpoints(&self) -> Vec<Endpoint> {
        let addrs = self.upstreams.iter().filter_map(|upstream| match upstream {
            Upstream::Addr(addr) => Some(Endpoint::plain(*addr)),
            Upstream::Name { .. } => None,
        });
        addrs.collect()
    }
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// A route's protocol policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Peek at the first bytes and decide per connection.
    Detect,
    /// Never look: splice from the first byte (databases, brokers, ...).
    Opaque,
    /// Known HTTP/1 without detection.
    Http1,
    /// Known HTTP/2 (prior knowledge) without detection.
    Http2,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Detect => "detect",
            Protocol::Opaque => "opaque",
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
        }
    }
}

/// A route as written, before the opaque-ports list decides the protocol
/// of routes that do not name one. A transparent listener's route for an
/// original destination is one too (`implied`), resolved the same way.
pub struct RouteSpec {
    pub route: Route,
    pub protocol_given: bool,
    /// The route's own `response_timeout`, when it names one (`Some(None)`:
    /// `"off"`, whatever `proxy.response_timeout` says).
    pub response_timeout: Option<Option<Duration>>,
}

impl RouteSpec {
    /// A route that names neither protocol nor response timeout: what a
    /// transparent listener makes for each original destination.
    pub fn implied(listen: SocketAddr, upstream: SocketAddr, direction: Direction) -> RouteSpec {
        RouteSpec {
            route: Route {
                listen,
                upstreams: vec![Upstream::Addr(upstream)],
                direction,
                protocol: Protocol::Detect,
                response_timeout: None,
                detect_timeout: None,
            },
            protocol_given: false,
            response_timeout: None,
        }
    }

    /// A route without an explicit protocol is opaque when one of its
    /// upstream ports is in `opaque_ports`, and detected otherwise; one
    /// without a response timeout takes `response_timeout`.
    pub fn resolve(mut self, opaque_ports: &[u16], response_timeout: Option<Duration>) -> Route {
        self.route.response_timeout = self.response_timeout.unwrap_or(response_timeout);
        if !self.protocol_given {
            let opaque = self
                .route
                .upstreams
                .iter()
                .any(|upstream| opaque_ports.contains(&upstream.port()));
            self.route.protocol = if opaque {
                Protocol::Opaque
            } else {
                Protocol::Detect
            };
        }
        self.route
    }
}

/// `LISTEN=UPSTREAM[,UPSTREAM...]`, the `--route` flag.
pub(super) fn parse_route_flag(spec: &str) -> Result<RouteSpec, ConfigError> {
    let key = "--route";
    let (listen, upstreams) = spec.split_once('=').ok_or_else(|| {
        ConfigError::invalid(
            key,
            format!("{spec:?} is not LISTEN=UPSTREAM[,UPSTREAM...]"),
        )
    })?;
    let upstreams: Vec<&str> = upstreams
        .split(',')
        .filter(|u| !u.trim().is_empty())
        .collect();
    build_route(key, listen, &upstreams, None, None)
}

pub(super) fn build_route(
    key: &str,
    listen: &str,
    upstreams: &[impl AsRef<str>],
    direction: Option<&str>,
    protocol: Option<&str>,
) -> Result<RouteSpec, ConfigError> {
    let listen = parse_addr(&format!("{key}.listen"), listen)?;
    if upstreams.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.upstreams"),
            "needs at least one upstream (IP:port or NAME:port)",
        ));
    }
    let upstreams = upstreams
        .iter()
        .enumerate()
        .map(|(i, u)| Upstream::parse(&format!("{key}.upstreams[{i}]"), u.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let direction = match direction {
        None | Some("outbound") => Direction::Outbound,
        Some("inbound") => Direction::Inbound,
        Some(other) => {
            return Err(ConfigError::invalid(
                format!("{key}.direction"),
                format!("expected \"inbound\" or \"outbound\", got {other:?}"),
            ))
        }
    };
    let parsed_protocol = match protocol {
        None | Some("detect") => Protocol::Detect,
        Some("opaque") => Protocol::Opaque,
        Some("http1") => Protocol::Http1,
        Some("http2") => Protocol::Http2,
        Some(other) => {
            return Err(ConfigError::invalid(
                format!("{key}.protocol"),
                format!("expected \"detect\", \"opaque\", \"http1\" or \"http2\", got {other:?}"),
            ))
        }
    };
    Ok(RouteSpec {
        route: Route {
            listen,
            upstreams,
            direction,
            protocol: parsed_protocol,
            response_timeout: None,
            detect_timeout: None,
        },
        protocol_given: protocol.is_some(),
        response_timeout: None,
    })
}
