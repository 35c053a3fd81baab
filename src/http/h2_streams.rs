//! `ClientStreams`: what one client HTTP/2 connection has in flight, and
//! how many of its streams it reset early. h2 bounds the streams it sees
//! open, but a stream the client resets is closed for h2 at once while
//! ringside's request to the upstream is still on its way; without a count
//! of its own, a client resetting in a loop (the rapid-reset attack, CVE
//! 2023-44487) would have ringside forward an unbounded number of requests.
//!
//! So the serve loop takes no new stream while `max_concurrent_streams`
//! requests are in flight (the client's new streams wait in h2's queue,
//! where resetting them counts against h2's pending-accept limit), and it
//! ends a connection whose client resets too many streams after they were
//! forwarded and before their response.
//!
//! The count also tells when the connection is idle: no stream in flight
//! arms the client idle timeout, the first one disarms it. That costs a
//! slot write on the shard's coarse clock per stream that starts or ends
//! alone, and no timer.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Waker};
use std::time::Duration;

use crate::io::Deadline;

/// Shared by the serve loop and its stream tasks, all on one shard.
pub struct ClientStreams {
    /// `http2.max_concurrent_streams`: requests in flight at most.
    max_in_flight: usize,
    /// `http2.max_premature_resets`.
    max_premature_resets: u64,
    in_flight: Cell<usize>,
    /// Streams taken up since the connection began.
    started: Cell<u64>,
    /// Streams the client reset after they were forwarded and before
    /// their response head.
    premature_resets: Cell<u64>,
    /// The serve loop, woken only when what it waits on changes: a place
    /// frees up while it is full, or the early resets cross the limit. A
    /// wake-up per finished stream would cost a poll of the whole
    /// connection per request.
    serve_loop: RefCell<Option<Waker>>,
    /// The connection's deadline: armed for `client_idle` while no stream
    /// is in flight, so that a quiet client does not hold a connection
    /// (and its buffers) for ever.
    idle: Deadline,
    client_idle: Duration,
}

/// One stream in flight; dropped when its task ends, however it ends.
pub struct InFlight(Rc<ClientStreams>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let streams = &self.0;
        let was_full = streams.full();
        streams.in_flight.set(streams.in_flight.get() - 1);
        if streams.in_flight.get() == 0 {
            streams.idle.arm(streams.client_idle);
        }
        if was_full {
            streams.wake_serve_loop();
        }
    }
}

impl InFlight {
    /// The client reset this stream after it was forwarded and before its
    /// response.
    pub fn reset_early(&self) {
        let resets = &self.0.premature_resets;
        resets.set(resets.get() + 1);
        if self.0.too_many_early_resets() {
            self.0.wake_serve_loop();
        }
    }
}

impl ClientStreams {
    /// `idle` is armed now, for `client_idle`: no stream is in flight yet.
    pub fn new(
        max_in_flight: usize,
        max_premature_resets: u64,
        idle: Deadline,
        client_idle: Duration,
    ) -> ClientStreams {
        idle.arm(client_idle);
        ClientStreams {
            idle,
            client_idle,
            max_in_flight,
            max_premature_resets,
            in_flight: Cell::new(0),
            started: Cell::new(0),
            premature_resets: Cell::new(0),
            serve_loop: RefCell::new(None),
        }
    }

    pub fn start(self: &Rc<Self>) -> InFlight {
        if self.in_flight.get() == 0 {
            self.idle.disarm();
        }
        self.in_flight.set(self.in_flight.get() + 1);
        self.started.set(self.started.get() + 1);
        InFlight(self.clone())
    }

    /// Has the serve loop's task woken when a place frees up or the early
    /// resets cross the limit.
    pub fn wake_on_change(&self, cx: &mut Context<'_>) {
        let mut serve_loop = self.serve_loop.borrow_mut();
        if !serve_loop.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *serve_loop = Some(cx.waker().clone());
        }
    }

    fn wake_serve_loop(&self) {
        if let Some(waker) = self.serve_loop.borrow().as_ref() {
            waker.wake_by_ref();
        }
    }

    /// Resolves once no stream has been in flight for `client_idle`.
    pub fn idle(&self) -> impl Future<Output = ()> + '_ {
        self.idle.wait()
    }

    /// Whether `max_concurrent_streams` requests are in flight.
    pub fn full(&self) -> bool {
        self.in_flight.get() >= self.max_in_flight
    }

    /// More than `max_premature_resets` early resets that are also at least
    /// half of all the connection's streams: an attack, not a client
    /// cancelling the odd call (Envoy's rule for premature resets, with its
    /// half).
    pub fn too_many_early_resets(&self) -> bool {
        let resets = self.premature_resets.get();
        resets > self.max_premature_resets && resets * 2 >= self.started.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_resets_count_only_past_the_limit_and_as_half_of_the_streams() {
        let deadlines = crate::io::Deadlines::new();
        let idle = Duration::from_secs(60);
        let streams = Rc::new(ClientStreams::new(100, 10, deadlines.deadline(), idle));
        for _ in 0..10 {
            streams.start().reset_early();
        }
        assert!(!streams.too_many_early_resets());
        streams.start().reset_early();
        assert!(streams.too_many_early_resets());
        // A long-lived connection that cancels a call in ten is fine.
        for _ in 0..100 {
            drop(streams.start());
        }
        assert!(!streams.too_many_early_resets());
        assert_eq!(streams.in_flight.get(), 0);
    }
}
