//! `l5d-client-id`: who the client is, as the inbound side tells the
//! application. A client that proved an identity over mTLS gets it set
//! (any value it sent itself is replaced); any other inbound client has
//! every `l5d-*` header removed, so that no plaintext client can forge one.
//! Outbound requests are left as they are.

use std::rc::Rc;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The header Linkerd's inbound proxy sets.
pub const CLIENT_ID_HEADER: &str = "l5d-client-id";

/// What a connection's requests get done to their `l5d-*` headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClientId {
    /// Outbound: the application's headers go on untouched.
    #[default]
    Untouched,
    /// Inbound without an identity: every `l5d-*` header is removed.
    Strip,
    /// Inbound from a client that proved this identity.
    Set(Rc<str>),
}

impl ClientId {
    /// Whether an HTTP/1 header line named `name` is dropped.
    pub fn drops(&self, name: &[u8]) -> bool {
        match self {
            ClientId::Untouched => false,
            ClientId::Strip => is_l5d(name),
            ClientId::Set(_) => name.eq_ignore_ascii_case(CLIENT_ID_HEADER.as_bytes()),
        }
    }

    /// The identity a client proved, if it did.
    pub fn proven(&self) -> Option<&str> {
        match self {
            ClientId::Set(identity) => Some(identity),
            _ => None,
        }
    }

    /// The same for an HTTP/2 request's headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        match self {
            ClientId::Untouched => {}
            ClientId::Strip => {
                let l5d: Vec<HeaderName> = headers
                    .keys()
                    .filter(|name| is_l5d(name.as_str().as_bytes()))
                    .cloned()
                    .collect();
                for name in l5d {
                    headers.remove(name);
                }
            }
            ClientId::Set(identity) => {
                // An identity is a DNS-like name: always a valid value.
                if let Ok(value) = HeaderValue::from_str(identity) {
                    headers.insert(CLIENT_ID_HEADER, value);
                }
            }
        }
    }
}

fn is_l5d(name: &[u8]) -> bool {
    name.len() >= 4 && name[..4].eq_ignore_ascii_case(b"l5d-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_removes_every_l5d_header_and_set_replaces_the_id() {
        let mut headers = HeaderMap::new();
        headers.insert("l5d-client-id", HeaderValue::from_static("forged"));
        headers.insert("L5D-Dst-Override", HeaderValue::from_static("x"));
        headers.insert("x-kept", HeaderValue::from_static("y"));
        let mut stripped = headers.clone();
        ClientId::Strip.apply(&mut stripped);
        assert_eq!(stripped.len(), 1);
        let set = ClientId::Set("web.ns".into());
        set.apply(&mut headers);
        assert_eq!(headers["l5d-client-id"], "web.ns");
        assert_eq!(headers.len(), 3);
        assert!(set.drops(b"L5d-Client-Id") && !set.drops(b"l5d-dst-override"));
        assert!(ClientId::Strip.drops(b"l5d-anything") && !ClientId::Strip.drops(b"x-l5d"));
        assert!(!ClientId::Untouched.drops(b"l5d-client-id"));
    }
}
