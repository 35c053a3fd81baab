//! Protocol detection: decide from the first bytes a client sends whether a
//! connection speaks HTTP/1, HTTP/2 (prior knowledge), TLS, or something else.
//!
//! The detector ([`detect`], [`detect_final`], [`detect_full`]) is a pure function over a
//! byte slice: no I/O, no async, no state between calls. Around it sit the
//! async stage that peeks a connection's bytes and races the upstream
//! (`sniff`) and the shard's memory of servers that speak first
//! (`server_first`). The stage peeks (never consumes) into a buffer, calls
//! [`detect`] each time more bytes arrive, and stops when the verdict is
//! final.
//! Because the bytes are only peeked, the opaque path still forwards the very
//! first byte, so a wrong guess costs metrics, never correctness.
//!
//! The trade-off is availability over precision, as in Linkerd's detector:
//! whatever cannot be recognised quickly and cheaply is [`Detection::Unknown`]
//! and goes to opaque TCP, which always works. Outbound, that is all. Inbound
//! it is not, because opaque bytes reach the application with whatever
//! `l5d-*` headers they carry, while the HTTP path rewrites them: there,
//! bytes that look like an HTTP/1 request line to a lenient server (or may
//! still become one, or the HTTP/2 preface) are HTTP, and the HTTP path
//! serves them or refuses them with a status. A client-first protocol whose
//! first line reads `WORD WORD HTTP/...`, or that sends a bare token and
//! waits, needs an opaque port inbound.
//!
//! Two rules hold for every input (they are tested with proptest and fuzzed):
//! - [`detect`] never panics and never reads past the slice;
//! - splitting the input never changes the verdict: if a prefix already gives a
//!   final verdict, the whole input gives the same protocol. So bytes arriving
//!   one at a time are detected exactly like bytes arriving at once.
//!
//! When to stop waiting is the caller's choice (a buffer cap, the
//! `detect.peek_bytes` setting, by default
//! [`DEFAULT_PEEK_BYTES`](crate::config::DEFAULT_PEEK_BYTES), or a timeout),
//! except that a ClientHello is read whole whatever `peek_bytes` says
//! ([`decision_bytes`]). At that point it calls [`detect_full`], or
//! [`detect_final`] when it stopped waiting before the window was full;
//! neither answers [`Detection::NeedMore`].

mod client_hello;
#[cfg(test)]
mod hello_tests;
mod http1;
mod http2;
#[cfg(test)]
mod inbound_tests;
#[doc(hidden)]
pub mod invariants;
#[cfg(test)]
mod sample_client_hello;
#[cfg(test)]
pub(crate) mod sample_pq_client_hello;
#[cfg(test)]
mod split_tests;
mod tls;

pub use client_hello::{AlpnProtocols, ClientHelloInfo};
pub use tls::{parse_client_hello, ClientHelloError};

use crate::config::Direction;
use http1::Looks;

/// The verdict on the bytes a client has sent so far.
///
/// Owned (no lifetime): the caller usually keeps the verdict while it reuses or
/// hands off the peek buffer, and only the TLS case carries data, a couple of
/// small allocations on a path that is about to do a TLS handshake anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detection {
    /// A complete HTTP/1.0 or HTTP/1.1 request line (method, target, version
    /// and its line ending) has been seen, after any empty lines (RFC 9112
    /// §2.2 lets a server skip them). The headers are not examined. Inbound
    /// also: a line a lenient server would read as a request line.
    Http1,
    /// The full 24-byte HTTP/2 prior-knowledge connection preface.
    Http2,
    /// A TLS handshake record carrying a ClientHello.
    Tls(ClientHelloInfo),
    /// Definitely none of the above: forward as opaque TCP.
    Unknown,
    /// The bytes so far are a prefix of something that could still match.
    NeedMore,
}

/// First byte of a TLS handshake record (`ContentType::handshake`).
pub(crate) const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Classifies the bytes peeked so far on a connection in `direction`.
/// Cheap enough to call again every time more bytes arrive: no allocation
/// except the TLS case's SNI and ALPN (and a hello split into records).
pub fn detect(peeked: &[u8], direction: Direction) -> Detection {
    match peeked.first() {
        None => Detection::NeedMore,
        Some(&TLS_HANDSHAKE_RECORD) => tls::detect_tls(peeked),
        // The preface's first line also reads as an HTTP/1 request line, so
        // HTTP/2 is asked first and holds the verdict while it could match.
        Some(_) => http2::detect_http2(peeked).unwrap_or_else(|| match direction {
            Direction::Outbound => http1::detect_http1(peeked),
            Direction::Inbound => match http1::detect_http1(peeked) {
                Detection::Unknown => match http1::looks_like_request(peeked) {
                    Looks::Request => Detection::Http1,
                    Looks::Maybe => Detection::NeedMore,
                    Looks::Not => Detection::Unknown,
                },
                verdict => verdict,
            },
        }),
    }
}

/// Classifies the bytes peeked so far when no more will be waited for (the
/// buffer is full, the client went quiet or the detect timeout fired).
/// Never returns [`Detection::NeedMore`]:
/// - a ClientHello whose handshake header is in but which is cut off is
///   [`Detection::Tls`] with what was parsed ([`ClientHelloInfo::is_complete`]
///   is false); a shorter TLS-looking prefix is [`Detection::Unknown`];
/// - outbound, an unfinished HTTP/1 request line or HTTP/2 preface is
///   [`Detection::Unknown`] (fail open);
/// - inbound, it is [`Detection::Http1`] or [`Detection::Http2`]: the HTTP
///   path reads on with its own limits and timeouts, and refuses what is not
///   a request with a status, rather than let it reach the application raw.
pub fn detect_final(peeked: &[u8], direction: Direction) -> Detection {
    match detect(peeked, direction) {
        Detection::NeedMore if peeked.first() == Some(&TLS_HANDSHAKE_RECORD) => {
            tls::detect_tls_final(peeked)
        }
        Detection::NeedMore if direction == Direction::Inbound && !peeked.is_empty() => {
            match http2::detect_http2(peeked) {
                Some(Detection::NeedMore) => Detection::Http2,
                _ => Detection::Http1,
            }
        }
        Detection::NeedMore => Detection::Unknown,
        verdict => verdict,
    }
}

/// Classifies a full window: `peeked` holds all of
/// [`decision_bytes`] and no more will be waited for. As [`detect_final`],
/// except that outbound, a request line still unfinished after a whole
/// window (a long URL: the window holds a method, a space and the start
/// of a target, all valid) is [`Detection::Http1`], not opaque: the HTTP/1
/// path reads the line on, within its own limit (a 414 past 8 KiB).
/// Linkerd's detector takes the same view of one full read: httparse's
/// `Partial` is HTTP/1 (linkerd2-proxy `linkerd/http/detect/src/lib.rs`).
/// The quiet pause and the timeout stay with [`detect_final`]: a client
/// that stops mid-line outbound is not taken for HTTP.
pub fn detect_full(peeked: &[u8], direction: Direction) -> Detection {
    let unfinished_request_line = peeked.first() != Some(&TLS_HANDSHAKE_RECORD)
        && http2::detect_http2(peeked).is_none()
        && http1::detect_http1(peeked) == Detection::NeedMore;
    if unfinished_request_line {
        Detection::Http1
    } else {
        detect_final(peeked, direction)
    }
}

/// How many bytes may be waited for before a verdict must be final: the
/// `peek_bytes` setting, except for a ClientHello, which is read whole (up
/// to what one full record takes) however long its key shares make it.
pub fn decision_bytes(peeked: &[u8], peek_bytes: usize) -> usize {
    match peeked.first() {
        Some(&TLS_HANDSHAKE_RECORD) => tls::MAX_HELLO_WIRE_BYTES.max(peek_bytes),
        _ => peek_bytes,
    }
}

mod server_first;
mod sniff;

pub use server_first::ServerFirstMemory;
pub use sniff::{sniff, SniffError, Sniffed, Verdict};
