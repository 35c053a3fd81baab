//! The control channels between the admin shard and the proxy shards:
//! snapshot requests on each scrape, and the drain. Admin sees only the
//! [`admin::Shards`] this implements; nothing here is on the data path.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::sync::Semaphore;

use super::signals::AsyncSignals;
use crate::admin::{Readiness, Shards};
use crate::io::timeout;
use crate::metrics::{DnsStatus, IdentityStatus, Snapshot};
use crate::shard::Shard;

/// A shard that takes longer than this to send its snapshot is left out
/// of the scrape.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

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
}

impl Control {
    /// Must run on the admin shard's executor.
    pub async fn connect(links: Vec<ShardLink>, shared: Shared) -> Control {
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
        merged
    }

    fn unresolved_names(&self) -> Vec<String> {
        let reading = self.shared.dns.as_ref().map(|status| status.reading());
        reading.map_or_else(Vec::new, |reading| reading.unresolved.into_iter().collect())
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
pub async fn serve(control: ShardControl, shard: Rc<Shard>) {
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
        }
    }
}
