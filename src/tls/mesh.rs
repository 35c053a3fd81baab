//! `MeshTls`: mutual TLS between ringside proxies as a shard uses it.
//!
//! Outbound, a connection to a mesh peer (`[[mesh.peer]]` holds its
//! address, or discovery named its identity and its proxy's port) goes to
//! the peer proxy's inbound port instead, over mTLS
//! naming the peer's identity, and starts with the transport header that
//! says which port of the peer's workload it was for, and the session
//! protocol when it is known: an HTTP connection made for a request
//! declares HTTP/1 or HTTP/2, so the peer skips detection; one made before
//! detection (the connection stage connects while it detects) declares
//! nothing, so a server that speaks first is not kept waiting by a promise
//! of HTTP, and it then carries the client's bytes as they are: a Linkerd
//! peer forwards such a connection as opaque bytes (`proxy/dispatch.rs`
//! keeps HTTP/2 streams off it). A discovered endpoint with an identity
//! but no proxy port is reached on its own port, over mTLS without the
//! transport ALPN or header, as Linkerd reaches it.
//!
//! Inbound, a connection whose TLS names our own identity is terminated
//! here (`accept`): a direct one to the inbound listener, or a redirected
//! one whose detection found our name in its SNI (as Linkerd's peers send
//! HTTP to the application's port). The handshake must show a client
//! certificate of our trust anchors; then comes the transport header,
//! when the peer negotiated it. Both are
//! bounded in time (`config::MESH_HANDSHAKE_TIMEOUT`), and a shard runs at most
//! `MAX_HANDSHAKES` at once, so that stalled or slow peers cannot hold its
//! memory or its CPU. A new handshake over that bound evicts an older one
//! rather than being refused: otherwise 256 sockets that send one byte and
//! stop lock every real peer out for the timeout, again and again. The one
//! evicted is the oldest still waiting for its ClientHello, which a real
//! peer sends whole in its first flight; only when none is waiting does
//! the oldest of all go. So stalled first flights, however many and
//! however fast replaced, only ever evict each other, and to evict a real
//! handshake an attacker must send complete ClientHellos, each of which
//! costs it a connection and us a key exchange, at `MAX_HANDSHAKES` per
//! handshake time (a few milliseconds).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};

use super::{Decoded, HeaderError, SessionProtocol, TransportHeader};
use crate::config::{InboundPolicy, MeshPeer, MESH_HANDSHAKE_TIMEOUT};
use crate::io::{self, Deadlines, Shutdown, Socket};
use std::io::{Error, ErrorKind, Result as IoResult};

/// Handshakes (with their header reads) one shard runs at once; past it a
/// new meshed connection evicts the oldest in progress. A handshake holds
/// about 40 KiB of rustls buffers for up to `MESH_HANDSHAKE_TIMEOUT`.
pub const MAX_HANDSHAKES: usize = 256;

/// The rustls configs and names every shard shares (`Send`: built once at
/// start, rotated through the certificate resolver and trust anchors
/// inside them).
#[derive(Clone)]
pub struct MeshConfigs {
    /// Our identity: the SNI a peer must send to be terminated here.
    pub name: String,
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

/// A shard's mesh: the configs, the peers, the inbound policy, and the
/// handshakes in progress.
pub struct MeshTls {
    pub configs: MeshConfigs,
    /// `configs.client` without the transport ALPN: for an endpoint reached
    /// on its own port, which then gets no transport header (Linkerd offers
    /// the ALPN only with the header, `outbound/src/http/concrete.rs`).
    untagged_client: Arc<ClientConfig>,
    peers: Vec<MeshPeer>,
    pub policy: InboundPolicy,
    handshakes: Handshakes,
}

/// How an outbound connection reaches a meshed endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Meshed<'a> {
    /// The identity its proxy must prove (and the SNI sent).
    pub identity: &'a str,
    /// Its proxy's port for connections behind a transport header; `None`:
    /// the endpoint's own port, without one.
    pub tagged_port: Option<u16>,
}

/// Why a meshed connection was not taken, as the `reason` label of
/// `ringside_mesh_refused_total` names it.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("evicted by newer handshakes: {MAX_HANDSHAKES} were in progress")]
    Evicted,
    #[error("TLS handshake: {0}")]
    Handshake(Error),
    #[error("no transport header (ALPN transport.l5d.io/v1 not negotiated)")]
    NoHeader,
    #[error("a transport header from a client without an identity")]
    NoIdentity,
    #[error("transport header: {0}")]
    Header(HeaderError),
    #[error("reading the transport header: {0}")]
    Read(Error),
    #[error("handshake and transport header not done within {0:?}")]
    Timeout(Duration),
}

impl MeshError {
    pub fn as_str(&self) -> &'static str {
        match self {
            MeshError::Evicted => "evicted",
            MeshError::Handshake(_) => "handshake",
            MeshError::NoHeader => "no_header",
            MeshError::NoIdentity => "no_identity",
            MeshError::Header(err) => err.as_str(),
            MeshError::Read(_) => "read",
            MeshError::Timeout(_) => "timeout",
        }
    }
}

/// A terminated meshed connection, ready for the connection stage.
pub struct Accepted {
    pub socket: Socket,
    /// The client's identity, from its verified certificate.
    pub client_id: Option<String>,
    /// Always there on a direct connection; on a redirected one only when
    /// the peer negotiated the transport ALPN.
    pub header: Option<TransportHeader>,
}

/// Whether the peer must send a transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A direct connection to the inbound listener: the header is the only
    /// way to know its target.
    Required,
    /// A redirected one: its original destination is the target; a header
    /// comes only with the transport ALPN.
    Optional,
}

impl MeshTls {
    pub fn new(configs: MeshConfigs, peers: Vec<MeshPeer>, policy: InboundPolicy) -> MeshTls {
        let mut untagged = (*configs.client).clone();
        untagged.alpn_protocols.clear();
        MeshTls {
            untagged_client: Arc::new(untagged),
            configs,
            peers,
            policy,
            handshakes: Handshakes::default(),
        }
    }

    /// The peer whose network holds `addr`, if it is meshed.
    pub fn peer_for(&self, addr: SocketAddr) -> Option<&MeshPeer> {
        self.peers
            .iter()
            .find(|peer| peer.network.contains(addr.ip()))
    }

    /// Connects to `addr` through its peer proxy: TCP to the peer's
    /// inbound port, the mTLS handshake naming `peer.identity`, then the
    /// transport header for `addr`'s port and `protocol` when known. One
    /// deadline covers it all.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        peer: &MeshPeer,
        protocol: Option<SessionProtocol>,
        timeout: Duration,
        deadlines: &Deadlines,
    ) -> IoResult<Socket> {
        let target = Meshed {
            identity: &peer.identity,
            tagged_port: Some(peer.port),
        };
        self.connect_to(addr, target, protocol, timeout, deadlines)
            .await
    }

    /// Connects to `addr` over mTLS naming `target.identity`: through its
    /// proxy's `tagged_port` with the transport header (as Linkerd's
    /// `tcp/tagged_transport.rs`), or, without one, to `addr` itself with
    /// neither the transport ALPN nor a header.
    pub async fn connect_to(
        &self,
        addr: SocketAddr,
        target: Meshed<'_>,
        protocol: Option<SessionProtocol>,
        timeout: Duration,
        deadlines: &Deadlines,
    ) -> IoResult<Socket> {
        let server = ServerName::try_from(target.identity.to_string())
            .map_err(|err| Error::new(ErrorKind::InvalidInput, err))?;
        let (proxy, header, client) = match target.tagged_port {
            Some(port) => {
                let header = TransportHeader {
                    port: addr.port(),
                    name: None,
                    protocol,
                };
                let client = self.configs.client.clone();
                (
                    SocketAddr::new(addr.ip(), port),
                    Some(header.encode()),
                    client,
                )
            }
            None => (addr, None, self.untagged_client.clone()),
        };
        let connecting = async {
            let plain = io::connect(proxy, timeout, deadlines).await?;
            let handshaken = plain.connect_tls(client, server).await?;
            let socket = Socket::tls(handshaken.stream)?;
            if let Some(header) = header {
                socket.write_all(&header).await?;
            }
            Ok(socket)
        };
        match deadlines.timeout(timeout, connecting).await {
            Some(connected) => connected,
            None => Err(ErrorKind::TimedOut.into()),
        }
    }

    /// Terminates a meshed connection: the handshake, then the transport
    /// header; bytes after it stay in the socket for the next stage.
    /// `prefix`: what detection already read of the ClientHello.
    pub async fn accept(
        &self,
        client: Socket,
        prefix: Vec<u8>,
        header: Header,
        deadlines: &Deadlines,
    ) -> Result<Accepted, MeshError> {
        let slot = self
            .handshakes
            .enter(!prefix.is_empty() || hello_arrived(&client));
        let accepting = self.handshake_and_header(client, prefix, header, &slot.entry.hello_read);
        let evicted = async {
            slot.entry.evicted.wait().await;
            Some(Err(MeshError::Evicted))
        };
        let timed = deadlines.timeout(MESH_HANDSHAKE_TIMEOUT, accepting);
        match future::or(evicted, timed).await {
            Some(accepted) => accepted,
            None => Err(MeshError::Timeout(MESH_HANDSHAKE_TIMEOUT)),
        }
    }

    async fn handshake_and_header(
        &self,
        client: Socket,
        prefix: Vec<u8>,
        header: Header,
        hello_read: &Cell<bool>,
    ) -> Result<Accepted, MeshError> {
        let server = self.configs.server.clone();
        let handshaken = client
            .accept_tls(prefix, server, hello_read)
            .await
            .map_err(MeshError::Handshake)?;
        let client_id = handshaken
            .peer_certificates
            .first()
            .and_then(|leaf| super::rustls_config::identity_of(leaf));
        let transport = handshaken.alpn.as_deref() == Some(super::rustls_config::TRANSPORT_ALPN);
        if !transport && header == Header::Required {
            return Err(MeshError::NoHeader);
        }
        // A header names the port a peer proxy is let through to: only a
        // proven peer's is taken (linkerd2-proxy `direct.rs`).
        if transport && client_id.is_none() {
            return Err(MeshError::NoIdentity);
        }
        let socket = Socket::tls(handshaken.stream).map_err(MeshError::Read)?;
        let header = match transport {
            true => Some(read_header(&socket).await?),
            false => None,
        };
        Ok(Accepted {
            socket,
            client_id,
            header,
        })
    }
}

/// Reads the transport header, whatever the read boundaries; what follows
/// it is put back in the socket.
async fn read_header(socket: &Socket) -> Result<TransportHeader, MeshError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        match TransportHeader::decode(&buf).map_err(MeshError::Header)? {
            Decoded::Complete { header, consumed } => {
                socket.unread(&buf[consumed..]);
                return Ok(header);
            }
            Decoded::Incomplete => {}
        }
        let n = socket.read(&mut chunk).await.map_err(MeshError::Read)?;
        if n == 0 {
            let truncated = Error::new(ErrorKind::UnexpectedEof, "truncated");
            return Err(MeshError::Read(truncated));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the first TLS record (the ClientHello, which a real peer sends
/// in one flight) is all in the socket's buffer already: then the
/// handshake is past waiting for the client the moment it starts, and is
/// not evicted as a stalled one while its task waits its turn to read it
/// (a shard takes a whole backlog of new connections at once).
fn hello_arrived(client: &Socket) -> bool {
    let mut header = [0u8; 5];
    let Ok(Some(5)) = client.try_peek(&mut header) else {
        return false;
    };
    let record = 5 + usize::from(u16::from_be_bytes([header[3], header[4]]));
    client.buffered().is_ok_and(|buffered| buffered >= record)
}

/// The handshakes of one shard in progress, oldest first.
#[derive(Default)]
struct Handshakes {
    started: Cell<u64>,
    pending: Rc<RefCell<VecDeque<Rc<Entry>>>>,
}

struct Entry {
    id: u64,
    /// Whether its whole ClientHello is in.
    hello_read: Cell<bool>,
    /// Fires when newer handshakes evict this one.
    evicted: Shutdown,
}

/// One handshake's place; given back however `accept` ends.
struct Slot {
    entry: Rc<Entry>,
    pending: Rc<RefCell<VecDeque<Rc<Entry>>>>,
}

impl Handshakes {
    /// A place for a new handshake, evicting an older one when all are
    /// taken: the oldest still waiting for its ClientHello, else the oldest.
    /// `hello_in`: its ClientHello has already arrived whole.
    fn enter(&self, hello_in: bool) -> Slot {
        let id = self.started.get();
        self.started.set(id + 1);
        let mut pending = self.pending.borrow_mut();
        if pending.len() >= MAX_HANDSHAKES {
            let waiting = pending.iter().position(|entry| !entry.hello_read.get());
            if let Some(evicted) = pending.remove(waiting.unwrap_or(0)) {
                evicted.evicted.trigger();
            }
        }
        let entry = Rc::new(Entry {
            id,
            hello_read: Cell::new(hello_in),
            evicted: Shutdown::new(),
        });
        pending.push_back(entry.clone());
        Slot {
            entry,
            pending: self.pending.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut pending = self.pending.borrow_mut();
        // Mostly near the front: handshakes end in about the order they
        // began.
        let id = self.entry.id;
        if let Some(at) = pending.iter().position(|entry| entry.id == id) {
            pending.remove(at);
        }
    }
}
