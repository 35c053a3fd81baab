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
use super::signals::AsyncSignals;
use crate::admin::{Readiness, Shards};
use crate::config::EndpointSet;
use crate::io::timeout;
use crate::metrics::{IdentityStatus, Snapshot};
use crate::proxy::Routes;
use crate::shard::Shard;

/// A shard that takes longer than this to send its snapshot is left out
/// of the scrape.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin shard asks of a proxy shard.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// The little state shards and the admin shard share: written once per
/// shard at start and once at drain, never on the data path.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    pub shards_started: Arc<AtomicUsize>,
    pub draining: Arc<AtomicBool>,
    /// The identity's expiry and failed reloads, when one is configured.
    pub identity: Option<Arc<IdentityStatus>>,
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
}

impl Control {
    /// Must run on the admin shard's executor.
    /// `directory`: the routes as the shards start with them.
    pub async fn connect(links: Vec<ShardLink>, shared: Shared, directory: Directory) -> Control {
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
            directory: RefCell::new(directory),
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
        merged.route_endpoints = self.directory.borrow().sizes();
        merged
    }

    async fn shutdown(&self) {
        self.drain().await;
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

/// Answers the admin shard until it goes away (runs on a proxy shard).
/// `routes`: the shard's configured routes, which its messages change.
pub async fn serve(control: ShardControl, shard: Rc<Shard>, routes: Rc<Routes>) {
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
            ShardRequest::Drain => shard.draining.trigger(),
            ShardRequest::Endpoints { listen, endpoints } => {
                let Some(slot) = routes.find(listen) else {
                    continue;
                };
                let route = slot.current().route.clone();
                slot.update(route, endpoints, &shard.metrics, shard.mesh.as_deref());
            }
        }
    }
}
