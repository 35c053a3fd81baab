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
}

pub(crate) type Factory = Box<dyn Fn() -> Box<dyn Protocol> + Send>;

pub(crate) fn factory(kind: OriginKind, response_size: usize) -> Factory {
    match kind {
        OriginKind::Sink => Box::new(|| Box::new(Sink)),
        OriginKind::Echo => Box::new(|| Box::new(Echo { greeting: &[] })),
        OriginKind::Banner => Box::new(|| Box::new(Echo { greeting: BANNER })),
        OriginKind::Http1 => {
            let response: std::sync::Arc<[u8]> = http1_response(response_size).into();
            Box::new(move || {
                Box::new(Http1 {
                    response: response.clone(),
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
    response: std::sync::Arc<[u8]>,
}

pub(crate) fn http1_response(body_bytes: usize) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {body_bytes}\r\n\r\n"
    )
    .into_bytes();
    response.resize(response.len() + body_bytes, b'x');
    response
}

impl Protocol for Http1 {
    fn on_data(&mut self, input: &[u8], output: &mut Vec<u8>) -> Result<usize, ()> {
        let mut consumed = 0;
        loop {
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
            output.extend_from_slice(&self.response);
            consumed += total;
        }
    }
}
