//! Wake-ups are never lost. A shard that parks must wake when another
//! thread hands it work: the admin shard's snapshot requests over glommio's
//! shared channels, or a waker called from a plain thread; and when its next
//! timer is due. The patched glommio (vendor/glommio/PATCHES.md) changes the
//! sleep/notify handshake and how the timeout that ends a park is armed,
//! where a lost wake-up would hang a shard for good, so these tests hammer
//! them: every exchange (or timer) makes a side park, for a bounded time,
//! and a watchdog fails the test the moment progress stops.
//!
//! Also here: an executor set up as ringside's are hands no work to
//! io_uring's worker threads (glommio patch 20).
//!
//! CI runs the short form (2 s each); `RINGSIDE_WAKEUP_SECONDS=60 cargo
//! test --release --test wakeups` is the long one.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use glommio::channels::shared_channel;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

/// A wake-up that takes longer than this is taken as lost: a healthy one
/// takes microseconds, a loaded CI machine a few milliseconds.
const STALL: Duration = Duration::from_secs(10);

/// An executor thread named `name` running `task` until it returns, set
/// up as ringside's shards are: no preemption by I/O completions.
fn executor<F, T>(name: &str, task: F) -> ExecutorJoinHandle<()>
where
    F: FnOnce() -> T + Send + 'static,
    T: std::future::Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .name(name)
        .preempt_on_io(false)
        .spawn(task)
        .expect("an executor thread")
}

fn run_for() -> Duration {
    let seconds = std::env::var("RINGSIDE_WAKEUP_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(2);
    Duration::from_secs(seconds)
}

/// Watches `progress` until `done`; panics when it stands still for
/// `STALL`. Returns the final count.
fn watch(what: &str, progress: &AtomicU64, done: &AtomicBool) -> u64 {
    let mut last = (0, Instant::now());
    while !done.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(20));
        let now = progress.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        }
        assert!(
            last.1.elapsed() < STALL,
            "{what}: no progress for {STALL:?} after {now} exchanges: a wake-up was lost"
        );
    }
    progress.load(Ordering::SeqCst)
}

#[test]
fn shared_channel_ping_pong_between_two_executors_never_stalls() {
    let (ping_tx, ping_rx) = shared_channel::new_bounded::<u64>(1);
    let (pong_tx, pong_rx) = shared_channel::new_bounded::<u64>(1);
    let progress = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let run_for = run_for();

    let pinger = executor("ping", {
        let (progress, done) = (progress.clone(), done.clone());
        move || async move {
            let pings = ping_tx.connect().await;
            let pongs = pong_rx.connect().await;
            let deadline = Instant::now() + run_for;
            let mut sent = 0;
            while Instant::now() < deadline {
                pings.send(sent).await.expect("the ponger is there");
                let back = pongs.recv().await.expect("the ponger answers");
                assert_eq!(back, sent);
                sent += 1;
                progress.store(sent, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        }
    });
    let ponger = executor("pong", move || async move {
        let pings = ping_rx.connect().await;
        let pongs = pong_tx.connect().await;
        while let Some(ping) = pings.recv().await {
            if pongs.send(ping).await.is_err() {
                break;
            }
        }
    });

    let exchanges = watch("shared channels", &progress, &done);
    pinger.join().expect("the pinger ends");
    ponger.join().expect("the ponger ends");
    assert!(exchanges > 100, "only {exchanges} exchanges in {run_for:?}");
}

/// A value handed from a plain thread to a task, waking it.
#[derive(Default)]
struct Handoff {
    slot: Mutex<(Option<u64>, Option<Waker>)>,
}

impl Handoff {
    fn give(&self, value: u64) {
        let waker = {
            let mut slot = self.slot.lock().unwrap();
            slot.0 = Some(value);
            slot.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn take(&self) -> impl Future<Output = u64> + '_ {
        struct Take<'a>(&'a Handoff);
        impl Future for Take<'_> {
            type Output = u64;
            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
                let mut slot = self.0.slot.lock().unwrap();
                match slot.0.take() {
                    Some(value) => Poll::Ready(value),
                    None => {
                        slot.1 = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            }
        }
        Take(self)
    }
}

#[test]
fn a_waker_called_from_a_plain_thread_always_wakes_a_parked_executor() {
    let handoff = Arc::new(Handoff::default());
    let answered = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let run_for = run_for();

    let executor = executor("woken", {
        let (handoff, answered, done) = (handoff.clone(), answered.clone(), done.clone());
        move || async move {
            while !done.load(Ordering::SeqCst) {
                let value = handoff.take().await;
                answered.store(value, Ordering::SeqCst);
            }
        }
    });

    let waker_thread = thread::spawn({
        let (handoff, answered, done) = (handoff.clone(), answered.clone(), done.clone());
        move || {
            let deadline = Instant::now() + run_for;
            let mut value = 0;
            while Instant::now() < deadline {
                value += 1;
                handoff.give(value);
                // Wait for the answer, so that the executor parks again
                // before the next wake-up.
                while answered.load(Ordering::SeqCst) != value {
                    thread::yield_now();
                    if done.load(Ordering::SeqCst) {
                        return;
                    }
                }
            }
            done.store(true, Ordering::SeqCst);
            // The executor may be waiting for one more value.
            handoff.give(value + 1);
        }
    });

    let exchanges = watch("foreign wakers", &answered, &done);
    done.store(true, Ordering::SeqCst);
    handoff.give(u64::MAX);
    waker_thread.join().expect("the waking thread ends");
    executor.join().expect("the executor ends");
    assert!(exchanges > 100, "only {exchanges} wake-ups in {run_for:?}");
}

/// A timer due within microseconds of a park must still wake the executor.
/// Parking arms the latency-ring timeout for the next timer; one that short
/// fires while the rings are flushed, and glommio patch 3 then consumed its
/// completion (which wakes no task) and slept with nothing armed, until
/// some I/O came (glommio patch 11; the soak's stalled requests that got
/// no 504). Here no I/O ever comes: each sleep, from 0 to 29 µs, parks
/// the executor, and a lost wake-up stops the progress for good.
#[test]
fn a_timer_due_within_microseconds_of_a_park_wakes_the_executor() {
    let slept = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let run_for = run_for();

    let sleeper = executor("sleeper", {
        let (slept, done) = (slept.clone(), done.clone());
        move || async move {
            let deadline = Instant::now() + run_for;
            let mut count = 0;
            while Instant::now() < deadline {
                glommio::timer::sleep(Duration::from_micros(count % 30)).await;
                count += 1;
                slept.store(count, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        }
    });

    let sleeps = watch("short timers", &slept, &done);
    sleeper.join().expect("the sleeper ends");
    assert!(sleeps > 100, "only {sleeps} sleeps in {run_for:?}");
}

/// The io-wq worker threads io_uring made for this thread: it names them
/// `iou-wrk-` and the tid of the thread whose work they took.
fn io_workers_of_this_thread() -> usize {
    let this = std::fs::read_link("/proc/thread-self").expect("procfs");
    let tid = this.file_name().unwrap().to_string_lossy().into_owned();
    let threads = std::fs::read_dir("/proc/self/task").expect("procfs");
    let names =
        threads.filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok());
    names
        .filter(|name| name.trim() == format!("iou-wrk-{tid}"))
        .count()
}

/// A thousand one-byte round trips over loopback TCP between two tasks of
/// one executor, then the io-wq workers made for the executor's thread.
/// Each round trip completes about two readiness polls on the main ring.
fn io_workers_after_round_trips(preempt_on_io: bool) -> usize {
    LocalExecutorBuilder::new(Placement::Unbound)
        .preempt_on_io(preempt_on_io)
        .spawn(round_trips_then_io_workers)
        .expect("an executor thread")
        .join()
        .expect("the round trips end")
}

async fn round_trips_then_io_workers() -> usize {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use glommio::net::{TcpListener, TcpStream};
    const ROUND_TRIPS: usize = 1000;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = glommio::spawn_local(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut byte = [0u8];
        for _ in 0..ROUND_TRIPS {
            stream.write_all(b"x").await.unwrap();
            stream.read_exact(&mut byte).await.unwrap();
        }
    });
    let mut stream = listener.accept().await.unwrap();
    let mut byte = [0u8];
    for _ in 0..ROUND_TRIPS {
        stream.read_exact(&mut byte).await.unwrap();
        stream.write_all(&byte).await.unwrap();
    }
    client.await;
    io_workers_of_this_thread()
}

/// glommio preempts the running task queue after every `ring_depth` I/O
/// completions with a write to its eventfd linked to a counting TIMEOUT,
/// and io_uring hands each such write to an io-wq worker thread: a thread
/// woken beside the shard every 128 completions. Ringside's executors turn
/// it off (glommio patch 20); the default, kept for glommio's own users,
/// shows that the count sees the workers.
#[test]
fn an_executor_without_preemption_by_io_hands_no_work_to_io_uring_workers() {
    assert_eq!(io_workers_after_round_trips(false), 0);
    assert!(
        io_workers_after_round_trips(true) > 0,
        "the default makes one"
    );
}
