//! Request smuggling through the length of a request: hostile HTTP/1
//! framing (Content-Length against Transfer-Encoding, lengths that
//! disagree, bodies on GET and HEAD) sent through ringside to an origin
//! that records every byte. Each vector is refused or normalized to one
//! request (`support::smuggling`).
//!
//! The routes here are declared `http1`. On a detecting route a first
//! request whose head does not parse is not HTTP to the detector and is
//! carried opaquely on a connection of its own, never shared with another
//! client, so there is no proxy reading of it to disagree with.

mod support;

use support::smuggling::check_all;
use support::smuggling::Expect::{Forwarded, Refused};

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
