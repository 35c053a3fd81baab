//! The HTTP/1 pool's checkout rules on loopback connections inside one
//! executor: a connection goes back to its own endpoint only, is not
//! handed out past the idle timeout, is skipped when its upstream closed
//! it or sent stray bytes, and skips that check only for a retryable
//! request within a millisecond of its return.

use std::time::{Duration, Instant};

use super::*;
use crate::io::testing::{self, Loopback};
use crate::metrics::{Peer, ShardMetrics};

const LONG: Duration = Duration::from_secs(60);

/// A connection to `origin` for endpoint `endpoint`, and the origin's side.
async fn connected(origin: &Loopback, endpoint: usize) -> (Upstream, Socket) {
    let (socket, accepted) = origin.pair().await;
    let counters = ShardMetrics::new(0).tcp(testing::labels(Peer::Dst));
    (upstream(socket, counters, endpoint), accepted)
}

/// Which connection this is: its own port.
fn port(upstream: &Upstream) -> u16 {
    upstream.io.socket.local_addr().unwrap().port()
}

/// Waits until `upstream`'s socket has something to report (bytes or
/// EOF), without taking it.
async fn until_readable(upstream: &Upstream) {
    let mut byte = [0u8; 1];
    let _ = upstream.io.socket.peek(&mut byte).await;
}

#[test]
fn a_returned_connection_goes_back_to_its_own_endpoint_once() {
    testing::run(|| async {
        let origin = Loopback::bind();
        let pool = Pool::new(2, LONG);
        let (first, _origin_side) = connected(&origin, 1).await;
        let first_port = port(&first);
        assert!(!first.reused);
        pool.checkin(first);
        assert!(pool.holds_idle());
        assert!(pool.checkout(0, true).is_none(), "endpoint 0 has none");
        let again = pool.checkout(1, false).expect("endpoint 1's connection");
        assert_eq!(port(&again), first_port);
        assert!(again.reused, "a pooled connection is a reused one");
        assert!(pool.checkout(1, false).is_none(), "handed out once only");
    });
}

#[test]
fn expired_idle_connections_are_not_handed_out_and_are_swept() {
    testing::run(|| async {
        let origin = Loopback::bind();
        let idle_timeout = Duration::from_micros(50);
        let pool = Pool::new(1, idle_timeout);
        for _ in 0..2 {
            let (upstream, _origin_side) = connected(&origin, 0).await;
            pool.checkin(upstream);
            // Age it past the timeout on the clock itself, not by sleeping,
            // counting from after the pool stamped it.
            let returned = Instant::now();
            while returned.elapsed() <= idle_timeout {
                std::hint::spin_loop();
            }
        }
        pool.sweep();
        assert!(!pool.holds_idle(), "the sweep closes expired ones");
        let (upstream, _origin_side) = connected(&origin, 0).await;
        pool.checkin(upstream);
        let returned = Instant::now();
        while returned.elapsed() <= idle_timeout {
            std::hint::spin_loop();
        }
        assert!(pool.holds_idle());
        assert!(pool.checkout(0, true).is_none());
        assert!(!pool.holds_idle(), "checkout dropped the expired one");
    });
}

#[test]
fn a_zero_idle_timeout_keeps_nothing() {
    testing::run(|| async {
        let origin = Loopback::bind();
        let pool = Pool::new(1, Duration::ZERO);
        let (upstream, _origin_side) = connected(&origin, 0).await;
        pool.checkin(upstream);
        assert!(!pool.holds_idle());
        assert!(pool.checkout(0, true).is_none());
    });
}

#[test]
fn a_connection_its_upstream_closed_is_skipped_for_the_next_live_one() {
    testing::run(|| async {
        let origin = Loopback::bind();
        let pool = Pool::new(1, LONG);
        let (live, _live_origin) = connected(&origin, 0).await;
        let live_port = port(&live);
        let (closed, closed_origin) = connected(&origin, 0).await;
        drop(closed_origin);
        until_readable(&closed).await;
        // The closed one is the most recent, so it is tried first.
        pool.checkin(live);
        pool.checkin(closed);
        let handed = pool.checkout(0, false).expect("the live connection");
        assert_eq!(port(&handed), live_port);
        assert!(!pool.holds_idle(), "the closed one was let go");
    });
}

#[test]
fn a_connection_with_stray_bytes_is_not_handed_out() {
    testing::run(|| async {
        let origin = Loopback::bind();
        let pool = Pool::new(1, LONG);
        let (upstream, origin_side) = connected(&origin, 0).await;
        origin_side
            .write_all(b"HTTP/1.1 200 OK\r\n\r\n")
            .await
            .unwrap();
        until_readable(&upstream).await;
        pool.checkin(upstream);
        assert!(pool.checkout(0, false).is_none());
    });
}

/// Within `PROBE_AFTER_IDLE` of its return, a retryable request takes a
/// connection unchecked (a failure is retried), while any other request
/// gets the peek and so never a closed connection.
#[test]
fn only_a_retryable_request_skips_the_check_of_a_connection_just_returned() {
    testing::run(|| async {
        let origin = Loopback::bind();
        let pool = Pool::new(1, LONG);
        let (closed, closed_origin) = connected(&origin, 0).await;
        drop(closed_origin);
        until_readable(&closed).await;
        pool.checkin(closed);
        assert!(pool.checkout(0, false).is_none(), "checked: found closed");

        // A busy machine may take longer than the window between return
        // and checkout; such a round proves nothing and is run again.
        for _ in 0..100 {
            let (closed, closed_origin) = connected(&origin, 0).await;
            drop(closed_origin);
            until_readable(&closed).await;
            let returned = Instant::now();
            pool.checkin(closed);
            let handed = pool.checkout(0, true);
            if returned.elapsed() < PROBE_AFTER_IDLE {
                assert!(handed.is_some(), "taken unchecked while fresh");
                return;
            }
        }
        panic!("no checkout came within {PROBE_AFTER_IDLE:?} of a return");
    });
}
