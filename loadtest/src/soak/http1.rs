//! HTTP/1.1 framing for the soak's own origin and clients: a head read up to
//! its blank line, bodies by `content-length` or chunked, read into a
//! [`StreamHash`] and never held whole. Deliberately plain blocking code: it
//! is the reference ringside is checked against, so it must be easy to trust.

use super::payload::{Payload, StreamHash};
use std::io::{self, BufRead, Write};

/// Most bytes a head may take; the soak's heads are a few hundred.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Body bytes written per `write` call (a multiple of 8, see [`Payload`]).
pub const PIECE_BYTES: usize = 16 * 1024;

/// A parsed request or response head.
#[derive(Debug, Default)]
pub struct Head {
    /// Request: method and path. Response: the status code in `code`.
    pub method: String,
    pub path: String,
    pub code: u16,
    pub headers: Vec<(String, String)>,
}

/// How a body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn framing(&self) -> io::Result<Framing> {
        if self
            .header("transfer-encoding")
            .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
        {
            return Ok(Framing::Chunked);
        }
        match self.header("content-length") {
            Some(value) => value.trim().parse().map(Framing::Length).map_err(invalid),
            None => Ok(Framing::Length(0)),
        }
    }
}

fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

/// Reads a head; `Ok(None)` on a clean end of stream before its first byte.
pub fn read_head(reader: &mut impl BufRead, request: bool) -> io::Result<Option<Head>> {
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        if reader.read_until(b'\n', &mut raw)? == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if raw[before..] == *b"\r\n" && before > 0 || raw.len() > MAX_HEAD_BYTES {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut head = Head::default();
    let parsed = if request {
        let mut parsed = httparse::Request::new(&mut headers);
        let status = parsed.parse(&raw).map_err(invalid)?;
        head.method = parsed.method.unwrap_or_default().to_owned();
        head.path = parsed.path.unwrap_or_default().to_owned();
        (status, parsed.headers.to_vec())
    } else {
        let mut parsed = httparse::Response::new(&mut headers);
        let status = parsed.parse(&raw).map_err(invalid)?;
        head.code = parsed.code.unwrap_or_default();
        (status, parsed.headers.to_vec())
    };
    if parsed.0.is_partial() {
        return Err(invalid("head over 16 KiB or cut"));
    }
    head.headers = parsed
        .1
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Ok(Some(head))
}

/// Reads a body into `hash`. `stop_after` cuts the read short after that
/// many bytes (a client about to reset); `Ok(true)` when the body ended.
pub fn read_body(
    reader: &mut impl BufRead,
    framing: Framing,
    hash: &mut StreamHash,
    stop_after: Option<u64>,
) -> io::Result<bool> {
    let limit = stop_after.unwrap_or(u64::MAX);
    match framing {
        Framing::Length(len) => {
            let take = len.min(limit);
            copy_exact(reader, take, hash)?;
            Ok(take == len)
        }
        Framing::Chunked => {
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let size_text = line.trim_end().split(';').next().unwrap_or_default();
                let size = u64::from_str_radix(size_text, 16).map_err(invalid)?;
                if size == 0 {
                    // Trailers (none expected), then the final blank line.
                    loop {
                        line.clear();
                        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                            return Ok(true);
                        }
                    }
                }
                copy_exact(reader, size, hash)?;
                if hash.len() >= limit {
                    return Ok(false);
                }
                let mut crlf = [0u8; 2];
                reader.read_exact(&mut crlf)?;
                if crlf != *b"\r\n" {
                    return Err(invalid("chunk not followed by CRLF"));
                }
            }
        }
    }
}

fn copy_exact(reader: &mut impl BufRead, mut left: u64, hash: &mut StreamHash) -> io::Result<()> {
    while left > 0 {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let take = available.len().min(left as usize);
        hash.update(&available[..take]);
        reader.consume(take);
        left -= take as u64;
    }
    Ok(())
}

/// Writes a payload as a body. `stop_after` stops after about that many
/// bytes (a client about to reset); `pace` sleeps between pieces (a slow
/// client, kept in flight across the drain).
pub fn write_body(
    writer: &mut impl Write,
    framing: Framing,
    mut payload: Payload,
    stop_after: Option<u64>,
    pace: Option<std::time::Duration>,
) -> io::Result<()> {
    let mut buffer = vec![0u8; PIECE_BYTES];
    let mut written = 0u64;
    loop {
        if stop_after.is_some_and(|limit| written >= limit) {
            return writer.flush();
        }
        let piece = payload.next(&mut buffer);
        if piece.is_empty() {
            break;
        }
        if framing == Framing::Chunked {
            write!(writer, "{:x}\r\n", piece.len())?;
            writer.write_all(piece)?;
            writer.write_all(b"\r\n")?;
        } else {
            writer.write_all(piece)?;
        }
        written += piece.len() as u64;
        if let Some(pause) = pace {
            writer.flush()?;
            std::thread::sleep(pause);
        }
    }
    if framing == Framing::Chunked {
        writer.write_all(b"0\r\n\r\n")?;
    }
    writer.flush()
}

/// The header line that announces a body's framing.
pub fn framing_header(framing: Framing) -> String {
    match framing {
        Framing::Length(len) => format!("content-length: {len}\r\n"),
        Framing::Chunked => "transfer-encoding: chunked\r\n".to_owned(),
    }
}
