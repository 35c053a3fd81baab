//! `RouteMetrics`: the labels and counters every connection of one route
//! shares on a shard, looked up once when the shard starts rather than per
//! connection or request. The opaque and HTTP paths both count through it.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::recorder::{
    DetectLabels, Expiry, ExpiryLabels, Peer, RequestLabels, ShardMetrics, TcpCounters, TcpLabels,
};
use crate::config::Direction;

pub struct RouteMetrics {
    pub direction: Direction,
    /// The route's listen address as the `target_addr` label, formatted
    /// once.
    pub target_addr: String,
    /// Client-side counters (`peer="src"`) of plain connections.
    pub src: Rc<TcpCounters>,
    /// Upstream-side counters (`peer="dst"`), by endpoint index.
    pub dst: Vec<Rc<TcpCounters>>,
    /// The endpoints, for the per-connection labels of TLS passthrough.
    upstreams: Vec<SocketAddr>,
}

impl RouteMetrics {
    pub fn new(
        metrics: &ShardMetrics,
        direction: Direction,
        listen: SocketAddr,
        upstreams: &[SocketAddr],
    ) -> RouteMetrics {
        let target_addr = listen.to_string();
        let labels = |peer, target_addr: String| TcpLabels {
            direction,
            peer,
            target_addr,
            tls_sni: None,
        };
        RouteMetrics {
            direction,
            src: metrics.tcp(labels(Peer::Src, target_addr.clone())),
            dst: upstreams
                .iter()
                .map(|upstream| metrics.tcp(labels(Peer::Dst, upstream.to_string())))
                .collect(),
            upstreams: upstreams.to_vec(),
            target_addr,
        }
    }

    /// The counters of a TLS passthrough connection: its SNI is a label,
    /// so they are looked up per connection.
    pub fn tls(
        &self,
        metrics: &ShardMetrics,
        peer: Peer,
        endpoint: usize,
        sni: &str,
    ) -> Rc<TcpCounters> {
        let target_addr = match peer {
            Peer::Src => self.target_addr.clone(),
            Peer::Dst => self.upstreams[endpoint].to_string(),
        };
        metrics.tcp(TcpLabels {
            direction: self.direction,
            peer,
            target_addr,
            tls_sni: Some(sni.to_string()),
        })
    }

    pub fn request_labels(&self, authority: String) -> RequestLabels {
        RequestLabels {
            direction: self.direction,
            authority,
            target_addr: self.target_addr.clone(),
        }
    }

    /// Counts a timeout that fired on this route, and says so once at
    /// debug (inside the connection's span, which names the connection).
    pub fn expired(&self, metrics: &ShardMetrics, expiry: Expiry, after: Duration) {
        tracing::debug!(timeout = expiry.as_str(), ?after, "timed out");
        let labels: ExpiryLabels = (self.direction, self.target_addr.clone(), expiry);
        metrics.expired(labels);
    }

    pub fn detect_labels(&self, result: &'static str) -> DetectLabels {
        DetectLabels {
            direction: self.direction,
            target_addr: self.target_addr.clone(),
            result,
        }
    }
}
