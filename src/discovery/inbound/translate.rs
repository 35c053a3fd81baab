//! From the policy controller's `inbound::Server` to a `ServerPolicy`,
//! every remote value bounded, as linkerd2-proxy's
//! `proxy/server-policy` translates it (`TryFrom<api::Server>`,
//! `authz::proto::mk_authorizations`): a server's authorizations get
//! localhost's appended (always permitted); a route's are its own, then
//! the server's; a server with no routes gets one that matches every
//! request (an older controller's answer). And Linkerd's built-in
//! defaults (`app/inbound/src/policy/defaults.rs`), which have no probe
//! route.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use linkerd2_proxy_api::inbound as api;
use linkerd2_proxy_api::meta::{metadata, Metadata};

use super::server::*;
use crate::config::Cidr;
use crate::discovery::translate::printable;
use crate::metrics::escape;

/// Authorizations of a server, or of a route, at most.
pub const MAX_AUTHORIZATIONS: usize = 64;
/// Routes of a server at most.
pub const MAX_ROUTES: usize = 64;
/// Networks (and exceptions of one network), identities and suffixes of
/// an authorization, matches of a route, headers of a match, at most.
pub const MAX_ITEMS: usize = 64;
/// Bytes of a name, a path or a header value.
pub const MAX_NAME_BYTES: usize = 253;
/// Bytes of a path or a header value.
pub const MAX_VALUE_BYTES: usize = 1_024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidServer {
    #[error("no protocol")]
    NoProtocol,
    #[error("a protocol detection without a timeout")]
    NoDetectTimeout,
    #[error("an authorization without networks or authentication")]
    BadAuthorization,
    #[error("an invalid network")]
    BadNetwork,
    #[error("more than {0} {1}")]
    TooMany(usize, &'static str),
    #[error("a value longer than {0} bytes")]
    TooLong(usize),
    #[error("an invalid or too large regular expression")]
    BadRegex,
    #[error("a gRPC route match without an RPC match")]
    NoRpc,
}

/// `server`, the policy of `port`.
pub fn server(server: api::Server, port: u16) -> Result<ServerPolicy, InvalidServer> {
    let kind = server
        .protocol
        .and_then(|p| p.kind)
        .ok_or(InvalidServer::NoProtocol)?;
    let (group, kind_label, name) = (
        label(&server.labels, "group", ""),
        label(&server.labels, "kind", "server"),
        label(&server.labels, "name", ""),
    );
    let srv = Arc::<str>::from(format!(
        "srv_group=\"{}\",srv_kind=\"{}\",srv_name=\"{}\",srv_port=\"{port}\"",
        escape(&group),
        escape(&kind_label),
        escape(&name)
    ));
    let mut authorizations = authorizations(server.authorizations)?;
    authorizations.push(localhost());
    use api::proxy_protocol::Kind;
    let (protocol, routes) = match kind {
        Kind::Detect(detect) => {
            let timeout = detect.timeout.ok_or(InvalidServer::NoDetectTimeout)?;
            let timeout =
                Duration::try_from(timeout).map_err(|_| InvalidServer::NoDetectTimeout)?;
            (InboundProtocol::Detect { timeout }, detect.http_routes)
        }
        Kind::Http1(http) => (InboundProtocol::Http1, http.routes),
        Kind::Http2(http) => (InboundProtocol::Http2, http.routes),
        Kind::Grpc(grpc) => {
            if grpc.routes.len() > MAX_ROUTES {
                return Err(InvalidServer::TooMany(MAX_ROUTES, "routes"));
            }
            let routes = grpc.routes.into_iter();
            let routes = routes.map(|route| grpc_route(route, &srv, &authorizations));
            let routes = routes.collect::<Result<Vec<_>, _>>()?;
            return Ok(finish_server(
                InboundProtocol::Grpc,
                name,
                srv,
                authorizations,
                routes,
            ));
        }
        Kind::Opaque(_) => (InboundProtocol::Opaque, Vec::new()),
        Kind::Tls(_) => (InboundProtocol::Tls, Vec::new()),
    };
    if routes.len() > MAX_ROUTES {
        return Err(InvalidServer::TooMany(MAX_ROUTES, "routes"));
    }
    let routes = routes.into_iter();
    let routes = routes.map(|route| http_route(route, &srv, &authorizations));
    let routes = routes.collect::<Result<Vec<_>, _>>()?;
    Ok(finish_server(protocol, name, srv, authorizations, routes))
}

/// The policy of a server with `routes` (none: the route of every
/// request, with the server's authorizations).
fn finish_server(
    protocol: InboundProtocol,
    name: String,
    srv: Arc<str>,
    authorizations: Vec<Authorization>,
    mut routes: Vec<HttpRoute>,
) -> ServerPolicy {
    if routes.is_empty() {
        routes.push(default_route(&srv, &authorizations));
    }
    ServerPolicy {
        protocol,
        allow_labels: allow_labels(&srv, &authorizations),
        name: printable(&name).into(),
        labels: srv,
        authorizations,
        routes,
    }
}

/// One of Linkerd's built-in default policies (`all-unauthenticated`,
/// `all-authenticated`, `cluster-unauthenticated`,
/// `cluster-authenticated`, `deny`, `audit`) for `port`, detecting within
/// `timeout`; `None` for another name.
/// What a port whose `Server` cannot be used gets, as linkerd2-proxy's
/// `ServerPolicy::invalid` (`proxy/server-policy/src/lib.rs`): no
/// authorization at all, localhost's neither, so every connection is
/// closed and every request answered 403, counted under
/// `srv_name="invalid"` and `route_name="invalid"`.
pub fn invalid_policy(port: u16, timeout: Duration) -> ServerPolicy {
    let srv: Arc<str> =
        format!("srv_group=\"\",srv_kind=\"default\",srv_name=\"invalid\",srv_port=\"{port}\"")
            .into();
    let route = format!("{srv},route_group=\"\",route_kind=\"default\",route_name=\"invalid\"");
    ServerPolicy {
        protocol: InboundProtocol::Detect { timeout },
        name: "invalid".into(),
        labels: srv,
        authorizations: Vec::new(),
        allow_labels: Vec::new(),
        routes: vec![finish_route(route, vec![RouteMatch::default()], Vec::new())],
    }
}

pub fn default_policy(
    name: &str,
    cluster_networks: &[Cidr],
    port: u16,
    timeout: Duration,
) -> Option<ServerPolicy> {
    let all = [cidr("0.0.0.0", 0), cidr("::", 0)];
    let authenticated = Authentication::TlsAuthenticated {
        identities: Vec::new(),
        suffixes: vec![String::new()],
    };
    let (networks, authentication): (&[Cidr], _) = match name {
        "all-unauthenticated" | "audit" => (&all, Some(Authentication::Unauthenticated)),
        "all-authenticated" => (&all, Some(authenticated)),
        "cluster-unauthenticated" => (cluster_networks, Some(Authentication::Unauthenticated)),
        "cluster-authenticated" => (cluster_networks, Some(authenticated)),
        "deny" => (&[], None),
        _ => return None,
    };
    let srv: Arc<str> =
        format!("srv_group=\"\",srv_kind=\"default\",srv_name=\"{name}\",srv_port=\"{port}\"")
            .into();
    let mut authorizations = Vec::new();
    if let Some(authentication) = authentication {
        authorizations.push(Authorization {
            networks: networks
                .iter()
                .map(|net| Network {
                    net: *net,
                    except: Vec::new(),
                })
                .collect(),
            authentication,
            labels: format!("authz_group=\"\",authz_kind=\"default\",authz_name=\"{name}\"").into(),
            audit: name == "audit",
        });
    }
    authorizations.push(localhost());
    Some(ServerPolicy {
        protocol: InboundProtocol::Detect { timeout },
        allow_labels: allow_labels(&srv, &authorizations),
        name: name.into(),
        routes: vec![default_route(&srv, &authorizations)],
        labels: srv,
        authorizations,
    })
}

fn cidr(addr: &str, prefix: u8) -> Cidr {
    Cidr {
        addr: addr.parse().expect("a literal address"),
        prefix,
    }
}

/// Always permitted, as in Linkerd.
fn localhost() -> Authorization {
    Authorization {
        networks: [cidr("127.0.0.1", 32), cidr("::1", 128)]
            .into_iter()
            .map(|net| Network {
                net,
                except: Vec::new(),
            })
            .collect(),
        authentication: Authentication::Unauthenticated,
        labels: "authz_group=\"\",authz_kind=\"default\",authz_name=\"localhost\"".into(),
        audit: false,
    }
}

/// The route of every request, with the server's authorizations: what a
/// server without routes gets.
fn default_route(srv: &str, server_authzs: &[Authorization]) -> HttpRoute {
    let labels = format!("{srv},route_group=\"\",route_kind=\"default\",route_name=\"default\"");
    finish_route(labels, vec![RouteMatch::default()], server_authzs.to_vec())
}

/// `labels` joined with each authorization's.
fn allow_labels(labels: &str, authorizations: &[Authorization]) -> Vec<Arc<str>> {
    authorizations
        .iter()
        .map(|authz| Arc::from(format!("{labels},{}", authz.labels)))
        .collect()
}

fn finish_route(
    labels: String,
    matches: Vec<RouteMatch>,
    authorizations: Vec<Authorization>,
) -> HttpRoute {
    let allow_labels = allow_labels(&labels, &authorizations);
    HttpRoute {
        matches,
        authorizations,
        labels: labels.into(),
        allow_labels,
    }
}

fn http_route(
    route: api::HttpRoute,
    srv: &str,
    server_authzs: &[Authorization],
) -> Result<HttpRoute, InvalidServer> {
    let (group, kind, name) = meta(route.metadata.as_ref(), "httproute");
    let rules = route.rules.into_iter().map(|rule| rule.matches);
    let matches = rule_matches(rules, || Ok(RouteMatch::default()), route_match)?;
    let labels = route_labels(srv, &group, &kind, &name);
    let authorizations = route_authorizations(route.authorizations, server_authzs)?;
    Ok(finish_route(labels, matches, authorizations))
}

/// A gRPC route: `POST` to `/service/method` (linkerd2-proxy's
/// `http-route` `grpc::MatchRoute`), its hosts and filters not applied.
fn grpc_route(
    route: api::GrpcRoute,
    srv: &str,
    server_authzs: &[Authorization],
) -> Result<HttpRoute, InvalidServer> {
    let (group, kind, name) = meta(route.metadata.as_ref(), "grpcroute");
    let any_rpc = || grpc_match(None, Vec::new());
    let rules = route.rules.into_iter().map(|rule| rule.matches);
    let matches = rule_matches(rules, any_rpc, |m| {
        let rpc = m.rpc.ok_or(InvalidServer::NoRpc)?;
        grpc_match(Some(rpc), m.headers)
    })?;
    let labels = route_labels(srv, &group, &kind, &name);
    let authorizations = route_authorizations(route.authorizations, server_authzs)?;
    Ok(finish_route(labels, matches, authorizations))
}

/// Every rule's matches, a rule without any matching every request,
/// at most `MAX_ITEMS` in all.
fn rule_matches<M>(
    rules: impl Iterator<Item = Vec<M>> + Clone,
    any: impl Fn() -> Result<RouteMatch, InvalidServer>,
    each: impl Fn(M) -> Result<RouteMatch, InvalidServer>,
) -> Result<Vec<RouteMatch>, InvalidServer> {
    let count: usize = rules.clone().map(|matches| matches.len().max(1)).sum();
    if count > MAX_ITEMS {
        return Err(InvalidServer::TooMany(MAX_ITEMS, "route matches"));
    }
    let mut all = Vec::with_capacity(count);
    for matches in rules {
        if matches.is_empty() {
            all.push(any()?);
        }
        for m in matches {
            all.push(each(m)?);
        }
    }
    Ok(all)
}

fn route_labels(srv: &str, group: &str, kind: &str, name: &str) -> String {
    format!(
        "{srv},route_group=\"{}\",route_kind=\"{}\",route_name=\"{}\"",
        escape(group),
        escape(kind),
        escape(name)
    )
}

/// A route's own authorizations, then the server's.
fn route_authorizations(
    own: Vec<api::Authz>,
    server_authzs: &[Authorization],
) -> Result<Vec<Authorization>, InvalidServer> {
    let mut authorizations = authorizations(own)?;
    if authorizations.len() + server_authzs.len() > 2 * MAX_AUTHORIZATIONS + 1 {
        return Err(InvalidServer::TooMany(MAX_AUTHORIZATIONS, "authorizations"));
    }
    authorizations.extend_from_slice(server_authzs);
    Ok(authorizations)
}

fn route_match(
    m: linkerd2_proxy_api::http_route::HttpRouteMatch,
) -> Result<RouteMatch, InvalidServer> {
    use linkerd2_proxy_api::http_route::{path_match, query_param_match};
    let path = match m.path.and_then(|p| p.kind) {
        None => None,
        Some(path_match::Kind::Exact(path)) => {
            Some(PathMatch::Exact(bounded(path, MAX_VALUE_BYTES)?))
        }
        Some(path_match::Kind::Prefix(path)) => {
            Some(PathMatch::Prefix(bounded(path, MAX_VALUE_BYTES)?))
        }
        Some(path_match::Kind::Regex(regex)) => Some(PathMatch::Regex(pattern(regex)?)),
    };
    let method = match m.method.and_then(|method| method.r#type) {
        None => None,
        Some(method) => match http::Method::try_from(method) {
            Ok(method) => Some(method.as_str().to_string()),
            Err(_) => return Err(InvalidServer::TooLong(MAX_NAME_BYTES)),
        },
    };
    if m.query_params.len() > MAX_ITEMS {
        return Err(InvalidServer::TooMany(MAX_ITEMS, "query parameters"));
    }
    let query_params = m.query_params.into_iter().map(|param| {
        let value = match param.value {
            Some(query_param_match::Value::Exact(value)) => {
                ValueMatch::Exact(bounded(value, MAX_VALUE_BYTES)?.into_bytes())
            }
            Some(query_param_match::Value::Regex(regex)) => ValueMatch::Regex(pattern(regex)?),
            None => return Err(InvalidServer::BadRegex),
        };
        Ok((bounded(param.name, MAX_NAME_BYTES)?, value))
    });
    Ok(RouteMatch {
        path,
        method,
        headers: header_matches(m.headers)?,
        query_params: query_params.collect::<Result<_, _>>()?,
    })
}

/// A gRPC route's match: `rpc`'s service and method (empty: any; none:
/// the rule matches every call).
fn grpc_match(
    rpc: Option<linkerd2_proxy_api::grpc_route::GrpcRpcMatch>,
    headers: Vec<linkerd2_proxy_api::http_route::HeaderMatch>,
) -> Result<RouteMatch, InvalidServer> {
    let part = |value: String| match value.is_empty() {
        true => Ok(None),
        false => bounded(value, MAX_NAME_BYTES).map(Some),
    };
    let (service, method) = match rpc {
        Some(rpc) => (part(rpc.service)?, part(rpc.method)?),
        None => (None, None),
    };
    Ok(RouteMatch {
        path: Some(PathMatch::Rpc { service, method }),
        method: Some("POST".into()),
        headers: header_matches(headers)?,
        query_params: Vec::new(),
    })
}

fn header_matches(
    headers: Vec<linkerd2_proxy_api::http_route::HeaderMatch>,
) -> Result<Vec<(String, ValueMatch)>, InvalidServer> {
    use linkerd2_proxy_api::http_route::header_match;
    if headers.len() > MAX_ITEMS {
        return Err(InvalidServer::TooMany(MAX_ITEMS, "headers"));
    }
    let headers = headers.into_iter().map(|header| {
        let value = match header.value {
            Some(header_match::Value::Exact(value)) if value.len() <= MAX_VALUE_BYTES => {
                ValueMatch::Exact(value)
            }
            Some(header_match::Value::Exact(_)) => {
                return Err(InvalidServer::TooLong(MAX_VALUE_BYTES))
            }
            Some(header_match::Value::Regex(regex)) => ValueMatch::Regex(pattern(regex)?),
            None => return Err(InvalidServer::BadRegex),
        };
        let name = bounded(header.name, MAX_NAME_BYTES)?.to_ascii_lowercase();
        Ok((name, value))
    });
    headers.collect()
}

/// A remote regular expression, bounded in length and compiled size.
fn pattern(regex: String) -> Result<Pattern, InvalidServer> {
    let regex = bounded(regex, MAX_VALUE_BYTES)?;
    Pattern::new(&regex).map_err(|_| InvalidServer::BadRegex)
}

fn authorizations(authzs: Vec<api::Authz>) -> Result<Vec<Authorization>, InvalidServer> {
    if authzs.len() > MAX_AUTHORIZATIONS {
        return Err(InvalidServer::TooMany(MAX_AUTHORIZATIONS, "authorizations"));
    }
    authzs.into_iter().map(authorization).collect()
}

fn authorization(authz: api::Authz) -> Result<Authorization, InvalidServer> {
    use api::authn::{permit_mesh_tls::Clients, Permit};
    if authz.networks.is_empty() {
        return Err(InvalidServer::BadAuthorization);
    }
    if authz.networks.len() > MAX_ITEMS {
        return Err(InvalidServer::TooMany(MAX_ITEMS, "networks"));
    }
    let networks = authz
        .networks
        .into_iter()
        .map(|network| {
            if network.except.len() > MAX_ITEMS {
                return Err(InvalidServer::TooMany(MAX_ITEMS, "network exceptions"));
            }
            Ok(Network {
                net: network_of(network.net)?,
                except: network
                    .except
                    .into_iter()
                    .map(|net| network_of(Some(net)))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect::<Result<_, _>>()?;
    let permit = authz.authentication.and_then(|a| a.permit);
    let authentication = match permit.ok_or(InvalidServer::BadAuthorization)? {
        Permit::Unauthenticated(_) => Authentication::Unauthenticated,
        Permit::MeshTls(mesh) => match mesh.clients.ok_or(InvalidServer::BadAuthorization)? {
            Clients::Unauthenticated(_) => Authentication::TlsUnauthenticated,
            Clients::Identities(ids) => {
                if ids.identities.len() > MAX_ITEMS || ids.suffixes.len() > MAX_ITEMS {
                    return Err(InvalidServer::TooMany(MAX_ITEMS, "identities"));
                }
                let identities = ids
                    .identities
                    .into_iter()
                    .map(|id| bounded(id.name, MAX_NAME_BYTES));
                let suffixes =
                    ids.suffixes
                        .into_iter()
                        .map(|suffix| match suffix.parts.is_empty() {
                            true => Ok(String::new()),
                            false => {
                                bounded(format!(".{}", suffix.parts.join(".")), MAX_NAME_BYTES)
                            }
                        });
                Authentication::TlsAuthenticated {
                    identities: identities.collect::<Result<_, _>>()?,
                    suffixes: suffixes.collect::<Result<_, _>>()?,
                }
            }
        },
    };
    let (group, kind, name) = match authz.metadata.as_ref() {
        Some(metadata) => meta(Some(metadata), "authorizationpolicy"),
        None => (
            label(&authz.labels, "group", "policy.linkerd.io"),
            label(&authz.labels, "kind", "serverauthorization"),
            label(&authz.labels, "name", ""),
        ),
    };
    Ok(Authorization {
        networks,
        authentication,
        audit: kind == "default" && name == "audit",
        labels: format!(
            "authz_group=\"{}\",authz_kind=\"{}\",authz_name=\"{}\"",
            escape(&group),
            escape(&kind),
            escape(&name)
        )
        .into(),
    })
}

fn network_of(net: Option<linkerd2_proxy_api::net::IpNetwork>) -> Result<Cidr, InvalidServer> {
    let net = net.ok_or(InvalidServer::BadNetwork)?;
    let addr = net.ip.ok_or(InvalidServer::BadNetwork)?;
    let addr = std::net::IpAddr::try_from(addr).map_err(|_| InvalidServer::BadNetwork)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = u8::try_from(net.prefix_len).ok().filter(|p| *p <= max);
    let prefix = prefix.ok_or(InvalidServer::BadNetwork)?;
    Ok(Cidr { addr, prefix })
}

/// `(group, kind, name)` of a resource or a default (`group` empty,
/// `kind` `default`).
fn meta(metadata: Option<&Metadata>, kind: &str) -> (String, String, String) {
    match metadata.and_then(|m| m.kind.as_ref()) {
        Some(metadata::Kind::Default(name)) => (String::new(), "default".into(), printable(name)),
        Some(metadata::Kind::Resource(resource)) => (
            printable(&resource.group),
            printable(&resource.kind),
            printable(&resource.name),
        ),
        None => (String::new(), kind.to_string(), String::new()),
    }
}

fn label(labels: &HashMap<String, String>, name: &str, default: &str) -> String {
    printable(labels.get(name).map_or(default, String::as_str))
}

fn bounded(value: String, max: usize) -> Result<String, InvalidServer> {
    match value.len() <= max {
        true => Ok(value),
        false => Err(InvalidServer::TooLong(max)),
    }
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
