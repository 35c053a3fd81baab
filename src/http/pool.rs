//! Upstream HTTP/1 connections of one shard and route, pooled per endpoint
//! so keep-alive requests skip the connect. A pooled connection idle for a
//! while is checked before reuse (a peek that finds EOF or stray bytes means
//! the upstream closed or misbehaved) and closed after the idle timeout.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::io::{Arrival, HttpIo};
use crate::io::Socket;
use crate::metrics::Speculating;

/// Most idle connections kept per endpoint; more are closed when returned.
const MAX_IDLE_PER_ENDPOINT: usize = 256;

/// A connection back in the pool for less than this is reused without the
/// peek (a recv(2) per request under load) by a request that can be retried
/// if the connection turns out closed: a server closes keep-alives after
/// seconds of idleness, not within a millisecond of answering. Other
/// requests (a POST, a body) always get the peek.
const PROBE_AFTER_IDLE: Duration = Duration::from_millis(1);

/// One connection to an upstream endpoint. Its `tcp_*` counters record its
/// close when it is dropped.
pub struct Upstream {
    pub io: HttpIo,
    pub endpoint: usize,
    opened: Instant,
    /// True once it has served a request: a failure before any response
    /// byte may then be a keep-alive the upstream closed, worth a retry.
    pub reused: bool,
    failed: bool,
    /// Some while the connection was opened ahead of a client's first
    /// head and has carried no request: it counts against the shard's
    /// speculative limit until it does, or goes back to the pool.
    pub speculative: Option<Speculating>,
}

impl Upstream {
    pub fn new(io: HttpIo, endpoint: usize) -> Upstream {
        io.counters.opened();
        Upstream {
            io,
            endpoint,
            opened: Instant::now(),
            reused: false,
            failed: false,
            speculative: None,
        }
    }

    /// The same connection, opened ahead of its client's first head.
    pub fn held(mut self, speculating: Speculating) -> Upstream {
        self.speculative = Some(speculating);
        self
    }

    pub fn mark_failed(&mut self) {
        self.failed = true;
    }

    /// Still usable: nothing buffered, nothing waiting, not closed.
    fn is_clean(&self) -> bool {
        let mut probe = [0u8; 1];
        self.io.unread().is_empty() && matches!(self.io.socket.try_peek(&mut probe), Ok(None))
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.io.counters.closed(!self.failed, self.opened.elapsed());
    }
}

pub struct Pool {
    /// Per endpoint: idle connections and when each was returned.
    idle: RefCell<Vec<Vec<(Upstream, Instant)>>>,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(endpoints: usize, idle_timeout: Duration) -> Pool {
        Pool {
            idle: RefCell::new((0..endpoints).map(|_| Vec::new()).collect()),
            idle_timeout,
        }
    }

    /// The most recently used live connection to `endpoint`, if any;
    /// `retryable`: the request may skip the check on a fresh return.
    pub fn checkout(&self, endpoint: usize, retryable: bool) -> Option<Upstream> {
        let mut idle = self.idle.borrow_mut();
        let now = Instant::now();
        while let Some((upstream, since)) = idle[endpoint].pop() {
            let idle = now.saturating_duration_since(since);
            if idle >= self.idle_timeout {
                continue;
            }
            let fresh = retryable && idle < PROBE_AFTER_IDLE && upstream.io.unread().is_empty();
            if fresh || upstream.is_clean() {
                return Some(upstream);
            }
        }
        None
    }

    /// Whether a connection to any endpoint waits here. It may be stale
    /// (closed by the upstream, or past the idle timeout until the next
    /// sweep): only `checkout` looks. One length per endpoint, nothing
    /// allocated.
    pub fn holds_idle(&self) -> bool {
        self.idle.borrow().iter().any(|slot| !slot.is_empty())
    }

    pub fn checkin(&self, mut upstream: Upstream) {
        upstream.reused = true;
        upstream.speculative = None;
        let mut idle = self.idle.borrow_mut();
        let slot = &mut idle[upstream.endpoint];
        if slot.len() < MAX_IDLE_PER_ENDPOINT && !self.idle_timeout.is_zero() {
            slot.push((upstream, Instant::now()));
        }
    }

    /// Closes connections idle for longer than the timeout.
    pub fn sweep(&self) {
        let now = Instant::now();
        for slot in self.idle.borrow_mut().iter_mut() {
            slot.retain(|(_, since)| now.saturating_duration_since(*since) < self.idle_timeout);
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }
}

/// Wraps a freshly connected socket for HTTP use.
pub fn upstream(
    socket: Socket,
    counters: Rc<crate::metrics::TcpCounters>,
    endpoint: usize,
) -> Upstream {
    let io = HttpIo::new(socket, counters, Vec::new()).expecting(Arrival::Soon);
    Upstream::new(io, endpoint)
}
