//! Protocol detection: decide from the first bytes a client sends whether a
//! connection speaks HTTP/1, HTTP/2 (prior knowledge), TLS, or something else.
//!
//! Everything here is a pure function over a byte slice: no I/O, no async, no
//! state between calls. The caller peeks (never consumes) into a buffer, calls
//! [`detect`] each time more bytes arrive, and stops when the verdict is final.
//! Because the bytes are only peeked, the opaque path still forwards the very
//! first byte, so a wrong guess costs metrics, never correctness.
//!
//! The trade-off is availability over precision, as in Linkerd's detector:
//! whatever cannot be recognised quickly and cheaply is [`Detection::Unknown`]
//! and goes to opaque TCP, which always works.
//!
//! Two rules hold for every input (they are tested with proptest and fuzzed):
//! - [`detect`] never panics and never reads past the slice;
//! - splitting the input never changes the verdict: if a prefix already gives a
//!   final verdict, the whole input gives the same protocol. So bytes arriving
//!   one at a time are detected exactly like bytes arriving at once.
//!
//! When to stop waiting is the caller's choice (a buffer cap, the
//! `detect.peek_bytes` setting, by default
//! [`DEFAULT_PEEK_BYTES`](crate::config::DEFAULT_PEEK_BYTES), or a timeout).
//! At that point it calls [`detect_final`], which never answers
//! [`Detection::NeedMore`].

mod client_hello;
mod http1;
mod http2;
#[doc(hidden)]
pub mod invariants;
#[cfg(test)]
mod sample_client_hello;
#[cfg(test)]
mod split_tests;
mod tls;

pub use client_hello::{AlpnProtocols, ClientHelloInfo};
pub use tls::{parse_client_hello, ClientHelloError};

/// The verdict on the bytes a client has sent so far.
///
/// Owned (no lifetime): the caller usually keeps the verdict while it reuses or
/// hands off the peek buffer, and only the TLS case carries data, a couple of
/// small allocations on a path that is about to do a TLS handshake anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detection {
    /// A complete HTTP/1.0 or HTTP/1.1 request line (method, target, version
    /// and its line ending) has been seen. The headers are not examined.
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
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Classifies the bytes peeked so far. Cheap enough to call again every time
/// more bytes arrive: no allocation except the TLS case's SNI and ALPN.
pub fn detect(peeked: &[u8]) -> Detection {
    match peeked.first() {
        None => Detection::NeedMore,
        Some(&TLS_HANDSHAKE_RECORD) => tls::detect_tls(peeked),
        // The preface's first line also reads as an HTTP/1 request line, so
        // HTTP/2 is asked first and holds the verdict while it could match.
        Some(_) => http2::detect_http2(peeked).unwrap_or_else(|| http1::detect_http1(peeked)),
    }
}

/// Classifies the bytes peeked so far when no more will be waited for (the
/// buffer is full or the detect timeout fired). Never returns
/// [`Detection::NeedMore`]:
/// - an unfinished HTTP/1 request line or HTTP/2 preface is [`Detection::Unknown`];
/// - a ClientHello whose record and handshake headers are valid but which is
///   cut off is [`Detection::Tls`] with what was parsed
///   ([`ClientHelloInfo::is_complete`] is false); a shorter TLS-looking prefix
///   is [`Detection::Unknown`].
pub fn detect_final(peeked: &[u8]) -> Detection {
    match detect(peeked) {
        Detection::NeedMore if peeked.first() == Some(&TLS_HANDSHAKE_RECORD) => {
            tls::detect_tls_final(peeked)
        }
        Detection::NeedMore => Detection::Unknown,
        verdict => verdict,
    }
}

mod server_first;
mod sniff;

pub use server_first::ServerFirstMemory;
pub use sniff::{sniff, SniffError, Sniffed, Verdict};
