//! The golden signals per route, from the difference of two scrapes, as
//! `linkerd viz stat` shows them per workload (`viz/cmd/stat.go`).
//!
//! A row is a route and a direction. HTTP series are keyed by their
//! `authority`; the client-side TCP series (`peer="src"`) by their
//! `target_addr`, the route's listen address. A route's TCP series join
//! its HTTP row when that route carries exactly one authority, so a plain
//! HTTP route is one row with every column; a route carrying several keeps
//! its connections and bytes in a row of its own, named by its address
//! and `(tcp)`, rather than count them twice. Upstream-side series (`peer="dst"`) are
//! left out: their `target_addr` is an endpoint, which the page does not
//! tie to a route.
//!
//! Counters are differenced by `Increase`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use super::parse::Sample;
use super::quantile::Buckets;
use super::scrape::{Increase, Scrape};

/// One route and direction over the window. Field names are those of
/// `linkerd viz stat -o json` where it has the column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// `inbound` or `outbound`.
    pub direction: String,
    /// The authority of HTTP traffic, else the route's `target_addr`.
    pub name: String,
    /// The route's listen addresses this row's traffic came in on.
    pub target_addrs: Vec<String>,
    /// The `tls` labels of the row's traffic so far (`true`,
    /// `no_identity`, `opaque`), joined by `,`; `-` when the proxy labels
    /// none (it has no identity) or there was no traffic.
    pub tls: String,
    /// The peers' mesh identities (`client_id` inbound, `server_id`
    /// outbound) seen on this row's series.
    pub identities: Vec<String>,
    /// HTTP requests received in the window.
    pub requests: u64,
    /// HTTP responses sent in the window, and how many were successes.
    pub responses: u64,
    pub successes: u64,
    /// Successes over responses, 0 to 1; `None` without responses.
    pub success: Option<f64>,
    /// Responses per second; `None` on a route without HTTP.
    pub rps: Option<f64>,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    /// Client connections open at the second scrape; `None` when the
    /// row's connections are counted in a row of their own.
    pub tcp_open_connections: Option<u64>,
    /// Client connections opened in the window.
    pub tcp_opened: u64,
    /// Bytes read from and written to clients in the window, and per
    /// second.
    pub tcp_read_bytes: u64,
    pub tcp_write_bytes: u64,
    pub tcp_read_bytes_rate: Option<f64>,
    pub tcp_write_bytes_rate: Option<f64>,
}

/// The rows of one window, by direction then name.
#[derive(Debug, Clone, PartialEq)]
pub struct StatTable {
    /// The time between the two scrapes that rates are divided by.
    pub window: Duration,
    pub rows: Vec<Row>,
}

impl StatTable {
    /// The rows from `before` to `after`, rates over `window`.
    pub fn between(before: &Scrape, after: &Scrape, window: Duration) -> StatTable {
        let before = Increase::since(before);
        let mut http: BTreeMap<(String, String), Tally> = BTreeMap::new();
        let mut tcp: BTreeMap<(String, String), Tally> = BTreeMap::new();
        for sample in &after.samples {
            let direction = sample.label("direction").unwrap_or("").to_string();
            let target = sample.label("target_addr").unwrap_or("");
            let delta = before.of(sample);
            let tally = match sample.name.as_str() {
                "request_total" | "response_total" | "response_latency_ms_bucket" => {
                    let authority = sample.label("authority").filter(|a| !a.is_empty());
                    let name = authority.unwrap_or(target).to_string();
                    let tally = http.entry((direction, name)).or_default();
                    tally.http = true;
                    tally
                }
                "tcp_open_total"
                | "tcp_open_connections"
                | "tcp_read_bytes_total"
                | "tcp_write_bytes_total"
                    if sample.label("peer") == Some("src") =>
                {
                    let tally = tcp.entry((direction, target.to_string())).or_default();
                    tally.tcp = true;
                    tally
                }
                _ => continue,
            };
            tally.count(sample, delta);
        }
        // A route's connections join its one HTTP row.
        for ((direction, target), connections) in tcp {
            let owners: Vec<&(String, String)> = http
                .iter()
                .filter(|((d, _), t)| t.http && *d == direction && t.target_addrs.contains(&target))
                .map(|(key, _)| key)
                .collect();
            let key = match owners.as_slice() {
                [owner] => (*owner).clone(),
                // `(tcp)`: an authority may be the address itself (a
                // client that dialed by IP).
                [_, ..] => (direction, format!("{target} (tcp)")),
                [] => (direction, target),
            };
            http.entry(key).or_default().merge(connections);
        }
        let rows = http
            .into_iter()
            .map(|((direction, name), tally)| tally.row(direction, name, window))
            .collect();
        StatTable { window, rows }
    }
}

/// What a row adds up while the page is read.
#[derive(Debug, Default)]
struct Tally {
    http: bool,
    tcp: bool,
    target_addrs: BTreeSet<String>,
    tls: BTreeSet<String>,
    identities: BTreeSet<String>,
    requests: f64,
    responses: f64,
    successes: f64,
    latency: Buckets,
    open_connections: f64,
    opened: f64,
    read_bytes: f64,
    write_bytes: f64,
}

impl Tally {
    fn count(&mut self, sample: &Sample, delta: f64) {
        if let Some(target) = sample.label("target_addr") {
            self.target_addrs.insert(target.to_string());
        }
        // A series that never counted says nothing of the traffic: the
        // proxy makes a route's unmeshed series before any client comes.
        if sample.value > 0.0 {
            if let Some(tls) = sample.label("tls") {
                self.tls.insert(tls.to_string());
            }
            for key in ["client_id", "server_id"] {
                if let Some(identity) = sample.label(key) {
                    self.identities.insert(identity.to_string());
                }
            }
        }
        match sample.name.as_str() {
            "request_total" => self.requests += delta,
            "response_total" => {
                self.responses += delta;
                if sample.label("classification") == Some("success") {
                    self.successes += delta;
                }
            }
            "response_latency_ms_bucket" => {
                let le = sample.label("le").and_then(|le| match le {
                    "+Inf" => Some(f64::INFINITY),
                    le => le.parse().ok(),
                });
                if let Some(le) = le {
                    self.latency.add(le, delta);
                }
            }
            "tcp_open_total" => self.opened += delta,
            // A gauge: what is open at the second scrape.
            "tcp_open_connections" => self.open_connections += sample.value,
            "tcp_read_bytes_total" => self.read_bytes += delta,
            "tcp_write_bytes_total" => self.write_bytes += delta,
            _ => {}
        }
    }

    fn merge(&mut self, tcp: Tally) {
        self.tcp = true;
        self.target_addrs.extend(tcp.target_addrs);
        self.tls.extend(tcp.tls);
        self.identities.extend(tcp.identities);
        self.open_connections += tcp.open_connections;
        self.opened += tcp.opened;
        self.read_bytes += tcp.read_bytes;
        self.write_bytes += tcp.write_bytes;
    }

    fn row(self, direction: String, name: String, window: Duration) -> Row {
        let seconds = window.as_secs_f64().max(f64::MIN_POSITIVE);
        let http = self.http.then_some(());
        let tcp = self.tcp.then_some(());
        let tls = match self.tls.is_empty() {
            true => "-".to_string(),
            false => Vec::from_iter(self.tls).join(","),
        };
        Row {
            direction,
            name,
            target_addrs: self.target_addrs.into_iter().collect(),
            tls,
            identities: self.identities.into_iter().collect(),
            requests: self.requests as u64,
            responses: self.responses as u64,
            successes: self.successes as u64,
            success: (self.responses > 0.0).then(|| self.successes / self.responses),
            rps: http.map(|()| self.responses / seconds),
            latency_ms_p50: self.latency.quantile(0.5),
            latency_ms_p95: self.latency.quantile(0.95),
            latency_ms_p99: self.latency.quantile(0.99),
            tcp_open_connections: tcp.map(|()| self.open_connections as u64),
            tcp_opened: self.opened as u64,
            tcp_read_bytes: self.read_bytes as u64,
            tcp_write_bytes: self.write_bytes as u64,
            tcp_read_bytes_rate: tcp.map(|()| self.read_bytes / seconds),
            tcp_write_bytes_rate: tcp.map(|()| self.write_bytes / seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = r#"direction="outbound",peer="src",target_addr="127.0.0.1:4140""#;
    const WEB: &str = r#"direction="outbound",authority="web",target_addr="127.0.0.1:4140""#;

    /// A page of one route: `web` answered `ok` 200s and `failed` 500s,
    /// `read` bytes came from clients, `open` connections are open.
    fn page(ok: u64, failed: u64, read: u64, open: u64) -> Scrape {
        let ok_labels = format!(r#"{WEB},status_code="200",classification="success""#);
        let failed_labels = format!(r#"{WEB},status_code="500",classification="failure""#);
        let text = format!(
            "tcp_open_total{{{ROUTE}}} {open}\n\
             tcp_open_connections{{{ROUTE}}} {open}\n\
             tcp_read_bytes_total{{{ROUTE}}} {read}\n\
             tcp_write_bytes_total{{{ROUTE}}} 0\n\
             tcp_read_bytes_total{{direction=\"outbound\",peer=\"dst\",target_addr=\"10.0.0.1:80\"}} 999\n\
             request_total{{{WEB}}} {}\n\
             response_total{{{ok_labels}}} {ok}\n\
             response_total{{{failed_labels}}} {failed}\n\
             response_latency_ms_bucket{{{ok_labels},le=\"1\"}} 0\n\
             response_latency_ms_bucket{{{ok_labels},le=\"10\"}} {ok}\n\
             response_latency_ms_bucket{{{ok_labels},le=\"+Inf\"}} {ok}\n\
             response_latency_ms_bucket{{{failed_labels},le=\"1\"}} 0\n\
             response_latency_ms_bucket{{{failed_labels},le=\"10\"}} 0\n\
             response_latency_ms_bucket{{{failed_labels},le=\"+Inf\"}} {failed}\n",
            ok + failed
        );
        Scrape::parse(&text).unwrap()
    }

    #[test]
    fn one_route_one_row_from_the_growth_between_scrapes() {
        let table = StatTable::between(
            &page(10, 0, 100, 1),
            &page(40, 10, 600, 2),
            Duration::from_secs(2),
        );
        assert_eq!(table.rows.len(), 1, "{table:?}");
        let row = &table.rows[0];
        assert_eq!(
            (row.direction.as_str(), row.name.as_str()),
            ("outbound", "web")
        );
        assert_eq!((row.requests, row.responses, row.successes), (40, 40, 30));
        assert_eq!(row.success, Some(0.75));
        assert_eq!(row.rps, Some(20.0));
        // 30 of 40 in (1, 10] ms, 10 past 10 ms: the median is rank 20 of
        // the 30, and p95 falls past the last finite bound.
        assert_eq!(row.latency_ms_p50, Some(1.0 + 9.0 * 20.0 / 30.0));
        assert_eq!(row.latency_ms_p95, Some(10.0));
        assert_eq!(row.tcp_open_connections, Some(2));
        assert_eq!(
            (row.tcp_read_bytes, row.tcp_read_bytes_rate),
            (500, Some(250.0))
        );
        assert_eq!(row.tls, "-");
    }

    #[test]
    fn a_reset_counter_counts_from_zero_and_idle_rows_show_no_rates() {
        let table = StatTable::between(
            &page(50, 0, 0, 0),
            &page(5, 0, 0, 0),
            Duration::from_secs(1),
        );
        assert_eq!(table.rows[0].responses, 5);
        let idle = StatTable::between(&page(5, 0, 0, 0), &page(5, 0, 0, 0), Duration::from_secs(1));
        let row = &idle.rows[0];
        assert_eq!(
            (row.success, row.rps, row.latency_ms_p99),
            (None, Some(0.0), None)
        );
    }

    #[test]
    fn a_route_of_two_authorities_keeps_its_connections_apart() {
        let other = r#"direction="outbound",authority="api",target_addr="127.0.0.1:4140""#;
        let text = |n: u64| {
            let page = page(n, 0, n, 1);
            let mut samples = page.samples;
            let extra = format!("request_total{{{other}}} {n}");
            samples.push(Scrape::parse(&extra).unwrap().samples.remove(0));
            Scrape { samples }
        };
        let table = StatTable::between(&text(1), &text(3), Duration::from_secs(1));
        let names: Vec<&str> = table.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["127.0.0.1:4140 (tcp)", "api", "web"]);
        assert_eq!(table.rows[0].tcp_read_bytes, 2);
        assert_eq!(
            (table.rows[1].requests, table.rows[1].tcp_open_connections),
            (2, None)
        );
    }

    #[test]
    fn mesh_labels_show_as_tls_and_identity() {
        let labels = r#"direction="inbound",peer="src",target_addr="0.0.0.0:4143",tls="true",client_id="web.ns""#;
        let scrape = Scrape::parse(&format!("tcp_open_connections{{{labels}}} 1")).unwrap();
        let table = StatTable::between(&Scrape::default(), &scrape, Duration::from_secs(1));
        let row = &table.rows[0];
        assert_eq!(
            (row.tls.as_str(), row.identities.as_slice()),
            ("true", &["web.ns".to_string()][..])
        );
        assert_eq!(row.rps, None);
    }
}
