//! Two pods, each with its application and its own ringside sidecar, set up
//! as a user would: `ringside iptables install` inside each pod, and no
//! route configured. A client in pod A talks to a server in pod B as if
//! there were no proxy; its connection goes out through A's outbound
//! listener and in through B's inbound listener, which hands it to the
//! application on loopback. Every test makes its own pair of network
//! namespaces (`LinkedPods`) and prints `SKIP:` where it cannot.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

/// The group both sidecars run under, exempted by `--proxy-gid`.
const PROXY_GID: &str = "4140";

/// A pod's sidecar: Linkerd's ports (the namespace is the pod's own, so
/// fixed ports cannot collide), one shard.
const SIDECAR: [(&str, &str); 2] = [
    ("--outbound-listen", "127.0.0.1:4140"),
    ("--inbound-listen", "0.0.0.0:4143"),
];

/// Both pods, each with its sidecar running and its rules installed.
struct Mesh {
    pods: LinkedPods,
    a: Option<Ringside>,
    b: Option<Ringside>,
}

/// `addr`'s port (an origin started in pod B) at pod B's address.
fn in_pod_b(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(POD_B.parse().unwrap(), addr.port())
}

impl Mesh {
    /// What curl in pod A prints for `url`, the response head included
    /// (`-g`: an IPv6 address's brackets are not a curl glob).
    fn curl_from_a(&self, url: &str) -> String {
        let args = ["-sS", "-g", "-i", "--max-time", "10", url];
        self.pods.a.run("curl", &args)
    }

    /// `None` after a SKIP line when this machine has no namespaces.
    /// `install` adds flags to both pods' `ringside iptables install`.
    fn start(test: &str, tag: &str, install: &[&str]) -> Option<Mesh> {
        let same = |launch| launch;
        Mesh::start_with(test, tag, install, [&same, &same])
    }

    /// `start`, with each pod's sidecar also given what `sidecar` adds
    /// (A's first).
    fn start_with(
        test: &str,
        tag: &str,
        install: &[&str],
        sidecar: [&(dyn Fn(Launch) -> Launch + Sync); 2],
    ) -> Option<Mesh> {
        let pods = LinkedPods::create(test, tag)?;
        let [a, b] = [(&pods.a, sidecar[0]), (&pods.b, sidecar[1])].map(|(pod, extra)| {
            let proxy = pod.enter(|| {
                let mut launch = Launch::new().gid(PROXY_GID.parse().unwrap()).shards(1);
                for (flag, value) in SIDECAR {
                    launch = launch.arg(flag, value);
                }
                extra(launch).start()
            });
            // The listeners' ports come from the same flags the sidecar
            // has: the rules and the listeners cannot disagree.
            let mut args = vec![SIDECAR[0].0, SIDECAR[0].1, SIDECAR[1].0, SIDECAR[1].1];
            args.extend(["iptables", "install", "--proxy-gid", PROXY_GID]);
            args.extend(install);
            pod.run(BIN, &args);
            proxy
        });
        Some(Mesh {
            a: Some(a),
            b: Some(b),
            pods,
        })
    }

    /// Runs `client` inside pod A: its connections are A's application's.
    fn in_a<T: Send>(&self, client: impl FnOnce() -> T + Send) -> T {
        self.pods.a.enter(client)
    }

    /// Starts `server` inside pod B: its application.
    fn in_b<T: Send>(&self, server: impl FnOnce() -> T + Send) -> T {
        self.pods.b.enter(server)
    }

    /// Both sidecars' metrics once they have no open connection, A's first.
    fn metrics(&self) -> (Metrics, Metrics) {
        let a = self.in_a(|| self.a.as_ref().unwrap().wait_idle());
        let b = self.in_b(|| self.b.as_ref().unwrap().wait_idle());
        (a, b)
    }
}

/// One request to the application at `app` (an address in pod B) counted
/// by both sidecars: outbound in A, inbound in B, both with the original
/// destination as `target_addr`. Waited for, not read once: the response
/// is counted as its last byte leaves, and A's pooled connection keeps one
/// inbound connection open in B, so neither side goes idle.
fn assert_one_request_on_both_sides(mesh: &Mesh, app: SocketAddr) {
    let target = app.to_string();
    let outbound = [("direction", "outbound"), ("target_addr", target.as_str())];
    let inbound = [("direction", "inbound"), ("target_addr", target.as_str())];
    let sides = [
        (&mesh.pods.a, &mesh.a, outbound),
        (&mesh.pods.b, &mesh.b, inbound),
    ];
    for (pod, proxy, labels) in sides {
        let proxy = proxy.as_ref().unwrap();
        let mut seen = 0.0;
        eventually(
            &format!("a response to {target} counted in {}", pod.name),
            || {
                seen = pod.enter(|| proxy.metrics()).sum("response_total", &labels);
                seen >= 1.0
            },
        );
        assert_eq!(seen, 1.0, "{target} in {}", pod.name);
    }
}

#[test]
fn http1_and_http2_requests_cross_both_sidecars() {
    let test = "http1_and_http2_requests_cross_both_sidecars";
    let Some(mesh) = Mesh::start(test, "h", &[]) else {
        return;
    };
    // The applications listen on loopback only: B's sidecar hands them
    // each connection on 127.0.0.1:<original port>.
    let web = mesh.in_b(|| HttpOrigin::start_on("127.0.0.1:0", "web", Duration::ZERO));
    let grpc = mesh.in_b(H2Origin::start);
    let web_app = in_pod_b(web.addr);
    let grpc_app = in_pod_b(grpc.addr);

    let http1 = mesh.pods.a.run(
        "curl",
        &[
            "-sS",
            "-i",
            "--max-time",
            "10",
            &format!("http://{web_app}/size/10"),
        ],
    );
    assert!(http1.contains("x-origin: web"), "{http1}");
    assert_eq!(web.requests(), 1, "the application saw the request");
    assert_one_request_on_both_sides(&mesh, web_app);

    let http2 = mesh.pods.a.run(
        "curl",
        &[
            "-sS",
            "--http2-prior-knowledge",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            "--data-binary",
            "hello",
            &format!("http://{grpc_app}/echo"),
        ],
    );
    assert_eq!(http2, "2 200");
    assert_eq!(grpc.requests(), 1, "the application saw the request");
    assert_one_request_on_both_sides(&mesh, grpc_app);
}

/// The same over IPv6: ip6tables rules in both pods, and each sidecar's
/// IPv6 twins (`[::1]:4140`, `[::]:4143`) where they land.
#[test]
fn ipv6_requests_cross_both_sidecars() {
    let test = "ipv6_requests_cross_both_sidecars";
    if !std::path::Path::new("/proc/net/if_inet6").exists() {
        let _ = writeln!(std::io::stderr(), "SKIP: {test}: the kernel has no IPv6");
        return;
    }
    let Some(mesh) = Mesh::start(test, "6", &[]) else {
        return;
    };
    let web = mesh.in_b(|| HttpOrigin::start_on("127.0.0.1:0", "web6", Duration::ZERO));
    let web_app = SocketAddr::new(POD_B_V6.parse().unwrap(), web.addr.port());
    let url = format!("http://{web_app}/size/10");
    let response = mesh.curl_from_a(&url);
    assert!(response.contains("x-origin: web6"), "{response}");
    assert_eq!(web.requests(), 1);
    assert_one_request_on_both_sides(&mesh, web_app);
}

#[test]
fn opaque_streams_cross_both_sidecars_byte_exact_with_one_connection_each() {
    let test = "opaque_streams_cross_both_sidecars_byte_exact_with_one_connection_each";
    let Some(mesh) = Mesh::start(test, "o", &[]) else {
        return;
    };
    let echo = mesh.in_b(Origin::echo);
    let echo_app = in_pod_b(echo.addr);
    // Random bytes: detection sees no protocol it knows and goes opaque.
    let data = random_bytes(64 << 20, 7);
    let back = mesh.in_a(|| echo_through(echo_app, &data));
    assert!(back == data, "64 MiB came back different");
    // One client connection, one connection at the application: neither
    // sidecar looped back to itself or to the other.
    assert_eq!(echo.accepted(), 1);

    // Redis on its default port, one of the default opaque ports: no
    // detection on either side.
    let redis = mesh.in_b(|| {
        Origin::start_on("127.0.0.1:6379", |mut stream| {
            let mut command = [0u8; 14];
            if stream.read_exact(&mut command).is_ok() && &command == b"*1\r\n$4\r\nPING\r\n" {
                let _ = stream.write_all(b"+PONG\r\n");
            }
        })
    });
    let redis_app: SocketAddr = format!("{POD_B}:6379").parse().unwrap();
    let answer = mesh.in_a(|| {
        let mut stream = TcpStream::connect(redis_app).unwrap();
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    });
    assert_eq!(answer, "+PONG\r\n");
    assert_eq!(redis.accepted(), 1);

    let (a, b) = mesh.metrics();
    let redis_target = redis_app.to_string();
    for (side, metrics) in [("A", &a), ("B", &b)] {
        let labels = [
            ("target_addr", redis_target.as_str()),
            ("result", "opaque_port"),
        ];
        let detected = metrics.sum("protocol_detect_total", &labels);
        assert_eq!(detected, 1.0, "{side}:\n{}", metrics.0);
    }
    let echo_target = echo_app.to_string();
    let src = [("target_addr", echo_target.as_str()), ("peer", "src")];
    assert_eq!(a.sum("tcp_read_bytes_total", &src), data.len() as f64);
    assert_eq!(b.sum("tcp_read_bytes_total", &src), data.len() as f64);
}

#[test]
fn a_server_first_banner_crosses_both_sidecars_without_waiting() {
    let test = "a_server_first_banner_crosses_both_sidecars_without_waiting";
    let Some(mesh) = Mesh::start(test, "s", &[]) else {
        return;
    };
    // Not an opaque port: both sidecars detect, with the default 10 s
    // timeout, and must see the server speak first.
    let smtp = mesh.in_b(Origin::smtp);
    let smtp_app = in_pod_b(smtp.addr);
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
    assert_eq!(smtp.accepted(), 1);
}

/// Ten clients in A, each on a connection of its own with `Connection:
/// close`, reach the application in B over one connection per hop: A's
/// sidecar detects first and takes its pooled connection to B (no connect
/// beside detection while one is idle), and B's sidecar, which sees only
/// that one connection, carries every request on its own pooled one.
fn connections_of_one_request_share_one_connection_per_hop(mesh: &Mesh) {
    let web = mesh.in_b(|| HttpOrigin::start_on("127.0.0.1:0", "web", Duration::ZERO));
    let web_app = in_pod_b(web.addr);
    for _ in 0..10 {
        // Returns at A's close, after the whole response.
        let (status, body) = mesh.in_a(|| http_get(web_app, "/hello"));
        assert_eq!((status, body.as_str()), (200, "hello from web"));
    }
    assert_eq!(web.requests(), 10);
    assert_eq!(web.connections(), 1, "B's sidecar to the application");
    let a = mesh.in_a(|| mesh.a.as_ref().unwrap().wait_idle());
    let target = web_app.to_string();
    let clients = [("peer", "src"), ("target_addr", target.as_str())];
    assert_eq!(a.sum("tcp_open_total", &clients), 10.0);
    let to_b = [("peer", "dst"), ("target_addr", target.as_str())];
    assert_eq!(a.sum("tcp_open_total", &to_b), 1.0, "A's sidecar to B");
}

#[test]
fn connections_of_one_request_share_one_connection_per_hop_in_plaintext() {
    let test = "connections_of_one_request_share_one_connection_per_hop_in_plaintext";
    let Some(mesh) = Mesh::start(test, "c", &[]) else {
        return;
    };
    connections_of_one_request_share_one_connection_per_hop(&mesh);
}

#[test]
fn connections_of_one_request_share_one_connection_per_hop_over_mtls() {
    let test = "connections_of_one_request_share_one_connection_per_hop_over_mtls";
    let dir = minted(&[("a", A_ID), ("b", B_ID)]);
    let Some(mesh) = meshed(test, "n", &dir, true, &[]) else {
        return;
    };
    connections_of_one_request_share_one_connection_per_hop(&mesh);
}

#[test]
fn a_skipped_port_is_reached_directly_even_with_both_sidecars_stopped() {
    let test = "a_skipped_port_is_reached_directly_even_with_both_sidecars_stopped";
    // The port is fixed before the rules name it; the namespace is the
    // test's own.
    const SKIPPED: &str = "9999";
    let skip = [
        "--skip-outbound-ports",
        SKIPPED,
        "--skip-inbound-ports",
        SKIPPED,
    ];
    let Some(mut mesh) = Mesh::start(test, "k", &skip) else {
        return;
    };
    let app = mesh.in_b(|| {
        Origin::start_on(&format!("{POD_B}:{SKIPPED}"), |mut stream| {
            let peer = stream.peer_addr().unwrap().ip().to_string();
            let _ = stream.write_all(peer.as_bytes());
        })
    });
    let peer_seen = |mesh: &Mesh| {
        mesh.in_a(|| {
            let mut stream = TcpStream::connect(app.addr).unwrap();
            let mut peer = String::new();
            stream.read_to_string(&mut peer).unwrap();
            peer
        })
    };
    // The application sees pod A's own address: no proxy in between.
    assert_eq!(peer_seen(&mesh), POD_A);
    let (a, b) = mesh.metrics();
    let target = app.addr.to_string();
    for (side, metrics) in [("A", &a), ("B", &b)] {
        assert!(
            !metrics.0.contains(&target),
            "{side} counted {target}:\n{}",
            metrics.0
        );
        assert_eq!(metrics.sum("tcp_open_total", &[]), 0.0, "{side}");
    }

    drop((mesh.a.take(), mesh.b.take()));
    assert_eq!(peer_seen(&mesh), POD_A, "with no sidecar running");
    assert_eq!(app.accepted(), 2);
}

/// The identities of the two pods' workloads.
const A_ID: &str = "a.default.serviceaccount.identity.linkerd.cluster.local";
const B_ID: &str = "b.default.serviceaccount.identity.linkerd.cluster.local";

/// Both sidecars with an identity; A's knows B's pod as a mesh peer when
/// `a_knows_b`; B's gets `b_flags` too.
fn meshed(
    test: &str,
    tag: &str,
    dir: &TempDir,
    a_knows_b: bool,
    b_flags: &[(&str, &str)],
) -> Option<Mesh> {
    let peer = format!("{POD_B}={B_ID}");
    let a = |launch: Launch| {
        let launch = launch.identity(dir, "a", A_ID);
        match a_knows_b {
            true => launch.arg("--mesh-peer", &peer),
            false => launch,
        }
    };
    let b = |launch: Launch| {
        let launch = launch.identity(dir, "b", B_ID);
        b_flags
            .iter()
            .fold(launch, |launch, (flag, value)| launch.arg(flag, value))
    };
    Mesh::start_with(test, tag, &[], [&a, &b])
}

#[test]
fn meshed_pods_talk_mtls_and_the_applications_own_tls_passes_through() {
    let test = "meshed_pods_talk_mtls_and_the_applications_own_tls_passes_through";
    let dir = minted(&[("a", A_ID), ("b", B_ID)]);
    let Some(mesh) = meshed(test, "m", &dir, true, &[]) else {
        return;
    };
    let app = mesh.in_b(|| RecordingOrigin::start_on("127.0.0.1:0"));
    let app_addr = in_pod_b(app.addr);
    let url = format!("http://{app_addr}/hello");
    let response = mesh.curl_from_a(&url);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let request = String::from_utf8_lossy(&app.received()[0]).to_lowercase();
    assert!(
        request.contains(&format!("l5d-client-id: {A_ID}\r\n")),
        "{request}"
    );

    // The application's own TLS, for a name of its own, crosses the mesh
    // as the bytes it is.
    let echo = mesh.in_b(Origin::echo);
    let echo_addr = in_pod_b(echo.addr);
    let mut hello = client_hello("app.example.test");
    hello.extend_from_slice(&random_bytes(64 << 10, 5));
    let back = mesh.in_a(|| echo_through(echo_addr, &hello));
    assert!(back == hello, "the application's TLS bytes changed");

    let (a, b) = mesh.metrics();
    let allowed = [("client_id", A_ID), ("tls", "true")];
    assert_eq!(
        b.sum("inbound_tcp_authz_allow_total", &allowed),
        2.0,
        "{}",
        b.0
    );
    // tls="true" on both sides, with the other side's identity.
    let echo_target = echo_addr.to_string();
    let inbound = [
        ("target_addr", echo_target.as_str()),
        ("tls", "true"),
        ("client_id", A_ID),
    ];
    assert_eq!(b.sum("tcp_read_bytes_total", &inbound), hello.len() as f64);
    let outbound = [
        ("target_addr", echo_target.as_str()),
        ("tls", "true"),
        ("server_id", B_ID),
    ];
    assert_eq!(
        a.sum("tcp_write_bytes_total", &outbound),
        hello.len() as f64
    );
    let allowed = [("client_id", A_ID), ("tls", "true")];
    assert_eq!(
        b.sum("inbound_tcp_authz_allow_total", &allowed),
        2.0,
        "{}",
        b.0
    );
}

/// Linkerd's peers send HTTP to the application's own port with TLS for
/// the server's identity (no transport header): iptables redirects it to
/// the inbound listener, which finds its own name in the SNI and
/// terminates it there.
#[test]
fn redirected_mtls_for_our_own_name_is_terminated() {
    let test = "redirected_mtls_for_our_own_name_is_terminated";
    let dir = minted(&[("a", A_ID), ("b", B_ID)]);
    // Only clients with an identity: the policy is applied after the
    // termination, to the identity the handshake proved.
    let required = [("--inbound-authorize", "all-authenticated")];
    let Some(mesh) = meshed(test, "r", &dir, false, &required) else {
        return;
    };
    let app = mesh.in_b(|| RecordingOrigin::start_on("127.0.0.1:0"));
    let app_addr = in_pod_b(app.addr);
    let answer = mesh.in_a(|| {
        let tcp = TcpStream::connect(app_addr).unwrap();
        tcp.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
        let mut tls = mtls_client(&dir, "a", B_ID, tcp);
        tls.write_all(
            b"GET /peer HTTP/1.1\r\nHost: b\r\nl5d-client-id: forged\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut answer = String::new();
        let _ = tls.read_to_string(&mut answer);
        answer
    });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let request = String::from_utf8_lossy(&app.received()[0]).to_lowercase();
    assert!(
        request.contains(&format!("l5d-client-id: {A_ID}\r\n")),
        "{request}"
    );
    assert!(!request.contains("forged"), "{request}");
}

#[test]
fn plaintext_to_a_port_that_requires_an_identity_is_refused() {
    let test = "plaintext_to_a_port_that_requires_an_identity_is_refused";
    let dir = minted(&[("a", A_ID), ("b", B_ID)]);
    let required = [("--inbound-authorize", "all-authenticated")];
    let Some(mesh) = meshed(test, "p", &dir, false, &required) else {
        return;
    };
    let echo = mesh.in_b(Origin::echo);
    let echo_addr = in_pod_b(echo.addr);
    let refused = mesh.in_a(|| {
        let mut stream = TcpStream::connect(echo_addr).unwrap();
        stream.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
        // A line: a bare word may still begin an HTTP request, which
        // would be served 403s rather than closed.
        let _ = stream.write_all(b"plaintext\n");
        let mut buf = [0u8; 10];
        !matches!(stream.read(&mut buf), Ok(10))
    });
    assert!(refused, "plaintext got through to an identity-only port");
    assert_eq!(echo.accepted(), 0);
    // Plaintext HTTP gets a 403 that says why, for each request.
    let web = mesh.in_b(|| HttpOrigin::start_on("127.0.0.1:0", "web", Duration::ZERO));
    let web_addr = in_pod_b(web.addr);
    let url = format!("http://{web_addr}/size/10");
    let response = mesh.curl_from_a(&url);
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(
        response
            .contains("ringside-proxy-error: forbidden by the inbound policy all-authenticated"),
        "{response}"
    );
    assert_eq!(web.requests(), 0);
    let b = mesh.in_b(|| mesh.b.as_ref().unwrap().metrics());
    let denied = [("authz", "all-authenticated"), ("tls", "no_identity")];
    assert_eq!(
        b.sum("inbound_http_authz_deny_total", &denied),
        1.0,
        "{}",
        b.0
    );
    assert_eq!(
        b.sum("inbound_tcp_authz_deny_total", &denied),
        1.0,
        "{}",
        b.0
    );
    // Linkerd's reason why the client was not mTLS, on the HTTP series.
    let plaintext = [
        ("direction", "inbound"),
        ("tls", "no_identity"),
        ("no_tls_reason", "no_tls_from_remote"),
    ];
    assert_eq!(b.sum("response_total", &plaintext), 1.0, "{}", b.0);
}

/// The first flight of a TLS client for `sni`, as rustls sends it.
fn client_hello(sni: &str) -> Vec<u8> {
    let config = client_config_builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    hello
}

/// A blocking mTLS client with the identity in `dir/folder`, for `server`.
fn mtls_client(
    dir: &TempDir,
    folder: &str,
    server: &str,
    tcp: TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file = |name: &str| dir.join(&format!("{folder}/{name}"));
    let mut roots = rustls::RootCertStore::empty();
    for anchor in CertificateDer::pem_file_iter(file("trust-anchors.pem")).unwrap() {
        roots.add(anchor.unwrap()).unwrap();
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(file("cert.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(file("key.pem")).unwrap();
    let config = client_config_builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from(server.to_string()).unwrap();
    let client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(client, tcp)
}

fn client_config_builder() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
}
