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
mod h1_follow;
mod h2;
mod h2_body;
mod h2_streams;
mod h2_upstream;
mod head;
pub mod invariants;
mod io;
mod orig_proto;
mod policy;
mod pool;

use std::cell::RefCell;
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
pub use policy::{target_path, target_query, RequestAuthz, RequestPolicy};
pub use pool::{upstream, H2Pool, Pool, Upstream};

use crate::balance::RequestBalancer;
use crate::config::{Endpoint, EndpointSet, ProtocolHint};
use crate::io::Socket;
use crate::metrics::RouteMetrics;
use crate::shard::Shard;
use crate::tls::SessionProtocol;

/// A route's HTTP state on one shard, for one endpoint set: the indexes
/// its balancer picks name endpoints of its own pools and metrics only.
/// When the set changes a successor takes over (`succeed`), and a client
/// connection moves to it between requests (`newer`), so a long keep-alive
/// connection does not keep sending to an endpoint that left.
pub struct HttpRoute {
    pub metrics: Rc<RouteMetrics>,
    pub balancer: RequestBalancer,
    /// HTTP/1 connections, several per endpoint.
    pub pool: Pool,
    /// From a request sent to its response head; then 504.
    pub response_timeout: Option<Duration>,
    /// HTTP/2: one multiplexed connection per endpoint.
    pub h2_pool: H2Pool,
    /// What the balancer's indexes name, with what is known of each (how
    /// to reach it: `Shard::connect`).
    pub endpoints: EndpointSet,
    /// The state of the endpoint set that replaced this one, once one did.
    successor: RefCell<Option<Rc<HttpRoute>>>,
}

impl HttpRoute {
    pub fn new(
        metrics: Rc<RouteMetrics>,
        endpoints: EndpointSet,
        seed: u64,
        idle_timeout: Duration,
        response_timeout: Option<Duration>,
    ) -> HttpRoute {
        let upstreams = addrs(&endpoints);
        HttpRoute {
            response_timeout,
            metrics,
            balancer: RequestBalancer::new(&upstreams, seed),
            pool: Pool::new(upstreams.len(), idle_timeout),
            h2_pool: H2Pool::new(upstreams.len()),
            endpoints,
            successor: RefCell::new(None),
        }
    }

    /// The state of the endpoint set `endpoints`, which replaces this one:
    /// the balancer keeps what it learned of endpoints that stay, and so do
    /// the pools their idle connections; those of endpoints that left are
    /// closed now, as they are idle. Connections busy on this state come
    /// back to it (`checkin`) and are handed on or closed then.
    pub fn successor(
        &self,
        metrics: Rc<RouteMetrics>,
        endpoints: EndpointSet,
        response_timeout: Option<Duration>,
    ) -> HttpRoute {
        let upstreams = &addrs(&endpoints)[..];
        let balancer = self.balancer.successor(upstreams);
        let new_index = |old: usize| upstreams.iter().position(|&a| a == self.balancer.addr(old));
        let pool = self.pool.successor(upstreams.len(), new_index);
        let h2_pool = self.h2_pool.successor(upstreams.len(), new_index);
        HttpRoute {
            metrics,
            balancer,
            pool,
            response_timeout,
            h2_pool,
            endpoints,
            successor: RefCell::new(None),
        }
    }

    /// Whether HTTP/1 to endpoint `index` rides HTTP/2 streams marked
    /// `l5d-orig-proto`: when its source hinted HTTP/2 (Linkerd's `h2`
    /// hint, as Linkerd upgrades, `outbound/src/http/concrete.rs`), not when
    /// it hinted something else, and for a `[[mesh.peer]]`, which is always
    /// a ringside or Linkerd proxy.
    pub fn upgrades(&self, index: usize) -> bool {
        let endpoint = &self.endpoints[index];
        match endpoint.protocol {
            Some(ProtocolHint::Http2) => true,
            Some(_) => false,
            None => endpoint.identity.is_none() && self.metrics.is_meshed(index),
        }
    }

    /// Hands over to `next`, made by `successor`.
    pub fn succeed(&self, next: Rc<HttpRoute>) {
        *self.successor.borrow_mut() = Some(next);
    }

    /// The newest state of this route, if this one was replaced: what a
    /// client connection's next request is balanced by.
    pub fn newer(&self) -> Option<Rc<HttpRoute>> {
        let mut newest = self.successor.borrow().clone()?;
        loop {
            let next = newest.successor.borrow().clone();
            match next {
                Some(next) => newest = next,
                None => return Some(newest),
            }
        }
    }

    /// Gives a connection whose request is done back to the pool: this
    /// state's, or the newest one's when the set changed meanwhile and
    /// still holds its endpoint; otherwise it is closed.
    pub fn checkin(&self, mut upstream: Upstream) {
        let Some(newest) = self.newer() else {
            return self.pool.checkin(upstream);
        };
        let addr = self.balancer.addr(upstream.endpoint);
        let kept = (0..newest.balancer.len()).find(|&i| newest.balancer.addr(i) == addr);
        if let Some(index) = kept {
            upstream.endpoint = index;
            newest.pool.checkin(upstream);
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
    let endpoint = &route.endpoints[index];
    let addr = endpoint.addr;
    match shard
        .connect(endpoint, route.metrics.direction, Some(protocol))
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

fn addrs(endpoints: &[Endpoint]) -> Vec<SocketAddr> {
    endpoints.iter().map(|endpoint| endpoint.addr).collect()
}
