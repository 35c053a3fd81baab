use super::*;
use crate::discovery::inbound::translate::default_policy;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn cidr(text: &str) -> Cidr {
    let (addr, prefix) = text.split_once('/').unwrap();
    Cidr {
        addr: addr.parse().unwrap(),
        prefix: prefix.parse().unwrap(),
    }
}

fn authz(networks: Vec<Network>, authentication: Authentication) -> Authorization {
    Authorization {
        networks,
        authentication,
        labels: "authz_name=\"t\"".into(),
        audit: false,
    }
}

#[test]
fn networks_with_exceptions_and_tls_states_admit_as_linkerd_does() {
    let net = Network {
        net: cidr("10.0.0.0/8"),
        except: vec![cidr("10.1.0.0/16")],
    };
    let open = authz(vec![net.clone()], Authentication::Unauthenticated);
    assert!(open.admits(ip("10.2.0.1"), ClientTls::None));
    assert!(
        !open.admits(ip("10.1.0.1"), ClientTls::None),
        "an exception"
    );
    assert!(!open.admits(ip("192.168.0.1"), ClientTls::None));
    let tls = authz(vec![net.clone()], Authentication::TlsUnauthenticated);
    assert!(!tls.admits(ip("10.2.0.1"), ClientTls::None));
    assert!(tls.admits(ip("10.2.0.1"), ClientTls::Established(None)));
    let mesh = authz(
        vec![net],
        Authentication::TlsAuthenticated {
            identities: vec!["web.ns.serviceaccount.identity.linkerd.cluster.local".into()],
            suffixes: vec![".prod.serviceaccount.identity.linkerd.cluster.local".into()],
        },
    );
    let at = ip("10.2.0.1");
    assert!(mesh.admits(
        at,
        ClientTls::Established(Some("web.ns.serviceaccount.identity.linkerd.cluster.local"))
    ));
    assert!(mesh.admits(
        at,
        ClientTls::Established(Some(
            "api.prod.serviceaccount.identity.linkerd.cluster.local"
        ))
    ));
    assert!(!mesh.admits(
        at,
        ClientTls::Established(Some(
            "api.dev.serviceaccount.identity.linkerd.cluster.local"
        ))
    ));
    assert!(!mesh.admits(at, ClientTls::Established(None)));
    assert!(!mesh.admits(at, ClientTls::None));
}

#[test]
fn defaults_admit_whom_their_names_say_and_localhost_always() {
    let timeout = Duration::from_secs(1);
    let deny = default_policy("deny", &[], 8080, timeout).unwrap();
    let remote = ip("10.0.0.1");
    assert_eq!(permit(&deny.authorizations, remote, ClientTls::None), None);
    assert!(permit(&deny.authorizations, ip("127.0.0.1"), ClientTls::None).is_some());
    assert!(permit(&deny.authorizations, ip("::1"), ClientTls::None).is_some());
    let authn = default_policy("all-authenticated", &[], 8080, timeout).unwrap();
    assert_eq!(permit(&authn.authorizations, remote, ClientTls::None), None);
    assert_eq!(
        permit(
            &authn.authorizations,
            remote,
            ClientTls::Established(Some("a.b"))
        ),
        Some(0)
    );
    let cluster = [cidr("10.0.0.0/8")];
    let in_cluster = default_policy("cluster-unauthenticated", &cluster, 8080, timeout).unwrap();
    assert_eq!(
        permit(&in_cluster.authorizations, remote, ClientTls::None),
        Some(0)
    );
    assert_eq!(
        permit(
            &in_cluster.authorizations,
            ip("192.168.1.1"),
            ClientTls::None
        ),
        None
    );
    let audit = default_policy("audit", &[], 8080, timeout).unwrap();
    assert!(audit.authorizations[0].audit);
    assert!(default_policy("nobody", &[], 8080, timeout).is_none());
    assert_eq!(
        &*deny.routes[0].labels,
        "srv_group=\"\",srv_kind=\"default\",srv_name=\"deny\",srv_port=\"8080\",route_group=\"\",route_kind=\"default\",route_name=\"default\""
    );
}

#[test]
fn the_most_specific_matching_route_is_taken() {
    let regex = |re: &str| Pattern::new(re).unwrap();
    let path = |p: PathMatch| RouteMatch {
        path: Some(p),
        ..RouteMatch::default()
    };
    let policy = with_routes(vec![
        ("api", vec![path(PathMatch::Prefix("/api".into()))]),
        ("exact", vec![path(PathMatch::Exact("/api/health".into()))]),
        (
            "get-ready",
            vec![RouteMatch {
                path: Some(PathMatch::Exact("/ready".into())),
                method: Some("GET".into()),
                headers: vec![("x-probe".into(), ValueMatch::Exact(b"1".to_vec()))],
                ..RouteMatch::default()
            }],
        ),
        // A regular expression's match is the whole path, longer than
        // the prefix of `canary`.
        (
            "users-by-id",
            vec![path(PathMatch::Regex(regex("/v2/users/[0-9]+")))],
        ),
        (
            "canary",
            vec![RouteMatch {
                path: Some(PathMatch::Prefix("/v2".into())),
                headers: vec![("x-track".into(), ValueMatch::Regex(regex("canary-[a-z]+")))],
                query_params: vec![("debug".into(), ValueMatch::Exact(b"on".to_vec()))],
                ..RouteMatch::default()
            }],
        ),
    ]);
    let none = |_: &str| None;
    let probe = |name: &str| (name == "x-probe").then_some(&b"1"[..]);
    let canary = |name: &str| (name == "x-track").then_some(&b"canary-blue"[..]);
    let not_whole = |name: &str| (name == "x-track").then_some(&b"canary-blue!"[..]);
    let find = |method, target: &str, header| route_of(&policy, method, target, header);
    assert_eq!(find("GET", "/api/x", &none).as_deref(), Some("api"));
    assert_eq!(find("GET", "/api", &none).as_deref(), Some("api"));
    assert_eq!(find("GET", "/apix", &none), None, "whole segments");
    assert_eq!(find("POST", "/api/health", &none).as_deref(), Some("exact"));
    assert_eq!(find("GET", "/ready", &probe).as_deref(), Some("get-ready"));
    assert_eq!(find("GET", "/ready", &none), None, "its header is missing");
    assert_eq!(find("POST", "/ready", &probe), None, "its method differs");
    assert_eq!(
        find("GET", "/v2/users/42", &none).as_deref(),
        Some("users-by-id")
    );
    assert_eq!(find("GET", "/v2/users/42x", &none), None, "the whole path");
    let canary_target = "/v2/items?x=1&debug=on";
    assert_eq!(
        find("GET", canary_target, &canary).as_deref(),
        Some("canary")
    );
    assert_eq!(
        find("GET", canary_target, &not_whole),
        None,
        "the whole value"
    );
    assert_eq!(find("GET", "/v2/items?debug=off", &canary), None);
    assert_eq!(
        find("GET", "/v2/items?debug=%6Fn", &canary).as_deref(),
        Some("canary"),
        "decoded"
    );
}

#[test]
fn grpc_routes_match_posts_by_service_then_method() {
    let rpc = |service: Option<&str>, method: Option<&str>| RouteMatch {
        path: Some(PathMatch::Rpc {
            service: service.map(str::to_string),
            method: method.map(str::to_string),
        }),
        method: Some("POST".into()),
        ..RouteMatch::default()
    };
    let policy = with_routes(vec![
        ("any", vec![rpc(None, None)]),
        ("get-anywhere", vec![rpc(None, Some("GetFeature"))]),
        (
            "route-guide",
            vec![rpc(Some("routeguide.RouteGuide"), None)],
        ),
        (
            "get-feature",
            vec![rpc(Some("routeguide.RouteGuide"), Some("GetFeature"))],
        ),
    ]);
    let none = |_: &str| None;
    let find = |method, target: &str| route_of(&policy, method, target, &none);
    let get = "/routeguide.RouteGuide/GetFeature";
    assert_eq!(find("POST", get).as_deref(), Some("get-feature"));
    // The service counts before the method.
    let list = "/routeguide.RouteGuide/ListFeatures";
    assert_eq!(find("POST", list).as_deref(), Some("route-guide"));
    assert_eq!(
        find("POST", "/other.Svc/GetFeature").as_deref(),
        Some("get-anywhere")
    );
    assert_eq!(find("POST", "/other.Svc/Other").as_deref(), Some("any"));
    assert_eq!(find("GET", get), None, "gRPC is POST");
    assert_eq!(find("POST", "/no-method"), None);
}

fn with_routes(routes: Vec<(&str, Vec<RouteMatch>)>) -> ServerPolicy {
    let routes = routes.into_iter().map(|(name, matches)| HttpRoute {
        matches,
        authorizations: vec![],
        labels: name.into(),
        allow_labels: vec![],
    });
    ServerPolicy {
        protocol: InboundProtocol::Http1,
        name: "s".into(),
        labels: "".into(),
        authorizations: vec![],
        allow_labels: vec![],
        routes: routes.collect(),
    }
}

/// The name of the route `method` to `target` takes.
fn route_of(
    policy: &ServerPolicy,
    method: &str,
    target: &str,
    header: &dyn Fn(&str) -> Option<&'static [u8]>,
) -> Option<String> {
    let header = |name: &str| header(name);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let parts = RequestParts {
        method,
        path,
        query,
        header: &header,
    };
    policy.route(&parts).map(|r| r.labels.to_string())
}
