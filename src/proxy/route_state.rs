//! `RouteState`: one route as a shard sees it, for one endpoint set: its
//! config, its balancers and pools, and the counters its connections share,
//! looked up once here rather than per connection. It never changes: a new
//! config or endpoint set makes a successor (`successor`), which new
//! connections take (`RouteSlot`), while those already open keep theirs.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::balance::ConnectionBalancer;
use crate::config::{Direction, Endpoint, EndpointSet, Route};
use crate::http::HttpRoute;
use crate::metrics::{RouteMetrics, ShardMetrics};
use crate::tls::mesh::MeshTls;

pub struct RouteState {
    pub route: Route,
    /// What the balancers' indexes name, with what is known of each.
    pub endpoints: EndpointSet,
    pub metrics: Rc<RouteMetrics>,
    /// Balances connections (opaque TCP).
    pub balancer: ConnectionBalancer,
    /// Balances requests and pools connections (HTTP).
    pub http: Rc<HttpRoute>,
}

impl RouteState {
    /// `mesh`: how the shard reaches mesh peers, whose identities label
    /// the upstream-side series of the endpoints they hold.
    pub fn new(
        route: Route,
        metrics: &ShardMetrics,
        seed: u64,
        pool_idle_timeout: Duration,
        mesh: Option<&MeshTls>,
    ) -> RouteState {
        let endpoints: EndpointSet = route.static_endpoints().into();
        let metrics = route_metrics(RouteMetrics::new, &route, &endpoints, metrics, mesh);
        RouteState::with_metrics(route, endpoints, metrics, seed, pool_idle_timeout)
    }

    /// The state of `route` over `endpoints`, which replaces this one (a
    /// reload changed the route, or its endpoint set changed): the
    /// balancers and pools keep what they hold of endpoints that stay
    /// (`HttpRoute::successor`), and a client connection on this state
    /// moves to the new one at its next request. `make`: as this state's
    /// metrics were made (`RouteMetrics::new` for a configured route,
    /// `RouteMetrics::for_destination` for a transparent destination, whose
    /// labels stay under the shard's bound).
    pub fn successor(
        &self,
        make: MakeMetrics,
        route: Route,
        endpoints: EndpointSet,
        metrics: &ShardMetrics,
        mesh: Option<&MeshTls>,
    ) -> RouteState {
        let metrics = route_metrics(make, &route, &endpoints, metrics, mesh);
        let addrs = addrs(&endpoints);
        let http = self
            .http
            .successor(metrics.clone(), endpoints.clone(), route.response_timeout);
        let http = Rc::new(http);
        self.http.succeed(http.clone());
        RouteState {
            balancer: self.balancer.successor(&addrs),
            http,
            metrics,
            endpoints,
            route,
        }
    }

    /// A transparent listener's route for one original destination, over
    /// `endpoints` (its own address, or what discovery found): as `new`,
    /// with its `target_addr`s under the shard's bound on destinations
    /// (`metrics::MAX_DESTINATIONS`), since the client chose them.
    pub fn for_destination(
        route: Route,
        endpoints: EndpointSet,
        metrics: &ShardMetrics,
        seed: u64,
        pool_idle_timeout: Duration,
        mesh: Option<&MeshTls>,
    ) -> RouteState {
        let make = RouteMetrics::for_destination;
        let metrics = route_metrics(make, &route, &endpoints, metrics, mesh);
        RouteState::with_metrics(route, endpoints, metrics, seed, pool_idle_timeout)
    }

    fn with_metrics(
        route: Route,
        endpoints: EndpointSet,
        metrics: Rc<RouteMetrics>,
        seed: u64,
        pool_idle_timeout: Duration,
    ) -> RouteState {
        let http_seed = seed.rotate_left(17);
        let addrs = addrs(&endpoints);
        RouteState {
            balancer: ConnectionBalancer::new(&addrs, seed),
            http: Rc::new(HttpRoute::new(
                metrics.clone(),
                endpoints.clone(),
                http_seed,
                pool_idle_timeout,
                route.response_timeout,
            )),
            endpoints,
            metrics,
            route,
        }
    }
}

fn addrs(endpoints: &[Endpoint]) -> Vec<SocketAddr> {
    endpoints.iter().map(|endpoint| endpoint.addr).collect()
}

/// How `RouteMetrics` are made: a configured route's or a destination's.
pub type MakeMetrics = fn(
    &ShardMetrics,
    Direction,
    SocketAddr,
    &[Endpoint],
    Vec<Option<String>>,
    bool,
) -> RouteMetrics;

/// `route`'s metrics, its endpoints labelled by their mesh peers' identities.
fn route_metrics(
    make: MakeMetrics,
    route: &Route,
    endpoints: &[Endpoint],
    metrics: &ShardMetrics,
    mesh: Option<&MeshTls>,
) -> Rc<RouteMetrics> {
    let server_ids = server_ids(route, endpoints, mesh);
    let meshed = mesh.is_some();
    let (direction, listen) = (route.direction, route.listen);
    Rc::new(make(
        metrics, direction, listen, endpoints, server_ids, meshed,
    ))
}

/// The identities of the mesh peers holding `route`'s endpoints (the one
/// their source gave, else their `[[mesh.peer]]`'s), which label their
/// upstream-side series; none inbound, where the endpoint is the
/// application beside us (`Shard::connect`).
fn server_ids(
    route: &Route,
    endpoints: &[Endpoint],
    mesh: Option<&MeshTls>,
) -> Vec<Option<String>> {
    let mesh = mesh.filter(|_| route.direction == Direction::Outbound);
    endpoints
        .iter()
        .map(|endpoint| {
            let mesh = mesh?;
            let peer = || mesh.peer_for(endpoint.addr).map(|p| p.identity.clone());
            endpoint.identity.clone().or_else(peer)
        })
        .collect()
}
