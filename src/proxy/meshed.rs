//! The inbound mesh stage: where a mesh peer's mTLS ends.
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
//!   its identity, and classified again. Ports configured for HTTP look
//!   for it too (`classified_as`).
//!
//! Either way the identity is judged by `authorize.rs`.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::rc::Rc;

use super::classify::{Carry, Classified};
use super::conn::Conn;
use super::transparent::Found;
use super::TransparentState;
use crate::config::{Protocol, MESH_HANDSHAKE_TIMEOUT};
use crate::io::{refuse, ConnError, Destination, Socket};
use crate::shard::{Shard, Slot};
use crate::tls::mesh::{Header, MeshError, MeshTls};
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
        .timeout(MESH_HANDSHAKE_TIMEOUT, stream.peek(&mut first))
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
            // Counted either way; an eviction is what a flood of stalled
            // handshakes causes, one per connection of it, so it is not
            // worth an operator's line each.
            if matches!(err, MeshError::Evicted) {
                tracing::debug!(client = %peer, error = %err, "meshed connection refused");
            } else {
                tracing::info!(client = %peer, error = %err, "meshed connection refused");
            }
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
        Ok(Found::Route(route)) => route,
        // Inbound: discovery resolves outbound destinations only.
        Ok(Found::Discover(_)) => unreachable!("an inbound listener has no discovery"),
        Err(refusal) => {
            metrics.refused(refusal.as_str());
            tracing::debug!(client = %peer, port, reason = refusal.as_str(), "refused");
            accepted.socket.reset_on_close();
            return;
        }
    };
    let conn = Conn::new(shard.clone(), route, slot);
    let client_id = accepted.client_id.as_deref();
    conn.meshed(client_id, declared(&header));
    // Under a policy controller the identity is judged once `Conn::run`
    // has looked the port's policy up (`police`): awaited here, the lookup
    // took room in every meshed connection's task (measured: 0.25 KiB per
    // idle one).
    if !shard.ports.active() {
        conn.judge_peer(&mesh, original, client_id);
    }
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
    /// The protocol `client` is classified by: its port's, except that a
    /// port configured for HTTP (HTTP/1, HTTP/2, gRPC) still looks for a
    /// mesh peer's TLS first, as linkerd2-proxy's inbound skips TLS
    /// detection on opaque ports only (`inbound/src/detect.rs`,
    /// `push_detect_tls`). `as_configured` then takes back the port's
    /// protocol for what is not TLS.
    pub(super) fn classified_as(&self, client: &Socket) -> Protocol {
        match self.protocol() {
            Protocol::Http1 | Protocol::Http2
                if !client.is_tls() && self.inbound_mesh().is_some() =>
            {
                Protocol::Detect
            }
            protocol => protocol,
        }
    }

    /// What a client classified by `classified_as` carries: TLS as found,
    /// anything else as its port is configured. (Taking the whole
    /// `Classified`: a second `carry` local would keep room in every
    /// connection's task.)
    pub(super) fn as_configured(&self, classified: Classified) -> Classified {
        let carry = match (self.protocol(), classified.carry) {
            (_, tls @ Carry::Opaque { tls_sni: Some(_) }) => tls,
            (Protocol::Http1, _) => Carry::Http1,
            (Protocol::Http2, _) => Carry::Http2,
            (_, carry) => carry,
        };
        Classified {
            carry,
            ..classified
        }
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
        let mesh = self.shard.mesh().expect("terminates() said so");
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
        // Inside `run`: the port's policy, if any, was looked up.
        self.meshed(client_id, self.declared.get());
        self.judge_peer(&mesh, target, client_id);
        Ok(accepted.socket)
    }
}

#[cfg(test)]
#[path = "meshed_tests.rs"]
mod tests;
