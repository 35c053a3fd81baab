//! The control plane's messages a test hands the mock (and the unit tests
//! of `src/discovery/`, which include this file): endpoints with the
//! metadata Linkerd's destination controller sends, and outbound policies
//! of the shapes its policy controller makes (one route, one backend).

use std::collections::HashMap;
use std::net::SocketAddr;

use linkerd2_proxy_api::destination::{
    protocol_hint, tls_identity, DestinationProfile, ProtocolHint, TlsIdentity, WeightedAddr,
};
use linkerd2_proxy_api::outbound::backend::{balance_p2c, endpoint_discovery, BalanceP2c};
use linkerd2_proxy_api::outbound::{
    backend, http_route, opaque_route, proxy_protocol, Backend, HttpRoute, OpaqueRoute,
    OutboundPolicy, ProxyProtocol,
};

/// An endpoint: `identity` for mTLS, `tagged_port` for Linkerd's opaque
/// transport (its proxy's inbound port), `h2` for the HTTP/2 upgrade hint.
pub fn endpoint(
    addr: SocketAddr,
    identity: Option<&str>,
    tagged_port: Option<u16>,
    h2: bool,
) -> WeightedAddr {
    let tls_identity = identity.map(|name| TlsIdentity {
        strategy: Some(tls_identity::Strategy::DnsLikeIdentity(
            tls_identity::DnsLikeIdentity {
                name: name.to_string(),
            },
        )),
        server_name: None,
    });
    let protocol_hint = (tagged_port.is_some() || h2).then(|| ProtocolHint {
        protocol: h2.then_some(protocol_hint::Protocol::H2(protocol_hint::H2 {})),
        opaque_transport: tagged_port.map(|port| protocol_hint::OpaqueTransport {
            inbound_port: u32::from(port),
        }),
    });
    let metric_labels: HashMap<String, String> =
        [("pod".to_string(), format!("pod-{}", addr.port()))].into();
    WeightedAddr {
        addr: Some(addr.into()),
        weight: 10_000,
        metric_labels,
        tls_identity,
        protocol_hint,
        ..Default::default()
    }
}

/// The protocol of a policy, as the policy controller names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Detect,
    Opaque,
    Http1,
    Http2,
}

/// A balancer over what `Destination.Get` names for `path`.
pub fn balancer(path: &str) -> Backend {
    let discovery = backend::EndpointDiscovery {
        kind: Some(endpoint_discovery::Kind::Dst(
            endpoint_discovery::DestinationGet {
                path: path.to_string(),
            },
        )),
    };
    Backend {
        metadata: None,
        queue: None,
        kind: Some(backend::Kind::Balancer(BalanceP2c {
            discovery: Some(discovery),
            load: Some(balance_p2c::Load::PeakEwma(Default::default())),
        })),
    }
}

/// One endpoint, forwarded to.
pub fn forward(endpoint: WeightedAddr) -> Backend {
    Backend {
        metadata: None,
        queue: None,
        kind: Some(backend::Kind::Forward(endpoint)),
    }
}

/// A policy of `kind` whose one route goes to `backend`.
pub fn policy(kind: Kind, backend: Backend) -> OutboundPolicy {
    let http = || http_routes(backend.clone());
    let kind = match kind {
        Kind::Detect => proxy_protocol::Kind::Detect(proxy_protocol::Detect {
            timeout: Some(prost_types::Duration {
                seconds: 10,
                nanos: 0,
            }),
            opaque: Some(proxy_protocol::Opaque {
                routes: opaque_routes(backend.clone()),
            }),
            http1: Some(proxy_protocol::Http1 {
                routes: http(),
                failure_accrual: None,
            }),
            http2: Some(proxy_protocol::Http2 {
                routes: http(),
                failure_accrual: None,
            }),
        }),
        Kind::Opaque => proxy_protocol::Kind::Opaque(proxy_protocol::Opaque {
            routes: opaque_routes(backend),
        }),
        Kind::Http1 => proxy_protocol::Kind::Http1(proxy_protocol::Http1 {
            routes: http(),
            failure_accrual: None,
        }),
        Kind::Http2 => proxy_protocol::Kind::Http2(proxy_protocol::Http2 {
            routes: http(),
            failure_accrual: None,
        }),
    };
    OutboundPolicy {
        protocol: Some(ProxyProtocol { kind: Some(kind) }),
        metadata: None,
    }
}

/// A profile whose endpoint is `endpoint`.
pub fn profile(endpoint: Option<WeightedAddr>, opaque: bool) -> DestinationProfile {
    DestinationProfile {
        endpoint,
        opaque_protocol: opaque,
        ..Default::default()
    }
}

fn http_routes(backend: Backend) -> Vec<HttpRoute> {
    use http_route::distribution::{FirstAvailable, Kind};
    let rule = http_route::Rule {
        backends: Some(http_route::Distribution {
            kind: Some(Kind::FirstAvailable(FirstAvailable {
                backends: vec![http_route::RouteBackend {
                    backend: Some(backend),
                    ..Default::default()
                }],
            })),
        }),
        ..Default::default()
    };
    vec![HttpRoute {
        rules: vec![rule],
        ..Default::default()
    }]
}

fn opaque_routes(backend: Backend) -> Vec<OpaqueRoute> {
    use opaque_route::distribution::{FirstAvailable, Kind};
    let rule = opaque_route::Rule {
        backends: Some(opaque_route::Distribution {
            kind: Some(Kind::FirstAvailable(FirstAvailable {
                backends: vec![opaque_route::RouteBackend {
                    backend: Some(backend),
                    ..Default::default()
                }],
            })),
        }),
        ..Default::default()
    };
    vec![OpaqueRoute {
        rules: vec![rule],
        ..Default::default()
    }]
}
