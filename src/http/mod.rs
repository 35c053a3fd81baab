//! HTTP proxying. HTTP/1.1 is proxied request by request (`h1`): heads are
//! parsed (`head`), bodies pass through with their framing (`chunked`,
//! `io`), requests are balanced by peak EWMA (`crate::balance`) over pooled
//! upstream connections (`pool`). HTTP/2 (`h2`, over the `h2` crate with
//! the tokio I/O adapter in `h2_io`) multiplexes client streams over one
//! upstream connection per endpoint, balanced the same way.

mod answer;
mod chunked;
mod h1;
mod h2;
mod h2_io;
mod head;
pub mod invariants;
mod io;
mod pool;

use std::time::Duration;

use crate::balance::RequestBalancer;
use crate::tcp::{connect_endpoint, RouteState, ShardContext, Socket};

pub(crate) use answer::reason_phrase;
pub use h1::H1Proxy;
pub use h2::H2Proxy;
/// For the benches: the hot path of every HTTP/1 request.
pub use head::{parse_request, parse_response};
pub use io::{Arrival, HttpIo};
pub use pool::{upstream, Pool, Upstream};

/// Connects to endpoint `index` for an HTTP request: the balancer and the
/// connect-failure metrics hear how it went. The error says why, for the
/// `ringside-proxy-error` header.
async fn connect(shard: &ShardContext, route: &RouteState, index: usize) -> Result<Socket, String> {
    let balancer = &route.http.balancer;
    let addr = balancer.addr(index);
    match connect_endpoint(addr, shard.connect_timeout).await {
        Ok(socket) => {
            balancer.connected(index);
            Ok(socket)
        }
        Err(err) => {
            balancer.connect_failed(index);
            shard.metrics.connect_failed(addr, &err);
            Err(format!("connect to {addr} failed: {err}"))
        }
    }
}

/// A route's HTTP state on one shard.
pub struct HttpRoute {
    pub balancer: RequestBalancer,
    /// HTTP/1 connections, several per endpoint.
    pub pool: Pool,
    /// HTTP/2: one multiplexed connection per endpoint.
    pub h2_senders: std::cell::RefCell<Vec<Option<::h2::client::SendRequest<bytes::Bytes>>>>,
}

impl HttpRoute {
    pub fn new(upstreams: &[std::net::SocketAddr], seed: u64, idle_timeout: Duration) -> HttpRoute {
        HttpRoute {
            balancer: RequestBalancer::new(upstreams, seed),
            pool: Pool::new(upstreams.len(), idle_timeout),
            h2_senders: std::cell::RefCell::new(vec![None; upstreams.len()]),
        }
    }
}
