//! Timeouts, as a client or an upstream that stalls meets them: each one
//! fires on a real connection, does what the README says (a 408, a quiet
//! close, a 504, an opaque verdict) and is counted in `/metrics`. Timeouts
//! are set short (hundreds of milliseconds) so the suite stays fast; the
//! tests wait for them to fire, never for readiness.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use http::Request;
use support::clients::h2::{call, connect, runtime};
use support::{
    echo_over, eventually, http_get, HttpClient, HttpOrigin, Origin, Ringside, TempPath,
    Unanswered, WAIT_LIMIT,
};

const PARTIAL_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n";

fn timeouts(metrics: &support::Metrics, timeout: &str) -> f64 {
    metrics.sum("ringside_timeouts_total", &[("timeout", timeout)])
}

fn detected(metrics: &support::Metrics, result: &str) -> f64 {
    metrics.sum("protocol_detect_total", &[("result", result)])
}

#[test]
fn a_stalled_head_is_a_408_on_any_request_of_a_keep_alive_connection() {
    let origin = HttpOrigin::start("a", Duration::ZERO);
    let proxy = Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--head-read-timeout", "300ms")
        .start();
    let mut client = HttpClient::connect(proxy.route());
    let first = client.get("/status/200").expect("a response");
    assert_eq!(first.status, 200);
    // The second request of the connection stalls in its head.
    client.send(PARTIAL_HEAD);
    let answer = client.read(false).expect("a 408");
    assert_eq!(answer.status, 408);
    let why = answer.header("ringside-proxy-error").unwrap_or_default();
    assert!(why.contains("request head not complete"), "{why:?}");
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(client.rest().is_empty(), "closed after the 408");
    let metrics = proxy.wait_idle();
    assert_eq!(timeouts(&metrics, "head_read"), 1.0);
    assert_eq!(
        metrics.sum("response_total", &[("status_code", "408")]),
        1.0
    );
}

#[test]
fn an_idle_keep_alive_client_is_closed_without_an_answer() {
    let origin = HttpOrigin::start("a", Duration::ZERO);
    let proxy = Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--client-idle-timeout", "300ms")
        .start();
    let mut client = HttpClient::connect(proxy.route());
    assert_eq!(client.get("/status/200").expect("a response").status, 200);
    assert!(client.rest().is_empty(), "closed quietly, no 408");
    let metrics = proxy.wait_idle();
    assert_eq!(timeouts(&metrics, "client_idle"), 1.0);
    assert_eq!(timeouts(&metrics, "head_read"), 0.0);
    assert_eq!(metrics.sum("response_total", &[]), 1.0);
}

#[test]
fn stalled_clients_do_not_keep_application_connections() {
    let origin = Origin::silent();
    // A hold of 2 s (the quiet pause) leaves the second client time to
    // arrive while the first one's speculative connection is held.
    let proxy = Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--detect-quiet-pause", "2s")
        .arg("--max-speculative-connections", "1")
        .start();
    let mut first = TcpStream::connect(proxy.route()).unwrap();
    first.write_all(PARTIAL_HEAD).unwrap();
    let speculative =
        |proxy: &Ringside| proxy.metrics().sum("ringside_speculative_connections", &[]);
    eventually("the first client's speculative connection", || {
        speculative(&proxy) == 1.0
    });
    // Over the limit: the second client detects before connecting, and
    // a head that never completes never connects.
    let mut second = TcpStream::connect(proxy.route()).unwrap();
    second.write_all(PARTIAL_HEAD).unwrap();
    eventually("the second client skipped speculation", || {
        proxy
            .metrics()
            .sum("ringside_speculative_skipped_total", &[])
            == 1.0
    });
    // After the hold, the first connection goes to the pool, whose idle
    // timeout closes it: no stalled client keeps one.
    eventually("the hold released", || speculative(&proxy) == 0.0);
    eventually("the application's connections closed", || {
        origin.open() == 0
    });
    assert_eq!(origin.accepted(), 1);
    let metrics = proxy.metrics();
    assert_eq!(timeouts(&metrics, "speculative_hold"), 1.0);
    assert_eq!(detected(&metrics, "http/1"), 2.0);
    // Both clients are still there, waiting on their heads.
    for client in [&mut first, &mut second] {
        client.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let still_open = client.read(&mut byte).unwrap_err();
        assert_eq!(still_open.kind(), std::io::ErrorKind::WouldBlock);
    }
}

#[test]
fn a_silent_upstream_is_a_504_after_the_routes_response_timeout() {
    let origin = Origin::silent();
    let config = TempPath::holding(format!(
        "[runtime]\nshards = 1\n[[route]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{}\"]\nresponse_timeout = \"300ms\"\n",
        origin.addr
    ));
    let proxy = Ringside::start(&["--config", config.as_str()]);
    let mut client = HttpClient::connect(proxy.route());
    let answer = client.get("/").expect("a 504");
    assert_eq!(answer.status, 504);
    let why = answer.header("ringside-proxy-error").unwrap_or_default();
    assert!(why.contains("no response head from upstream"), "{why:?}");
    let metrics = proxy.metrics();
    assert_eq!(timeouts(&metrics, "response"), 1.0);
    assert_eq!(
        metrics.sum("response_total", &[("status_code", "504")]),
        1.0
    );
    // The stalled upstream connection is closed, not pooled.
    eventually("the upstream connection closed", || origin.open() == 0);
}

#[test]
fn a_silent_http2_upstream_is_a_504_on_the_stream() {
    let origin = Origin::silent();
    let proxy = Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--response-timeout", "300ms")
        .start();
    let addr = proxy.route();
    let answer = runtime().block_on(async move {
        let mut sender = connect(addr).await;
        let request = Request::get("http://silent.local/").body(()).unwrap();
        call(&mut sender, request, Vec::new()).await.unwrap()
    });
    assert_eq!(answer.status, 504);
    let why = answer.headers.get("ringside-proxy-error").unwrap();
    assert!(
        why.to_str().unwrap().contains("no response head"),
        "{why:?}"
    );
    let metrics = proxy.metrics();
    assert_eq!(timeouts(&metrics, "response"), 1.0);
}

#[test]
fn an_idle_opaque_connection_is_closed_and_a_busy_one_is_not() {
    let origin = Origin::echo();
    let proxy = Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--opaque-idle-timeout", "1s")
        .start();
    let mut client = TcpStream::connect(proxy.route()).unwrap();
    client.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    // A NUL byte is no protocol's: opaque at once. Then a byte every
    // 100 ms for 2.5 s, longer than the timeout, keeps it open.
    for round in 0..25u8 {
        client.write_all(&[0, round]).unwrap();
        let mut echoed = [0u8; 2];
        client.read_exact(&mut echoed).unwrap();
        assert_eq!(echoed, [0, round]);
        thread::sleep(Duration::from_millis(100));
    }
    // Then nothing: closed.
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let metrics = proxy.wait_idle();
    assert_eq!(timeouts(&metrics, "opaque_idle"), 1.0);
    assert_eq!(detected(&metrics, "unknown"), 1.0);
}

#[test]
fn a_quiet_client_with_an_undecided_prefix_is_answered_without_the_detect_timeout() {
    let origin = Origin::echo();
    // A detect timeout longer than the read timeout: only the quiet pause
    // can get these answers back in time.
    let proxy = Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--detect-timeout", "60s")
        .start();
    let tokens: [&[u8]; 4] = [b"ping", b"HELLO", b"0123456789abcdef", b"GET"];
    for token in tokens {
        let mut client = TcpStream::connect(proxy.route()).unwrap();
        client.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
        client.write_all(token).unwrap();
        let mut echoed = vec![0u8; token.len()];
        client.read_exact(&mut echoed).unwrap();
        assert_eq!(echoed, token);
    }
    let metrics = proxy.wait_idle();
    assert_eq!(detected(&metrics, "quiet"), 4.0);
    assert_eq!(detected(&metrics, "timeout"), 0.0);
}

#[test]
fn a_head_sent_byte_by_byte_with_short_gaps_is_still_http() {
    let origin = HttpOrigin::start("a", Duration::ZERO);
    let proxy = Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--detect-quiet-pause", "1s")
        .start();
    let mut client = HttpClient::connect(proxy.route());
    for byte in b"GET /status/200 HTTP/1.1\r\nHost: slow.local\r\n\r\n" {
        client.send(&[*byte]);
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(client.read(false).expect("a response").status, 200);
    drop(client);
    let metrics = proxy.wait_idle();
    assert_eq!(detected(&metrics, "http/1"), 1.0);
    assert_eq!(detected(&metrics, "quiet"), 0.0);
}

#[test]
fn a_client_that_sends_nothing_waits_for_the_detect_timeout_not_the_pause() {
    let origin = Origin::echo();
    let proxy = Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--detect-timeout", "1s")
        .arg("--detect-quiet-pause", "100ms")
        .start();
    let client = TcpStream::connect(proxy.route()).unwrap();
    client.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    eventually("the detect timeout", || {
        detected(&proxy.metrics(), "timeout") == 1.0
    });
    assert_eq!(echo_over(&client, b"late"), b"late");
    let metrics = proxy.wait_idle();
    assert_eq!(detected(&metrics, "quiet"), 0.0);
}

#[test]
fn an_upstream_that_never_answers_the_handshake_is_a_connect_timeout() {
    let upstream = Unanswered::start();
    let proxy = Ringside::route_to([upstream.addr])
        .shards(1)
        .arg("--connect-timeout", "300ms")
        .start();
    let (status, body) = http_get(proxy.route(), "/");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("timed out"), "{body}");
    let metrics = proxy.wait_idle();
    let timeouts = [("reason", "timeout")];
    assert!(metrics.sum("ringside_upstream_connect_failures_total", &timeouts) >= 1.0);
}
