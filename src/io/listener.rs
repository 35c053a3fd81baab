//! `Listener`: a shard's listening socket, bound with socket2 by the
//! runtime and accepted from here. After each io_uring accept, whatever
//! else waits in the backlog is taken with one accept4(2) each
//! (`accept_now`) instead of another io_uring round trip per connection.

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};

use glommio::net::{TcpListener, TcpStream};

pub struct Listener {
    listener: TcpListener,
    /// glommio does not expose the listener's fd; it stays valid while
    /// `listener` lives, which is as long as `self`.
    fd: RawFd,
}

impl Listener {
    /// Takes over a bound, listening, non-blocking socket. Must run on
    /// the executor that will accept on it.
    pub fn new(socket: socket2::Socket) -> Listener {
        let fd = socket.into_raw_fd();
        // SAFETY: the fd comes from a socket2 socket we owned, bound and
        // listening; ownership moves into the glommio listener.
        let listener = unsafe { TcpListener::from_raw_fd(fd) };
        Listener { listener, fd }
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> io::Result<TcpStream> {
        self.listener.accept().await.map_err(io::Error::from)
    }

    /// Accepts a connection already waiting in the backlog, without
    /// waiting: `Ok(None)` when there is none. The socket comes
    /// non-blocking, as the proxy wants it.
    pub fn accept_now(&self) -> io::Result<Option<TcpStream>> {
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        loop {
            // SAFETY: null address pointers are allowed (the peer's
            // address is not wanted here); `self.fd` is a listening socket
            // that lives as long as `self`.
            let fd = unsafe {
                libc::accept4(self.fd, std::ptr::null_mut(), std::ptr::null_mut(), flags)
            };
            if fd >= 0 {
                // SAFETY: accept4 returned a new fd that nobody else owns;
                // the glommio stream takes ownership and closes it.
                return Ok(Some(unsafe { TcpStream::from_raw_fd(fd) }));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => return Ok(None),
                // The peer gave up before we accepted: try the next one.
                io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted => continue,
                _ => return Err(err),
            }
        }
    }
}

/// The label an accept error is counted under: the errnos that mean the
/// process or the kernel ran out of something, by name; anything else is
/// `other`.
pub fn accept_error_reason(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EMFILE) => "emfile",
        Some(libc::ENFILE) => "enfile",
        Some(libc::ENOBUFS) => "enobufs",
        Some(libc::ENOMEM) => "enomem",
        _ => "other",
    }
}
