//! What one shard records: plain `Cell` counters and HdrHistograms, owned by
//! the shard and touched only by its thread. Nothing here is atomic or
//! locked; the admin shard asks for a `Snapshot` instead of reading these.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::authz::AuthzLabels;
use super::bound::RemoteLabels;
use super::labels::{
    DetectLabels, ExpiryLabels, Reasons, RequestLabels, ResponseClass, ResponseKey, TcpLabels,
};
use super::snapshot::{new_histogram, ResponseStats, ShardSummary, Snapshot, TcpSnapshot};
use crate::config::Direction;

/// The counters of one label set; a connection holds an `Rc` to its own so
/// that counting a byte is one `Cell` add, no lookup.
#[derive(Debug)]
pub struct TcpCounters {
    open_total: Cell<u64>,
    close_success_total: Cell<u64>,
    close_failure_total: Cell<u64>,
    read_bytes_total: Cell<u64>,
    write_bytes_total: Cell<u64>,
    duration_ms: RefCell<Histogram<u64>>,
}

impl TcpCounters {
    fn new() -> TcpCounters {
        TcpCounters {
            open_total: Cell::new(0),
            close_success_total: Cell::new(0),
            close_failure_total: Cell::new(0),
            read_bytes_total: Cell::new(0),
            write_bytes_total: Cell::new(0),
            duration_ms: RefCell::new(new_histogram()),
        }
    }

    pub fn opened(&self) {
        add(&self.open_total, 1);
    }

    pub fn closed(&self, success: bool, duration: Duration) {
        let counter = if success {
            &self.close_success_total
        } else {
            &self.close_failure_total
        };
        add(counter, 1);
        self.duration_ms
            .borrow_mut()
            .saturating_record(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
    }

    pub fn read(&self, bytes: usize) {
        add(&self.read_bytes_total, bytes as u64);
    }

    pub fn wrote(&self, bytes: usize) {
        add(&self.write_bytes_total, bytes as u64);
    }

    fn snapshot(&self) -> TcpSnapshot {
        TcpSnapshot {
            open_total: self.open_total.get(),
            close_success_total: self.close_success_total.get(),
            close_failure_total: self.close_failure_total.get(),
            read_bytes_total: self.read_bytes_total.get(),
            write_bytes_total: self.write_bytes_total.get(),
            duration_ms: self.duration_ms.borrow().clone(),
        }
    }
}

/// A connection being detected; see `ShardMetrics::detecting`.
pub struct Detecting(Rc<Cell<u64>>);

impl Drop for Detecting {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Holds one count in `ringside_speculative_connections` while it lives.
#[derive(Debug)]
pub struct Speculating(Rc<Cell<u64>>);

impl Drop for Speculating {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Every metric of one shard.
#[derive(Debug)]
pub struct ShardMetrics {
    shard: usize,
    tcp: RefCell<BTreeMap<TcpLabels, Rc<TcpCounters>>>,
    accepted_total: Cell<u64>,
    /// Failed accepts, by errno (`emfile`, `enfile`, ...).
    accept_errors: RefCell<Reasons>,
    /// Connections accepted and reset at once, by the limit that refused
    /// them.
    connections_refused: RefCell<Reasons>,
    /// HTTP/2 client connections closed with GOAWAY ENHANCE_YOUR_CALM, by
    /// the limit the client ran into.
    http2_calmed: RefCell<Reasons>,
    /// Connections waiting for a detection verdict: not yet in any `tcp_*`
    /// series, whose labels depend on the verdict.
    detecting: Rc<Cell<u64>>,
    /// Upstream connects that failed, by endpoint and reason.
    connect_failures: RefCell<BTreeMap<(String, &'static str), u64>>,
    detect_total: RefCell<BTreeMap<DetectLabels, u64>>,
    requests: RefCell<BTreeMap<RequestLabels, u64>>,
    /// Nested so that counting a response needs no key clone.
    responses: RefCell<BTreeMap<RequestLabels, BTreeMap<ResponseKey, ResponseStats>>>,
    /// The bounds on label values a remote party chooses (SNI, authority,
    /// status codes, transparent destinations).
    remote_labels: RefCell<RemoteLabels>,
    /// Time to a detection verdict, in microseconds, by direction and target.
    detect_duration_us: RefCell<BTreeMap<(Direction, String), Histogram<u64>>>,
    /// Timeouts that fired, by route and kind.
    expiries: RefCell<BTreeMap<ExpiryLabels, u64>>,
    /// Upstream connections held open for a connection still detecting or
    /// still sending its first head (the shard's limit applies to these).
    speculative: Rc<Cell<u64>>,
    /// Connections that detected before connecting because the shard held
    /// its limit of speculative connections.
    speculative_skipped_total: Cell<u64>,
    /// Inbound authorization decisions.
    /// Shared with the connections counting into them (`HttpAuthz`).
    authz: RefCell<BTreeMap<AuthzLabels, Rc<Cell<u64>>>>,
    /// Meshed connections refused before they were proxied, by reason.
    mesh_refused: RefCell<Reasons>,
}

impl ShardMetrics {
    pub fn new(shard: usize) -> ShardMetrics {
        ShardMetrics {
            shard,
            tcp: RefCell::default(),
            accepted_total: Cell::new(0),
            accept_errors: RefCell::default(),
            connections_refused: RefCell::default(),
            http2_calmed: RefCell::default(),
            detecting: Rc::default(),
            connect_failures: RefCell::default(),
            detect_total: RefCell::default(),
            detect_duration_us: RefCell::default(),
            requests: RefCell::default(),
            responses: RefCell::default(),
            remote_labels: RefCell::default(),
            expiries: RefCell::default(),
            speculative: Rc::default(),
            speculative_skipped_total: Cell::new(0),
            authz: RefCell::default(),
            mesh_refused: RefCell::default(),
        }
    }

    /// Counts an inbound authorization decision.
    pub fn authorized(&self, labels: AuthzLabels) {
        add(&self.authz_counter(labels), 1);
    }

    /// The counter of an authorization decision, for a connection to keep.
    pub fn authz_counter(&self, labels: AuthzLabels) -> Rc<Cell<u64>> {
        self.authz.borrow_mut().entry(labels).or_default().clone()
    }

    /// Counts a meshed connection refused before it was proxied; `reason`
    /// as `tls::mesh::MeshError` names it.
    pub fn mesh_refused(&self, reason: &'static str) {
        count(&self.mesh_refused, reason);
    }

    /// Counts a timeout that fired.
    pub fn expired(&self, labels: ExpiryLabels) {
        *self.expiries.borrow_mut().entry(labels).or_insert(0) += 1;
    }

    /// Speculative upstream connections held now.
    pub fn speculative(&self) -> u64 {
        self.speculative.get()
    }

    /// Counts a speculative upstream connection as held until the guard
    /// is dropped.
    pub fn speculating(&self) -> Speculating {
        add(&self.speculative, 1);
        Speculating(self.speculative.clone())
    }

    pub fn speculation_skipped(&self) {
        add(&self.speculative_skipped_total, 1);
    }

    pub fn shard(&self) -> usize {
        self.shard
    }

    /// The counters for one label set, created on first use.
    pub fn tcp(&self, labels: TcpLabels) -> Rc<TcpCounters> {
        self.tcp
            .borrow_mut()
            .entry(labels)
            .or_insert_with(|| Rc::new(TcpCounters::new()))
            .clone()
    }

    pub fn accepted(&self) {
        add(&self.accepted_total, 1);
    }

    /// `reason`: the errno's name, lower case (`emfile`), or `other`.
    pub fn accept_failed(&self, reason: &'static str) {
        count(&self.accept_errors, reason);
    }

    /// `reason`: the limit, as its config key names it (`max_connections`),
    /// or a transparent listener's rule (`not_redirected`, `loop`,
    /// `original_dst` when the kernel could not say).
    pub fn refused(&self, reason: &'static str) {
        count(&self.connections_refused, reason);
    }

    /// `cause`: `premature_resets` (ringside's rapid-reset rule) or
    /// `stream_resets` (h2's own reset limits).
    pub fn http2_calmed(&self, cause: &'static str) {
        count(&self.http2_calmed, cause);
    }

    /// Counts a connection as detecting until the guard is dropped, however
    /// detection ends.
    pub fn detecting(&self) -> Detecting {
        add(&self.detecting, 1);
        Detecting(self.detecting.clone())
    }

    /// Counts a failed upstream connect, with `timeout`, `tls_handshake` or
    /// `refused` as its reason.
    pub fn connect_failed(&self, endpoint: std::net::SocketAddr, err: &std::io::Error) {
        let reason = match err.kind() {
            std::io::ErrorKind::TimedOut => "timeout",
            // rustls's errors: a mesh peer's handshake failed (a wrong
            // identity, an unknown CA, an expired certificate).
            std::io::ErrorKind::InvalidData => "tls_handshake",
            _ => "refused",
        };
        let endpoint = endpoint.to_string();
        *self
            .connect_failures
            .borrow_mut()
            .entry((endpoint, reason))
            .or_insert(0) += 1;
    }

    /// Counts one detection outcome; `duration` is `None` when no detection
    /// ran (opaque ports, learned server-first upstreams).
    pub fn detected(&self, labels: DetectLabels, duration: Option<Duration>) {
        let mut totals = self.detect_total.borrow_mut();
        match totals.get_mut(&labels) {
            Some(count) => *count += 1,
            None => {
                totals.insert(labels.clone(), 1);
            }
        }
        let Some(duration) = duration else { return };
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let key = (labels.direction, labels.target_addr);
        let mut histograms = self.detect_duration_us.borrow_mut();
        match histograms.get_mut(&key) {
            Some(histogram) => histogram.saturating_record(micros),
            None => {
                let mut histogram = new_histogram();
                histogram.saturating_record(micros);
                histograms.insert(key, histogram);
            }
        }
    }

    /// A request's `authority` label, capped (see `RemoteLabels`).
    pub fn authority(&self, authority: &str) -> Arc<str> {
        self.remote_labels.borrow_mut().authority(authority)
    }

    /// Counts a request, whose labels took their authority from
    /// `authority`; returns them for the response to be counted under.
    pub fn request(&self, labels: RequestLabels) -> RequestLabels {
        let mut requests = self.requests.borrow_mut();
        match requests.get_mut(&labels) {
            Some(count) => *count += 1,
            None => {
                requests.insert(labels.clone(), 1);
            }
        }
        labels
    }

    pub fn responded(&self, labels: &RequestLabels, class: ResponseClass, latency: Duration) {
        let mut responses = self.responses.borrow_mut();
        let by_class = match responses.get_mut(labels) {
            Some(by_class) => by_class,
            None => responses.entry(labels.clone()).or_default(),
        };
        let key = self.remote_labels.borrow_mut().response(class);
        let stats = by_class.entry(key).or_insert_with(|| ResponseStats {
            total: 0,
            latency_ms: new_histogram(),
        });
        stats.total += 1;
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        stats.latency_ms.saturating_record(ms);
    }

    /// The `sni` label of a TLS ClientHello's server name: bounded per
    /// shard, as the client chooses it.
    pub fn sni_label(&self, sni: &str) -> String {
        self.remote_labels.borrow_mut().sni(sni)
    }

    /// The `target_addr` label of a transparent connection's original
    /// destination: bounded per shard, as the client chooses it, until
    /// `forget_target` frees its slot.
    pub fn destination_label(&self, destination: std::net::SocketAddr) -> String {
        self.remote_labels.borrow_mut().destination(destination)
    }

    /// Drops every series labelled with `target` (a forgotten transparent
    /// destination: its `target_addr`, or its endpoint when it is its own
    /// upstream) whose counters no connection or route still holds, so
    /// that a proxy seeing ever new destinations keeps a bounded number of
    /// series. Counters of a target seen again start from zero, which
    /// Prometheus reads as a counter reset.
    pub fn forget_target(&self, target: &str) {
        self.remote_labels.borrow_mut().forget_destination(target);
        self.tcp.borrow_mut().retain(|labels, counters| {
            labels.target_addr != target || Rc::strong_count(counters) > 1
        });
        self.detect_total
            .borrow_mut()
            .retain(|labels, _| labels.target_addr != target);
        self.detect_duration_us
            .borrow_mut()
            .retain(|(_, addr), _| addr != target);
        self.requests
            .borrow_mut()
            .retain(|labels, _| &*labels.target_addr != target);
        self.responses
            .borrow_mut()
            .retain(|labels, _| &*labels.target_addr != target);
        self.expiries
            .borrow_mut()
            .retain(|(_, addr, _), _| addr != target);
        self.connect_failures
            .borrow_mut()
            .retain(|(endpoint, _), _| endpoint != target);
        self.authz
            .borrow_mut()
            .retain(|labels, count| labels.target_addr != target || Rc::strong_count(count) > 1);
    }

    /// A copy of everything, for the admin shard to merge. `pipes_in_use`
    /// and `pipes_idle` come from the shard's pipe pool.
    pub fn snapshot(&self, pipes_in_use: usize, pipes_idle: usize) -> Snapshot {
        Snapshot {
            shards: vec![ShardSummary {
                shard: self.shard,
                accepted_total: self.accepted_total.get(),
                open_connections: 0,
                read_bytes_total: 0,
                write_bytes_total: 0,
            }],
            accept_errors: self.accept_errors.borrow().clone(),
            connections_refused: self.connections_refused.borrow().clone(),
            http2_calmed: self.http2_calmed.borrow().clone(),
            detecting_connections: self.detecting.get(),
            pipes_in_use: pipes_in_use as u64,
            pipes_idle: pipes_idle as u64,
            connect_failures: self.connect_failures.borrow().clone(),
            detect_total: self.detect_total.borrow().clone(),
            requests: self.requests.borrow().clone(),
            responses: self
                .responses
                .borrow()
                .iter()
                .flat_map(|(labels, by_class)| {
                    by_class
                        .iter()
                        .map(|(class, stats)| ((labels.clone(), *class), stats.clone()))
                })
                .collect(),
            detect_duration_us: self.detect_duration_us.borrow().clone(),
            expiries: self.expiries.borrow().clone(),
            speculative_connections: self.speculative.get(),
            speculative_skipped_total: self.speculative_skipped_total.get(),
            authz: self
                .authz
                .borrow()
                .iter()
                .map(|(labels, count)| (labels.clone(), count.get()))
                .collect(),
            mesh_refused: self.mesh_refused.borrow().clone(),
            admin_closed: Reasons::default(),
            route_endpoints: BTreeMap::new(),
            config_reloads: Reasons::default(),
            identity: None,
            dns: None,
            tcp: self
                .tcp
                .borrow()
                .iter()
                .map(|(labels, counters)| (labels.clone(), counters.snapshot()))
                .collect(),
        }
        .with_shard_totals()
    }
}

fn count(reasons: &RefCell<Reasons>, reason: &'static str) {
    *reasons.borrow_mut().entry(reason).or_insert(0) += 1;
}

fn add(counter: &Cell<u64>, n: u64) {
    counter.set(counter.get().wrapping_add(n));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::labels::Peer;
    use std::time::Duration;

    fn labels(peer: Peer) -> TcpLabels {
        TcpLabels {
            dst_labels: Default::default(),
            direction: Direction::Outbound,
            peer,
            target_addr: "127.0.0.1:80".into(),
            tls_sni: None,
            peer_id: None,
            no_tls: None,
        }
    }

    #[test]
    fn merge_adds_counters_and_histograms_of_every_shard() {
        let mut merged = Snapshot::default();
        for shard in 0..3 {
            let metrics = ShardMetrics::new(shard);
            let tcp = metrics.tcp(labels(Peer::Src));
            tcp.opened();
            tcp.read(100);
            tcp.wrote(10);
            if shard > 0 {
                tcp.closed(shard == 1, Duration::from_millis(5));
            }
            metrics.accepted();
            merged.merge(&metrics.snapshot(0, 1));
        }
        let tcp = &merged.tcp[&labels(Peer::Src)];
        assert_eq!(tcp.open_total, 3);
        assert_eq!((tcp.close_success_total, tcp.close_failure_total), (1, 1));
        assert_eq!(tcp.open_connections(), 1);
        assert_eq!((tcp.read_bytes_total, tcp.write_bytes_total), (300, 30));
        assert_eq!(tcp.duration_ms.len(), 2);
        assert_eq!(merged.pipes_idle, 3);
        let open: Vec<u64> = merged.shards.iter().map(|s| s.open_connections).collect();
        assert_eq!(open, vec![1, 0, 0]);
    }

    #[test]
    fn authorities_and_status_codes_past_their_caps_share_one_label() {
        use crate::metrics::bound::{MAX_AUTHORITIES, MAX_STATUS_CODES};
        use crate::metrics::labels::Code;
        let metrics = ShardMetrics::new(0);
        for n in 0..2 * MAX_AUTHORITIES {
            let labels = metrics.request(RequestLabels {
                direction: Direction::Inbound,
                authority: metrics.authority(&format!("host-{n}.example")),
                target_addr: "127.0.0.1:80".into(),
                peer_id: None,
            });
            let class = ResponseClass {
                status_code: 100 + n as u16,
                grpc_status: None,
            };
            metrics.responded(&labels, class, Duration::from_millis(1));
        }
        let snapshot = metrics.snapshot(0, 0);
        assert_eq!(snapshot.requests.len(), MAX_AUTHORITIES + 1);
        let other = snapshot
            .requests
            .iter()
            .find(|(l, _)| &*l.authority == crate::metrics::OVERFLOW);
        assert_eq!(other.map(|(_, count)| *count), Some(MAX_AUTHORITIES as u64));
        let codes: std::collections::BTreeSet<Code> = snapshot
            .responses
            .keys()
            .map(|(_, key)| key.status_code)
            .collect();
        assert_eq!(codes.len(), MAX_STATUS_CODES + 1);
        assert!(codes.contains(&Code::Other));
    }
}
