//! One scrape of a ringside's `/metrics`: a plain HTTP/1.1 GET over a std
//! `TcpStream`, then the Prometheus text parsed into samples. The admin
//! server answers `connection: close` with a content length
//! (`admin/wire.rs`); `exchange`, which makes the request, serves the
//! demo's `POST /shutdown` too. Everything the remote end sends is bounded: the connect, each
//! read and write, the size of the page, and the length of a line.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

use super::parse::{parse_sample, Sample};

/// The admin server gives a client 5 s to read its answer; a scrape waits
/// as long before it gives up on a silent one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A page past this is not ringside's: README "Label bounds" measures
/// 0.8 MB per shard and TLS route at the caps, so 64 MiB leaves room for
/// 80 of them and still bounds what a stranger on the port can make us
/// hold.
const MAX_PAGE_BYTES: u64 = 64 << 20;

/// One parsed `/metrics` page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// Every sample, in page order; comments dropped.
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses Prometheus text format 0.0.4. A line that is not a sample is
    /// an error naming its number, so a wrong port says so instead of
    /// showing an empty table.
    pub fn parse(text: &str) -> anyhow::Result<Scrape> {
        let mut samples = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let sample = parse_sample(line)
                .with_context(|| format!("line {} of /metrics is not a sample", index + 1))?;
            samples.push(sample);
        }
        Ok(Scrape { samples })
    }

    /// The samples named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }
}

/// A first scrape's values by series, which a later one's counters are
/// differenced against as Prometheus' `increase` does without
/// extrapolation: a counter lower than before was reset and counts from
/// zero; a series absent before was born in the window. A hash, because a
/// page may hold thousands of series (README "Label bounds").
pub(super) struct Increase<'a> {
    before: HashMap<SeriesKey<'a>, f64>,
}

/// A series: its name and labels.
type SeriesKey<'a> = (&'a str, &'a [(String, String)]);

impl<'a> Increase<'a> {
    pub fn since(before: &'a Scrape) -> Increase<'a> {
        let series = before.samples.iter();
        let before = series
            .map(|s| ((s.name.as_str(), s.labels.as_slice()), s.value))
            .collect();
        Increase { before }
    }

    /// How much the counter `sample` grew since.
    pub fn of(&self, sample: &Sample) -> f64 {
        match self
            .before
            .get(&(sample.name.as_str(), sample.labels.as_slice()))
        {
            Some(before) if sample.value >= *before => sample.value - before,
            _ => sample.value,
        }
    }
}

/// GETs `/metrics` from the admin server at `admin` and parses it.
pub fn scrape(admin: SocketAddr) -> anyhow::Result<Scrape> {
    let body = get_metrics(admin).with_context(|| format!("no ringside admin at {admin}"))?;
    Scrape::parse(&body).with_context(|| format!("{admin} answered /metrics with something else"))
}

fn get_metrics(admin: SocketAddr) -> anyhow::Result<String> {
    body_of(&exchange(admin, "GET", "/metrics")?)
}

/// Sends `method path`, without a body, to the admin server at `admin`
/// and reads its whole answer (`connection: close`), every step bounded.
pub fn exchange(admin: SocketAddr, method: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&admin, CONNECT_TIMEOUT).map_err(plain)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {admin}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(plain)?;
    let mut answer = Vec::new();
    stream
        .take(MAX_PAGE_BYTES + 1)
        .read_to_end(&mut answer)
        .map_err(plain)?;
    if answer.len() as u64 > MAX_PAGE_BYTES {
        bail!("its answer is past {} MiB", MAX_PAGE_BYTES >> 20);
    }
    Ok(answer)
}

/// The body of a whole `connection: close` answer, checked against its
/// status and content length.
fn body_of(answer: &[u8]) -> anyhow::Result<String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(answer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => bail!("it closed before the end of its answer's head"),
        Err(err) => bail!("it does not answer HTTP/1.1: {err}"),
    };
    let status = response.code.unwrap_or(0);
    if status != 200 {
        bail!("GET /metrics answered {status}");
    }
    let body = &answer[head_len..];
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| String::from_utf8_lossy(h.value).trim().parse::<usize>())
        .transpose()
        .context("its content-length is not a number")?;
    let body = match length {
        Some(length) if body.len() < length => {
            bail!("it closed after {} of {length} bytes", body.len())
        }
        Some(length) => &body[..length],
        None => body,
    };
    String::from_utf8(body.to_vec()).context("/metrics is not UTF-8")
}

/// The I/O error's own words ("connection refused"), without Rust's
/// "(os error 111)".
fn plain(err: std::io::Error) -> anyhow::Error {
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    anyhow::anyhow!(text.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn an_unreachable_admin_says_where_and_why() {
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let err = format!("{:#}", scrape(addr).unwrap_err());
        assert_eq!(
            err,
            format!("no ringside admin at {addr}: connection refused")
        );
    }

    #[test]
    fn a_short_body_and_a_bad_status_are_errors() {
        let short = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc";
        assert!(body_of(short).unwrap_err().to_string().contains("3 of 10"));
        let missing = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert!(body_of(missing).unwrap_err().to_string().contains("404"));
        let garbled = b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\nabc";
        assert!(body_of(garbled).is_err());
        let fine = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc";
        assert_eq!(body_of(fine).unwrap(), "abc");
    }

    #[test]
    fn a_page_that_is_not_prometheus_text_names_its_line() {
        let err = Scrape::parse("a 1\n<html>\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2 of /metrics is not a sample");
    }
}
