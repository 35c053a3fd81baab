//! `Conn`: the life of one accepted connection. It connects to an endpoint
//! the connection balancer picks (trying others when one fails), has the
//! connection classified, and dispatches it (`dispatch.rs`). Its end is
//! counted and logged once, with the side that failed.

use std::rc::Rc;
use std::time::Instant;

use super::classify::{classify, Carry, Classified};
use super::limit::Slot;
use super::{RouteState, ShardContext};
use crate::io::{self, ConnError, Socket, TcpStream};
use crate::metrics::TcpCounters;

/// How many endpoints one connection tries before it gives up.
const MAX_CONNECT_ATTEMPTS: usize = 3;

/// How a connection ended: the client-side counters it was counted under
/// (they depend on what classify found) and its outcome.
pub(super) type Ended = (Rc<TcpCounters>, Result<(), ConnError>);

pub(super) fn opened(counters: Rc<TcpCounters>) -> Rc<TcpCounters> {
    counters.opened();
    counters
}

pub struct Conn {
    pub(super) shard: Rc<ShardContext>,
    pub(super) route: Rc<RouteState>,
    /// The connection's place under the shard's connection limit, given
    /// back when the connection (this task) ends.
    _slot: Slot,
}

impl Conn {
    pub fn new(shard: Rc<ShardContext>, route: Rc<RouteState>, slot: Slot) -> Conn {
        Conn {
            shard,
            route,
            _slot: slot,
        }
    }

    /// Carries `client` until both sides are done; counts and logs its end.
    pub async fn run(self, client: TcpStream) {
        let started = Instant::now();
        // Taken now: a reset socket no longer has a peer address.
        let peer = client.peer_addr().ok();
        let (src_counters, result) = self.forward(client).await;
        if let Err(err) = &result {
            let client = peer.map_or_else(|| "?".to_string(), |addr| addr.to_string());
            tracing::warn!(
                shard = self.shard.metrics().shard(),
                %client,
                target = %self.route.route.listen,
                side = %err.side(),
                error = %err,
                "connection failed"
            );
        } else {
            tracing::debug!("connection closed");
        }
        src_counters.closed(result.is_ok(), started.elapsed());
    }

    async fn forward(&self, client: TcpStream) -> Ended {
        let client = match Socket::new(client) {
            Ok(client) => client,
            Err(err) => {
                let counters = opened(self.route.metrics.src.clone());
                return (counters, Err(ConnError::Proxy(err)));
            }
        };
        let (index, upstream) = match Box::pin(self.connect()).await {
            Ok(connected) => connected,
            // Boxed, like the HTTP paths: an opaque connection's task must
            // not carry the (much larger) state of paths it never takes.
            Err(err) => return Box::pin(self.unreachable(client, err)).await,
        };
        let ended = self.dispatch(client, upstream, index).await;
        self.route.balancer.disconnected(index);
        ended
    }

    /// No endpoint could be connected. An HTTP client still gets an answer
    /// it can read (a 502 or 503 saying why, from the HTTP path, which
    /// tries the endpoints again); anything else sees a reset rather than
    /// mistake the refusal for an empty answer.
    async fn unreachable(&self, client: Socket, err: ConnError) -> Ended {
        match classify(&self.shard, &self.route, &client, None).await {
            Ok(Classified {
                carry: Carry::Http1,
                prefix,
            }) => Box::pin(self.serve_http1(client, None, prefix)).await,
            Ok(Classified {
                carry: Carry::Http2,
                prefix,
            }) => Box::pin(self.serve_http2(client, None, prefix)).await,
            _ => {
                client.reset_on_close();
                (opened(self.route.metrics.src.clone()), Err(err))
            }
        }
    }

    /// Connects to an endpoint chosen by the balancer, trying others when
    /// one refuses or times out.
    async fn connect(&self) -> Result<(usize, Socket), ConnError> {
        let balancer = &self.route.balancer;
        let attempts = MAX_CONNECT_ATTEMPTS.min(balancer.len());
        let mut tried = Vec::with_capacity(attempts);
        let mut last_error = None;
        while tried.len() < attempts {
            let Some(index) = balancer.pick(&tried) else {
                break;
            };
            tried.push(index);
            let addr = balancer.endpoint(index).addr;
            let started = Instant::now();
            match io::connect(addr, self.shard.http.connect_timeout).await {
                Ok(stream) => {
                    balancer.connected(index, started.elapsed());
                    return Ok((index, stream));
                }
                Err(err) => {
                    tracing::debug!(endpoint = %addr, error = %err, "upstream connect failed");
                    balancer.failed(index);
                    self.shard.metrics().connect_failed(addr, &err);
                    last_error = Some((addr, err));
                }
            }
        }
        let (last, cause) = last_error.expect("every route has at least one upstream");
        Err(ConnError::Connect {
            attempts: tried.len(),
            last,
            cause,
        })
    }
}
