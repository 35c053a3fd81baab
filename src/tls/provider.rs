//! The one crypto provider of every ringside TLS config, and of loading
//! identity keys: both must agree, or a key loaded for one could not sign
//! for the other.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// The crypto provider of every ringside config: ring, which builds with
/// no cmake or nasm on a fresh machine.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}
