//! Ports a test names before ringside binds them, held so that nothing
//! else takes them in between.
//!
//! A port found by binding port 0 and closing the socket is free for a
//! moment only: a test running beside this one can bind it before ringside
//! does, and ringside then refuses to start (CI lost a run of
//! `tests/reload.rs` that way). A reserved port stays bound, with
//! SO_REUSEADDR and SO_REUSEPORT and never listening, for as long as the
//! test holds it. The kernel then gives it to no other port-0 bind and to
//! no connect, refuses connections to it, and still lets ringside's
//! listeners (which set both options) bind and listen beside it, again
//! each time a reload adds the route back.

use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, SockAddr, Socket, Type};

pub struct ReservedPort {
    pub addr: SocketAddr,
    _socket: Socket,
}

impl ReservedPort {
    /// A port of 127.0.0.1, held until this is dropped.
    pub fn new() -> ReservedPort {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket.set_reuse_port(true).unwrap();
        let any_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        socket.bind(&SockAddr::from(any_port)).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        ReservedPort {
            addr,
            _socket: socket,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// An address nothing listens on: connections to it are refused for as
/// long as the test holds it.
pub fn closed_port() -> ReservedPort {
    ReservedPort::new()
}
