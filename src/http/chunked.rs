//! Finds the end of a chunked body while its bytes pass through unchanged.
//!
//! The proxy forwards chunked bodies as they are (no re-encoding), so all it
//! needs is to know which byte is the last one: the scanner follows chunk
//! sizes, extensions and trailers across any split of the input.

/// Why a chunked body cannot be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct ChunkedError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size; `seen` says whether any came yet.
    Size {
        size: u64,
        seen: bool,
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
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        ChunkedScanner {
            state: State::Size {
                size: 0,
                seen: false,
            },
        }
    }
}

impl ChunkedScanner {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes bytes of the body; returns how many belong to it (all of
    /// them unless the body ends inside `bytes`).
    pub fn scan(&mut self, bytes: &[u8]) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < bytes.len() {
            let byte = bytes[i];
            self.state = match self.state {
                State::Done => return Ok(i),
                State::Size { size, seen } => match byte {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (byte as char).to_digit(16).unwrap_or(0) as u64;
                        let size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(digit))
                            .ok_or(ChunkedError)?;
                        State::Size { size, seen: true }
                    }
                    b';' | b' ' | b'\t' if seen => State::Extension { size },
                    b'\r' if seen => State::SizeLf { size },
                    _ => return Err(ChunkedError),
                },
                State::Extension { size } => match byte {
                    b'\r' => State::SizeLf { size },
                    b'\n' => return Err(ChunkedError),
                    _ => State::Extension { size },
                },
                State::SizeLf { size } => match (byte, size) {
                    (b'\n', 0) => State::TrailerStart,
                    (b'\n', size) => State::Data { remaining: size },
                    _ => return Err(ChunkedError),
                },
                State::Data { remaining } => {
                    // Skip the whole run of data bytes at once.
                    let take = remaining.min((bytes.len() - i) as u64);
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
                State::DataLf if byte == b'\n' => State::Size {
                    size: 0,
                    seen: false,
                },
                State::TrailerStart => match byte {
                    b'\r' => State::FinalLf,
                    _ => State::Trailer,
                },
                State::Trailer => match byte {
                    b'\r' => State::TrailerLf,
                    _ => State::Trailer,
                },
                State::TrailerLf if byte == b'\n' => State::TrailerStart,
                State::FinalLf if byte == b'\n' => State::Done,
                _ => return Err(ChunkedError),
            };
            i += 1;
        }
        Ok(i)
    }
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
    fn one_byte_at_a_time() {
        let mut scanner = ChunkedScanner::default();
        for byte in BODY {
            assert_eq!(scanner.scan(std::slice::from_ref(byte)).unwrap(), 1);
        }
        assert!(scanner.is_done());
    }

    #[test]
    fn rejects_malformed_bodies() {
        for bad in [
            &b"x\r\n"[..],
            b"5\r\nhelloXX",
            b"\r\n",
            b"5\nhello",
            b"FFFFFFFFFFFFFFFFF\r\n",
        ] {
            assert_eq!(
                ChunkedScanner::default().scan(bad),
                Err(ChunkedError),
                "{bad:?}"
            );
        }
    }
}
