//! A socket with a read buffer, for parsing heads and passing bodies on.
//!
//! The buffer is never zeroed per read (it once was, 64 KiB at a time, and
//! that alone cost a tenth of the proxy's CPU); between messages a grown
//! buffer is given back, so an idle keep-alive connection holds 4 KiB.

use std::io;
use std::rc::Rc;

use super::chunked::{ChunkedError, ChunkedScanner};
use super::head::{Framing, HeadError, Parsed, MAX_HEAD_BYTES};
use crate::io::{Received, Socket};
use crate::metrics::TcpCounters;

/// The buffer a message starts with: enough for most heads and small
/// bodies. It doubles while reads fill it, up to `MAX_BUFFER_BYTES`.
const FIRST_BUFFER_BYTES: usize = 4 * 1024;
const MAX_BUFFER_BYTES: usize = 64 * 1024;

pub struct HttpIo {
    pub socket: Socket,
    /// Counts this socket's bytes (`tcp_read_bytes_total` and the like).
    pub counters: Rc<TcpCounters>,
    /// Read storage, initialized once per size (never zeroed per read);
    /// the bytes read and not yet used are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// When the next message is expected, which decides how it is read.
    arrival: Arrival,
}

/// When a new message is expected to be readable, for the first read of its
/// head. Every poll armed for a read is an io_uring submission, a
/// completion and often a cross-core wake-up; a recv that finds the bytes
/// already there saves all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// No idea: arm the poll (glommio's read).
    Unknown,
    /// Probably there already (a client's next request, under load): try a
    /// recv first.
    Waiting,
    /// Soon (an upstream's response to a request just sent): let the
    /// shard's other tasks run once, then try a recv.
    Soon,
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
        let end = already_read.len();
        HttpIo {
            socket,
            counters,
            buf: already_read,
            start: 0,
            end,
            arrival: Arrival::Unknown,
        }
    }

    /// How the first read of each new message is made (see `Arrival`).
    pub fn expecting(mut self, arrival: Arrival) -> HttpIo {
        self.arrival = arrival;
        self
    }

    pub fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Takes the buffered bytes out (for a tunnel, which forwards them first).
    pub fn take_unread(&mut self) -> Vec<u8> {
        let rest = self.unread().to_vec();
        self.buf = Vec::new();
        (self.start, self.end) = (0, 0);
        rest
    }

    /// Makes room after `end` for the next read: moves unread bytes to the
    /// front, or grows the buffer (only the new part is zeroed).
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.end == self.buf.len() {
            let size =
                (self.buf.len() * 2).clamp(FIRST_BUFFER_BYTES, MAX_BUFFER_BYTES.max(self.end + 1));
            self.buf.resize(size, 0);
        }
    }

    /// Reads more bytes into the buffer; 0 means EOF. Waiting
    /// `between_messages`, it gives a grown buffer back first, so an idle
    /// keep-alive connection holds at most 4 KiB. The read is glommio's:
    /// a non-blocking recv that, when it leaves the buffer unfilled, arms an
    /// io_uring poll for the next one, so a read costs one recv(2) whether
    /// the data is already there or still to come. The first read of a new
    /// message may try its own recv first (see `Arrival`).
    async fn fill(&mut self, between_messages: bool) -> io::Result<usize> {
        if between_messages && self.end == 0 && self.buf.len() > FIRST_BUFFER_BYTES {
            // A large buffer is given back while waiting for a new message.
            self.buf = Vec::new();
        }
        self.make_room();
        let arrival = if between_messages {
            self.arrival
        } else {
            Arrival::Unknown
        };
        if arrival == Arrival::Soon {
            futures_lite::future::yield_now().await;
        }
        let received = match arrival {
            Arrival::Unknown => Received::WouldBlock,
            Arrival::Waiting | Arrival::Soon => self.socket.try_recv(&mut self.buf[self.end..])?,
        };
        let n = match received {
            Received::Bytes(n) => n,
            Received::Eof => 0,
            Received::WouldBlock => self.socket.read(&mut self.buf[self.end..]).await?,
        };
        self.end += n;
        self.counters.read(n);
        Ok(n)
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
            if self.fill(self.unread().is_empty()).await? == 0 {
                return if self.unread().is_empty() {
                    Ok(None)
                } else {
                    Err(ReadHeadError::Truncated)
                };
            }
        }
    }

    /// Waits for the first bytes of a new message (0 at EOF), reading the
    /// way a new message is read (see `Arrival`).
    pub async fn wait_for_message(&mut self) -> io::Result<usize> {
        if !self.unread().is_empty() {
            return Ok(self.unread().len());
        }
        self.fill(true).await
    }

    /// Resolves once some unread bytes are buffered (or at EOF).
    pub async fn wait_for_data(&mut self) -> io::Result<usize> {
        if !self.unread().is_empty() {
            return Ok(self.unread().len());
        }
        self.fill(false).await
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
                let n = self.fill(false).await.map_err(BodyError::Read)?;
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
