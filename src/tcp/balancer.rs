//! Connection balancing over a route's endpoints: power of two choices,
//! scored by open connections times an EWMA of connect latency, with
//! exponential backoff for endpoints that keep failing.
//!
//! Each shard has its own balancer per route. Shards do not share what they
//! learn: that costs a little accuracy and saves every cross-core write.

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

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
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long an endpoint sits out after `failures` failed connects in a
/// row: doubling from 100 ms up to 10 s. Shared by both balancers.
pub(crate) fn failure_backoff(failures: u32) -> Duration {
    MIN_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// The random half of "power of two choices": cheap shard-local xorshift.
#[derive(Debug)]
pub(crate) struct TwoChoices {
    state: Cell<u64>,
}

impl TwoChoices {
    pub(crate) fn new(seed: u64) -> TwoChoices {
        TwoChoices {
            state: Cell::new(seed | 1),
        }
    }

    /// Two distinct indexes below `n` (which must be at least 2).
    pub(crate) fn pair(&self, n: usize) -> (usize, usize) {
        let a = self.below(n);
        let mut b = self.below(n - 1);
        if b >= a {
            b += 1;
        }
        (a, b)
    }

    fn below(&self, n: usize) -> usize {
        let mut x = self.state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state.set(x);
        (x % n as u64) as usize
    }
}

#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Connections this shard has open to the endpoint now.
    open: Cell<u32>,
    /// Connect latency average, in microseconds.
    connect_latency_us: Cell<f64>,
    /// When the last latency sample came in.
    sampled_at: Cell<Instant>,
    /// Failed connects in a row; 0 when the last one succeeded.
    failures: Cell<u32>,
    /// Not chosen before this instant while others are available.
    backoff_until: Cell<Option<Instant>>,
}

impl Endpoint {
    fn new(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            open: Cell::new(0),
            connect_latency_us: Cell::new(INITIAL_CONNECT_LATENCY.as_micros() as f64),
            sampled_at: Cell::new(Instant::now()),
            failures: Cell::new(0),
            backoff_until: Cell::new(None),
        }
    }

    fn cost(&self, now: Instant) -> f64 {
        let age = now.saturating_duration_since(self.sampled_at.get());
        let kept = (-age.as_secs_f64() / LATENCY_DECAY.as_secs_f64()).exp();
        let excess = (self.connect_latency_us.get() - LATENCY_FLOOR_US).max(0.0);
        (LATENCY_FLOOR_US + excess * kept) * f64::from(self.open.get() + 1)
    }

    fn available(&self, now: Instant) -> bool {
        self.backoff_until.get().is_none_or(|until| until <= now)
    }
}

#[derive(Debug)]
pub struct Balancer {
    endpoints: Vec<Endpoint>,
    choices: TwoChoices,
}

impl Balancer {
    pub fn new(addrs: &[SocketAddr], seed: u64) -> Balancer {
        Balancer {
            endpoints: addrs.iter().copied().map(Endpoint::new).collect(),
            choices: TwoChoices::new(seed),
        }
    }

    /// Number of endpoints; never zero (config validation sees to that).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Picks an endpoint, skipping those in `tried`. Endpoints in backoff
    /// are chosen only when nothing else is left.
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        let now = Instant::now();
        let untried = || (0..self.endpoints.len()).filter(|i| !tried.contains(i));
        let mut candidates: Vec<usize> = untried()
            .filter(|&i| self.endpoints[i].available(now))
            .collect();
        if candidates.is_empty() {
            // Everything is backing off: try the one that recovers first
            // rather than fail the client outright.
            return untried().min_by_key(|&i| self.endpoints[i].backoff_until.get());
        }
        if candidates.len() == 1 {
            return candidates.pop();
        }
        let (a, b) = self.choices.pair(candidates.len());
        let (a, b) = (candidates[a], candidates[b]);
        let (cost_a, cost_b) = (self.endpoints[a].cost(now), self.endpoints[b].cost(now));
        Some(if cost_a <= cost_b { a } else { b })
    }

    pub fn endpoint(&self, index: usize) -> &Endpoint {
        &self.endpoints[index]
    }

    pub fn connected(&self, index: usize, latency: Duration) {
        let endpoint = &self.endpoints[index];
        let sample = latency.as_micros() as f64;
        let average = endpoint.connect_latency_us.get();
        endpoint
            .connect_latency_us
            .set(average + EWMA_WEIGHT * (sample - average));
        endpoint.sampled_at.set(Instant::now());
        endpoint.failures.set(0);
        endpoint.backoff_until.set(None);
        endpoint.open.set(endpoint.open.get() + 1);
    }

    pub fn disconnected(&self, index: usize) {
        let endpoint = &self.endpoints[index];
        endpoint.open.set(endpoint.open.get().saturating_sub(1));
    }

    /// Records a failed connect; the backoff doubles with each failure in a
    /// row, from 100 ms up to 10 s.
    pub fn failed(&self, index: usize) {
        let endpoint = &self.endpoints[index];
        let failures = endpoint.failures.get().saturating_add(1);
        endpoint.failures.set(failures);
        endpoint
            .backoff_until
            .set(Some(Instant::now() + failure_backoff(failures)));
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
        let balancer = Balancer::new(&addrs(2), 7);
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
        let balancer = Balancer::new(&addrs(2), 7);
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
        let balancer = Balancer::new(&addrs(2), 7);
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
    fn failing_endpoint_backs_off_and_tried_ones_are_skipped() {
        let balancer = Balancer::new(&addrs(3), 11);
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
