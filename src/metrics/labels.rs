//! The label sets of ringside's series: plain keys, shared by the
//! recorder that counts under them, the snapshot that carries them to the
//! admin shard and the encoder that writes them. They sit apart so that
//! those three import them, and not one another, in a circle.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Direction;

/// Which end of the proxy a TCP connection is, in Linkerd's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// A connection the proxy accepted from a client.
    Src,
    /// A connection the proxy opened to an upstream endpoint.
    Dst,
}

impl Peer {
    pub fn as_str(self) -> &'static str {
        match self {
            Peer::Src => "src",
            Peer::Dst => "dst",
        }
    }
}

/// The labels of the tcp_* series. `target_addr` is the route's listen
/// address for `peer="src"` (what the client dialed) and the endpoint for
/// `peer="dst"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TcpLabels {
    pub direction: Direction,
    pub peer: Peer,
    pub target_addr: String,
    /// `Some(sni)` for TLS passed through opaquely (labels `tls="opaque"`
    /// and `sni`, empty when the ClientHello named no server), as Linkerd
    /// labels such connections.
    pub tls_sni: Option<String>,
    /// The identity of a mesh peer at this end, proven over mTLS: the
    /// client's (`peer="src"`, inbound) or the server's (`peer="dst"`,
    /// outbound), labelled `tls="true"` and `client_id` or `server_id`,
    /// as Linkerd's.
    pub peer_id: Option<String>,
    /// Why a connection of a meshed proxy is not mTLS, when it is not
    /// (labels `tls="no_identity"` and `no_tls_reason`).
    pub no_tls: Option<&'static str>,
    /// The endpoint's labels from its source (a control plane's
    /// `metric_labels`, already `dst_*` named and bounded), on `peer="dst"`
    /// series as Linkerd's; shared by every series of the endpoint.
    pub dst_labels: Arc<[(String, String)]>,
}

/// The labels of `protocol_detect_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DetectLabels {
    pub direction: Direction,
    pub target_addr: String,
    /// `http/1`, `http/2`, `tls`, `unknown`, `opaque_port`, `timeout`,
    /// `quiet`, `server_first`, `learned_server_first` or `error`.
    pub result: &'static str,
}

/// Which wait of a connection ran out: the `timeout` label of
/// `ringside_timeouts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Expiry {
    /// An HTTP/1 request head took too long (408), or an HTTP/2 client's
    /// preface (closed).
    HeadRead,
    /// A client sat idle between requests: HTTP/1 keep-alive (closed
    /// quietly), or HTTP/2 with no stream in flight (closed with a GOAWAY).
    ClientIdle,
    /// An upstream took too long to start its response (504).
    Response,
    /// An opaque connection passed no byte either way (both closed).
    OpaqueIdle,
    /// A client took too long to send its first head: the upstream
    /// connection opened for it ahead of time went back to the pool.
    SpeculativeHold,
}

impl Expiry {
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::HeadRead => "head_read",
            Expiry::ClientIdle => "client_idle",
            Expiry::Response => "response",
            Expiry::OpaqueIdle => "opaque_idle",
            Expiry::SpeculativeHold => "speculative_hold",
        }
    }
}

/// The labels of `ringside_timeouts_total`: the route and what ran out.
pub type ExpiryLabels = (Direction, String, Expiry);

/// The labels of `request_total`, and with a status those of the response
/// series, as Linkerd names them. Their strings are shared, made once per
/// route (or per authority and shard): the labels are made for every
/// request, and an owned copy of each cost an allocation per request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestLabels {
    pub direction: Direction,
    /// The Host header (or CONNECT target); bounded per shard, see
    /// `ShardMetrics::authority`.
    pub authority: Arc<str>,
    pub target_addr: Arc<str>,
    /// The mesh identity at the far end of the request's hop, proven over
    /// mTLS (labels `tls="true"` and `client_id` or `server_id`).
    pub peer_id: Option<PeerId>,
}

/// A mesh peer's identity, by which end of the hop it is at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerId {
    /// The client's, inbound.
    Client(Arc<str>),
    /// The server's, outbound.
    Server(Arc<str>),
    /// None, for this reason (`tls="no_identity"`, `no_tls_reason`).
    NoIdentity(&'static str),
}

/// How a response ended, as the HTTP path reports it; counted under a
/// `ResponseKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponseClass {
    pub status_code: u16,
    /// The gRPC status from the trailers (or a trailers-only head).
    pub grpc_status: Option<u16>,
}

impl ResponseClass {
    /// Linkerd's classification: 5xx, or a non-zero gRPC status, fails.
    pub fn is_failure(&self) -> bool {
        self.status_code >= 500 || self.grpc_status.is_some_and(|code| code != 0)
    }
}

/// The value of a label past its bound (see `bound`), as ringside has
/// always labelled authorities past theirs.
pub const OVERFLOW: &str = "_other";

/// What a response series is keyed by beyond its request's labels: the
/// class with the codes an origin chose bounded (see `RemoteLabels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponseKey {
    pub status_code: Code,
    pub grpc_status: Option<Code>,
    /// Kept apart from the codes, so that a failure folded into `_other`
    /// still counts as one.
    pub failure: bool,
}

/// A numeric label value a remote party chose, or the overflow value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    Known(u16),
    /// Past the label's bound: written as `_other`.
    Other,
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Code::Known(code) => write!(f, "{code}"),
            Code::Other => f.write_str(OVERFLOW),
        }
    }
}

/// Counts by a reason label whose values are fixed in the code.
pub type Reasons = BTreeMap<&'static str, u64>;
