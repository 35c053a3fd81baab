//! HTTP proxying. HTTP/1.1 is proxied request by request (`h1`): heads are
//! parsed (`head`), bodies pass through with their framing (`chunked`,
//! `io`), requests are balanced by peak EWMA (`crate::balance`) over pooled
//! upstream connections (`pool`). HTTP/2 (`h2`, over the `h2` crate)
//! multiplexes client streams over one upstream connection per endpoint,
//! balanced the same way, within the limits one client connection gets
//! (`h2_streams`). The proxy's own answers and their errors are in `answer`.
//!
//! The connection stage (`proxy/`) hands a connection in once its protocol
//! is known, with what it needs of the shard (`HttpShard`) and of the route
//! (`HttpRoute`). An HTTP/1 connection that becomes a tunnel (`Upgrade`,
//! `CONNECT`) is handed back to it ([`Served::Tunnel`]).

mod answer;
mod chunked;
mod client_id;
mod h1;
mod h2;
mod h2_streams;
mod head;
pub mod invariants;
mod io;
mod orig_proto;
mod pool;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

pub use crate::metrics::Authz;
pub use answer::ProxyError;
pub use client_id::ClientId;
pub use h1::{H1Proxy, Served};
pub use h2::{adopt, H2Proxy};
/// For the benches: the hot path of every HTTP/1 request.
pub use head::{parse_request, parse_response};
pub use io::{Arrival, HttpIo};
pub use pool::{upstream, H2Pool, Pool, Upstream};

use crate::balance::RequestBalancer;
use crate::config::{Http2Config, Timeouts};
use crate::io::{Deadlines, Shutdown, Socket};
use crate::metrics::{RouteMetrics, ShardMetrics};
use crate::tls::mesh::MeshTls;
use crate::tls::SessionProtocol;

/// What HTTP proxying needs of the shard it runs on. Shared behind one
/// `Rc`: every HTTP/2 stream's task holds it.
pub struct HttpShard {
    pub metrics: ShardMetrics,
    /// Fires when the shard starts draining: connections then finish their
    /// current request and close (HTTP/2 with a GOAWAY).
    pub draining: Rc<Shutdown>,
    pub connect_timeout: Duration,
    /// The shard's coarse clock: every connection timeout arms a slot in
    /// it instead of a timer of its own.
    pub deadlines: Deadlines,
    /// The proxy's timeouts; a route's response timeout is its own.
    pub timeouts: Timeouts,
    /// How long an upstream connected ahead of a client's first head is
    /// kept for it while the head is not complete: the detect quiet pause,
    /// since a live client sends a head without pausing that long. Then
    /// the connection goes to the pool, where any request may use it and
    /// the pool's idle timeout closes it.
    pub speculative_hold: Duration,
    /// The `[http2]` limits every client HTTP/2 connection is served within.
    pub http2: Http2Config,
    /// mTLS to mesh peers and from them, when an identity is configured.
    pub mesh: Option<Rc<MeshTls>>,
}

impl HttpShard {
    /// Connects to `addr` within the connect timeout: through its peer
    /// proxy over mTLS when `addr` is a mesh peer's, directly otherwise.
    /// `protocol`, when known, is declared to the peer, which then skips
    /// detection.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        protocol: Option<SessionProtocol>,
    ) -> std::io::Result<Socket> {
        let timeout = self.connect_timeout;
        let peer = self
            .mesh
            .as_ref()
            .and_then(|mesh| Some((mesh, mesh.peer_for(addr)?)));
        match peer {
            Some((mesh, peer)) => {
                mesh.connect(addr, peer, protocol, timeout, &self.deadlines)
                    .await
            }
            None => crate::io::connect(addr, timeout, &self.deadlines).await,
        }
    }
}

/// A route's HTTP state on one shard.
pub struct HttpRoute {
    pub metrics: Rc<RouteMetrics>,
    pub balancer: RequestBalancer,
    /// HTTP/1 connections, several per endpoint.
    pub pool: Pool,
    /// From a request sent to its response head; then 504.
    pub response_timeout: Option<Duration>,
    /// HTTP/2: one multiplexed connection per endpoint.
    pub h2_pool: H2Pool,
}

impl HttpRoute {
    pub fn new(
        metrics: Rc<RouteMetrics>,
        upstreams: &[SocketAddr],
        seed: u64,
        idle_timeout: Duration,
        response_timeout: Option<Duration>,
    ) -> HttpRoute {
        HttpRoute {
            response_timeout,
            metrics,
            balancer: RequestBalancer::new(upstreams, seed),
            pool: Pool::new(upstreams.len(), idle_timeout),
            h2_pool: H2Pool::new(upstreams.len()),
        }
    }

    /// Closes the pooled connections idle for the pool's idle timeout.
    pub fn sweep(&self) {
        self.pool.sweep();
        self.h2_pool.sweep(self.pool.idle_timeout());
    }
}

/// Connects to endpoint `index` for an HTTP request: the balancer and the
/// connect-failure metrics hear how it went.
async fn connect(
    shard: &HttpShard,
    route: &HttpRoute,
    index: usize,
    protocol: SessionProtocol,
) -> Result<Socket, ProxyError> {
    let balancer = &route.balancer;
    let addr = balancer.addr(index);
    match shard.connect(addr, Some(protocol)).await {
        Ok(socket) => {
            balancer.connected(index);
            Ok(socket)
        }
        Err(source) => {
            balancer.connect_failed(index);
            shard.metrics.connect_failed(addr, &source);
            Err(ProxyError::Connect { addr, source })
        }
    }
}
