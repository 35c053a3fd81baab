//! `ringside demo`: the proxy doing something real and visible on a fresh
//! machine. It starts an echo origin on loopback, puts ringside in front of
//! it (Linkerd's outbound port, 4140, unless routes are given), pushes a
//! little traffic through, prints what /metrics says, and keeps running so
//! the user can try their own client.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use ringside::config::{Config, Direction, Protocol, Route, Upstream};

const DEMO_LISTEN: &str = "127.0.0.1:4140";
const CONNECTIONS: usize = 8;
const BYTES_PER_CONNECTION: usize = 4 << 20;

pub fn run(config: Config) -> anyhow::Result<()> {
    let origin = start_echo_origin()?;
    let config = if config.routes.is_empty() {
        let response_timeout = config.timeouts.response;
        config.with_routes(vec![Route {
            listen: DEMO_LISTEN.parse().expect("a valid address"),
            upstreams: vec![Upstream::Addr(origin)],
            direction: Direction::Outbound,
            protocol: Protocol::Detect,
            response_timeout,
        }])
    } else {
        config
    };
    let sidecar = crate::start(config)?;
    let admin = sidecar.admin_addr();
    let listen = sidecar.route_addrs()[0];
    println!("demo: echo origin on {origin}, ringside on {listen}, admin on {admin}");
    thread::spawn(move || {
        if let Err(err) = push_traffic(listen, admin) {
            eprintln!("demo: traffic failed: {err:#}");
        }
    });
    sidecar.run()?;
    Ok(())
}

/// An echo server on a loopback port of the kernel's choosing.
fn start_echo_origin() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("starting the demo origin")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = stream.shutdown(Shutdown::Write);
            });
        }
    });
    Ok(addr)
}

fn push_traffic(listen: SocketAddr, admin: SocketAddr) -> anyhow::Result<()> {
    let started = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|i| thread::spawn(move || echo_once(listen, i as u8)))
        .collect();
    for worker in workers {
        worker.join().expect("demo worker")?;
    }
    let elapsed = started.elapsed();
    let total = CONNECTIONS * BYTES_PER_CONNECTION;
    println!(
        "demo: {CONNECTIONS} connections echoed {} MiB each way through ringside in {elapsed:.2?}, every byte checked",
        total >> 20
    );

    let metrics = scrape_after_close(admin)?;
    println!("demo: what {admin}/metrics says now:");
    for line in metrics.lines().filter(|l| {
        (l.starts_with("tcp_open_total")
            || l.starts_with("protocol_detect_total")
            || l.starts_with("tcp_read_bytes_total")
            || l.starts_with("tcp_write_bytes_total")
            || l.starts_with("tcp_close_total"))
            && !l.ends_with(" 0")
    }) {
        println!("  {line}");
    }
    println!(
        "demo: ringside keeps running. Try it yourself:\n  \
         echo hello | nc -N {} {}\n  \
         curl -s http://{admin}/metrics | grep ^tcp_\n  \
         curl -s http://{admin}/shards\n\
         Stop with Ctrl-C (it drains open connections first).",
        listen.ip(),
        listen.port()
    );
    Ok(())
}

fn echo_once(listen: SocketAddr, seed: u8) -> anyhow::Result<()> {
    let data: Vec<u8> = (0..BYTES_PER_CONNECTION)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let stream = TcpStream::connect(listen).context("connecting through ringside")?;
    let mut writer = stream.try_clone()?;
    let sender = thread::spawn(move || -> std::io::Result<()> {
        writer.write_all(&data)?;
        writer.shutdown(Shutdown::Write)
    });
    let mut echoed = Vec::with_capacity(BYTES_PER_CONNECTION);
    (&stream).read_to_end(&mut echoed)?;
    sender.join().expect("demo sender")?;
    let expected = (0..BYTES_PER_CONNECTION).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed));
    anyhow::ensure!(
        echoed.iter().copied().eq(expected),
        "echo differs from what was sent"
    );
    Ok(())
}

/// Scrapes /metrics once the demo's connections are counted as closed.
fn scrape_after_close(admin: SocketAddr) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut stream = TcpStream::connect(admin).context("connecting to the admin server")?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let open = response
            .lines()
            .any(|l| l.starts_with("tcp_open_connections") && !l.ends_with(" 0"));
        if !open || Instant::now() > deadline {
            return Ok(response);
        }
        thread::sleep(Duration::from_millis(20));
    }
}
