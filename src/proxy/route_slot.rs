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
use crate::metrics::ShardMetrics;
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
        let next = current.successor(route, endpoints, metrics, mesh);
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

    /// Every route's current state, for work done on all of them.
    pub fn states(&self) -> Vec<Rc<RouteState>> {
        self.slots
            .borrow()
            .iter()
            .map(|slot| slot.current())
            .collect()
    }
}
