//! HTTP/1: the verdict rests on the request line alone
//! (`method SP request-target SP HTTP/1.x CRLF`), checked by `httparse`.
//!
//! Headers are deliberately not parsed. A bad header further on would
//! otherwise turn a verdict already given on a shorter prefix into Unknown,
//! and the HTTP/1 server behind the proxy will answer a bad header with a 400
//! anyway. Parsing only the line also keeps this path free of allocation and
//! of any header-count limit.

use super::Detection;

/// Longest method token we wait for. Registered methods are at most 17 bytes
/// (`UPDATEREDIRECTREF`); without a bound, a stream of token characters and no
/// space (say 1 KiB of `G`) would be "still possibly a method" until the
/// buffer cap, instead of Unknown at once.
pub(crate) const MAX_METHOD_BYTES: usize = 32;

/// Http1 once the request line is complete and valid, NeedMore while it could
/// still become one, Unknown otherwise.
pub(crate) fn detect_http1(peeked: &[u8]) -> Detection {
    // httparse would catch a bad method too, but only after we looked for the
    // line ending; this check decides random bytes in a byte or two.
    let method_len = match method_token_len(peeked) {
        MethodToken::Complete(len) => len,
        MethodToken::Unfinished => return Detection::NeedMore,
        MethodToken::Invalid => return Detection::Unknown,
    };
    let line_end = peeked[method_len..]
        .iter()
        .position(|&byte| byte == b'\n')
        .map(|offset| method_len + offset + 1);
    let line = match line_end {
        Some(end) => &peeked[..end],
        None => peeked,
    };
    let mut no_headers: [httparse::Header<'_>; 0] = [];
    let mut request = httparse::Request::new(&mut no_headers);
    match request.parse(line) {
        // With the line ending in the slice and nothing after it, httparse
        // stops at the (absent) first header and reports Partial.
        Ok(_) if line_end.is_some() && request.version.is_some() => Detection::Http1,
        Ok(_) if line_end.is_none() => Detection::NeedMore,
        Ok(_) | Err(_) => Detection::Unknown,
    }
}

enum MethodToken {
    /// The method is this many bytes long and is followed by a space.
    Complete(usize),
    /// Only token characters so far, within [`MAX_METHOD_BYTES`].
    Unfinished,
    /// Empty, too long, or holding a byte no method may contain.
    Invalid,
}

fn method_token_len(peeked: &[u8]) -> MethodToken {
    let window = &peeked[..peeked.len().min(MAX_METHOD_BYTES + 1)];
    match window.iter().position(|&byte| !is_token_byte(byte)) {
        Some(0) => MethodToken::Invalid,
        Some(len) if window[len] == b' ' => MethodToken::Complete(len),
        Some(_) => MethodToken::Invalid,
        None if window.len() > MAX_METHOD_BYTES => MethodToken::Invalid,
        None => MethodToken::Unfinished,
    }
}

/// RFC 9110 `tchar`: the bytes a method token may hold.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET_WITH_HEADERS: &[u8] =
        b"GET /api/v1/users?id=7 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

    #[test]
    fn typical_get_is_http1() {
        assert_eq!(detect_http1(GET_WITH_HEADERS), Detection::Http1);
    }

    #[test]
    fn request_line_alone_is_enough() {
        assert_eq!(detect_http1(b"POST /x HTTP/1.0\r\n"), Detection::Http1);
        assert_eq!(detect_http1(b"GET / HTTP/1.1\n"), Detection::Http1);
    }

    #[test]
    fn every_prefix_before_the_line_ending_needs_more() {
        let line_end = GET_WITH_HEADERS.iter().position(|&b| b == b'\n').unwrap();
        for len in 1..=line_end {
            assert_eq!(
                detect_http1(&GET_WITH_HEADERS[..len]),
                Detection::NeedMore,
                "prefix of {len} bytes"
            );
        }
        for len in line_end + 1..=GET_WITH_HEADERS.len() {
            assert_eq!(detect_http1(&GET_WITH_HEADERS[..len]), Detection::Http1);
        }
    }

    #[test]
    fn bad_header_after_the_request_line_keeps_http1() {
        assert_eq!(
            detect_http1(b"GET / HTTP/1.1\r\n\x01bad header\r\n\r\n"),
            Detection::Http1
        );
    }

    #[test]
    fn many_headers_are_not_a_limit() {
        let mut request = b"GET / HTTP/1.1\r\n".to_vec();
        for index in 0..200 {
            request.extend_from_slice(format!("X-Header-{index}: v\r\n").as_bytes());
        }
        assert_eq!(detect_http1(&request), Detection::Http1);
    }

    #[test]
    fn method_longer_than_the_bound_is_unknown() {
        let mut long_method = vec![b'G'; MAX_METHOD_BYTES];
        assert_eq!(detect_http1(&long_method), Detection::NeedMore);
        long_method.push(b'G');
        assert_eq!(detect_http1(&long_method), Detection::Unknown);
        assert_eq!(detect_http1(&[b'G'; 1024]), Detection::Unknown);
        long_method.extend_from_slice(b" / HTTP/1.1\r\n");
        assert_eq!(detect_http1(&long_method), Detection::Unknown);
    }

    #[test]
    fn wrong_version_or_shape_is_unknown() {
        assert_eq!(detect_http1(b"GET / HTTP/2.0\r\n"), Detection::Unknown);
        assert_eq!(detect_http1(b"GET / HTTP/1.1X"), Detection::Unknown);
        assert_eq!(detect_http1(b"GET /\r\n"), Detection::Unknown);
        assert_eq!(detect_http1(b" GET / HTTP/1.1\r\n"), Detection::Unknown);
        assert_eq!(detect_http1(b"\r\nGET / HTTP/1.1\r\n"), Detection::Unknown);
    }

    #[test]
    fn other_text_protocols_are_unknown() {
        assert_eq!(detect_http1(b"SSH-2.0-OpenSSH_9.6\r\n"), Detection::Unknown);
        assert_eq!(detect_http1(b"*1\r\n$4\r\nPING\r\n"), Detection::Unknown);
        assert_eq!(
            detect_http1(b"EHLO mail.example.test\r\n"),
            Detection::Unknown
        );
    }
}
