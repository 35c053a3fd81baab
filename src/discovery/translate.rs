//! From the destination API's endpoint messages to ringside's `Endpoint`:
//! pure functions, as linkerd2-proxy's `proxy/api-resolve/src/pb.rs`
//! (`to_addr_meta`, `to_identity`, `to_sock_addr`) maps them to its own
//! metadata.
//!
//! Everything here comes from a remote party, so nothing is trusted: a
//! port must fit in 1..=65535 (the proto's fields are `u32`), an identity
//! must be a DNS name, and labels, which become `dst_*` metric labels, are
//! bounded in number, in length and in alphabet. Where Linkerd ignores a
//! bad piece (an invalid identity, an out-of-range opaque-transport port)
//! so does this; where Linkerd would carry on with a value ringside cannot
//! verify (a URI identity) the endpoint is dropped, never reached in
//! plaintext instead.

use std::collections::HashMap;
use std::net::SocketAddr;

use linkerd2_proxy_api::destination::{protocol_hint, tls_identity, TlsIdentity, WeightedAddr};
use linkerd2_proxy_api::net::TcpAddress;

use crate::config::{Endpoint, ProtocolHint};

/// Labels one endpoint keeps. Linkerd's destination controller sends about
/// ten (`namespace`, `service`, `pod`, `serviceaccount`, `zone`, ...).
pub const MAX_LABELS: usize = 16;

/// The longest label name kept (before its `dst_` prefix).
pub const MAX_LABEL_NAME_BYTES: usize = 64;

/// The longest label value kept; a longer one is cut at a character
/// boundary. Kubernetes names are at most 253 bytes, their labels 63.
pub const MAX_LABEL_VALUE_BYTES: usize = 128;

/// What Linkerd prefixes a destination's metric labels with.
const LABEL_PREFIX: &str = "dst_";

/// Why an endpoint of an answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("no address")]
    NoAddress,
    #[error("port {0} is not 1-65535")]
    BadPort(u32),
    #[error("identity {0:?} cannot be verified (only DNS-like identities are)")]
    UnverifiableIdentity(String),
}

/// The address a `TcpAddress` names, if it is a whole one with a usable
/// port.
pub fn socket_addr(addr: TcpAddress) -> Result<SocketAddr, EndpointError> {
    let port = addr.port;
    if port == 0 || port > u32::from(u16::MAX) {
        return Err(EndpointError::BadPort(port));
    }
    SocketAddr::try_from(addr).map_err(|_| EndpointError::NoAddress)
}

/// One endpoint of an `Add` (or a profile's or a policy's forward
/// endpoint), with the labels its set shares (`set_labels`), its own
/// winning over them.
pub fn endpoint(
    weighted: WeightedAddr,
    set_labels: &HashMap<String, String>,
) -> Result<Endpoint, EndpointError> {
    let addr = socket_addr(weighted.addr.ok_or(EndpointError::NoAddress)?)?;
    let identity = match weighted.tls_identity {
        Some(tls) => identity(tls)?,
        None => None,
    };
    let (protocol, tagged_port) = match weighted.protocol_hint {
        Some(hint) => protocol_hint(hint),
        None => (None, None),
    };
    Ok(Endpoint {
        addr,
        identity,
        protocol,
        labels: labels(set_labels, &weighted.metric_labels),
        tagged_port,
    })
}

/// The identity to name over mTLS. An invalid DNS-like one is ignored, as
/// Linkerd ignores it (`to_identity` warns and goes on without TLS); a
/// URI-like one is refused, since ringside verifies DNS names only.
fn identity(tls: TlsIdentity) -> Result<Option<String>, EndpointError> {
    match tls.strategy {
        Some(tls_identity::Strategy::DnsLikeIdentity(dns)) => {
            let name = dns.name.trim_end_matches('.').to_ascii_lowercase();
            match rustls_pki_types::DnsName::try_from(name.as_str()) {
                Ok(_) => Ok(Some(name)),
                Err(_) => {
                    tracing::warn!(identity = %printable(&dns.name), "ignoring an invalid DNS identity");
                    Ok(None)
                }
            }
        }
        Some(tls_identity::Strategy::UriLikeIdentity(uri)) => {
            Err(EndpointError::UnverifiableIdentity(printable(&uri.uri)))
        }
        None => Ok(None),
    }
}

/// The protocol an endpoint speaks and the port of its proxy's tagged
/// transport; that port is taken only within 1..65535 (pb.rs:
/// `inbound_port > 0 && inbound_port < u16::MAX`).
fn protocol_hint(
    hint: linkerd2_proxy_api::destination::ProtocolHint,
) -> (Option<ProtocolHint>, Option<u16>) {
    let protocol = hint.protocol.map(|protocol| match protocol {
        protocol_hint::Protocol::H2(_) => ProtocolHint::Http2,
        protocol_hint::Protocol::Opaque(_) => ProtocolHint::Opaque,
    });
    let tagged_port = hint
        .opaque_transport
        .map(|transport| transport.inbound_port)
        .filter(|&port| port > 0 && port < u32::from(u16::MAX))
        .map(|port| port as u16);
    (protocol, tagged_port)
}

/// The `dst_*` labels of an endpoint: its set's and its own (its own win),
/// sorted by name so that equal sets compare equal, at most `MAX_LABELS`
/// of them. A name that is not a Prometheus label name is dropped; a value
/// loses its control characters and is cut to `MAX_LABEL_VALUE_BYTES`.
pub fn labels(
    set_labels: &HashMap<String, String>,
    own: &HashMap<String, String>,
) -> Vec<(String, String)> {
    let mut merged: std::collections::BTreeMap<&str, &str> = std::collections::BTreeMap::new();
    for (name, value) in set_labels.iter().chain(own) {
        if is_label_name(name) {
            merged.insert(name, value);
        }
    }
    merged
        .into_iter()
        .take(MAX_LABELS)
        .map(|(name, value)| (format!("{LABEL_PREFIX}{name}"), label_value(value)))
        .collect()
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not reserved (`__`), and not too long.
fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    first_ok
        && name.len() <= MAX_LABEL_NAME_BYTES
        && !name.starts_with("__")
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn label_value(value: &str) -> String {
    let mut kept = String::with_capacity(value.len().min(MAX_LABEL_VALUE_BYTES));
    for c in value.chars().filter(|c| !c.is_control()) {
        if kept.len() + c.len_utf8() > MAX_LABEL_VALUE_BYTES {
            break;
        }
        kept.push(c);
    }
    kept
}

/// A remote string fit for a log line: no control characters, bounded.
pub fn printable(text: &str) -> String {
    label_value(text)
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
