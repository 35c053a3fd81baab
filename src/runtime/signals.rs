//! SIGTERM and SIGINT, turned into a drain of every shard, and SIGHUP,
//! into a config reload. The handlers only write a byte into a socket pair
//! (one for each meaning); the admin shard's executor reads it and acts.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use glommio::net::UnixStream;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// SIGTERM and SIGINT, delivered as bytes on a socket pair. The handlers
/// are installed at start-up, before any socket is announced, so a signal
/// can never find the default action (death) in place; the admin shard
/// reads the socket with glommio. The first signal starts a drain; a second
/// one ends the process at once with status 1.
pub struct Signals {
    reader: std::os::unix::net::UnixStream,
    /// Kept open: the signal handler writes into it.
    writer: std::os::unix::net::UnixStream,
    /// SIGHUP's pair: without a handler it would end the process.
    hangup: (
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    ),
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
        let (hangup_reader, hangup_writer) = std::os::unix::net::UnixStream::pair()?;
        hangup_writer.set_nonblocking(true)?;
        signal_hook::low_level::pipe::register_raw(SIGHUP, hangup_writer.as_raw_fd())?;
        Ok(Signals {
            reader,
            writer,
            hangup: (hangup_reader, hangup_writer),
        })
    }

    /// The drain's signals and SIGHUP's, apart. Must run on a glommio
    /// executor (the admin shard's).
    pub fn into_async(self) -> (AsyncSignals, AsyncSignals) {
        let (hangup_reader, hangup_writer) = self.hangup;
        let stop = AsyncSignals::new(self.reader, self.writer);
        (stop, AsyncSignals::new(hangup_reader, hangup_writer))
    }
}

pub struct AsyncSignals {
    reader: UnixStream,
    _writer: std::os::unix::net::UnixStream,
}

impl AsyncSignals {
    fn new(
        reader: std::os::unix::net::UnixStream,
        writer: std::os::unix::net::UnixStream,
    ) -> AsyncSignals {
        // SAFETY: `reader` is a connected socket we own; its fd moves into
        // the glommio stream, which closes it.
        let reader = unsafe { UnixStream::from_raw_fd(reader.into_raw_fd()) };
        AsyncSignals {
            reader,
            _writer: writer,
        }
    }

    /// Resolves when a signal arrives.
    pub async fn recv(&mut self) -> io::Result<()> {
        use futures_lite::AsyncReadExt;
        let mut byte = [0u8; 1];
        self.reader.read(&mut byte).await.map(|_| ())
    }
}
