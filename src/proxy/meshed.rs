//! The inbound mesh stage, and inbound authorization.
//!
//! - `serve`: a connection made straight to the inbound listener (not
//!   redirected by iptables) by a peer proxy. It must be TLS for our own
//!   identity with a client certificate of our trust anchors, and begin
//!   with the transport header, whose port names the application port it
//!   is for. Then authorization decides, and the connection goes on
//!   through the connection stage like a redirected one to that port, with
//!   the client's identity for `l5d-client-id` and the protocol the header
//!   declared. Anything else that dials the listener directly is refused,
//!   as before the mesh: a plaintext client is reset as `not_redirected` at
//!   its first byte, without waiting for a handshake that will never come.
//! - `Conn::terminates` / `terminate`: a redirected connection whose
//!   detection found TLS for our own name is a peer's too (Linkerd sends
//!   HTTP to the application's port that way): terminated, authorized by
//!   its identity, and classified again.
//! - `Conn::admit`: once detection has said what a connection carries, a
//!   plaintext one is authorized as a client without an identity, and a
//!   mesh peer's that its identity did not get in is settled: opaque ones
//!   are closed when refused, HTTP ones answered 403 per request.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::rc::Rc;

use super::classify::Carry;
use super::conn::Conn;
use super::TransparentState;
use crate::config::{Direction, Protocol};
use crate::io::{refuse, ConnError, Destination, Socket};
use crate::metrics::{Authz, AuthzLabels};
use crate::shard::Shard;
use crate::shard::Slot;
use crate::tls::mesh::{Header, MeshTls, HANDSHAKE_TIMEOUT};
use crate::tls::{SessionProtocol, TransportHeader};

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Serves one direct connection to `inbound` on behalf of a mesh peer.
pub async fn serve(
    shard: Rc<Shard>,
    inbound: Rc<TransparentState>,
    mesh: Rc<MeshTls>,
    stream: Socket,
    slot: Slot,
) {
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let metrics = &shard.metrics;
    let mut first = [0u8; 1];
    let peeked = shard
        .deadlines
        .timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first))
        .await;
    if !matches!(peeked, Some(Ok(1))) || first[0] != TLS_HANDSHAKE_RECORD {
        metrics.refused("not_redirected");
        tracing::debug!(client = %peer, "refused: a direct connection that is not mTLS");
        refuse(stream);
        return;
    }
    let accepted = match mesh
        .accept(stream, Vec::new(), Header::Required, &shard.deadlines)
        .await
    {
        Ok(accepted) => accepted,
        Err(err) => {
            metrics.mesh_refused(err.as_str());
            tracing::info!(client = %peer, error = %err, "meshed connection refused");
            return;
        }
    };
    let Some(header) = accepted.header else {
        unreachable!("a required header is there or accept failed")
    };
    let port = header.port;
    let original = SocketAddr::new(local.ip(), port);
    let destination = Destination {
        original: Some(original),
        local,
    };
    let route = match inbound.route_for(destination, &shard) {
        Ok(route) => route,
        Err(refusal) => {
            metrics.refused(refusal.as_str());
            tracing::debug!(client = %peer, port, reason = refusal.as_str(), "refused");
            accepted.socket.reset_on_close();
            return;
        }
    };
    let conn = Conn::new(shard.clone(), route, slot);
    let client_id = accepted.client_id.as_deref();
    conn.peer(&mesh, original, client_id, declared(&header));
    conn.run(accepted.socket, Some(peer)).await;
}

/// The protocol a transport header declared.
fn declared(header: &TransportHeader) -> Option<Protocol> {
    header.protocol.map(|protocol| match protocol {
        SessionProtocol::Http1 => Protocol::Http1,
        SessionProtocol::Http2 => Protocol::Http2,
    })
}

impl Conn {
    /// The mesh, when this is an inbound connection it authorizes.
    fn inbound_mesh(&self) -> Option<&Rc<MeshTls>> {
        let inbound = self.route.route.direction == Direction::Inbound;
        self.shard.mesh.as_ref().filter(|_| inbound)
    }

    /// Whether only a client with an identity may use this connection's
    /// port: then nothing is connected for it before detection has said
    /// whether it is a mesh peer's mTLS.
    pub(super) fn requires_identity(&self) -> bool {
        let port = self.route.route.listen.port();
        self.inbound_mesh()
            .is_some_and(|mesh| !mesh.policy.for_port(port).allows(None))
    }

    /// Authorizes an inbound connection by its port's policy once
    /// detection has said what it carries: a plaintext one as a client
    /// without an identity, a mesh peer's refused one by the identity it
    /// proved (an allowed one was counted as its TLS ended). A refused HTTP
    /// client is served 403s (`authz`); any other is closed.
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
        let allowed = authorized(&self.shard, mesh, target, client_id.as_deref(), count);
        let policy = mesh.policy.for_port(target.port()).label();
        self.judged(Authz { policy, allowed });
        if allowed || http {
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

    /// Whether this is a redirected inbound connection whose TLS names our
    /// own identity (`carry` is what detection found): a mesh peer's, to
    /// terminate here rather than pass through to the application.
    pub(super) fn terminates(&self, carry: &Carry, client: &Socket) -> bool {
        let Carry::Opaque { tls_sni: Some(sni) } = carry else {
            return false;
        };
        !client.is_tls()
            && self
                .inbound_mesh()
                .is_some_and(|mesh| mesh.configs.name.eq_ignore_ascii_case(sni))
    }

    /// Terminates the mesh peer's TLS on `client`, and authorizes its
    /// identity for this connection's port: the decrypted socket, to be
    /// classified again.
    pub(super) async fn terminate(
        &self,
        client: Socket,
        prefix: Vec<u8>,
    ) -> Result<Socket, ConnError> {
        let mesh = self.shard.mesh.clone().expect("terminates() said so");
        let metrics = &self.shard.metrics;
        let refused = |reason: &'static str, cause: String| {
            metrics.mesh_refused(reason);
            ConnError::ClientRead(std::io::Error::new(ErrorKind::PermissionDenied, cause))
        };
        let deadlines = &self.shard.deadlines;
        let accepted = mesh
            .accept(client, prefix, Header::Optional, deadlines)
            .await
            .map_err(|err| refused(err.as_str(), err.to_string()))?;
        let target = self.route.route.listen;
        if let Some(header) = &accepted.header {
            if header.port != target.port() {
                let why = format!("header names port {}, not {}", header.port, target.port());
                return Err(refused("header_port", why));
            }
            self.declared.set(declared(header));
        }
        let client_id = accepted.client_id.as_deref();
        self.peer(&mesh, target, client_id, self.declared.get());
        Ok(accepted.socket)
    }

    /// Makes this a mesh peer's connection (`meshed`) and judges the
    /// identity it proved by `target`'s policy. An allowed one is counted
    /// now; a refused one is settled by `admit` once its protocol is known:
    /// HTTP is answered 403, anything else closed.
    fn peer(
        &self,
        mesh: &MeshTls,
        target: SocketAddr,
        client_id: Option<&str>,
        protocol: Option<Protocol>,
    ) {
        let policy = mesh.policy.for_port(target.port());
        let allowed = policy.allows(client_id);
        if allowed {
            authorized(&self.shard, mesh, target, client_id, Count::Connection);
        }
        let policy = policy.label();
        self.judged(Authz { policy, allowed });
        self.meshed(client_id, protocol);
    }
}

/// How an authorization decision is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// In `inbound_tcp_authz_*`: the connection is carried or closed.
    Connection,
    /// Not here: an HTTP connection is served either way, and each of its
    /// requests counts in `inbound_http_authz_{allow,deny}_total`.
    Requests,
}

/// Whether the policy of `target`'s port lets `client_id` in (`None`: a
/// client with no identity).
pub fn authorized(
    shard: &Shard,
    mesh: &MeshTls,
    target: SocketAddr,
    client_id: Option<&str>,
    count: Count,
) -> bool {
    let policy = mesh.policy.for_port(target.port());
    let allowed = policy.allows(client_id);
    if count == Count::Connection {
        shard.metrics.authorized(AuthzLabels {
            http: false,
            allowed,
            authz: policy.label(),
            client_id: client_id.unwrap_or_default().to_string(),
            target_addr: target.to_string(),
        });
    }
    if !allowed {
        tracing::info!(
            client_id = client_id.unwrap_or("-"),
            target = %target,
            authz = policy.label(),
            "connection refused by authorization"
        );
    }
    allowed
}
