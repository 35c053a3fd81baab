//! Inbound, detection never hands what may be HTTP to the application raw
//! (issue 19, item 1). Each test is one way a client without an identity
//! got `l5d-client-id: forged` past detection's fail-open to the
//! application: now the request reaches the HTTP path, which strips every
//! `l5d-*` header, or is refused with a status. Outbound keeps failing open
//! (`tests/detect.rs`).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use support::identity::{identities, CLIENT, SERVER};
use support::large_hello::large_hello_client;
use support::*;

const FORGED: &str = "l5d-client-id: forged\r\n";

fn results(proxy: &Ringside, result: &str) -> f64 {
    proxy
        .wait_idle()
        .sum("protocol_detect_total", &[("result", result)])
}

/// The requests the application received, once ringside closed them all;
/// each must be one the HTTP path wrote, without the forged header.
fn received_without_forgery(app: &RecordingOrigin, proxy: &Ringside) -> Vec<String> {
    let received = app.settled(&proxy.wait_idle());
    let received: Vec<String> = received
        .iter()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .collect();
    for request in &received {
        assert!(
            !request.contains("forged"),
            "forged header passed: {request}"
        );
    }
    received
}

#[test]
fn a_request_line_longer_than_the_peek_is_http_without_its_forged_client_id() {
    let app = RecordingOrigin::start();
    let proxy = Ringside::inbound_to(app.addr).start();
    let path = format!("/{}", "a".repeat(2000));
    let mut client = HttpClient::connect(proxy.route());
    client.send(format!("GET {path} HTTP/1.1\r\nHost: app\r\n{FORGED}\r\n").as_bytes());
    assert_eq!(client.read(false).expect("a response").status, 200);
    drop(client);
    let received = received_without_forgery(&app, &proxy);
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(received[0].starts_with(&format!("GET {path} HTTP/1.1\r\n")));
    assert_eq!(results(&proxy, "http/1"), 1.0);
}

#[test]
fn a_partial_request_line_then_a_quiet_pause_is_still_http() {
    let app = RecordingOrigin::start();
    let proxy = Ringside::inbound_to(app.addr)
        .arg("--detect-quiet-pause", "100ms")
        .start();
    let mut client = HttpClient::connect(proxy.route());
    client.send(b"GET /pa");
    eventually("a verdict on half a request line", || {
        proxy.metrics().sum("protocol_detect_total", &[]) == 1.0
    });
    client.send(format!("rtial HTTP/1.1\r\nHost: app\r\n{FORGED}\r\n").as_bytes());
    assert_eq!(client.read(false).expect("a response").status, 200);
    drop(client);
    let received = received_without_forgery(&app, &proxy);
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(received[0].starts_with("GET /partial HTTP/1.1\r\n"));
    assert_eq!(results(&proxy, "http/1"), 1.0);
}

/// RFC 9112 §2.2: a server may skip empty lines before a request line, and
/// the application's server does, so detection must too.
#[test]
fn an_empty_line_before_the_request_line_is_tolerated() {
    let app = RecordingOrigin::start();
    let proxy = Ringside::inbound_to(app.addr).start();
    let mut client = HttpClient::connect(proxy.route());
    client.send(format!("\r\nGET /crlf HTTP/1.1\r\nHost: app\r\n{FORGED}\r\n").as_bytes());
    assert_eq!(client.read(false).expect("a response").status, 200);
    drop(client);
    let received = received_without_forgery(&app, &proxy);
    assert_eq!(received.len(), 1, "{received:?}");
    assert!(
        received[0].contains("GET /crlf HTTP/1.1\r\n"),
        "{received:?}"
    );
    assert_eq!(results(&proxy, "http/1"), 1.0);
}

/// Both ways a silent client is detected: beside a connection made while
/// it detects (speculation), and with none (no speculative connection
/// allowed), where ringside connects once the timeout has passed.
#[test]
fn a_client_silent_past_the_detect_timeout_then_sending_a_request_is_http() {
    for max_speculative in ["256", "0"] {
        let app = RecordingOrigin::start();
        let proxy = Ringside::inbound_to(app.addr)
            .arg("--detect-timeout", "300ms")
            .arg("--max-speculative-connections", max_speculative)
            .start();
        let mut client = HttpClient::connect(proxy.route());
        // The silence under test, not a wait for an outcome: nothing that
        // ringside shows tells that its detect timeout (300 ms, on a clock
        // up to 100 ms coarse) has passed.
        thread::sleep(Duration::from_millis(800));
        client.send(format!("GET /late HTTP/1.1\r\nHost: app\r\n{FORGED}\r\n").as_bytes());
        let response = client.read(false).expect("a response");
        assert_eq!(response.status, 200, "max_speculative {max_speculative}");
        drop(client);
        let received = received_without_forgery(&app, &proxy);
        let late: Vec<&String> = received.iter().filter(|r| !r.is_empty()).collect();
        assert_eq!(late.len(), 1, "{received:?}");
        assert!(late[0].starts_with("GET /late HTTP/1.1\r\n"), "{late:?}");
        assert_eq!(results(&proxy, "http/1"), 1.0);
        assert_eq!(results(&proxy, "timeout"), 0.0);
    }
}

/// Request lines that httparse refuses but a lenient server takes (Go any
/// `HTTP/1.x`, Python's `http.server` any whitespace): refused with a 400,
/// never passed on.
#[test]
fn request_lines_only_a_lenient_server_takes_are_refused_with_400() {
    let app = RecordingOrigin::start();
    let proxy = Ringside::inbound_to(app.addr).start();
    for line in ["GET / HTTP/1.9", "GET\t/\tHTTP/1.1", " GET / HTTP/1.1"] {
        let mut client = HttpClient::connect(proxy.route());
        client.send(format!("{line}\r\nHost: app\r\n{FORGED}\r\n").as_bytes());
        let response = client.read(false).expect("a response");
        assert_eq!(response.status, 400, "{line:?}");
    }
    proxy.wait_idle();
    assert!(app.received().iter().all(Vec::is_empty));
}

#[test]
fn a_head_past_the_http_limit_is_refused_with_431() {
    let app = RecordingOrigin::start();
    let proxy = Ringside::inbound_to(app.addr).start();
    let big = format!("x-big: {}\r\n", "a".repeat(70 * 1024));
    let mut client = HttpClient::connect(proxy.route());
    client.send(format!("GET / HTTP/1.1\r\nHost: app\r\n{big}{FORGED}\r\n").as_bytes());
    assert_eq!(client.read(false).expect("a response").status, 431);
    drop(client);
    proxy.wait_idle();
    assert!(app.received().iter().all(Vec::is_empty));
}

/// An application that times out a silent client (Apache's 408) acts
/// first, but is no server that speaks first: taken for one, it was
/// remembered, and every later client skipped detection, forged
/// `l5d-client-id` and all.
#[test]
fn an_application_timing_out_a_silent_client_is_not_taken_for_one_that_speaks_first() {
    let app = Origin::timing_out_silence(Duration::from_millis(300));
    let proxy = Ringside::inbound_to(app.addr).start();
    let mut silent = TcpStream::connect(proxy.route()).unwrap();
    silent.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    // Ends when ringside closes it, after the application's 408.
    let _ = silent.read_to_end(&mut Vec::new());

    let mut client = HttpClient::connect(proxy.route());
    client.send(format!("GET / HTTP/1.1\r\nHost: app\r\n{FORGED}\r\n").as_bytes());
    let response = client.read(false).expect("a response");
    let seen_by_app = String::from_utf8_lossy(&response.body).into_owned();
    assert_eq!(response.status, 200, "{seen_by_app}");
    assert!(!seen_by_app.contains("forged"), "{seen_by_app}");
    drop((silent, client));
    assert_eq!(results(&proxy, "learned_server_first"), 0.0);
    assert_eq!(results(&proxy, "silent"), 1.0);
}

/// A mesh peer's TLS for our own name, in Linkerd's older mode (straight
/// to the application's port, no transport header), with a hello as large
/// as a post-quantum one: terminated, and its identity set, wherever
/// rustls's shuffling puts the SNI. Before, a hello whose SNI fell past the
/// 1 KiB peek (about a third of them here) was passed through to the
/// application: 16 connections all terminated that way by chance is a
/// one-in-a-thousand run.
#[test]
fn a_mesh_peers_post_quantum_sized_hello_is_terminated_wherever_its_sni_falls() {
    let dir = identities();
    let app = RecordingOrigin::start();
    let proxy = Ringside::inbound_to(app.addr)
        .identity(&dir, "server", SERVER)
        .start();
    let config = large_hello_client(&dir, "client");
    const CONNECTIONS: usize = 16;
    for _ in 0..CONNECTIONS {
        let tcp = TcpStream::connect(proxy.route()).unwrap();
        tcp.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
        let server = rustls::pki_types::ServerName::try_from(SERVER).unwrap();
        let session = rustls::ClientConnection::new(config.clone(), server).unwrap();
        let mut tls = rustls::StreamOwned::new(session, tcp);
        let request =
            format!("GET /peer HTTP/1.1\r\nHost: app\r\n{FORGED}Connection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = tls.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }
    let received = received_without_forgery(&app, &proxy);
    assert_eq!(received.len(), CONNECTIONS, "{received:?}");
    for request in received {
        let request = request.to_lowercase();
        assert!(
            request.contains(&format!("l5d-client-id: {CLIENT}\r\n")),
            "{request}"
        );
    }
    let metrics = proxy.wait_idle();
    let terminated = [("client_id", CLIENT), ("tls", "true")];
    assert_eq!(
        metrics.sum("inbound_tcp_authz_allow_total", &terminated),
        CONNECTIONS as f64
    );
}
