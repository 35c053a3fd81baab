//! Prometheus text exposition (format 0.0.4) of a merged snapshot, with
//! Linkerd's metric names and labels so existing dashboards keep working.

use std::fmt::Write;

use hdrhistogram::Histogram;

use super::process::ProcessStats;
use super::snapshot::Snapshot;
use super::{RequestLabels, ResponseClass, TcpLabels};

/// Bucket bounds of `tcp_connection_duration_ms`: decades, as Linkerd uses
/// for connection lifetimes (from a millisecond to about eleven days).
const CONNECTION_DURATION_BOUNDS_MS: &[u64] = &[
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
];

/// Bucket bounds of `protocol_detect_duration_seconds`, in microseconds
/// (the unit recorded): from 100 us to the 10 s default timeout and beyond.
const DETECT_DURATION_BOUNDS_US: &[u64] = &[
    100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000, 10_000_000,
    30_000_000,
];

/// Linkerd's bucket bounds of `response_latency_ms`.
const RESPONSE_LATENCY_BOUNDS_MS: &[u64] = &[
    1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1_000, 2_000, 3_000, 4_000, 5_000,
    10_000, 20_000, 30_000, 40_000, 50_000,
];

/// Writes the whole `/metrics` page.
pub fn encode(snapshot: &Snapshot, process: &ProcessStats, out: &mut String) {
    let tcp = &snapshot.tcp;
    family(out, "tcp_open_total", "counter", "Connections opened.");
    for (labels, m) in tcp {
        sample(out, "tcp_open_total", &tcp_labels(labels), m.open_total);
    }
    family(
        out,
        "tcp_close_total",
        "counter",
        "Connections closed, by outcome.",
    );
    for (labels, m) in tcp {
        let base = tcp_labels(labels);
        let success = format!("{base},classification=\"success\"");
        let failure = format!("{base},classification=\"failure\"");
        sample(out, "tcp_close_total", &success, m.close_success_total);
        sample(out, "tcp_close_total", &failure, m.close_failure_total);
    }
    family(
        out,
        "tcp_open_connections",
        "gauge",
        "Connections open now.",
    );
    for (labels, m) in tcp {
        sample(
            out,
            "tcp_open_connections",
            &tcp_labels(labels),
            m.open_connections(),
        );
    }
    family(
        out,
        "tcp_read_bytes_total",
        "counter",
        "Bytes read from the peer.",
    );
    for (labels, m) in tcp {
        sample(
            out,
            "tcp_read_bytes_total",
            &tcp_labels(labels),
            m.read_bytes_total,
        );
    }
    family(
        out,
        "tcp_write_bytes_total",
        "counter",
        "Bytes written to the peer.",
    );
    for (labels, m) in tcp {
        sample(
            out,
            "tcp_write_bytes_total",
            &tcp_labels(labels),
            m.write_bytes_total,
        );
    }
    family(
        out,
        "tcp_connection_duration_ms",
        "histogram",
        "Lifetime of closed connections, in milliseconds.",
    );
    for (labels, m) in tcp {
        histogram(
            out,
            "tcp_connection_duration_ms",
            &tcp_labels(labels),
            &m.duration_ms,
            CONNECTION_DURATION_BOUNDS_MS,
            1.0,
        );
    }

    encode_http(snapshot, out);

    family(
        out,
        "protocol_detect_total",
        "counter",
        "Connections by the outcome of protocol detection.",
    );
    for (labels, count) in &snapshot.detect_total {
        let labels = format!(
            "direction=\"{}\",target_addr=\"{}\",result=\"{}\"",
            labels.direction.as_str(),
            escape(&labels.target_addr),
            labels.result
        );
        sample(out, "protocol_detect_total", &labels, *count);
    }
    family(
        out,
        "protocol_detect_duration_seconds",
        "histogram",
        "Time from accept to a detection verdict.",
    );
    for ((direction, target), h) in &snapshot.detect_duration_us {
        let labels = format!(
            "direction=\"{}\",target_addr=\"{}\"",
            direction.as_str(),
            escape(target)
        );
        let name = "protocol_detect_duration_seconds";
        histogram(out, name, &labels, h, DETECT_DURATION_BOUNDS_US, 1e6);
    }

    family(
        out,
        "ringside_upstream_connect_failures_total",
        "counter",
        "Upstream connects that failed, by endpoint and reason.",
    );
    for ((endpoint, reason), count) in &snapshot.connect_failures {
        let labels = format!("target_addr=\"{}\",reason=\"{reason}\"", escape(endpoint));
        sample(
            out,
            "ringside_upstream_connect_failures_total",
            &labels,
            *count,
        );
    }
    family(
        out,
        "ringside_accept_errors_total",
        "counter",
        "Failed accept(2) calls.",
    );
    sample(
        out,
        "ringside_accept_errors_total",
        "",
        snapshot.accept_errors_total,
    );
    family(
        out,
        "ringside_detecting_connections",
        "gauge",
        "Connections waiting for a protocol verdict (counted in tcp_open_connections once it is in).",
    );
    sample(
        out,
        "ringside_detecting_connections",
        "",
        snapshot.detecting_connections,
    );
    family(
        out,
        "ringside_pipes",
        "gauge",
        "Splice pipes, lent out or pooled.",
    );
    sample(
        out,
        "ringside_pipes",
        "state=\"in_use\"",
        snapshot.pipes_in_use,
    );
    sample(out, "ringside_pipes", "state=\"idle\"", snapshot.pipes_idle);
    family(
        out,
        "ringside_shards",
        "gauge",
        "Proxy shards that answered this scrape.",
    );
    sample(out, "ringside_shards", "", snapshot.shards.len() as u64);
    family(out, "ringside_build_info", "gauge", "Build of this binary.");
    let build = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    sample(out, "ringside_build_info", &build, 1);

    process.encode(out);
}

fn encode_http(snapshot: &Snapshot, out: &mut String) {
    family(out, "request_total", "counter", "HTTP requests received.");
    for (labels, count) in &snapshot.requests {
        sample(out, "request_total", &request_labels(labels), count);
    }
    family(
        out,
        "response_total",
        "counter",
        "HTTP responses sent, by status.",
    );
    for ((labels, class), stats) in &snapshot.responses {
        sample(
            out,
            "response_total",
            &response_labels(labels, class),
            stats.total,
        );
    }
    family(
        out,
        "response_latency_ms",
        "histogram",
        "From a request's head received to its response sent, in milliseconds.",
    );
    for ((labels, class), stats) in &snapshot.responses {
        let labels = response_labels(labels, class);
        let bounds = RESPONSE_LATENCY_BOUNDS_MS;
        histogram(
            out,
            "response_latency_ms",
            &labels,
            &stats.latency_ms,
            bounds,
            1.0,
        );
    }
}

fn response_labels(labels: &RequestLabels, class: &ResponseClass) -> String {
    let classification = if class.is_failure() {
        "failure"
    } else {
        "success"
    };
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

fn request_labels(labels: &RequestLabels) -> String {
    format!(
        "direction=\"{}\",authority=\"{}\",target_addr=\"{}\"",
        labels.direction.as_str(),
        escape(&labels.authority),
        escape(&labels.target_addr)
    )
}

pub(super) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub(super) fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// Cumulative buckets from an HdrHistogram of whole units; `bounds` are in
/// the recorded unit and `per_exposed_unit` converts them (and the sum) to
/// the exposed one: 1 for ms exposed as ms, 1e6 for us exposed as seconds.
fn histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    h: &Histogram<u64>,
    bounds: &[u64],
    per_exposed_unit: f64,
) {
    // One pass over the recorded values fills every bucket; asking the
    // histogram per bound would scan it once per bound.
    let mut counts = vec![0u64; bounds.len()];
    let mut sum = 0u64;
    for value in h.iter_recorded() {
        let (v, n) = (value.value_iterated_to(), value.count_at_value());
        sum = sum.saturating_add(v.saturating_mul(n));
        if let Some(first) = bounds
            .iter()
            .position(|bound| h.equivalent(v, *bound) || v <= *bound)
        {
            counts[first] += n;
        }
    }
    let bucket = format!("{name}_bucket");
    let mut cumulative = 0;
    for (bound, count) in bounds.iter().zip(counts) {
        cumulative += count;
        let le = *bound as f64 / per_exposed_unit;
        sample(out, &bucket, &format!("{labels},le=\"{le}\""), cumulative);
    }
    sample(out, &bucket, &format!("{labels},le=\"+Inf\""), h.len());
    sample(
        out,
        &format!("{name}_sum"),
        labels,
        sum as f64 / per_exposed_unit,
    );
    sample(out, &format!("{name}_count"), labels, h.len());
}

fn tcp_labels(labels: &TcpLabels) -> String {
    let mut text = format!(
        "direction=\"{}\",peer=\"{}\",target_addr=\"{}\"",
        labels.direction.as_str(),
        labels.peer.as_str(),
        escape(&labels.target_addr)
    );
    if let Some(sni) = &labels.tls_sni {
        text.push_str(&format!(",tls=\"opaque\",sni=\"{}\"", escape(sni)));
    }
    text
}

/// Label values escape backslash, quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Direction;
    use crate::metrics::{DetectLabels, Peer, ShardMetrics};
    use std::time::Duration;

    #[test]
    fn encodes_counters_and_cumulative_buckets() {
        let metrics = ShardMetrics::new(0);
        let tcp = metrics.tcp(TcpLabels {
            direction: Direction::Inbound,
            peer: Peer::Src,
            target_addr: "127.0.0.1:4143".into(),
            tls_sni: None,
        });
        tcp.opened();
        tcp.opened();
        tcp.read(42);
        tcp.closed(true, Duration::from_millis(7));
        tcp.closed(false, Duration::from_millis(250));
        let mut out = String::new();
        encode(&metrics.snapshot(0, 0), &ProcessStats::default(), &mut out);

        let labels = r#"direction="inbound",peer="src",target_addr="127.0.0.1:4143""#;
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
            direction: Direction::Outbound,
            peer: Peer::Dst,
            target_addr: "10.0.0.1:443".into(),
            tls_sni: Some("a\"b".into()),
        });
        tcp.opened();
        tcp.wrote(5);
        tcp.closed(true, Duration::from_millis(3));
        metrics.accept_failed();
        let _detecting = metrics.detecting();
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        metrics.connect_failed("10.0.0.2:80".parse().unwrap(), &timed_out);
        let detected = DetectLabels {
            direction: Direction::Inbound,
            target_addr: "127.0.0.1:4143".into(),
            result: "http/1",
        };
        metrics.detected(detected, Some(Duration::from_micros(700)));
        let request = metrics.request(RequestLabels {
            direction: Direction::Inbound,
            authority: "example.com".into(),
            target_addr: "127.0.0.1:8080".into(),
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
                "ringside_upstream_connect_failures_total counter",
                "ringside_accept_errors_total counter",
                "ringside_detecting_connections gauge",
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
        let http = r#"direction="inbound",authority="example.com",target_addr="127.0.0.1:8080""#;
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
            "ringside_accept_errors_total 1".to_string(),
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

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
