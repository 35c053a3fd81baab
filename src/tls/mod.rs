//! TLS between ringside proxies: identities, rustls configs, the transport
//! header, authorization.

#[doc(hidden)]
pub mod invariants;
mod transport_header;

pub use transport_header::{
    Decoded, HeaderError, SessionProtocol, TransportHeader, ALPN, MAX_MESSAGE_BYTES, PREFACE,
};
