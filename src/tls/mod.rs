//! TLS between ringside proxies: identities (`identity`, rotated by
//! `reload`), the rustls configs built around them (`rustls_config`, with
//! the crypto `provider` both use), the transport header
//! (`transport_header`), and the shard's side of the mesh, inbound and
//! outbound (`mesh`). `mint` makes development certificates.

#[cfg(test)]
pub(crate) mod fixtures;
pub mod identity;
#[doc(hidden)]
pub mod invariants;
pub mod mesh;
pub mod mint;
mod provider;
pub mod reload;
pub mod rustls_config;
mod transport_header;

pub use transport_header::{
    Decoded, HeaderError, SessionProtocol, TransportHeader, ALPN, MAX_MESSAGE_BYTES, PREFACE,
};
