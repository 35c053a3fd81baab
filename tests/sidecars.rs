//! Two pods, each with its application and its own ringside sidecar, set up
//! as a user would: `ringside iptables install` inside each pod, and no
//! route configured. A client in pod A talks to a server in pod B as if
//! there were no proxy; its connection goes out through A's outbound
//! listener and in through B's inbound listener, which hands it to the
//! application at its original destination. Every test makes its own pair of network
//! namespaces (`LinkedPods`) and prints `SKIP:` where it cannot.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::pods::*;
use support::*;

#[test]
fn http1_and_http2_requests_cross_both_sidecars() {
    let test = "http1_and_http2_requests_cross_both_sidecars";
    let Some(mesh) = Mesh::start(test, "h", &[]) else {
        return;
    };
    // B's sidecar hands the applications each connection at its original
    // destination, the pod's address, as Linkerd's inbound does.
    let web = mesh.in_b(|| HttpOrigin::start_on("0.0.0.0:0", "web", Duration::ZERO));
    let grpc = mesh.in_b(|| H2Origin::start_on("0.0.0.0:0"));
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

    let http2 = mesh.http2_post_from_a(&format!("http://{grpc_app}/echo"));
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
    let web = mesh.in_b(|| HttpOrigin::start_on("[::]:0", "web6", Duration::ZERO));
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
    let echo = mesh.in_b(|| Origin::echo_on("0.0.0.0:0"));
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
        Origin::start_on("0.0.0.0:6379", |mut stream| {
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
    let smtp = mesh.in_b(|| Origin::smtp_on("0.0.0.0:0"));
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
/// close`, reach the application in B over `per_hop` connections per hop:
/// A's sidecar detects first and takes its pooled connection to B (no
/// connect beside detection while one is idle), and B's sidecar carries
/// the requests of each connection from A on its own pooled one.
fn connections_of_one_request_share_connections_per_hop(mesh: &Mesh, per_hop: f64) {
    let web = mesh.in_b(|| HttpOrigin::start_on("0.0.0.0:0", "web", Duration::ZERO));
    let web_app = in_pod_b(web.addr);
    for _ in 0..10 {
        // Returns at A's close, after the whole response.
        let (status, body) = mesh.in_a(|| http_get(web_app, "/hello"));
        assert_eq!((status, body.as_str()), (200, "hello from web"));
    }
    assert_eq!(web.requests(), 10);
    assert_eq!(
        web.connections() as f64,
        per_hop,
        "B's sidecar to the application"
    );
    let a = mesh.in_a(|| mesh.a.as_ref().unwrap().wait_idle());
    let target = web_app.to_string();
    let clients = [("peer", "src"), ("target_addr", target.as_str())];
    assert_eq!(a.sum("tcp_open_total", &clients), 10.0);
    let to_b = [("peer", "dst"), ("target_addr", target.as_str())];
    assert_eq!(a.sum("tcp_open_total", &to_b), per_hop, "A's sidecar to B");
}

#[test]
fn connections_of_one_request_share_one_connection_per_hop_in_plaintext() {
    let test = "connections_of_one_request_share_one_connection_per_hop_in_plaintext";
    let Some(mesh) = Mesh::start(test, "c", &[]) else {
        return;
    };
    connections_of_one_request_share_connections_per_hop(&mesh, 1.0);
}

/// Over mTLS, two: the first request rides the connection A made while
/// detecting, whose transport header could declare no protocol, so it
/// carries HTTP/1 as it is (a Linkerd peer forwards such a connection as
/// opaque bytes: `tests/mesh_linkerd.rs`); the other nine go as streams of
/// one connection that declares HTTP/2.
#[test]
fn connections_of_one_request_share_two_connections_per_hop_over_mtls() {
    let test = "connections_of_one_request_share_two_connections_per_hop_over_mtls";
    let dir = minted(&[("a", A_ID), ("b", B_ID)]);
    let Some(mesh) = meshed(test, "n", &dir, true, &[]) else {
        return;
    };
    connections_of_one_request_share_connections_per_hop(&mesh, 2.0);
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
