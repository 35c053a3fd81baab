//! Refusals and errors that grew between two scrapes, for `ringside top`'s
//! panel: what `linkerd viz top` would let an operator spot by eye, read
//! from the counters ringside publishes for them (README "Metrics"):
//! authorization denials, mesh and connection refusals, failed upstream
//! connects, timeouts, HTTP/2 connections calmed, failed connections, and
//! 5xx responses by status. A 5xx's cause is told by the counters beside
//! it in the same interval: ringside answers 502 when an upstream
//! connect or response fails (`ringside_upstream_connect_failures_total`),
//! 503 when a route has no endpoint, 504 when a response timed out
//! (`ringside_timeouts_total{timeout="response"}`); an origin's own 5xx
//! comes with none of them.

use std::collections::BTreeMap;

use super::parse::Sample;
use super::scrape::{Increase, Scrape};

/// One kind of refusal or error that grew, and by how much.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// What happened, in a few words.
    pub kind: &'static str,
    /// Its labels that tell where and why, `key=value` joined by spaces.
    pub detail: String,
    pub count: u64,
}

/// A family worth a line when it grows.
struct Watched {
    family: &'static str,
    kind: &'static str,
    /// The labels shown, in order.
    labels: &'static [&'static str],
    /// Which of the family's series count.
    counts: fn(&Sample) -> bool,
}

fn always(_: &Sample) -> bool {
    true
}

fn server_error(sample: &Sample) -> bool {
    sample
        .label("status_code")
        .is_some_and(|s| s.starts_with('5'))
}

fn failed(sample: &Sample) -> bool {
    sample.label("classification") == Some("failure")
}

fn refused(sample: &Sample) -> bool {
    sample.label("result") == Some("refused")
}

const WATCHED: &[Watched] = &[
    Watched {
        family: "inbound_http_authz_deny_total",
        kind: "authz denied (403)",
        labels: &["target_addr", "authz", "client_id"],
        counts: always,
    },
    Watched {
        family: "inbound_tcp_authz_deny_total",
        kind: "authz denied (closed)",
        labels: &["target_addr", "authz", "client_id"],
        counts: always,
    },
    Watched {
        family: "ringside_mesh_refused_total",
        kind: "mesh refused",
        labels: &["reason"],
        counts: always,
    },
    Watched {
        family: "ringside_connections_refused_total",
        kind: "connection refused",
        labels: &["reason"],
        counts: always,
    },
    Watched {
        family: "response_total",
        kind: "5xx",
        labels: &["direction", "authority", "status_code"],
        counts: server_error,
    },
    Watched {
        family: "ringside_upstream_connect_failures_total",
        kind: "connect failed",
        labels: &["target_addr", "reason"],
        counts: always,
    },
    Watched {
        family: "ringside_timeouts_total",
        kind: "timeout",
        labels: &["direction", "target_addr", "timeout"],
        counts: always,
    },
    Watched {
        family: "ringside_http2_enhance_your_calm_total",
        kind: "h2 calmed",
        labels: &["cause"],
        counts: always,
    },
    Watched {
        family: "tcp_close_total",
        kind: "connection failed",
        labels: &["direction", "peer", "target_addr"],
        counts: failed,
    },
    Watched {
        family: "ringside_accept_errors_total",
        kind: "accept failed",
        labels: &["reason"],
        counts: always,
    },
    Watched {
        family: "ringside_config_reloads_total",
        kind: "reload refused",
        labels: &[],
        counts: refused,
    },
    Watched {
        family: "ringside_identity_reload_failures_total",
        kind: "identity reload failed",
        labels: &[],
        counts: always,
    },
];

/// What grew from `before` to `after`, in `WATCHED`'s order (refusals
/// first), then by detail.
pub fn changes(before: &Scrape, after: &Scrape) -> Vec<Change> {
    let before = Increase::since(before);
    let mut grown: BTreeMap<(usize, String), u64> = BTreeMap::new();
    for (rank, watched) in WATCHED.iter().enumerate() {
        for sample in after.named(watched.family) {
            if !(watched.counts)(sample) {
                continue;
            }
            let delta = before.of(sample);
            if delta < 1.0 {
                continue;
            }
            let detail: Vec<String> = watched
                .labels
                .iter()
                .filter_map(|key| Some(format!("{key}={}", sample.label(key)?)))
                .collect();
            *grown.entry((rank, detail.join(" "))).or_default() += delta as u64;
        }
    }
    grown
        .into_iter()
        .map(|((rank, detail), count)| Change {
            kind: WATCHED[rank].kind,
            detail,
            count,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_grew_with_its_labels_and_nothing_that_did_not() {
        let page = |denied: u64, errors: u64, ok: u64| {
            Scrape::parse(&format!(
                "inbound_http_authz_deny_total{{direction=\"inbound\",target_addr=\"0.0.0.0:4143\",authz=\"deny\",tls=\"true\",client_id=\"web.ns\"}} {denied}\n\
                 response_total{{direction=\"inbound\",authority=\"a\",target_addr=\"t\",status_code=\"502\",classification=\"failure\"}} {errors}\n\
                 response_total{{direction=\"inbound\",authority=\"a\",target_addr=\"t\",status_code=\"200\",classification=\"success\"}} {ok}\n\
                 ringside_timeouts_total{{direction=\"inbound\",target_addr=\"t\",timeout=\"response\"}} 4\n"
            ))
            .unwrap()
        };
        let grown = changes(&page(1, 5, 0), &page(3, 7, 100));
        assert_eq!(
            grown,
            [
                Change {
                    kind: "authz denied (403)",
                    detail: "target_addr=0.0.0.0:4143 authz=deny client_id=web.ns".into(),
                    count: 2
                },
                Change {
                    kind: "5xx",
                    detail: "direction=inbound authority=a status_code=502".into(),
                    count: 2
                },
            ]
        );
        assert!(changes(&page(3, 7, 100), &page(3, 7, 100)).is_empty());
    }
}
