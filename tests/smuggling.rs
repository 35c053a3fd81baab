//! Request smuggling: hostile HTTP/1 input sent through ringside to an
//! origin that records every byte it receives. Each vector must be either
//! refused (a 400 with `ringside-proxy-error`, the client's connection
//! closed, and not one byte upstream) or normalized (the upstream receives
//! exactly one well-formed request, given here byte for byte, and nothing
//! that could start another). The same holds the other way: a hostile
//! response must not reach the client beyond the point where it went bad,
//! and ends both connections.
//!
//! The routes here are declared `http1`. On a detecting route a first
//! request whose head does not parse is not HTTP to the detector and is
//! carried opaquely on a connection of its own, never shared with another
//! client, so there is no proxy reading of it to disagree with.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};

use support::*;

/// What ringside must do with a vector.
#[derive(Clone, Copy)]
enum Expect {
    /// 400 with `ringside-proxy-error`, the connection closed, nothing
    /// upstream.
    Refused,
    /// The upstream receives exactly these bytes: one request.
    Forwarded(&'static [u8]),
}

use Expect::{Forwarded, Refused};

/// A vector: its name (for the failure message), the bytes a client
/// sends, and the verdict.
type Vector = (&'static str, &'static [u8], Expect);

/// Runs every vector against a fresh ringside and origin each, and fails
/// naming each vector that did not get its verdict.
fn check_all(vectors: &[Vector]) {
    let failures: Vec<String> = vectors
        .iter()
        .filter_map(|(name, sent, expect)| {
            check(sent, *expect)
                .err()
                .map(|why| format!("{name}: {why}"))
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn check(sent: &[u8], expect: Expect) -> Result<(), String> {
    let origin = RecordingOrigin::start();
    let proxy = Ringside::declared("http1", origin.addr);
    let mut client = TcpStream::connect(proxy.route()).unwrap();
    client.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    client.write_all(sent).unwrap();
    if matches!(expect, Forwarded(_)) {
        // Whatever ringside makes of the rest, it must do before it sees
        // the end of the client's input.
        client.shutdown(Shutdown::Write).unwrap();
    }
    let (answer, closed) = read_until_closed(&mut client);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    // Ours closed too, should ringside have kept it open.
    drop(client);
    let received = origin.settled(&proxy.wait_idle());
    let upstream: Vec<&[u8]> = received
        .iter()
        .map(Vec::as_slice)
        .filter(|bytes| !bytes.is_empty())
        .collect();
    let upstream_text: Vec<_> = upstream
        .iter()
        .map(|b| String::from_utf8_lossy(b))
        .collect();
    match expect {
        Refused => {
            if !answer.starts_with("HTTP/1.1 400 ") || !answer.contains("ringside-proxy-error: ") {
                return Err(format!(
                    "answered {answer:?}, upstream got {upstream_text:?}"
                ));
            }
            if !closed {
                return Err("the connection stayed open after the 400".into());
            }
            if !upstream.is_empty() {
                return Err(format!("refused, but the upstream got {upstream_text:?}"));
            }
        }
        Forwarded(expected) => {
            if upstream != [expected] {
                let expected = String::from_utf8_lossy(expected);
                return Err(format!(
                    "the upstream got {upstream_text:?}, not [{expected:?}]; answered {answer:?}"
                ));
            }
            if !answer.starts_with("HTTP/1.1 200 OK\r\n")
                || answer.matches("HTTP/1.1 ").count() != 1
            {
                return Err(format!("answered {answer:?}, not one 200"));
            }
        }
    }
    Ok(())
}

/// Everything the peer sends until it closes, and whether it did close
/// (by FIN or reset) within the wait limit.
fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (received, true),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == ErrorKind::ConnectionReset => return (received, true),
            Err(_) => return (received, false),
        }
    }
}

#[test]
fn transfer_encoding_and_content_length_that_disagree_are_refused() {
    check_all(&[
        (
            "CL.TE",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
            Refused,
        ),
        (
            "TE.CL",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "TE.TE: chunked, identity",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "TE.TE: identity, chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "TE.TE: xchunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "TE.TE: chunkedx",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "TE.TE: quoted \"chunked\"",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "TE.TE: empty value beside a content-length",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nContent-Length: 5\r\n\r\nhello",
            Refused,
        ),
        (
            "TE.TE: vertical tab before chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "TE.TE: tab before the colon",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "TE.TE: space before the colon",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "TE.TE: header line starting with a space",
            b"POST / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "TE.TE: Transfer-Encoding duplicated",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "TE.TE: chunked, then Transfer-encoding: identity",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: identity\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "TE.TE: identity, then Transfer-Encoding: chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "Transfer-Encoding in an HTTP/1.0 request",
            b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "two differing Content-Lengths",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            Refused,
        ),
        (
            "Content-Length: 5, 6",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!",
            Refused,
        ),
        (
            "Content-Length: 5, 5",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
            Refused,
        ),
        (
            "Content-Length: +5",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
            Refused,
        ),
        (
            "Content-Length: -5",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\nhello",
            Refused,
        ),
        (
            "Content-Length: 0x5",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello",
            Refused,
        ),
        (
            "Content-Length past 64 bits",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551621\r\n\r\nhello",
            Refused,
        ),
        (
            "Content-Length empty",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\nhello",
            Refused,
        ),
        (
            "identical Content-Lengths, sent on as one",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            Forwarded(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
        ),
        (
            // Optional whitespace around a value is the grammar's, not
            // an obfuscation.
            "Transfer-Encoding:  chunked (extra space)",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Forwarded(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "Transfer-Encoding:\\tchunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
            Forwarded(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n"),
        ),
        (
            // Coding names are case-insensitive (RFC 9112 §7).
            "TRANSFER-ENCODING: CHUNKED",
            b"POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING: CHUNKED\r\n\r\n0\r\n\r\n",
            Forwarded(b"POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING: CHUNKED\r\n\r\n0\r\n\r\n"),
        ),
    ]);
}

#[test]
fn folded_lines_are_refused_and_bare_line_feeds_are_rewritten() {
    check_all(&[
        (
            "obs-fold continuing a value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n",
            Refused,
        ),
        (
            "obs-fold with a tab",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n\ttwo\r\n\r\n",
            Refused,
        ),
        (
            "obs-fold carrying chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "bare CR as a line end",
            b"GET / HTTP/1.1\rHost: a\r\r\n",
            Refused,
        ),
        (
            "bare CR inside a value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\rTransfer-Encoding: chunked\r\n\r\n",
            Refused,
        ),
        (
            "LF before the colon",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\n: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "bare LF line ends",
            b"GET / HTTP/1.1\nHost: a\n\n",
            Forwarded(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ),
        (
            "bare LF mixed with CRLF",
            b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\n",
            Forwarded(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\r\n"),
        ),
        (
            "bare LF head before a body",
            b"POST / HTTP/1.1\nHost: a\nContent-Length: 5\n\nhello",
            Forwarded(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
        ),
    ]);
}

#[test]
fn malformed_chunked_bodies_are_refused_before_anything_goes_upstream() {
    check_all(&[
        (
            "chunk size +5",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "chunk size -5",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "chunk size 0x5",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "chunk size past 64 bits",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
            Refused,
        ),
        (
            // -1 to a reader that keeps the size in a signed 64-bit number.
            "chunk size ffffffffffffffff",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nhello\r\n0\r\n\r\n",
            Refused,
        ),
        (
            // A reader that keeps at most 16 digits would read 0 here.
            "chunk size with 17 digits",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "chunk size missing",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "chunk size followed by junk",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 junk\r\nhello\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "chunk extension with a NUL",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\x00\r\nhello\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "chunk extension ended by a bare LF",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\nhello\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "chunk extension over the line limit",
            oversized_extension(),
            Refused,
        ),
        (
            "chunk data not followed by CRLF",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n",
            Refused,
        ),
        (
            "chunk data followed by a bare LF",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
            Refused,
        ),
        (
            "chunk size ended by a bare LF",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
            Refused,
        ),
        (
            // A reader that takes a bare LF would end the body after
            // `0\r\n\n` and read a second request.
            "last chunk ended by a bare LF",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
            Refused,
        ),
        (
            "trailer line ended by a bare LF",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\n\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
            Refused,
        ),
        (
            "trailer with a NUL",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: \x00\r\n\r\n",
            Refused,
        ),
        (
            "chunk extensions and a trailer, well-formed",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 ;a=b;c=\"d e\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
            Forwarded(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 ;a=b;c=\"d e\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
        ),
    ]);
}

/// A chunk whose extension is longer than any chunk line may be.
fn oversized_extension() -> &'static [u8] {
    let mut sent = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=".to_vec();
    sent.resize(sent.len() + 2000, b'x');
    sent.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    sent.leak()
}

/// RFC 9112 §6.3 frames a request by its Content-Length or
/// Transfer-Encoding whatever its method, and RFC 9110 §9.3.1 gives a GET
/// body no meaning but does not forbid it; HAProxy forwards such a body
/// with its framing, and so does ringside. Refusing it would break the
/// clients that send one (search APIs do); the upstream gets one request
/// framed as the client framed it, so the body cannot be read as another.
#[test]
fn bodies_on_get_and_head_are_forwarded_with_their_framing() {
    check_all(&[
        (
            "GET with a Content-Length body that looks like a request",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
            Forwarded(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 26\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"),
        ),
        (
            "GET with a chunked body",
            b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Forwarded(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "HEAD with a Content-Length body",
            b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            Forwarded(b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
        ),
    ]);
}

#[test]
fn control_characters_and_malformed_request_lines_are_refused() {
    check_all(&[
        (
            "NUL in a value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n",
            Refused,
        ),
        (
            "two Host lines",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            Refused,
        ),
        (
            "two Host lines in different case",
            b"GET / HTTP/1.1\r\nHost: a\r\nhOST: a\r\n\r\n",
            Refused,
        ),
        (
            "NUL in a name",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-\x00A: b\r\n\r\n",
            Refused,
        ),
        (
            "SOH in a value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n",
            Refused,
        ),
        (
            "ESC in a value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x1bb\r\n\r\n",
            Refused,
        ),
        (
            "form feed in a value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x0cb\r\n\r\n",
            Refused,
        ),
        (
            "DEL in a value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x7fb\r\n\r\n",
            Refused,
        ),
        (
            "CR in a name",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-\rA: b\r\n\r\n",
            Refused,
        ),
        (
            "space in a name",
            b"GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n",
            Refused,
        ),
        (
            "empty name",
            b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
            Refused,
        ),
        (
            "space in the target",
            b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
            Refused,
        ),
        (
            "control character in the target",
            b"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
            Refused,
        ),
        (
            "DEL in the target",
            b"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
            Refused,
        ),
        (
            "non-ASCII byte in the target",
            b"GET /a\xff HTTP/1.1\r\nHost: a\r\n\r\n",
            Refused,
        ),
        // A fragment is never sent (RFC 9112 §3.2); HAProxy refuses `#`
        // since CVE-2023-45539, where a path rule and the server read
        // such a path differently.
        (
            "fragment in the target",
            b"GET /public#/../admin HTTP/1.1\r\nHost: a\r\n\r\n",
            Refused,
        ),
        (
            "two spaces in the request line",
            b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
            Refused,
        ),
        (
            "space after the version",
            b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
            Refused,
        ),
        (
            "tab as a separator",
            b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
            Refused,
        ),
        (
            "unknown version",
            b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
            Refused,
        ),
        (
            "lower-case version",
            b"GET / http/1.1\r\nHost: a\r\n\r\n",
            Refused,
        ),
        (
            "method with a non-token byte",
            b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
            Refused,
        ),
        (
            // obs-text is allowed in values (RFC 9110 §5.5).
            "obs-text in a value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9\r\n\r\n",
            Forwarded(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9\r\n\r\n"),
        ),
    ]);
}

/// A body is checked as it streams: a chunk that goes bad after the head
/// went upstream is not passed on, the client gets its 400, and the
/// upstream connection is closed on an incomplete request, which no server
/// can take for a finished one.
#[test]
fn a_chunk_that_goes_bad_after_the_head_went_upstream_aborts_the_request() {
    const GOOD: &[u8] =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    let origin = RecordingOrigin::start();
    let proxy = Ringside::declared("http1", origin.addr);
    let mut client = TcpStream::connect(proxy.route()).unwrap();
    client.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    client.write_all(GOOD).unwrap();
    eventually("the head and the first chunk upstream", || {
        origin.received().concat() == GOOD
    });
    client
        .write_all(b"+5\r\nevil!\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n")
        .unwrap();
    let (answer, closed) = read_until_closed(&mut client);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 400 ") && answer.contains("ringside-proxy-error: "),
        "{answer}"
    );
    assert!(closed, "the connection stayed open after the 400");
    let received = origin.settled(&proxy.wait_idle());
    assert_eq!(
        String::from_utf8_lossy(&received.concat()),
        String::from_utf8_lossy(GOOD)
    );
}

/// The response direction: an upstream whose response cannot be framed
/// (both lengths, or a chunked body that goes bad) must not get a byte
/// past that point to the client, whose connection then closes, nor be
/// pooled for another request. The client pipelines a second request,
/// which must go unanswered.
#[test]
fn responses_that_cannot_be_framed_close_both_connections() {
    // (name, the upstream's answer, the status the client sees: 502 from
    // ringside when the head is at fault, else the upstream's head and a
    // body cut where it went bad)
    let vectors: [(&str, &'static [u8], u16); 6] = [
        (
            "Content-Length and Transfer-Encoding",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
            502,
        ),
        (
            "two differing Content-Lengths",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 41\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
            502,
        ),
        (
            "Content-Length: +2",
            b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nokevil",
            502,
        ),
        (
            "chunk size +4",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+4\r\nevil\r\n0\r\n\r\n",
            200,
        ),
        (
            "chunk size past 64 bits",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nevil\r\n0\r\n\r\n",
            200,
        ),
        (
            "last chunk ended by a bare LF",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
            200,
        ),
    ];
    let mut failures = Vec::new();
    for (name, hostile, status) in vectors {
        let origin = RecordingOrigin::answering(hostile);
        let proxy = Ringside::declared("http1", origin.addr);
        let mut client = TcpStream::connect(proxy.route()).unwrap();
        client.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
        client
            .write_all(
                b"GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n",
            )
            .unwrap();
        let (answer, closed) = read_until_closed(&mut client);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        drop(client);
        let status_line = format!("HTTP/1.1 {status} ");
        let from_ringside = status != 502 || answer.contains("ringside-proxy-error: ");
        if !answer.starts_with(&status_line)
            || !from_ringside
            || answer.contains("evil")
            || answer.matches("HTTP/1.1 ").count() != 1
            || !closed
        {
            failures.push(format!("{name}: answered {answer:?}, closed: {closed}"));
        }
        // Settles only once ringside closed the upstream connection.
        let received = origin.settled(&proxy.wait_idle());
        if received.iter().filter(|bytes| !bytes.is_empty()).count() != 1 {
            failures.push(format!("{name}: the upstream got {received:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
