//! HTTP/1: the verdict rests on the request line alone
//! (`method SP request-target SP HTTP/1.x CRLF`), checked by `httparse`,
//! after any empty lines: RFC 9112 §2.2 lets a server skip them, and
//! httparse, nginx and Node do, however many there are.
//!
//! Inbound needs a second, looser reading (`looks_like_request`): what
//! httparse refuses, a lenient server may still take as a request, with the
//! `l5d-*` headers after it. RFC 9112 §3 lets a server split the line on any
//! whitespace (Python's `http.server` does), Go takes any `HTTP/1.x`
//! version, and methods of any length are tokens.
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
    let peeked = match skip_empty_lines(peeked) {
        Ok(line) => line,
        Err(verdict) => return verdict,
    };
    if peeked.is_empty() {
        return Detection::NeedMore;
    }
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

/// The bytes after any leading empty lines (CRLF or a bare LF, as httparse
/// skips them), or the verdict when those lines are not done or are not
/// lines: a CR must be followed by LF.
fn skip_empty_lines(mut peeked: &[u8]) -> Result<&[u8], Detection> {
    loop {
        peeked = match peeked {
            [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] => rest,
            [b'\r'] => return Err(Detection::NeedMore),
            [b'\r', ..] => return Err(Detection::Unknown),
            line => return Ok(line),
        };
    }
}

/// How a lenient server might read the first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Looks {
    /// `token SP word SP HTTP/`: a request line to some server.
    Request,
    /// A prefix of one.
    Maybe,
    /// No server reads a request with headers from it.
    Not,
}

/// Whether the first line reads as a request line to a lenient server:
/// after leading whitespace and empty lines, a method token, whitespace, a
/// target, whitespace and `HTTP/` in any case. A line that ends before the
/// version is HTTP/0.9 at most, which has no headers to forge. Each answer
/// but [`Looks::Maybe`] is final: more bytes never change it.
pub(crate) fn looks_like_request(peeked: &[u8]) -> Looks {
    let line = trim_start(peeked, |byte| is_line_space(byte) || byte == b'\n');
    let method_len = token_len(line);
    if method_len == 0 && !line.is_empty() {
        return Looks::Not;
    }
    let Some(after_method) = word_then_space(line, method_len) else {
        return Looks::Not;
    };
    let Some(target) = after_method else {
        return Looks::Maybe;
    };
    let target_len = target
        .iter()
        .position(|&byte| is_line_space(byte) || byte == b'\n')
        .unwrap_or(target.len());
    if target_len == 0 && !target.is_empty() {
        return Looks::Not;
    }
    let Some(after_target) = word_then_space(target, target_len) else {
        return Looks::Not;
    };
    let Some(version) = after_target else {
        return Looks::Maybe;
    };
    let seen = version.len().min(HTTP_VERSION_PREFIX.len());
    if !version[..seen].eq_ignore_ascii_case(&HTTP_VERSION_PREFIX[..seen]) {
        Looks::Not
    } else if seen < HTTP_VERSION_PREFIX.len() {
        Looks::Maybe
    } else {
        Looks::Request
    }
}

const HTTP_VERSION_PREFIX: &[u8] = b"HTTP/";

/// After a word of `word_len` bytes at the start of `line`: `Some(Some(rest))`
/// with the whitespace after it skipped, `Some(None)` while the line could
/// still go on, `None` when the word is followed by the line's end or by
/// anything but whitespace.
fn word_then_space(line: &[u8], word_len: usize) -> Option<Option<&[u8]>> {
    let after_word = &line[word_len..];
    match after_word.first() {
        None => Some(None),
        Some(&byte) if is_line_space(byte) => {
            let rest = trim_start(after_word, is_line_space);
            match rest.first() {
                None => Some(None),
                Some(b'\n') => None,
                Some(_) => Some(Some(rest)),
            }
        }
        Some(_) => None,
    }
}

fn trim_start(bytes: &[u8], skip: impl Fn(u8) -> bool) -> &[u8] {
    let start = bytes.iter().position(|&byte| !skip(byte));
    &bytes[start.unwrap_or(bytes.len())..]
}

fn token_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|&byte| !is_token_byte(byte))
        .unwrap_or(bytes.len())
}

/// Whitespace a lenient server takes between the words of a request line
/// (RFC 9112 §3): SP, HTAB, VT, FF and a bare CR.
fn is_line_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | 0x0b | 0x0c | b'\r')
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
        assert_eq!(detect_http1(b"\rGET / HTTP/1.1\r\n"), Detection::Unknown);
    }

    #[test]
    fn leading_empty_lines_are_skipped_as_servers_do() {
        let request = b"\r\n\n\r\nGET / HTTP/1.1\r\n";
        for len in 1..request.len() {
            assert_eq!(detect_http1(&request[..len]), Detection::NeedMore);
        }
        assert_eq!(detect_http1(request), Detection::Http1);
        assert_eq!(detect_http1(&[b'\n'; 1024]), Detection::NeedMore);
    }

    #[test]
    fn lenient_request_lines_look_like_requests() {
        let requests: [&[u8]; 7] = [
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.9\r\n",
            b"GET\t/\tHTTP/1.1\r\n",
            b" \r\n GET  /  http/1.1\n",
            b"GET\x0b/\x0cHTTP/1.1",
            b"AVERYLONGMETHODNAMEFARPASTTHIRTYTWOBYTES / HTTP/1.1",
            b"PRI * HTTP/2.0\r\n\r\nXX",
        ];
        for request in requests {
            assert_eq!(looks_like_request(request), Looks::Request, "{request:?}");
            // A final answer holds for every longer input.
            for len in 0..request.len() {
                assert_ne!(looks_like_request(&request[..len]), Looks::Not, "{len}");
            }
        }
    }

    #[test]
    fn other_first_lines_do_not() {
        let others: [&[u8]; 9] = [
            b"GET /\r\n",
            b"get key\r\n",
            b"*1\r\n$4\r\nPING\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"SET k v\r\n",
            b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
            b"GET / FTP/1.0\r\n",
            b"G\x00ET / HTTP/1.1\r\n",
            b"{\"json\": true}",
        ];
        for other in others {
            assert_eq!(looks_like_request(other), Looks::Not, "{other:?}");
        }
        assert_eq!(looks_like_request(&[b'G'; 1024]), Looks::Maybe);
        assert_eq!(looks_like_request(b"GET / HT"), Looks::Maybe);
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
