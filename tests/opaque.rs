//! Opaque TCP through ringside: bytes, half-close, resets, balancing, and
//! the metrics a user scrapes about all of it.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;

use support::*;

fn forward_mode_test(mode: &str) {
    let origin = Origin::echo();
    let proxy = Ringside::route_to([origin.addr])
        .shards(2)
        .arg("--forward-mode", mode)
        .start();
    // 64 MiB in all, over four connections at once.
    let senders: Vec<_> = (0..4)
        .map(|i| {
            let data = random_bytes(16 << 20, 1 + i);
            let addr = proxy.route();
            thread::spawn(move || echo_through(addr, &data) == data)
        })
        .collect();
    for sender in senders {
        assert!(
            sender.join().unwrap(),
            "echoed bytes differ from the sent ones"
        );
    }

    let metrics = proxy.wait_idle();
    let src = [("peer", "src")];
    let dst = [("peer", "dst")];
    let total = 4.0 * (16 << 20) as f64;
    assert_eq!(metrics.sum("tcp_read_bytes_total", &src), total);
    assert_eq!(metrics.sum("tcp_write_bytes_total", &src), total);
    assert_eq!(metrics.sum("tcp_read_bytes_total", &dst), total);
    assert_eq!(metrics.sum("tcp_write_bytes_total", &dst), total);
    assert_eq!(metrics.sum("tcp_open_total", &src), 4.0);
    assert_eq!(metrics.sum("tcp_open_total", &dst), 4.0);
    let success = [("peer", "src"), ("classification", "success")];
    assert_eq!(metrics.sum("tcp_close_total", &success), 4.0);
    assert_eq!(metrics.sum("tcp_connection_duration_ms_count", &src), 4.0);
    assert_eq!(metrics.sum("ringside_pipes", &[("state", "in_use")]), 0.0);
}

#[test]
fn splice_moves_64_mib_byte_exact_and_counts_it() {
    forward_mode_test("splice");
}

#[test]
fn copy_fallback_moves_64_mib_byte_exact_and_counts_it() {
    forward_mode_test("copy");
}

#[test]
fn client_half_close_reaches_the_upstream_and_its_answer_comes_back() {
    // The origin reads to EOF, then answers: only possible if the client's
    // FIN arrived as a FIN while the other direction stayed open.
    let origin = Origin::start(|mut stream| {
        let mut request = Vec::new();
        stream.read_to_end(&mut request).unwrap();
        let answer = format!("got {} bytes after your FIN", request.len());
        stream.write_all(answer.as_bytes()).unwrap();
    });
    let proxy = Ringside::route_to([origin.addr]).start();
    let mut client = TcpStream::connect(proxy.route()).unwrap();
    client.write_all(b"hello, half-closed world").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "got 24 bytes after your FIN");
}

#[test]
fn upstream_half_close_reaches_the_client_and_it_can_still_send() {
    let received: Report<Vec<u8>> = Report::default();
    let slot = received.clone();
    let origin = Origin::start(move |mut stream| {
        stream.write_all(b"banner, then FIN").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        *slot.lock().unwrap() = Some(rest);
    });
    let proxy = Ringside::route_to([origin.addr]).start();
    let mut client = TcpStream::connect(proxy.route()).unwrap();
    let mut banner = String::new();
    client.read_to_string(&mut banner).unwrap();
    assert_eq!(banner, "banner, then FIN");
    client.write_all(b"still talking").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    eventually("origin got the late bytes", || {
        received.lock().unwrap().is_some()
    });
    assert_eq!(
        received.lock().unwrap().as_deref(),
        Some(&b"still talking"[..])
    );
    let metrics = proxy.wait_idle();
    let success = [("peer", "src"), ("classification", "success")];
    assert_eq!(metrics.sum("tcp_close_total", &success), 1.0);
}

#[test]
fn refused_upstream_resets_the_client_and_is_counted() {
    let down = closed_port();
    // Opaque by port: an HTTP client would get a 502 instead (tests/http1.rs).
    let proxy = Ringside::route_to([down.addr])
        .arg("--opaque-ports", down.port())
        .start();
    let mut client = TcpStream::connect(proxy.route()).unwrap();
    client.write_all(b"anyone there?").unwrap();
    assert!(ends_in_reset(&mut client), "client should see a reset");
    let metrics = proxy.wait_idle();
    let failure = [("peer", "src"), ("classification", "failure")];
    assert_eq!(metrics.sum("tcp_close_total", &failure), 1.0);
    let refused = [
        ("target_addr", &*down.addr.to_string()),
        ("reason", "refused"),
    ];
    assert!(metrics.sum("ringside_upstream_connect_failures_total", &refused) >= 1.0);
}

#[test]
fn upstream_reset_mid_stream_becomes_a_client_reset() {
    let origin = Origin::start(|mut stream| {
        let mut first = [0u8; 1024];
        stream.read_exact(&mut first).unwrap();
        stream.write_all(b"partial answer").unwrap();
        reset(stream);
    });
    let proxy = Ringside::route_to([origin.addr]).start();
    let mut client = TcpStream::connect(proxy.route()).unwrap();
    client.write_all(&[7u8; 1024]).unwrap();
    assert!(
        ends_in_reset(&mut client),
        "client should see the upstream's reset"
    );
    let metrics = proxy.wait_idle();
    let failure = [("peer", "dst"), ("classification", "failure")];
    assert_eq!(metrics.sum("tcp_close_total", &failure), 1.0);
}

#[test]
fn client_reset_mid_stream_becomes_an_upstream_reset() {
    let outcome: Report<std::io::ErrorKind> = Report::default();
    let slot = outcome.clone();
    let origin = Origin::start(move |mut stream| {
        let mut buf = [0u8; 4096];
        let outcome = loop {
            match stream.read(&mut buf) {
                Ok(0) => break std::io::ErrorKind::UnexpectedEof,
                Ok(_) => continue,
                Err(err) => break err.kind(),
            }
        };
        *slot.lock().unwrap() = Some(outcome);
    });
    let proxy = Ringside::route_to([origin.addr]).start();
    let mut client = TcpStream::connect(proxy.route()).unwrap();
    client.write_all(&[1u8; 10_000]).unwrap();
    eventually("origin connected", || origin.accepted() == 1);
    reset(client);
    eventually("origin saw the end", || outcome.lock().unwrap().is_some());
    assert_eq!(
        *outcome.lock().unwrap(),
        Some(std::io::ErrorKind::ConnectionReset)
    );
}

#[test]
fn connections_spread_over_two_upstreams_and_avoid_a_dead_one() {
    let (a, b) = (Origin::echo(), Origin::echo());
    let proxy = Ringside::routing_to([a.addr, b.addr]);
    let clients: Vec<_> = (0..4u64)
        .map(|t| {
            let addr = proxy.route();
            thread::spawn(move || {
                for i in 0..10 {
                    let data = random_bytes(1000, t * 10 + i + 1);
                    assert_eq!(echo_through(addr, &data), data);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    assert!(
        a.accepted() >= 3 && b.accepted() >= 3,
        "{} / {}",
        a.accepted(),
        b.accepted()
    );

    let alive = Origin::echo();
    let down = closed_port();
    let proxy = Ringside::route_to([alive.addr, down.addr])
        .shards(2)
        .start();
    for i in 0..40u64 {
        let data = random_bytes(1000, i + 1);
        assert_eq!(echo_through(proxy.route(), &data), data, "connection {i}");
    }
    assert_eq!(alive.accepted(), 40);
}

#[test]
fn no_fd_or_pipe_growth_after_1000_connections() {
    let origin = Origin::echo();
    let proxy = Ringside::route_to([origin.addr]).shards(2).start();
    let data = b"ping";
    // Warm up: pools and lazily built state settle first.
    for _ in 0..50 {
        echo_through(proxy.route(), data);
    }
    let before = proxy.wait_idle().sum("process_open_fds", &[]);
    for _ in 0..1000 {
        assert_eq!(echo_through(proxy.route(), data), data);
    }
    let after = proxy.wait_idle();
    assert_eq!(after.sum("tcp_open_total", &[("peer", "src")]), 1050.0);
    assert_eq!(after.sum("ringside_pipes", &[("state", "in_use")]), 0.0);
    let fds = after.sum("process_open_fds", &[]);
    // Idle pooled pipes may differ by a few; a leak would be thousands.
    assert!(fds <= before + 8.0, "fds grew from {before} to {fds}");
}
