//! `classify` on loopback sockets inside one executor: the port policy
//! decides before any byte is looked at, a remembered server-first
//! endpoint skips detection, and detection's own verdicts (including the
//! server-first race it then remembers, and the fail-open) become one
//! `Carry`, each counted in `protocol_detect_total` under its result.

use std::rc::Rc;
use std::time::Duration;

use super::*;
use crate::config::Direction;
use crate::io::testing::{self, read_exact, Loopback};
use crate::proxy::testing::route;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/// How many connections `protocol_detect_total` counts under `result`.
fn detected(shard: &Shard, result: &str) -> u64 {
    let snapshot = shard.metrics.snapshot(0, 0);
    let counted = snapshot.detect_total.iter();
    counted
        .filter(|(labels, _)| labels.result == result)
        .map(|(_, n)| n)
        .sum()
}

/// A route of `protocol` to `origin`, listening on a port of its own.
fn route_to(shard: &Shard, origin: &Loopback, protocol: Protocol) -> Rc<RouteState> {
    let listen = "127.0.0.1:4140".parse().unwrap();
    route(shard, listen, origin.addr(), Direction::Outbound, protocol)
}

#[test]
fn an_opaque_port_is_never_peeked() {
    let shard = Shard::for_tests();
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let route = route_to(&shard, &origin, Protocol::Opaque);
        let (client, proxied) = testing::pair().await;
        // An HTTP request: detection would call it HTTP/1.
        client.write_all(REQUEST).await.unwrap();
        let classified = classify(&shard, &route, Protocol::Opaque, &proxied, None)
            .await
            .unwrap();
        assert_eq!(classified.carry, Carry::Opaque { tls_sni: None });
        assert!(classified.prefix.is_empty());
        assert_eq!(detected(&shard, "opaque_port"), 1);
        assert_eq!(detected(&shard, "http/1"), 0);
        assert_eq!(read_exact(&proxied, REQUEST.len()).await, REQUEST);
    });
}

#[test]
fn a_configured_protocol_is_not_detected() {
    let shard = Shard::for_tests();
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        for (protocol, carry) in [
            (Protocol::Http1, Carry::Http1),
            (Protocol::Http2, Carry::Http2),
        ] {
            let route = route_to(&shard, &origin, protocol);
            // Opaque bytes, and silence after them: detection would say
            // unknown, or wait for the detect timeout (10 s by default).
            let (client, proxied) = testing::pair().await;
            client.write_all(b"\x00\x01").await.unwrap();
            let classified = classify(&shard, &route, protocol, &proxied, None)
                .await
                .unwrap();
            assert_eq!(classified.carry, carry);
            assert!(classified.prefix.is_empty());
        }
        let snapshot = shard.metrics.snapshot(0, 0);
        assert!(
            snapshot.detect_total.is_empty(),
            "{:?}",
            snapshot.detect_total
        );
    });
}

#[test]
fn a_remembered_server_first_endpoint_skips_detection() {
    let shard = Shard::for_tests();
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let route = route_to(&shard, &origin, Protocol::Detect);
        shard.server_first.remember(origin.addr());
        let (client, proxied) = testing::pair().await;
        let (upstream, _origin_side) = origin.pair().await;
        client.write_all(REQUEST).await.unwrap();
        let watched = Some((&upstream, origin.addr()));
        let classified = classify(&shard, &route, Protocol::Detect, &proxied, watched)
            .await
            .unwrap();
        assert_eq!(classified.carry, Carry::Opaque { tls_sni: None });
        assert_eq!(detected(&shard, "learned_server_first"), 1);
        assert_eq!(detected(&shard, "http/1"), 0);
    });
}

#[test]
fn an_upstream_that_speaks_first_is_carried_opaque_and_remembered() {
    let shard = Shard::for_tests();
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let route = route_to(&shard, &origin, Protocol::Detect);
        let (_client, proxied) = testing::pair().await;
        let (upstream, origin_side) = origin.pair().await;
        origin_side.write_all(b"220 ready\r\n").await.unwrap();
        let watched = Some((&upstream, origin.addr()));
        let classified = classify(&shard, &route, Protocol::Detect, &proxied, watched)
            .await
            .unwrap();
        assert_eq!(classified.carry, Carry::Opaque { tls_sni: None });
        assert_eq!(detected(&shard, "server_first"), 1);
        assert!(shard.server_first.remembers(origin.addr()));
    });
}

#[test]
fn detection_decides_on_a_detect_port() {
    let shard = Shard::for_tests();
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let route = route_to(&shard, &origin, Protocol::Detect);
        let cases: [(&[u8], Carry); 2] = [
            (REQUEST, Carry::Http1),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Carry::Http2),
        ];
        for (bytes, carry) in cases {
            let (client, proxied) = testing::pair().await;
            client.write_all(bytes).await.unwrap();
            let classified = classify(&shard, &route, Protocol::Detect, &proxied, None)
                .await
                .unwrap();
            assert_eq!(classified.carry, carry);
        }
        assert_eq!(detected(&shard, "http/1"), 1);
        assert_eq!(detected(&shard, "http/2"), 1);
    });
}

#[test]
fn a_silent_client_fails_open_to_opaque_at_the_detect_timeout() {
    let mut shard = Shard::for_tests();
    shard.timeouts.detect = Duration::from_millis(200);
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let route = route_to(&shard, &origin, Protocol::Detect);
        let (_client, proxied) = testing::pair().await;
        let classified = classify(&shard, &route, Protocol::Detect, &proxied, None)
            .await
            .unwrap();
        assert_eq!(classified.carry, Carry::Opaque { tls_sni: None });
        assert_eq!(detected(&shard, "timeout"), 1);
    });
}

#[test]
fn a_routes_own_detect_timeout_is_the_one_a_silent_client_waits_for() {
    let shard = Shard::for_tests();
    assert!(shard.timeouts.detect >= Duration::from_secs(5));
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let route = route_to(&shard, &origin, Protocol::Detect);
        let mut route = Rc::try_unwrap(route).ok().expect("the only holder");
        // A Linkerd policy's `Detect { timeout }`, through discovery.
        route.route.detect_timeout = Some(Duration::from_millis(200));
        let (_client, proxied) = testing::pair().await;
        let started = std::time::Instant::now();
        let classified = classify(&shard, &route, Protocol::Detect, &proxied, None)
            .await
            .unwrap();
        assert_eq!(classified.carry, Carry::Opaque { tls_sni: None });
        assert_eq!(detected(&shard, "timeout"), 1);
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    });
}
