use super::*;
use linkerd2_proxy_api::inbound::{
    authn, proxy_protocol, Authn, Authz, Network as ApiNetwork, ProxyProtocol,
};

fn unauthenticated(networks: usize) -> Authz {
    let net: linkerd2_proxy_api::net::IpNetwork =
        (std::net::IpAddr::from([10, 0, 0, 0]), 8u8).into();
    Authz {
        networks: vec![
            ApiNetwork {
                net: Some(net),
                except: vec![],
            };
            networks
        ],
        authentication: Some(Authn {
            permit: Some(authn::Permit::Unauthenticated(
                authn::PermitUnauthenticated {},
            )),
        }),
        labels: Default::default(),
        metadata: None,
    }
}

fn opaque(authorizations: Vec<Authz>) -> api::Server {
    api::Server {
        protocol: Some(ProxyProtocol {
            kind: Some(proxy_protocol::Kind::Opaque(proxy_protocol::Opaque {})),
        }),
        server_ips: vec![],
        authorizations,
        labels: [
            ("name", "db"),
            ("kind", "server"),
            ("group", "policy.linkerd.io"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    }
}

#[test]
fn a_server_gets_localhost_and_a_default_route_with_its_labels() {
    let policy = server(opaque(vec![unauthenticated(1)]), 5432).unwrap();
    assert_eq!(policy.protocol, InboundProtocol::Opaque);
    assert_eq!(&*policy.name, "db");
    assert_eq!(policy.authorizations.len(), 2, "its own, then localhost");
    assert!(policy.authorizations[1]
        .labels
        .contains("authz_name=\"localhost\""));
    assert_eq!(
        &*policy.labels,
        "srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"db\",srv_port=\"5432\""
    );
    assert_eq!(policy.routes.len(), 1);
    assert_eq!(policy.routes[0].authorizations, policy.authorizations);
}

#[test]
fn remote_values_are_bounded() {
    let many = vec![unauthenticated(1); MAX_AUTHORIZATIONS + 1];
    assert_eq!(
        server(opaque(many), 1).unwrap_err(),
        InvalidServer::TooMany(MAX_AUTHORIZATIONS, "authorizations")
    );
    let wide = unauthenticated(MAX_ITEMS + 1);
    assert!(server(opaque(vec![wide]), 1).is_err());
    let mut unnamed = opaque(vec![]);
    unnamed.protocol = None;
    assert_eq!(server(unnamed, 1).unwrap_err(), InvalidServer::NoProtocol);
    let mut quoted = opaque(vec![]);
    quoted.labels.insert("name".into(), "a\"b\nc".into());
    let policy = server(quoted, 1).unwrap();
    assert!(
        policy.labels.contains("srv_name=\"a\\\"bc\""),
        "{}",
        policy.labels
    );
}

fn with_protocol(kind: proxy_protocol::Kind) -> api::Server {
    let mut server = opaque(vec![unauthenticated(1)]);
    server.protocol = Some(ProxyProtocol { kind: Some(kind) });
    server
}

#[test]
fn grpc_routes_match_posts_by_rpc_with_their_own_authorizations_first() {
    use linkerd2_proxy_api::grpc_route::{GrpcRouteMatch, GrpcRpcMatch};
    let rule = |rpc: Option<GrpcRpcMatch>| api::grpc_route::Rule {
        matches: vec![GrpcRouteMatch {
            rpc,
            headers: vec![],
        }],
        filters: vec![],
    };
    let route = |rules| api::GrpcRoute {
        metadata: None,
        hosts: vec![],
        authorizations: vec![unauthenticated(2)],
        rules,
    };
    let grpc = |rules| {
        with_protocol(proxy_protocol::Kind::Grpc(proxy_protocol::Grpc {
            routes: vec![route(rules)],
        }))
    };
    let service = GrpcRpcMatch {
        service: "routeguide.RouteGuide".into(),
        method: String::new(),
    };
    let policy = server(grpc(vec![rule(Some(service))]), 50051).unwrap();
    assert_eq!(policy.protocol, InboundProtocol::Grpc);
    let route = &policy.routes[0];
    let expected = RouteMatch {
        path: Some(PathMatch::Rpc {
            service: Some("routeguide.RouteGuide".into()),
            method: None,
        }),
        method: Some("POST".into()),
        ..RouteMatch::default()
    };
    assert_eq!(route.matches, vec![expected]);
    assert_eq!(
        route.authorizations.len(),
        3,
        "its own, the server's, localhost"
    );
    assert_eq!(route.authorizations[0].networks.len(), 2, "its own first");
    assert!(
        route.labels.contains("route_kind=\"grpcroute\""),
        "{}",
        route.labels
    );
    assert_eq!(
        server(grpc(vec![rule(None)]), 50051).unwrap_err(),
        InvalidServer::NoRpc
    );
}

#[test]
fn regular_expressions_are_compiled_bounded_and_refused_when_invalid() {
    use linkerd2_proxy_api::http_route::{path_match, HttpRouteMatch, PathMatch as ApiPath};
    let http = |regex: &str| {
        let route = api::HttpRoute {
            metadata: None,
            hosts: vec![],
            authorizations: vec![],
            rules: vec![api::http_route::Rule {
                matches: vec![HttpRouteMatch {
                    path: Some(ApiPath {
                        kind: Some(path_match::Kind::Regex(regex.into())),
                    }),
                    ..HttpRouteMatch::default()
                }],
                filters: vec![],
            }],
        };
        with_protocol(proxy_protocol::Kind::Http1(proxy_protocol::Http1 {
            routes: vec![route],
            local_rate_limit: None,
        }))
    };
    let policy = server(http("/users/[0-9]+"), 80).unwrap();
    let Some(PathMatch::Regex(pattern)) = &policy.routes[0].matches[0].path else {
        panic!("{:?}", policy.routes[0].matches);
    };
    assert!(pattern.matches_whole(b"/users/42"));
    assert!(!pattern.matches_whole(b"/users/42/x"));
    let ascii = server(http(r"/\w+/\d+"), 80).unwrap();
    let Some(PathMatch::Regex(ascii)) = &ascii.routes[0].matches[0].path else {
        panic!("{:?}", ascii.routes[0].matches);
    };
    assert!(ascii.matches_whole(b"/users/42"), "ASCII classes compile");
    assert_eq!(
        server(http("(unclosed"), 80).unwrap_err(),
        InvalidServer::BadRegex
    );
    // Short, but far past the compiled size allowed.
    let huge = "((a{100}){100}){100}";
    assert_eq!(server(http(huge), 80).unwrap_err(), InvalidServer::BadRegex);
    let long = "a".repeat(MAX_VALUE_BYTES + 1);
    assert!(server(http(&long), 80).is_err());
}

#[test]
fn an_unusable_server_refuses_everyone_localhost_too_as_linkerds_invalid_policy() {
    let policy = invalid_policy(8080, Duration::from_secs(10));
    let localhost = std::net::IpAddr::from([127, 0, 0, 1]);
    assert_eq!(
        permit(&policy.authorizations, localhost, ClientTls::None),
        None
    );
    let route = &policy.routes[0];
    assert_eq!(
        permit(&route.authorizations, localhost, ClientTls::None),
        None
    );
    assert!(
        route.labels.contains("srv_name=\"invalid\""),
        "{}",
        route.labels
    );
    assert!(
        route.labels.contains("route_name=\"invalid\""),
        "{}",
        route.labels
    );
}
