//! Connection balancing for opaque TCP: power of two choices, scored by open
//! connections times an EWMA of connect latency. A byte pipe shows nothing
//! else: no requests, no responses, so how fast an endpoint accepts and how
//! many connections it already carries are the whole measure.
//!
//! When every endpoint is backing off, the one back first is tried anyway:
//! a client that gets a connection to a recovering endpoint is better off
//! than one refused outright.

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::two_choices::{Endpoint, Load, TwoChoices};

/// The connect latency assumed before anything is measured.
const INITIAL_CONNECT_LATENCY: Duration = Duration::from_millis(1);
/// Connect latencies below 5 ms count as equal: on one host or one rack
/// the differences are noise, and ties are broken at random, so equal
/// endpoints share the load evenly even when connections come one by one.
const LATENCY_FLOOR_US: f64 = 5000.0;
/// Weight of a new sample in the connect latency average.
const EWMA_WEIGHT: f64 = 0.3;
/// How fast an old latency is forgotten while no new sample arrives: one
/// slow connect must not keep an endpoint unchosen (and so unmeasured)
/// forever.
const LATENCY_DECAY: Duration = Duration::from_secs(1);

/// What the connection balancer knows of an endpoint's load. Public only
/// because `ConnectionBalancer::endpoint` hands out `Endpoint<ConnectLoad>`.
#[derive(Debug)]
pub struct ConnectLoad {
    /// Connections this shard has open to the endpoint now.
    open: Cell<u32>,
    /// Connect latency average, in microseconds.
    connect_latency_us: Cell<f64>,
    /// When the last latency sample came in.
    sampled_at: Cell<Instant>,
}

impl ConnectLoad {
    fn new() -> ConnectLoad {
        ConnectLoad {
            open: Cell::new(0),
            connect_latency_us: Cell::new(INITIAL_CONNECT_LATENCY.as_micros() as f64),
            sampled_at: Cell::new(Instant::now()),
        }
    }
}

impl Load for ConnectLoad {
    fn cost(&self, now: Instant) -> f64 {
        let age = now.saturating_duration_since(self.sampled_at.get());
        let kept = (-age.as_secs_f64() / LATENCY_DECAY.as_secs_f64()).exp();
        let excess = (self.connect_latency_us.get() - LATENCY_FLOOR_US).max(0.0);
        (LATENCY_FLOOR_US + excess * kept) * f64::from(self.open.get() + 1)
    }
}

#[derive(Debug)]
pub struct ConnectionBalancer {
    endpoints: TwoChoices<ConnectLoad>,
}

impl ConnectionBalancer {
    pub fn new(addrs: &[SocketAddr], seed: u64) -> ConnectionBalancer {
        ConnectionBalancer {
            endpoints: TwoChoices::new(addrs, seed, ConnectLoad::new),
        }
    }

    /// The balancer of a changed endpoint set (`TwoChoices::successor`).
    pub fn successor(&self, addrs: &[SocketAddr]) -> ConnectionBalancer {
        ConnectionBalancer {
            endpoints: self.endpoints.successor(addrs, ConnectLoad::new),
        }
    }

    /// Number of endpoints; zero while a route's names have not resolved.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Picks an endpoint, skipping those in `tried`. Endpoints in backoff
    /// are chosen only when nothing else is left.
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        self.endpoints
            .pick(tried)
            .or_else(|| self.endpoints.soonest_back(tried))
    }

    pub fn endpoint(&self, index: usize) -> &Endpoint<ConnectLoad> {
        &self.endpoints[index]
    }

    /// A connect succeeded after `latency`: the connection counts as open
    /// until `disconnected`.
    pub fn connected(&self, index: usize, latency: Duration) {
        let endpoint = &self.endpoints[index];
        let load = &endpoint.load;
        let sample = latency.as_micros() as f64;
        let average = load.connect_latency_us.get();
        load.connect_latency_us
            .set(average + EWMA_WEIGHT * (sample - average));
        load.sampled_at.set(Instant::now());
        load.open.set(load.open.get() + 1);
        endpoint.health.succeeded();
    }

    pub fn disconnected(&self, index: usize) {
        let load = &self.endpoints[index].load;
        load.open.set(load.open.get().saturating_sub(1));
    }

    /// Records a failed connect; the backoff doubles with each failure in a
    /// row, from 100 ms up to 10 s.
    pub fn failed(&self, index: usize) {
        self.endpoints[index].health.failed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 1000 + i)))
            .collect()
    }

    #[test]
    fn spreads_connections_over_equal_endpoints() {
        let balancer = ConnectionBalancer::new(&addrs(2), 7);
        let mut counts = [0; 2];
        for _ in 0..100 {
            let i = balancer.pick(&[]).unwrap();
            balancer.connected(i, Duration::from_millis(1));
            counts[i] += 1;
        }
        assert!(counts.iter().all(|&c| c >= 40), "{counts:?}");
    }

    #[test]
    fn sequential_connections_to_fast_endpoints_are_shared() {
        let balancer = ConnectionBalancer::new(&addrs(2), 7);
        let mut counts = [0; 2];
        for n in 0..100u64 {
            let i = balancer.pick(&[]).unwrap();
            // Loopback-fast and noisy: 50 to 250 microseconds.
            balancer.connected(i, Duration::from_micros(50 + n * 37 % 200));
            balancer.disconnected(i);
            counts[i] += 1;
        }
        assert!(counts.iter().all(|&c| c >= 30), "{counts:?}");
    }

    #[test]
    fn prefers_the_faster_endpoint() {
        let balancer = ConnectionBalancer::new(&addrs(2), 7);
        for _ in 0..10 {
            balancer.connected(0, Duration::from_millis(1));
            balancer.disconnected(0);
            balancer.connected(1, Duration::from_millis(50));
            balancer.disconnected(1);
        }
        let fast = (0..100).filter(|_| balancer.pick(&[]) == Some(0)).count();
        assert_eq!(fast, 100);
    }

    #[test]
    fn a_successor_keeps_what_was_learned_of_the_endpoints_that_stay() {
        let balancer = ConnectionBalancer::new(&addrs(2), 7);
        balancer.connected(1, Duration::from_millis(1));
        balancer.failed(0);
        let moved = [addrs(3)[2], addrs(2)[1]];
        let next = balancer.successor(&moved);
        assert_eq!(next.endpoint(1).addr, moved[1]);
        assert_eq!(next.endpoint(1).load.open.get(), 1, "the open connection");
        // Closed on the old set, where its index was picked: counted once.
        balancer.disconnected(1);
        assert_eq!(next.endpoint(1).load.open.get(), 0);
        assert!((0..20).all(|_| next.pick(&[]).is_some()));
        assert_eq!(balancer.successor(&[]).pick(&[]), None, "an empty set");
    }

    #[test]
    fn failing_endpoint_backs_off_and_tried_ones_are_skipped() {
        let balancer = ConnectionBalancer::new(&addrs(3), 11);
        balancer.failed(1);
        for _ in 0..50 {
            assert_ne!(balancer.pick(&[]), Some(1));
        }
        assert_eq!(
            balancer.pick(&[0, 2]),
            Some(1),
            "last resort while backing off"
        );
        assert_eq!(balancer.pick(&[0, 1, 2]), None);
    }
}
