//! `l5d-client-id`: who the client is, as the inbound side tells the
//! application. A client that proved an identity over mTLS gets it set
//! (any value it sent itself is replaced); any other inbound client has
//! every `l5d-*` header removed, so that no plaintext client can forge one.
//! Outbound requests are left as they are.
//!
//! The same goes for trailers (HTTP/1 chunked trailers, HTTP/2 trailers),
//! which many frameworks merge into the headers they hand the handler, and
//! for names that only look like Linkerd's: `l5d_client_id` is the real
//! header to every stack that folds `_` into `-` (CGI, WSGI, uWSGI, PHP).
//! Such names are removed, not refused with a 400: that is what is done to
//! the real ones, and what nginx does to any name with an underscore by
//! default (`underscores_in_headers off`); no client has a use for one, and
//! a refusal would only break a client that forwards them innocently.

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
    Set {
        identity: Rc<str>,
        /// `identity` as the header's value, made once per connection:
        /// each request's header then shares its bytes, where making it
        /// per request cost an allocation and a copy.
        header: Option<HeaderValue>,
    },
}

impl ClientId {
    /// A client that proved `identity`. An identity is a DNS-like name,
    /// always a valid value; were it not, any forged `l5d-client-id` would
    /// still be removed.
    pub fn set(identity: Rc<str>) -> ClientId {
        let header = HeaderValue::from_str(&identity).ok();
        ClientId::Set { identity, header }
    }

    /// Whether a header or trailer field named `name` is dropped: inbound,
    /// without an identity every `l5d-*` one; with one, every spelling of
    /// `l5d-client-id` (it is set anew) and every `l5d_*` look-alike.
    pub fn drops(&self, name: &[u8]) -> bool {
        match self {
            ClientId::Untouched => false,
            ClientId::Strip => is_l5d(name),
            ClientId::Set { .. } => is_client_id(name) || (is_l5d(name) && name.contains(&b'_')),
        }
    }

    /// The identity a client proved, if it did.
    pub fn proven(&self) -> Option<&str> {
        match self {
            ClientId::Set { identity, .. } => Some(identity),
            _ => None,
        }
    }

    /// The same for an HTTP/2 request's headers, `l5d-client-id` set for
    /// a proven identity.
    pub fn apply(&self, headers: &mut HeaderMap) {
        self.strip_fields(headers);
        if let ClientId::Set {
            header: Some(value),
            ..
        } = self
        {
            headers.insert(CLIENT_ID_HEADER, value.clone());
        }
    }

    /// Removes the fields `drops` names from HTTP/2 headers or trailers;
    /// nothing is added (trailers get no identity: the headers have it).
    pub fn strip_fields(&self, fields: &mut HeaderMap) {
        if matches!(self, ClientId::Untouched) {
            return;
        }
        let dropped: Vec<HeaderName> = fields
            .keys()
            .filter(|name| self.drops(name.as_str().as_bytes()))
            .cloned()
            .collect();
        for name in dropped {
            fields.remove(name);
        }
    }
}

/// `b` as a stack that folds `_` into `-` and ignores case reads it.
fn folded(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        _ => b.to_ascii_lowercase(),
    }
}

/// `l5d-*`, or a look-alike with `_` for `-`.
fn is_l5d(name: &[u8]) -> bool {
    name.len() >= 4 && name[..4].iter().map(|b| folded(*b)).eq(*b"l5d-")
}

/// `l5d-client-id` however it is spelled.
fn is_client_id(name: &[u8]) -> bool {
    let header = CLIENT_ID_HEADER.as_bytes();
    name.len() == header.len() && name.iter().map(|b| folded(*b)).eq(header.iter().copied())
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
        let set = ClientId::set("web.ns".into());
        set.apply(&mut headers);
        assert_eq!(headers["l5d-client-id"], "web.ns");
        assert_eq!(headers.len(), 3);
        assert!(set.drops(b"L5d-Client-Id") && !set.drops(b"l5d-dst-override"));
        assert!(ClientId::Strip.drops(b"l5d-anything") && !ClientId::Strip.drops(b"x-l5d"));
        assert!(!ClientId::Untouched.drops(b"l5d-client-id"));
    }

    #[test]
    fn look_alikes_with_underscores_are_dropped_too() {
        let set = ClientId::set("web.ns".into());
        for name in ["l5d_client_id", "L5D_Client-Id", "l5d-client_id"] {
            assert!(set.drops(name.as_bytes()), "{name}");
            assert!(ClientId::Strip.drops(name.as_bytes()), "{name}");
        }
        assert!(set.drops(b"l5d_dst_override") && !set.drops(b"l5d-dst-override"));
        assert!(ClientId::Strip.drops(b"l5d_anything"));
        assert!(!ClientId::Strip.drops(b"l5dx-client-id") && !set.drops(b"l5d-client-ids"));
        let mut headers = HeaderMap::new();
        headers.insert("l5d_client_id", HeaderValue::from_static("forged"));
        set.apply(&mut headers);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["l5d-client-id"], "web.ns");
    }

    #[test]
    fn trailers_lose_what_headers_lose_and_gain_nothing() {
        let mut trailers = HeaderMap::new();
        trailers.insert("l5d-client-id", HeaderValue::from_static("forged"));
        trailers.insert("l5d-dst-override", HeaderValue::from_static("x"));
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let mut stripped = trailers.clone();
        ClientId::Strip.strip_fields(&mut stripped);
        assert_eq!(stripped.keys().collect::<Vec<_>>(), ["grpc-status"]);
        ClientId::set("web.ns".into()).strip_fields(&mut trailers);
        assert!(!trailers.contains_key("l5d-client-id"));
        assert_eq!(trailers.len(), 2);
    }
}
