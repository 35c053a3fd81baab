//! A shard's metrics as plain values: what crosses from a shard to the admin
//! shard on a scrape, and what the admin shard merges across shards.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::authz::AuthzLabels;
use super::dns::DnsReading;
use super::identity::IdentityReading;
use super::labels::{
    DetectLabels, ExpiryLabels, Peer, Reasons, RequestLabels, ResponseKey, TcpLabels,
};
use crate::config::Direction;

/// Everything a scrape shows, for one shard or merged over all of them.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// One entry per shard that contributed (for `/shards`).
    pub shards: Vec<ShardSummary>,
    pub accept_errors: Reasons,
    pub connections_refused: Reasons,
    pub http2_calmed: Reasons,
    pub detecting_connections: u64,
    pub pipes_in_use: u64,
    pub pipes_idle: u64,
    pub connect_failures: BTreeMap<(String, &'static str), u64>,
    pub tcp: BTreeMap<TcpLabels, TcpSnapshot>,
    pub detect_total: BTreeMap<DetectLabels, u64>,
    pub requests: BTreeMap<RequestLabels, u64>,
    /// By request labels and status code.
    pub responses: BTreeMap<(RequestLabels, ResponseKey), ResponseStats>,
    pub detect_duration_us: BTreeMap<(Direction, String), Histogram<u64>>,
    pub expiries: BTreeMap<ExpiryLabels, u64>,
    pub speculative_connections: u64,
    pub speculative_skipped_total: u64,
    /// Inbound authorization decisions.
    pub authz: BTreeMap<AuthzLabels, u64>,
    /// Meshed connections refused before they were proxied, by reason.
    pub mesh_refused: Reasons,
    /// Admin connections cut off, by why; the admin side adds them.
    pub admin_closed: Reasons,
    /// The identity's state; the admin side adds it, no shard has it.
    pub identity: Option<IdentityReading>,
    /// The DNS resolver's lookups, when upstream names are watched; the
    /// admin side adds it, no shard has it.
    pub dns: Option<DnsReading>,
    /// Endpoints in each configured route's current set, by its listen
    /// address; the admin side, which publishes the sets, adds them.
    pub route_endpoints: BTreeMap<String, u64>,
    /// Config reloads by result; the admin side adds them.
    pub config_reloads: Reasons,
}

/// The per-shard figures of `/shards`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardSummary {
    pub shard: usize,
    pub accepted_total: u64,
    pub open_connections: u64,
    /// Bytes read from clients.
    pub read_bytes_total: u64,
    /// Bytes written to clients.
    pub write_bytes_total: u64,
}

#[derive(Debug, Clone)]
pub struct TcpSnapshot {
    pub open_total: u64,
    pub close_success_total: u64,
    pub close_failure_total: u64,
    pub read_bytes_total: u64,
    pub write_bytes_total: u64,
    pub duration_ms: Histogram<u64>,
}

/// One response series: its count and latency histogram (milliseconds,
/// request head received to response body sent).
#[derive(Debug, Clone)]
pub struct ResponseStats {
    pub total: u64,
    pub latency_ms: Histogram<u64>,
}

impl Default for TcpSnapshot {
    fn default() -> Self {
        TcpSnapshot {
            open_total: 0,
            close_success_total: 0,
            close_failure_total: 0,
            read_bytes_total: 0,
            write_bytes_total: 0,
            duration_ms: new_histogram(),
        }
    }
}

impl TcpSnapshot {
    /// Connections opened and not yet closed.
    pub fn open_connections(&self) -> u64 {
        self.open_total
            .saturating_sub(self.close_success_total + self.close_failure_total)
    }

    fn merge(&mut self, other: &TcpSnapshot) {
        self.open_total += other.open_total;
        self.close_success_total += other.close_success_total;
        self.close_failure_total += other.close_failure_total;
        self.read_bytes_total += other.read_bytes_total;
        self.write_bytes_total += other.write_bytes_total;
        // Both sides auto-resize, so adding cannot fail on range.
        let _ = self.duration_ms.add(&other.duration_ms);
    }
}

impl Snapshot {
    /// Adds another shard's snapshot into this one.
    pub fn merge(&mut self, other: &Snapshot) {
        self.shards.extend(other.shards.iter().cloned());
        self.shards.sort_by_key(|summary| summary.shard);
        for (mine, theirs) in [
            (&mut self.accept_errors, &other.accept_errors),
            (&mut self.connections_refused, &other.connections_refused),
            (&mut self.http2_calmed, &other.http2_calmed),
            (&mut self.mesh_refused, &other.mesh_refused),
        ] {
            for (reason, count) in theirs {
                *mine.entry(reason).or_insert(0) += count;
            }
        }
        self.detecting_connections += other.detecting_connections;
        self.pipes_in_use += other.pipes_in_use;
        self.pipes_idle += other.pipes_idle;
        for (key, count) in &other.connect_failures {
            *self.connect_failures.entry(key.clone()).or_insert(0) += count;
        }
        for (labels, tcp) in &other.tcp {
            self.tcp.entry(labels.clone()).or_default().merge(tcp);
        }
        for (labels, count) in &other.requests {
            *self.requests.entry(labels.clone()).or_insert(0) += count;
        }
        for (key, stats) in &other.responses {
            match self.responses.get_mut(key) {
                Some(merged) => {
                    merged.total += stats.total;
                    let _ = merged.latency_ms.add(&stats.latency_ms);
                }
                None => {
                    self.responses.insert(key.clone(), stats.clone());
                }
            }
        }
        for (labels, count) in &other.expiries {
            *self.expiries.entry(labels.clone()).or_insert(0) += count;
        }
        for (labels, count) in &other.authz {
            *self.authz.entry(labels.clone()).or_insert(0) += count;
        }
        self.speculative_connections += other.speculative_connections;
        self.speculative_skipped_total += other.speculative_skipped_total;
        for (labels, count) in &other.detect_total {
            *self.detect_total.entry(labels.clone()).or_insert(0) += count;
        }
        for (key, histogram) in &other.detect_duration_us {
            let merged = self
                .detect_duration_us
                .entry(key.clone())
                .or_insert_with(new_histogram);
            let _ = merged.add(histogram);
        }
    }

    /// Fills the single shard summary of a shard's own snapshot from its
    /// client-side (`peer="src"`) counters.
    pub(super) fn with_shard_totals(mut self) -> Snapshot {
        let clients = self
            .tcp
            .iter()
            .filter(|(labels, _)| labels.peer == Peer::Src);
        let (mut open, mut read, mut written) = (0, 0, 0);
        for (_, tcp) in clients {
            open += tcp.open_connections();
            read += tcp.read_bytes_total;
            written += tcp.write_bytes_total;
        }
        if let Some(summary) = self.shards.first_mut() {
            summary.open_connections = open;
            summary.read_bytes_total = read;
            summary.write_bytes_total = written;
        }
        self
    }
}

/// A histogram of whole units (ms, us) that grows as needed; 3 significant
/// digits keeps every Linkerd bucket bound exact.
pub fn new_histogram() -> Histogram<u64> {
    let mut histogram = Histogram::new(3).expect("3 significant figures is a valid precision");
    histogram.auto(true);
    histogram
}
