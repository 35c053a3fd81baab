//! `H2Proxy` on loopback sockets inside one executor: an h2 client's
//! streams reach an h2 origin over one pooled upstream connection, and
//! each answer comes back whole.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::Bytes;

use super::*;
use crate::config::Direction;
use crate::io::testing::{self, Loopback};
use crate::io::{spawn, H2Io, Scratch};
use crate::metrics::{Peer, RouteMetrics};

/// What the origin saw: connections accepted, request paths.
#[derive(Default)]
struct Seen {
    connections: Cell<usize>,
    paths: RefCell<Vec<String>>,
}

/// An HTTP/2 origin answering every stream `200` with the body `body`.
fn h2_origin(origin: Loopback, shard: Rc<Shard>, body: &'static str, seen: Rc<Seen>) {
    spawn(async move {
        loop {
            let socket = origin.accept().await;
            seen.connections.set(seen.connections.get() + 1);
            let counters = shard.metrics.tcp(testing::labels(Peer::Dst));
            let io = H2Io::new(socket, Vec::new(), counters, shard.pumps.scratch.clone());
            let seen = seen.clone();
            spawn(async move {
                let mut connection = h2::server::handshake(io)
                    .await
                    .expect("the origin's handshake");
                while let Some(stream) = connection.accept().await {
                    let (request, mut respond) = stream.expect("a stream");
                    seen.paths
                        .borrow_mut()
                        .push(request.uri().path().to_string());
                    let response = ::http::Response::builder().status(200).body(()).unwrap();
                    let mut send = respond.send_response(response, false).unwrap();
                    send.send_data(Bytes::from_static(body.as_bytes()), true)
                        .unwrap();
                }
            });
        }
    });
}

/// An outbound route's HTTP state with `origin` as its one endpoint.
fn http_route(shard: &Shard, origin: std::net::SocketAddr) -> Rc<HttpRoute> {
    let listen = "127.0.0.1:4140".parse().unwrap();
    let metrics = RouteMetrics::new(
        &shard.metrics,
        Direction::Outbound,
        listen,
        &[crate::config::Endpoint::plain(origin)],
        vec![None],
        false,
    );
    let idle = std::time::Duration::from_secs(60);
    Rc::new(HttpRoute::new(
        Rc::new(metrics),
        [crate::config::Endpoint::plain(origin)].into(),
        1,
        idle,
        None,
    ))
}

#[test]
fn streams_reach_an_h2_origin_over_one_pooled_connection() {
    let shard = Rc::new(Shard::for_tests());
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let route = http_route(&shard, origin.addr());
        let seen = Rc::new(Seen::default());
        h2_origin(origin, shard.clone(), "h2 app", seen.clone());

        let (client, proxied) = testing::pair().await;
        let proxy = H2Proxy {
            shard: shard.clone(),
            route: route.clone(),
            client_id: ClientId::Untouched,
            authz: None,
        };
        let counters = shard.metrics.tcp(testing::labels(Peer::Src));
        spawn(async move {
            proxy
                .serve(proxied, Vec::new(), counters, None)
                .await
                .expect("the client's connection ends cleanly");
        });

        let counters = shard.metrics.tcp(testing::labels(Peer::Src));
        let io = H2Io::new(client, Vec::new(), counters, Scratch::new());
        let (sender, connection) = h2::client::handshake(io).await.expect("the handshake");
        spawn(async move {
            let _ = connection.await;
        });
        for path in ["/one", "/two"] {
            let request = ::http::Request::builder()
                .uri(format!("http://app{path}"))
                .body(())
                .unwrap();
            let mut sender = sender.clone().ready().await.unwrap();
            let (response, _) = sender.send_request(request, true).unwrap();
            let response = response.await.expect("an answer");
            assert_eq!(response.status(), 200);
            let mut body = response.into_body();
            let mut received = Vec::new();
            while let Some(data) = body.data().await {
                let data = data.unwrap();
                let _ = body.flow_control().release_capacity(data.len());
                received.extend_from_slice(&data);
            }
            assert_eq!(received, b"h2 app");
        }
        assert_eq!(*seen.paths.borrow(), ["/one", "/two"]);
        assert_eq!(seen.connections.get(), 1, "one upstream connection");
        assert!(route.h2_pool.has_connection(0));
    });
}
