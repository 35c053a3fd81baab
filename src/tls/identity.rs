//! A workload identity read from its PEM files and checked before any peer
//! sees it: the key matches the certificate, the certificate is valid now,
//! its SANs hold the configured name (and SPIFFE ID), and it chains to the
//! trust anchors for both TLS server and client use, since a ringside proxy
//! presents the same certificate on both sides. Each refusal is one line
//! naming the file and the reason, for `--check` and for a reload that
//! must keep the old identity.
//!
//! rustls and webpki do the key match and the chain; x509-parser reads the
//! SANs and the validity dates, which webpki does not expose (it has no URI
//! SAN check at all, and reports an expired certificate without its dates).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

use super::provider::provider;
use crate::config::IdentityConfig;

/// Why an identity cannot be used; each reads as one line that starts
/// with the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The I/O error is in the one line, not also chained as a source
    /// (which would print it twice).
    #[error("{path}: cannot read: {error}")]
    Unreadable { path: String, error: std::io::Error },
    #[error("{path}: no PEM {what} in it")]
    NoPem { path: String, what: &'static str },
    #[error("{path}: bad PEM: {reason}")]
    BadPem { path: String, reason: String },
    #[error("{path}: not an X.509 certificate: {reason}")]
    BadCertificate { path: String, reason: String },
    #[error("{path}: not a usable trust anchor: {reason}")]
    BadAnchor { path: String, reason: String },
    #[error("{path}: unusable private key: {reason}")]
    BadKey { path: String, reason: String },
    #[error("{key}: the private key does not match the certificate in {cert}")]
    KeyMismatch { key: String, cert: String },
    #[error("{path}: the certificate expired at {not_after} (valid from {not_before})")]
    Expired {
        path: String,
        not_before: String,
        not_after: String,
    },
    #[error("{path}: the certificate is not valid before {not_before} (until {not_after})")]
    NotYetValid {
        path: String,
        not_before: String,
        not_after: String,
    },
    #[error("{path}: the certificate's DNS SANs {found:?} do not hold the identity name {name}")]
    NameMissing {
        path: String,
        name: String,
        found: Vec<String>,
    },
    #[error("{path}: the certificate's URI SANs {found:?} do not hold the SPIFFE ID {id}")]
    SpiffeIdMissing {
        path: String,
        id: String,
        found: Vec<String>,
    },
    #[error("{path}: does not chain to the trust anchors in {anchors} as a TLS {usage} certificate: {reason}")]
    Untrusted {
        path: String,
        anchors: String,
        usage: &'static str,
        reason: String,
    },
}

/// A checked identity, ready for `tls::rustls_config`.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The name peers send as SNI and find in our DNS SAN.
    name: String,
    /// The chain (leaf first) and its signing key, as rustls presents them;
    /// an `Arc` so that a resolver can swap it whole on rotation.
    certified_key: Arc<CertifiedKey>,
    /// What peers' chains must end at, in both directions.
    roots: Arc<RootCertStore>,
    /// The leaf's `notAfter`, for `identity_cert_expiration_timestamp_seconds`.
    not_after_unix_seconds: u64,
}

/// The three files' contents, read before anything is checked.
pub(crate) struct IdentityPem<'a> {
    pub cert: &'a [u8],
    pub key: &'a [u8],
    pub trust_anchors: &'a [u8],
}

impl Identity {
    /// Reads and checks the files `config` names, against the clock now.
    pub fn load(config: &IdentityConfig) -> Result<Identity, IdentityError> {
        let cert = read(&config.cert)?;
        let key = read(&config.key)?;
        let trust_anchors = read(&config.trust_anchors)?;
        let pem = IdentityPem {
            cert: &cert,
            key: &key,
            trust_anchors: &trust_anchors,
        };
        Self::from_pem(config, &pem, UnixTime::now())
    }

    /// Checks PEM contents as if read from the files `config` names.
    pub(crate) fn from_pem(
        config: &IdentityConfig,
        pem: &IdentityPem<'_>,
        now: UnixTime,
    ) -> Result<Identity, IdentityError> {
        let sources = Sources {
            cert: &config.cert.display().to_string(),
            key: &config.key.display().to_string(),
            anchors: &config.trust_anchors.display().to_string(),
        };
        let chain = certificates(sources.cert, pem.cert)?;
        let key = PrivateKeyDer::from_pem_slice(pem.key).map_err(|err| match err {
            rustls::pki_types::pem::Error::NoItemsFound => IdentityError::NoPem {
                path: sources.key.to_string(),
                what: "private key",
            },
            other => IdentityError::BadPem {
                path: sources.key.to_string(),
                reason: other.to_string(),
            },
        })?;
        // Read now, refused only after the certificate's own checks, so
        // that a bad certificate is what a bad pair of files reports.
        let roots = roots(sources.anchors, pem.trust_anchors).map(Arc::new);
        let expected = Expected {
            name: &config.name,
            spiffe_id: config.spiffe_id.as_deref(),
        };
        Self::checked(&expected, chain, key, roots, &sources, now)
    }

    /// Checks a chain (leaf first) and its key that came from elsewhere
    /// than files (Linkerd's identity service): the checks `from_pem`
    /// makes, each error naming `sources`.
    pub(crate) fn from_der(
        name: &str,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        roots: Arc<RootCertStore>,
        sources: &Sources<'_>,
        now: UnixTime,
    ) -> Result<Identity, IdentityError> {
        if chain.is_empty() {
            return Err(IdentityError::NoPem {
                path: sources.cert.to_string(),
                what: "certificate",
            });
        }
        let expected = Expected {
            name,
            spiffe_id: None,
        };
        Self::checked(&expected, chain, key, Ok(roots), sources, now)
    }

    /// The key matches the leaf, the leaf is valid now and holds the
    /// expected names, and the chain ends at `roots`.
    fn checked(
        expected: &Expected<'_>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        roots: Result<Arc<RootCertStore>, IdentityError>,
        sources: &Sources<'_>,
        now: UnixTime,
    ) -> Result<Identity, IdentityError> {
        let cert_path = sources.cert.to_string();
        let leaf = parse(&cert_path, &chain[0])?;
        let certified_key = certified_key(chain.clone(), key, &cert_path, sources.key)?;

        let validity = leaf.validity();
        let (not_before, not_after) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        let now_seconds = now.as_secs() as i64;
        let dates = (date(not_before), date(not_after));
        if now_seconds > not_after {
            let (not_before, not_after) = dates;
            let path = cert_path;
            return Err(IdentityError::Expired {
                path,
                not_before,
                not_after,
            });
        }
        if now_seconds < not_before {
            let (not_before, not_after) = dates;
            let path = cert_path;
            return Err(IdentityError::NotYetValid {
                path,
                not_before,
                not_after,
            });
        }

        let sans = Sans::of(&leaf);
        if !sans
            .dns
            .iter()
            .any(|dns| dns.eq_ignore_ascii_case(expected.name))
        {
            return Err(IdentityError::NameMissing {
                path: cert_path,
                name: expected.name.to_string(),
                found: sans.dns,
            });
        }
        if let Some(id) = expected.spiffe_id {
            if !sans.uri.iter().any(|uri| uri == id) {
                let (id, found) = (id.to_string(), sans.uri);
                return Err(IdentityError::SpiffeIdMissing {
                    path: cert_path,
                    id,
                    found,
                });
            }
        }

        let roots = roots?;
        chains_to(&chain, &roots, now).map_err(|(usage, reason)| IdentityError::Untrusted {
            path: cert_path.clone(),
            anchors: sources.anchors.to_string(),
            usage,
            reason,
        })?;

        Ok(Identity {
            name: expected.name.to_string(),
            certified_key: Arc::new(certified_key),
            roots,
            not_after_unix_seconds: not_after.max(0) as u64,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the leaf certificate expires, in seconds since the epoch.
    pub fn not_after_unix_seconds(&self) -> u64 {
        self.not_after_unix_seconds
    }

    /// The chain and key, for `CertResolver::new` and `CertResolver::swap`.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified_key)
    }

    pub(crate) fn roots(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.roots)
    }
}

/// Where the pieces of an identity came from, as its errors name them:
/// files' paths, or what stands for them (the identity service's answer,
/// an environment variable).
pub(crate) struct Sources<'a> {
    pub cert: &'a str,
    pub key: &'a str,
    pub anchors: &'a str,
}

/// The names a certificate must hold.
struct Expected<'a> {
    name: &'a str,
    spiffe_id: Option<&'a str>,
}

/// The DNS and URI SANs of a certificate, as written in it.
pub(crate) struct Sans {
    pub dns: Vec<String>,
    pub uri: Vec<String>,
}

impl Sans {
    pub(crate) fn of(cert: &X509Certificate<'_>) -> Sans {
        let mut sans = Sans {
            dns: Vec::new(),
            uri: Vec::new(),
        };
        if let Ok(Some(extension)) = cert.subject_alternative_name() {
            for name in &extension.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => sans.dns.push(dns.to_string()),
                    GeneralName::URI(uri) => sans.uri.push(uri.to_string()),
                    _ => {}
                }
            }
        }
        sans
    }
}

/// The trust anchors alone: what a proxy needs to start before its
/// certificate is issued.
pub fn load_anchors(config: &IdentityConfig) -> Result<Arc<RootCertStore>, IdentityError> {
    let path = config.trust_anchors.display().to_string();
    let pem = read(&config.trust_anchors)?;
    Ok(Arc::new(roots(&path, &pem)?))
}

/// Trust anchors given as PEM text (Linkerd's environment holds the
/// certificates themselves); `source` names them in errors.
pub(crate) fn anchors_from_pem(
    source: &str,
    pem: &[u8],
) -> Result<Arc<RootCertStore>, IdentityError> {
    Ok(Arc::new(roots(source, pem)?))
}

fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    std::fs::read(path).map_err(|error| IdentityError::Unreadable {
        path: path.display().to_string(),
        error,
    })
}

/// Every certificate in a PEM file, in order; at least one.
fn certificates(path: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| IdentityError::BadPem {
            path: path.to_string(),
            reason: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(IdentityError::NoPem {
            path: path.to_string(),
            what: "certificate",
        });
    }
    Ok(certs)
}

pub(crate) fn parse<'a>(
    path: &str,
    der: &'a CertificateDer<'_>,
) -> Result<X509Certificate<'a>, IdentityError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|err| IdentityError::BadCertificate {
            path: path.to_string(),
            reason: err.to_string(),
        })
}

/// The key loaded by the provider, refused unless its public half is the
/// one the leaf certifies.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &str,
    key_path: &str,
) -> Result<CertifiedKey, IdentityError> {
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|err| IdentityError::BadKey {
            path: key_path.to_string(),
            reason: err.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(_) => Err(IdentityError::KeyMismatch {
            key: key_path.to_string(),
            cert: cert_path.to_string(),
        }),
    }
}

fn roots(path: &str, pem: &[u8]) -> Result<RootCertStore, IdentityError> {
    let mut roots = RootCertStore::empty();
    for anchor in certificates(path, pem)? {
        roots.add(anchor).map_err(|err| IdentityError::BadAnchor {
            path: path.to_string(),
            reason: err.to_string(),
        })?;
    }
    Ok(roots)
}

/// Verifies the chain as a server's and as a client's certificate; the
/// error says for which use it failed, and webpki's reason.
fn chains_to(
    chain: &[CertificateDer<'static>],
    roots: &RootCertStore,
    now: UnixTime,
) -> Result<(), (&'static str, String)> {
    let leaf =
        webpki::EndEntityCert::try_from(&chain[0]).map_err(|err| ("server", err.to_string()))?;
    let uses = [
        ("server", webpki::KeyUsage::server_auth()),
        ("client", webpki::KeyUsage::client_auth()),
    ];
    for (usage, key_usage) in uses {
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &roots.roots,
            &chain[1..],
            now,
            key_usage,
            None,
            None,
        )
        .map_err(|err| (usage, err.to_string()))?;
    }
    Ok(())
}

/// A certificate date as RFC 3339, in UTC.
fn date(unix_seconds: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(unix_seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
