//! Shared test support: the built `ringside` binary as a child process,
//! real origins on 127.0.0.1:0, and a scraper for the admin endpoints.
//! Readiness comes from the `listening ...` lines ringside prints once its
//! sockets are bound, never from sleeping.

#![allow(dead_code)]

pub mod h2;
pub mod http;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ringside");

/// A running ringside, killed when dropped.
pub struct Ringside {
    child: Child,
    pub admin: SocketAddr,
    pub routes: Vec<SocketAddr>,
    /// Held so the child never sees EPIPE on stdout.
    _stdout: BufReader<ChildStdout>,
}

impl Ringside {
    /// Starts ringside with `args` plus a port-0 admin address, and waits
    /// for its `listening` lines.
    pub fn start(args: &[&str]) -> Ringside {
        Self::start_with(args, &[])
    }

    /// One shard with one route to `upstreams` (comma-separated), as most
    /// tests want it.
    pub fn routing_to(upstreams: impl std::fmt::Display) -> Ringside {
        let route = format!("127.0.0.1:0={upstreams}");
        Self::start(&["--route", &route, "--shards", "1"])
    }

    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Ringside {
        let mut command = Command::new(BIN);
        command
            .args(["--admin-addr", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("ringside starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut admin, mut routes) = (None, Vec::new());
        let mut line = String::new();
        // Route lines come first; the admin line is the last one.
        while admin.is_none() {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!("ringside exited before listening: {:?}", child.wait());
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["listening", "admin", addr] => admin = Some(addr.parse().unwrap()),
                ["listening", "route", addr, ..] => routes.push(addr.parse().unwrap()),
                _ => {}
            }
        }
        Ringside {
            child,
            admin: admin.unwrap(),
            routes,
            _stdout: stdout,
        }
    }

    pub fn route(&self) -> SocketAddr {
        self.routes[0]
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.admin, path)
    }

    pub fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        Metrics(body)
    }

    /// Polls /ready until 200 (bounded).
    pub fn wait_ready(&self) {
        eventually("ringside ready", || self.get("/ready").0 == 200);
    }

    /// Waits until no client connection is open, so counters are final
    /// (pooled upstream HTTP connections may stay open by design).
    pub fn wait_idle(&self) -> Metrics {
        let mut last = None;
        eventually("all connections closed", || {
            let metrics = self.metrics();
            let idle = metrics.sum("tcp_open_connections", &[("peer", "src")]) == 0.0;
            last = Some(metrics);
            idle
        });
        last.unwrap()
    }
}

impl Drop for Ringside {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of one scrape.
pub struct Metrics(pub String);

impl Metrics {
    /// Sum of every sample of `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (metric, label_text) = match series.split_once('{') {
                    Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                if metric != name {
                    return None;
                }
                let all = labels.iter().all(|(k, v)| {
                    label_text
                        .split(',')
                        .any(|pair| pair == format!("{k}=\"{v}\""))
                });
                all.then(|| value.parse::<f64>().ok()).flatten()
            })
            .sum()
    }
}

/// Retries `check` every 10 ms for up to 10 s; panics naming `what`.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// One HTTP/1.1 GET with `Connection: close`; returns status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// An origin server on 127.0.0.1:0 that runs `handler` on a thread per
/// connection, and counts the connections it accepted.
pub struct Origin {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
}

impl Origin {
    pub fn start(handler: fn(TcpStream)) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                thread::spawn(move || handler(stream));
            }
        });
        Origin { addr, accepted }
    }

    /// Echoes every byte back; answers the client's FIN with its own.
    pub fn echo() -> Origin {
        Origin::start(|mut stream| {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = stream.shutdown(Shutdown::Write);
        })
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// An address nothing listens on (bound, then closed at once).
pub fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Sends `data` and reads the echo concurrently; returns what came back.
pub fn echo_through(addr: SocketAddr, data: Arc<Vec<u8>>) -> Vec<u8> {
    let stream = TcpStream::connect(addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut received = Vec::new();
    (&stream).read_to_end(&mut received).unwrap();
    sender.join().unwrap();
    received
}

/// True if reading `stream` ends in a reset (or an abrupt EOF) rather than
/// data.
pub fn ends_in_reset(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(err) if err.kind() == ErrorKind::ConnectionReset => return true,
            Err(err) => panic!("unexpected error: {err}"),
        }
    }
}

/// Closes with RST instead of FIN.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

/// A slot a handler thread can report into.
pub type Report<T> = Arc<Mutex<Option<T>>>;

/// A parsed HTTP/1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response from `stream` (content-length, chunked, or to EOF;
/// no body for HEAD and 1xx/204/304). `None` if the connection ended
/// before a whole response.
pub fn read_response(
    stream: &mut std::io::BufReader<TcpStream>,
    head_request: bool,
) -> Option<Response> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if stream.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        let end = line == b"\r\n";
        head.extend_from_slice(&line);
        if end {
            break;
        }
    }
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut slots);
    parsed.parse(&head).ok()?;
    let status = parsed.code?;
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Some(response);
    }
    if response.header("transfer-encoding").is_some() {
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).ok()?;
            let size = usize::from_str_radix(line.trim(), 16).ok()?;
            let mut chunk = vec![0u8; size + 2];
            stream.read_exact(&mut chunk).ok()?;
            if size == 0 {
                return Some(response);
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    }
    match response.header("content-length") {
        Some(len) => {
            let mut body = vec![0u8; len.trim().parse().ok()?];
            stream.read_exact(&mut body).ok()?;
            response.body = body;
        }
        None => {
            stream.read_to_end(&mut response.body).ok()?;
        }
    }
    Some(response)
}

/// One keep-alive HTTP/1.1 client connection.
pub struct HttpClient {
    pub reader: std::io::BufReader<TcpStream>,
    writer: TcpStream,
}

impl HttpClient {
    pub fn connect(addr: SocketAddr) -> HttpClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        HttpClient {
            writer: stream.try_clone().unwrap(),
            reader: std::io::BufReader::new(stream),
        }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.writer.write_all(raw).unwrap();
    }

    pub fn get(&mut self, path: &str) -> Option<Response> {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n").as_bytes());
        read_response(&mut self.reader, false)
    }

    pub fn read(&mut self, head_request: bool) -> Option<Response> {
        read_response(&mut self.reader, head_request)
    }
}
