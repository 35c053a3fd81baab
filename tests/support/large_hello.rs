//! A mesh peer whose ClientHello is as large as a post-quantum client's:
//! rustls (ring) with a first key share of 1,216 bytes under
//! X25519MLKEM768's code point, which ringside's ring-only TLS does not
//! know, so the handshake completes after a HelloRetryRequest for X25519.
//! Like Linkerd's hello it is about 1.5 KB, and rustls shuffles its
//! extensions, so the SNI starts past byte 1,024 in about half of them.
//! (The real post-quantum hello, as bytes, is `pq_client_hello`.)

use std::sync::Arc;

use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::NamedGroup;

use super::TempDir;

/// ML-KEM-768's encapsulation key and an X25519 share, as X25519MLKEM768
/// sends them.
const SHARE_BYTES: usize = 1184 + 32;

#[derive(Debug)]
struct LargeKeyShare;

static LARGE_KEY_SHARE: LargeKeyShare = LargeKeyShare;

impl SupportedKxGroup for LargeKeyShare {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        Ok(Box::new(OfferedShare(vec![0x5a; SHARE_BYTES])))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }
}

/// Offered, never chosen: the server asks for X25519 instead.
struct OfferedShare(Vec<u8>);

impl ActiveKeyExchange for OfferedShare {
    fn complete(self: Box<Self>, _: &[u8]) -> Result<SharedSecret, rustls::Error> {
        Err(rustls::Error::General(
            "the large share is never chosen".into(),
        ))
    }

    fn pub_key(&self) -> &[u8] {
        &self.0
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }
}

/// A TLS 1.3 client presenting the identity minted into `dir/folder`,
/// trusting its CA, and offering the large key share first.
pub fn large_hello_client(dir: &TempDir, folder: &str) -> Arc<rustls::ClientConfig> {
    let (roots, chain, key) = super::identity::pem_identity(dir, folder);
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups.insert(0, &LARGE_KEY_SHARE);
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    // Without a session store there is no hint of the group the server
    // chose last time either: every hello leads with the large share.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}
