//! Time to first byte through ringside: a fresh connection sends a GET and
//! waits for the origin's first byte, directly, through an opaque route,
//! and through a detecting route (the price of detection). A server that
//! speaks first is timed too: with the default 10 s detect timeout its
//! banner must still arrive at once.
//!
//! Run: `cargo bench --bench first_byte`

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ringside::config::{Args, Config, Direction, Protocol, Route, Upstream};
use ringside::runtime::Sidecar;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

/// An origin that answers each connection's first read with one byte, or
/// sends its one-byte banner first when `speaks_first`. A few threads block
/// in accept(2) so no thread is spawned while a connection is timed.
fn start_origin(speaks_first: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    for _ in 0..4 {
        let listener = listener.try_clone().unwrap();
        thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                stream.set_nodelay(true).unwrap();
                let mut buf = [0u8; 1024];
                if !speaks_first {
                    let _ = stream.read(&mut buf);
                }
                let _ = stream.write_all(b"!");
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            }
        });
    }
    addr
}

/// `remember_server_first: false` turns the server-first memory off, so
/// every banner connection runs the full detection race.
fn start_ringside(
    routes: Vec<(SocketAddr, Protocol)>,
    remember_server_first: bool,
) -> Vec<SocketAddr> {
    let args = Args {
        admin_addr: Some("127.0.0.1:0".into()),
        shards: Some(1),
        ..Args::default()
    };
    let routes = routes
        .into_iter()
        .map(|(upstream, protocol)| Route {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstreams: vec![Upstream::Addr(upstream)],
            direction: Direction::Outbound,
            protocol,
            response_timeout: None,
            detect_timeout: None,
        })
        .collect();
    let mut config = Config::load(&args).unwrap().with_routes(routes);
    if !remember_server_first {
        config.detect.server_first_memory = Duration::ZERO;
    }
    let sidecar = Sidecar::bind(config).unwrap();
    let addrs = sidecar.route_addrs().to_vec();
    thread::spawn(move || sidecar.run().unwrap());
    addrs
}

fn first_byte(addr: SocketAddr, send_first: bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    if send_first {
        stream.write_all(GET).unwrap();
    }
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).unwrap();
}

fn first_byte_group(c: &mut Criterion) {
    let origin = start_origin(false);
    let banner = start_origin(true);
    let proxied = start_ringside(
        vec![
            (origin, Protocol::Opaque),
            (origin, Protocol::Detect),
            (banner, Protocol::Detect),
        ],
        true,
    );
    let racing = start_ringside(vec![(banner, Protocol::Detect)], false);
    let mut group = c.benchmark_group("first_byte");
    group.bench_function("direct_http1", |b| b.iter(|| first_byte(origin, true)));
    group.bench_function("opaque_http1", |b| b.iter(|| first_byte(proxied[0], true)));
    group.bench_function("detect_http1", |b| b.iter(|| first_byte(proxied[1], true)));
    group.bench_function("direct_banner", |b| b.iter(|| first_byte(banner, false)));
    // The banner wins the race against the 10 s detect timeout...
    group.bench_function("detect_banner_race", |b| {
        b.iter(|| first_byte(racing[0], false))
    });
    // ...and once remembered, detection is skipped altogether.
    group.bench_function("detect_banner_learned", |b| {
        b.iter(|| first_byte(proxied[2], false))
    });
    group.finish();
}

criterion_group!(benches, first_byte_group);
criterion_main!(benches);
