//! The control channels between the admin shard and the proxy shards:
//! snapshot requests on each scrape, the drain, and the endpoint sets the
//! admin shard publishes (`Control::publish`). Admin sees only the
//! [`admin::Shards`] this implements; nothing here is on the data path.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::sync::Semaphore;

use super::directory::{Changed, Directory};
use super::listener;
use super::names::Names;
use super::reload::{self, Plan, Running, Settings};
use super::signals::AsyncSignals;
use crate::admin::{Readiness, Reloaded, Shards};
use crate::config::{Args, Config, EndpointSet, Route};
use crate::io::{spawn, timeout, Listener, Tasks};
use crate::metrics::{DnsStatus, IdentityStatus, Reasons, Snapshot};
use crate::proxy::{accept_loop, Accepting, RouteSlot, Routes};
use crate::shard::Shard;

/// A shard that takes longer than this to send its snapshot is left out
/// of the scrape.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin shard asks of a proxy shard.
#[derive(Debug)]
pub enum ShardRequest {
    /// Reply with a copy of your metrics.
    Snapshot,
    /// Stop accepting and let open connections finish.
    Drain,
    /// The route listening on `listen` now balances over `endpoints`.
    Endpoints {
        listen: SocketAddr,
        endpoints: EndpointSet,
    },
    /// A reload added `route`: serve it on `listener`, this shard's socket.
    AddRoute {
        route: Route,
        endpoints: EndpointSet,
        listener: socket2::Socket,
    },
    /// A reload changed the route on `route.listen`.
    UpdateRoute {
        route: Route,
        endpoints: EndpointSet,
    },
    /// A reload removed the route on `listen`: close its listener, let its
    /// connections finish.
    RemoveRoute { listen: SocketAddr },
    /// A reload changed what every route shares.
    Settings(Box<Settings>),
}

/// The little state shards and the admin shard share: written once per
/// shard at start and once at drain, never on the data path.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    pub shards_started: Arc<AtomicUsize>,
    pub draining: Arc<AtomicBool>,
    /// The identity's expiry and failed reloads, when one is configured.
    pub identity: Option<Arc<IdentityStatus>>,
    /// The DNS resolver's lookups and unresolved names, when upstream
    /// names are watched.
    pub dns: Option<Arc<DnsStatus>>,
}

/// The admin side of one shard's channels, before its executor runs.
pub struct ShardLink {
    requests: SharedSender<ShardRequest>,
    replies: SharedReceiver<Box<Snapshot>>,
}

/// The shard side of its channels.
pub struct ShardControl {
    requests: SharedReceiver<ShardRequest>,
    replies: SharedSender<Box<Snapshot>>,
}

/// The channels of one shard, both ends.
pub fn link() -> (ShardLink, ShardControl) {
    let (request_tx, request_rx) = shared_channel::new_bounded(8);
    let (reply_tx, reply_rx) = shared_channel::new_bounded(8);
    let link = ShardLink {
        requests: request_tx,
        replies: reply_rx,
    };
    let control = ShardControl {
        requests: request_rx,
        replies: reply_tx,
    };
    (link, control)
}

struct Connected {
    requests: ConnectedSender<ShardRequest>,
    replies: ConnectedReceiver<Box<Snapshot>>,
}

/// Every shard, as the admin shard reaches them.
pub struct Control {
    shards: Vec<Connected>,
    shared: Shared,
    /// One scrape at a time: replies on a shard's channel must not
    /// interleave between two scrapes.
    scrape: Semaphore,
    /// Every route's upstreams and current endpoint set. Borrowed only
    /// between awaits.
    directory: RefCell<Directory>,
    /// What a reload needs and counts.
    reloading: Reloading,
    /// The resolver of the routes' upstream names, told of each reload.
    names: Names,
}

/// The config as running, and how to read it again.
pub struct Reloading {
    /// The command line the process started with: its flags and the
    /// environment still override the file. `None`: not started from a
    /// command line (a test's in-process sidecar), so nothing to re-read.
    args: Option<Args>,
    /// The config as loaded (listen addresses as configured).
    config: RefCell<Config>,
    /// The routes as running (listen addresses as bound).
    running: RefCell<Vec<Running>>,
    /// Reloads by result, for `ringside_config_reloads_total`.
    results: RefCell<Reasons>,
    /// One reload at a time.
    turn: Semaphore,
}

impl Reloading {
    /// Must run on the admin shard's executor.
    pub fn new(args: Option<Args>, config: Config, running: Vec<Running>) -> Reloading {
        Reloading {
            args,
            config: RefCell::new(config),
            running: RefCell::new(running),
            results: RefCell::default(),
            turn: Semaphore::new(1),
        }
    }
}

impl Control {
    /// Must run on the admin shard's executor.
    /// `reloading.running`: the routes as the shards start with them.
    pub async fn connect(
        links: Vec<ShardLink>,
        shared: Shared,
        reloading: Reloading,
        names: Names,
    ) -> Control {
        let mut shards = Vec::with_capacity(links.len());
        for link in links {
            shards.push(Connected {
                requests: link.requests.connect().await,
                replies: link.replies.connect().await,
            });
        }
        Control {
            shards,
            shared,
            scrape: Semaphore::new(1),
            directory: RefCell::new(Directory::new(&running_routes(&reloading))),
            reloading,
            names,
        }
    }

    /// Reads the config again and applies it (SIGHUP, `POST /reload`), in
    /// a task of its own: a reload is never left half done because the
    /// admin connection that asked for it went away. The message is the
    /// one line logged.
    pub async fn reload_config(self: &Rc<Self>) -> Reloaded {
        let control = self.clone();
        let task = glommio::spawn_local(async move { control.reload_now().await });
        task.detach()
            .await
            .unwrap_or_else(|| Err("config reload refused: the admin shard is stopping".into()))
    }

    async fn reload_now(&self) -> Result<String, String> {
        let _turn = self.reloading.turn.acquire_permit(1).await;
        let result = self.try_reload().await;
        let label = match &result {
            Ok(_) => "ok",
            Err(_) => "refused",
        };
        *self
            .reloading
            .results
            .borrow_mut()
            .entry(label)
            .or_default() += 1;
        match &result {
            Ok(line) => tracing::info!("{line}"),
            Err(line) => tracing::error!("{line}"),
        }
        result
    }

    async fn try_reload(&self) -> Result<String, String> {
        let refused = |why: String| format!("config reload refused, nothing changed: {why}");
        let Some(args) = &self.reloading.args else {
            return Err(refused("no command line to read the config from".into()));
        };
        let new = Config::load(args).map_err(|err| refused(err.to_string()))?;
        let plan = {
            let (old, running) = (
                self.reloading.config.borrow(),
                self.reloading.running.borrow(),
            );
            reload::plan(&old, &running, &new)
        };
        let plan =
            plan.map_err(|key| refused(format!("{key}: cannot change without a restart")))?;
        let backlog = new.backlog;
        let mut added = Vec::with_capacity(plan.added.len());
        for route in &plan.added {
            let sockets = listener::bind_shard_listeners(route.listen, self.shards.len(), backlog)
                .map_err(|err| refused(err.to_string()))?;
            let bound =
                listener::local_addr(&sockets[0]).map_err(|err| refused(err.to_string()))?;
            added.push((
                route.listen,
                Route {
                    listen: bound,
                    ..route.clone()
                },
                sockets,
            ));
        }
        let summary = summary(&plan, &added);
        self.apply(plan, added).await;
        // The answer waits until every shard has applied the reload, so a
        // connection made after it sees the new config: a snapshot asked
        // now is answered after the changes, each shard's channel being
        // read in order and each change applied as it is read.
        self.snapshot().await;
        self.names.follow(&new);
        *self.reloading.config.borrow_mut() = new;
        Ok(summary)
    }

    /// Sends every shard its part of `plan`; `added` holds each new route
    /// (configured address, bound route) with one socket per shard.
    async fn apply(&self, plan: Plan, added: Vec<(SocketAddr, Route, Vec<socket2::Socket>)>) {
        {
            let mut running = self.reloading.running.borrow_mut();
            running.retain(|r| !plan.removed.contains(&r.route.listen));
            for changed in &plan.changed {
                if let Some(r) = running
                    .iter_mut()
                    .find(|r| r.route.listen == changed.listen)
                {
                    r.route = changed.clone();
                }
            }
            for (configured, route, _) in &added {
                let route = route.clone();
                running.push(Running {
                    configured: *configured,
                    route,
                });
            }
        }
        if let Some(settings) = &plan.settings {
            let request = || ShardRequest::Settings(Box::new(settings.clone()));
            self.to_every_shard(request).await;
        }
        let routes = running_routes(&self.reloading);
        let sets = self.directory.borrow_mut().reconfigure(&routes);
        let set_of = |listen: SocketAddr| {
            let set = sets
                .iter()
                .find(|(l, _)| *l == listen)
                .map(|(_, set)| set.clone());
            set.unwrap_or_else(|| Vec::new().into())
        };
        for listen in &plan.removed {
            self.to_every_shard(|| ShardRequest::RemoveRoute { listen: *listen })
                .await;
        }
        for route in &plan.changed {
            let endpoints = set_of(route.listen);
            let request = || ShardRequest::UpdateRoute {
                route: route.clone(),
                endpoints: endpoints.clone(),
            };
            self.to_every_shard(request).await;
        }
        for (_, route, sockets) in added {
            let endpoints = set_of(route.listen);
            for (shard, listener) in self.shards.iter().zip(sockets) {
                let request = ShardRequest::AddRoute {
                    route: route.clone(),
                    endpoints: endpoints.clone(),
                    listener,
                };
                let _ = shard.requests.send(request).await;
            }
        }
    }

    async fn to_every_shard(&self, request: impl Fn() -> ShardRequest) {
        for shard in &self.shards {
            let _ = shard.requests.send(request()).await;
        }
    }

    /// The entry point of name resolution: `host` resolves to `addrs` now
    /// (empty: it has no address). Every route naming it gets its new set,
    /// on every shard, if that changed it. The resolver keeps the last good
    /// set itself when a lookup fails: it calls this only with answers.
    pub async fn resolved(&self, host: &str, addrs: &[IpAddr]) {
        let changed = self.directory.borrow_mut().resolved(host, addrs);
        for change in changed {
            self.publish(change).await;
        }
    }

    /// The entry point of a source that knows endpoints with their
    /// metadata (a control plane): the route on `listen` balances over
    /// `endpoints` from now on. Nothing is sent if that is its set already.
    pub async fn set_endpoints(&self, listen: SocketAddr, endpoints: EndpointSet) {
        let changed = self.directory.borrow_mut().set(listen, endpoints);
        if let Some(change) = changed {
            self.publish(change).await;
        }
    }

    /// Sends a route's new set to every shard and says so once in the log.
    async fn publish(&self, (listen, endpoints): Changed) {
        let addrs: Vec<String> = endpoints.iter().map(|e| e.addr.to_string()).collect();
        tracing::info!(route = %listen, endpoints = ?addrs, "route endpoints changed");
        for shard in &self.shards {
            let request = ShardRequest::Endpoints {
                listen,
                endpoints: endpoints.clone(),
            };
            let _ = shard.requests.send(request).await;
        }
    }

    async fn drain(&self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        for shard in &self.shards {
            let _ = shard.requests.send(ShardRequest::Drain).await;
        }
    }
}

impl Shards for Control {
    /// A shard that has already finished draining simply does not
    /// contribute.
    async fn snapshot(&self) -> Snapshot {
        let _turn = self.scrape.acquire_permit(1).await;
        let mut merged = Snapshot::default();
        let mut asked = Vec::with_capacity(self.shards.len());
        for shard in &self.shards {
            asked.push(shard.requests.send(ShardRequest::Snapshot).await.is_ok());
        }
        for (shard, asked) in self.shards.iter().zip(asked) {
            if !asked {
                continue;
            }
            if let Some(Some(snapshot)) = timeout(REPLY_TIMEOUT, shard.replies.recv()).await {
                merged.merge(&snapshot);
            }
        }
        merged.identity = self.shared.identity.as_ref().map(|status| status.reading());
        merged.dns = self.shared.dns.as_ref().map(|status| status.reading());
        merged.route_endpoints = self.directory.borrow().sizes();
        merged.config_reloads = self.reloading.results.borrow().clone();
        merged
    }

    fn unresolved_names(&self) -> Vec<String> {
        let reading = self.shared.dns.as_ref().map(|status| status.reading());
        reading.map_or_else(Vec::new, |reading| reading.unresolved.into_iter().collect())
    }

    async fn shutdown(&self) {
        self.drain().await;
    }

    async fn reload(self: Rc<Self>) -> Reloaded {
        self.reload_config().await
    }

    fn readiness(&self) -> Readiness {
        let started = self.shared.shards_started.load(Ordering::SeqCst);
        if self.shared.draining.load(Ordering::SeqCst) {
            Readiness::Draining
        } else if started < self.shards.len() {
            Readiness::Starting
        } else if self
            .shared
            .identity
            .as_ref()
            .is_some_and(|status| !status.is_loaded())
        {
            Readiness::WaitingForIdentity
        } else {
            Readiness::Ready
        }
    }
}

/// The first SIGTERM or SIGINT drains every shard.
pub async fn drain_on_signal(mut signals: AsyncSignals, control: Rc<Control>) {
    if let Err(err) = signals.recv().await {
        tracing::error!(error = %err, "signal pipe failed");
        return;
    }
    tracing::info!("signal received: draining (a second signal exits at once)");
    control.drain().await;
}

/// The routes of a running config, as the directory takes them.
fn running_routes(reloading: &Reloading) -> Vec<Route> {
    let running = reloading.running.borrow();
    running.iter().map(|r| r.route.clone()).collect()
}

/// The one line a reload logs and `POST /reload` answers.
fn summary(plan: &Plan, added: &[(SocketAddr, Route, Vec<socket2::Socket>)]) -> String {
    if plan.is_empty() {
        return "config reloaded: no change".into();
    }
    let list = |addrs: Vec<String>| addrs.join(",");
    let added = list(added.iter().map(|(_, r, _)| r.listen.to_string()).collect());
    let changed = list(plan.changed.iter().map(|r| r.listen.to_string()).collect());
    let removed = list(plan.removed.iter().map(ToString::to_string).collect());
    let settings = match plan.settings {
        Some(_) => "; detect, mesh peers and inbound policy applied",
        None => "",
    };
    format!(
        "config reloaded: routes added [{added}], changed [{changed}], removed [{removed}]{settings}"
    )
}

/// Each SIGHUP reloads the config, one reload at a time.
pub async fn reload_on_signal(mut hangups: AsyncSignals, control: Rc<Control>) {
    while hangups.recv().await.is_ok() {
        tracing::info!("SIGHUP received: reloading the config");
        let _ = control.reload_config().await;
    }
}

/// Answers the admin shard until it goes away (runs on a proxy shard).
/// `routes`: the shard's configured routes, which its messages change;
/// `connections`: the gate a new route's connections are spawned behind.
pub async fn serve(
    control: ShardControl,
    shard: Rc<Shard>,
    routes: Rc<Routes>,
    connections: Rc<Tasks>,
) {
    let requests = control.requests.connect().await;
    let replies = control.replies.connect().await;
    while let Some(request) = requests.recv().await {
        match request {
            ShardRequest::Snapshot => {
                let pipes = &shard.pumps.pipes;
                let snapshot = shard.metrics.snapshot(pipes.in_use(), pipes.idle());
                if replies.send(Box::new(snapshot)).await.is_err() {
                    break;
                }
            }
            ShardRequest::Drain => shard.drain(),
            ShardRequest::Endpoints { listen, endpoints } => {
                let Some(slot) = routes.find(listen) else {
                    continue;
                };
                let route = slot.current().route.clone();
                slot.update(route, endpoints, &shard.metrics, shard.mesh().as_deref());
            }
            ShardRequest::UpdateRoute { route, endpoints } => {
                if let Some(slot) = routes.find(route.listen) {
                    slot.update(route, endpoints, &shard.metrics, shard.mesh().as_deref());
                }
            }
            ShardRequest::RemoveRoute { listen } => routes.remove(listen),
            ShardRequest::Settings(settings) => {
                let Settings {
                    detect,
                    mesh_peers,
                    inbound_policy,
                } = *settings;
                shard.reconfigure(detect, mesh_peers, inbound_policy);
                // The mesh peers label the routes' upstream-side series.
                let mesh = shard.mesh();
                routes.refresh(&shard.metrics, mesh.as_deref());
            }
            ShardRequest::AddRoute {
                route,
                endpoints,
                listener,
            } => {
                let slot = Rc::new(RouteSlot::configured(&shard, route));
                let current = slot.current().route.clone();
                slot.update(current, endpoints, &shard.metrics, shard.mesh().as_deref());
                routes.add(slot.clone());
                let accepting = Accepting::Route(slot);
                let listener = Listener::new(listener);
                spawn(accept_loop(
                    listener,
                    accepting,
                    shard.clone(),
                    connections.clone(),
                ));
            }
        }
    }
}
