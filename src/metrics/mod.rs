//! Metrics: recorded per shard without sharing (`recorder`, with the
//! counters a route's connections share in `route`), copied out as plain
//! values (`snapshot`), merged and written as Prometheus text by the admin
//! shard (`encode`, `process`, over the text format in `text`).

mod encode;
mod mesh;
mod process;
mod recorder;
mod route;
mod snapshot;
mod text;

pub use encode::encode;
pub use mesh::{Authz, AuthzLabels, HttpAuthz, IdentityReading, IdentityStatus};
pub use process::ProcessStats;
pub use recorder::{
    DetectLabels, Detecting, Expiry, Peer, PeerId, RequestLabels, ResponseClass, ResponseStats,
    ShardMetrics, Speculating, TcpCounters, TcpLabels,
};
pub use route::RouteMetrics;
pub use snapshot::{ShardSummary, Snapshot, TcpSnapshot};
