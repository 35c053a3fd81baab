//! The original destination of a connection that iptables redirected to a
//! transparent listener: `SO_ORIGINAL_DST` for IPv4, `IP6T_SO_ORIGINAL_DST`
//! for IPv6, read from conntrack by the kernel. socket2 wraps the
//! getsockopt calls; the one unsafe step, borrowing the stream's fd, is
//! `with_sock_ref`'s.

use std::io;
use std::net::SocketAddr;

use super::Socket;

/// Where the client of `stream` meant to connect, and the address it
/// reached (the listener's). Both are the same for a connection that was
/// not redirected; `None` when conntrack knows nothing of it (no NAT
/// table loaded), which means the same. Both are canonical (an IPv4
/// connection to a dual-stack `[::]` listener names IPv4 addresses).
pub struct Destination {
    pub original: Option<SocketAddr>,
    pub local: SocketAddr,
}

pub fn original_dst(socket: &Socket) -> io::Result<Destination> {
    socket.with_sock_ref(|socket| {
        let local = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))?;
        // A dual-stack listener's IPv4 clients show as v4-mapped and were
        // redirected by the IPv4 table.
        let v6 = matches!(local, SocketAddr::V6(addr) if addr.ip().to_ipv4_mapped().is_none());
        let original = if v6 {
            socket.original_dst_ipv6()
        } else {
            socket.original_dst()
        };
        let original = match original {
            Ok(addr) => addr.as_socket().map(super::socket::canonical),
            // No conntrack entry: nothing rewrote this connection.
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => None,
            Err(err) => return Err(err),
        };
        // One form for both: the caller compares them.
        let local = super::socket::canonical(local);
        Ok(Destination { original, local })
    })
}
