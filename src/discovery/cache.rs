//! `Cache`: the control thread's resolvers, one per original destination,
//! and `CacheHandle`, how a shard asks for one.
//!
//! A shard sends a `Lookup` and gets back a `watch::Receiver` of the
//! destination's snapshot; it keeps the receiver as long as it keeps the
//! destination. A resolver that no shard holds a receiver of for
//! `IDLE_TIMEOUT` is dropped with its streams (linkerd2-proxy drops an
//! outbound discovery idle for 5 s, `DEFAULT_OUTBOUND_DISCOVERY_IDLE_TIMEOUT`).
//! At most `MAX_RESOLVERS` are kept: past it the idle ones go first, and
//! when none is idle the destination is answered with the fallback (its
//! original address, in plaintext), uncached, so that a client scanning
//! addresses cannot grow the control plane's streams without bound.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use super::ask::{asker, Ask, Asker};
use super::resolver::{self, Clients, Snapshot};
use super::target;

/// How long a resolver no shard holds is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolvers kept at once: each holds two or three streams to the control
/// plane. A shard keeps 1,000 destinations (`proxy/transparent.rs`), and
/// the shards of one sidecar mostly share theirs.
pub const MAX_RESOLVERS: usize = 1_000;

/// How shards ask for a destination's snapshots.
pub type CacheHandle = Asker<SocketAddr, Snapshot>;

/// A shard's question: the snapshot receiver of a destination.
pub type Lookup = Ask<SocketAddr, Snapshot>;

struct Entry {
    snapshots: watch::Sender<Snapshot>,
    task: AbortHandle,
    /// Since when no receiver is held; `None` while one is.
    idle_since: Option<Instant>,
}

/// The resolvers by destination (runs on the control thread).
pub struct Cache {
    clients: Clients,
    entries: HashMap<SocketAddr, Entry>,
}

impl Cache {
    pub fn new(clients: Clients) -> (Cache, CacheHandle, mpsc::UnboundedReceiver<Lookup>) {
        let (handle, requests) = asker();
        let cache = Cache {
            clients,
            entries: HashMap::new(),
        };
        (cache, handle, requests)
    }

    /// Answers lookups until every handle is gone, sweeping idle resolvers
    /// every second.
    pub async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Lookup>) {
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                lookup = requests.recv() => match lookup {
                    Some(lookup) => {
                        let receiver = self.receiver(lookup.key);
                        let _ = lookup.reply.send(receiver);
                    }
                    None => break,
                },
                _ = sweep.tick() => self.sweep(Instant::now()),
            }
        }
        for entry in self.entries.values() {
            entry.task.abort();
        }
    }

    /// `original`'s receiver: its resolver's, started if need be.
    fn receiver(&mut self, original: SocketAddr) -> watch::Receiver<Snapshot> {
        if let Some(entry) = self.entries.get_mut(&original) {
            entry.idle_since = None;
            return entry.snapshots.subscribe();
        }
        if self.entries.len() >= MAX_RESOLVERS {
            self.evict_idle();
        }
        if self.entries.len() >= MAX_RESOLVERS {
            let fallback = target::fallback(original, None);
            tracing::debug!(%original, "discovery cache full: forwarding to the original address");
            return watch::channel(Some(Arc::new(fallback))).1;
        }
        let (snapshots, receiver) = watch::channel(None);
        let resolving = resolver::resolve(self.clients.clone(), original, snapshots.clone());
        let task = tokio::spawn(resolving).abort_handle();
        let entry = Entry {
            snapshots,
            task,
            idle_since: None,
        };
        self.entries.insert(original, entry);
        receiver
    }

    /// Marks resolvers nobody holds as idle, and drops those idle for
    /// `IDLE_TIMEOUT`.
    fn sweep(&mut self, now: Instant) {
        self.entries.retain(|original, entry| {
            if entry.snapshots.receiver_count() > 0 {
                entry.idle_since = None;
                return true;
            }
            let since = *entry.idle_since.get_or_insert(now);
            let keep = now.duration_since(since) < IDLE_TIMEOUT;
            if !keep {
                tracing::debug!(%original, "discovery idle: dropped");
                entry.task.abort();
            }
            keep
        });
    }

    /// Drops every resolver nobody holds, idle long or not.
    fn evict_idle(&mut self) {
        self.entries.retain(|_, entry| {
            let held = entry.snapshots.receiver_count() > 0;
            if !held {
                entry.task.abort();
            }
            held
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Source;

    fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 80))
    }

    #[test]
    fn resolvers_are_shared_bounded_and_dropped_when_idle() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Never awaited here: the resolvers' tasks never run, so nothing
        // dials the (absent) control plane.
        let _entered = runtime.enter();
        let channel = crate::control::Channel::plaintext("127.0.0.1:1".parse().unwrap());
        let clients = Clients {
            destination: channel.clone(),
            policy: channel,
            config: Arc::default(),
            backoff: Default::default(),
        };
        let (mut cache, _handle, _lookups) = Cache::new(clients);
        let first = cache.receiver(addr(0));
        let again = cache.receiver(addr(0));
        assert_eq!(cache.entries.len(), 1, "one resolver per destination");
        let held: Vec<_> = (1..MAX_RESOLVERS)
            .map(|i| cache.receiver(addr(i)))
            .collect();
        assert_eq!(cache.entries.len(), MAX_RESOLVERS);
        // Full, and every resolver held: the fallback, not cached.
        let extra = cache.receiver(addr(MAX_RESOLVERS));
        let source = extra.borrow().as_deref().map(|d| d.source);
        assert_eq!(source, Some(Source::Original));
        assert_eq!(cache.entries.len(), MAX_RESOLVERS);
        drop(held);
        let now = Instant::now();
        cache.sweep(now);
        assert_eq!(cache.entries.len(), MAX_RESOLVERS, "idle, not for long yet");
        cache.sweep(now + IDLE_TIMEOUT);
        assert_eq!(cache.entries.len(), 1, "the held one stays");
        // Held again before its idle time ran out: kept.
        drop((first, again));
        cache.sweep(now + IDLE_TIMEOUT);
        let back = cache.receiver(addr(0));
        cache.sweep(now + IDLE_TIMEOUT * 3);
        assert_eq!(cache.entries.len(), 1);
        drop(back);
        // Full of idle ones: they make room at once.
        let _held: Vec<_> = (1..MAX_RESOLVERS)
            .map(|i| cache.receiver(addr(i)))
            .collect();
        drop(_held);
        let _new = cache.receiver(addr(MAX_RESOLVERS + 1));
        assert_eq!(
            cache.entries.len(),
            1,
            "the idle ones evicted for the new one"
        );
    }
}
