//! HTTP proxying. HTTP/1.1 is proxied request by request (`h1`): heads are
//! parsed (`head`), bodies pass through with their framing (`chunked`,
//! `io`), requests are balanced by peak EWMA (`balancer`) over pooled
//! upstream connections (`pool`). HTTP/2 is not proxied yet: detected
//! HTTP/2 connections are carried as opaque TCP.

mod balancer;
mod chunked;
mod h1;
mod head;
mod io;
mod pool;

use std::time::Duration;

pub use balancer::RequestBalancer;
pub use h1::H1Proxy;
pub use io::HttpIo;
pub use pool::{upstream, Pool, Upstream};

/// A route's HTTP state on one shard.
pub struct HttpRoute {
    pub balancer: RequestBalancer,
    pub pool: Pool,
}

impl HttpRoute {
    pub fn new(upstreams: &[std::net::SocketAddr], seed: u64, idle_timeout: Duration) -> HttpRoute {
        HttpRoute {
            balancer: RequestBalancer::new(upstreams, seed),
            pool: Pool::new(upstreams.len(), idle_timeout),
        }
    }
}
