//! A test double of a stock linkerd2-proxy's inbound direct port (4143),
//! behaving as `linkerd/app/inbound/src/direct.rs` does at linkerd2-proxy
//! 29637b6 (2026-08-21; the same since the transport header gained its
//! session protocol):
//!
//! - mTLS only: a client certificate of the trust anchors, ALPN
//!   `transport.l5d.io/v1`, then the transport header;
//! - `TransportHeader { port, name: None, protocol: None }` is `LocalTcp`:
//!   the bytes go to the application's `port` as they are, with no
//!   protocol detection;
//! - `protocol: Some(HTTP/1)` is `LocalHttp`: HTTP/1 to the application,
//!   which for one HTTP/1 application is the bytes as they are too;
//! - `protocol: Some(HTTP/2)` is `LocalHttp` over HTTP/2: each stream marked
//!   `l5d-orig-proto` reaches the application as the HTTP/1 request it was.
//!
//! The application is on loopback (the pod's address, in Linkerd).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use ringside::tls::{Decoded, SessionProtocol, TransportHeader};

use super::clients::h2::runtime;
use super::TempDir;

pub struct LinkerdInbound {
    pub addr: SocketAddr,
    /// Connections whose header declared no protocol: forwarded opaque.
    pub opaque: Arc<AtomicUsize>,
    /// Connections whose header declared HTTP/2.
    pub http2: Arc<AtomicUsize>,
}

impl LinkerdInbound {
    /// Serves with the identity minted into `dir/folder`.
    pub fn start(dir: &TempDir, folder: &str) -> LinkerdInbound {
        let config = Arc::new(server_config(dir, folder));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let double = LinkerdInbound {
            addr,
            opaque: Arc::default(),
            http2: Arc::default(),
        };
        let (opaque, http2) = (double.opaque.clone(), double.http2.clone());
        thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (config, opaque, http2) = (config.clone(), opaque.clone(), http2.clone());
                thread::spawn(move || serve(tcp, config, &opaque, &http2));
            }
        });
        double
    }
}

fn server_config(dir: &TempDir, folder: &str) -> rustls::ServerConfig {
    let (roots, chain, key) = super::identity::pem_identity(dir, folder);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"transport.l5d.io/v1".to_vec()];
    config
}

fn serve(
    mut tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    opaque: &AtomicUsize,
    http2: &AtomicUsize,
) {
    let mut tls = rustls::ServerConnection::new(config).unwrap();
    // The handshake, then the header, blocking.
    let mut header = Vec::new();
    let (header, rest) = loop {
        if tls.complete_io(&mut tcp).is_err() {
            return;
        }
        let mut chunk = [0u8; 4096];
        match tls.reader().read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => header.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == ErrorKind::WouldBlock => continue,
            Err(_) => return,
        }
        match TransportHeader::decode(&header) {
            Ok(Decoded::Complete {
                header: h,
                consumed,
            }) => break (h, header[consumed..].to_vec()),
            Ok(Decoded::Incomplete) => continue,
            Err(_) => return,
        }
    };
    let app = SocketAddr::from(([127, 0, 0, 1], header.port));
    let local = match header.protocol {
        None | Some(SessionProtocol::Http1) => {
            opaque.fetch_add(1, Ordering::SeqCst);
            TcpStream::connect(app)
        }
        Some(SessionProtocol::Http2) => {
            http2.fetch_add(1, Ordering::SeqCst);
            TcpStream::connect(downgrading(app))
        }
    };
    let Ok(local) = local else { return };
    relay(tcp, tls, rest, local);
}

/// Carries plaintext between the TLS session and `local` both ways until
/// both ends are done, on this one thread (a session is not shared across
/// threads), polling both sides.
fn relay(tcp: TcpStream, mut tls: rustls::ServerConnection, early: Vec<u8>, mut local: TcpStream) {
    let mut tcp = tcp;
    tcp.set_nonblocking(true).unwrap();
    local.set_nonblocking(true).unwrap();
    let _ = local.write_all(&early);
    let (mut from_peer_done, mut from_local_done) = (false, false);
    let mut buf = vec![0u8; 64 * 1024];
    while !(from_peer_done && from_local_done) {
        let mut moved = false;
        // Peer -> application.
        match tls.read_tls(&mut tcp) {
            Ok(0) => from_peer_done = true,
            Ok(_) => {
                moved = true;
                if tls.process_new_packets().is_err() {
                    return;
                }
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
        loop {
            match tls.reader().read(&mut buf) {
                Ok(0) => {
                    from_peer_done = true;
                    let _ = local.shutdown(Shutdown::Write);
                    break;
                }
                Ok(n) => {
                    moved = true;
                    local.set_nonblocking(false).unwrap();
                    let written = local.write_all(&buf[..n]);
                    local.set_nonblocking(true).unwrap();
                    if written.is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        // Application -> peer.
        if !from_local_done {
            match local.read(&mut buf) {
                Ok(0) => {
                    from_local_done = true;
                    tls.send_close_notify();
                }
                Ok(n) => {
                    moved = true;
                    tls.writer().write_all(&buf[..n]).unwrap();
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
        while tls.wants_write() {
            match tls.write_tls(&mut tcp) {
                Ok(_) => moved = true,
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return,
            }
        }
        if !moved {
            // Polling pace: nothing moved either way.
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// An h2c server that passes each `l5d-orig-proto` stream to `app` as the
/// HTTP/1 request it was (one connection each, `Connection: close`), and
/// answers with the application's response, marked the same way: what
/// Linkerd's inbound HTTP stack does with such a stream. Its address.
fn downgrading(app: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        runtime().block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (socket, _) = listener.accept().await.unwrap();
            let mut connection = h2::server::handshake(socket).await.unwrap();
            while let Some(Ok((request, respond))) = connection.accept().await {
                tokio::task::spawn_local(downgrade(app, request, respond));
            }
        })
    });
    addr
}

async fn downgrade(
    app: SocketAddr,
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let (parts, mut body) = request.into_parts();
    let mut bytes = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let version = parts
        .headers
        .get("l5d-orig-proto")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("HTTP/1.1")
        .to_string();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let host = parts.uri.authority().map_or("app", |a| a.as_str());
    let mut head = format!("{} {path} {version}\r\nhost: {host}\r\n", parts.method);
    for (name, value) in &parts.headers {
        if name != "l5d-orig-proto" && name != "host" {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
        }
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        bytes.len()
    ));
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(app).ok()?;
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(&bytes).ok()?;
        read_response_bytes(&mut stream)
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default();
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(at)) = parsed.parse(&answer) else {
        respond.send_reset(h2::Reason::INTERNAL_ERROR);
        return;
    };
    let mut response = http::Response::builder()
        .status(parsed.code.unwrap_or(502))
        .header("l5d-orig-proto", "HTTP/1.1");
    for header in parsed.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        if !["connection", "transfer-encoding", "keep-alive"].contains(&name.as_str()) {
            response = response.header(name, header.value);
        }
    }
    let body = Bytes::copy_from_slice(&answer[at..]);
    let Ok(mut stream) = respond.send_response(response.body(()).unwrap(), body.is_empty()) else {
        return;
    };
    if !body.is_empty() {
        let _ = stream.send_data(body, true);
    }
}

/// One HTTP/1 response, framed by its `content-length` (none: until the
/// close), whether or not the application honours `connection: close`.
fn read_response_bytes(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(at)) = parsed.parse(&answer) {
            let length = parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                });
            if let Some(length) = length {
                while answer.len() < at + length {
                    let n = stream.read(&mut chunk).ok()?;
                    if n == 0 {
                        return None;
                    }
                    answer.extend_from_slice(&chunk[..n]);
                }
                answer.truncate(at + length);
                return Some(answer);
            }
            stream.read_to_end(&mut answer).ok()?;
            return Some(answer);
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
}
