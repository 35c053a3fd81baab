//! The inbound authorization verdict per path, on a shard whose mesh
//! guards one port (`GUARDED`) and leaves the others open: whether the
//! upstream may be connected early, what `admit` does with a plaintext
//! client once its protocol is known (an opaque one is refused and closed,
//! an HTTP one admitted to be answered 403 per request), and both seen
//! end to end through a `Conn` on loopback sockets.

use std::net::SocketAddr;
use std::rc::Rc;

use super::*;
use crate::config::{Authorize, IdentityMatch, Protocol};
use crate::io::testing::{self, Loopback};
use crate::metrics::Authz;
use crate::proxy::testing::{client_through, conn, meshed_shard, route};
use crate::proxy::RouteState;
use crate::shard::Shard;

const GUARDED: u16 = 8080;
const OPEN: u16 = 9090;
const DB: &str = "db.default.serviceaccount.identity.linkerd.cluster.local";
const WEB: &str = "web.default.serviceaccount.identity.linkerd.cluster.local";

fn listen(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An inbound route of `port` to `origin`.
fn inbound(shard: &Shard, port: u16, origin: &Loopback, protocol: Protocol) -> Rc<RouteState> {
    route(
        shard,
        listen(port),
        origin.addr(),
        Direction::Inbound,
        protocol,
    )
}

/// `inbound_tcp_authz_*` for `port`: (allowed, refused).
fn tcp_authz(shard: &Shard, port: u16) -> (u64, u64) {
    let snapshot = shard.metrics.snapshot(0, 0);
    let target = listen(port).to_string();
    let mut counts = (0, 0);
    for (labels, n) in &snapshot.authz {
        if labels.http || labels.target_addr != target {
            continue;
        }
        if labels.decision == crate::metrics::Decision::Allowed {
            counts.0 += n;
        } else {
            counts.1 += n;
        }
    }
    counts
}

#[test]
fn the_upstream_is_connected_early_only_for_a_client_the_port_allows() {
    let shard = Rc::new(meshed_shard(
        GUARDED,
        Authorize::Identities(vec![IdentityMatch::Exact(WEB.to_string())]),
    ));
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let guarded = inbound(&shard, GUARDED, &origin, Protocol::Detect);
        let plaintext = conn(&shard, &guarded);
        assert!(!plaintext.may_connect_early(), "no identity proven yet");
        let stranger = conn(&shard, &guarded);
        stranger.meshed(Some(DB), None);
        assert!(!stranger.may_connect_early(), "an identity not listed");
        let listed = conn(&shard, &guarded);
        listed.meshed(Some(WEB), None);
        assert!(listed.may_connect_early());

        let open = inbound(&shard, OPEN, &origin, Protocol::Detect);
        assert!(conn(&shard, &open).may_connect_early());
        // Outbound, the inbound policy does not apply at all.
        let outbound = route(
            &shard,
            listen(GUARDED),
            origin.addr(),
            Direction::Outbound,
            Protocol::Detect,
        );
        assert!(conn(&shard, &outbound).may_connect_early());
    });
}

#[test]
fn a_refused_plaintext_opaque_client_is_closed_and_counted() {
    let shard = Rc::new(meshed_shard(GUARDED, Authorize::AllAuthenticated));
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let guarded = inbound(&shard, GUARDED, &origin, Protocol::Detect);
        let (_client, proxied) = testing::pair().await;
        let refused = conn(&shard, &guarded).admit(&proxied, &Carry::Opaque { tls_sni: None });
        match refused {
            Err(ConnError::ClientRead(err)) => {
                assert_eq!(err.kind(), ErrorKind::PermissionDenied)
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(tcp_authz(&shard, GUARDED), (0, 1));
    });
}

#[test]
fn a_refused_plaintext_http_client_is_admitted_to_be_answered_403s() {
    let shard = Rc::new(meshed_shard(GUARDED, Authorize::AllAuthenticated));
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let guarded = inbound(&shard, GUARDED, &origin, Protocol::Detect);
        let (_client, proxied) = testing::pair().await;
        for carry in [Carry::Http1, Carry::Http2] {
            let conn = conn(&shard, &guarded);
            conn.admit(&proxied, &carry)
                .expect("served, request by request");
            let refused = Authz {
                policy: "all-authenticated",
                allowed: false,
            };
            assert_eq!(conn.authz.get(), Some(refused), "{carry:?}");
        }
        // Counted per request, not per connection.
        assert_eq!(tcp_authz(&shard, GUARDED), (0, 0));
    });
}

#[test]
fn an_open_port_admits_a_plaintext_client_and_counts_it() {
    let shard = Rc::new(meshed_shard(GUARDED, Authorize::Deny));
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let open = inbound(&shard, OPEN, &origin, Protocol::Detect);
        let (_client, proxied) = testing::pair().await;
        let conn = conn(&shard, &open);
        conn.admit(&proxied, &Carry::Opaque { tls_sni: None })
            .expect("admitted");
        assert_eq!(conn.authz.get().map(|authz| authz.allowed), Some(true));
        assert_eq!(tcp_authz(&shard, OPEN), (1, 0));
    });
}

/// End to end through a `Conn`: on a port that refuses clients without an
/// identity, a plaintext HTTP/1 request is answered 403 and never reaches
/// the application, and an opaque client is reset.
#[test]
fn a_refused_client_gets_a_403_over_http_and_a_reset_otherwise() {
    let shard = Rc::new(meshed_shard(GUARDED, Authorize::AllAuthenticated));
    testing::run_with(&shard.deadlines, || async {
        let origin = Loopback::bind();
        let origin_addr = origin.addr();
        let seen = Rc::default();
        testing::http1_origin(origin, "app", Rc::clone(&seen));
        let route = route(
            &shard,
            listen(GUARDED),
            origin_addr,
            Direction::Inbound,
            Protocol::Detect,
        );

        let client = client_through(&shard, &route).await;
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
            .await
            .unwrap();
        let head = testing::read_head(&client).await.expect("an answer");
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        assert!(seen.borrow().is_empty(), "the request reached the app");

        let client = client_through(&shard, &route).await;
        client.write_all(b"\x00\x01 opaque").await.unwrap();
        let mut buf = [0u8; 16];
        let read = client.read(&mut buf).await;
        let reset = matches!(&read, Err(err) if err.kind() == ErrorKind::ConnectionReset);
        assert!(reset, "expected a reset, got {read:?}");
        assert_eq!(tcp_authz(&shard, GUARDED), (0, 1));
    });
}
