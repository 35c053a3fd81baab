//! Request smuggling through the request head: folded lines, bare line
//! feeds, control characters and malformed request lines sent through
//! ringside to an origin that records every byte. Each vector is refused
//! or normalized to one request (`support::smuggling`).
//!
//! The routes here are declared `http1`. On a detecting route a first
//! request whose head does not parse is not HTTP to the detector and is
//! carried opaquely on a connection of its own, never shared with another
//! client, so there is no proxy reading of it to disagree with.

mod support;

use support::smuggling::check_all;
use support::smuggling::Expect::{Forwarded, Refused};

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
