//! `TransparentState`: a transparent listener as a shard sees it. Each
//! connection's target is its original destination (iptables redirected
//! it here), and each destination gets a `RouteState` of its own, made on
//! first use and then kept, so that its connections share balancer, pool,
//! server-first memory and metrics exactly as a configured route's do, with
//! the original destination as `target_addr` (as Linkerd labels it).
//!
//! Destinations are unbounded in transparent mode, so the map is bounded
//! (`MAX_DESTINATIONS`) and forgets a destination idle for
//! `DESTINATION_IDLE`; its metric series outlive it for
//! `SERIES_RETAIN_IDLE` (bounded too), then go. Three kinds of connection are refused, never proxied:
//! one that was not redirected (it would be proxied to ringside itself),
//! one whose destination is one of ringside's own listeners (a loop), and
//! an inbound one to an address that is not the pod's, when the pod's
//! addresses are known (`LINKERD2_PROXY_INBOUND_IPS`).
//!
//! With discovery (Linkerd's control plane), an outbound destination's
//! first connection waits for its answer (`discovered.rs`), and its state
//! is made again whenever the answer changes: at its next connection, or
//! at the next sweep for the connections already open.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{discovered, RouteState};
use crate::config::{Direction, RouteSpec, Transparent};
use crate::discovery::{CacheHandle, Snapshot};
use crate::io::Destination;
use crate::metrics::ShardMetrics;
use crate::shard::Shard;

/// Destinations one shard keeps a state for. Each costs a few hundred
/// bytes and its pooled connections; a sidecar's application talks to
/// tens of services, so 1,000 leaves room for a busy one. Past it, every
/// destination no connection holds is forgotten to make room, and when
/// all are held the connection is carried with a state of its own that is
/// not kept (it works; it only shares no pool and no server-first memory).
const MAX_DESTINATIONS: usize = 1_000;

/// How long a destination with no connection is kept: long enough that
/// a client polling every few seconds keeps its pool and its learned
/// protocol, short enough that a scan of many addresses is forgotten.
const DESTINATION_IDLE: Duration = Duration::from_secs(60);

/// How long the metric series of a forgotten destination are kept: as
/// Linkerd's proxy keeps idle series (`METRICS_RETAIN_IDLE`, 10 minutes),
/// many scrapes long, so that a destination called every few minutes
/// keeps counting where it left off instead of resetting each time.
const SERIES_RETAIN_IDLE: Duration = Duration::from_secs(600);

/// Forgotten destinations whose series a shard keeps; past it, the
/// longest forgotten go first. Each holds a few counters and histograms
/// (a few KiB), so this bounds a scan of many addresses to a few MiB.
const MAX_RETIRED: usize = 2 * MAX_DESTINATIONS;

/// Why a transparent connection is refused, as the `reason` label of
/// `ringside_connections_refused_total` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its original destination is the listener itself: a direct
    /// connection, not one iptables redirected.
    NotRedirected,
    /// Its destination, or where it would be forwarded, is one of
    /// ringside's own listeners.
    Loop,
    /// An inbound connection to an address that is not one of the pod's
    /// own (`allowed_ips`).
    IpNotAllowed(IpAddr),
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotRedirected => "not_redirected",
            Refusal::Loop => "loop",
            Refusal::IpNotAllowed(_) => "ip_not_allowed",
        }
    }
}

struct Kept {
    route: RefCell<Rc<RouteState>>,
    /// When a connection last took it, for the idle expiry.
    last_used: Cell<Instant>,
    /// Its discovery answers, when discovery resolves it.
    discovery: Option<RefCell<watch::Receiver<Snapshot>>>,
}

impl Kept {
    fn route(&self) -> Rc<RouteState> {
        self.route.borrow().clone()
    }

    /// Takes a changed discovery answer.
    fn refresh(&self, shard: &Shard, own: discovered::IsOwn) {
        let Some(receiver) = &self.discovery else {
            return;
        };
        let current = self.route();
        let mut receiver = receiver.borrow_mut();
        if let Some(next) = discovered::refreshed(&current, &mut receiver, shard, own) {
            *self.route.borrow_mut() = Rc::new(next);
        }
    }
}

/// What a transparent connection's route is.
pub enum Found {
    Route(Rc<RouteState>),
    /// Not known yet: discovery is asked first (`TransparentState::discover`).
    Discover(SocketAddr),
}

pub struct TransparentState {
    pub listener: Transparent,
    /// Every address ringside listens on (routes, transparent listeners,
    /// admin), bound ports resolved: the loop check's list.
    own: Rc<[SocketAddr]>,
    /// Pooled HTTP connections per destination are kept this long.
    pool_idle_timeout: Duration,
    destinations: RefCell<HashMap<SocketAddr, Kept>>,
    /// Destinations forgotten while their metric series are kept, and when
    /// each was last used.
    retired: RefCell<HashMap<SocketAddr, Instant>>,
    /// Where outbound destinations are resolved, under a control plane.
    discovery: Option<CacheHandle>,
    /// The only addresses inbound connections may target (the pod's own,
    /// `LINKERD2_PROXY_INBOUND_IPS`); empty, any.
    allowed_ips: Rc<[IpAddr]>,
}

impl TransparentState {
    /// `discovery`: where outbound destinations are resolved, if anywhere
    /// (an inbound listener ignores it).
    pub fn new(
        listener: Transparent,
        own: Rc<[SocketAddr]>,
        pool_idle_timeout: Duration,
        discovery: Option<CacheHandle>,
    ) -> TransparentState {
        let discovery = discovery.filter(|_| listener.direction == Direction::Outbound);
        TransparentState {
            listener,
            own,
            pool_idle_timeout,
            destinations: RefCell::default(),
            retired: RefCell::default(),
            discovery,
            allowed_ips: Rc::from([]),
        }
    }

    /// Refuses inbound connections whose destination is not one of `ips`,
    /// as linkerd2-proxy's `AllowIps` (`app/core/src/transport/allow_ips.rs`)
    /// does before anything else, direct connections included: a packet
    /// routed to the pod for some other address (a node's, a service's)
    /// must not reach the application as if it were the pod's. Empty:
    /// every destination, as Linkerd without the variable. Outbound
    /// listeners ignore it.
    pub fn allowing_only(mut self, ips: &[IpAddr]) -> TransparentState {
        if self.listener.direction == Direction::Inbound {
            self.allowed_ips = ips.iter().map(|ip| ip.to_canonical()).collect();
        }
        self
    }

    /// The route state of a connection that reached the listener as
    /// `destination` says, or why it is refused.
    pub fn route_for(&self, destination: Destination, shard: &Shard) -> Result<Found, Refusal> {
        let target = destination.original.unwrap_or(destination.local).ip();
        if !self.allowed_ips.is_empty() && !self.allowed_ips.contains(&target) {
            return Err(Refusal::IpNotAllowed(target));
        }
        let original = match destination.original {
            Some(original) if original != destination.local => original,
            _ => return Err(Refusal::NotRedirected),
        };
        let upstream = self.listener.forward_to.upstream(original);
        if self.is_own(original, destination.local) || self.is_own(upstream, destination.local) {
            return Err(Refusal::Loop);
        }
        if let Some(route) = self.current(original, shard) {
            return Ok(Found::Route(route));
        }
        if self.discovery.is_some() {
            return Ok(Found::Discover(original));
        }
        let route = RouteSpec::implied(original, upstream, self.listener.direction)
            .resolve(&shard.detect().opaque_ports, shard.timeouts.response);
        let (mesh, endpoints) = (shard.mesh(), route.static_endpoints().into());
        let idle = self.pool_idle_timeout;
        let metrics = &shard.metrics;
        let route =
            RouteState::for_destination(route, endpoints, metrics, 0, idle, mesh.as_deref());
        let route = Rc::new(route);
        self.keep(original, route.clone(), None, metrics);
        Ok(Found::Route(route))
    }

    /// The route of a destination `route_for` found unknown, once discovery
    /// answered (or did not in time: `discovered::lookup`).
    pub async fn discover(&self, original: SocketAddr, shard: &Shard) -> Rc<RouteState> {
        let handle = self.discovery.as_ref().expect("route_for found discovery");
        let (receiver, snapshot) = discovered::lookup(handle, original, shard).await;
        // Another connection may have got there first.
        if let Some(route) = self.current(original, shard) {
            return route;
        }
        let (direction, idle) = (self.listener.direction, self.pool_idle_timeout);
        let own = |addr| self.is_own(addr, self.listener.listen);
        let route = discovered::first_state(original, &snapshot, direction, shard, idle, &own);
        let route = Rc::new(route);
        self.keep(original, route.clone(), receiver, &shard.metrics);
        route
    }

    /// The kept state of `original`, brought up to its discovery answer.
    fn current(&self, original: SocketAddr, shard: &Shard) -> Option<Rc<RouteState>> {
        let destinations = self.destinations.borrow();
        let kept = destinations.get(&original)?;
        kept.last_used.set(Instant::now());
        kept.refresh(shard, &|addr| self.is_own(addr, self.listener.listen));
        Some(kept.route())
    }

    /// Keeps `route` as `original`'s, within `MAX_DESTINATIONS`.
    fn keep(
        &self,
        original: SocketAddr,
        route: Rc<RouteState>,
        discovery: Option<watch::Receiver<Snapshot>>,
        metrics: &ShardMetrics,
    ) {
        let now = Instant::now();
        let mut destinations = self.destinations.borrow_mut();
        if destinations.len() >= MAX_DESTINATIONS {
            let forgotten = forget_idle(&mut destinations, now, Duration::ZERO);
            self.retire(forgotten, metrics);
        }
        if destinations.len() < MAX_DESTINATIONS {
            self.retired.borrow_mut().remove(&original);
            let kept = Kept {
                route: RefCell::new(route),
                last_used: Cell::new(now),
                discovery: discovery.map(RefCell::new),
            };
            destinations.insert(original, kept);
        } else {
            // Every kept destination is held: this one is carried with a
            // state of its own, and its series are retired at once, so that
            // they go like any forgotten destination's (a scan of many
            // addresses through held connections would otherwise grow them
            // without bound).
            self.retire(vec![(original, now)], metrics);
        }
    }

    /// Closes idle pooled connections, takes changed discovery answers,
    /// forgets destinations idle for `DESTINATION_IDLE` and the series of
    /// those forgotten for `SERIES_RETAIN_IDLE`; the shard calls it every
    /// second.
    pub fn sweep(&self, shard: &Shard) {
        let (now, metrics) = (Instant::now(), &shard.metrics);
        let mut destinations = self.destinations.borrow_mut();
        let forgotten = forget_idle(&mut destinations, now, DESTINATION_IDLE);
        let own = |addr| self.is_own(addr, self.listener.listen);
        for kept in destinations.values() {
            kept.refresh(shard, &own);
            kept.route().http.sweep();
        }
        drop(destinations);
        self.retire(forgotten, metrics);
        self.retired.borrow_mut().retain(|destination, last_used| {
            let keep = now.duration_since(*last_used) < SERIES_RETAIN_IDLE;
            if !keep {
                metrics.forget_target(&destination.to_string());
            }
            keep
        });
    }

    /// Keeps the series of `forgotten` destinations for a while, dropping
    /// the longest forgotten ones' at once past `MAX_RETIRED`.
    fn retire(&self, forgotten: Vec<(SocketAddr, Instant)>, metrics: &ShardMetrics) {
        let mut retired = self.retired.borrow_mut();
        retired.extend(forgotten);
        if retired.len() <= MAX_RETIRED {
            return;
        }
        let mut by_age: Vec<(SocketAddr, Instant)> = retired.drain().collect();
        by_age.sort_unstable_by_key(|(_, last_used)| std::cmp::Reverse(*last_used));
        for (destination, _) in by_age.split_off(MAX_RETIRED) {
            metrics.forget_target(&destination.to_string());
        }
        retired.extend(by_age);
    }

    /// Destinations a shard keeps now.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.destinations.borrow().len()
    }

    /// Whether `addr` is one of ringside's listeners. One bound to the
    /// unspecified address answers on loopback and on the address this
    /// connection came in on (`local`); on other hosts' addresses the
    /// same port is someone else's.
    fn is_own(&self, addr: SocketAddr, local: SocketAddr) -> bool {
        self.own.iter().any(|own| {
            own.port() == addr.port()
                && (own.ip() == addr.ip()
                    || (own.ip().is_unspecified()
                        && (addr.ip().is_loopback() || addr.ip() == local.ip())))
        })
    }
}

/// Forgets the destinations no connection holds that were last used more
/// than `idle` ago; returns them with their last use.
fn forget_idle(
    destinations: &mut HashMap<SocketAddr, Kept>,
    now: Instant,
    idle: Duration,
) -> Vec<(SocketAddr, Instant)> {
    let mut forgotten = Vec::new();
    destinations.retain(|destination, kept| {
        let in_use = Rc::strong_count(&kept.route.borrow()) > 1;
        let keep = in_use || now.duration_since(kept.last_used.get()) < idle;
        if !keep {
            forgotten.push((*destination, kept.last_used.get()));
        }
        keep
    });
    forgotten
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ForwardTo, Protocol};

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn outbound() -> TransparentState {
        let listener = Transparent {
            listen: addr("127.0.0.1:4140"),
            direction: Direction::Outbound,
            forward_to: ForwardTo::Original,
        };
        let own: Rc<[SocketAddr]> = [addr("127.0.0.1:4140"), addr("0.0.0.0:4143")].into();
        TransparentState::new(listener, own, Duration::from_secs(3), None)
    }

    fn redirected(original: &str) -> Destination {
        Destination {
            original: Some(addr(original)),
            local: addr("127.0.0.1:4140"),
        }
    }

    fn route_for(
        state: &TransparentState,
        shard: &Shard,
        to: Destination,
    ) -> Result<Rc<RouteState>, Refusal> {
        match state.route_for(to, shard)? {
            Found::Route(route) => Ok(route),
            Found::Discover(_) => unreachable!("no discovery here"),
        }
    }

    #[test]
    fn a_destination_gets_one_kept_route_with_its_policy() {
        let (state, shard) = (outbound(), Shard::for_tests());
        let web = route_for(&state, &shard, redirected("10.0.0.1:80")).unwrap();
        let again = route_for(&state, &shard, redirected("10.0.0.1:80")).unwrap();
        assert!(Rc::ptr_eq(&web, &again));
        assert_eq!(web.route.protocol, Protocol::Detect);
        assert_eq!(web.metrics.target_addr, "10.0.0.1:80");
        let redis = route_for(&state, &shard, redirected("10.0.0.2:6379")).unwrap();
        assert_eq!(redis.route.protocol, Protocol::Opaque);
        assert_eq!(state.kept(), 2);
    }

    #[test]
    fn unredirected_and_looping_connections_are_refused() {
        let (state, shard) = (outbound(), Shard::for_tests());
        let direct = Destination {
            original: Some(addr("127.0.0.1:4140")),
            local: addr("127.0.0.1:4140"),
        };
        let unknown = Destination {
            original: None,
            local: addr("127.0.0.1:4140"),
        };
        for destination in [direct, unknown] {
            let refused = route_for(&state, &shard, destination).err();
            assert_eq!(refused, Some(Refusal::NotRedirected));
        }
        // The inbound listener on 0.0.0.0 answers on loopback, not on
        // another host's address.
        let refused = route_for(&state, &shard, redirected("127.0.0.1:4143")).err();
        assert_eq!(refused, Some(Refusal::Loop));
        assert!(route_for(&state, &shard, redirected("10.0.0.1:4143")).is_ok());
    }

    #[test]
    fn inbound_connections_to_an_address_not_allowed_are_refused() {
        let shard = Shard::for_tests();
        let listener = Transparent {
            listen: addr("0.0.0.0:4143"),
            direction: Direction::Inbound,
            forward_to: ForwardTo::Original,
        };
        let own: Rc<[SocketAddr]> = [listener.listen].into();
        let pod = ["10.1.0.5".parse().unwrap()];
        let state =
            TransparentState::new(listener, own, Duration::from_secs(3), None).allowing_only(&pod);
        let to = |original: &str, local: &str| Destination {
            original: Some(addr(original)),
            local: addr(local),
        };
        assert!(route_for(&state, &shard, to("10.1.0.5:8080", "127.0.0.1:4143")).is_ok());
        let other = to("10.1.0.6:8080", "127.0.0.1:4143");
        let refused = route_for(&state, &shard, other).err();
        assert_eq!(
            refused,
            Some(Refusal::IpNotAllowed(addr("10.1.0.6:1").ip()))
        );
        // A direct connection is judged by the address it reached.
        let direct = to("10.1.0.6:4143", "10.1.0.6:4143");
        let refused = route_for(&state, &shard, direct).err();
        assert_eq!(refused.map(Refusal::as_str), Some("ip_not_allowed"));
        let direct = to("10.1.0.5:4143", "10.1.0.5:4143");
        let refused = route_for(&state, &shard, direct).err();
        assert_eq!(
            refused,
            Some(Refusal::NotRedirected),
            "then served as meshed"
        );
    }

    #[test]
    fn destinations_are_bounded_and_idle_ones_forgotten() {
        let (state, shard) = (outbound(), Shard::for_tests());
        let held = route_for(&state, &shard, redirected("10.0.0.1:1")).unwrap();
        for port in 2..=MAX_DESTINATIONS as u16 {
            let to = redirected(&format!("10.0.0.1:{port}"));
            route_for(&state, &shard, to).unwrap();
        }
        assert_eq!(state.kept(), MAX_DESTINATIONS);
        // Full: the idle ones make room; the held one stays.
        route_for(&state, &shard, redirected("10.0.0.2:1")).unwrap();
        assert_eq!(state.kept(), 2);
        let again = route_for(&state, &shard, redirected("10.0.0.1:1")).unwrap();
        assert!(Rc::ptr_eq(&held, &again));
        drop(again);
        // A sweep forgets only what has been idle for DESTINATION_IDLE.
        state.sweep(&shard);
        assert_eq!(state.kept(), 2);
        let long_ago = Instant::now() - DESTINATION_IDLE;
        for kept in state.destinations.borrow().values() {
            kept.last_used.set(long_ago);
        }
        state.sweep(&shard);
        assert_eq!(state.kept(), 1, "the held destination stays");
    }

    #[test]
    fn a_destination_past_the_cap_is_carried_and_its_series_still_go() {
        let (state, shard) = (outbound(), Shard::for_tests());
        let held: Vec<_> = (1..=MAX_DESTINATIONS as u16)
            .map(|port| route_for(&state, &shard, redirected(&format!("10.0.0.1:{port}"))))
            .collect();
        let extra = route_for(&state, &shard, redirected("10.0.0.9:1")).unwrap();
        extra.metrics.src.opened();
        drop(extra);
        assert_eq!(state.kept(), MAX_DESTINATIONS, "not kept: all are held");
        assert!(series(&shard.metrics).contains(&"10.0.0.9:1".to_string()));
        let retention_over = Instant::now() - SERIES_RETAIN_IDLE;
        for last_used in state.retired.borrow_mut().values_mut() {
            *last_used = retention_over;
        }
        state.sweep(&shard);
        let targets = series(&shard.metrics);
        assert!(!targets.contains(&"10.0.0.9:1".to_string()), "forgotten");
        assert_eq!(targets.len(), MAX_DESTINATIONS, "the held ones' stay");
        drop(held);
    }

    /// The `target_addr`s that have tcp series on the shard.
    fn series(metrics: &ShardMetrics) -> Vec<String> {
        let snapshot = metrics.snapshot(0, 0);
        let targets: std::collections::BTreeSet<String> =
            snapshot.tcp.keys().map(|l| l.target_addr.clone()).collect();
        targets.into_iter().collect()
    }

    #[test]
    fn series_outlive_their_destination_for_a_while_then_go() {
        let (state, shard) = (outbound(), Shard::for_tests());
        let web = route_for(&state, &shard, redirected("10.0.0.1:80")).unwrap();
        web.metrics.src.opened();
        drop(web);
        shard.metrics.authorized(crate::metrics::AuthzLabels {
            http: false,
            decision: crate::metrics::Decision::Allowed,
            authz: "all-unauthenticated",
            policy: None,
            client_id: String::new(),
            target_addr: "10.0.0.1:80".to_string(),
        });
        let held = route_for(&state, &shard, redirected("10.0.0.2:80")).unwrap();
        let long_ago = Instant::now() - DESTINATION_IDLE;
        for kept in state.destinations.borrow().values() {
            kept.last_used.set(long_ago);
        }
        state.sweep(&shard);
        assert_eq!(state.kept(), 1);
        assert_eq!(
            series(&shard.metrics),
            ["10.0.0.1:80", "10.0.0.2:80"],
            "kept a while"
        );
        // Seen again within the retention: the same counters go on.
        let again = route_for(&state, &shard, redirected("10.0.0.1:80")).unwrap();
        assert_eq!(
            shard
                .metrics
                .snapshot(0, 0)
                .tcp
                .values()
                .map(|s| s.open_total)
                .sum::<u64>(),
            1
        );
        drop(again);
        for kept in state.destinations.borrow().values() {
            kept.last_used.set(long_ago);
        }
        state.sweep(&shard);
        let retention_over = Instant::now() - SERIES_RETAIN_IDLE;
        for last_used in state.retired.borrow_mut().values_mut() {
            *last_used = retention_over;
        }
        state.sweep(&shard);
        assert_eq!(
            series(&shard.metrics),
            ["10.0.0.2:80"],
            "the held one's stay"
        );
        assert!(
            shard.metrics.snapshot(0, 0).authz.is_empty(),
            "its authorization series too"
        );
        drop(held);
    }

    #[test]
    fn retired_series_are_bounded() {
        let (state, shard) = (outbound(), Shard::for_tests());
        let past = Instant::now() - DESTINATION_IDLE;
        let forgotten = (0..MAX_RETIRED as u16 + 5)
            .map(|port| {
                let destination = addr(&format!("10.0.1.1:{}", port + 1));
                route_for(&state, &shard, redirected(&destination.to_string())).unwrap();
                (destination, past + Duration::from_millis(u64::from(port)))
            })
            .collect();
        state.destinations.borrow_mut().clear();
        state.retire(forgotten, &shard.metrics);
        assert_eq!(state.retired.borrow().len(), MAX_RETIRED);
        let targets = series(&shard.metrics);
        assert_eq!(targets.len(), MAX_RETIRED);
        assert!(
            !targets.contains(&"10.0.1.1:1".to_string()),
            "the oldest went first"
        );
    }
}
