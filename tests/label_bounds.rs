//! Label values a remote party chooses stay bounded per shard (issue 19,
//! item 3): thousands of TLS clients naming distinct servers leave at
//! most `MAX_SNIS` SNIs of their own on `/metrics`, the rest counted
//! under `_other`, and the page stays small.

mod support;

use std::collections::BTreeSet;

use ringside::metrics::{MAX_SNIS, OVERFLOW};
use support::*;

/// Distinct SNIs sent: several times the cap, few enough to stay fast.
const HELLOS: usize = 4 * MAX_SNIS;

/// The bound the page stays under with the SNI cap reached on one route
/// and one shard, as the README states it: 688,192 bytes measured (each
/// SNI's two series with their histograms take about 5.3 KB).
const MAX_METRICS_BYTES: usize = 800_000;

/// The distinct values of label `key` on any sample of the page.
fn label_values(metrics: &Metrics, key: &str) -> BTreeSet<String> {
    let prefix = format!("{key}=\"");
    metrics
        .0
        .lines()
        .filter(|line| !line.starts_with('#'))
        .flat_map(|line| line.split([',', '{', '}']))
        .filter_map(|pair| pair.strip_prefix(&prefix)?.strip_suffix('"'))
        .map(str::to_string)
        .collect()
}

#[test]
fn distinct_snis_past_the_cap_share_one_label_and_the_page_stays_small() {
    let origin = Origin::echo();
    let proxy = Ringside::route_to([origin.addr]).shards(1).start();
    tls_hellos_through(proxy.route(), HELLOS);
    let metrics = proxy.wait_idle();
    let tls = [("peer", "src"), ("tls", "opaque")];
    assert_eq!(metrics.sum("tcp_open_total", &tls), HELLOS as f64);

    let snis = label_values(&metrics, "sni");
    assert_eq!(snis.len(), MAX_SNIS + 1, "{snis:?}");
    let overflowed = [("peer", "src"), ("sni", OVERFLOW)];
    assert_eq!(
        metrics.sum("tcp_open_total", &overflowed),
        (HELLOS - MAX_SNIS) as f64
    );
    assert!(
        metrics.0.len() < MAX_METRICS_BYTES,
        "/metrics is {} bytes",
        metrics.0.len()
    );
}
