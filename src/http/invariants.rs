//! The properties every HTTP/1 head and chunked body must satisfy on
//! their way through the proxy, as functions that panic on a violation.
//! The cargo-fuzz targets `http_head` and `chunked` call them on fuzzer
//! input, and the proptests on generated input.
//!
//! Public only so that the fuzz crate can reach it; not part of the API.

use super::chunked::{ChunkedError, ChunkedScanner};
use super::head::{parse_request, parse_response, HeadError, Parsed, MAX_HEADERS};

/// Panics if a head that parses is written out in a form that does not
/// parse back to the same message:
/// 1. parsing never panics (reaching the end proves it);
/// 2. what is sent on parses as one complete head, of exactly its length;
/// 3. with the same method, target, status and body framing (when that
///    framing is not refused: such a head is never sent on);
/// 4. with CRLF line ends only;
/// 5. and writing that out again changes nothing (the rewrite is stable).
pub fn check_head_invariants(input: &[u8]) {
    if let Ok(Some((request, _))) = parse_request(input) {
        let mut out = Vec::new();
        request.encode(&mut out);
        let Some((again, len)) = reparse(parse_request(&out), &out) else {
            return;
        };
        assert_eq!(len, out.len(), "one head, nothing after it");
        assert_eq!(again.method(), request.method());
        assert_eq!(again.target(), request.target());
        // A head whose framing is refused is never sent on.
        if let Ok(framing) = request.framing() {
            assert_eq!(again.framing(), Ok(framing));
        }
        assert_eq!(again.wants_tunnel(), request.wants_tunnel());
        let mut twice = Vec::new();
        again.encode(&mut twice);
        assert_eq!(twice, out, "the rewrite is stable");
    }
    if let Ok(Some((response, _))) = parse_response(input) {
        for (tunnel, close) in [(false, false), (false, true), (true, false)] {
            let mut out = Vec::new();
            response.encode(tunnel, close, &mut out);
            let Some((again, len)) = reparse(parse_response(&out), &out) else {
                continue;
            };
            assert_eq!(len, out.len(), "one head, nothing after it");
            assert_eq!(again.status, response.status);
            if let Ok(framing) = response.framing("GET") {
                assert_eq!(again.framing("GET"), Ok(framing));
            }
            if close {
                assert!(!again.keep_alive(), "a closing response says so");
            }
        }
    }
}

/// The head that was sent on, parsed again; `None` only when the proxy's
/// own line (`connection: close` or `upgrade`) took a head that had the
/// most headers ringside accepts over that limit (the peer's limit is its
/// own: this is not an error).
fn reparse<T>(parsed: Parsed<T>, out: &[u8]) -> Option<(T, usize)> {
    let text = String::from_utf8_lossy(out);
    let lines = memchr::memchr_iter(b'\n', out).count();
    assert!(
        memchr::memchr_iter(b'\n', out).all(|at| at > 0 && out[at - 1] == b'\r'),
        "bare LF in {text:?}"
    );
    match parsed {
        Ok(Some(head)) => Some(head),
        // The start line and the empty line are not headers.
        Err(HeadError::TooLarge) if lines - 2 == MAX_HEADERS + 1 => None,
        other => panic!("{text:?} does not parse back: {:?}", other.err()),
    }
}

/// Panics if the chunked scanner's reading of `input` could differ from
/// another reader's, which is how a body smuggles a request:
/// 1. scanning never panics;
/// 2. the verdict (where the body ends, or that it is malformed) is the same
///    however the input is split across reads: whole, at one point (every
///    point of a short input, `MAX_SPLITS` spread over a long one), or a
///    byte at a time;
/// 3. where the scanner finds the end, a lenient reader finds it too:
///    httparse's chunk-size parser (which skips any extension byte) with a
///    bare LF taken as a line end after data and in trailers, as many
///    servers do;
/// 4. a scanner that stops where the trailers start (to filter them) and
///    then goes on gives the same verdict.
pub fn check_chunked_invariants(input: &[u8]) {
    let whole = scan_in_pieces(input, input.len().max(1));
    let mut stopping = ChunkedScanner::stopping_at_trailers();
    let stopped = stopping.scan(input).and_then(|first| {
        if stopping.at_trailers() {
            let rest = stopping.scan(&input[first..])?;
            return Ok(stopping.is_done().then_some(first + rest));
        }
        Ok(stopping.is_done().then_some(first))
    });
    assert_eq!(stopped, whole, "stopping at the trailers");
    assert_eq!(scan_in_pieces(input, 1), whole, "a byte at a time");
    // Every split of a short input, about MAX_SPLITS over a longer one:
    // each split rescans the input, and a fuzzer's inputs run to kilobytes.
    let step = (input.len() / MAX_SPLITS).max(1);
    for split in (1..input.len()).step_by(step) {
        let mut scanner = ChunkedScanner::default();
        let split_verdict = scanner.scan(&input[..split]).and_then(|first| {
            if scanner.is_done() {
                return Ok(Some(first));
            }
            let second = scanner.scan(&input[split..])?;
            Ok(scanner.is_done().then_some(first + second))
        });
        assert_eq!(split_verdict, whole, "split at {split}");
    }
    if let Ok(Some(end)) = whole {
        assert_eq!(lenient_end(&input[..end]), Some(end), "a lenient reader");
    }
}

/// About how many split points of a chunked body are checked.
const MAX_SPLITS: usize = 16;

/// The scanner's verdict over `input` fed in pieces of `piece` bytes:
/// where the body ends, `None` if it has not ended, or the error.
fn scan_in_pieces(input: &[u8], piece: usize) -> Result<Option<usize>, ChunkedError> {
    let mut scanner = ChunkedScanner::default();
    let mut taken = 0;
    for chunk in input.chunks(piece) {
        taken += scanner.scan(chunk)?;
        if scanner.is_done() {
            return Ok(Some(taken));
        }
    }
    Ok(None)
}

/// Where a lenient reader ends the chunked body at the start of `body`,
/// if it does.
fn lenient_end(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let httparse::Status::Complete((line, size)) =
            httparse::parse_chunk_size(&body[at..]).ok()?
        else {
            return None;
        };
        at += line;
        if size == 0 {
            break;
        }
        at = at.checked_add(usize::try_from(size).ok()?)?;
        at += line_end(body.get(at..)?)?;
    }
    // Trailer lines up to the empty one.
    loop {
        let rest = body.get(at..)?;
        if let Some(end) = line_end(rest) {
            return Some(at + end);
        }
        at += memchr::memchr(b'\n', rest)? + 1;
    }
}

/// The length of a line end (CRLF or a bare LF) at the start of `bytes`.
fn line_end(bytes: &[u8]) -> Option<usize> {
    match bytes {
        [b'\r', b'\n', ..] => Some(2),
        [b'\n', ..] => Some(1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{check_chunked_invariants, check_head_invariants};
    use proptest::prelude::*;

    #[test]
    fn known_heads_hold() {
        for head in [
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "\r\nGET /x HTTP/1.0\nHost: a\nConnection: keep-alive, x-a\nX-A: 1\n\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n",
            "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
            "HTTP/1.0 101 Switching\nUpgrade: x\nConnection: upgrade\n\n",
            "HTTP/1.1 204 \r\n\r\n",
        ] {
            check_head_invariants(head.as_bytes());
        }
    }

    /// Head-shaped input: a start line, then header lines made of a few
    /// names that matter to the proxy, with CRLF or bare LF line ends.
    fn head() -> impl Strategy<Value = Vec<u8>> {
        let start = prop::sample::select(vec![
            "GET / HTTP/1.1",
            "POST /p?q=1 HTTP/1.0",
            "CONNECT h:1 HTTP/1.1",
            "HTTP/1.1 200 OK",
            "HTTP/1.0 304 Not Modified",
            "HTTP/1.1 101 Switching Protocols",
        ]);
        let name = prop::sample::select(vec![
            "Host",
            "Connection",
            "connection",
            "Keep-Alive",
            "Upgrade",
            "TE",
            "Transfer-Encoding",
            "Content-Length",
            "X-Named",
            "Proxy-Connection",
        ]);
        let value = prop::sample::select(vec![
            "close",
            "keep-alive, X-Named",
            "upgrade",
            "chunked",
            "5",
            "a b",
            "",
        ]);
        let eol = prop::sample::select(vec!["\r\n", "\n"]);
        (
            start,
            eol.clone(),
            prop::collection::vec((name, value, eol.clone()), 0..8),
            eol,
        )
            .prop_map(|(start, first_eol, lines, last_eol)| {
                let mut text = format!("{start}{first_eol}");
                for (name, value, eol) in lines {
                    text.push_str(&format!("{name}: {value}{eol}"));
                }
                text.push_str(last_eol);
                text.into_bytes()
            })
    }

    #[test]
    fn known_chunked_bodies_hold() {
        for body in [
            &b"5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\nNEXT"[..],
            b"0\r\n\nGET /smuggled HTTP/1.1\r\n\r\n",
            b"ffffffffffffffff\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"",
        ] {
            check_chunked_invariants(body);
        }
    }

    /// Chunked-shaped input: chunk lines, data and trailers made of the
    /// pieces that matter to a reader, with CRLF or bare LF line ends.
    fn chunked() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop::sample::select(vec![
            "5",
            "0",
            "a",
            "+5",
            "ffffffffffffffff",
            " ",
            ";x=y",
            "\t",
            "hello",
            "\r\n",
            "\n",
            "\r",
            "X-T: 1",
            "\0",
        ]);
        prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat().into_bytes())
    }

    proptest! {
        #[test]
        fn generated_chunked_bodies_hold(input in chunked()) {
            check_chunked_invariants(&input);
        }

        #[test]
        fn generated_heads_hold(input in head()) {
            check_head_invariants(&input);
        }

        #[test]
        fn arbitrary_bytes_hold(input in prop::collection::vec(any::<u8>(), 0..256)) {
            check_head_invariants(&input);
        }
    }
}
