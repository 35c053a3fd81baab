//! A change made to ringside's world every so often while the load runs (a
//! config reload, a DNS flip), from a thread of its own: the same loop the
//! origin restarter runs, with the change as a closure over its state.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// A change that runs every `period` until finished.
pub struct Periodic<S: Send + 'static> {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<anyhow::Result<S>>,
}

/// A change: makes it on the state it owns; an error stops the thread and
/// is handed back by [`Periodic::finish`].
pub trait Change: Send + 'static {
    fn apply(&mut self) -> anyhow::Result<()>;
}

impl<S: Change> Periodic<S> {
    pub fn start(name: &str, period: Duration, mut state: S) -> anyhow::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("soak-{name}"))
            .spawn(move || loop {
                match stopped.recv_timeout(period) {
                    Err(RecvTimeoutError::Timeout) => state.apply()?,
                    _ => return Ok(state),
                }
            })?;
        Ok(Self { stop, thread })
    }

    /// Stops the changes and hands back the state.
    pub fn finish(self) -> anyhow::Result<S> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("a periodic change panicked"))?
    }
}
