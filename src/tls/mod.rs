//! TLS between ringside proxies: identities (`identity`, rotated by
//! `reload`), rustls configs (`config`), the transport header
//! (`transport_header`), and the shard's side of the mesh, inbound and
//! outbound (`mesh`). `mint` makes development certificates.

pub mod config;
#[cfg(test)]
mod fixtures;
pub mod identity;
#[doc(hidden)]
pub mod invariants;
pub mod mesh;
pub mod mint;
pub mod reload;
mod transport_header;

pub use transport_header::{
    Decoded, HeaderError, SessionProtocol, TransportHeader, ALPN, MAX_MESSAGE_BYTES, PREFACE,
};
