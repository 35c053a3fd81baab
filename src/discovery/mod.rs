//! Outbound discovery from Linkerd's control plane: for each original
//! destination of the outbound listener, what the policy controller
//! (`OutboundPolicies.Watch`), the destination service (`GetProfile`,
//! `Destination.Get`) say of it, turned into a `Discovered` snapshot that
//! the shards carry connections by.
//!
//! - `translate`, `policy`, `endpoints`, `target`: pure functions and
//!   plain types from the API's messages to ringside's (`Endpoint`,
//!   `Discovered`), every remote value bounded;
//! - `watch`: the streaming clients, reconnecting with backoff and
//!   keeping their last answer meanwhile;
//! - `resolver`: one destination's watches combined into its snapshot;
//! - `cache`: the resolvers by destination, bounded, dropped when idle;
//! - `ask`: how a shard asks the control thread for a key's answers
//!   (a destination's here, an inbound port's in `inbound`);
//! - `thread`: where they run: Linkerd mode's control thread, or a thread
//!   of their own for a control plane on loopback.
//!
//! The clients are tokio tasks on the control thread's current-thread
//! runtime, over the control thread's `Channel`s (plaintext on loopback,
//! mTLS otherwise). Shards never run tokio: they await the
//! snapshots through `tokio::sync::watch` receivers, which any executor
//! can poll (`tests/wakeups.rs`).

pub(crate) mod ask;
pub(crate) mod cache;
pub(crate) mod endpoints;
pub mod inbound;
pub(crate) mod policy;
pub(crate) mod resolver;
pub(crate) mod target;
pub(crate) mod thread;
pub(crate) mod translate;
pub(crate) mod watch;

pub use cache::{Cache, CacheHandle, Lookup};
pub use resolver::Snapshot;
pub use target::{Discovered, Source};
pub use thread::{spawn, start_on};
pub use watch::Backoff;

use crate::config::Cidr;

/// What discovery needs from Linkerd's environment (read by the config,
/// `LINKERD2_PROXY_DESTINATION_*` and `LINKERD2_PROXY_POLICY_WORKLOAD`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// `LINKERD2_PROXY_DESTINATION_CONTEXT`, sent as-is as every
    /// `GetDestination`'s `context_token`.
    pub context: String,
    /// `LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS`: `GetProfile` is asked
    /// only for destinations in these.
    pub profile_networks: Vec<Cidr>,
    /// `LINKERD2_PROXY_POLICY_WORKLOAD`, the JSON naming this workload, sent
    /// as-is as `TrafficSpec.source_workload`.
    pub workload: String,
}

impl DiscoveryConfig {
    /// Whether `GetProfile` is asked for `addr`.
    pub fn profiles(&self, addr: std::net::SocketAddr) -> bool {
        let ip = addr.ip();
        self.profile_networks.iter().any(|net| net.contains(ip))
    }
}
