//! TLS between ringside proxies: identities, rustls configs, the transport
//! header, authorization.

pub mod config;
#[cfg(test)]
mod fixtures;
pub mod identity;
pub mod mint;
