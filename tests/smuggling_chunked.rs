//! Request smuggling through chunked bodies: malformed chunk sizes, lines
//! and extensions, refused before anything goes upstream, and a chunk
//! that goes bad after the head already went upstream, which aborts the
//! request (`support::smuggling`).
//!
//! The routes here are declared `http1`. On a detecting route a first
//! request whose head does not parse is not HTTP to the detector and is
//! carried opaquely on a connection of its own, never shared with another
//! client, so there is no proxy reading of it to disagree with.

mod support;

use std::io::Write;
use std::net::TcpStream;

use support::smuggling::Expect::{Forwarded, Refused};
use support::smuggling::{check_all, read_until_closed};
use support::*;

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
