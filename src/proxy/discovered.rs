//! An outbound transparent destination carried as discovery says: the
//! first connection to an original destination asks the discovery thread
//! (`discovery::CacheHandle`) and waits, bounded, for its first answer;
//! the destination's `RouteState` is then made of that snapshot (its
//! endpoints with their identities, proxy ports and hints, and the
//! policy's protocol), and made again whenever the snapshot changes.
//!
//! A destination whose answer does not come within `DISCOVERY_TIMEOUT`
//! (the control plane is down or slow) is forwarded to its original
//! address in plaintext, as the fallback for NOT_FOUND is, and takes the
//! answer when it comes. Linkerd fails such a connection instead once
//! its queue's fail-fast timeout (3 s) passes; ringside keeps the
//! connection working, as its detection does on a timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::RouteState;
use crate::config::{Direction, Endpoint, EndpointSet, Route, RouteSpec, Upstream};
use crate::discovery::{CacheHandle, Discovered, Snapshot};
use crate::metrics::RouteMetrics;
use crate::shard::Shard;

/// How long a connection waits for its destination's first answer:
/// Linkerd's outbound fail-fast timeout
/// (`DEFAULT_OUTBOUND_TCP_FAILFAST_TIMEOUT`, `linkerd/app/src/env.rs`).
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(3);

/// `original`'s snapshot receiver and its answer: the first one, or the
/// fallback when none came in time (then the receiver, when the discovery
/// thread gave one, brings the answer later).
pub async fn lookup(
    handle: &CacheHandle,
    original: SocketAddr,
    shard: &Shard,
) -> (Option<watch::Receiver<Snapshot>>, Arc<Discovered>) {
    let deadlines = &shard.deadlines;
    let asked = deadlines.timeout(DISCOVERY_TIMEOUT, handle.lookup(original));
    let mut receiver = match asked.await {
        Some(Ok(receiver)) => receiver,
        _ => return (None, fallback(original)),
    };
    let answered = deadlines.timeout(DISCOVERY_TIMEOUT, receiver.wait_for(Option::is_some));
    let snapshot = match answered.await {
        Some(Ok(snapshot)) => snapshot.clone(),
        _ => None,
    };
    match snapshot {
        Some(snapshot) => (Some(receiver), snapshot),
        None => {
            tracing::info!(%original, "no discovery answer in time: forwarding to the original address");
            (Some(receiver), fallback(original))
        }
    }
}

fn fallback(original: SocketAddr) -> Arc<Discovered> {
    Arc::new(crate::discovery::target::fallback(original, None))
}

/// Whether an address is one of ringside's own listeners.
pub type IsOwn<'a> = &'a dyn Fn(SocketAddr) -> bool;

/// The route and endpoints `snapshot` makes of `original`: the policy's
/// protocol (and detect timeout) when it names one, else the shard's
/// opaque ports decide by the original port, as for a destination without
/// discovery. An endpoint that
/// is one of ringside's own listeners (`own`) is left out: a connection
/// sent there would come round again, without end.
pub fn route_of(
    original: SocketAddr,
    snapshot: &Discovered,
    direction: Direction,
    shard: &Shard,
    own: IsOwn,
) -> (Route, EndpointSet) {
    let mut spec = RouteSpec::implied(original, original, direction);
    if let Some(protocol) = snapshot.protocol {
        spec.route.protocol = protocol;
        spec.protocol_given = true;
    }
    let mut route = spec.resolve(&shard.detect().opaque_ports, shard.timeouts.response);
    route.detect_timeout = snapshot.detect_timeout;
    let looping = |endpoint: &&Endpoint| own(endpoint.addr);
    let endpoints: EndpointSet = match snapshot.endpoints.iter().any(|e| looping(&e)) {
        false => snapshot.endpoints.clone(),
        true => {
            tracing::warn!(%original, "discovery named one of ringside's own listeners: left out");
            let kept = snapshot.endpoints.iter().filter(|e| !looping(e));
            kept.cloned().collect()
        }
    };
    route.upstreams = endpoints
        .iter()
        .map(|endpoint| Upstream::Addr(endpoint.addr))
        .collect();
    (route, endpoints)
}

/// `original`'s first state, from `snapshot`.
pub fn first_state(
    original: SocketAddr,
    snapshot: &Discovered,
    direction: Direction,
    shard: &Shard,
    pool_idle_timeout: Duration,
    own: IsOwn,
) -> RouteState {
    let (route, endpoints) = route_of(original, snapshot, direction, shard, own);
    let mesh = shard.mesh();
    let seed = seed(shard.metrics.shard(), original);
    let metrics = &shard.metrics;
    RouteState::for_destination(
        route,
        endpoints,
        metrics,
        seed,
        pool_idle_timeout,
        mesh.as_deref(),
    )
}

/// The state that replaces `current` when `receiver` has a new answer.
pub fn refreshed(
    current: &RouteState,
    receiver: &mut watch::Receiver<Snapshot>,
    shard: &Shard,
    own: IsOwn,
) -> Option<RouteState> {
    if !receiver.has_changed().unwrap_or(false) {
        return None;
    }
    let snapshot = receiver.borrow_and_update().clone()?;
    let original = current.route.listen;
    let direction = current.route.direction;
    let (route, endpoints) = route_of(original, &snapshot, direction, shard, own);
    let mesh = shard.mesh();
    let metrics = &shard.metrics;
    let make = RouteMetrics::for_destination;
    Some(current.successor(make, route, endpoints, metrics, mesh.as_deref()))
}

/// Distinct per shard and destination, so shards do not balance in step.
fn seed(shard: usize, original: SocketAddr) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (shard, original).hash(&mut hasher);
    hasher.finish()
}
