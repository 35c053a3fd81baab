//! One mio event loop per byte-stream origin: a thread, a listener, and a
//! table of connections, each driven by its [`Protocol`].
//!
//! Edge-triggered, so every wake-up reads until the socket would block,
//! except when a connection already has `MAX_PENDING_OUTPUT` unsent bytes:
//! then it stops reading (backpressure on a client that does not read its
//! echo) and reading resumes when the socket turns writable again.

use super::protocols::{Factory, Protocol};
use super::OriginCounters;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;
const READ_BUFFER_BYTES: usize = 256 * 1024;
const MAX_PENDING_OUTPUT: usize = 4 * 1024 * 1024;

struct Connection {
    stream: TcpStream,
    protocol: Box<dyn Protocol>,
    /// Bytes read but not yet consumed by the protocol (a partial request).
    input: Vec<u8>,
    /// Replies not yet written, from `written` on.
    output: Vec<u8>,
    written: usize,
}

/// Binds `listen` and runs the loop on a new thread until `stopping` is set
/// and the returned waker is woken.
pub(crate) fn spawn(
    listen: SocketAddr,
    factory: Factory,
    counters: Arc<OriginCounters>,
    stopping: Arc<AtomicBool>,
) -> std::io::Result<(SocketAddr, Arc<mio::Waker>, JoinHandle<()>)> {
    let std_listener = std::net::TcpListener::bind(listen)?;
    std_listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(std_listener);
    let addr = listener.local_addr()?;
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
    let thread = std::thread::Builder::new()
        .name(format!("origin-{}", addr.port()))
        .spawn(move || run(poll, listener, factory, &counters, &stopping))?;
    Ok((addr, waker, thread))
}

fn run(
    mut poll: Poll,
    listener: TcpListener,
    factory: Factory,
    counters: &OriginCounters,
    stopping: &AtomicBool,
) {
    let mut events = Events::with_capacity(1024);
    let mut connections: HashMap<usize, Connection> = HashMap::new();
    let mut next_token = FIRST_CONNECTION;
    let mut scratch = vec![0u8; READ_BUFFER_BYTES];
    loop {
        if let Err(error) = poll.poll(&mut events, None) {
            if error.kind() == ErrorKind::Interrupted {
                continue;
            }
            eprintln!(
                "origin {}: poll failed: {error}",
                listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            );
            return;
        }
        for event in events.iter() {
            match event.token() {
                WAKER if stopping.load(Ordering::SeqCst) => return,
                WAKER => {}
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let token = next_token;
                            next_token += 1;
                            let interest = Interest::READABLE | Interest::WRITABLE;
                            if poll
                                .registry()
                                .register(&mut stream, Token(token), interest)
                                .is_err()
                            {
                                continue;
                            }
                            let protocol = factory();
                            let output = protocol.greeting().to_vec();
                            let connection = Connection {
                                stream,
                                protocol,
                                input: Vec::new(),
                                output,
                                written: 0,
                            };
                            connections.insert(token, connection);
                            // The greeting (if any) goes out when the writable edge arrives.
                        }
                        Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                        // Out of fds and similar: drop this accept, keep serving the rest.
                        Err(_) => break,
                    }
                },
                Token(token) => {
                    let Some(connection) = connections.get_mut(&token) else {
                        continue;
                    };
                    if drive(connection, &mut scratch, counters).is_err() {
                        connections.remove(&token);
                    }
                }
            }
        }
    }
}

/// Why a connection is finished.
struct Closed;

/// Writes what is pending, then reads and answers until the socket would block.
fn drive(
    connection: &mut Connection,
    scratch: &mut [u8],
    counters: &OriginCounters,
) -> Result<(), Closed> {
    loop {
        flush(connection)?;
        if connection.output.is_empty() && connection.protocol.finished() {
            return Err(Closed);
        }
        if connection.output.len() - connection.written >= MAX_PENDING_OUTPUT {
            return Ok(());
        }
        let read = match connection.stream.read(scratch) {
            Ok(0) => {
                // The client is done sending; hand back what is still owed, best effort.
                let _ = flush(connection);
                return Err(Closed);
            }
            Ok(read) => read,
            Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err(Closed),
        };
        counters
            .bytes_received
            .fetch_add(read as u64, Ordering::Relaxed);
        let Connection {
            protocol,
            input,
            output,
            ..
        } = connection;
        if input.is_empty() {
            let consumed = protocol
                .on_data(&scratch[..read], output)
                .map_err(|()| Closed)?;
            input.extend_from_slice(&scratch[consumed..read]);
        } else {
            input.extend_from_slice(&scratch[..read]);
            let consumed = protocol.on_data(input, output).map_err(|()| Closed)?;
            input.drain(..consumed);
        }
    }
}

fn flush(connection: &mut Connection) -> Result<(), Closed> {
    while connection.written < connection.output.len() {
        match connection
            .stream
            .write(&connection.output[connection.written..])
        {
            Ok(0) => return Err(Closed),
            Ok(written) => connection.written += written,
            Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(Closed),
        }
    }
    connection.output.clear();
    connection.written = 0;
    Ok(())
}
