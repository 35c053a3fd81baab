//! `RouteState`: one route as a shard sees it: its config, its balancers
//! and pools, and the counters its connections share, looked up once here
//! rather than per connection.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::balance::ConnectionBalancer;
use crate::config::{Direction, Route};
use crate::http::HttpRoute;
use crate::metrics::{RouteMetrics, ShardMetrics};
use crate::tls::mesh::MeshTls;

pub struct RouteState {
    pub route: Route,
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
        let metrics = route_metrics(RouteMetrics::new, &route, metrics, mesh);
        RouteState::with_metrics(route, metrics, seed, pool_idle_timeout)
    }

    /// A transparent listener's route for one original destination: as
    /// `new`, with its `target_addr`s under the shard's bound on
    /// destinations (`metrics::MAX_DESTINATIONS`), since the client chose
    /// them. One endpoint: the balancers have no choice to make, so no seed.
    pub fn for_destination(
        route: Route,
        metrics: &ShardMetrics,
        pool_idle_timeout: Duration,
        mesh: Option<&MeshTls>,
    ) -> RouteState {
        let metrics = route_metrics(RouteMetrics::for_destination, &route, metrics, mesh);
        RouteState::with_metrics(route, metrics, 0, pool_idle_timeout)
    }

    fn with_metrics(
        route: Route,
        metrics: Rc<RouteMetrics>,
        seed: u64,
        pool_idle_timeout: Duration,
    ) -> RouteState {
        let http_seed = seed.rotate_left(17);
        RouteState {
            balancer: ConnectionBalancer::new(&route.upstreams, seed),
            http: Rc::new(HttpRoute::new(
                metrics.clone(),
                &route.upstreams,
                http_seed,
                pool_idle_timeout,
                route.response_timeout,
            )),
            metrics,
            route,
        }
    }
}

/// How `RouteMetrics` are made: a configured route's or a destination's.
type MakeMetrics = fn(
    &ShardMetrics,
    Direction,
    SocketAddr,
    &[SocketAddr],
    Vec<Option<String>>,
    bool,
) -> RouteMetrics;

/// `route`'s metrics, its endpoints labelled by their mesh peers' identities.
fn route_metrics(
    make: MakeMetrics,
    route: &Route,
    metrics: &ShardMetrics,
    mesh: Option<&MeshTls>,
) -> Rc<RouteMetrics> {
    let server_ids = server_ids(route, mesh);
    let meshed = mesh.is_some();
    let (direction, listen) = (route.direction, route.listen);
    Rc::new(make(
        metrics,
        direction,
        listen,
        &route.upstreams,
        server_ids,
        meshed,
    ))
}

/// The identities of the mesh peers holding `route`'s endpoints, which
/// label their upstream-side series; none inbound, where the endpoint is
/// the application beside us (`Shard::connect`).
fn server_ids(route: &Route, mesh: Option<&MeshTls>) -> Vec<Option<String>> {
    let mesh = mesh.filter(|_| route.direction == Direction::Outbound);
    route
        .upstreams
        .iter()
        .map(|upstream| mesh?.peer_for(*upstream).map(|peer| peer.identity.clone()))
        .collect()
}
