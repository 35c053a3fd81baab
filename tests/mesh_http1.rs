//! HTTP/1 across the mesh as streams of one HTTP/2 mTLS connection per
//! peer (`l5d-orig-proto`, as Linkerd's proxies carry it): a client side
//! whose route's upstream is a mesh peer, the server side's inbound
//! listener, and a real HTTP/1.1 application behind it. Whatever the
//! client connections, the application sees HTTP/1 and the peers share
//! one connection; bodies of every framing arrive byte-exact, and a body
//! cut at the application is never passed off as complete.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;

use support::identity::{client_side, identities, server_side, CLIENT, SERVER};
use support::*;

/// Waits until the server side has answered `requests`, and returns its
/// metrics then (the meshed connection stays open, pooled).
fn answered(server: &Ringside, requests: f64) -> Metrics {
    let mut last = None;
    eventually("every request answered", || {
        let metrics = server.metrics();
        let done = metrics.sum("response_total", &[]) == requests;
        last = Some(metrics);
        done
    });
    last.unwrap()
}

fn expected_body(len: u64) -> Vec<u8> {
    (0..len).map(body_byte).collect()
}

#[test]
fn requests_of_many_client_connections_share_one_http2_mtls_connection() {
    let dir = identities();
    let web = HttpOrigin::start("web", std::time::Duration::ZERO);
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, web.addr, &server);

    // Connections one after another, then some at once.
    for _ in 0..5 {
        let mut http = HttpClient::connect(client.route());
        for _ in 0..3 {
            let response = http.get("/size/1000").expect("a response");
            assert_eq!(response.status, 200);
            assert_eq!(response.body, expected_body(1000));
            assert_eq!(response.header("l5d-orig-proto"), None);
        }
    }
    let route = client.route();
    let parallel: Vec<_> = (0..4)
        .map(|_| {
            thread::spawn(move || {
                let mut http = HttpClient::connect(route);
                for _ in 0..10 {
                    let response = http.get("/size/100").expect("a response");
                    assert_eq!(response.body, expected_body(100));
                }
            })
        })
        .collect();
    for thread in parallel {
        thread.join().unwrap();
    }

    let metrics = answered(&server, 55.0);
    assert_eq!(web.requests(), 55, "the application answered HTTP/1");
    let src = [("peer", "src"), ("tls", "true")];
    assert_eq!(
        metrics.sum("tcp_open_total", &src),
        2.0,
        "between the peers, the connection made while detecting the first \
         client (it declared no protocol and carried that client's first \
         request as HTTP/1) and one HTTP/2 connection for all the rest"
    );
    let dst = [("peer", "dst"), ("server_id", SERVER)];
    assert_eq!(client.metrics().sum("tcp_open_total", &dst), 2.0);
    // Linkerd's TLS labels on the HTTP series too: the client's identity
    // inbound, the server's outbound.
    let inbound = [
        ("direction", "inbound"),
        ("tls", "true"),
        ("client_id", CLIENT),
    ];
    assert_eq!(metrics.sum("request_total", &inbound), 55.0);
    let ok = [("status_code", "200"), ("client_id", CLIENT)];
    assert_eq!(metrics.sum("response_total", &ok), 55.0);
    let outbound = [("tls", "true"), ("server_id", SERVER)];
    assert_eq!(client.metrics().sum("request_total", &outbound), 55.0);
}

#[test]
fn bodies_of_every_framing_arrive_byte_exact_both_ways() {
    let dir = identities();
    let web = HttpOrigin::start("web", std::time::Duration::ZERO);
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, web.addr, &server);
    let mut http = HttpClient::connect(client.route());

    // Uploads with a length, in chunks, and after `Expect: 100-continue`.
    let body = random_bytes(1 << 20, 5);
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: db\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    http.send(&[head.as_bytes(), &body].concat());
    let response = http.read(false).expect("a response");
    assert_eq!(response.body, upload_answer(&body).as_bytes());

    let mut chunked =
        b"POST /upload HTTP/1.1\r\nHost: db\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in body.chunks(100_000) {
        chunked.extend_from_slice(format!("{:x};ext=1\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\nx-trailer: t\r\n\r\n");
    http.send(&chunked);
    let response = http.read(false).expect("a response");
    assert_eq!(response.body, upload_answer(&body).as_bytes());

    http.send(
        b"POST /upload HTTP/1.1\r\nHost: db\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let interim = http.read(false).expect("an interim response");
    assert_eq!(interim.status, 100, "the client is told to go on");
    http.send(b"hello");
    let response = http.read(false).expect("a response");
    assert_eq!(response.body, upload_answer(b"hello").as_bytes());

    // Downloads: chunked, close-delimited (re-framed in chunks for the
    // client, whose connection stays open), HEAD and 204 without a body.
    let response = http.get("/chunked/300000").expect("a response");
    assert_eq!(response.body, expected_body(300_000));
    let response = http.get("/close/5000").expect("a response");
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.body, expected_body(5000));
    http.send(b"HEAD /size/100 HTTP/1.1\r\nHost: db\r\n\r\n");
    let response = http.read(true).expect("a response");
    assert_eq!(response.header("content-length"), Some("100"));
    let response = http.get("/status/204").expect("a response");
    assert_eq!((response.status, response.body.len()), (204, 0));
    // Still the same client connection, still answering.
    let response = http.get("/size/10").expect("a response");
    assert_eq!(response.body, expected_body(10));

    // An HTTP/1.0 client gets the body until the connection closes.
    let mut old = TcpStream::connect(client.route()).unwrap();
    old.write_all(b"GET /chunked/20000 HTTP/1.0\r\nHost: db\r\n\r\n")
        .unwrap();
    let response = read_response(&mut BufReader::new(old), false).expect("a response");
    assert_eq!(response.header("transfer-encoding"), None);
    assert_eq!(response.body, expected_body(20_000));
    answered(&server, 9.0);
}

#[test]
fn a_body_cut_at_the_application_reaches_the_client_cut_and_reset() {
    let dir = identities();
    let web = HttpOrigin::start("web", std::time::Duration::ZERO);
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, web.addr, &server);
    let mut http = HttpClient::connect(client.route());
    // Warm the mesh connection up, so the cut request rides it.
    assert_eq!(http.get("/size/10").expect("a response").status, 200);

    // The application promises 100,000 bytes and sends half.
    http.send(b"GET /truncate/100000 HTTP/1.1\r\nHost: db\r\n\r\n");
    let mut received = Vec::new();
    let ended = http.reader.read_to_end(&mut received);
    let text = String::from_utf8_lossy(&received[..received.len().min(200)]).into_owned();
    assert!(text.contains("content-length: 100000"), "{text}");
    let head_len = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    assert!(
        received.len() - head_len < 100_000,
        "a cut body must not arrive whole"
    );
    assert!(
        ended.is_err(),
        "the client connection is reset, not closed as if complete"
    );
}

#[test]
fn a_slow_application_is_answered_504_by_the_server_side_in_time() {
    let dir = identities();
    let slow = HttpOrigin::start("slow", std::time::Duration::from_secs(5));
    let server = server_side(&dir, &[("--response-timeout", "300ms")]);
    let client = client_side(&dir, slow.addr, &server);
    let mut http = HttpClient::connect(client.route());
    let started = std::time::Instant::now();
    let response = http.get("/size/10").expect("a response");
    assert_eq!(response.status, 504);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    let timeouts = [("timeout", "response"), ("direction", "inbound")];
    let metrics = server.metrics();
    assert_eq!(metrics.sum("ringside_timeouts_total", &timeouts), 1.0);
}

#[test]
fn a_keep_alive_the_application_closed_under_a_request_is_retried() {
    let dir = identities();
    let app = Origin::closing_its_first_keep_alive();
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, app.addr, &server);
    let mut http = HttpClient::connect(client.route());
    for _ in 0..3 {
        let response = http.get("/").expect("a response");
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"ok"[..])
        );
    }
}

#[test]
fn what_is_not_a_mesh_peer_is_labelled_with_linkerds_reason() {
    let dir = identities();
    // 127.0.0.2 is not in the client side's mesh network (127.0.0.1).
    let outside = HttpOrigin::start_on("127.0.0.2:0", "outside", std::time::Duration::ZERO);
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, outside.addr, &server);
    let mut http = HttpClient::connect(client.route());
    assert_eq!(http.get("/size/10").expect("a response").status, 200);
    let reason = [
        ("tls", "no_identity"),
        ("no_tls_reason", "not_provided_by_service_discovery"),
    ];
    let metrics = client.metrics();
    assert_eq!(metrics.sum("request_total", &reason), 1.0);
    let dst = [reason[0], reason[1], ("peer", "dst")];
    assert_eq!(metrics.sum("tcp_open_total", &dst), 1.0);
}

#[test]
fn an_http1_0_request_reaches_the_application_as_http1_0_and_its_body_until_close_comes_back() {
    let dir = identities();
    // An HTTP/1.0 application: no length, the body ends with the close.
    let app = RecordingOrigin::closing_after(b"HTTP/1.0 200 OK\r\nx-old: yes\r\n\r\nold body");
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, app.addr, &server);
    let requests: [&[u8]; 2] = [
        b"GET /old HTTP/1.0\r\nHost: db\r\n\r\n",
        b"POST /old HTTP/1.0\r\nHost: db\r\nContent-Length: 5\r\n\r\nhello",
    ];
    for request in requests {
        let mut old = TcpStream::connect(client.route()).unwrap();
        old.write_all(request).unwrap();
        let mut reader = BufReader::new(old);
        let response = read_response(&mut reader, false).expect("a response");
        assert_eq!(
            (response.status, response.header("x-old")),
            (200, Some("yes"))
        );
        assert_eq!(response.header("transfer-encoding"), None);
        assert_eq!(response.body, b"old body");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert!(
            rest.is_empty(),
            "the client's connection ends with the body"
        );
    }
    let received = app.settled(&server.wait_idle());
    let received: Vec<String> = received
        .iter()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .collect();
    assert_eq!(received.len(), 2, "{received:?}");
    assert!(
        received[0].starts_with("GET /old HTTP/1.0\r\n"),
        "{received:?}"
    );
    assert!(
        received[1].starts_with("POST /old HTTP/1.0\r\n"),
        "{received:?}"
    );
    assert!(received[1].ends_with("\r\n\r\nhello"), "{received:?}");
    for request in &received {
        let lower = request.to_lowercase();
        assert!(lower.contains("\r\nhost: db\r\n"), "{request}");
        assert!(!lower.contains("transfer-encoding"), "{request}");
    }
}
