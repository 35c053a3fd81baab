//! `Listener`: a shard's listening socket, bound with socket2 by the
//! runtime and accepted from here. After each io_uring accept, whatever
//! else waits in the backlog is taken with one accept4(2) each
//! (`accept_now`) instead of another io_uring round trip per connection.
//! When accepting fails, `AcceptFailures` says how long to pause.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::time::Duration;

use glommio::net::{TcpListener, TcpStream};

use super::Socket;

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

    /// Waits for the next connection. It comes set up as every socket of
    /// the proxy is (`Socket::new`: no Nagle delay) before its first byte
    /// is read or written, a TLS handshake's included: a server flight
    /// held back by Nagle waits for the client's delayed ACK (about 40 ms).
    /// One that cannot be set up is reported as aborted: its peer is gone.
    pub async fn accept(&self) -> io::Result<Socket> {
        let stream = self.listener.accept().await.map_err(io::Error::from)?;
        Socket::new(stream).map_err(aborted)
    }

    /// Accepts a connection already waiting in the backlog, without
    /// waiting: `Ok(None)` when there is none. The socket comes
    /// non-blocking, as the proxy wants it.
    pub fn accept_now(&self) -> io::Result<Option<Socket>> {
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
                let stream = unsafe { TcpStream::from_raw_fd(fd) };
                match Socket::new(stream) {
                    Ok(socket) => return Ok(Some(socket)),
                    // Its peer is gone: take the next one.
                    Err(_) => continue,
                }
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
fn aborted(err: io::Error) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, err)
}

pub fn accept_error_reason(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EMFILE) => "emfile",
        Some(libc::ENFILE) => "enfile",
        Some(libc::ENOBUFS) => "enobufs",
        Some(libc::ENOMEM) => "enomem",
        _ => "other",
    }
}

/// The first pause after a failed accept. EMFILE and its like persist until
/// connections end, and the connection that failed stays in the backlog,
/// so an accept retried at once fails at once: a busy loop.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause: how late, at most, a listener notices fds are free
/// again.
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// A run of failed accepts on one listener: logged when it starts and when
/// it ends, however many failures it holds, with a pause after each that
/// doubles up to `MAX_PAUSE`.
pub struct AcceptFailures {
    /// Failures since the last accept that worked.
    failures: u64,
    pause: Duration,
}

impl Default for AcceptFailures {
    fn default() -> Self {
        Self::new()
    }
}

impl AcceptFailures {
    pub fn new() -> AcceptFailures {
        AcceptFailures {
            failures: 0,
            pause: FIRST_PAUSE,
        }
    }

    /// Notes a failure; returns how long to pause before trying again.
    pub fn failed(&mut self, listen: SocketAddr, error: &std::io::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(%listen, %error, "accept failed: pausing accepts until it works again");
        }
        self.failures += 1;
        let pause = self.pause;
        self.pause = (pause * 2).min(MAX_PAUSE);
        pause
    }

    /// Notes an accept that worked, ending a run of failures.
    pub fn succeeded(&mut self, listen: SocketAddr) {
        if self.failures > 0 {
            tracing::info!(%listen, failures = self.failures, "accepting again");
            *self = AcceptFailures::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen() -> SocketAddr {
        "127.0.0.1:4140".parse().unwrap()
    }

    #[test]
    fn pauses_grow_to_the_cap_and_start_over_after_a_success() {
        let mut failures = AcceptFailures::new();
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        let pauses: Vec<u64> = (0..6)
            .map(|_| failures.failed(listen(), &emfile).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [50, 100, 200, 400, 500, 500]);
        failures.succeeded(listen());
        assert_eq!(failures.failed(listen(), &emfile), FIRST_PAUSE);
    }

    /// Nagle's algorithm on a server socket holds a small write back until
    /// the client acknowledges the last one, and the client delays its ACK
    /// by about 40 ms: a TLS server's flight, then the first bytes after it,
    /// stalled that long (issue 19, item 17). So no accepted socket may
    /// reach a stage before TCP_NODELAY is on, whichever accept took it.
    #[test]
    fn accepted_sockets_have_no_nagle_delay_before_their_first_byte() {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket.listen(8).unwrap();
        socket.set_nonblocking(true).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        // Both wait in the backlog: one for the io_uring accept, one for
        // accept_now.
        let _clients = [(); 2].map(|_| std::net::TcpStream::connect(addr).unwrap());
        glommio::LocalExecutor::default().run(async move {
            let listener = Listener::new(socket);
            let first = listener.accept().await.unwrap();
            let second = listener.accept_now().unwrap().expect("a second client");
            for accepted in [first, second] {
                assert!(accepted.with_sock_ref(|s| s.nodelay()).unwrap());
            }
        });
    }
}
