//! Upstream names, resolved and re-resolved in the background, never on
//! the connection path.
//!
//! hickory does the DNS (resolv.conf, search and ndots, UDP then TCP,
//! retries), so none is written by hand here. Its resolver needs an async
//! runtime, and glommio is not one it knows: so it runs on a thread of its
//! own with a current-thread tokio runtime (`resolver.rs`), as the control
//! plane will. A shard never waits for DNS and tokio never runs on a shard;
//! the thread costs one parked thread and a few queries a minute per name.
//! Running hickory's protocol crate over glommio's UDP on the admin shard
//! would save the thread, but would mean writing hickory's retries, TCP
//! fallback and resolv.conf handling again.
//!
//! Each watched name is one task: look it up (`lookup.rs`: A and AAAA),
//! apply the answer to its last good set (`watch.rs`: the rules for
//! failures and empty answers, the TTL clamp), publish the new set when it
//! changed, sleep until it is due again. Updates go to a `Sink`: the
//! runtime's endpoint feed, a channel with a socket-pair wake-up that the
//! admin shard awaits without blocking (`runtime/feed.rs`). Counters and
//! unresolved names go to `metrics::DnsStatus`, which the admin shard
//! reads at scrape time. The control thread asks its own names through
//! `Lookups`, the same resolver without the watching.

mod lookup;
mod resolver;
mod watch;

pub use lookup::{Lookups, ResolverConfigError};
pub use resolver::{resolve_once, Checked, Resolver, Sink, StartError};

use std::net::IpAddr;

/// A name's address set changed (its first answer included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The name as configured.
    pub host: String,
    /// Its A and AAAA addresses, IPv4 first, each family sorted; empty
    /// when the name does not exist or has no record now.
    pub addresses: Vec<IpAddr>,
}
