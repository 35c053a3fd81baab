//! What the byte-stream origins say: each is a small state machine over the
//! bytes read so far, driven by the shared event loop.

use super::{OriginKind, BANNER};

/// The per-connection behaviour of a byte-stream origin.
pub(crate) trait Protocol: Send {
    /// Bytes sent as soon as the connection is accepted.
    fn greeting(&self) -> &[u8] {
        &[]
    }

    /// Consumes a prefix of `input`, appends the replies to `output` and
    /// returns how many bytes it consumed; the rest is offered again with
    /// more bytes behind it. `Err` closes the connection.
    fn on_data(&mut self, input: &[u8], output: &mut Vec<u8>) -> Result<usize, ()>;

    /// The last reply is in `output` (HTTP/1 `Connection: close`): the
    /// connection closes once it is written, so a client asking for a
    /// connection per request gets one, as from a real server.
    fn finished(&self) -> bool {
        false
    }
}

pub(crate) type Factory = Box<dyn Fn() -> Box<dyn Protocol> + Send>;

pub(crate) fn factory(kind: OriginKind, response_size: usize) -> Factory {
    match kind {
        OriginKind::Sink => Box::new(|| Box::new(Sink)),
        OriginKind::Echo => Box::new(|| Box::new(Echo { greeting: &[] })),
        OriginKind::Banner => Box::new(|| Box::new(Echo { greeting: BANNER })),
        OriginKind::Http1 => {
            let keep_alive: std::sync::Arc<[u8]> = http1_response(response_size, false).into();
            let last: std::sync::Arc<[u8]> = http1_response(response_size, true).into();
            Box::new(move || {
                Box::new(Http1 {
                    keep_alive: keep_alive.clone(),
                    last: last.clone(),
                    closing: false,
                })
            })
        }
        OriginKind::H2 => unreachable!("the h2 origin runs on tokio, not the event loop"),
    }
}

struct Sink;

impl Protocol for Sink {
    fn on_data(&mut self, input: &[u8], _output: &mut Vec<u8>) -> Result<usize, ()> {
        Ok(input.len())
    }
}

struct Echo {
    greeting: &'static [u8],
}

impl Protocol for Echo {
    fn greeting(&self) -> &[u8] {
        self.greeting
    }

    fn on_data(&mut self, input: &[u8], output: &mut Vec<u8>) -> Result<usize, ()> {
        output.extend_from_slice(input);
        Ok(input.len())
    }
}

/// A keep-alive HTTP/1.1 server with one fixed response; pipelining works
/// because every complete request in the buffer is answered in order.
struct Http1 {
    keep_alive: std::sync::Arc<[u8]>,
    /// The same response with `connection: close`, to a request that asked
    /// for it.
    last: std::sync::Arc<[u8]>,
    /// A request asked to close: nothing after it is answered.
    closing: bool,
}

pub(crate) fn http1_response(body_bytes: usize, close: bool) -> Vec<u8> {
    let connection = if close { "connection: close\r\n" } else { "" };
    let mut response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {body_bytes}\r\n{connection}\r\n"
    )
    .into_bytes();
    response.resize(response.len() + body_bytes, b'x');
    response
}

impl Protocol for Http1 {
    fn on_data(&mut self, input: &[u8], output: &mut Vec<u8>) -> Result<usize, ()> {
        let mut consumed = 0;
        loop {
            if self.closing {
                return Ok(input.len());
            }
            let rest = &input[consumed..];
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut headers);
            let head_len = match request.parse(rest) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => return Ok(consumed),
                Err(_) => return Err(()),
            };
            let body_len = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| {
                    std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                })
                .unwrap_or(Some(0))
                .ok_or(())?;
            let total: usize = head_len + body_len;
            if rest.len() < total {
                return Ok(consumed);
            }
            self.closing = request.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("connection")
                    && h.value
                        .split(|&b| b == b',')
                        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
            });
            let response = if self.closing {
                &self.last
            } else {
                &self.keep_alive
            };
            output.extend_from_slice(response);
            consumed += total;
        }
    }

    fn finished(&self) -> bool {
        self.closing
    }
}
