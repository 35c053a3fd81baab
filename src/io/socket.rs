//! `Socket`: one side of a proxied connection, the glommio stream (plain,
//! or a TLS session over it: `tls.rs`) behind a `RefCell`, and `connect`
//! with a timeout.
//!
//! Both pump directions use each socket (one reads it, the other writes
//! it). glommio's read and write are poll-based, so each borrow lasts one
//! poll and the two directions never hold the socket at the same time.
//! The non-blocking calls (`try_recv`, `try_send`, `try_peek`) and the fd
//! (for splice) are the plain stream's; on a TLS socket they report
//! nothing ready, and callers take the awaiting calls (`is_tls` says
//! which, so that the opaque path copies instead of splicing).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use socket2::SockRef;

use super::tls::{self, Handshaken, TlsStream};
use super::Deadlines;

/// The outcome of a recv that must not wait.
pub enum Received {
    Bytes(usize),
    WouldBlock,
    Eof,
}

pub struct Socket {
    stream: RefCell<Stream>,
    /// Cached so splice(2) calls and socket options do not borrow the
    /// stream (a peek holds it across an await).
    fd: RawFd,
    /// Whether `stream` is `Stream::Tls`, for the same reason.
    tls: bool,
}

/// Both kinds boxed, so that a `Socket` is 32 bytes, not 136 (glommio's
/// stream was 120 then, 48 since its patch 18): a socket handed down
/// through the async levels of a connection leaves its room in each
/// level's state, moved out or not, and those rooms are what an idle
/// connection costs (measured, debug build: 2.78 -> 2.38 KiB per idle
/// opaque connection, 5.24 -> 3.97 per idle HTTP/1 keep-alive one).
enum Stream {
    Plain(Box<TcpStream>),
    /// The session's buffers are large; most sockets are plain.
    Tls(Box<TlsStream>),
}

impl Socket {
    /// Wraps a connected stream for forwarding: no Nagle delay (the proxy
    /// must not add latency to small writes) and O_NONBLOCK, so that
    /// splice(2) returns `WouldBlock` rather than blocking the shard.
    pub(super) fn new(stream: TcpStream) -> io::Result<Socket> {
        set_nonblocking(stream.as_raw_fd())?;
        Socket::non_blocking(stream)
    }

    /// `new` for a stream that came non-blocking (accepted with
    /// `SOCK_NONBLOCK`): one system call less.
    pub(super) fn non_blocking(stream: TcpStream) -> io::Result<Socket> {
        stream.set_nodelay(true)?;
        let fd = stream.as_raw_fd();
        Ok(Socket {
            stream: RefCell::new(Stream::Plain(Box::new(stream))),
            fd,
            tls: false,
        })
    }

    /// A socket whose bytes go through a TLS session (`tls::accept`,
    /// `tls::connect`), set up as `new` sets a plain one.
    pub fn tls(stream: TlsStream) -> io::Result<Socket> {
        let tcp = stream.tcp();
        tcp.set_nodelay(true)?;
        let fd = tcp.as_raw_fd();
        set_nonblocking(fd)?;
        Ok(Socket {
            stream: RefCell::new(Stream::Tls(Box::new(stream))),
            fd,
            tls: true,
        })
    }

    /// The plain stream, for a handshake that turns it into a TLS socket;
    /// `None` when it already is one.
    pub(super) fn into_plain(self) -> Option<TcpStream> {
        match self.stream.into_inner() {
            Stream::Plain(stream) => Some(*stream),
            Stream::Tls(_) => None,
        }
    }

    /// The server side of a TLS handshake on this plain socket (`tls::accept`
    /// says what `prefix` and `hello_read` are for).
    pub async fn accept_tls(
        self,
        prefix: Vec<u8>,
        config: Arc<rustls::ServerConfig>,
        hello_read: &Cell<bool>,
    ) -> io::Result<Handshaken> {
        let tcp = self.into_plain().ok_or_else(already_tls)?;
        tls::accept(tcp, prefix, config, hello_read).await
    }

    /// The client side of a TLS handshake on this plain socket, naming
    /// `server`.
    pub async fn connect_tls(
        self,
        config: Arc<rustls::ClientConfig>,
        server: rustls::pki_types::ServerName<'static>,
    ) -> io::Result<Handshaken> {
        let tcp = self.into_plain().ok_or_else(already_tls)?;
        tls::connect(tcp, config, server).await
    }

    /// Puts `bytes` back in front of what reads and peeks return: what a
    /// stage read past its own part (the transport header). Only a TLS
    /// socket has a buffer of its own to hold them.
    pub fn unread(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match &mut *self.stream.borrow_mut() {
            Stream::Tls(stream) => stream.unread(bytes),
            Stream::Plain(_) => panic!("unread on a plain socket: nowhere to keep the bytes"),
        }
    }

    /// The client's address; taken before anything can reset the
    /// connection, since a reset socket no longer has one. Both addresses
    /// are canonical: an IPv4 client of a dual-stack `[::]` listener is
    /// `198.18.0.1`, not `::ffff:198.18.0.1`, so that metric labels,
    /// allow-lists and client networks see one form of each address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.with_sock_ref(|socket| socket_addr(socket.peer_addr()?))
    }

    /// The address the connection reached on this host.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with_sock_ref(|socket| socket_addr(socket.local_addr()?))
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The fd, for splice(2): only a plain socket's bytes may be spliced.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Reads what is there, parking the task until at least a byte (or EOF).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// One poll of [`Socket::read`]: `buf` is written only when this
    /// returns `Ready`, so a caller may lend a buffer it shares with other
    /// tasks for the length of one poll.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match &mut *self.stream.borrow_mut() {
            Stream::Plain(stream) => Pin::new(&mut **stream).poll_read(cx, buf),
            Stream::Tls(stream) => stream.poll_read(cx, buf),
        }
    }

    /// One poll of a write: how much of `bytes` the socket took.
    pub fn poll_write(&self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        match &mut *self.stream.borrow_mut() {
            Stream::Plain(stream) => Pin::new(&mut **stream).poll_write(cx, bytes),
            Stream::Tls(stream) => stream.poll_write(cx, bytes),
        }
    }

    /// Sends what a TLS session holds encrypted; a plain socket holds
    /// nothing.
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *self.stream.borrow_mut() {
            Stream::Plain(_) => Poll::Ready(Ok(())),
            Stream::Tls(stream) => stream.poll_flush(cx),
        }
    }

    /// Copies what is buffered without consuming it, parking until there is
    /// at least a byte (or EOF). Only for detection, before the pumps run:
    /// it holds the stream for the whole wait, which is safe only because
    /// nothing else uses this socket until detection has finished.
    #[allow(clippy::await_holding_refcell_ref)]
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tls {
            return poll_fn(|cx| match &mut *self.stream.borrow_mut() {
                Stream::Tls(stream) => stream.poll_peek(cx, buf),
                Stream::Plain(_) => unreachable!("`tls` says which"),
            })
            .await;
        }
        let stream = self.stream.borrow();
        let Stream::Plain(stream) = &*stream else {
            unreachable!("`tls` says which")
        };
        stream.peek(buf).await.map_err(io::Error::from)
    }

    /// Peeks without waiting: `Ok(None)` when nothing is buffered yet. Lets
    /// detection decide without an io_uring round trip when the client's
    /// bytes are already there, which they usually are.
    pub fn try_peek(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if self.tls {
            let Stream::Tls(stream) = &*self.stream.borrow() else {
                unreachable!("`tls` says which")
            };
            return Ok(stream.try_peek(buf));
        }
        let flags = libc::MSG_PEEK | libc::MSG_DONTWAIT;
        // SAFETY: `buf` is valid for `buf.len()` writable bytes and the fd
        // is open while `self` lives.
        let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        match io::Error::last_os_error() {
            err if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
            err => Err(err),
        }
    }

    /// How many bytes the kernel holds for a plain socket's next read
    /// (FIONREAD): the size of what has arrived, without a buffer to peek
    /// it into. Zero for a TLS socket.
    pub fn buffered(&self) -> io::Result<usize> {
        if self.tls {
            return Ok(0);
        }
        let mut available: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int through the pointer, which
        // `available` is; the fd is open while `self` lives.
        if unsafe { libc::ioctl(self.fd, libc::FIONREAD, &mut available) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(available.max(0) as usize)
    }

    /// Takes what is buffered without waiting.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        if self.tls {
            let Stream::Tls(stream) = &mut *self.stream.borrow_mut() else {
                unreachable!("`tls` says which")
            };
            let taken = stream.try_recv(buf);
            return Ok(taken.map_or(Received::WouldBlock, Received::Bytes));
        }
        // SAFETY: `buf` is valid for `buf.len()` writable bytes and the fd
        // is open while `self` lives.
        let n = unsafe {
            libc::recv(
                self.fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 if !buf.is_empty() => Ok(Received::Eof),
            n if n >= 0 => Ok(Received::Bytes(n as usize)),
            _ => match io::Error::last_os_error() {
                err if err.kind() == io::ErrorKind::WouldBlock => Ok(Received::WouldBlock),
                err if err.kind() == io::ErrorKind::Interrupted => Ok(Received::WouldBlock),
                err => Err(err),
            },
        }
    }

    /// Sends what the socket takes now; 0 when it is full.
    pub fn try_send(&self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.is_empty() || self.tls {
            return Ok(0);
        }
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        // SAFETY: `bytes` is valid for `bytes.len()` readable bytes and the
        // fd is open while `self` lives.
        let n = unsafe { libc::send(self.fd, bytes.as_ptr().cast(), bytes.len(), flags) };
        if n >= 0 {
            return Ok(n as usize);
        }
        match io::Error::last_os_error() {
            err if err.kind() == io::ErrorKind::WouldBlock => Ok(0),
            err if err.kind() == io::ErrorKind::Interrupted => Ok(0),
            err => Err(err),
        }
    }

    /// Writes all of `bytes`, parking the task while the socket is full;
    /// on a TLS socket, until the records are sent.
    pub async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = poll_fn(|cx| self.poll_write(cx, bytes)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            bytes = &bytes[n..];
        }
        if self.tls {
            poll_fn(|cx| self.poll_flush(cx)).await?;
        }
        Ok(())
    }

    /// Sends FIN: the peer sees end-of-stream while the other direction
    /// keeps flowing. A TLS socket needs `close_write` (close_notify
    /// first); here it only gets the FIN.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self.with_sock_ref(|s| s.shutdown(std::net::Shutdown::Write)) {
            // The peer is already gone; nothing is left to tell it.
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }

    /// `shutdown_write` for any socket: a TLS one sends close_notify, then
    /// FIN, so that its peer reads a clean end rather than a truncation.
    pub async fn close_write(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_close_write(cx)).await
    }

    /// One poll of `close_write`.
    pub fn poll_close_write(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let closed = match &mut *self.stream.borrow_mut() {
            Stream::Tls(stream) => std::task::ready!(stream.poll_close(cx)),
            Stream::Plain(_) => return Poll::Ready(self.shutdown_write()),
        };
        Poll::Ready(match closed {
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }

    /// Makes the coming close send RST instead of FIN, so that a reset on
    /// one side of the proxy is seen as a reset on the other.
    pub fn reset_on_close(&self) {
        let _ = self.with_sock_ref(|s| s.set_linger(Some(std::time::Duration::ZERO)));
    }

    pub(super) fn with_sock_ref<R>(&self, f: impl FnOnce(SockRef<'_>) -> R) -> R {
        // SAFETY: the fd is the stream's, which lives as long as `self`.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        f(SockRef::from(&fd))
    }
}

/// Closes a just-accepted socket with a reset: the client sees
/// ECONNRESET at once, instead of an empty answer it could mistake for
/// one, and no TIME_WAIT is left on ringside's side.
pub fn refuse(socket: Socket) {
    socket.reset_on_close();
}

/// TLS in TLS is not something a peer asks.
fn already_tls() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "already a TLS socket")
}

fn socket_addr(addr: socket2::SockAddr) -> io::Result<SocketAddr> {
    let not_ip = || io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket");
    addr.as_socket().map(canonical).ok_or_else(not_ip)
}

/// `addr` with a v4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4
/// address it maps.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Connects to `addr`, failing with `TimedOut` after `timeout`. The
/// timeout is one of the shard's coarse `deadlines`, not glommio's
/// `connect_timeout`, which links an io_uring LINK_TIMEOUT to every
/// connect (a submission and a completion more per connection).
pub async fn connect(
    addr: SocketAddr,
    timeout: Duration,
    deadlines: &Deadlines,
) -> io::Result<Socket> {
    let connecting = async { TcpStream::connect(addr).await.map_err(io::Error::from) };
    match deadlines.timeout(timeout, connecting).await {
        Some(stream) => Socket::new(stream?),
        None => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// O_NONBLOCK with one ioctl(2), where fcntl needs a get and a set: it runs
/// for both sockets of every connection.
fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: FIONBIO reads one int through the pointer, which `on` is;
    // `fd` is open for the duration of the call.
    if unsafe { libc::ioctl(fd, libc::FIONBIO, &on) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::time::Duration;

    use futures_lite::AsyncReadExt;
    use glommio::net::{TcpListener, TcpStream};

    use crate::io::testing;

    /// glommio patch 18: a stream keeps no room for the read and write
    /// timeouts ringside never sets (they were 80 of its 120 bytes, in
    /// both sockets of every connection).
    #[test]
    fn glommios_stream_has_no_room_for_unset_timeouts() {
        let size = std::mem::size_of::<TcpStream>();
        assert!(size <= 48, "glommio's TcpStream is {size} bytes");
    }

    /// glommio's reads, which any readiness scheme of theirs must keep: a
    /// read that filled its buffer left bytes behind, which the next read
    /// takes without waiting for an event. (A poll left armed across reads,
    /// as the multishot one in `vendor/glommio/PATCHES.md` row 19, posts no
    /// event for them.)
    #[test]
    fn a_read_that_fills_its_buffer_is_followed_by_one_that_takes_the_rest() {
        testing::run(|| async {
            let (client, server) = testing::pair().await;
            // Reads that wait first: a scheme may keep its poll armed only
            // on a stream that has waited a few times in a row.
            let mut buf = [0u8; 4];
            for round in 0..4u8 {
                let waited = client.read(&mut buf);
                let sent = async {
                    futures_lite::future::yield_now().await;
                    server.write_all(&[round]).await.unwrap();
                };
                let (read, ()) = futures_lite::future::zip(waited, sent).await;
                assert_eq!((read.unwrap(), buf[0]), (1, round));
            }
            server.write_all(b"0123456789").await.unwrap();
            let mut got = Vec::new();
            while got.len() < 10 {
                let n = client.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, b"0123456789");
        });
    }

    /// The same: bytes that come after a short read wake the reader, and an
    /// end is read as often as asked, though the read that took the last
    /// bytes before it brought no event of its own.
    #[test]
    fn bytes_after_a_short_read_wake_the_reader_and_an_end_reads_again() {
        testing::run(|| async {
            let (client, server) = testing::pair().await;
            let mut buf = [0u8; 64];
            for round in 0..100u32 {
                let ping = round.to_be_bytes();
                server.write_all(&ping).await.unwrap();
                assert_eq!(client.read(&mut buf).await.unwrap(), 4);
                assert_eq!(buf[..4], ping);
                client.write_all(&buf[..4]).await.unwrap();
                assert_eq!(testing::read_exact(&server, 4).await, ping);
            }
            testing::send_then_fin(&server, b"end").await;
            assert_eq!(testing::read_to_end(&client).await, b"end");
            let again = client.read(&mut buf).await.unwrap();
            assert_eq!(again, 0, "read after the end");
        });
    }

    /// Patch 18 keeps glommio's timeouts working for who sets them.
    #[test]
    fn a_read_timeout_set_on_glommios_stream_still_ends_the_read() {
        testing::run(|| async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let server = listener.accept().await.unwrap();
            client
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            assert_eq!(client.read_timeout(), Some(Duration::from_millis(20)));
            let mut buf = [0u8; 4];
            let err = client.read(&mut buf).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);
            drop(server);
            assert_eq!(client.read(&mut buf).await.unwrap(), 0, "EOF after");
        });
    }
}
