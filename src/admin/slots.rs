//! `Slots`: the bound on admin connections open at once. Each may hold a
//! whole `/metrics` page while its client reads (or never reads) it, so
//! their number bounds the admin server's memory. Past the bound the
//! oldest connection is closed to make room, rather than the new one
//! refused: a stalled or hostile client then cannot lock out the kubelet's
//! `/live` and `/ready` probes (a failed liveness probe restarts the pod),
//! and a scrape, done in milliseconds, is rarely the oldest.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use crate::io::Shutdown;

pub struct Slots {
    /// Open connections, oldest first, with the signal that closes each.
    held: RefCell<VecDeque<(u64, Rc<Shutdown>)>>,
    /// The id of the next connection, so that a slot finds its own entry.
    next_id: Cell<u64>,
    capacity: usize,
}

/// One connection's slot, freed when dropped, however the connection ends.
pub struct Slot {
    id: u64,
    slots: Rc<Slots>,
    evicted: Rc<Shutdown>,
}

impl Slots {
    pub fn new(capacity: usize) -> Rc<Slots> {
        Rc::new(Slots {
            held: RefCell::default(),
            next_id: Cell::new(0),
            capacity,
        })
    }

    /// A slot for a new connection; at the bound, the oldest connection is
    /// told to close (true is returned then).
    pub fn take(self: &Rc<Self>) -> (Slot, bool) {
        let mut held = self.held.borrow_mut();
        let evicted_one = held.len() >= self.capacity;
        if evicted_one {
            if let Some((_, oldest)) = held.pop_front() {
                oldest.trigger();
            }
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let evicted = Rc::new(Shutdown::new());
        held.push_back((id, evicted.clone()));
        let slot = Slot {
            id,
            slots: self.clone(),
            evicted,
        };
        (slot, evicted_one)
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.held.borrow().len()
    }
}

impl Slot {
    /// Resolves when a newer connection took this one's place.
    pub async fn evicted(&self) {
        self.evicted.wait().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots
            .held
            .borrow_mut()
            .retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_bound_the_oldest_connection_is_told_to_close() {
        let slots = Slots::new(2);
        let (first, evicted) = slots.take();
        assert!(!evicted);
        let (second, _) = slots.take();
        let (third, evicted) = slots.take();
        assert!(evicted);
        assert!(first.evicted.is_triggered());
        assert!(!second.evicted.is_triggered() && !third.evicted.is_triggered());
        assert_eq!(slots.open(), 2);
    }

    #[test]
    fn a_connection_that_ends_frees_its_slot() {
        let slots = Slots::new(2);
        let (first, _) = slots.take();
        let (second, _) = slots.take();
        drop(second);
        assert_eq!(slots.open(), 1);
        let (_third, evicted) = slots.take();
        assert!(!evicted && !first.evicted.is_triggered());
        drop(first);
        assert_eq!(slots.open(), 1);
    }
}
