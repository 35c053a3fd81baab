//! Finds the end of a chunked body while its bytes pass through unchanged.
//!
//! The proxy forwards chunked bodies as they are (no re-encoding), so all it
//! needs is to know which byte is the last one: the scanner follows chunk
//! sizes, extensions and trailers across any split of the input. Because
//! the bytes go on unchanged, the scanner is strict (RFC 9112 §7.1): it
//! refuses whatever another reader could frame differently (a size with a
//! sign or past 63 bits, a bare LF, a control character in an extension or
//! a trailer, an over-long line) and so could read as the start of another
//! message. Nothing from the byte that fails on is passed on.
//!
//! Trailers are the one part a proxy may have to change: an inbound request
//! must not bring `l5d-*` fields to the application in them either. For
//! that the scanner can stop where they start, and `filter_trailers` passes
//! on the section without some fields.

/// Why a chunked body cannot be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct ChunkedError;

/// Most hex digits in a chunk size: 16 hold 64 bits, and Go's net/http
/// refuses more, so no reader that stops at 16 sees a different number.
const MAX_SIZE_DIGITS: u8 = 16;
/// Largest chunk size: what a signed 64-bit number holds, so a reader that
/// keeps the size in one (many do) does not see `ffffffffffffffff` as -1.
const MAX_CHUNK_SIZE: u64 = i64::MAX as u64;
/// Longest chunk-size line, extensions included. Real extensions are a few
/// bytes, when there are any; Node.js caps them at 16 KiB a message since
/// CVE-2024-22019. 1 KiB keeps an over-long line inside the first 4 KiB
/// read of a body sent with its head, so that it is refused before the
/// head goes upstream (`HttpIo::check_buffered_chunks`).
const MAX_SIZE_LINE_BYTES: u16 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size; `digits` says how many came yet.
    Size {
        size: u64,
        digits: u8,
    },
    /// Whitespace after the size (RFC 9112's BWS), before `;` or the CR.
    SizeSpace {
        size: u64,
    },
    /// A chunk extension, skipped up to the line end.
    Extension {
        size: u64,
    },
    /// The LF ending a size line.
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// Start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    TrailerLf,
    FinalLf,
    Done,
}

/// Tracks one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: State,
    /// Bytes of the current chunk-size line so far.
    line_bytes: u16,
    /// `scan` returns at the start of the trailer section, so that the
    /// caller can take the section whole (`at_trailers`).
    stop_at_trailers: bool,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        ChunkedScanner {
            state: State::Size { size: 0, digits: 0 },
            line_bytes: 0,
            stop_at_trailers: false,
        }
    }
}

/// A byte a field value may hold (RFC 9110 §5.5: visible characters,
/// space, tab and obs-text): what extensions and trailer lines are made of.
fn is_field_byte(byte: u8) -> bool {
    matches!(byte, b'\t' | b' '..=b'~' | 0x80..=0xff)
}

impl ChunkedScanner {
    /// A scanner whose `scan` stops once the last chunk's size line is
    /// in: the next bytes are the trailer section.
    pub fn stopping_at_trailers() -> ChunkedScanner {
        ChunkedScanner {
            stop_at_trailers: true,
            ..ChunkedScanner::default()
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Everything up to the trailer section has been scanned, nothing of it.
    pub fn at_trailers(&self) -> bool {
        self.state == State::TrailerStart
    }

    /// Consumes bytes of the body; returns how many belong to it (all of
    /// them unless the body ends inside `bytes`).
    pub fn scan(&mut self, bytes: &[u8]) -> Result<usize, ChunkedError> {
        self.scan_data(bytes, |_| {})
    }

    /// `scan`, also handing `data` each run of chunk data in `bytes` (as
    /// a range of it): the body's content without its framing, for a
    /// proxy that re-frames it (HTTP/1 carried over HTTP/2). Trailers are
    /// checked, not handed on.
    pub fn scan_data(
        &mut self,
        bytes: &[u8],
        mut data: impl FnMut(std::ops::Range<usize>),
    ) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < bytes.len() {
            let byte = bytes[i];
            self.state = match self.state {
                State::Done => return Ok(i),
                State::Size { size, digits } => match byte {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits == MAX_SIZE_DIGITS {
                            return Err(ChunkedError);
                        }
                        // Under 16 digits the size is below 2^60: the
                        // shift cannot overflow.
                        let digit = (byte as char).to_digit(16).unwrap_or(0) as u64;
                        let size = (size << 4) | digit;
                        if size > MAX_CHUNK_SIZE {
                            return Err(ChunkedError);
                        }
                        State::Size {
                            size,
                            digits: digits + 1,
                        }
                    }
                    _ if digits == 0 => return Err(ChunkedError),
                    b' ' | b'\t' => State::SizeSpace { size },
                    b';' => State::Extension { size },
                    b'\r' => State::SizeLf { size },
                    _ => return Err(ChunkedError),
                },
                State::SizeSpace { size } => match byte {
                    b' ' | b'\t' => State::SizeSpace { size },
                    b';' => State::Extension { size },
                    b'\r' => State::SizeLf { size },
                    _ => return Err(ChunkedError),
                },
                State::Extension { size } => match byte {
                    b'\r' => State::SizeLf { size },
                    _ if is_field_byte(byte) => State::Extension { size },
                    _ => return Err(ChunkedError),
                },
                State::SizeLf { size } => match (byte, size) {
                    (b'\n', 0) if self.stop_at_trailers => {
                        self.state = State::TrailerStart;
                        return Ok(i + 1);
                    }
                    (b'\n', 0) => State::TrailerStart,
                    (b'\n', size) => State::Data { remaining: size },
                    _ => return Err(ChunkedError),
                },
                State::Data { remaining } => {
                    // Skip the whole run of data bytes at once.
                    let take = remaining.min((bytes.len() - i) as u64);
                    data(i..i + take as usize);
                    i += take as usize;
                    let remaining = remaining - take;
                    self.state = if remaining == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining }
                    };
                    continue;
                }
                State::DataCr if byte == b'\r' => State::DataLf,
                State::DataLf if byte == b'\n' => {
                    self.line_bytes = 0;
                    State::Size { size: 0, digits: 0 }
                }
                State::TrailerStart => match byte {
                    b'\r' => State::FinalLf,
                    // A line that starts with whitespace continues the
                    // last one (obs-fold), which RFC 9112 §5.2 refuses.
                    b' ' | b'\t' => return Err(ChunkedError),
                    _ if is_field_byte(byte) => State::Trailer,
                    _ => return Err(ChunkedError),
                },
                State::Trailer => match byte {
                    b'\r' => State::TrailerLf,
                    _ if is_field_byte(byte) => State::Trailer,
                    _ => return Err(ChunkedError),
                },
                State::TrailerLf if byte == b'\n' => State::TrailerStart,
                State::FinalLf if byte == b'\n' => State::Done,
                _ => return Err(ChunkedError),
            };
            if let State::Size { .. } | State::SizeSpace { .. } | State::Extension { .. } =
                self.state
            {
                if self.line_bytes == MAX_SIZE_LINE_BYTES {
                    return Err(ChunkedError);
                }
                self.line_bytes += 1;
            }
            i += 1;
        }
        Ok(i)
    }
}

/// Most bytes of a trailer section taken whole: as many as a head may have.
pub const MAX_TRAILER_BYTES: usize = super::head::MAX_HEAD_BYTES;

/// Writes to `out` a complete trailer section (a scanner found it valid:
/// CRLF lines, no folding, ending with an empty line) without the fields
/// whose name `drops`; unchanged when it drops none. Every line must be
/// `name: value` with a token for a name: a line that is not, or a space
/// before the colon, is read as some field by some server, which would
/// then escape the filter.
pub fn filter_trailers(
    section: &[u8],
    drops: impl Fn(&[u8]) -> bool,
    out: &mut Vec<u8>,
) -> Result<(), ChunkedError> {
    let start = out.len();
    let mut dropped = false;
    let lines = section
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r"));
    for line in lines.take_while(|line| line.is_some_and(|l| !l.is_empty())) {
        let line = line.unwrap_or_default();
        let colon = line.iter().position(|b| *b == b':').ok_or(ChunkedError)?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|b| is_token_byte(*b)) {
            return Err(ChunkedError);
        }
        if drops(name) {
            dropped = true;
            continue;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !dropped {
        out.truncate(start);
        out.extend_from_slice(section);
    }
    Ok(())
}

/// A byte of a field name (RFC 9110 §5.6.2's tchar).
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        b"5;name=v\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n";

    #[test]
    fn finds_the_end_at_every_split() {
        for split in 0..=BODY.len() {
            let mut scanner = ChunkedScanner::default();
            let mut input = BODY.to_vec();
            input.extend_from_slice(b"NEXT");
            let first = scanner.scan(&input[..split]).unwrap();
            assert_eq!(first, split.min(BODY.len()));
            let second = scanner.scan(&input[split..]).unwrap();
            assert_eq!(first + second, BODY.len(), "split {split}");
            assert!(scanner.is_done());
        }
    }

    #[test]
    fn hands_on_the_data_at_every_split() {
        for split in 0..=BODY.len() {
            let mut scanner = ChunkedScanner::default();
            let mut content = Vec::new();
            for part in [&BODY[..split], &BODY[split..]] {
                scanner
                    .scan_data(part, |range| content.extend_from_slice(&part[range]))
                    .unwrap();
            }
            assert_eq!(content, b"helloabcdefghijklmnopqrstuvwxyz", "split {split}");
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut scanner = ChunkedScanner::default();
        for byte in BODY {
            assert_eq!(scanner.scan(std::slice::from_ref(byte)).unwrap(), 1);
        }
        assert!(scanner.is_done());
    }

    #[test]
    fn rejects_malformed_bodies() {
        let long_extension = [&b"5;"[..], &[b'x'; MAX_SIZE_LINE_BYTES as usize]].concat();
        for bad in [
            &b"x\r\n"[..],
            b"5\r\nhelloXX",
            b"\r\n",
            b"5\nhello",
            b"+5\r\n",
            b"-5\r\n",
            b"0x5\r\n",
            b"5 x\r\n",
            b"5;a\x00\r\n",
            b"5;a\n",
            b"5\r\nhello\n",
            b"FFFFFFFFFFFFFFFFF\r\n",
            b"8000000000000000\r\n",
            b"00000000000000005\r\n",
            b"0\r\n\n",
            b"0\r\nx: 1\n",
            b"0\r\nx: \x7f\r\n",
            b"0\r\nx: 1\r\n folded\r\n",
            &long_extension,
        ] {
            assert_eq!(
                ChunkedScanner::default().scan(bad),
                Err(ChunkedError),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn takes_what_the_grammar_allows() {
        let longest_extension = [
            &b"5;"[..],
            &[b'x'; MAX_SIZE_LINE_BYTES as usize - 2],
            b"\r\nhello\r\n0\r\n\r\n",
        ]
        .concat();
        for good in [
            &b"7fffffffffffffff\r\n"[..],
            b"000000000000005\r\nhello\r\n0\r\n\r\n",
            b"5 \t;a=b;c=\"d e\"\r\nhello\r\n0\r\n\r\n",
            b"5;\x80\r\nhello\r\n0;x\r\nx: \xff\r\ny:\r\n\r\n",
            &longest_extension,
        ] {
            let mut scanner = ChunkedScanner::default();
            assert_eq!(scanner.scan(good), Ok(good.len()), "{good:?}");
        }
    }

    #[test]
    fn stops_at_the_trailers_and_filters_them() {
        let body = b"5\r\nhello\r\n0\r\nx-a: 1\r\nL5d_Client_Id: forged\r\n\r\nNEXT";
        let mut scanner = ChunkedScanner::stopping_at_trailers();
        let head = scanner.scan(body).unwrap();
        assert_eq!(&body[..head], b"5\r\nhello\r\n0\r\n");
        assert!(scanner.at_trailers());
        let section = scanner.scan(&body[head..]).unwrap();
        assert!(scanner.is_done());
        let section = &body[head..head + section];
        let l5d = |name: &[u8]| name.eq_ignore_ascii_case(b"l5d_client_id");
        let mut out = Vec::new();
        filter_trailers(section, l5d, &mut out).unwrap();
        assert_eq!(out, b"x-a: 1\r\n\r\n");
        out.clear();
        filter_trailers(b"x-a:1\r\n\r\n", l5d, &mut out).unwrap();
        assert_eq!(out, b"x-a:1\r\n\r\n", "unchanged when nothing is dropped");
        for bad in [
            &b"l5d-client-id : x\r\n\r\n"[..],
            b"no colon\r\n\r\n",
            b": x\r\n\r\n",
        ] {
            assert_eq!(filter_trailers(bad, l5d, &mut out), Err(ChunkedError));
        }
    }
}
