//! The admin server's bounds (issue 19, item 5): a client that asks for
//! `/metrics` and never reads is cut off (reset) once the write deadline
//! passes, and past the connection bound the oldest connection is closed
//! so that a new scrape or probe is still answered.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use support::*;

/// The admin server's `WRITE_TIMEOUT` and `MAX_CONNECTIONS`, as the README
/// states them.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: usize = 16;

/// How long past a deadline a reset may take to arrive on a busy machine.
const SLACK: Duration = Duration::from_secs(5);

/// Connects to `admin` with the smallest receive buffer the kernel allows,
/// so that a page the client does not read stays on the server's side.
fn reluctant_client(admin: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(1).unwrap();
    socket.connect(&admin.into()).unwrap();
    socket.into()
}

/// Waits, at most `limit`, for the peer to reset or close `stream`,
/// without reading it; returns how long that took.
fn wait_for_hang_up(stream: &TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut poll = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    let millis = libc::c_int::try_from(limit.as_millis()).unwrap();
    // SAFETY: poll reads and writes one pollfd, which `poll` is, and the
    // fd stays open for the call.
    let ready = unsafe { libc::poll(&mut poll, 1, millis) };
    assert!(ready >= 0, "poll: {}", std::io::Error::last_os_error());
    let hung_up = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR;
    (ready == 1 && poll.revents & hung_up != 0).then(|| started.elapsed())
}

#[test]
fn a_scraper_that_never_reads_is_reset_after_the_write_deadline() {
    let origin = Origin::echo();
    let proxy = Ringside::route_to([origin.addr]).shards(1).start();
    // Hundreds of SNIs make a page far larger than the socket buffers.
    tls_hellos_through(proxy.route(), 512);
    let page_bytes = proxy.metrics().0.len();
    assert!(page_bytes > 500_000, "the page is {page_bytes} bytes");

    let mut stalled = reluctant_client(proxy.admin);
    stalled
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n")
        .unwrap();
    let waited = wait_for_hang_up(&stalled, WRITE_TIMEOUT + SLACK)
        .expect("the stalled scrape is cut off within the write deadline");
    assert!(
        waited >= WRITE_TIMEOUT - Duration::from_millis(500),
        "{waited:?}"
    );
    let mut received = Vec::new();
    let end = stalled.read_to_end(&mut received);
    assert_eq!(
        end.map_err(|err| err.kind()),
        Err(ErrorKind::ConnectionReset)
    );
    assert!(received.len() < page_bytes, "the whole page was written");

    let closed = [("reason", "write_timeout")];
    let metrics = proxy.metrics();
    let cut_off = metrics.sum("ringside_admin_connections_closed_total", &closed);
    assert_eq!(cut_off, 1.0);
}

#[test]
fn past_the_connection_bound_the_oldest_is_closed_and_a_scrape_is_answered() {
    let origin = Origin::echo();
    let proxy = Ringside::route_to([origin.addr]).shards(1).start();
    // Connected, and silent: each holds a slot until its request deadline.
    let silent: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(proxy.admin).unwrap())
        .collect();

    let metrics = proxy.metrics();
    let closed = |reason| {
        metrics.sum(
            "ringside_admin_connections_closed_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(closed("evicted"), 1.0, "{}", metrics.0);
    assert_eq!(closed("request_timeout"), 0.0);
    let oldest = wait_for_hang_up(&silent[0], SLACK);
    assert!(oldest.is_some(), "the oldest connection was closed");
    assert_eq!(wait_for_hang_up(&silent[1], Duration::ZERO), None);
}
