//! From an `OutboundPolicy` (the policy controller's answer for one
//! destination) and a `DestinationProfile` to what ringside uses of them:
//! the protocol, the detect timeout, and one backend.
//!
//! Only the first route is followed, and of it the first rule's backend
//! (the heaviest, for a weighted split): ringside's transparent path has
//! one backend per destination. What is not built of Linkerd's routing:
//! HTTPRoute and GRPCRoute matches (paths, headers, methods), filters
//! (header modifiers, redirects, failure injection), weighted splits
//! across backends, per-route timeouts and retries, failure accrual and
//! queue settings. A TLS route's destination is carried as opaque bytes.

use std::time::Duration;

use linkerd2_proxy_api::destination::DestinationProfile;
use linkerd2_proxy_api::outbound::{
    self as api, backend, grpc_route, http_route, opaque_route, proxy_protocol, tls_route,
};

use super::translate::{self, printable, EndpointError};
use crate::config::{Endpoint, Protocol};

/// The longest `Destination.Get` path taken from a policy; Kubernetes
/// service names with their port are well under it.
pub const MAX_PATH_BYTES: usize = 512;

/// The policy for one destination, as ringside carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub protocol: Protocol,
    /// How long detection may wait for a first byte (`Detect` only).
    pub detect_timeout: Option<Duration>,
    pub backend: Backend,
}

/// Where a destination's connections go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// One endpoint, as the policy describes it.
    Forward(Endpoint),
    /// A P2C balancer over what `Destination.Get` names for `path`.
    Balance { path: String },
    /// Nothing: the route has no backend, and connections fail.
    Unavailable,
}

/// Why a policy cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy names no protocol")]
    NoProtocol,
    #[error("forward endpoint: {0}")]
    Forward(#[from] EndpointError),
    #[error("the backend's discovery path is empty or longer than {MAX_PATH_BYTES} bytes")]
    BadPath,
}

/// The backend of the first rule of the first route: `None` when there is
/// no route, `Some(None)` when the route has no usable backend. The route
/// kinds share this shape in types of their own, hence a macro.
macro_rules! first_backend {
    ($routes:expr, $module:ident) => {{
        let rule = $routes
            .into_iter()
            .next()
            .map(|route| route.rules.into_iter().next());
        rule.map(|rule| {
            use $module::distribution::Kind;
            match rule?.backends?.kind? {
                Kind::Empty(_) => None,
                Kind::FirstAvailable(first) => first.backends.into_iter().next()?.backend,
                Kind::RandomAvailable(random) => heaviest(
                    random
                        .backends
                        .into_iter()
                        .map(|b| (b.weight, b.backend.and_then(|b| b.backend))),
                ),
            }
        })
    }};
}

/// An `OutboundPolicy` as ringside uses it.
pub fn policy(answer: api::OutboundPolicy) -> Result<Policy, PolicyError> {
    let kind = answer.protocol.and_then(|p| p.kind);
    let (protocol, detect_timeout, backend) = match kind.ok_or(PolicyError::NoProtocol)? {
        proxy_protocol::Kind::Detect(detect) => {
            let timeout = detect.timeout.and_then(duration);
            // A detected connection is HTTP or opaque; their routes name
            // the same service in every policy the controller makes, so
            // the first found stands for all.
            let backend = detect
                .http1
                .and_then(|h| first_backend!(h.routes, http_route))
                .or_else(|| {
                    detect
                        .http2
                        .and_then(|h| first_backend!(h.routes, http_route))
                })
                .or_else(|| {
                    detect
                        .opaque
                        .and_then(|o| first_backend!(o.routes, opaque_route))
                });
            (Protocol::Detect, timeout, backend)
        }
        proxy_protocol::Kind::Opaque(o) => (
            Protocol::Opaque,
            None,
            first_backend!(o.routes, opaque_route),
        ),
        proxy_protocol::Kind::Tls(tls) => (
            Protocol::Opaque,
            None,
            first_backend!(tls.routes, tls_route),
        ),
        proxy_protocol::Kind::Http1(h) => {
            (Protocol::Http1, None, first_backend!(h.routes, http_route))
        }
        proxy_protocol::Kind::Http2(h) => {
            (Protocol::Http2, None, first_backend!(h.routes, http_route))
        }
        proxy_protocol::Kind::Grpc(g) => {
            (Protocol::Http2, None, first_backend!(g.routes, grpc_route))
        }
    };
    let backend = match backend.flatten() {
        Some(backend) => self::backend(backend)?,
        None => Backend::Unavailable,
    };
    Ok(Policy {
        protocol,
        detect_timeout,
        backend,
    })
}

/// A profile's endpoint (for a destination the policy controller does not
/// know) and whether the profile says its protocol is opaque.
pub fn profile(profile: DestinationProfile) -> (Option<Endpoint>, bool) {
    let endpoint = profile.endpoint.and_then(|weighted| {
        translate::endpoint(weighted, &Default::default())
            .map_err(|err| tracing::warn!(error = %err, "ignoring the profile's endpoint"))
            .ok()
    });
    (endpoint, profile.opaque_protocol)
}

fn backend(backend: api::Backend) -> Result<Backend, PolicyError> {
    match backend.kind {
        Some(backend::Kind::Forward(weighted)) => Ok(Backend::Forward(translate::endpoint(
            weighted,
            &Default::default(),
        )?)),
        Some(backend::Kind::Balancer(p2c)) => {
            let path = p2c
                .discovery
                .and_then(|d| d.kind)
                .map(|backend::endpoint_discovery::Kind::Dst(get)| get.path)
                .unwrap_or_default();
            if path.is_empty() || path.len() > MAX_PATH_BYTES || printable(&path) != path {
                return Err(PolicyError::BadPath);
            }
            Ok(Backend::Balance { path })
        }
        None => Ok(Backend::Unavailable),
    }
}

/// The backend of the greatest weight, the first of equals.
fn heaviest(backends: impl Iterator<Item = (u32, Option<api::Backend>)>) -> Option<api::Backend> {
    let mut best: Option<(u32, api::Backend)> = None;
    for (weight, backend) in backends {
        let Some(backend) = backend else { continue };
        if best.as_ref().is_none_or(|(w, _)| weight > *w) {
            best = Some((weight, backend));
        }
    }
    best.map(|(_, backend)| backend)
}

/// A protobuf duration as a `Duration`, if it is a sane one (not negative,
/// at most an hour: a detect timeout longer than that is a mistake).
fn duration(d: prost_types::Duration) -> Option<Duration> {
    let seconds = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok().filter(|&n| n < 1_000_000_000)?;
    Some(Duration::new(seconds, nanos)).filter(|d| *d <= Duration::from_secs(3_600))
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
