//! The inbound authorization decisions as Prometheus text, under
//! Linkerd's families (`inbound_{tcp,http}_authz_*`).

use super::authz::Decision;
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
const INBOUND_HTTP_ROUTE_NOT_FOUND_TOTAL: Family = Family::counter(
    "inbound_http_route_not_found_total",
    "Inbound HTTP requests no route of their server matched (404).",
);

/// The decisions, under Linkerd's families: with the policy
/// controller's `srv_*`, `route_*`, `authz_*` labels when it decided,
/// else with the `authz` policy name.
pub(super) fn encode(snapshot: &Snapshot, out: &mut String) {
    for (family, http, decision) in [
        (INBOUND_TCP_AUTHZ_ALLOW_TOTAL, false, Decision::Allowed),
        (INBOUND_TCP_AUTHZ_DENY_TOTAL, false, Decision::Denied),
        (
            INBOUND_TCP_AUTHZ_TERMINATE_TOTAL,
            false,
            Decision::Terminated,
        ),
        (INBOUND_HTTP_AUTHZ_ALLOW_TOTAL, true, Decision::Allowed),
        (INBOUND_HTTP_AUTHZ_DENY_TOTAL, true, Decision::Denied),
        (
            INBOUND_HTTP_ROUTE_NOT_FOUND_TOTAL,
            true,
            Decision::RouteNotFound,
        ),
    ] {
        let series = snapshot
            .authz
            .iter()
            .filter(|(l, _)| l.decision == decision && l.http == http);
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
