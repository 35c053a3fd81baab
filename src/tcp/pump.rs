//! One direction of an opaque connection: bytes from `src` to `dst` until
//! `src` ends, then a FIN to `dst`.
//!
//! The pump adapts to the traffic. Small messages (requests, responses,
//! interactive bytes) are cheapest copied: what the socket holds is taken
//! with one non-blocking recv into the shard's scratch buffer and sent on
//! with one non-blocking send. When a read fills the scratch buffer, a bulk
//! transfer is under way and the pump switches to splice(2), which moves the
//! bytes socket → pipe → socket inside the kernel until the source runs dry.
//!
//! glommio has no splice op and no readiness API, so waiting uses its
//! ordinary reads and writes:
//! - `src` idle: read through glommio (it parks the task until the socket
//!   is readable) straight into the shard's scratch buffer, lent for one
//!   poll only: the poll that reads is also the one that sends the bytes
//!   on, so no other task can see them;
//! - `dst` full: whatever could not be sent waits in a pipe, drained with
//!   splice, and when that would block too, a little of it moves through
//!   glommio's write, which parks until the socket is writable.
//!
//! An idle direction holds no pipe and no buffer: only glommio's readiness
//! poll on `src`.
//!
//! A TLS end (mTLS between ringside proxies) can neither be spliced nor
//! sent to without waiting, so such a direction copies through a buffer of
//! its own, and ends with close_notify before the FIN.

use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::task::Poll;
use std::time::Instant;

use super::pipe::{splice, Pipe, PipePool};
use crate::config::ForwardMode;
use crate::io::{Received, Scratch, Socket};
use crate::metrics::TcpCounters;

/// Most bytes one splice(2) call asks for; the pipe's capacity bounds it too.
const SPLICE_CHUNK: usize = 1 << 20;
/// Bytes moved through user space per write while `dst` is full.
const SLOW_PATH_BUFFER: usize = 16 * 1024;
/// A direction with a TLS end copies this much per read: one full TLS
/// record.
const TLS_COPY_BUFFER: usize = 16 * 1024;

/// Where a pump failed, so the connection can blame the right side.
#[derive(Debug)]
pub enum PumpError {
    Read(io::Error),
    Write(io::Error),
    /// No pipe could be opened (fd or pipe-memory limits).
    Pipe(io::Error),
}

/// What a shard's pumps share: pooled pipes and one scratch buffer, which
/// is only ever borrowed within one poll.
pub struct PumpResources {
    /// Splice bulk transfers, or copy everything.
    pub mode: ForwardMode,
    pub pipes: PipePool,
    pub scratch: Scratch,
}

impl PumpResources {
    pub fn new(mode: ForwardMode, pipe_size_bytes: usize) -> PumpResources {
        PumpResources {
            mode,
            pipes: PipePool::new(pipe_size_bytes),
            scratch: Scratch::new(),
        }
    }
}

/// The ends of one direction and the counters each end reports to.
pub struct Direction<'a> {
    pub src: &'a Socket,
    pub dst: &'a Socket,
    pub src_counters: &'a TcpCounters,
    pub dst_counters: &'a TcpCounters,
    /// When bytes last came in, for an idle timeout (`None`: no timeout,
    /// and no clock read per read).
    pub activity: Option<&'a Cell<Instant>>,
}

/// What one burst through the scratch buffer found.
enum Burst {
    /// `src` has no more bytes right now.
    Dry,
    /// The scratch buffer filled: more is probably waiting.
    Full,
    /// `src` sent FIN.
    Eof,
}

impl Direction<'_> {
    /// Forwards until `src` ends. `ForwardMode::Copy` never splices from
    /// the source socket.
    pub async fn run(&self, shard: &PumpResources) -> Result<(), PumpError> {
        if self.src.is_tls() || self.dst.is_tls() {
            return Box::pin(self.copy_through_tls(shard)).await;
        }
        let mut lent: Option<Pipe> = None;
        let result = self.run_with(shard, &mut lent).await;
        if let Some(pipe) = lent {
            shard.pipes.give_back(pipe);
        }
        result
    }

    async fn run_with(
        &self,
        shard: &PumpResources,
        lent: &mut Option<Pipe>,
    ) -> Result<(), PumpError> {
        loop {
            // Idle: hand the pipe back before parking.
            if let Some(pipe) = lent.take() {
                shard.pipes.give_back(pipe);
            }
            // The wake-up read goes into the shared scratch buffer, and
            // what it got is sent on in the same poll. A buffer of the
            // connection's own would be what an idle direction costs (it
            // was 512 bytes, an eighth of an idle connection).
            let burst = poll_fn(|cx| {
                let mut scratch = shard.scratch.borrow_mut();
                match self.src.poll_read(cx, &mut scratch) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(err)) => Poll::Ready(Err(PumpError::Read(err))),
                    Poll::Ready(Ok(0)) => Poll::Ready(Ok(Burst::Eof)),
                    Poll::Ready(Ok(n)) => {
                        Poll::Ready(self.burst(Some(n), &mut scratch, shard, lent))
                    }
                }
            })
            .await?;
            // The common case, a message sent on whole, needs nothing more.
            let ended = match burst {
                Burst::Dry if lent.is_none() => false,
                Burst::Eof if lent.is_none() => true,
                // Backpressure or a bulk transfer: that state lives in its
                // own boxed future, so what an idle direction keeps stays
                // small (it is all that 10,000 idle connections cost).
                burst => Box::pin(self.keep_moving(burst, shard, lent)).await?,
            };
            if ended {
                return self.finish();
            }
        }
    }

    /// Moves bytes until `src` runs dry: drains the pipe into `dst`, takes
    /// further bursts, and splices once a burst shows a bulk transfer.
    /// `true` when `src` ended.
    async fn keep_moving(
        &self,
        mut burst: Burst,
        shard: &PumpResources,
        lent: &mut Option<Pipe>,
    ) -> Result<bool, PumpError> {
        let mut slow_path = Vec::new();
        loop {
            if let Some(pipe) = lent.as_mut() {
                self.drain(pipe, &mut slow_path).await?;
            }
            match burst {
                Burst::Eof => return Ok(true),
                Burst::Dry => return Ok(false),
                Burst::Full if shard.mode == ForwardMode::Splice => {
                    return self.splice_until_dry(shard, lent, &mut slow_path).await;
                }
                Burst::Full => {
                    let mut scratch = shard.scratch.borrow_mut();
                    burst = self.burst(None, &mut scratch, shard, lent)?;
                }
            }
        }
    }

    /// Sends the `woken` bytes the wake-up read put at the start of
    /// `scratch` or, without them, what `src` holds now, taken into
    /// `scratch`; as much goes to `dst` as it takes at once and the rest
    /// into a pipe for `drain`.
    fn burst(
        &self,
        woken: Option<usize>,
        scratch: &mut [u8],
        shard: &PumpResources,
        lent: &mut Option<Pipe>,
    ) -> Result<Burst, PumpError> {
        let (len, burst) = match woken {
            // A short read emptied the socket: the whole message. A full
            // one means more is probably waiting.
            Some(n) if n < scratch.len() => (n, Burst::Dry),
            Some(n) => (n, Burst::Full),
            None => match self.src.try_recv(scratch).map_err(PumpError::Read)? {
                Received::Bytes(n) if n == scratch.len() => (n, Burst::Full),
                Received::Bytes(n) => (n, Burst::Dry),
                Received::WouldBlock => (0, Burst::Dry),
                Received::Eof => (0, Burst::Eof),
            },
        };
        let bytes = &scratch[..len];
        self.src_counters.read(bytes.len());
        if len > 0 {
            self.active();
        }
        let sent = self.dst.try_send(bytes).map_err(PumpError::Write)?;
        self.dst_counters.wrote(sent);
        if sent < bytes.len() {
            let pipe = match lent {
                Some(pipe) => pipe,
                None => lent.insert(shard.pipes.take().map_err(PumpError::Pipe)?),
            };
            pipe.write_from(&bytes[sent..]).map_err(PumpError::Pipe)?;
        }
        Ok(burst)
    }

    fn active(&self) {
        if let Some(activity) = self.activity {
            activity.set(Instant::now());
        }
    }

    /// Splices until `src` would block; `true` when it ended (FIN).
    async fn splice_until_dry(
        &self,
        shard: &PumpResources,
        lent: &mut Option<Pipe>,
        slow_path: &mut Vec<u8>,
    ) -> Result<bool, PumpError> {
        loop {
            let pipe = match lent {
                Some(pipe) => pipe,
                None => lent.insert(shard.pipes.take().map_err(PumpError::Pipe)?),
            };
            match splice(self.src.fd(), pipe.write_fd(), SPLICE_CHUNK) {
                Ok(0) => return Ok(true),
                Ok(n) => {
                    pipe.buffered += n;
                    self.src_counters.read(n);
                    self.active();
                    self.drain(pipe, slow_path).await?;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(PumpError::Read(err)),
            }
        }
    }

    /// Empties the pipe into `dst`.
    async fn drain(&self, pipe: &mut Pipe, slow_path: &mut Vec<u8>) -> Result<(), PumpError> {
        while pipe.buffered > 0 {
            match splice(pipe.read_fd(), self.dst.fd(), pipe.buffered) {
                Ok(n) => {
                    pipe.buffered -= n;
                    self.dst_counters.wrote(n);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    // `dst` is full: let glommio park us until it is not.
                    slow_path.resize(SLOW_PATH_BUFFER, 0);
                    let n = pipe.read_into(slow_path).map_err(PumpError::Pipe)?;
                    self.dst
                        .write_all(&slow_path[..n])
                        .await
                        .map_err(PumpError::Write)?;
                    self.dst_counters.wrote(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(PumpError::Write(err)),
            }
        }
        Ok(())
    }

    /// Copies until `src` ends; see the module's header. The read goes
    /// into the shard's scratch buffer, lent for one poll as on the plain
    /// path, and only what it got is kept while `dst` takes it: an idle
    /// TLS direction holds no buffer (a buffer of its own was 16 KiB per
    /// direction, 64 of the 67 KiB an idle meshed connection cost its two
    /// proxies).
    async fn copy_through_tls(&self, shard: &PumpResources) -> Result<(), PumpError> {
        loop {
            let read = poll_fn(|cx| {
                let mut scratch = shard.scratch.borrow_mut();
                let buf = &mut scratch[..TLS_COPY_BUFFER];
                self.src.poll_read(cx, buf).map_ok(|n| buf[..n].to_vec())
            });
            let bytes = read.await.map_err(PumpError::Read)?;
            if bytes.is_empty() {
                return self.dst.close_write().await.map_err(PumpError::Write);
            }
            self.src_counters.read(bytes.len());
            self.active();
            self.dst.write_all(&bytes).await.map_err(PumpError::Write)?;
            self.dst_counters.wrote(bytes.len());
        }
    }

    fn finish(&self) -> Result<(), PumpError> {
        self.dst.shutdown_write().map_err(PumpError::Write)
    }
}

#[cfg(test)]
#[path = "pump_tests.rs"]
mod tests;
