//! The idle-memory guard (issue 22): what an idle connection costs ringside
//! stays put now that it is small. Each test opens `CONNECTIONS` idle
//! connections through the built binary, proves each is carried with one
//! round trip, and reads the proxy's resident memory from /proc before and
//! after: the growth per connection must stay under a bound.
//!
//! The tests run the debug binary, whose figures are close to the
//! release build's (the same connection task, the same buffers): the
//! release figures, and the command that measures them against HAProxy,
//! are in `benchmarks/HISTORY.md`. Each bound is twice the debug figure
//! measured when it was set, so that allocator and page noise cannot trip
//! it, while a regression like issue 22's (a TLS handshake's state kept in
//! every plaintext connection's task: 2.9 -> 10.5 KiB opaque, 5.4 -> 19.4
//! KiB HTTP/1, debug build) fails it at once. Memory is steady enough for a test; speed
//! is not, so speed stays in the benchmarks.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::identity::{client_side, identities, server_side};
use support::*;

/// Enough that per-connection growth dwarfs the allocator's own steps.
const CONNECTIONS: usize = 2_000;
/// Meshed connections cost more each (TLS sessions) and a handshake in a
/// debug build is slow: fewer of them grow the proxies as much.
const MESHED_CONNECTIONS: usize = 300;

/// Opened and kept before the first reading, so that what the first
/// connections allocate once for all (metric series, slabs, a pooled
/// upstream connection) is not charged to the idle ones.
const WARM_UP: usize = 50;

/// Starts with NUL, so that no detector takes it for the start of an HTTP
/// method or a TLS record and waits for more bytes.
const PROBE: &[u8] = b"\0idle\n";

/// Debug build, measured 2.34 KiB per idle opaque connection (release:
/// 2.34 here, 2.36 in `loadtest compare --scenario idle-conns`).
const OPAQUE_BOUND_KIB: f64 = 4.7;
/// Debug build, measured 1.47 KiB per idle HTTP/1 keep-alive connection
/// (its upstream pool included: the requests share one upstream
/// connection; release: 1.48 here, 1.47 in `loadtest compare --scenario
/// idle-http1`). What it holds is in benchmarks/HISTORY.md ("HTTP/1
/// keep-alive to the goal").
const HTTP1_BOUND_KIB: f64 = 3.0;
/// Debug build, measured 29.6-29.8 KiB per idle opaque connection over
/// mTLS, the two proxies together (release: 29.9): the client side's TLS
/// session and the server side's, on top of what a plaintext connection
/// costs each. The budget for the pair is 32 KiB, one maximum-size TLS
/// record (16 KiB) per session, which a TLS endpoint may have to hold to
/// receive one; until the sessions' buffers are given back while idle,
/// that is what a meshed connection costs. (It was 67 KiB while each TLS
/// direction kept a 16 KiB copy buffer of its own.)
const MTLS_BOUND_KIB: f64 = 60.0;

#[test]
fn an_idle_opaque_connection_costs_at_most_its_bound() {
    let echo = Origin::echo();
    let proxy = Ringside::declared("opaque", echo.addr);
    let growth = growth_per_connection(&[&proxy], CONNECTIONS, || echo_once(proxy.route()));
    assert_under("idle opaque", growth, OPAQUE_BOUND_KIB);
}

#[test]
fn an_idle_http1_keep_alive_connection_costs_at_most_its_bound() {
    let origin = HttpOrigin::start("idle", Duration::ZERO);
    let proxy = Ringside::declared("http1", origin.addr);
    let growth = growth_per_connection(&[&proxy], CONNECTIONS, || {
        let mut client = HttpClient::connect(proxy.route());
        client.send(b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n");
        let response = client.read(false).expect("a response");
        assert_eq!(response.status, 200);
        client
    });
    assert_under("idle HTTP/1 keep-alive", growth, HTTP1_BOUND_KIB);
}

#[test]
fn an_idle_meshed_connection_costs_at_most_its_bound() {
    let dir = identities();
    let echo = Origin::echo();
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, echo.addr, &server);
    let route = client.route();
    let growth =
        growth_per_connection(&[&client, &server], MESHED_CONNECTIONS, || echo_once(route));
    assert_under("idle mTLS (both proxies)", growth, MTLS_BOUND_KIB);
}

/// One connection through `route` that has carried one round trip.
fn echo_once(route: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(route).expect("ringside accepts");
    stream.write_all(PROBE).unwrap();
    let mut echoed = [0; PROBE.len()];
    stream
        .read_exact(&mut echoed)
        .expect("the probe comes back");
    assert_eq!(echoed, PROBE);
    stream
}

/// Growth of the proxies' resident memory, in KiB per connection, while
/// `count` connections opened by `open` are held idle.
fn growth_per_connection<T>(
    proxies: &[&Ringside],
    count: usize,
    mut open: impl FnMut() -> T,
) -> f64 {
    raise_open_files_limit();
    let rss = || proxies.iter().map(|proxy| proxy.rss_kib()).sum::<u64>();
    let warm: Vec<T> = (0..WARM_UP).map(|_| open()).collect();
    let before = rss();
    let idle: Vec<T> = (0..count).map(|_| open()).collect();
    let after = rss();
    drop((warm, idle));
    let growth = after.saturating_sub(before) as f64 / count as f64;
    eprintln!("{growth:.2} KiB per idle connection ({before} -> {after} KiB)");
    growth
}

fn assert_under(what: &str, growth_kib: f64, bound_kib: f64) {
    assert!(
        growth_kib <= bound_kib,
        "{what}: {growth_kib:.2} KiB per connection, over the bound of {bound_kib} KiB"
    );
}

/// This process holds both ends of every connection it makes through the
/// proxy to an origin of its own (four fds each): the soft limit goes up
/// to the hard one, as far as that allows.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct, which `limit` is, and
    // setrlimit reads it.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    let needed = (4 * (CONNECTIONS + WARM_UP) + 256) as libc::rlim_t;
    assert!(
        limit.rlim_cur >= needed,
        "the open-files limit {} is below the {needed} this test needs",
        limit.rlim_cur
    );
}
