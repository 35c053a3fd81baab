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

use std::cell::Cell;
use std::rc::Rc;
use std::task::{Context, Waker};

/// Shared by the serve loop and its stream tasks, all on one shard.
#[derive(Default)]
pub struct ClientStreams {
    in_flight: Cell<usize>,
    /// Streams taken up since the connection began.
    started: Cell<u64>,
    /// Streams the client reset after they were forwarded and before
    /// their response head.
    premature_resets: Cell<u64>,
    /// The serve loop, woken when a request in flight ends (a place is
    /// free) or is reset early (the limit may be crossed).
    serve_loop: Cell<Option<Waker>>,
}

/// One stream in flight; dropped when its task ends, however it ends.
pub struct InFlight(Rc<ClientStreams>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let streams = &self.0;
        streams.in_flight.set(streams.in_flight.get() - 1);
        streams.wake_serve_loop();
    }
}

impl InFlight {
    /// The client reset this stream after it was forwarded and before its
    /// response.
    pub fn reset_early(&self) {
        let resets = &self.0.premature_resets;
        resets.set(resets.get() + 1);
        self.0.wake_serve_loop();
    }
}

impl ClientStreams {
    pub fn start(self: &Rc<Self>) -> InFlight {
        self.in_flight.set(self.in_flight.get() + 1);
        self.started.set(self.started.get() + 1);
        InFlight(self.clone())
    }

    /// Has the serve loop's task woken when a request in flight ends or is
    /// reset early.
    pub fn wake_on_change(&self, cx: &mut Context<'_>) {
        self.serve_loop.set(Some(cx.waker().clone()));
    }

    fn wake_serve_loop(&self) {
        if let Some(waker) = self.serve_loop.take() {
            waker.wake();
        }
    }

    /// Whether `max` requests are in flight.
    pub fn full(&self, max: usize) -> bool {
        self.in_flight.get() >= max
    }

    /// More than `max` early resets that are also at least half of all the
    /// connection's streams: an attack, not a client cancelling the odd
    /// call (Envoy's rule for premature resets, with its half).
    pub fn too_many_early_resets(&self, max: u64) -> bool {
        let resets = self.premature_resets.get();
        resets > max && resets * 2 >= self.started.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_resets_count_only_past_the_limit_and_as_half_of_the_streams() {
        let streams = Rc::new(ClientStreams::default());
        for _ in 0..10 {
            streams.start().reset_early();
        }
        assert!(!streams.too_many_early_resets(10));
        streams.start().reset_early();
        assert!(streams.too_many_early_resets(10));
        // A long-lived connection that cancels a call in ten is fine.
        for _ in 0..100 {
            drop(streams.start());
        }
        assert!(!streams.too_many_early_resets(10));
        assert_eq!(streams.in_flight.get(), 0);
    }
}
