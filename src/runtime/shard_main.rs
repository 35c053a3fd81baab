//! A proxy shard: one glommio executor that owns a listener per route and
//! per transparent listener, runs the connection stage's accept loops on
//! them, and carries every connection it accepted from start to end. It answers the admin shard's
//! snapshot and drain requests.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_lite::future;

use super::control::{self, ShardControl, Shared};
use crate::config::Config;
use crate::discovery::CacheHandle;
use crate::io::{sleep, spawn, Listener, Shutdown, Tasks};
use crate::proxy::{accept_loop, Accepting, RouteSlot, Routes, TransparentState};
use crate::shard::Shard;
use crate::tls::mesh::MeshConfigs;

/// What the start-up thread hands to one shard.
pub struct ShardInit {
    pub id: usize,
    pub config: Config,
    /// This shard's part of the process-wide connection limit.
    pub max_connections: usize,
    /// One bound, listening socket per route, in route order, then one
    /// per transparent listener.
    pub listeners: Vec<socket2::Socket>,
    /// IPv6 twins of transparent listeners: the listener's index among
    /// the transparent ones, and this shard's socket.
    pub twins: Vec<(usize, socket2::Socket)>,
    /// Every address ringside listens on, which a transparent connection
    /// must not be forwarded to.
    pub own_addrs: Vec<SocketAddr>,
    /// mTLS to and from mesh peers, when an identity is configured.
    pub mesh: Option<MeshConfigs>,
    /// Where outbound transparent destinations are resolved, under a
    /// control plane.
    pub discovery: Option<CacheHandle>,
    /// Where the inbound ports' policies are asked for, under a control
    /// plane.
    pub inbound_policy: Option<crate::discovery::inbound::InboundHandle>,
    pub control: ShardControl,
    pub shared: Shared,
}

/// Runs the shard until it has drained; returns when its last connection
/// ended or the grace period ran out.
pub async fn run(init: ShardInit) {
    let ShardInit {
        id,
        config,
        max_connections,
        listeners,
        twins,
        own_addrs,
        mesh,
        discovery,
        inbound_policy,
        control,
        shared,
    } = init;
    let shutdown = Rc::new(Shutdown::new());
    let mut shard = Shard::new(id, &config, max_connections, shutdown.clone(), mesh);
    shard.ports = crate::shard::PortPolicies::new(inbound_policy);
    let shard = Rc::new(shard);
    let connections = Rc::new(Tasks::new());

    let routes: Vec<Rc<RouteSlot>> = config
        .routes
        .iter()
        .map(|route| Rc::new(RouteSlot::configured(&shard, route.clone())))
        .collect();
    let own_addrs: Rc<[SocketAddr]> = own_addrs.into();
    let inbound_ips = config.linkerd.as_ref().map(|l| &l.inbound_ips[..]);
    let transparent: Vec<Rc<TransparentState>> = config
        .transparent
        .iter()
        .map(|listener| {
            let own = own_addrs.clone();
            Rc::new(
                TransparentState::new(*listener, own, config.timeouts.pool_idle, discovery.clone())
                    .allowing_only(inbound_ips.unwrap_or_default()),
            )
        })
        .collect();
    let accepting = routes
        .iter()
        .map(|route| Accepting::Route(route.clone()))
        .chain(
            transparent
                .iter()
                .map(|t| Accepting::Transparent(t.clone())),
        );
    // The listeners come in the same order: routes, then transparent;
    // a twin shares its listener's state.
    let twins = twins
        .into_iter()
        .map(|(index, socket)| (Accepting::Transparent(transparent[index].clone()), socket));
    for (accepting, socket) in accepting.zip(listeners).chain(twins) {
        let listener = Listener::new(socket);
        spawn(accept_loop(
            listener,
            accepting,
            shard.clone(),
            connections.clone(),
        ));
    }

    let table = Rc::new(Routes::default());
    for slot in routes {
        table.add(slot);
    }
    spawn(sweep_pools(
        shard.clone(),
        table.clone(),
        transparent,
        shutdown.clone(),
    ));
    // Not stopped by the drain: draining connections still time out.
    spawn(shard.deadlines.clone().run());
    spawn(control::serve(
        control,
        shard.clone(),
        table,
        connections.clone(),
    ));
    shared.shards_started.fetch_add(1, Ordering::SeqCst);
    tracing::debug!(shard = id, "shard started");

    shutdown.wait().await;
    let open = shard.metrics.snapshot(0, 0).shards[0].open_connections;
    tracing::info!(shard = id, open, "draining");
    let drained = async {
        connections.close().await;
        true
    };
    let grace_over = async {
        sleep(config.timeouts.shutdown_grace).await;
        false
    };
    if future::or(drained, grace_over).await {
        tracing::info!(shard = id, "drained");
    } else {
        tracing::warn!(shard = id, "grace period over: closing open connections");
    }
}

/// Closes pooled HTTP connections that sat idle past the timeout, so an
/// idle pool gives its fds back even when no request comes to find them,
/// and forgets what is kept per transparent destination and server-first
/// endpoint once it has gone idle or stale.
async fn sweep_pools(
    shard: Rc<Shard>,
    routes: Rc<Routes>,
    transparent: Vec<Rc<TransparentState>>,
    shutdown: Rc<Shutdown>,
) {
    let period = Duration::from_secs(1);
    loop {
        let tick = async {
            sleep(period).await;
            true
        };
        let stop = async {
            shutdown.wait().await;
            false
        };
        if !future::or(tick, stop).await {
            return;
        }
        for route in routes.states() {
            route.http.sweep();
        }
        for listener in &transparent {
            listener.sweep(&shard);
        }
        shard.server_first.sweep();
    }
}
