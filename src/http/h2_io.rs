//! The adapter h2 needs: tokio's I/O traits over a glommio stream, with the
//! bytes detection already read served first and every byte counted.

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use tokio::io::ReadBuf;

use crate::metrics::TcpCounters;

pub struct H2Io {
    stream: TcpStream,
    /// Bytes read before h2 took over (detection's), served first.
    prefix: Vec<u8>,
    served: usize,
    counters: Rc<TcpCounters>,
}

impl H2Io {
    pub fn new(stream: TcpStream, prefix: Vec<u8>, counters: Rc<TcpCounters>) -> H2Io {
        H2Io {
            stream,
            prefix,
            served: 0,
            counters,
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
        if this.served < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.served);
            buf.put_slice(&this.prefix[this.served..this.served + n]);
            this.served += n;
            return Poll::Ready(Ok(()));
        }
        let unfilled = buf.initialize_unfilled();
        match Pin::new(&mut this.stream).poll_read(cx, unfilled) {
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
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            this.counters.wrote(n);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}
