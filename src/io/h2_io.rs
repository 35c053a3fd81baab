//! The adapter h2 needs: tokio's I/O traits over a glommio stream, with the
//! bytes detection already read served first and every byte counted.
//!
//! Reads take what is there. h2 reads into an 8 KiB buffer, and offered
//! the rest of it (7,350 bytes, typically) a read of a busy upstream
//! connection took a recv(2) per 7 KiB; filling that room meant zeroing it
//! first (`ReadBuf::initialize_unfilled`), pages an idle connection never
//! needed. Reads go to the shard's 64 KiB scratch buffer instead, and
//! what h2 had no room for waits in the connection's `unread` for its next
//! reads.
//!
//! Writes are gathered and sent by a task of their own. h2 flushes its
//! writer whenever its frame buffer is full, and a DATA frame longer than
//! 256 bytes fills it, so it flushes after every such frame, and then once
//! more at the end of each poll. A flush that sent would make a send(2)
//! per response body (measured: 2,066-byte sends, two 1 KiB bodies each,
//! under 32 streams). Here a flush only hands what h2 wrote to a flusher
//! task queued behind the shard's waiting tasks (`spawn_queued`): every
//! frame of every stream that becomes ready before that task runs leaves
//! in one send. Only the flusher writes to the socket, so bytes keep their
//! order.
//!
//! A connection cut off with a GOAWAY can linger: dropped, it reads and
//! discards what the client still sends for a moment before closing. A
//! socket closed with unread bytes sends a reset, and a client that is
//! still writing (a rapid-reset attacker, or any busy client) would lose
//! the GOAWAY that says why before it reads it.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::ReadBuf;

use super::{spawn, spawn_queued, timeout, Scratch, Socket};
use crate::metrics::TcpCounters;

/// Most bytes gathered before h2's writes wait for the flusher.
const MAX_GATHERED_BYTES: usize = 64 * 1024;

/// How long, and for how many bytes, a lingering connection keeps reading
/// before it closes: a client gets a round trip or two to read the GOAWAY,
/// but cannot hold the connection open by writing.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_MAX_BYTES: usize = 1 << 20;

pub struct H2Io {
    outbox: Rc<Outbox>,
    /// Set (through `Linger`) when the connection ends with a GOAWAY that
    /// the client should get to read.
    linger: Rc<Cell<bool>>,
    /// Bytes read but not yet taken by h2, served first: detection's, and
    /// what a read into the scratch buffer got beyond h2's room.
    unread: Vec<u8>,
    served: usize,
    scratch: Scratch,
}

/// The sending half, shared by the adapter and its flusher task.
struct Outbox {
    socket: Socket,
    counters: Rc<TcpCounters>,
    /// Written by h2, not yet sent.
    gathered: RefCell<Vec<u8>>,
    /// A flusher task is on its way or running.
    flushing: Cell<bool>,
    /// The adapter was dropped: the flusher stops.
    closed: Cell<bool>,
    /// Why a send failed; every later write fails the same way.
    failed: Cell<Option<Failure>>,
    /// The running flusher, parked on the socket.
    flusher: Cell<Option<Waker>>,
    /// h2's task, waiting for room in `gathered` or for the flusher to end.
    writer: Cell<Option<Waker>>,
}

/// An `io::Error` kept to be returned more than once.
#[derive(Clone, Copy)]
enum Failure {
    Os(i32),
    Kind(io::ErrorKind),
}

impl Failure {
    fn of(err: &io::Error) -> Failure {
        err.raw_os_error()
            .map_or(Failure::Kind(err.kind()), Failure::Os)
    }

    fn error(self) -> io::Error {
        match self {
            Failure::Os(code) => io::Error::from_raw_os_error(code),
            Failure::Kind(kind) => kind.into(),
        }
    }
}

impl H2Io {
    /// `prefix`: what was read from `socket` before h2 took over.
    pub fn new(
        socket: Socket,
        prefix: Vec<u8>,
        counters: Rc<TcpCounters>,
        scratch: Scratch,
    ) -> H2Io {
        H2Io {
            outbox: Rc::new(Outbox {
                socket,
                counters,
                gathered: RefCell::default(),
                flushing: Cell::new(false),
                closed: Cell::new(false),
                failed: Cell::new(None),
                flusher: Cell::new(None),
                writer: Cell::new(None),
            }),
            linger: Rc::default(),
            unread: prefix,
            served: 0,
            scratch,
        }
    }

    /// A handle that makes this connection linger when it is dropped.
    pub fn linger(&self) -> Linger {
        Linger(self.linger.clone())
    }
}

impl Outbox {
    /// Starts a flusher unless one is on its way.
    fn flush_later(self: &Rc<Self>) {
        if self.flushing.replace(true) {
            return;
        }
        let outbox = self.clone();
        spawn_queued(async move { poll_fn(|cx| outbox.poll_send(cx)).await });
    }

    /// The flusher: sends what is gathered, more as it comes, until none
    /// is left, the socket fails or the adapter is dropped.
    fn poll_send(&self, cx: &mut Context<'_>) -> Poll<()> {
        let sent = self.poll_send_all(cx);
        if sent.is_pending() && !self.closed.get() {
            self.flusher.set(Some(cx.waker().clone()));
            return Poll::Pending;
        }
        if let Poll::Ready(Err(err)) = sent {
            self.failed.set(Some(Failure::of(&err)));
        }
        self.flushing.set(false);
        self.wake_writer();
        Poll::Ready(())
    }

    fn poll_send_all(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.closed.get() {
                return Poll::Ready(Ok(()));
            }
            let mut gathered = self.gathered.borrow_mut();
            if gathered.is_empty() {
                break;
            }
            let n = std::task::ready!(self.socket.poll_write(cx, &gathered))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.counters.wrote(n);
            gathered.drain(..n);
            if gathered.capacity() > MAX_GATHERED_BYTES && gathered.is_empty() {
                // A burst's buffer is not kept by an idle connection.
                *gathered = Vec::new();
            }
            drop(gathered);
            self.wake_writer();
        }
        // A TLS session sends the records it holds.
        self.socket.poll_flush(cx)
    }

    fn wake_writer(&self) {
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
    }

    fn check(&self) -> io::Result<()> {
        match self.failed.get() {
            Some(failure) => Err(failure.error()),
            None => Ok(()),
        }
    }
}

impl H2Io {
    /// Serves what was read before, as much as `buf` takes.
    fn serve_unread(&mut self, buf: &mut ReadBuf<'_>) {
        let n = buf.remaining().min(self.unread.len() - self.served);
        buf.put_slice(&self.unread[self.served..self.served + n]);
        self.served += n;
        if self.served == self.unread.len() {
            // Not kept by an idle connection.
            self.unread = Vec::new();
            self.served = 0;
        }
    }
}

impl tokio::io::AsyncRead for H2Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.served < this.unread.len() {
            this.serve_unread(buf);
            return Poll::Ready(Ok(()));
        }
        let outbox = &this.outbox;
        let mut scratch = this.scratch.borrow_mut();
        let n = std::task::ready!(outbox.socket.poll_read(cx, &mut scratch))?;
        outbox.counters.read(n);
        let fits = n.min(buf.remaining());
        buf.put_slice(&scratch[..fits]);
        if fits < n {
            this.unread = scratch[fits..n].to_vec();
            this.served = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for H2Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let outbox = &self.outbox;
        outbox.check()?;
        let mut gathered = outbox.gathered.borrow_mut();
        if gathered.len() >= MAX_GATHERED_BYTES {
            drop(gathered);
            outbox.writer.set(Some(cx.waker().clone()));
            outbox.flush_later();
            return Poll::Pending;
        }
        let n = buf.len().min(MAX_GATHERED_BYTES - gathered.len());
        gathered.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    /// Ready at once: the flusher sends what was gathered once the shard's
    /// ready tasks have run (see the module's header).
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outbox = &self.outbox;
        outbox.check()?;
        if !outbox.gathered.borrow().is_empty() {
            outbox.flush_later();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outbox = &self.outbox;
        if !outbox.gathered.borrow().is_empty() {
            outbox.flush_later();
        }
        if outbox.flushing.get() {
            outbox.writer.set(Some(cx.waker().clone()));
            return Poll::Pending;
        }
        outbox.check()?;
        outbox.socket.poll_close_write(cx)
    }
}

/// Makes an `H2Io` linger when dropped; see the module's header.
pub struct Linger(Rc<Cell<bool>>);

impl Linger {
    pub fn set(&self) {
        self.0.set(true);
    }
}

impl Drop for H2Io {
    fn drop(&mut self) {
        let outbox = &self.outbox;
        outbox.closed.set(true);
        if let Some(flusher) = outbox.flusher.take() {
            flusher.wake();
        }
        if !self.linger.get() {
            return;
        }
        let outbox = outbox.clone();
        spawn(async move {
            let drain = async {
                let mut buf = vec![0; 16 * 1024];
                let mut drained = 0;
                while drained < LINGER_MAX_BYTES {
                    match outbox.socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => drained += n,
                    }
                }
            };
            let _ = timeout(LINGER, drain).await;
        });
    }
}

#[cfg(test)]
#[path = "h2_io_tests.rs"]
mod tests;
