//! SIGTERM and SIGINT, turned into a drain of every shard. The handlers
//! only write a byte into a socket pair; the admin shard's executor reads
//! it and sends each shard a drain request.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use glommio::net::UnixStream;
use signal_hook::consts::{SIGINT, SIGTERM};

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
