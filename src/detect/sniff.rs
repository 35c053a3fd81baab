//! `Detect`: the async stage that peeks at a new connection's first bytes
//! and decides its protocol, racing three things:
//! - the client's bytes (peeked, not consumed, so the opaque path still
//!   splices the very first byte);
//! - the upstream's bytes: a server that speaks first (MySQL, SMTP, NATS)
//!   makes the connection opaque at once instead of after the timeout;
//! - the detect timeout, after which the connection fails open to opaque;
//! - the quiet pause: a client that sent an undecided prefix ("GET",
//!   "ping", half a ClientHello) and then nothing for that long is
//!   waiting for an answer, so it is carried as opaque at once rather than
//!   after the detect timeout. A live client sending a head byte by byte
//!   keeps each gap under the pause and is still detected. The pause is
//!   above Linux's 200 ms minimum retransmission timeout, so one lost
//!   segment alone does not trip it; when it does, opaque still forwards
//!   every byte and only HTTP metrics are lost.
//!
//! Both waits are slots of the shard's coarse `Deadlines`: no timer is
//! armed per connection, and none at all when the first peek decides.
//!
//! A peek returns at once while any byte is buffered, so when the bytes so
//! far are an unfinished prefix ("GE", half a ClientHello) the stage switches
//! to reading them out, which parks until more arrive instead of spinning.
//! Those bytes (at most `peek_bytes`) are returned as `prefix`, for the
//! caller to send upstream ahead of everything else.

use std::io;
use std::time::{Duration, Instant};

use futures_lite::future;

use super::{detect, detect_final, Detection};
use crate::config::{DetectConfig, Timeouts};
use crate::io::{Deadline, Deadlines, Socket};

/// What detection decided, as the `result` label of
/// `protocol_detect_total` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Http1,
    Http2,
    /// TLS passthrough, with the SNI when the ClientHello carried one.
    Tls {
        sni: Option<String>,
    },
    /// Bytes that are none of the above (or a client that closed at once).
    Unknown,
    /// The client sent no verdict's worth of bytes in time: failed open.
    Timeout,
    /// The client sent an undecided prefix, then went quiet for the pause.
    Quiet,
    /// The upstream spoke before the client did.
    ServerFirst,
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Http1 => "http/1",
            Verdict::Http2 => "http/2",
            Verdict::Tls { .. } => "tls",
            Verdict::Unknown => "unknown",
            Verdict::Timeout => "timeout",
            Verdict::Quiet => "quiet",
            Verdict::ServerFirst => "server_first",
        }
    }

    fn from_detection(detection: Detection) -> Option<Verdict> {
        match detection {
            Detection::Http1 => Some(Verdict::Http1),
            Detection::Http2 => Some(Verdict::Http2),
            Detection::Tls(hello) => Some(Verdict::Tls {
                sni: hello.server_name().map(str::to_string),
            }),
            Detection::Unknown => Some(Verdict::Unknown),
            Detection::NeedMore => None,
        }
    }
}

pub struct Sniffed {
    pub verdict: Verdict,
    /// Client bytes already read out of the socket: they must reach the
    /// upstream before anything else.
    pub prefix: Vec<u8>,
    pub elapsed: Duration,
}

/// Why detection could not finish; the client's connection is then failed.
#[derive(Debug, thiserror::Error)]
#[error("reading the client during detection failed: {0}")]
pub struct SniffError(pub io::Error);

enum Event {
    Client(io::Result<usize>),
    Server,
    Timeout,
}

/// Decides the protocol of `client`'s connection, watching `upstream` (when
/// there is one) for a server that speaks first.
pub async fn sniff(
    client: &Socket,
    upstream: Option<&Socket>,
    config: &DetectConfig,
    timeouts: &Timeouts,
    deadlines: &Deadlines,
) -> Result<Sniffed, SniffError> {
    let started = Instant::now();
    let timeout_at = started + timeouts.detect;
    // Taken only once there is something to wait for.
    let mut deadline: Option<Deadline> = None;
    let done = |verdict, prefix| {
        Ok(Sniffed {
            verdict,
            prefix,
            elapsed: started.elapsed(),
        })
    };

    let mut upstream = upstream;
    // Fast path: the client's bytes are usually there by the time the
    // upstream is connected, and the first peek holds the whole verdict.
    let mut peeked = vec![0u8; config.peek_bytes];
    let seen = loop {
        let event = match client.try_peek(&mut peeked).map_err(SniffError)? {
            Some(n) => Event::Client(Ok(n)),
            None => {
                next_event(
                    client.peek(&mut peeked),
                    upstream,
                    armed(&mut deadline, deadlines, timeout_at),
                )
                .await
            }
        };
        match event {
            Event::Client(Err(err)) => return Err(SniffError(err)),
            Event::Client(Ok(0)) => return done(Verdict::Unknown, Vec::new()),
            Event::Client(Ok(n)) => break n,
            Event::Server if speaks_first(&mut upstream) => {
                return done(Verdict::ServerFirst, Vec::new())
            }
            Event::Server => {}
            Event::Timeout => return done(Verdict::Timeout, Vec::new()),
        }
    };
    if let Some(verdict) = verdict_for(&peeked[..seen], config.peek_bytes) {
        return done(verdict, Vec::new());
    }

    // Fragmented input: read what is there and wait for more.
    let mut prefix = Vec::with_capacity(config.peek_bytes);
    let mut chunk = vec![0u8; config.peek_bytes];
    // The undecided bytes just arrived: the quiet pause starts now.
    let mut quiet_at = Instant::now() + timeouts.detect_quiet_pause;
    loop {
        let room = config.peek_bytes - prefix.len();
        let due = quiet_at.min(timeout_at);
        let read = client.read(&mut chunk[..room]);
        let n = match next_event(read, upstream, armed(&mut deadline, deadlines, due)).await {
            Event::Client(Err(err)) => return Err(SniffError(err)),
            Event::Client(Ok(n)) => n,
            Event::Server if speaks_first(&mut upstream) => {
                return done(Verdict::ServerFirst, prefix)
            }
            Event::Server => continue,
            Event::Timeout if due == quiet_at => return done(Verdict::Quiet, prefix),
            Event::Timeout => return done(Verdict::Timeout, prefix),
        };
        quiet_at = Instant::now() + timeouts.detect_quiet_pause;
        if n == 0 {
            // The client finished early; whatever it sent goes on as is.
            let verdict =
                Verdict::from_detection(detect_final(&prefix)).unwrap_or(Verdict::Unknown);
            return done(verdict, prefix);
        }
        prefix.extend_from_slice(&chunk[..n]);
        if let Some(verdict) = verdict_for(&prefix, config.peek_bytes) {
            return done(verdict, prefix);
        }
    }
}

/// The connection's deadline, taken from `deadlines` on first use, armed
/// for `due`.
fn armed<'a>(
    deadline: &'a mut Option<Deadline>,
    deadlines: &Deadlines,
    due: Instant,
) -> &'a Deadline {
    let deadline = deadline.get_or_insert_with(|| deadlines.deadline());
    deadline.arm_at(due);
    deadline
}

/// Whether the upstream that just sent bytes is a server-first protocol.
/// An HTTP/2 server sends its SETTINGS as soon as it accepts: that is not
/// one, so it is not watched any further (`upstream` becomes `None`).
fn speaks_first(upstream: &mut Option<&Socket>) -> bool {
    match upstream.take() {
        Some(socket) => !sends_http2_settings(socket),
        None => true,
    }
}

/// True when what the upstream sent first is an HTTP/2 SETTINGS frame on
/// stream 0 (the server half of the connection preface).
fn sends_http2_settings(upstream: &Socket) -> bool {
    let mut header = [0u8; 9];
    match upstream.try_peek(&mut header) {
        Ok(Some(9)) => header[3] == 0x4 && header[5..9] == [0, 0, 0, 0] && header[4] & !0x1 == 0,
        _ => false,
    }
}

/// A final verdict for `bytes`, or `None` to wait for more; a full buffer
/// is always final.
fn verdict_for(bytes: &[u8], capacity: usize) -> Option<Verdict> {
    if bytes.len() >= capacity {
        Verdict::from_detection(detect_final(bytes))
    } else {
        Verdict::from_detection(detect(bytes))
    }
}

/// Waits for the client's next bytes, the upstream's first byte, or the
/// armed deadline, whichever comes first.
async fn next_event(
    client: impl std::future::Future<Output = io::Result<usize>>,
    upstream: Option<&Socket>,
    deadline: &Deadline,
) -> Event {
    let client = async { Event::Client(client.await) };
    let server = async {
        let Some(upstream) = upstream else {
            return future::pending().await;
        };
        let mut byte = [0u8; 1];
        // Bytes, EOF or an error from the upstream all mean it acted first;
        // the opaque path passes on whichever it was.
        let _ = upstream.peek(&mut byte).await;
        Event::Server
    };
    let timeout = async {
        deadline.wait().await;
        Event::Timeout
    };
    future::or(client, future::or(server, timeout)).await
}
