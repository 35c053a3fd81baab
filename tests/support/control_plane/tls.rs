//! The mock control plane's side of mTLS, as a Linkerd controller's own
//! proxy terminates it: a certificate for the service's identity from the
//! test CA, a client certificate asked for but not required, and a record
//! of what each client sent: its SNI, whether it offered ALPN, and the
//! certificate it presented.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::Connected;

use ringside::tls::mint::{self, Minted, Validity};

/// What one client sent in its handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub sni: Option<String>,
    pub offered_alpn: bool,
    /// Its leaf certificate (DER), when it presented one.
    pub client_certificate: Option<Vec<u8>>,
}

/// Each ClientHello's SNI, and whether it offered ALPN, as they came.
type Hellos = Arc<Mutex<Vec<(Option<String>, bool)>>>;

/// A server config for `name` under `ca`, and what its clients sent.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    hellos: Hellos,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl ServerTls {
    pub fn new(ca: &Minted, name: &str) -> ServerTls {
        let leaf = mint::issue(ca, name, None, Validity::days_from_now(1)).unwrap();
        let chain = vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = CertifiedKey::from_der(chain, key, &provider).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
            .unwrap();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .unwrap();
        let hellos = Arc::new(Mutex::new(Vec::new()));
        let resolver = Recording {
            key: Arc::new(key),
            hellos: hellos.clone(),
        };
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(resolver));
        ServerTls {
            config: Arc::new(config),
            hellos,
            seen: Arc::default(),
        }
    }

    /// The handshake of one accepted connection, recorded.
    pub(super) async fn accept(&self, tcp: TcpStream) -> io::Result<Tls> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.clone());
        let stream = acceptor.accept(tcp).await?;
        let (sni, offered_alpn) = self.hellos.lock().unwrap().pop().unwrap_or_default();
        let client = stream.get_ref().1.peer_certificates();
        self.seen.lock().unwrap().push(Seen {
            sni,
            offered_alpn,
            client_certificate: client.map(|chain| chain[0].to_vec()),
        });
        Ok(Tls(stream))
    }
}

/// Answers with the one certificate, noting the hello's SNI and ALPN.
#[derive(Debug)]
struct Recording {
    key: Arc<CertifiedKey>,
    hellos: Hellos,
}

impl ResolvesServerCert for Recording {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name().map(str::to_string);
        let offered_alpn = hello.alpn().is_some();
        self.hellos.lock().unwrap().push((sni, offered_alpn));
        Some(self.key.clone())
    }
}

/// A server-side TLS stream as tonic's server takes it.
pub struct Tls(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for Tls {
    type ConnectInfo = ();

    fn connect_info(&self) {}
}

impl AsyncRead for Tls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
