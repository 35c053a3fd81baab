//! The accept loop on a loopback listener inside one executor: every
//! accepted connection becomes a `Conn` of the route, a
//! connection over the shard's share of the limit is reset at once, and a
//! drain ends the loop.

use std::rc::Rc;

use futures_lite::future;

use super::*;
use crate::io::testing::{self, read_exact, Loopback};
use crate::io::{connect, Deadlines};
use crate::proxy::testing::route;
use crate::proxy::RouteSlot;
use crate::shard::ConnectionSlots;

/// An origin that echoes what each connection sends, until it closes.
fn echo_origin(origin: Loopback) {
    crate::io::spawn(async move {
        loop {
            let socket = origin.accept().await;
            crate::io::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = socket.read(&mut buf).await {
                    socket.write_all(&buf[..n]).await.unwrap();
                }
            });
        }
    });
}

/// A client of `addr`, as anyone would dial it.
async fn dial(addr: SocketAddr) -> Socket {
    let timeout = std::time::Duration::from_secs(5);
    connect(addr, timeout, &Deadlines::new()).await.unwrap()
}

/// Echoes `bytes` through `client`.
async fn echoed(client: &Socket, bytes: &[u8]) {
    client.write_all(bytes).await.unwrap();
    assert_eq!(read_exact(client, bytes.len()).await, bytes);
}

/// Starts the accept loop of an opaque route to an echo origin, on its
/// own task; the listener's address.
fn listening(shard: &Rc<Shard>) -> SocketAddr {
    let origin = Loopback::bind();
    let origin_addr = origin.addr();
    echo_origin(origin);
    let listener = Loopback::bind();
    let listen = listener.addr();
    let route = route(
        shard,
        listen,
        origin_addr,
        Direction::Outbound,
        crate::config::Protocol::Opaque,
    );
    let accepting = Accepting::Route(Rc::new(RouteSlot::new(route)));
    let tasks = Rc::new(Tasks::new());
    crate::io::spawn(accept_loop(
        listener.into_listener(),
        accepting,
        shard.clone(),
        tasks,
    ));
    listen
}

#[test]
fn every_accepted_connection_is_carried_to_the_route() {
    let shard = Rc::new(Shard::for_tests());
    testing::run_with(&shard.deadlines, || async {
        let listen = listening(&shard);
        // Two at once: whichever accept takes each (the io_uring one or
        // `accept_now` from the backlog), both are carried.
        let (first, second) = future::zip(dial(listen), dial(listen)).await;
        future::zip(echoed(&first, b"first"), echoed(&second, b"second")).await;
        let accepted = shard.metrics.snapshot(0, 0).shards[0].accepted_total;
        assert_eq!(accepted, 2);
    });
}

#[test]
fn a_connection_over_the_limit_is_reset_at_once() {
    let mut shard = Shard::for_tests();
    shard.connections = ConnectionSlots::new(1);
    let shard = Rc::new(shard);
    testing::run_with(&shard.deadlines, || async {
        let listen = listening(&shard);
        let first = dial(listen).await;
        // Carried, so it holds the only slot.
        echoed(&first, b"holding").await;
        let second = dial(listen).await;
        let mut buf = [0u8; 8];
        let read = second.read(&mut buf).await;
        let reset = matches!(&read, Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset);
        assert!(reset, "expected a reset, got {read:?}");
        let refused = shard.metrics.snapshot(0, 0).connections_refused;
        assert_eq!(
            refused.get("max_connections").copied(),
            Some(1),
            "{refused:?}"
        );
        // The one carried is not disturbed.
        echoed(&first, b"still").await;
    });
}

#[test]
fn a_drain_ends_the_accept_loop() {
    let shard = Rc::new(Shard::for_tests());
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let listener = Loopback::bind();
        let listen = listener.addr();
        let route = route(
            &shard,
            listen,
            origin.addr(),
            Direction::Outbound,
            crate::config::Protocol::Opaque,
        );
        let tasks = Rc::new(Tasks::new());
        let accepting = Accepting::Route(Rc::new(RouteSlot::new(route)));
        let looping = accept_loop(listener.into_listener(), accepting, shard.clone(), tasks);
        // Returns, rather than the test hanging until its limit.
        future::zip(looping, async { shard.draining.trigger() }).await;
    });
}
