//! Listening sockets, built with socket2 before any shard starts so that a
//! taken port is a clear error at start-up, not a surprise later.
//!
//! Each shard gets its own SO_REUSEPORT socket per route and the kernel
//! spreads connections over them. SO_REUSEPORT would also let us share a
//! port with some other process by accident, so the port is probed first
//! with a socket that does not set it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr}: the address is already in use by another process")]
    InUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Io { addr: SocketAddr, source: io::Error },
}

/// Binds `count` SO_REUSEPORT listeners on `addr`, one per shard. With port
/// 0 the kernel picks the port for the first and the rest join it.
pub fn bind_shard_listeners(
    addr: SocketAddr,
    count: usize,
    backlog: u32,
) -> Result<Vec<Socket>, ListenError> {
    if addr.port() != 0 {
        probe(addr)?;
    }
    let mut sockets = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count {
        let socket = reuseport_listener(bound, backlog).map_err(|source| ListenError::Io {
            addr: bound,
            source,
        })?;
        if bound.port() == 0 {
            bound = local_addr(&socket).map_err(|source| ListenError::Io { addr, source })?;
        }
        sockets.push(socket);
    }
    Ok(sockets)
}

/// The IPv6 twin of a transparent listener on `0.0.0.0` or `127.0.0.1`
/// (`[::]` or `[::1]`, same port), where ip6tables redirects land; `None`
/// for any other address, which names its family on purpose.
pub fn ipv6_twin(addr: SocketAddr) -> Option<SocketAddr> {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => Ipv6Addr::UNSPECIFIED,
        IpAddr::V4(ip) if ip == Ipv4Addr::LOCALHOST => Ipv6Addr::LOCALHOST,
        _ => return None,
    };
    Some(SocketAddr::new(IpAddr::V6(ip), addr.port()))
}

/// `bind_shard_listeners` for an IPv6 twin: IPv6 only (the IPv4 socket
/// already has the port), and `None` where the host has no IPv6, which
/// is not an error: there is nothing to redirect there either.
pub fn bind_twin_listeners(
    twin: SocketAddr,
    count: usize,
    backlog: u32,
) -> Result<Option<Vec<Socket>>, ListenError> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let bound = new_socket(twin).and_then(|socket| {
            socket.set_only_v6(true)?;
            reuseport_listen(socket, twin, backlog)
        });
        match bound {
            Ok(socket) => sockets.push(socket),
            Err(err) if no_ipv6(&err) => return Ok(None),
            Err(source) => return Err(classify(twin, source)),
        }
    }
    Ok(Some(sockets))
}

/// The errors of a host without IPv6 (disabled, or no `::1`).
fn no_ipv6(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL | libc::EPROTONOSUPPORT)
    )
}

/// A plain listener (the admin server's): no SO_REUSEPORT, so a taken port
/// fails here.
pub fn bind_exclusive(addr: SocketAddr, backlog: u32) -> Result<Socket, ListenError> {
    let socket = new_socket(addr)
        .and_then(|socket| {
            socket.set_reuse_address(true)?;
            socket.bind(&SockAddr::from(addr))?;
            socket.listen(backlog.min(i32::MAX as u32) as i32)?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .map_err(|source| classify(addr, source))?;
    Ok(socket)
}

pub fn local_addr(socket: &Socket) -> io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))
}

/// Fails if some other socket already listens on `addr`.
fn probe(addr: SocketAddr) -> Result<(), ListenError> {
    let socket = new_socket(addr).map_err(|source| ListenError::Io { addr, source })?;
    // SO_REUSEADDR only skips TIME_WAIT leftovers; a live listener still
    // makes bind fail, which is what we want to know.
    let _ = socket.set_reuse_address(true);
    socket
        .bind(&SockAddr::from(addr))
        .map_err(|source| classify(addr, source))
}

fn reuseport_listener(addr: SocketAddr, backlog: u32) -> io::Result<Socket> {
    reuseport_listen(new_socket(addr)?, addr, backlog)
}

fn reuseport_listen(socket: Socket, addr: SocketAddr, backlog: u32) -> io::Result<Socket> {
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    // Accepted through a multishot accept (glommio patch 16), which
    // wants the listener non-blocking, as does the fallback's accept(2).
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A TCP socket for `addr`. One for `[::]` takes IPv4 too, whatever
/// `net.ipv6.bindv6only` says: Linkerd's injector gives the inbound and
/// admin listeners `[::]` (`_proxy.tpl`, unless `disableIPv6`), and
/// kubelet probes and peers reach them at the pod's IPv4 address.
fn new_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_cloexec(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    Ok(socket)
}

fn classify(addr: SocketAddr, source: io::Error) -> ListenError {
    if source.kind() == io::ErrorKind::AddrInUse {
        ListenError::InUse { addr }
    } else {
        ListenError::Io { addr, source }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_ipv4_wildcard_and_loopback_have_twins() {
        let twin = |addr: &str| ipv6_twin(addr.parse().unwrap()).map(|a| a.to_string());
        assert_eq!(twin("0.0.0.0:4143").as_deref(), Some("[::]:4143"));
        assert_eq!(twin("127.0.0.1:4140").as_deref(), Some("[::1]:4140"));
        assert_eq!(twin("10.0.0.1:4143"), None);
        assert_eq!(twin("[::1]:4140"), None);
    }

    use super::*;

    #[test]
    fn shard_listeners_share_one_port() {
        let sockets = bind_shard_listeners("127.0.0.1:0".parse().unwrap(), 3, 16).unwrap();
        let ports: Vec<u16> = sockets
            .iter()
            .map(|s| local_addr(s).unwrap().port())
            .collect();
        assert!(
            ports[0] != 0 && ports.iter().all(|p| *p == ports[0]),
            "{ports:?}"
        );
    }

    #[test]
    fn a_port_taken_by_another_listener_is_a_clear_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind_shard_listeners(addr, 2, 16).unwrap_err();
        assert!(matches!(err, ListenError::InUse { .. }), "{err}");
        assert!(err.to_string().contains("already in use"));
    }
}
