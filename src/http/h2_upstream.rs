//! The upstream side of `H2Proxy`: one multiplexed HTTP/2 connection per
//! endpoint and shard, pooled (`H2Pool`), made when a stream first needs
//! it and driven by a task of its own for as long as it lives.

use std::time::Instant;

use bytes::Bytes;
use h2::client;

use super::answer::ProxyError;
use super::h2_body::{CONNECTION_WINDOW_BYTES, MAX_SEND_BUFFER_BYTES, STREAM_WINDOW_BYTES};
use super::HttpRoute;
use crate::io::{spawn, H2Io, Socket};
use crate::shard::Shard;
use crate::tls::SessionProtocol;

/// A ready sender on endpoint `index`'s HTTP/2 connection: the pooled one,
/// or a new one.
pub(super) async fn sender(
    shard: &Shard,
    route: &HttpRoute,
    index: usize,
) -> Result<client::SendRequest<Bytes>, ProxyError> {
    if let Some(sender) = route.h2_pool.take_sender(index) {
        match sender.ready().await {
            Ok(sender) => return Ok(sender),
            Err(_) => route.h2_pool.set(index, None),
        }
    }
    // Boxed: connecting and the handshake are rare, and inline they made
    // every stream's future the size of theirs (7,256 bytes, 3,104 with
    // this and `pooled_or_new` boxed).
    let connected = async {
        let socket = super::connect(shard, route, index, SessionProtocol::Http2).await?;
        adopt(shard, route, index, socket).await
    };
    let sender = Box::pin(connected).await?;
    sender.ready().await.map_err(|source| {
        let addr = route.balancer.addr(index);
        ProxyError::H2NotReady { addr, source }
    })
}

/// Makes `socket` the pooled HTTP/2 connection of endpoint `index`.
pub(super) async fn adopt(
    shard: &Shard,
    route: &HttpRoute,
    index: usize,
    socket: Socket,
) -> Result<client::SendRequest<Bytes>, ProxyError> {
    let addr = route.balancer.addr(index);
    let counters = route.metrics.dst[index].clone();
    let scratch = shard.pumps.scratch.clone();
    let io = H2Io::new(socket, Vec::new(), counters.clone(), scratch);
    let (sender, connection) = client::Builder::new()
        .initial_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_send_buffer_size(MAX_SEND_BUFFER_BYTES)
        .handshake(io)
        .await
        .map_err(|source| ProxyError::H2Handshake { addr, source })?;
    counters.opened();
    let opened = Instant::now();
    spawn(async move {
        let result = connection.await;
        if let Err(err) = &result {
            tracing::debug!(endpoint = %addr, error = %err, "upstream HTTP/2 connection ended");
        }
        counters.closed(result.is_ok(), opened.elapsed());
    });
    route.h2_pool.set(index, Some(sender.clone()));
    Ok(sender)
}
