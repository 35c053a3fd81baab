//! Inbound's stricter final verdicts: bytes that may begin an HTTP request
//! are HTTP, never opaque, so that their `l5d-*` headers cannot reach the
//! application raw. Each case is one way a client got past detection's
//! fail-open with a forged `l5d-client-id`.

use super::*;
use crate::config::Direction::{Inbound, Outbound};
use crate::config::DEFAULT_PEEK_BYTES;

const FORGED: &[u8] = b"\r\nl5d-client-id: forged\r\n\r\n";

fn request_line_longer_than_the_peek() -> Vec<u8> {
    let mut line = b"GET /".to_vec();
    line.resize(DEFAULT_PEEK_BYTES + 100, b'a');
    line.extend_from_slice(b" HTTP/1.1");
    line.extend_from_slice(FORGED);
    line
}

#[test]
fn what_may_begin_a_request_is_http_inbound_only() {
    let long_line = request_line_longer_than_the_peek();
    let cases: [(&str, &[u8], Detection); 6] = [
        (
            "a full peek buffer",
            &long_line[..DEFAULT_PEEK_BYTES],
            Detection::Http1,
        ),
        ("a partial request line", b"GET /partial", Detection::Http1),
        ("half a method", b"GE", Detection::Http1),
        ("empty lines so far", b"\r\n\r\n", Detection::Http1),
        (
            "half the HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n",
            Detection::Http2,
        ),
        ("a long method", &[b'M'; 64], Detection::Http1),
    ];
    for (name, bytes, inbound) in cases {
        assert_eq!(detect(bytes, Inbound), Detection::NeedMore, "{name}");
        assert_eq!(detect_final(bytes, Inbound), inbound, "{name}");
        assert_eq!(detect_final(bytes, Outbound), Detection::Unknown, "{name}");
    }
}

#[test]
fn request_lines_a_lenient_server_takes_are_http_inbound() {
    let lenient: [&[u8]; 5] = [
        b"GET / HTTP/1.9",
        b"GET\t/\tHTTP/1.1",
        b" GET / HTTP/1.1",
        b"GET / http/1.1",
        b"AVERYLONGMETHODNAMEFARPASTTHIRTYTWOBYTES / HTTP/1.1",
    ];
    for line in lenient {
        let request = [line, FORGED].concat();
        assert_eq!(detect(&request, Inbound), Detection::Http1, "{line:?}");
        assert_eq!(detect(&request, Outbound), Detection::Unknown, "{line:?}");
    }
}

#[test]
fn a_leading_empty_line_is_tolerated_both_ways() {
    let request = [&b"\r\nGET / HTTP/1.1"[..], FORGED].concat();
    assert_eq!(detect(&request, Outbound), Detection::Http1);
    assert_eq!(detect(&request, Inbound), Detection::Http1);
}

#[test]
fn what_no_server_reads_as_http_still_fails_open_inbound() {
    let others: [&[u8]; 6] = [
        &[0x00, 0xff, 0x13, 0x37],
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"*1\r\n$4\r\nPING\r\n",
        b"get key\r\n",
        &[0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f],
        &[0x16, 0x03, 0x01],
    ];
    for bytes in others {
        assert_eq!(
            detect_final(bytes, Inbound),
            Detection::Unknown,
            "{bytes:?}"
        );
    }
    // Silence is the caller's to judge: nothing here says it is HTTP.
    assert_eq!(detect_final(b"", Inbound), Detection::Unknown);
}

#[test]
fn invariants_hold_for_the_inbound_cases() {
    invariants::check_detect_invariants(&request_line_longer_than_the_peek());
    invariants::check_detect_invariants(b"\r\n\r\nGET / HTTP/1.9\r\n");
    invariants::check_detect_invariants(b" GET\t/ http/1.1\r\n");
}
