//! A shard's share of `proxy.max_connections`, and what its accept loop
//! does when accepting fails.
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
use std::time::Duration;

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

/// The first pause after a failed accept. EMFILE and its like persist until
/// connections end, and the connection that failed stays in the backlog,
/// so an accept retried at once fails at once: a busy loop.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause: how late, at most, a shard notices fds are free again.
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// A run of failed accepts on one listener: logged when it starts and when
/// it ends, however many failures it holds, with a pause after each that
/// doubles up to `MAX_PAUSE`.
pub struct AcceptFailures {
    /// Failures since the last accept that worked.
    failures: u64,
    pause: Duration,
}

impl AcceptFailures {
    pub fn new() -> AcceptFailures {
        AcceptFailures {
            failures: 0,
            pause: FIRST_PAUSE,
        }
    }

    /// Notes a failure; returns how long to pause before trying again.
    pub fn failed(&mut self, listen: SocketAddr, error: &std::io::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(%listen, %error, "accept failed: pausing accepts until it works again");
        }
        self.failures += 1;
        let pause = self.pause;
        self.pause = (pause * 2).min(MAX_PAUSE);
        pause
    }

    /// Notes an accept that worked, ending a run of failures.
    pub fn succeeded(&mut self, listen: SocketAddr) {
        if self.failures > 0 {
            tracing::info!(%listen, failures = self.failures, "accepting again");
            *self = AcceptFailures::new();
        }
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

    #[test]
    fn pauses_grow_to_the_cap_and_start_over_after_a_success() {
        let mut failures = AcceptFailures::new();
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        let pauses: Vec<u64> = (0..6)
            .map(|_| failures.failed(listen(), &emfile).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [50, 100, 200, 400, 500, 500]);
        failures.succeeded(listen());
        assert_eq!(failures.failed(listen(), &emfile), FIRST_PAUSE);
    }
}
