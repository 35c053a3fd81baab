//! The inbound authorization decisions as Prometheus text, under
//! Linkerd's families (`inbound_{tcp,http}_authz_*`).

use super::snapshot::Snapshot;
use super::text::{escape, Family};

const INBOUND_TCP_AUTHZ_ALLOW_TOTAL: Family = Family::counter(
    "inbound_tcp_authz_allow_total",
    "Inbound connections an authorization policy allowed.",
);
const INBOUND_TCP_AUTHZ_DENY_TOTAL: Family = Family::counter(
    "inbound_tcp_authz_deny_total",
    "Inbound connections an authorization policy refused (closed).",
);
const INBOUND_TCP_AUTHZ_TERMINATE_TOTAL: Family = Family::counter(
    "inbound_tcp_authz_terminate_total",
    "Open inbound connections closed because a new policy no longer authorizes them.",
);
const INBOUND_HTTP_AUTHZ_ALLOW_TOTAL: Family = Family::counter(
    "inbound_http_authz_allow_total",
    "Inbound HTTP requests an authorization policy allowed.",
);
const INBOUND_HTTP_AUTHZ_DENY_TOTAL: Family = Family::counter(
    "inbound_http_authz_deny_total",
    "Inbound HTTP requests an authorization policy refused (403).",
);

/// The decisions, under Linkerd's families: with the policy
/// controller's `srv_*`, `route_*`, `authz_*` labels when it decided,
/// else with the `authz` policy name.
pub(super) fn encode(snapshot: &Snapshot, out: &mut String) {
    for (family, http, allowed, terminated) in [
        (INBOUND_TCP_AUTHZ_ALLOW_TOTAL, false, true, false),
        (INBOUND_TCP_AUTHZ_DENY_TOTAL, false, false, false),
        (INBOUND_TCP_AUTHZ_TERMINATE_TOTAL, false, false, true),
        (INBOUND_HTTP_AUTHZ_ALLOW_TOTAL, true, true, false),
        (INBOUND_HTTP_AUTHZ_DENY_TOTAL, true, false, false),
    ] {
        let series = snapshot
            .authz
            .iter()
            .filter(|(l, _)| l.allowed == allowed && l.http == http && l.terminated == terminated);
        family.write(
            out,
            series.map(|(labels, count)| {
                let tls = match labels.client_id.is_empty() {
                    true => "tls=\"no_identity\"".to_string(),
                    false => format!("tls=\"true\",client_id=\"{}\"", escape(&labels.client_id)),
                };
                let target = escape(&labels.target_addr);
                let labels = match &labels.policy {
                    Some(policy) => {
                        format!("direction=\"inbound\",target_addr=\"{target}\",{policy},{tls}")
                    }
                    None => format!(
                        "direction=\"inbound\",target_addr=\"{target}\",authz=\"{}\",{tls}",
                        labels.authz,
                    ),
                };
                (labels, count)
            }),
        );
    }
}
