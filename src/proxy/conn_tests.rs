//! A `Conn`'s life on loopback sockets inside one executor: an opaque
//! route carried both ways with half-close to its end and counted once,
//! an unreachable upstream reset to the client, and the early connect
//! that lets a server speak first without waiting for the detect
//! timeout (10 s by default, longer than these tests may take).

use std::rc::Rc;

use futures_lite::future;

use crate::config::{Direction, Protocol};
use crate::io::testing::{self, read_exact, read_to_end, send_then_fin, Loopback};
use crate::metrics::Peer;
use crate::proxy::testing::{client_through, conn, route, tcp_totals, TcpTotals};
use crate::shard::Shard;

fn listen() -> std::net::SocketAddr {
    "127.0.0.1:4140".parse().unwrap()
}

#[test]
fn an_opaque_route_is_carried_both_ways_to_its_end_and_counted_once() {
    let shard = Rc::new(Shard::for_tests());
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let route = route(
            &shard,
            listen(),
            origin.addr(),
            Direction::Outbound,
            Protocol::Opaque,
        );
        let (client, accepted) = testing::pair().await;
        let carried = conn(&shard, &route).run(accepted, None);
        let client_side = async {
            send_then_fin(&client, b"request").await;
            read_to_end(&client).await
        };
        let origin_side = async {
            let socket = origin.accept().await;
            // The client's FIN comes through before the answer goes out.
            assert_eq!(read_to_end(&socket).await, b"request");
            send_then_fin(&socket, b"answer").await;
        };
        let ((), (answer, ())) = future::zip(carried, future::zip(client_side, origin_side)).await;
        assert_eq!(answer, b"answer");
        let src = tcp_totals(&shard, Peer::Src, listen());
        let expected = TcpTotals {
            open: 1,
            closed_ok: 1,
            closed_failed: 0,
            read_bytes: 7,
            written_bytes: 6,
        };
        assert_eq!(src, expected);
        let dst = tcp_totals(&shard, Peer::Dst, origin.addr());
        assert_eq!((dst.open, dst.closed_ok), (1, 1));
    });
}

#[test]
fn an_unreachable_upstream_resets_an_opaque_client() {
    let shard = Rc::new(Shard::for_tests());
    testing::run_with(&shard.deadlines, || async {
        // A port nobody listens on any more.
        let gone = Loopback::bind().addr();
        let route = route(
            &shard,
            listen(),
            gone,
            Direction::Outbound,
            Protocol::Opaque,
        );
        let client = client_through(&shard, &route).await;
        let mut buf = [0u8; 8];
        let read = client.read(&mut buf).await;
        let reset = matches!(&read, Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset);
        assert!(reset, "expected a reset, got {read:?}");
        let snapshot = shard.metrics.snapshot(0, 0);
        assert!(
            snapshot
                .connect_failures
                .keys()
                .any(|(target, _)| *target == gone.to_string()),
            "{:?}",
            snapshot.connect_failures
        );
    });
}

/// On a detect route the upstream is connected while detection runs, so
/// a server that speaks first (SMTP, MySQL) is heard at once by a client
/// that waits for it, and remembered.
#[test]
fn a_server_that_speaks_first_is_heard_without_the_detect_timeout() {
    let shard = Rc::new(Shard::for_tests());
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let origin_addr = origin.addr();
        let route = route(
            &shard,
            listen(),
            origin_addr,
            Direction::Outbound,
            Protocol::Detect,
        );
        let client = client_through(&shard, &route).await;
        let socket = origin.accept().await;
        socket.write_all(b"220 ready\r\n").await.unwrap();
        assert_eq!(read_exact(&client, 11).await, b"220 ready\r\n");
        // Opaque from here: the client's bytes reach the server as sent.
        client.write_all(b"HELO a\r\n").await.unwrap();
        assert_eq!(read_exact(&socket, 8).await, b"HELO a\r\n");
        assert!(shard.server_first.remembers(origin_addr));
    });
}

/// A client that sends an undecided prefix and waits (a quiet pause) is
/// carried opaque, and the bytes detection read out go upstream first.
#[test]
fn a_quiet_clients_prefix_reaches_the_upstream_first() {
    let mut shard = Shard::for_tests();
    shard.timeouts.detect_quiet_pause = std::time::Duration::from_millis(150);
    let shard = Rc::new(shard);
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let route = route(
            &shard,
            listen(),
            origin.addr(),
            Direction::Outbound,
            Protocol::Detect,
        );
        let client = client_through(&shard, &route).await;
        client.write_all(b"GE").await.unwrap();
        let socket = origin.accept().await;
        assert_eq!(read_exact(&socket, 2).await, b"GE");
        socket.write_all(b"?").await.unwrap();
        assert_eq!(read_exact(&client, 1).await, b"?");
        client.write_all(b"T").await.unwrap();
        assert_eq!(read_exact(&socket, 1).await, b"T");
    });
}
