//! HTTP proxying. HTTP/1.1 is proxied request by request (`h1`, where each
//! goes upstream in `h1_upstream`): heads are parsed (`head`), bodies pass
//! through with their framing (`chunked`, `io`), requests are balanced by
//! peak EWMA (`crate::balance`) over pooled upstream connections (`pool`).
//! HTTP/2 (`h2`, over the `h2` crate) multiplexes client streams, driven in
//! their connection's own task, over one upstream connection per endpoint
//! (`h2_upstream`), balanced the same way, within the limits one client
//! connection gets (`h2_streams`); bodies pass between streams with flow
//! control (`h2_body`). HTTP/1 between mesh peers rides HTTP/2 streams
//! (`orig_proto`). The proxy's own answers and their errors are in `answer`.
//!
//! The connection stage (`proxy/`) hands a connection in once its protocol
//! is known, with the shard it runs on (`crate::shard::Shard`: metrics,
//! deadlines, drain, timeouts, the mesh) and the route's HTTP state
//! (`HttpRoute`). An HTTP/1 connection that becomes a tunnel (`Upgrade`,
//! `CONNECT`) is handed back to it ([`Served::Tunnel`]).

mod answer;
mod chunked;
mod client_id;
mod h1;
mod h2;
mod h2_body;
mod h2_streams;
mod h2_upstream;
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
pub use h2::H2Proxy;
/// For the benches: the hot path of every HTTP/1 request.
pub use head::{parse_request, parse_response};
pub use io::{Arrival, HttpIo};
pub use pool::{upstream, H2Pool, Pool, Upstream};

use crate::balance::RequestBalancer;
use crate::io::Socket;
use crate::metrics::RouteMetrics;
use crate::shard::Shard;
use crate::tls::SessionProtocol;

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
    shard: &Shard,
    route: &HttpRoute,
    index: usize,
    protocol: SessionProtocol,
) -> Result<Socket, ProxyError> {
    let balancer = &route.balancer;
    let addr = balancer.addr(index);
    match shard
        .connect(addr, route.metrics.direction, Some(protocol))
        .await
    {
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
