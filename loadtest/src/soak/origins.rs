//! The soak's origins that the load test's own ([`crate::origins`]) do not
//! cover: an HTTP/1 origin that checks uploads and serves checkable
//! downloads, one that resets every connection, and one that never answers.
//! A thread per connection: the soak holds at most a few hundred, and
//! blocking code is the easiest to trust as a reference.

use super::http1::{self, Framing};
use super::payload::{Payload, StreamHash};
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// `POST /upload` answers the body's digest; `GET /download/SEED/LEN/fixed|chunked`
    /// answers that payload.
    Http1,
    /// Reads the first bytes, then closes with SO_LINGER 0 (a reset).
    Reset,
    /// Reads and discards everything, never answers, closes when the peer
    /// does or when released.
    Stall,
}

/// A running origin; dropping it stops accepting (open connections run on).
pub struct ThreadOrigin {
    addr: SocketAddr,
    /// Connections accepted: for reset and stall, the faults injected.
    accepted: Arc<AtomicU64>,
    /// Set by [`ThreadOrigin::release`]: stalled connections close.
    released: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadOrigin {
    pub fn start(behaviour: Behaviour) -> std::io::Result<Self> {
        Self::serve(behaviour, TcpListener::bind("127.0.0.1:0")?)
    }

    /// Serves on a listener already bound (the DNS route's pair share a port).
    pub fn serve(behaviour: Behaviour, listener: TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicU64::new(0));
        let released = Arc::new(AtomicBool::new(false));
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, released, stopping) =
                (accepted.clone(), released.clone(), stopping.clone());
            std::thread::Builder::new()
                .name(format!("soak-origin-{}", addr.port()))
                .spawn(move || {
                    for stream in listener.incoming() {
                        // Drop connects once to wake this loop up.
                        if stopping.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(stream) = stream else { continue };
                        accepted.fetch_add(1, Ordering::Relaxed);
                        let released = released.clone();
                        let _ = std::thread::Builder::new()
                            .name("soak-origin-conn".into())
                            .spawn(move || serve(behaviour, stream, &released));
                    }
                })?
        };
        Ok(Self {
            addr,
            accepted,
            released,
            stopping,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// A stalling origin closes every connection it holds (within
    /// [`RELEASE_POLL`]) and every one it accepts from now on.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }
}

impl Drop for ThreadOrigin {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How often a stalled connection looks whether it has been released.
pub const RELEASE_POLL: Duration = Duration::from_millis(250);

fn serve(behaviour: Behaviour, stream: TcpStream, released: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    match behaviour {
        Behaviour::Http1 => {
            let _ = serve_http1(stream);
        }
        Behaviour::Reset => {
            // Wait (bounded) for the request, so the reset hits a
            // connection that is in use, then reset.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
            let _ = (&stream).read(&mut [0u8; 1024]);
            reset(&stream);
        }
        Behaviour::Stall => {
            let _ = stream.set_read_timeout(Some(RELEASE_POLL));
            let mut sink = [0u8; 16 * 1024];
            while !released.load(Ordering::SeqCst) {
                match (&stream).read(&mut sink) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(error)
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        }
    }
}

/// Closes with SO_LINGER 0: the peer gets a RST, not a FIN.
pub fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn serve_http1(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = BufWriter::new(stream);
    while let Some(head) = http1::read_head(&mut reader, true)? {
        let mut hash = StreamHash::default();
        http1::read_body(&mut reader, head.framing()?, &mut hash, None)?;
        if head.method == "POST" && head.path == "/upload" {
            let digest = hash.finish().to_string();
            write!(
                writer,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{digest}",
                digest.len()
            )?;
            writer.flush()?;
            continue;
        }
        let Some((seed, len, framing)) = parse_download(&head.path) else {
            writer.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")?;
            writer.flush()?;
            continue;
        };
        write!(
            writer,
            "HTTP/1.1 200 OK\r\n{}\r\n",
            http1::framing_header(framing)
        )?;
        http1::write_body(&mut writer, framing, Payload::new(seed, len), None, None)?;
    }
    Ok(())
}

/// The path a client asks a download by.
pub fn download_path(seed: u64, len: usize, chunked: bool) -> String {
    let framing = if chunked { "chunked" } else { "fixed" };
    format!("/download/{seed}/{len}/{framing}")
}

fn parse_download(path: &str) -> Option<(u64, usize, Framing)> {
    let mut parts = path.strip_prefix("/download/")?.split('/');
    let seed = parts.next()?.parse().ok()?;
    let len: usize = parts.next()?.parse().ok()?;
    let framing = match parts.next()? {
        "chunked" => Framing::Chunked,
        "fixed" => Framing::Length(len as u64),
        _ => return None,
    };
    Some((seed, len, framing))
}
