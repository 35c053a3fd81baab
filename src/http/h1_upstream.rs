//! Where an HTTP/1 request goes ([`Via`]): the connection's first
//! upstream, a stream on a mesh peer's HTTP/2 connection, or a pooled or
//! new HTTP/1 connection to the endpoint the balancer picks.

use super::H1Proxy;
use crate::http::answer::ProxyError;
use crate::http::pool::{pooled_or_new, Upstream};

/// Where a request goes.
pub(super) enum Via {
    /// An HTTP/1 connection of its own for the exchange.
    Http1(Upstream),
    /// A stream on a mesh peer's HTTP/2 connection (`orig_proto`).
    Http2 {
        index: usize,
        sender: ::h2::client::SendRequest<bytes::Bytes>,
    },
}

impl H1Proxy<'_> {
    /// The first upstream if still unused, else for an endpoint the
    /// balancer picks: a stream on its HTTP/2 connection when it takes
    /// HTTP/1 so (`HttpRoute::upgrades`) and the request can be
    /// `multiplex`ed, a pooled connection, or
    /// a new one; why not when no endpoint can be had.
    pub(super) async fn upstream(
        &self,
        tried: &mut Vec<usize>,
        first: &mut Option<Box<Upstream>>,
        multiplex: bool,
        retryable: bool,
    ) -> Result<Via, ProxyError> {
        if let Some(upstream) = first.take() {
            return Ok(Via::Http1(*upstream));
        }
        let (shard, route) = (self.shard, self.route);
        let mut last_error = None;
        while let Some(index) = route.balancer.pick(tried) {
            let via = if multiplex && route.upgrades(index) {
                let sender = crate::http::h2_upstream::sender(shard, route, index).await;
                sender.map(|sender| Via::Http2 { index, sender })
            } else {
                pooled_or_new(shard, route, index, retryable)
                    .await
                    .map(Via::Http1)
            };
            match via {
                Ok(via) => return Ok(via),
                Err(error) => {
                    tried.push(index);
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or(ProxyError::NoEndpoint))
    }
}
