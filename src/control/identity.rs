//! Linkerd's identity: `Certify` against its identity service, as
//! linkerd2-proxy's `linkerd/proxy/identity-client/src/certify.rs` does.
//!
//! Linkerd's identity wrapper wrote a PKCS#8 key (`key.p8`) and a CSR for
//! our name (`csr.der`) before starting us; the key never leaves this
//! process. Each request sends the CSR, the service account token (read
//! again every time: Kubernetes rotates projected tokens) and our name.
//! The answer is checked before any peer sees it: the leaf chains to the
//! trust anchors, holds our name, and certifies our key. A good one is
//! swapped into the certificate resolver both TLS configs share (new
//! handshakes present it, open connections go on); a bad one, or none,
//! keeps what we had and is counted.
//!
//! Renewal is due at 70% of what is left of the certificate, within
//! `LINKERD2_PROXY_IDENTITY_MIN_REFRESH` and `…_MAX_REFRESH` (10 s and
//! 24 h): so a failure before the first certificate retries in 10 s, and
//! one after it retries at 70% of what is left, as `certify.rs` does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use linkerd2_proxy_api::identity::{CertifyRequest, CertifyResponse};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::RootCertStore;

use super::{channel, Channel, Dialer};
use crate::config::{ControlAddr, LinkerdIdentity};
use crate::metrics::IdentityStatus;
use crate::tls::identity::{anchors_from_pem, Identity, IdentityError, Sources};
use crate::tls::mesh::MeshConfigs;
use crate::tls::rustls_config::{
    client_config, server_config, CertResolver, TlsConfigError, TrustAnchors,
};

/// A `Certify` unanswered this long is given up (and counted), so that a
/// service that takes the request and never answers cannot stall renewal;
/// linkerd2-proxy's control clients fail fast after 30 s too
/// (`app/core/src/control.rs`).
const CERTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// What stands for a file path in errors about the anchors.
const ANCHORS: &str = "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS";
/// What stands for a file path in errors about the answer.
const ANSWER: &str = "the identity service's certificate";

/// Why Linkerd mode cannot start; each one line naming what is at fault.
#[derive(Debug, thiserror::Error)]
pub enum IdentityStartError {
    #[error("{path}: cannot read: {error}")]
    Unreadable { path: String, error: std::io::Error },
    #[error("{path}: is empty")]
    Empty { path: String },
    #[error(transparent)]
    Anchors(#[from] IdentityError),
    #[error(transparent)]
    Config(#[from] TlsConfigError),
    #[error(transparent)]
    Dns(#[from] crate::dns::ResolverConfigError),
    #[error("cannot start the control thread: {0}")]
    Thread(std::io::Error),
}

/// Why one `Certify` failed; the current certificate, if any, stays.
#[derive(Debug, thiserror::Error)]
enum CertifyError {
    #[error("{path}: cannot read the token: {error}")]
    Token { path: String, error: std::io::Error },
    #[error("{path}: the token is empty")]
    EmptyToken { path: String },
    #[error("the identity service answered {code:?}: {message}")]
    Status { code: tonic::Code, message: String },
    #[error("the identity service did not answer within {CERTIFY_TIMEOUT:?}")]
    Timeout,
    #[error("the identity service's answer has no valid_until")]
    NoExpiry,
    #[error("the identity service's certificate is already past its valid_until")]
    Expired,
    #[error(transparent)]
    Refused(#[from] IdentityError),
}

/// The identity client, ready to run on the control thread.
pub(super) struct Certify {
    name: String,
    token_file: PathBuf,
    csr_der: Vec<u8>,
    key_pkcs8: Vec<u8>,
    /// The key's file, as errors about the key name it.
    key_path: String,
    roots: Arc<RootCertStore>,
    resolver: Arc<CertResolver>,
    status: Arc<IdentityStatus>,
    min_refresh: Duration,
    max_refresh: Duration,
}

impl Certify {
    /// Reads the wrapper's files and the token (refusing to start without
    /// them, as linkerd2-proxy does), and builds the mesh configs around
    /// the anchors and a resolver with no certificate yet: every inbound
    /// handshake fails, and `/ready` answers 503, until `run` gets one.
    pub(super) fn prepare(
        identity: &LinkerdIdentity,
        status: Arc<IdentityStatus>,
    ) -> Result<(Certify, MeshConfigs), IdentityStartError> {
        let csr_der = read_nonempty(&identity.dir.join("csr.der"))?;
        let key_path = identity.dir.join("key.p8");
        let key_pkcs8 = read_nonempty(&key_path)?;
        read_nonempty(&identity.token_file)?;
        let roots = anchors_from_pem(ANCHORS, identity.trust_anchors_pem.as_bytes())?;
        let anchors = TrustAnchors::new(roots.clone())?;
        let resolver = CertResolver::waiting(&identity.local_name);
        let mesh = MeshConfigs {
            name: identity.local_name.clone(),
            server: server_config(anchors.clone(), resolver.clone())?,
            client: client_config(anchors, resolver.clone())?,
        };
        let certify = Certify {
            name: identity.local_name.clone(),
            token_file: identity.token_file.clone(),
            csr_der,
            key_pkcs8,
            key_path: key_path.display().to_string(),
            roots,
            resolver,
            status,
            min_refresh: identity.min_refresh,
            max_refresh: identity.max_refresh,
        };
        Ok((certify, mesh))
    }

    /// Certifies, then again whenever renewal is due, until the thread
    /// stops. Each time over a channel of its own, as linkerd2-proxy
    /// makes a client per request: its connections present the
    /// certificate we have then (none the first time).
    pub(super) async fn run(self, svc: ControlAddr, dialer: Dialer) {
        let mut expiry = UNIX_EPOCH;
        tracing::info!(name = %self.name, "asking the identity service for a certificate");
        loop {
            let mut client = IdentityClient::new(channel(&svc, &dialer));
            match self.certify(&mut client).await {
                Ok(identity) => {
                    let not_after = identity.not_after_unix_seconds();
                    self.resolver.swap(identity.certified_key());
                    self.status.loaded(not_after);
                    expiry = UNIX_EPOCH + Duration::from_secs(not_after);
                    tracing::info!(name = %self.name, not_after, "certified by the identity service");
                }
                Err(err) => {
                    self.status.reload_failed();
                    tracing::warn!(error = %err, "identity: certification failed, keeping the current certificate if any");
                }
            }
            let wait = refresh_in(
                expiry,
                SystemTime::now(),
                self.min_refresh,
                self.max_refresh,
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn certify(
        &self,
        client: &mut IdentityClient<Channel>,
    ) -> Result<Identity, CertifyError> {
        let token = self.token()?;
        let request = CertifyRequest {
            identity: self.name.clone(),
            token,
            certificate_signing_request: self.csr_der.clone(),
        };
        let answer = tokio::time::timeout(CERTIFY_TIMEOUT, client.certify(request))
            .await
            .map_err(|_| CertifyError::Timeout)?
            .map_err(|status| {
                // Bounded: the message is the service's to choose.
                let message: String = status.message().chars().take(256).collect();
                CertifyError::Status {
                    code: status.code(),
                    message,
                }
            })?;
        self.check(answer.into_inner(), SystemTime::now())
    }

    /// The token as it is now: Kubernetes rewrites projected tokens.
    fn token(&self) -> Result<Vec<u8>, CertifyError> {
        let path = self.token_file.display().to_string();
        match std::fs::read(&self.token_file) {
            Ok(token) if token.is_empty() => Err(CertifyError::EmptyToken { path }),
            Ok(token) => Ok(token),
            Err(error) => Err(CertifyError::Token { path, error }),
        }
    }

    /// The answer as an identity, or why it is refused.
    fn check(&self, answer: CertifyResponse, now: SystemTime) -> Result<Identity, CertifyError> {
        let valid_until = answer.valid_until.ok_or(CertifyError::NoExpiry)?;
        let valid_until = SystemTime::try_from(valid_until).map_err(|_| CertifyError::NoExpiry)?;
        if valid_until <= now {
            return Err(CertifyError::Expired);
        }
        let chain: Vec<CertificateDer<'static>> = std::iter::once(answer.leaf_certificate)
            .chain(answer.intermediate_certificates)
            .map(CertificateDer::from)
            .collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()));
        let sources = Sources {
            cert: ANSWER,
            key: &self.key_path,
            anchors: ANCHORS,
        };
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let now = UnixTime::since_unix_epoch(since_epoch);
        Ok(Identity::from_der(
            &self.name,
            chain,
            key,
            self.roots.clone(),
            &sources,
            now,
        )?)
    }
}

/// When to certify again: at 70% of what is left of the certificate
/// expiring at `expiry`, within `min..=max`; `min` when it has expired or
/// there is none yet (`UNIX_EPOCH`), as `certify.rs`'s `refresh_in`.
fn refresh_in(expiry: SystemTime, now: SystemTime, min: Duration, max: Duration) -> Duration {
    match expiry.duration_since(now) {
        Ok(left) => (left * 7 / 10).clamp(min, max),
        Err(_) => min,
    }
}

fn read_nonempty(path: &Path) -> Result<Vec<u8>, IdentityStartError> {
    let shown = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => Err(IdentityStartError::Empty { path: shown }),
        Ok(bytes) => Ok(bytes),
        Err(error) => Err(IdentityStartError::Unreadable { path: shown, error }),
    }
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
