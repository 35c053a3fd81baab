//! The demo's few requests to the proxies' admin servers, as a user's curl
//! would make them: a scrape of `/metrics`, and `POST /shutdown`, which
//! drains a proxy as SIGINT does (the demo's way to stop after a failure).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The admin server answers in milliseconds; it bounds its own requests
/// at 5 s (README, "Admin endpoints").
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of `METHOD path` on `admin`, which must answer 200.
pub fn request(admin: SocketAddr, method: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&admin, ADMIN_TIMEOUT)
        .with_context(|| format!("connecting to the admin server {admin}"))?;
    stream.set_read_timeout(Some(ADMIN_TIMEOUT))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {admin}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .with_context(|| format!("reading {admin}{path}"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "{method} {admin}{path}: {}",
        head.lines().next().unwrap_or("no answer")
    );
    Ok(body.to_string())
}

pub fn metrics(admin: SocketAddr) -> anyhow::Result<String> {
    request(admin, "GET", "/metrics")
}

/// Starts `admin`'s proxy's drain; a proxy already gone is not an error.
pub fn shutdown(admin: SocketAddr) {
    if let Err(err) = request(admin, "POST", "/shutdown") {
        tracing::debug!(error = %err, "shutdown");
    }
}

/// The sum of every sample of `name` whose labels include all of `labels`,
/// in a page of Prometheus text.
pub fn sum(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let samples = page.lines().filter(|line| !line.starts_with('#'));
    let matching = samples.filter_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = series.split_once('{').unwrap_or((series, ""));
        let pairs: Vec<&str> = label_text.trim_end_matches('}').split(',').collect();
        let all = labels
            .iter()
            .all(|(key, value)| pairs.contains(&format!("{key}=\"{value}\"").as_str()));
        (metric == name && all).then(|| value.parse::<f64>().ok())?
    });
    matching.sum()
}

/// Scrapes `admin` until `done` holds for its page, at most `limit`; the
/// last page either way, and whether `done` held.
pub fn metrics_when(
    admin: SocketAddr,
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<(String, bool)> {
    let deadline = Instant::now() + limit;
    loop {
        let page = metrics(admin)?;
        if done(&page) {
            return Ok((page, true));
        }
        if Instant::now() >= deadline {
            return Ok((page, false));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
