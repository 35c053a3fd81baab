//! A shard's share of `proxy.max_connections`.
//!
//! Over the limit a connection is accepted and reset at once, rather than
//! left in the kernel's backlog until a slot frees up. The backlog would
//! hold it silently: the client's connect has already succeeded, so it
//! waits with no answer for as long as ringside stays full, and with
//! SO_REUSEPORT its connection waits behind the one full shard even when
//! another shard has room. A reset tells it at once, and its retry (a new
//! source port) may well land on a shard with room. Envoy's listener limit
//! does the same.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

/// Open client connections of one shard against its share of the limit.
/// Plain cells: each shard counts only its own connections.
pub struct ConnectionSlots {
    max: usize,
    open: Rc<Cell<usize>>,
    /// Set when the shard refuses its first connection, cleared when one is
    /// taken again: one warning per time the shard fills, not one per
    /// refusal.
    full: Cell<bool>,
}

/// One open connection's place; dropped when its task ends, however it
/// ends.
pub struct Slot(Rc<Cell<usize>>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl ConnectionSlots {
    pub fn new(max: usize) -> ConnectionSlots {
        ConnectionSlots {
            max,
            open: Rc::default(),
            full: Cell::new(false),
        }
    }

    /// A place for one more connection, or `None` when the shard is full.
    pub fn take(&self, listen: SocketAddr) -> Option<Slot> {
        let open = self.open.get();
        if open >= self.max {
            if !self.full.replace(true) {
                tracing::warn!(%listen, max = self.max, "connection limit reached: refusing new connections");
            }
            return None;
        }
        if self.full.replace(false) {
            tracing::info!(%listen, "below the connection limit again");
        }
        self.open.set(open + 1);
        Some(Slot(self.open.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen() -> SocketAddr {
        "127.0.0.1:4140".parse().unwrap()
    }

    #[test]
    fn a_full_shard_takes_again_once_a_connection_ends() {
        let slots = ConnectionSlots::new(2);
        let first = slots.take(listen()).unwrap();
        let _second = slots.take(listen()).unwrap();
        assert!(slots.take(listen()).is_none());
        drop(first);
        assert!(slots.take(listen()).is_some());
    }
}
