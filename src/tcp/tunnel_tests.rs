//! The two-way tunnel on loopback sockets inside one executor: byte-exact
//! both ways at once, half-close honoured from either side (one side
//! shuts its write, the other keeps sending), the idle timeout, and a
//! failure named by its side.

use std::time::Duration;

use futures_lite::future;

use super::*;
use crate::config::ForwardMode;
use crate::io::testing::{self, payload, read_exact, read_to_end, send_then_fin};
use crate::metrics::{Peer, ShardMetrics, TcpCounters};

/// The counters both ends of a test tunnel report to.
struct Counters {
    client: std::rc::Rc<TcpCounters>,
    upstream: std::rc::Rc<TcpCounters>,
}

impl Counters {
    fn new(metrics: &ShardMetrics) -> Counters {
        Counters {
            client: metrics.tcp(testing::labels(Peer::Src)),
            upstream: metrics.tcp(testing::labels(Peer::Dst)),
        }
    }

    fn ends<'a>(&'a self, client: &'a Socket, upstream: &'a Socket) -> (End<'a>, End<'a>) {
        (
            End {
                socket: client,
                counters: &self.client,
            },
            End {
                socket: upstream,
                counters: &self.upstream,
            },
        )
    }
}

#[test]
fn bytes_cross_byte_exact_both_ways_at_once() {
    for mode in [ForwardMode::Splice, ForwardMode::Copy] {
        testing::run(|| async move {
            let (client, proxied) = testing::pair().await;
            let (upstream, origin) = testing::pair().await;
            let metrics = ShardMetrics::new(0);
            let counters = Counters::new(&metrics);
            let (client_end, upstream_end) = counters.ends(&proxied, &upstream);
            let pumps = PumpResources::new(mode, 64 * 1024);
            let (up, down) = (payload(3 << 20), payload(2 << 20 | 7));
            let client_side = future::zip(send_then_fin(&client, &up), read_to_end(&client));
            let origin_side = future::zip(send_then_fin(&origin, &down), read_to_end(&origin));
            let (closed, (((), at_client), ((), at_origin))) = future::zip(
                tunnel(&pumps, client_end, upstream_end, None),
                future::zip(client_side, origin_side),
            )
            .await;
            assert_eq!(closed.unwrap(), Closed::Ended);
            assert!(at_origin == up, "{mode:?}: the upload changed");
            assert!(at_client == down, "{mode:?}: the download changed");
            let snapshot = metrics.snapshot(0, 0);
            let client_total = &snapshot.tcp[&testing::labels(Peer::Src)];
            assert_eq!(client_total.read_bytes_total, up.len() as u64);
            assert_eq!(client_total.write_bytes_total, down.len() as u64);
        });
    }
}

/// The client sends its request and shuts its write side (as `nc -N`
/// does); the upstream reads to that FIN, and only then answers, in
/// several writes: all of it still reaches the client.
#[test]
fn a_client_that_shuts_its_write_side_still_gets_the_whole_answer() {
    testing::run(|| async {
        let (client, proxied) = testing::pair().await;
        let (upstream, origin) = testing::pair().await;
        let metrics = ShardMetrics::new(0);
        let counters = Counters::new(&metrics);
        let (client_end, upstream_end) = counters.ends(&proxied, &upstream);
        let pumps = PumpResources::new(ForwardMode::Splice, 64 * 1024);
        let answer = payload(300_000);
        let client_side = async {
            send_then_fin(&client, b"the whole request").await;
            read_to_end(&client).await
        };
        let origin_side = async {
            // The FIN arrived before any answer was sent.
            assert_eq!(read_to_end(&origin).await, b"the whole request");
            for part in answer.chunks(100_000) {
                origin.write_all(part).await.unwrap();
            }
            origin.shutdown_write().unwrap();
        };
        let (closed, (at_client, ())) = future::zip(
            tunnel(&pumps, client_end, upstream_end, None),
            future::zip(client_side, origin_side),
        )
        .await;
        assert_eq!(closed.unwrap(), Closed::Ended);
        assert!(at_client == answer, "the answer after the FIN changed");
    });
}

/// The mirror: the upstream finishes first (a server that says its piece
/// and shuts its write side), and the client keeps sending to it.
#[test]
fn an_upstream_that_shuts_its_write_side_still_gets_what_the_client_sends() {
    testing::run(|| async {
        let (client, proxied) = testing::pair().await;
        let (upstream, origin) = testing::pair().await;
        let metrics = ShardMetrics::new(0);
        let counters = Counters::new(&metrics);
        let (client_end, upstream_end) = counters.ends(&proxied, &upstream);
        let pumps = PumpResources::new(ForwardMode::Splice, 64 * 1024);
        let upload = payload(300_000);
        let origin_side = async {
            send_then_fin(&origin, b"220 ready\r\n").await;
            read_to_end(&origin).await
        };
        let client_side = async {
            assert_eq!(read_to_end(&client).await, b"220 ready\r\n");
            send_then_fin(&client, &upload).await;
        };
        let (closed, (at_origin, ())) = future::zip(
            tunnel(&pumps, client_end, upstream_end, None),
            future::zip(origin_side, client_side),
        )
        .await;
        assert_eq!(closed.unwrap(), Closed::Ended);
        assert!(at_origin == upload, "the upload after the FIN changed");
    });
}

#[test]
fn a_tunnel_with_no_byte_for_the_idle_timeout_closes_as_idle() {
    let deadlines = crate::io::Deadlines::new();
    testing::run_with(&deadlines, || async {
        let (client, proxied) = testing::pair().await;
        let (upstream, origin) = testing::pair().await;
        let metrics = ShardMetrics::new(0);
        let counters = Counters::new(&metrics);
        let (client_end, upstream_end) = counters.ends(&proxied, &upstream);
        let pumps = PumpResources::new(ForwardMode::Splice, 64 * 1024);
        let idle = IdleTimeout {
            after: Duration::from_millis(150),
            deadlines: &deadlines,
        };
        let started = std::time::Instant::now();
        let moving = async {
            // One byte each way first: activity the watch must see.
            client.write_all(b"x").await.unwrap();
            assert_eq!(read_exact(&origin, 1).await, b"x");
        };
        let (closed, ()) =
            future::zip(tunnel(&pumps, client_end, upstream_end, Some(idle)), moving).await;
        assert_eq!(closed.unwrap(), Closed::Idle);
        assert!(started.elapsed() >= idle.after);
    });
}

#[test]
fn an_upstream_reset_is_named_the_upstreams_failure() {
    testing::run(|| async {
        let (_client, proxied) = testing::pair().await;
        let (upstream, origin) = testing::pair().await;
        let metrics = ShardMetrics::new(0);
        let counters = Counters::new(&metrics);
        let (client_end, upstream_end) = counters.ends(&proxied, &upstream);
        let pumps = PumpResources::new(ForwardMode::Splice, 64 * 1024);
        origin.reset_on_close();
        drop(origin);
        let closed = tunnel(&pumps, client_end, upstream_end, None).await;
        match closed {
            Err(ConnError::UpstreamRead(err)) => {
                assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset)
            }
            other => panic!("expected an upstream read failure, got {other:?}"),
        }
    });
}
