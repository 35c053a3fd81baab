//! `ConnError`: why a proxied connection ended badly, and on which side.
//! The `Side` is what the log line names and what decides which peer is
//! told of the failure with a reset.

use std::io;
use std::net::SocketAddr;

/// Which side of the proxy failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The connection ringside accepted.
    Client,
    /// The connection ringside opened (or failed to open).
    Upstream,
    /// ringside itself (a pipe, a socket option).
    Proxy,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
            Side::Proxy => "proxy",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("client read failed: {0}")]
    ClientRead(io::Error),
    #[error("client write failed: {0}")]
    ClientWrite(io::Error),
    #[error("upstream read failed: {0}")]
    UpstreamRead(io::Error),
    #[error("upstream write failed: {0}")]
    UpstreamWrite(io::Error),
    #[error("no upstream endpoint reachable after {attempts} attempts, last {last}: {cause}")]
    Connect {
        attempts: usize,
        last: SocketAddr,
        cause: io::Error,
    },
    /// The route has no endpoint now: its names have not resolved, or
    /// resolved to nothing. The client connection is closed.
    #[error("the route has no endpoints (its upstream names resolve to no address yet)")]
    NoEndpoints,
    #[error("proxy error: {0}")]
    Proxy(io::Error),
    /// The client went past a limit and was cut off; names the limit's key.
    #[error("client went past {0}: connection closed")]
    ClientLimit(&'static str),
}

impl ConnError {
    pub fn side(&self) -> Side {
        match self {
            ConnError::ClientRead(_) | ConnError::ClientWrite(_) | ConnError::ClientLimit(_) => {
                Side::Client
            }
            ConnError::UpstreamRead(_)
            | ConnError::UpstreamWrite(_)
            | ConnError::Connect { .. }
            | ConnError::NoEndpoints => Side::Upstream,
            ConnError::Proxy(_) => Side::Proxy,
        }
    }
}
