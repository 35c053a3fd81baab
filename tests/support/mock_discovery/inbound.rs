//! The mock's `InboundServerPolicies` (`WatchPort`, `GetPort`): a test
//! sets the `Server` of a port (or the status its calls fail with) and
//! changes it while ringside runs; every open stream sends the new one.
//! The builders make `Server`s as Linkerd's policy controller does
//! (`policy-controller/grpc/src/inbound.rs`, `k8s/index/src/inbound/index.rs`):
//! default servers named `kind=default`, a `default` route matching every
//! request, and a `probe` route of `GET`s on the probe paths authorized
//! unauthenticated from the probe networks.

use linkerd2_proxy_api::http_route::{path_match, HeaderMatch, HttpRouteMatch, PathMatch};
use linkerd2_proxy_api::http_types::{http_method, HttpMethod};
use linkerd2_proxy_api::inbound::inbound_server_policies_server::{
    InboundServerPolicies, InboundServerPoliciesServer,
};
use linkerd2_proxy_api::inbound::{
    authn, proxy_protocol, Authn, Authz, GrpcRoute, HttpRoute, Network, PortSpec, ProxyProtocol,
    Server,
};
use linkerd2_proxy_api::meta::{metadata, Metadata};
use tonic::codegen::BoxStream;
use tonic::{Code, Request, Response, Status};

use super::{Call, MockControlPlane};

pub(super) fn server(mock: MockControlPlane) -> InboundServerPoliciesServer<MockControlPlane> {
    InboundServerPoliciesServer::new(mock)
}

impl MockControlPlane {
    /// The `Server` of inbound `port` from now on; `None`: NOT_FOUND.
    pub fn set_server(&self, port: u16, server: Option<Server>) {
        self.change(|state| {
            match server {
                Some(server) => state.servers.insert(port.into(), Ok(server)),
                None => state.servers.remove(&port.into()),
            };
        });
    }

    /// `port`'s calls fail with `code` from now on.
    pub fn fail_port(&self, port: u16, code: Code) {
        self.change(|state| {
            state.servers.insert(port.into(), Err(code));
        });
    }

    /// The workloads the `WatchPort` calls named, in order.
    pub fn watched_ports(&self) -> Vec<String> {
        let requests = self.requests();
        let watches = requests.iter().filter_map(|r| r.strip_prefix("WatchPort "));
        watches.map(str::to_string).collect()
    }
}

fn answer(state: &super::State, port: u32) -> Result<Server, Status> {
    match state.servers.get(&port) {
        Some(Ok(server)) => Ok(server.clone()),
        Some(Err(code)) => Err(Status::new(*code, "the mock refuses this port")),
        None => Err(Status::not_found("no server")),
    }
}

#[tonic::async_trait]
impl InboundServerPolicies for MockControlPlane {
    type WatchPortStream = BoxStream<Server>;

    async fn get_port(&self, request: Request<PortSpec>) -> Result<Response<Server>, Status> {
        let spec = request.into_inner();
        self.enter(Call::GetPort, format!("{} {}", spec.port, spec.workload))?;
        let state = self.state.lock().unwrap();
        answer(&state, spec.port).map(Response::new)
    }

    async fn watch_port(
        &self,
        request: Request<PortSpec>,
    ) -> Result<Response<BoxStream<Server>>, Status> {
        let spec = request.into_inner();
        let generation = self.enter(Call::WatchPort, format!("{} {}", spec.port, spec.workload))?;
        answer(&self.state.lock().unwrap(), spec.port)?;
        let port = spec.port;
        let mut sent = None;
        let stream = self.stream(generation, move |state| {
            let now = answer(state, port);
            if let (Some(sent), Ok(now)) = (&sent, &now) {
                if sent == now {
                    return vec![];
                }
            }
            sent = now.as_ref().ok().cloned();
            vec![now]
        });
        Ok(Response::new(stream))
    }
}

/// How a `Server`'s port is carried.
pub enum Proto {
    /// Detected, with the HTTP routes of what is detected HTTP.
    Detect(Vec<HttpRoute>),
    /// Detected within this timeout (`Detect`'s is Linkerd's 10 s).
    DetectWithin(std::time::Duration),
    Opaque,
    Http1(Vec<HttpRoute>),
    Http2(Vec<HttpRoute>),
    Grpc(Vec<GrpcRoute>),
}

/// A `Server` named `name` (`kind=server`; a Linkerd built-in default such
/// as `all-unauthenticated` when `default`).
pub fn server_of(name: &str, default: bool, proto: Proto, authorizations: Vec<Authz>) -> Server {
    let kind = match proto {
        Proto::Detect(http_routes) => proxy_protocol::Kind::Detect(proxy_protocol::Detect {
            timeout: Some(std::time::Duration::from_secs(10).try_into().unwrap()),
            http_routes,
            http_local_rate_limit: None,
        }),
        Proto::DetectWithin(timeout) => proxy_protocol::Kind::Detect(proxy_protocol::Detect {
            timeout: Some(timeout.try_into().unwrap()),
            http_routes: vec![],
            http_local_rate_limit: None,
        }),
        Proto::Opaque => proxy_protocol::Kind::Opaque(proxy_protocol::Opaque {}),
        Proto::Http1(routes) => proxy_protocol::Kind::Http1(proxy_protocol::Http1 {
            routes,
            local_rate_limit: None,
        }),
        Proto::Http2(routes) => proxy_protocol::Kind::Http2(proxy_protocol::Http2 {
            routes,
            local_rate_limit: None,
        }),
        Proto::Grpc(routes) => proxy_protocol::Kind::Grpc(proxy_protocol::Grpc { routes }),
    };
    let (group, kind_label) = match default {
        true => ("", "default"),
        false => ("policy.linkerd.io", "server"),
    };
    let labels = [("group", group), ("kind", kind_label), ("name", name)];
    Server {
        protocol: Some(ProxyProtocol { kind: Some(kind) }),
        server_ips: vec![],
        authorizations,
        labels: labels
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Whom an authorization admits.
pub enum Who<'a> {
    Unauthenticated,
    /// mTLS, any client identity or none.
    TlsUnauthenticated,
    /// mTLS with one of these identities or suffixes (`["ns", "serviceaccount", ...]`).
    Mesh(&'a [&'a str], &'a [&'a [&'a str]]),
}

/// An authorization `name` (an AuthorizationPolicy, or a default when
/// `default`) from `networks` (`(net, excepts)` as CIDRs).
pub fn authz(name: &str, default: bool, networks: &[(&str, &[&str])], who: Who) -> Authz {
    let net = |cidr: &str| -> linkerd2_proxy_api::net::IpNetwork {
        let (ip, len) = cidr.split_once('/').expect("a CIDR");
        let ip: std::net::IpAddr = ip.parse().expect("a CIDR's address");
        (ip, len.parse::<u8>().expect("a CIDR's length")).into()
    };
    let networks = networks
        .iter()
        .map(|(cidr, except)| Network {
            net: Some(net(cidr)),
            except: except.iter().map(|e| net(e)).collect(),
        })
        .collect();
    let permit = match who {
        Who::Unauthenticated => authn::Permit::Unauthenticated(authn::PermitUnauthenticated {}),
        Who::TlsUnauthenticated => authn::Permit::MeshTls(authn::PermitMeshTls {
            clients: Some(authn::permit_mesh_tls::Clients::Unauthenticated(
                authn::PermitUnauthenticated {},
            )),
        }),
        Who::Mesh(names, suffixes) => {
            let ids = authn::permit_mesh_tls::PermitClientIdentities {
                identities: names
                    .iter()
                    .map(|name| linkerd2_proxy_api::inbound::Identity {
                        name: name.to_string(),
                    })
                    .collect(),
                suffixes: suffixes
                    .iter()
                    .map(|parts| linkerd2_proxy_api::inbound::IdentitySuffix {
                        parts: parts.iter().map(|p| p.to_string()).collect(),
                    })
                    .collect(),
            };
            authn::Permit::MeshTls(authn::PermitMeshTls {
                clients: Some(authn::permit_mesh_tls::Clients::Identities(ids)),
            })
        }
    };
    Authz {
        networks,
        authentication: Some(Authn {
            permit: Some(permit),
        }),
        labels: Default::default(),
        metadata: Some(meta(name, default, "authorizationpolicy")),
    }
}

fn meta(name: &str, default: bool, kind: &str) -> Metadata {
    let kind = match default {
        true => metadata::Kind::Default(name.to_string()),
        false => metadata::Kind::Resource(linkerd2_proxy_api::meta::Resource {
            group: "policy.linkerd.io".into(),
            kind: kind.into(),
            name: name.into(),
            ..Default::default()
        }),
    };
    Metadata { kind: Some(kind) }
}

/// A match on `path` (a prefix when it ends in `*`), `method` and
/// `headers` (name, exact value).
pub fn matching(path: &str, method: Option<&str>, headers: &[(&str, &str)]) -> HttpRouteMatch {
    let kind = match path.strip_suffix('*') {
        Some(prefix) => path_match::Kind::Prefix(prefix.to_string()),
        None => path_match::Kind::Exact(path.to_string()),
    };
    HttpRouteMatch {
        path: Some(PathMatch { kind: Some(kind) }),
        headers: headers
            .iter()
            .map(|(name, value)| HeaderMatch {
                name: name.to_string(),
                value: Some(linkerd2_proxy_api::http_route::header_match::Value::Exact(
                    value.as_bytes().to_vec(),
                )),
            })
            .collect(),
        query_params: vec![],
        method: method.map(|m| HttpMethod {
            r#type: Some(match m {
                "GET" => http_method::Type::Registered(http_method::Registered::Get.into()),
                "POST" => http_method::Type::Registered(http_method::Registered::Post.into()),
                other => http_method::Type::Unregistered(other.to_string()),
            }),
        }),
    }
}

/// An HTTPRoute `name` (a default when `default`) with its matches, all
/// in one rule, and its own authorizations.
pub fn route(
    name: &str,
    default: bool,
    matches: Vec<HttpRouteMatch>,
    authorizations: Vec<Authz>,
) -> HttpRoute {
    HttpRoute {
        metadata: Some(meta(name, default, "httproute")),
        hosts: vec![],
        authorizations,
        rules: vec![linkerd2_proxy_api::inbound::http_route::Rule {
            matches,
            filters: vec![],
        }],
    }
}

/// A GRPCRoute `name` matching calls of `service` and `method` (empty:
/// any), with its own authorizations.
pub fn grpc_route(
    name: &str,
    service: &str,
    method: &str,
    authorizations: Vec<Authz>,
) -> GrpcRoute {
    use linkerd2_proxy_api::grpc_route::{GrpcRouteMatch, GrpcRpcMatch};
    let rpc = GrpcRpcMatch {
        service: service.into(),
        method: method.into(),
    };
    GrpcRoute {
        metadata: Some(meta(name, false, "GRPCRoute")),
        hosts: vec![],
        authorizations,
        rules: vec![linkerd2_proxy_api::inbound::grpc_route::Rule {
            matches: vec![GrpcRouteMatch {
                rpc: Some(rpc),
                headers: vec![],
            }],
            filters: vec![],
        }],
    }
}

/// The routes the controller gives a port without HTTPRoutes: `default`
/// (every request) and `probe` (`GET` on `probe_paths`, unauthenticated
/// from anywhere, Linkerd's default probe networks).
pub fn default_routes(probe_paths: &[&str]) -> Vec<HttpRoute> {
    let every = route("default", true, vec![HttpRouteMatch::default()], vec![]);
    let probes = probe_paths
        .iter()
        .map(|path| matching(path, Some("GET"), &[]))
        .collect();
    let anywhere: &[(&str, &[&str])] = &[("0.0.0.0/0", &[]), ("::/0", &[])];
    let probe_authz = authz("probe", true, anywhere, Who::Unauthenticated);
    vec![every, route("probe", true, probes, vec![probe_authz])]
}
