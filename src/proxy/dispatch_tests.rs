//! Dispatch on loopback sockets inside one executor, through a `Conn` as
//! the accept loop runs it: HTTP/1 served request by request over the
//! upstream connected during detection, an upgrade carried on as a
//! tunnel, and an upstream's reset passed on to the client as a reset.

use std::rc::Rc;

use crate::config::{Direction, Protocol};
use crate::io::testing::{self, read_exact, read_head, Loopback};
use crate::metrics::Peer;
use crate::proxy::testing::{client_through, route, tcp_totals};
use crate::shard::Shard;

fn listen() -> std::net::SocketAddr {
    "127.0.0.1:4140".parse().unwrap()
}

/// Reads one answer with a `content-length` body of `len` bytes.
async fn answer(client: &crate::io::Socket, len: usize) -> (String, Vec<u8>) {
    let head = read_head(client).await.expect("an answer");
    (
        String::from_utf8(head).unwrap(),
        read_exact(client, len).await,
    )
}

#[test]
fn an_http1_client_is_served_request_by_request_over_one_upstream() {
    let shard = Rc::new(Shard::for_tests());
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let origin_addr = origin.addr();
        let seen = Rc::default();
        testing::http1_origin(origin, "app", Rc::clone(&seen));
        let route = route(
            &shard,
            listen(),
            origin_addr,
            Direction::Outbound,
            Protocol::Detect,
        );
        let client = client_through(&shard, &route).await;
        for path in ["/one", "/two"] {
            let request = format!("GET {path} HTTP/1.1\r\nHost: app\r\n\r\n");
            client.write_all(request.as_bytes()).await.unwrap();
            let (head, body) = answer(&client, 3).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert_eq!(body, b"app");
        }
        let seen = seen.borrow();
        let paths: Vec<&str> = seen
            .iter()
            .map(|head| {
                std::str::from_utf8(head)
                    .unwrap()
                    .split(' ')
                    .nth(1)
                    .unwrap()
            })
            .collect();
        assert_eq!(paths, ["/one", "/two"]);
        // The connection made during detection carried both.
        assert_eq!(tcp_totals(&shard, Peer::Dst, origin_addr).open, 1);
        let snapshot = shard.metrics.snapshot(0, 0);
        let http1 = snapshot
            .detect_total
            .iter()
            .filter(|(l, _)| l.result == "http/1");
        assert_eq!(http1.map(|(_, n)| n).sum::<u64>(), 1);
    });
}

#[test]
fn an_http1_upgrade_is_carried_on_as_a_tunnel() {
    let shard = Rc::new(Shard::for_tests());
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
        client
            .write_all(
                b"GET /chat HTTP/1.1\r\nHost: app\r\nConnection: upgrade\r\nUpgrade: raw\r\n\r\n",
            )
            .await
            .unwrap();
        let socket = origin.accept().await;
        let head = read_head(&socket).await.expect("the upgrade request");
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(head.contains("upgrade: raw"), "{head}");
        socket
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: raw\r\n\r\n",
            )
            .await
            .unwrap();
        let (head, _) = answer(&client, 0).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        // No HTTP from here: bytes both ways, as they are.
        client.write_all(b"\x00raw\xff").await.unwrap();
        assert_eq!(read_exact(&socket, 5).await, b"\x00raw\xff");
        socket.write_all(b"back").await.unwrap();
        assert_eq!(read_exact(&client, 4).await, b"back");
    });
}

#[test]
fn an_upstream_reset_is_passed_on_to_the_client_as_a_reset() {
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
        let client = client_through(&shard, &route).await;
        client.write_all(b"ping").await.unwrap();
        let socket = origin.accept().await;
        assert_eq!(read_exact(&socket, 4).await, b"ping");
        socket.reset_on_close();
        drop(socket);
        let mut buf = [0u8; 8];
        let read = client.read(&mut buf).await;
        let reset = matches!(&read, Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset);
        assert!(reset, "expected a reset, got {read:?}");
    });
}
