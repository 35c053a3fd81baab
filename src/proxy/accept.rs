//! The accept loop of one route on one shard: each connection becomes a
//! task of its own, behind the shard's gate so that a drain can wait for
//! it, inside one span that names it.

use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use tracing::Instrument;

use super::conn::Conn;
use super::{RouteState, ShardContext};
use crate::io::{sleep, Listener, Tasks, TcpStream};

/// Accepts until the shard drains (or its gate closes), backing off when
/// accepting fails (EMFILE and friends) instead of spinning.
pub async fn accept_loop(
    listener: Listener,
    route: Rc<RouteState>,
    shard: Rc<ShardContext>,
    connections: Rc<Tasks>,
) {
    let start = |stream: TcpStream| {
        shard.metrics().accepted();
        // A debug span: a disabled one costs nothing per poll (its fields
        // are not even evaluated), where an enabled one costs the
        // subscriber a call on every poll of the connection (1-2% of the
        // CPU of an HTTP/1 request). The failure line names the connection
        // on its own.
        let span = tracing::debug_span!(
            "conn",
            shard = shard.metrics().shard(),
            client = ?stream.peer_addr().ok(),
            target = %route.route.listen,
        );
        let conn = Conn::new(shard.clone(), route.clone());
        // false: draining, the gate no longer takes tasks.
        connections.spawn(conn.run(stream).instrument(span))
    };
    let draining = &shard.http.draining;
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            draining.wait().await;
            None
        })
        .await;
        let failure = match accepted {
            None => break,
            Some(Ok(stream)) => {
                if !start(stream) {
                    break;
                }
                // Whatever else waits in the backlog is taken right away,
                // with one accept4(2) each instead of another io_uring
                // round trip (and glommio's fcntl dance) per connection.
                loop {
                    match listener.accept_now() {
                        Ok(Some(stream)) => {
                            if !start(stream) {
                                return;
                            }
                        }
                        Ok(None) => break None,
                        Err(err) => break Some(err),
                    }
                }
            }
            Some(Err(err)) => Some(err),
        };
        match failure {
            None => backoff = Duration::from_millis(5),
            Some(err) => {
                // Let connections finish to free fds.
                shard.metrics().accept_failed();
                tracing::warn!(listen = %route.route.listen, error = %err, "accept failed");
                sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    tracing::debug!(listen = %route.route.listen, "listener closed");
}
