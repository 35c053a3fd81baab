//! Shutdown: a shard-local signal every accept loop listens to, and the
//! process-wide SIGTERM/SIGINT handling that starts a drain.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use glommio::net::UnixStream;
use glommio::sync::Semaphore;
use signal_hook::consts::{SIGINT, SIGTERM};

/// Fires once; everything waiting on it wakes. Shard-local.
pub struct Shutdown {
    /// Never has permits: waiters park on it until `trigger` closes it.
    closed: Semaphore,
    triggered: std::cell::Cell<bool>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown {
            closed: Semaphore::new(0),
            triggered: std::cell::Cell::new(false),
        }
    }

    pub fn trigger(&self) {
        self.triggered.set(true);
        self.closed.close();
    }

    pub fn is_triggered(&self) -> bool {
        self.triggered.get()
    }

    /// Resolves once `trigger` has been called. The semaphore never gets a
    /// permit, so `acquire` only returns when `trigger` closes it.
    pub async fn wait(&self) {
        let _ = self.closed.acquire(1).await;
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

/// SIGTERM and SIGINT, delivered as bytes on a socket pair. The handlers
/// are installed at start-up, before any socket is announced, so a signal
/// can never find the default action (death) in place; the admin shard
/// reads the socket with glommio. The first signal starts a drain; a second
/// one ends the process at once with status 1.
pub struct Signals {
    reader: std::os::unix::net::UnixStream,
    /// Kept open: the signal handler writes into it.
    writer: std::os::unix::net::UnixStream,
}

impl Signals {
    pub fn register() -> io::Result<Signals> {
        let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
        writer.set_nonblocking(true)?;
        let second_signal = Arc::new(AtomicBool::new(false));
        for signal in [SIGTERM, SIGINT] {
            // Order matters: the shutdown check runs before the flag is set,
            // so only a signal that finds the flag already set exits.
            signal_hook::flag::register_conditional_shutdown(signal, 1, second_signal.clone())?;
            signal_hook::flag::register(signal, second_signal.clone())?;
            signal_hook::low_level::pipe::register_raw(signal, writer.as_raw_fd())?;
        }
        Ok(Signals { reader, writer })
    }

    /// Must run on a glommio executor (the admin shard's).
    pub fn into_async(self) -> AsyncSignals {
        // SAFETY: `reader` is a connected socket we own; its fd moves into
        // the glommio stream, which closes it.
        let reader = unsafe { UnixStream::from_raw_fd(self.reader.into_raw_fd()) };
        AsyncSignals {
            reader,
            _writer: self.writer,
        }
    }
}

pub struct AsyncSignals {
    reader: UnixStream,
    _writer: std::os::unix::net::UnixStream,
}

impl AsyncSignals {
    /// Resolves when a signal arrives.
    pub async fn recv(&mut self) -> io::Result<()> {
        use futures_lite::AsyncReadExt;
        let mut byte = [0u8; 1];
        self.reader.read(&mut byte).await.map(|_| ())
    }
}
