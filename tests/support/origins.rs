//! Real servers on 127.0.0.1:0 (or another address: `start_on`) for
//! ringside to forward to: a raw TCP
//! `Origin` that runs whatever the test hands it, an HTTP/1.1 origin
//! (`http`), an h2c origin (`h2`) and one that records every byte it is
//! sent (`recording`). Each counts what it saw, so a test can tell where
//! its traffic went.

pub mod h2;
pub mod http;
pub mod recording;

use std::io::{self, BufRead, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What `Origin::smtp` says first.
pub const SMTP_BANNER: &[u8] = b"220 smtp.example.test ESMTP ready\r\n";

/// A slot a handler thread can report into.
pub type Report<T> = Arc<Mutex<Option<T>>>;

/// A TCP origin that runs `handler` on a thread per connection, and counts
/// the connections it accepted and those whose handler returned.
pub struct Origin {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    pub finished: Arc<AtomicUsize>,
}

impl Origin {
    /// `handler` may capture what it reports into (a `Report`, a counter),
    /// so each test keeps its own state instead of a `static`.
    pub fn start(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Origin {
        Origin::start_on("127.0.0.1:0", handler)
    }

    /// `start` on another address (a network namespace's).
    pub fn start_on(bind: &str, handler: impl Fn(TcpStream) + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind(bind).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let counters = (accepted.clone(), finished.clone());
        let handler = Arc::new(handler);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                counters.0.fetch_add(1, Ordering::SeqCst);
                let (handler, finished) = (handler.clone(), counters.1.clone());
                thread::spawn(move || {
                    handler(stream);
                    finished.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Origin {
            addr,
            accepted,
            finished,
        }
    }

    /// Reads everything it is sent and never answers: an application that
    /// hangs. Its handler returns when ringside closes the connection.
    pub fn silent() -> Origin {
        Origin::start(|stream| {
            let _ = io::copy(&mut &stream, &mut io::sink());
        })
    }

    /// Echoes every byte back; answers the client's FIN with its own.
    pub fn echo() -> Origin {
        Origin::echo_on("127.0.0.1:0")
    }

    pub fn echo_on(bind: &str) -> Origin {
        Origin::start_on(bind, |stream| {
            let _ = io::copy(&mut &stream, &mut &stream);
            let _ = stream.shutdown(Shutdown::Write);
        })
    }

    /// Answers `ok` to each request, except that its first connection
    /// closes on reading its second request, unanswered: what a server
    /// closing an idle keep-alive looks like when a request crosses its
    /// FIN. Every later connection answers all.
    pub fn closing_its_first_keep_alive() -> Origin {
        let connections = Arc::new(AtomicUsize::new(0));
        Origin::start(move |stream| {
            let first = connections.fetch_add(1, Ordering::SeqCst) == 0;
            let mut reader = io::BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            for answered in 0.. {
                let mut head = String::new();
                while !head.ends_with("\r\n\r\n") {
                    if reader.read_line(&mut head).unwrap_or(0) == 0 {
                        return;
                    }
                }
                if first && answered == 1 {
                    return;
                }
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                let _ = writer.write_all(ok);
            }
        })
    }

    /// A server that speaks first, as SMTP does: `SMTP_BANNER`, then it
    /// echoes what it is sent.
    pub fn smtp() -> Origin {
        Origin::smtp_on("127.0.0.1:0")
    }

    pub fn smtp_on(bind: &str) -> Origin {
        Origin::start_on(bind, |mut stream| {
            if stream.write_all(SMTP_BANNER).is_ok() {
                let _ = io::copy(&mut &stream, &mut &stream);
            }
        })
    }

    /// An HTTP server with a header timeout, as Apache's: a connection
    /// silent for `after` is answered 408 and closed; a request is answered
    /// 200 with the head it received as the body, and the connection closed.
    pub fn timing_out_silence(after: Duration) -> Origin {
        Origin::start(move |stream| {
            stream.set_read_timeout(Some(after)).unwrap();
            let mut reader = io::BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            while !head.ends_with("\r\n\r\n") {
                match reader.read_line(&mut head) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(_) if head.is_empty() => {
                        let timeout = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
                        let _ = (&stream).write_all(timeout);
                        return;
                    }
                    Err(_) => return,
                }
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{head}",
                head.len()
            );
            let _ = (&stream).write_all(answer.as_bytes());
        })
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections accepted and not yet closed by the peer.
    pub fn open(&self) -> usize {
        self.accepted() - self.finished.load(Ordering::SeqCst)
    }
}

/// An address that never completes a TCP handshake: a listener that never
/// accepts, whose accept queue (backlog 0) is already full, so the kernel
/// drops every further SYN. Connects to it can only time out.
pub struct Unanswered {
    pub addr: SocketAddr,
    _listener: socket2::Socket,
    _queued: Vec<TcpStream>,
}

impl Unanswered {
    pub fn start() -> Unanswered {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
        listener.bind(&any_port.into()).unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        // Fills the queue; the connects past its length are the ones that
        // time out (the first returns at once).
        let queued = (0..3)
            .filter_map(|_| {
                TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)).ok()
            })
            .collect();
        Unanswered {
            addr,
            _listener: listener,
            _queued: queued,
        }
    }
}

/// A WebSocket server for one client: echoes its text and binary messages
/// until it closes. Join the handle to know the session ended cleanly.
pub fn websocket_echo() -> (SocketAddr, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut socket = tungstenite::accept(stream).unwrap();
        while let Ok(message) = socket.read() {
            if message.is_text() || message.is_binary() {
                socket.send(message).unwrap();
            }
        }
    });
    (addr, server)
}
