//! `sniff` on loopback sockets inside one executor: each of its ways to
//! decide (a verdict from the first peek, the quiet pause, the server-first
//! race, the fail-open timeout), with waits short enough to keep each test
//! well under a second. The shard's deadlines fire up to a tick (100 ms)
//! late, never early, so the assertions on time are lower bounds only.

use super::super::sample_pq_client_hello::{RUSTLS_PQ_CLIENT_HELLO, RUSTLS_PQ_SNI};
use crate::config::{Timeouts, DEFAULT_PEEK_BYTES};
use std::time::Duration;

use super::*;
use crate::io::testing::{self, read_exact};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/// Detection settings with short waits; `timeout` is the fail-open one.
struct Settings {
    detect: DetectConfig,
    timeouts: Timeouts,
    timeout: Duration,
}

fn config(timeout: Duration, quiet_pause: Duration) -> Settings {
    let detect = DetectConfig {
        opaque_ports: Vec::new(),
        peek_bytes: 1024,
        server_first_memory: Duration::from_secs(60),
    };
    let second = Duration::from_secs(1);
    let timeouts = Timeouts {
        connect: second,
        head_read: second,
        client_idle: second,
        response: None,
        opaque_idle: None,
        pool_idle: second,
        detect: timeout,
        detect_quiet_pause: quiet_pause,
        shutdown_grace: second,
    };
    Settings {
        detect,
        timeouts,
        timeout,
    }
}

#[test]
fn a_whole_request_line_is_decided_on_the_first_peek_and_left_unread() {
    let deadlines = Deadlines::new();
    testing::run_with(&deadlines, || async {
        let (client, proxied) = testing::pair().await;
        client.write_all(REQUEST).await.unwrap();
        let config = config(Duration::from_secs(5), Duration::from_secs(5));
        let sniffed = sniff(
            &proxied,
            None,
            &config.detect,
            &config.timeouts,
            &deadlines,
            Direction::Outbound,
        )
        .await
        .unwrap();
        assert_eq!(sniffed.verdict, Verdict::Http1);
        // Peeked, not consumed: the handler reads the head itself.
        assert!(sniffed.prefix.is_empty());
        assert_eq!(read_exact(&proxied, REQUEST.len()).await, REQUEST);
    });
}

#[test]
fn an_undecided_prefix_then_silence_is_quiet_with_the_prefix() {
    let deadlines = Deadlines::new();
    testing::run_with(&deadlines, || async {
        let (client, proxied) = testing::pair().await;
        client.write_all(b"GET").await.unwrap();
        let pause = Duration::from_millis(150);
        let config = config(Duration::from_secs(5), pause);
        let sniffed = sniff(
            &proxied,
            None,
            &config.detect,
            &config.timeouts,
            &deadlines,
            Direction::Outbound,
        )
        .await
        .unwrap();
        assert_eq!(sniffed.verdict, Verdict::Quiet);
        // Read out while waiting: the caller must send them upstream first.
        assert_eq!(sniffed.prefix, b"GET");
        assert!(sniffed.elapsed >= pause, "{:?}", sniffed.elapsed);
        assert!(sniffed.elapsed < config.timeout, "{:?}", sniffed.elapsed);
    });
}

#[test]
fn silence_fails_open_at_the_detect_timeout() {
    let deadlines = Deadlines::new();
    testing::run_with(&deadlines, || async {
        let (_client, proxied) = testing::pair().await;
        let timeout = Duration::from_millis(200);
        // The quiet pause only runs once a prefix came: silence is the
        // detect timeout's.
        let config = config(timeout, Duration::from_millis(10));
        let sniffed = sniff(
            &proxied,
            None,
            &config.detect,
            &config.timeouts,
            &deadlines,
            Direction::Outbound,
        )
        .await
        .unwrap();
        assert_eq!(sniffed.verdict, Verdict::Timeout);
        assert!(sniffed.prefix.is_empty());
        assert!(sniffed.elapsed >= timeout, "{:?}", sniffed.elapsed);
    });
}

#[test]
fn an_upstream_that_speaks_first_wins_the_race_and_keeps_its_bytes() {
    let deadlines = Deadlines::new();
    testing::run_with(&deadlines, || async {
        let (_client, proxied) = testing::pair().await;
        let (upstream, origin) = testing::pair().await;
        let greeting = b"220 mail.example ESMTP\r\n";
        origin.write_all(greeting).await.unwrap();
        let config = config(Duration::from_secs(5), Duration::from_secs(5));
        let sniffed = sniff(
            &proxied,
            Some(&upstream),
            &config.detect,
            &config.timeouts,
            &deadlines,
            Direction::Outbound,
        )
        .await
        .unwrap();
        assert_eq!(sniffed.verdict, Verdict::ServerFirst);
        assert!(sniffed.elapsed < config.timeout, "{:?}", sniffed.elapsed);
        // Watched with a peek: the greeting still goes to the client.
        assert_eq!(read_exact(&upstream, greeting.len()).await, greeting);
    });
}

#[test]
fn a_server_first_race_after_an_undecided_prefix_keeps_the_prefix() {
    let deadlines = Deadlines::new();
    testing::run_with(&deadlines, || async {
        let (client, proxied) = testing::pair().await;
        let (upstream, origin) = testing::pair().await;
        client.write_all(b"GE").await.unwrap();
        // The prefix is decided as undecided before the upstream speaks.
        let config = config(Duration::from_secs(5), Duration::from_secs(5));
        let sniffing = sniff(
            &proxied,
            Some(&upstream),
            &config.detect,
            &config.timeouts,
            &deadlines,
            Direction::Outbound,
        );
        let speaking = async {
            origin.write_all(b"+OK\r\n").await.unwrap();
        };
        let (sniffed, ()) = futures_lite::future::zip(sniffing, speaking).await;
        let sniffed = sniffed.unwrap();
        assert_eq!(sniffed.verdict, Verdict::ServerFirst);
        // Whether the race ended in the first peek or after reading the
        // prefix out, no byte of the client's is lost.
        let mut seen = sniffed.prefix.clone();
        if seen.is_empty() {
            seen = read_exact(&proxied, 2).await;
        }
        assert_eq!(seen, b"GE");
    });
}

#[test]
fn an_http2_servers_settings_is_not_a_server_speaking_first() {
    let deadlines = Deadlines::new();
    testing::run_with(&deadlines, || async {
        let (_client, proxied) = testing::pair().await;
        let (upstream, origin) = testing::pair().await;
        // An empty SETTINGS frame on stream 0: the server's preface.
        origin
            .write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        let timeout = Duration::from_millis(200);
        let config = config(timeout, Duration::from_millis(10));
        let sniffed = sniff(
            &proxied,
            Some(&upstream),
            &config.detect,
            &config.timeouts,
            &deadlines,
            Direction::Outbound,
        )
        .await
        .unwrap();
        // Not server-first: the client's silence then fails open.
        assert_eq!(sniffed.verdict, Verdict::Timeout);
        assert!(sniffed.elapsed >= timeout, "{:?}", sniffed.elapsed);
    });
}

#[test]
fn a_client_that_closes_at_once_is_unknown() {
    let deadlines = Deadlines::new();
    testing::run_with(&deadlines, || async {
        let (client, proxied) = testing::pair().await;
        client.shutdown_write().unwrap();
        let config = config(Duration::from_secs(5), Duration::from_secs(5));
        let sniffed = sniff(
            &proxied,
            None,
            &config.detect,
            &config.timeouts,
            &deadlines,
            Direction::Outbound,
        )
        .await
        .unwrap();
        assert_eq!(sniffed.verdict, Verdict::Unknown);
        assert!(sniffed.elapsed < config.timeout, "{:?}", sniffed.elapsed);
    });
}

#[test]
fn a_full_peek_buffer_of_a_longer_hello_waits_for_the_rest() {
    let hello = &RUSTLS_PQ_CLIENT_HELLO[..];
    for direction in [Direction::Outbound, Direction::Inbound] {
        let first_kib = &hello[..DEFAULT_PEEK_BYTES];
        assert_eq!(verdict_for(first_kib, DEFAULT_PEEK_BYTES, direction), None);
        let sni = Some(RUSTLS_PQ_SNI.to_string());
        let whole = verdict_for(hello, DEFAULT_PEEK_BYTES, direction);
        assert_eq!(whole, Some(Verdict::Tls { sni }));
    }
}

#[test]
fn a_full_peek_buffer_is_final_and_a_long_request_line_in_it_is_http1() {
    let long_line = [b"GET /".as_slice(), &[b'a'; DEFAULT_PEEK_BYTES]].concat();
    let first_kib = &long_line[..DEFAULT_PEEK_BYTES];
    for direction in [Direction::Outbound, Direction::Inbound] {
        let verdict = verdict_for(first_kib, DEFAULT_PEEK_BYTES, direction);
        assert_eq!(verdict, Some(Verdict::Http1), "{direction:?}");
    }
    let noise = [b'x'; DEFAULT_PEEK_BYTES];
    let outbound = verdict_for(&noise, DEFAULT_PEEK_BYTES, Direction::Outbound);
    assert_eq!(outbound, Some(Verdict::Unknown));
}
