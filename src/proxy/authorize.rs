//! Inbound authorization: the port's policy judges a client once, by the
//! identity it proved over mTLS or by none. `verdict` is the one place the
//! policy is evaluated; the connection stage asks it at three moments:
//!
//! - before connecting upstream (`may_connect_early`): a port that requires
//!   an identity gets nothing connected for a client that has not proven an
//!   allowed one, so that N silent clients cannot pin N of the
//!   application's connections, nor hear a server that speaks first;
//! - when a mesh peer's TLS ends (`judge_peer`): an allowed identity is
//!   counted at once; a refused one is settled by `admit`;
//! - once detection has said what the connection carries (`admit`): a
//!   plaintext client is judged as one without an identity; a refused HTTP
//!   client is served 403s request by request, any other is closed.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::rc::Rc;

use super::classify::Carry;
use super::conn::Conn;
use crate::config::Direction;
use crate::io::{ConnError, Socket};
use crate::metrics::{Authz, AuthzLabels};
use crate::shard::Shard;
use crate::tls::mesh::MeshTls;

/// How an authorization decision is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    /// In `inbound_tcp_authz_*`: the connection is carried or closed.
    Connection,
    /// Not here: an HTTP connection is served either way, and each of its
    /// requests counts in `inbound_http_authz_{allow,deny}_total`.
    Requests,
}

impl Conn {
    /// The mesh, when this is an inbound connection it authorizes.
    pub(super) fn inbound_mesh(&self) -> Option<Rc<MeshTls>> {
        let inbound = self.route.route.direction == Direction::Inbound;
        self.shard.mesh().filter(|_| inbound)
    }

    /// Whether the upstream may be connected before the protocol is known:
    /// on a port open to clients without an identity, always; on one that
    /// requires an identity, only once the client has proven one the port
    /// allows (then a server that speaks first is heard at once).
    pub(super) fn may_connect_early(&self) -> bool {
        let Some(mesh) = self.inbound_mesh() else {
            return true;
        };
        let proven = self.proven.borrow();
        verdict(&mesh, self.route.route.listen, proven.as_deref()).allowed
    }

    /// Authorizes an inbound connection once detection has said what it
    /// carries: a plaintext one as a client without an identity, a mesh
    /// peer's refused one by the identity it proved (an allowed one was
    /// counted as its TLS ended). A refused HTTP client is served 403s
    /// (`authz`); any other is closed.
    pub(super) fn admit(&self, client: &Socket, carry: &Carry) -> Result<(), ConnError> {
        let Some(mesh) = self.inbound_mesh() else {
            return Ok(());
        };
        if client.is_tls() && self.authz.get().is_none_or(|authz| authz.allowed) {
            return Ok(());
        }
        let target = self.route.route.listen;
        let http = matches!(carry, Carry::Http1 | Carry::Http2);
        let count = if http {
            Count::Requests
        } else {
            Count::Connection
        };
        let client_id = self.proven.borrow().clone();
        let authz = judge(&self.shard, &mesh, target, client_id.as_deref(), count);
        self.judged(authz);
        if authz.allowed || http {
            return Ok(());
        }
        client.reset_on_close();
        let who = client_id
            .as_deref()
            .unwrap_or("a client without an identity");
        Err(ConnError::ClientRead(std::io::Error::new(
            ErrorKind::PermissionDenied,
            format!("{who} may not connect"),
        )))
    }

    /// Judges the identity a mesh peer proved (or none) by `target`'s
    /// policy. An allowed one is counted now; a refused one is settled by
    /// `admit` once its protocol is known.
    pub(super) fn judge_peer(&self, mesh: &MeshTls, target: SocketAddr, client_id: Option<&str>) {
        let authz = verdict(mesh, target, client_id);
        if authz.allowed {
            judge(&self.shard, mesh, target, client_id, Count::Connection);
        }
        self.judged(authz);
    }
}

/// What the policy of `target`'s port says of `client_id` (`None`: a
/// client with no identity). The only place a policy is evaluated.
fn verdict(mesh: &MeshTls, target: SocketAddr, client_id: Option<&str>) -> Authz {
    let policy = mesh.policy.for_port(target.port());
    Authz {
        policy: policy.label(),
        allowed: policy.allows(client_id),
    }
}

/// `verdict`, counted as `count` says, and logged when refused.
fn judge(
    shard: &Shard,
    mesh: &MeshTls,
    target: SocketAddr,
    client_id: Option<&str>,
    count: Count,
) -> Authz {
    let authz = verdict(mesh, target, client_id);
    if count == Count::Connection {
        shard.metrics.authorized(AuthzLabels {
            http: false,
            allowed: authz.allowed,
            authz: authz.policy,
            client_id: client_id.unwrap_or_default().to_string(),
            target_addr: target.to_string(),
        });
    }
    if !authz.allowed {
        tracing::info!(
            client_id = client_id.unwrap_or("-"),
            target = %target,
            authz = authz.policy,
            "connection refused by authorization"
        );
    }
    authz
}

#[cfg(test)]
#[path = "authorize_tests.rs"]
mod tests;
