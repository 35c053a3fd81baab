//! An inbound HTTP request judged before it is proxied: by how the
//! connection was judged (`[inbound] authorize`), or, under Linkerd's
//! policy controller, request by request by its port's policy as it is
//! now (linkerd2-proxy `inbound/src/policy/http.rs`): the request's route
//! (none: 404), then the route's authorizations (none admits the client:
//! 403, or gRPC's `PERMISSION_DENIED`). Each decision is counted in
//! `inbound_http_authz_{allow,deny}_total` (a missing route in
//! `inbound_http_route_not_found_total`) under the labels the policy
//! made for it; the counters are kept by the connection, so a request
//! counts without building a label.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

use super::ProxyError;
use crate::discovery::inbound::{permit, ClientTls, RequestParts};
use crate::metrics::{AuthzLabels, Decision, HttpAuthz, ShardMetrics};
use crate::shard::PortPolicy;

/// Counters a connection keeps, by label text and decision.
const KEPT_COUNTERS: usize = 8;

/// A kept counter: its labels, the decision it counts, and the counter.
type Kept = (Arc<str>, Decision, Rc<Cell<u64>>);

/// How an inbound connection's requests are authorized.
#[derive(Clone)]
pub enum RequestAuthz {
    /// As the connection was judged.
    Judged(HttpAuthz),
    /// By the port's policy, request by request.
    Policy(Rc<RequestPolicy>),
}

/// A connection's client as its port's policy sees it.
pub struct RequestPolicy {
    pub port: Rc<PortPolicy>,
    pub client_ip: IpAddr,
    /// `Some` when ringside terminated the client's TLS: the identity it
    /// proved, if any.
    pub tls: Option<Option<Rc<str>>>,
    pub target_addr: String,
    counters: RefCell<Vec<Kept>>,
}

impl RequestPolicy {
    pub fn new(
        port: Rc<PortPolicy>,
        client_ip: IpAddr,
        tls: Option<Option<Rc<str>>>,
        target_addr: String,
    ) -> RequestPolicy {
        RequestPolicy {
            port,
            client_ip,
            tls,
            target_addr,
            counters: RefCell::default(),
        }
    }

    fn client_tls(&self) -> ClientTls<'_> {
        match &self.tls {
            None => ClientTls::None,
            Some(id) => ClientTls::Established(id.as_deref()),
        }
    }

    fn count(&self, metrics: &ShardMetrics, labels: &Arc<str>, decision: Decision) {
        let mut kept = self.counters.borrow_mut();
        let found = kept
            .iter()
            .find(|(l, d, _)| *d == decision && Arc::ptr_eq(l, labels));
        let counter = match found {
            Some((_, _, counter)) => counter.clone(),
            None => {
                let client_id = match &self.tls {
                    Some(Some(id)) => id.to_string(),
                    _ => String::new(),
                };
                let counter = metrics.authz_counter(AuthzLabels {
                    http: true,
                    decision,
                    authz: "",
                    policy: Some(labels.clone()),
                    client_id,
                    target_addr: self.target_addr.clone(),
                });
                if kept.len() >= KEPT_COUNTERS {
                    kept.clear();
                }
                kept.push((labels.clone(), decision, counter.clone()));
                counter
            }
        };
        counter.set(counter.get().wrapping_add(1));
    }
}

impl RequestAuthz {
    /// Judges one request; the refusal to answer it with, if refused.
    pub fn judge(&self, metrics: &ShardMetrics, request: &RequestParts) -> Result<(), ProxyError> {
        let policy = match self {
            RequestAuthz::Judged(judged) => {
                judged.request();
                return match judged.authz.allowed {
                    true => Ok(()),
                    false => Err(ProxyError::Forbidden(judged.authz.policy)),
                };
            }
            RequestAuthz::Policy(policy) => policy,
        };
        let grpc =
            (request.header)("content-type").is_some_and(|t| t.starts_with(b"application/grpc"));
        policy.port.with(|server| {
            let Some(route) = server.route(request) else {
                tracing::info!(server = %server.name, path = request.path, "no route for the request");
                policy.count(metrics, &server.labels, Decision::RouteNotFound);
                return Err(match grpc {
                    true => ProxyError::GrpcNoRoute,
                    false => ProxyError::NoRoute,
                });
            };
            let tls = policy.client_tls();
            match permit(&route.authorizations, policy.client_ip, tls) {
                Some(index) => {
                    if route.authorizations[index].audit {
                        tracing::info!(server = %server.name, client = %policy.client_ip, "request allowed (audit)");
                    }
                    policy.count(metrics, &route.allow_labels[index], Decision::Allowed);
                    Ok(())
                }
                None => {
                    tracing::info!(server = %server.name, client = %policy.client_ip, ?tls, "request denied");
                    policy.count(metrics, &route.labels, Decision::Denied);
                    Err(match grpc {
                        true => ProxyError::GrpcForbidden,
                        false => ProxyError::Forbidden("server"),
                    })
                }
            }
        })
    }
}

/// The path of a request target: origin-form's, or absolute-form's after
/// its authority; without the query.
pub fn target_path(target: &str) -> &str {
    let path = match target.find("://") {
        Some(scheme_end) => {
            let rest = &target[scheme_end + 3..];
            rest.find('/').map_or("/", |at| &rest[at..])
        }
        None => target,
    };
    path.split(['?', '#']).next().unwrap_or(path)
}

/// The query of a request target, without its `?` (empty when none).
pub fn target_query(target: &str) -> &str {
    let query = target.split_once('?').map_or("", |(_, query)| query);
    query.split('#').next().unwrap_or(query)
}

#[cfg(test)]
mod tests {
    use super::{target_path, target_query};

    #[test]
    fn a_targets_path_is_without_authority_and_query() {
        assert_eq!(target_path("/ready?verbose=1"), "/ready");
        assert_eq!(target_path("/a/b#frag"), "/a/b");
        assert_eq!(target_path("http://web:8080/api/x?q"), "/api/x");
        assert_eq!(target_path("http://web:8080"), "/");
        assert_eq!(target_path("*"), "*");
    }

    #[test]
    fn a_targets_query_is_without_its_mark_and_fragment() {
        assert_eq!(target_query("/ready?verbose=1"), "verbose=1");
        assert_eq!(target_query("http://web:8080/x?a=1&b=2#frag"), "a=1&b=2");
        assert_eq!(target_query("/ready"), "");
    }
}
