//! http1: keep-alive GETs over `connections` connections, one thread each,
//! closed loop (the next request leaves when the response is complete), so
//! the figure is the request rate the path sustains and the latency is that
//! of a saturated path (no coordinated-omission correction applies).

use super::latency;
use super::{join_all, LoadParams, Measurement};
use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub(super) fn run(params: &LoadParams, target: SocketAddr) -> anyhow::Result<Measurement> {
    let connections = params.connections.max(1);
    let start = Instant::now();
    let deadline = start + params.duration;
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|_| scope.spawn(move || client(target, deadline)))
            .collect();
        join_all(handles)
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Measurement::requests(
        results,
        elapsed,
        ("connections", connections as f64),
    ))
}

fn client(
    target: SocketAddr,
    deadline: Instant,
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, u64)> {
    let mut stream = TcpStream::connect(target)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let request = format!("GET / HTTP/1.1\r\nhost: {target}\r\nuser-agent: loadtest\r\n\r\n");
    let mut reader = ResponseReader::default();
    let mut histogram = latency::new_histogram();
    let mut count = 0;
    while Instant::now() < deadline {
        let sent = Instant::now();
        stream.write_all(request.as_bytes())?;
        let status = reader.read_response(&mut stream)?;
        if status != 200 {
            bail!("origin answered {status}");
        }
        latency::record(&mut histogram, sent.elapsed());
        count += 1;
    }
    Ok((histogram, count))
}

/// Reads one response at a time off a keep-alive connection, keeping any
/// bytes that arrived past its end for the next one.
#[derive(Default)]
pub(crate) struct ResponseReader {
    buffer: Vec<u8>,
    filled: usize,
}

impl ResponseReader {
    /// Reads a whole response (head and `content-length` body) and returns its status.
    pub(crate) fn read_response(&mut self, stream: &mut impl Read) -> anyhow::Result<u16> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) =
                response.parse(&self.buffer[..self.filled])?
            {
                let body_len: usize = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .context("response without content-length")
                    .and_then(|h| Ok(std::str::from_utf8(h.value)?.trim().parse()?))?;
                let status = response.code.unwrap_or(0);
                let total = head_len + body_len;
                while self.filled < total {
                    self.fill(stream, total)?;
                }
                self.buffer.copy_within(total..self.filled, 0);
                self.filled -= total;
                return Ok(status);
            }
            self.fill(stream, self.filled + 4096)?;
        }
    }

    fn fill(&mut self, stream: &mut impl Read, at_least: usize) -> anyhow::Result<()> {
        if self.buffer.len() < at_least.max(self.filled + 4096) {
            self.buffer.resize(at_least.max(self.filled + 4096), 0);
        }
        let read = stream.read(&mut self.buffer[self.filled..])?;
        if read == 0 {
            bail!("connection closed mid-response");
        }
        self.filled += read;
        Ok(())
    }
}
