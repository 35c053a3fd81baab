//! TLS between ringside proxies: identities, rustls configs, the transport
//! header, authorization.

pub mod config;
#[cfg(test)]
mod fixtures;
pub mod identity;
#[doc(hidden)]
pub mod invariants;
pub mod mint;
mod transport_header;

pub use transport_header::{
    Decoded, HeaderError, SessionProtocol, TransportHeader, ALPN, MAX_MESSAGE_BYTES, PREFACE,
};
