//! End to end over loopback: a fixed amount of data to a sink origin,
//! directly (the baseline), through an in-process ringside with splice, and
//! through its copy fallback. Each iteration opens a connection, sends
//! `TRANSFER_BYTES`, half-closes, and waits for the origin's count, so the
//! time covers every byte arriving.
//!
//! Run: `cargo bench --bench forward`

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringside::config::{Args, Config, Direction, Protocol, Route, Upstream};
use ringside::runtime::Sidecar;

const TRANSFER_BYTES: usize = 64 << 20;

/// Reads each connection to EOF, then answers with the byte count.
fn start_sink() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0u64;
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
                let _ = stream.write_all(&total.to_le_bytes());
            });
        }
    });
    addr
}

/// Starts ringside in this process with one route to `upstream`; it runs
/// until the bench process exits.
fn start_ringside(upstream: SocketAddr, forward_mode: &str) -> SocketAddr {
    let args = Args {
        admin_addr: Some("127.0.0.1:0".into()),
        shards: Some(1),
        forward_mode: Some(forward_mode.into()),
        ..Args::default()
    };
    let config = Config::load(&args).unwrap().with_routes(vec![Route {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstreams: vec![Upstream::Addr(upstream)],
        direction: Direction::Outbound,
        protocol: Protocol::Opaque,
        response_timeout: None,
        detect_timeout: None,
    }]);
    let sidecar = Sidecar::bind(config).unwrap();
    let addr = sidecar.route_addrs()[0];
    thread::spawn(move || sidecar.run().unwrap());
    addr
}

fn transfer(addr: SocketAddr, chunk: &[u8]) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut sent = 0;
    while sent < TRANSFER_BYTES {
        stream.write_all(chunk).unwrap();
        sent += chunk.len();
    }
    stream.shutdown(Shutdown::Write).unwrap();
    let mut count = [0u8; 8];
    stream.read_exact(&mut count).unwrap();
    assert_eq!(u64::from_le_bytes(count), TRANSFER_BYTES as u64);
}

fn loopback(c: &mut Criterion) {
    let sink = start_sink();
    let targets = [
        ("direct", sink),
        ("ringside_splice", start_ringside(sink, "splice")),
        ("ringside_copy", start_ringside(sink, "copy")),
    ];
    let chunk = vec![0x5au8; 256 * 1024];
    let mut group = c.benchmark_group("loopback_64MiB");
    group.throughput(Throughput::Bytes(TRANSFER_BYTES as u64));
    group.sample_size(20);
    for (name, addr) in targets {
        group.bench_function(name, |b| b.iter(|| transfer(addr, &chunk)));
    }
    group.finish();
}

criterion_group!(benches, loopback);
criterion_main!(benches);
