//! Failure backoff, or ejection: an endpoint whose connect fails sits out
//! for a while, doubling with each failure in a row, from 100 ms up to 10 s.
//!
//! Only failed connects count, reported by the callers: a refused or timed
//! out connect says the endpoint is gone, while a slow answer is for the
//! latency estimates to weigh. One successful connect clears the record, so
//! an endpoint that comes back gets its share at once; the price is a few
//! more failed connects against one that flaps. What happens when every
//! endpoint sits out is the balancer's choice, not this file's.

use std::cell::Cell;
use std::time::{Duration, Instant};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Long enough that a dead endpoint costs a client a failed connect only
/// now and then; short enough that one that restarts is back within
/// seconds.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long an endpoint sits out after `failures` failed connects in a row.
fn failure_backoff(failures: u32) -> Duration {
    MIN_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// One endpoint's record of failed connects.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// Failed connects in a row; 0 when the last one succeeded. The backoff
    /// grows with it.
    failures: Cell<u32>,
    /// Sits out until this instant; `None` when the last connect succeeded.
    backoff_until: Cell<Option<Instant>>,
}

impl Health {
    /// Not sitting out at `now`.
    pub(super) fn available(&self, now: Instant) -> bool {
        self.backoff_until.get().is_none_or(|until| until <= now)
    }

    /// When the backoff ends; `None` when there is none.
    pub(super) fn backoff_until(&self) -> Option<Instant> {
        self.backoff_until.get()
    }

    /// A connect failed: sit out for longer than last time.
    pub(super) fn failed(&self) {
        let failures = self.failures.get().saturating_add(1);
        self.failures.set(failures);
        let until = Instant::now() + failure_backoff(failures);
        self.backoff_until.set(Some(until));
    }

    /// A connect succeeded: the record starts over.
    pub(super) fn succeeded(&self) {
        self.failures.set(0);
        self.backoff_until.set(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100_ms_up_to_10_s() {
        let millis = |failures| failure_backoff(failures).as_millis();
        assert_eq!(millis(1), 100);
        assert_eq!(millis(2), 200);
        assert_eq!(millis(3), 400);
        assert_eq!(millis(7), 6_400);
        assert_eq!(millis(8), 10_000);
        assert_eq!(millis(u32::MAX), 10_000);
    }

    #[test]
    fn a_failure_sits_out_until_its_backoff_ends_and_a_success_clears_it() {
        let health = Health::default();
        let before = Instant::now();
        assert!(health.available(before));

        health.failed();
        assert!(!health.available(before + Duration::from_millis(99)));
        assert!(health.available(Instant::now() + Duration::from_millis(100)));

        health.failed();
        assert!(!health.available(before + Duration::from_millis(199)));
        assert!(health.available(Instant::now() + Duration::from_millis(200)));

        health.succeeded();
        assert!(health.available(before));
        assert_eq!(health.backoff_until(), None);
        health.failed();
        assert!(
            health.available(Instant::now() + Duration::from_millis(100)),
            "the doubling starts over after a success"
        );
    }
}
