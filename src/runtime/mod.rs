//! The runtime: binds every listener, starts one pinned glommio executor per
//! shard plus the admin shard on its own thread, and waits for them to
//! drain. The glommio executor setup lives here and nowhere else.

mod limits;
mod listener;
mod shard;
mod shutdown;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, LocalExecutorPoolBuilder, Placement, PoolPlacement};

pub use limits::raise_nofile_limit;
pub use listener::ListenError;
pub use shutdown::{AsyncSignals, Shutdown, Signals};

use crate::admin::{AdminInit, ShardLink};
use crate::config::Config;

/// What the admin shard asks of a proxy shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardRequest {
    /// Reply with a copy of your metrics.
    Snapshot,
    /// Stop accepting and let open connections finish.
    Drain,
}

/// The little state shards and the admin shard share: written once per
/// shard at start and once at drain, never on the data path.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    pub shards_started: Arc<AtomicUsize>,
    pub draining: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot start the {what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("shard {shard} failed: {message}")]
    Shard { shard: usize, message: String },
}

/// A proxy whose listeners are bound but whose shards have not started.
pub struct Proxy {
    config: Config,
    /// Per route, one socket per shard.
    route_listeners: Vec<Vec<socket2::Socket>>,
    admin_listener: socket2::Socket,
    admin_addr: SocketAddr,
    route_addrs: Vec<SocketAddr>,
    signals: Signals,
}

impl Proxy {
    /// Binds the admin listener and every shard's route listeners. Clients
    /// may connect as soon as this returns: the kernel queues them until
    /// the shards start accepting.
    pub fn bind(config: Config) -> Result<Proxy, RunError> {
        let signals = Signals::register().map_err(|source| RunError::Start {
            what: "signal handlers",
            source,
        })?;
        let admin_listener = listener::bind_exclusive(config.admin_addr, 128)?;
        let admin_addr = local(&admin_listener, config.admin_addr)?;
        let mut route_listeners = Vec::with_capacity(config.routes.len());
        let mut route_addrs = Vec::with_capacity(config.routes.len());
        for route in &config.routes {
            let sockets =
                listener::bind_shard_listeners(route.listen, config.shards, config.backlog)?;
            route_addrs.push(local(&sockets[0], route.listen)?);
            route_listeners.push(sockets);
        }
        Ok(Proxy {
            config,
            route_listeners,
            admin_listener,
            admin_addr,
            route_addrs,
            signals,
        })
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The bound address of each route, in config order (port 0 resolved).
    pub fn route_addrs(&self) -> &[SocketAddr] {
        &self.route_addrs
    }

    /// Runs until SIGTERM/SIGINT and the drain that follows.
    pub fn run(self) -> Result<(), RunError> {
        let Proxy {
            mut config,
            route_listeners,
            admin_listener,
            admin_addr,
            route_addrs,
            signals,
        } = self;
        // Shards see the bound addresses, so labels show real ports.
        for (route, addr) in config.routes.iter_mut().zip(&route_addrs) {
            route.listen = *addr;
        }
        let shared = Shared::default();
        let shards = config.shards;

        let mut per_shard_listeners: Vec<Vec<socket2::Socket>> =
            (0..shards).map(|_| Vec::new()).collect();
        for sockets in route_listeners {
            for (shard, socket) in sockets.into_iter().enumerate() {
                per_shard_listeners[shard].push(socket);
            }
        }

        let mut links = Vec::with_capacity(shards);
        let (init_tx, init_rx) = crossbeam_channel::bounded(shards);
        for (id, listeners) in per_shard_listeners.into_iter().enumerate() {
            let (request_tx, request_rx) = shared_channel::new_bounded(8);
            let (reply_tx, reply_rx) = shared_channel::new_bounded(8);
            links.push(ShardLink {
                requests: request_tx,
                replies: reply_rx,
            });
            let init = shard::ShardInit {
                id,
                config: config.clone(),
                listeners,
                requests: request_rx,
                replies: reply_tx,
                shared: shared.clone(),
            };
            init_tx
                .send(init)
                .expect("the channel holds one init per shard");
        }

        let admin = AdminInit {
            listener: admin_listener,
            addr: admin_addr,
            shards: links,
            shared: shared.clone(),
            signals,
        };
        LocalExecutorBuilder::new(Placement::Unbound)
            .name("ringside-admin")
            .spawn(move || crate::admin::run(admin))
            .map_err(|err| RunError::Start {
                what: "admin shard",
                source: std::io::Error::other(err.to_string()),
            })?;

        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let placement = if shards <= cores {
            PoolPlacement::MaxSpread(shards, None)
        } else {
            tracing::warn!(
                shards,
                cores,
                "more shards than cores: shards are not pinned"
            );
            PoolPlacement::Unbound(shards)
        };
        let handles = LocalExecutorPoolBuilder::new(placement)
            .name("ringside-shard")
            .on_all_shards(move || {
                let init = init_rx.recv().expect("one init per shard");
                shard::run(init)
            })
            .map_err(|err| RunError::Start {
                what: "proxy shards",
                source: std::io::Error::other(err.to_string()),
            })?;
        for (shard, result) in handles.join_all().into_iter().enumerate() {
            result.map_err(|err| RunError::Shard {
                shard,
                message: err.to_string(),
            })?;
        }
        Ok(())
    }
}

fn local(socket: &socket2::Socket, requested: SocketAddr) -> Result<SocketAddr, RunError> {
    listener::local_addr(socket).map_err(|source| {
        RunError::Listen(ListenError::Io {
            addr: requested,
            source,
        })
    })
}
