//! In-process harness for the unit tests of the stages above `io/`
//! (detect, tcp, http, proxy): one executor, as a shard has, connected
//! loopback `Socket` pairs, and the small peers the tests talk to (an
//! HTTP/1 origin, readers, a payload), so that a stage runs on real
//! sockets without a process. It lives here because only `io/` and
//! `runtime/` may name glommio; the tests above see our types only.
//!
//! Nothing here sleeps: a pair is connected by binding port 0 first, then
//! connecting, then accepting what the backlog already holds.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Deadlines, Listener, Socket};
use crate::config::Direction;
use crate::metrics::{Peer, TcpLabels};

/// Longer than any test here should take, so that a stage that hangs
/// fails its test with a message instead of stalling the whole run.
const HANG: Duration = Duration::from_secs(10);

/// Runs `test` to its end on a fresh executor, with `deadlines`' ticker
/// running beside it (as a shard runs its own).
pub fn run_with<F: Future<Output = ()>>(deadlines: &Deadlines, test: impl FnOnce() -> F) {
    let ticker = deadlines.clone();
    glommio::LocalExecutor::default().run(async move {
        glommio::spawn_local(ticker.run()).detach();
        if super::timeout(HANG, test()).await.is_none() {
            panic!("the test did not finish within {HANG:?}");
        }
    });
}

/// `run_with`, for a test that needs no deadlines of its own.
pub fn run<F: Future<Output = ()>>(test: impl FnOnce() -> F) {
    run_with(&Deadlines::new(), test);
}

/// A listener on `127.0.0.1:0`. Must be made on the executor that
/// accepts on it.
pub struct Loopback {
    listener: Listener,
    addr: SocketAddr,
}

impl Loopback {
    pub fn bind() -> Loopback {
        Loopback::with_backlog(64)
    }

    /// One whose backlog holds `backlog` connections not yet accepted.
    pub fn with_backlog(backlog: i32) -> Loopback {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any_port.into()).expect("binding port 0");
        socket.listen(backlog).expect("listening");
        socket.set_nonblocking(true).expect("non-blocking");
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        Loopback {
            listener: Listener::new(socket),
            addr,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listener itself, for a stage that runs its own accept loop.
    pub fn into_listener(self) -> Listener {
        self.listener
    }

    pub async fn accept(&self) -> Socket {
        self.listener
            .accept()
            .await
            .expect("an accepted connection")
    }

    /// A connection to this listener: (the connecting side, the accepted
    /// side).
    pub async fn pair(&self) -> (Socket, Socket) {
        let dialled = super::connect(self.addr, HANG, &Deadlines::new())
            .await
            .expect("connecting over loopback");
        (dialled, self.accept().await)
    }
}

/// One connected loopback pair: (the connecting side, the accepted side).
pub async fn pair() -> (Socket, Socket) {
    Loopback::bind().pair().await
}

/// Reads from `socket` until EOF.
pub async fn read_to_end(socket: &Socket) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = socket.read(&mut buf).await.expect("reading to EOF");
        if n == 0 {
            return all;
        }
        all.extend_from_slice(&buf[..n]);
    }
}

/// Reads exactly `len` bytes from `socket`; EOF before that fails the test.
pub async fn read_exact(socket: &Socket, len: usize) -> Vec<u8> {
    let mut all = vec![0u8; len];
    let mut at = 0;
    while at < len {
        let n = socket.read(&mut all[at..]).await.expect("reading");
        assert!(n > 0, "EOF after {at} of {len} bytes");
        at += n;
    }
    all
}

/// The labels of a plain outbound connection's `peer` end, for counters
/// a test reads back from a snapshot.
pub fn labels(peer: Peer) -> TcpLabels {
    TcpLabels {
        direction: Direction::Outbound,
        peer,
        target_addr: "127.0.0.1:80".to_string(),
        tls_sni: None,
        peer_id: None,
        no_tls: None,
        dst_labels: Default::default(),
    }
}

/// `len` bytes that are not all alike, so that a byte moved out of order
/// or twice shows.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

/// Sends `bytes` on `socket`, then its FIN.
pub async fn send_then_fin(socket: &Socket, bytes: &[u8]) {
    socket.write_all(bytes).await.expect("sending");
    socket
        .shutdown_write()
        .expect("shutting down the write side");
}

/// Reads one HTTP/1 message head (through its blank line) from `socket`,
/// byte by byte so that nothing past it is taken; `None` at EOF first.
pub async fn read_head(socket: &Socket) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).await.expect("reading a head") == 0 {
            assert!(head.is_empty(), "EOF inside a head: {head:?}");
            return None;
        }
        head.push(byte[0]);
    }
    Some(head)
}

/// The request heads an origin saw, in order.
pub type Heads = std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>>;

/// An HTTP/1 origin: answers every request without a body on each
/// connection it accepts with `200` and `body`, and hands each head it
/// saw to `seen`. Runs until the executor ends.
pub fn http1_origin(origin: Loopback, body: &'static str, seen: Heads) {
    super::spawn(async move {
        loop {
            let socket = origin.accept().await;
            let seen = seen.clone();
            super::spawn(async move {
                while let Some(head) = read_head(&socket).await {
                    seen.borrow_mut().push(head);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    socket
                        .write_all(answer.as_bytes())
                        .await
                        .expect("answering");
                }
            });
        }
    });
}
