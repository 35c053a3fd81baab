//! conn-rate: each client thread connects, sends 16 bytes, reads them back
//! from the echo origin and closes, as fast as it can, for the duration.
//! Closes are ordinary FINs (what applications do); loopback TIME_WAIT
//! reuse (`net.ipv4.tcp_tw_reuse`, 2 by default) keeps ports available.

use super::{join_all, LoadParams, Measurement};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const MESSAGE: &[u8; 16] = b"conn-rate hello\n";

pub(super) fn run(params: &LoadParams, target: SocketAddr) -> anyhow::Result<Measurement> {
    let threads = params.connections.max(1);
    let start = Instant::now();
    let deadline = start + params.duration;
    let counts = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(move || client(target, deadline))).collect();
        join_all(handles)
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    let connections: u64 = counts.iter().sum();
    Ok(Measurement {
        figure: connections as f64 / elapsed,
        work_units: connections as f64 / 1000.0,
        latency: None,
        extra: vec![("client_threads", threads as f64)],
    })
}

fn client(target: SocketAddr, deadline: Instant) -> anyhow::Result<u64> {
    let mut count = 0;
    let mut reply = [0u8; MESSAGE.len()];
    while Instant::now() < deadline {
        let mut stream = TcpStream::connect(target)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(MESSAGE)?;
        stream.read_exact(&mut reply)?;
        anyhow::ensure!(&reply == MESSAGE, "echo returned different bytes");
        count += 1;
    }
    Ok(count)
}
