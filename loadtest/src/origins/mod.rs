//! Origins: the servers a scenario talks to, directly or through a proxy.
//!
//! Each origin binds its own listener (port 0 by default), runs on one thread
//! of its own and reports the address it got. The byte-stream origins share
//! one mio event loop ([`event_loop`]); only the h2 origin needs tokio,
//! because the `h2` crate does.

mod event_loop;
mod h2;
mod protocols;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// What an origin does with a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OriginKind {
    /// Reads and discards everything.
    Sink,
    /// Writes back every byte it reads.
    Echo,
    /// HTTP/1.1 keep-alive server answering every request with `size` bytes.
    Http1,
    /// HTTP/2 (h2c, prior knowledge) server answering with `size` bytes.
    H2,
    /// Speaks first (an SMTP-like greeting line), then echoes.
    Banner,
}

/// The greeting the banner origin sends as soon as it accepts.
pub const BANNER: &[u8] = b"220 loadtest banner ready\r\n";

/// Counters an origin keeps, read by the scenarios that measure at the origin.
#[derive(Debug, Default)]
pub struct OriginCounters {
    /// Payload bytes read from clients: throughput is measured here, so a
    /// proxy that buffers does not get credit for bytes it has not delivered.
    pub bytes_received: AtomicU64,
}

/// A running origin. Dropping it stops its thread and closes its connections.
pub struct Origin {
    addr: SocketAddr,
    counters: Arc<OriginCounters>,
    /// Set before the thread is woken, so it knows the wake-up means "stop".
    stopping: Arc<AtomicBool>,
    waker: Waker,
    thread: Option<JoinHandle<()>>,
}

/// How the origin's thread is woken to notice `stopping`.
enum Waker {
    Mio(Arc<mio::Waker>),
    /// The tokio accept loop is woken by a connection to itself.
    SelfConnect,
}

impl Origin {
    /// Binds `listen` and starts serving `kind` with responses of `response_size` bytes.
    pub fn start(
        kind: OriginKind,
        listen: SocketAddr,
        response_size: usize,
    ) -> std::io::Result<Self> {
        let counters = Arc::new(OriginCounters::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let (addr, waker, thread) = if kind == OriginKind::H2 {
            let (addr, thread) = h2::spawn(listen, response_size, stopping.clone())?;
            (addr, Waker::SelfConnect, thread)
        } else {
            let factory = protocols::factory(kind, response_size);
            let (addr, waker, thread) =
                event_loop::spawn(listen, factory, counters.clone(), stopping.clone())?;
            (addr, Waker::Mio(waker), thread)
        };
        Ok(Self {
            addr,
            counters,
            stopping,
            waker,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn counters(&self) -> &OriginCounters {
        &self.counters
    }

    pub fn bytes_received(&self) -> u64 {
        self.counters.bytes_received.load(Ordering::Relaxed)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        match &self.waker {
            Waker::Mio(waker) => {
                let _ = waker.wake();
            }
            Waker::SelfConnect => {
                let _ = TcpStream::connect(self.addr);
            }
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
