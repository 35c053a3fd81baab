use linkerd2_proxy_api::destination::WeightedAddr;
use linkerd2_proxy_api::outbound::backend::{balance_p2c, endpoint_discovery, BalanceP2c};
use linkerd2_proxy_api::outbound::{http_route, opaque_route, HttpRoute, OpaqueRoute};

use super::*;

fn balancer(path: &str) -> api::Backend {
    let discovery = backend::EndpointDiscovery {
        kind: Some(endpoint_discovery::Kind::Dst(
            endpoint_discovery::DestinationGet {
                path: path.to_string(),
            },
        )),
    };
    api::Backend {
        metadata: None,
        queue: None,
        kind: Some(backend::Kind::Balancer(BalanceP2c {
            discovery: Some(discovery),
            load: Some(balance_p2c::Load::PeakEwma(Default::default())),
        })),
    }
}

fn forward(addr: &str) -> api::Backend {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    api::Backend {
        metadata: None,
        queue: None,
        kind: Some(backend::Kind::Forward(WeightedAddr {
            addr: Some(addr.into()),
            ..Default::default()
        })),
    }
}

fn http_routes(weighted: Vec<(u32, api::Backend)>) -> Vec<HttpRoute> {
    use http_route::distribution::{Kind, RandomAvailable};
    let backends = weighted
        .into_iter()
        .map(|(weight, backend)| http_route::WeightedRouteBackend {
            weight,
            backend: Some(http_route::RouteBackend {
                backend: Some(backend),
                ..Default::default()
            }),
        })
        .collect();
    let rule = http_route::Rule {
        backends: Some(http_route::Distribution {
            kind: Some(Kind::RandomAvailable(RandomAvailable { backends })),
        }),
        ..Default::default()
    };
    vec![HttpRoute {
        rules: vec![rule],
        ..Default::default()
    }]
}

fn opaque_routes(backend: api::Backend) -> Vec<OpaqueRoute> {
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

fn answer(kind: proxy_protocol::Kind) -> api::OutboundPolicy {
    api::OutboundPolicy {
        protocol: Some(api::ProxyProtocol { kind: Some(kind) }),
        metadata: None,
    }
}

#[test]
fn detect_takes_its_timeout_and_the_first_http_routes_heaviest_backend() {
    let detect = proxy_protocol::Detect {
        timeout: Some(prost_types::Duration {
            seconds: 2,
            nanos: 500_000_000,
        }),
        opaque: Some(proxy_protocol::Opaque {
            routes: opaque_routes(forward("10.9.9.9:80")),
        }),
        http1: Some(proxy_protocol::Http1 {
            routes: http_routes(vec![
                (1, forward("10.0.0.1:80")),
                (9, balancer("web.ns:80")),
            ]),
            failure_accrual: None,
        }),
        http2: None,
    };
    let policy = policy(answer(proxy_protocol::Kind::Detect(detect))).unwrap();
    assert_eq!(policy.protocol, Protocol::Detect);
    assert_eq!(policy.detect_timeout, Some(Duration::from_millis(2_500)));
    let path = "web.ns:80".to_string();
    assert_eq!(policy.backend, Backend::Balance { path });
}

#[test]
fn each_protocol_kind_maps_and_grpc_is_http2() {
    let opaque = proxy_protocol::Opaque {
        routes: opaque_routes(forward("10.0.0.1:5432")),
    };
    let policy = policy(answer(proxy_protocol::Kind::Opaque(opaque))).unwrap();
    assert_eq!(policy.protocol, Protocol::Opaque);
    let Backend::Forward(endpoint) = policy.backend else {
        panic!("a forward backend: {:?}", policy.backend)
    };
    assert_eq!(endpoint.addr.port(), 5432);
    let http2 = proxy_protocol::Http2 {
        routes: http_routes(vec![(1, balancer("api.ns:8080"))]),
        failure_accrual: None,
    };
    let policy = super::policy(answer(proxy_protocol::Kind::Http2(http2))).unwrap();
    assert_eq!(policy.protocol, Protocol::Http2);
    let grpc = proxy_protocol::Grpc::default();
    let policy = super::policy(answer(proxy_protocol::Kind::Grpc(grpc))).unwrap();
    assert_eq!(policy.protocol, Protocol::Http2);
    assert_eq!(policy.backend, Backend::Unavailable, "no route: no backend");
    let http1 = proxy_protocol::Http1::default();
    let policy = super::policy(answer(proxy_protocol::Kind::Http1(http1))).unwrap();
    assert_eq!(policy.protocol, Protocol::Http1);
}

#[test]
fn hostile_policies_are_refused_with_a_reason() {
    let none = api::OutboundPolicy::default();
    assert_eq!(policy(none), Err(PolicyError::NoProtocol));
    for path in [
        String::new(),
        "a".repeat(MAX_PATH_BYTES + 1),
        "web\u{0}.ns:80".into(),
    ] {
        let opaque = proxy_protocol::Opaque {
            routes: opaque_routes(balancer(&path)),
        };
        let refused = policy(answer(proxy_protocol::Kind::Opaque(opaque)));
        assert_eq!(refused, Err(PolicyError::BadPath), "{path:?}");
    }
    let opaque = proxy_protocol::Opaque {
        routes: opaque_routes(forward("10.0.0.1:1")),
    };
    let mut bad = answer(proxy_protocol::Kind::Opaque(opaque));
    if let Some(proxy_protocol::Kind::Opaque(o)) =
        bad.protocol.as_mut().and_then(|p| p.kind.as_mut())
    {
        let rule = &mut o.routes[0].rules[0];
        let Some(opaque_route::distribution::Kind::FirstAvailable(first)) =
            rule.backends.as_mut().and_then(|d| d.kind.as_mut())
        else {
            unreachable!()
        };
        let Some(backend::Kind::Forward(weighted)) = first.backends[0]
            .backend
            .as_mut()
            .and_then(|b| b.kind.as_mut())
        else {
            unreachable!()
        };
        weighted.addr.as_mut().unwrap().port = 0;
    }
    assert!(matches!(policy(bad), Err(PolicyError::Forward(_))));
    // Nonsense durations are no timeout at all.
    for (seconds, nanos) in [(-1, 0), (0, -5), (0, 1_000_000_000), (i64::MAX, 0)] {
        let detect = proxy_protocol::Detect {
            timeout: Some(prost_types::Duration { seconds, nanos }),
            ..Default::default()
        };
        let policy = policy(answer(proxy_protocol::Kind::Detect(detect))).unwrap();
        assert_eq!(policy.detect_timeout, None, "{seconds}s {nanos}ns");
    }
}
