//! The connection stage: everything between an accepted socket and the
//! handler of its protocol.
//!
//! - `accept`: a shard's accept loop, one task and one span per connection;
//! - `limit`: the shard's share of the connection limit (over it, a
//!   connection is reset at once);
//! - `route`: what a shard keeps per route (balancers, pools, counters);
//! - `transparent`: what a shard keeps per transparent listener: a route
//!   state per original destination, bounded and expiring;
//! - `conn`: the life of one connection, from the balanced connect to its
//!   one log line;
//! - `classify`: the route's port policy, then detection with fail-open,
//!   the server-first race and its memory, giving one `Carry` decision;
//! - `dispatch`: carrying the connection as that decision says: opaque
//!   bytes (`tcp`), HTTP/1 (`http::H1Proxy`, whose upgrades come back here
//!   as tunnels) or HTTP/2 (`http::H2Proxy`).
//!
//! Later stages (TLS termination) enter here, between accept and dispatch.

mod accept;
mod classify;
mod conn;
mod dispatch;
mod limit;
mod meshed;
mod route;
mod transparent;

use std::rc::Rc;

pub use accept::{accept_loop, Accepting};
pub use route::RouteState;
pub use transparent::TransparentState;

use crate::config::Config;
use crate::detect::ServerFirstMemory;
use crate::http::HttpShard;
use crate::io::{Deadlines, Shutdown};
use crate::metrics::ShardMetrics;
use crate::tcp::PumpResources;
use crate::tls::mesh::{MeshConfigs, MeshTls};

/// What every connection of one shard shares. Owned by the shard's thread
/// and reached through an `Rc`: nothing in it is `Send`.
pub struct ShardContext {
    /// The metrics, the drain signal and the connect timeout, as HTTP
    /// proxying needs them.
    pub http: Rc<HttpShard>,
    /// Pipes and scratch space of the opaque pumps.
    pub pumps: PumpResources,
    pub detect: crate::config::DetectConfig,
    pub server_first: ServerFirstMemory,
    /// Most upstream connections held ahead of a verdict or a first head
    /// (`proxy.max_speculative_connections`).
    pub max_speculative: usize,
    /// This shard's share of the process-wide connection limit.
    pub connections: limit::ConnectionSlots,
}

impl ShardContext {
    /// `max_connections`: this shard's share of the process-wide limit.
    pub fn new(
        shard: usize,
        config: &Config,
        max_connections: usize,
        draining: Rc<Shutdown>,
        mesh: Option<MeshConfigs>,
    ) -> ShardContext {
        let mesh = mesh.map(|configs| {
            let policy = config.inbound_policy.clone();
            Rc::new(MeshTls::new(configs, config.mesh_peers.clone(), policy))
        });
        ShardContext {
            http: Rc::new(HttpShard {
                metrics: ShardMetrics::new(shard),
                draining,
                connect_timeout: config.connect_timeout,
                deadlines: Deadlines::new(),
                timeouts: config.timeouts,
                speculative_hold: config.detect.quiet_pause,
                http2: config.http2,
                mesh,
            }),
            pumps: PumpResources::new(config.forward_mode, config.pipe_size_bytes),
            server_first: ServerFirstMemory::new(config.detect.server_first_memory),
            detect: config.detect.clone(),
            max_speculative: config.max_speculative_connections,
            connections: limit::ConnectionSlots::new(max_connections),
        }
    }

    pub fn metrics(&self) -> &ShardMetrics {
        &self.http.metrics
    }
}
