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

use std::cell::Cell;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use super::classify::Carry;
use super::conn::Conn;
use super::policed::Policed;
use crate::config::{Direction, Protocol};
use crate::discovery::inbound::{permit, ClientTls, InboundProtocol};
use crate::http::{ClientId, RequestAuthz, RequestPolicy};
use crate::io::{ConnError, Socket};
use crate::metrics::{Authz, AuthzLabels, Decision};
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
        self.verdict(&mesh, self.route.route.listen, proven.as_deref())
            .authz
            .allowed
    }

    /// Authorizes an inbound connection once detection has said what it
    /// carries: a plaintext one as a client without an identity, a mesh
    /// peer's refused one by the identity it proved (an allowed one was
    /// counted as its TLS ended). A refused HTTP client is served 403s
    /// (`authz`), or under a policy controller has each request judged;
    /// any other is closed.
    pub(super) fn admit(&self, client: &Socket, carry: &Carry) -> Result<(), ConnError> {
        let Some(mesh) = self.inbound_mesh() else {
            return Ok(());
        };
        if client.is_tls() && self.authz.get().is_none_or(|authz| authz.allowed) {
            return Ok(());
        }
        let target = self.route.route.listen;
        let http = matches!(carry, Carry::Http1 | Carry::Http2);
        if http && self.policed.get().is_some() {
            // Each request is judged by its route (`request_authz`).
            return Ok(());
        }
        let count = if http {
            Count::Requests
        } else {
            Count::Connection
        };
        let client_id = self.proven.borrow().clone();
        let authz = self.judge(&mesh, target, client_id.as_deref(), count);
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
        if let Some(policed) = self.policed.get() {
            policed.terminated.set(true);
        }
        let verdict = self.verdict(mesh, target, client_id);
        if verdict.authz.allowed {
            self.judge(mesh, target, client_id, Count::Connection);
        }
        self.judged(verdict.authz);
    }

    /// What the policy of `target`'s port says of `client_id` (`None`: a
    /// client with no identity): the port's policy from the policy
    /// controller when there is one, else `[inbound] authorize`. The only
    /// place a policy is evaluated for a connection.
    fn verdict(&self, mesh: &MeshTls, target: SocketAddr, client_id: Option<&str>) -> Verdict {
        let Some(policed) = self.policed.get() else {
            let policy = mesh.policy.for_port(target.port());
            let authz = Authz {
                policy: policy.label(),
                allowed: policy.allows(client_id),
            };
            return Verdict {
                authz,
                labels: None,
            };
        };
        let tls = match policed.terminated.get() {
            true => ClientTls::Established(client_id),
            false => ClientTls::None,
        };
        policed.port.with(|server| {
            let found = permit(&server.authorizations, policed.client_ip, tls);
            if found.is_some_and(|i| server.authorizations[i].audit) {
                tracing::info!(server = %server.name, "connection allowed (audit)");
            }
            let labels = match found {
                Some(index) => server.allow_labels[index].clone(),
                None => server.labels.clone(),
            };
            let authz = Authz {
                policy: "server",
                allowed: found.is_some(),
            };
            Verdict {
                authz,
                labels: Some(labels),
            }
        })
    }

    /// `verdict`, counted as `count` says, and logged when refused.
    fn judge(
        &self,
        mesh: &MeshTls,
        target: SocketAddr,
        client_id: Option<&str>,
        count: Count,
    ) -> Authz {
        let Verdict { authz, labels } = self.verdict(mesh, target, client_id);
        if count == Count::Connection {
            self.shard.metrics.authorized(AuthzLabels {
                http: false,
                decision: Decision::allowed(authz.allowed),
                authz: authz.policy,
                policy: labels,
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

    /// Looks up the policy of this inbound connection's port, when a
    /// policy controller decides them (`shard.ports`); `peer` is the
    /// client, whose address the policy's networks judge. A mesh peer's
    /// identity, whose judgment waited for this (`meshed.rs`), is judged
    /// then.
    pub(super) async fn police(&self, peer: Option<SocketAddr>) {
        if self.route.route.direction != Direction::Inbound {
            return;
        }
        let port = self.route.route.listen.port();
        if let Some(policy) = self.shard.ports.get(port, &self.shard.deadlines).await {
            let client_ip =
                peer.map_or(IpAddr::from([0, 0, 0, 0]), |peer| peer.ip().to_canonical());
            let _ = self.policed.set(Box::new(Policed {
                port: policy,
                client_ip,
                terminated: Cell::new(false),
            }));
        }
        let waiting = self
            .proven
            .borrow()
            .clone()
            .filter(|_| self.authz.get().is_none());
        if let (Some(client_id), Some(mesh)) = (waiting, self.inbound_mesh()) {
            self.judge_peer(&mesh, self.route.route.listen, Some(&client_id));
        }
    }

    /// Whether a policy controller decides this connection's port.
    pub(super) fn policed(&self) -> bool {
        self.policed.get().is_some()
    }

    /// Ends when a new policy of the port no longer authorizes this
    /// (opaque) connection, as linkerd2-proxy's `inbound/src/policy/tcp.rs`
    /// does: counted in `inbound_tcp_authz_terminate_total`, and the
    /// connection closed with the error it ends with. Never ends otherwise.
    pub(super) async fn revoked<T>(&self) -> Result<T, ConnError> {
        let (Some(policed), Some(mesh)) = (self.policed.get(), self.inbound_mesh()) else {
            return std::future::pending().await;
        };
        let target = self.route.route.listen;
        loop {
            policed.port.next_change().wait().await;
            let client_id = self.proven.borrow().clone();
            let Verdict { authz, labels } = self.verdict(&mesh, target, client_id.as_deref());
            if authz.allowed {
                continue;
            }
            self.shard.metrics.authorized(AuthzLabels {
                http: false,
                decision: Decision::Terminated,
                authz: authz.policy,
                policy: labels,
                client_id: client_id.as_deref().unwrap_or_default().to_string(),
                target_addr: target.to_string(),
            });
            tracing::info!(%target, "connection terminated due to policy change");
            return Err(ConnError::ClientRead(std::io::Error::new(
                ErrorKind::PermissionDenied,
                "connection terminated due to policy change",
            )));
        }
    }

    /// The protocol the port's policy gives, under a policy controller.
    pub(super) fn policed_protocol(&self) -> Option<Protocol> {
        let policed = self.policed.get()?;
        Some(policed.port.with(|server| match server.protocol {
            InboundProtocol::Detect { .. } => Protocol::Detect,
            InboundProtocol::Opaque | InboundProtocol::Tls => Protocol::Opaque,
            InboundProtocol::Http1 => Protocol::Http1,
            InboundProtocol::Http2 | InboundProtocol::Grpc => Protocol::Http2,
        }))
    }

    /// The detect timeout the port's policy gives, under a policy
    /// controller.
    pub(super) fn policed_detect_timeout(&self) -> Option<std::time::Duration> {
        let policed = self.policed.get()?;
        policed.port.with(|server| match server.protocol {
            InboundProtocol::Detect { timeout } => Some(timeout),
            _ => None,
        })
    }

    /// How this connection's HTTP requests are authorized: request by
    /// request under a policy controller, else as the connection was
    /// judged; `None` when no policy applies.
    pub(super) fn request_authz(&self, client_id: &ClientId) -> Option<RequestAuthz> {
        let Some(policed) = self.policed.get() else {
            return self.http_authz(client_id).map(RequestAuthz::Judged);
        };
        let tls = policed
            .terminated
            .get()
            .then(|| self.proven.borrow().clone());
        let policy = RequestPolicy::new(
            policed.port.clone(),
            policed.client_ip,
            tls,
            self.route.route.listen.to_string(),
        );
        Some(RequestAuthz::Policy(Rc::new(policy)))
    }
}

/// A verdict and, under a policy controller, the labels it is counted
/// under.
struct Verdict {
    authz: Authz,
    labels: Option<std::sync::Arc<str>>,
}

#[cfg(test)]
#[path = "authorize_tests.rs"]
mod tests;
