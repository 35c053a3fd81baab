//! `Listener`: a shard's listening socket, bound with socket2 by the
//! runtime and accepted from here, through one multishot accept that stays
//! armed on it (glommio patch 16): the kernel accepts each connection as it
//! comes, with no request, `accept(2)` or `fcntl(2)` per connection. When
//! accepting fails, `AcceptFailures` says how long to pause.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::Duration;

use glommio::net::TcpListener;

use super::Socket;

pub struct Listener {
    listener: TcpListener,
}

impl Listener {
    /// Takes over a bound, listening, non-blocking socket. Must run on
    /// the executor that will accept on it.
    pub fn new(socket: socket2::Socket) -> Listener {
        // SAFETY: the fd comes from a socket2 socket we owned, bound and
        // listening; ownership moves into the glommio listener.
        let listener = unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) };
        Listener { listener }
    }

    /// Waits for the next connection. It comes set up as every socket of
    /// the proxy is (`Socket::new`: no Nagle delay, non-blocking) before its
    /// first byte is read or written, a TLS handshake's included: a server
    /// flight held back by Nagle waits for the client's delayed ACK (about
    /// 40 ms). One that cannot be set up is reported as aborted: its peer is
    /// gone.
    pub async fn accept(&self) -> io::Result<Socket> {
        let stream = self.listener.accept_multishot().await;
        let stream = stream.map_err(io::Error::from)?;
        Socket::non_blocking(stream).map_err(aborted)
    }
}

/// A socket that could not be set up: its peer is gone, as an accept the
/// peer gave up on.
fn aborted(err: io::Error) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, err)
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
    use std::net::TcpStream;

    use super::*;
    use crate::io::testing::{self, Loopback};

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
        testing::run(|| async {
            let loopback = Loopback::bind();
            // Both wait in the backlog: the multishot accept takes both.
            let _clients = [(); 2].map(|_| TcpStream::connect(loopback.addr()).unwrap());
            for _ in 0..2 {
                let accepted = loopback.accept().await;
                assert!(accepted.with_sock_ref(|s| s.nodelay()).unwrap());
                // splice(2) on a blocking socket would block the shard.
                assert!(accepted.with_sock_ref(|s| s.nonblocking()).unwrap());
            }
        });
    }

    /// A backlog deeper than the completion queue ends the multishot accept
    /// when the queue fills; every connection it took must still be handed
    /// out, and the accept armed again for the rest.
    #[test]
    fn a_backlog_deeper_than_the_completion_queue_is_accepted_whole() {
        const CLIENTS: usize = 1000;
        testing::run(|| async {
            let loopback = Loopback::with_backlog(CLIENTS as i32);
            let _clients: Vec<_> = (0..CLIENTS)
                .map(|_| TcpStream::connect(loopback.addr()).unwrap())
                .collect();
            for taken in 0..CLIENTS {
                let next = crate::io::timeout(Duration::from_secs(5), loopback.accept()).await;
                assert!(next.is_some(), "{taken} of {CLIENTS} accepted");
            }
        });
    }

    /// The multishot accept takes every connection in the backlog at once,
    /// so a listener closed after one accept holds the others: they must
    /// be closed with it (their clients see the end), not leaked. And the
    /// port stops listening when the listener is dropped, not when the
    /// kernel gets round to ending the accept.
    #[test]
    fn connections_accepted_but_never_asked_for_are_closed_with_the_listener() {
        testing::run(|| async {
            let loopback = Loopback::bind();
            let addr = loopback.addr();
            let clients = [(); 6].map(|_| TcpStream::connect(addr).unwrap());
            let _first = loopback.accept().await;
            drop(loopback);
            // Not listening any more, though the kernel may not have ended
            // the accept yet.
            assert!(TcpStream::connect(addr).is_err());
            let mut open: Vec<_> = clients.iter().skip(1).collect();
            for client in &open {
                client.set_nonblocking(true).unwrap();
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            // The listener's accept ends when the shard next enters the
            // kernel: let it run until every client has seen its end.
            while !open.is_empty() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{} left open",
                    open.len()
                );
                open.retain(|client| {
                    let read = std::io::Read::read(&mut &**client, &mut [0u8; 1]);
                    matches!(read, Err(ref err) if err.kind() == io::ErrorKind::WouldBlock)
                });
                crate::io::sleep(Duration::from_millis(1)).await;
            }
        });
    }
}
