//! `ServerPolicy`: what Linkerd's policy controller says of one inbound
//! port, as plain types the shards judge clients by, after
//! linkerd2-proxy's `proxy/server-policy` (`lib.rs`, `authz.rs`) and
//! `app/inbound/src/policy.rs` (`is_authorized`, `is_tls_authorized`).
//!
//! A connection is judged by the port's authorizations (the first one
//! whose networks hold the client and whose authentication its TLS meets);
//! an HTTP request by its route's, which hold the route's own, then the
//! server's, then localhost's. The label text every decision is counted
//! under is made once, here, when the policy arrives: counting a decision
//! then builds no string.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Cidr;

/// How the port's connections are carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundProtocol {
    /// Detected, within `timeout`.
    Detect {
        timeout: Duration,
    },
    Opaque,
    Http1,
    Http2,
    /// HTTP/2, whose refusals are gRPC's `PERMISSION_DENIED`.
    Grpc,
    /// TLS passed through to the application (carried as opaque).
    Tls,
}

/// The policy of one inbound port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPolicy {
    pub protocol: InboundProtocol,
    /// The server's name, for logs.
    pub name: Arc<str>,
    /// `srv_group="…",srv_kind="…",srv_name="…",srv_port="…"`.
    pub labels: Arc<str>,
    /// Who may open a connection carried as TCP (localhost's last).
    pub authorizations: Vec<Authorization>,
    /// `labels` and each authorization's, in `authorizations`' order:
    /// what a connection it allows is counted under.
    pub allow_labels: Vec<Arc<str>>,
    /// The HTTP routes; a request none matches is answered 404.
    pub routes: Vec<HttpRoute>,
}

/// One authorization: client networks and the TLS they must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub networks: Vec<Network>,
    pub authentication: Authentication,
    /// `authz_group="…",authz_kind="…",authz_name="…"`.
    pub labels: Arc<str>,
    /// Linkerd's `audit` default: allowed, and logged as it is.
    pub audit: bool,
}

/// A client network, less its exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub net: Cidr,
    pub except: Vec<Cidr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// Any client, TLS or not.
    Unauthenticated,
    /// A client whose TLS ringside terminated, with or without a client
    /// identity.
    TlsUnauthenticated,
    /// A client that proved one of these identities, or one ending in one
    /// of these suffixes (each `.`-led; `""`: any identity).
    TlsAuthenticated {
        identities: Vec<String>,
        suffixes: Vec<String>,
    },
}

/// An HTTP route: its matches (any one) and who may use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub matches: Vec<RouteMatch>,
    /// Its own, then the server's, then localhost's.
    pub authorizations: Vec<Authorization>,
    /// `srv_…,route_group="…",route_kind="…",route_name="…"`: what a
    /// request it denies is counted under.
    pub labels: Arc<str>,
    /// `labels` and each authorization's, in `authorizations`' order:
    /// what a request it allows is counted under.
    pub allow_labels: Vec<Arc<str>>,
}

/// One match of a route; every part given must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteMatch {
    pub path: Option<PathMatch>,
    pub method: Option<String>,
    /// Header name (lower case) and value.
    pub headers: Vec<(String, ValueMatch)>,
    /// Query parameter name and value.
    pub query_params: Vec<(String, ValueMatch)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    Regex(Pattern),
    /// A gRPC route's: `/service/method`, either part any when `None`.
    Rpc {
        service: Option<String>,
        method: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    Exact(Vec<u8>),
    Regex(Pattern),
}

/// A regular expression a route matches by; it holds only where it
/// matches the whole value (linkerd2-proxy's `http-route`: the first
/// match must start at 0 and end at the value's end). Over bytes, with
/// ASCII classes (`\w`, `\d`, `.` a byte): paths are ASCII on the wire,
/// and Unicode's tables would cost every process 180 KiB (`Cargo.toml`).
#[derive(Debug, Clone)]
pub struct Pattern(regex::bytes::Regex);

/// Bytes a compiled regular expression may take (the `regex` crate's
/// `size_limit`): a remote pattern short enough to be taken that compiles
/// past it, such as nested counted repetitions, is refused rather than kept.
const MAX_COMPILED_BYTES: usize = 256 * 1024;

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

impl Pattern {
    /// Compiles `regex` as routes match by it, within `MAX_COMPILED_BYTES`.
    pub fn new(regex: &str) -> Result<Pattern, regex::Error> {
        regex::bytes::RegexBuilder::new(regex)
            .unicode(false)
            .size_limit(MAX_COMPILED_BYTES)
            .dfa_size_limit(MAX_COMPILED_BYTES)
            .build()
            .map(Pattern)
    }

    pub fn matches_whole(&self, value: &[u8]) -> bool {
        self.0
            .find(value)
            .is_some_and(|found| found.start() == 0 && found.end() == value.len())
    }
}

impl ValueMatch {
    fn matches(&self, value: &[u8]) -> bool {
        match self {
            ValueMatch::Exact(exact) => exact == value,
            ValueMatch::Regex(pattern) => pattern.matches_whole(value),
        }
    }
}

/// What TLS a client showed the inbound side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTls<'a> {
    /// Plaintext, or TLS passed through unterminated.
    None,
    /// TLS ringside terminated, with the client identity it proved.
    Established(Option<&'a str>),
}

/// An HTTP request as a route sees it.
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The target's query, without its `?` (empty when none).
    pub query: &'a str,
    /// A header's value by its lower-case name.
    pub header: &'a dyn Fn(&str) -> Option<&'a [u8]>,
}

impl Authorization {
    /// Whether a client at `ip` showing `tls` is admitted.
    pub fn admits(&self, ip: IpAddr, tls: ClientTls) -> bool {
        let in_network =
            |n: &Network| n.net.contains(ip) && !n.except.iter().any(|e| e.contains(ip));
        if !self.networks.iter().any(in_network) {
            return false;
        }
        match (&self.authentication, tls) {
            (Authentication::Unauthenticated, _) => true,
            (Authentication::TlsUnauthenticated, tls) => tls != ClientTls::None,
            (
                Authentication::TlsAuthenticated {
                    identities,
                    suffixes,
                },
                ClientTls::Established(Some(id)),
            ) => {
                identities.iter().any(|i| i == id)
                    || suffixes.iter().any(|s| id.ends_with(s.as_str()))
            }
            (Authentication::TlsAuthenticated { .. }, _) => false,
        }
    }
}

/// The first of `authorizations` that admits the client, with its index.
pub fn permit(authorizations: &[Authorization], ip: IpAddr, tls: ClientTls) -> Option<usize> {
    authorizations.iter().position(|a| a.admits(ip, tls))
}

impl ServerPolicy {
    /// The route a request takes: of those that match it, the most
    /// specific, as linkerd2-proxy's `http-route` ranks matches: the
    /// longer path matched (exact, prefix or a regular expression's whole
    /// path alike), then more headers, more query parameters, a method;
    /// for gRPC routes, the longer service, then method, matched.
    pub fn route(&self, request: &RequestParts) -> Option<&HttpRoute> {
        let mut best: Option<(RouteRank, &HttpRoute)> = None;
        for route in &self.routes {
            let rank = route.matches.iter().filter_map(|m| m.rank(request)).max();
            if let Some(rank) = rank {
                if best.as_ref().is_none_or(|(seen, _)| rank > *seen) {
                    best = Some((rank, route));
                }
            }
        }
        best.map(|(_, route)| route)
    }
}

/// How specific a match is: compared in field order. A server's routes
/// are all HTTP's or all gRPC's, so the two kinds of path never compete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct RouteRank {
    path_bytes: usize,
    rpc_service_bytes: usize,
    rpc_method_bytes: usize,
    headers: usize,
    query_params: usize,
    method: bool,
}

impl RouteMatch {
    fn rank(&self, request: &RequestParts) -> Option<RouteRank> {
        let mut rank = RouteRank::default();
        match &self.path {
            None => {}
            Some(PathMatch::Exact(path)) if path == request.path => rank.path_bytes = path.len(),
            Some(PathMatch::Prefix(prefix)) if prefix_matches(prefix, request.path) => {
                rank.path_bytes = prefix.trim_end_matches('/').len().max(1);
            }
            Some(PathMatch::Regex(pattern)) if pattern.matches_whole(request.path.as_bytes()) => {
                rank.path_bytes = request.path.len();
            }
            Some(PathMatch::Rpc { service, method }) => {
                let mut parts = request.path.split('/');
                let (Some(""), Some(asked_service), Some(asked_method)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return None;
                };
                for (part, asked, bytes) in [
                    (service, asked_service, &mut rank.rpc_service_bytes),
                    (method, asked_method, &mut rank.rpc_method_bytes),
                ] {
                    if let Some(part) = part {
                        if part != asked {
                            return None;
                        }
                        *bytes = part.len();
                    }
                }
            }
            Some(_) => return None,
        }
        if let Some(method) = &self.method {
            if !method.eq_ignore_ascii_case(request.method) {
                return None;
            }
            rank.method = true;
        }
        for (name, value) in &self.headers {
            if !(request.header)(name).is_some_and(|found| value.matches(found)) {
                return None;
            }
        }
        rank.headers = self.headers.len();
        for (name, value) in &self.query_params {
            let mut pairs = form_urlencoded::parse(request.query.as_bytes());
            if !pairs.any(|(key, found)| key == name.as_str() && value.matches(found.as_bytes())) {
                return None;
            }
        }
        rank.query_params = self.query_params.len();
        Some(rank)
    }
}

/// Gateway API's path prefix: whole segments (`/api` holds `/api` and
/// `/api/x`, not `/apix`).
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.is_empty(),
        None => false,
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
