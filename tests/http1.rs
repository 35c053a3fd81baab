//! HTTP/1.1 through ringside with real clients (curl and a raw client) and
//! a real origin: keep-alive, bodies of every framing, HEAD and bodiless
//! statuses, pipelining, 100-continue, upgrades, balancing, the errors a
//! client sees, and the request metrics a user scrapes.

mod support;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;

#[test]
fn curl_keeps_one_connection_alive_and_requests_are_counted() {
    let origin = HttpOrigin::start("a", Duration::ZERO);
    let proxy = Ringside::routing_to([origin.addr]);
    let base = format!("http://{}", proxy.route());
    let output = curl(&[
        "-v",
        &format!("{base}/one"),
        &format!("{base}/two"),
        &format!("{base}/three"),
    ]);
    assert_eq!(output.text(), "hello from ahello from ahello from a");
    let verbose = &output.stderr;
    assert_eq!(
        verbose.matches("Re-using existing connection").count(),
        2,
        "{verbose}"
    );

    let metrics = proxy.wait_idle();
    let authority = proxy.route().to_string();
    let ok = [
        ("authority", authority.as_str()),
        ("status_code", "200"),
        ("classification", "success"),
    ];
    assert_eq!(
        metrics.sum("request_total", &[("authority", &authority)]),
        3.0
    );
    assert_eq!(metrics.sum("response_total", &ok), 3.0);
    assert_eq!(metrics.sum("response_latency_ms_count", &ok), 3.0);
    assert_eq!(metrics.sum("tcp_open_total", &[("peer", "src")]), 1.0);
    // One upstream connection served all three requests.
    assert_eq!(metrics.sum("tcp_open_total", &[("peer", "dst")]), 1.0);
}

#[test]
fn chunked_100_mib_download_and_upload_are_byte_exact() {
    const SIZE: u64 = 100 << 20;
    let origin = HttpOrigin::start("a", Duration::ZERO);
    let proxy = Ringside::routing_to([origin.addr]);
    let base = format!("http://{}", proxy.route());

    let got = curl(&[&format!("{base}/chunked/{SIZE}")]).body;
    assert_eq!(got.len() as u64, SIZE);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, b)| *b == body_byte(i as u64)),
        "download differs"
    );

    let data = random_bytes(SIZE as usize, 77);
    let upload = TempPath::holding(&data);
    let answer = curl(&[
        "-T",
        upload.as_str(),
        "-H",
        "Transfer-Encoding: chunked",
        &format!("{base}/upload"),
    ]);
    assert_eq!(answer.text(), upload_answer(&data));
}

#[test]
fn head_bodiless_statuses_and_pipelined_requests_keep_the_connection_in_step() {
    let origin = HttpOrigin::start("a", Duration::ZERO);
    let proxy = Ringside::routing_to([origin.addr]);
    let mut client = HttpClient::connect(proxy.route());
    // Four requests in one write: answered in order, each framed right.
    client.send(
        b"HEAD /size/100 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /status/204 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /status/304 HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /size/5 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let head = client.read(true).unwrap();
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("100"))
    );
    assert_eq!(client.read(false).unwrap().status, 204);
    assert_eq!(client.read(false).unwrap().status, 304);
    let last = client.read(false).unwrap();
    assert_eq!(
        (last.status, last.body.as_slice()),
        (200, &[0u8, 1, 2, 3, 4][..])
    );
    // Content-length and close-delimited bodies too.
    assert_eq!(client.get("/size/70000").unwrap().body.len(), 70000);
    let closing = client.get("/close/1000").unwrap();
    assert_eq!(
        (closing.body.len(), closing.header("connection")),
        (1000, Some("close"))
    );
}

#[test]
fn expect_100_continue_is_passed_through() {
    let origin = HttpOrigin::start("a", Duration::ZERO);
    let proxy = Ringside::routing_to([origin.addr]);
    let data = random_bytes(300_000, 5);
    let upload = TempPath::holding(&data);
    let answer = curl(&[
        "-v",
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "30",
        "--data-binary",
        &format!("@{}", upload.as_str()),
        &format!("http://{}/upload", proxy.route()),
    ]);
    let verbose = &answer.stderr;
    assert!(verbose.contains("< HTTP/1.1 100 Continue"), "{verbose}");
    assert_eq!(answer.text(), upload_answer(&data));
}

#[test]
fn an_upgrade_becomes_a_tunnel_with_bytes_both_ways() {
    let origin = HttpOrigin::start("a", Duration::ZERO);
    let proxy = Ringside::routing_to([origin.addr]);
    let mut client = HttpClient::connect(proxy.route());
    client.send(b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly bytes;");
    let switched = client.read(false).unwrap();
    assert_eq!(
        (switched.status, switched.header("upgrade")),
        (101, Some("echo"))
    );
    let mut echoed = vec![0u8; 12];
    std::io::Read::read_exact(&mut client.reader, &mut echoed).unwrap();
    assert_eq!(echoed, b"early bytes;");
    let message = random_bytes(200_000, 3);
    let mut writer = client.reader.get_ref().try_clone().unwrap();
    let sent = message.clone();
    let sender = std::thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut back = vec![0u8; message.len()];
    std::io::Read::read_exact(&mut client.reader, &mut back).unwrap();
    sender.join().unwrap();
    assert_eq!(back, message);
    drop(client);
    let metrics = proxy.wait_idle();
    assert_eq!(
        metrics.sum("response_total", &[("status_code", "101")]),
        1.0
    );
}

#[test]
fn a_websocket_session_passes_through_both_ways() {
    let (origin, server) = websocket_echo();
    let proxy = Ringside::routing_to([origin]);
    let stream = std::net::TcpStream::connect(proxy.route()).unwrap();
    let url = format!("ws://{}/chat", proxy.route());
    let (mut socket, response) = tungstenite::client(url.as_str(), stream).unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..100 {
        let text = format!("message {i}");
        socket
            .send(tungstenite::Message::text(text.clone()))
            .unwrap();
        assert_eq!(socket.read().unwrap().into_text().unwrap().as_str(), text);
    }
    websocket_binary_echo_and_close(&mut socket, 8);
    drop(socket);
    server.join().unwrap();
    let metrics = proxy.wait_idle();
    assert_eq!(
        metrics.sum("response_total", &[("status_code", "101")]),
        1.0
    );
    assert!(metrics.sum("tcp_read_bytes_total", &[("peer", "src")]) > (1 << 20) as f64);
}

#[test]
fn errors_come_back_fast_with_their_status_and_reason() {
    // Nothing listens behind this route: 502 first, then 503 while the
    // endpoint is ejected.
    let down = closed_port();
    let proxy = Ringside::routing_to([down.addr]);
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let mut client = HttpClient::connect(proxy.route());
        let response = client.get("/").unwrap();
        assert!(
            response.header("ringside-proxy-error").is_some(),
            "{response:?}"
        );
        statuses.push(response.status);
    }
    assert_eq!(statuses[0], 502, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 502 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&503), "{statuses:?}");

    let origin = HttpOrigin::start("a", Duration::ZERO);
    let proxy = Ringside::routing_to([origin.addr]);
    let mut client = HttpClient::connect(proxy.route());
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\nbad header line\r\n\r\n");
    let bad = client.read(false).unwrap();
    assert_eq!((bad.status, bad.header("connection")), (400, Some("close")));
    assert!(bad.header("ringside-proxy-error").is_some());

    let mut client = HttpClient::connect(proxy.route());
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(70 * 1024)
    );
    client.send(huge.as_bytes());
    assert_eq!(client.read(false).unwrap().status, 431);

    // An upstream that dies mid-body: the client's connection ends, and
    // never with a body passed off as complete.
    let mut client = HttpClient::connect(proxy.route());
    assert!(
        client.get("/truncate/100000").is_none(),
        "a cut body must not read as a response"
    );
}

#[test]
fn the_fast_origin_serves_most_requests_and_a_dead_one_costs_nothing() {
    let fast = HttpOrigin::start("fast", Duration::ZERO);
    let slow = HttpOrigin::start("slow", Duration::from_millis(30));
    let proxy = Ringside::routing_to([fast.addr, slow.addr]);
    let mut client = HttpClient::connect(proxy.route());
    for _ in 0..20 {
        assert_eq!(client.get("/").unwrap().status, 200); // warm-up
    }
    let (fast_before, slow_before) = (fast.requests(), slow.requests());
    for _ in 0..200 {
        assert_eq!(client.get("/").unwrap().status, 200);
    }
    let (to_fast, to_slow) = (fast.requests() - fast_before, slow.requests() - slow_before);
    assert!(to_fast >= 180, "fast {to_fast}, slow {to_slow}");

    let alive = HttpOrigin::start("alive", Duration::ZERO);
    let down = closed_port();
    let proxy = Ringside::routing_to([alive.addr, down.addr]);
    for i in 0..50 {
        let mut client = HttpClient::connect(proxy.route());
        assert_eq!(client.get("/").unwrap().status, 200, "request {i}");
    }
    assert_eq!(alive.requests(), 50);
}

#[test]
fn response_metrics_match_the_statuses_sent() {
    let origin = HttpOrigin::start("a", Duration::ZERO);
    let proxy = Ringside::routing_to([origin.addr]);
    let mut client = HttpClient::connect(proxy.route());
    for (status, times) in [("200", 3), ("404", 2), ("503", 1)] {
        for _ in 0..times {
            assert_eq!(
                client
                    .get(&format!("/status/{status}"))
                    .unwrap()
                    .status
                    .to_string(),
                status
            );
        }
    }
    drop(client);
    let metrics = proxy.wait_idle();
    let count = |status: &str, class: &str| {
        metrics.sum(
            "response_total",
            &[("status_code", status), ("classification", class)],
        )
    };
    assert_eq!(
        (
            count("200", "success"),
            count("404", "success"),
            count("503", "failure")
        ),
        (3.0, 2.0, 1.0)
    );
    assert_eq!(
        metrics.sum("request_total", &[("authority", "test.local")]),
        6.0
    );
    assert_eq!(
        metrics.sum("response_latency_ms_bucket", &[("le", "+Inf")]),
        6.0
    );
}

#[test]
fn a_keep_alive_the_only_endpoint_closed_under_a_request_is_retried_on_a_new_connection() {
    let origin = Origin::closing_its_first_keep_alive();
    let proxy = Ringside::routing_to([origin.addr]);
    let mut http = HttpClient::connect(proxy.route());
    for _ in 0..2 {
        let response = http.get("/").expect("a response");
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"ok"[..])
        );
    }
    assert_eq!(origin.accepted(), 2, "the retry took a new connection");
}

#[test]
fn an_http1_0_request_goes_upstream_as_http1_0_and_its_body_until_close_comes_back() {
    // An HTTP/1.0 application: no length, the body ends with the close.
    let app = RecordingOrigin::closing_after(b"HTTP/1.0 200 OK\r\nx-old: yes\r\n\r\nold body");
    let proxy = Ringside::routing_to([app.addr]);
    let mut old = TcpStream::connect(proxy.route()).unwrap();
    old.write_all(b"GET /old HTTP/1.0\r\nHost: app\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(old);
    let response = read_response(&mut reader, false).expect("a response");
    assert_eq!(
        (response.status, response.header("x-old")),
        (200, Some("yes"))
    );
    assert_eq!(response.body, b"old body");
    let received = app.settled(&proxy.wait_idle());
    assert_eq!(received.len(), 1);
    let request = String::from_utf8_lossy(&received[0]).into_owned();
    assert!(request.starts_with("GET /old HTTP/1.0\r\n"), "{request}");
    assert!(request.contains("\r\nHost: app\r\n"), "{request}");
}
