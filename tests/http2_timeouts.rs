//! The deadlines of a client's HTTP/2 connection: its preface within the
//! head read timeout, and then, while it has no stream in flight, the
//! client idle timeout, as for an HTTP/1 keep-alive connection. A quiet
//! client is closed (with a GOAWAY once it is past its preface) and
//! counted; a client with a stream in flight is not idle. Timeouts are set
//! short so the suite stays fast; the tests wait for them to fire.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use http::Request;
use support::clients::h2::{call, connect_watched, eventually_async, runtime};
use support::*;

/// The client connection preface: the magic, then an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
const GOAWAY: u8 = 0x7;

fn timeouts(metrics: &Metrics, timeout: &str) -> f64 {
    metrics.sum("ringside_timeouts_total", &[("timeout", timeout)])
}

/// Sends `bytes` and reads until ringside closes the connection, which
/// must come before `WAIT_LIMIT`; returns what came and how long it took.
fn closed_after_sending(addr: std::net::SocketAddr, bytes: &[u8]) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    client.write_all(bytes).unwrap();
    let mut received = Vec::new();
    client
        .read_to_end(&mut received)
        .expect("ringside closes the connection");
    (received, started.elapsed())
}

/// The error code of the GOAWAY frame among `frames`, if one came.
fn goaway_code(mut frames: &[u8]) -> Option<u32> {
    while frames.len() >= 9 {
        let len = u32::from_be_bytes([0, frames[0], frames[1], frames[2]]) as usize;
        let payload = frames.get(9..9 + len)?;
        if frames[3] == GOAWAY {
            return Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
        }
        frames = &frames[9 + len..];
    }
    None
}

#[test]
fn a_client_that_sends_its_preface_and_goes_quiet_gets_a_goaway_and_a_close() {
    let origin = H2Origin::start();
    let proxy = Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--client-idle-timeout", "500ms")
        .start();
    let (received, took) = closed_after_sending(proxy.route(), PREFACE);
    assert!(took >= Duration::from_millis(500), "closed early: {took:?}");
    assert_eq!(goaway_code(&received), Some(0), "a GOAWAY with NO_ERROR");
    let metrics = proxy.wait_idle();
    assert_eq!(timeouts(&metrics, "client_idle"), 1.0);
    assert_eq!(timeouts(&metrics, "head_read"), 0.0);
}

#[test]
fn a_client_that_never_finishes_its_preface_is_closed_on_a_route_declared_http2() {
    let origin = H2Origin::start();
    let config = TempPath::holding(format!(
        "[runtime]\nshards = 1\n\n[[route]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{}\"]\nprotocol = \"http2\"\n",
        origin.addr
    ));
    // The idle timeout is the default minute: only the preface's deadline
    // can close it in time.
    let proxy = Ringside::start(&["--config", config.as_str(), "--head-read-timeout", "500ms"]);
    let (_, took) = closed_after_sending(proxy.route(), &PREFACE[..16]);
    assert!(took >= Duration::from_millis(500), "closed early: {took:?}");
    let metrics = proxy.wait_idle();
    assert_eq!(timeouts(&metrics, "head_read"), 1.0);
    assert_eq!(timeouts(&metrics, "client_idle"), 0.0);
}

#[test]
fn a_connection_with_a_stream_in_flight_is_not_idle_until_the_stream_ends() {
    let origin = H2Origin::start();
    let proxy = Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--client-idle-timeout", "500ms")
        .start();
    let addr = proxy.route();
    let idle = |proxy: &Ringside| timeouts(&proxy.metrics(), "client_idle");
    runtime().block_on(async {
        let (mut sender, connection) = connect_watched(addr).await;
        // The origin never answers `/stall`: its stream stays in flight.
        let stall = Request::get("http://h2.local/stall").body(()).unwrap();
        let (response, upload) = sender.send_request(stall, true).unwrap();
        eventually_async("the stalled stream at the origin", || {
            origin.requests() == 1
        })
        .await;
        // Three idle timeouts pass with nothing but that stream: time
        // itself is what is tested here.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let echo = Request::post("http://h2.local/echo").body(()).unwrap();
        let answer = call(&mut sender, echo, b"still here".to_vec()).await;
        assert_eq!(answer.expect("an answer").body, b"still here");
        assert_eq!(idle(&proxy), 0.0);
        assert!(!connection.is_finished());
        // The stream ends (reset by the client): now it is idle. The
        // sender stays, or the client would close the connection itself.
        drop((response, upload));
        eventually_async("the idle connection closed", || connection.is_finished()).await;
        let ended = connection.await.unwrap();
        assert!(ended.is_ok(), "a GOAWAY without an error: {ended:?}");
        drop(sender);
    });
    assert_eq!(idle(&proxy), 1.0);
}
