//! The `/metrics` page: which families a merged snapshot shows, in which
//! order, with which labels. Names and labels are Linkerd's proxy's, so
//! existing dashboards keep working. The text format itself is in `text`.

use std::collections::BTreeMap;

use super::labels::{Peer, PeerId, Reasons, RequestLabels, ResponseKey, TcpLabels};
use super::process::ProcessStats;
use super::snapshot::{Snapshot, TcpSnapshot};
use super::text::{escape, Family, HistogramFamily};

/// Writes the whole `/metrics` page.
pub fn encode(snapshot: &Snapshot, process: &ProcessStats, out: &mut String) {
    encode_tcp(&snapshot.tcp, out);
    encode_http(snapshot, out);
    encode_detect(snapshot, out);
    encode_mesh(snapshot, out);
    encode_ringside(snapshot, out);
    if let Some(dns) = &snapshot.dns {
        dns.encode(out);
    }
    process.encode(out);
}

const TCP_OPEN_TOTAL: Family = Family::counter("tcp_open_total", "Connections opened.");
const TCP_CLOSE_TOTAL: Family =
    Family::counter("tcp_close_total", "Connections closed, by outcome.");
const TCP_OPEN_CONNECTIONS: Family = Family::gauge("tcp_open_connections", "Connections open now.");
const TCP_READ_BYTES_TOTAL: Family =
    Family::counter("tcp_read_bytes_total", "Bytes read from the peer.");
const TCP_WRITE_BYTES_TOTAL: Family =
    Family::counter("tcp_write_bytes_total", "Bytes written to the peer.");
/// Decades, as Linkerd buckets connection lifetimes: from a millisecond to
/// about eleven days.
const TCP_CONNECTION_DURATION_MS: HistogramFamily = HistogramFamily {
    name: "tcp_connection_duration_ms",
    help: "Lifetime of closed connections, in milliseconds.",
    bounds: &[
        1,
        10,
        100,
        1_000,
        10_000,
        100_000,
        1_000_000,
        10_000_000,
        100_000_000,
        1_000_000_000,
    ],
    per_exposed_unit: 1.0,
};

/// The tcp_* families: one series per label set, closes by outcome.
fn encode_tcp(tcp: &BTreeMap<TcpLabels, TcpSnapshot>, out: &mut String) {
    let each = |value: fn(&TcpSnapshot) -> u64| {
        tcp.iter()
            .map(move |(labels, m)| (tcp_labels(labels), value(m)))
    };
    TCP_OPEN_TOTAL.write(out, each(|m| m.open_total));
    TCP_CLOSE_TOTAL.write(
        out,
        tcp.iter().flat_map(|(labels, m)| {
            let base = tcp_labels(labels);
            let success = format!("{base},classification=\"success\"");
            let failure = format!("{base},classification=\"failure\"");
            [
                (success, m.close_success_total),
                (failure, m.close_failure_total),
            ]
        }),
    );
    TCP_OPEN_CONNECTIONS.write(out, each(TcpSnapshot::open_connections));
    TCP_READ_BYTES_TOTAL.write(out, each(|m| m.read_bytes_total));
    TCP_WRITE_BYTES_TOTAL.write(out, each(|m| m.write_bytes_total));
    TCP_CONNECTION_DURATION_MS.write(
        out,
        tcp.iter()
            .map(|(labels, m)| (tcp_labels(labels), &m.duration_ms)),
    );
}

const REQUEST_TOTAL: Family = Family::counter("request_total", "HTTP requests received.");
const RESPONSE_TOTAL: Family = Family::counter("response_total", "HTTP responses sent, by status.");
/// Linkerd's buckets.
const RESPONSE_LATENCY_MS: HistogramFamily = HistogramFamily {
    name: "response_latency_ms",
    help: "From a request's head received to its response sent, in milliseconds.",
    bounds: &[
        1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1_000, 2_000, 3_000, 4_000,
        5_000, 10_000, 20_000, 30_000, 40_000, 50_000,
    ],
    per_exposed_unit: 1.0,
};

/// request_total, and the response series by request labels and status.
fn encode_http(snapshot: &Snapshot, out: &mut String) {
    REQUEST_TOTAL.write(
        out,
        snapshot
            .requests
            .iter()
            .map(|(labels, count)| (request_labels(labels), count)),
    );
    let responses = || {
        snapshot
            .responses
            .iter()
            .map(|((labels, class), stats)| (response_labels(labels, class), stats))
    };
    RESPONSE_TOTAL.write(
        out,
        responses().map(|(labels, stats)| (labels, stats.total)),
    );
    RESPONSE_LATENCY_MS.write(
        out,
        responses().map(|(labels, stats)| (labels, &stats.latency_ms)),
    );
}

const PROTOCOL_DETECT_TOTAL: Family = Family::counter(
    "protocol_detect_total",
    "Connections by the outcome of protocol detection.",
);
/// Recorded in microseconds: from 100 us to the 10 s default timeout and
/// beyond.
const PROTOCOL_DETECT_DURATION_SECONDS: HistogramFamily = HistogramFamily {
    name: "protocol_detect_duration_seconds",
    help: "Time from accept to a detection verdict.",
    bounds: &[
        100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000, 10_000_000,
        30_000_000,
    ],
    per_exposed_unit: 1e6,
};

/// Detection verdicts by outcome, and the time they took.
fn encode_detect(snapshot: &Snapshot, out: &mut String) {
    PROTOCOL_DETECT_TOTAL.write(
        out,
        snapshot.detect_total.iter().map(|(labels, count)| {
            let labels = format!(
                "direction=\"{}\",target_addr=\"{}\",result=\"{}\"",
                labels.direction.as_str(),
                escape(&labels.target_addr),
                labels.result
            );
            (labels, count)
        }),
    );
    PROTOCOL_DETECT_DURATION_SECONDS.write(
        out,
        snapshot
            .detect_duration_us
            .iter()
            .map(|((direction, target), h)| {
                let labels = format!(
                    "direction=\"{}\",target_addr=\"{}\"",
                    direction.as_str(),
                    escape(target)
                );
                (labels, h)
            }),
    );
}

const UPSTREAM_CONNECT_FAILURES_TOTAL: Family = Family::counter(
    "ringside_upstream_connect_failures_total",
    "Upstream connects that failed, by endpoint and reason.",
);
const TIMEOUTS_TOTAL: Family = Family::counter(
    "ringside_timeouts_total",
    "Timeouts that fired, by route and the wait that ran out.",
);
const SPECULATIVE_CONNECTIONS: Family = Family::gauge(
    "ringside_speculative_connections",
    "Upstream connections held open ahead of a detection verdict or a first request head.",
);
const SPECULATIVE_SKIPPED_TOTAL: Family = Family::counter(
    "ringside_speculative_skipped_total",
    "Connections that detected before connecting upstream, the shard being at its speculative limit.",
);
const ACCEPT_ERRORS_TOTAL: Family = Family::counter(
    "ringside_accept_errors_total",
    "Failed accept(2) calls, by errno.",
);
const CONNECTIONS_REFUSED_TOTAL: Family = Family::counter(
    "ringside_connections_refused_total",
    "Connections accepted and reset at once, by the limit or rule that refused them.",
);
const HTTP2_ENHANCE_YOUR_CALM_TOTAL: Family = Family::counter(
    "ringside_http2_enhance_your_calm_total",
    "HTTP/2 client connections closed with GOAWAY ENHANCE_YOUR_CALM, by cause.",
);
const DETECTING_CONNECTIONS: Family = Family::gauge(
    "ringside_detecting_connections",
    "Connections waiting for a protocol verdict (counted in tcp_open_connections once it is in).",
);
const ADMIN_CONNECTIONS_CLOSED_TOTAL: Family = Family::counter(
    "ringside_admin_connections_closed_total",
    "Admin connections cut off: by a deadline, or to make room past the connection bound.",
);
const PIPES: Family = Family::gauge("ringside_pipes", "Splice pipes, lent out or pooled.");
const SHARDS: Family = Family::gauge("ringside_shards", "Proxy shards that answered this scrape.");
const BUILD_INFO: Family = Family::gauge("ringside_build_info", "Build of this binary.");

const IDENTITY_CERT_EXPIRATION: Family = Family::gauge(
    "identity_cert_expiration_timestamp_seconds",
    "When the identity certificate in use expires, in Unix seconds.",
);
const IDENTITY_RELOAD_FAILURES_TOTAL: Family = Family::counter(
    "ringside_identity_reload_failures_total",
    "Identity reloads refused (the old identity stayed in use).",
);
const ROUTE_ENDPOINTS: Family = Family::gauge(
    "ringside_route_endpoints",
    "Endpoints in a route's current set (zero: its names have not resolved).",
);
const CONFIG_RELOADS_TOTAL: Family = Family::counter(
    "ringside_config_reloads_total",
    "Config reloads (SIGHUP, POST /reload), by result.",
);
const MESH_REFUSED_TOTAL: Family = Family::counter(
    "ringside_mesh_refused_total",
    "Meshed (mTLS) connections refused before they were proxied, by reason.",
);

/// Inbound authorization and identity, under Linkerd's names where it
/// has them.
fn encode_mesh(snapshot: &Snapshot, out: &mut String) {
    super::authz_encode::encode(snapshot, out);
    MESH_REFUSED_TOTAL.write(out, by_reason("reason", &snapshot.mesh_refused));
    if let Some(identity) = snapshot.identity {
        IDENTITY_CERT_EXPIRATION.write(out, [("", identity.not_after_unix_seconds)]);
        IDENTITY_RELOAD_FAILURES_TOTAL.write(out, [("", identity.reload_failures)]);
    }
}

fn by_reason<'a>(key: &'a str, reasons: &'a Reasons) -> impl Iterator<Item = (String, u64)> + 'a {
    reasons
        .iter()
        .map(move |(reason, count)| (format!("{key}=\"{reason}\""), *count))
}

/// ringside's own families, which Linkerd has no name for.
fn encode_ringside(snapshot: &Snapshot, out: &mut String) {
    UPSTREAM_CONNECT_FAILURES_TOTAL.write(
        out,
        snapshot
            .connect_failures
            .iter()
            .map(|((endpoint, reason), count)| {
                let labels = format!("target_addr=\"{}\",reason=\"{reason}\"", escape(endpoint));
                (labels, count)
            }),
    );
    TIMEOUTS_TOTAL.write(
        out,
        snapshot
            .expiries
            .iter()
            .map(|((direction, target, expiry), count)| {
                let labels = format!(
                    "direction=\"{}\",target_addr=\"{}\",timeout=\"{}\"",
                    direction.as_str(),
                    escape(target),
                    expiry.as_str()
                );
                (labels, count)
            }),
    );
    SPECULATIVE_CONNECTIONS.write(out, [("", snapshot.speculative_connections)]);
    SPECULATIVE_SKIPPED_TOTAL.write(out, [("", snapshot.speculative_skipped_total)]);
    ACCEPT_ERRORS_TOTAL.write(out, by_reason("reason", &snapshot.accept_errors));
    CONNECTIONS_REFUSED_TOTAL.write(out, by_reason("reason", &snapshot.connections_refused));
    HTTP2_ENHANCE_YOUR_CALM_TOTAL.write(out, by_reason("cause", &snapshot.http2_calmed));
    DETECTING_CONNECTIONS.write(out, [("", snapshot.detecting_connections)]);
    ADMIN_CONNECTIONS_CLOSED_TOTAL.write(out, by_reason("reason", &snapshot.admin_closed));
    ROUTE_ENDPOINTS.write(
        out,
        snapshot
            .route_endpoints
            .iter()
            .map(|(route, count)| (format!("route=\"{}\"", escape(route)), count)),
    );
    CONFIG_RELOADS_TOTAL.write(out, by_reason("result", &snapshot.config_reloads));
    PIPES.write(
        out,
        [
            ("state=\"in_use\"", snapshot.pipes_in_use),
            ("state=\"idle\"", snapshot.pipes_idle),
        ],
    );
    SHARDS.write(out, [("", snapshot.shards.len())]);
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    BUILD_INFO.write(out, [(version, 1)]);
}

fn tcp_labels(labels: &TcpLabels) -> String {
    let mut text = format!(
        "direction=\"{}\",peer=\"{}\",target_addr=\"{}\"",
        labels.direction.as_str(),
        labels.peer.as_str(),
        escape(&labels.target_addr)
    );
    for (name, value) in labels.dst_labels.iter() {
        text.push_str(&format!(",{name}=\"{}\"", escape(value)));
    }
    // The mesh's own TLS is the `tls` label; TLS the application runs
    // inside it keeps only its `sni`.
    match (&labels.peer_id, &labels.tls_sni) {
        (Some(identity), sni) => {
            let key = match labels.peer {
                Peer::Src => "client_id",
                Peer::Dst => "server_id",
            };
            text.push_str(&format!(",tls=\"true\",{key}=\"{}\"", escape(identity)));
            if let Some(sni) = sni {
                text.push_str(&format!(",sni=\"{}\"", escape(sni)));
            }
        }
        (None, Some(sni)) => text.push_str(&format!(",tls=\"opaque\",sni=\"{}\"", escape(sni))),
        (None, None) => {
            if let Some(reason) = labels.no_tls {
                push_no_tls(&mut text, reason);
            }
        }
    }
    text
}

fn push_no_tls(text: &mut String, reason: &str) {
    text.push_str(&format!(",tls=\"no_identity\",no_tls_reason=\"{reason}\""));
}

fn request_labels(labels: &RequestLabels) -> String {
    let mut text = format!(
        "direction=\"{}\",authority=\"{}\",target_addr=\"{}\"",
        labels.direction.as_str(),
        escape(&labels.authority),
        escape(&labels.target_addr)
    );
    let (key, identity) = match &labels.peer_id {
        Some(PeerId::Client(identity)) => ("client_id", identity),
        Some(PeerId::Server(identity)) => ("server_id", identity),
        Some(PeerId::NoIdentity(reason)) => {
            push_no_tls(&mut text, reason);
            return text;
        }
        None => return text,
    };
    text.push_str(&format!(",tls=\"true\",{key}=\"{}\"", escape(identity)));
    text
}

fn response_labels(labels: &RequestLabels, class: &ResponseKey) -> String {
    let classification = if class.failure { "failure" } else { "success" };
    let mut text = format!(
        "{},status_code=\"{}\",classification=\"{classification}\"",
        request_labels(labels),
        class.status_code
    );
    if let Some(code) = class.grpc_status {
        text.push_str(&format!(",grpc_status=\"{code}\""));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Direction;
    use crate::metrics::labels::{DetectLabels, Expiry, ResponseClass};
    use crate::metrics::recorder::ShardMetrics;
    use std::time::Duration;

    #[test]
    fn encodes_counters_and_cumulative_buckets() {
        let metrics = ShardMetrics::new(0);
        let tcp = metrics.tcp(TcpLabels {
            dst_labels: Default::default(),
            direction: Direction::Inbound,
            peer: Peer::Src,
            target_addr: "127.0.0.1:4143".into(),
            tls_sni: None,
            peer_id: None,
            no_tls: Some("no_tls_from_remote"),
        });
        tcp.opened();
        tcp.opened();
        tcp.read(42);
        tcp.closed(true, Duration::from_millis(7));
        tcp.closed(false, Duration::from_millis(250));
        let mut out = String::new();
        encode(&metrics.snapshot(0, 0), &ProcessStats::default(), &mut out);

        let labels = r#"direction="inbound",peer="src",target_addr="127.0.0.1:4143",tls="no_identity",no_tls_reason="no_tls_from_remote""#;
        for line in [
            format!("tcp_open_total{{{labels}}} 2"),
            format!("tcp_read_bytes_total{{{labels}}} 42"),
            format!("tcp_close_total{{{labels},classification=\"failure\"}} 1"),
            format!("tcp_open_connections{{{labels}}} 0"),
            format!("tcp_connection_duration_ms_bucket{{{labels},le=\"1\"}} 0"),
            format!("tcp_connection_duration_ms_bucket{{{labels},le=\"10\"}} 1"),
            format!("tcp_connection_duration_ms_bucket{{{labels},le=\"1000\"}} 2"),
            format!("tcp_connection_duration_ms_bucket{{{labels},le=\"+Inf\"}} 2"),
            format!("tcp_connection_duration_ms_count{{{labels}}} 2"),
            "ringside_build_info{version=\"0.1.0\"} 1".to_string(),
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
    }

    /// One series in every family, with the labels that only some series
    /// carry (TLS SNI, gRPC status) and a value that needs escaping.
    fn one_of_everything() -> Snapshot {
        let metrics = ShardMetrics::new(0);
        let tcp = metrics.tcp(TcpLabels {
            dst_labels: Default::default(),
            direction: Direction::Outbound,
            peer: Peer::Dst,
            target_addr: "10.0.0.1:443".into(),
            tls_sni: Some("a\"b".into()),
            peer_id: None,
            no_tls: None,
        });
        tcp.opened();
        tcp.wrote(5);
        tcp.closed(true, Duration::from_millis(3));
        metrics.accept_failed("emfile");
        metrics.refused("max_connections");
        metrics.http2_calmed("premature_resets");
        let _detecting = metrics.detecting();
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        metrics.connect_failed("10.0.0.2:80".parse().unwrap(), &timed_out);
        let detected = DetectLabels {
            direction: Direction::Inbound,
            target_addr: "127.0.0.1:4143".into(),
            result: "http/1",
        };
        metrics.detected(detected, Some(Duration::from_micros(700)));
        let head_read = (
            Direction::Inbound,
            "127.0.0.1:4143".into(),
            Expiry::HeadRead,
        );
        metrics.expired(head_read);
        let _speculating = metrics.speculating();
        metrics.speculation_skipped();
        let request = metrics.request(RequestLabels {
            direction: Direction::Inbound,
            authority: "example.com".into(),
            target_addr: "127.0.0.1:8080".into(),
            peer_id: Some(PeerId::Client("web.ns".into())),
        });
        let unavailable = ResponseClass {
            status_code: 200,
            grpc_status: Some(14),
        };
        metrics.responded(&request, unavailable, Duration::from_millis(12));
        metrics.snapshot(1, 2)
    }

    #[test]
    fn every_family_in_order_with_its_labels_in_order() {
        let mut out = String::new();
        encode(&one_of_everything(), &ProcessStats::default(), &mut out);

        let types: Vec<&str> = out
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(
            types,
            [
                "tcp_open_total counter",
                "tcp_close_total counter",
                "tcp_open_connections gauge",
                "tcp_read_bytes_total counter",
                "tcp_write_bytes_total counter",
                "tcp_connection_duration_ms histogram",
                "request_total counter",
                "response_total counter",
                "response_latency_ms histogram",
                "protocol_detect_total counter",
                "protocol_detect_duration_seconds histogram",
                "inbound_tcp_authz_allow_total counter",
                "inbound_tcp_authz_deny_total counter",
                "inbound_tcp_authz_terminate_total counter",
                "inbound_http_authz_allow_total counter",
                "inbound_http_authz_deny_total counter",
                "inbound_http_route_not_found_total counter",
                "ringside_mesh_refused_total counter",
                "ringside_upstream_connect_failures_total counter",
                "ringside_timeouts_total counter",
                "ringside_speculative_connections gauge",
                "ringside_speculative_skipped_total counter",
                "ringside_accept_errors_total counter",
                "ringside_connections_refused_total counter",
                "ringside_http2_enhance_your_calm_total counter",
                "ringside_detecting_connections gauge",
                "ringside_admin_connections_closed_total counter",
                "ringside_route_endpoints gauge",
                "ringside_config_reloads_total counter",
                "ringside_pipes gauge",
                "ringside_shards gauge",
                "ringside_build_info gauge",
                "process_cpu_seconds_total counter",
                "process_resident_memory_bytes gauge",
                "process_open_fds gauge",
                "process_max_fds gauge",
                "process_start_time_seconds gauge",
            ]
        );

        let tcp =
            r#"direction="outbound",peer="dst",target_addr="10.0.0.1:443",tls="opaque",sni="a\"b""#;
        let http = r#"direction="inbound",authority="example.com",target_addr="127.0.0.1:8080",tls="true",client_id="web.ns""#;
        let response =
            format!(r#"{http},status_code="200",classification="failure",grpc_status="14""#);
        let detect = r#"direction="inbound",target_addr="127.0.0.1:4143""#;
        let expected = [
            "# HELP tcp_open_total Connections opened.".to_string(),
            format!("tcp_close_total{{{tcp},classification=\"success\"}} 1"),
            format!("tcp_close_total{{{tcp},classification=\"failure\"}} 0"),
            format!("tcp_write_bytes_total{{{tcp}}} 5"),
            format!("tcp_connection_duration_ms_sum{{{tcp}}} 3"),
            format!("request_total{{{http}}} 1"),
            format!("response_total{{{response}}} 1"),
            format!("response_latency_ms_bucket{{{response},le=\"10\"}} 0"),
            format!("response_latency_ms_bucket{{{response},le=\"20\"}} 1"),
            format!("response_latency_ms_sum{{{response}}} 12"),
            format!("protocol_detect_total{{{detect},result=\"http/1\"}} 1"),
            format!("protocol_detect_duration_seconds_bucket{{{detect},le=\"0.0005\"}} 0"),
            format!("protocol_detect_duration_seconds_bucket{{{detect},le=\"0.001\"}} 1"),
            format!("protocol_detect_duration_seconds_bucket{{{detect},le=\"+Inf\"}} 1"),
            format!("protocol_detect_duration_seconds_sum{{{detect}}} 0.0007"),
            format!("protocol_detect_duration_seconds_count{{{detect}}} 1"),
            r#"ringside_upstream_connect_failures_total{target_addr="10.0.0.2:80",reason="timeout"} 1"#
                .to_string(),
            r#"ringside_timeouts_total{direction="inbound",target_addr="127.0.0.1:4143",timeout="head_read"} 1"#
                .to_string(),
            "ringside_speculative_connections 1".to_string(),
            "ringside_speculative_skipped_total 1".to_string(),
            r#"ringside_accept_errors_total{reason="emfile"} 1"#.to_string(),
            r#"ringside_connections_refused_total{reason="max_connections"} 1"#.to_string(),
            r#"ringside_http2_enhance_your_calm_total{cause="premature_resets"} 1"#.to_string(),
            "ringside_detecting_connections 1".to_string(),
            "ringside_pipes{state=\"in_use\"} 1".to_string(),
            "ringside_pipes{state=\"idle\"} 2".to_string(),
            "ringside_shards 1".to_string(),
            "process_open_fds 0".to_string(),
        ];
        let mut lines = out.lines();
        for line in &expected {
            // In this order: each line is looked for after the one before.
            assert!(
                lines.any(|l| l == line),
                "missing or out of order {line:?} in\n{out}"
            );
        }
    }
}
