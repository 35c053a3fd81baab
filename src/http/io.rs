//! A socket with a read buffer, for parsing heads and passing bodies on.
//!
//! While waiting for a new message the connection holds no heap buffer: it
//! waits with a one-byte peek, so an idle keep-alive connection costs little
//! more than its socket.

use std::io;
use std::rc::Rc;

use super::chunked::{ChunkedError, ChunkedScanner};
use super::head::{Framing, HeadError, Parsed, MAX_HEAD_BYTES};
use crate::metrics::TcpCounters;
use crate::tcp::{Received, Socket};

/// Bytes asked for per read while a message is in flight.
const READ_BYTES: usize = 64 * 1024;

pub struct HttpIo {
    pub socket: Socket,
    /// Counts this socket's bytes (`tcp_read_bytes_total` and the like).
    pub counters: Rc<TcpCounters>,
    /// Bytes read and not yet used are `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
}

/// A head could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadHeadError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Head(#[from] HeadError),
    /// EOF after part of a head.
    #[error("connection closed in the middle of a message head")]
    Truncated,
}

/// Where a body transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("reading the body failed: {0}")]
    Read(io::Error),
    #[error("the body ended early")]
    Truncated,
    #[error("writing the body failed: {0}")]
    Write(io::Error),
    #[error(transparent)]
    Chunked(#[from] ChunkedError),
}

impl HttpIo {
    pub fn new(socket: Socket, counters: Rc<TcpCounters>, already_read: Vec<u8>) -> HttpIo {
        HttpIo {
            socket,
            counters,
            buf: already_read,
            pos: 0,
        }
    }

    pub fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Takes the buffered bytes out (for a tunnel, which forwards them first).
    pub fn take_unread(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.pos);
        self.buf = Vec::new();
        self.pos = 0;
        rest
    }

    /// Reads more bytes into the buffer; 0 means EOF. It parks with
    /// io_uring's own wait for data (a one-byte peek: no buffer held while
    /// idle, no failed recv(2) before the wait), then takes everything that
    /// is there with one non-blocking recv.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.is_empty() {
            // Between messages: give the capacity back while waiting.
            self.buf = Vec::new();
        }
        loop {
            if self.socket.peek(&mut [0u8; 1]).await? == 0 {
                return Ok(0);
            }
            let len = self.buf.len();
            self.buf.resize(len + READ_BYTES, 0);
            let received = self.socket.try_recv(&mut self.buf[len..]);
            let n = match received {
                Ok(Received::Bytes(n)) => n,
                Ok(Received::Eof) => 0,
                Ok(Received::WouldBlock) => {
                    self.buf.truncate(len);
                    continue;
                }
                Err(err) => {
                    self.buf.truncate(len);
                    return Err(err);
                }
            };
            self.buf.truncate(len + n);
            self.counters.read(n);
            return Ok(n);
        }
    }

    /// Reads one head. `Ok(None)`: the peer closed cleanly before a byte of
    /// a new message.
    pub async fn read_head<T>(
        &mut self,
        parse: fn(&[u8]) -> Parsed<T>,
    ) -> Result<Option<T>, ReadHeadError> {
        loop {
            if !self.unread().is_empty() {
                if let Some((head, len)) = parse(self.unread())? {
                    self.consume(len);
                    return Ok(Some(head));
                }
                if self.unread().len() >= MAX_HEAD_BYTES {
                    return Err(HeadError::TooLarge.into());
                }
            }
            if self.fill().await? == 0 {
                return if self.unread().is_empty() {
                    Ok(None)
                } else {
                    Err(ReadHeadError::Truncated)
                };
            }
        }
    }

    /// Resolves once some unread bytes are buffered (or at EOF).
    pub async fn wait_for_data(&mut self) -> io::Result<usize> {
        if !self.unread().is_empty() {
            return Ok(self.unread().len());
        }
        self.fill().await
    }

    pub async fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        self.socket.write_all(bytes).await?;
        self.counters.wrote(bytes.len());
        Ok(())
    }

    /// Moves the part of a content-length body already buffered onto `out`
    /// (a head about to be written), so that a small message goes out in
    /// one write; returns the framing of what is left.
    pub fn take_buffered_body(&mut self, framing: Framing, out: &mut Vec<u8>) -> Framing {
        let Framing::Length(length) = framing else {
            return framing;
        };
        let take = self
            .unread()
            .len()
            .min(usize::try_from(length).unwrap_or(usize::MAX));
        out.extend_from_slice(&self.unread()[..take]);
        self.consume(take);
        Framing::Length(length - take as u64)
    }

    /// Passes one body from `self` to `to`, framing unchanged.
    pub async fn forward_body(&mut self, to: &HttpIo, framing: Framing) -> Result<(), BodyError> {
        let mut remaining = match framing {
            Framing::None | Framing::Length(0) => return Ok(()),
            Framing::Length(n) => Some(n),
            Framing::Chunked | Framing::UntilClose => None,
        };
        let mut scanner = (framing == Framing::Chunked).then(ChunkedScanner::default);
        loop {
            if self.unread().is_empty() {
                let n = self.fill().await.map_err(BodyError::Read)?;
                if n == 0 {
                    return match framing {
                        Framing::UntilClose => Ok(()),
                        _ => Err(BodyError::Truncated),
                    };
                }
            }
            let available = self.unread();
            let take = match (&mut scanner, remaining) {
                (Some(scanner), _) => scanner.scan(available)?,
                (None, Some(left)) => available
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX)),
                (None, None) => available.len(),
            };
            to.write_all(&available[..take])
                .await
                .map_err(BodyError::Write)?;
            self.consume(take);
            if let Some(left) = remaining.as_mut() {
                *left -= take as u64;
                if *left == 0 {
                    return Ok(());
                }
            }
            if scanner.as_ref().is_some_and(ChunkedScanner::is_done) {
                return Ok(());
            }
        }
    }
}
