//! conn-rate: each client thread connects, sends 16 bytes, reads them back
//! from the echo origin and closes, as fast as it can, for the duration.
//! Closes are ordinary FINs (what applications do), so TIME_WAIT piles up:
//! the client spreads its connections over source addresses 127.0.0.2-254
//! (binding the address only, `IP_BIND_ADDRESS_NO_PORT`) so that it does
//! not exhaust the 127.0.0.1 -> origin port space a proxy's upstream leg
//! needs, and loopback TIME_WAIT reuse (`net.ipv4.tcp_tw_reuse` = 2, the
//! default) does the rest.

use super::{join_all, LoadParams, Measurement};
use socket2::{Domain, Socket, Type};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const MESSAGE: &[u8; 16] = b"conn-rate hello\n";
/// 127.0.0.2 to 127.0.0.254.
const SOURCE_ADDRESSES: usize = 253;

pub(super) fn run(params: &LoadParams, target: SocketAddr) -> anyhow::Result<Measurement> {
    let threads = params.connections.max(1);
    let start = Instant::now();
    let deadline = start + params.duration;
    let counts = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| scope.spawn(move || client(target, deadline, index, threads)))
            .collect();
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

fn client(
    target: SocketAddr,
    deadline: Instant,
    index: usize,
    threads: usize,
) -> anyhow::Result<u64> {
    let mut count = 0;
    let mut reply = [0u8; MESSAGE.len()];
    let mut source = index;
    while Instant::now() < deadline {
        source = (source + threads) % SOURCE_ADDRESSES;
        let mut stream = connect_from(Ipv4Addr::new(127, 0, 0, 2 + source as u8), target)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(MESSAGE)?;
        stream.read_exact(&mut reply)?;
        anyhow::ensure!(&reply == MESSAGE, "echo returned different bytes");
        count += 1;
    }
    Ok(count)
}

/// Connects from `source` (port chosen at connect time, not at bind time).
fn connect_from(source: Ipv4Addr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let enable: libc::c_int = 1;
    // SAFETY: a valid socket fd and a c_int option value of the right size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&enable as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    socket.connect(&target.into())?;
    Ok(socket.into())
}
