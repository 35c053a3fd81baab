//! Metrics: recorded per shard without sharing (`recorder`, with the
//! counters a route's connections share in `route`), under the label sets
//! of `labels`, copied out as plain values (`snapshot`), merged and
//! written as Prometheus text by the admin shard (`encode`, `process`,
//! over the text format in `text`).

mod bound;
mod encode;
mod labels;
mod mesh;
mod process;
mod recorder;
mod route;
mod snapshot;
mod text;

pub use bound::MAX_SNIS;
pub use encode::encode;
pub use labels::{
    DetectLabels, Expiry, Peer, PeerId, RequestLabels, ResponseClass, TcpLabels, OVERFLOW,
};
pub use mesh::{Authz, AuthzLabels, HttpAuthz, IdentityReading, IdentityStatus};
pub use process::ProcessStats;
pub use recorder::{Detecting, ShardMetrics, Speculating, TcpCounters};
pub use route::RouteMetrics;
pub use snapshot::{ResponseStats, ShardSummary, Snapshot, TcpSnapshot};
