//! Real clients in front of ringside: raw TCP (echo, half-close, resets),
//! HTTP/1.1 (a one-shot GET, a keep-alive client that reads each framing,
//! and curl), and HTTP/2 (`h2`). They assert on bytes, so they read
//! responses themselves instead of trusting a library to smooth them over.

pub mod h2;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Sends `data` and reads the echo concurrently; returns what came back.
pub fn echo_through(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    echo_over(&TcpStream::connect(addr).unwrap(), data)
}

/// `echo_through` on a connection already open: sends `data`, half-closes,
/// and reads to the end at the same time, so neither side's buffers fill.
pub fn echo_over(stream: &TcpStream, data: &[u8]) -> Vec<u8> {
    thread::scope(|scope| {
        scope.spawn(|| {
            let mut writer = stream;
            writer.write_all(data).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut received = Vec::new();
        let mut reader = stream;
        reader.read_to_end(&mut received).unwrap();
        received
    })
}

/// Sends `data` on a connection that stays open and reads as many bytes
/// back (from an echo origin); panics if they do not come within
/// `WAIT_LIMIT`.
pub fn echo_and_keep_open(stream: &TcpStream, data: &[u8]) -> Vec<u8> {
    stream.set_read_timeout(Some(super::WAIT_LIMIT)).unwrap();
    let (mut writer, mut reader) = (stream, stream);
    writer.write_all(data).unwrap();
    let mut received = vec![0; data.len()];
    reader.read_exact(&mut received).unwrap();
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

/// One HTTP/1.1 GET with `Connection: close`; returns status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, "GET", path)
}

/// One bodiless HTTP/1.1 request with `Connection: close`; returns status
/// and body.
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
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
pub fn read_response(stream: &mut BufReader<TcpStream>, head_request: bool) -> Option<Response> {
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

/// Keep-alive HTTP/1.1 clients asking for `/size/100` in a loop, each
/// response a 200, while a test changes what is behind the route.
pub struct KeepAliveLoad {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<usize>>,
}

impl KeepAliveLoad {
    pub fn start(addr: SocketAddr, clients: usize) -> KeepAliveLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|_| {
                let stop = stop.clone();
                thread::spawn(move || {
                    let mut client = HttpClient::connect(addr);
                    let mut answered = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let response = client.get("/size/100").expect("an answer");
                        assert_eq!(response.status, 200);
                        answered += 1;
                    }
                    answered
                })
            })
            .collect();
        KeepAliveLoad { stop, clients }
    }

    /// Stops the clients; each must have been answered at least once.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            assert!(client.join().unwrap() > 0, "a client got no answer");
        }
    }
}

/// One keep-alive HTTP/1.1 client connection.
pub struct HttpClient {
    pub reader: BufReader<TcpStream>,
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
            reader: BufReader::new(stream),
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

    /// Everything the proxy sends until it closes the connection (the read
    /// timeout set in `connect` bounds the wait).
    pub fn rest(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).unwrap();
        rest
    }
}

/// What curl printed: the body on stdout, and the exchange on stderr when
/// asked for with `-v`.
pub struct CurlOutput {
    pub body: Vec<u8>,
    pub stderr: String,
}

impl CurlOutput {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a text body")
    }
}

/// Runs curl (silent, bounded to 60 s) with `args`; panics with its stderr
/// if it fails.
pub fn curl(args: &[&str]) -> CurlOutput {
    let output = Command::new("curl")
        .args(["-s", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it)");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "curl {args:?}: {stderr}");
    CurlOutput {
        body: output.stdout,
        stderr,
    }
}

/// Sends 1 MiB (from `seed`) as one binary message on `socket`, which must
/// come back whole, then closes the session and reads it to its end.
pub fn websocket_binary_echo_and_close<S: std::io::Read + std::io::Write>(
    socket: &mut tungstenite::WebSocket<S>,
    seed: u64,
) {
    let blob = super::random_bytes(1 << 20, seed);
    socket
        .send(tungstenite::Message::binary(blob.clone()))
        .unwrap();
    assert_eq!(socket.read().unwrap().into_data().as_ref(), blob.as_slice());
    socket.close(None).unwrap();
    while socket.read().is_ok() {}
}

/// The first flight of a TLS 1.3 client for `sni`, as rustls (ring) sends
/// it: a ClientHello for detection to read, nothing to finish a handshake
/// with.
pub fn tls_client_hello(sni: &str) -> Vec<u8> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut client = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    hello
}

/// Passes `count` TLS ClientHellos, each naming its own server
/// (`host-N.example`), through `route` to an echo origin, four clients at
/// a time; returns once every connection has ended.
pub fn tls_hellos_through(route: SocketAddr, count: usize) {
    thread::scope(|scope| {
        for client in 0..4 {
            scope.spawn(move || {
                for n in (client..count).step_by(4) {
                    let hello = tls_client_hello(&format!("host-{n}.example"));
                    assert_eq!(echo_through(route, &hello), hello);
                }
            });
        }
    });
}

/// Connects to `addr` and reads a server's SMTP greeting there; how long it
/// took. A proxy in between must not hold it until the detect timeout.
pub fn banner_wait(addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(super::WAIT_LIMIT)).unwrap();
    let mut banner = vec![0; super::SMTP_BANNER.len()];
    stream.read_exact(&mut banner).unwrap();
    assert_eq!(banner, super::SMTP_BANNER);
    started.elapsed()
}
