//! Upstream connections of one shard and route, pooled per endpoint so
//! requests skip the connect. HTTP/1 (`Pool`): several per endpoint, one
//! per request in flight; a pooled connection idle for a while is checked
//! before reuse (a peek that finds EOF or stray bytes means the upstream
//! closed or misbehaved) and closed after the idle timeout. HTTP/2
//! (`H2Pool`): one multiplexed connection per endpoint, let go once no
//! request has used it for the idle timeout.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;

use super::answer::ProxyError;
use super::io::{Arrival, HttpIo};
use super::HttpRoute;
use crate::io::Socket;
use crate::metrics::Speculating;
use crate::shard::Shard;
use crate::tls::SessionProtocol;

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

    /// The pool of a changed endpoint set, with the idle connections of the
    /// endpoints that stay: `new_index` maps an endpoint's index here to
    /// its index there, `None` for one that left (its connections close).
    pub fn successor(&self, endpoints: usize, new_index: impl Fn(usize) -> Option<usize>) -> Pool {
        let next = Pool::new(endpoints, self.idle_timeout);
        let mut idle = self.idle.borrow_mut();
        let mut next_idle = next.idle.borrow_mut();
        for (old, slot) in idle.iter_mut().enumerate() {
            let Some(index) = new_index(old) else {
                slot.clear();
                continue;
            };
            for (mut upstream, since) in slot.drain(..) {
                upstream.endpoint = index;
                next_idle[index].push((upstream, since));
            }
        }
        drop(next_idle);
        next
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

/// Per endpoint, the sender of its HTTP/2 connection and when a request
/// last took it. Letting go of the sender closes the connection once the
/// streams in flight (which hold senders of their own) are done.
pub struct H2Pool {
    senders: RefCell<Vec<Option<Pooled>>>,
}

/// A connection's sender and when a request last took it.
type Pooled = (SendRequest<Bytes>, Instant);

impl H2Pool {
    pub fn new(endpoints: usize) -> H2Pool {
        H2Pool {
            senders: RefCell::new(vec![None; endpoints]),
        }
    }

    /// The pool of a changed endpoint set (as `Pool::successor`): a
    /// connection of an endpoint that left is let go, and closes once its
    /// streams in flight are done.
    pub fn successor(
        &self,
        endpoints: usize,
        new_index: impl Fn(usize) -> Option<usize>,
    ) -> H2Pool {
        let next = H2Pool::new(endpoints);
        let mut senders = self.senders.borrow_mut();
        let mut next_senders = next.senders.borrow_mut();
        for (old, slot) in senders.iter_mut().enumerate() {
            if let (Some(pooled), Some(index)) = (slot.take(), new_index(old)) {
                next_senders[index] = Some(pooled);
            }
        }
        drop(next_senders);
        next
    }

    /// The endpoint's sender, if it has a connection; marks it used.
    pub fn take_sender(&self, endpoint: usize) -> Option<SendRequest<Bytes>> {
        let mut senders = self.senders.borrow_mut();
        let (sender, used) = senders[endpoint].as_mut()?;
        *used = Instant::now();
        Some(sender.clone())
    }

    pub fn has_connection(&self, endpoint: usize) -> bool {
        self.senders.borrow()[endpoint].is_some()
    }

    pub fn has_any(&self) -> bool {
        self.senders.borrow().iter().any(Option::is_some)
    }

    pub fn set(&self, endpoint: usize, sender: Option<SendRequest<Bytes>>) {
        self.senders.borrow_mut()[endpoint] = sender.map(|sender| (sender, Instant::now()));
    }

    /// Lets go of connections no request took for `idle_timeout`.
    pub fn sweep(&self, idle_timeout: Duration) {
        let now = Instant::now();
        for slot in self.senders.borrow_mut().iter_mut() {
            if slot
                .as_ref()
                .is_some_and(|(_, used)| now.saturating_duration_since(*used) >= idle_timeout)
            {
                *slot = None;
            }
        }
    }
}

/// A pooled connection to endpoint `index`, or a new one; `retryable`: the
/// request may skip the pool's check of a connection just returned.
pub(super) async fn pooled_or_new(
    shard: &Shard,
    route: &HttpRoute,
    index: usize,
    retryable: bool,
) -> Result<Upstream, ProxyError> {
    if let Some(upstream) = route.pool.checkout(index, retryable) {
        return Ok(upstream);
    }
    let socket = super::connect(shard, route, index, SessionProtocol::Http1).await?;
    let counters = route.metrics.dst[index].clone();
    Ok(upstream(socket, counters, index))
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

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
