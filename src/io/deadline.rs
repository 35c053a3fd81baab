//! `Deadlines`: the shard's one clock for connection timeouts. A
//! connection arms a deadline by writing an instant into its slot; one
//! ticker task per shard sleeps until the earliest armed instant, wakes
//! the waits that are due, and sleeps again. Arming, re-arming and
//! disarming cost a clock read and a slot write: no timer submission per
//! request or per connection, which is what a glommio timer (an io_uring
//! TIMEOUT, or a LINK_TIMEOUT beside a connect) costs each time.
//!
//! The trade-off is precision: a deadline fires up to [`TICK`] late, never
//! early. Every timeout here is seconds long except the detect quiet pause
//! (300 ms by default), which a tick of 100 ms still resolves to a third.
//! The ticker never polls on a fixed beat: it sleeps until the earliest
//! deadline (at least a tick ahead) and parks while nothing is armed, so
//! an idle shard is not woken for timeouts that are minutes away.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::future;

use super::task::sleep;

/// The coarseness of every deadline: at most this late. 100 ms keeps the
/// 300 ms quiet pause meaningful and costs at most ten ticker wake-ups a
/// second, and only while deadlines keep falling due.
pub const TICK: Duration = Duration::from_millis(100);

/// The deadlines of one shard. Cloning shares them.
#[derive(Clone, Default)]
pub struct Deadlines {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    slots: RefCell<Vec<Slot>>,
    /// Slots of dropped `Deadline`s, reused before the vector grows.
    free: RefCell<Vec<usize>>,
    /// When the ticker's sleep ends; `None` while it is parked (nothing
    /// armed). An arm earlier than this (by more than a tick) wakes it.
    sleeping_until: Cell<Option<Instant>>,
    /// Set when an arm asks the ticker to look again before its sleep ends.
    rearm: Cell<bool>,
    ticker: RefCell<Option<Waker>>,
    /// Set once the shard drains: every deadline armed `until_drain` is
    /// over from then on.
    draining: Cell<bool>,
}

#[derive(Default)]
struct Slot {
    due: Option<Instant>,
    fired: bool,
    /// Armed with [`Deadline::arm_until_drain`]: the wait ends when the
    /// shard drains too.
    until_drain: bool,
    waker: Option<Waker>,
}

/// One connection's deadline: armed, re-armed and disarmed as it moves
/// from one wait to the next. Dropping it frees its slot.
pub struct Deadline {
    inner: Rc<Inner>,
    index: usize,
}

impl Deadlines {
    pub fn new() -> Deadlines {
        Deadlines::default()
    }

    /// A new, disarmed deadline.
    pub fn deadline(&self) -> Deadline {
        let index = match self.inner.free.borrow_mut().pop() {
            Some(index) => index,
            None => {
                let mut slots = self.inner.slots.borrow_mut();
                slots.push(Slot::default());
                slots.len() - 1
            }
        };
        Deadline {
            inner: self.inner.clone(),
            index,
        }
    }

    /// `None` when `duration` passed before `task` finished (it is dropped).
    pub async fn timeout<T>(&self, duration: Duration, task: impl Future<Output = T>) -> Option<T> {
        let deadline = self.deadline();
        deadline.arm(duration);
        future::or(async { Some(task.await) }, async {
            deadline.wait().await;
            None
        })
        .await
    }

    /// Ends every wait on a deadline armed `until_drain`, now and from now
    /// on, without marking it expired: the shard is draining.
    pub fn drain(&self) {
        self.inner.draining.set(true);
        let wakers: Vec<Waker> = (self.inner.slots.borrow_mut().iter_mut())
            .filter(|slot| slot.until_drain)
            .filter_map(|slot| slot.waker.take())
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// The ticker: runs for the life of the shard. Spawn it once.
    pub async fn run(self) {
        loop {
            let now = Instant::now();
            // At least a tick: deadlines due within one fire together.
            let until = self.inner.fire(now).map(|next| next.max(now + TICK));
            self.inner.sleeping_until.set(until);
            let woken = poll_fn(|cx| {
                if self.inner.rearm.replace(false) {
                    return Poll::Ready(());
                }
                let mut ticker = self.inner.ticker.borrow_mut();
                if !ticker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *ticker = Some(cx.waker().clone());
                }
                Poll::Pending
            });
            match until {
                None => woken.await,
                Some(until) => future::or(sleep(until - now), woken).await,
            }
        }
    }

    /// Fires what is due at `now`, as the ticker does (for tests that
    /// move time by hand); the earliest deadline still armed.
    #[cfg(test)]
    fn fire(&self, now: Instant) -> Option<Instant> {
        self.inner.fire(now)
    }
}

impl Inner {
    /// Marks every slot due at `now` fired and wakes its wait; returns the
    /// earliest deadline still armed. A walk over all slots: it runs once
    /// per ticker wake-up, not per request (10,000 slots take ~20 µs).
    fn fire(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut due_wakers = Vec::new();
        for slot in self.slots.borrow_mut().iter_mut() {
            match slot.due {
                Some(due) if due <= now => {
                    slot.due = None;
                    slot.fired = true;
                    due_wakers.extend(slot.waker.take());
                }
                Some(due) => next = Some(next.map_or(due, |next| next.min(due))),
                None => {}
            }
        }
        for waker in due_wakers {
            waker.wake();
        }
        next
    }

    fn set(&self, index: usize, due: Option<Instant>) {
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[index];
        slot.due = due;
        slot.fired = false;
        slot.until_drain = false;
        let Some(due) = due else { return };
        drop(slots);
        let early = match self.sleeping_until.get() {
            None => true,
            Some(until) => due + TICK < until,
        };
        if early {
            self.rearm.set(true);
            // Only a parked or sleeping ticker has a waker to take.
            if let Some(ticker) = self.ticker.borrow_mut().take() {
                ticker.wake();
            }
        }
    }
}

impl Deadline {
    /// Fires `after` from now (re-arms when already armed).
    pub fn arm(&self, after: Duration) {
        self.arm_at(Instant::now() + after);
    }

    pub fn arm_at(&self, due: Instant) {
        self.inner.set(self.index, Some(due));
    }

    /// Fires `after` from now, and its wait ends early when the shard
    /// drains (`Deadlines::drain`): for a connection idle between
    /// requests, which a draining shard closes at once. One flag in the
    /// slot instead of a wait on the shard's drain signal beside the
    /// deadline's, which cost every idle keep-alive connection the
    /// signal's waiter (a semaphore node: 120 bytes of its task).
    pub fn arm_until_drain(&self, after: Duration) {
        self.arm(after);
        self.inner.slots.borrow_mut()[self.index].until_drain = true;
    }

    /// Will not fire until armed again.
    pub fn disarm(&self) {
        self.inner.set(self.index, None);
    }

    /// True once fired, until armed or disarmed again.
    pub fn expired(&self) -> bool {
        self.inner.slots.borrow()[self.index].fired
    }

    /// Resolves once the deadline has fired, or armed `until_drain` once
    /// the shard drains; pending for ever while it is disarmed.
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(|cx| {
            let mut slots = self.inner.slots.borrow_mut();
            let slot = &mut slots[self.index];
            if slot.fired || (slot.until_drain && self.inner.draining.get()) {
                return Poll::Ready(());
            }
            if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                slot.waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        let mut slots = self.inner.slots.borrow_mut();
        slots[self.index] = Slot::default();
        self.inner.free.borrow_mut().push(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Wake};

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Counter(std::sync::atomic::AtomicUsize);

    impl Wake for Counter {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn poll_wait(deadline: &Deadline, waker: &Waker) -> Poll<()> {
        let mut wait = std::pin::pin!(deadline.wait());
        wait.as_mut().poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn fires_when_due_and_wakes_the_wait_once() {
        let deadlines = Deadlines::new();
        let deadline = deadlines.deadline();
        let counter = std::sync::Arc::new(Counter::default());
        let waker = Waker::from(counter.clone());
        let start = Instant::now();
        deadline.arm_at(start + Duration::from_secs(1));
        assert!(poll_wait(&deadline, &waker).is_pending());
        assert_eq!(
            deadlines.fire(start + Duration::from_millis(999)),
            Some(start + Duration::from_secs(1))
        );
        assert!(!deadline.expired());
        assert_eq!(deadlines.fire(start + Duration::from_secs(1)), None);
        assert!(deadline.expired());
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(poll_wait(&deadline, &waker).is_ready());
        // Fired once: a later sweep wakes nobody.
        deadlines.fire(start + Duration::from_secs(5));
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_drain_ends_the_waits_armed_until_drain_and_no_other() {
        let deadlines = Deadlines::new();
        let (idle, busy) = (deadlines.deadline(), deadlines.deadline());
        let counter = std::sync::Arc::new(Counter::default());
        let waker = Waker::from(counter.clone());
        idle.arm_until_drain(Duration::from_secs(60));
        busy.arm(Duration::from_secs(60));
        assert!(poll_wait(&idle, &waker).is_pending());
        assert!(poll_wait(&busy, &waker).is_pending());
        deadlines.drain();
        assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(poll_wait(&idle, &waker).is_ready());
        assert!(poll_wait(&busy, &waker).is_pending());
        // Ended by the drain, not expired: no idle timeout is counted.
        assert!(!idle.expired());
        // Armed after the drain began, it is over at once; re-armed plainly,
        // it waits for its time again.
        idle.arm_until_drain(Duration::from_secs(60));
        assert!(poll_wait(&idle, &waker).is_ready());
        idle.arm(Duration::from_secs(60));
        assert!(poll_wait(&idle, &waker).is_pending());
    }

    #[test]
    fn disarmed_and_rearmed_deadlines_do_not_fire_early() {
        let deadlines = Deadlines::new();
        let deadline = deadlines.deadline();
        let start = Instant::now();
        deadline.arm_at(start + Duration::from_secs(1));
        deadline.disarm();
        assert_eq!(deadlines.fire(start + Duration::from_secs(2)), None);
        assert!(!deadline.expired());
        deadline.arm_at(start + Duration::from_secs(3));
        deadline.arm_at(start + Duration::from_secs(4));
        assert_eq!(
            deadlines.fire(start + Duration::from_secs(3)),
            Some(start + Duration::from_secs(4))
        );
        assert!(!deadline.expired());
        // Re-arming clears an expiry.
        deadlines.fire(start + Duration::from_secs(4));
        assert!(deadline.expired());
        deadline.arm_at(start + Duration::from_secs(9));
        assert!(!deadline.expired());
    }

    #[test]
    fn dropped_deadlines_free_their_slot() {
        let deadlines = Deadlines::new();
        let first = deadlines.deadline();
        first.arm(Duration::from_secs(1));
        drop(first);
        let second = deadlines.deadline();
        assert_eq!(second.index, 0, "the slot is reused");
        assert!(!second.expired());
        assert_eq!(
            deadlines.fire(Instant::now() + Duration::from_secs(2)),
            None
        );
        assert_eq!(deadlines.inner.slots.borrow().len(), 1);
    }

    #[test]
    fn the_ticker_fires_a_timeout_on_a_shard_never_early() {
        glommio::LocalExecutor::default().run(async {
            let deadlines = Deadlines::new();
            glommio::spawn_local(deadlines.clone().run()).detach();
            let started = Instant::now();
            let pause = Duration::from_millis(150);
            let timed_out = deadlines.timeout(pause, future::pending::<()>()).await;
            assert_eq!(timed_out, None);
            assert!(started.elapsed() >= pause);
            // A task that finishes first is not cut.
            let done = deadlines
                .timeout(Duration::from_secs(60), async { 7 })
                .await;
            assert_eq!(done, Some(7));
        });
    }

    #[test]
    fn the_earliest_of_many_is_next() {
        let deadlines = Deadlines::new();
        let start = Instant::now();
        let all: Vec<Deadline> = (1..=5u64)
            .rev()
            .map(|secs| {
                let deadline = deadlines.deadline();
                deadline.arm_at(start + Duration::from_secs(secs));
                deadline
            })
            .collect();
        assert_eq!(deadlines.fire(start), Some(start + Duration::from_secs(1)));
        let next = deadlines.fire(start + Duration::from_secs(2));
        assert_eq!(next, Some(start + Duration::from_secs(3)));
        let fired: Vec<bool> = all.iter().map(Deadline::expired).collect();
        assert_eq!(fired, [false, false, false, true, true]);
    }
}
