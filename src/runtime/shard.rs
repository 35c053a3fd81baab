//! A proxy shard: one pinned glommio executor that owns a listener per
//! route, accepts on them, and carries every connection it accepted from
//! start to end. It answers the admin shard's snapshot and drain requests.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_lite::future;
use glommio::channels::shared_channel::{SharedReceiver, SharedSender};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Gate;
use glommio::timer::sleep;
use tracing::Instrument;

use super::listener;
use super::shutdown::Shutdown;
use super::{ShardRequest, Shared};
use crate::config::Config;
use crate::detect::ServerFirstMemory;
use crate::metrics::{ShardMetrics, Snapshot};
use crate::tcp::{PumpResources, RouteState, ShardContext, TcpForward};

/// What the start-up thread hands to one shard.
pub struct ShardInit {
    pub id: usize,
    pub config: Config,
    /// One bound, listening socket per route, in route order.
    pub listeners: Vec<socket2::Socket>,
    pub requests: SharedReceiver<ShardRequest>,
    pub replies: SharedSender<Box<Snapshot>>,
    pub shared: Shared,
}

/// Runs the shard until it has drained; returns when its last connection
/// ended or the grace period ran out.
pub async fn run(init: ShardInit) {
    let ShardInit {
        id,
        config,
        listeners,
        requests,
        replies,
        shared,
    } = init;
    let shutdown = Rc::new(Shutdown::new());
    let context = Rc::new(ShardContext {
        draining: shutdown.clone(),
        metrics: ShardMetrics::new(id),
        pumps: PumpResources::new(config.pipe_size_bytes),
        forward_mode: config.forward_mode,
        connect_timeout: config.connect_timeout,
        server_first: ServerFirstMemory::new(config.detect.server_first_memory),
        detect: config.detect.clone(),
    });
    let connections = Rc::new(Gate::new());

    let mut routes = Vec::with_capacity(config.routes.len());
    for (route, socket) in config.routes.iter().zip(listeners) {
        // SAFETY: the fd comes from a socket2 socket we own, bound and
        // listening; ownership moves into the glommio listener.
        let listener_fd = socket.into_raw_fd();
        let listener = unsafe { TcpListener::from_raw_fd(listener_fd) };
        let state = Rc::new(RouteState::new(
            route.clone(),
            &context.metrics,
            seed(id, route.listen),
            config.pool_idle_timeout,
        ));
        routes.push(state.clone());
        let accept = accept_loop(
            (listener, listener_fd),
            state,
            context.clone(),
            shutdown.clone(),
            connections.clone(),
        );
        glommio::spawn_local(accept).detach();
    }

    glommio::spawn_local(sweep_pools(routes, shutdown.clone())).detach();
    let control = serve_requests(requests, replies, context.clone(), shutdown.clone());
    glommio::spawn_local(control).detach();
    shared.shards_started.fetch_add(1, Ordering::SeqCst);
    tracing::debug!(shard = id, "shard started");

    shutdown.wait().await;
    let open = context.metrics.snapshot(0, 0).shards[0].open_connections;
    tracing::info!(shard = id, open, "draining");
    let drained = async {
        let _ = connections.close().await;
        true
    };
    let grace_over = async {
        sleep(config.shutdown_grace).await;
        false
    };
    if future::or(drained, grace_over).await {
        tracing::info!(shard = id, "drained");
    } else {
        tracing::warn!(shard = id, "grace period over: closing open connections");
    }
}

/// `listener` comes with its fd, which glommio does not expose; it stays
/// valid while the listener lives, which is as long as this loop.
async fn accept_loop(
    (listener, listener_fd): (TcpListener, RawFd),
    route: Rc<RouteState>,
    context: Rc<ShardContext>,
    shutdown: Rc<Shutdown>,
    connections: Rc<Gate>,
) {
    let start = |stream: TcpStream| {
        context.metrics.accepted();
        // A debug span: a disabled one costs nothing per poll (its fields
        // are not even evaluated), where an enabled one costs the
        // subscriber a call on every poll of the connection (1-2% of the
        // CPU of an HTTP/1 request). The failure line names the connection
        // on its own.
        let span = tracing::debug_span!(
            "conn",
            shard = context.metrics.shard(),
            client = ?stream.peer_addr().ok(),
            target = %route.route.listen,
        );
        let forward = TcpForward::new(context.clone(), route.clone());
        // Err: draining, the gate no longer takes tasks.
        connections
            .spawn(forward.run(stream).instrument(span))
            .map(|task| {
                task.detach();
            })
            .is_ok()
    };
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        let failure = match accepted {
            None => break,
            Some(Ok(stream)) => {
                if !start(stream) {
                    break;
                }
                // Whatever else waits in the backlog is taken right away,
                // with one accept4(2) each instead of another io_uring
                // round trip (and glommio's fcntl dance) per connection.
                loop {
                    match listener::accept_now(listener_fd) {
                        Ok(Some(stream)) => {
                            if !start(stream) {
                                return;
                            }
                        }
                        Ok(None) => break None,
                        Err(err) => break Some(err),
                    }
                }
            }
            Some(Err(err)) => Some(std::io::Error::from(err)),
        };
        match failure {
            None => backoff = Duration::from_millis(5),
            Some(err) => {
                // EMFILE and friends: back off instead of spinning, and let
                // connections finish to free fds.
                context.metrics.accept_failed();
                tracing::warn!(listen = %route.route.listen, error = %err, "accept failed");
                sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    tracing::debug!(listen = %route.route.listen, "listener closed");
}

/// Closes pooled HTTP connections that sat idle past the timeout, so an
/// idle pool gives its fds back even when no request comes to find them.
async fn sweep_pools(routes: Vec<Rc<RouteState>>, shutdown: Rc<Shutdown>) {
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
        for route in &routes {
            route.http.pool.sweep();
        }
    }
}

/// Answers the admin shard until it goes away.
async fn serve_requests(
    requests: SharedReceiver<ShardRequest>,
    replies: SharedSender<Box<Snapshot>>,
    context: Rc<ShardContext>,
    shutdown: Rc<Shutdown>,
) {
    let requests = requests.connect().await;
    let replies = replies.connect().await;
    while let Some(request) = requests.recv().await {
        match request {
            ShardRequest::Snapshot => {
                let pipes = &context.pumps.pipes;
                let snapshot = context.metrics.snapshot(pipes.in_use(), pipes.idle());
                if replies.send(Box::new(snapshot)).await.is_err() {
                    break;
                }
            }
            ShardRequest::Drain => shutdown.trigger(),
        }
    }
}

/// Distinct per shard and route, so shards do not make the same choices in
/// lockstep.
fn seed(shard: usize, listen: SocketAddr) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ ((shard as u64) << 32) ^ u64::from(listen.port())
}
