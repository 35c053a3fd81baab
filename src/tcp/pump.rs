//! One direction of an opaque connection: bytes from `src` to `dst` until
//! `src` ends, then a FIN to `dst`.
//!
//! The splice pump moves bytes socket → pipe → socket inside the kernel.
//! glommio has no splice op and no readiness API, so waiting uses its
//! ordinary reads and writes:
//! - `src` would block: read one byte through glommio (it parks the task
//!   until the socket is readable), put it into the pipe, go on splicing;
//! - `dst` would block: move a little of the pipe through user space with
//!   glommio's write, which parks until the socket is writable.
//!
//! Both slow paths copy a few bytes only when a socket is idle or full; the
//! bulk of a transfer never enters user space.

use std::io;

use super::pipe::{splice, Pipe, PipePool};
use super::socket::Socket;
use crate::metrics::TcpCounters;

/// Most bytes one splice(2) call asks for; the pipe's capacity bounds it too.
const SPLICE_CHUNK: usize = 1 << 20;
/// User-space buffer of the copy pump and of the splice pump's slow path.
const COPY_BUFFER: usize = 64 * 1024;
const SLOW_PATH_BUFFER: usize = 16 * 1024;

/// Where a pump failed, so the connection can blame the right side.
#[derive(Debug)]
pub enum PumpError {
    Read(io::Error),
    Write(io::Error),
    /// No pipe could be opened (fd or pipe-memory limits).
    Pipe(io::Error),
}

/// The ends of one direction and the counters each end reports to.
pub struct Direction<'a> {
    pub src: &'a Socket,
    pub dst: &'a Socket,
    pub src_counters: &'a TcpCounters,
    pub dst_counters: &'a TcpCounters,
}

impl Direction<'_> {
    fn read(&self, n: usize) {
        self.src_counters.read(n);
    }

    fn wrote(&self, n: usize) {
        self.dst_counters.wrote(n);
    }

    fn finish(&self) -> Result<(), PumpError> {
        self.dst.shutdown_write().map_err(PumpError::Write)
    }

    /// Forwards with splice(2), borrowing a pipe from `pool` only while
    /// bytes are in flight.
    pub async fn splice(self, pool: &PipePool) -> Result<(), PumpError> {
        let mut lent: Option<Pipe> = None;
        let result = self.splice_with(pool, &mut lent).await;
        if let Some(pipe) = lent {
            pool.give_back(pipe);
        }
        result
    }

    async fn splice_with(&self, pool: &PipePool, lent: &mut Option<Pipe>) -> Result<(), PumpError> {
        let mut slow_path = Vec::new();
        loop {
            let pipe = match lent {
                Some(pipe) => pipe,
                None => lent.insert(pool.take().map_err(PumpError::Pipe)?),
            };
            match splice(self.src.fd(), pipe.write_fd(), SPLICE_CHUNK) {
                Ok(0) => {
                    self.drain(pipe, &mut slow_path).await?;
                    return self.finish();
                }
                Ok(n) => {
                    pipe.buffered += n;
                    self.read(n);
                    self.drain(pipe, &mut slow_path).await?;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.drain(pipe, &mut slow_path).await?;
                    // Idle: hand the pipe back before parking.
                    if let Some(pipe) = lent.take() {
                        pool.give_back(pipe);
                    }
                    let mut first = [0u8; 1];
                    if self.src.read(&mut first).await.map_err(PumpError::Read)? == 0 {
                        return self.finish();
                    }
                    self.read(1);
                    let pipe = lent.insert(pool.take().map_err(PumpError::Pipe)?);
                    pipe.write_from(&first).map_err(PumpError::Pipe)?;
                }
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
                    self.wrote(n);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    // `dst` is full: let glommio park us until it is not.
                    slow_path.resize(SLOW_PATH_BUFFER, 0);
                    let n = pipe.read_into(slow_path).map_err(PumpError::Pipe)?;
                    self.dst
                        .write_all(&slow_path[..n])
                        .await
                        .map_err(PumpError::Write)?;
                    self.wrote(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(PumpError::Write(err)),
            }
        }
        Ok(())
    }

    /// Forwards through a user-space buffer: the fallback for when splice is
    /// not wanted (and the shape TLS streams will need).
    pub async fn copy(self) -> Result<(), PumpError> {
        let mut buf = vec![0u8; COPY_BUFFER];
        loop {
            let n = self.src.read(&mut buf).await.map_err(PumpError::Read)?;
            if n == 0 {
                return self.finish();
            }
            self.read(n);
            self.dst
                .write_all(&buf[..n])
                .await
                .map_err(PumpError::Write)?;
            self.wrote(n);
        }
    }
}
