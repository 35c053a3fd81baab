//! Request balancing for HTTP: power of two choices by peak EWMA of response
//! latency, weighted by requests in flight, as Linkerd balances (RTT prior
//! 30 ms, decay 10 s). A slow endpoint's estimate jumps up at once (the
//! peak) and only decays back over seconds, so it quickly gets a small
//! share; an endpoint whose connects fail is ejected with backoff.
//!
//! When every endpoint is ejected or tried, nothing is picked and the caller
//! answers 503: a request, unlike a connection, can be refused cleanly.

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::two_choices::{Load, TwoChoices};

const RTT_PRIOR: Duration = Duration::from_millis(30);
const DECAY: Duration = Duration::from_secs(10);

/// What the request balancer knows of an endpoint's load.
#[derive(Debug)]
struct RequestLoad {
    /// Requests sent and not yet answered.
    pending: Cell<u32>,
    /// Latency estimate in nanoseconds, as of `stamp`.
    rtt_ns: Cell<f64>,
    stamp: Cell<Instant>,
}

impl RequestLoad {
    /// What is assumed of an endpoint before it answers.
    fn prior() -> RequestLoad {
        RequestLoad {
            pending: Cell::new(0),
            rtt_ns: Cell::new(RTT_PRIOR.as_nanos() as f64),
            stamp: Cell::new(Instant::now()),
        }
    }

    /// How much of the estimate is kept `elapsed` seconds after `stamp`.
    fn kept(elapsed: f64) -> f64 {
        (-elapsed / DECAY.as_secs_f64()).exp()
    }

    /// The estimate decayed toward zero for the time since the last sample,
    /// so an endpoint not chosen for a while gets another chance.
    fn rtt_now(&self, now: Instant) -> f64 {
        let elapsed = now
            .saturating_duration_since(self.stamp.get())
            .as_secs_f64();
        self.rtt_ns.get() * RequestLoad::kept(elapsed)
    }
}

impl Load for RequestLoad {
    fn cost(&self, now: Instant) -> f64 {
        self.rtt_now(now) * f64::from(self.pending.get() + 1)
    }
}

#[derive(Debug)]
pub struct RequestBalancer {
    endpoints: TwoChoices<RequestLoad>,
}

impl RequestBalancer {
    pub fn new(addrs: &[SocketAddr], seed: u64) -> RequestBalancer {
        RequestBalancer {
            endpoints: TwoChoices::new(addrs, seed, RequestLoad::prior),
        }
    }

    /// The balancer of a changed endpoint set (`TwoChoices::successor`).
    pub fn successor(&self, addrs: &[SocketAddr]) -> RequestBalancer {
        RequestBalancer {
            endpoints: self.endpoints.successor(addrs, RequestLoad::prior),
        }
    }

    /// Number of endpoints; zero while a route's names have not resolved.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn addr(&self, index: usize) -> SocketAddr {
        self.endpoints[index].addr
    }

    /// Picks an available endpoint not in `tried`; `None` when every
    /// endpoint is ejected or tried (the caller answers 503).
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        self.endpoints.pick(tried)
    }

    pub fn started(&self, index: usize) {
        let load = &self.endpoints[index].load;
        load.pending.set(load.pending.get() + 1);
    }

    /// Ends a request started with `started`; `latency` is `Some` when a
    /// response came back, and feeds the estimate.
    pub fn finished(&self, index: usize, latency: Option<Duration>) {
        let load = &self.endpoints[index].load;
        load.pending.set(load.pending.get().saturating_sub(1));
        let Some(latency) = latency else { return };
        let now = Instant::now();
        let sample = latency.as_nanos() as f64;
        let previous = load.rtt_ns.get();
        let next = if sample > previous {
            sample // the peak: slowness shows at once
        } else {
            let elapsed = now
                .saturating_duration_since(load.stamp.get())
                .as_secs_f64();
            let keep = RequestLoad::kept(elapsed);
            previous * keep + sample * (1.0 - keep)
        };
        load.rtt_ns.set(next);
        load.stamp.set(now);
    }

    /// Ejects the endpoint for a while; the backoff doubles with each
    /// failure in a row, from 100 ms up to 10 s.
    pub fn connect_failed(&self, index: usize) {
        self.endpoints[index].health.failed();
    }

    /// Ends an ejection early: the endpoint answers again.
    pub fn connected(&self, index: usize) {
        self.endpoints[index].health.succeeded();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer(n: u16) -> RequestBalancer {
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 80 + i)))
            .collect();
        RequestBalancer::new(&addrs, 3)
    }

    #[test]
    fn a_slow_endpoint_quickly_gets_a_small_share() {
        let b = balancer(2);
        let mut served = [0u32; 2];
        for _ in 0..1000 {
            let i = b.pick(&[]).unwrap();
            served[i] += 1;
            b.started(i);
            let latency = if i == 0 {
                Duration::from_micros(300)
            } else {
                Duration::from_millis(30)
            };
            b.finished(i, Some(latency));
        }
        assert!(served[0] > 950, "{served:?}");
    }

    #[test]
    fn requests_in_flight_spread_load_over_equal_endpoints() {
        let b = balancer(2);
        for i in 0..2 {
            b.started(i);
            b.finished(i, Some(Duration::from_millis(1)));
        }
        let mut served = [0u32; 2];
        for _ in 0..100 {
            let i = b.pick(&[]).unwrap();
            b.started(i); // never finished: in flight
            served[i] += 1;
        }
        assert!(served.iter().all(|&s| s >= 40), "{served:?}");
    }

    #[test]
    fn a_successor_keeps_the_estimate_and_ejection_of_endpoints_that_stay() {
        let b = balancer(2);
        b.started(0);
        b.finished(0, Some(Duration::from_secs(5)));
        b.connect_failed(1);
        let next = b.successor(&[b.addr(1), b.addr(0)]);
        assert_eq!(
            next.pick(&[]),
            Some(1),
            "81 is still ejected: only 80 is left"
        );
        assert_eq!(next.addr(1), b.addr(0));
        assert_eq!(next.pick(&[1]), None);
    }

    #[test]
    fn failing_endpoints_are_ejected_until_none_is_left() {
        let b = balancer(2);
        b.connect_failed(0);
        assert!((0..50).all(|_| b.pick(&[]) == Some(1)));
        b.connect_failed(1);
        assert_eq!(b.pick(&[]), None);
        b.connected(1);
        assert_eq!(b.pick(&[]), Some(1));
        assert_eq!(b.pick(&[1]), None);
    }
}
