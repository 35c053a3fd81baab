//! `RouteMetrics`: the labels and counters every connection of one route
//! shares on a shard, looked up once when the shard starts rather than per
//! connection or request. The opaque and HTTP paths both count through it.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::authz::{Authz, AuthzLabels, Decision, HttpAuthz};
use super::labels::{DetectLabels, Expiry, ExpiryLabels, Peer, PeerId, RequestLabels, TcpLabels};
use super::recorder::{ShardMetrics, TcpCounters};
use crate::config::{Direction, Endpoint};

/// Linkerd's `no_tls_reason` of an inbound client that is not a mesh peer.
const NO_TLS_FROM_REMOTE: &str = "no_tls_from_remote";
/// Linkerd's `no_tls_reason` of an outbound endpoint that is not one (its
/// service discovery is our `[[mesh.peer]]` list).
const NOT_A_MESH_PEER: &str = "not_provided_by_service_discovery";

/// The `target_addr` labels of a route's listen address and endpoints.
struct Targets {
    listen: String,
    upstreams: Vec<String>,
    /// Each upstream's `dst_*` labels.
    dst_labels: Vec<Arc<[(String, String)]>>,
}

/// Each endpoint's labels, as the `dst_*` labels of its series.
fn dst_labels(endpoints: &[Endpoint]) -> Vec<Arc<[(String, String)]>> {
    endpoints.iter().map(|e| Arc::from(&e.labels[..])).collect()
}

pub struct RouteMetrics {
    pub direction: Direction,
    /// The route's listen address as the `target_addr` label, formatted
    /// once.
    pub target_addr: String,
    /// Client-side counters (`peer="src"`) of plain connections.
    pub src: Rc<TcpCounters>,
    /// Upstream-side counters (`peer="dst"`), by endpoint index.
    pub dst: Vec<Rc<TcpCounters>>,
    /// The endpoints' `target_addr` labels, for the per-connection labels
    /// of TLS passthrough.
    upstream_targets: Vec<String>,
    /// The endpoints' `dst_*` labels, likewise.
    dst_labels: Vec<Arc<[(String, String)]>>,
    /// The mesh peer identity each endpoint is reached through, if any.
    server_ids: Vec<Option<String>>,
    /// The one every endpoint is reached through, if they share one, as
    /// a request's label.
    server_id: Option<Arc<str>>,
    /// `target_addr` as a request's label.
    request_target: Arc<str>,
    /// Why a request of this route is not mTLS, when the proxy is meshed
    /// and that is known for the route (`no_tls_reason`).
    no_tls: Option<&'static str>,
}

impl RouteMetrics {
    /// `server_ids` holds, per upstream, the identity of the mesh peer it
    /// is reached through, if any. `meshed`: the proxy has an identity, so
    /// that what is not mTLS is labelled with why (Linkerd's
    /// `no_tls_reason`): an inbound client without one, an outbound
    /// endpoint that is not a mesh peer.
    pub fn new(
        metrics: &ShardMetrics,
        direction: Direction,
        listen: SocketAddr,
        endpoints: &[Endpoint],
        server_ids: Vec<Option<String>>,
        meshed: bool,
    ) -> RouteMetrics {
        let targets = Targets {
            listen: listen.to_string(),
            upstreams: endpoints.iter().map(|e| e.addr.to_string()).collect(),
            dst_labels: dst_labels(endpoints),
        };
        RouteMetrics::labelled(metrics, direction, targets, server_ids, meshed)
    }

    /// As `new`, for a transparent connection's original destination
    /// `listen`, which the client chose: its `target_addr` (and its
    /// upstreams') take a slot of the shard's bound, `_other` past it,
    /// until `ShardMetrics::forget_target` frees it.
    pub fn for_destination(
        metrics: &ShardMetrics,
        direction: Direction,
        listen: SocketAddr,
        endpoints: &[Endpoint],
        server_ids: Vec<Option<String>>,
        meshed: bool,
    ) -> RouteMetrics {
        let targets = Targets {
            listen: metrics.destination_label(listen),
            upstreams: endpoints
                .iter()
                .map(|endpoint| metrics.destination_label(endpoint.addr))
                .collect(),
            dst_labels: dst_labels(endpoints),
        };
        RouteMetrics::labelled(metrics, direction, targets, server_ids, meshed)
    }

    fn labelled(
        metrics: &ShardMetrics,
        direction: Direction,
        targets: Targets,
        server_ids: Vec<Option<String>>,
        meshed: bool,
    ) -> RouteMetrics {
        let target_addr = targets.listen;
        let labels = |peer, target_addr: String, peer_id: Option<String>, dst_labels| {
            let no_tls = match (peer, direction) {
                _ if !meshed || peer_id.is_some() => None,
                (Peer::Src, Direction::Inbound) => Some(NO_TLS_FROM_REMOTE),
                (Peer::Dst, Direction::Outbound) => Some(NOT_A_MESH_PEER),
                _ => None,
            };
            TcpLabels {
                direction,
                peer,
                target_addr,
                tls_sni: None,
                peer_id,
                no_tls,
                dst_labels,
            }
        };
        let server_id = match server_ids.split_first() {
            Some((first, rest)) if rest.iter().all(|id| id == first) => {
                first.as_deref().map(Arc::from)
            }
            _ => None,
        };
        let no_tls = match direction {
            _ if !meshed || server_id.is_some() => None,
            Direction::Inbound => Some(NO_TLS_FROM_REMOTE),
            // Only a route none of whose endpoints is a mesh peer.
            Direction::Outbound if server_ids.iter().all(Option::is_none) => Some(NOT_A_MESH_PEER),
            Direction::Outbound => None,
        };
        RouteMetrics {
            direction,
            src: metrics.tcp(labels(Peer::Src, target_addr.clone(), None, Arc::from([]))),
            dst: targets
                .upstreams
                .iter()
                .zip(&server_ids)
                .zip(&targets.dst_labels)
                .map(|((upstream, id), dst_labels)| {
                    let dst = labels(Peer::Dst, upstream.clone(), id.clone(), dst_labels.clone());
                    metrics.tcp(dst)
                })
                .collect(),
            server_id,
            no_tls,
            server_ids,
            upstream_targets: targets.upstreams,
            dst_labels: targets.dst_labels,
            request_target: Arc::from(target_addr.as_str()),
            target_addr,
        }
    }

    /// Whether endpoint `index` is reached through a mesh peer.
    pub fn is_meshed(&self, index: usize) -> bool {
        self.server_ids[index].is_some()
    }

    /// The counters of a TLS passthrough connection: its SNI is a label
    /// (bounded per shard), so they are looked up per connection.
    pub fn tls(
        &self,
        metrics: &ShardMetrics,
        peer: Peer,
        endpoint: usize,
        sni: &str,
    ) -> Rc<TcpCounters> {
        let (target_addr, peer_id, dst_labels) = match peer {
            Peer::Src => (self.target_addr.clone(), None, Arc::from([])),
            Peer::Dst => (
                self.upstream_targets[endpoint].clone(),
                self.server_ids[endpoint].clone(),
                self.dst_labels[endpoint].clone(),
            ),
        };
        metrics.tcp(TcpLabels {
            direction: self.direction,
            peer,
            target_addr,
            tls_sni: Some(metrics.sni_label(sni)),
            peer_id,
            no_tls: None,
            dst_labels,
        })
    }

    /// The client-side counters of a connection from a mesh peer that
    /// proved `client_id`: looked up per connection, as the identity is a
    /// label.
    /// `sni`: of the application's own TLS inside the mesh's, if any.
    pub fn meshed_src(
        &self,
        metrics: &ShardMetrics,
        client_id: &str,
        sni: Option<&str>,
    ) -> Rc<TcpCounters> {
        metrics.tcp(TcpLabels {
            direction: self.direction,
            peer: Peer::Src,
            target_addr: self.target_addr.clone(),
            tls_sni: sni.map(|sni| metrics.sni_label(sni)),
            peer_id: Some(client_id.to_string()),
            no_tls: None,
            dst_labels: Arc::from([]),
        })
    }

    /// A request's labels; `client_id`: the identity its client proved
    /// (inbound). Outbound, the server's identity is labelled when every
    /// endpoint of the route is the same mesh peer (the balancer has not
    /// picked one yet).
    pub fn request_labels(&self, authority: Arc<str>, client_id: Option<&str>) -> RequestLabels {
        let peer_id = match (client_id, &self.server_id) {
            (Some(client), _) => Some(PeerId::Client(Arc::from(client))),
            (None, Some(server)) => Some(PeerId::Server(server.clone())),
            (None, None) => self.no_tls.map(PeerId::NoIdentity),
        };
        RequestLabels {
            direction: self.direction,
            authority,
            target_addr: self.request_target.clone(),
            peer_id,
        }
    }

    /// Counts a timeout that fired on this route, and says so once at
    /// debug (inside the connection's span, which names the connection).
    pub fn expired(&self, metrics: &ShardMetrics, expiry: Expiry, after: Duration) {
        tracing::debug!(timeout = expiry.as_str(), ?after, "timed out");
        let labels: ExpiryLabels = (self.direction, self.target_addr.clone(), expiry);
        metrics.expired(labels);
    }

    pub fn detect_labels(&self, result: &'static str) -> DetectLabels {
        DetectLabels {
            direction: self.direction,
            target_addr: self.target_addr.clone(),
            result,
        }
    }
}

/// Kept beside the route, whose `target_addr` labels it, so that the
/// recorder need not know routes.
impl ShardMetrics {
    /// The counter of the HTTP requests of a client `authz` judged, who
    /// proved `client_id` (or nothing), for its connection to keep.
    pub fn http_authz(
        &self,
        route: &RouteMetrics,
        authz: Authz,
        client_id: Option<&str>,
    ) -> HttpAuthz {
        let requests = self.authz_counter(AuthzLabels {
            http: true,
            decision: Decision::allowed(authz.allowed),
            authz: authz.policy,
            policy: None,
            client_id: client_id.unwrap_or_default().to_string(),
            target_addr: route.target_addr.clone(),
        });
        HttpAuthz { authz, requests }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::metrics::bound::{MAX_DESTINATIONS, MAX_SNIS};
    use crate::metrics::labels::OVERFLOW;

    fn addr(n: u32) -> SocketAddr {
        SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + n), 443))
    }

    fn route(metrics: &ShardMetrics) -> RouteMetrics {
        RouteMetrics::new(
            metrics,
            Direction::Outbound,
            addr(0),
            &[Endpoint::plain(addr(1))],
            vec![None],
            false,
        )
    }

    #[test]
    fn snis_past_the_cap_are_counted_under_one_label() {
        let metrics = ShardMetrics::new(0);
        let route = route(&metrics);
        let hellos = 3 * MAX_SNIS;
        for n in 0..hellos {
            let sni = format!("host-{n}.example");
            route.tls(&metrics, Peer::Src, 0, &sni).opened();
            route.tls(&metrics, Peer::Dst, 0, &sni).opened();
        }
        let snapshot = metrics.snapshot(0, 0);
        let snis: BTreeSet<&str> = snapshot
            .tcp
            .keys()
            .filter_map(|labels| labels.tls_sni.as_deref())
            .collect();
        assert_eq!(snis.len(), MAX_SNIS + 1);
        let overflowed = snapshot
            .tcp
            .iter()
            .filter(|(labels, _)| labels.tls_sni.as_deref() == Some(OVERFLOW));
        let opened: Vec<u64> = overflowed.map(|(_, tcp)| tcp.open_total).collect();
        assert_eq!(opened, [(hellos - MAX_SNIS) as u64; 2]);
    }

    #[test]
    fn a_destination_past_the_cap_is_labelled_other_until_one_is_forgotten() {
        let metrics = ShardMetrics::new(0);
        let destination = |n| {
            let listen = addr(n);
            let route = RouteMetrics::for_destination(
                &metrics,
                Direction::Outbound,
                listen,
                &[Endpoint::plain(listen)],
                vec![None],
                false,
            );
            route.target_addr
        };
        for n in 0..MAX_DESTINATIONS as u32 {
            assert_eq!(destination(n), addr(n).to_string());
        }
        let late = MAX_DESTINATIONS as u32;
        assert_eq!(destination(late), OVERFLOW);
        metrics.forget_target(&addr(0).to_string());
        assert_eq!(destination(late), addr(late).to_string());
    }
}
