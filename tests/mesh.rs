//! Two ringside processes meshed over mutual TLS, on loopback: the client
//! side has a route whose upstream is a mesh peer (`--mesh-peer`), so it
//! connects to the server side's inbound listener over mTLS with the
//! transport header; the server side terminates it, authorizes the client
//! identity and hands the connection to the application. Identities are
//! minted with `ringside identity`, as the README shows.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::clients::h2::runtime;
use support::identity::{client_side, identities, server_side, CLIENT, SERVER};
use support::*;

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
    // Linkerd's TLS labels: the client's identity on the server side, the
    // server's on the client side.
    let src = [
        ("target_addr", target.as_str()),
        ("peer", "src"),
        ("tls", "true"),
        ("client_id", CLIENT),
    ];
    assert_eq!(metrics.sum("tcp_read_bytes_total", &src), data.len() as f64);
    let dst = [("peer", "dst"), ("tls", "true"), ("server_id", SERVER)];
    let client_metrics = client.wait_idle();
    assert_eq!(
        client_metrics.sum("tcp_write_bytes_total", &dst),
        data.len() as f64
    );
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
    // It crossed as an HTTP/2 stream, and arrives as the HTTP/1 it was.
    assert!(request.starts_with("get /hello http/1.1\r\n"), "{request}");
    assert!(request.contains("host: db\r\n"), "{request}");
    assert!(!request.contains("l5d-orig-proto"), "{request}");
}

#[test]
fn a_server_first_banner_crosses_the_mesh_without_waiting() {
    let dir = identities();
    let smtp = Origin::smtp();
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, smtp.addr, &server);
    let waited = banner_wait(client.route());
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
    // A line: a bare word may still begin an HTTP request, which inbound
    // detection never passes on raw.
    let _ = stream.write_all(b"hello\n");
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
    // A connection open across the rotation.
    let open = TcpStream::connect(client.route()).unwrap();
    assert_eq!(echo_and_keep_open(&open, b"before\n"), b"before\n");

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
    // New handshakes present it, and the open connection goes on.
    let data = random_bytes(1 << 20, 9);
    assert!(echo_through(client.route(), &data) == data);
    assert_eq!(echo_and_keep_open(&open, b"after\n"), b"after\n");
    assert!(after > 0.0);
}

#[test]
fn keep_alive_http1_grpc_and_a_websocket_cross_the_mesh() {
    let dir = identities();
    let web = HttpOrigin::start("web", Duration::ZERO);
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, web.addr, &server);
    // Many requests on one client connection: two mTLS connections, the
    // one made while detecting (it declared no protocol, so it carries the
    // first request as HTTP/1, as a Linkerd peer requires) and the HTTP/2
    // one every later request rides.
    let mut http = HttpClient::connect(client.route());
    for _ in 0..20 {
        let response = http.get("/size/100").expect("a response");
        assert_eq!((response.status, response.body.len()), (200, 100));
    }
    drop(http);
    let metrics = server.wait_idle();
    let src = [("peer", "src")];
    assert_eq!(
        metrics.sum("tcp_open_total", &src),
        2.0,
        "the detecting connection and the HTTP/2 one"
    );
    assert_eq!(metrics.sum("request_total", &[]), 20.0);
    let allowed = [("client_id", CLIENT), ("tls", "true")];
    assert_eq!(
        metrics.sum("inbound_http_authz_allow_total", &allowed),
        20.0
    );

    let grpc_origin = H2Origin::start();
    let grpc_client = client_side(&dir, grpc_origin.addr, &server);
    let addr = grpc_client.route();
    runtime().block_on(async move {
        let mut sender = support::clients::h2::connect(addr).await;
        let request = http::Request::post("http://grpc.local/pkg.Service/Method")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("x-messages", "3")
            .body(())
            .unwrap();
        let answer = support::clients::h2::call(&mut sender, request, b"\0\0\0\0\x01x".to_vec())
            .await
            .unwrap();
        assert_eq!(answer.body.len(), 3 * 6);
        assert_eq!(answer.trailers.unwrap()["grpc-status"], "0");
    });

    let (ws_origin, ws_server) = websocket_echo();
    let ws_client = client_side(&dir, ws_origin, &server);
    let stream = TcpStream::connect(ws_client.route()).unwrap();
    let url = format!("ws://{}/chat", ws_client.route());
    let (mut socket, response) = tungstenite::client(url.as_str(), stream).unwrap();
    assert_eq!(response.status(), 101);
    websocket_binary_echo_and_close(&mut socket, 4);
    drop(socket);
    ws_server.join().unwrap();
}

#[test]
fn a_wrong_server_identity_another_ca_and_an_unlisted_identity_are_refused() {
    let dir = identities();
    let echo = Origin::echo();
    let try_echo = |proxy: &Ringside| {
        let mut stream = TcpStream::connect(proxy.route()).unwrap();
        stream.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
        let _ = stream.write_all(b"ping\n");
        let mut buf = [0u8; 5];
        matches!(stream.read(&mut buf), Ok(5))
    };

    // The client side expects another identity than the server has.
    let server = server_side(&dir, &[]);
    let peer = format!(
        "127.0.0.1=api.default.serviceaccount.identity.linkerd.cluster.local@{}",
        server.transparent[0].port()
    );
    let wrong = Ringside::route_to([echo.addr])
        .shards(1)
        .arg("--mesh-peer", peer);
    let wrong = wrong.identity(&dir, "client", CLIENT).start();
    assert!(!try_echo(&wrong), "a wrong server identity must fail");
    let failures = [("reason", "tls_handshake")];
    let metrics = wrong.wait_idle();
    assert!(metrics.sum("ringside_upstream_connect_failures_total", &failures) >= 1.0);

    // A client whose certificate another CA signed.
    let other = minted(&[("client", CLIENT)]);
    let stranger = client_side(&other, echo.addr, &server);
    assert!(!try_echo(&stranger), "another CA's client must fail");
    eventually("the handshake refusal counted", || {
        let refused = server.metrics();
        refused.sum("ringside_mesh_refused_total", &[("reason", "handshake")]) >= 1.0
    });

    // An identity the port's list does not hold.
    let listed = server_side(
        &dir,
        &[(
            "--inbound-authorize",
            "*.prod.serviceaccount.identity.linkerd.cluster.local",
        )],
    );
    let unlisted = client_side(&dir, echo.addr, &listed);
    assert!(!try_echo(&unlisted), "an unlisted identity must be refused");
    let denied = [("client_id", CLIENT), ("authz", "identities")];
    let metrics = listed.wait_idle();
    assert_eq!(metrics.sum("inbound_tcp_authz_deny_total", &denied), 1.0);
    assert_eq!(echo.accepted(), 0, "nothing reached the application");

    // Its HTTP requests are answered 403 each, the connection kept.
    let web = HttpOrigin::start("web", Duration::ZERO);
    let unlisted = client_side(&dir, web.addr, &listed);
    let mut http = HttpClient::connect(unlisted.route());
    for _ in 0..2 {
        let response = http.get("/").expect("a response");
        assert_eq!(response.status, 403);
        let reason = response.header("ringside-proxy-error").unwrap_or_default();
        assert!(reason.contains("forbidden"), "{reason}");
    }
    assert_eq!(web.requests(), 0, "nothing reached the application");
    eventually("both refusals counted", || {
        let metrics = listed.metrics();
        metrics.sum("inbound_http_authz_deny_total", &denied) == 2.0
    });
}

#[test]
fn a_proxy_started_before_its_certificate_is_issued_waits_for_it() {
    let dir = identities();
    let echo = Origin::echo();
    // The server side's certificate and key are not there yet; its trust
    // anchors are.
    let pending = TempDir::new();
    let server = Launch::new()
        .shards(1)
        .arg("--inbound-listen", "127.0.0.1:0")
        .arg("--identity-cert", pending.join("cert.pem"))
        .arg("--identity-key", pending.join("key.pem"))
        .arg(
            "--identity-trust-anchors",
            dir.join("server/trust-anchors.pem"),
        )
        .arg("--identity-name", SERVER)
        .start();
    assert_eq!(server.get("/ready"), (503, "waiting for identity\n".into()));
    let client = client_side(&dir, echo.addr, &server);
    let mut refused = TcpStream::connect(client.route()).unwrap();
    refused.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let _ = refused.write_all(b"hello");
    let mut buf = [0u8; 8];
    assert!(
        matches!(refused.read(&mut buf), Ok(0) | Err(_)),
        "nothing crosses before the certificate is issued"
    );

    // Issued: the key, then the certificate, land in place.
    for file in ["key.pem", "cert.pem"] {
        std::fs::copy(dir.join(&format!("server/{file}")), pending.join(file)).unwrap();
    }
    eventually("ready once the certificate is issued", || {
        server.get("/ready").0 == 200
    });
    assert_eq!(echo_through(client.route(), b"hello"), b"hello");
    let expiry = server
        .metrics()
        .sum("identity_cert_expiration_timestamp_seconds", &[]);
    assert!(expiry > 0.0);
}
