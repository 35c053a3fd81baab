//! The resolver thread: a current-thread tokio runtime with one task per
//! watched name, the names set from outside (at start, and again on a
//! reload), the changes sent out as `Update`s.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::lookup::{build_resolver, lookup, ResolverConfigError};
use super::watch::Watched;
use super::Update;
use crate::config::DnsConfig;
use crate::metrics::{DnsStatus, LookupResult};

/// The handle to the resolver thread. Dropping it stops the thread.
pub struct Resolver {
    names: watch::Sender<BTreeSet<String>>,
    /// Told of the names as they are set, so that a new name is reported
    /// unresolved from that moment, before the thread gets to it.
    status: Arc<DnsStatus>,
}

/// The updates of a running resolver, in the order they happened.
pub struct Updates {
    updates: crossbeam_channel::Receiver<Update>,
    /// One byte is written here after each update, for a reader that
    /// awaits readiness instead of blocking on the channel (the admin
    /// shard); bytes beyond the first are only extra wake-ups.
    wake: UnixStream,
}

/// The thread's side of `Updates`.
#[derive(Clone)]
struct Publisher {
    updates: crossbeam_channel::Sender<Update>,
    /// Non-blocking: when its buffer is full, the reader has wake-ups
    /// enough waiting already.
    wake: Arc<UnixStream>,
}

/// What every name's task shares.
#[derive(Clone)]
struct Shared {
    resolver: TokioResolver,
    config: Arc<DnsConfig>,
    publisher: Publisher,
    status: Arc<DnsStatus>,
}

/// Why the resolver thread could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ResolverConfigError),
    #[error("cannot start the DNS resolver thread: {0}")]
    Io(#[from] io::Error),
}

impl Resolver {
    /// Starts the thread, watching `names` at once. A name that does not
    /// resolve is no error: it stays unresolved (in `status`) and is
    /// asked again every `min_ttl`.
    pub fn start(
        config: DnsConfig,
        names: BTreeSet<String>,
        status: Arc<DnsStatus>,
    ) -> Result<(Resolver, Updates), StartError> {
        let runtime = runtime()?;
        // hickory's provider takes the runtime it is built in.
        let resolver = {
            let _entered = runtime.enter();
            build_resolver(&config)?
        };
        let (reader, writer) = UnixStream::pair()?;
        writer.set_nonblocking(true)?;
        let (updates_tx, updates_rx) = crossbeam_channel::unbounded();
        let shared = Shared {
            resolver,
            config: Arc::new(config),
            publisher: Publisher {
                updates: updates_tx,
                wake: Arc::new(writer),
            },
            status: status.clone(),
        };
        status.watching(&names);
        let (names_tx, names_rx) = watch::channel(names);
        std::thread::Builder::new()
            .name("ringside-dns".into())
            .spawn(move || runtime.block_on(watch_names(names_rx, shared)))?;
        let updates = Updates {
            updates: updates_rx,
            wake: reader,
        };
        let resolver = Resolver {
            names: names_tx,
            status,
        };
        Ok((resolver, updates))
    }

    /// Watches these names from now on (a reload): new ones are looked up
    /// at once, names no longer given are forgotten, the others go on as
    /// they were.
    pub fn set_names(&self, names: BTreeSet<String>) {
        self.status.watching(&names);
        self.names.send_replace(names);
    }
}

impl Updates {
    /// The next update, waiting at most `timeout` (tests and tools; the
    /// admin shard awaits `wake_fd` readiness instead).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Update> {
        self.updates.recv_timeout(timeout).ok()
    }

    /// The next update if one is waiting.
    pub fn try_recv(&self) -> Option<Update> {
        self.updates.try_recv().ok()
    }

    /// Readable whenever an update may be waiting: a reader drains its
    /// bytes, then `try_recv` until `None`, then waits for it again.
    pub fn into_wake_socket(self) -> (crossbeam_channel::Receiver<Update>, UnixStream) {
        (self.updates, self.wake)
    }
}

impl Publisher {
    fn publish(&self, update: Update) {
        if self.updates.send(update).is_ok() {
            let _ = (&*self.wake).write(&[1]);
        }
    }
}

/// Keeps one task per watched name until the `Resolver` is dropped.
async fn watch_names(mut names: watch::Receiver<BTreeSet<String>>, shared: Shared) {
    let mut tasks: BTreeMap<String, AbortHandle> = BTreeMap::new();
    loop {
        let wanted = names.borrow_and_update().clone();
        tasks.retain(|name, task| {
            let keep = wanted.contains(name);
            if !keep {
                task.abort();
            }
            keep
        });
        for name in wanted {
            if let Entry::Vacant(entry) = tasks.entry(name) {
                let task = tokio::spawn(watch_name(entry.key().clone(), shared.clone()));
                entry.insert(task.abort_handle());
            }
        }
        if names.changed().await.is_err() {
            break;
        }
    }
    for task in tasks.values() {
        task.abort();
    }
}

/// Looks `name` up, publishes what changed, sleeps until it is due again.
async fn watch_name(name: String, shared: Shared) {
    let mut watched = Watched::new(&name);
    loop {
        let answers = lookup(&shared.resolver, &name).await;
        let outcome = watched.apply(answers, &shared.config);
        let resolved = !watched.addresses().is_empty();
        shared.status.looked_up(&name, outcome.result, resolved);
        if let Some(addresses) = outcome.changed {
            let host = name.clone();
            shared.publisher.publish(Update { host, addresses });
        }
        tokio::time::sleep(outcome.next_lookup_after).await;
    }
}

/// One name as `--check` found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub name: String,
    /// Its addresses, or how the lookup ended without any (never `Ok`).
    pub addresses: Result<Vec<IpAddr>, LookupResult>,
}

/// `--check`: each name looked up once, with its addresses or why it has
/// none. Unlike the thread, it blocks the caller.
pub fn resolve_once(
    config: &DnsConfig,
    names: &BTreeSet<String>,
) -> Result<Vec<Checked>, StartError> {
    let runtime = runtime()?;
    let _entered = runtime.enter();
    let resolver = build_resolver(config)?;
    let check = |name: &String| {
        let mut watched = Watched::new(name);
        let outcome = watched.apply(runtime.block_on(lookup(&resolver, name)), config);
        // A family that failed beside one that answered still leaves
        // the name usable.
        let addresses = watched.addresses();
        let addresses = match addresses.is_empty() {
            false => Ok(addresses),
            true => Err(outcome.result),
        };
        Checked {
            name: name.clone(),
            addresses,
        }
    };
    Ok(names.iter().map(check).collect())
}

impl fmt::Display for Checked {
    /// `origin.test: 10.0.0.1, ::1`, or `origin.test: unresolved (timeout)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.addresses {
            Ok(addresses) => {
                let list: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
                write!(f, "{}: {}", self.name, list.join(", "))
            }
            Err(result) => write!(f, "{}: unresolved ({})", self.name, result.as_str()),
        }
    }
}

/// One thread's runtime, with the timers and sockets hickory uses.
fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
