//! The runtime (`Sidecar`): decides how many shards run and where
//! (`placement`), raises the open-files limit and derives the connection
//! limit from it (`limits`), binds every listener (`listener`), starts one
//! glommio executor per shard (`shard_main`) plus the admin shard on its
//! own thread, links them (`control`), turns SIGTERM/SIGINT into a drain
//! (`signals`), starts the resolver of upstream names and feeds its
//! answers to the routes (`names`, `feed`), and waits for the shards to
//! drain. The glommio executor setup lives here and nowhere
//! else.

mod control;
mod directory;
mod feed;
mod limits;
mod listener;
mod locked_memory;
mod names;
mod placement;
mod reload;
mod shard_main;
mod signals;
mod started;
mod status;
mod uring_access;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use glommio::{ExecutorJoinHandle, GlommioError, LocalExecutorBuilder};
use glommio::{LocalExecutorPoolBuilder, PoolThreadHandles};

pub use feed::EndpointFeed;
pub use limits::raise_nofile_limit;
pub use listener::ListenError;
pub use placement::{Placement, PlacementError};
pub use signals::Signals;

use crate::admin::AdminPolicy;
use crate::config::{Args, Config};
use crate::discovery::CacheHandle;
use crate::dns::{Sink, Update};
use crate::metrics::{DnsStatus, IdentityStatus};
use crate::tls::mesh::MeshConfigs;
use crate::tls::reload::MeshStartError;
use control::{Control, Reloading, Shared};
use locked_memory::{LockedMemoryError, RingPlan};
use names::Names;
use uring_access::IoUringRefused;

/// glommio's `io_memory` for every executor: none. It is a slab for storage
/// I/O (DMA reads and writes of files), registered with each of an
/// executor's three rings, which pins it: the 10 MiB default pinned 90 MiB
/// (`VmPin`) and held 30 of a 39 MiB RSS for ringside's three executors,
/// which read and write sockets only, into buffers of their own. Zero
/// registers nothing and makes no `IOPOLL` ring (vendor/glommio patch 14):
/// the rings are then all the locked memory (`locked_memory`).
const NO_STORAGE_IO: usize = 0;

/// glommio's preemption of the running task queue after every `ring_depth`
/// I/O completions: off for every executor. Each of ringside's executors
/// runs one task queue of short tasks, so the preemption only yielded that
/// queue to itself, and each one cost a write to the executor's eventfd,
/// which io_uring hands to an io-wq worker thread woken beside the shard
/// (vendor/glommio/PATCHES.md, patch 20, has what it cost).
const PREEMPT_ON_IO: bool = false;

/// What `ENOMEM` from a ring means when the plan said the limit holds it.
const OUT_OF_LOCKED_MEMORY: &str = "; RLIMIT_MEMLOCK is counted per user, over all of the \
     user's processes, and others of this user hold locked memory: run ringside as a user of its \
     own or raise the limit (README: \"Locked memory\")";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error("cannot start the {what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("the {executor} could not set up its io_uring rings: {error}{}",
        if *out_of_memory { OUT_OF_LOCKED_MEMORY } else { "" })]
    Rings {
        executor: &'static str,
        error: String,
        out_of_memory: bool,
    },
    #[error("shard {shard} failed: {message}")]
    Shard { shard: usize, message: String },
    #[error(transparent)]
    Mesh(#[from] MeshStartError),
    #[error(transparent)]
    LockedMemory(#[from] LockedMemoryError),
    #[error(transparent)]
    IoUring(#[from] IoUringRefused),
    #[error(transparent)]
    Linkerd(#[from] crate::control::IdentityStartError),
}

/// The sidecar process: its listeners bound, its shards not yet started
/// (`run` starts them and waits for their drain). Named apart from the
/// `proxy` folder, which is one connection's stage, not the process.
pub struct Sidecar {
    config: Config,
    placement: Placement,
    /// Per route, then per transparent listener, one socket per shard.
    listeners: Vec<Vec<socket2::Socket>>,
    /// The IPv6 twins of transparent listeners (`listener::ipv6_twin`):
    /// the index of the listener in `config.transparent`, its address,
    /// one socket per shard.
    twins: Vec<(usize, SocketAddr, Vec<socket2::Socket>)>,
    admin_listener: socket2::Socket,
    admin_addr: SocketAddr,
    listen_addrs: Vec<SocketAddr>,
    signals: Signals,
    /// The command line, for reloads (`reload_from`).
    args: Option<Args>,
    /// Endpoint updates from other threads (the DNS resolver), both ends.
    feed: (EndpointFeed, feed::FeedReceiver),
    /// The mTLS configs every shard shares, with the identity's status,
    /// when an identity is configured.
    mesh: Option<(MeshConfigs, Arc<IdentityStatus>)>,
    /// How deep every executor's io_uring rings are.
    rings: RingPlan,
    /// Linkerd mode's control thread, which keeps the mesh's certificate
    /// current; stopped when the shards have drained.
    control_plane: Option<crate::control::ControlPlane>,
    /// Where outbound transparent destinations are resolved: Linkerd
    /// mode's discovery, on the control thread.
    discovery: Option<CacheHandle>,
    /// Linkerd mode's inbound port policies, on the control thread.
    inbound_policy: Option<crate::discovery::inbound::InboundHandle>,
}

impl Sidecar {
    /// Decides the placement (and logs it), binds the admin listener and
    /// every shard's route and transparent listeners. Clients may connect
    /// as soon as this returns: the kernel queues them until the shards
    /// start accepting.
    pub fn bind(config: Config) -> Result<Sidecar, RunError> {
        let placement = Placement::here(&config)?;
        placement.log();
        uring_access::check()?;
        let rings = locked_memory::plan_rings(placement.shards + 1)?;
        rings.log();
        let signals = Signals::register().map_err(|source| RunError::Start {
            what: "signal handlers",
            source,
        })?;
        let feed = feed::feed().map_err(|source| RunError::Start {
            what: "endpoint feed",
            source,
        })?;
        let status = Arc::new(IdentityStatus::default());
        let (mut discovery, mut inbound_policy) = (None, None);
        let (mesh, control_plane) = match (&config.identity, &config.linkerd) {
            (Some(identity), _) => {
                let configs = crate::tls::reload::start(identity, status.clone())?;
                (Some((configs, status)), None)
            }
            (None, Some(linkerd)) => {
                let plane = crate::control::start(linkerd, &config.dns, status.clone())?;
                discovery = Some(crate::discovery::start_on(&plane, linkerd));
                let ports = crate::discovery::inbound::start_on(&plane, linkerd, &config);
                inbound_policy = Some(ports);
                (Some((plane.mesh.clone(), status)), Some(plane))
            }
            (None, None) => (None, None),
        };
        let admin_listener = listener::bind_exclusive(config.admin_addr, 128)?;
        let admin_addr = local(&admin_listener, config.admin_addr)?;
        let routes = config.routes.iter().map(|route| route.listen);
        let transparent = config.transparent.iter().map(|listener| listener.listen);
        let (mut listeners, mut listen_addrs) = (Vec::new(), Vec::new());
        for listen in routes.chain(transparent) {
            let sockets = listener::bind_shard_listeners(listen, placement.shards, config.backlog)?;
            listen_addrs.push(local(&sockets[0], listen)?);
            listeners.push(sockets);
        }
        let mut twins = Vec::new();
        let bound_transparent = &listen_addrs[config.routes.len()..];
        for (index, bound) in bound_transparent.iter().enumerate() {
            let Some(twin) = listener::ipv6_twin(*bound) else {
                continue;
            };
            match listener::bind_twin_listeners(twin, placement.shards, config.backlog)? {
                Some(sockets) => twins.push((index, twin, sockets)),
                None => tracing::info!(%bound, "no IPv6 on this host: IPv4 only"),
            }
        }
        Ok(Sidecar {
            config,
            placement,
            listeners,
            twins,
            admin_listener,
            admin_addr,
            listen_addrs,
            signals,
            args: None,
            feed,
            mesh,
            rings,
            control_plane,
            discovery,
            inbound_policy,
        })
    }

    /// Lets SIGHUP and `POST /reload` read the config again from `args`
    /// (its file under its flags and environment), as at start.
    pub fn reload_from(mut self, args: Args) -> Sidecar {
        self.args = Some(args);
        self
    }

    /// Where a resolver (or a control plane) on a thread of its own sends
    /// endpoint updates; each route's names resolve to endpoints through it.
    pub fn endpoint_feed(&self) -> EndpointFeed {
        self.feed.0.clone()
    }

    pub fn shards(&self) -> usize {
        self.placement.shards
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The bound address of each route, in config order (port 0 resolved).
    pub fn route_addrs(&self) -> &[SocketAddr] {
        &self.listen_addrs[..self.config.routes.len()]
    }

    /// The bound address of each transparent listener, in config order.
    pub fn transparent_addrs(&self) -> &[SocketAddr] {
        &self.listen_addrs[self.config.routes.len()..]
    }

    /// The IPv6 twins of the transparent listeners: which listener (its
    /// index in config order) and where.
    pub fn ipv6_twins(&self) -> impl Iterator<Item = (usize, SocketAddr)> + '_ {
        self.twins.iter().map(|(index, addr, _)| (*index, *addr))
    }

    /// Runs until SIGTERM/SIGINT and the drain that follows.
    pub fn run(self) -> Result<(), RunError> {
        let Sidecar {
            mut config,
            placement,
            listeners,
            twins,
            admin_listener,
            admin_addr,
            listen_addrs,
            signals,
            args,
            feed: (feed_sender, feed_receiver),
            mesh,
            rings,
            control_plane,
            discovery,
            inbound_policy,
        } = self;
        let configured = config.clone();
        let shutdown_endpoint = match config.admin_shutdown {
            true => crate::admin::ShutdownEndpoint::Loopback,
            false => crate::admin::ShutdownEndpoint::Disabled,
        };
        // Shards see the bound addresses, so labels show real ports.
        let (bound_routes, bound_transparent) = listen_addrs.split_at(config.routes.len());
        for (route, addr) in config.routes.iter_mut().zip(bound_routes) {
            route.listen = *addr;
        }
        for (listener, addr) in config.transparent.iter_mut().zip(bound_transparent) {
            listener.listen = *addr;
        }
        // The transparent listeners' loop check refuses these.
        let twin_addrs = twins.iter().map(|(_, addr, _)| *addr);
        let own_addrs: Vec<SocketAddr> = listen_addrs
            .iter()
            .copied()
            .chain(twin_addrs)
            .chain([admin_addr])
            .collect();
        let (mesh, identity) = mesh.unzip();
        let dns_status = Arc::new(DnsStatus::default());
        let shared = Shared {
            identity,
            dns: Some(dns_status.clone()),
            ..Shared::default()
        };
        let shards = placement.shards;
        let max_connections = limits::connection_limit(config.max_connections, shards);
        tracing::info!(
            max_connections,
            per_shard = max_connections / shards,
            configured = config.max_connections.is_some(),
            "connection limit"
        );
        if max_connections < shards {
            tracing::warn!(
                max_connections,
                shards,
                "proxy.max_connections is below the shard count: some shards take no connections"
            );
        }

        let mut per_shard_listeners: Vec<Vec<socket2::Socket>> =
            (0..shards).map(|_| Vec::new()).collect();
        for sockets in listeners {
            for (shard, socket) in sockets.into_iter().enumerate() {
                per_shard_listeners[shard].push(socket);
            }
        }
        let mut per_shard_twins: Vec<Vec<(usize, socket2::Socket)>> =
            (0..shards).map(|_| Vec::new()).collect();
        for (index, _, sockets) in twins {
            for (shard, socket) in sockets.into_iter().enumerate() {
                per_shard_twins[shard].push((index, socket));
            }
        }

        let mut links = Vec::with_capacity(shards);
        let (init_tx, init_rx) = crossbeam_channel::bounded(shards);
        let per_shard = per_shard_listeners.into_iter().zip(per_shard_twins);
        for (id, (listeners, twins)) in per_shard.enumerate() {
            let (link, control) = control::link();
            links.push(link);
            let init = shard_main::ShardInit {
                id,
                config: config.clone(),
                max_connections: limits::shard_share(max_connections, shards, id),
                listeners,
                twins,
                own_addrs: own_addrs.clone(),
                mesh: mesh.clone(),
                discovery: discovery.clone(),
                inbound_policy: inbound_policy.clone(),
                control,
                shared: shared.clone(),
            };
            init_tx
                .send(init)
                .expect("the channel holds one init per shard");
        }

        let running = configured.routes.iter().zip(&config.routes);
        let running = running.map(|(configured, bound)| reload::Running {
            configured: configured.listen,
            route: bound.clone(),
        });
        let running: Vec<reload::Running> = running.collect();
        let (word, words) = started::words();
        let admin_word = word.clone();
        let admin = LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .name("ringside-admin")
            .io_memory(NO_STORAGE_IO)
            .ring_depth(rings.depth)
            .preempt_on_io(PREEMPT_ON_IO)
            .spawn(move || {
                admin_word.made();
                async move {
                    let sink: Sink = Arc::new(move |update: Update| {
                        feed_sender.resolved(&update.host, update.addresses);
                    });
                    let names = Names::start(&configured, sink, dns_status);
                    let reloading = Reloading::new(args, configured, running);
                    let control = Control::connect(links, shared, reloading, names).await;
                    let control = Rc::new(control);
                    let (stops, hangups) = signals.into_async();
                    crate::io::spawn(control::drain_on_signal(stops, control.clone()));
                    crate::io::spawn(control::reload_on_signal(hangups, control.clone()));
                    crate::io::spawn(feed::follow(feed_receiver, control.clone()));
                    let port = admin_addr.port();
                    let policy = inbound_policy.map(|ports| AdminPolicy::new(ports, port));
                    let endpoint = shutdown_endpoint;
                    crate::admin::run(admin_listener, admin_addr, control, endpoint, policy).await;
                }
            })
            .map_err(|err| RunError::Start {
                what: "admin shard",
                source: std::io::Error::other(err.to_string()),
            })?;

        let start_error = |err: glommio::GlommioError<()>| RunError::Start {
            what: "proxy shards",
            source: std::io::Error::other(err.to_string()),
        };
        let handles = LocalExecutorPoolBuilder::new(placement.pool().map_err(start_error)?)
            .name("ringside-shard")
            .io_memory(NO_STORAGE_IO)
            .ring_depth(rings.depth)
            .preempt_on_io(PREEMPT_ON_IO)
            .on_all_shards(move || {
                word.made();
                let init = init_rx.recv().expect("one init per shard");
                shard_main::run(init)
            })
            .map_err(start_error)?;
        let shard_threads = handles.handles().iter().map(|shard| shard.thread().id());
        let executors: Vec<_> = std::iter::once(admin.thread().id())
            .chain(shard_threads)
            .collect();
        if let Err(failed) = words.wait(&executors) {
            return Err(rings_failed(failed, admin, handles));
        }
        for (shard, result) in handles.join_all().into_iter().enumerate() {
            result.map_err(|err| RunError::Shard {
                shard,
                message: err.to_string(),
            })?;
        }
        if let Some(plane) = control_plane {
            plane.thread.shutdown();
        }
        Ok(())
    }
}

/// The error of the executor whose thread ended before it made its rings
/// (`started`); the others are left running, as the process ends.
fn rings_failed<A: Send, S>(
    failed: std::thread::ThreadId,
    admin: ExecutorJoinHandle<A>,
    shards: PoolThreadHandles<S>,
) -> RunError {
    let (executor, result) = if admin.thread().id() == failed {
        ("admin shard", admin.join().map(drop))
    } else {
        let mut shards = shards.into_handles().into_iter();
        let shard = shards.find(|shard| shard.thread().id() == failed);
        let joined = shard.expect("the failed thread is a shard's").join();
        let result = match joined {
            Ok(result) => result.map(drop),
            Err(_) => Err(GlommioError::IoError(std::io::Error::other("it panicked"))),
        };
        ("proxy shard", result)
    };
    let error = match result {
        Err(error) => error,
        Ok(()) => GlommioError::IoError(std::io::Error::other("it ended before it started")),
    };
    let out_of_memory = match &error {
        GlommioError::IoError(source) | GlommioError::EnhancedIoError { source, .. } => {
            source.raw_os_error() == Some(libc::ENOMEM)
        }
        _ => false,
    };
    RunError::Rings {
        executor,
        error: error.to_string(),
        out_of_memory,
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
