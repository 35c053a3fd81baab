//! An origin that records exactly the bytes each connection brought it, for
//! tests that judge what ringside passed on (the smuggling suite): a
//! request refused must leave nothing here, a request normalized must leave
//! exactly one well-formed request and nothing after it.
//!
//! Each connection is answered once, with a canned response, as soon as
//! what it received parses as a request head (or fails to: an answer is
//! owed either way), and is then read until ringside closes it. The
//! default answer says `connection: close`, so ringside never pools the
//! connection and every recording ends with ringside's close: a test that
//! waits for that has every byte ringside sent. An answer whose body lasts
//! until the close (`closing_after`) is followed by the origin's FIN.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use super::Origin;
use crate::support::{eventually, Metrics, WAIT_LIMIT};

/// The default answer: a short body, then the connection is done.
pub const CLOSING_ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";

/// What one connection received.
#[derive(Default)]
struct Recording {
    bytes: Vec<u8>,
    /// The peer closed: `bytes` is final.
    ended: bool,
}

pub struct RecordingOrigin {
    pub addr: SocketAddr,
    origin: Origin,
    connections: Arc<Mutex<Vec<Arc<Mutex<Recording>>>>>,
}

impl RecordingOrigin {
    /// Answers every connection with `CLOSING_ANSWER`.
    pub fn start() -> RecordingOrigin {
        RecordingOrigin::answering(CLOSING_ANSWER)
    }

    /// `start` on another address (a network namespace's).
    pub fn start_on(bind: &str) -> RecordingOrigin {
        RecordingOrigin::answering_on(bind, CLOSING_ANSWER)
    }

    /// Answers every connection's first head with `answer`, byte for byte
    /// (a test of the response direction hands in a hostile one).
    pub fn answering(answer: &'static [u8]) -> RecordingOrigin {
        RecordingOrigin::answering_on("127.0.0.1:0", answer)
    }

    /// `answering`, then the origin ends its side of the connection: what
    /// ends a response without a length (HTTP/1.0's way).
    pub fn closing_after(answer: &'static [u8]) -> RecordingOrigin {
        RecordingOrigin::recording("127.0.0.1:0", answer, true)
    }

    fn answering_on(bind: &str, answer: &'static [u8]) -> RecordingOrigin {
        RecordingOrigin::recording(bind, answer, false)
    }

    fn recording(bind: &str, answer: &'static [u8], close: bool) -> RecordingOrigin {
        let connections: Arc<Mutex<Vec<Arc<Mutex<Recording>>>>> = Arc::default();
        let list = connections.clone();
        let origin = Origin::start_on(bind, move |stream| {
            let recording = Arc::new(Mutex::new(Recording::default()));
            list.lock().unwrap().push(recording.clone());
            record(stream, &recording, answer, close);
        });
        RecordingOrigin {
            addr: origin.addr,
            origin,
            connections,
        }
    }

    /// What each connection received so far, in the order they came.
    pub fn received(&self) -> Vec<Vec<u8>> {
        let connections = self.connections.lock().unwrap();
        connections
            .iter()
            .map(|c| c.lock().unwrap().bytes.clone())
            .collect()
    }

    /// Every connection's bytes once ringside has closed them all: waits
    /// (bounded) until this origin has accepted as many connections as
    /// ringside opened upstream (`tcp_open_total{peer="dst"}` in `metrics`,
    /// scraped once ringside had no client connection open) and each has
    /// ended.
    pub fn settled(&self, metrics: &Metrics) -> Vec<Vec<u8>> {
        let opened = metrics.sum("tcp_open_total", &[("peer", "dst")]) as usize;
        eventually("the origin to see every upstream connection close", || {
            let connections = self.connections.lock().unwrap();
            self.origin.accepted() == opened
                && connections.len() == opened
                && connections.iter().all(|c| c.lock().unwrap().ended)
        });
        self.received()
    }
}

/// Reads `stream` to its end into `recording`, answering once (and then
/// ending its side, with `close`).
fn record(mut stream: TcpStream, recording: &Mutex<Recording>, answer: &[u8], close: bool) {
    // A connection ringside never closes is given up on here, and stays
    // not `ended`: the test that waits for it fails.
    stream.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let mut answered = false;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let read = stream.read(&mut buf);
        let mut recording = recording.lock().unwrap();
        let n = match read {
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return,
            Ok(0) | Err(_) => {
                recording.ended = true;
                return;
            }
            Ok(n) => n,
        };
        recording.bytes.extend_from_slice(&buf[..n]);
        if !answered && head_is_in(&recording.bytes) {
            answered = true;
            // The answer may find ringside gone: what was received counts.
            let _ = stream.write_all(answer);
            if close {
                let _ = stream.shutdown(Shutdown::Write);
            }
        }
    }
}

/// True once `bytes` hold a whole request head, or bytes that will never
/// become one.
fn head_is_in(bytes: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    !matches!(
        httparse::Request::new(&mut headers).parse(bytes),
        Ok(httparse::Status::Partial)
    )
}
