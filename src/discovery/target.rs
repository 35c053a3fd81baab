//! `Discovered`: what one original destination of the outbound listener
//! resolved to, the snapshot a shard takes: the endpoints to carry its
//! connections to, with their metadata, and the protocol to carry them as.
//!
//! `resolve` is the decision linkerd2-proxy makes in
//! `linkerd/app/outbound/src/discover.rs` (`resolver`), as a pure
//! function of the answers in hand: a policy wins; a policy NOT_FOUND
//! falls back to the profile's endpoint, and without one to the original
//! address, in plaintext (egress). A policy whose answer has not come yet
//! resolves to nothing: the caller waits for one (bounded), then falls
//! back as for NOT_FOUND.

use std::net::SocketAddr;
use std::time::Duration;

use super::policy::{Backend, Policy};
use crate::config::{Endpoint, EndpointSet, Protocol};

/// One destination's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The protocol the policy names; `None`: no policy, so ringside's own
    /// port lists decide (or the profile's `opaque_protocol`).
    pub protocol: Option<Protocol>,
    /// The policy's detect timeout, when it names one.
    pub detect_timeout: Option<Duration>,
    /// Where connections go. Empty: nowhere now (a balancer whose service
    /// has no endpoints, or a route without backend); connections fail.
    pub endpoints: EndpointSet,
    pub source: Source,
}

/// Which answer a `Discovered` comes from, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The policy controller's.
    Policy,
    /// The profile's endpoint: the policy controller did not know it.
    Profile,
    /// Neither knew it: the original address, in plaintext.
    Original,
}

/// What the policy watch has said so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyAnswer {
    /// Nothing yet.
    Pending,
    /// The controller does not know the destination (NOT_FOUND, or
    /// UNIMPLEMENTED from an old control plane, as discover.rs takes it).
    NotFound,
    Found(Policy),
}

/// What the profile lookup has said so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileAnswer {
    /// Its endpoint, when the profile names one.
    pub endpoint: Option<Endpoint>,
    pub opaque: bool,
}

/// The destination `original` as the answers in hand resolve it; `None`
/// while the policy has not answered. `balanced`: what `Destination.Get`
/// has named for a balanced backend (ignored for other backends).
pub fn resolve(
    original: SocketAddr,
    policy: &PolicyAnswer,
    profile: Option<&ProfileAnswer>,
    balanced: &EndpointSet,
) -> Option<Discovered> {
    let discovered = match policy {
        PolicyAnswer::Pending => return None,
        PolicyAnswer::Found(policy) => Discovered {
            protocol: Some(policy.protocol),
            detect_timeout: policy.detect_timeout,
            endpoints: match &policy.backend {
                Backend::Forward(endpoint) => [endpoint.clone()].into(),
                Backend::Balance { .. } => balanced.clone(),
                Backend::Unavailable => EndpointSet::from([]),
            },
            source: Source::Policy,
        },
        PolicyAnswer::NotFound => fallback(original, profile),
    };
    Some(discovered)
}

/// Without a policy: the profile's endpoint, else the original address
/// without TLS (discover.rs: `synthesize_forward_policy` over
/// `profile.endpoint`, else `spawn_synthesized_origdst_policy`).
pub fn fallback(original: SocketAddr, profile: Option<&ProfileAnswer>) -> Discovered {
    let opaque = profile.is_some_and(|p| p.opaque);
    let endpoint = profile.and_then(|p| p.endpoint.clone());
    let source = match endpoint {
        Some(_) => Source::Profile,
        None => Source::Original,
    };
    Discovered {
        protocol: opaque.then_some(Protocol::Opaque),
        detect_timeout: None,
        endpoints: [endpoint.unwrap_or_else(|| Endpoint::plain(original))].into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original() -> SocketAddr {
        "10.1.0.1:8080".parse().unwrap()
    }

    fn meshed(addr: &str) -> Endpoint {
        Endpoint {
            identity: Some("web.ns.serviceaccount.identity.linkerd.cluster.local".into()),
            ..Endpoint::plain(addr.parse().unwrap())
        }
    }

    #[test]
    fn a_policy_wins_and_its_backend_decides_the_endpoints() {
        let balanced: EndpointSet = [meshed("10.2.0.1:8080"), meshed("10.2.0.2:8080")].into();
        let profile = ProfileAnswer {
            endpoint: Some(meshed("10.9.0.1:8080")),
            opaque: true,
        };
        let policy = |backend| {
            PolicyAnswer::Found(Policy {
                protocol: Protocol::Http2,
                detect_timeout: None,
                backend,
            })
        };
        let path = "web.ns.svc.cluster.local:8080".to_string();
        let found = resolve(
            original(),
            &policy(Backend::Balance { path }),
            Some(&profile),
            &balanced,
        );
        let found = found.unwrap();
        assert_eq!(
            (found.source, found.protocol),
            (Source::Policy, Some(Protocol::Http2))
        );
        assert_eq!(found.endpoints, balanced);
        let forward = policy(Backend::Forward(meshed("10.3.0.1:80")));
        let found = resolve(original(), &forward, None, &balanced).unwrap();
        assert_eq!(found.endpoints[..], [meshed("10.3.0.1:80")]);
        let none = resolve(original(), &policy(Backend::Unavailable), None, &balanced);
        assert!(none.unwrap().endpoints.is_empty());
        assert_eq!(
            resolve(original(), &PolicyAnswer::Pending, None, &balanced),
            None
        );
    }

    #[test]
    fn not_found_falls_back_to_the_profile_endpoint_then_to_the_original_in_plaintext() {
        let empty = EndpointSet::from([]);
        let profile = ProfileAnswer {
            endpoint: Some(meshed("10.9.0.1:8080")),
            opaque: true,
        };
        let found = resolve(original(), &PolicyAnswer::NotFound, Some(&profile), &empty).unwrap();
        assert_eq!(found.source, Source::Profile);
        assert_eq!(found.protocol, Some(Protocol::Opaque));
        assert_eq!(found.endpoints[..], [meshed("10.9.0.1:8080")]);
        let bare = ProfileAnswer::default();
        for profile in [None, Some(&bare)] {
            let found = resolve(original(), &PolicyAnswer::NotFound, profile, &empty).unwrap();
            assert_eq!(found.source, Source::Original);
            assert_eq!(found.protocol, None, "ringside's own port lists decide");
            assert_eq!(found.endpoints[..], [Endpoint::plain(original())]);
        }
    }
}
