use linkerd2_proxy_api::outbound::{http_route, HttpRoute};

use super::*;

/// The mock control plane's messages (`tests/support`), shared.
#[allow(dead_code)]
#[path = "../../tests/support/mock_discovery/messages.rs"]
mod messages;

use messages::{balancer, endpoint, Kind};

fn forward(addr: &str) -> api::Backend {
    messages::forward(endpoint(addr.parse().unwrap(), None, None, false))
}

/// One route split by weight across `weighted` backends.
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
        opaque: None,
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
    let policy = policy(messages::policy(Kind::Opaque, forward("10.0.0.1:5432"))).unwrap();
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
        let refused = policy(messages::policy(Kind::Opaque, balancer(&path)));
        assert_eq!(refused, Err(PolicyError::BadPath), "{path:?}");
    }
    let mut zero_port = endpoint("10.0.0.1:1".parse().unwrap(), None, None, false);
    zero_port.addr.as_mut().unwrap().port = 0;
    let bad = messages::policy(Kind::Opaque, messages::forward(zero_port));
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
