//! TLS over a shard's socket: the handshakes (rustls through
//! futures-rustls over the glommio stream) and the stream a `Socket`
//! carries once they are done. What `tls/` decides (certificates, which
//! identities to trust) arrives here as rustls configs; this file only
//! moves bytes.
//!
//! A TLS socket cannot be spliced, so its opaque bytes take the copy path,
//! and it has no non-blocking send or recv of its own: plaintext is what
//! rustls has decrypted, which no readiness of the fd announces. The
//! `Socket` methods answer for it from what is already decrypted and
//! otherwise send the caller to the awaiting read, which always works.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::rustls::pki_types::ServerName;
use futures_rustls::rustls::{self, ClientConfig, ServerConfig};
use futures_rustls::{LazyConfigAcceptor, TlsConnector};
use glommio::net::TcpStream;

/// The most plaintext one TLS record carries.
const MAX_PLAINTEXT_RECORD: usize = 16 * 1024;

/// A TLS session over a TCP stream, with the plaintext a peek took and a
/// read has not yet.
pub struct TlsStream {
    stream: futures_rustls::TlsStream<Prefixed>,
    /// Decrypted by `peek`, served first by reads.
    peeked: Vec<u8>,
}

/// What the handshake learned about the peer.
pub struct Handshaken {
    pub stream: TlsStream,
    /// The peer's certificate chain, leaf first (empty when it sent none).
    pub peer_certificates: Vec<Vec<u8>>,
    /// The ALPN protocol both sides agreed on.
    pub alpn: Option<Vec<u8>>,
}

/// The server side of a handshake on an accepted stream, of which
/// detection has already read `prefix` (a ClientHello that came in pieces
/// is read out as it comes): the handshake reads that first. `hello_read`
/// is set once the whole ClientHello is in, before any of the server's
/// work: what a peer that stalls before it has cost is a socket, not a
/// key exchange. (`Socket::accept_tls` is the way in.)
pub(super) async fn accept(
    tcp: TcpStream,
    prefix: Vec<u8>,
    config: Arc<ServerConfig>,
    hello_read: &Cell<bool>,
) -> io::Result<Handshaken> {
    let acceptor = rustls::server::Acceptor::default();
    let hello = LazyConfigAcceptor::new(acceptor, Prefixed { prefix, tcp }).await?;
    hello_read.set(true);
    let stream = hello.into_stream(config).await?;
    let (_, session) = stream.get_ref();
    let peer_certificates = certificates(session.peer_certificates());
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    Ok(Handshaken {
        stream: TlsStream::new(futures_rustls::TlsStream::Server(stream)),
        peer_certificates,
        alpn,
    })
}

/// The client side of a handshake on a connected stream, naming `server`.
/// (`Socket::connect_tls` is the way in.)
pub(super) async fn connect(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
    server: ServerName<'static>,
) -> io::Result<Handshaken> {
    let prefix = Vec::new();
    let stream = TlsConnector::from(config)
        .connect(server, Prefixed { prefix, tcp })
        .await?;
    let (_, session) = stream.get_ref();
    let peer_certificates = certificates(session.peer_certificates());
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    Ok(Handshaken {
        stream: TlsStream::new(futures_rustls::TlsStream::Client(stream)),
        peer_certificates,
        alpn,
    })
}

fn certificates(
    chain: Option<&[futures_rustls::rustls::pki_types::CertificateDer<'_>]>,
) -> Vec<Vec<u8>> {
    chain
        .unwrap_or_default()
        .iter()
        .map(|cert| cert.as_ref().to_vec())
        .collect()
}

impl TlsStream {
    fn new(stream: futures_rustls::TlsStream<Prefixed>) -> TlsStream {
        TlsStream {
            stream,
            peeked: Vec::new(),
        }
    }

    /// The TCP stream under the session, for socket options.
    pub(super) fn tcp(&self) -> &TcpStream {
        match &self.stream {
            futures_rustls::TlsStream::Client(stream) => &stream.get_ref().0.tcp,
            futures_rustls::TlsStream::Server(stream) => &stream.get_ref().0.tcp,
        }
    }

    /// A FIN without close_notify reads as the end of the stream, as a
    /// FIN does on a plain socket: a pooled HTTP/1 connection is closed by
    /// dropping it, with no chance to send close_notify, and HTTP's own
    /// framing catches a message cut short either way.
    pub(super) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if !self.peeked.is_empty() {
            return Poll::Ready(Ok(self.take_peeked(buf)));
        }
        self.poll_decrypted(cx, buf)
    }

    fn poll_decrypted(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match std::task::ready!(Pin::new(&mut self.stream).poll_read(cx, buf)) {
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(0)),
            other => Poll::Ready(other),
        }
    }

    /// Decrypts at least a byte (or finds EOF) without consuming it.
    ///
    /// All that one record holds is decrypted, however little the caller
    /// peeks at: the server-first watch peeks one byte, and had only that
    /// byte been taken out of the session, the next read would return it
    /// alone, and a greeting would leave as one byte and then the rest.
    pub(super) fn poll_peek(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.peeked.is_empty() {
            let mut more = vec![0; buf.len().max(MAX_PLAINTEXT_RECORD)];
            let n = std::task::ready!(self.poll_decrypted(cx, &mut more))?;
            more.truncate(n);
            more.shrink_to_fit();
            self.peeked = more;
        }
        Poll::Ready(Ok(self.copy_peeked(buf)))
    }

    /// Puts `bytes` back in front of what reads will return.
    pub(super) fn unread(&mut self, bytes: &[u8]) {
        self.peeked.splice(0..0, bytes.iter().copied());
    }

    /// What a peek already decrypted, if anything.
    pub(super) fn try_peek(&self, buf: &mut [u8]) -> Option<usize> {
        (!self.peeked.is_empty()).then(|| self.copy_peeked(buf))
    }

    /// Takes what a peek decrypted; `None` when there is nothing.
    pub(super) fn try_recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        (!self.peeked.is_empty()).then(|| self.take_peeked(buf))
    }

    pub(super) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, bytes)
    }

    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// Sends close_notify, then FIN: the peer reads a clean end of stream
    /// while the other direction keeps flowing.
    pub(super) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }

    fn copy_peeked(&self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.peeked.len());
        buf[..n].copy_from_slice(&self.peeked[..n]);
        n
    }

    fn take_peeked(&mut self, buf: &mut [u8]) -> usize {
        let n = self.copy_peeked(buf);
        self.peeked.drain(..n);
        n
    }
}

/// The TCP stream under a session, and the bytes read out of it before the
/// handshake began, which the session reads first.
struct Prefixed {
    /// Emptied (and its memory given back) once read.
    prefix: Vec<u8>,
    tcp: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.tcp).poll_read(cx, buf);
        }
        let n = buf.len().min(self.prefix.len());
        buf[..n].copy_from_slice(&self.prefix[..n]);
        self.prefix.drain(..n);
        if self.prefix.is_empty() {
            self.prefix = Vec::new();
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, bytes)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};

    use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    use super::*;
    use crate::io::Socket;

    /// A server config for `localhost` and a client that trusts it.
    fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let der = CertificateDer::from(cert.cert.der().to_vec());
        let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// Detection reads a ClientHello that came in pieces out of the socket
    /// (issue 19, item 13): handed over as `prefix`, it still reaches the
    /// handshake, which then completes, and the session carries bytes.
    /// The client's `ping` goes in one record.
    #[test]
    fn a_handshake_reads_the_prefix_detection_took_first() {
        let (server, client) = configs();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let name = ServerName::try_from("localhost").unwrap();
            let session = rustls::ClientConnection::new(client, name).unwrap();
            let tcp = std::net::TcpStream::connect(addr).unwrap();
            let mut tls = rustls::StreamOwned::new(session, tcp);
            tls.write_all(b"ping").unwrap();
            let mut pong = [0u8; 4];
            tls.read_exact(&mut pong).map(|()| pong)
        });
        glommio::LocalExecutor::default().run(async move {
            let listener = crate::io::Listener::new(socket2::Socket::from(listener));
            let socket = listener.accept().await.unwrap();
            // What detection read of the hello before it had a verdict.
            let mut prefix = vec![0u8; 40];
            let mut read = 0;
            while read < prefix.len() {
                read += socket.read(&mut prefix[read..]).await.unwrap();
            }
            let hello_read = Cell::new(false);
            let handshaken = socket.accept_tls(prefix, server, &hello_read).await;
            let socket = Socket::tls(handshaken.expect("the handshake").stream).unwrap();
            assert!(hello_read.get());
            // A one-byte peek (the server-first watch's) leaves the whole
            // record for the next read: a greeting goes on in one piece,
            // not as one byte and then the rest (issue 19, item 16).
            let mut first = [0u8; 1];
            assert_eq!(socket.peek(&mut first).await.unwrap(), 1);
            let mut ping = [0u8; 64];
            assert_eq!(socket.read(&mut ping).await.unwrap(), 4, "one read");
            assert_eq!(&ping[..4], b"ping");
            socket.write_all(b"pong").await.unwrap();
        });
        assert_eq!(&peer.join().unwrap().unwrap(), b"pong");
    }
}
