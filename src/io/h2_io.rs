//! The adapter h2 needs: tokio's I/O traits over a glommio stream, with the
//! bytes detection already read served first and every byte counted.
//!
//! Writes are gathered: h2 writes and flushes each time its connection task
//! runs, which is once per stream event, so an unbuffered adapter makes a
//! send(2) per frame batch of one stream (two per proxied request, measured).
//! Here a flush first yields to the shard's other tasks once, so the frames
//! of every stream that became ready meanwhile leave in one send.
//!
//! A connection cut off with a GOAWAY can linger: dropped, it reads and
//! discards what the client still sends for a moment before closing. A
//! socket closed with unread bytes sends a reset, and a client that is
//! still writing (a rapid-reset attacker, or any busy client) would lose
//! the GOAWAY that says why before it reads it.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::ReadBuf;

use super::{spawn, timeout, Socket};
use crate::metrics::TcpCounters;

/// Most bytes gathered before a write goes to the socket without waiting
/// for a flush.
const MAX_GATHERED_BYTES: usize = 64 * 1024;

/// How long, and for how many bytes, a lingering connection keeps reading
/// before it closes: a client gets a round trip or two to read the GOAWAY,
/// but cannot hold the connection open by writing.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_MAX_BYTES: usize = 1 << 20;

pub struct H2Io {
    /// Always `Some` until dropped, when a lingering close takes it.
    stream: Option<Socket>,
    /// Set (through `Linger`) when the connection ends with a GOAWAY that
    /// the client should get to read.
    linger: Rc<Cell<bool>>,
    /// Bytes read before h2 took over (detection's), served first.
    prefix: Vec<u8>,
    served: usize,
    counters: Rc<TcpCounters>,
    /// Written by h2, not yet sent.
    gathered: Vec<u8>,
    /// The current flush has already yielded once.
    yielded: bool,
}

impl H2Io {
    pub fn new(socket: Socket, prefix: Vec<u8>, counters: Rc<TcpCounters>) -> H2Io {
        H2Io {
            stream: Some(socket),
            linger: Rc::default(),
            prefix,
            served: 0,
            counters,
            gathered: Vec::new(),
            yielded: false,
        }
    }

    /// A handle that makes this connection linger when it is dropped.
    pub fn linger(&self) -> Linger {
        Linger(self.linger.clone())
    }

    /// Sends what was gathered; Ready once all of it is in the socket.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.gathered.is_empty() {
            let n = match live(&self.stream).poll_write(cx, &self.gathered) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            };
            self.counters.wrote(n);
            self.gathered.drain(..n);
        }
        if self.gathered.capacity() > MAX_GATHERED_BYTES {
            // A burst's buffer is not kept by an idle connection.
            self.gathered = Vec::new();
        }
        live(&self.stream).poll_flush(cx)
    }
}

impl tokio::io::AsyncRead for H2Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.served < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.served);
            buf.put_slice(&this.prefix[this.served..this.served + n]);
            this.served += n;
            return Poll::Ready(Ok(()));
        }
        let unfilled = buf.initialize_unfilled();
        match live(&this.stream).poll_read(cx, unfilled) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                this.counters.read(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncWrite for H2Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.gathered.len() >= MAX_GATHERED_BYTES {
            std::task::ready!(this.poll_send(cx))?;
        }
        let n = buf.len().min(MAX_GATHERED_BYTES - this.gathered.len());
        this.gathered.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.gathered.is_empty() {
            return Poll::Ready(Ok(()));
        }
        if !this.yielded {
            // Back of the run queue: streams woken meanwhile add their
            // frames before anything is sent.
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        std::task::ready!(this.poll_send(cx))?;
        this.yielded = false;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.yielded = true;
        std::task::ready!(this.poll_send(cx))?;
        live(&this.stream).poll_close_write(cx)
    }
}

/// The socket of an `H2Io` that h2 still drives.
fn live(stream: &Option<Socket>) -> &Socket {
    stream.as_ref().expect("taken only on drop")
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
        let Some(stream) = self.stream.take().filter(|_| self.linger.get()) else {
            return;
        };
        spawn(async move {
            let drain = async {
                let mut buf = vec![0; 16 * 1024];
                let mut drained = 0;
                while drained < LINGER_MAX_BYTES {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => drained += n,
                    }
                }
            };
            let _ = timeout(LINGER, drain).await;
        });
    }
}
