//! The resolver thread: a current-thread tokio runtime with one task per
//! watched name, the names set from outside (at start, and again on a
//! reload), the changes handed to a `Sink` as `Update`s.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

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

/// Where the resolver sends each `Update`, from its own thread: the
/// runtime's endpoint feed (which wakes the admin shard), or a test's
/// channel.
pub type Sink = Arc<dyn Fn(Update) + Send + Sync>;

/// What every name's task shares.
#[derive(Clone)]
struct Shared {
    resolver: TokioResolver,
    config: Arc<DnsConfig>,
    sink: Sink,
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
        sink: Sink,
    ) -> Result<Resolver, StartError> {
        let runtime = runtime()?;
        // hickory's provider takes the runtime it is built in.
        let resolver = {
            let _entered = runtime.enter();
            build_resolver(&config)?
        };
        let shared = Shared {
            resolver,
            config: Arc::new(config),
            sink,
            status: status.clone(),
        };
        status.watching(&names);
        let (names_tx, names_rx) = watch::channel(names);
        std::thread::Builder::new()
            .name("ringside-dns".into())
            .spawn(move || runtime.block_on(watch_names(names_rx, shared)))?;
        let resolver = Resolver {
            names: names_tx,
            status,
        };
        Ok(resolver)
    }

    /// Watches these names from now on (a reload): new ones are looked up
    /// at once, names no longer given are forgotten, the others go on as
    /// they were.
    pub fn set_names(&self, names: BTreeSet<String>) {
        self.status.watching(&names);
        self.names.send_replace(names);
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
            (shared.sink)(Update { host, addresses });
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
