//! A socket with a read buffer, for parsing heads and passing bodies on.
//!
//! The buffer is never zeroed per read (it once was, 64 KiB at a time, and
//! that alone cost a tenth of the proxy's CPU); between messages a grown
//! buffer is given back, and an idle keep-alive connection holds none.

use std::future::Future;
use std::io;
use std::rc::Rc;
use std::task::Poll;

use bytes::Bytes;

use super::chunked::{filter_trailers, ChunkedError, ChunkedScanner, MAX_TRAILER_BYTES};
use super::client_id::ClientId;
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
    /// How that expectation has fared on this connection lately.
    guesses: Guesses,
}

/// Backs off from the recv an [`Arrival`] suggests once it has stopped
/// finding anything. At one or two connections the next request is never
/// there yet: the recv fails, and glommio's read, which waits on the poll it
/// armed after the last short read, follows anyway (measured: 3.5 recvfrom
/// per proxied request at `wrk -c1`, one of them always a miss). A miss is
/// cheap, a try skipped that would have hit is not (the message waits for
/// the poll's completion to be reaped: backing off after every miss cost
/// 20% of the requests at `wrk -c50`, where the try misses now and then).
/// So only a run of `MISSES_BEFORE_BACKING_OFF` misses makes the next 15
/// messages skip the try, and a hit ends the run.
#[derive(Debug, Default, Clone, Copy)]
struct Guesses {
    /// Consecutive misses, at most `MISSES_BEFORE_BACKING_OFF`.
    misses: u8,
    /// Messages left to read without trying.
    skip: u8,
}

const MISSES_BEFORE_BACKING_OFF: u8 = 8;
const MESSAGES_SKIPPED: u8 = 15;

impl Guesses {
    fn worth_trying(&mut self) -> bool {
        if self.skip == 0 {
            return true;
        }
        self.skip -= 1;
        false
    }

    fn hit(&mut self) {
        self.misses = 0;
    }

    fn missed(&mut self) {
        self.misses = (self.misses + 1).min(MISSES_BEFORE_BACKING_OFF);
        if self.misses == MISSES_BEFORE_BACKING_OFF {
            self.skip = MESSAGES_SKIPPED;
        }
    }
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

/// Where a body read piece by piece stands (`HttpIo::read_data`).
pub struct BodyReader {
    /// Bytes left of a `Content-Length` body.
    remaining: Option<u64>,
    chunks: Option<ChunkedScanner>,
    done: bool,
}

impl BodyReader {
    pub fn new(framing: Framing) -> BodyReader {
        BodyReader {
            remaining: match framing {
                Framing::Length(n) => Some(n),
                _ => None,
            },
            chunks: (framing == Framing::Chunked).then(ChunkedScanner::default),
            done: matches!(framing, Framing::None | Framing::Length(0)),
        }
    }

    /// The whole body has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }
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
            guesses: Guesses::default(),
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

    /// Reads more bytes of a message begun into the buffer; 0 means EOF.
    /// The read is glommio's: a non-blocking recv that, when it leaves the
    /// buffer unfilled, arms an io_uring poll for the next one, so a read
    /// costs one recv(2) whether the data is already there or still to
    /// come.
    async fn fill(&mut self) -> io::Result<usize> {
        self.make_room();
        let n = self.socket.read(&mut self.buf[self.end..]).await?;
        self.filled(n);
        Ok(n)
    }

    /// The first read of a new message, nothing buffered; 0 means EOF. It
    /// may try its own recv first (see `Arrival`), then waits holding no
    /// buffer (`read_idle`).
    ///
    /// Not an `async fn`, and nothing of the try is kept across the wait:
    /// an idle keep-alive connection holds this future for as long as it
    /// waits, and an `async fn` keeps its arguments twice.
    #[allow(clippy::manual_async_fn)]
    fn read_message(&mut self) -> impl Future<Output = io::Result<usize>> + '_ {
        async move {
            let tried = if self.arrival != Arrival::Unknown && self.guesses.worth_trying() {
                if self.arrival == Arrival::Soon {
                    futures_lite::future::yield_now().await;
                }
                self.try_read()?
            } else {
                None
            };
            let n = match tried {
                Some(n) => n,
                None => self.read_idle().await?,
            };
            self.filled(n);
            Ok(n)
        }
    }

    /// Counts `n` bytes just read into the buffer.
    fn filled(&mut self, n: usize) {
        self.end += n;
        self.counters.read(n);
    }

    /// The recv an `Arrival` suggests: `None` when nothing is there yet.
    fn try_read(&mut self) -> io::Result<Option<usize>> {
        if self.buf.len() > FIRST_BUFFER_BYTES {
            // A large buffer is given back between messages.
            self.buf = Vec::new();
        }
        self.make_room();
        Ok(match self.socket.try_recv(&mut self.buf[self.end..])? {
            Received::Bytes(n) => {
                self.guesses.hit();
                Some(n)
            }
            Received::Eof => Some(0),
            Received::WouldBlock => {
                self.guesses.missed();
                None
            }
        })
    }

    /// Waits for a new message holding no buffer: an idle keep-alive
    /// connection can wait for hours, and thousands of them do (measured:
    /// 4 KiB of the 9.5 KiB each held). Each poll lends the read a fresh
    /// buffer, which glommio writes only when the poll is ready; a poll that
    /// finds nothing gives it back. Under load the bytes are usually there
    /// already and the first poll keeps its buffer.
    fn read_idle(&mut self) -> impl Future<Output = io::Result<usize>> + '_ {
        self.buf = Vec::new();
        (self.start, self.end) = (0, 0);
        std::future::poll_fn(move |cx| {
            let mut buf = vec![0; FIRST_BUFFER_BYTES];
            let n = std::task::ready!(self.socket.poll_read(cx, &mut buf))?;
            self.buf = buf;
            Poll::Ready(Ok(n))
        })
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
            let n = if self.unread().is_empty() {
                self.read_message().await?
            } else {
                self.fill().await?
            };
            if n == 0 {
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
    #[allow(clippy::manual_async_fn)]
    pub fn wait_for_message(&mut self) -> impl Future<Output = io::Result<usize>> + '_ {
        async move {
            if !self.unread().is_empty() {
                return Ok(self.unread().len());
            }
            self.read_message().await
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

    /// Checks the part of a chunked body that is already buffered, which
    /// is all of it when it came with its head, as an attack does: a body
    /// that is bad there is refused before anything goes upstream.
    pub fn check_buffered_chunks(&self) -> Result<(), ChunkedError> {
        ChunkedScanner::default().scan(self.unread()).map(drop)
    }

    /// The next piece of a body's content, its framing removed (chunk
    /// sizes, extensions and trailers are checked, then dropped); `None`
    /// once it has all been read. For a proxy that frames the body anew.
    pub async fn read_data(&mut self, body: &mut BodyReader) -> Result<Option<Bytes>, BodyError> {
        while !body.done {
            if self.unread().is_empty() {
                let n = self.fill().await.map_err(BodyError::Read)?;
                if n == 0 {
                    // Only a body that lasts until the close may end here.
                    if body.remaining.is_some() || body.chunks.is_some() {
                        return Err(BodyError::Truncated);
                    }
                    body.done = true;
                    return Ok(None);
                }
            }
            let available = &self.buf[self.start..self.end];
            let (taken, data) = match (&mut body.chunks, &mut body.remaining) {
                (Some(chunks), _) => {
                    let mut data = Vec::new();
                    let taken = chunks
                        .scan_data(available, |run| data.extend_from_slice(&available[run]))?;
                    body.done = chunks.is_done();
                    (taken, data)
                }
                (None, Some(left)) => {
                    let take = available
                        .len()
                        .min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= take as u64;
                    body.done = *left == 0;
                    (take, available[..take].to_vec())
                }
                (None, None) => (available.len(), available.to_vec()),
            };
            self.consume(taken);
            if !data.is_empty() {
                return Ok(Some(Bytes::from(data)));
            }
        }
        Ok(None)
    }

    /// Passes one body from `self` to `to`, framing unchanged but for the
    /// trailer fields `client_id` drops (a request's, inbound).
    pub async fn forward_body(
        &mut self,
        to: &HttpIo,
        framing: Framing,
        client_id: &ClientId,
    ) -> Result<(), BodyError> {
        let mut remaining = match framing {
            Framing::None | Framing::Length(0) => return Ok(()),
            Framing::Length(n) => Some(n),
            Framing::Chunked | Framing::UntilClose => None,
        };
        // Only a body whose trailers may lose fields stops at them.
        let mut scanner = (framing == Framing::Chunked).then(|| {
            if matches!(client_id, ClientId::Untouched) {
                ChunkedScanner::default()
            } else {
                ChunkedScanner::stopping_at_trailers()
            }
        });
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
            match &mut scanner {
                Some(scanner) if scanner.is_done() => return Ok(()),
                Some(scanner) if scanner.at_trailers() => {
                    return self.forward_trailers(to, scanner, client_id).await;
                }
                _ => {}
            }
        }
    }

    /// Passes a chunked body's trailer section, `scanner` at its start,
    /// without the fields `client_id` drops: it is read whole first (a few
    /// bytes, when a body has trailers at all), at most `MAX_TRAILER_BYTES`.
    async fn forward_trailers(
        &mut self,
        to: &HttpIo,
        scanner: &mut ChunkedScanner,
        client_id: &ClientId,
    ) -> Result<(), BodyError> {
        loop {
            // Checked from its start on every read: it is small, and a
            // malformed one is refused as soon as it shows.
            let mut check = scanner.clone();
            let scanned = check.scan(self.unread())?;
            if check.is_done() {
                let mut out = Vec::new();
                let section = &self.unread()[..scanned];
                filter_trailers(section, |name| client_id.drops(name), &mut out)?;
                to.write_all(&out).await.map_err(BodyError::Write)?;
                self.consume(scanned);
                return Ok(());
            }
            if scanned >= MAX_TRAILER_BYTES {
                return Err(ChunkedError.into());
            }
            if self.fill().await.map_err(BodyError::Read)? == 0 {
                return Err(BodyError::Truncated);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Guesses;

    /// How many of the next `messages` try a recv, each try a `hit` or not.
    fn tries(guesses: &mut Guesses, messages: usize, hit: bool) -> usize {
        let mut tried = 0;
        for _ in 0..messages {
            if guesses.worth_trying() {
                tried += 1;
                if hit {
                    guesses.hit();
                } else {
                    guesses.missed();
                }
            }
        }
        tried
    }

    #[test]
    fn a_run_of_misses_backs_off_to_one_try_in_sixteen_and_a_hit_resets() {
        let mut guesses = Guesses::default();
        // Eight tries miss, then one try every 16 messages.
        assert_eq!(tries(&mut guesses, 8, false), 8);
        assert_eq!(tries(&mut guesses, 160, false), 10);
        // Misses now and then, with hits between, never skip a try.
        let mut guesses = Guesses::default();
        for _ in 0..100 {
            assert_eq!(tries(&mut guesses, 7, false), 7);
            assert_eq!(tries(&mut guesses, 1, true), 1);
        }
        // A hit on the next try brings speculation back for every message.
        let mut guesses = Guesses::default();
        tries(&mut guesses, 20, false);
        while !guesses.worth_trying() {}
        guesses.hit();
        assert_eq!(tries(&mut guesses, 50, true), 50);
    }
}
