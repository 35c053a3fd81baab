//! `RouteSlot`: where a shard keeps the current state of one configured
//! route, and `Routes`, the shard's table of them. The admin shard
//! publishes changes (an endpoint set, a reloaded route) over the control
//! channel; the shard makes the successor state and swaps it in here.
//! A new connection takes the state current when it is accepted and keeps
//! it (`RouteState` never changes), so a swap needs no lock and nothing
//! shared: one `RefCell` written between two polls of the shard's tasks,
//! borrowed only for an `Rc` clone, never across an await.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use super::RouteState;
use crate::config::{EndpointSet, Route};
use crate::io::Shutdown;
use crate::metrics::{RouteMetrics, ShardMetrics};
use crate::shard::Shard;
use crate::tls::mesh::MeshTls;

pub struct RouteSlot {
    /// The bound address, which names the route in every message about it.
    listen: SocketAddr,
    current: RefCell<Rc<RouteState>>,
    /// Fires when a reload removes the route: its accept loop stops and
    /// closes the listener, while its open connections finish.
    removed: Shutdown,
}

impl RouteSlot {
    pub fn new(state: Rc<RouteState>) -> RouteSlot {
        RouteSlot {
            listen: state.route.listen,
            current: RefCell::new(state),
            removed: Shutdown::new(),
        }
    }

    /// A configured route's slot on `shard`, with the route's addresses as
    /// its endpoints (its names' come as they resolve).
    pub fn configured(shard: &Shard, route: Route) -> RouteSlot {
        let seed = seed(shard.metrics.shard(), route.listen);
        let idle = shard.timeouts.pool_idle;
        let mesh = shard.mesh();
        let state = RouteState::new(route, &shard.metrics, seed, idle, mesh.as_deref());
        RouteSlot::new(Rc::new(state))
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The state a new connection takes.
    pub fn current(&self) -> Rc<RouteState> {
        self.current.borrow().clone()
    }

    /// Replaces the state with its successor for `route` over `endpoints`
    /// (see `RouteState::successor`), unless both are what it has.
    pub fn update(
        &self,
        route: Route,
        endpoints: EndpointSet,
        metrics: &ShardMetrics,
        mesh: Option<&MeshTls>,
    ) {
        let current = self.current();
        if current.route == route && current.endpoints == endpoints {
            return;
        }
        self.succeed(&current, route, endpoints, metrics, mesh);
    }

    /// Replaces the state with a successor of the same route and endpoints,
    /// for a change of what the shard shares (the mesh peers label its
    /// series).
    pub fn refresh(&self, metrics: &ShardMetrics, mesh: Option<&MeshTls>) {
        let current = self.current();
        let (route, endpoints) = (current.route.clone(), current.endpoints.clone());
        self.succeed(&current, route, endpoints, metrics, mesh);
    }

    fn succeed(
        &self,
        current: &RouteState,
        route: Route,
        endpoints: EndpointSet,
        metrics: &ShardMetrics,
        mesh: Option<&MeshTls>,
    ) {
        let next = current.successor(RouteMetrics::new, route, endpoints, metrics, mesh);
        *self.current.borrow_mut() = Rc::new(next);
    }

    /// Resolves once a reload removed the route.
    pub async fn removed(&self) {
        self.removed.wait().await
    }
}

/// The configured routes of one shard, by listen address. Changed only by
/// the admin shard's messages; read by the pool sweep.
#[derive(Default)]
pub struct Routes {
    slots: RefCell<Vec<Rc<RouteSlot>>>,
}

impl Routes {
    pub fn add(&self, slot: Rc<RouteSlot>) {
        self.slots.borrow_mut().push(slot);
    }

    pub fn find(&self, listen: SocketAddr) -> Option<Rc<RouteSlot>> {
        let slots = self.slots.borrow();
        slots.iter().find(|slot| slot.listen == listen).cloned()
    }

    /// Takes the route out: its listener closes, its connections finish.
    pub fn remove(&self, listen: SocketAddr) {
        self.slots.borrow_mut().retain(|slot| {
            let removed = slot.listen == listen;
            if removed {
                slot.removed.trigger();
            }
            !removed
        });
    }

    /// Refreshes every route (`RouteSlot::refresh`).
    pub fn refresh(&self, metrics: &ShardMetrics, mesh: Option<&MeshTls>) {
        for slot in self.slots.borrow().iter() {
            slot.refresh(metrics, mesh);
        }
    }

    /// Every route's current state, for work done on all of them.
    pub fn states(&self) -> Vec<Rc<RouteState>> {
        self.slots
            .borrow()
            .iter()
            .map(|slot| slot.current())
            .collect()
    }
}

/// Distinct per shard and route, so shards do not make the same choices in
/// lockstep.
fn seed(shard: usize, listen: SocketAddr) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ ((shard as u64) << 32) ^ u64::from(listen.port())
}
