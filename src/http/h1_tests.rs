//! `H1Proxy` on loopback sockets inside one executor: a request proxied to
//! a loopback origin and its upstream connection pooled for the next,
//! `l5d-*` headers stripped from a client without an identity, an origin
//! that cannot be reached answered by the proxy itself, and the size of
//! what an idle keep-alive connection holds.

use std::rc::Rc;

use futures_lite::future;

use super::*;
use crate::config::Direction;
use crate::io::testing::{self, read_exact, read_head, Loopback};
use crate::io::{ConnError, Socket};
use crate::metrics::{Peer, RouteMetrics};

/// An outbound route's HTTP state with `origin` as its one endpoint.
fn http_route(shard: &Shard, origin: std::net::SocketAddr) -> HttpRoute {
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
    HttpRoute::new(
        Rc::new(metrics),
        [crate::config::Endpoint::plain(origin)].into(),
        1,
        idle,
        None,
    )
}

/// Serves `client`'s requests through `route` until it closes, while
/// `talk` plays the client; what `serve` returned.
async fn serve_while<T>(
    shard: &Shard,
    route: &HttpRoute,
    client_id: &ClientId,
    proxied: Socket,
    talk: impl std::future::Future<Output = T>,
) -> (Result<Served, ConnError>, T) {
    let mut io = client_io(shard, proxied);
    let mut first = None;
    future::zip(
        proxy(shard, route, client_id).serve(&mut io, &mut first),
        talk,
    )
    .await
}

/// The client side of a connection the proxy serves.
fn client_io(shard: &Shard, proxied: Socket) -> HttpIo {
    let counters = shard.metrics.tcp(testing::labels(Peer::Src));
    HttpIo::new(proxied, counters, Vec::new())
}

/// The proxy serving `route` to a client under no policy.
fn proxy<'a>(shard: &'a Shard, route: &'a HttpRoute, client_id: &'a ClientId) -> H1Proxy<'a> {
    H1Proxy {
        shard,
        route,
        client_id,
        authz: None,
    }
}

#[test]
fn a_request_reaches_the_origin_and_its_connection_is_pooled() {
    let shard = Shard::for_tests();
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let route = http_route(&shard, origin.addr());
        let seen = Rc::default();
        testing::http1_origin(origin, "hello", Rc::clone(&seen));
        let (client, proxied) = testing::pair().await;
        let talk = async {
            client
                .write_all(b"GET /x HTTP/1.1\r\nHost: app\r\n\r\n")
                .await
                .unwrap();
            let head = String::from_utf8(read_head(&client).await.unwrap()).unwrap();
            let body = read_exact(&client, 5).await;
            client.shutdown_write().unwrap();
            (head, body)
        };
        let (served, (head, body)) =
            serve_while(&shard, &route, &ClientId::Untouched, proxied, talk).await;
        assert!(matches!(served, Ok(Served::Closed)));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"hello");
        assert_eq!(seen.borrow().len(), 1);
        assert!(
            route.pool.holds_idle(),
            "the upstream went back to the pool"
        );
    });
}

#[test]
fn a_client_without_an_identity_loses_its_l5d_headers_inbound() {
    let shard = Shard::for_tests();
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let route = http_route(&shard, origin.addr());
        let seen = Rc::default();
        testing::http1_origin(origin, "ok", Rc::clone(&seen));
        let (client, proxied) = testing::pair().await;
        let talk = async {
            let request = b"GET / HTTP/1.1\r\nHost: app\r\nl5d-client-id: forged.identity\r\nx-kept: 1\r\n\r\n";
            client.write_all(request).await.unwrap();
            read_head(&client).await.unwrap();
            read_exact(&client, 2).await;
            client.shutdown_write().unwrap();
        };
        let (served, ()) = serve_while(&shard, &route, &ClientId::Strip, proxied, talk).await;
        served.unwrap();
        let seen = seen.borrow();
        let head = String::from_utf8_lossy(&seen[0]).to_ascii_lowercase();
        assert!(!head.contains("l5d-client-id"), "{head}");
        assert!(head.contains("x-kept: 1"), "{head}");
    });
}

#[test]
fn an_origin_that_cannot_be_reached_is_answered_by_the_proxy() {
    let shard = Shard::for_tests();
    testing::run_with(&shard.deadlines, || async {
        let gone = Loopback::bind().addr();
        let route = http_route(&shard, gone);
        let (client, proxied) = testing::pair().await;
        let talk = async {
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
                .await
                .unwrap();
            let head = String::from_utf8(read_head(&client).await.unwrap()).unwrap();
            client.shutdown_write().unwrap();
            head
        };
        let (_, head) = serve_while(&shard, &route, &ClientId::Untouched, proxied, talk).await;
        assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    });
}

/// An idle keep-alive connection holds `serve`'s future for as long as it
/// waits for its next request, in each of thousands of connections: it
/// has room for that wait and nothing that serves a request (reading the
/// head and the exchange are boxed), and keeps no argument twice
/// (benchmarks/HISTORY.md, "An idle HTTP/1 connection at 1.15-1.18 KiB").
#[test]
fn the_wait_for_the_next_request_is_all_an_idle_connection_holds() {
    let shard = Shard::for_tests();
    testing::run_with(&shard.deadlines, || async {
        // An origin never connected to: nothing is served.
        let route = http_route(&shard, "127.0.0.1:9".parse().unwrap());
        let (_client, proxied) = testing::pair().await;
        let mut io = client_io(&shard, proxied);
        let mut first = None;
        let proxy = proxy(&shard, &route, &ClientId::Untouched);
        let serve = proxy.serve(&mut io, &mut first);
        // 160 bytes (rustc 1.95, debug and release); 304 when an `async fn`
        // chain kept its arguments, a scrutinee and a read of a message
        // begun beside the wait. A little room for another compiler.
        let size = std::mem::size_of_val(&serve);
        assert!(size <= 192, "serve's future is {size} bytes");
    });
}
