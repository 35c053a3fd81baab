//! Two ringside processes meshed over mutual TLS, on loopback: the client
//! side has a route whose upstream is a mesh peer (`--mesh-peer`), so it
//! connects to the server side's inbound listener over mTLS with the
//! transport header; the server side terminates it, authorizes the client
//! identity and hands the connection to the application. Identities are
//! minted with `ringside identity`, as the README shows.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::*;

const CLIENT: &str = "web.default.serviceaccount.identity.linkerd.cluster.local";
const SERVER: &str = "db.default.serviceaccount.identity.linkerd.cluster.local";

/// A CA and the two identities, each in a folder named after its role.
fn identities() -> TempDir {
    minted(&[("client", CLIENT), ("server", SERVER)])
}

/// The server side: an inbound listener on loopback, with `flags`.
fn server_side(dir: &TempDir, flags: &[(&str, &str)]) -> Ringside {
    let mut launch = Launch::new()
        .shards(1)
        .arg("--inbound-listen", "127.0.0.1:0");
    for (flag, value) in flags {
        launch = launch.arg(flag, value);
    }
    launch.identity(dir, "server", SERVER).start()
}

/// The client side: a route to `app` (a port of the server side's host),
/// meshed through `server`'s inbound listener.
fn client_side(dir: &TempDir, app: SocketAddr, server: &Ringside) -> Ringside {
    let peer = format!("127.0.0.1={SERVER}@{}", server.transparent[0].port());
    let launch = Ringside::route_to([app]).shards(1).arg("--mesh-peer", peer);
    launch.identity(dir, "client", CLIENT).start()
}

#[test]
fn opaque_bytes_cross_the_mesh_byte_exact_and_are_authorized_by_identity() {
    let dir = identities();
    let echo = Origin::echo();
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, echo.addr, &server);

    let data = random_bytes(64 << 20, 3);
    let back = echo_through(client.route(), &data);
    assert!(back == data, "64 MiB came back different");
    assert_eq!(echo.accepted(), 1, "one connection at the application");

    let metrics = server.wait_idle();
    let target = format!("127.0.0.1:{}", echo.addr.port());
    let allowed = [
        ("target_addr", target.as_str()),
        ("client_id", CLIENT),
        ("tls", "true"),
        ("authz", "all-unauthenticated"),
    ];
    assert_eq!(metrics.sum("inbound_tcp_authz_allow_total", &allowed), 1.0);
    let src = [("target_addr", target.as_str()), ("peer", "src")];
    assert_eq!(metrics.sum("tcp_read_bytes_total", &src), data.len() as f64);
    let expiry = metrics.sum("identity_cert_expiration_timestamp_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry > now, "expiry {expiry} is not in the future");
}

#[test]
fn http_requests_reach_the_application_with_the_proven_client_id() {
    let dir = identities();
    let app = RecordingOrigin::start();
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, app.addr, &server);

    // The application's own forged header is replaced by the identity the
    // client side proved.
    let mut http = HttpClient::connect(client.route());
    http.send(b"GET /hello HTTP/1.1\r\nHost: db\r\nl5d-client-id: forged\r\n\r\n");
    let response = http.read(false).expect("a response");
    assert_eq!(response.status, 200);
    drop(http);
    let received = app.settled(&server.wait_idle());
    assert_eq!(received.len(), 1, "{received:?}");
    let request = String::from_utf8_lossy(&received[0]).to_lowercase();
    assert!(
        request.contains(&format!("l5d-client-id: {CLIENT}\r\n")),
        "{request}"
    );
    assert!(!request.contains("forged"), "{request}");
}

#[test]
fn a_server_first_banner_crosses_the_mesh_without_waiting() {
    let dir = identities();
    const BANNER: &[u8] = b"220 smtp.example.test ESMTP ready\r\n";
    let smtp = Origin::start(|mut stream| {
        let _ = stream.write_all(BANNER);
        let _ = std::io::copy(&mut &stream, &mut std::io::sink());
    });
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, smtp.addr, &server);
    let started = Instant::now();
    let mut stream = TcpStream::connect(client.route()).unwrap();
    stream.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let mut banner = vec![0; BANNER.len()];
    stream.read_exact(&mut banner).unwrap();
    assert_eq!(banner, BANNER);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(1),
        "the banner took {waited:?}"
    );
}

#[test]
fn a_denied_identity_and_a_plaintext_dialer_are_refused_and_counted() {
    let dir = identities();
    let echo = Origin::echo();
    let server = server_side(&dir, &[("--inbound-authorize", "deny")]);
    let client = client_side(&dir, echo.addr, &server);

    let mut stream = TcpStream::connect(client.route()).unwrap();
    stream.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let _ = stream.write_all(b"hello");
    let mut buf = [0u8; 16];
    assert!(
        matches!(stream.read(&mut buf), Ok(0) | Err(_)),
        "a denied client gets its connection closed"
    );
    assert_eq!(echo.accepted(), 0);

    // A plaintext client dialing the inbound listener itself is not a
    // peer proxy and was not redirected.
    let mut direct = TcpStream::connect(server.transparent[0]).unwrap();
    direct.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let _ = direct.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(ends_in_reset(&mut direct), "a plaintext dialer is reset");

    let metrics = server.wait_idle();
    let denied = [("client_id", CLIENT), ("authz", "deny")];
    assert_eq!(metrics.sum("inbound_tcp_authz_deny_total", &denied), 1.0);
    let not_redirected = [("reason", "not_redirected")];
    let refused = metrics.sum("ringside_connections_refused_total", &not_redirected);
    assert_eq!(refused, 1.0);
}

#[test]
fn a_rotated_certificate_is_picked_up_without_a_restart() {
    let dir = identities();
    let echo = Origin::echo();
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, echo.addr, &server);
    let expiry = |proxy: &Ringside| {
        proxy
            .metrics()
            .sum("identity_cert_expiration_timestamp_seconds", &[])
    };
    let before = expiry(&server);

    // A shorter-lived certificate for the same name, moved into place as
    // a rotation would.
    let ca = dir.join("ca");
    let fresh = dir.join("fresh");
    let issue = [
        "identity", "issue", "--ca", &ca, "--name", SERVER, "--days", "2",
    ];
    mint(&[&issue[..], &["--out", &fresh]].concat());
    for file in ["key.pem", "cert.pem"] {
        let from = format!("{fresh}/{file}");
        std::fs::rename(from, dir.join(&format!("server/{file}"))).unwrap();
    }
    let mut after = before;
    eventually("the rotated certificate in use", || {
        after = expiry(&server);
        after < before
    });
    // New handshakes present it, and traffic goes on.
    let data = random_bytes(1 << 20, 9);
    assert!(echo_through(client.route(), &data) == data);
    assert!(after > 0.0);
}
