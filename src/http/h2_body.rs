//! A body passed between two HTTP/2 streams with flow control: data as
//! the receiver grants capacity, the sender's window released only once
//! forwarded, then the trailers; a reset on either side goes to the other.

use std::future::poll_fn;

use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use http::HeaderMap;

use super::ClientId;

/// Flow-control windows ringside grants its peers, on both sides. The
/// protocol's 64 KiB default makes a proxied stream stop and wait once per
/// window; against a sender that keeps Nagle on (most do not set
/// TCP_NODELAY), each wait ends only with a delayed ACK, and a 16 MiB
/// response took 11 s where it takes 0.1 s direct. These are hyper's
/// defaults: a peer can have at most 5 MiB per connection in flight to us,
/// so that is also what one connection can make ringside buffer.
pub(super) const STREAM_WINDOW_BYTES: u32 = 2 * 1024 * 1024;
pub(super) const CONNECTION_WINDOW_BYTES: u32 = 5 * 1024 * 1024;
/// Most bytes h2 buffers per stream on the way out.
pub(super) const MAX_SEND_BUFFER_BYTES: usize = 1024 * 1024;

/// Moves a body from one stream to another: data as the receiver grants
/// capacity, releasing the sender's window only once forwarded; then the
/// trailers, without the fields `client_id` drops, or the end of the
/// stream. Returns the trailers' `grpc-status`, read before they are
/// handed on (a copy of them cost an allocation per gRPC call). A reset on
/// either side is passed to the other.
pub(super) async fn pass_body(
    mut from: RecvStream,
    mut to: SendStream<Bytes>,
    client_id: &ClientId,
) -> Result<Option<u16>, h2::Error> {
    while let Some(data) = poll_fn(|cx| from.poll_data(cx)).await {
        let data = match data {
            Ok(data) => data,
            Err(err) => {
                to.send_reset(err.reason().unwrap_or(Reason::CANCEL));
                return Err(err);
            }
        };
        let len = data.len();
        // The last data frame carries END_STREAM itself: no empty frame.
        let last = from.is_end_stream();
        if !send_data(&mut to, data, last).await? {
            return Ok(None);
        }
        let _ = from.flow_control().release_capacity(len);
        if last {
            if len == 0 {
                // An empty final frame: end the stream with one too.
                to.send_data(Bytes::new(), true)?;
            }
            return Ok(None);
        }
    }
    let trailers = match poll_fn(|cx| from.poll_trailers(cx)).await {
        Ok(trailers) => trailers,
        Err(err) => {
            to.send_reset(err.reason().unwrap_or(Reason::CANCEL));
            return Err(err);
        }
    };
    let Some(mut trailers) = trailers else {
        to.send_data(Bytes::new(), true)?;
        return Ok(None);
    };
    client_id.strip_fields(&mut trailers);
    let status = grpc_status(&trailers);
    to.send_trailers(trailers)?;
    Ok(status)
}

/// Sends `data` as the receiver grants capacity, `end` ending the stream
/// with its last frame; false if the receiver is gone.
pub(super) async fn send_data(
    to: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<bool, h2::Error> {
    while !data.is_empty() {
        to.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| to.poll_capacity(cx)).await {
            Some(Ok(granted)) => granted,
            Some(Err(err)) => return Err(err),
            None => return Ok(false),
        };
        let chunk = data.split_to(granted.min(data.len()));
        to.send_data(chunk, end && data.is_empty())?;
    }
    Ok(true)
}

pub(super) fn grpc_status(headers: &HeaderMap) -> Option<u16> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
