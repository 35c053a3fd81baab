//! Power of two choices: draw two endpoints at random and use the cheaper.
//! Both balancers pick this way; each says what an endpoint costs (`Load`).
//!
//! Why two drawn and not the cheapest of all: each shard learns costs on its
//! own, from its own traffic, so every shard taking the endpoint that looks
//! best to it would send bursts to the same one. Two random draws spread the
//! load almost as well as a full comparison and never choose the costliest
//! endpoint; the price is that the cheapest is missed when it is not drawn
//! (with n endpoints it is among the two with probability 2/n).
//!
//! Candidates are the endpoints not tried yet for this connection or request
//! and not in backoff (`health`).
//!
//! An index names an endpoint of one `TwoChoices` only. When a route's set
//! changes, a new one is made (`successor`) and the old one stays as it was
//! for the connections that hold it, so an index can never name another
//! endpoint than the one it was picked for. What was learned of an endpoint
//! that stays is not lost: both hold the same `Rc<Endpoint>`, so a request
//! still finishing on the old set counts on the record the new set picks by.

use std::cell::Cell;
use std::net::SocketAddr;
use std::ops::Index;
use std::rc::Rc;
use std::time::Instant;

use super::health::Health;

/// What an endpoint costs; each balancer has its own measure.
pub(super) trait Load {
    /// Lower is better. Only compared between two endpoints of one balancer
    /// at one instant, so the unit is the balancer's own.
    fn cost(&self, now: Instant) -> f64;
}

/// One endpoint of a route.
#[derive(Debug)]
pub struct Endpoint<L> {
    pub addr: SocketAddr,
    /// Failed connects, and whether the endpoint sits out because of them.
    pub(super) health: Health,
    /// What the balancer measures to say how costly the endpoint is.
    pub(super) load: L,
}

/// A route's endpoints and the random draws that pick among them.
#[derive(Debug)]
pub(super) struct TwoChoices<L> {
    endpoints: Vec<Rc<Endpoint<L>>>,
    draws: Xorshift,
}

impl<L: Load> TwoChoices<L> {
    /// `load` makes each endpoint's starting measure. `seed` should differ
    /// between shards and balancers, so that they draw differently.
    pub(super) fn new(addrs: &[SocketAddr], seed: u64, load: impl Fn() -> L) -> TwoChoices<L> {
        TwoChoices {
            endpoints: addrs.iter().map(|&addr| fresh(addr, &load)).collect(),
            draws: Xorshift::new(seed),
        }
    }

    /// The balancer of the set `addrs`, which replaces this one's: an
    /// endpoint in both keeps its record (health and load), a new one
    /// starts with `load`'s.
    pub(super) fn successor(&self, addrs: &[SocketAddr], load: impl Fn() -> L) -> TwoChoices<L> {
        let kept = |addr: SocketAddr| self.endpoints.iter().find(|e| e.addr == addr).cloned();
        TwoChoices {
            endpoints: addrs
                .iter()
                .map(|&addr| kept(addr).unwrap_or_else(|| fresh(addr, &load)))
                .collect(),
            draws: Xorshift::new(self.draws.state.get()),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// The cheaper of two candidates drawn at random; the only one when one
    /// is left; `None` when every endpoint is tried or in backoff.
    pub(super) fn pick(&self, tried: &[usize]) -> Option<usize> {
        let now = Instant::now();
        let mut candidates: Vec<usize> = self
            .untried(tried)
            .filter(|&i| self.endpoints[i].health.available(now))
            .collect();
        match candidates.len() {
            0 => None,
            1 => candidates.pop(),
            n => {
                let (a, b) = self.draws.pair(n);
                let (a, b) = (candidates[a], candidates[b]);
                let cost = |i: usize| self.endpoints[i].load.cost(now);
                Some(if cost(a) <= cost(b) { a } else { b })
            }
        }
    }

    /// The untried endpoint whose backoff ends first: a last resort when
    /// `pick` finds nothing.
    pub(super) fn soonest_back(&self, tried: &[usize]) -> Option<usize> {
        self.untried(tried)
            .min_by_key(|&i| self.endpoints[i].health.backoff_until())
    }

    fn untried<'a>(&'a self, tried: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
        (0..self.endpoints.len()).filter(move |i| !tried.contains(i))
    }
}

impl<L> Index<usize> for TwoChoices<L> {
    type Output = Endpoint<L>;

    fn index(&self, index: usize) -> &Endpoint<L> {
        &self.endpoints[index]
    }
}

fn fresh<L>(addr: SocketAddr, load: &impl Fn() -> L) -> Rc<Endpoint<L>> {
    Rc::new(Endpoint {
        addr,
        health: Health::default(),
        load: load(),
    })
}

/// The random half: a shard-local xorshift. Not for secrets; it only has to
/// spread draws, and costs a few shifts.
#[derive(Debug)]
struct Xorshift {
    state: Cell<u64>,
}

impl Xorshift {
    fn new(seed: u64) -> Xorshift {
        // Zero would stay zero forever.
        Xorshift {
            state: Cell::new(seed | 1),
        }
    }

    /// Two distinct indexes below `n` (which must be at least 2).
    fn pair(&self, n: usize) -> (usize, usize) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A cost the test sets by hand.
    #[derive(Debug, Default)]
    struct Fixed(Cell<f64>);

    impl Load for Fixed {
        fn cost(&self, _now: Instant) -> f64 {
            self.0.get()
        }
    }

    fn endpoints(n: u16) -> TwoChoices<Fixed> {
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 2000 + i)))
            .collect();
        TwoChoices::new(&addrs, 5, Fixed::default)
    }

    #[test]
    fn pairs_are_two_distinct_indexes_in_range() {
        let draws = Xorshift::new(0);
        for n in 2..10 {
            for _ in 0..100 {
                let (a, b) = draws.pair(n);
                assert!(a < n && b < n && a != b, "{a} {b} below {n}");
            }
        }
    }

    #[test]
    fn of_two_the_cheaper_is_always_picked() {
        let set = endpoints(2);
        set[1].load.0.set(2.0);
        set[0].load.0.set(1.0);
        assert!((0..50).all(|_| set.pick(&[]) == Some(0)));
    }

    #[test]
    fn the_costliest_of_many_is_never_picked() {
        let set = endpoints(5);
        for i in 0..5 {
            set[i].load.0.set(i as f64);
        }
        let picks: Vec<usize> = (0..200).filter_map(|_| set.pick(&[])).collect();
        assert_eq!(picks.len(), 200);
        assert!(!picks.contains(&4), "{picks:?}");
        assert!(picks.contains(&0) && picks.contains(&3), "{picks:?}");
    }

    #[test]
    fn tried_and_backing_off_endpoints_are_not_candidates() {
        let set = endpoints(3);
        set[1].health.failed();
        assert!((0..50).all(|_| set.pick(&[0]) == Some(2)));
        assert_eq!(set.pick(&[0, 2]), None);
        assert_eq!(set.soonest_back(&[0, 2]), Some(1));
        assert_eq!(set.soonest_back(&[0, 1, 2]), None);
    }

    #[test]
    fn the_last_resort_is_the_endpoint_back_first() {
        let set = endpoints(3);
        // 100 ms, then 200 ms, then 400 ms of backoff, each starting no
        // earlier than the one before: the order holds on a busy machine.
        set[1].health.failed();
        set[0].health.failed();
        set[0].health.failed();
        set[2].health.failed();
        set[2].health.failed();
        set[2].health.failed();
        assert_eq!(set.pick(&[]), None);
        assert_eq!(set.soonest_back(&[]), Some(1));
        assert_eq!(set.soonest_back(&[1]), Some(0));
    }
}
