//! Inbound policy from a mock of Linkerd's policy controller
//! (`support::mock_discovery::inbound`): ringside started with only
//! Linkerd's environment judges its inbound connections and requests by
//! the `Server` of each port (the watches alone:
//! `tests/linkerd_policy_watches.rs`).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use support::control_plane::{mesh_connect, ControlPlane, IdentityService, LinkerdPod};
use support::eventually;
use support::mock_discovery::inbound::{
    authz, default_routes, grpc_route, matching, route, server_of, Proto, Who,
};
use support::mock_discovery::MockControlPlane;
use support::pods::{client_config_builder, mtls_client};
use support::{echo_and_keep_open, echo_over, HttpClient, Origin, Pod, Ringside};
use support::{H2Origin, HttpOrigin};

const WORKLOAD: &str = r#"{"ns":"server-ns","pod":"server-0"}"#;

const POD: &str = "web.server-ns.serviceaccount.identity.linkerd.cluster.local";
const CLIENT: &str = "api.client-ns.serviceaccount.identity.linkerd.cluster.local";
const RINGSIDE_GID: u32 = 4143;
const POD_NETWORK: (&str, &[&str]) = ("198.18.0.0/24", &[]);

/// `curl` from this pod to `url` with `args`: the status code, and the
/// response headers.
fn curl(url: &str, args: &[&str]) -> (u16, String) {
    curl_command(std::process::Command::new("curl"), url, args)
}

/// `curl` run under ringside's group, which the pod's redirect exempts:
/// a client reaching ringside's own admin port on the pod's address, as
/// kubelet does.
fn curl_admin(url: &str) -> u16 {
    let mut command = std::process::Command::new("curl");
    std::os::unix::process::CommandExt::gid(&mut command, RINGSIDE_GID);
    curl_command(command, url, &[]).0
}

fn curl_command(mut command: std::process::Command, url: &str, args: &[&str]) -> (u16, String) {
    let output = command
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let status = text.get(text.len().saturating_sub(3)..).unwrap_or("");
    (status.parse().unwrap_or(0), text)
}

/// Whether a read saw the connection closed or reset (not a timeout).
fn closed(read: std::io::Result<usize>) -> bool {
    match read {
        Ok(n) => n == 0,
        Err(err) => !matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// ringside as Linkerd's wrapper starts it, its policy service `mock`,
/// its inbound listener taking this pod's connections to 198.18.0.0/24.
fn policed_ringside(
    pod: &Pod,
    test: &str,
    mock: &MockControlPlane,
    plane: &ControlPlane,
    default: &str,
) -> Option<Ringside> {
    let linkerd = LinkerdPod::new(POD, plane)
        .env("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", "0.0.0.0:0")
        .env("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "0.0.0.0:0")
        .discovery(mock.addr)
        .env("LINKERD2_PROXY_POLICY_WORKLOAD", WORKLOAD)
        .env("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", default)
        .gid(RINGSIDE_GID);
    let (proxy, _) = linkerd.start();
    proxy.wait_ready();
    pod.redirect(test, proxy.transparent[1].port(), RINGSIDE_GID)?;
    Some(proxy)
}

/// An HTTP/1 GET over TLS naming the pod's identity, as `CLIENT` (mTLS)
/// when `certificate`, else with no client certificate: the status.
fn tls_get(dir: &support::TempDir, target: SocketAddr, path: &str, certificate: bool) -> u16 {
    let tcp = TcpStream::connect(target).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = match certificate {
        true => mtls_client(dir, "client", POD, tcp),
        false => {
            let (roots, _, _) = support::identity::pem_identity(dir, "client");
            let config = client_config_builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from(POD).unwrap();
            let client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
            rustls::StreamOwned::new(client, tcp)
        }
    };
    let request = format!("GET {path} HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn servers_decide_protocol_authorizations_routes_and_refusals() {
    let test = "servers_decide_protocol_authorizations_routes_and_refusals";
    let Some(pod) = Pod::enter(test) else {
        return;
    };
    let plane = ControlPlane::start(IdentityService::new());
    let dir = plane.identity.issue_into(&[("client", CLIENT)]);
    let mock = MockControlPlane::start();
    let web = HttpOrigin::start_on("198.18.0.1:0", "web", Duration::ZERO);
    let api = HttpOrigin::start_on("198.18.0.1:0", "api", Duration::ZERO);
    let authn = HttpOrigin::start_on("198.18.0.1:0", "authn", Duration::ZERO);
    let audited = HttpOrigin::start_on("198.18.0.1:0", "audited", Duration::ZERO);
    let grpc = H2Origin::start_on("198.18.0.1:0");
    let db = Origin::echo_on("198.18.0.1:0");
    // A `deny` default, with the probe route the controller adds.
    let probes = Proto::Detect(default_routes(&["/ready"]));
    mock.set_server(
        web.addr.port(),
        Some(server_of("deny", true, probes, vec![])),
    );
    // An HTTPRoute with its own authorization; nothing else is routed.
    let from_pods = authz("pods", false, &[POD_NETWORK], Who::Unauthenticated);
    let routes = vec![route(
        "api",
        false,
        vec![matching("/api*", None, &[])],
        vec![from_pods],
    )];
    mock.set_server(
        api.addr.port(),
        Some(server_of("api", false, Proto::Http1(routes), vec![])),
    );
    // Meshed clients of the client namespace, by suffix.
    let suffix: &[&[&str]] = &[&[
        "client-ns",
        "serviceaccount",
        "identity",
        "linkerd",
        "cluster",
        "local",
    ]];
    let meshed = authz("meshed", false, &[POD_NETWORK], Who::Mesh(&[], suffix));
    let detect = Proto::Detect(vec![]);
    mock.set_server(
        authn.addr.port(),
        Some(server_of("authn", false, detect, vec![meshed])),
    );
    // Linkerd's `all-authenticated` (any identity), and one exact identity.
    let any_identity: &[&[&str]] = &[&[]];
    let everyone: &[(&str, &[&str])] = &[("0.0.0.0/0", &[])];
    let authenticated = authz(
        "all-authenticated",
        true,
        everyone,
        Who::Mesh(&[], any_identity),
    );
    let all_authn = HttpOrigin::start_on("198.18.0.1:0", "all-authn", Duration::ZERO);
    let servers = [(all_authn.addr.port(), "all-authenticated", authenticated)];
    let exact = authz("exact", false, &[POD_NETWORK], Who::Mesh(&[CLIENT], &[]));
    let other = authz(
        "other",
        false,
        &[POD_NETWORK],
        Who::Mesh(
            &["other.ns.serviceaccount.identity.linkerd.cluster.local"],
            &[],
        ),
    );
    let by_name = HttpOrigin::start_on("198.18.0.1:0", "by-name", Duration::ZERO);
    let not_ours = HttpOrigin::start_on("198.18.0.1:0", "not-ours", Duration::ZERO);
    // TLS, with or without a client identity.
    let tls = authz("tls", false, &[POD_NETWORK], Who::TlsUnauthenticated);
    let tls_only = HttpOrigin::start_on("198.18.0.1:0", "tls-only", Duration::ZERO);
    let servers = servers.into_iter().chain([
        (by_name.addr.port(), "exact", exact),
        (not_ours.addr.port(), "other", other),
        (tls_only.addr.port(), "tls", tls),
    ]);
    for (port, name, authorization) in servers {
        let default = name == "all-authenticated";
        let server = server_of(name, default, Proto::Detect(vec![]), vec![authorization]);
        mock.set_server(port, Some(server));
    }
    // gRPC routes: one method allowed from the pods, one nobody's, no
    // route for the rest.
    let from_pods = authz("pods", false, &[POD_NETWORK], Who::Unauthenticated);
    let calls = vec![
        grpc_route("allowed", "pkg.Service", "Allowed", vec![from_pods]),
        grpc_route("method", "pkg.Service", "Method", vec![]),
    ];
    mock.set_server(
        grpc.addr.port(),
        Some(server_of("grpc", false, Proto::Grpc(calls), vec![])),
    );
    // Opaque, from the pod network except this pod's own address.
    let except: &[(&str, &[&str])] = &[("198.18.0.0/24", &["198.18.0.1/32"])];
    let others = authz("others", false, except, Who::Unauthenticated);
    mock.set_server(
        db.addr.port(),
        Some(server_of("db", false, Proto::Opaque, vec![others])),
    );
    // `audited` has no Server: the environment's default (`audit`).
    let Some(proxy) = policed_ringside(&pod, test, &mock, &plane, "audit") else {
        return;
    };

    let url = |origin: &HttpOrigin, path: &str| format!("http://{}{path}", origin.addr);
    // deny + probe route: kubelet's GET passes, the rest is refused.
    assert_eq!(curl(&url(&web, "/ready"), &[]).0, 200);
    assert_eq!(curl(&url(&web, "/"), &[]).0, 403);
    assert_eq!(curl(&url(&web, "/ready"), &["-X", "POST"]).0, 403);
    // The route's own authorization; an unrouted request is 404, not 403.
    assert_eq!(curl(&url(&api, "/api/users"), &[]).0, 200);
    assert_eq!(curl(&url(&api, "/other"), &[]).0, 404);
    // A meshed peer of the suffix is allowed, plaintext refused.
    assert_eq!(tls_get(&dir, authn.addr, "/", true), 200);
    assert_eq!(curl(&url(&authn, "/"), &[]).0, 403);
    assert_eq!(tls_get(&dir, all_authn.addr, "/", true), 200);
    assert_eq!(curl(&url(&all_authn, "/"), &[]).0, 403);
    assert_eq!(tls_get(&dir, by_name.addr, "/", true), 200);
    assert_eq!(tls_get(&dir, not_ours.addr, "/", true), 403);
    // TLS without a client certificate: admitted where TLS is all a port
    // asks, refused where it asks an identity; plaintext refused.
    assert_eq!(tls_get(&dir, tls_only.addr, "/", false), 200);
    assert_eq!(tls_get(&dir, tls_only.addr, "/", true), 200);
    assert_eq!(curl(&url(&tls_only, "/"), &[]).0, 403);
    assert_eq!(tls_get(&dir, authn.addr, "/", false), 403);
    assert_eq!(tls_get(&dir, all_authn.addr, "/", false), 403);
    // audit: allowed.
    assert_eq!(curl(&url(&audited, "/"), &[]).0, 200);
    // gRPC: by route, PERMISSION_DENIED, and NOT_FOUND without one.
    let grpc_call = |method: &str| {
        let url = format!("http://{}/pkg.Service/{method}", grpc.addr);
        let h2 = ["--http2-prior-knowledge", "-X", "POST"];
        curl(
            &url,
            &[&h2[..], &["-H", "content-type: application/grpc"]].concat(),
        )
    };
    let (status, headers) = grpc_call("Allowed");
    assert_eq!(status, 200, "{headers}");
    assert!(
        headers.contains("grpc-status: 0"),
        "the application's: {headers}"
    );
    assert_eq!(
        grpc.requests(),
        1,
        "the allowed call reached the application"
    );
    let (status, headers) = grpc_call("Method");
    assert_eq!(status, 200, "{headers}");
    assert!(headers.contains("grpc-status: 7"), "{headers}");
    let (status, headers) = grpc_call("Unrouted");
    assert_eq!(status, 200, "{headers}");
    assert!(headers.contains("grpc-status: 5"), "{headers}");
    assert_eq!(grpc.requests(), 1);
    // Opaque: this pod's own address is an exception, so the
    // connection is closed unanswered.
    let mut refused = TcpStream::connect(db.addr).unwrap();
    refused
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = refused.write_all(b"hello");
    let mut buf = [0u8; 8];
    assert!(closed(refused.read(&mut buf)), "closed");
    assert_eq!(
        web.requests() + authn.requests(),
        2,
        "only the allowed reached the application"
    );

    let metrics = proxy.metrics();
    let allow = |labels: &[(&str, &str)]| metrics.sum("inbound_http_authz_allow_total", labels);
    let deny = |labels: &[(&str, &str)]| metrics.sum("inbound_http_authz_deny_total", labels);
    assert_eq!(
        allow(&[
            ("srv_name", "deny"),
            ("route_name", "probe"),
            ("authz_name", "probe")
        ]),
        1.0
    );
    assert_eq!(
        deny(&[
            ("srv_kind", "default"),
            ("srv_name", "deny"),
            ("route_name", "default"),
            ("tls", "no_identity")
        ]),
        2.0
    );
    assert_eq!(
        allow(&[
            ("srv_name", "api"),
            ("route_name", "api"),
            ("authz_name", "pods")
        ]),
        1.0
    );
    assert_eq!(
        allow(&[
            ("srv_name", "authn"),
            ("authz_name", "meshed"),
            ("client_id", CLIENT)
        ]),
        1.0
    );
    // Plaintext, and TLS without a client certificate.
    assert_eq!(deny(&[("srv_name", "authn")]), 2.0);
    assert_eq!(
        allow(&[("srv_name", "audit"), ("authz_name", "audit")]),
        1.0
    );
    assert_eq!(
        allow(&[
            ("srv_name", "grpc"),
            ("route_kind", "GRPCRoute"),
            ("route_name", "allowed"),
            ("authz_name", "pods")
        ]),
        1.0
    );
    let denied_call = [("srv_name", "grpc"), ("route_name", "method")];
    assert_eq!(deny(&denied_call), 1.0);
    // The unrouted request, by server only (Linkerd's labels).
    let api_port = api.addr.port().to_string();
    let not_found = [
        ("srv_kind", "server"),
        ("srv_name", "api"),
        ("srv_port", api_port.as_str()),
        ("tls", "no_identity"),
    ];
    let route_not_found = "inbound_http_route_not_found_total";
    assert_eq!(metrics.sum(route_not_found, &not_found), 1.0);
    let grpc_port = grpc.addr.port().to_string();
    let unrouted_call = [("srv_name", "grpc"), ("srv_port", grpc_port.as_str())];
    assert_eq!(metrics.sum(route_not_found, &unrouted_call), 1.0);
    assert_eq!(metrics.sum(route_not_found, &[]), 2.0, "{}", metrics.0);
    assert!(
        !metrics
            .0
            .lines()
            .any(|l| l.starts_with(route_not_found) && l.contains("route_name")),
        "a request without a route has no route_*"
    );
    let port = db.addr.port().to_string();
    let tcp_deny = metrics.sum(
        "inbound_tcp_authz_deny_total",
        &[("srv_name", "db"), ("srv_port", &port)],
    );
    assert_eq!(tcp_deny, 1.0);
    assert!(
        !metrics
            .0
            .lines()
            .any(|l| l.starts_with("inbound_http_authz_deny_total") && l.contains("authz_name")),
        "denials carry no authz_*"
    );
}

#[test]
fn a_changed_policy_judges_the_next_request_and_closes_connections_it_no_longer_allows() {
    let test = "a_changed_policy_judges_the_next_request";
    let Some(pod) = Pod::enter(test) else {
        return;
    };
    let plane = ControlPlane::start(IdentityService::new());
    let mock = MockControlPlane::start();
    let web = HttpOrigin::start_on("198.18.0.1:0", "web", Duration::ZERO);
    let db = Origin::echo_on("198.18.0.1:0");
    let open = || authz("pods", false, &[POD_NETWORK], Who::Unauthenticated);
    let http = |name: &str, authzs| server_of(name, false, Proto::Http1(vec![]), authzs);
    let opaque = |name: &str, authzs| server_of(name, false, Proto::Opaque, authzs);
    mock.set_server(web.addr.port(), Some(http("web", vec![open()])));
    mock.set_server(db.addr.port(), Some(opaque("db", vec![open()])));
    let Some(proxy) = policed_ringside(&pod, test, &mock, &plane, "deny") else {
        return;
    };
    let mut client = HttpClient::connect(web.addr);
    assert_eq!(client.get("/").expect("an answer").status, 200);
    let mut old = TcpStream::connect(db.addr).unwrap();
    old.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(echo_and_keep_open(&old, b"before"), b"before");

    // Still authorized under another name: the open connection goes on.
    mock.set_server(db.addr.port(), Some(opaque("db-renamed", vec![open()])));
    let terminated = |proxy: &Ringside| {
        let metrics = proxy.metrics();
        metrics.sum("inbound_tcp_authz_terminate_total", &[])
    };
    eventually("the renamed server taken", || {
        let metrics = proxy.metrics();
        let fresh = TcpStream::connect(db.addr).unwrap();
        let _ = echo_over(&fresh, b"x");
        metrics.sum(
            "inbound_tcp_authz_allow_total",
            &[("srv_name", "db-renamed")],
        ) > 0.0
    });
    assert_eq!(echo_and_keep_open(&old, b"still"), b"still");
    assert_eq!(terminated(&proxy), 0.0);

    // Nobody authorized any more: the open connection is closed, and
    // the next request on the kept-alive HTTP connection is refused.
    mock.set_server(db.addr.port(), Some(opaque("db-closed", vec![])));
    mock.set_server(web.addr.port(), Some(http("web-closed", vec![])));
    let mut buf = [0u8; 8];
    assert!(closed(old.read(&mut buf)), "terminated");
    assert_eq!(terminated(&proxy), 1.0);
    let metrics = proxy.metrics();
    let labels = [("srv_name", "db-closed"), ("tls", "no_identity")];
    assert_eq!(
        metrics.sum("inbound_tcp_authz_terminate_total", &labels),
        1.0
    );
    eventually("the closed web server taken", || {
        client.get("/").is_some_and(|answer| answer.status == 403)
    });
    assert!(!metrics
        .0
        .lines()
        .any(|l| l.starts_with("inbound_tcp_authz_terminate_total") && l.contains("authz_name")));
}

#[test]
fn the_admin_port_is_under_policy_with_probes_passing_and_loopback_allowed() {
    let test = "the_admin_port_is_under_policy";
    let Some(pod) = Pod::enter(test) else {
        return;
    };
    let plane = ControlPlane::start(IdentityService::new());
    let mock = MockControlPlane::start();
    let Some(proxy) = policed_ringside(&pod, test, &mock, &plane, "deny") else {
        return;
    };
    let admin = proxy.admin.port();
    let outside = |path: &str| curl_admin(&format!("http://198.18.0.1:{admin}{path}"));
    // The environment's `deny` until the controller answers: no probe route.
    assert_eq!(outside("/ready"), 403);
    let probes = Proto::Http1(default_routes(&["/live", "/ready"]));
    mock.set_server(admin, Some(server_of("deny", true, probes, vec![])));
    eventually("kubelet's probe passes", || outside("/ready") == 200);
    assert_eq!(outside("/live"), 200);
    assert_eq!(outside("/metrics"), 403);
    // Loopback is always allowed.
    let metrics = curl(&format!("http://127.0.0.1:{admin}/metrics"), &[]).0;
    assert_eq!(metrics, 200);
}

#[test]
fn a_mesh_peer_on_the_inbound_listener_is_judged_by_the_ports_policy() {
    let test = "a_mesh_peer_on_the_inbound_listener_is_judged";
    let Some(pod) = Pod::enter(test) else {
        return;
    };
    let plane = ControlPlane::start(IdentityService::new());
    let mock = MockControlPlane::start();
    let (ours, theirs) = (
        Origin::echo_on("198.18.0.1:0"),
        Origin::echo_on("198.18.0.1:0"),
    );
    let other = "other.ns.serviceaccount.identity.linkerd.cluster.local";
    for (origin, name, allowed) in [(&ours, "ours", [CLIENT]), (&theirs, "theirs", [other])] {
        let only = authz(name, false, &[POD_NETWORK], Who::Mesh(&allowed, &[]));
        let server = server_of(name, false, Proto::Opaque, vec![only]);
        mock.set_server(origin.addr.port(), Some(server));
    }
    let Some(proxy) = policed_ringside(&pod, test, &mock, &plane, "all-unauthenticated") else {
        return;
    };
    // Peers dial the inbound listener at the pod's address directly.
    let inbound = SocketAddr::from(([198, 18, 0, 1], proxy.transparent[1].port()));
    let exempt = inbound.port().to_string();
    let rule = [
        "-t", "nat", "-I", "OUTPUT", "-p", "tcp", "--dport", &exempt, "-j", "RETURN",
    ];
    let added = std::process::Command::new("iptables")
        .args(rule)
        .status()
        .unwrap();
    assert!(added.success());
    let echo_as = |client: Option<&str>, port: u16| {
        let (mut stream, _) = mesh_connect(inbound, POD, plane.identity.ca(), client, port);
        let _ = stream.write_all(b"hello").and_then(|_| stream.flush());
        let mut back = vec![0; 5];
        stream
            .read_exact(&mut back)
            .map(|_| back)
            .unwrap_or_default()
    };
    let echo = |port| echo_as(Some(CLIENT), port);
    assert_eq!(echo(ours.addr.port()), b"hello");
    assert_eq!(echo(theirs.addr.port()), b"");
    // A transport header from a client without a certificate is refused
    // whatever the port allows (linkerd2-proxy `direct.rs`).
    assert_eq!(echo_as(None, ours.addr.port()), b"");
    assert_eq!(ours.accepted(), 1);
    let metrics = proxy.metrics();
    let no_identity = [("reason", "no_identity")];
    assert_eq!(
        metrics.sum("ringside_mesh_refused_total", &no_identity),
        1.0
    );
    let allowed = [
        ("srv_name", "ours"),
        ("authz_name", "ours"),
        ("client_id", CLIENT),
    ];
    assert_eq!(metrics.sum("inbound_tcp_authz_allow_total", &allowed), 1.0);
    let denied = [("srv_name", "theirs"), ("client_id", CLIENT)];
    assert_eq!(metrics.sum("inbound_tcp_authz_deny_total", &denied), 1.0);
}

#[test]
fn a_slow_client_is_carried_opaque_at_the_detect_timeout_its_ports_policy_gives() {
    let test = "a_slow_client_is_carried_opaque_at_the_detect_timeout";
    let Some(pod) = Pod::enter(test) else {
        return;
    };
    let plane = ControlPlane::start(IdentityService::new());
    let mock = MockControlPlane::start();
    let echo = Origin::echo_on("198.18.0.1:0");
    let everyone = authz("all", false, &[("0.0.0.0/0", &[])], Who::Unauthenticated);
    let quick = Proto::DetectWithin(Duration::from_secs(1));
    let server = server_of("quick", false, quick, vec![everyone]);
    mock.set_server(echo.addr.port(), Some(server));
    let default = "all-unauthenticated";
    let Some(proxy) = policed_ringside(&pod, test, &mock, &plane, default) else {
        return;
    };
    // A ClientHello sent a byte every 100 ms: never whole, never quiet for
    // the 300 ms pause, so only the detect timeout (the policy's 1 s, not
    // the default 10 s) ends detection.
    let mut trickle = support::tls_client_hello("web.example");
    trickle.truncate(60);
    let client = TcpStream::connect(echo.addr).unwrap();
    let started = std::time::Instant::now();
    let (sent, echoed) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut sent = 0;
            for byte in &trickle {
                if (&client).write_all(&[*byte]).is_err() {
                    break;
                }
                sent += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = client.shutdown(std::net::Shutdown::Write);
            sent
        });
        client
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut first = [0u8; 1];
        let echoed = (&client).read_exact(&mut first).map(|()| started.elapsed());
        (writer.join().unwrap(), echoed)
    });
    let waited = echoed.expect("the bytes come back once carried opaque");
    assert!(
        waited < Duration::from_secs(4),
        "carried after {waited:?}: the policy's 1 s, not the default 10 s"
    );
    assert_eq!(sent, trickle.len());
    let target = echo.addr.to_string();
    let timed_out = [("target_addr", target.as_str()), ("result", "timeout")];
    let metrics = proxy.metrics();
    assert_eq!(metrics.sum("protocol_detect_total", &timed_out), 1.0);
}
