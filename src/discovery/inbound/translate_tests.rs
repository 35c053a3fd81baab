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
