//! Protocol detection on real connections: what each kind of client is
//! detected as, that detection never changes a byte, and that servers that
//! speak first are not kept waiting.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::pq_client_hello::{RUSTLS_PQ_CLIENT_HELLO, RUSTLS_PQ_SNI};
use support::*;

const GET: &[u8] = b"GET /hello HTTP/1.1\r\nHost: example.test\r\nUser-Agent: test\r\n\r\n";
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn results(proxy: &Ringside, result: &str) -> f64 {
    proxy
        .wait_idle()
        .sum("protocol_detect_total", &[("result", result)])
}

/// Sends `bytes` (one byte per write when `trickle`), half-closes, and
/// returns the echo.
fn echo_bytes(proxy: &Ringside, bytes: &[u8], trickle: bool) -> Vec<u8> {
    let mut stream = TcpStream::connect(proxy.route()).unwrap();
    stream.set_nodelay(true).unwrap();
    if trickle {
        for byte in bytes {
            stream.write_all(&[*byte]).unwrap();
        }
    } else {
        stream.write_all(bytes).unwrap();
    }
    stream.shutdown(Shutdown::Write).unwrap();
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).unwrap();
    echoed
}

#[test]
fn http1_and_http2_are_detected_whole_or_one_byte_at_a_time() {
    let web = HttpOrigin::start("web", Duration::ZERO);
    let web_proxy = Ringside::routing_to([web.addr]);
    for trickle in [false, true] {
        let answer = String::from_utf8(echo_bytes(&web_proxy, GET, trickle)).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("hello from web"),
            "{answer}"
        );
    }
    assert_eq!(results(&web_proxy, "http/1"), 2.0);

    let h2_origin = H2Origin::start();
    let proxy = Ringside::routing_to([h2_origin.addr]);
    for trickle in [false, true] {
        let mut client = TcpStream::connect(proxy.route()).unwrap();
        client.set_nodelay(true).unwrap();
        let mut preface = H2_PREFACE.to_vec();
        preface.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // an empty SETTINGS frame
        let chunks: Vec<&[u8]> = if trickle {
            preface.chunks(1).collect()
        } else {
            vec![&preface]
        };
        for chunk in chunks {
            client.write_all(chunk).unwrap();
        }
        // ringside answers as an HTTP/2 server: its SETTINGS frame.
        let mut frame_header = [0u8; 9];
        client.read_exact(&mut frame_header).unwrap();
        assert_eq!(frame_header[3], 4, "a SETTINGS frame");
    }
    assert_eq!(results(&proxy, "http/2"), 2.0);
    let metrics = proxy.metrics();
    assert_eq!(
        metrics.sum("protocol_detect_duration_seconds_count", &[]),
        2.0
    );
}

#[test]
fn garbage_empty_and_abandoned_connections_are_forwarded_as_unknown() {
    let origin = Origin::echo();
    let proxy = Ringside::routing_to([origin.addr]);
    let garbage = random_bytes(3000, 42);
    assert_eq!(echo_bytes(&proxy, &garbage, false), garbage);
    assert_eq!(echo_bytes(&proxy, &[b'G'; 1024], false), vec![b'G'; 1024]);
    assert_eq!(
        echo_bytes(&proxy, b"SSH-2.0-OpenSSH_9.2\r\n", false),
        b"SSH-2.0-OpenSSH_9.2\r\n"
    );
    // Connects and closes without a byte.
    assert_eq!(echo_bytes(&proxy, b"", false), b"");
    // Starts a request and gives up: the bytes still reach the origin.
    assert_eq!(echo_bytes(&proxy, b"GE", true), b"GE");
    assert_eq!(results(&proxy, "unknown"), 5.0);
    let metrics = proxy.metrics();
    let failures = [("peer", "src"), ("classification", "failure")];
    assert_eq!(metrics.sum("tcp_close_total", &failures), 0.0);
}

#[test]
fn a_server_that_speaks_first_is_not_kept_waiting_and_is_remembered() {
    let origin = Origin::smtp();
    // The default 10 s detect timeout is in force.
    let proxy = Ringside::routing_to([origin.addr]);
    for _ in 0..2 {
        let started = Instant::now();
        let mut client = TcpStream::connect(proxy.route()).unwrap();
        let mut banner = [0u8; SMTP_BANNER.len()];
        client.read_exact(&mut banner).unwrap();
        let waited = started.elapsed();
        assert_eq!(banner, SMTP_BANNER);
        assert!(waited < Duration::from_secs(1), "banner took {waited:?}");
        client.write_all(b"EHLO me\r\n").unwrap();
        let mut echo = [0u8; 9];
        client.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"EHLO me\r\n");
    }
    assert_eq!(results(&proxy, "server_first"), 1.0);
    assert_eq!(results(&proxy, "learned_server_first"), 1.0);
}

/// A client that opens a connection per request (`Connection: close`)
/// costs the application no connection of its own: while the route's pool
/// holds an idle one, detection runs first and the request takes it.
#[test]
fn clients_with_a_connection_per_request_share_one_upstream_connection() {
    let web = HttpOrigin::start("web", Duration::ZERO);
    let proxy = Ringside::routing_to([web.addr]);
    for _ in 0..10 {
        // Returns at ringside's close, after the whole response.
        let (status, body) = http_get(proxy.route(), "/hello");
        assert_eq!((status, body.as_str()), (200, "hello from web"));
    }
    assert_eq!(web.requests(), 10);
    assert_eq!(web.connections(), 1, "one application connection for all");
    let metrics = proxy.wait_idle();
    assert_eq!(metrics.sum("tcp_open_total", &[("peer", "src")]), 10.0);
    assert_eq!(metrics.sum("tcp_open_total", &[("peer", "dst")]), 1.0);
    assert_eq!(results(&proxy, "http/1"), 10.0);
}

/// A request line longer than the peek window (a long URL) is HTTP/1, as a
/// full read that httparse calls `Partial` is to Linkerd's detector: it is
/// counted and balanced, and held to the HTTP/1 path's limit (a 414 past
/// 8 KiB), rather than carried as opaque bytes.
#[test]
fn a_request_line_longer_than_the_peek_window_is_http1() {
    let web = HttpOrigin::start("web", Duration::ZERO);
    let proxy = Ringside::routing_to([web.addr]);
    let status = |path_len: usize| {
        let url = format!("http://{}/{}", proxy.route(), "a".repeat(path_len));
        curl(&["-o", "/dev/null", "-w", "%{http_code}", &url])
            .text()
            .to_string()
    };
    assert_eq!(status(2_000), "200");
    assert_eq!(status(20_000), "414");
    assert_eq!(web.requests(), 1, "the 414 is the proxy's own answer");
    assert_eq!(results(&proxy, "http/1"), 2.0);
    assert_eq!(results(&proxy, "unknown"), 0.0);
}

/// Pools are per route: one whose pool is warm does not stop a route to a
/// server that speaks first from connecting while it detects.
#[test]
fn a_server_that_speaks_first_is_heard_at_once_beside_a_warm_http_route() {
    let web = HttpOrigin::start("web", Duration::ZERO);
    let smtp = Origin::smtp();
    // Detection alone would keep a silent client waiting a minute: a
    // banner within `WAIT_LIMIT` came from the connection made beside it.
    // Another address: two routes cannot both listen on 127.0.0.1:0.
    let proxy = Ringside::route_to([web.addr])
        .arg("--route", format!("127.0.0.2:0={}", smtp.addr))
        .arg("--detect-timeout", "60s")
        .shards(1)
        .start();
    for _ in 0..2 {
        assert_eq!(http_get(proxy.routes[0], "/hello").0, 200);
    }
    assert_eq!(web.connections(), 1, "the HTTP route's pool is warm");

    let mut client = TcpStream::connect(proxy.routes[1]).unwrap();
    client.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let mut banner = [0u8; SMTP_BANNER.len()];
    client.read_exact(&mut banner).unwrap();
    assert_eq!(banner, SMTP_BANNER);
    client.write_all(b"EHLO me\r\n").unwrap();
    let mut echo = [0u8; 9];
    client.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"EHLO me\r\n");
    drop(client);
    assert_eq!(results(&proxy, "server_first"), 1.0);
}

#[test]
fn a_silent_client_fails_open_after_the_timeout_with_its_bytes_intact() {
    let origin = Origin::echo();
    let proxy = Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--detect-timeout", "1s")
        .start();
    let client = TcpStream::connect(proxy.route()).unwrap();
    // While it waits, the connection is visible as detecting (its tcp_*
    // series depend on the verdict).
    eventually("the connection shows as detecting", || {
        proxy.metrics().sum("ringside_detecting_connections", &[]) == 1.0
    });
    eventually("detection timed out", || {
        proxy
            .metrics()
            .sum("protocol_detect_total", &[("result", "timeout")])
            == 1.0
    });
    assert_eq!(
        proxy.metrics().sum("ringside_detecting_connections", &[]),
        0.0
    );
    let data = random_bytes(100_000, 9);
    assert_eq!(echo_over(&client, &data), data);
}

#[test]
fn opaque_ports_skip_detection() {
    // An echo origin: as opaque TCP the request comes back as it went.
    let origin = Origin::echo();
    let proxy = Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--opaque-ports", origin.addr.port())
        .start();
    assert_eq!(echo_bytes(&proxy, GET, false), GET);
    assert_eq!(results(&proxy, "opaque_port"), 1.0);
    assert_eq!(results(&proxy, "http/1"), 0.0);
    assert_eq!(
        proxy
            .metrics()
            .sum("protocol_detect_duration_seconds_count", &[]),
        0.0
    );
}

/// A TLS origin (`openssl s_server -rev`, which answers each line reversed)
/// behind ringside, and `openssl s_client` with SNI in front. The origin's
/// certificate is minted in memory; only the two PEM files touch the disk.
#[test]
fn tls_passes_through_end_to_end_and_its_sni_shows_in_metrics() {
    let minted = rcgen::generate_simple_self_signed(["example.test".to_string()])
        .expect("a self-signed certificate");
    let cert = TempPath::holding(minted.cert.pem());
    let key = TempPath::holding(minted.signing_key.serialize_pem());

    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-rev",
            "-naccept",
            "1",
            "-cert",
            cert.as_str(),
            "-key",
            key.as_str(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is installed (.ci/run installs it)");
    let mut server_out = BufReader::new(server.stdout.take().unwrap());
    let origin_addr = loop {
        let mut line = String::new();
        assert!(
            server_out.read_line(&mut line).unwrap() > 0,
            "s_server exited"
        );
        if let Some(addr) = line.strip_prefix("ACCEPT ") {
            break addr.trim().parse().unwrap();
        }
    };
    let proxy = Ringside::routing_to([origin_addr]);

    let mut client = Command::new("openssl")
        .args(["s_client", "-connect", &proxy.route().to_string()])
        .args(["-servername", "example.test", "-quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    client
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"hello ringside\n")
        .unwrap();
    let mut reply = String::new();
    BufReader::new(client.stdout.take().unwrap())
        .read_line(&mut reply)
        .unwrap();
    assert_eq!(
        reply.trim(),
        "edisgnir olleh",
        "the handshake and a round trip went through"
    );
    let _ = client.kill();
    let _ = client.wait();
    let _ = server.kill();
    let _ = server.wait();

    let metrics = proxy.wait_idle();
    assert_eq!(
        metrics.sum("protocol_detect_total", &[("result", "tls")]),
        1.0
    );
    let sni = [("peer", "src"), ("tls", "opaque"), ("sni", "example.test")];
    assert_eq!(metrics.sum("tcp_open_total", &sni), 1.0);
}

/// A post-quantum ClientHello (rustls with aws-lc-rs, as a Linkerd proxy
/// sends it) is 1,540 bytes with its SNI at byte 1,477, past the 1 KiB
/// peek. Whole, a byte at a time, or in two records a byte at a time, it
/// is read whole for its SNI, and every byte still reaches the origin.
#[test]
fn a_post_quantum_client_hello_shows_its_sni_past_the_peek_size() {
    let origin = Origin::echo();
    let proxy = Ringside::routing_to([origin.addr]);
    let hello = &RUSTLS_PQ_CLIENT_HELLO[..];
    let (first, rest) = hello[5..].split_at(700);
    let mut two_records = Vec::new();
    for payload in [first, rest] {
        two_records.extend_from_slice(&[0x16, 0x03, 0x01]);
        two_records.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        two_records.extend_from_slice(payload);
    }
    for (bytes, trickle) in [(hello, false), (hello, true), (&two_records[..], true)] {
        assert_eq!(echo_bytes(&proxy, bytes, trickle), bytes);
    }
    let metrics = proxy.wait_idle();
    assert_eq!(
        metrics.sum("protocol_detect_total", &[("result", "tls")]),
        3.0
    );
    let sni = [("peer", "src"), ("tls", "opaque"), ("sni", RUSTLS_PQ_SNI)];
    assert_eq!(metrics.sum("tcp_open_total", &sni), 3.0);
}
