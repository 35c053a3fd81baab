//! Metrics: recorded per shard without sharing (`recorder`, with the
//! counters a route's connections share in `route` and the inbound
//! authorization decisions in `authz`), under the label sets of `labels`
//! (their count bounded by `bound`), copied out as plain values
//! (`snapshot`), merged and written as Prometheus text by the admin shard
//! (`encode`, with the authorization decisions from `authz_encode`, the
//! process's own figures from `process` and the
//! identity's from `identity` and the DNS resolver's from `dns`, over the
//! text format in `text`).

mod authz;
mod authz_encode;
mod bound;
mod dns;
mod encode;
mod identity;
mod labels;
mod process;
mod recorder;
mod route;
mod snapshot;
mod text;

pub use authz::{Authz, AuthzLabels, Decision, HttpAuthz};
pub use bound::MAX_SNIS;
pub use dns::{DnsReading, DnsStatus, LookupResult};
pub use encode::encode;
pub use identity::{IdentityReading, IdentityStatus};
pub use labels::{
    DetectLabels, Expiry, Peer, PeerId, Reasons, RequestLabels, ResponseClass, TcpLabels, OVERFLOW,
};
pub(crate) use process::page_size;
pub use process::ProcessStats;
pub use recorder::{Detecting, ShardMetrics, Speculating, TcpCounters};
pub use route::RouteMetrics;
pub use snapshot::{ResponseStats, ShardSummary, Snapshot, TcpSnapshot};
pub(crate) use text::escape;
