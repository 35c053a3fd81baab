//! Two pods, each with ringside started as Linkerd's wrapper starts its
//! proxy: no arguments, only Linkerd's environment. Each pod has its own
//! control plane on loopback (the identity service, and the destination
//! and policy services of `support::mock_discovery`), under one trust
//! root, as a cluster's are. A client in pod A reaches the applications of
//! pod B at B's address, as if there were no proxy: A's sidecar learns B's
//! identity and protocol from discovery and connects over mTLS; B's judges
//! each connection and request by its port's `Server` and hands it to the
//! application at the address it arrived on.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::control_plane::{ControlPlane, IdentityService, LinkerdPod};
use support::mock_discovery::inbound::{authz, server_of, Proto, Who};
use support::mock_discovery::messages::{self, endpoint, Kind};
use support::mock_discovery::MockControlPlane;
use support::pods::{in_pod_b, Mesh, A_ID, B_ID};
use support::*;

/// B's proxy's inbound port, which A's connects to for opaque transport.
const INBOUND_PORT: u16 = 4143;

const OTHER_ID: &str = "other.default.serviceaccount.identity.linkerd.cluster.local";

/// A pod's control plane, served inside its namespace.
struct Plane {
    identity: ControlPlane,
    discovery: MockControlPlane,
}

impl Plane {
    fn start_in(pod: &support::netns::Netns, ca: &IdentityService) -> Plane {
        pod.enter(|| Plane {
            identity: ControlPlane::start(ca.clone()),
            discovery: MockControlPlane::start(),
        })
    }

    fn pod(&self, name: &str, workload: &str) -> LinkerdPod {
        LinkerdPod::new(name, &self.identity)
            .discovery(self.discovery.addr)
            .env("LINKERD2_PROXY_POLICY_WORKLOAD", workload)
            .env(
                "LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS",
                "198.18.0.0/24",
            )
            .env("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", "127.0.0.1:4191")
    }
}

/// Reads until the peer closes or `limit` passes: what came, and whether
/// the peer closed.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == ErrorKind::ConnectionReset => return (got, true),
            Err(_) => return (got, false),
        }
    }
}

#[test]
fn pod_a_reaches_pod_bs_applications_over_mtls_under_bs_policy() {
    let test = "pod_a_reaches_pod_bs_applications_over_mtls_under_bs_policy";
    let Some(pods) = LinkedPods::create(test, "lp") else {
        return;
    };
    let ca = IdentityService::new();
    let (plane_a, plane_b) = (Plane::start_in(&pods.a, &ca), Plane::start_in(&pods.b, &ca));

    // B's applications, and the Server of each port.
    let web = pods
        .b
        .enter(|| HttpOrigin::start_on("0.0.0.0:0", "web", Duration::ZERO));
    let grpc = pods.b.enter(|| H2Origin::start_on("0.0.0.0:0"));
    let db = pods.b.enter(|| Origin::echo_on("0.0.0.0:0"));
    let smtp = pods.b.enter(|| Origin::smtp_on("0.0.0.0:0"));
    let secret = pods
        .b
        .enter(|| HttpOrigin::start_on("0.0.0.0:0", "secret", Duration::ZERO));
    let vault = pods.b.enter(|| Origin::echo_on("0.0.0.0:0"));
    let from_a = || {
        authz(
            "from-a",
            false,
            &[("0.0.0.0/0", &[])],
            Who::Mesh(&[A_ID], &[]),
        )
    };
    let from_other = || {
        let other = Who::Mesh(&[OTHER_ID], &[]);
        authz("from-other", false, &[("0.0.0.0/0", &[])], other)
    };
    let servers = [
        (web.addr, "web", Proto::Detect(vec![]), from_a()),
        (grpc.addr, "grpc", Proto::Http2(vec![]), from_a()),
        (db.addr, "db", Proto::Opaque, from_a()),
        (smtp.addr, "smtp", Proto::Opaque, from_a()),
        // Configured HTTP/1: the peer's TLS is still looked for first.
        (secret.addr, "secret", Proto::Http1(vec![]), from_other()),
        (vault.addr, "vault", Proto::Opaque, from_other()),
    ];
    for (app, name, proto, authorization) in servers {
        let server = server_of(name, false, proto, vec![authorization]);
        plane_b.discovery.set_server(app.port(), Some(server));
    }

    // What A's destination service says of each: B's identity, the h2
    // hint for HTTP, Linkerd's opaque transport (B's inbound port) for
    // opaque ports, as the destination controller answers for meshed pods.
    let apps = [
        (web.addr, Kind::Detect, None, true),
        (grpc.addr, Kind::Http2, None, true),
        (db.addr, Kind::Opaque, Some(INBOUND_PORT), false),
        (smtp.addr, Kind::Opaque, Some(INBOUND_PORT), false),
        (secret.addr, Kind::Detect, None, true),
        (vault.addr, Kind::Opaque, Some(INBOUND_PORT), false),
    ];
    for (app, kind, tagged, h2) in apps {
        let app = in_pod_b(app);
        let to_b = messages::forward(endpoint(app, Some(B_ID), tagged, h2));
        let policy = messages::policy(kind, to_b);
        plane_a.discovery.set_policy(app, Some(policy));
    }

    let pod_a = plane_a.pod(A_ID, r#"{"ns":"default","pod":"a-0"}"#);
    let pod_b = plane_b
        .pod(B_ID, r#"{"ns":"default","pod":"b-0"}"#)
        .env("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "deny");
    let mesh = Mesh::linkerd(pods, [pod_a, pod_b]);
    let [web_app, grpc_app, db_app, smtp_app, secret_app, vault_app] = [
        &web.addr,
        &grpc.addr,
        &db.addr,
        &smtp.addr,
        &secret.addr,
        &vault.addr,
    ]
    .map(|addr| in_pod_b(*addr));

    // HTTP/1, allowed: upgraded to HTTP/2 between the sidecars (the h2
    // hint), HTTP/1 again at the application.
    let http1 = mesh.curl_from_a(&format!("http://{web_app}/size/10"));
    assert!(http1.starts_with("HTTP/1.1 200"), "{http1}");
    assert!(http1.contains("x-origin: web"), "{http1}");
    assert_eq!(web.requests(), 1);

    // HTTP/2, allowed.
    let url = format!("http://{grpc_app}/echo");
    let http2 = mesh.http2_post_from_a(&url);
    assert_eq!(http2, "2 200");
    assert_eq!(grpc.requests(), 1);

    // Opaque, allowed: byte-exact both ways, one connection at the
    // application.
    let data = random_bytes(4 << 20, 31);
    let back = mesh.in_a(|| echo_through(db_app, &data));
    assert!(back == data, "4 MiB came back different");
    assert_eq!(db.accepted(), 1);

    // Server-first on an opaque port: the banner comes without a byte
    // from the client.
    let (banner, waited) = mesh.in_a(|| {
        let started = Instant::now();
        let mut stream = TcpStream::connect(smtp_app).unwrap();
        stream.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
        let mut banner = vec![0; SMTP_BANNER.len()];
        stream.read_exact(&mut banner).unwrap();
        (banner, started.elapsed())
    });
    assert_eq!(banner, SMTP_BANNER);
    assert!(
        waited < Duration::from_secs(1),
        "the banner took {waited:?}"
    );

    // Refused: HTTP gets a 403 from B's sidecar, TCP is closed, and
    // neither application sees anything.
    let refused = mesh.curl_from_a(&format!("http://{secret_app}/size/10"));
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert_eq!(secret.requests(), 0);
    let (echoed, closed) = mesh.in_a(|| {
        let mut stream = TcpStream::connect(vault_app).unwrap();
        let _ = stream.write_all(b"let me in");
        read_until_closed(&mut stream, WAIT_LIMIT)
    });
    assert!(echoed.is_empty() && closed, "{echoed:?} closed: {closed}");
    assert_eq!(vault.accepted(), 0);

    // Each side counted it as Linkerd does.
    let (a, b) = mesh.metrics();
    let web_target = web_app.to_string();
    let outbound = [
        ("direction", "outbound"),
        ("target_addr", web_target.as_str()),
        ("tls", "true"),
        ("server_id", B_ID),
    ];
    assert_eq!(a.sum("response_total", &outbound), 1.0, "{}", a.0);
    let allow = |name: &str, srv: &str| {
        let labels = [
            ("srv_name", srv),
            ("authz_name", "from-a"),
            ("client_id", A_ID),
        ];
        b.sum(name, &labels)
    };
    assert_eq!(
        allow("inbound_http_authz_allow_total", "web"),
        1.0,
        "{}",
        b.0
    );
    assert_eq!(allow("inbound_http_authz_allow_total", "grpc"), 1.0);
    assert_eq!(allow("inbound_tcp_authz_allow_total", "db"), 1.0);
    assert_eq!(allow("inbound_tcp_authz_allow_total", "smtp"), 1.0);
    let denied = |name: &str, srv: &str| b.sum(name, &[("srv_name", srv), ("tls", "true")]);
    assert_eq!(denied("inbound_http_authz_deny_total", "secret"), 1.0);
    assert_eq!(denied("inbound_tcp_authz_deny_total", "vault"), 1.0);
    let db_target = db_app.to_string();
    let inbound_db = [
        ("direction", "inbound"),
        ("target_addr", db_target.as_str()),
        ("tls", "true"),
        ("client_id", A_ID),
    ];
    let read = b.sum("tcp_read_bytes_total", &inbound_db);
    assert!(read >= data.len() as f64, "{read}\n{}", b.0);
}
