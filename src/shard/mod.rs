//! `Shard`: what every connection of one shard shares, whatever its
//! protocol: the metrics, the coarse deadlines and the drain signal, the
//! timeouts, the mesh, the detect settings and the server-first memory,
//! the opaque pumps' pipes, and the shard's share of the connection limit
//! (`limit`).
//!
//! The connection stage (`proxy/`) holds it and lends it to the stages it
//! calls: `http` takes the whole of it (its HTTP/2 stream tasks hold an
//! `Rc`), while `detect`, `tcp` and `tls` get only the pieces they use, so
//! that none of them depends on the others through it. It lives in a folder
//! of its own, below `proxy` and `http` and above the pieces it holds, so
//! that neither protocol's type is the other's home.
//!
//! Owned by the shard's thread and reached through an `Rc`: nothing in it
//! is `Send`. What a reload may change (the detect settings, the mesh's
//! peers and inbound policy) is an `Rc` swapped in whole (`reconfigure`),
//! which a connection clones when it looks (no allocation); the rest is
//! fixed at start.

mod limit;
mod ports;

use std::cell::RefCell;
use std::rc::Rc;

pub use limit::{ConnectionSlots, Slot};
pub use ports::{PortPolicies, PortPolicy};

use crate::config::{
    Config, DetectConfig, Direction, Endpoint, Http2Config, InboundPolicy, MeshPeer, Timeouts,
};
use crate::detect::ServerFirstMemory;
use crate::io::{Deadlines, Shutdown, Socket};
use crate::metrics::ShardMetrics;
use crate::tcp::PumpResources;
use crate::tls::mesh::{MeshConfigs, MeshTls, Meshed};
use crate::tls::SessionProtocol;

pub struct Shard {
    pub metrics: ShardMetrics,
    /// Fires when the shard starts draining: accept loops stop, and
    /// connections finish their current request and close (HTTP/2 with a
    /// GOAWAY).
    pub draining: Rc<Shutdown>,
    /// The shard's coarse clock: every connection timeout arms a slot in
    /// it instead of a timer of its own.
    pub deadlines: Deadlines,
    /// The proxy's timeouts; a route's response timeout is its own.
    pub timeouts: Timeouts,
    /// The `[http2]` limits every client HTTP/2 connection is served within:
    /// HTTP's own, the only ones here.
    pub http2: Http2Config,
    /// mTLS to mesh peers and from them, when an identity is configured.
    mesh: RefCell<Option<Rc<MeshTls>>>,
    detect: RefCell<Rc<DetectConfig>>,
    /// Upstreams that spoke first, so later connections skip detection.
    pub server_first: ServerFirstMemory,
    /// Pipes and scratch space of the opaque pumps (h2's reads borrow the
    /// scratch buffer too).
    pub pumps: PumpResources,
    /// Most upstream connections held ahead of a verdict or a first head
    /// (`proxy.max_speculative_connections`).
    pub max_speculative: usize,
    /// This shard's share of the process-wide connection limit.
    pub connections: ConnectionSlots,
    /// The inbound ports' policies, under Linkerd's policy controller.
    pub ports: PortPolicies,
}

impl Shard {
    /// Shard `id`'s state; `max_connections` is its share of the
    /// process-wide limit, `draining` the signal its drain fires.
    pub fn new(
        id: usize,
        config: &Config,
        max_connections: usize,
        draining: Rc<Shutdown>,
        mesh: Option<MeshConfigs>,
    ) -> Shard {
        let mesh = mesh.map(|configs| {
            let policy = config.inbound_policy.clone();
            Rc::new(MeshTls::new(configs, config.mesh_peers.clone(), policy))
        });
        Shard {
            metrics: ShardMetrics::new(id),
            draining,
            deadlines: Deadlines::new(),
            timeouts: config.timeouts,
            http2: config.http2,
            mesh: RefCell::new(mesh),
            server_first: ServerFirstMemory::new(config.detect.server_first_memory),
            detect: RefCell::new(Rc::new(config.detect.clone())),
            pumps: PumpResources::new(config.forward_mode, config.pipe_size_bytes),
            max_speculative: config.max_speculative_connections,
            connections: ConnectionSlots::new(max_connections),
            ports: PortPolicies::default(),
        }
    }

    /// Starts draining: the drain signal fires, and so does every
    /// deadline armed until drain (idle keep-alive connections close).
    pub fn drain(&self) {
        self.draining.trigger();
        self.deadlines.drain();
    }

    /// The mesh as now, when an identity is configured.
    pub fn mesh(&self) -> Option<Rc<MeshTls>> {
        self.mesh.borrow().clone()
    }

    /// The detect settings as now.
    pub fn detect(&self) -> Rc<DetectConfig> {
        self.detect.borrow().clone()
    }

    /// Takes a reload's detect settings, mesh peers and inbound policy; a
    /// connection that holds the former ones keeps them.
    pub fn reconfigure(&self, detect: DetectConfig, peers: Vec<MeshPeer>, policy: InboundPolicy) {
        *self.detect.borrow_mut() = Rc::new(detect);
        let mesh = self.mesh();
        if let Some(mesh) = mesh {
            let configs = mesh.configs.clone();
            *self.mesh.borrow_mut() = Some(Rc::new(MeshTls::new(configs, peers, policy)));
        }
    }

    /// Connects to `endpoint` within the connect timeout: over mTLS naming
    /// its identity when its source gave one (a control plane), or through
    /// its peer proxy when its address is a `[[mesh.peer]]`'s, directly
    /// otherwise. `protocol`, when known, is declared to the peer, which
    /// then skips detection.
    ///
    /// An inbound connection is for the application beside us, never for a
    /// peer: a `[[mesh.peer]]` network that covers our own address would
    /// otherwise send it over mTLS to our own inbound listener, round and
    /// round, and never to the application.
    pub async fn connect(
        &self,
        endpoint: &Endpoint,
        direction: Direction,
        protocol: Option<SessionProtocol>,
    ) -> std::io::Result<Socket> {
        let (addr, timeout, deadlines) = (endpoint.addr, self.timeouts.connect, &self.deadlines);
        let Some(mesh) = self.mesh().filter(|_| direction == Direction::Outbound) else {
            return crate::io::connect(addr, timeout, deadlines).await;
        };
        if let Some(identity) = &endpoint.identity {
            let tagged_port = endpoint.tagged_port;
            let target = Meshed {
                identity,
                tagged_port,
            };
            return mesh
                .connect_to(addr, target, protocol, timeout, deadlines)
                .await;
        }
        match mesh.peer_for(addr) {
            Some(peer) => mesh.connect(addr, peer, protocol, timeout, deadlines).await,
            None => crate::io::connect(addr, timeout, deadlines).await,
        }
    }
}

#[cfg(test)]
impl Shard {
    /// Puts a mesh in, for tests of meshed stages.
    pub(crate) fn set_mesh(&mut self, mesh: MeshTls) {
        *self.mesh.get_mut() = Some(Rc::new(mesh));
    }

    /// A shard with the default configuration and no mesh, for tests of
    /// the stages that take one.
    pub(crate) fn for_tests() -> Shard {
        use clap::Parser;
        let args = crate::config::Args::try_parse_from(["ringside"]).expect("no arguments");
        let config = Config::load(&args).expect("the defaults are valid");
        Shard::new(0, &config, 1_000, Rc::new(Shutdown::new()), None)
    }
}
