//! `ringside identity ca | issue`: development certificates in the shape
//! Linkerd's identity service issues, so that two ringside proxies can run
//! mTLS without a control plane: an ECDSA P-256 CA, and per proxy an ECDSA
//! P-256 leaf whose DNS SAN is its identity name (plus a SPIFFE URI SAN
//! when asked), usable as both TLS server and client certificate.
//!
//! Files are never overwritten: a CA key replaced by mistake would orphan
//! every certificate it issued. Keys are written with mode 0600.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::config::IdentityAction;

/// What `ringside identity` writes, by file name.
pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca-key.pem";
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";
pub const TRUST_ANCHORS_FILE: &str = "trust-anchors.pem";

/// Certificates start this long before they are minted, so that a peer
/// whose clock is a little behind does not refuse them as not yet valid.
const BACKDATE: Duration = Duration::from_secs(300);

/// Why `ringside identity` could not mint or write; one line each.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: already exists; ringside identity never overwrites a file")]
    Exists { path: String },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a usable CA: {reason}")]
    BadCa { path: String, reason: String },
    #[error("cannot mint the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Minted {
    pub cert_pem: String,
    pub key_pem: String,
}

/// From when to when a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// From a few minutes ago (`BACKDATE`) for `days` days.
    pub fn days_from_now(days: u32) -> Validity {
        let now = SystemTime::now();
        Validity {
            not_before: now - BACKDATE,
            not_after: now + Duration::from_secs(u64::from(days) * 24 * 3600),
        }
    }
}

/// A self-signed CA that may sign identity certificates.
pub fn ca(validity: Validity) -> Result<Minted, MintError> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "ringside development CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = validity.not_before.into();
    params.not_after = validity.not_after.into();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    Ok(Minted {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// An identity certificate for `name` signed by `ca`.
pub fn issue(
    ca: &Minted,
    name: &str,
    spiffe_id: Option<&str>,
    validity: Validity,
) -> Result<Minted, MintError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let params = leaf_params(name, spiffe_id, validity)?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Minted {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A new key and a request to certify it for `name`, as Linkerd's
/// identity wrapper writes them before the proxy starts: the key as
/// PKCS#8 DER (`key.p8`) and the request as DER (`csr.der`).
pub fn signing_request(name: &str) -> Result<(Vec<u8>, Vec<u8>), MintError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(vec![name.to_string()])?;
    params.distinguished_name.push(DnType::CommonName, name);
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_der(), csr.der().to_vec()))
}

/// Signs a certificate signing request (DER) as `ca` would sign a leaf
/// for `name`, whatever name the request holds, as Linkerd's identity
/// service issues the identity it checked rather than what the CSR says.
/// The mock identity service of the tests answers `Certify` with it.
/// Returns the certificate, DER.
pub fn sign_request(
    ca: &Minted,
    csr_der: &[u8],
    name: &str,
    validity: Validity,
) -> Result<Vec<u8>, MintError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let csr = rustls::pki_types::CertificateSigningRequestDer::from(csr_der.to_vec());
    let mut request = rcgen::CertificateSigningRequestParams::from_der(&csr)?;
    request.params = leaf_params(name, None, validity)?;
    Ok(request.signed_by(&issuer)?.der().to_vec())
}

/// A workload's leaf: its name as DNS SAN (and SPIFFE ID as URI SAN),
/// usable as a TLS server and client certificate.
fn leaf_params(
    name: &str,
    spiffe_id: Option<&str>,
    validity: Validity,
) -> Result<CertificateParams, MintError> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = vec![SanType::DnsName(name.try_into()?)];
    if let Some(id) = spiffe_id {
        params.subject_alt_names.push(SanType::URI(id.try_into()?));
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = validity.not_before.into();
    params.not_after = validity.not_after.into();
    Ok(params)
}

/// Runs `ringside identity ...`; returns the files written.
pub fn run(action: &IdentityAction) -> Result<Vec<PathBuf>, MintError> {
    match action {
        IdentityAction::Ca { out, days } => {
            let minted = ca(Validity::days_from_now(*days))?;
            let files = [
                (CA_CERT_FILE, &minted.cert_pem),
                (CA_KEY_FILE, &minted.key_pem),
            ];
            write_new(out, &files)
        }
        IdentityAction::Issue {
            ca,
            name,
            spiffe_id,
            days,
            out,
        } => {
            let authority = read_ca(ca)?;
            let validity = Validity::days_from_now(*days);
            let minted = issue(&authority, name, spiffe_id.as_deref(), validity)?;
            let files = [
                (CERT_FILE, &minted.cert_pem),
                (KEY_FILE, &minted.key_pem),
                (TRUST_ANCHORS_FILE, &authority.cert_pem),
            ];
            write_new(out, &files)
        }
    }
}

/// `ca.pem` and `ca-key.pem` from `dir`, refused when they do not belong
/// together (every certificate issued would then fail to chain).
fn read_ca(dir: &Path) -> Result<Minted, MintError> {
    let read = |file: &str| {
        let path = dir.join(file);
        std::fs::read_to_string(&path).map_err(|source| MintError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let ca = Minted {
        cert_pem: read(CA_CERT_FILE)?,
        key_pem: read(CA_KEY_FILE)?,
    };
    let bad = |file: &str, reason: String| MintError::BadCa {
        path: dir.join(file).display().to_string(),
        reason,
    };
    let key = KeyPair::from_pem(&ca.key_pem).map_err(|err| bad(CA_KEY_FILE, err.to_string()))?;
    let der =
        pem_block(&ca.cert_pem).ok_or_else(|| bad(CA_CERT_FILE, "no PEM certificate".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|err| bad(CA_CERT_FILE, err.to_string()))?;
    if !cert.is_ca() {
        return Err(bad(CA_CERT_FILE, "not a CA certificate".into()));
    }
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        let reason = format!("the key does not match {CA_CERT_FILE}");
        return Err(bad(CA_KEY_FILE, reason));
    }
    Ok(ca)
}

/// The DER of the first certificate in a PEM text.
fn pem_block(pem: &str) -> Option<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes()).ok()
}

/// Writes `(file, content)` pairs into `out` (made if missing), key files
/// with mode 0600; refused before anything is written when any file is
/// already there.
fn write_new(out: &Path, files: &[(&str, &String)]) -> Result<Vec<PathBuf>, MintError> {
    std::fs::create_dir_all(out).map_err(|source| MintError::Write {
        path: out.display().to_string(),
        source,
    })?;
    let paths: Vec<PathBuf> = files.iter().map(|(file, _)| out.join(file)).collect();
    if let Some(taken) = paths.iter().find(|path| path.exists()) {
        return Err(MintError::Exists {
            path: taken.display().to_string(),
        });
    }
    for (path, (file, content)) in paths.iter().zip(files) {
        let private = [CA_KEY_FILE, KEY_FILE].contains(file);
        let write = || -> std::io::Result<()> {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(if private { 0o600 } else { 0o644 })
                .open(path)?
                .write_all(content.as_bytes())
        };
        write().map_err(|source| MintError::Write {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::fixtures::Dir;
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn ca_then_issue_writes_the_files_with_private_keys_0600() {
        let dir = Dir::new("files");
        let (ca_dir, out) = (dir.0.join("ca"), dir.0.join("web"));
        let written = run(&IdentityAction::Ca {
            out: ca_dir.clone(),
            days: 10,
        })
        .unwrap();
        assert_eq!(
            written,
            [ca_dir.join(CA_CERT_FILE), ca_dir.join(CA_KEY_FILE)]
        );
        assert_eq!(mode(&ca_dir.join(CA_KEY_FILE)), 0o600);
        let issue = IdentityAction::Issue {
            ca: ca_dir.clone(),
            name: "web.ns.serviceaccount.identity.linkerd.cluster.local".into(),
            spiffe_id: None,
            days: 1,
            out: out.clone(),
        };
        run(&issue).unwrap();
        assert_eq!(mode(&out.join(KEY_FILE)), 0o600);
        assert_eq!(mode(&out.join(CERT_FILE)), 0o644);
        let anchors = std::fs::read_to_string(out.join(TRUST_ANCHORS_FILE)).unwrap();
        let ca_pem = std::fs::read_to_string(ca_dir.join(CA_CERT_FILE)).unwrap();
        assert_eq!(anchors, ca_pem);

        let err = run(&issue).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: already exists; ringside identity never overwrites a file",
                out.join(CERT_FILE).display()
            )
        );
    }

    #[test]
    fn a_ca_key_of_another_ca_is_refused_before_issuing() {
        let dir = Dir::new("mismatch");
        let (first, second) = (
            ca(Validity::days_from_now(1)).unwrap(),
            ca(Validity::days_from_now(1)).unwrap(),
        );
        std::fs::create_dir_all(&dir.0).unwrap();
        std::fs::write(dir.0.join(CA_CERT_FILE), &first.cert_pem).unwrap();
        std::fs::write(dir.0.join(CA_KEY_FILE), &second.key_pem).unwrap();
        let err = run(&IdentityAction::Issue {
            ca: dir.0.clone(),
            name: "a.b".into(),
            spiffe_id: None,
            days: 1,
            out: dir.0.join("out"),
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            format!(
                "{}: not a usable CA: the key does not match ca.pem",
                dir.0.join(CA_KEY_FILE).display()
            )
        );
        assert!(!dir.0.join("out").exists());
    }
}
