//! A real HTTP/1.1 origin for the tests, one thread per connection, with
//! routes that exercise each part of the proxy:
//! `GET /size/N` (N bytes, content-length), `GET /chunked/N` (chunked),
//! `GET /status/NNN`, `GET /close/N` (close-delimited body), `GET
//! /truncate/N` (promises N bytes, sends half), `POST /upload` (answers
//! `upload_answer` of the body, content-length or chunked, honouring
//! `Expect: 100-continue`), `HEAD` of any of them, and `Upgrade: echo`
//! (101, then echoes bytes). Every response carries `x-origin: <name>`,
//! and `delay` slows every response down. It counts the connections it
//! accepted and the requests it read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub struct HttpOrigin {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
}

impl HttpOrigin {
    pub fn start(name: &'static str, delay: Duration) -> HttpOrigin {
        HttpOrigin::start_on("127.0.0.1:0", name, delay)
    }

    /// `start` on another address (a network namespace's).
    pub fn start_on(bind: &str, name: &'static str, delay: Duration) -> HttpOrigin {
        let listener = TcpListener::bind(bind).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (counter, accepted) = (requests.clone(), connections.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                accepted.fetch_add(1, Ordering::SeqCst);
                let counter = counter.clone();
                thread::spawn(move || serve(stream, name, delay, &counter));
            }
        });
        HttpOrigin {
            addr,
            requests,
            connections,
        }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// What `POST /upload` answers for `body`: its length and hash, so a test
/// checks a large upload arrived byte-exact without the origin keeping it.
pub fn upload_answer(body: &[u8]) -> String {
    summarize_upload(body.len() as u64, fnv(body, FNV_START))
}

fn summarize_upload(len: u64, hash: u64) -> String {
    format!("len={len} fnv={hash:x}")
}

/// FNV-1a, to check bodies without keeping them.
fn fnv(bytes: &[u8], mut hash: u64) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x100_0000_01b3);
    }
    hash
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The body `/size/N` and `/chunked/N` send: byte i is `i % 251`.
pub fn body_byte(i: u64) -> u8 {
    (i % 251) as u8
}

fn serve(stream: TcpStream, name: &str, delay: Duration, counter: &AtomicUsize) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let end = line == b"\r\n";
            head.extend_from_slice(&line);
            if end {
                break;
            }
        }
        counter.fetch_add(1, Ordering::SeqCst);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        if request.parse(&head).is_err() {
            let _ = writer.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
            return;
        }
        let method = request.method.unwrap().to_string();
        let path = request.path.unwrap().to_string();
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).to_lowercase())
        };
        let (upgrade, expect, te, cl) = (
            header("upgrade"),
            header("expect"),
            header("transfer-encoding"),
            header("content-length"),
        );
        if !delay.is_zero() {
            thread::sleep(delay);
        }
        let head_only = method == "HEAD";
        let respond = |writer: &mut TcpStream, status: &str, body: &[u8], extra: &str| {
            let mut out = format!(
                "HTTP/1.1 {status}\r\nx-origin: {name}\r\ncontent-length: {}\r\n{extra}\r\n",
                body.len()
            )
            .into_bytes();
            if !head_only {
                out.extend_from_slice(body);
            }
            writer.write_all(&out)
        };

        if upgrade.as_deref() == Some("echo") {
            let _ = writer.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\n",
            );
            let _ = std::io::copy(&mut reader, &mut writer);
            return;
        }
        let result = if path == "/upload" {
            if expect.as_deref() == Some("100-continue") {
                let _ = writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            let (len, hash) = match (te.as_deref(), cl) {
                (Some("chunked"), _) => read_chunked(&mut reader),
                (_, Some(cl)) => {
                    let len: u64 = cl.trim().parse().unwrap();
                    (len, read_exact_len(&mut reader, len, FNV_START))
                }
                _ => (0, FNV_START),
            };
            respond(
                &mut writer,
                "200 OK",
                summarize_upload(len, hash).as_bytes(),
                "",
            )
        } else if let Some(n) = path.strip_prefix("/size/") {
            let body: Vec<u8> = (0..n.parse::<u64>().unwrap()).map(body_byte).collect();
            respond(&mut writer, "200 OK", &body, "")
        } else if let Some(n) = path.strip_prefix("/chunked/") {
            let total: u64 = n.parse().unwrap();
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nx-origin: {name}\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            .into_bytes();
            let mut i = 0;
            while i < total {
                let len = (total - i).min(10_000);
                out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
                out.extend((i..i + len).map(body_byte));
                out.extend_from_slice(b"\r\n");
                i += len;
                if out.len() > 1 << 20 && writer.write_all(&std::mem::take(&mut out)).is_err() {
                    return;
                }
            }
            out.extend_from_slice(b"0\r\n\r\n");
            writer.write_all(&out)
        } else if let Some(code) = path.strip_prefix("/status/") {
            respond(&mut writer, &format!("{code} Whatever"), b"", "")
        } else if let Some(n) = path.strip_prefix("/truncate/") {
            // Promises N bytes, sends half, and dies.
            let n: u64 = n.parse().unwrap();
            let mut out =
                format!("HTTP/1.1 200 OK\r\nx-origin: {name}\r\ncontent-length: {n}\r\n\r\n")
                    .into_bytes();
            out.extend((0..n / 2).map(body_byte));
            let _ = writer.write_all(&out);
            return;
        } else if let Some(n) = path.strip_prefix("/close/") {
            let body: Vec<u8> = (0..n.parse::<u64>().unwrap()).map(body_byte).collect();
            let mut out =
                format!("HTTP/1.1 200 OK\r\nx-origin: {name}\r\nconnection: close\r\n\r\n")
                    .into_bytes();
            out.extend_from_slice(&body);
            let _ = writer.write_all(&out);
            return;
        } else {
            respond(
                &mut writer,
                "200 OK",
                format!("hello from {name}").as_bytes(),
                "",
            )
        };
        if result.is_err() {
            return;
        }
    }
}

/// Reads `len` body bytes, folding them into `hash`.
fn read_exact_len(reader: &mut impl Read, len: u64, mut hash: u64) -> u64 {
    let mut left = len;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let n = reader.read(&mut buf[..left.min(65536) as usize]).unwrap();
        assert!(n > 0, "body ended early");
        hash = fnv(&buf[..n], hash);
        left -= n as u64;
    }
    hash
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> (u64, u64) {
    let (mut total, mut hash) = (0u64, FNV_START);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let size = u64::from_str_radix(line.trim().split(';').next().unwrap(), 16).unwrap();
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    return (total, hash);
                }
            }
        }
        hash = read_exact_len(reader, size, hash);
        total += size;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).unwrap();
    }
}
