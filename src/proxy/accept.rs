//! The accept loop of one listener on one shard: each connection becomes
//! a task of its own, behind the shard's gate so that a drain can wait for
//! it, inside one span that names it. A route's listener carries every
//! connection to the route; a transparent one finds each connection's
//! route from its original destination, or refuses it. Over the shard's
//! share of the connection limit a connection is reset at once (why:
//! `limit.rs`).

use std::net::SocketAddr;
use std::rc::Rc;

use futures_lite::future;
use tracing::Instrument;

use super::conn::Conn;
use super::meshed;
use super::transparent::{Found, Refusal};
use super::{RouteSlot, RouteState, TransparentState};
use crate::config::Direction;
use crate::io::{
    accept_error_reason, original_dst, refuse, sleep, AcceptFailures, Listener, Socket, Tasks,
};
use crate::shard::Shard;
use crate::tls::mesh::MeshTls;

/// What a listener's connections go to.
pub enum Accepting {
    /// A configured route: each connection takes its state current then.
    Route(Rc<RouteSlot>),
    Transparent(Rc<TransparentState>),
}

impl Accepting {
    fn listen(&self) -> SocketAddr {
        match self {
            Accepting::Route(slot) => slot.listen(),
            Accepting::Transparent(transparent) => transparent.listener.listen,
        }
    }

    /// Where `stream` goes, or the reason it is refused.
    /// Resolves when this listener alone stops: a reload removed its route.
    async fn removed(&self) {
        match self {
            Accepting::Route(slot) => slot.removed().await,
            Accepting::Transparent(_) => std::future::pending().await,
        }
    }

    fn route_for(&self, shard: &Shard, stream: &Socket) -> Result<Routed, &'static str> {
        let transparent = match self {
            Accepting::Route(slot) => return Ok(Routed::Route(slot.current())),
            Accepting::Transparent(transparent) => transparent,
        };
        let destination = original_dst(stream).map_err(|err| {
            tracing::debug!(error = %err, "no original destination");
            "original_dst"
        })?;
        let inbound = transparent.listener.direction == Direction::Inbound;
        match (transparent.route_for(destination, shard), shard.mesh()) {
            // A peer proxy dials the inbound listener itself.
            (Err(Refusal::NotRedirected), Some(mesh)) if inbound => {
                Ok(Routed::Meshed(transparent.clone(), mesh.clone()))
            }
            (Err(Refusal::IpNotAllowed(ip)), _) => {
                // linkerd2-proxy's words (`allow_ips.rs`); a line each, as
                // only a misrouted packet or a wrong INBOUND_IPS gets here.
                tracing::info!(%ip, "refused: inbound connections are not allowed on this IP address");
                Err(Refusal::IpNotAllowed(ip).as_str())
            }
            (Err(refusal), _) => Err(refusal.as_str()),
            // Authorized once detection has said whether it is mTLS.
            (Ok(Found::Route(route)), _) => Ok(Routed::Route(route)),
            (Ok(Found::Discover(original)), _) => {
                Ok(Routed::Discover(transparent.clone(), original))
            }
        }
    }
}

/// Where an accepted connection goes.
enum Routed {
    Route(Rc<RouteState>),
    /// Straight to the inbound listener: maybe a mesh peer (`meshed`).
    Meshed(Rc<TransparentState>, Rc<MeshTls>),
    /// An outbound destination discovery has to resolve first.
    Discover(Rc<TransparentState>, SocketAddr),
}

/// Accepts until the shard drains, its gate closes or a reload removes
/// the route (the listener then closes as this returns), pausing when
/// accepting fails (EMFILE and friends) instead of spinning.
pub async fn accept_loop(
    listener: Listener,
    accepting: Accepting,
    shard: Rc<Shard>,
    connections: Rc<Tasks>,
) {
    let listen = accepting.listen();
    let start = |stream: Socket| {
        shard.metrics.accepted();
        let peer = stream.peer_addr().ok();
        let route = match accepting.route_for(&shard, &stream) {
            Ok(route) => route,
            Err(reason) => {
                shard.metrics.refused(reason);
                tracing::debug!(client = ?peer, %listen, reason, "refused");
                refuse(stream);
                return true;
            }
        };
        let Some(slot) = shard.connections.take(listen) else {
            shard.metrics.refused("max_connections");
            tracing::debug!(client = ?peer, %listen, "refused: connection limit");
            refuse(stream);
            return true;
        };
        // A debug span: a disabled one costs nothing per poll (its fields
        // are not even evaluated), where an enabled one costs the
        // subscriber a call on every poll of the connection (1-2% of the
        // CPU of an HTTP/1 request). The failure line names the connection
        // on its own.
        let route = match route {
            Routed::Route(route) => route,
            Routed::Meshed(inbound, mesh) => {
                let span = tracing::debug_span!(
                    "meshed",
                    shard = shard.metrics.shard(),
                    client = ?peer,
                );
                let serving = meshed::serve(shard.clone(), inbound, mesh, stream, slot);
                return connections.spawn(serving.instrument(span));
            }
            Routed::Discover(transparent, original) => {
                let span = tracing::debug_span!(
                    "conn",
                    shard = shard.metrics.shard(),
                    client = ?peer,
                    target = %original,
                );
                let shard = shard.clone();
                let carrying = async move {
                    let route = transparent.discover(original, &shard).await;
                    Conn::new(shard, route, slot).run(stream, peer).await
                };
                return connections.spawn(carrying.instrument(span));
            }
        };
        let span = tracing::debug_span!(
            "conn",
            shard = shard.metrics.shard(),
            client = ?peer,
            target = %route.route.listen,
        );
        let conn = Conn::new(shard.clone(), route, slot);
        // false: draining, the gate no longer takes tasks.
        connections.spawn(conn.run(stream, peer).instrument(span))
    };
    let draining = &shard.draining;
    let mut failures = AcceptFailures::new();
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            future::or(draining.wait(), accepting.removed()).await;
            None
        })
        .await;
        let failure = match accepted {
            None => break,
            Some(Ok(stream)) => {
                failures.succeeded(listen);
                if !start(stream) {
                    break;
                }
                None
            }
            // The peer gave up before it was accepted: nothing ran out.
            Some(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionAborted => None,
            Some(Err(err)) => Some(err),
        };
        if let Some(err) = failure {
            // Connections that end give their fds back; until then every
            // retry would fail at once.
            shard.metrics.accept_failed(accept_error_reason(&err));
            sleep(failures.failed(listen, &err)).await;
        }
    }
    tracing::debug!(%listen, "listener closed");
}

#[cfg(test)]
#[path = "accept_tests.rs"]
mod tests;
