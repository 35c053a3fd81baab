//! The rustls configurations of mTLS between ringside proxies, as Linkerd's
//! proxies speak it: TLS 1.3 only, ALPN `transport.l5d.io/v1`, and both
//! sides presenting an identity certificate that chains to the same trust
//! anchors.
//!
//! - The server answers only the SNI of its own name and requires a client
//!   certificate. Which client may do what is authorization's business,
//!   later; `peer_identity` reads the name it presented.
//! - The client is one config for every peer: the peer's identity is the
//!   `ServerName` of each connection (`server_name`), which rustls sends
//!   as SNI and hands to the verifier, which insists on exactly that name.
//!
//! Our own certificate sits behind a `CertResolver`, and the peers' trust
//! anchors behind `TrustAnchors`, both shared by both configs, so that a
//! rotation swaps them for every new handshake at once without rebuilding
//! either config (which every shard holds). The `RwLock` in each is read
//! once per handshake, never per byte.

use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, InvalidDnsNameError, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls::{
    CertificateError, ClientConfig, CommonState, DigitallySignedStruct, DistinguishedName,
    ServerConfig, SignatureScheme,
};

use super::identity::{parse, Identity, Sans};
use super::provider::provider;

/// The ALPN protocol of a connection between ringside (or Linkerd) proxies
/// that starts with a transport header.
pub const TRANSPORT_ALPN: &[u8] = b"transport.l5d.io/v1";

/// Why a rustls config could not be built from an `Identity`. Not expected
/// once the identity loaded: it is checked against the same anchors.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("TLS 1.3 with the ring provider: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("trust anchors: {0}")]
    Anchors(#[from] rustls::server::VerifierBuilderError),
}

/// Our certificate and key, as both configs present them; `swap` replaces
/// them for every handshake that starts after it.
#[derive(Debug)]
pub struct CertResolver {
    /// The only SNI the server answers: peers reach us by our identity.
    name: String,
    /// None until the certificate is issued (`waiting`).
    key: RwLock<Option<Arc<CertifiedKey>>>,
}

impl CertResolver {
    pub fn new(identity: &Identity) -> Arc<CertResolver> {
        Arc::new(CertResolver {
            name: identity.name().to_string(),
            key: RwLock::new(Some(identity.certified_key())),
        })
    }

    /// A resolver for `name` with no certificate yet: every handshake
    /// fails until the first `swap`.
    pub fn waiting(name: &str) -> Arc<CertResolver> {
        Arc::new(CertResolver {
            name: name.to_string(),
            key: RwLock::new(None),
        })
    }

    /// Presents a rotated certificate of the same identity from now on.
    pub fn swap(&self, key: Arc<CertifiedKey>) {
        *self
            .key
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(key);
    }

    fn current(&self) -> Option<Arc<CertifiedKey>> {
        let key = self
            .key
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        key.clone()
    }
}

impl ResolvesServerCert for CertResolver {
    /// Our certificate for our own name only: any other SNI (or none) ends
    /// the handshake, as the connection was not meant for this identity.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name()?;
        if !sni.eq_ignore_ascii_case(&self.name) {
            return None;
        }
        self.current()
    }
}

impl ResolvesClientCert for CertResolver {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.current()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The trust anchors peers' chains must end at, as both configs verify
/// them; `swap` replaces them for every handshake that starts after it,
/// so that a CA taken out of the anchors file is no longer trusted,
/// without a restart.
#[derive(Debug)]
pub struct TrustAnchors {
    verifiers: RwLock<Verifiers>,
}

/// webpki's verifiers of one set of anchors: a client's chain, a
/// server's chain.
#[derive(Debug, Clone)]
pub struct Verifiers {
    clients: Arc<dyn ClientCertVerifier>,
    servers: Arc<WebPkiServerVerifier>,
}

impl Verifiers {
    /// Fails only for an empty set, which a loaded `Identity` never holds.
    pub fn of(roots: Arc<RootCertStore>) -> Result<Verifiers, TlsConfigError> {
        let clients =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), provider()).build()?;
        let servers = WebPkiServerVerifier::builder_with_provider(roots, provider()).build()?;
        Ok(Verifiers { clients, servers })
    }
}

impl TrustAnchors {
    pub fn new(roots: Arc<RootCertStore>) -> Result<Arc<TrustAnchors>, TlsConfigError> {
        let verifiers = RwLock::new(Verifiers::of(roots)?);
        Ok(Arc::new(TrustAnchors { verifiers }))
    }

    /// Verifies peers against other anchors from now on.
    pub fn swap(&self, verifiers: Verifiers) {
        *self
            .verifiers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = verifiers;
    }

    fn current(&self) -> Verifiers {
        let verifiers = self
            .verifiers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        verifiers.clone()
    }
}

/// The server's check of a client: webpki's, against the anchors now.
impl ClientCertVerifier for TrustAnchors {
    /// None: the hints would have to outlive the lock they sit behind, and
    /// a peer presents its one certificate whatever the hints say (TLS 1.3
    /// makes them optional).
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let clients = self.current().clients;
        clients.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let clients = self.current().clients;
        clients.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let clients = self.current().clients;
        clients.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().clients.supported_verify_schemes()
    }

    /// Asked for, verified when presented, but not required: as
    /// linkerd2-proxy's inbound, which takes TLS without a client identity
    /// and leaves it to the port's authorizations (`TlsUnauthenticated`
    /// admits it, an identity authorization does not), and refuses it
    /// only behind a transport header (`direct.rs`, `RefusedNoIdentity`;
    /// `tls::mesh`).
    fn client_auth_mandatory(&self) -> bool {
        false
    }
}

/// The inbound side: TLS 1.3, a client certificate asked for and verified
/// against `anchors` (not required: `client_auth_mandatory`), our
/// certificate from `resolver`.
pub fn server_config(
    anchors: Arc<TrustAnchors>,
    resolver: Arc<CertResolver>,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(anchors)
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![TRANSPORT_ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// The outbound side, for every peer: TLS 1.3, our certificate from
/// `resolver`, the server verified against `anchors` and the
/// connection's `ServerName` (see `server_name`).
pub fn client_config(
    anchors: Arc<TrustAnchors>,
    resolver: Arc<CertResolver>,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ExactIdentity { anchors }))
        .with_client_cert_resolver(resolver);
    config.alpn_protocols = vec![TRANSPORT_ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// The `ServerName` to connect to a peer with: its identity, sent as SNI
/// and required in its certificate.
pub fn server_name(peer_identity: &str) -> Result<ServerName<'static>, InvalidDnsNameError> {
    ServerName::try_from(peer_identity.to_string())
}

/// The identity a verified peer presented: the first DNS SAN of its leaf
/// certificate (Linkerd's identities have exactly one), for
/// `l5d-client-id`. `None` before the handshake or without a certificate.
pub fn peer_identity(connection: &CommonState) -> Option<String> {
    identity_of(connection.peer_certificates()?.first()?)
}

/// `peer_identity` from the DER of a verified leaf certificate.
pub fn identity_of(leaf: &[u8]) -> Option<String> {
    let leaf = rustls::pki_types::CertificateDer::from(leaf);
    let cert = parse("peer", &leaf).ok()?;
    Sans::of(&cert).dns.into_iter().next()
}

/// webpki's server verification (chain, validity, name), then the name
/// once more without wildcards: a certificate for `*.default...` may not
/// stand in for `web.default...`, as an identity is one workload.
#[derive(Debug)]
struct ExactIdentity {
    anchors: Arc<TrustAnchors>,
}

impl ServerCertVerifier for ExactIdentity {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chains = self.anchors.current().servers;
        let verified = chains.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let ServerName::DnsName(expected) = server_name else {
            return Err(CertificateError::NotValidForName.into());
        };
        let cert = parse("peer", end_entity).map_err(|_| CertificateError::BadEncoding)?;
        let presented = Sans::of(&cert).dns;
        if presented
            .iter()
            .any(|dns| dns.eq_ignore_ascii_case(expected.as_ref()))
        {
            Ok(verified)
        } else {
            Err(CertificateError::NotValidForName.into())
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.anchors
            .current()
            .servers
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.anchors
            .current()
            .servers
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.anchors.current().servers.supported_verify_schemes()
    }
}

#[cfg(test)]
#[path = "rustls_config_tests.rs"]
mod tests;
