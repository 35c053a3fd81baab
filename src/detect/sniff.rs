//! `Detect`: the async stage that peeks at a new connection's first bytes
//! and decides its protocol, racing:
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
//! Inbound, neither wait fails open what may be HTTP (see `detect_final`):
//! bytes that may begin a request go to the HTTP path however the wait
//! ended, and a client that has sent nothing is not judged by the clock
//! at all. With an upstream watched, detection goes on until one side
//! speaks; without one, the verdict is [`Verdict::Silent`], and the caller
//! connects one and asks again. Carried as opaque bytes, such a client's
//! first request would reach the application with any `l5d-client-id` it
//! liked.
//!
//! Both waits are slots of the shard's coarse `Deadlines`: no timer is
//! armed per connection, and none at all when the first peek decides.
//!
//! A peek returns at once while any byte is buffered, so when the bytes so
//! far are an unfinished prefix ("GE") the stage switches to reading them
//! out, which parks until more arrive instead of spinning. Those bytes (at
//! most `peek_bytes`) are returned as `prefix`, for the caller to send
//! upstream ahead of everything else. A ClientHello on a plain socket is
//! the exception (`peek_hello`): it is peeked whole, up to 16 KiB, and
//! never read out, because the terminate path hands this socket to a TLS
//! server that must see the hello from its first byte. Waiting for its
//! rest is a short sleep between peeks, as glommio offers no wait for more
//! bytes than are buffered: a hello's pieces come in one flight, so the
//! first sleep usually finds them.

use std::io;
use std::time::{Duration, Instant};

use futures_lite::future;

use super::tls::hello_peek_bytes;
use super::{decision_bytes, detect, detect_final, detect_full, Detection};
use crate::config::{DetectConfig, Direction, Timeouts};
use crate::io::{sleep, Deadline, Deadlines, Socket};

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
    /// Inbound: the client has said nothing by the detect timeout, with no
    /// upstream to watch (the caller connects and detects again, watching
    /// one), or the upstream then timed it out (`upstream_acted`: the
    /// connection is closed). Never carried raw.
    Silent,
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
            Verdict::Silent => "silent",
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
    /// Time to peek at a ClientHello again.
    Recheck,
    Server,
    Timeout,
}

/// The first sleep between two peeks at an unfinished ClientHello, and
/// the longest: each doubles, so a client trickling a hello costs about a
/// dozen wake-ups per quiet pause, and a hello in two segments of one
/// flight about a millisecond.
const FIRST_RECHECK: Duration = Duration::from_millis(1);
const MAX_RECHECK: Duration = Duration::from_millis(50);

/// Decides the protocol of `client`'s connection in `direction`, watching
/// `upstream` (when there is one) for a server that speaks first.
pub async fn sniff(
    client: &Socket,
    upstream: Option<&Socket>,
    config: &DetectConfig,
    timeouts: &Timeouts,
    deadlines: &Deadlines,
    direction: Direction,
) -> Result<Sniffed, SniffError> {
    let mut sniffer = Sniffer {
        client,
        upstream,
        connected: upstream.is_some(),
        config,
        timeouts,
        deadlines,
        direction,
        started: Instant::now(),
        deadline: None,
    };
    sniffer.run().await
}

/// One detection's state, shared by its phases.
struct Sniffer<'a> {
    client: &'a Socket,
    /// Watched for a server that speaks first; `None` when there is none,
    /// or once it has shown it is not one.
    upstream: Option<&'a Socket>,
    /// Whether an upstream was connected at all, watched or not: inbound,
    /// a silent client then waits for a side to speak (`silence`).
    connected: bool,
    config: &'a DetectConfig,
    /// The detect timeout and quiet pause.
    timeouts: &'a Timeouts,
    deadlines: &'a Deadlines,
    direction: Direction,
    started: Instant,
    /// Taken only once there is something to wait for.
    deadline: Option<Deadline>,
}

impl Sniffer<'_> {
    async fn run(&mut self) -> Result<Sniffed, SniffError> {
        let mut timeout_at = self.started + self.timeouts.detect;
        // Inbound, once a silent client is past the timeout: no deadline.
        let mut patient = false;
        let client = self.client;
        // Fast path: the client's bytes are usually there by the time the
        // upstream is connected, and the first peek holds the whole verdict.
        let mut peeked = vec![0u8; self.config.peek_bytes];
        let seen = loop {
            let event = match client.try_peek(&mut peeked).map_err(SniffError)? {
                Some(n) => Event::Client(Ok(n)),
                None => {
                    let due = (!patient).then_some(timeout_at);
                    let peek = async { Event::Client(client.peek(&mut peeked).await) };
                    self.next_event(peek, due).await
                }
            };
            match event {
                Event::Client(Err(err)) => return Err(SniffError(err)),
                Event::Client(Ok(0)) => return Ok(self.done(Verdict::Unknown, Vec::new())),
                Event::Client(Ok(n)) => break n,
                Event::Server => {
                    if let Some(verdict) = self.upstream_acted() {
                        return Ok(self.done(verdict, Vec::new()));
                    }
                }
                Event::Recheck => {}
                Event::Timeout => match self.silence() {
                    Some(verdict) => return Ok(self.done(verdict, Vec::new())),
                    None => patient = true,
                },
            }
        };
        peeked.truncate(seen);
        if patient {
            // A client that spoke after its silence gets the timeout anew.
            timeout_at = Instant::now() + self.timeouts.detect;
        }
        if let Some(verdict) = self.verdict_for(&peeked) {
            return Ok(self.done(verdict, Vec::new()));
        }
        if peeked.first() == Some(&super::TLS_HANDSHAKE_RECORD) && !self.client.is_tls() {
            return self.peek_hello(peeked, timeout_at).await;
        }
        self.read_prefix(timeout_at).await
    }

    /// Fragmented input: reads what is there and waits for more, until a
    /// verdict, the quiet pause or the timeout.
    async fn read_prefix(&mut self, timeout_at: Instant) -> Result<Sniffed, SniffError> {
        let mut prefix = Vec::with_capacity(self.config.peek_bytes);
        let mut chunk = vec![0u8; self.config.peek_bytes];
        let client = self.client;
        // The undecided bytes just arrived: the quiet pause starts now.
        let mut quiet_at = Instant::now() + self.timeouts.detect_quiet_pause;
        loop {
            let room = decision_bytes(&prefix, self.config.peek_bytes) - prefix.len();
            let due = quiet_at.min(timeout_at);
            let into = &mut chunk[..room.min(self.config.peek_bytes)];
            let read = async { Event::Client(client.read(into).await) };
            let n = match self.next_event(read, Some(due)).await {
                Event::Client(Err(err)) => return Err(SniffError(err)),
                Event::Client(Ok(n)) => n,
                Event::Server => match self.upstream_acted() {
                    Some(verdict) => return Ok(self.gave_up(verdict, prefix)),
                    None => continue,
                },
                Event::Recheck => continue,
                Event::Timeout if due == quiet_at => {
                    return Ok(self.gave_up(Verdict::Quiet, prefix))
                }
                Event::Timeout => return Ok(self.gave_up(Verdict::Timeout, prefix)),
            };
            quiet_at = Instant::now() + self.timeouts.detect_quiet_pause;
            if n == 0 {
                // The client finished early; whatever it sent goes on as is,
                // inbound too: no header can follow an unfinished line now.
                let last_word = detect_final(&prefix, Direction::Outbound);
                let verdict = Verdict::from_detection(last_word).unwrap_or(Verdict::Unknown);
                return Ok(self.done(verdict, prefix));
            }
            prefix.extend_from_slice(&chunk[..n]);
            if let Some(verdict) = self.verdict_for(&prefix) {
                return Ok(self.done(verdict, prefix));
            }
        }
    }

    /// An unfinished ClientHello on a plain socket: peeks again, into a
    /// buffer grown to what the hello needs, until it is whole. Nothing is
    /// read out, so the prefix is always empty.
    async fn peek_hello(
        &mut self,
        mut peeked: Vec<u8>,
        timeout_at: Instant,
    ) -> Result<Sniffed, SniffError> {
        let mut seen = peeked.len();
        let mut quiet_at = Instant::now() + self.timeouts.detect_quiet_pause;
        let mut recheck = FIRST_RECHECK;
        loop {
            let room = hello_peek_bytes(&peeked[..seen]).max(seen + 1);
            peeked.resize(room, 0);
            let now_seen = self.client.try_peek(&mut peeked).map_err(SniffError)?;
            if let Some(n) = now_seen.filter(|&n| n > seen) {
                seen = n;
                quiet_at = Instant::now() + self.timeouts.detect_quiet_pause;
                recheck = FIRST_RECHECK;
                if let Some(verdict) = self.verdict_for(&peeked[..seen]) {
                    return Ok(self.done(verdict, Vec::new()));
                }
                if seen == peeked.len() {
                    continue; // the buffer is full: grow it, peek again
                }
            }
            let due = quiet_at.min(timeout_at);
            let pause = async {
                sleep(recheck).await;
                Event::Recheck
            };
            match self.next_event(pause, Some(due)).await {
                Event::Recheck => recheck = (recheck * 2).min(MAX_RECHECK),
                Event::Client(_) => {}
                Event::Server => {
                    if let Some(verdict) = self.upstream_acted() {
                        return Ok(self.gave_up(verdict, Vec::new()));
                    }
                }
                Event::Timeout if due == quiet_at => {
                    return Ok(self.gave_up(Verdict::Quiet, Vec::new()))
                }
                Event::Timeout => return Ok(self.gave_up(Verdict::Timeout, Vec::new())),
            }
        }
    }

    /// A final verdict for `bytes`, or `None` to wait for more; as many
    /// bytes as `decision_bytes` allows are always final.
    fn verdict_for(&self, bytes: &[u8]) -> Option<Verdict> {
        verdict_for(bytes, self.config.peek_bytes, self.direction)
    }

    /// The verdict when the wait ended on undecided `prefix` (`why`: the
    /// quiet pause, the timeout, or what the upstream did): `why`, but
    /// inbound, bytes that may begin an HTTP request are HTTP.
    fn gave_up(&self, why: Verdict, prefix: Vec<u8>) -> Sniffed {
        let verdict = match (self.direction, detect_final(&prefix, self.direction)) {
            (Direction::Inbound, Detection::Http1) => Verdict::Http1,
            (Direction::Inbound, Detection::Http2) => Verdict::Http2,
            _ => why,
        };
        self.done(verdict, prefix)
    }

    /// What the detect timeout makes of a client that has sent nothing:
    /// outbound, a timeout (fail open); inbound, `None` (keep waiting for a
    /// side to speak) when an upstream is connected, else [`Verdict::Silent`].
    fn silence(&self) -> Option<Verdict> {
        match (self.direction, self.connected) {
            (Direction::Outbound, _) => Some(Verdict::Timeout),
            (Direction::Inbound, true) => None,
            (Direction::Inbound, false) => Some(Verdict::Silent),
        }
    }

    fn done(&self, verdict: Verdict, prefix: Vec<u8>) -> Sniffed {
        Sniffed {
            verdict,
            prefix,
            elapsed: self.started.elapsed(),
        }
    }

    /// What the upstream's acting first (bytes, EOF or an error) makes of
    /// the connection; `None` to go on detecting, no longer watching it.
    /// - An HTTP/2 server sends its SETTINGS as soon as it accepts: not a
    ///   server that speaks first.
    /// - Outbound, anything else is one: opaque, and remembered.
    /// - Inbound, only a greeting is: an HTTP server that answers a silent
    ///   client (Apache's 408) or closes on it (nginx) is timing it out, and
    ///   taking that for a server that speaks first would make later clients
    ///   skip detection, `l5d-*` headers and all. That connection is
    ///   [`Verdict::Silent`], closed, and nothing is remembered.
    fn upstream_acted(&mut self) -> Option<Verdict> {
        let upstream = self.upstream.take()?;
        let mut first = [0u8; 9];
        let seen = match upstream.try_peek(&mut first) {
            Ok(Some(n)) => &first[..n],
            _ => &[][..],
        };
        if is_http2_settings(seen) {
            return None;
        }
        let greeting = !seen.is_empty() && !b"HTTP/".starts_with(&seen[..seen.len().min(5)]);
        match self.direction {
            Direction::Inbound if !greeting => Some(Verdict::Silent),
            _ => Some(Verdict::ServerFirst),
        }
    }

    /// Waits for `client` (the client's next bytes, or a recheck), the
    /// upstream's first byte, or `due`, whichever comes first; with no
    /// `due`, the deadline is disarmed.
    async fn next_event(
        &mut self,
        client: impl std::future::Future<Output = Event>,
        due: Option<Instant>,
    ) -> Event {
        let deadlines = self.deadlines;
        let deadline = self.deadline.get_or_insert_with(|| deadlines.deadline());
        match due {
            Some(due) => deadline.arm_at(due),
            None => deadline.disarm(),
        }
        let upstream = self.upstream;
        let server = async {
            let Some(upstream) = upstream else {
                return future::pending().await;
            };
            let mut byte = [0u8; 1];
            // Bytes, EOF or an error from the upstream all mean it acted
            // first; the opaque path passes on whichever it was.
            let _ = upstream.peek(&mut byte).await;
            Event::Server
        };
        let timeout = async {
            deadline.wait().await;
            Event::Timeout
        };
        future::or(client, future::or(server, timeout)).await
    }
}

/// True when `first`, what the upstream sent first, is the header of an
/// HTTP/2 SETTINGS frame on stream 0 (the server half of the preface).
fn is_http2_settings(first: &[u8]) -> bool {
    match first {
        [_, _, _, 0x4, flags, 0, 0, 0, 0] => flags & !0x1 == 0,
        _ => false,
    }
}

/// A final verdict for `bytes`, or `None` to wait for more. Final once
/// `decision_bytes` are in: `peek_bytes`, or a whole ClientHello's worth.
fn verdict_for(bytes: &[u8], peek_bytes: usize, direction: Direction) -> Option<Verdict> {
    if bytes.len() >= decision_bytes(bytes, peek_bytes) {
        Verdict::from_detection(detect_full(bytes, direction))
    } else {
        Verdict::from_detection(detect(bytes, direction))
    }
}

#[cfg(test)]
#[path = "sniff_tests.rs"]
mod tests;
